//! `health_signals`, `health_scores` and `health_score_days`, read with their accounts.

use std::sync::LazyLock;

use sqlx::{Any, AnyPool, FromRow, Transaction};

use breadbox_auth::db::Db;
use breadbox_auth::secret::new_id;

use crate::domain::events::Event;
use crate::domain::health::{day_of, Band, HealthDetail, HealthFilter, HealthScore, Signal};
use crate::domain::paging::PageRequest;
use crate::domain::Tenant;
use crate::repo;

/// An account with its score row, if any, and the score of the trend's reference day.
#[derive(Debug, Clone, FromRow, serde::Deserialize)]
pub struct ScoreRecord {
    pub account_id: String,
    pub account_name: String,
    pub account_created_at: i64,
    pub score: Option<i64>,
    pub computed_at: Option<i64>,
    pub updated_at: Option<i64>,
    pub score_before: Option<i64>,
}

/// A point of `health_score_days`.
#[derive(Debug, Clone, FromRow, serde::Deserialize)]
struct DayRecord {
    day: i64,
    score: i64,
}

/// A row of `health_signals`.
#[derive(Debug, Clone, FromRow, serde::Deserialize)]
pub struct SignalRecord {
    pub source: String,
    pub name: String,
    pub value: f64,
    pub weight: f64,
    pub observed_at: i64,
}

impl From<ScoreRecord> for HealthScore {
    fn from(r: ScoreRecord) -> Self {
        HealthScore {
            account_id: r.account_id,
            account_name: r.account_name,
            score: r.score,
            score_before: r.score_before,
            computed_at: r.computed_at,
            updated_at: r.updated_at,
            account_created_at: r.account_created_at,
        }
    }
}

impl From<SignalRecord> for Signal {
    fn from(r: SignalRecord) -> Self {
        Signal { source: r.source, name: r.name, value: r.value, weight: r.weight, observed_at: r.observed_at }
    }
}

/// The columns of a `ScoreRecord`; `$1` is the trend's reference day.
const SCORE_SELECT: &str = "SELECT a.id AS account_id, a.name AS account_name, a.created_at AS account_created_at, \
     s.score, s.computed_at, s.updated_at, \
     (SELECT d.score FROM health_score_days d WHERE d.account_id = a.id AND d.day <= $1 \
      ORDER BY d.day DESC LIMIT 1) AS score_before \
     FROM accounts a LEFT JOIN health_scores s ON s.account_id = a.id";

/// Up to `page.fetch()` accounts after `page.after` in `(created_at, id)` order, with
/// their scores; `trend_day` is the day the trend compares with.
pub async fn list(
    db: &Db,
    tenant: &Tenant,
    filter: &HealthFilter,
    page: &PageRequest,
    trend_day: i64,
) -> sqlx::Result<Vec<ScoreRecord>> {
    let (low, high) = filter.band.map(Band::range).unzip();
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "{SCORE_SELECT} \
             WHERE a.org_id = $2 AND a.env = $3 \
               AND ($4 IS NULL OR (s.score >= $4 AND s.score <= $5)) \
               AND ($6 IS NULL OR s.updated_at >= $6) \
               AND (a.created_at, a.id) > ($7, $8) \
             ORDER BY a.created_at, a.id LIMIT $9"
        )
    });
    let params = [
        trend_day.into(),
        (&tenant.org_id).into(),
        tenant.env_str().into(),
        low.into(),
        high.into(),
        page.updated_since.into(),
        page.after.created_at.into(),
        (&page.after.id).into(),
        page.fetch().into(),
    ];
    db.fetch_list(&SQL, &params).await
}

pub async fn get(db: &Db, tenant: &Tenant, account_id: &str, trend_day: i64) -> sqlx::Result<Option<ScoreRecord>> {
    static SQL: LazyLock<String> = LazyLock::new(|| format!("{SCORE_SELECT} WHERE a.id = $2 AND a.org_id = $3 AND a.env = $4"));
    db.fetch_one_by_key(&SQL, &[trend_day.into(), account_id.into(), (&tenant.org_id).into(), tenant.env_str().into()]).await
}

/// The latest value of every signal of the account, by source and name.
pub async fn signals(db: &Db, tenant: &Tenant, account_id: &str) -> sqlx::Result<Vec<SignalRecord>> {
    db.fetch_few(SIGNALS, &repo::keyed(account_id, tenant)).await
}

/// The signals of account `$1` of org `$2`, environment `$3`.
const SIGNALS: &str = "SELECT source, name, value, weight, observed_at FROM health_signals \
     WHERE account_id = $1 AND org_id = $2 AND env = $3 ORDER BY source, name";

async fn signals_in<'e>(
    executor: impl sqlx::Executor<'e, Database = Any>,
    tenant: &Tenant,
    account_id: &str,
) -> sqlx::Result<Vec<SignalRecord>> {
    sqlx::query_as(SIGNALS)
    .bind(account_id)
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .fetch_all(executor)
    .await
}

/// The last stored score before `start`, and the `(day, score)` points from `start` to
/// `end`, oldest first.
pub async fn days(
    db: &Db,
    tenant: &Tenant,
    account_id: &str,
    start: i64,
    end: i64,
) -> sqlx::Result<(Option<i64>, Vec<(i64, i64)>)> {
    let before: Option<DayRecord> = db
        .fetch_one_by_key(
            "SELECT day, score FROM health_score_days WHERE account_id = $1 AND org_id = $2 AND env = $3 AND day < $4 \
             ORDER BY day DESC LIMIT 1",
            &[account_id.into(), (&tenant.org_id).into(), tenant.env_str().into(), start.into()],
        )
        .await?;
    let points: Vec<DayRecord> = db
        .fetch_few(
            "SELECT day, score FROM health_score_days WHERE account_id = $1 AND org_id = $2 AND env = $3 \
             AND day >= $4 AND day <= $5 ORDER BY day",
            &[account_id.into(), (&tenant.org_id).into(), tenant.env_str().into(), start.into(), end.into()],
        )
        .await?;
    Ok((before.map(|b| b.score), points.into_iter().map(|p| (p.day, p.score)).collect()))
}

/// Claims the account's score row for this transaction, creating it (without a score)
/// if needed: concurrent pushes to one account queue here, so each recomputes from
/// every signal committed before it. On SQLite the write also takes the database's
/// write lock before anything is read.
async fn lock_score(tx: &mut Transaction<'static, Any>, tenant: &Tenant, account_id: &str, now: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO health_scores (account_id, org_id, env, score, computed_at, version, created_at, updated_at) \
         VALUES ($1, $2, $3, NULL, $4, 0, $4, $4) \
         ON CONFLICT (account_id) DO UPDATE SET version = health_scores.version",
    )
    .bind(account_id)
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Keeps `signal` as the latest of its (source, name) unless a later observation is
/// stored already.
async fn upsert_signal(tx: &mut Transaction<'static, Any>, tenant: &Tenant, account_id: &str, s: &Signal, now: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO health_signals (id, org_id, env, account_id, source, name, value, weight, observed_at, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
         ON CONFLICT (org_id, env, account_id, source, name) DO UPDATE \
         SET value = excluded.value, weight = excluded.weight, observed_at = excluded.observed_at, \
             updated_at = excluded.updated_at \
         WHERE health_signals.observed_at <= excluded.observed_at",
    )
    .bind(new_id("sig"))
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .bind(account_id)
    .bind(&s.source)
    .bind(&s.name)
    .bind(s.value)
    .bind(s.weight)
    .bind(s.observed_at)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn save_score(tx: &mut Transaction<'static, Any>, tenant: &Tenant, score: &HealthScore, now: i64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE health_scores SET score = $1, computed_at = $2, updated_at = $2, version = version + 1 \
         WHERE account_id = $3 AND org_id = $4 AND env = $5",
    )
    .bind(score.score)
    .bind(now)
    .bind(&score.account_id)
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .execute(&mut **tx)
    .await?;
    if let Some(value) = score.score {
        sqlx::query(
            "INSERT INTO health_score_days (account_id, day, org_id, env, score, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (account_id, day) DO UPDATE SET score = excluded.score, updated_at = excluded.updated_at",
        )
        .bind(&score.account_id)
        .bind(day_of(now))
        .bind(&tenant.org_id)
        .bind(tenant.env_str())
        .bind(value)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// One push, atomically: stores the signal, hands the score before and the latest
/// signals to `recompute`, and writes the score, today's point and the events it
/// returns.
pub async fn push(
    pool: &AnyPool,
    tenant: &Tenant,
    account_id: &str,
    signal: &Signal,
    now: i64,
    recompute: impl FnOnce(HealthScore, Vec<Signal>) -> (HealthDetail, Vec<Event>),
) -> sqlx::Result<HealthDetail> {
    let mut tx = pool.begin().await?;
    lock_score(&mut tx, tenant, account_id, now).await?;
    let trend_day = day_of(now) - crate::domain::health::TREND_DAYS * crate::domain::health::DAY_MS;
    let previous: ScoreRecord = sqlx::query_as(&format!("{SCORE_SELECT} WHERE a.id = $2 AND a.org_id = $3 AND a.env = $4"))
        .bind(trend_day)
        .bind(account_id)
        .bind(&tenant.org_id)
        .bind(tenant.env_str())
        .fetch_one(&mut *tx)
        .await?;
    upsert_signal(&mut tx, tenant, account_id, signal, now).await?;
    let signals = signals_in(&mut *tx, tenant, account_id).await?;
    let (detail, events) = recompute(previous.into(), signals.into_iter().map(Signal::from).collect());
    save_score(&mut tx, tenant, &detail.score, now).await?;
    super::events::insert(&mut tx, tenant, &events).await?;
    tx.commit().await?;
    Ok(detail)
}

/// Writes past daily points of an account's history that are not there yet (the demo
/// data set's 90 days; the API only ever writes today's point).
pub async fn backfill_days(pool: &AnyPool, tenant: &Tenant, account_id: &str, points: &[(i64, i64)]) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    for &(day, score) in points {
        sqlx::query(
            "INSERT INTO health_score_days (account_id, day, org_id, env, score, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account_id, day) DO NOTHING",
        )
        .bind(account_id)
        .bind(day)
        .bind(&tenant.org_id)
        .bind(tenant.env_str())
        .bind(score)
        .bind(day)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

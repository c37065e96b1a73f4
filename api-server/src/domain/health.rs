//! Account health: external tools push signals (a value from 0 to 100 with a weight);
//! the latest value of each (source, name) counts, and the score is the weight-weighted
//! mean of those values, rounded to a whole number. It is recomputed in the
//! transaction that stores a signal, together with the day's history point and the
//! events the change causes.

use breadbox_auth::db::now_ms;

use super::events::{Event, EventType};
use super::paging::{Page, PageRequest, Position};
use super::validate::Violations;
use super::{Crm, DomainError, Tenant};
use crate::repo;

/// A score at or above this is `HEALTHY`.
pub const HEALTHY_FROM: i64 = 70;
/// A score below this is `CRITICAL`; falling below it raises `health_score.alert`.
pub const ALERT_BELOW: i64 = 40;
pub const VALUE_MAX: i64 = 100;
pub const WEIGHT_MAX: i64 = 10;
/// How far in the future `observedAt` may lie (clock skew of the sender).
pub const FUTURE_SKEW_MS: i64 = 5 * 60 * 1000;
/// Days of history on a single score, today included.
pub const HISTORY_DAYS: i64 = 90;
/// The trend compares today's score with the score this many days ago.
pub const TREND_DAYS: i64 = 30;
pub const DAY_MS: i64 = 86_400_000;
pub(crate) const KEY_MAX: usize = 64;

named_enum!(
    /// Where a score stands.
    Band {
        Healthy => "HEALTHY",
        AtRisk => "AT_RISK",
        Critical => "CRITICAL",
    }
);

impl Band {
    pub fn of(score: i64) -> Band {
        if score >= HEALTHY_FROM {
            Band::Healthy
        } else if score >= ALERT_BELOW {
            Band::AtRisk
        } else {
            Band::Critical
        }
    }

    /// The scores of the band, inclusive.
    pub fn range(self) -> (i64, i64) {
        match self {
            Band::Healthy => (HEALTHY_FROM, 100),
            Band::AtRisk => (ALERT_BELOW, HEALTHY_FROM - 1),
            Band::Critical => (0, ALERT_BELOW - 1),
        }
    }
}

/// The midnight (UTC, Unix ms) of the day holding `ms`.
pub fn day_of(ms: i64) -> i64 {
    ms - ms.rem_euclid(DAY_MS)
}

/// One account's health as listed: none of the score fields until a signal arrives.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthScore {
    pub account_id: String,
    pub account_name: String,
    pub score: Option<i64>,
    /// The score `TREND_DAYS` ago (carried forward), when it had one then.
    pub score_before: Option<i64>,
    pub computed_at: Option<i64>,
    pub updated_at: Option<i64>,
    /// For paging: the account's creation time.
    pub account_created_at: i64,
}

impl HealthScore {
    pub fn band(&self) -> Option<Band> {
        self.score.map(Band::of)
    }

    /// Today's score minus the score `TREND_DAYS` ago.
    pub fn change(&self) -> Option<i64> {
        Some(self.score? - self.score_before?)
    }
}

/// The latest value of one signal of an account.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub source: String,
    pub name: String,
    pub value: f64,
    pub weight: f64,
    pub observed_at: i64,
}

/// A signal with its share of the score: `weight × value / Σ weights`, the points it
/// adds to the score before rounding.
#[derive(Debug, Clone, PartialEq)]
pub struct Contribution {
    pub signal: Signal,
    pub contribution: f64,
}

/// The score of one day (carried forward from the last day with a computation).
#[derive(Debug, Clone, PartialEq)]
pub struct DayPoint {
    /// Midnight UTC, Unix ms.
    pub day: i64,
    pub score: Option<i64>,
}

/// One account's score, its breakdown and (on a read) its daily history.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthDetail {
    pub score: HealthScore,
    pub signals: Vec<Contribution>,
    /// `HISTORY_DAYS` points, oldest first; empty when not asked for.
    pub history: Vec<DayPoint>,
}

/// A score change as its events carry it: the new state and the score before.
#[derive(Debug, Clone)]
pub struct ScoreChange {
    pub score: HealthScore,
    pub previous: Option<i64>,
}

/// Filters of the health-score list.
#[derive(Debug, Clone, Default)]
pub struct HealthFilter {
    pub band: Option<Band>,
}

/// A signal as pushed, before validation.
#[derive(Debug, Clone, Default)]
pub struct SignalInput {
    pub source: Option<String>,
    pub name: Option<String>,
    pub value: Option<f64>,
    pub weight: Option<f64>,
    /// RFC 3339 text, parsed by the caller into Unix ms (`Err` keeps the text invalid).
    pub observed_at: Option<Result<i64, ()>>,
}

/// The score from the latest values: the weight-weighted mean, rounded half away from
/// zero; none without signals.
pub fn score_of(signals: &[Signal]) -> Option<i64> {
    let total: f64 = signals.iter().map(|s| s.weight).sum();
    (total > 0.0).then(|| {
        let mean = signals.iter().map(|s| s.weight * s.value).sum::<f64>() / total;
        (mean.round() as i64).clamp(0, 100)
    })
}

pub fn breakdown(signals: Vec<Signal>) -> Vec<Contribution> {
    let total: f64 = signals.iter().map(|s| s.weight).sum();
    signals
        .into_iter()
        .map(|signal| {
            let share = if total > 0.0 { signal.weight * signal.value / total } else { 0.0 };
            Contribution { contribution: (share * 100.0).round() / 100.0, signal }
        })
        .collect()
}

/// The events of a score moving from `previous` to `change.score.score`.
pub fn events_of(change: &ScoreChange) -> Vec<Event> {
    let mut events = Vec::new();
    let Some(now) = change.score.score else { return events };
    if change.previous != Some(now) {
        events.push(Event::of(EventType::HealthScoreChanged, change));
    }
    if now < ALERT_BELOW && change.previous.is_none_or(|before| before >= ALERT_BELOW) {
        events.push(Event::of(EventType::HealthScoreAlert, change));
    }
    events
}

fn key(v: &mut Violations, field: &str, value: Option<String>) -> String {
    let Some(value) = value else {
        v.add(field, "is required");
        return String::new();
    };
    // Taken as sent (not trimmed): the spec documents the characters as a `pattern`
    // (`api::text::pattern::IDENTIFIER`), and a space is not one of them.
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
    if value.is_empty() || value.len() > KEY_MAX || !value.chars().all(valid) {
        v.add(field, format!("must be 1 to {KEY_MAX} letters, digits, '_', '-', '.' or ':'"));
    }
    value
}

/// Checks a pushed signal: every failing field is reported.
pub fn validate(input: SignalInput, now: i64) -> Result<Signal, DomainError> {
    let mut v = Violations::default();
    let source = key(&mut v, "source", input.source);
    let name = key(&mut v, "name", input.name);
    let value = match input.value {
        None => {
            v.add("value", "is required");
            0.0
        }
        Some(x) if x.is_finite() && (0.0..=VALUE_MAX as f64).contains(&x) => x,
        Some(_) => {
            v.add("value", format!("must be between 0 and {VALUE_MAX}"));
            0.0
        }
    };
    let weight = match input.weight {
        None => {
            v.add("weight", "is required");
            0.0
        }
        Some(x) if x.is_finite() && x > 0.0 && x <= WEIGHT_MAX as f64 => x,
        Some(_) => {
            v.add("weight", format!("must be greater than 0 and at most {WEIGHT_MAX}"));
            0.0
        }
    };
    let observed_at = match input.observed_at {
        None => {
            v.add("observedAt", "is required");
            0
        }
        Some(Err(())) => {
            v.add("observedAt", "must be an RFC 3339 time such as 2024-05-01T09:30:00Z");
            0
        }
        Some(Ok(ms)) if ms > now + FUTURE_SKEW_MS => {
            v.add("observedAt", "must not be in the future (5 minutes of clock skew are allowed)");
            0
        }
        Some(Ok(ms)) => ms,
    };
    v.finish(Signal { source, name, value, weight, observed_at })
}

pub async fn list(crm: &Crm, tenant: &Tenant, filter: &HealthFilter, page: &PageRequest) -> Result<Page<HealthScore>, DomainError> {
    let since = day_of(now_ms()) - TREND_DAYS * DAY_MS;
    let rows = repo::health::list(crm.db(), tenant, filter, page, since).await?;
    let scores = rows.into_iter().map(HealthScore::from).collect();
    Ok(Page::from_rows(scores, page, |s: &HealthScore| Position { created_at: s.account_created_at, id: s.account_id.clone() }))
}

/// The daily points of the `HISTORY_DAYS` ending today, carried forward from `before`
/// (the last point before the window) over days without a stored point.
pub fn daily(today: i64, before: Option<i64>, stored: &[(i64, i64)]) -> Vec<DayPoint> {
    let mut current = before;
    let mut stored = stored.iter().peekable();
    (0..HISTORY_DAYS)
        .map(|i| {
            let day = today - (HISTORY_DAYS - 1 - i) * DAY_MS;
            while let Some((_, score)) = stored.next_if(|(d, _)| *d <= day) {
                current = Some(*score);
            }
            DayPoint { day, score: current }
        })
        .collect()
}

pub async fn get(crm: &Crm, tenant: &Tenant, account_id: &str) -> Result<HealthDetail, DomainError> {
    let today = day_of(now_ms());
    let record = repo::health::get(crm.db(), tenant, account_id, today - TREND_DAYS * DAY_MS)
        .await?
        .ok_or(DomainError::NotFound("account"))?;
    let signals = repo::health::signals(crm.db(), tenant, account_id).await?;
    let start = today - (HISTORY_DAYS - 1) * DAY_MS;
    let (before, stored) = repo::health::days(crm.db(), tenant, account_id, start, today).await?;
    Ok(HealthDetail {
        score: record.into(),
        signals: breakdown(signals.into_iter().map(Signal::from).collect()),
        history: daily(today, before, &stored),
    })
}

/// Stores a signal (unless a later observation of the same signal is already stored),
/// recomputes the score, updates today's history point and records the events, all in
/// one transaction. Returns the score with its breakdown, without history.
pub async fn push(crm: &Crm, tenant: &Tenant, account_id: &str, input: SignalInput) -> Result<HealthDetail, DomainError> {
    if !repo::accounts::exists(crm.pool(), tenant, account_id).await? {
        return Err(DomainError::NotFound("account"));
    }
    let now = now_ms();
    let signal = validate(input, now)?;
    let recompute = |previous: HealthScore, signals: Vec<Signal>| {
        let score = HealthScore { score: score_of(&signals), computed_at: Some(now), updated_at: Some(now), ..previous.clone() };
        let change = ScoreChange { score: score.clone(), previous: previous.score };
        (HealthDetail { score, signals: breakdown(signals), history: Vec::new() }, events_of(&change))
    };
    Ok(repo::health::push(crm.writer(), tenant, account_id, &signal, now, recompute).await?)
}

/// Fills the days before today of an account's history with `scores` (oldest first,
/// ending yesterday), where no point exists: the demo data set's 90 days of history.
pub async fn backfill_history(crm: &Crm, tenant: &Tenant, account_id: &str, scores: &[i64]) -> Result<(), DomainError> {
    let today = day_of(now_ms());
    let days = scores.len() as i64;
    let points: Vec<(i64, i64)> =
        scores.iter().enumerate().map(|(i, &score)| (today - (days - i as i64) * DAY_MS, score.clamp(0, 100))).collect();
    repo::health::backfill_days(crm.writer(), tenant, account_id, &points).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(value: f64, weight: f64) -> Signal {
        Signal { source: "s".into(), name: "n".into(), value, weight, observed_at: 0 }
    }

    #[test]
    fn the_score_is_the_weighted_mean_rounded() {
        assert_eq!(score_of(&[]), None);
        assert_eq!(score_of(&[signal(80.0, 2.0), signal(50.0, 1.0)]), Some(70));
        assert_eq!(score_of(&[signal(39.5, 1.0)]), Some(40), "half rounds up");
        assert_eq!(Band::of(70), Band::Healthy);
        assert_eq!(Band::of(69), Band::AtRisk);
        assert_eq!(Band::of(39), Band::Critical);
        let parts = breakdown(vec![signal(80.0, 2.0), signal(50.0, 1.0)]);
        assert_eq!(parts.iter().map(|c| c.contribution).collect::<Vec<_>>(), [53.33, 16.67]);
    }

    #[test]
    fn history_carries_scores_forward() {
        let today = 100 * DAY_MS;
        let points = daily(today, Some(55), &[(today - 2 * DAY_MS, 60), (today, 30)]);
        assert_eq!(points.len() as i64, HISTORY_DAYS);
        let last: Vec<_> = points[points.len() - 4..].iter().map(|p| p.score).collect();
        assert_eq!(last, [Some(55), Some(60), Some(60), Some(30)]);
        assert_eq!(daily(today, None, &[])[0].score, None);
    }

    #[test]
    fn alerts_fire_when_entering_critical() {
        let at = |score, previous| ScoreChange {
            score: HealthScore {
                account_id: "acc".into(),
                account_name: "A".into(),
                score: Some(score),
                score_before: None,
                computed_at: None,
                updated_at: None,
                account_created_at: 0,
            },
            previous,
        };
        let kinds = |c: ScoreChange| events_of(&c).into_iter().map(|e| e.kind).collect::<Vec<_>>();
        assert!(kinds(at(50, Some(50))).is_empty(), "no change, no event");
        assert_eq!(kinds(at(39, Some(40))), [EventType::HealthScoreChanged, EventType::HealthScoreAlert]);
        assert_eq!(kinds(at(30, Some(39))), [EventType::HealthScoreChanged]);
        assert_eq!(kinds(at(20, None)), [EventType::HealthScoreChanged, EventType::HealthScoreAlert]);
    }
}

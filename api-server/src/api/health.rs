//! `/api/v1/health-scores`: account health from weighted external signals, with its
//! breakdown, 90-day history and 30-day trend.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::types::Example;
use poem_openapi::{Enum, Object, OpenApi};

use super::body::JsonBody;
use super::ranged::Number;
use super::text::{format, Text};
use super::params::{Limit, Time};
use super::paging::Listing;
use super::security::{Auth, HealthRead, HealthWrite, Scopes};
use super::wire::{to_wire, Body, IdempotencyKey, Required};
use super::ApiTags;
use crate::domain::events::Wire;
use crate::domain::health::{self as domain, HealthDetail, HealthFilter, ScoreChange, SignalInput};
use crate::domain::{Crm, Tenant};
use crate::envelope::{List, Single};
use crate::error::ApiError;
use crate::time::{parse_rfc3339, rfc3339};

/// Where a score stands: `HEALTHY` 70–100, `AT_RISK` 40–69, `CRITICAL` 0–39.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HealthBand {
    Healthy,
    AtRisk,
    Critical,
}

impl From<domain::Band> for HealthBand {
    fn from(b: domain::Band) -> Self {
        match b {
            domain::Band::Healthy => HealthBand::Healthy,
            domain::Band::AtRisk => HealthBand::AtRisk,
            domain::Band::Critical => HealthBand::Critical,
        }
    }
}

impl From<HealthBand> for domain::Band {
    fn from(b: HealthBand) -> Self {
        match b {
            HealthBand::Healthy => domain::Band::Healthy,
            HealthBand::AtRisk => domain::Band::AtRisk,
            HealthBand::Critical => domain::Band::Critical,
        }
    }
}

/// The score against the score 30 days ago.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Trend {
    Up,
    Down,
    Flat,
}

/// One signal's latest value and its share of the score.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct SignalContribution {
    /// The tool that sends the signal, e.g. `psa`.
    pub source: String,
    /// The signal, e.g. `ticket_sentiment`.
    pub name: String,
    /// The latest value, 0–100.
    pub value: f64,
    /// Its weight, above 0 and at most 10.
    pub weight: f64,
    /// When the latest value was observed.
    pub observed_at: String,
    /// The points it adds to the score: `weight × value / Σ weights`, to two decimals.
    pub contribution: f64,
}

/// The score of one UTC day: the last computation of that day, or carried forward.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct HistoryPoint {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    /// Null before the account's first signal.
    #[oai(nullable)]
    pub score: Option<i64>,
}

/// An account's health. All score fields are null until its first signal arrives.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase", example)]
#[serde(rename_all = "camelCase")]
pub struct HealthScore {
    /// The account, `acc_…`.
    pub account_id: String,
    pub account_name: String,
    /// 0–100: the weight-weighted mean of the latest value of each signal, rounded.
    #[oai(nullable)]
    pub score: Option<i64>,
    #[oai(nullable)]
    pub band: Option<HealthBand>,
    /// Null when the account had no score 30 days ago.
    #[oai(nullable)]
    pub trend: Option<Trend>,
    /// `score` minus the score 30 days ago; null when there is none.
    #[oai(nullable, rename = "scoreChange30d")]
    #[serde(rename = "scoreChange30d")]
    pub score_change_30d: Option<i64>,
    /// When the score was last computed (at every accepted signal).
    #[oai(nullable)]
    pub computed_at: Option<String>,
    /// The latest value of each signal, by source and name. Not in lists.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signals: Option<Vec<SignalContribution>>,
    /// One point per day for the last 90 days, oldest first, today last. On
    /// `GET /health-scores/{accountId}` only.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryPoint>>,
}

impl Example for HealthScore {
    fn example() -> Self {
        HealthScore {
            account_id: "acc_5Hq2vWZk3nR8yT1bC".into(),
            account_name: "Contoso Dental".into(),
            score: Some(70),
            band: Some(HealthBand::Healthy),
            trend: Some(Trend::Up),
            score_change_30d: Some(12),
            computed_at: Some("2024-07-02T16:20:45.000Z".into()),
            signals: Some(vec![
                SignalContribution {
                    source: "psa".into(),
                    name: "ticket_sentiment".into(),
                    value: 80.0,
                    weight: 2.0,
                    observed_at: "2024-07-02T16:20:00.000Z".into(),
                    contribution: 53.33,
                },
                SignalContribution {
                    source: "survey".into(),
                    name: "nps".into(),
                    value: 50.0,
                    weight: 1.0,
                    observed_at: "2024-06-28T09:00:00.000Z".into(),
                    contribution: 16.67,
                },
            ]),
            history: None,
        }
    }
}

fn date(day: i64) -> String {
    rfc3339(day).get(..10).unwrap_or_default().to_owned()
}

impl From<domain::HealthScore> for HealthScore {
    fn from(s: domain::HealthScore) -> Self {
        let change = s.change();
        HealthScore {
            band: s.band().map(Into::into),
            trend: change.map(|c| match c.signum() {
                1 => Trend::Up,
                -1 => Trend::Down,
                _ => Trend::Flat,
            }),
            score_change_30d: change,
            account_id: s.account_id,
            account_name: s.account_name,
            score: s.score,
            computed_at: s.score.and(s.computed_at).map(rfc3339),
            signals: None,
            history: None,
        }
    }
}

impl From<HealthDetail> for HealthScore {
    fn from(d: HealthDetail) -> Self {
        let signals = d
            .signals
            .into_iter()
            .map(|c| SignalContribution {
                source: c.signal.source,
                name: c.signal.name,
                value: c.signal.value,
                weight: c.signal.weight,
                observed_at: rfc3339(c.signal.observed_at),
                contribution: c.contribution,
            })
            .collect();
        let history = (!d.history.is_empty())
            .then(|| d.history.into_iter().map(|p| HistoryPoint { date: date(p.day), score: p.score }).collect());
        HealthScore { signals: Some(signals), history, ..HealthScore::from(d.score) }
    }
}

/// The data of `health_score.changed` and `health_score.alert`: the score as listed,
/// plus `previousScore` (null for an account's first score).
impl Wire for ScoreChange {
    fn wire(&self) -> serde_json::Value {
        let mut data = to_wire(HealthScore::from(self.score.clone()));
        if let Some(fields) = data.as_object_mut() {
            fields.insert("previousScore".to_owned(), self.previous.into());
        }
        data
    }
}

/// An observation of one signal of an account.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields, example)]
pub struct PushSignal {
    /// The sending tool: 1–64 letters, digits, `_ - . :`.
    pub source: Required<Text<{ crate::domain::health::KEY_MAX }, { format::IDENTIFIER }>>,
    /// The signal within the source: 1–64 letters, digits, `_ - . :`.
    pub name: Required<Text<{ crate::domain::health::KEY_MAX }, { format::IDENTIFIER }>>,
    /// 0 (worst) to 100 (best).
    pub value: Required<Number<0, { crate::domain::health::VALUE_MAX }>>,
    /// Above 0, at most 10.
    pub weight: Required<Number<0, { crate::domain::health::WEIGHT_MAX }, true>>,
    /// RFC 3339; at most 5 minutes in the future.
    pub observed_at: Required<Text<0, { format::DATE_TIME }>>,
}

impl Example for PushSignal {
    fn example() -> Self {
        PushSignal {
            source: Required(Some("psa".into())),
            name: Required(Some("ticket_sentiment".into())),
            value: Required(Some(Number(80.0))),
            weight: Required(Some(Number(2.0))),
            observed_at: Required(Some("2024-07-02T16:20:00Z".into())),
        }
    }
}

impl From<PushSignal> for SignalInput {
    fn from(b: PushSignal) -> Self {
        SignalInput {
            source: b.source.0.map(String::from),
            name: b.name.0.map(String::from),
            value: b.value.0.map(f64::from),
            weight: b.weight.0.map(f64::from),
            observed_at: b.observed_at.0.map(|t| parse_rfc3339(t.trim()).ok_or(())),
        }
    }
}

pub struct HealthApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Health")]
impl HealthApi {
    /// List health scores
    ///
    /// Every account, oldest first, with its current score, band and 30-day trend (all
    /// null until the account's first signal). Filter by `band` (accounts without a
    /// score never match) and by `updatedSince` (when the score was last computed).
    #[oai(path = "/health-scores", method = "get", operation_id = "list_health_scores")]
    async fn list_health_scores(
        &self,
        #[oai(scope = "Scopes::HealthRead")] auth: Auth<HealthRead>,
        Data(crm): Data<&Arc<Crm>>,
        /// Only accounts whose score is in this band.
        band: Query<Option<HealthBand>>,
        /// Page size, 1 to 100 (default 50).
        limit: Query<Option<Limit>>,
        /// `pagination.nextCursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Only scores computed at or after this RFC 3339 time.
        #[oai(name = "updatedSince")]
        updated_since: Query<Option<Time>>,
    ) -> Result<Body<List<HealthScore>>, ApiError> {
        let tenant = Tenant::from(&auth.principal);
        let listing = Listing::new(crm, "health-scores", &tenant);
        let page = listing.request(limit.0, cursor.0.as_deref(), updated_since.0)?;
        let filter = HealthFilter { band: band.0.map(Into::into) };
        let scores = domain::list(crm, &tenant, &filter, &page).await?;
        Ok(Body(listing.respond(scores, HealthScore::from)))
    }

    /// Get a health score
    ///
    /// The account's score with the breakdown of its signals and the 90-day daily
    /// history (each day's last score, carried forward over days without a signal).
    #[oai(path = "/health-scores/:accountId", method = "get", operation_id = "get_health_score")]
    async fn get_health_score(
        &self,
        #[oai(scope = "Scopes::HealthRead")] auth: Auth<HealthRead>,
        Data(crm): Data<&Arc<Crm>>,
        /// The account id, `acc_…`.
        #[oai(name = "accountId")]
        account_id: Path<String>,
    ) -> Result<Body<Single<HealthScore>>, ApiError> {
        let detail = domain::get(crm, &Tenant::from(&auth.principal), &account_id).await?;
        Ok(Body(Single::new(detail.into())))
    }

    /// Push a health signal
    ///
    /// Records the latest value of one signal of the account and recomputes its score
    /// (and today's history point) at once; answers with the score and its breakdown.
    /// An observation older than the stored one of the same `source` and `name` is
    /// ignored. Emits `health_score.changed` when the score changes and
    /// `health_score.alert` when it falls below 40.
    #[oai(path = "/health-scores/:accountId/signals", method = "post", operation_id = "push_health_signal")]
    async fn push_health_signal(
        &self,
        #[oai(scope = "Scopes::HealthWrite")] auth: Auth<HealthWrite>,
        /// Makes a retry safe: a retry with the same key and body gets the first answer again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<IdempotencyKey>>,
        Data(crm): Data<&Arc<Crm>>,
        /// The account id, `acc_…`.
        #[oai(name = "accountId")]
        account_id: Path<String>,
        body: JsonBody<PushSignal>,
    ) -> Result<Body<Single<HealthScore>>, ApiError> {
        let detail = domain::push(crm, &Tenant::from(&auth.principal), &account_id, body.0.into()).await?;
        Ok(Body(Single::new(detail.into())))
    }
}

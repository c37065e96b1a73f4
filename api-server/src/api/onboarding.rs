//! `/api/v1/onboarding/projects`: onboarding projects with their milestones and progress,
//! and the operators' `/api/v1/admin/onboarding-projects` that create them and complete
//! milestones.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::types::Example;
use poem_openapi::{Enum, Object, OpenApi};

use super::body::JsonBody;
use super::ranged::Items;
use super::text::{format, Text};
use super::params::{Limit, Time};
use super::paging::Listing;
use super::security::{AdminWrite, Auth, OnboardingRead, Scopes};
use super::memo;
use super::wire::{Body, Created, EnumText, Fetched, IdempotencyKey, ListHeader, NoneMatch, Required, Tagged};
use super::ApiTags;
use crate::domain::onboarding::{self as domain, MilestoneInput, NewProject, ProjectDetail, ProjectFilter};
use crate::domain::{Crm, Tenant, Versioned};
use crate::envelope::List;
use crate::error::ApiError;
use crate::time::rfc3339;

/// A project's state: no milestone complete, some, all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OnboardingStatus {
    NotStarted,
    InProgress,
    Completed,
}

impl From<OnboardingStatus> for domain::ProjectStatus {
    fn from(s: OnboardingStatus) -> Self {
        match s {
            OnboardingStatus::NotStarted => domain::ProjectStatus::NotStarted,
            OnboardingStatus::InProgress => domain::ProjectStatus::InProgress,
            OnboardingStatus::Completed => domain::ProjectStatus::Completed,
        }
    }
}

/// A milestone's state; `OVERDUE` is open past its due date (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MilestoneStatus {
    Pending,
    Overdue,
    Completed,
}

/// One step of an onboarding project.
#[derive(Debug, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct OnboardingMilestone {
    /// `ms_…`
    pub id: String,
    pub name: String,
    /// `YYYY-MM-DD`.
    #[oai(nullable)]
    pub due_date: Option<String>,
    #[oai(nullable)]
    pub completed_at: Option<String>,
    /// The API key (`key_…`) or OAuth client that completed it.
    #[oai(nullable)]
    pub completed_by: Option<String>,
    pub status: EnumText<MilestoneStatus>,
}

/// An onboarding project of one account.
#[derive(Debug, Object, serde::Serialize)]
#[oai(rename_all = "camelCase", example)]
#[serde(rename_all = "camelCase")]
pub struct OnboardingProject {
    /// `onb_…`
    pub id: String,
    /// `acc_…`
    pub account_id: String,
    pub name: String,
    pub status: EnumText<OnboardingStatus>,
    /// Completed milestones in percent, rounded down.
    pub progress_percent: i64,
    pub milestones_total: i64,
    pub milestones_completed: i64,
    /// `YYYY-MM-DD`.
    #[oai(nullable)]
    pub start_date: Option<String>,
    /// `YYYY-MM-DD`: the planned go-live.
    #[oai(nullable)]
    pub target_date: Option<String>,
    #[oai(nullable)]
    pub notes: Option<String>,
    /// In order. On single projects only, not in lists.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub milestones: Option<Vec<OnboardingMilestone>>,
    pub created_at: String,
    pub updated_at: String,
}

impl Example for OnboardingProject {
    fn example() -> Self {
        OnboardingProject {
            id: "onb_6Wn3kPz8qT2rX5mL".into(),
            account_id: "acc_5Hq2vWZk3nR8yT1bC".into(),
            name: "Contoso go-live".into(),
            status: "IN_PROGRESS".into(),
            progress_percent: 50,
            milestones_total: 2,
            milestones_completed: 1,
            start_date: Some("2024-06-03".into()),
            target_date: Some("2024-07-15".into()),
            notes: None,
            milestones: Some(vec![
                OnboardingMilestone {
                    id: "ms_2Lq7vXc4nB9sK1dR".into(),
                    name: "RMM agents deployed".into(),
                    due_date: Some("2024-06-14".into()),
                    completed_at: Some("2024-06-12T16:05:00.000Z".into()),
                    completed_by: Some("key_7Yc2mQ9vLx3pR8sT".into()),
                    status: "COMPLETED".into(),
                },
                OnboardingMilestone {
                    id: "ms_9Hf3tYw6mP2qZ8cV".into(),
                    name: "Backups verified".into(),
                    due_date: Some("2024-06-28".into()),
                    completed_at: None,
                    completed_by: None,
                    status: "PENDING".into(),
                },
            ]),
            created_at: "2024-06-03T10:00:00.000Z".into(),
            updated_at: "2024-06-12T16:05:00.000Z".into(),
        }
    }
}

impl From<domain::Project> for OnboardingProject {
    fn from(p: domain::Project) -> Self {
        OnboardingProject {
            progress_percent: p.progress(),
            id: p.id,
            account_id: p.account_id,
            name: p.name,
            status: p.status.as_str().into(),
            milestones_total: p.milestones_total,
            milestones_completed: p.milestones_completed,
            start_date: p.start_date,
            target_date: p.target_date,
            notes: p.notes,
            milestones: None,
            created_at: rfc3339(p.created_at),
            updated_at: rfc3339(p.updated_at),
        }
    }
}

impl From<ProjectDetail> for OnboardingProject {
    fn from(detail: ProjectDetail) -> Self {
        let today = domain::today();
        let milestones = detail
            .milestones
            .into_iter()
            .map(|m| OnboardingMilestone {
                status: m.status(&today).as_str().into(),
                id: m.id,
                name: m.name,
                due_date: m.due_date,
                completed_at: m.completed_at.map(rfc3339),
                completed_by: m.completed_by,
            })
            .collect();
        OnboardingProject { milestones: Some(milestones), ..OnboardingProject::from(detail.project) }
    }
}

/// A milestone of a new project.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields, skip_serializing_if_is_none)]
pub struct NewMilestone {
    /// 1–200 characters.
    pub name: Required<Text<{ crate::domain::onboarding::NAME_MAX }, { format::NON_BLANK }>>,
    /// `YYYY-MM-DD`.
    pub due_date: Option<Text<0, { format::DATE }>>,
}

/// A new onboarding project with its milestones, none complete yet.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields, skip_serializing_if_is_none, example)]
pub struct CreateOnboardingProject {
    /// An account (`acc_…`) of the same organization and environment.
    pub account_id: Required<Text>,
    /// 1–200 characters.
    pub name: Required<Text<{ crate::domain::onboarding::NAME_MAX }, { format::NON_BLANK }>>,
    /// `YYYY-MM-DD`.
    pub start_date: Option<Text<0, { format::DATE }>>,
    /// `YYYY-MM-DD`, not before `startDate`.
    pub target_date: Option<Text<0, { format::DATE }>>,
    pub notes: Option<Text<{ crate::domain::onboarding::NOTES_MAX }>>,
    /// In order.
    pub milestones: Required<Items<NewMilestone, 1, { crate::domain::onboarding::MILESTONES_MAX }>>,
}

impl Example for CreateOnboardingProject {
    fn example() -> Self {
        CreateOnboardingProject {
            account_id: Required(Some("acc_5Hq2vWZk3nR8yT1bC".into())),
            name: Required(Some("Contoso go-live".into())),
            start_date: Some("2024-06-03".into()),
            target_date: Some("2024-07-15".into()),
            notes: None,
            milestones: Required(Some(Items(vec![
                NewMilestone { name: Required(Some("RMM agents deployed".into())), due_date: Some("2024-06-14".into()) },
                NewMilestone { name: Required(Some("Backups verified".into())), due_date: Some("2024-06-28".into()) },
            ]))),
        }
    }
}

impl From<CreateOnboardingProject> for NewProject {
    fn from(b: CreateOnboardingProject) -> Self {
        NewProject {
            account_id: b.account_id.0.map(String::from),
            name: b.name.0.map(String::from),
            start_date: b.start_date.map(String::from),
            target_date: b.target_date.map(String::from),
            notes: b.notes.map(String::from),
            milestones: b
                .milestones
                .0
                .map(|ms| ms.into_iter().map(|m| MilestoneInput { name: m.name.0.map(String::from), due_date: m.due_date.map(String::from) }).collect()),
        }
    }
}

fn tagged(detail: ProjectDetail) -> Tagged<OnboardingProject> {
    let tag = detail.project.etag();
    Tagged::new(detail.into(), &tag)
}

pub struct OnboardingApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Onboarding")]
impl OnboardingApi {
    /// List onboarding projects
    ///
    /// Oldest first, a page at a time, with their progress but without milestones;
    /// filter by `accountId` and `status`, and by `updatedSince` for incremental sync.
    #[oai(path = "/onboarding/projects", method = "get", operation_id = "list_onboarding_projects")]
    #[allow(clippy::too_many_arguments)]
    async fn list_onboarding_projects(
        &self,
        #[oai(scope = "Scopes::OnboardingRead")] auth: Auth<OnboardingRead>,
        Data(crm): Data<&Arc<Crm>>,
        /// Only projects of this account.
        #[oai(name = "accountId")]
        account_id: Query<Option<String>>,
        /// Only projects in this status.
        status: Query<Option<OnboardingStatus>>,
        /// Page size, 1 to 100 (default 50).
        limit: Query<Option<Limit>>,
        /// `pagination.nextCursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Only projects changed at or after this RFC 3339 time.
        #[oai(name = "updatedSince")]
        updated_since: Query<Option<Time>>,
    ) -> Result<Body<List<OnboardingProject>>, ApiError> {
        let tenant = Tenant::from(&auth.principal);
        let listing = Listing::new(crm, "onboarding_projects", &tenant);
        let page = listing.request(limit.0, cursor.0.as_deref(), updated_since.0)?;
        let filter = ProjectFilter { account_id: account_id.0, status: status.0.map(Into::into) };
        let projects = domain::list(crm, &tenant, &filter, &page).await?;
        Ok(Body(listing.respond(projects, OnboardingProject::from)))
    }

    /// Get an onboarding project
    ///
    /// With its milestones in order and its progress.
    #[oai(path = "/onboarding/projects/:id", method = "get", operation_id = "get_onboarding_project")]
    async fn get_onboarding_project(
        &self,
        #[oai(scope = "Scopes::OnboardingRead")] auth: Auth<OnboardingRead>,
        Data(crm): Data<&Arc<Crm>>,
        /// The project id, `onb_…`.
        id: Path<String>,
        /// `ETag`s of versions the client holds: while one is current, the answer is a
        /// 304 without a body (compared weakly; `*` matches any version).
        #[oai(name = "If-None-Match")]
        if_none_match: ListHeader,
    ) -> Result<Fetched<OnboardingProject>, ApiError> {
        let held = NoneMatch::parse(if_none_match.0.as_deref())?;
        let tenant = Tenant::from(&auth.principal);
        memo::fetch(crm, "onboarding project", &tenant, &id, &held, async { Ok(tagged(domain::get(crm, &tenant, &id).await?)) }).await
    }

    /// Create an onboarding project
    ///
    /// For operators: a project of one account with its milestones.
    #[oai(path = "/admin/onboarding-projects", method = "post", operation_id = "create_onboarding_project")]
    async fn create_onboarding_project(
        &self,
        #[oai(scope = "Scopes::AdminWrite")] auth: Auth<AdminWrite>,
        /// Makes a retry safe: a retry with the same key and body gets the first answer again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<IdempotencyKey>>,
        Data(crm): Data<&Arc<Crm>>,
        body: JsonBody<CreateOnboardingProject>,
    ) -> Result<Created<OnboardingProject>, ApiError> {
        let detail = domain::create(crm, &Tenant::from(&auth.principal), body.0.into()).await?;
        let (location, tag) = (format!("/api/v1/onboarding/projects/{}", detail.project.id), detail.project.etag());
        Ok(Created::new(detail.into(), location, &tag))
    }

    /// Complete a milestone
    ///
    /// For operators: marks the milestone complete now, by the calling credential, and
    /// returns the project. Completing a completed milestone changes nothing.
    #[oai(
        path = "/admin/onboarding-projects/:id/milestones/:milestoneId/complete",
        method = "post",
        operation_id = "complete_onboarding_milestone"
    )]
    async fn complete_onboarding_milestone(
        &self,
        #[oai(scope = "Scopes::AdminWrite")] auth: Auth<AdminWrite>,
        /// Makes a retry safe: a retry with the same key and body gets the first answer again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<IdempotencyKey>>,
        Data(crm): Data<&Arc<Crm>>,
        /// The project id, `onb_…`.
        id: Path<String>,
        /// The milestone id, `ms_…`.
        #[oai(name = "milestoneId")]
        milestone_id: Path<String>,
    ) -> Result<Tagged<OnboardingProject>, ApiError> {
        let tenant = Tenant::from(&auth.principal);
        Ok(tagged(domain::complete(crm, &tenant, &id, &milestone_id, &auth.credential_id).await?))
    }
}

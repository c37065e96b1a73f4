//! Onboarding projects: bringing a new account under management, as an ordered list of
//! milestones. Operators create a project with its milestones and mark milestones
//! complete; the project's status and progress follow from them.

use breadbox_auth::db::now_ms;
use breadbox_auth::secret::new_id;

use super::compliance::date;
use super::paging::{Page, PageRequest, Position};
use super::validate::{self, Violations};
use super::{Crm, DomainError, Patch, Tenant};
use crate::repo;

pub(crate) const NAME_MAX: usize = 200;
pub(crate) const NOTES_MAX: usize = 10_000;
pub(crate) const MILESTONES_MAX: usize = 50;

named_enum!(
    /// A project's state, from its milestones: none complete, some, all.
    ProjectStatus {
        NotStarted => "NOT_STARTED",
        InProgress => "IN_PROGRESS",
        Completed => "COMPLETED",
    }
);

named_enum!(
    /// A milestone's state; `OVERDUE` is open past its due date (UTC).
    MilestoneStatus {
        Pending => "PENDING",
        Overdue => "OVERDUE",
        Completed => "COMPLETED",
    }
);

/// An onboarding project of one account.
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub status: ProjectStatus,
    pub milestones_total: i64,
    pub milestones_completed: i64,
    /// `YYYY-MM-DD`.
    pub start_date: Option<String>,
    /// `YYYY-MM-DD`: the planned go-live.
    pub target_date: Option<String>,
    pub notes: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

versioned!(Project);

impl Project {
    /// Completed milestones in percent, rounded down (100 only when all are done).
    pub fn progress(&self) -> i64 {
        if self.milestones_total == 0 {
            0
        } else {
            self.milestones_completed * 100 / self.milestones_total
        }
    }
}

/// One step of a project.
#[derive(Debug, Clone, PartialEq)]
pub struct Milestone {
    pub id: String,
    /// Order within the project, from 0.
    pub position: i64,
    pub name: String,
    /// `YYYY-MM-DD`.
    pub due_date: Option<String>,
    pub completed_at: Option<i64>,
    /// The credential that marked it complete.
    pub completed_by: Option<String>,
}

impl Milestone {
    /// Its state on `today` (`YYYY-MM-DD`).
    pub fn status(&self, today: &str) -> MilestoneStatus {
        match (&self.completed_at, &self.due_date) {
            (Some(_), _) => MilestoneStatus::Completed,
            (None, Some(due)) if due.as_str() < today => MilestoneStatus::Overdue,
            (None, _) => MilestoneStatus::Pending,
        }
    }
}

/// Today in UTC as `YYYY-MM-DD`, the date milestones are due against.
pub fn today() -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::OffsetDateTime::now_utc().date().format(&format).unwrap_or_default()
}

/// A project with its milestones in order.
#[derive(Debug, Clone)]
pub struct ProjectDetail {
    pub project: Project,
    pub milestones: Vec<Milestone>,
}

/// A milestone as sent.
#[derive(Debug, Clone)]
pub struct MilestoneInput {
    pub name: Option<String>,
    pub due_date: Option<String>,
}

/// A new project as sent.
#[derive(Debug, Clone, Default)]
pub struct NewProject {
    pub account_id: Option<String>,
    pub name: Option<String>,
    pub start_date: Option<String>,
    pub target_date: Option<String>,
    pub notes: Option<String>,
    pub milestones: Option<Vec<MilestoneInput>>,
}

/// Filters of the project list.
#[derive(Debug, Clone, Default)]
pub struct ProjectFilter {
    pub account_id: Option<String>,
    pub status: Option<ProjectStatus>,
}

pub async fn list(crm: &Crm, tenant: &Tenant, filter: &ProjectFilter, page: &PageRequest) -> Result<Page<Project>, DomainError> {
    let rows = repo::onboarding::list(crm.db(), tenant, filter, page).await?;
    let projects = rows.into_iter().map(Project::from).collect();
    Ok(Page::from_rows(projects, page, |p: &Project| Position { created_at: p.created_at, id: p.id.clone() }))
}

pub async fn get(crm: &Crm, tenant: &Tenant, id: &str) -> Result<ProjectDetail, DomainError> {
    let project = repo::onboarding::get(crm.db(), tenant, id)
        .await?
        .map(Project::from)
        .ok_or(DomainError::NotFound("onboarding project"))?;
    let milestones = repo::onboarding::milestones(crm.db(), tenant, id).await?;
    Ok(ProjectDetail { project, milestones: milestones.into_iter().map(Milestone::from).collect() })
}

fn milestones(v: &mut Violations, inputs: Option<Vec<MilestoneInput>>) -> Vec<Milestone> {
    let Some(inputs) = inputs else {
        v.add("milestones", "is required");
        return Vec::new();
    };
    if inputs.is_empty() || inputs.len() > MILESTONES_MAX {
        v.add("milestones", format!("must hold 1 to {MILESTONES_MAX} milestones"));
    }
    let mut out = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.into_iter().enumerate() {
        let mut name = String::new();
        match input.name {
            None => v.add(format!("milestones[{i}].name"), "is required"),
            Some(text) => validate::required_text(v, &format!("milestones[{i}].name"), Patch::Set(text), NAME_MAX, &mut name),
        }
        let mut due_date = None;
        date(v, &format!("milestones[{i}].dueDate"), Patch::from_option(input.due_date), &mut due_date);
        out.push(Milestone { id: new_id("ms"), position: i as i64, name, due_date, completed_at: None, completed_by: None });
    }
    out
}

/// Creates a project with 1 to 50 milestones, none complete; `accountId`, `name` and
/// `milestones` are required.
pub async fn create(crm: &Crm, tenant: &Tenant, new: NewProject) -> Result<ProjectDetail, DomainError> {
    let mut v = Violations::default();
    let account_id = match new.account_id.as_deref().map(str::trim) {
        None => {
            v.add("accountId", "is required");
            String::new()
        }
        Some("") => {
            v.add("accountId", "must not be empty");
            String::new()
        }
        Some(id) => id.to_owned(),
    };
    let mut name = String::new();
    match new.name {
        None => v.add("name", "is required"),
        Some(text) => validate::required_text(&mut v, "name", Patch::Set(text), NAME_MAX, &mut name),
    }
    let (mut start_date, mut target_date, mut notes) = (None, None, None);
    date(&mut v, "startDate", Patch::from_option(new.start_date), &mut start_date);
    date(&mut v, "targetDate", Patch::from_option(new.target_date), &mut target_date);
    if let (Some(start), Some(target)) = (&start_date, &target_date) {
        if target < start {
            v.add("targetDate", "must not be before startDate");
        }
    }
    validate::optional_text(&mut v, "notes", Patch::from_option(new.notes), NOTES_MAX, &mut notes);
    let milestones = milestones(&mut v, new.milestones);
    if !account_id.is_empty() && !repo::accounts::exists(crm.pool(), tenant, &account_id).await? {
        v.add("accountId", format!("no account {account_id} in this organization and environment"));
    }
    v.finish(())?;
    let now = now_ms();
    let project = Project {
        id: new_id("onb"),
        account_id,
        name,
        status: ProjectStatus::NotStarted,
        milestones_total: milestones.len() as i64,
        milestones_completed: 0,
        start_date,
        target_date,
        notes,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    repo::onboarding::insert(crm.writer(), tenant, &project, &milestones).await?;
    Ok(ProjectDetail { project, milestones })
}

/// Marks a milestone complete, by `actor`, and moves the project's status and progress
/// along. Completing a completed milestone changes nothing (its first completion stays).
pub async fn complete(crm: &Crm, tenant: &Tenant, project_id: &str, milestone_id: &str, actor: &str) -> Result<ProjectDetail, DomainError> {
    let detail = get(crm, tenant, project_id).await?;
    if !detail.milestones.iter().any(|m| m.id == milestone_id) {
        return Err(DomainError::NotFound("milestone"));
    }
    let now = now_ms().max(detail.project.updated_at);
    if detail.milestones.iter().any(|m| m.id == milestone_id && m.completed_at.is_some()) {
        return Ok(detail);
    }
    // False when a concurrent call completed it first: the answer is the same.
    repo::onboarding::complete(crm.writer(), tenant, project_id, milestone_id, actor, now).await?;
    get(crm, tenant, project_id).await
}

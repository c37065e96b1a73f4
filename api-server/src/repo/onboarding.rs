//! `onboarding_projects` and their `onboarding_milestones`.

use std::sync::LazyLock;

use sqlx::{AnyPool, FromRow};

use breadbox_auth::db::Db;

use crate::domain::onboarding::{Milestone, Project, ProjectFilter, ProjectStatus};
use crate::domain::paging::PageRequest;
use crate::domain::Tenant;
use crate::repo;

/// A row of `onboarding_projects`.
#[derive(Debug, Clone, FromRow, serde::Deserialize)]
pub struct ProjectRecord {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub status: String,
    pub milestones_total: i64,
    pub milestones_completed: i64,
    pub start_date: Option<String>,
    pub target_date: Option<String>,
    pub notes: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A row of `onboarding_milestones`.
#[derive(Debug, Clone, FromRow, serde::Deserialize)]
pub struct MilestoneRecord {
    pub id: String,
    pub position: i64,
    pub name: String,
    pub due_date: Option<String>,
    pub completed_at: Option<i64>,
    pub completed_by: Option<String>,
}

const COLUMNS: &str = "id, account_id, name, status, milestones_total, milestones_completed, start_date, target_date, \
                       notes, version, created_at, updated_at";

impl From<ProjectRecord> for Project {
    fn from(r: ProjectRecord) -> Self {
        // The CHECK constraint admits only known names.
        let status = ProjectStatus::parse(&r.status).unwrap_or_else(|| {
            tracing::error!(status = %r.status, "unknown onboarding status in database");
            ProjectStatus::InProgress
        });
        Project {
            id: r.id,
            account_id: r.account_id,
            name: r.name,
            status,
            milestones_total: r.milestones_total,
            milestones_completed: r.milestones_completed,
            start_date: r.start_date,
            target_date: r.target_date,
            notes: r.notes,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

impl From<MilestoneRecord> for Milestone {
    fn from(r: MilestoneRecord) -> Self {
        Milestone {
            id: r.id,
            position: r.position,
            name: r.name,
            due_date: r.due_date,
            completed_at: r.completed_at,
            completed_by: r.completed_by,
        }
    }
}

/// Inserts the project and its milestones, atomically.
pub async fn insert(pool: &AnyPool, tenant: &Tenant, p: &Project, milestones: &[Milestone]) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO onboarding_projects (id, org_id, env, account_id, name, status, milestones_total, \
         milestones_completed, start_date, target_date, notes, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&p.id)
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .bind(&p.account_id)
    .bind(&p.name)
    .bind(p.status.as_str())
    .bind(p.milestones_total)
    .bind(p.milestones_completed)
    .bind(&p.start_date)
    .bind(&p.target_date)
    .bind(&p.notes)
    .bind(p.version)
    .bind(p.created_at)
    .bind(p.updated_at)
    .execute(&mut *tx)
    .await?;
    for m in milestones {
        sqlx::query(
            "INSERT INTO onboarding_milestones (id, project_id, org_id, env, position, name, due_date, completed_at, \
             completed_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&m.id)
        .bind(&p.id)
        .bind(&tenant.org_id)
        .bind(tenant.env_str())
        .bind(m.position)
        .bind(&m.name)
        .bind(&m.due_date)
        .bind(m.completed_at)
        .bind(&m.completed_by)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

pub async fn get(db: &Db, tenant: &Tenant, id: &str) -> sqlx::Result<Option<ProjectRecord>> {
    static SQL: LazyLock<String> = LazyLock::new(|| repo::by_id_sql(COLUMNS, "onboarding_projects"));
    repo::by_id(db, &SQL, tenant, id).await
}

/// The milestones of a project, in order.
pub async fn milestones(db: &Db, tenant: &Tenant, project_id: &str) -> sqlx::Result<Vec<MilestoneRecord>> {
    db.fetch_few(
        "SELECT id, position, name, due_date, completed_at, completed_by FROM onboarding_milestones \
         WHERE project_id = $1 AND org_id = $2 AND env = $3 ORDER BY position",
        &repo::keyed(project_id, tenant),
    )
    .await
}

/// Up to `page.fetch()` projects after `page.after`, in `(created_at, id)` order.
pub async fn list(db: &Db, tenant: &Tenant, filter: &ProjectFilter, page: &PageRequest) -> sqlx::Result<Vec<ProjectRecord>> {
    static SQL: LazyLock<String> = LazyLock::new(|| repo::page_sql(COLUMNS, "onboarding_projects", &["account_id = {}", "status = {}"]));
    let filters = [filter.account_id.as_deref().into(), filter.status.map(ProjectStatus::as_str).into()];
    db.fetch_list(&SQL, &repo::page_params(tenant, &filters, page)).await
}

/// Marks an open milestone complete and counts it on its project (status, version and
/// `updated_at` too), atomically; false when the milestone was not open. The counter is
/// updated by expression, so concurrent completions of different milestones all count.
pub async fn complete(
    pool: &AnyPool,
    tenant: &Tenant,
    project_id: &str,
    milestone_id: &str,
    actor: &str,
    at: i64,
) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "UPDATE onboarding_milestones SET completed_at = $1, completed_by = $2 \
         WHERE id = $3 AND project_id = $4 AND org_id = $5 AND env = $6 AND completed_at IS NULL",
    )
    .bind(at)
    .bind(actor)
    .bind(milestone_id)
    .bind(project_id)
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    sqlx::query(
        "UPDATE onboarding_projects SET milestones_completed = milestones_completed + 1, \
         status = CASE WHEN milestones_completed + 1 >= milestones_total THEN 'COMPLETED' ELSE 'IN_PROGRESS' END, \
         version = version + 1, updated_at = CASE WHEN updated_at > $1 THEN updated_at ELSE $1 END \
         WHERE id = $2 AND org_id = $3 AND env = $4",
    )
    .bind(at)
    .bind(project_id)
    .bind(&tenant.org_id)
    .bind(tenant.env_str())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

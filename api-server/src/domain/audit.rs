//! Reading the audit log: the caller's own organization and environment, newest first.

use super::paging::{Page, PageRequest, Position};
use super::validate::Violations;
use super::{Crm, DomainError, Tenant};
use crate::audit::Entry;
use crate::repo;

/// What a list of the audit log is narrowed to.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub credential_id: Option<String>,
    pub status: Option<u16>,
    /// Unix ms, inclusive.
    pub from: Option<i64>,
    /// Unix ms, exclusive.
    pub to: Option<i64>,
}

impl AuditFilter {
    /// Checks a filter as asked: `status` an HTTP status, `from` before `to`.
    pub fn new(credential_id: Option<String>, status: Option<i64>, from: Option<i64>, to: Option<i64>) -> Result<Self, DomainError> {
        let mut v = Violations::default();
        let status = match status {
            None => None,
            Some(s) => match u16::try_from(s).ok().filter(|s| (100..=599).contains(s)) {
                Some(s) => Some(s),
                None => {
                    v.add("status", "must be an HTTP status between 100 and 599");
                    None
                }
            },
        };
        if let (Some(from), Some(to)) = (from, to) {
            if from >= to {
                v.add("to", "must be later than `from`");
            }
        }
        v.finish(AuditFilter { credential_id, status, from, to })
    }
}

/// One page of the tenant's entries, newest first.
pub async fn list(crm: &Crm, tenant: &Tenant, filter: &AuditFilter, page: &PageRequest) -> Result<Page<Entry>, DomainError> {
    let rows = repo::audit::list(crm.db().audit(), tenant, filter, page).await?;
    let page = Page::from_rows(rows, page, |r| Position { created_at: r.created_at, id: r.id.clone() });
    Ok(page.map(Entry::from))
}

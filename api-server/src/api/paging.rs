//! The query parameters every list takes (`limit`, `cursor`, `updatedSince`) and the list
//! envelope of a page. A malformed parameter is a 400 `bad_request`; a well-formed
//! `limit` outside 1–100 is a 422 naming it.

use poem_openapi::types::{ParseFromJSON, ToJSON};

use super::params::{Limit, Time};
use crate::domain::paging::{Page, PageRequest, Position, DEFAULT_LIMIT, MAX_LIMIT};
use crate::domain::{Crm, Tenant};
use crate::envelope::List;
use crate::error::{ApiError, FieldError};
use crate::time::parse_rfc3339;

/// One list of one caller: what its cursors are bound to.
pub struct Listing<'a> {
    crm: &'a Crm,
    /// The list's name, e.g. `accounts`: a cursor of one list is refused by another.
    name: &'static str,
    tenant: &'a Tenant,
}

impl<'a> Listing<'a> {
    pub fn new(crm: &'a Crm, name: &'static str, tenant: &'a Tenant) -> Self {
        Listing { crm, name, tenant }
    }

    /// Validates the paging parameters of a request.
    pub fn request(&self, limit: Option<Limit>, cursor: Option<&str>, updated_since: Option<Time>) -> Result<PageRequest, ApiError> {
        let updated_since = match updated_since {
            None => None,
            Some(time) => Some(parse_rfc3339(time.value.trim()).ok_or_else(|| {
                ApiError::bad_request("`updatedSince` must be an RFC 3339 time such as 2024-05-01T00:00:00Z")
            })?),
        };
        let after = match cursor {
            None => Position::start(),
            Some(text) => self.crm.cursors().decode(self.name, self.tenant, text)?,
        };
        let limit = match limit.map(|l| l.value) {
            None => DEFAULT_LIMIT,
            Some(n) if (1..=i64::from(MAX_LIMIT)).contains(&n) => n as u32,
            Some(_) => {
                return Err(ApiError::validation(vec![FieldError {
                    field: "limit".to_owned(),
                    issue: format!("must be between 1 and {MAX_LIMIT}"),
                }]))
            }
        };
        Ok(PageRequest { limit, after, updated_since })
    }

    /// The list envelope of `page`, its items shown with `show`.
    pub fn respond<D, T: ParseFromJSON + ToJSON>(&self, page: Page<D>, show: impl FnMut(D) -> T) -> List<T> {
        let next_cursor = page.next.as_ref().map(|at| self.crm.cursors().encode(self.name, self.tenant, at));
        List::page(page.items.into_iter().map(show).collect(), page.limit, next_cursor)
    }
}

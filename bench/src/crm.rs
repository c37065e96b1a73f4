//! The CRM scenarios: a detail GET, a list page of 100, and page 1 against page 10,000
//! of a large table. The accounts are written straight into the SQLite database (one
//! statement, a recursive CTE) because creating a million through the API would
//! measure the seeding, not the reads; the reads go through the real API.

use anyhow::Context;
use breadbox_api::domain::paging::{CursorKey, Position};
use breadbox_api::domain::Tenant;
use breadbox_auth::{AuthService, Environment};

/// Page size of the list scenarios (the API's maximum).
pub const PAGE: u64 = 100;
/// Share of the baseline's requests per second a detail GET must reach.
pub const DETAIL_TARGET: f64 = 0.50;
/// Page 10,000 may cost at most this many times page 1 (per request).
pub const DEEP_PAGE_BUDGET: f64 = 1.2;
/// `created_at` of the first seeded account; each next one is a millisecond later.
const EPOCH_MS: i64 = 1_700_000_000_000;

/// Paths of the CRM scenarios over the seeded table.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub rows: u64,
    /// `GET /api/v1/accounts/{id}` of one seeded account.
    pub detail: String,
    /// The first page of 100.
    pub first_page: String,
    /// The last page, `rows / 100`; page 10,000 with the default million rows.
    pub deep_page: String,
    /// The number of `deep_page`, from 1.
    pub deep_page_number: u64,
}

/// The id of the seeded account number `index` (from 0).
pub fn account_id(index: u64) -> String {
    format!("acc_bench{index:010}")
}

/// Inserts `rows` accounts (at least two pages) for `org_id` in the live environment
/// and returns the paths that read them.
pub async fn seed_accounts(service: &AuthService, org_id: &str, rows: u64) -> anyhow::Result<Seeded> {
    let rows = rows.max(2 * PAGE);
    let pool = service.db().pool();
    let rows_i64 = i64::try_from(rows).context("too many rows")?;
    sqlx::query(
        "INSERT INTO accounts (id, org_id, env, name, domain, industry, lifecycle, sites, primary_contact_id, \
         seats, notes, version, created_at, updated_at) \
         SELECT printf('acc_bench%010d', i), $1, 'live', 'Bench account ' || i, NULL, \
                CASE i % 3 WHEN 0 THEN 'Healthcare' WHEN 1 THEN 'Legal' ELSE 'Manufacturing' END, \
                'ACTIVE', '[{\"name\":\"HQ\",\"address\":\"1 Main St\"}]', NULL, 25 + i % 200, NULL, 1, $2 + i, $2 + i \
         FROM (WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $3) SELECT i FROM n)",
    )
    .bind(org_id)
    .bind(EPOCH_MS)
    .bind(rows_i64)
    .execute(pool)
    .await
    .context("seeding accounts")?;
    sqlx::query("ANALYZE").execute(pool).await.context("analyzing the seeded table")?;

    let deep_page_number = rows / PAGE;
    // Page n (from 1) starts after the last row of page n - 1.
    let after = (deep_page_number - 1) * PAGE - 1;
    let cursors = CursorKey::load(pool).await.context("loading the cursor key")?;
    let tenant = Tenant { org_id: org_id.to_owned(), env: Environment::Live };
    let position = Position { created_at: EPOCH_MS + i64::try_from(after)?, id: account_id(after) };
    let cursor = cursors.encode("accounts", &tenant, &position);
    Ok(Seeded {
        rows,
        detail: format!("/api/v1/accounts/{}", account_id(rows / 2)),
        first_page: format!("/api/v1/accounts?limit={PAGE}"),
        deep_page: format!("/api/v1/accounts?limit={PAGE}&cursor={cursor}"),
        deep_page_number,
    })
}

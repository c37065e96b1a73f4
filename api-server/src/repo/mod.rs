//! Queries of the CRM. Portable SQL through sqlx's `Any` driver (`$n` placeholders work
//! on both backends), `FromRow` records, `From<Record>` for the domain types. Every
//! query of a CRM table names the caller's `org_id` and `env`.

pub mod accounts;
pub mod audit;
pub mod compliance;
pub mod contacts;
pub mod contract_expiry;
pub mod contracts;
pub mod deals;
pub mod devices;
pub mod events;
pub mod health;
pub mod idempotency;
pub mod leads;
pub mod onboarding;
pub mod reconciliation;
pub mod secrets;
pub mod touchpoints;

use std::fmt::Write;

use sqlx::any::{AnyArguments, AnyQueryResult};
use sqlx::{Any, AnyPool, Transaction};

use breadbox_auth::db::{Backend, Db, Param};
use serde::de::DeserializeOwned;
use sqlx::any::AnyRow;
use sqlx::FromRow;

use crate::domain::paging::PageRequest;
use crate::domain::Tenant;

/// A bound statement of the `Any` driver.
pub(crate) type AnyQuery<'q> = sqlx::query::Query<'q, Any, AnyArguments<'q>>;

/// Begins a transaction and runs `query`, built and bound beforehand, as its first
/// statement: on SQLite the one writer is held from `begin` on, so nothing else is
/// done while it is.
pub(crate) async fn begin_with(pool: &AnyPool, query: AnyQuery<'_>) -> sqlx::Result<(Transaction<'static, Any>, AnyQueryResult)> {
    let mut tx = pool.begin().await?;
    let done = query.execute(&mut *tx).await?;
    Ok((tx, done))
}

/// The rows of a multi-row `VALUES`: `rows` groups of `width` parameters, bound in
/// order. SQLite gets anonymous `?`: sqlx's SQLite driver looks each numbered parameter
/// up by name, a scan of all of them, so binding a statement of thousands of `$n` costs
/// their square (it was a quarter of the server's time under load). PostgreSQL needs `$n`
/// (see `numbered_rows`).
pub fn values_rows(backend: Backend, rows: usize, width: usize) -> String {
    values_rows_after(backend, 0, rows, width)
}

/// As `values_rows`, in a statement whose first `after` parameters come before these
/// (written with `param`): on PostgreSQL the numbering starts at `$after+1`.
pub fn values_rows_after(backend: Backend, after: usize, rows: usize, width: usize) -> String {
    placeholder_rows(rows, width, (backend == Backend::Postgres).then_some(after))
}

/// Parameter `n` (from 1) of a statement whose other parameters come from
/// `values_rows_after`: `$n` on PostgreSQL, `?` on SQLite (bound in order).
pub fn param(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Postgres => format!("${n}"),
        Backend::Sqlite => "?".to_owned(),
    }
}

/// As `values_rows`, numbered `$after+1`, `$after+2` … on both backends: for a statement
/// of a few parameters, or one that follows numbered ones in the same query.
pub fn numbered_rows(after: usize, rows: usize, width: usize) -> String {
    placeholder_rows(rows, width, Some(after))
}

/// Rows per multi-row statement when a run of rows is split (`in_statements`): each
/// size is a statement text of its own, and a database prepares a text once per
/// connection and keeps it. A statement per run length instead meant a new text (and
/// SQLite parsing thousands of placeholders) nearly every time: two fifths of the audit
/// writer's instructions.
const STATEMENT_ROWS: [usize; 4] = [100, 25, 5, 1];

/// `items` cut into runs of the sizes of `STATEMENT_ROWS`, largest first, so that
/// multi-row statements over them come in four texts at most.
pub fn in_statements<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        let size = STATEMENT_ROWS.into_iter().find(|&size| size <= rest.len())?;
        let (run, after) = rest.split_at(size);
        rest = after;
        Some(run)
    })
}

/// `rows` groups of `width` placeholders: `?`, or `$n` numbered after `numbered_after`.
fn placeholder_rows(rows: usize, width: usize, numbered_after: Option<usize>) -> String {
    let mut sql = String::with_capacity(rows * width * 7);
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..width {
            if c > 0 {
                sql.push_str(", ");
            }
            match numbered_after {
                None => sql.push('?'),
                Some(after) => {
                    let _ = write!(sql, "${}", after + r * width + c + 1);
                }
            }
        }
        sql.push(')');
    }
    sql
}

/// The text `by_id` runs: `columns` of the tenant's row `$1` of `table`. Each module
/// builds it once (our column lists and table names, never input).
pub(crate) fn by_id_sql(columns: &str, table: &str) -> String {
    format!("SELECT {columns} FROM {table} WHERE id = $1 AND org_id = $2 AND env = $3")
}

/// The tenant's row `id`, by `sql` from `by_id_sql`: a primary-key read, which on
/// SQLite runs on the calling thread (`Db::fetch_one_by_key`).
pub(crate) async fn by_id<T>(db: &Db, sql: &str, tenant: &Tenant, id: &str) -> sqlx::Result<Option<T>>
where
    T: for<'r> FromRow<'r, AnyRow> + DeserializeOwned + Send + Unpin,
{
    db.fetch_one_by_key(sql, &keyed(id, tenant)).await
}

/// `$1` a key (a row's id, or its parent's), `$2` and `$3` the tenant.
pub(crate) fn keyed<'a>(key: &'a str, tenant: &'a Tenant) -> [Param<'a>; 3] {
    [key.into(), (&tenant.org_id).into(), tenant.env_str().into()]
}

/// The text of a list page: `columns` of the tenant's rows of `from` that pass every
/// filter of `filters` (a condition on `{}`, its parameter; a NULL parameter passes
/// every row), changed at or after `updatedSince`, after the cursor, in
/// `(created_at, id)` order. Parameters as `page_params` gives them. `columns`, `from`
/// and `filters` are ours, never input.
pub(crate) fn page_sql(columns: &str, from: &str, filters: &[&str]) -> String {
    let mut sql = format!("SELECT {columns} FROM {from} WHERE org_id = $1 AND env = $2");
    for (i, condition) in filters.iter().enumerate() {
        let param = format!("${}", i + 3);
        let _ = write!(sql, " AND ({param} IS NULL OR {})", condition.replace("{}", &param));
    }
    let n = filters.len() + 2;
    let _ = write!(
        sql,
        " AND (${since} IS NULL OR updated_at >= ${since}) AND (created_at, id) > (${at}, ${id}) \
         ORDER BY created_at, id LIMIT ${limit}",
        since = n + 1,
        at = n + 2,
        id = n + 3,
        limit = n + 4
    );
    sql
}

/// The parameters of a `page_sql` text: the tenant, `filters` in order, then the page's
/// `updatedSince`, cursor and size.
pub(crate) fn page_params<'a>(tenant: &'a Tenant, filters: &[Param<'a>], page: &'a PageRequest) -> Vec<Param<'a>> {
    let mut params = Vec::with_capacity(filters.len() + 6);
    params.extend([Param::from(&tenant.org_id), Param::from(tenant.env_str())]);
    params.extend_from_slice(filters);
    params.extend([
        Param::from(page.updated_since),
        Param::from(page.after.created_at),
        Param::from(&page.after.id),
        Param::from(page.fetch()),
    ]);
    params
}

/// Whether `table` holds the tenant's row `id`. `table` is one of our table names,
/// never input.
async fn exists_in(pool: &AnyPool, table: &'static str, tenant: &Tenant, id: &str) -> sqlx::Result<bool> {
    let row: Option<(String,)> = sqlx::query_as(&format!("SELECT id FROM {table} WHERE id = $1 AND org_id = $2 AND env = $3"))
        .bind(id)
        .bind(&tenant.org_id)
        .bind(tenant.env_str())
        .fetch_optional(pool)
        .await?;
    Ok(row.is_some())
}

/// Which of `ids` the tenant has in `table`, in one query. `table` is one of our table
/// names, never input.
async fn existing_in(
    pool: &AnyPool,
    backend: Backend,
    table: &'static str,
    tenant: &Tenant,
    ids: &[String],
) -> sqlx::Result<Vec<String>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT id FROM {table} WHERE {}", tenant_and_in(backend, "id", ids.len()));
    let mut query = sqlx::query_as(&sql).bind(&tenant.org_id).bind(tenant.env_str());
    for id in ids {
        query = query.bind(id);
    }
    let rows: Vec<(String,)> = query.fetch_all(pool).await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// `org_id = … AND env = … AND <column> IN (…)` with `count` values in the list, bound
/// in that order: `?` on SQLite, `$n` on PostgreSQL, as `values_rows` (a list of 500
/// numbered parameters costs SQLite a quadratic name lookup).
pub(crate) fn tenant_and_in(backend: Backend, column: &str, count: usize) -> String {
    format!(
        "org_id = {} AND env = {} AND {column} IN {}",
        param(backend, 1),
        param(backend, 2),
        values_rows_after(backend, 2, 1, count)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_cut_into_runs_of_four_sizes() {
        let runs = |n: usize| in_statements(&vec![0u8; n]).map(<[u8]>::len).collect::<Vec<_>>();
        assert_eq!(runs(0), Vec::<usize>::new());
        assert_eq!(runs(1), [1]);
        assert_eq!(runs(99), [25, 25, 25, 5, 5, 5, 5, 1, 1, 1, 1]);
        assert_eq!(runs(100), [100]);
        assert_eq!(runs(231), [100, 100, 25, 5, 1]);
        // Every item once, in order.
        let items: Vec<u32> = (0..1_234).collect();
        assert_eq!(in_statements(&items).flatten().copied().collect::<Vec<_>>(), items);
    }

    #[test]
    fn a_page_filters_by_tenant_each_filter_updated_since_and_cursor() {
        assert_eq!(
            page_sql("id, name", "accounts", &["lifecycle = {}", "industry = {}"]),
            "SELECT id, name FROM accounts WHERE org_id = $1 AND env = $2 \
             AND ($3 IS NULL OR lifecycle = $3) AND ($4 IS NULL OR industry = $4) \
             AND ($5 IS NULL OR updated_at >= $5) AND (created_at, id) > ($6, $7) \
             ORDER BY created_at, id LIMIT $8"
        );
        assert_eq!(
            page_sql("id", "t", &[]),
            "SELECT id FROM t WHERE org_id = $1 AND env = $2 AND ($3 IS NULL OR updated_at >= $3) \
             AND (created_at, id) > ($4, $5) ORDER BY created_at, id LIMIT $6"
        );
    }

    #[test]
    fn placeholders_number_on_postgres_and_stay_anonymous_on_sqlite() {
        assert_eq!(values_rows(Backend::Postgres, 2, 2), "($1, $2), ($3, $4)");
        assert_eq!(values_rows(Backend::Sqlite, 2, 2), "(?, ?), (?, ?)");
        assert_eq!(numbered_rows(3, 1, 2), "($4, $5)");
        assert_eq!(
            tenant_and_in(Backend::Postgres, "id", 3),
            "org_id = $1 AND env = $2 AND id IN ($3, $4, $5)"
        );
        assert_eq!(tenant_and_in(Backend::Sqlite, "id", 3), "org_id = ? AND env = ? AND id IN (?, ?, ?)");
    }
}

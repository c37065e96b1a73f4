//! Queries of the CRM. Portable SQL through sqlx's `Any` driver (`$n` placeholders work
//! on both backends), `FromRow` records, `From<Record>` for the domain types. Every
//! query of a CRM table names the caller's `org_id` and `env`.

pub mod accounts;
pub mod contacts;
pub mod deals;
pub mod secrets;

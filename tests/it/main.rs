//! Black-box tests over real HTTP against a spawned server, on SQLite and (when
//! `TEST_DATABASE_URL` is set) PostgreSQL.

mod accounts;
mod admin;
mod audit;
mod authn;
mod compliance;
mod conditional;
mod contacts;
mod contracts;
mod crm;
mod deals;
mod device_bulk;
mod devices;
mod encoding;
mod health;
mod idempotency;
mod jwt;
mod leads;
mod limits;
mod onboarding;
mod ops;
mod receiver;
mod reconciliation;
mod reread;
mod spec;
mod token;
mod touchpoints;
mod webhooks;

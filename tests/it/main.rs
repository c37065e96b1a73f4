//! Black-box tests over real HTTP against a spawned server, on SQLite and (when
//! `TEST_DATABASE_URL` is set) PostgreSQL.

mod accounts;
mod admin;
mod authn;
mod compliance;
mod contacts;
mod crm;
mod deals;
mod jwt;
mod leads;
mod limits;
mod onboarding;
mod ops;
mod spec;
mod token;

//! Black-box tests over real HTTP against a spawned server, on SQLite and (when
//! `TEST_DATABASE_URL` is set) PostgreSQL.

mod accounts;
mod admin;
mod authn;
mod contacts;
mod crm;
mod deals;
mod jwt;
mod limits;
mod ops;
mod receiver;
mod spec;
mod token;
mod webhooks;

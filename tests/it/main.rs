//! Black-box tests over real HTTP against a spawned server, on SQLite and (when
//! `TEST_DATABASE_URL` is set) PostgreSQL.

mod admin;
mod authn;
mod jwt;
mod limits;
mod ops;
mod spec;
mod token;

//! Queries. Portable SQL (`$n` placeholders work on both backends), `FromRow` records.

pub mod api_keys;
pub mod clients;
pub mod orgs;
pub mod revocations;
pub mod signing_keys;

//! Breadbox authorization server: OAuth 2.0 client credentials with RFC 9068 JWTs,
//! static API keys, and the `Authenticator` (`AuthService::authenticate`) that the
//! resource API uses in-process.

pub mod admin;
pub mod app;
pub mod authenticator;
pub mod config;
pub mod db;
pub mod http;
pub mod issuer;
pub mod jwt;
pub mod limits;
pub mod principal;
pub mod repo;
pub mod scope;
pub mod secret;
pub mod service;
pub mod sync;

pub use authenticator::{AuthError, UnauthorizedReason};
pub use config::AuthConfig;
pub use principal::{CredentialKind, Environment, Plan, Principal};
pub use scope::{Scope, ScopeSet};
pub use service::AuthService;

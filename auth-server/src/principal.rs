//! Who is calling: the result of authentication.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::scope::{Scope, ScopeSet};

/// The environment a credential and all the data it touches belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Live,
    Test,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Live => "live",
            Environment::Test => "test",
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Environment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "live" => Ok(Environment::Live),
            "test" => Ok(Environment::Test),
            other => Err(format!("unknown environment `{other}` (expected live or test)")),
        }
    }
}

/// The plan of an organization, which sets its rate limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    Starter,
    Growth,
    Scale,
    Pro,
}

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Starter => "starter",
            Plan::Growth => "growth",
            Plan::Scale => "scale",
            Plan::Pro => "pro",
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Plan {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "starter" => Ok(Plan::Starter),
            "growth" => Ok(Plan::Growth),
            "scale" => Ok(Plan::Scale),
            "pro" | "enterprise" => Ok(Plan::Pro),
            other => Err(format!("unknown plan `{other}` (expected starter, growth, scale or pro)")),
        }
    }
}

/// How the caller authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    ApiKey,
    OauthClient,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::ApiKey => "api_key",
            CredentialKind::OauthClient => "oauth_client",
        }
    }
}

/// An authenticated caller: one organization, one environment, the scopes it was
/// granted and the credential that proved it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub org_id: String,
    pub env: Environment,
    /// Scopes as granted; use [`Principal::allows`] for checks (it applies implications).
    pub scopes: ScopeSet,
    /// The API key id (`key_…`) or the OAuth client id.
    pub credential_id: String,
    pub kind: CredentialKind,
    /// The token's `jti` when the caller used a JWT.
    pub token_id: Option<String>,
}

impl Principal {
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.allows(scope)
    }
}

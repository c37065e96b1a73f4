//! The `breadbox` command line: `serve` and the admin commands. Every option also
//! reads an environment variable; defaults run on a fresh machine.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use breadbox_auth::app::LogFormat;
use breadbox_auth::AuthConfig;

use crate::webhooks::WebhookConfig;

#[derive(Debug, Parser)]
#[command(name = "breadbox", version, about = "Breadbox API platform: server and admin CLI")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command shares.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Log format: text for people, json for machines.
    #[arg(long, global = true, env = "BREADBOX_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Print results as JSON (admin commands), for scripts.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(flatten)]
    pub auth: AuthConfig,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the authorization server and the API on one port.
    Serve(ServeArgs),
    /// Manage organizations.
    Org(OrgArgs),
    /// Manage static API keys.
    Key(KeyArgs),
    /// Manage OAuth clients.
    Client(ClientArgs),
    /// Manage the token signing keys.
    SigningKey(SigningKeyArgs),
    /// Manage contracts (operators).
    Contract(ContractArgs),
    /// Manage webhook endpoints.
    Webhook(WebhookArgs),
    /// Print the OpenAPI document (needs no database).
    Openapi,
    /// Load a realistic demo data set into one organization and environment.
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The organization id.
    #[arg(long)]
    pub org: String,
    /// live or test.
    #[arg(long, default_value = "test")]
    pub env: String,
    /// Seed of the generator: the same seed gives the same data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "BREADBOX_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub webhooks: WebhookConfig,

    #[command(flatten)]
    pub common: Common,
}

impl ServeArgs {
    /// Defaults with a SQLite database under `data_dir`, listening on `listen`;
    /// webhooks as `WebhookConfig::for_tests` sets them.
    pub fn for_tests(listen: SocketAddr, auth: AuthConfig) -> ServeArgs {
        ServeArgs {
            listen,
            webhooks: WebhookConfig::for_tests(),
            common: Common { log_format: LogFormat::Text, json: false, auth },
        }
    }
}

#[derive(Debug, Args)]
pub struct OrgArgs {
    #[command(subcommand)]
    pub command: OrgCommand,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organization.
    Create {
        /// Its name.
        #[arg(long)]
        name: String,
        /// starter, growth, scale or pro (enterprise).
        #[arg(long, default_value = "starter")]
        plan: String,
    },
    /// List organizations.
    List,
    /// Change an organization's plan (takes effect without a restart).
    SetPlan {
        /// The organization id.
        id: String,
        /// starter, growth, scale or pro.
        #[arg(long)]
        plan: String,
    },
}

#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(subcommand)]
    pub command: KeyCommand,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a static key (printed once).
    Create {
        /// The organization id.
        #[arg(long)]
        org: String,
        /// live or test.
        #[arg(long, default_value = "live")]
        env: String,
        /// Space-separated scopes, e.g. "accounts:read devices:write".
        #[arg(long, conflicts_with = "preset", required_unless_present = "preset")]
        scopes: Option<String>,
        /// read_only (admin:read) or full_access (every scope of the table).
        #[arg(long)]
        preset: Option<String>,
        /// A name to recognise the key by.
        #[arg(long)]
        name: String,
    },
    /// List an organization's keys (never the keys themselves).
    List {
        /// The organization id.
        #[arg(long)]
        org: String,
    },
    /// Revoke a key (every instance refuses it within seconds).
    Revoke {
        /// The key id (`key_…`).
        id: String,
    },
    /// Replace a key with a new one; the old one works until the grace period ends.
    Rotate {
        /// The key id (`key_…`).
        id: String,
        /// How long the old key keeps working, e.g. 24h, 30m (default: none).
        #[arg(long, default_value = "0s")]
        grace: String,
    },
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    #[command(subcommand)]
    pub command: ClientCommand,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create an OAuth client (the secret is printed once).
    Create {
        /// The organization id.
        #[arg(long)]
        org: String,
        /// live or test.
        #[arg(long, default_value = "live")]
        env: String,
        /// Space-separated scopes the client may request.
        #[arg(long)]
        scopes: String,
        /// A name to recognise the client by.
        #[arg(long)]
        name: String,
    },
    /// List an organization's clients.
    List {
        /// The organization id.
        #[arg(long)]
        org: String,
    },
    /// Give a client a new secret (printed once); the old one stops working.
    RotateSecret {
        /// The client id (`cli_…`).
        id: String,
    },
    /// Disable a client: no new tokens, and its tokens are refused.
    Disable {
        /// The client id (`cli_…`).
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct SigningKeyArgs {
    #[command(subcommand)]
    pub command: SigningKeyCommand,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Subcommand)]
pub enum SigningKeyCommand {
    /// Start signing with a new key; old tokens verify until they expire.
    Rotate,
}

#[derive(Debug, Args)]
pub struct ContractArgs {
    #[command(subcommand)]
    pub command: ContractCommand,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Subcommand)]
pub enum ContractCommand {
    /// Create a contract from a JSON file: the body of `POST /api/v1/admin/contracts`.
    Create {
        /// The organization id.
        #[arg(long)]
        org: String,
        /// live or test.
        #[arg(long, default_value = "live")]
        env: String,
        /// The contract as JSON (accountId, name, startDate, serviceLines, …).
        #[arg(long)]
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct WebhookArgs {
    #[command(subcommand)]
    pub command: WebhookCommand,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Register an endpoint (its signing secret is printed once).
    Create {
        /// The organization id.
        #[arg(long)]
        org: String,
        /// live or test.
        #[arg(long, default_value = "live")]
        env: String,
        /// Where to POST events (http or https).
        #[arg(long)]
        url: String,
        /// Comma-separated event types, or `*` for all.
        #[arg(long, default_value = "*")]
        events: String,
        /// What the endpoint is for.
        #[arg(long)]
        description: Option<String>,
        /// Accept loopback and private URLs (as `serve --webhook-allow-*` would).
        #[arg(long)]
        allow_private: bool,
    },
    /// List an organization's endpoints.
    List {
        /// The organization id.
        #[arg(long)]
        org: String,
        /// live or test.
        #[arg(long, default_value = "live")]
        env: String,
    },
    /// Delete an endpoint and its deliveries.
    Delete {
        /// The organization id.
        #[arg(long)]
        org: String,
        /// live or test.
        #[arg(long, default_value = "live")]
        env: String,
        /// The endpoint id (`we_…`).
        id: String,
    },
    /// Give an endpoint a new secret (printed once); the old one signs too for 24 h.
    RotateSecret {
        /// The organization id.
        #[arg(long)]
        org: String,
        /// live or test.
        #[arg(long, default_value = "live")]
        env: String,
        /// The endpoint id (`we_…`).
        id: String,
    },
    /// Enable or disable an endpoint.
    SetEnabled {
        /// The organization id.
        #[arg(long)]
        org: String,
        /// live or test.
        #[arg(long, default_value = "live")]
        env: String,
        /// The endpoint id (`we_…`).
        id: String,
        /// true or false.
        #[arg(long, action = clap::ArgAction::Set)]
        enabled: bool,
    },
    /// Queue a `webhook.test` event for an endpoint.
    Test {
        /// The organization id.
        #[arg(long)]
        org: String,
        /// live or test.
        #[arg(long, default_value = "live")]
        env: String,
        /// The endpoint id (`we_…`).
        id: String,
    },
}

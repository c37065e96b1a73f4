//! Running the authorization server alone (`breadbox-auth`), and the process plumbing
//! both binaries share: logging and shutdown signals.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use poem::listener::{Acceptor, AcceptorExt, Listener, TcpListener};
use poem::{EndpointExt, Route, Server};
use tokio::sync::watch;

use crate::config::AuthConfig;
use crate::service::AuthService;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the tracing subscriber (`RUST_LOG` filters; default `info`). Logs go to
/// stderr: stdout carries what a command prints (`--json` output for scripts, the
/// first-run banner), which a log line must never interleave.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Resolves when the process receives SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// `breadbox-auth`: the authorization server alone, for scale-out deployments where
/// token issuance runs apart from the resource API on a shared PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "breadbox-auth", version, about)]
pub struct AuthCli {
    /// Address to listen on.
    #[arg(long, env = "BREADBOX_AUTH_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,

    /// Log format: text for people, json for machines.
    #[arg(long, env = "BREADBOX_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub auth: AuthConfig,
}

/// The standalone authorization server, bound and ready to run.
pub struct AuthApplication {
    port: u16,
    service: Arc<AuthService>,
    acceptor: poem::listener::BoxAcceptor,
}

impl AuthApplication {
    pub async fn build(cli: AuthCli) -> anyhow::Result<AuthApplication> {
        let acceptor = TcpListener::bind(cli.listen).into_acceptor().await?;
        let port = acceptor
            .local_addr()
            .first()
            .and_then(|addr| addr.as_socket_addr().map(|a| a.port()))
            .unwrap_or(cli.listen.port());
        let default_issuer = format!("http://{}:{port}", cli.listen.ip());
        let service = AuthService::start(cli.auth, default_issuer).await?;
        Ok(AuthApplication { port, service, acceptor: acceptor.boxed() })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let background = self.service.spawn_background(stop_rx);
        let app = crate::http::attach(Route::new())
            .data(self.service.clone())
            .with(crate::http::RateLimitGate(self.service.clone()))
            .with(poem::middleware::Tracing);
        tracing::info!(port = self.port, issuer = self.service.issuer(), "authorization server listening");
        Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(app, shutdown_signal(), Some(std::time::Duration::from_secs(10)))
            .await?;
        let _ = stop_tx.send(true);
        let _ = background.await;
        self.service.db().close().await;
        Ok(())
    }
}

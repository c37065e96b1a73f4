//! Breadbox resource API (poem-openapi), the all-in-one server and the admin CLI.

#[macro_use]
mod macros;

pub mod alloc;
pub mod api;
pub mod app;
pub mod audit;
pub mod bootstrap;
pub mod cli;
pub mod compression;
pub mod config;
pub mod demo;
pub mod domain;
pub mod envelope;
pub mod error;
pub mod idempotency;
pub mod inline;
pub mod middleware;
pub mod ops;
pub mod repo;
pub mod request_id;
pub mod time;
pub mod webhooks;

pub use app::Application;

use breadbox_auth::app::init_logging;
use config::Command;

/// Runs one command of the `breadbox` binary.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            init_logging(args.common.log_format);
            let app = Application::build(args.clone()).await?;
            let base = format!("http://{}:{}", args.listen.ip(), app.port());
            bootstrap::first_run(app.service(), &base).await?;
            app.run_until_stopped().await
        }
        Command::Org(args) => {
            init_logging(args.common.log_format);
            cli::org(args.command, args.common).await
        }
        Command::Key(args) => {
            init_logging(args.common.log_format);
            cli::key(args.command, args.common).await
        }
        Command::Client(args) => {
            init_logging(args.common.log_format);
            cli::client(args.command, args.common).await
        }
        Command::SigningKey(args) => {
            init_logging(args.common.log_format);
            cli::signing_key(args.command, args.common).await
        }
        Command::Demo(args) => {
            init_logging(args.common.log_format);
            cli::demo(args).await
        }
        Command::Contract(args) => {
            init_logging(args.common.log_format);
            cli::contract(args.command, args.common).await
        }
        Command::Webhook(args) => {
            init_logging(args.common.log_format);
            cli::webhook(args.command, args.common).await
        }
        Command::Openapi => {
            println!("{}", api::spec_json());
            Ok(())
        }
    }
}

use clap::Parser;

use breadbox_api::config::Cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    breadbox_api::run(cli.command).await
}

use clap::Parser;

/// mimalloc: glibc malloc was an eighth of the request path in profiles.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use breadbox_api::config::Cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    breadbox_api::run(cli.command).await
}

use clap::Parser;

/// mimalloc, for what each allocation asks (`breadbox_api::alloc`).
#[global_allocator]
static GLOBAL: breadbox_api::alloc::Allocator = breadbox_api::alloc::Allocator;

use breadbox_api::config::Cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    breadbox_api::run(cli.command).await
}

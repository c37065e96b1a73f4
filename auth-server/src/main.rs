use breadbox_auth::app::{init_logging, AuthApplication, AuthCli};
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = AuthCli::parse();
    init_logging(cli.log_format);
    AuthApplication::build(cli).await?.run_until_stopped().await
}

//! `retain serve`: the HTTP API and the dashboard over a workspace.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Workspace directory.
    #[arg(long, env = "RETAIN_DIR")]
    pub dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Operational store URL (sqlite://PATH or postgres://USER@HOST/DB); defaults to the
    /// workspace's `retain.toml`.
    #[arg(long, env = "RETAIN_DATABASE")]
    pub database: Option<String>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let rt = super::runtime()?;
    rt.block_on(async {
        let state =
            retain_server::AppState::open_with_store(&args.dir, args.database.as_deref()).await?;
        retain_server::serve(state, &args.addr).await?;
        anyhow::Ok(())
    })
}

//! `retain serve`: the HTTP API over a workspace.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Workspace directory.
    #[arg(long, env = "RETAIN_DIR")]
    pub dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let rt = super::runtime()?;
    rt.block_on(async {
        let state = retain_server::AppState::open(&args.dir).await?;
        retain_server::serve(state, &args.addr).await?;
        anyhow::Ok(())
    })
}

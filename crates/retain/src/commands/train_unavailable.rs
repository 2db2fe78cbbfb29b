//! `retain train` and `retain score` in a build without the churn model.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Workspace directory.
    #[arg(long, env = "RETAIN_DIR")]
    pub dir: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub horizon: u32,
    #[arg(long, default_value_t = 3)]
    pub gap: u32,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ScoreArgs {
    /// Workspace directory.
    #[arg(long, env = "RETAIN_DIR")]
    pub dir: PathBuf,
    #[arg(long)]
    pub as_of: Option<String>,
    #[arg(long)]
    pub json: bool,
}

const UNAVAILABLE: &str = "this retain was built without the churn model: build with `--features model` \
     (LightGBM needs clang, libclang-dev and CMake >= 3.28; `.ci/run` shows how to install them)";

pub(crate) fn run(_: &Args) -> anyhow::Result<()> {
    anyhow::bail!(UNAVAILABLE)
}

pub(crate) fn score(_: &ScoreArgs) -> anyhow::Result<()> {
    anyhow::bail!(UNAVAILABLE)
}

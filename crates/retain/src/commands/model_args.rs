//! Arguments of `retain train` and `retain score`, whether or not the build has the model.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Workspace directory.
    #[arg(long, env = "RETAIN_DIR")]
    pub dir: PathBuf,
    /// Churn counted when it takes effect within this many months of a snapshot.
    #[arg(long, default_value_t = 1)]
    pub horizon: u32,
    /// Months of suspension before a cancellation (倒追 gap).
    #[arg(long, default_value_t = 3)]
    pub gap: u32,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ScoreArgs {
    /// Workspace directory.
    #[arg(long, env = "RETAIN_DIR")]
    pub dir: PathBuf,
    /// Score as of this date; defaults to the month after the last loaded one.
    #[arg(long)]
    pub as_of: Option<String>,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

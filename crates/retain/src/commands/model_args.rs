//! Arguments of `retain train` and `retain score`, whether or not the build has the model.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Workspace directory.
    #[arg(long, env = "RETAIN_DIR")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub engine: super::cluster::EngineArg,
    /// Churn counted when it takes effect within this many months of a snapshot.
    #[arg(long, default_value_t = 1)]
    pub horizon: u32,
    /// Months of suspension before a cancellation (倒追 gap).
    #[arg(long, default_value_t = 3)]
    pub gap: u32,
    /// Rolling time backtest: retrain as of each of the last N snapshots and test on it.
    #[arg(long, default_value_t = 0)]
    pub backtest: usize,
    /// Train on a fixed hash sample of about this many subscribers when the operator has more
    /// (every snapshot uses the same ones). Scoring always covers everyone.
    #[arg(long, default_value_t = 300_000)]
    pub max_subscribers: u64,
    /// Train even though FEATURE moved between the test month and what scoring will see by a
    /// population stability index above 0.25 (refused otherwise, as a train/serve skew);
    /// repeat it for several, or give `all`.
    #[arg(long = "accept-shift", value_name = "FEATURE")]
    pub accept_shift: Vec<String>,
    /// Train without a group of features: `network` leaves out those reading the network's
    /// experience, the home cell and the calling circle (to measure what they add).
    #[arg(long = "without", value_name = "GROUP")]
    pub without: Vec<String>,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    /// A training of a workspace with the command's defaults, on the engine the process chose.
    pub(crate) fn defaults(dir: &std::path::Path) -> Args {
        Args {
            dir: dir.to_path_buf(),
            engine: super::cluster::EngineArg::default(),
            horizon: 1,
            gap: 3,
            backtest: 0,
            max_subscribers: 300_000,
            accept_shift: Vec::new(),
            without: Vec::new(),
            json: false,
        }
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct ScoreArgs {
    /// Workspace directory.
    #[arg(long, env = "RETAIN_DIR")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub engine: super::cluster::EngineArg,
    /// Score as of this date; defaults to the month after the last loaded one.
    #[arg(long)]
    pub as_of: Option<String>,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// `retain model`: the workspace's registry of models, and the churn model on tables other than
/// a workspace's.
#[derive(Debug, clap::Args)]
pub(crate) struct ModelArgs {
    #[command(subcommand)]
    pub command: ModelCommand,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ModelCommand {
    /// Train and evaluate on any churn table (CSV or Parquet) with the default recipe: types
    /// inferred, categories detected, missing values handled.
    Eval(EvalArgs),
    /// Every saved version with its test metrics, the champion, and the history of promotions
    /// and rollbacks.
    List(ListArgs),
    /// Make an earlier version the champion again: by default the one the current champion
    /// replaced. Recorded in the history.
    Rollback(RollbackArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// Workspace directory.
    #[arg(long, env = "RETAIN_DIR")]
    pub dir: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct RollbackArgs {
    /// Workspace directory.
    #[arg(long, env = "RETAIN_DIR")]
    pub dir: PathBuf,
    /// The version to make champion (`retain model list` shows them).
    #[arg(long)]
    pub to: Option<u32>,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct EvalArgs {
    /// Training table (CSV or Parquet).
    #[arg(long)]
    pub train: PathBuf,
    /// Test table with the same columns; without it, `--split` of the training table is held
    /// out (stratified by the target).
    #[arg(long)]
    pub test: Option<PathBuf>,
    /// Share of the training table held out for testing when there is no `--test`.
    #[arg(long, default_value_t = 0.3)]
    pub split: f64,
    /// Seed of the split and of the validation rows.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The churn column: two values, yes/no, true/false, 1/0 or any two (the rarer is churn).
    #[arg(long)]
    pub target: String,
    /// A row id column, never used as a feature, written into `--predictions`.
    #[arg(long)]
    pub id: Option<String>,
    /// Write `id,label,probability` of every test row to this CSV file.
    #[arg(long)]
    pub predictions: Option<PathBuf>,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

//! `retain`: precision retention for telecom operators.
//!
//! The binary is thin glue: clap structs, logging, and calls into the library crates. Reporting
//! commands print one JSON object on stdout with `--json`; logs always go to stderr.

mod commands;
mod output;

use std::process::ExitCode;

/// Loads allocate and free millions of small values across threads, where glibc's allocator
/// spent a third of the time; mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

/// Precision retention for telecom operators (精准维系): find the subscribers about to leave,
/// understand why, and keep the valuable ones at the lowest cost.
#[derive(Debug, Parser)]
#[command(name = "retain", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Synthesize an operator, load it, run every stage and summarize (the first thing to try).
    Demo(commands::demo::Args),
    /// Write a synthetic operator's export (canonical CSV files) and its hidden truth.
    Synth(commands::synth::Args),
    /// Validate and load operator files into a workspace table.
    Ingest(commands::ingest::Args),
    /// Churn early warning: score every subscriber with the rules, write the red/yellow/blue
    /// list, or backtest the rules on history.
    Warn(commands::warn::Args),
    /// Point-in-time features of every subscriber, or a labelled training set over snapshots.
    Features(commands::features::Args),
    /// Train a challenger churn model on labelled snapshots, evaluate it on the latest one and
    /// promote it if it beats the champion there.
    Train(commands::train::Args),
    /// Score every subscriber with the champion churn model: probability, decile, top reasons,
    /// and drift from the champion's test month.
    Score(commands::train::ScoreArgs),
    /// The workspace's model registry (`retain model list`, `retain model rollback`) and the
    /// churn model on any churn table (`retain model eval`).
    Model(commands::model_args::ModelArgs),
    /// Segmentation: RFM, lifetime value, lifecycle stage, named clusters, scenario groups.
    Segment(commands::segment::Args),
    /// Group customers (集团客户): group warning with reasons, value, segments and the
    /// account managers' visit plans.
    Groups(commands::groups::Args),
    /// Account managers' and branches' results (考核): retention of their base, visits against
    /// plan, work orders, callbacks and saved value.
    Managers(commands::groups::ManagersArgs),
    /// Give a cluster a name of your own (used by the next `retain segment`).
    RenameCluster(commands::segment::RenameArgs),
    /// Customer 360: profile, usage, events, warnings, segments, value and contacts of one
    /// subscriber.
    Customer(commands::customer::Args),
    /// Offer matching (政策适配): the best retention offer and channel for every at-risk
    /// subscriber under a budget, checked by the verifier; `--offer ID` lists who an offer
    /// serves best.
    Match(commands::offers::MatchArgs),
    /// Real-time decision for one subscriber (id or msisdn): ranked offers with reasons and a
    /// talking point, under the contact policy.
    Decide(commands::offers::DecideArgs),
    /// The offer library (维系政策库) in use.
    Offers(commands::offers::OffersArgs),
    /// Campaigns (四步一库): create from the plan library, rehearse, approve, launch as work
    /// orders, record callbacks, evaluate against the control group.
    Campaign(commands::campaign::Args),
    /// Win-back (挽回): the subscribers who left in the last months, how they left, their
    /// value and whether they can be reached; the list as CSV and xlsx under `winback/`.
    Winback(commands::campaign::WinbackArgs),
    /// The HTTP API and the dashboard over a workspace (docs/api.md).
    Serve(commands::serve::Args),
    /// Users: `retain user add --name N --role R --password-stdin`, `retain user list`.
    User(commands::user::Args),
    /// Select a target group by a tag expression.
    Target(commands::target::Args),
    /// Show a workspace: tables, recent runs and headline numbers.
    Status(commands::status::Args),
    /// Print the canonical data model as Markdown.
    Schema,
    /// Write a workspace and its SQLite store to one archive (备份).
    Backup(commands::backup::BackupArgs),
    /// Restore an archive `retain backup` wrote into a new directory (恢复).
    Restore(commands::backup::RestoreArgs),
    /// The workspace's schedule (调度): `retain schedule init`, `list`, `runs`.
    Schedule(commands::schedule::Args),
    /// Run the scheduled jobs that are due, once (for cron or a systemd timer; `retain serve`
    /// runs them itself).
    Cycle(commands::schedule::CycleArgs),
    /// Run the closed loop on a synthetic operator for some months: the scheduler, the
    /// learning offers and the world reacting to them, against fixed priors, random offers and
    /// an oracle.
    Simulate(commands::simulate::Args),
    /// An Apache Ballista cluster for the analytic steps: `retain cluster scheduler`,
    /// `retain cluster executor` (docs/cluster.md).
    Cluster(commands::cluster::Args),
}

impl Command {
    /// Whether the command is a batch step over the whole operator: one process that runs a
    /// while and ends, rather than one that serves or answers quickly.
    fn is_batch(&self) -> bool {
        matches!(
            self,
            Command::Synth(_)
                | Command::Ingest(_)
                | Command::Warn(_)
                | Command::Features(_)
                | Command::Train(_)
                | Command::Score(_)
                | Command::Model(_)
                | Command::Segment(_)
                | Command::Groups(_)
                | Command::Match(_)
                | Command::Cycle(_)
                | Command::Simulate(_)
        )
    }
}

/// mimalloc's options for a batch step, each unless the variable is set already:
///
/// - `MIMALLOC_PURGE_DELAY=-1` keeps the memory it frees. By default mimalloc returns memory
///   unused for a second, and a batch step's engine frees and allocates large buffers all the
///   time: at ten million subscribers the kernel then spent a third of `retain features`
///   zeroing pages handed back and taken again (198 s; 138 s keeping them). A batch step ends
///   soon after its peak, so keeping what it freed costs no memory it did not already use.
/// - `MIMALLOC_ALLOW_THP=0` maps its memory in ordinary pages. With transparent huge pages the
///   kernel zeroes (and may first compact) two megabytes at each first touch of a huge page,
///   whatever the step then uses of it: fitting IBM Telco's model took 42–62 ms (median 47)
///   with them and 42–46 ms (median 43) without, the synthetic operator's 16.2–16.4 s instead
///   of 17.0–17.8 s, and `retain features` on 100,000 subscribers peaked 100–280 MB lower.
const BATCH_ALLOCATOR: [(&str, &str); 2] =
    [("MIMALLOC_PURGE_DELAY", "-1"), ("MIMALLOC_ALLOW_THP", "0")];

/// Runs this process again with [`BATCH_ALLOCATOR`]'s options: mimalloc reads its options
/// before `main`, so only a new process can change them. `retain serve` keeps the defaults.
#[cfg(unix)]
fn tune_allocator() {
    use std::os::unix::process::CommandExt;
    let unset: Vec<(&str, &str)> = BATCH_ALLOCATOR
        .into_iter()
        .filter(|(name, _)| std::env::var_os(name).is_none())
        .collect();
    if unset.is_empty() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let error = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .envs(unset)
        .exec();
    // `exec` returns only when it failed; the step runs here with the defaults instead.
    tracing::debug!(%error, "could not run again with the batch allocator options");
}

#[cfg(not(unix))]
fn tune_allocator() {}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RETAIN_LOG")
        // Ballista's client logs every query it sends at info.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,ballista_core=warn"));
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_target(false);
    // One JSON object per line for log collectors (RETAIN_LOG_FORMAT=json); text otherwise.
    if std::env::var("RETAIN_LOG_FORMAT").is_ok_and(|f| f == "json") {
        logs.json().flatten_event(true).init();
    } else {
        logs.init();
    }
    let cli = Cli::parse();
    if cli.command.is_batch() {
        tune_allocator();
    }
    let result = match cli.command {
        Command::Demo(args) => commands::demo::run(&args),
        Command::Simulate(args) => commands::simulate::run(&args),
        Command::Synth(args) => commands::synth::run(&args),
        Command::Ingest(args) => commands::ingest::run(&args),
        Command::Status(args) => commands::status::run(&args),
        Command::Backup(args) => commands::backup::backup(&args),
        Command::Restore(args) => commands::backup::restore(&args),
        Command::Warn(args) => commands::warn::run(&args),
        Command::Segment(args) => commands::segment::run(&args),
        Command::Features(args) => commands::features::run(&args),
        Command::Train(args) => commands::train::run(&args),
        Command::Score(args) => commands::train::score(&args),
        Command::Model(args) => commands::train::model(&args),
        Command::Customer(args) => commands::customer::run(&args),
        Command::Target(args) => commands::target::run(&args),
        Command::Match(args) => commands::offers::run_match(&args),
        Command::Campaign(args) => commands::campaign::run(&args),
        Command::Winback(args) => commands::campaign::winback(&args),
        Command::User(args) => commands::user::run(&args),
        Command::Serve(args) => commands::serve::run(&args),
        Command::Decide(args) => commands::offers::decide(&args),
        Command::Offers(args) => commands::offers::list(&args),
        Command::RenameCluster(args) => commands::segment::rename(&args),
        Command::Groups(args) => commands::groups::run(&args),
        Command::Managers(args) => commands::groups::managers(&args),
        Command::Cluster(args) => commands::cluster::run(&args),
        Command::Schedule(args) => commands::schedule::run(&args),
        Command::Cycle(args) => commands::schedule::cycle(&args),
        Command::Schema => {
            output::print_text(&retain_data::data_model_markdown());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            output::print_error(&error);
            ExitCode::FAILURE
        }
    }
}

//! `retain cluster scheduler|executor`, and the engine setting of the analytic commands.

use std::path::PathBuf;

use retain_cluster::{EngineUrl, ExecutorOptions, SchedulerOptions};
use retain_data::Workspace;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ClusterCommand {
    /// Run an Apache Ballista scheduler: analytic commands given `--engine ballista://HOST:PORT`
    /// send it their plans, and it runs them on its executors.
    Scheduler(SchedulerArgs),
    /// Run an Apache Ballista executor for a scheduler. Every executor must read the workspace's
    /// tables at the same path as the client (a shared filesystem).
    Executor(ExecutorArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct SchedulerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:50050")]
    pub bind: String,
    /// Host name executors and clients reach the scheduler by, when not the bound address.
    #[arg(long)]
    pub external_host: Option<String>,
    /// Seconds without a heartbeat before an executor is taken for dead and its tasks run
    /// elsewhere.
    #[arg(long, default_value_t = 60)]
    pub executor_timeout: u64,
    /// Times a task is tried before its job fails.
    #[arg(long, default_value_t = 4)]
    pub task_max_failures: usize,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ExecutorArgs {
    /// The scheduler's address.
    #[arg(long, default_value = "127.0.0.1:50050")]
    pub scheduler: String,
    /// Address of the executor's data service; its task service listens on the next port.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub bind: String,
    /// Port of the task service, when not the data service's port + 1.
    #[arg(long)]
    pub grpc_port: Option<u16>,
    /// Host name the scheduler and other executors reach this executor by, when not the bound
    /// address.
    #[arg(long)]
    pub external_host: Option<String>,
    /// Tasks run at once (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub concurrent_tasks: usize,
    /// Directory for shuffle files (a temporary one by default).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Seconds between heartbeats to the scheduler (keep well under its --executor-timeout).
    #[arg(long, default_value_t = 10)]
    pub heartbeat: u64,
    /// Memory its tasks may hold before spilling, in MiB (a share of the machine's by default).
    #[arg(long)]
    pub memory_mib: Option<u64>,
}

/// The engine option of every analytic command.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct EngineArg {
    /// Where the analytic plans run: `embedded` (this process) or `ballista://HOST:PORT` (a
    /// `retain cluster scheduler`). Defaults to `[engine] url` in retain.toml, else embedded.
    #[arg(long, env = "RETAIN_ENGINE")]
    pub engine: Option<String>,
    /// On a cluster, the longest a step may run, in seconds. A job whose stage stops making
    /// progress (an executor lost at the wrong moment can leave the scheduler waiting for ever)
    /// then fails with this error instead of hanging; what the step writes is replaced only at
    /// its end, so nothing is half-written.
    #[arg(long, env = "RETAIN_ENGINE_TIMEOUT", default_value_t = DEFAULT_ENGINE_TIMEOUT)]
    pub engine_timeout: u64,
}

/// Six hours: far beyond any step measured (a 10M cycle's longest step takes minutes).
const DEFAULT_ENGINE_TIMEOUT: u64 = 6 * 3600;

impl Default for EngineArg {
    fn default() -> Self {
        Self {
            engine: None,
            engine_timeout: DEFAULT_ENGINE_TIMEOUT,
        }
    }
}

/// Set when the process turns from a batch step into a server (`retain demo --serve`): the
/// step's deadline no longer applies.
static STEP_DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Ends the step's deadline on a cluster.
pub(crate) fn step_done() {
    STEP_DONE.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Fails the process when the step is still running after `seconds`.
fn arm_deadline(seconds: u64) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("engine-deadline".into())
        .spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(seconds));
            if STEP_DONE.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            eprintln!(
                "error: the step did not finish on the cluster within {seconds} s: a stage \
                 stopped making progress (an executor lost mid-stage?) or the step needs longer \
                 (--engine-timeout); nothing it writes was replaced"
            );
            std::process::exit(1);
        })?;
    Ok(())
}

impl EngineArg {
    /// Runs this process's analytic plans on the engine chosen for `workspace`.
    pub(crate) fn apply(&self, workspace: &Workspace) -> anyhow::Result<EngineUrl> {
        let url: EngineUrl = match &self.engine {
            Some(url) => url.parse()?,
            None => workspace.config().engine.url.parse().map_err(|e| {
                anyhow::anyhow!(
                    "{}: [engine] url: {e}",
                    workspace.root().join(retain_data::CONFIG_FILE).display()
                )
            })?,
        };
        retain_cluster::connect(&url)?;
        if url != EngineUrl::Embedded {
            tracing::info!(engine = %url, "analytic plans run on the cluster");
            if self.engine_timeout == 0 {
                anyhow::bail!("--engine-timeout must be at least one second");
            }
            arm_deadline(self.engine_timeout)?;
        }
        Ok(url)
    }
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    // Ballista plans are deep trees walked recursively: its own binaries give every thread a
    // 32 MiB stack.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 * 1024 * 1024)
        .build()?;
    match &args.command {
        ClusterCommand::Scheduler(a) => {
            let options = SchedulerOptions {
                bind: a.bind.clone(),
                external_host: a.external_host.clone(),
                executor_timeout_seconds: a.executor_timeout,
                task_max_failures: a.task_max_failures,
            };
            rt.block_on(retain_cluster::run_scheduler(&options))?;
        }
        ClusterCommand::Executor(a) => {
            let options = ExecutorOptions {
                scheduler: a.scheduler.clone(),
                bind: a.bind.clone(),
                grpc_port: a.grpc_port,
                external_host: a.external_host.clone(),
                concurrent_tasks: a.concurrent_tasks,
                work_dir: a.work_dir.clone(),
                heartbeat_seconds: a.heartbeat,
                memory_bytes: a.memory_mib.map(|m| m.saturating_mul(1024 * 1024)),
            };
            rt.block_on(retain_cluster::run_executor(&options))?;
        }
    }
    Ok(())
}

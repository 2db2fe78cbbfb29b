//! `retain schedule` (the workspace's schedule and its runs) and `retain cycle` (run what is
//! due once); the steps the scheduler runs, here because they are the commands' own.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use retain_data::{IngestOptions, Table, Workspace};
use retain_schedule::{
    Attempt, Clock, CycleReport, FakeClock, Job, Outcome, Schedule, Scheduler, Step, Steps,
    SystemClock, delivery,
};
use retain_store::{CampaignStatus, Store};
use serde::Serialize;

use crate::output;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    pub sub: Sub,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Sub {
    /// Write the default schedule to <dir>/schedule.toml (weekly and monthly cycles).
    Init {
        #[arg(long, env = "RETAIN_DIR")]
        dir: PathBuf,
        /// Replace a schedule that is there already.
        #[arg(long)]
        force: bool,
    },
    /// The jobs, when each runs next and how its last run ended.
    List {
        #[arg(long, env = "RETAIN_DIR")]
        dir: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Run one job now, whatever its schedule says: an attempt with a slot of its own (now),
    /// under the job's lease; the schedule goes on as before.
    Run {
        #[arg(long, env = "RETAIN_DIR")]
        dir: PathBuf,
        /// The job's name in the schedule.
        #[arg(long)]
        job: String,
        #[command(flatten)]
        engine: super::cluster::EngineArg,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The latest runs of the scheduled jobs, newest first.
    Runs {
        #[arg(long, env = "RETAIN_DIR")]
        dir: PathBuf,
        /// Only this job's runs.
        #[arg(long)]
        job: Option<String>,
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct CycleArgs {
    /// Workspace directory.
    #[arg(long, env = "RETAIN_DIR")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub engine: super::cluster::EngineArg,
    /// Run as if it were this time (RFC 3339): to replay a day's schedule, or in tests.
    #[arg(long, hide = true)]
    pub at: Option<DateTime<Utc>>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The schedule of a workspace, or an error saying how to make one.
fn schedule_of(workspace: &Workspace) -> anyhow::Result<Schedule> {
    let path = workspace.root().join(retain_schedule::FILE);
    Schedule::load(&path)?.with_context(|| {
        format!(
            "{} does not exist: `retain schedule init --dir {}` writes the default schedule",
            path.display(),
            workspace.root().display()
        )
    })
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    match &args.sub {
        Sub::Init { dir, force } => {
            let workspace = Workspace::create_or_open(dir)?;
            let path = workspace.root().join(retain_schedule::FILE);
            if path.exists() && !force {
                anyhow::bail!(
                    "{} exists; --force replaces it with the default",
                    path.display()
                );
            }
            retain_data::write_atomically(&path, retain_schedule::DEFAULT.as_bytes())?;
            output::print_text(&format!(
                "wrote {}; `retain serve` runs it, or `retain cycle` from cron",
                path.display()
            ));
            Ok(())
        }
        Sub::List { dir, json } => {
            let workspace = Workspace::open(dir)?;
            let schedule = schedule_of(&workspace)?;
            let rt = super::runtime()?;
            let store = rt.block_on(Store::connect(&workspace.store_url()))?;
            let scheduler = Scheduler {
                store: &store,
                schedule: &schedule,
                clock: Arc::new(SystemClock),
                holder: retain_schedule::holder_name(),
            };
            let jobs = rt.block_on(scheduler.states())?;
            if *json {
                return output::print_json(&serde_json::json!({
                    "timezone": schedule.timezone.name(),
                    "jobs": jobs,
                }));
            }
            let tz = schedule.timezone;
            let mut text = format!("schedule ({})\n", tz.name());
            for j in &jobs {
                let next = j.next_run.map_or_else(
                    || "-".to_owned(),
                    |t| t.with_timezone(&tz).format("%F %R").to_string(),
                );
                let last = j.last.as_ref().map_or_else(String::new, |l| {
                    format!(
                        "last {} {}",
                        l.status.code(),
                        l.started_at.with_timezone(&tz).format("%F %R")
                    )
                });
                let _ = writeln!(
                    text,
                    "  {:<18} {:<9} {:<16} next {:<16} {}{}",
                    j.job,
                    j.step.code(),
                    j.cron,
                    next,
                    last,
                    if j.enabled { "" } else { " (disabled)" }
                );
            }
            output::print_text(&text);
            Ok(())
        }
        Sub::Run {
            dir,
            job,
            engine,
            json,
        } => {
            let workspace = Workspace::open(dir)?;
            engine.apply(&workspace)?;
            let schedule = schedule_of(&workspace)?;
            let rt = super::runtime()?;
            let url = workspace.store_url();
            let store = rt.block_on(Store::connect(&url))?;
            let clock = Arc::new(SystemClock);
            let report = with_scheduler(
                &rt,
                &store,
                &url,
                &workspace,
                &schedule,
                clock,
                |s, steps| s.run_now(&rt, steps, job),
            )?;
            if *json {
                return output::print_json(&report);
            }
            let status = report
                .status
                .map_or("busy: it is running elsewhere", |s| s.code());
            output::print_text(&format!(
                "{job}: {status}{}",
                report
                    .error
                    .as_deref()
                    .map(|e| format!("\n  {e}"))
                    .unwrap_or_default()
            ));
            Ok(())
        }
        Sub::Runs {
            dir,
            job,
            limit,
            json,
        } => {
            let workspace = Workspace::open(dir)?;
            let rt = super::runtime()?;
            let store = rt.block_on(Store::connect(&workspace.store_url()))?;
            let runs = rt.block_on(store.job_runs(job.as_deref(), *limit))?;
            if *json {
                return output::print_json(&serde_json::json!({ "runs": runs }));
            }
            let mut text = String::new();
            for r in &runs {
                let _ = writeln!(
                    text,
                    "#{:<5} {:<18} slot {} attempt {} {:<9} {}",
                    r.id,
                    r.job,
                    r.slot.format("%F %RZ"),
                    r.attempt,
                    r.status.code(),
                    r.error.as_deref().unwrap_or("")
                );
            }
            output::print_text(if text.is_empty() {
                "no runs yet\n"
            } else {
                &text
            });
            Ok(())
        }
    }
}

pub(crate) fn cycle(args: &CycleArgs) -> anyhow::Result<()> {
    let workspace = Workspace::open(&args.dir)?;
    args.engine.apply(&workspace)?;
    let schedule = schedule_of(&workspace)?;
    let rt = super::runtime()?;
    let url = workspace.store_url();
    let store = rt.block_on(Store::connect(&url))?;
    let clock: Arc<dyn Clock> = match args.at {
        Some(t) => Arc::new(FakeClock::new(t)),
        None => Arc::new(SystemClock),
    };
    let report = run_cycle(&rt, &store, &url, &workspace, &schedule, clock)?;
    if args.json {
        return output::print_json(&report);
    }
    output::print_text(&describe(&report, &schedule));
    Ok(())
}

/// One cycle over a workspace with retain's steps.
pub(crate) fn run_cycle(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    store_url: &str,
    workspace: &Workspace,
    schedule: &Schedule,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<CycleReport> {
    with_scheduler(
        rt,
        store,
        store_url,
        workspace,
        schedule,
        clock,
        |s, steps| s.cycle(rt, steps),
    )
}

/// `work` with this process's scheduler over the workspace and retain's steps.
fn with_scheduler<T>(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    store_url: &str,
    workspace: &Workspace,
    schedule: &Schedule,
    clock: Arc<dyn Clock>,
    work: impl FnOnce(&Scheduler<'_>, &WorkspaceSteps<'_>) -> retain_schedule::Result<T>,
) -> anyhow::Result<T> {
    let scheduler = Scheduler {
        store,
        schedule,
        clock,
        holder: retain_schedule::holder_name(),
    };
    let steps = WorkspaceSteps {
        rt,
        store,
        store_url,
        workspace,
    };
    Ok(work(&scheduler, &steps)?)
}

fn describe(r: &CycleReport, schedule: &Schedule) -> String {
    let tz = schedule.timezone;
    let mut text = format!(
        "cycle at {} ({})\n",
        r.at.with_timezone(&tz).format("%F %R"),
        tz.name()
    );
    for j in &r.jobs {
        let status = j.status.map_or("", |s| s.code());
        let next = j
            .next_run
            .map(|t| format!(" next {}", t.with_timezone(&tz).format("%F %R")))
            .unwrap_or_default();
        let _ = writeln!(
            text,
            "  {:<18} {:<8} {:<9}{}{}",
            j.job,
            format!("{:?}", j.action).to_lowercase(),
            status,
            next,
            j.error
                .as_deref()
                .map(|e| format!("\n      {e}"))
                .unwrap_or_default()
        );
    }
    text
}

/// `retain serve`'s scheduler: a cycle every half minute on a thread of its own, re-reading
/// the schedule each time so an edited file applies without a restart (a broken edit is
/// logged and the last good schedule kept).
pub(crate) fn serve_loop(dir: PathBuf, database: Option<String>) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("retain-scheduler".into())
        .spawn(move || {
            if let Err(e) = serve_loop_inner(&dir, database) {
                tracing::error!("the scheduler stopped: {e:#}");
            }
        })
        .expect("spawning the scheduler thread")
}

fn serve_loop_inner(dir: &Path, database: Option<String>) -> anyhow::Result<()> {
    let workspace = Workspace::open(dir)?;
    let rt = super::runtime()?;
    let url = database.unwrap_or_else(|| workspace.store_url());
    let store = rt.block_on(Store::connect(&url))?;
    let path = workspace.root().join(retain_schedule::FILE);
    let mut current: Option<Schedule> = None;
    loop {
        match Schedule::load(&path) {
            Ok(s) => current = s,
            Err(e) => tracing::error!("{e}; keeping the schedule last read"),
        }
        if let Some(schedule) = &current {
            match run_cycle(
                &rt,
                &store,
                &url,
                &workspace,
                schedule,
                Arc::new(SystemClock),
            ) {
                Ok(report) => {
                    for j in report.jobs.iter().filter(|j| j.run_id.is_some()) {
                        tracing::info!(job = %j.job, status = ?j.status, "scheduled run ended");
                    }
                }
                Err(e) => tracing::error!("scheduler cycle: {e:#}"),
            }
        }
        std::thread::sleep(std::time::Duration::from_secs(30));
    }
}

/// retain's commands as the scheduler's steps.
struct WorkspaceSteps<'a> {
    rt: &'a tokio::runtime::Runtime,
    store: &'a Store,
    /// The store's URL, for the campaign service's own connection.
    store_url: &'a str,
    workspace: &'a Workspace,
}

/// The name automatic campaigns are created under, which is how a retried or repeated
/// attempt finds the one it made.
const SCHEDULER: &str = "scheduler";

impl Steps for WorkspaceSteps<'_> {
    fn run(&self, job: &Job, attempt: &Attempt<'_>) -> Result<Outcome, String> {
        self.step(job, attempt).map_err(|e| format!("{e:#}"))
    }
}

impl WorkspaceSteps<'_> {
    fn step(&self, job: &Job, attempt: &Attempt<'_>) -> anyhow::Result<Outcome> {
        let (rt, store, ws) = (self.rt, self.store, self.workspace);
        if job.step != Step::Ingest && !ws.has_table(Table::Subscribers) {
            return Ok(Outcome::Nothing("no subscribers are loaded yet".into()));
        }
        match job.step {
            Step::Ingest => self.ingest(),
            Step::Warn => {
                let rules = retain_warn::RuleSet::for_workspace(ws, None)?;
                let cadence = match job.cadence {
                    retain_schedule::Cadence::Weekly => retain_features::Cadence::Weekly,
                    retain_schedule::Cadence::Monthly => retain_features::Cadence::Monthly,
                };
                let args = super::warn::Args::list(ws.root(), cadence);
                let super::warn::Outcome::List(warnings) =
                    super::warn::execute(rt, store, ws, &rules, &args)?
                else {
                    anyhow::bail!("internal: a warning run returned no list")
                };
                let campaigns = self.automatic_campaigns(job, attempt)?;
                Ok(Outcome::Done(serde_json::json!({
                    "warnings": warnings,
                    "campaigns": campaigns,
                })))
            }
            Step::Features => done(&super::features::write_snapshot(rt, ws, None)?),
            Step::Train => {
                let args = super::train::Args::defaults(ws.root());
                done(&super::train::execute(rt, store, ws, &args)?)
            }
            Step::Score => {
                let summary = super::train::score_execute(rt, ws, None)?;
                // A population that moved away from the champion's test month is news for
                // whoever watches the model, not only a line in the log.
                if let Some(d) = summary
                    .drift
                    .as_ref()
                    .filter(|d| d.level == retain_model::DriftLevel::Alert)
                {
                    let event = serde_json::json!({
                        "event": "drift_alert",
                        "job": job.name,
                        "model_version": summary.model_version,
                        "reference": d.reference,
                        "score": d.score,
                        "features_alert": d.features_alert,
                        "features": d.features,
                    });
                    if let Err(e) =
                        rt.block_on(retain_schedule::send_alert(&attempt.schedule.alert, &event))
                    {
                        tracing::warn!("{e}");
                    }
                }
                done(&summary)
            }
            Step::Segment => done(&super::segment::execute(rt, store, ws, None)?),
            // An operator that keeps no group accounts has nothing to warn.
            Step::Groups if !ws.has_table(Table::Groups) => Ok(Outcome::Nothing(
                "no groups are loaded: nothing to warn".into(),
            )),
            Step::Groups => done(&super::groups::execute(rt, store, ws, None)?),
            Step::Match => {
                let budget = match job.budget {
                    Some(b) => b,
                    None => ws.table_rows(Table::Subscribers)? as f64,
                };
                // The slot seeds the matching's exploration: a retried attempt draws the same.
                let seed = attempt.slot.timestamp().unsigned_abs();
                done(&super::offers::execute(rt, self.store, ws, budget, None, seed)?.report)
            }
            Step::Launch => Ok(Outcome::Done(serde_json::json!({
                "launched": self.launch_approved()?,
            }))),
        }
    }

    /// Loads every complete delivery in the drop folder, oldest name first, each file into
    /// its table in the canonical order; a delivery loaded moves to `drop/loaded/`.
    fn ingest(&self) -> anyhow::Result<Outcome> {
        let drop = self.workspace.root().join("drop");
        let mut loaded = Vec::new();
        let mut waiting = Vec::new();
        for d in delivery::deliveries(&drop)? {
            match d {
                delivery::Delivery::Partial { name, missing } => {
                    waiting.push(format!("{name} waits for {}", missing.join(", ")));
                }
                delivery::Delivery::Complete { name, files, .. } => {
                    let mut files: Vec<(Table, PathBuf)> = files
                        .into_iter()
                        .map(|f| {
                            Table::from_name(&f.table)
                                .map(|t| (t, f.path))
                                .with_context(|| {
                                    format!(
                                        "{}: table {:?} in its manifest is not one of retain's tables",
                                        name, f.table
                                    )
                                })
                        })
                        .collect::<anyhow::Result<_>>()?;
                    files.sort_by_key(|(t, _)| Table::ALL.iter().position(|a| a == t));
                    let mut tables = Vec::new();
                    for (table, path) in files {
                        let outcome = super::ingest::load(
                            self.rt,
                            self.store,
                            self.workspace,
                            table,
                            std::slice::from_ref(&path),
                            &IngestOptions::default(),
                        )
                        .with_context(|| format!("delivery {name}"))?;
                        tables.push(serde_json::json!({
                            "table": table.name(),
                            "file": path,
                            "read": outcome.report.read,
                            "loaded": outcome.report.loaded,
                            "quarantined": outcome.report.quarantined,
                            "run_id": outcome.run_id,
                        }));
                    }
                    let moved = delivery::mark_loaded(&drop, &name)?;
                    loaded.push(serde_json::json!({
                        "delivery": name, "tables": tables, "moved_to": moved,
                    }));
                }
            }
        }
        match (loaded.is_empty(), waiting.is_empty()) {
            (true, true) => Ok(Outcome::Nothing("no new delivery".into())),
            (true, false) => Ok(Outcome::Waiting(waiting.join("; "))),
            _ => Ok(Outcome::Done(serde_json::json!({
                "loaded": loaded, "waiting": waiting,
            }))),
        }
    }

    fn actor() -> retain_campaign::Actor {
        retain_campaign::Actor {
            name: SCHEDULER.into(),
            role: retain_campaign::Role::Admin,
            level: 3,
        }
    }

    /// The campaigns of the templates marked automatic, for the warning run at this slot:
    /// created (once: a retried attempt finds the one it made by name), rehearsed, and
    /// approved and launched when the budget is within the automatic approval limit; above
    /// it they wait, and the approvers are told through the alert webhook and the audit log.
    fn automatic_campaigns(
        &self,
        job: &Job,
        attempt: &Attempt<'_>,
    ) -> anyhow::Result<Vec<serde_json::Value>> {
        let limit = attempt.schedule.campaigns.auto_approval_limit;
        let tz = attempt.schedule.timezone;
        let workspace = self.workspace.clone();
        let url = self.store_url.to_owned();
        let alert = attempt.schedule.alert.clone();
        let slot = attempt.slot;
        let job_name = job.name.clone();
        self.rt.block_on(async move {
            let c = retain_campaign::Campaigns::open_with_store(&workspace, Some(&url)).await?;
            let actor = Self::actor();
            let mut out = Vec::new();
            for info in c.templates().await? {
                let (template, _) = c.template(&info.name).await?;
                if !template.automatic {
                    continue;
                }
                let name = format!(
                    "{} · 自动 {} {}",
                    template.name_zh,
                    job_name,
                    slot.with_timezone(&tz).format("%F %R")
                );
                let existing = c.list().await?.into_iter().find(|r| {
                    r.name == name && r.template == template.name && r.owner == SCHEDULER
                });
                let mut record = if let Some(r) = existing {
                    r
                } else {
                    let req = retain_campaign::CreateRequest {
                        template: template.name.clone(),
                        name: Some(name.clone()),
                        seed: Some(slot.timestamp().unsigned_abs()),
                        ..Default::default()
                    };
                    c.create(&req, &actor).await?
                };
                if record.status == CampaignStatus::Draft {
                    c.rehearse(record.id, &actor).await?;
                    record = c.get(record.id).await?;
                    if record.budget > limit {
                        let event = serde_json::json!({
                            "event": "approval_needed",
                            "campaign_id": record.id,
                            "campaign": record.name,
                            "template": template.name,
                            "budget": record.budget,
                            "approval_level": record.approval_level,
                            "auto_approval_limit": limit,
                        });
                        if let Err(e) = retain_schedule::send_alert(&alert, &event).await {
                            tracing::warn!("{e}");
                        }
                    }
                }
                if record.status == CampaignStatus::Rehearsed && record.budget <= limit {
                    c.approve(
                        record.id,
                        &actor,
                        false,
                        &format!("automatic: the budget {} is within the automatic approval limit {limit}", record.budget),
                    )
                    .await?;
                    record = c.get(record.id).await?;
                }
                let mut launched = None;
                if record.status == CampaignStatus::Approved {
                    launched = Some(c.launch(record.id, &actor).await?);
                    record = c.get(record.id).await?;
                }
                out.push(serde_json::json!({
                    "id": record.id,
                    "name": record.name,
                    "template": template.name,
                    "budget": record.budget,
                    "status": record.status,
                    "awaiting_approval": record.status == CampaignStatus::Rehearsed,
                    "launch": launched,
                }));
            }
            anyhow::Ok(out)
        })
    }

    /// Launches the scheduler's campaigns that an approver has approved since.
    fn launch_approved(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let workspace = self.workspace.clone();
        let url = self.store_url.to_owned();
        self.rt.block_on(async move {
            let c = retain_campaign::Campaigns::open_with_store(&workspace, Some(&url)).await?;
            let actor = Self::actor();
            let mut out = Vec::new();
            for r in c.list().await? {
                if r.owner == SCHEDULER && r.status == CampaignStatus::Approved {
                    let report = c.launch(r.id, &actor).await?;
                    out.push(serde_json::json!({"id": r.id, "name": r.name, "launch": report}));
                }
            }
            anyhow::Ok(out)
        })
    }
}

/// A step's summary as the run records it.
fn done<T: Serialize>(value: &T) -> anyhow::Result<Outcome> {
    Ok(Outcome::Done(serde_json::to_value(value)?))
}

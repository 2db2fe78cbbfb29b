//! `retain groups`: group-customer warning, value and visit plans; `retain managers`: per-manager
//! and per-branch results.

use std::fmt::Write as _;
use std::path::PathBuf;

use retain_data::Workspace;
use retain_groups::{GroupConfig, GroupsReport, PerformanceReport};
use retain_store::Store;

use crate::output;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Workspace directory.
    #[arg(long, env = "RETAIN_DIR")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub engine: super::cluster::EngineArg,
    /// Warn as of this month start (YYYY-MM-DD); defaults to the month after the last loaded
    /// one.
    #[arg(long)]
    pub as_of: Option<String>,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let workspace = Workspace::open(&args.dir)?;
    args.engine.apply(&workspace)?;
    let rt = super::runtime()?;
    let store = rt.block_on(Store::connect(&workspace.store_url()))?;
    let report = execute(&rt, &store, &workspace, args.as_of.as_deref())?;
    if args.json {
        return output::print_json(&report);
    }
    output::print_text(&describe(&report));
    Ok(())
}

/// Warns the groups and records the run.
pub(crate) fn execute(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    workspace: &Workspace,
    as_of_text: Option<&str>,
) -> anyhow::Result<GroupsReport> {
    let config = GroupConfig::for_workspace(workspace)?;
    let given = as_of_text.map(super::parse_month_start).transpose()?;
    let params = serde_json::json!({ "as_of": as_of_text });
    let work = || {
        rt.block_on(async {
            let ctx = retain_features::session(workspace).await?;
            let as_of = match given {
                Some(d) => d,
                None => {
                    retain_features::default_as_of(&ctx, retain_features::Cadence::Monthly).await?
                }
            };
            let since = as_of - chrono::Duration::days(366);
            let recorded = store
                .visits_between(&since.to_string(), &as_of.to_string())
                .await?;
            let run = retain_groups::run(&ctx, workspace, &config, as_of, &recorded).await?;
            Ok::<_, anyhow::Error>(run.report)
        })
    };
    super::recorded(rt, store, "groups", &params, work, |r| {
        Ok(serde_json::to_value(r)?)
    })
}

fn describe(r: &GroupsReport) -> String {
    let mut text = format!(
        "groups as of {}: {} active, {} lost; red {}, yellow {}, blue {}\n\
         lifetime value {:.0}, of which red and yellow {:.0}\n",
        r.as_of,
        r.groups,
        r.lost,
        r.red,
        r.yellow,
        r.blue,
        r.lifetime_value,
        r.lifetime_value_at_risk
    );
    if let Some(t) = &r.truth {
        let _ = writeln!(
            text,
            "against the truth: {} of {} groups leave; AUC {:.3}, top-decile lift {:.2}, {:.0}% of them red or yellow",
            t.leaving,
            t.groups,
            t.auc,
            t.top_decile_lift,
            t.leaving_warned * 100.0
        );
    }
    let reasons: Vec<String> = r
        .by_reason
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let _ = writeln!(text, "warned by strongest reason: {}", reasons.join(", "));
    let _ = write!(
        text,
        "{} visits planned\nlist: {}\nvisit plan: {}",
        r.visits_planned,
        r.list_file.display(),
        r.visits_file.display()
    );
    text
}

#[derive(Debug, clap::Args)]
pub(crate) struct ManagersArgs {
    /// Workspace directory.
    #[arg(long, env = "RETAIN_DIR")]
    pub dir: PathBuf,
    /// The period ends the day before this month start (YYYY-MM-DD); defaults to the month
    /// after the last loaded one.
    #[arg(long)]
    pub as_of: Option<String>,
    /// Also write the results as an Excel workbook (考核月报) here.
    #[arg(long)]
    pub xlsx: Option<PathBuf>,
    /// Print one JSON object instead of a league table.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn managers(args: &ManagersArgs) -> anyhow::Result<()> {
    let workspace = Workspace::open(&args.dir)?;
    let rt = super::runtime()?;
    let store = rt.block_on(Store::connect(&workspace.store_url()))?;
    let config = GroupConfig::for_workspace(&workspace)?;
    let given = args
        .as_of
        .as_deref()
        .map(super::parse_month_start)
        .transpose()?;
    let report = rt.block_on(async {
        let ctx = retain_features::session(&workspace).await?;
        let as_of = match given {
            Some(d) => d,
            None => retain_features::default_as_of(&ctx, retain_features::Cadence::Monthly).await?,
        };
        Ok::<_, anyhow::Error>(
            retain_groups::performance(&ctx, &workspace, &store, &config, as_of).await?,
        )
    })?;
    if let Some(path) = &args.xlsx {
        retain_groups::write_workbook(&report, path)?;
    }
    if args.json {
        return output::print_json(&report);
    }
    output::print_text(&league(&report));
    Ok(())
}

fn league(r: &PerformanceReport) -> String {
    let mut text = format!(
        "results from {} to the day before {}\n\n{:<14} {:<8} {:>9} {:>9} {:>8} {:>8} {:>8} {:>11} {:>7}\n",
        r.period_start,
        r.as_of,
        "manager",
        "branch",
        "base",
        "retained",
        "visits",
        "planned",
        "orders",
        "saved value",
        "targets"
    );
    for m in &r.managers {
        let _ = writeln!(
            text,
            "{:<14} {:<8} {:>9} {:>8.1}% {:>8} {:>8} {:>8} {:>11.0} {:>5}/{}",
            m.manager_id,
            m.branch_id,
            m.subscribers,
            m.retention_rate * 100.0,
            m.visits_done,
            m.visits_planned,
            m.work_orders,
            m.saved_value,
            m.targets_met,
            m.targets_total
        );
    }
    let _ = write!(
        text,
        "\n{} managers in {} branches; {} campaign work orders without a manager",
        r.managers.len(),
        r.branches.len(),
        r.unassigned_work_orders
    );
    text
}

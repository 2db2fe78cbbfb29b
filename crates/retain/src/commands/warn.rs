//! `retain warn`: the early-warning run and its backtest.

use std::fmt::Write as _;
use std::path::PathBuf;

use retain_data::Workspace;
use retain_features::Cadence;
use retain_store::Store;
use retain_warn::{BacktestOptions, BacktestReport, RuleSet, WarnSummary};

use crate::output;

// Each flag is a switch a user types; an enum of modes would read worse on the command line.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Workspace directory.
    #[arg(long, env = "RETAIN_DIR")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub engine: super::cluster::EngineArg,
    /// Score as of this date (YYYY-MM-DD); data on or after it is not used. Defaults to the day
    /// after the last loaded week (weekly) or month (monthly).
    #[arg(long)]
    pub as_of: Option<String>,
    /// weekly or monthly.
    #[arg(long, default_value = "weekly")]
    pub cadence: Cadence,
    /// Rules file; defaults to <dir>/rules.toml when it exists, else the shipped rules.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Backtest the rules on labelled history instead of producing this week's list.
    #[arg(long)]
    pub backtest: bool,
    /// Propose points and thresholds per tenure cohort from the backtest: written beside the
    /// rules (rules-proposal.toml) with the diff, for --accept-proposal or --reject-proposal.
    #[arg(long, conflicts_with_all = ["backtest", "accept_proposal", "reject_proposal"])]
    pub propose: bool,
    /// Make the pending proposal the workspace's rules.toml (the previous kept in rules-history/).
    #[arg(long, conflicts_with_all = ["backtest", "reject_proposal"])]
    pub accept_proposal: bool,
    /// Discard the pending proposal.
    #[arg(long, conflicts_with = "backtest")]
    pub reject_proposal: bool,
    /// Backtest: a warning is right when churn takes effect within this many months.
    #[arg(long, default_value_t = 1)]
    pub horizon: u32,
    /// Months of suspension before a cancellation (倒追 gap) used by the churn labels.
    #[arg(long, default_value_t = 3)]
    pub gap: u32,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    /// This period's warning list of a workspace with the command's defaults, on the engine
    /// the process chose.
    pub(crate) fn list(dir: &std::path::Path, cadence: Cadence) -> Args {
        Args {
            dir: dir.to_path_buf(),
            engine: super::cluster::EngineArg::default(),
            as_of: None,
            cadence,
            rules: None,
            backtest: false,
            propose: false,
            accept_proposal: false,
            reject_proposal: false,
            horizon: 1,
            gap: 3,
            json: false,
        }
    }
}

/// What a warn command produced.
pub(crate) enum Outcome {
    List(WarnSummary),
    Backtest(BacktestReport),
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let workspace = Workspace::open(&args.dir)?;
    args.engine.apply(&workspace)?;
    if args.propose || args.accept_proposal || args.reject_proposal {
        return proposal(args, &workspace);
    }
    let rules = RuleSet::for_workspace(&workspace, args.rules.as_deref())?;
    let rt = super::runtime()?;
    let store = rt.block_on(Store::connect(&workspace.store_url()))?;
    let outcome = execute(&rt, &store, &workspace, &rules, args)?;
    match outcome {
        Outcome::List(summary) if args.json => output::print_json(&summary),
        Outcome::Backtest(report) if args.json => output::print_json(&report),
        Outcome::List(summary) => {
            output::print_text(&describe_list(&summary));
            Ok(())
        }
        Outcome::Backtest(report) => {
            output::print_text(&describe_backtest(&report));
            Ok(())
        }
    }
}

/// Runs a warning list or a backtest and records the run.
pub(crate) fn execute(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    workspace: &Workspace,
    rules: &RuleSet,
    args: &Args,
) -> anyhow::Result<Outcome> {
    let kind = if args.backtest {
        "warn-backtest"
    } else {
        "warn"
    };
    let params = serde_json::json!({
        "as_of": args.as_of, "cadence": args.cadence, "rules": rules.source,
        "backtest": args.backtest, "horizon": args.horizon, "gap": args.gap,
    });
    let work = || {
        rt.block_on(async {
            let ctx = retain_features::session(workspace).await?;
            if args.backtest {
                let options = BacktestOptions {
                    horizon_months: args.horizon,
                    labels: retain_features::LabelConfig {
                        suspension_gap_months: args.gap,
                        ..retain_features::LabelConfig::default()
                    },
                    ..BacktestOptions::default()
                };
                retain_features::conditions::register_outputs(&ctx, workspace, &rules.compiler)
                    .await?;
                let report = retain_warn::backtest(&ctx, rules, &options).await?;
                retain_warn::write_backtest_report(workspace, &report)?;
                return Ok::<_, anyhow::Error>(Outcome::Backtest(report));
            }
            let as_of = match &args.as_of {
                Some(text) => super::parse_as_of(text)?,
                None => retain_features::default_as_of(&ctx, args.cadence).await?,
            };
            let (summary, _) =
                retain_warn::run(&ctx, rules, workspace, as_of, args.cadence).await?;
            Ok(Outcome::List(summary))
        })
    };
    let summarize = |outcome: &Outcome| {
        Ok(match outcome {
            Outcome::List(s) => serde_json::to_value(s)?,
            Outcome::Backtest(r) => serde_json::json!({
                "snapshots": r.snapshots, "levels": r.overall.levels,
                "base_rate": r.overall.base_rate,
            }),
        })
    };
    super::recorded(rt, store, kind, &params, work, summarize)
}

fn describe_list(s: &WarnSummary) -> String {
    let mut text = format!(
        "early warning as of {} ({:?}), rules {}\n  scored {} subscribers; potential churners (score ≥ threshold): {}\n  red {}  yellow {}  blue {}\n",
        s.as_of,
        s.cadence,
        s.rules_file.display(),
        s.scored,
        s.potential_churners,
        s.red,
        s.yellow,
        s.blue
    );
    for (cohort, levels) in &s.cohorts {
        let _ = writeln!(
            text,
            "  tenure {cohort:<7} red {:>6}  yellow {:>6}  blue {:>6}",
            levels.get("red").unwrap_or(&0),
            levels.get("yellow").unwrap_or(&0),
            levels.get("blue").unwrap_or(&0)
        );
    }
    let c = &s.changes;
    let _ = writeln!(
        text,
        "  since the last run: {} new, {} escalated, {} de-escalated, {} unchanged, {} resolved",
        c.new, c.escalated, c.de_escalated, c.unchanged, c.resolved
    );
    let _ = write!(text, "  list: {}", s.warnings_file.display());
    text
}

fn describe_backtest(r: &BacktestReport) -> String {
    let mut text = format!(
        "warning backtest over snapshots {} (horizon {} month(s), suspension gap {})\n  population {}  churners {}  base rate {:.2}%\n",
        r.snapshots.join(", "),
        r.horizon_months,
        r.suspension_gap_months,
        r.overall.population,
        r.overall.positives,
        r.overall.base_rate * 100.0
    );
    let inv = &r.overall.involuntary;
    let _ = writeln!(
        text,
        "  of the churners {} were arrears cut-offs (involuntary, 非自愿); the warning caught {} of them and {} voluntary churners\n\n  level      hits   precision  recall   lift",
        inv.churners, inv.caught, inv.voluntary_caught
    );
    for level in retain_warn::LEVELS {
        let m = &r.overall.levels[level];
        let _ = writeln!(
            text,
            "  {level:<8} {:>7}   {:>7.2}%  {:>6.2}%  {:>5.2}",
            m.hits,
            m.precision * 100.0,
            m.recall * 100.0,
            m.lift
        );
    }
    text.push_str("\n  rule    hits   precision  recall   lift  name\n");
    for rule in &r.overall.rules {
        let m = &rule.metrics;
        let _ = writeln!(
            text,
            "  {} {:>7}   {:>7.2}%  {:>6.2}%  {:>5.2}  {}",
            rule.id,
            m.hits,
            m.precision * 100.0,
            m.recall * 100.0,
            m.lift,
            rule.name_zh
        );
    }
    text
}

/// `--propose`, `--accept-proposal`, `--reject-proposal`: rules re-tuned per tenure cohort.
fn proposal(args: &Args, workspace: &Workspace) -> anyhow::Result<()> {
    let rt = super::runtime()?;
    let store = rt.block_on(Store::connect(&workspace.store_url()))?;
    if args.reject_proposal {
        let had = super::recorded(
            &rt,
            &store,
            "rules-reject",
            &serde_json::json!({}),
            || Ok(retain_warn::reject_proposal(workspace)?),
            |had| Ok(serde_json::json!({ "rejected": had })),
        )?;
        let text = if had {
            "the proposal is discarded; the rules are as they were"
        } else {
            "there was no proposal"
        };
        return if args.json {
            output::print_json(&serde_json::json!({ "rejected": had }))
        } else {
            output::print_text(text);
            Ok(())
        };
    }
    if args.accept_proposal {
        let accepted = super::recorded(
            &rt,
            &store,
            "rules-accept",
            &serde_json::json!({}),
            || Ok(retain_warn::accept_proposal(workspace)?),
            |p| Ok(serde_json::to_value(p)?),
        )?;
        return if args.json {
            output::print_json(&accepted)
        } else {
            output::print_text(&format!(
                "accepted: {} is now the workspace's rules\n{}",
                workspace.root().join("rules.toml").display(),
                describe_proposal(&accepted)
            ));
            Ok(())
        };
    }
    if args.rules.is_some() {
        anyhow::bail!(
            "--propose tunes the workspace's own rules (rules.toml); --rules is not taken with it"
        );
    }
    let rules = RuleSet::for_workspace(workspace, None)?;
    let options = BacktestOptions {
        horizon_months: args.horizon,
        labels: retain_features::LabelConfig {
            suspension_gap_months: args.gap,
            ..retain_features::LabelConfig::default()
        },
        ..BacktestOptions::default()
    };
    let work = || {
        rt.block_on(async {
            let ctx = retain_features::session(workspace).await?;
            retain_features::conditions::register_outputs(&ctx, workspace, &rules.compiler).await?;
            anyhow::Ok(retain_warn::propose_for_workspace(&ctx, workspace, &options).await?)
        })
    };
    let proposal = super::recorded(
        &rt,
        &store,
        "rules-propose",
        &serde_json::json!({ "horizon": args.horizon, "gap": args.gap }),
        work,
        |p| Ok(serde_json::to_value(p)?),
    )?;
    if args.json {
        return output::print_json(&proposal);
    }
    output::print_text(&format!(
        "{}\nretain warn --accept-proposal makes it the rules; --reject-proposal discards it",
        describe_proposal(&proposal)
    ));
    Ok(())
}

fn describe_proposal(p: &retain_warn::Proposal) -> String {
    // Precision and recall of potential churners, as they are and as proposed.
    let shift = |before: &retain_warn::Metrics, after: &retain_warn::Metrics| {
        format!(
            "precision {:.2}% → {:.2}%, recall {:.2}% → {:.2}%",
            before.precision * 100.0,
            after.precision * 100.0,
            before.recall * 100.0,
            after.recall * 100.0
        )
    };
    let mut text = format!(
        "rules re-tuned per tenure cohort over {} (target precision {:.2}%)\n  potential churners: {}\n",
        p.snapshots.join(", "),
        p.target_precision * 100.0,
        shift(&p.before, &p.after)
    );
    for c in &p.cohorts {
        let _ = writeln!(
            text,
            "  {:<7} threshold {} → {}; {}",
            c.cohort,
            c.threshold_before,
            c.threshold_after,
            shift(&c.before, &c.after)
        );
        for r in &c.points {
            let _ = writeln!(
                text,
                "          {} points {} → {} (lift {:.2} here, {:.2} overall, {} hits)",
                r.rule, r.before, r.after, r.lift, r.lift_overall, r.hits
            );
        }
    }
    text
}

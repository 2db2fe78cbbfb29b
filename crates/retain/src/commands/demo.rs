//! `retain demo`: synthesize an operator, load it and run every stage that exists.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use retain_data::{IngestOptions, Table, Workspace};
use retain_store::Store;
use serde::Serialize;

use super::ingest::load;
use crate::output;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    pub operator: super::synth::OperatorArgs,
    /// Workspace directory to create or refresh.
    #[arg(long, env = "RETAIN_DIR", default_value = "retain-demo")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub engine: super::cluster::EngineArg,
    /// Budget of the offer matching, yuan; defaults to one yuan per subscriber.
    #[arg(long)]
    pub budget: Option<f64>,
    /// Serve the dashboard afterwards.
    #[arg(long)]
    pub serve: bool,
    /// Address the dashboard listens on with --serve.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct TableLoad {
    table: String,
    read: u64,
    loaded: u64,
    quarantined: u64,
    rows: u64,
}

#[derive(Debug, Serialize)]
struct DemoSummary {
    dir: PathBuf,
    run_id: i64,
    seconds: f64,
    synth: retain_synth::SynthSummary,
    tables: Vec<TableLoad>,
    overview: retain_features::Overview,
    warnings: retain_warn::WarnSummary,
    /// Absent when the window is too short to backtest (under 10 months).
    warn_backtest: Option<retain_warn::BacktestReport>,
    /// The feature snapshot computed once and read by scoring and matching.
    features: retain_features::stored::Manifest,
    /// The churn model's training and scoring summaries (windows of 12 months or more).
    model: Option<DemoModel>,
    segments: retain_segment::SegmentReport,
    /// Group-customer warning and visit plans.
    groups: retain_groups::GroupsReport,
    /// The managers' results after the campaign.
    managers: DemoManagers,
    matching: retain_offers::MatchReport,
    /// The campaign loop on the bundled `weekly-high-end` template, callbacks simulated.
    campaign: DemoCampaign,
    store: String,
    truth_dir: PathBuf,
}

/// The account managers' results, summed; `retain managers` lists them one by one.
#[derive(Debug, Serialize)]
struct DemoManagers {
    managers: usize,
    branches: usize,
    visits_planned: u64,
    visits_done: u64,
    work_orders: u64,
    saved_value: f64,
}

/// The churn model the demo trained and the scores it wrote.
#[derive(Debug, Serialize)]
struct DemoModel {
    train: retain_model::ModelReport,
    score: retain_model::ScoreSummary,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let workspace = Workspace::create_or_open(&args.dir)?;
    args.engine.apply(&workspace)?;
    let rt = super::runtime()?;
    let store = rt.block_on(Store::connect(&workspace.store_url()))?;
    let params = serde_json::json!({
        "subscribers": args.operator.subscribers,
        "months": args.operator.months,
        "seed": args.operator.seed,
    });
    let run = rt.block_on(store.begin_run("demo", &params))?;
    match demo(args, &workspace, &rt, &store, started) {
        Ok(mut summary) => {
            summary.run_id = run.0;
            rt.block_on(store.finish_run(run, &serde_json::to_value(&summary)?))?;
            if args.json {
                output::print_json(&summary)?;
            } else {
                output::print_text(&describe(&summary));
            }
            let password = rt.block_on(demo_admin(&store))?;
            // The password goes to the terminal only, never into the stored run summary.
            eprintln!(
                "\ndashboard: log in as admin with password {password}\n  (retain serve --dir {} --addr {}; retain user add for more users)",
                args.dir.display(),
                args.addr
            );
            if args.serve {
                super::cluster::step_done();
                drop(store);
                rt.block_on(async {
                    let state = retain_server::AppState::open_with_options(
                        &Workspace::open(&args.dir)?,
                        None,
                        retain_server::ServerOptions::for_addr(&args.addr),
                    )
                    .await?;
                    eprintln!("serving the dashboard on http://{}/", args.addr);
                    retain_server::serve(state, &args.addr).await?;
                    anyhow::Ok(())
                })?;
            }
            Ok(())
        }
        Err(error) => {
            rt.block_on(store.fail_run(run, &format!("{error:#}")))?;
            Err(error)
        }
    }
}

/// Creates the demo's administrator, or gives it a new password when it exists. The password
/// is `RETAIN_DEMO_PASSWORD` when set (for scripts), else generated.
async fn demo_admin(store: &Store) -> anyhow::Result<String> {
    let password = std::env::var("RETAIN_DEMO_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(retain_server::new_password);
    let hash = retain_server::hash_password(&password).map_err(|e| anyhow::anyhow!(e))?;
    if store.user("admin").await?.is_some() {
        store.set_password("admin", &hash, "demo").await?;
    } else {
        store
            .add_user(
                &retain_store::UserRecord {
                    name: "admin".into(),
                    role: "admin".into(),
                    manager_id: None,
                    branch_id: None,
                    approval_level: 3,
                    password_hash: hash,
                    created_at: String::new(),
                    disabled: false,
                },
                "demo",
            )
            .await?;
    }
    Ok(password)
}

fn demo(
    args: &Args,
    workspace: &Workspace,
    rt: &tokio::runtime::Runtime,
    store: &Store,
    started: std::time::Instant,
) -> anyhow::Result<DemoSummary> {
    let params = args.operator.params();
    tracing::info!(
        subscribers = params.subscribers,
        months = params.months,
        "synthesizing the operator"
    );
    let synth =
        retain_synth::synthesize(&params, &workspace.incoming_dir(), &workspace.truth_dir())
            .context("synthesizing the demo operator")?;

    let tables = load_synthetic(rt, store, workspace, &synth)?;

    let overview = rt.block_on(async {
        let ctx = retain_features::session(workspace).await?;
        retain_features::overview(&ctx).await
    })?;

    let rules = retain_warn::RuleSet::for_workspace(workspace, None)?;
    // The demo chose its engine for the whole process.
    let mut warn_args = super::warn::Args::list(workspace.root(), retain_features::Cadence::Weekly);
    let super::warn::Outcome::List(warnings) =
        super::warn::execute(rt, store, workspace, &rules, &warn_args)?
    else {
        anyhow::bail!("internal: a warning run returned no list")
    };
    // A backtest snapshot needs 6 months of history and 4 of outcome after it.
    let warn_backtest = if params.months >= 10 {
        warn_args.backtest = true;
        let super::warn::Outcome::Backtest(report) =
            super::warn::execute(rt, store, workspace, &rules, &warn_args)?
        else {
            anyhow::bail!("internal: a backtest returned no report")
        };
        Some(report)
    } else {
        tracing::warn!("the window is under 10 months: skipping the rule backtest");
        None
    };
    // Computed once here; scoring and matching read the snapshot instead of the tables.
    let features = super::features::write_snapshot(rt, workspace, None)?;
    let model = churn_model(rt, store, workspace, params.months)?;
    let segments = super::segment::execute(rt, store, workspace, None)?;
    let groups = super::groups::execute(rt, store, workspace, None)?;
    let dnd = demo_dnd(rt, workspace)?;
    tracing::info!(dnd, "do-not-disturb list written");
    let budget = args.budget.unwrap_or(args.operator.subscribers as f64);
    let matching = super::offers::execute(rt, store, workspace, budget, None, 42)?.report;
    if matching.constraint_violations > 0 {
        anyhow::bail!(
            "the offer verifier found {} broken constraints",
            matching.constraint_violations
        );
    }
    let campaign = demo_campaign(rt, workspace, budget)?;
    let managers = demo_managers(rt, store, workspace)?;
    Ok(DemoSummary {
        dir: workspace.root().to_path_buf(),
        run_id: 0,
        seconds: started.elapsed().as_secs_f64(),
        truth_dir: synth.truth_dir.clone(),
        synth,
        tables,
        overview,
        warnings,
        warn_backtest,
        features,
        model,
        segments,
        groups,
        managers,
        matching,
        campaign,
        store: workspace.store_url(),
    })
}

fn demo_managers(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    workspace: &Workspace,
) -> anyhow::Result<DemoManagers> {
    let config = retain_groups::GroupConfig::for_workspace(workspace)?;
    let r = rt.block_on(async {
        let ctx = retain_features::session(workspace).await?;
        let as_of = retain_features::default_as_of(&ctx, retain_features::Cadence::Monthly).await?;
        Ok::<_, anyhow::Error>(
            retain_groups::performance(&ctx, workspace, store, &config, as_of).await?,
        )
    })?;
    Ok(DemoManagers {
        managers: r.managers.len(),
        branches: r.branches.len(),
        visits_planned: r.managers.iter().map(|m| m.visits_planned).sum(),
        visits_done: r.managers.iter().map(|m| m.visits_done).sum(),
        work_orders: r.managers.iter().map(|m| m.work_orders).sum::<u64>()
            + r.unassigned_work_orders,
        saved_value: (r.managers.iter().map(|m| m.saved_value).sum::<f64>() * 100.0).round()
            / 100.0,
    })
}

#[derive(Debug, Serialize)]
struct DemoCampaign {
    id: i64,
    template: String,
    work_orders: u64,
    members: u64,
    /// Absent when the target is empty (a tiny operator).
    evaluation: Option<retain_campaign::Evaluation>,
}

/// Create → rehearse → approve → launch → simulated callbacks → evaluate, as the local admin.
fn demo_campaign(
    rt: &tokio::runtime::Runtime,
    workspace: &Workspace,
    budget: f64,
) -> anyhow::Result<DemoCampaign> {
    rt.block_on(async {
        let c = retain_campaign::Campaigns::open(workspace).await?;
        let actor = retain_campaign::Actor::local();
        let req = retain_campaign::CreateRequest {
            template: "weekly-high-end".into(),
            budget: Some(budget),
            seed: Some(42),
            ..Default::default()
        };
        let id = c.create(&req, &actor).await?.id;
        c.rehearse(id, &actor).await?;
        c.approve(id, &actor, false, "demo").await?;
        let launched = c.launch(id, &actor).await?;
        let evaluation = if launched.members > 0 {
            c.simulate_callbacks(id, &actor).await?;
            Some(c.evaluate(id, &actor).await?.0)
        } else {
            None
        };
        Ok(DemoCampaign {
            id,
            template: req.template,
            work_orders: launched.work_orders,
            members: launched.members,
            evaluation,
        })
    })
}

/// An operator's do-not-disturb list (免打扰) is an export like any other; the demo marks one
/// subscriber in a hundred so the contact policy has something to honour.
fn demo_dnd(rt: &tokio::runtime::Runtime, workspace: &Workspace) -> anyhow::Result<usize> {
    let msisdn = rt.block_on(async {
        let ctx = retain_features::session(workspace).await?;
        Ok::<_, anyhow::Error>(retain_offers::msisdn_map(&ctx).await?)
    })?;
    let mut numbers: Vec<(&i64, &String)> = msisdn.iter().map(|(m, id)| (id, m)).collect();
    numbers.sort();
    let mut text = String::from("msisdn\n");
    let mut n = 0;
    for (id, m) in numbers {
        if id % 100 == 7 {
            let _ = writeln!(text, "{m}");
            n += 1;
        }
    }
    retain_data::write_atomically(&workspace.root().join("dnd.csv"), text.as_bytes())?;
    Ok(n)
}

/// Trains and scores the churn model; three observable snapshots need 12 months of data.
/// Loads every table of a synthesized operator into `workspace`, refusing any rejected row.
pub(crate) fn load_synthetic(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    workspace: &Workspace,
    synth: &retain_synth::SynthSummary,
) -> anyhow::Result<Vec<TableLoad>> {
    // One label for the whole load, so its quarantine files sort together.
    let label = IngestOptions::default().label;
    let mut tables = Vec::new();
    for (name, file) in &synth.files {
        let table = Table::from_name(name).expect("synth writes canonical tables");
        let options = IngestOptions {
            label: format!("{label}-demo"),
            // Synthetic data is clean: any rejected row is a bug worth stopping for.
            max_bad_ratio: Some(0.0),
            ..IngestOptions::default()
        };
        let loaded = load(
            rt,
            store,
            workspace,
            table,
            std::slice::from_ref(file),
            &options,
        )?;
        tables.push(TableLoad {
            table: name.clone(),
            read: loaded.report.read,
            loaded: loaded.report.loaded,
            quarantined: loaded.report.quarantined,
            rows: loaded.report.table_rows,
        });
    }
    Ok(tables)
}

fn churn_model(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    workspace: &Workspace,
    months: u32,
) -> anyhow::Result<Option<DemoModel>> {
    if months < 12 {
        tracing::warn!("the window is under 12 months: skipping the churn model");
        return Ok(None);
    }
    let args = super::train::Args::defaults(workspace.root());
    let train = super::train::execute(rt, store, workspace, &args)?;
    let score = super::train::score_execute(rt, workspace, None)?;
    Ok(Some(DemoModel { train, score }))
}

fn describe(s: &DemoSummary) -> String {
    let mut text = format!(
        "retain demo — workspace {} ({:.1}s)\n\nsynthetic operator: seed {}, {}–{}\n",
        s.dir.display(),
        s.seconds,
        s.synth.seed,
        s.synth.first_month,
        s.synth.last_month
    );
    text.push_str("\nloaded tables (read = loaded + quarantined):\n");
    for t in &s.tables {
        let _ = writeln!(
            text,
            "  {:<17} {:>10} = {:>10} + {:>3}",
            t.table, t.read, t.loaded, t.quarantined
        );
    }
    let o = &s.overview;
    let _ = writeln!(
        text,
        "\nsubscribers: {} ({} active, {} suspended, {} cancelled)",
        o.subscribers, o.active, o.suspended, o.cancelled
    );
    text.push_str("recent months (month, billed, ARPU, cancellations):\n");
    for m in o.months.iter().rev().take(6).rev() {
        let _ = writeln!(
            text,
            "  {}  {:>9}  {:>7.2}  {:>6}",
            m.month, m.billed_subscribers, m.arpu, m.cancellations
        );
    }
    let w = &s.warnings;
    let _ = writeln!(
        text,
        "\nearly warning as of {}: red {}, yellow {}, blue {} (potential churners {}) → {}",
        w.as_of,
        w.red,
        w.yellow,
        w.blue,
        w.potential_churners,
        w.warnings_file.display()
    );
    if let Some(b) = &s.warn_backtest {
        let _ = writeln!(
            text,
            "rule backtest over {} (base rate {:.2}%), precision and lift:",
            b.snapshots.join(", "),
            b.overall.base_rate * 100.0
        );
        for level in retain_warn::LEVELS {
            let m = &b.overall.levels[level];
            let _ = writeln!(
                text,
                "  {level:<7} {:>6.2}%  {:>5.2}",
                m.precision * 100.0,
                m.lift
            );
        }
    }
    match &s.model {
        Some(model) => {
            let t = &model.train;
            let agreement = t
                .reason_top1_agreement
                .map_or_else(|| "n/a".to_owned(), |a| a.to_string());
            let _ = writeln!(
                text,
                "churn model v{}: AUC {}, top-decile lift {}, top reason = true cause {agreement}; scores → {}",
                t.version,
                t.auc,
                t.top_decile_lift,
                model.score.scores_file.display()
            );
        }
        None => {
            let _ = writeln!(
                text,
                "churn model: not trained (three snapshots need 12 months of data)"
            );
        }
    }
    let g = &s.segments;
    let _ = writeln!(
        text,
        "\nsegments as of {}: {} clusters",
        g.as_of,
        g.clusters.len()
    );
    for c in &g.clusters {
        let _ = writeln!(
            text,
            "  {} / {}: {} subscribers, churn {:.2}%",
            c.name_zh,
            c.name_en,
            c.size,
            c.churn_rate * 100.0
        );
    }
    if let Some(n) = &g.network {
        let _ = writeln!(
            text,
            "  network: {} cells, {} calling circles (mean size {:.1}, {} in a wave of leavers); \
             churn {:.1}% in circles, {} outside",
            n.cells,
            n.circles,
            n.mean_circle_size,
            n.circles_in_wave,
            n.circle_churn_rate * 100.0,
            n.outside_churn_rate
                .map_or_else(|| "—".to_owned(), |r| format!("{:.1}%", r * 100.0))
        );
    }
    let groups = &s.groups;
    let _ = writeln!(
        text,
        "\ngroup customers as of {}: {} active, {} lost; red {}, yellow {}, blue {}; {} visits planned",
        groups.as_of,
        groups.groups,
        groups.lost,
        groups.red,
        groups.yellow,
        groups.blue,
        groups.visits_planned
    );
    if let (Some(auc), Some(lift)) = (groups.auc, groups.top_decile_lift) {
        let _ = writeln!(
            text,
            "group risk against the groups that truly leave: AUC {auc}, top-decile lift {lift}"
        );
    }
    let managers = &s.managers;
    let _ = writeln!(
        text,
        "account managers: {} in {} branches; visits {} done of {} planned; saved value {:.0}",
        managers.managers,
        managers.branches,
        managers.visits_done,
        managers.visits_planned,
        managers.saved_value
    );
    let matching = &s.matching;
    let _ = writeln!(
        text,
        "\noffer matching: {} of {} at-risk subscribers get an offer for {:.2} of {:.2} yuan; constraint violations {}; uplift Qini {} ({:?})",
        matching.assigned,
        matching.candidates,
        matching.cost,
        matching.budget,
        matching.constraint_violations,
        matching.uplift.qini,
        matching.uplift.method
    );
    if let Some(v) = &matching.simulated_saved_value {
        let _ = writeln!(
            text,
            "simulated saved value: retain {:.0}, random {:.0}, biggest discount {:.0}, oracle {:.0} yuan ({}× random, {:.0}% of the oracle)",
            v.retain,
            v.random,
            v.max_discount,
            v.oracle,
            v.retain_vs_random,
            100.0 * v.retain_vs_oracle
        );
    }
    let campaign = &s.campaign;
    let _ = write!(
        text,
        "campaign {} ({}): {} work orders, {} members",
        campaign.id, campaign.template, campaign.work_orders, campaign.members
    );
    if let Some(e) = &campaign.evaluation {
        let arms = &e.overall;
        let _ = write!(
            text,
            "; retention treated {:.3} vs control {:.3}, uplift {:+.3} [{:+.3}, {:+.3}] ({}), ROI {:.2}",
            arms.treated_retention,
            arms.control_retention,
            arms.uplift.unwrap_or(f64::NAN),
            arms.uplift_ci_low.unwrap_or(f64::NAN),
            arms.uplift_ci_high.unwrap_or(f64::NAN),
            if arms.significant {
                "significant"
            } else {
                "not significant"
            },
            e.roi.unwrap_or(f64::NAN)
        );
        if let Some(t) = e.true_uplift {
            let _ = write!(text, "; true uplift {t:+.3}");
        }
    }
    text.push('\n');
    let _ = writeln!(
        text,
        "\ntables: {}/tables/<table>/data.parquet\nquarantine: {}/quarantine/\ntruth (never read by the pipeline): {}\nstore: {}",
        s.dir.display(),
        s.dir.display(),
        s.truth_dir.display(),
        s.store
    );
    text
}

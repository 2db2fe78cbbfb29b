//! `retain match`, `retain decide` and `retain offers`: offer matching under budget, real-time
//! decisions and the offer library.

use std::fmt::Write as _;
use std::path::PathBuf;

use retain_data::Workspace;
use retain_offers::{Channel, DecisionIndex, Library, MatchOptions, MatchReport};
use retain_store::Store;

use crate::output;

#[derive(Debug, clap::Args)]
pub(crate) struct MatchArgs {
    /// Workspace directory.
    #[arg(long, env = "RETAIN_DIR")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub engine: super::cluster::EngineArg,
    /// Total budget in yuan: contact costs plus the full cost of every offer made.
    #[arg(long)]
    pub budget: f64,
    /// Match as of this date (YYYY-MM-DD; the first day of contacts); defaults to the month
    /// after the last loaded one.
    #[arg(long)]
    pub as_of: Option<String>,
    /// Forward matching: list the subscribers this offer serves best instead of a summary.
    #[arg(long)]
    pub offer: Option<String>,
    /// How many subscribers `--offer` lists.
    #[arg(long, default_value_t = 50)]
    pub top: usize,
    /// Seed of the random baseline.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct DecideArgs {
    /// Subscriber id or msisdn.
    pub key: String,
    /// Workspace directory.
    #[arg(long, env = "RETAIN_DIR")]
    pub dir: PathBuf,
    /// The channel the decision is for (sms, app, outbound_call, store, manager_visit);
    /// without it, the store counter.
    #[arg(long)]
    pub channel: Option<String>,
    /// The moment of the decision (YYYY-MM-DDTHH:MM); defaults to now.
    #[arg(long)]
    pub at: Option<String>,
    /// Print one JSON object (the default output is the same object, indented).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct OffersArgs {
    /// Workspace directory.
    #[arg(long, env = "RETAIN_DIR")]
    pub dir: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn run_match(args: &MatchArgs) -> anyhow::Result<()> {
    let workspace = Workspace::open(&args.dir)?;
    args.engine.apply(&workspace)?;
    let rt = super::runtime()?;
    let store = rt.block_on(Store::connect(&workspace.store_url()))?;
    let params =
        serde_json::json!({ "budget": args.budget, "as_of": args.as_of, "offer": args.offer });
    let run = super::recorded(
        &rt,
        &store,
        "match",
        &params,
        || {
            execute(
                &rt,
                &store,
                &workspace,
                args.budget,
                args.as_of.as_deref(),
                args.seed,
            )
        },
        |r| Ok(serde_json::to_value(&r.report)?),
    )?;
    rt.block_on(sync_library(&store, &run.library))?;
    if let Some(offer) = &args.offer {
        let rows = retain_offers::forward(&run, offer, args.top)?;
        if args.json {
            return output::print_json(
                &serde_json::json!({ "offer": offer, "count": rows.len(), "subscribers": rows }),
            );
        }
        let mut text = format!(
            "{offer}: the {} at-risk subscribers it serves best\n",
            rows.len()
        );
        for r in &rows {
            let _ = writeln!(
                text,
                "  {} {} {:6} {:18} via {:13} save {:.3} value {:.2}",
                r.subscriber_id,
                r.msisdn,
                r.level,
                r.reason,
                r.channel,
                r.save_rate,
                r.expected_value
            );
        }
        output::print_text(text.trim_end());
        return Ok(());
    }
    if args.json {
        return output::print_json(&run.report);
    }
    output::print_text(&describe(&run.report));
    if run.report.constraint_violations > 0 {
        anyhow::bail!(
            "the verifier found {} broken constraints",
            run.report.constraint_violations
        );
    }
    Ok(())
}

/// Runs the matching as of `as_of` (default: the month after the last loaded one), after
/// counting every campaign outcome the store holds into the offers' learning.
pub(crate) fn execute(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    workspace: &Workspace,
    budget: f64,
    as_of: Option<&str>,
    seed: u64,
) -> anyhow::Result<retain_offers::MatchRun> {
    rt.block_on(async {
        retain_campaign::learn(store, workspace).await?;
        let ctx = retain_features::session(workspace).await?;
        let as_of = match as_of {
            Some(text) => super::parse_as_of(text)?,
            None => retain_features::default_as_of(&ctx, retain_features::Cadence::Monthly).await?,
        };
        let options = MatchOptions {
            as_of,
            budget,
            seed,
            partitions: None,
        };
        Ok(retain_offers::run_match(&ctx, workspace, &options).await?)
    })
}

/// Keeps the operational store's copy of the library in step with the file.
async fn sync_library(store: &Store, library: &Library) -> anyhow::Result<()> {
    let offers: Vec<(String, serde_json::Value)> = library
        .offers
        .iter()
        .map(|o| Ok((o.id.clone(), serde_json::to_value(o)?)))
        .collect::<anyhow::Result<_>>()?;
    store.replace_offers(&offers).await?;
    Ok(())
}

fn describe(r: &MatchReport) -> String {
    let mut text = format!(
        "offer matching as of {}: {} at-risk of {} subscribers {:?}\nassigned {} for {:.2} of {:.2} yuan (expected cost {:.2}, expected net value {:.2}); constraint violations: {}\n",
        r.as_of,
        r.candidates,
        r.subscribers,
        r.candidates_by_level,
        r.assigned,
        r.cost,
        r.budget,
        r.expected_cost,
        r.expected_net_value,
        r.constraint_violations
    );
    let _ = writeln!(
        text,
        "uplift: {:?}, held-out Qini {} (AUUC {}) on {} campaign contacts",
        r.uplift.method, r.uplift.qini, r.uplift.auuc, r.uplift.campaign_rows
    );
    for (offer, t) in &r.by_offer {
        let _ = writeln!(text, "  {offer}: {} for {:.2}", t.count, t.cost);
    }
    let _ = writeln!(text, "left out: {:?}", r.skipped_by_constraint);
    if let Some(s) = &r.simulated_saved_value {
        let _ = writeln!(
            text,
            "simulated saved value (synthetic truth): retain {:.2}, random {:.2}, biggest discount {:.2}, oracle {:.2} ({}× random, {:.0}% of the oracle)",
            s.retain,
            s.random,
            s.max_discount,
            s.oracle,
            s.retain_vs_random,
            100.0 * s.retain_vs_oracle
        );
    }
    for n in &r.notes {
        let _ = writeln!(text, "note: {n}");
    }
    let _ = write!(
        text,
        "assignment: {}\nreport: reports/match.json",
        r.assignment_file.display()
    );
    text
}

pub(crate) fn decide(args: &DecideArgs) -> anyhow::Result<()> {
    let workspace = Workspace::open(&args.dir)?;
    let Some(dir) = retain_offers::latest_run_dir(&workspace) else {
        anyhow::bail!(
            "no match run yet: run `retain match --dir {} --budget AMOUNT` first",
            args.dir.display()
        );
    };
    let channel = match &args.channel {
        Some(c) => Some(Channel::from_code(c).ok_or_else(|| {
            anyhow::anyhow!(
                "--channel: {c:?} is none of sms, app, outbound_call, store, manager_visit"
            )
        })?),
        None => None,
    };
    let at = match &args.at {
        Some(t) => chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M")
            .map_err(|e| anyhow::anyhow!("--at {t:?}: {e} (expected YYYY-MM-DDTHH:MM)"))?,
        None => chrono::Local::now().naive_local(),
    };
    let rt = super::runtime()?;
    let msisdn = rt.block_on(async {
        let ctx = retain_features::session(&workspace).await?;
        retain_offers::msisdn_map(&ctx).await
    })?;
    let index = DecisionIndex::load(&dir, msisdn)?;
    let Some(decision) = index.decide(&args.key, at, channel) else {
        anyhow::bail!(
            "{:?} is no subscriber id or msisdn of this workspace",
            args.key
        );
    };
    // The counter pop-up: open work orders of launched campaigns for this subscriber, with
    // their talking points (the number stays masked).
    let orders = rt.block_on(async {
        let store = Store::connect(&workspace.store_url()).await?;
        anyhow::Ok(store.open_work_orders(decision.subscriber_id.get()).await?)
    })?;
    let mut value = serde_json::to_value(&decision)?;
    value["work_orders"] = serde_json::Value::Array(
        orders
            .into_iter()
            .map(|w| {
                let mut payload = w.payload;
                if let Some(p) = payload.as_object_mut() {
                    p.remove("msisdn");
                }
                serde_json::json!({
                    "work_order_id": w.id, "campaign_id": w.campaign_id, "channel": w.channel,
                    "purpose": w.purpose, "offer_id": w.offer_id, "due_date": w.due_date,
                    "details": payload,
                })
            })
            .collect(),
    );
    if args.json {
        output::print_json(&value)
    } else {
        output::print_text(&serde_json::to_string_pretty(&value)?);
        Ok(())
    }
}

pub(crate) fn list(args: &OffersArgs) -> anyhow::Result<()> {
    let workspace = Workspace::open(&args.dir)?;
    let library = Library::for_workspace(&workspace)?;
    // The strategy table is checked against this library: a broken one is an error here.
    let strategies = retain_offers::Strategies::for_workspace(&workspace, &library)?;
    if args.json {
        return output::print_json(&serde_json::json!({
            "source": library.source, "offers": library.offers, "strategies": strategies.cells,
        }));
    }
    let mut text = format!(
        "{} offers from {}\n",
        library.offers.len(),
        library.source.display()
    );
    for o in &library.offers {
        let _ = writeln!(
            text,
            "  {:20} {:16} {} / {}  [{}]",
            o.id,
            o.kind.code(),
            o.name_zh,
            o.name_en,
            o.reasons.join(", ")
        );
    }
    let _ = writeln!(text, "strategies (category × stage):");
    for c in &strategies.cells {
        let _ = writeln!(
            text,
            "  {:12} {:11} {}  [{}]",
            c.category,
            c.stage,
            c.measure_zh,
            c.offers.join(", ")
        );
    }
    output::print_text(text.trim_end());
    Ok(())
}

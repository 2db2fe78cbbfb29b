//! A match run: read, learn uplift, value every choice, arbitrate, verify, simulate against the
//! synthetic truth when present, and write the assignment, the decisions and the report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use datafusion::execution::context::SessionContext;
use retain_data::Workspace;
use serde::{Deserialize, Serialize};

use crate::assign::{Choice, Plan, Strategy, arbitrate, choices};
use crate::decide::{DecisionIndex, mask};
use crate::error::{Error, Result};
use crate::estimator::{Uplift, UpliftReport};
use crate::inputs::{Inputs, load};
use crate::library::Library;
use crate::policy::Policy;
use crate::simulate::{Simulated, Truth, simulate};
use crate::uplift::load_history;
use crate::verify::{Violation, verify};

/// What to run.
#[derive(Debug, Clone)]
pub struct MatchOptions {
    pub as_of: NaiveDate,
    /// Total budget, yuan of committed cost.
    pub budget: f64,
    /// Seed of the random baseline.
    pub seed: u64,
    /// Hash partitions of the subscribers to compute features in; `None`: one per million.
    pub partitions: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Default, Deserialize)]
pub struct Tally {
    pub count: usize,
    pub cost: f64,
}

/// A baseline plan's totals.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Baseline {
    pub assigned: usize,
    pub cost: f64,
    pub constraint_violations: usize,
    pub simulated: Option<Simulated>,
}

/// The three policies' saved value at the same budget.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedValue {
    pub retain: f64,
    pub random: f64,
    pub max_discount: f64,
    /// The plan of an oracle that knows every candidate's true cause and the true effects,
    /// under the same budget and rules: the most any plan could keep.
    pub oracle: f64,
    pub retain_vs_random: f64,
    pub retain_vs_max_discount: f64,
    /// The share of the oracle's saved value the plan keeps.
    pub retain_vs_oracle: f64,
}

/// The matching's report under `reports/`, which the dashboard shows.
pub const MATCH_REPORT: &str = "match.json";

/// What a match run did.
#[derive(Debug, Serialize, Deserialize)]
pub struct MatchReport {
    pub as_of: NaiveDate,
    pub budget: f64,
    pub subscribers: usize,
    pub candidates: usize,
    pub candidates_by_level: BTreeMap<String, usize>,
    pub assigned: usize,
    pub cost: f64,
    pub expected_cost: f64,
    pub expected_net_value: f64,
    pub constraint_violations: usize,
    pub violations: Vec<Violation>,
    pub assigned_by_level: BTreeMap<String, usize>,
    pub by_offer: BTreeMap<String, Tally>,
    pub by_channel: BTreeMap<String, Tally>,
    /// Assignments by the category of their reason (价格/质量/社会/便捷, `crate::category_of`).
    #[serde(default)]
    pub by_category: BTreeMap<String, Tally>,
    pub skipped_by_constraint: BTreeMap<String, usize>,
    pub uplift: UpliftReport,
    /// Present when the synthetic truth is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub simulated_saved_value: Option<SavedValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub simulated: Option<BTreeMap<String, Simulated>>,
    pub baselines: BTreeMap<String, Baseline>,
    /// The files' places are left out where they are nobody's business (the dashboard).
    #[serde(default, skip_serializing_if = "retain_data::is_empty_path")]
    pub library: PathBuf,
    pub offers: usize,
    pub notes: Vec<String>,
    /// Whether the features were read from the stored snapshot (`retain features`) or computed.
    pub features: retain_features::stored::Origin,
    /// What the reasons offers answer come from: the champion's `cause_model` (learned from what
    /// leavers said), or the strongest observed `signals` when it has none.
    #[serde(default)]
    pub reasons_from: String,
    #[serde(default, skip_serializing_if = "retain_data::is_empty_path")]
    pub assignment_file: PathBuf,
    #[serde(default, skip_serializing_if = "retain_data::is_empty_path")]
    pub skipped_file: PathBuf,
    #[serde(default, skip_serializing_if = "retain_data::is_empty_path")]
    pub decisions_dir: PathBuf,
}

/// The newest matching's report, if offers were matched.
pub fn read_match_report(workspace: &Workspace) -> Result<Option<MatchReport>> {
    Ok(retain_data::read_json(&match_report_file(workspace))?)
}

fn match_report_file(workspace: &Workspace) -> PathBuf {
    retain_features::outputs::reports_dir(workspace).join(MATCH_REPORT)
}

/// Everything a run computed, for callers that go on (forward matching, tests).
pub struct MatchRun {
    pub library: Library,
    pub policy: Policy,
    pub inputs: Inputs,
    pub uplift: Uplift,
    pub choices: Vec<Vec<Choice>>,
    pub plan: Plan,
    pub report: MatchReport,
}

/// The directory of a run's outputs.
#[must_use]
pub fn run_dir(workspace: &Workspace, as_of: NaiveDate) -> PathBuf {
    workspace.root().join("offers").join(as_of.to_string())
}

/// The newest run's directory whose decision index is complete: `policy.json` is the index's
/// last file, so a run that died while saving it is passed over.
#[must_use]
pub fn latest_run_dir(workspace: &Workspace) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(workspace.root().join("offers"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("policy.json").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

/// Everything before arbitration: the library, the policy, the inputs, the uplift estimate and
/// every candidate's choices. Campaigns narrow these before they arbitrate.
pub struct Prepared {
    pub library: Library,
    pub policy: Policy,
    pub inputs: Inputs,
    pub uplift: Uplift,
    pub choices: Vec<Vec<Choice>>,
}

/// Reads the workspace as of `as_of`, learns uplift from past campaigns, refines it by what
/// retain's own campaigns taught (`offers/learning.json`) and values every choice.
/// `partitions` as in [`MatchOptions`]; `seed` fixes the exploration draws.
pub async fn prepare(
    ctx: &SessionContext,
    workspace: &Workspace,
    as_of: NaiveDate,
    partitions: Option<u32>,
    seed: u64,
) -> Result<Prepared> {
    let library = Library::for_workspace(workspace)?;
    let policy = Policy::for_workspace(workspace)?;
    // Where a run's time goes, for operators sizing a cycle.
    let mut clock = std::time::Instant::now();
    let mut lap = |stage: &str| {
        tracing::info!(
            seconds = format!("{:.1}", clock.elapsed().as_secs_f64()),
            "match: {stage}"
        );
        clock = std::time::Instant::now();
    };
    let inputs = load(ctx, workspace, &library, &policy, as_of, partitions).await?;
    lap("features, eligibility, levels and contacts read");
    let history = load_history(ctx, workspace).await?;
    lap("past campaigns' snapshots computed");
    let uplift = Uplift::fit(&history, &policy)?
        .with_learning(crate::Learning::for_workspace(workspace)?, seed);
    lap("uplift fitted");
    let rows: Vec<usize> = inputs.candidates.iter().map(|c| c.row).collect();
    let individual = uplift.individual(&inputs.features, &rows)?;
    let choices = choices(&inputs, &library, &policy, &uplift, individual.as_deref());
    lap("choices valued");
    Ok(Prepared {
        library,
        policy,
        inputs,
        uplift,
        choices,
    })
}

/// The subscribers for whom `condition` (the rules' condition language over features, tags,
/// segments and warnings) holds as of `as_of`. An error names the column of the condition.
pub async fn select(
    ctx: &SessionContext,
    workspace: &Workspace,
    library: &Library,
    condition: &str,
    as_of: NaiveDate,
) -> Result<std::collections::HashSet<i64>> {
    let mut compiler = library.compiler.clone();
    let (sql, _) = retain_features::expr::parse(condition)
        .and_then(|e| compiler.condition(&e))
        .map_err(|e| {
            let (line, column) = retain_features::expr::line_column(condition, e.offset);
            Error::BadRequest(format!(
                "condition {condition:?}:{line}:{column}: {}",
                e.message
            ))
        })?;
    retain_features::conditions::register_outputs(ctx, workspace, &compiler).await?;
    let sql = format!(
        "WITH {} SELECT subscriber_id FROM f WHERE COALESCE({sql}, false)",
        retain_features::conditions::feature_ctes(&compiler, as_of)
    );
    let batches = retain_features::frame::query(ctx, &sql, "the target condition").await?;
    Ok(retain_features::frame::ids(&batches, "subscriber_id")?
        .into_iter()
        .collect())
}

/// Runs the matching and writes its outputs.
pub async fn run_match(
    ctx: &SessionContext,
    workspace: &Workspace,
    options: &MatchOptions,
) -> Result<MatchRun> {
    if !(options.budget.is_finite() && options.budget >= 0.0) {
        return Err(Error::BadRequest(format!(
            "the budget must be a number ≥ 0, not {}",
            options.budget
        )));
    }
    let Prepared {
        library,
        policy,
        inputs,
        uplift,
        choices,
    } = prepare(
        ctx,
        workspace,
        options.as_of,
        options.partitions,
        options.seed,
    )
    .await?;
    let plan = arbitrate(
        &inputs,
        &library,
        &policy,
        &choices,
        options.budget,
        Strategy::Retain,
    );
    let violations = verify(&plan, &inputs, &library, &policy, options.budget);
    // A plan that breaks a rule the verifier checks is a bug, never something to act on:
    // nothing of this run is written, so the last good assignment stays in place.
    if let Some(first) = violations.first() {
        return Err(Error::Internal(format!(
            "the plan breaks {} constraint(s) (first: {}{}: {}); nothing written",
            violations.len(),
            first
                .subscriber_id
                .map_or_else(String::new, |id| format!("subscriber {id} ")),
            first.constraint,
            first.detail
        )));
    }
    let truth = Truth::load(&workspace.truth_dir())?;
    let mut baselines = BTreeMap::new();
    let mut simulated = BTreeMap::new();
    if let Some(t) = &truth {
        simulated.insert("retain".to_owned(), simulate(&plan, t, &uplift.cells));
    }
    for (name, strategy) in [
        ("random", Strategy::Random(options.seed)),
        ("max_discount", Strategy::MaxDiscount),
    ] {
        let p = arbitrate(
            &inputs,
            &library,
            &policy,
            &choices,
            options.budget,
            strategy,
        );
        let sim = truth.as_ref().map(|t| simulate(&p, t, &uplift.cells));
        if let Some(s) = sim {
            simulated.insert(name.to_owned(), s);
        }
        baselines.insert(
            name.to_owned(),
            Baseline {
                assigned: p.assignments.len(),
                cost: crate::round2(p.cost),
                constraint_violations: verify(&p, &inputs, &library, &policy, options.budget).len(),
                simulated: sim,
            },
        );
    }
    if let Some(t) = &truth {
        let oracle = arbitrate(
            &inputs,
            &library,
            &policy,
            &crate::simulate::oracle_choices(&inputs, &library, &choices, t, &uplift.cells),
            options.budget,
            Strategy::Retain,
        );
        let sim = simulate(&oracle, t, &uplift.cells);
        simulated.insert("oracle".to_owned(), sim);
        baselines.insert(
            "oracle".to_owned(),
            Baseline {
                assigned: oracle.assignments.len(),
                cost: crate::round2(oracle.cost),
                constraint_violations: verify(&oracle, &inputs, &library, &policy, options.budget)
                    .len(),
                simulated: Some(sim),
            },
        );
    }
    let saved = truth.as_ref().map(|_| {
        let v = |k: &str| simulated.get(k).map_or(0.0, |s: &Simulated| s.saved_value);
        let ratio = |a: f64, b: f64| if b > 0.0 { crate::round2(a / b) } else { 0.0 };
        SavedValue {
            retain: v("retain"),
            random: v("random"),
            max_discount: v("max_discount"),
            oracle: v("oracle"),
            retain_vs_random: ratio(v("retain"), v("random")),
            retain_vs_oracle: ratio(v("retain"), v("oracle")),
            retain_vs_max_discount: ratio(v("retain"), v("max_discount")),
        }
    });

    let dir = run_dir(workspace, options.as_of);
    let index = DecisionIndex::build(&inputs, &library, &policy, &choices);
    index.save(&dir)?;
    let (assignment_file, skipped_file) = write_plan(&dir, &plan, &inputs)?;

    let mut report = MatchReport {
        as_of: options.as_of,
        budget: options.budget,
        subscribers: inputs.subscribers,
        candidates: inputs.candidates.len(),
        candidates_by_level: count(inputs.candidates.iter().map(|c| c.level.code())),
        assigned: plan.assignments.len(),
        cost: crate::round2(plan.cost),
        expected_cost: crate::round2(plan.expected_cost),
        expected_net_value: crate::round2(plan.expected_value),
        constraint_violations: violations.len(),
        violations: violations.into_iter().take(50).collect(),
        assigned_by_level: count(plan.assignments.iter().map(|a| a.level.code())),
        by_offer: BTreeMap::new(),
        by_channel: BTreeMap::new(),
        by_category: BTreeMap::new(),
        skipped_by_constraint: count(plan.skipped.iter().map(|s| s.constraint)),
        uplift: uplift.report.clone(),
        simulated_saved_value: saved,
        simulated: truth.as_ref().map(|_| simulated),
        baselines,
        library: library.source.clone(),
        offers: library.offers.len(),
        notes: inputs.notes.clone(),
        features: inputs.features_origin,
        reasons_from: inputs.reasons_from.to_owned(),
        assignment_file,
        skipped_file,
        decisions_dir: dir,
    };
    for a in &plan.assignments {
        let t = report.by_offer.entry(a.offer_id.clone()).or_default();
        t.count += 1;
        t.cost = crate::round2(t.cost + a.cost);
        let t = report
            .by_channel
            .entry(a.channel.code().to_owned())
            .or_default();
        t.count += 1;
        t.cost = crate::round2(t.cost + a.cost);
        let t = report
            .by_category
            .entry(crate::strategy::category_of(a.reason).to_owned())
            .or_default();
        t.count += 1;
        t.cost = crate::round2(t.cost + a.cost);
    }
    retain_data::write_json(&match_report_file(workspace), &report)?;
    Ok(MatchRun {
        library,
        policy,
        inputs,
        uplift,
        choices,
        plan,
        report,
    })
}

fn count<'a>(items: impl Iterator<Item = &'a str>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for i in items {
        *m.entry(i.to_owned()).or_default() += 1;
    }
    m
}

fn write_plan(dir: &Path, plan: &Plan, inputs: &Inputs) -> Result<(PathBuf, PathBuf)> {
    let msisdn: std::collections::HashMap<i64, &str> = inputs
        .candidates
        .iter()
        .map(|c| (c.subscriber_id, c.msisdn.as_str()))
        .collect();
    let csv_err = |e| Error::csv("writing the assignment", e);
    let mut w = csv::Writer::from_writer(retain_data::BOM.to_vec());
    w.write_record([
        "subscriber_id",
        "msisdn",
        "level",
        "reason",
        "offer_id",
        "kind",
        "channel",
        "day",
        "time",
        "p_churn",
        "clv",
        "save_rate",
        "method",
        "cost",
        "expected_cost",
        "expected_value",
        "binding",
    ])
    .map_err(csv_err)?;
    for a in &plan.assignments {
        w.write_record([
            a.subscriber_id.to_string(),
            mask(msisdn.get(&a.subscriber_id).copied().unwrap_or("")),
            a.level.code().to_owned(),
            a.reason.to_owned(),
            a.offer_id.clone(),
            a.kind.code().to_owned(),
            a.channel.code().to_owned(),
            a.day.to_string(),
            a.time
                .map(|t| t.format("%H:%M").to_string())
                .unwrap_or_default(),
            format!("{:.4}", a.p_churn),
            format!("{:.2}", a.clv),
            format!("{:.4}", a.save_rate),
            serde_json::to_value(a.method)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            format!("{:.2}", a.cost),
            format!("{:.2}", a.expected_cost),
            format!("{:.2}", a.expected_value),
            a.binding.clone().unwrap_or_default(),
        ])
        .map_err(csv_err)?;
    }
    let bytes = w.into_inner().map_err(|e| Error::Internal(e.to_string()))?;
    let assignment = dir.join("assignment.csv");
    retain_data::write_atomically(&assignment, &bytes)?;
    let mut w = csv::Writer::from_writer(retain_data::BOM.to_vec());
    w.write_record(["subscriber_id", "level", "constraint", "detail"])
        .map_err(csv_err)?;
    for s in &plan.skipped {
        w.write_record([
            s.subscriber_id.to_string(),
            s.level.code().to_owned(),
            s.constraint.to_owned(),
            s.detail.clone(),
        ])
        .map_err(csv_err)?;
    }
    let bytes = w.into_inner().map_err(|e| Error::Internal(e.to_string()))?;
    let skipped = dir.join("skipped.csv");
    retain_data::write_atomically(&skipped, &bytes)?;
    Ok((assignment, skipped))
}

/// Forward matching (offer → who): the at-risk subscribers this offer serves best, by its
/// expected net value for them.
#[derive(Debug, Serialize)]
pub struct ForwardRow {
    pub subscriber_id: i64,
    pub msisdn: String,
    pub level: &'static str,
    pub reason: &'static str,
    pub channel: &'static str,
    pub save_rate: f64,
    pub expected_value: f64,
}

/// The `top` subscribers for whom `offer_id` has the highest positive expected value.
pub fn forward(run: &MatchRun, offer_id: &str, top: usize) -> Result<Vec<ForwardRow>> {
    let Some(oi) = run.library.offers.iter().position(|o| o.id == offer_id) else {
        return Err(Error::BadRequest(format!(
            "there is no offer {offer_id:?} in the library"
        )));
    };
    let mut rows: Vec<ForwardRow> = run
        .inputs
        .candidates
        .iter()
        .zip(&run.choices)
        .filter_map(|(c, cs)| {
            let best = cs
                .iter()
                .find(|x| x.offer as usize == oi && x.expected_value > 0.0)?;
            Some(ForwardRow {
                subscriber_id: c.subscriber_id,
                msisdn: mask(&c.msisdn),
                level: c.level.code(),
                reason: crate::REASONS[c.reason].0,
                channel: best.channel.code(),
                save_rate: crate::round6(best.save_rate),
                expected_value: crate::round2(best.expected_value),
            })
        })
        .collect();
    rows.sort_by(|a, b| b.expected_value.total_cmp(&a.expected_value));
    rows.truncate(top);
    Ok(rows)
}

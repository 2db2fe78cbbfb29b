//! Backtest: on labelled history, how well each rule and each level foretold churn.
//!
//! For every monthly snapshot S with enough history before it and an observed outcome after it,
//! all subscribers alive at S are scored with data before S, and a subscriber counts as a churner
//! when a churn label (quantity or value) has its effective month in `[S, S + horizon)`. Hits
//! and true positives are summed over snapshots; precision, recall and lift over the base rate
//! follow, overall and per tenure cohort. This is the report an analyst re-tunes rules with.
//! Subscribers a retention campaign treated inside the outcome window are left out: the
//! campaign, not the rules, may have decided their outcome.

use std::collections::BTreeMap;

use chrono::Months;
use datafusion::arrow::array::Array;
use datafusion::arrow::array::AsArray as _;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::execution::context::SessionContext;
use serde::{Deserialize, Serialize};

use crate::error::Result;

use crate::query::scoring_query;
use crate::rules::RuleSet;
use crate::run::{COHORTS, LEVELS, month_label, strings};

/// Backtest settings.
#[derive(Debug, Clone)]
pub struct BacktestOptions {
    /// A warning counts as right when churn takes effect within this many months of it.
    pub horizon_months: u32,
    /// Months of history a snapshot needs before it (the longest rule window).
    pub history_months: u32,
    pub labels: retain_features::LabelConfig,
}

impl Default for BacktestOptions {
    fn default() -> Self {
        Self {
            horizon_months: 1,
            history_months: 6,
            labels: retain_features::LabelConfig::default(),
        }
    }
}

/// Hits and outcomes of one rule or level.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Metrics {
    pub hits: u64,
    pub true_positives: u64,
    pub precision: f64,
    pub recall: f64,
    pub lift: f64,
}

impl Metrics {
    fn finish(&mut self, population: u64, positives: u64) {
        let base = if population > 0 {
            positives as f64 / population as f64
        } else {
            0.0
        };
        self.precision = ratio(self.true_positives, self.hits);
        self.recall = ratio(self.true_positives, positives);
        self.lift = if base > 0.0 {
            round(self.precision / base)
        } else {
            0.0
        };
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        round(a as f64 / b as f64)
    }
}

fn round(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// One rule's line in the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleMetrics {
    pub id: String,
    pub name_zh: String,
    pub name_en: String,
    pub points: i64,
    #[serde(flatten)]
    pub metrics: Metrics,
    /// Churners it caught who had not complained in the six months before: warned before the
    /// complaint, if one ever came.
    #[serde(default)]
    pub before_complaint: u64,
    /// Of those, how many complained between the snapshot and the end of the outcome window.
    #[serde(default)]
    pub complained_later: u64,
    /// Their mean days from the snapshot to that first complaint: the lead the rule gives over
    /// waiting for the complaint.
    #[serde(default)]
    pub lead_days: Option<f64>,
}

/// How many of a slice had a score, and how many of them churned: where a threshold would fall.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreCount {
    pub score: i64,
    pub population: u64,
    pub positives: u64,
}

/// Metrics of a population slice (all, or one cohort).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Slice {
    pub population: u64,
    pub positives: u64,
    pub base_rate: f64,
    pub levels: BTreeMap<String, Metrics>,
    pub potential_churners: Metrics,
    pub rules: Vec<RuleMetrics>,
    /// Population and churners by score, lowest first (reports before scores were kept have
    /// none).
    #[serde(default)]
    pub scores: Vec<ScoreCount>,
    /// The involuntary churners among the positives (arrears cut-offs, 非自愿), counted apart.
    #[serde(default)]
    pub involuntary: Involuntary,
}

/// Involuntary churners of a slice: how many, and how many the warning caught.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Involuntary {
    pub churners: u64,
    /// Of those, the potential churners the warning flagged.
    pub caught: u64,
    /// Caught by level.
    pub by_level: BTreeMap<String, u64>,
    /// Voluntary churners (positives − involuntary) the warning caught.
    pub voluntary_caught: u64,
}

/// The backtest's report under `reports/`, which the rules editor shows.
pub const BACKTEST_REPORT: &str = "warn-backtest.json";

/// Writes the backtest's report, whole or not at all.
pub fn write_backtest_report(
    workspace: &retain_data::Workspace,
    report: &BacktestReport,
) -> Result<()> {
    Ok(retain_data::write_json(
        &backtest_report_file(workspace),
        report,
    )?)
}

/// The newest backtest's report, if the rules were backtested.
pub fn read_backtest_report(workspace: &retain_data::Workspace) -> Result<Option<BacktestReport>> {
    Ok(retain_data::read_json(&backtest_report_file(workspace))?)
}

fn backtest_report_file(workspace: &retain_data::Workspace) -> std::path::PathBuf {
    retain_features::outputs::reports_dir(workspace).join(BACKTEST_REPORT)
}

/// The backtest report (the `--json` object).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BacktestReport {
    pub snapshots: Vec<String>,
    pub horizon_months: u32,
    pub suspension_gap_months: u32,
    #[serde(flatten)]
    pub overall: Slice,
    pub cohorts: BTreeMap<String, Slice>,
}

/// Runs the backtest. Registers the churn labels in the session.
pub async fn backtest(
    ctx: &SessionContext,
    rules: &RuleSet,
    options: &BacktestOptions,
) -> Result<BacktestReport> {
    retain_features::register_labels(ctx, &options.labels).await?;
    let dates = retain_features::observable_snapshots(
        ctx,
        options.history_months,
        options.horizon_months + options.labels.suspension_gap_months,
    )
    .await?;
    // Subscribers a retention campaign treated in the outcome window: the campaign may have
    // changed their outcome, so they say nothing about the rules (their controls stay).
    let treated = ctx.table_exist("campaign_history").unwrap_or(false);
    let n = rules.rules.len();
    // Per cohort: population, positives, then (hits, tp) for each rule, each level, potential.
    let mut sums: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut by_score: BTreeMap<(String, i64), (u64, u64)> = BTreeMap::new();
    // Then involuntary churners: all, caught as potential churners, caught by level.
    let base = 2 + 2 * (n + LEVELS.len() + 1);
    // Then, per rule, the churners caught before any complaint, those of them who complained
    // later, and the sum of their days to it.
    let quiet = base + 2 + LEVELS.len();
    let width = quiet + 3 * n;
    for &s in &dates {
        let query = scoring_query(rules, s);
        let end = s + Months::new(options.horizon_months);
        let mut aggregates = vec!["COUNT(*)".to_owned(), "SUM(pos)".to_owned()];
        let mut flag = |condition: String| {
            aggregates.push(format!("SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)"));
            aggregates.push(format!(
                "SUM(CASE WHEN ({condition}) AND pos = 1 THEN 1 ELSE 0 END)"
            ));
        };
        for i in 0..n {
            flag(format!("r{i}"));
        }
        for level in LEVELS {
            flag(format!("level = '{level}'"));
        }
        flag("potential".to_owned());
        aggregates.push("SUM(involuntary)".to_owned());
        aggregates
            .push("SUM(CASE WHEN potential AND involuntary = 1 THEN 1 ELSE 0 END)".to_owned());
        for level in LEVELS {
            aggregates.push(format!(
                "SUM(CASE WHEN level = '{level}' AND involuntary = 1 THEN 1 ELSE 0 END)"
            ));
        }
        for i in 0..n {
            let caught = format!("r{i} AND pos = 1 AND quiet = 1");
            aggregates.push(format!("SUM(CASE WHEN {caught} THEN 1 ELSE 0 END)"));
            aggregates.push(format!(
                "SUM(CASE WHEN {caught} AND next_days IS NOT NULL THEN 1 ELSE 0 END)"
            ));
            aggregates.push(format!("SUM(CASE WHEN {caught} THEN next_days END)"));
        }
        let quiet_from = s - Months::new(6);
        let outcome_end = end + Months::new(options.labels.suspension_gap_months);
        let sql = format!(
            "WITH {ctes}, scored AS ({select}),
             lab AS (SELECT DISTINCT subscriber_id FROM {labels}
                     WHERE effective_month >= DATE '{s}' AND effective_month < DATE '{end}'),
             cut_off AS ({cut_offs}),
             left_already AS (SELECT DISTINCT subscriber_id FROM {labels}
                     WHERE churn_type = 'quantity' AND effective_month < DATE '{s}'),
             treated AS ({treated}),
             bt_complained AS (SELECT DISTINCT subscriber_id FROM events WHERE kind = 'complaint'
                     AND \"timestamp\" >= TIMESTAMP '{quiet_from}T00:00:00'
                     AND \"timestamp\" < TIMESTAMP '{s}T00:00:00'),
             bt_next AS (SELECT subscriber_id,
                     CAST(MIN(to_unixtime(\"timestamp\") - to_unixtime(TIMESTAMP '{s}T00:00:00')) / 86400 AS BIGINT) AS days
                     FROM events WHERE kind = 'complaint'
                     AND \"timestamp\" >= TIMESTAMP '{s}T00:00:00'
                     AND \"timestamp\" < TIMESTAMP '{outcome_end}T00:00:00'
                     GROUP BY subscriber_id),
             -- What is known of each subscriber, side by side: one join onto the scores, since
             -- a plan decoded on a cluster's scheduler must stay within its depth limit.
             facts AS (SELECT subscriber_id, MAX(pos) AS pos, MAX(inv) AS inv, MAX(gone) AS gone,
                          MAX(tr) AS tr, MAX(compl) AS compl, MIN(next_days) AS next_days
                   FROM (SELECT subscriber_id, 1 AS pos, 0 AS inv, 0 AS gone, 0 AS tr, 0 AS compl,
                                CAST(NULL AS BIGINT) AS next_days FROM lab
                         UNION ALL SELECT subscriber_id, 0, 1, 0, 0, 0, CAST(NULL AS BIGINT) FROM cut_off
                         UNION ALL SELECT subscriber_id, 0, 0, 1, 0, 0, CAST(NULL AS BIGINT) FROM left_already
                         UNION ALL SELECT subscriber_id, 0, 0, 0, 1, 0, CAST(NULL AS BIGINT) FROM treated
                         UNION ALL SELECT subscriber_id, 0, 0, 0, 0, 1, CAST(NULL AS BIGINT) FROM bt_complained
                         UNION ALL SELECT subscriber_id, 0, 0, 0, 0, 0, days FROM bt_next) u
                   GROUP BY subscriber_id),
             j AS (SELECT scored.*, COALESCE(fx.pos, 0) AS pos,
                          COALESCE(fx.inv, 0) AS involuntary,
                          1 - COALESCE(fx.compl, 0) AS quiet,
                          fx.next_days AS next_days
                   FROM scored
                   LEFT JOIN facts fx ON fx.subscriber_id = scored.subscriber_id
                   WHERE COALESCE(fx.gone, 0) = 0 AND COALESCE(fx.tr, 0) = 0)
             SELECT cohort, score, {aggs} FROM j GROUP BY cohort, score",
            ctes = query.ctes,
            select = query.select,
            labels = retain_features::LABELS_VIEW,
            cut_offs = retain_features::cut_offs_sql("effective_month", s, end, false),
            treated = if treated {
                format!(
                    "SELECT DISTINCT subscriber_id FROM campaign_history WHERE arm = 'treatment' \
                     AND period >= DATE '{s}' AND period < DATE '{end}'"
                )
            } else {
                "SELECT CAST(NULL AS BIGINT) AS subscriber_id WHERE false".to_owned()
            },
            aggs = aggregates
                .iter()
                .enumerate()
                .map(|(i, a)| format!("CAST({a} AS BIGINT) AS a{i}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        for batch in retain_features::frame::query(ctx, &sql, "the backtest").await? {
            let cohorts = strings(batch.column(0))?;
            let scores = batch.column(1).as_primitive::<Int64Type>();
            for row in 0..batch.num_rows() {
                let cohort = cohorts.value(row).to_owned();
                let entry = sums.entry(cohort.clone()).or_insert_with(|| vec![0; width]);
                for (k, slot) in entry.iter_mut().enumerate() {
                    let a = batch.column(k + 2).as_primitive::<Int64Type>();
                    if !a.is_null(row) {
                        *slot += a.value(row) as u64;
                    }
                }
                let counts = by_score
                    .entry((cohort, scores.value(row)))
                    .or_insert((0, 0));
                counts.0 += entry_value(&batch, 2, row);
                counts.1 += entry_value(&batch, 3, row);
            }
        }
        tracing::info!(snapshot = %s, "backtest snapshot scored");
    }

    let histogram = |cohort: Option<&str>| -> Vec<ScoreCount> {
        let mut out: BTreeMap<i64, ScoreCount> = BTreeMap::new();
        for ((c, score), (n, pos)) in &by_score {
            if cohort.is_none_or(|want| want == c) {
                let e = out.entry(*score).or_insert(ScoreCount {
                    score: *score,
                    ..ScoreCount::default()
                });
                e.population += n;
                e.positives += pos;
            }
        }
        out.into_values().collect()
    };
    let slice = |v: &[u64], cohort: Option<&str>| -> Slice {
        let (population, positives) = (v[0], v[1]);
        let metric = |k: usize| {
            let mut m = Metrics {
                hits: v[2 + 2 * k],
                true_positives: v[3 + 2 * k],
                ..Metrics::default()
            };
            m.finish(population, positives);
            m
        };
        Slice {
            population,
            positives,
            base_rate: ratio(positives, population),
            rules: rules
                .rules
                .iter()
                .enumerate()
                .map(|(i, r)| RuleMetrics {
                    id: r.id.clone(),
                    name_zh: r.name_zh.clone(),
                    name_en: r.name_en.clone(),
                    points: r.points,
                    metrics: metric(i),
                    before_complaint: v[quiet + 3 * i],
                    complained_later: v[quiet + 3 * i + 1],
                    lead_days: (v[quiet + 3 * i + 1] > 0)
                        .then(|| round(v[quiet + 3 * i + 2] as f64 / v[quiet + 3 * i + 1] as f64)),
                })
                .collect(),
            levels: LEVELS
                .iter()
                .enumerate()
                .map(|(j, l)| ((*l).to_owned(), metric(n + j)))
                .collect(),
            potential_churners: metric(n + LEVELS.len()),
            scores: histogram(cohort),
            involuntary: Involuntary {
                churners: v[base],
                caught: v[base + 1],
                by_level: LEVELS
                    .iter()
                    .enumerate()
                    .map(|(j, l)| ((*l).to_owned(), v[base + 2 + j]))
                    .collect(),
                voluntary_caught: v[3 + 2 * (n + LEVELS.len())].saturating_sub(v[base + 1]),
            },
        }
    };
    let mut total = vec![0; width];
    for v in sums.values() {
        for (t, x) in total.iter_mut().zip(v) {
            *t += x;
        }
    }
    let cohorts = COHORTS
        .iter()
        .map(|c| {
            (
                (*c).to_owned(),
                slice(
                    sums.get(*c).map_or(&vec![0; width][..], |v| &v[..]),
                    Some(c),
                ),
            )
        })
        .collect();
    Ok(BacktestReport {
        snapshots: dates.iter().map(|d| month_label(*d)).collect(),
        horizon_months: options.horizon_months,
        suspension_gap_months: options.labels.suspension_gap_months,
        overall: slice(&total, None),
        cohorts,
    })
}

/// Column `k` of a backtest row, zero when null.
fn entry_value(batch: &datafusion::arrow::record_batch::RecordBatch, k: usize, row: usize) -> u64 {
    let a = batch.column(k).as_primitive::<Int64Type>();
    if a.is_null(row) {
        0
    } else {
        a.value(row) as u64
    }
}

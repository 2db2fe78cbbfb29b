//! The model's evaluation report (`<workspace>/reports/model.json` and `model.html`): what a
//! training run measured on the snapshot it never saw, by tenure cohort, in a rolling backtest,
//! against the synthetic truth's causes when there is one, and how far the features drifted.
//! Written and read here only.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use retain_data::Workspace;
use serde::{Deserialize, Serialize};

use crate::champion::Decision;
use crate::error::{Error, Result};
use crate::metrics::{CalibrationBin, Decile, evaluate, psi};
use crate::table::Table;
use crate::train::{ChurnModel, FitReport, Score, TrainReport, rolling_backtest, rows_where};

/// The report's file under `reports/`.
const FILE: &str = "model.json";

/// One tenure cohort's metrics on the test snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CohortMetrics {
    pub rows: usize,
    pub churners: usize,
    pub auc: f64,
    pub pr_auc: f64,
    pub top_decile_lift: f64,
    pub brier: f64,
}

/// A feature whose test-snapshot distribution moved from the training rows'.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureDrift {
    pub feature: String,
    pub psi: f64,
}

/// One fold of the rolling backtest, its test snapshot as a month.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BacktestFold {
    pub test_snapshot: String,
    pub rows_train: usize,
    pub rows_test: usize,
    pub auc: f64,
    pub pr_auc: f64,
    pub top_decile_lift: f64,
    pub brier: f64,
}

/// What `retain train` reports (its `--json` object, `reports/model.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelReport {
    pub version: u32,
    /// Left out where its place on the server's disk is nobody's business (the dashboard).
    #[serde(default, skip_serializing_if = "retain_data::is_empty_path")]
    pub model_dir: PathBuf,
    pub auc: f64,
    pub pr_auc: f64,
    pub log_loss: f64,
    pub brier: f64,
    pub top_decile_lift: f64,
    pub train_seconds: f64,
    pub rows_train: usize,
    pub rows_valid: usize,
    pub rows_test: usize,
    pub best_iteration: i32,
    pub blend: FitReport,
    pub empc: f64,
    /// How often a caught churner's top reason is its true cause (synthetic data only).
    pub reason_top1_agreement: Option<f64>,
    pub deciles: Vec<Decile>,
    pub calibration: Vec<CalibrationBin>,
    /// The fifteen most important features.
    pub importance: Vec<(String, f64)>,
    /// Metrics by tenure cohort; absent without a `tenure_months` feature.
    pub cohorts: Option<BTreeMap<String, CohortMetrics>>,
    /// The ten features that drifted most.
    pub feature_drift: Vec<FeatureDrift>,
    /// Features of the set the model does not use, and why: the training snapshots could not
    /// see them as the newest month does (a feature computed one way in training and another
    /// in scoring is a skew, not a signal).
    #[serde(default)]
    pub features_left_out: Vec<LeftOut>,
    pub backtest: Vec<BacktestFold>,
    /// This version as challenger: the champion it met on the test month, both standings,
    /// and whether it was promoted and why. Absent in reports older than champions.
    #[serde(default)]
    pub promotion: Option<Decision>,
    /// The test month's churners, voluntary and involuntary (arrears cut-offs, 非自愿) apart,
    /// and how many of each the model ranked into its riskiest tenth.
    #[serde(default)]
    pub churners_by_class: Option<ChurnersByClass>,
    /// How the reasons were ranked and how often the top one names the cause.
    #[serde(default)]
    pub reasons: Option<ReasonReport>,
}

/// Of the churners in the test month's riskiest tenth with a known cause, how many the top
/// reason names.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Agreement {
    pub caught: usize,
    pub agreed: usize,
}

/// The reasons' ranking and its agreement with what is known of the causes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReasonReport {
    /// `cause_model` when a cause model learned from stated reasons ranks them, else
    /// `contributions`.
    pub ranked_by: String,
    /// Leavers with a stated reason the cause model learned from.
    pub learned_from: usize,
    /// The share of stated reasons found to be noise rather than the cause, and how that
    /// noise spreads over the reasons ("too expensive" is the polite answer to anything).
    pub stated_noise: f64,
    pub noise_by_reason: BTreeMap<String, f64>,
    /// Per true cause (synthetic truth only), as a reason category.
    pub by_true_cause: Option<BTreeMap<String, Agreement>>,
    /// How often the top reason is what the caught leaver said at the exit (离网原因), overall
    /// and per stated reason: the check an operator can make without a truth.
    pub stated_agreement: Option<f64>,
    pub by_stated_reason: BTreeMap<String, Agreement>,
}

/// Churners of the test month by class.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChurnersByClass {
    pub voluntary: usize,
    pub involuntary: usize,
    pub voluntary_top_decile: usize,
    pub involuntary_top_decile: usize,
}

impl ChurnersByClass {
    /// Counts the positives of `labels` by whether `involuntary` holds for their row, and
    /// those among the riskiest tenth by `probabilities`.
    #[must_use]
    pub fn count(
        labels: &[bool],
        probabilities: &[f64],
        involuntary: impl Fn(usize) -> bool,
    ) -> ChurnersByClass {
        let mut order: Vec<usize> = (0..labels.len().min(probabilities.len())).collect();
        order.sort_by(|a, b| probabilities[*b].total_cmp(&probabilities[*a]));
        let top = order.len().div_ceil(10);
        let mut out = ChurnersByClass::default();
        for (rank, &i) in order.iter().enumerate() {
            if !labels[i] {
                continue;
            }
            let (all, in_top) = if involuntary(i) {
                (&mut out.involuntary, &mut out.involuntary_top_decile)
            } else {
                (&mut out.voluntary, &mut out.voluntary_top_decile)
            };
            *all += 1;
            *in_top += usize::from(rank < top);
        }
        out
    }
}

/// A feature left out of the model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LeftOut {
    pub feature: String,
    /// Share of the training snapshots' rows with a value.
    pub seen_in_training: f64,
    /// Share of the newest snapshot's rows with a value.
    pub seen_in_newest: f64,
}

/// Evaluates a model trained on `table` (saved as `version` in `model_dir`), its rolling
/// backtest over `folds` snapshots included.
pub fn model_report<S: std::hash::BuildHasher>(
    workspace: &Workspace,
    table: &Table,
    (model, report): (&ChurnModel, &TrainReport),
    (version, model_dir): (u32, PathBuf),
    folds: usize,
    stated: &HashMap<i64, &'static str, S>,
) -> Result<ModelReport> {
    let last = table.snapshot.iter().copied().max().unwrap_or(0);
    let test = table.subset(&rows_where(table, |s| s == last));
    // Reasons for the top decile: where the agreement with the truth is measured.
    let scores = model.score(&test, 0.1)?;
    let caught = caught(&test, &scores);
    let truth = truth_categories(&workspace.truth_dir());
    let by_true_cause = truth.as_ref().map(|t| tally(&caught, &scores, t));
    let agreement = by_true_cause.as_ref().map(share);
    let by_stated_reason = tally(&caught, &scores, stated);
    let reasons = ReasonReport {
        ranked_by: if model.causes.is_some() {
            "cause_model"
        } else {
            "contributions"
        }
        .into(),
        learned_from: model.causes.as_ref().map_or(0, |c| c.rows),
        stated_noise: model
            .causes
            .as_ref()
            .map_or(0.0, |c| (c.noise * 10_000.0).round() / 10_000.0),
        noise_by_reason: model
            .causes
            .as_ref()
            .map(|c| {
                c.classes
                    .iter()
                    .cloned()
                    .zip(
                        c.noise_reasons
                            .iter()
                            .map(|f| (f * 10_000.0).round() / 10_000.0),
                    )
                    .collect()
            })
            .unwrap_or_default(),
        by_true_cause,
        stated_agreement: (!by_stated_reason.is_empty()).then(|| share(&by_stated_reason)),
        by_stated_reason,
    };
    let m = &report.test;
    let backtest = rolling_backtest(table, folds)?
        .into_iter()
        .map(|f| BacktestFold {
            test_snapshot: day_to_month(f.test_snapshot),
            rows_train: f.rows_train,
            rows_test: f.rows_test,
            auc: f.auc,
            pr_auc: f.pr_auc,
            top_decile_lift: f.top_decile_lift,
            brier: f.brier,
        })
        .collect();
    Ok(ModelReport {
        version,
        model_dir,
        auc: m.auc,
        pr_auc: m.pr_auc,
        log_loss: m.log_loss,
        brier: m.brier,
        top_decile_lift: m.top_decile_lift,
        train_seconds: report.fit.train_seconds,
        rows_train: report.rows_train,
        rows_valid: report.rows_valid,
        rows_test: report.rows_test,
        best_iteration: report.fit.best_iteration,
        blend: report.fit.clone(),
        empc: m.empc,
        reason_top1_agreement: agreement,
        deciles: m.deciles.clone(),
        calibration: m.calibration.clone(),
        importance: report.importance.iter().take(15).cloned().collect(),
        cohorts: cohort_metrics(&test, &scores),
        feature_drift: feature_drift(table, last),
        features_left_out: Vec::new(),
        backtest,
        promotion: None,
        churners_by_class: None,
        reasons: Some(reasons),
    })
}

/// Writes `reports/model.json` and the page `reports/model.html`, each whole or not at all.
pub fn write_model_report(workspace: &Workspace, report: &ModelReport) -> Result<()> {
    let dir = workspace.root().join("reports");
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let json = serde_json::to_value(report).map_err(|e| Error::Data(e.to_string()))?;
    let text = serde_json::to_string_pretty(&json).map_err(|e| Error::Data(e.to_string()))?;
    retain_data::write_atomically(&dir.join(FILE), text.as_bytes())?;
    retain_data::write_atomically(
        &dir.join("model.html"),
        crate::report_html::html(&json).as_bytes(),
    )?;
    Ok(())
}

/// The newest training's report, if a model was trained.
pub fn read_model_report(workspace: &Workspace) -> Result<Option<ModelReport>> {
    Ok(retain_data::read_json(
        &workspace.root().join("reports").join(FILE),
    )?)
}

/// The synthetic truth's cause of each churner, mapped to the model's reason categories.
fn truth_categories(truth: &Path) -> Option<HashMap<i64, &'static str>> {
    let mut reader = csv::Reader::from_path(truth.join("churn.csv")).ok()?;
    let mut map = HashMap::new();
    for record in reader.records().flatten() {
        let category = crate::reasons::cause_reason(record.get(3)?);
        if record.get(1)? == "churned" {
            map.insert(record.get(0)?.parse().ok()?, category);
        }
    }
    Some(map)
}

/// The churners among the riskiest tenth of the test rows.
fn caught(test: &Table, scores: &[Score]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].probability.total_cmp(&scores[*a].probability));
    order[..scores.len() / 10]
        .iter()
        .copied()
        .filter(|i| test.label[*i])
        .collect()
}

/// Per known cause of the `caught` rows, how many there are and how many the top reason names.
fn tally<S: std::hash::BuildHasher>(
    caught: &[usize],
    scores: &[Score],
    causes: &HashMap<i64, &'static str, S>,
) -> BTreeMap<String, Agreement> {
    let mut out: BTreeMap<String, Agreement> = BTreeMap::new();
    for &i in caught {
        let s = &scores[i];
        let Some(cause) = causes.get(&s.subscriber_id) else {
            continue;
        };
        let a = out.entry((*cause).to_owned()).or_default();
        a.caught += 1;
        a.agreed += usize::from(s.reasons.first().is_some_and(|r| r.category == *cause));
    }
    out
}

/// The share agreed over every cause, to four places.
fn share(by: &BTreeMap<String, Agreement>) -> f64 {
    let (caught, agreed) = by
        .values()
        .fold((0, 0), |(c, a), v| (c + v.caught, a + v.agreed));
    if caught == 0 {
        0.0
    } else {
        (agreed as f64 / caught as f64 * 10_000.0).round() / 10_000.0
    }
}

/// Whether a tenure in months belongs to a cohort.
type CohortMember = fn(f64) -> bool;

/// Tenure cohorts of the test snapshot: new (< 6 months), settling (6–12), established (> 12).
fn cohort_metrics(test: &Table, scores: &[Score]) -> Option<BTreeMap<String, CohortMetrics>> {
    let j = test.features.iter().position(|f| f == "tenure_months")?;
    let d = test.features.len();
    let cohorts: [(&str, CohortMember); 3] = [
        ("tenure_under_6", |t| t < 6.0),
        ("tenure_6_to_12", |t| (6.0..=12.0).contains(&t)),
        ("tenure_over_12", |t| t > 12.0),
    ];
    let mut out = BTreeMap::new();
    for (name, member) in cohorts {
        let rows: Vec<usize> = (0..test.len())
            .filter(|i| member(test.x[i * d + j]))
            .collect();
        let p: Vec<f64> = rows.iter().map(|i| scores[*i].probability).collect();
        let labels: Vec<bool> = rows.iter().map(|i| test.label[*i]).collect();
        let m = evaluate(&p, &labels);
        out.insert(
            name.to_owned(),
            CohortMetrics {
                rows: m.rows,
                churners: m.positives,
                auc: m.auc,
                pr_auc: m.pr_auc,
                top_decile_lift: m.top_decile_lift,
                brier: m.brier,
            },
        );
    }
    Some(out)
}

/// The ten features whose test-snapshot distribution moved most from the training rows (PSI).
fn feature_drift(table: &Table, test_snapshot: i32) -> Vec<FeatureDrift> {
    let d = table.features.len();
    // One pass in row order (the matrix is row-major), splitting each column in two.
    let mut train = vec![Vec::new(); d];
    let mut test = vec![Vec::new(); d];
    for (i, row) in table.x.chunks_exact(d).enumerate() {
        let side = if table.snapshot[i] == test_snapshot {
            &mut test
        } else {
            &mut train
        };
        for (column, v) in side.iter_mut().zip(row) {
            column.push(*v);
        }
    }
    let mut drift: Vec<FeatureDrift> = (0..d)
        .map(|j| FeatureDrift {
            feature: table.features[j].clone(),
            psi: psi(&train[j], &test[j]),
        })
        .collect();
    drift.sort_by(|a, b| b.psi.total_cmp(&a.psi));
    drift.truncate(10);
    drift
}

/// A snapshot (days since the epoch) as its month, `YYYY-MM`.
fn day_to_month(days: i32) -> String {
    chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163)
        .map_or_else(String::new, |d| d.format("%Y-%m").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn churners_are_counted_by_class_and_the_riskiest_tenth() {
        // Twenty rows, the riskiest first; rows 0 and 5 churn, row 0 cut off for arrears.
        let probabilities: Vec<f64> = (0..20).map(|i| 1.0 - f64::from(i) / 20.0).collect();
        let labels: Vec<bool> = (0..20).map(|i| i == 0 || i == 5).collect();
        let c = ChurnersByClass::count(&labels, &probabilities, |i| i == 0);
        assert_eq!(
            c,
            ChurnersByClass {
                voluntary: 1,
                involuntary: 1,
                voluntary_top_decile: 0,
                involuntary_top_decile: 1,
            }
        );
    }
}

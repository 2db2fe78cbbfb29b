//! The recipe on stacked snapshots, split by time: training on all but the last two, and the
//! rolling backtest that replays it on earlier ones.

use std::collections::BTreeSet;

use serde::Serialize;

use super::fit::{FitReport, fit};
use super::model::ChurnModel;
use crate::error::{Error, Result};
use crate::metrics::{Metrics, evaluate};
use crate::table::Table;

/// What training on snapshots produced.
#[derive(Debug, Serialize)]
pub struct TrainReport {
    pub features: Vec<String>,
    pub rows_train: usize,
    pub rows_valid: usize,
    pub rows_test: usize,
    pub fit: FitReport,
    /// Metrics on the latest snapshot, never seen in training or calibration.
    pub test: Metrics,
    pub importance: Vec<(String, f64)>,
}

/// The snapshots of a table in time order.
#[must_use]
pub fn snapshots(table: &Table) -> Vec<i32> {
    let set: BTreeSet<i32> = table.snapshot.iter().copied().collect();
    set.into_iter().collect()
}

/// Rows of the snapshots for which `keep` holds.
#[must_use]
pub fn rows_where(table: &Table, keep: impl Fn(i32) -> bool) -> Vec<usize> {
    (0..table.len())
        .filter(|i| keep(table.snapshot[*i]))
        .collect()
}

/// Trains on all snapshots but the last two; stops early, blends and calibrates on the second
/// to last; evaluates on the last.
pub fn train(table: &Table) -> Result<(ChurnModel, TrainReport)> {
    let ordered = snapshots(table);
    if ordered.len() < 3 {
        return Err(Error::Data(format!(
            "training needs at least 3 snapshots (train, validation, test); the data has {}",
            ordered.len()
        )));
    }
    let (test_s, valid_s) = (ordered[ordered.len() - 1], ordered[ordered.len() - 2]);
    let train_rows = rows_where(table, |s| s < valid_s);
    let valid_rows = rows_where(table, |s| s == valid_s);
    let test_rows = rows_where(table, |s| s == test_s);
    let (model, fit) = fit(table, &train_rows, &valid_rows)?;
    let test = table.subset(&test_rows);
    let test_p = model.probabilities(&test.x)?;
    let mut importance: Vec<(String, f64)> = table
        .features
        .iter()
        .cloned()
        .zip(model.forest.importance(table.features.len()))
        .collect();
    importance.sort_by(|a, b| b.1.total_cmp(&a.1));
    let report = TrainReport {
        features: table.features.clone(),
        rows_train: train_rows.len(),
        rows_valid: valid_rows.len(),
        rows_test: test_rows.len(),
        fit,
        test: evaluate(&test_p, &test.label),
        importance,
    };
    Ok((model, report))
}

/// One fold of the rolling time backtest.
#[derive(Debug, Clone, Serialize)]
pub struct Fold {
    /// The test snapshot (days since the epoch).
    pub test_snapshot: i32,
    pub rows_train: usize,
    pub rows_test: usize,
    pub auc: f64,
    pub pr_auc: f64,
    pub top_decile_lift: f64,
    pub brier: f64,
}

/// Replays training as it would have run in the past: for each of the last `folds` snapshots,
/// train on the snapshots before the one before it, validate on that one, and test on it.
pub fn rolling_backtest(table: &Table, folds: usize) -> Result<Vec<Fold>> {
    let ordered = snapshots(table);
    let mut out = Vec::new();
    // The last fold is the one `train` reports; each needs two snapshots before its test one.
    for t in ordered.len().saturating_sub(folds).max(2)..ordered.len() {
        let (test_s, valid_s) = (ordered[t], ordered[t - 1]);
        let train_rows = rows_where(table, |s| s < valid_s);
        let valid_rows = rows_where(table, |s| s == valid_s);
        let test = table.subset(&rows_where(table, |s| s == test_s));
        let (model, _) = fit(table, &train_rows, &valid_rows)?;
        let m = evaluate(&model.probabilities(&test.x)?, &test.label);
        out.push(Fold {
            test_snapshot: test_s,
            rows_train: train_rows.len(),
            rows_test: test.len(),
            auc: m.auc,
            pr_auc: m.pr_auc,
            top_decile_lift: m.top_decile_lift,
            brier: m.brier,
        });
    }
    Ok(out)
}

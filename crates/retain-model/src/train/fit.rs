//! The fit: early-stopped trees and the regression blended and calibrated on the validation
//! rows, and on a small table the refit on every row growing beside them on its own thread.

use serde::{Deserialize, Serialize};

use super::calibration::{Blend, Platt, choose_blend};
use super::encoding::{for_trees, target_order};
use super::model::ChurnModel;
use super::params::{REFIT_BELOW, params, patience};
use super::rounds::{Pace, Rounds, grow};
use crate::error::{Error, Result};
use crate::forest::Forest;
use crate::logistic::Logistic;
use crate::metrics::{auc, round};
use crate::table::Table;

/// How the recipe's choices scored on the validation rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FitReport {
    /// Rounds kept by early stopping.
    pub best_iteration: i32,
    /// Trees in the model: `best_iteration`, or more after a refit on every training row.
    pub trees: i32,
    /// Whether the trees and the regression were fitted again on the validation rows too.
    pub refit: bool,
    pub train_seconds: f64,
    pub gbdt_weight: f64,
    pub valid_auc_gbdt: f64,
    pub valid_auc_logistic: f64,
    pub valid_auc_blend: f64,
}

/// Fits the recipe on `train_rows`, stopping early, blending and calibrating on `valid_rows`;
/// below [`REFIT_BELOW`] rows, fits the trees and the regression again on both.
///
/// The refit grows on a thread of its own beside the early-stopped fit, which tells it how many
/// rounds to keep when it stops ([`Pace`]): the same trees as growing it afterwards, in about
/// the time of the first fit alone.
pub fn fit(
    table: &Table,
    train_rows: &[usize],
    valid_rows: &[usize],
) -> Result<(ChurnModel, FitReport)> {
    if train_rows.is_empty() || valid_rows.is_empty() {
        return Err(Error::Data("no rows to train or validate on".into()));
    }
    let started = std::time::Instant::now();
    let small = train_rows.len() + valid_rows.len() < REFIT_BELOW;
    tracing::debug!(small, "fit started");
    let pace = &Pace::new();
    let all: Vec<usize> = if small {
        let mut all: Vec<usize> = train_rows.iter().chain(valid_rows).copied().collect();
        all.sort_unstable();
        all
    } else {
        Vec::new()
    };
    let all = &all[..];
    let (first, refit, logistic) = std::thread::scope(|scope| {
        let (regression, first_regression) = std::sync::mpsc::channel();
        let refit = small.then(|| {
            scope.spawn(move || {
                // The first fit's regression fits here, before the refit's rows are binned:
                // that fit grows its patience in rounds the refit will not keep, so this
                // thread has the time, and its trees still finish about when the first fit's do.
                let _sent = regression.send(Logistic::fit(table, train_rows));
                tracing::debug!("first regression fitted");
                let level_order = target_order(table, all);
                let forest = grow(
                    table,
                    all,
                    &level_order,
                    None,
                    &params(all.len(), true),
                    &Rounds::Following(pace),
                )?
                .model()?;
                tracing::debug!("refit's trees laid out");
                Ok::<_, Error>((forest, level_order))
            })
        });
        let first = {
            // Whatever happens here, the refit hears that the first fit is over.
            let _over = pace.failed_unless_kept();
            let received = small.then_some(first_regression);
            first_fit(
                table,
                train_rows,
                valid_rows,
                small,
                small.then_some(pace),
                received,
            )
        };
        // The regression on every row fits here, while the refit grows its last rounds and
        // reads them back: fitted before the refit's binning, it made that thread the last to
        // finish (Orange/BigML: 3 ms of 53).
        let logistic = (small && first.is_ok()).then(|| Logistic::fit(table, all));
        let refit = refit.map(|r| r.join().expect("the refit does not panic"));
        (first, refit, logistic)
    });
    let first = first?;
    // The refit keeps the calibrations and the blend fitted on the first model's validation
    // scores: its rankings are what matter, and no rows are left to fit them on.
    let (forest, level_order, logistic) = match (refit.transpose()?, first.trees, logistic) {
        (Some((forest, level_order)), _, Some(logistic)) => (forest, level_order, logistic),
        (None, Some(forest), None) => (forest, first.level_order, first.logistic),
        _ => return Err(Error::Model("no fit kept its trees".into())),
    };
    let mut report = first.report;
    report.refit = small;
    let model = ChurnModel {
        forest,
        features: table.features.clone(),
        level_order,
        platt: first.platt,
        logistic,
        blend: first.blend,
        causes: None,
    };
    report.trees = model.forest.trees() as i32;
    report.train_seconds = started.elapsed().as_secs_f64();
    tracing::debug!(seconds = report.train_seconds, "model assembled");
    Ok((model, report))
}

/// A model's parts and how it scored on the validation rows.
struct Fitted {
    /// The trees; none when a refit replaces them.
    trees: Option<Forest>,
    level_order: Vec<Option<Vec<f64>>>,
    platt: Platt,
    logistic: Logistic,
    blend: Blend,
    report: FitReport,
}

/// The early-stopped trees and the regression on `train_rows`, blended and calibrated on
/// `valid_rows`. The regression is fitted beside the trees, or on a small table received from
/// the refit's thread (`regression`), which has a core to itself before its trees may grow.
fn first_fit(
    table: &Table,
    train_rows: &[usize],
    valid_rows: &[usize],
    small: bool,
    pace: Option<&Pace>,
    regression: Option<std::sync::mpsc::Receiver<Logistic>>,
) -> Result<Fitted> {
    let d = table.features.len();
    let level_order = target_order(table, train_rows);
    let (xv_raw, yv) = (table.matrix(valid_rows), table.labels(valid_rows));
    let xv = for_trees(&xv_raw, d, &level_order);
    let (patience, watch) = patience(small);
    let rounds = Rounds::EarlyStopped {
        patience,
        watch,
        pace,
    };
    let params = params(train_rows.len(), small);
    let grow = || {
        grow(
            table,
            train_rows,
            &level_order,
            Some((&xv, &yv)),
            &params,
            &rounds,
        )
    };
    let (model, logistic) = match regression {
        Some(regression) => {
            let model = grow();
            let logistic = regression
                .recv()
                .map_err(|_| Error::Model("the regression was not fitted".into()))?;
            (model, logistic)
        }
        // The regression starts first, beside the copy of the rows and their binning, rather
        // than beside the trees, whose histograms share the cores at every step.
        None => std::thread::scope(|scope| {
            let logistic = scope.spawn(|| Logistic::fit(table, train_rows));
            let model = grow();
            (
                model,
                logistic.join().expect("the regression fit does not panic"),
            )
        }),
    };
    let trainer = model?;
    // A small table's trees grow again on every row (`fit`): its first fit's validation rows
    // keep the scores the booster added up for the log loss as its trees grew.
    let (kept, raw) = match trainer.validation_scores() {
        Some(raw) if small => (None, raw.to_vec()),
        _ => {
            let forest = trainer.model()?;
            let raw = forest.raw_scores(&xv, d)?;
            (Some(forest), raw)
        }
    };
    let best_iteration = trainer.rounds();
    // The binned rows are no longer needed.
    drop(trainer);
    tracing::debug!("first fit's validation rows scored");

    let labels: Vec<bool> = valid_rows.iter().map(|i| table.label[*i]).collect();
    // The unweighted trees' raw scores are log-odds already: the fallback keeps them.
    let platt = Platt::fit_or(&raw, &labels, Platt { a: -1.0, b: 0.0 });
    let trees: Vec<f64> = raw.iter().map(|s| platt.logit(*s)).collect();
    let linear = logistic.logits(&xv_raw, d);
    let (gbdt_weight, valid_auc_blend, blend) = choose_blend(&trees, &linear, &labels);
    tracing::debug!(gbdt_weight, "blend chosen");
    let report = FitReport {
        best_iteration,
        trees: best_iteration,
        refit: false,
        train_seconds: 0.0,
        gbdt_weight,
        valid_auc_gbdt: round(auc(&trees, &labels)),
        valid_auc_logistic: round(auc(&linear, &labels)),
        valid_auc_blend,
    };
    Ok(Fitted {
        trees: kept,
        level_order,
        platt,
        logistic,
        blend,
        report,
    })
}

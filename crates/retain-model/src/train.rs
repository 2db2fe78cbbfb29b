//! The training recipe, the same for every data set: gradient-boosted trees ([`crate::grow`])
//! early-stopped on validation rows,
//! a logistic-regression floor, and a blend of the two weighted by validation log loss,
//! calibrated by Platt scaling; small tables are fitted again on every training row. `train`
//! applies it to stacked snapshots with a time-based split.

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::columns::Columns;
use crate::error::{Error, Result};
use crate::forest::{Forest, on_cores};
use crate::grow::{Booster, Params};
use crate::logistic::{Logistic, softplus};
use crate::metrics::{Metrics, auc, auc_by_radix, evaluate, round};
use crate::reasons::{Reason, top_reasons};
use crate::table::Table;

/// Platt scaling: P(churn) = 1 / (1 + exp(a·s + b)) over the raw score s.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize)]
pub struct Platt {
    pub a: f64,
    pub b: f64,
}

impl Platt {
    /// Fits by Newton's method with step halving on (raw score, label), with Platt's smoothed
    /// targets; the halving keeps it from overshooting on nearly separable scores.
    #[must_use]
    #[allow(clippy::many_single_char_names)]
    pub fn fit(scores: &[f64], labels: &[bool]) -> Platt {
        let pos = labels.iter().filter(|l| **l).count() as f64;
        let neg = labels.len() as f64 - pos;
        let hi = (pos + 1.0) / (pos + 2.0);
        let lo = 1.0 / (neg + 2.0);
        let targets: Vec<f64> = labels.iter().map(|l| if *l { hi } else { lo }).collect();
        // The negative log likelihood at (a, b) with its gradient and Hessian, in one pass:
        // with u = a·s + b and P = 1 / (1 + e^u), −[t·ln P + (1 − t)·ln(1 − P)] is
        // softplus(u) − (1 − t)·u, and its derivative in u is t − P.
        let at = |a: f64, b: f64| -> [f64; 6] {
            let [mut nll, mut g_a, mut g_b, mut h_aa, mut h_ab, mut h_bb] =
                [0.0, 0.0, 0.0, 1e-12, 0.0, 1e-12];
            for (s, t) in scores.iter().zip(&targets) {
                let u = a * s + b;
                let e = u.exp();
                nll += if u > 30.0 { u } else { (1.0 + e).ln() } - (1.0 - t) * u;
                let p = 1.0 / (1.0 + e);
                let d = t - p;
                g_a += d * s;
                g_b += d;
                let w = p * (1.0 - p);
                h_aa += w * s * s;
                h_ab += w * s;
                h_bb += w;
            }
            [nll, g_a, g_b, h_aa, h_ab, h_bb]
        };
        let (mut a, mut b) = (-1.0, ((neg + 1.0) / (pos + 1.0)).ln());
        let mut current = at(a, b);
        for _ in 0..100 {
            let [value, g_a, g_b, h_aa, h_ab, h_bb] = current;
            let det = h_aa * h_bb - h_ab * h_ab;
            if det.abs() < 1e-18 {
                break;
            }
            let da = (h_bb * g_a - h_ab * g_b) / det;
            let db = (h_aa * g_b - h_ab * g_a) / det;
            let mut step = 1.0;
            let improved = loop {
                let (na, nb) = (a - step * da, b - step * db);
                let next = at(na, nb);
                if next[0].is_finite() && next[0] <= value {
                    break Some((na, nb, next));
                }
                step /= 2.0;
                if step < 1e-10 {
                    break None;
                }
            };
            let Some((na, nb, next)) = improved else {
                break;
            };
            let done = (value - next[0]).abs() < 1e-10 * (1.0 + value.abs());
            (a, b, current) = (na, nb, next);
            if done {
                break;
            }
        }
        Platt { a, b }
    }

    #[must_use]
    pub fn apply(&self, score: f64) -> f64 {
        1.0 / (1.0 + (self.a * score + self.b).exp())
    }
}

impl Platt {
    /// The calibrated log-odds of a raw score.
    #[must_use]
    pub fn logit(&self, score: f64) -> f64 {
        -(self.a * score + self.b)
    }

    /// Fits, or falls back to `fallback` when the rows are too few or too noisy to calibrate on.
    fn fit_or(scores: &[f64], labels: &[bool], fallback: Platt) -> Platt {
        let platt = Platt::fit(scores, labels);
        if platt.a < 0.0 && platt.a.is_finite() && platt.b.is_finite() {
            platt
        } else {
            tracing::warn!(?platt, "calibration failed; using the fallback");
            fallback
        }
    }
}

/// How the two models' calibrated log-odds are combined: `w · trees + (1 − w) · logistic`,
/// then calibrated again.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Blend {
    pub gbdt_weight: f64,
    pub calibration: Platt,
}

impl Default for Blend {
    /// Trees only, calibrated once.
    fn default() -> Blend {
        Blend {
            gbdt_weight: 1.0,
            calibration: Platt { a: -1.0, b: 0.0 },
        }
    }
}

/// How the recipe's choices scored on the validation rows.
#[derive(Debug, Clone, Serialize)]
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

/// A trained, calibrated churn model.
pub struct ChurnModel {
    /// The trees, evaluated in Rust: what scoring uses ([`Forest`]).
    pub forest: Forest,
    pub features: Vec<String>,
    /// Per categorical feature, the trees' code of each level (see [`target_order`]).
    pub level_order: Vec<Option<Vec<f64>>>,
    pub platt: Platt,
    pub logistic: Logistic,
    pub blend: Blend,
}

/// Below this many training rows (fit and validation together), the trees and the regression
/// are fitted again on all of them once early stopping has said how many rounds to grow: on a
/// small table the validation fifth is data the model cannot otherwise afford to leave out.
pub(crate) const REFIT_BELOW: usize = 20_000;
/// Rounds of that refit per round kept by early stopping: a quarter more rows bear more rounds.
const REFIT_ROUNDS: f64 = 1.25;

/// Rows a leaf must hold: 50, but fewer on small tables (down to 20, LightGBM's default, below
/// 4,000 rows), where 50 cuts the trees off after a few rounds.
fn min_data_in_leaf(rows: usize) -> usize {
    (rows / 200).clamp(20, 50)
}

/// Rounds a booster may grow before early stopping has said when to stop.
const MAX_ROUNDS: i32 = 1000;

/// The trees' parameters: fixed defaults, the same for every data set, chosen by the table's
/// size. Trees of up to 31 leaves grow on 80% of the features each, with leaf values
/// regularized by an L2 penalty of 1 (`grow.rs`); the values LightGBM ran with before retain
/// grew its own trees, and which the measurements below were taken with.
///
/// The booster grows up to [`MAX_ROUNDS`] and stops early on the validation AUC, or on a small
/// table ([`REFIT_BELOW`]) on the validation log loss: smoother than the AUC of a few hundred
/// rows, which stopped Orange/BigML's trees after twenty rounds. On an operator's hundreds of
/// thousands of rows the log loss kept improving to the 1,000th round, doubling training and
/// tripling scoring for no better ranking, so large tables keep the AUC ([`patience`]).
///
/// Small tables learn at 0.1, large ones at 0.05: over twelve splits of each small public
/// table the faster rate ranked as well (mean AUC within a thousandth, top-decile lift within
/// two hundredths) in half the rounds, where every round costs the same fixed overhead; 0.15
/// and 0.2 lost lift. Small tables grow each tree on a sample of 80% of the rows; large tables
/// grow without it: drawing the rows each round cost more than the smaller histograms saved.
///
/// Churners are not weighed up: weighing them by √(non-churners / churners) ranked no better
/// on any data set measured and worse on the operator's (docs/model.md). The imbalance is
/// handled by the stratified validation rows, by stopping on AUC or log loss rather than
/// accuracy, and by calibrating the scores afterwards.
///
/// Small tables grow on one thread: a round over a few thousand rows is too short to share,
/// and the regression or the refit grows beside it on the other core.
fn params(rows: usize, small: bool) -> Params {
    Params {
        learning_rate: if small { 0.1 } else { 0.05 },
        num_leaves: 31,
        min_data_in_leaf: min_data_in_leaf(rows),
        min_sum_hessian: 1e-3,
        lambda_l2: 1.0,
        feature_fraction: 0.8,
        bagging_fraction: if small { 0.8 } else { 1.0 },
        seed: 42,
        threads: if small {
            1
        } else {
            std::thread::available_parallelism().map_or(1, usize::from)
        },
    }
}

/// What early stopping watches and how many rounds without improvement it waits: the log
/// loss for 10 rounds at a small table's faster rate, the AUC for 50 on a large one. Over
/// twelve splits of each small public table, 10 rounds ranked as well as 20 (mean AUC and
/// top-decile lift equal or higher on all three) and stopped ten rounds sooner.
fn patience(small: bool) -> (i32, Watch) {
    if small {
        (10, Watch::LogLoss)
    } else {
        (50, Watch::Auc)
    }
}

/// The trees see a categorical column as its levels ranked by their smoothed churn rate on the
/// training rows, so one split can separate risky levels from safe ones whatever their order
/// in the file (the ordered-target encoding; the trees split numbers only).
fn target_order(table: &Table, rows: &[usize]) -> Vec<Option<Vec<f64>>> {
    let d = table.features.len();
    let base = rows.iter().filter(|i| table.label[**i]).count() as f64 / rows.len().max(1) as f64;
    (0..d)
        .map(|j| {
            let levels = table.levels.get(j)?.as_ref()?;
            let mut counts = vec![(0.0, 0.0); levels.len()];
            for &i in rows {
                let v = table.x[i * d + j];
                if v.is_finite() && (v as usize) < levels.len() {
                    let c = &mut counts[v as usize];
                    c.0 += f64::from(u8::from(table.label[i]));
                    c.1 += 1.0;
                }
            }
            // Smoothed towards the base rate by 10 pseudo-rows, so rare levels stay near it.
            let rates: Vec<f64> = counts
                .iter()
                .map(|(churn, n)| (churn + 10.0 * base) / (n + 10.0))
                .collect();
            let mut order: Vec<usize> = (0..levels.len()).collect();
            order.sort_by(|a, b| rates[*a].total_cmp(&rates[*b]).then(a.cmp(b)));
            let mut rank = vec![0.0; levels.len()];
            for (r, level) in order.into_iter().enumerate() {
                rank[level] = r as f64;
            }
            Some(rank)
        })
        .collect()
}

/// Rewrites categorical codes into the trees' ranks; without categorical columns, `x` as it is
/// (an operator's matrix is hundreds of megabytes).
fn for_trees<'a>(x: &'a [f64], d: usize, order: &[Option<Vec<f64>>]) -> Cow<'a, [f64]> {
    if order.iter().all(Option::is_none) {
        return Cow::Borrowed(x);
    }
    let mut out = x.to_vec();
    recode_for_trees(&mut out, d, order);
    Cow::Owned(out)
}

/// Rewrites the categorical codes of row-major `x` into the trees' ranks, in place.
fn recode_for_trees(x: &mut [f64], d: usize, order: &[Option<Vec<f64>>]) {
    for row in x.chunks_exact_mut(d) {
        for (v, o) in row.iter_mut().zip(order) {
            if let Some(rank) = o {
                *v = if v.is_finite() && (*v as usize) < rank.len() {
                    rank[*v as usize]
                } else {
                    f64::NAN
                };
            }
        }
    }
}

/// Rows scored together by [`ChurnModel::probabilities`]: their copy in the trees' encoding
/// stays in cache.
const CHUNK: usize = 1024;
/// Rows worth a thread of their own when scoring.
const SCORED_PER_THREAD: usize = 8 * CHUNK;

/// The weight of the trees (in tenths) whose calibrated blend has the lowest log loss on
/// `labels`, the blend's AUC, and its calibration. Log loss, not AUC: the AUC of a few hundred
/// validation rows moves with single rows, and chasing it mixed a weak regression into trees
/// that ranked the top decile better on unseen rows.
fn choose_blend(trees: &[f64], linear: &[f64], labels: &[bool]) -> (f64, f64, Blend) {
    let mix = |w: f64| -> Vec<f64> {
        trees
            .iter()
            .zip(linear)
            .map(|(t, l)| w * t + (1.0 - w) * l)
            .collect()
    };
    let identity = Platt { a: -1.0, b: 0.0 };
    // From trees-only down, so a tie keeps the trees. The eleven calibrations are independent;
    // on an operator's validation rows they take half a second and share the cores, on a small
    // table a few milliseconds, less than starting threads.
    let weights: Vec<f64> = (0..=10).rev().map(|step| f64::from(step) / 10.0).collect();
    let per_thread = if labels.len() < REFIT_BELOW {
        weights.len()
    } else {
        1
    };
    // Per weight: the log loss and the calibration's `a` and `b`.
    let mut tried = vec![0.0; weights.len() * 3];
    on_cores(&weights, 1, &mut tried, 3, per_thread, 1, |weights, out| {
        for (w, out) in weights.iter().zip(out.chunks_exact_mut(3)) {
            let mixed = mix(*w);
            let calibration = Platt::fit_or(&mixed, labels, identity);
            let loss: f64 = mixed
                .iter()
                .zip(labels)
                .map(|(s, y)| {
                    let z = calibration.logit(*s);
                    if *y { softplus(-z) } else { softplus(z) }
                })
                .sum();
            out.copy_from_slice(&[loss, calibration.a, calibration.b]);
        }
    });
    let mut best: Option<(f64, f64, Platt)> = None;
    for (w, t) in weights.iter().zip(tried.chunks_exact(3)) {
        let (loss, calibration) = (t[0], Platt { a: t[1], b: t[2] });
        if best.is_none_or(|(_, lowest, _)| loss < lowest - 1e-9) {
            best = Some((*w, loss, calibration));
        }
    }
    let (w, _, calibration) = best.expect("eleven weights were tried");
    let blend = Blend {
        gbdt_weight: w,
        calibration,
    };
    (w, round(auc(&mix(w), labels)), blend)
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

impl ChurnModel {
    /// The trees in LightGBM's text format, as the registry saves them.
    #[must_use]
    pub fn text(&self) -> String {
        self.forest.to_lightgbm(&self.features)
    }
}

/// How a booster decides when to stop growing.
enum Rounds<'a> {
    /// Up to [`MAX_ROUNDS`], stopping once the validation rows' `watch` has not improved for
    /// `patience` rounds and dropping those; `pace` tells a refit growing beside it.
    EarlyStopped {
        patience: i32,
        watch: Watch,
        pace: Option<&'a Pace>,
    },
    /// [`REFIT_ROUNDS`] times the rounds an early-stopped fit kept, grown beside it.
    Following(&'a Pace),
}

/// What early stopping watches on the validation rows.
#[derive(Clone, Copy)]
enum Watch {
    /// The booster's binary log loss, lower is better.
    LogLoss,
    /// The AUC of the validation probabilities ([`auc_by_radix`]), higher is better.
    Auc,
}

/// How far an early-stopped fit has grown, for a refit growing beside it: the refit may run
/// ahead to [`refit_rounds`] of the rounds grown so far (it will keep no more than that), and
/// drops what it grew beyond the rounds finally kept.
struct Pace {
    state: std::sync::Mutex<Progress>,
    changed: std::sync::Condvar,
}

#[derive(Clone, Copy)]
enum Progress {
    Grown(i32),
    Kept(i32),
    /// The early-stopped fit failed; the refit stops too.
    Failed,
}

impl Pace {
    fn new() -> Pace {
        Pace {
            state: std::sync::Mutex::new(Progress::Grown(0)),
            changed: std::sync::Condvar::new(),
        }
    }

    /// Tells the refit the first fit failed when dropped before [`Progress::Kept`] was told.
    fn failed_unless_kept(&self) -> impl Drop + '_ {
        struct Over<'a>(&'a Pace);
        impl Drop for Over<'_> {
            fn drop(&mut self) {
                let mut state = self
                    .0
                    .state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if matches!(*state, Progress::Grown(_)) {
                    *state = Progress::Failed;
                    self.0.changed.notify_all();
                }
            }
        }
        Over(self)
    }

    fn tell(&self, progress: Progress) {
        *self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = progress;
        self.changed.notify_all();
    }

    /// Waits until the refit, at `grown` rounds, may grow another, or knows what to keep.
    fn next(&self, grown: i32) -> Progress {
        let state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let state = self
            .changed
            .wait_while(state, |p| match *p {
                Progress::Grown(rounds) => grown >= refit_rounds(rounds),
                Progress::Kept(_) | Progress::Failed => false,
            })
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *state
    }
}

/// Rounds of a refit on every row for `kept` rounds of the early-stopped fit.
fn refit_rounds(kept: i32) -> i32 {
    ((f64::from(kept) * REFIT_ROUNDS).round() as i32).max(1)
}

/// Grows the trees on `rows` (in the trees' encoding, `level_order`), evaluated on `valid`
/// when given; returns the booster. The rows' copy, if they needed one, is dropped once
/// they are binned.
fn grow(
    table: &Table,
    rows: &[usize],
    level_order: &[Option<Vec<f64>>],
    valid: Option<(&[f64], &[bool])>,
    params: &Params,
    rounds: &Rounds<'_>,
) -> Result<Booster> {
    let d = table.features.len();
    // The booster bins and scores the validation rows itself only for the log loss; the AUC
    // is watched on scores of them held column by column (`stop_early`).
    let by_booster = matches!(
        rounds,
        Rounds::EarlyStopped {
            watch: Watch::LogLoss,
            ..
        }
    );
    let mut trainer = {
        let (x, y) = (table.matrix(rows), table.labels(rows));
        let x = for_trees(&x, d, level_order);
        let valid = valid.filter(|_| by_booster);
        Booster::new(&x, &y, d, params.clone(), valid)?
    };
    let fit = if valid.is_some() { "first" } else { "refit" };
    tracing::debug!(fit, rows = rows.len(), "rows binned for the trees");
    match rounds {
        Rounds::EarlyStopped {
            patience,
            watch,
            pace,
        } => {
            let (xv, labels) = valid.unwrap_or_default();
            let kept = stop_early(&mut trainer, *patience, *watch, (xv, d), labels, *pace);
            if let Some(pace) = pace {
                pace.tell(
                    kept.as_ref()
                        .map_or(Progress::Failed, |k| Progress::Kept(*k)),
                );
            }
            kept?;
        }
        Rounds::Following(pace) => follow(&mut trainer, pace)?,
    }
    tracing::debug!(fit, rounds = trainer.rounds(), "trees grown");
    Ok(trainer)
}

/// Grows up to [`MAX_ROUNDS`], stopping once `watch` on the validation rows (`valid`, `d`
/// columns in the trees' encoding, labelled `labels`) has not improved for `patience` rounds
/// and dropping those; returns the rounds kept.
///
/// The log loss is the booster's, every round, on the validation rows it binned. The AUC is
/// watched every [`AUC_EVERY`] rounds: the trees grown since the last look are scored on the
/// validation rows held column by column ([`Columns`]), in one pass over the rows for all of
/// them; updating binned rows every round walked them row by row (with LightGBM, on the
/// synthetic operator's 140,000 validation rows, 4.5 ms of a 37 ms round, its probabilities
/// another millisecond and the AUC 2.3 ms).
fn stop_early(
    trainer: &mut Booster,
    patience: i32,
    watch: Watch,
    (valid, d): (&[f64], usize),
    labels: &[bool],
    pace: Option<&Pace>,
) -> Result<i32> {
    let every = match watch {
        Watch::LogLoss => 1,
        Watch::Auc => AUC_EVERY,
    };
    // The raw scores of the validation rows by the first `scored` rounds (the AUC only):
    // log-odds, ranked as the probabilities are.
    let mut scores = vec![0.0; labels.len()];
    let mut scored = 0;
    // The validation rows column by column, for scoring a few trees at a time.
    let mut columns = None;
    // The best value seen and the rounds grown when it was.
    let mut best: Option<(f64, i32)> = None;
    // Time in the booster's rounds and in the looks at the validation rows, for the log.
    let (mut growing, mut looking) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    while trainer.rounds() < MAX_ROUNDS {
        let started = std::time::Instant::now();
        if !trainer.step() {
            break;
        }
        growing += started.elapsed();
        let grown = trainer.rounds();
        if let Some(pace) = pace {
            pace.tell(Progress::Grown(grown));
        }
        if grown % every != 0 {
            continue;
        }
        let started = std::time::Instant::now();
        let (metric, higher_is_better) = match watch {
            Watch::LogLoss => (trainer.validation_log_loss()?, false),
            Watch::Auc => {
                let trees = trainer.forest(scored as usize, (grown - scored) as usize)?;
                let columns = columns.get_or_insert_with(|| Columns::new(valid, d));
                trees.add_raw_scores_by_column(columns, &mut scores)?;
                scored = grown;
                (auc_by_radix(&scores, labels), true)
            }
        };
        looking += started.elapsed();
        let improved = best.is_none_or(|(value, _)| {
            if higher_is_better {
                metric > value
            } else {
                metric < value
            }
        });
        match best {
            _ if improved => best = Some((metric, grown)),
            Some((_, at)) if grown - at >= patience => {
                for _ in at..grown {
                    trainer.rollback();
                }
                break;
            }
            _ => {}
        }
    }
    tracing::debug!(
        growing = growing.as_secs_f64(),
        looking = looking.as_secs_f64(),
        "early stopping done"
    );
    Ok(trainer.rounds())
}

/// Rounds between looks at a large table's validation AUC: scoring the rows for five trees at
/// once reads them once, where every round read them five times.
const AUC_EVERY: i32 = 5;

/// Grows in step with an early-stopped fit, then keeps [`refit_rounds`] of its rounds.
fn follow(trainer: &mut Booster, pace: &Pace) -> Result<()> {
    let mut split = true;
    loop {
        // Once no tree can split, only the rounds to keep are left to hear.
        let grown = if split { trainer.rounds() } else { i32::MAX };
        match pace.next(grown) {
            Progress::Kept(kept) => {
                let target = refit_rounds(kept);
                while trainer.rounds() > target {
                    trainer.rollback();
                }
                while split && trainer.rounds() < target {
                    split = trainer.step();
                }
                return Ok(());
            }
            Progress::Failed => return Err(Error::Model("the early-stopped fit failed".into())),
            Progress::Grown(_) => split = trainer.step(),
        }
    }
}

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

/// One subscriber's score.
#[derive(Debug, Clone, Serialize)]
pub struct Score {
    pub subscriber_id: i64,
    pub probability: f64,
    pub reasons: Vec<Reason>,
}

impl ChurnModel {
    /// Calibrated churn probabilities of row-major `x` (the model's features, in order).
    ///
    /// One pass over the rows on every core: per chunk, the trees' raw scores (on a copy in
    /// the trees' encoding when there are categorical columns), the regression's log-odds, the
    /// blend and its calibration. Done as whole-table passes, the copy, the regression and
    /// the calibration ran on one core beside the trees' two and wrote and read vectors of
    /// every row in between.
    pub fn probabilities(&self, x: &[f64]) -> Result<Vec<f64>> {
        self.probabilities_on(x, SCORED_PER_THREAD)
    }

    /// [`ChurnModel::probabilities`] on this thread alone: a core's throughput, as the
    /// scoring goal counts it.
    pub fn probabilities_on_one_core(&self, x: &[f64]) -> Result<Vec<f64>> {
        self.probabilities_on(x, usize::MAX)
    }

    /// Probabilities, with a thread for every `per_thread` rows up to one per core.
    fn probabilities_on(&self, x: &[f64], per_thread: usize) -> Result<Vec<f64>> {
        let d = self.features.len();
        let w = self.blend.gbdt_weight;
        if w > 0.0 {
            self.forest.check_width(d)?;
        }
        if d == 0 || !x.len().is_multiple_of(d) {
            return Err(Error::Data(format!(
                "{} values do not make rows of {d} columns",
                x.len()
            )));
        }
        let recode = self.level_order.iter().any(Option::is_some);
        let mut out = vec![0.0; x.len() / d];
        on_cores(x, d, &mut out, 1, per_thread, CHUNK, |x, out| {
            let mut coded = Vec::new();
            for (rows, out) in x.chunks(CHUNK * d).zip(out.chunks_mut(CHUNK)) {
                if w > 0.0 {
                    let rows = if recode {
                        coded.clear();
                        coded.extend_from_slice(rows);
                        recode_for_trees(&mut coded, d, &self.level_order);
                        &coded
                    } else {
                        rows
                    };
                    self.forest.score_rows(rows, d, out);
                }
                for (z, row) in out.iter_mut().zip(rows.chunks_exact(d)) {
                    let trees = if w > 0.0 { self.platt.logit(*z) } else { 0.0 };
                    let linear = if w < 1.0 {
                        self.logistic.logit(row)
                    } else {
                        0.0
                    };
                    *z = self.blend.calibration.apply(w * trees + (1.0 - w) * linear);
                }
            }
        });
        Ok(out)
    }

    /// Calibrated probabilities of every row of `table`, and top reasons for the riskiest
    /// `explained` share of them (others get none). Exact TreeSHAP costs about a thousand times
    /// a prediction, and a retention team acts on the top of the list, not on the safe majority.
    pub fn score(&self, table: &Table, explained: f64) -> Result<Vec<Score>> {
        if table.features != self.features {
            return Err(Error::Data(
                "the feature columns differ from the model's".into(),
            ));
        }
        let d = self.features.len();
        let p = self.probabilities(&table.x)?;
        let mut order: Vec<usize> = (0..p.len()).collect();
        order.sort_by(|a, b| p[*b].total_cmp(&p[*a]));
        order.truncate((p.len() as f64 * explained.clamp(0.0, 1.0)).ceil() as usize);
        order.sort_unstable();
        let x: Vec<f64> = order
            .iter()
            .flat_map(|i| table.x[i * d..(i + 1) * d].iter().copied())
            .collect();
        let w = self.blend.gbdt_weight;
        let contrib = if w > 0.0 && !order.is_empty() {
            crate::shap::Explainer::new(&self.forest)?
                .contributions(&for_trees(&x, d, &self.level_order), d)?
        } else {
            Vec::new()
        };
        // Every contribution in calibrated log-odds: the trees' SHAP values scaled by both
        // calibrations, the regression's terms by the final one.
        let tree_scale = w * -self.platt.a;
        let mut reasons: Vec<Vec<Reason>> = vec![Vec::new(); p.len()];
        let mut mixed = vec![0.0; d];
        for (k, &i) in order.iter().enumerate() {
            let linear = if w < 1.0 {
                self.logistic.contributions(&x[k * d..(k + 1) * d])
            } else {
                vec![0.0; d]
            };
            for j in 0..d {
                // Tree contributions come one per feature, then the bias.
                let tree = if w > 0.0 {
                    contrib[k * (d + 1) + j]
                } else {
                    0.0
                };
                mixed[j] = tree_scale * tree + (1.0 - w) * linear[j];
            }
            reasons[i] = top_reasons(&self.features, &mixed, 3);
        }
        Ok(table
            .subscriber_id
            .iter()
            .zip(p)
            .zip(reasons)
            .map(|((id, probability), reasons)| Score {
                subscriber_id: *id,
                probability,
                reasons,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A uniform draw in [0, 1) from a fixed sequence.
    fn draws(seed: u64) -> impl FnMut() -> f64 {
        let mut state = seed;
        move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// `rows` rows of two signal columns (one an interaction the regression cannot see) and
    /// one of noise.
    fn table(rows: usize, seed: u64) -> Table {
        let mut next = draws(seed);
        let mut x = Vec::with_capacity(rows * 3);
        let mut label = Vec::with_capacity(rows);
        for _ in 0..rows {
            let (a, b, noise) = (next(), next(), next());
            let z = -2.5 + 3.0 * a + if (a > 0.5) == (b > 0.5) { 1.5 } else { -1.0 };
            label.push(next() < 1.0 / (1.0 + (-z).exp()));
            x.extend([a, b, noise]);
        }
        Table {
            features: vec!["a".into(), "b".into(), "noise".into()],
            subscriber_id: (0..rows as i64).collect(),
            snapshot: vec![0; rows],
            label,
            x,
            levels: Vec::new(),
        }
    }

    /// A booster on `rows` of a three-column table with the recipe's parameters for a small or
    /// large table, nothing grown yet.
    fn trainer(t: &Table, rows: &[usize], small: bool) -> Booster {
        let params = params(rows.len(), small);
        let (x, y) = (t.matrix(rows), t.labels(rows));
        Booster::new(&x, &y, 3, params, None).unwrap()
    }

    /// A refit on `rows` following `pace`.
    fn refit(t: &Table, rows: &[usize], pace: &Pace) -> Result<Forest> {
        let order = target_order(t, rows);
        let params = params(rows.len(), true);
        grow(t, rows, &order, None, &params, &Rounds::Following(pace))?.model()
    }

    #[test]
    fn the_model_file_reads_back_the_same_trees() {
        // What the registry saves, read back as a saved model is.
        let t = table(3_000, 4);
        let rows: Vec<usize> = (0..t.len()).collect();
        let mut trainer = trainer(&t, &rows, true);
        for _ in 0..30 {
            assert!(trainer.step());
        }
        let forest = trainer.model().unwrap();
        let names: Vec<String> = vec!["a".into(), "b c".into(), "noise".into()];
        let text = forest.to_lightgbm(&names);
        assert!(text.contains("feature_names=a b_c noise"), "{text}");
        let read = Forest::from_lightgbm(&text).unwrap();
        assert_eq!(read.trees(), 30);
        let by_forest = forest.raw_scores(&t.x, 3).unwrap();
        assert_eq!(read.raw_scores(&t.x, 3).unwrap(), by_forest);
        assert_eq!(read.importance(3), forest.importance(3));
        assert_eq!(read.counts(), forest.counts());
        assert_eq!(read.to_lightgbm(&names), text);
        let spread = by_forest.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            - by_forest.iter().copied().fold(f64::INFINITY, f64::min);
        assert!(spread > 0.5, "{spread}");
        // The signal's columns matter, the noise little.
        let importance = forest.importance(3);
        assert!(importance[0] > 3.0 * importance[2], "{importance:?}");
        assert!(forest.raw_scores(&t.x[..5], 3).is_err(), "rows cut short");
    }

    #[test]
    fn a_small_table_is_fitted_again_on_every_training_row() {
        let t = table(3_000, 4);
        let rows: Vec<usize> = (0..t.len()).collect();
        let (fit_rows, valid_rows) = rows.split_at(2_400);
        let (model, report) = fit(&t, fit_rows, valid_rows).unwrap();
        assert!(report.refit, "{report:?}");
        let expected = (f64::from(report.best_iteration) * REFIT_ROUNDS).round() as i32;
        assert_eq!(report.trees, expected.max(1), "{report:?}");
        assert_eq!(model.forest.trees() as i32, report.trees);
        // The refit model still ranks held-out rows well.
        let test = table(2_000, 5);
        let p = model.probabilities(&test.x).unwrap();
        assert!(auc(&p, &test.label) > 0.75, "{}", auc(&p, &test.label));

        // Grown beside the first fit, the refit has the trees of one grown after it.
        let told = Pace::new();
        told.tell(Progress::Kept(report.best_iteration));
        let order = target_order(&t, &rows);
        let after = refit(&t, &rows, &told).unwrap();
        assert_eq!(after.trees() as i32, report.trees);
        let codes = for_trees(&test.x, 3, &order);
        assert_eq!(
            after.raw_scores(&codes, 3).unwrap(),
            model.forest.raw_scores(&codes, 3).unwrap()
        );
    }

    #[test]
    fn probabilities_in_chunks_on_every_core_are_each_rows_own() {
        // A categorical column (level 3 churns, level 1 missing from the training rows) and a
        // missing number, so the trees' recoding and the regression's flags are both taken.
        let mut t = table(3_000, 21);
        let mut next = draws(22);
        let mut x = Vec::with_capacity(t.len() * 4);
        for (i, row) in t.x.chunks_exact(3).enumerate() {
            let level = [0, 2, 3][(next() * 3.0) as usize];
            if level == 3 && next() < 0.5 {
                t.label[i] = true;
            }
            let a = if next() < 0.1 { f64::NAN } else { row[0] };
            x.extend([a, row[1], row[2], f64::from(level)]);
        }
        t.x = x;
        t.features.push("plan".into());
        t.levels = vec![
            None,
            None,
            None,
            Some(vec!["a".into(), "b".into(), "c".into(), "d".into()]),
        ];
        let rows: Vec<usize> = (0..t.len()).collect();
        let (mut model, _) = fit(&t, &rows[..2_400], &rows[2_400..]).unwrap();
        // Enough rows for two threads and several chunks each, with a ragged end.
        let x: Vec<f64> = t.x.iter().copied().cycle().take(20_003 * 4).collect();
        for w in [model.blend.gbdt_weight, 0.0, 0.5, 1.0] {
            model.blend.gbdt_weight = w;
            let got = model.probabilities(&x).unwrap();
            assert_eq!(got.len(), 20_003);
            assert_eq!(got, model.probabilities_on_one_core(&x).unwrap());
            for (k, row) in x.chunks_exact(4).enumerate().step_by(97) {
                let trees = model
                    .forest
                    .raw_scores(&for_trees(row, 4, &model.level_order), 4)
                    .unwrap()[0];
                let z = w * model.platt.logit(trees) + (1.0 - w) * model.logistic.logit(row);
                let expected = model.blend.calibration.apply(z);
                assert_eq!(got[k].to_bits(), expected.to_bits(), "row {k}, weight {w}");
            }
        }
        assert!(model.probabilities(&x[..5]).is_err());
    }

    #[test]
    fn rounds_rolled_back_leave_the_trees_of_a_shorter_fit() {
        let t = table(2_000, 9);
        let rows: Vec<usize> = (0..t.len()).collect();
        let grown = |rounds: usize, back: usize| {
            let mut trainer = trainer(&t, &rows, true);
            for _ in 0..rounds {
                assert!(trainer.step());
            }
            for _ in 0..back {
                trainer.rollback();
            }
            assert_eq!(trainer.rounds() as usize, rounds - back);
            // Grown on after the rollback, as the trees of a shorter fit would.
            if back > 0 {
                assert!(trainer.step());
                trainer.rollback();
            }
            trainer.model().unwrap()
        };
        let (short, long) = (grown(12, 0), grown(30, 18));
        assert_eq!(short.trees(), 12);
        assert_eq!(
            short.raw_scores(&t.x, 3).unwrap(),
            long.raw_scores(&t.x, 3).unwrap()
        );
        assert_ne!(
            short.raw_scores(&t.x, 3).unwrap(),
            grown(13, 0).raw_scores(&t.x, 3).unwrap()
        );
    }

    #[test]
    fn a_refit_stops_when_the_first_fit_fails() {
        let t = table(2_000, 10);
        let rows: Vec<usize> = (0..t.len()).collect();
        let pace = Pace::new();
        let error = std::thread::scope(|scope| {
            let refit = scope.spawn(|| refit(&t, &rows, &pace));
            // The first fit gives up having told of two rounds, without a count to keep.
            let over = pace.failed_unless_kept();
            pace.tell(Progress::Grown(2));
            drop(over);
            refit.join().unwrap().unwrap_err()
        });
        assert!(
            error.to_string().contains("early-stopped fit failed"),
            "{error}"
        );
    }

    #[test]
    fn trees_read_back_a_round_at_a_time_add_up_to_the_model() {
        // How a large table's validation rows are scored while its trees grow.
        let t = table(3_000, 12);
        let rows: Vec<usize> = (0..t.len()).collect();
        let mut trainer = trainer(&t, &rows, false);
        let mut scores = vec![0.0; t.len()];
        // Rounds read back one, then four, then twenty at a time.
        for (first, count) in [(0, 1), (1, 4), (5, 20)] {
            for _ in 0..count {
                assert!(trainer.step());
            }
            let trees = trainer.forest(first, count).unwrap();
            assert_eq!(trees.trees(), count);
            trees.add_raw_scores(&t.x, 3, &mut scores).unwrap();
        }
        let whole = trainer.model().unwrap();
        assert_eq!(whole.trees(), 25);
        let expected = whole.raw_scores(&t.x, 3).unwrap();
        for (a, b) in scores.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-9, "{a} against {b}");
        }
        assert!(auc(&scores, &t.label) > 0.75);
    }

    #[test]
    fn a_large_table_keeps_the_early_stopped_model() {
        let t = table(REFIT_BELOW + 1_000, 6);
        let rows: Vec<usize> = (0..t.len()).collect();
        let (fit_rows, valid_rows) = rows.split_at(REFIT_BELOW - 4_000);
        let (model, report) = fit(&t, fit_rows, valid_rows).unwrap();
        assert!(!report.refit);
        assert_eq!(report.trees, report.best_iteration);
        assert_eq!(model.forest.trees() as i32, report.best_iteration);
    }

    #[test]
    fn early_stopping_stops_soon_where_there_is_nothing_to_learn() {
        let signal = table(3_000, 30);
        let mut noise = table(3_000, 30);
        let mut next = draws(31);
        for label in &mut noise.label {
            *label = next() < 0.3;
        }
        let rows: Vec<usize> = (0..3_000).collect();
        let (_, learned) = fit(&signal, &rows[..2_400], &rows[2_400..]).unwrap();
        let (_, nothing) = fit(&noise, &rows[..2_400], &rows[2_400..]).unwrap();
        assert!(nothing.best_iteration < 15, "{nothing:?}");
        assert!(
            learned.best_iteration > nothing.best_iteration + 10,
            "{learned:?}"
        );
    }

    #[test]
    fn a_categorical_column_is_split_by_its_levels_churn_rates() {
        // Churn rates by level in no order of the codes.
        let rates = [0.1, 0.5, 0.02, 0.3, 0.1, 0.7];
        let mut next = draws(40);
        let (mut x, mut label) = (Vec::new(), Vec::new());
        for _ in 0..4_000 {
            let level = (next() * 6.0) as usize;
            label.push(next() < rates[level]);
            x.extend([level as f64, next()]);
        }
        let t = Table {
            features: vec!["plan".into(), "noise".into()],
            subscriber_id: (0..4_000).collect(),
            snapshot: vec![0; 4_000],
            label,
            x,
            levels: vec![Some((0..6).map(|l| format!("p{l}")).collect()), None],
        };
        let rows: Vec<usize> = (0..4_000).collect();
        let (model, _) = fit(&t, &rows[..3_200], &rows[3_200..]).unwrap();
        let probe: Vec<f64> = (0..6).flat_map(|l| [f64::from(l), 0.5]).collect();
        let p = model.probabilities(&probe).unwrap();
        for (a, b) in [(2, 0), (0, 3), (4, 3), (3, 1), (1, 5)] {
            assert!(p[a] < p[b], "level {a} against {b}: {p:?}");
        }
    }

    #[test]
    fn leaves_are_smaller_only_on_small_tables() {
        assert_eq!(min_data_in_leaf(2_000), 20);
        assert_eq!(min_data_in_leaf(6_000), 30);
        assert_eq!(min_data_in_leaf(10_000), 50);
        assert_eq!(min_data_in_leaf(5_000_000), 50);
    }

    #[test]
    fn small_tables_grow_trees_on_one_thread_large_ones_on_every_core() {
        assert_eq!(params(4_000, true).threads, 1);
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(params(400_000, false).threads, cores);
    }

    #[test]
    fn the_blend_takes_the_regression_only_when_it_lowers_the_log_loss() {
        let mut next = draws(11);
        let n = 4_000;
        let mut labels = Vec::with_capacity(n);
        let (mut good, mut noise, mut half) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let (u, v) = (next() * 4.0 - 2.0, next() * 4.0 - 2.0);
            labels.push(next() < 1.0 / (1.0 + (-(u + v)).exp()));
            good.push(u + v);
            noise.push(next() * 4.0 - 2.0);
            half.push(u);
        }
        // Trees that know everything: a noisy regression adds nothing.
        let (w, _, _) = choose_blend(&good, &noise, &labels);
        assert!((w - 1.0).abs() < 1e-12, "{w}");
        // Trees and regression each know half: the blend takes both about equally.
        let other: Vec<f64> = good.iter().zip(&half).map(|(g, h)| g - h).collect();
        let (w, blend_auc, blend) = choose_blend(&half, &other, &labels);
        assert!((0.3..=0.7).contains(&w), "{w}");
        assert!(blend_auc > auc(&half, &labels) + 0.05);
        assert!(blend.calibration.a < 0.0);
    }

    #[test]
    fn platt_recovers_calibrated_log_odds_even_when_nearly_separable() {
        // Scores that already are log-odds, spread wide: the fit must stay near the identity.
        let mut state = 9u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let scores: Vec<f64> = (0..50_000).map(|_| next() * 30.0 - 25.0).collect();
        let labels: Vec<bool> = scores
            .iter()
            .map(|z| next() < 1.0 / (1.0 + (-z).exp()))
            .collect();
        let p = Platt::fit(&scores, &labels);
        assert!((p.a + 1.0).abs() < 0.1, "{p:?}");
        assert!(p.b.abs() < 0.3, "{p:?}");
    }
}

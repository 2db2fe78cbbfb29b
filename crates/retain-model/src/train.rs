//! Training: a time-based split of the stacked snapshots, LightGBM with early stopping on the
//! validation snapshot, Platt calibration on it, and evaluation on the latest snapshot.

use std::collections::BTreeSet;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Date32Type, Float64Type, Int32Type, Int64Type};
use lightgbm3::{Booster, Dataset};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::metrics::{Metrics, evaluate};
use crate::reasons::{Reason, top_reasons};

/// Rows of a training set as dense matrices.
#[derive(Debug, Default)]
pub struct Table {
    pub features: Vec<String>,
    pub subscriber_id: Vec<i64>,
    /// Snapshot as days since the epoch.
    pub snapshot: Vec<i32>,
    pub label: Vec<bool>,
    /// Row-major, `NaN` for missing.
    pub x: Vec<f64>,
}

impl Table {
    /// Reads batches with `subscriber_id`, optional `snapshot` and `label`, and feature columns
    /// (every other column, as `Float64`).
    pub fn from_batches(batches: &[RecordBatch]) -> Result<Table> {
        let Some(first) = batches.first() else {
            return Err(Error::Data("the training set is empty".into()));
        };
        let reserved = ["subscriber_id", "snapshot", "label"];
        let features: Vec<String> = first
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| !reserved.contains(&n.as_str()))
            .collect();
        let mut t = Table {
            features,
            ..Table::default()
        };
        for b in batches {
            let ids = b
                .column_by_name("subscriber_id")
                .ok_or_else(|| Error::Data("no subscriber_id column".into()))?;
            let ids = ids.as_primitive::<Int64Type>();
            let snapshot = b
                .column_by_name("snapshot")
                .map(|a| a.as_primitive::<Date32Type>().clone());
            let label = b
                .column_by_name("label")
                .map(|a| a.as_primitive::<Int32Type>().clone());
            let cols: Vec<_> = t
                .features
                .iter()
                .map(|n| {
                    b.column_by_name(n)
                        .map(|c| c.as_primitive::<Float64Type>().clone())
                        .ok_or_else(|| Error::Data(format!("no column {n}")))
                })
                .collect::<Result<_>>()?;
            for r in 0..b.num_rows() {
                t.subscriber_id.push(ids.value(r));
                t.snapshot.push(snapshot.as_ref().map_or(0, |s| s.value(r)));
                t.label
                    .push(label.as_ref().is_some_and(|l| l.value(r) == 1));
                for c in &cols {
                    t.x.push(if c.is_null(r) || !c.value(r).is_finite() {
                        f64::NAN
                    } else {
                        c.value(r)
                    });
                }
            }
        }
        Ok(t)
    }

    fn rows(&self, keep: &[usize]) -> (Vec<f64>, Vec<f32>) {
        let d = self.features.len();
        let mut x = Vec::with_capacity(keep.len() * d);
        let mut y = Vec::with_capacity(keep.len());
        for &i in keep {
            x.extend_from_slice(&self.x[i * d..(i + 1) * d]);
            y.push(if self.label[i] { 1.0 } else { 0.0 });
        }
        (x, y)
    }
}

/// Platt scaling: P(churn) = 1 / (1 + exp(a·s + b)) over the raw score s.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize)]
pub struct Platt {
    pub a: f64,
    pub b: f64,
}

impl Platt {
    /// Fits by Newton's method on (raw score, label), with Platt's smoothed targets.
    #[must_use]
    #[allow(clippy::many_single_char_names)]
    pub fn fit(scores: &[f64], labels: &[bool]) -> Platt {
        let pos = labels.iter().filter(|l| **l).count() as f64;
        let neg = labels.len() as f64 - pos;
        let hi = (pos + 1.0) / (pos + 2.0);
        let lo = 1.0 / (neg + 2.0);
        let targets: Vec<f64> = labels.iter().map(|l| if *l { hi } else { lo }).collect();
        let (mut a, mut b) = (-1.0, ((neg + 1.0) / (pos + 1.0)).ln());
        for _ in 0..100 {
            let (mut g_a, mut g_b, mut h_aa, mut h_ab, mut h_bb) = (0.0, 0.0, 1e-12, 0.0, 1e-12);
            for (s, t) in scores.iter().zip(&targets) {
                let p = 1.0 / (1.0 + (a * s + b).exp());
                let d = t - p; // derivative of the log likelihood w.r.t. (a·s + b)
                g_a += d * s;
                g_b += d;
                let w = p * (1.0 - p);
                h_aa += w * s * s;
                h_ab += w * s;
                h_bb += w;
            }
            let det = h_aa * h_bb - h_ab * h_ab;
            if det.abs() < 1e-18 {
                break;
            }
            let da = (h_bb * g_a - h_ab * g_b) / det;
            let db = (h_aa * g_b - h_ab * g_a) / det;
            a -= da;
            b -= db;
            if da.abs() < 1e-9 && db.abs() < 1e-9 {
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

/// What training produced.
#[derive(Debug, Serialize)]
pub struct TrainReport {
    pub features: Vec<String>,
    pub rows_train: usize,
    pub rows_valid: usize,
    pub rows_test: usize,
    pub best_iteration: i32,
    pub train_seconds: f64,
    pub platt: Platt,
    /// Metrics on the latest snapshot, never seen in training or calibration.
    pub test: Metrics,
    pub importance: Vec<(String, f64)>,
}

/// A trained, calibrated churn model.
pub struct ChurnModel {
    pub booster: Booster,
    pub features: Vec<String>,
    pub platt: Platt,
}

/// LightGBM parameters: fixed defaults, the same for every data set.
fn params(scale_pos_weight: f64) -> serde_json::Value {
    serde_json::json!({
        "objective": "binary",
        "metric": "auc",
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_data_in_leaf": 50,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "scale_pos_weight": scale_pos_weight,
        "num_iterations": 1000,
        "early_stopping_rounds": 50,
        "seed": 42,
        "deterministic": true,
        "verbose": -1,
    })
}

/// Trains on all snapshots but the last two; stops early and calibrates on the second to last;
/// evaluates on the last.
pub fn train(table: &Table) -> Result<(ChurnModel, TrainReport)> {
    let snapshots: BTreeSet<i32> = table.snapshot.iter().copied().collect();
    if snapshots.len() < 3 {
        return Err(Error::Data(format!(
            "training needs at least 3 snapshots (train, validation, test); the data has {}",
            snapshots.len()
        )));
    }
    let ordered: Vec<i32> = snapshots.into_iter().collect();
    let (test_s, valid_s) = (ordered[ordered.len() - 1], ordered[ordered.len() - 2]);
    let pick = |f: &dyn Fn(i32) -> bool| -> Vec<usize> {
        (0..table.label.len())
            .filter(|i| f(table.snapshot[*i]))
            .collect()
    };
    let train_rows = pick(&|s| s < valid_s);
    let valid_rows = pick(&|s| s == valid_s);
    let test_rows = pick(&|s| s == test_s);
    let d = table.features.len() as i32;
    let (xt, yt) = table.rows(&train_rows);
    let (xv, yv) = table.rows(&valid_rows);
    let pos = yt.iter().filter(|y| **y > 0.5).count().max(1) as f64;
    // Class imbalance: weigh churners up, but not to parity — calibration fixes the scale.
    let weight = ((yt.len() as f64 - pos) / pos).sqrt();
    let started = std::time::Instant::now();
    let lgbm = |e: lightgbm3::Error| Error::Model(e.to_string());
    let mut train_set = Dataset::from_slice(&xt, &yt, d, true).map_err(lgbm)?;
    train_set.set_feature_names(&table.features).map_err(lgbm)?;
    let valid_set =
        Dataset::from_slice_with_reference(&xv, &yv, d, true, Some(&train_set)).map_err(lgbm)?;
    let booster =
        Booster::train_with_valid(train_set, Some(valid_set), &params(weight)).map_err(lgbm)?;
    let train_seconds = started.elapsed().as_secs_f64();

    let raw = |x: &[f64]| booster.raw_scores(x, d, true).map_err(lgbm);
    let valid_raw = raw(&xv)?;
    let valid_labels: Vec<bool> = valid_rows.iter().map(|i| table.label[*i]).collect();
    let mut platt = Platt::fit(&valid_raw, &valid_labels);
    if !(platt.a < 0.0 && platt.a.is_finite() && platt.b.is_finite()) {
        // A validation snapshot too small or too noisy to calibrate on: undo the class weight
        // instead, which is what calibration would mostly do.
        tracing::warn!(
            ?platt,
            "calibration failed; using the class-weight correction"
        );
        platt = Platt {
            a: -1.0,
            b: weight.ln(),
        };
    }
    let (xs, _) = table.rows(&test_rows);
    let test_p: Vec<f64> = raw(&xs)?.into_iter().map(|s| platt.apply(s)).collect();
    let test_labels: Vec<bool> = test_rows.iter().map(|i| table.label[*i]).collect();
    let mut importance: Vec<(String, f64)> = table
        .features
        .iter()
        .cloned()
        .zip(
            booster
                .feature_importance(lightgbm3::ImportanceType::Gain)
                .map_err(lgbm)?,
        )
        .collect();
    importance.sort_by(|a, b| b.1.total_cmp(&a.1));
    let report = TrainReport {
        features: table.features.clone(),
        rows_train: train_rows.len(),
        rows_valid: valid_rows.len(),
        rows_test: test_rows.len(),
        best_iteration: booster.num_iterations(),
        train_seconds,
        platt,
        test: evaluate(&test_p, &test_labels),
        importance,
    };
    Ok((
        ChurnModel {
            booster,
            features: table.features.clone(),
            platt,
        },
        report,
    ))
}

/// One subscriber's score.
#[derive(Debug, Clone, Serialize)]
pub struct Score {
    pub subscriber_id: i64,
    pub probability: f64,
    pub reasons: Vec<Reason>,
}

impl ChurnModel {
    /// Calibrated probabilities and top reasons for every row of `table`.
    pub fn score(&self, table: &Table) -> Result<Vec<Score>> {
        if table.features != self.features {
            return Err(Error::Data(
                "the feature columns differ from the model's".into(),
            ));
        }
        let d = self.features.len();
        let lgbm = |e: lightgbm3::Error| Error::Model(e.to_string());
        let raw = self
            .booster
            .raw_scores(&table.x, d as i32, true)
            .map_err(lgbm)?;
        let contrib = self
            .booster
            .predict_contrib(&table.x, d as i32, true)
            .map_err(lgbm)?;
        Ok(table
            .subscriber_id
            .iter()
            .enumerate()
            .map(|(i, id)| Score {
                subscriber_id: *id,
                probability: self.platt.apply(raw[i]),
                // Contributions: one per feature, then the bias.
                reasons: top_reasons(&self.features, &contrib[i * (d + 1)..i * (d + 1) + d], 3),
            })
            .collect())
    }
}

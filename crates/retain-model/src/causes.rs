//! Why a churner leaves, learned from what leavers said (离网原因).
//!
//! TreeSHAP summed by reason category explains the score: which signals raised it. The cause
//! is another question: a subscriber leaving over the network also stops using the phone and
//! calls a competitor. So the reasons are ranked by a cause model instead: a multinomial
//! logistic regression from the subscriber's numeric features to the reason category of the
//! cause, fitted on the training snapshots' churners whose exit carries a stated reason
//! (`events.stated_reason`). It reads the features alone, not the contributions: as exact on
//! the demo operators (0.830 against 0.833 with the contributions per category as inputs), and
//! a cause then costs a dot product, not a TreeSHAP pass, so the matching can read one for
//! every past campaign contact.
//!
//! What people say is noisy, and not evenly: "too expensive" (资费偏高) is the polite answer
//! to anything. So a statement is modelled as the cause with probability `1 - noise`, and
//! otherwise as a draw from a catch-all distribution over the reasons whatever the cause.
//! Both parts are fitted together by expectation-maximization: a statement the features
//! explain poorly (a subscriber plainly leaving over the network who says "price") is taken
//! for noise and teaches the cause model little. The reasons are ranked by the cause part
//! alone, so an over-stated reason stops winning every doubtful case.

// Linear algebra reads best in its textbook letters.
#![allow(clippy::many_single_char_names)]

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::reasons::CATEGORIES;
use crate::table::Table;

/// Penalties on the sum of squared weights against the summed log loss tried (scikit-learn's
/// `C` = 1, 0.1, 0.01): a hundred inputs and a few hundred leavers overfit at the weakest, and
/// an overfitted model is sure of every row, which leaves nothing for the noise to explain.
const L2: [f64; 3] = [1.0, 10.0, 100.0];
/// Folds and rows of the cross-validation choosing the penalty.
const FOLDS: usize = 3;
const CV_ROWS: usize = 5_000;
/// Enough labelled churners for seven classes; beyond, a seeded sample.
const MAX_ROWS: usize = 10_000;
/// Full-batch Adam steps: the loss is smooth and convex, and settles well within them.
const STEPS: usize = 300;
/// Fewer labelled churners than this, or than this per class, and no cause is learned
/// (a class below it is left out).
const MIN_ROWS: usize = 50;
const MIN_PER_CLASS: usize = 5;
/// Rounds of expectation-maximization, and the descent steps of each after the first fit.
const EM_ROUNDS: usize = 25;
const EM_STEPS: usize = 30;

/// The reason category a stated reason names, `None` for one that names none (`other`).
#[must_use]
pub fn stated_category(stated: &str) -> Option<&'static str> {
    match stated {
        "price" => Some("value_decline"),
        "relocation" => Some("low_engagement"),
        s => CATEGORIES.iter().find(|(c, _)| *c == s).map(|(c, _)| *c),
    }
}

/// A fitted cause model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CauseModel {
    /// Reason categories, in the order of the weights' rows.
    pub classes: Vec<String>,
    /// The numeric features used, by name and as indexes into the churn model's features.
    inputs: Vec<String>,
    columns: Vec<usize>,
    /// Standardization of the inputs.
    mean: Vec<f64>,
    sd: Vec<f64>,
    /// Per class, a weight per input then the intercept.
    weights: Vec<f64>,
    /// The share of statements that are noise, not the cause.
    pub noise: f64,
    /// How noise statements spread over the classes.
    pub noise_reasons: Vec<f64>,
    /// Labelled churners it was fitted on.
    pub rows: usize,
}

/// Labelled churners: their features row and the class.
pub struct Labelled<'a> {
    /// Row-major features, `d` a row.
    pub x: &'a [f64],
    /// Reason category of each row.
    pub classes: &'a [&'static str],
}

impl CauseModel {
    fn inputs(&self) -> usize {
        self.mean.len()
    }

    /// The raw inputs of one row, before standardization.
    fn raw(columns: &[usize], x: &[f64], out: &mut Vec<f64>) {
        out.clear();
        out.extend(columns.iter().map(|&j| x[j]));
    }

    /// Whether the model reads the churn model's `features` as it was fitted on them, and its
    /// parts agree in size: a model file edited or saved by another version may not.
    #[must_use]
    pub fn fits(&self, features: &[String]) -> bool {
        let (k, p) = (self.classes.len(), self.columns.len());
        self.inputs.len() == p
            && self
                .columns
                .iter()
                .zip(&self.inputs)
                .all(|(&j, name)| features.get(j) == Some(name))
            && self.mean.len() == p
            && self.sd.len() == p
            && self.weights.len() == k * (p + 1)
            && self.noise_reasons.len() == k
            && self
                .classes
                .iter()
                .all(|c| CATEGORIES.iter().any(|(code, _)| code == c))
    }

    fn standardize(&self, raw: &mut [f64]) {
        for ((v, m), s) in raw.iter_mut().zip(&self.mean).zip(&self.sd) {
            *v = if v.is_finite() { (*v - m) / s } else { 0.0 };
        }
    }

    /// Fits on `data`; `numeric` says which features are numbers (a categorical column's codes
    /// are no quantity). `None` when there are too few labelled churners or classes.
    #[must_use]
    pub fn fit(features: &[String], numeric: &[bool], data: &Labelled<'_>) -> Option<CauseModel> {
        let d = features.len();
        let n_all = data.classes.len();
        let mut counts: Vec<(&'static str, usize)> = Vec::new();
        for c in data.classes {
            match counts.iter_mut().find(|(k, _)| k == c) {
                Some(e) => e.1 += 1,
                None => counts.push((c, 1)),
            }
        }
        // Classes in the categories' order, so a model reads the same however rows came.
        let classes: Vec<&'static str> = CATEGORIES
            .iter()
            .map(|(c, _)| *c)
            .filter(|c| counts.iter().any(|(k, n)| k == c && *n >= MIN_PER_CLASS))
            .collect();
        let keep: Vec<usize> = (0..n_all)
            .filter(|&i| classes.contains(&data.classes[i]))
            .collect();
        if classes.len() < 2 || keep.len() < MIN_ROWS {
            return None;
        }
        let keep = crate::split::sample(&keep, MAX_ROWS, 11);
        let columns: Vec<usize> = (0..d).filter(|&j| numeric[j]).collect();
        let p = columns.len();
        let n = keep.len();
        let mut design = Vec::with_capacity(n * p);
        let mut buf = Vec::with_capacity(p);
        for &i in &keep {
            Self::raw(&columns, &data.x[i * d..(i + 1) * d], &mut buf);
            design.extend_from_slice(&buf);
        }
        let (mean, sd) = moments(&design, p);
        let mut model = CauseModel {
            classes: classes.iter().map(|c| (*c).to_owned()).collect(),
            inputs: columns.iter().map(|&j| features[j].clone()).collect(),
            columns,
            mean,
            sd,
            weights: Vec::new(),
            noise: 0.0,
            noise_reasons: vec![0.0; classes.len()],
            rows: n,
        };
        for row in design.chunks_exact_mut(p) {
            model.standardize(row);
        }
        let y: Vec<usize> = keep
            .iter()
            .map(|&i| {
                classes
                    .iter()
                    .position(|c| *c == data.classes[i])
                    .expect("kept rows have a class")
            })
            .collect();
        let k = classes.len();
        let l2 = choose_l2(&design, &y, p, k);
        let mut weights = vec![1.0; n];
        model.weights = softmax_regression(&design, &y, &weights, (p, k), l2, None, STEPS);
        // Noise starts as a fifth of the statements, spread as the statements are.
        let (mut noise, mut spread) = (0.2, vec![0.0; k]);
        for &c in &y {
            spread[c] += 1.0 / n as f64;
        }
        let mut probs = vec![0.0; k];
        for _ in 0..EM_ROUNDS {
            // E: the chance each statement is noise, given what the features say of the cause.
            for (i, (row, &c)) in design.chunks_exact(p).zip(&y).enumerate() {
                model.stated(row, &mut probs);
                let from_noise = noise * spread[c];
                weights[i] = 1.0 - from_noise / ((1.0 - noise) * probs[c] + from_noise);
            }
            // M: the noise's share and spread, then the cause model on the rest.
            let total: f64 = weights.iter().map(|w| 1.0 - w).sum();
            noise = (total / n as f64).clamp(1e-6, 0.9);
            spread.fill(1e-9);
            for (w, &c) in weights.iter().zip(&y) {
                spread[c] += (1.0 - w) / total.max(1e-9);
            }
            let start = std::mem::take(&mut model.weights);
            model.weights =
                softmax_regression(&design, &y, &weights, (p, k), l2, Some(start), EM_STEPS);
        }
        model.noise = noise;
        let sum: f64 = spread.iter().sum();
        model.noise_reasons = spread.iter().map(|v| v / sum).collect();
        Some(model)
    }

    /// The cause probabilities of standardized `row`.
    fn stated(&self, row: &[f64], out: &mut [f64]) {
        let p = self.inputs();
        for (k, o) in out.iter_mut().enumerate() {
            let w = &self.weights[k * (p + 1)..(k + 1) * (p + 1)];
            *o = w[p] + row.iter().zip(w).map(|(a, b)| a * b).sum::<f64>();
        }
        softmax(out);
    }

    /// The probability of each class being the cause, for a subscriber with features `x` (in
    /// the churn model's feature order; see [`CauseModel::fits`]).
    #[must_use]
    pub fn causes(&self, x: &[f64]) -> Vec<f64> {
        let mut row = Vec::with_capacity(self.inputs());
        Self::raw(&self.columns, x, &mut row);
        self.standardize(&mut row);
        let mut out = vec![0.0; self.classes.len()];
        self.stated(&row, &mut out);
        out
    }
}

/// What leavers said (离网原因): per subscriber, each statement's day (since the epoch, as
/// snapshots count) and the reason category it names.
pub(crate) type Statements = HashMap<i64, Vec<(i32, &'static str)>>;

/// What the subscriber of each row of `table` said when leaving around its snapshot: the first
/// statement from `gap` months before the snapshot (a stop request opens the suspension that the
/// label's cancellation ends) to `horizon` months after its month.
#[must_use]
pub(crate) fn said_at(
    table: &Table,
    statements: &Statements,
    horizon: u32,
    gap: u32,
) -> Vec<Option<&'static str>> {
    let epoch = chrono::NaiveDate::default();
    let day = |d: chrono::NaiveDate| i32::try_from((d - epoch).num_days()).unwrap_or(i32::MAX);
    (0..table.len())
        .map(|i| {
            let said = statements.get(&table.subscriber_id[i])?;
            let snapshot =
                epoch.checked_add_signed(chrono::Duration::days(i64::from(table.snapshot[i])))?;
            let from = day(snapshot.checked_sub_months(chrono::Months::new(gap))?);
            let to = day(snapshot.checked_add_months(chrono::Months::new(horizon + 1))?);
            said.iter()
                .filter(|(d, _)| (from..to).contains(d))
                .min_by_key(|(d, _)| *d)
                .map(|(_, c)| *c)
        })
        .collect()
}

/// Fits a cause model on the churners among `rows` of `table` (the churn model's training
/// table) with a statement in `said` (one per row of `table`); `None` when too few have one.
#[must_use]
pub(crate) fn learn(
    table: &Table,
    rows: &[usize],
    said: &[Option<&'static str>],
) -> Option<CauseModel> {
    let d = table.features.len();
    let labelled: Vec<usize> = rows
        .iter()
        .copied()
        .filter(|&i| table.label[i] && said.get(i).copied().flatten().is_some())
        .collect();
    if labelled.len() < MIN_ROWS {
        return None;
    }
    let labelled = crate::split::sample(&labelled, MAX_ROWS, 13);
    let x: Vec<f64> = labelled
        .iter()
        .flat_map(|&i| table.x[i * d..(i + 1) * d].iter().copied())
        .collect();
    let classes: Vec<&'static str> = labelled.iter().filter_map(|&i| said[i]).collect();
    let numeric: Vec<bool> = (0..d)
        .map(|j| table.levels.get(j).is_none_or(Option::is_none))
        .collect();
    CauseModel::fit(
        &table.features,
        &numeric,
        &Labelled {
            x: &x,
            classes: &classes,
        },
    )
}

/// Column means and deviations of row-major `x` with `p` columns, missing values skipped; a
/// constant or empty column gets deviation 1.
fn moments(x: &[f64], p: usize) -> (Vec<f64>, Vec<f64>) {
    let mut mean = vec![0.0; p];
    let mut sd = vec![1.0; p];
    for j in 0..p {
        let (mut n, mut sum, mut sq) = (0.0, 0.0, 0.0);
        for v in x.iter().skip(j).step_by(p).filter(|v| v.is_finite()) {
            n += 1.0;
            sum += v;
            sq += v * v;
        }
        if n > 0.0 {
            mean[j] = sum / n;
            let var = (sq / n - mean[j] * mean[j]).max(0.0);
            if var > 1e-12 {
                sd[j] = var.sqrt();
            }
        }
    }
    (mean, sd)
}

fn softmax(z: &mut [f64]) {
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut total = 0.0;
    for v in z.iter_mut() {
        *v = (*v - m).exp();
        total += *v;
    }
    for v in z.iter_mut() {
        *v /= total;
    }
}

/// The penalty of [`L2`] with the least held-out log loss over [`FOLDS`] folds of at most
/// [`CV_ROWS`] rows.
fn choose_l2(x: &[f64], y: &[usize], p: usize, k: usize) -> f64 {
    let rows = crate::split::sample(&(0..y.len()).collect::<Vec<_>>(), CV_ROWS, 17);
    let mut best = (f64::INFINITY, L2[0]);
    for l2 in L2 {
        let mut loss = 0.0;
        for fold in 0..FOLDS {
            let (mut xt, mut yt, mut xv, mut yv) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (r, &i) in rows.iter().enumerate() {
                let (xs, ys) = if r % FOLDS == fold {
                    (&mut xv, &mut yv)
                } else {
                    (&mut xt, &mut yt)
                };
                xs.extend_from_slice(&x[i * p..(i + 1) * p]);
                ys.push(y[i]);
            }
            if yt.is_empty() || yv.is_empty() {
                continue;
            }
            let ones = vec![1.0; yt.len()];
            let w = softmax_regression(&xt, &yt, &ones, (p, k), l2, None, STEPS);
            let mut z = vec![0.0; k];
            for (row, &label) in xv.chunks_exact(p).zip(&yv) {
                for (c, zc) in z.iter_mut().enumerate() {
                    let wc = &w[c * (p + 1)..(c + 1) * (p + 1)];
                    *zc = wc[p] + row.iter().zip(wc).map(|(a, b)| a * b).sum::<f64>();
                }
                softmax(&mut z);
                loss -= z[label].max(1e-12).ln();
            }
        }
        if loss < best.0 {
            best = (loss, l2);
        }
    }
    best.1
}

/// Weights of an L2-penalized multinomial logistic regression on standardized row-major `x`
/// (`p` columns) and classes `y` in `0..k`, each row weighing `weights`, by `steps` of
/// full-batch Adam on the weighted mean loss from `start` (else from the class shares); `l2`
/// weighs the squared weights against the summed loss.
fn softmax_regression(
    x: &[f64],
    y: &[usize],
    weights: &[f64],
    (p, k): (usize, usize),
    l2: f64,
    start: Option<Vec<f64>>,
    steps: usize,
) -> Vec<f64> {
    let n: f64 = weights.iter().sum::<f64>().max(1e-9);
    let width = p + 1;
    let mut w = start.unwrap_or_else(|| {
        // Intercepts start at the log class shares: the first steps then learn the inputs.
        let mut w = vec![0.0; k * width];
        for c in 0..k {
            let share = y.iter().filter(|&&v| v == c).count() as f64 / y.len() as f64;
            w[c * width + p] = share.max(1e-6).ln();
        }
        w
    });
    let (mut m, mut v) = (vec![0.0; w.len()], vec![0.0; w.len()]);
    let (rate, b1, b2) = (0.05, 0.9_f64, 0.999_f64);
    let penalty = l2 / n;
    let mut grad = vec![0.0; w.len()];
    let mut z = vec![0.0; k];
    for step in 1..=steps {
        grad.fill(0.0);
        for ((row, &label), &weight) in x.chunks_exact(p).zip(y).zip(weights) {
            for (c, zc) in z.iter_mut().enumerate() {
                let wc = &w[c * width..(c + 1) * width];
                *zc = wc[p] + row.iter().zip(wc).map(|(a, b)| a * b).sum::<f64>();
            }
            softmax(&mut z);
            for (c, zc) in z.iter().enumerate() {
                let e = weight * (zc - f64::from(u8::from(c == label)));
                let g = &mut grad[c * width..(c + 1) * width];
                for (gj, xj) in g.iter_mut().zip(row) {
                    *gj += e * xj;
                }
                g[p] += e;
            }
        }
        let (c1, c2) = (1.0 - b1.powi(step as i32), 1.0 - b2.powi(step as i32));
        for (j, wj) in w.iter_mut().enumerate() {
            let mut g = grad[j] / n;
            if j % width != p {
                g += penalty * *wj;
            }
            m[j] = b1 * m[j] + (1.0 - b1) * g;
            v[j] = b2 * v[j] + (1.0 - b2) * g * g;
            *wj -= rate * (m[j] / c1) / ((v[j] / c2).sqrt() + 1e-8);
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::tests::draws;

    /// The cause model of `stated` over numeric `features` and `x`.
    fn fit(features: &[String], x: &[f64], stated: &[&'static str]) -> Option<CauseModel> {
        let data = Labelled { x, classes: stated };
        CauseModel::fit(features, &vec![true; features.len()], &data)
    }

    /// Churners of three causes, each showing in its own feature; what they say is the cause
    /// 60% of the time, "price" (value decline) 40%.
    fn churners(n: usize, seed: u64) -> (Vec<String>, Vec<f64>, Vec<&'static str>, Vec<usize>) {
        let features: Vec<String> = ["network_complaints_6m", "competitor_calls_6m", "fee_trend"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let classes = ["network_quality", "competitor_lure", "value_decline"];
        let mut next = draws(seed);
        let (mut x, mut stated, mut truth) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let cause = (next() * 3.0) as usize;
            for j in 0..3 {
                let signal = if j == cause { 0.6 } else { 0.0 };
                x.push(signal + next() + next() - 1.0);
            }
            truth.push(cause);
            stated.push(if next() < 0.4 {
                "value_decline"
            } else {
                classes[cause]
            });
        }
        (features, x, stated, truth)
    }

    /// How often the likeliest class is the truth: by the cause part, or by what would be
    /// stated (cause and noise mixed), which a model blind to the noise would rank by.
    fn accuracy(model: &CauseModel, x: &[f64], truth: &[usize], stated: bool) -> f64 {
        let classes = ["network_quality", "competitor_lure", "value_decline"];
        let hits = truth
            .iter()
            .enumerate()
            .filter(|(i, t)| {
                let mut p = model.causes(&x[i * 3..i * 3 + 3]);
                if stated {
                    for (v, b) in p.iter_mut().zip(&model.noise_reasons) {
                        *v = (1.0 - model.noise) * *v + model.noise * b;
                    }
                }
                let best = (0..p.len()).max_by(|a, b| p[*a].total_cmp(&p[*b])).unwrap();
                model.classes[best] == classes[**t]
            })
            .count();
        hits as f64 / truth.len() as f64
    }

    #[test]
    fn noise_in_what_leavers_say_is_learned_apart_from_the_cause() {
        let (features, x, stated, _) = churners(4_000, 3);
        let model = fit(&features, &x, &stated).unwrap();
        // "price" is said 40% of the time whatever the cause: the noise is found, and found
        // to be "price".
        let vd = model
            .classes
            .iter()
            .position(|c| c == "value_decline")
            .unwrap();
        assert!((model.noise - 0.4).abs() < 0.1, "{}", model.noise);
        assert!(model.noise_reasons[vd] > 0.8, "{:?}", model.noise_reasons);
        let (_, test, _, truth) = churners(2_000, 4);
        let by_cause = accuracy(&model, &test, &truth, false);
        let by_statement = accuracy(&model, &test, &truth, true);
        assert!(model.fits(&features));
        let mut renamed = features.clone();
        renamed[0] = "another".into();
        assert!(!model.fits(&renamed) && !model.fits(&features[..2]));
        assert!(
            by_cause > by_statement + 0.05,
            "by cause {by_cause}, by statement {by_statement}"
        );
        assert!(by_cause > 0.7, "{by_cause} against {by_statement}");
    }

    #[test]
    fn too_few_labelled_churners_learn_no_cause() {
        let (features, x, stated, _) = churners(30, 5);
        assert!(fit(&features, &x, &stated).is_none());
        // Three hundred leavers who all say the same teach no ranking.
        let (features, x, _, _) = churners(300, 6);
        assert!(fit(&features, &x, &["value_decline"; 300]).is_none());
    }

    #[test]
    fn a_rows_statement_is_the_first_within_its_labels_window() {
        let day = |y, m, d| {
            i32::try_from(
                (chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap() - chrono::NaiveDate::default())
                    .num_days(),
            )
            .unwrap()
        };
        let table = Table {
            features: vec!["f".into()],
            subscriber_id: vec![1, 1, 2, 3],
            snapshot: vec![
                day(2026, 5, 1),
                day(2026, 1, 1),
                day(2026, 5, 1),
                day(2026, 5, 1),
            ],
            label: vec![true; 4],
            x: vec![0.0; 4],
            levels: Vec::new(),
        };
        let statements = Statements::from([
            // A downgrade long before, then a stop request two months before the snapshot
            // (its suspension is the gap), then a port-out after the window.
            (
                1,
                vec![
                    (day(2025, 6, 3), "value_decline"),
                    (day(2026, 3, 10), "network_quality"),
                    (day(2026, 9, 1), "competitor_lure"),
                ],
            ),
            (2, vec![(day(2026, 6, 30), "contract_expiry")]),
        ]);
        let said = said_at(&table, &statements, 1, 3);
        assert_eq!(
            said,
            [Some("network_quality"), None, Some("contract_expiry"), None]
        );
    }

    #[test]
    fn stated_reasons_map_to_categories() {
        assert_eq!(stated_category("price"), Some("value_decline"));
        assert_eq!(stated_category("relocation"), Some("low_engagement"));
        assert_eq!(stated_category("network_quality"), Some("network_quality"));
        assert_eq!(stated_category("other"), None);
        assert_eq!(stated_category("unknown"), None);
    }
}

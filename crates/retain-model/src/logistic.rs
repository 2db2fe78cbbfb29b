//! The floor model: L2-regularized logistic regression, fitted exactly by Newton's method.
//!
//! On small, mostly linear tables (IBM Telco) it beats every default gradient-boosted model, so
//! the recipe blends it in when validation says so. Numbers are standardized with the training
//! mean and deviation, missing values become the mean plus a missing flag, and categories are
//! one-hot encoded with the training levels (an unseen level encodes as all zeros).

// Linear algebra reads best in its textbook letters.
#![allow(clippy::many_single_char_names)]

use serde::{Deserialize, Serialize};

use crate::table::Table;

/// Penalty on the sum of squared coefficients, against the summed log loss (scikit-learn's
/// `C = 1`), so a handful of rows cannot drive a coefficient to infinity.
const L2: f64 = 1.0;
/// A few dozen coefficients need far fewer rows than the trees; beyond this, a seeded sample
/// is used (it also bounds the O(rows × columns²) cost of each Newton step).
const MAX_ROWS: usize = 50_000;

/// How one input column becomes design columns.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Encoding {
    /// Standardized; `flag` adds a missing-value indicator.
    Numeric { mean: f64, sd: f64, flag: bool },
    /// One column per level code in `0..levels`.
    Categorical { levels: usize },
}

/// A fitted logistic regression over a [`Table`]'s columns.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Logistic {
    encodings: Vec<Encoding>,
    intercept: f64,
    coefficients: Vec<f64>,
}

impl Logistic {
    fn width(&self) -> usize {
        self.coefficients.len()
    }

    /// Design columns of one row; `out` has `width()` entries.
    fn encode(encodings: &[Encoding], row: &[f64], out: &mut [f64]) {
        let mut k = 0;
        for (e, v) in encodings.iter().zip(row) {
            match *e {
                Encoding::Numeric { mean, sd, flag } => {
                    out[k] = if v.is_nan() { 0.0 } else { (v - mean) / sd };
                    k += 1;
                    if flag {
                        out[k] = f64::from(u8::from(v.is_nan()));
                        k += 1;
                    }
                }
                Encoding::Categorical { levels } => {
                    out[k..k + levels].fill(0.0);
                    if let Some(level) = level(*v, levels) {
                        out[k + level] = 1.0;
                    }
                    k += levels;
                }
            }
        }
    }

    /// Fits on the rows `keep` of `table`.
    #[must_use]
    pub fn fit(table: &Table, keep: &[usize]) -> Logistic {
        let d = table.features.len();
        let sample = crate::split::sample(keep, MAX_ROWS, 7);
        let encodings: Vec<Encoding> = (0..d)
            .map(|j| {
                if let Some(levels) = table.levels.get(j).and_then(Option::as_ref) {
                    return Encoding::Categorical {
                        levels: levels.len(),
                    };
                }
                let (mut n, mut sum, mut sq, mut missing) = (0.0, 0.0, 0.0, false);
                for &i in &sample {
                    let v = table.x[i * d + j];
                    if v.is_nan() {
                        missing = true;
                    } else {
                        n += 1.0;
                        sum += v;
                        sq += v * v;
                    }
                }
                let mean = if n > 0.0 { sum / n } else { 0.0 };
                let var = if n > 0.0 { sq / n - mean * mean } else { 0.0 };
                let sd = if var > 1e-12 { var.sqrt() } else { 1.0 };
                Encoding::Numeric {
                    mean,
                    sd,
                    flag: missing,
                }
            })
            .collect();
        let design = Design::new(&encodings, table, &sample);
        let y: Vec<f64> = sample
            .iter()
            .map(|i| f64::from(u8::from(table.label[*i])))
            .collect();
        let beta = newton(&design, &y);
        Logistic {
            encodings,
            intercept: beta[0],
            coefficients: beta[1..].to_vec(),
        }
    }

    /// Log-odds of churn of every row.
    #[must_use]
    pub fn logits(&self, x: &[f64], d: usize) -> Vec<f64> {
        x.chunks_exact(d).map(|row| self.logit(row)).collect()
    }

    /// Log-odds of churn of one row: the design's dot product without writing the design, so
    /// a one-hot column costs one lookup, not a pass over its levels. The terms are summed in
    /// the design's order and the intercept added last, as the design's dot product did.
    #[must_use]
    pub fn logit(&self, row: &[f64]) -> f64 {
        let mut z = 0.0;
        let mut k = 0;
        for (e, v) in self.encodings.iter().zip(row) {
            match *e {
                Encoding::Numeric { mean, sd, flag } => {
                    if v.is_nan() {
                        if flag {
                            z += self.coefficients[k + 1];
                        }
                    } else {
                        z += (v - mean) / sd * self.coefficients[k];
                    }
                    k += 1 + usize::from(flag);
                }
                Encoding::Categorical { levels } => {
                    if let Some(level) = level(*v, levels) {
                        z += self.coefficients[k + level];
                    }
                    k += levels;
                }
            }
        }
        self.intercept + z
    }

    /// Each input column's share of one row's log-odds (away from the training mean).
    #[must_use]
    pub fn contributions(&self, row: &[f64]) -> Vec<f64> {
        let mut buf = vec![0.0; self.width()];
        Self::encode(&self.encodings, row, &mut buf);
        let mut k = 0;
        self.encodings
            .iter()
            .map(|e| {
                let n = match e {
                    Encoding::Numeric { flag, .. } => 1 + usize::from(*flag),
                    Encoding::Categorical { levels } => *levels,
                };
                let c = (k..k + n)
                    .map(|t| buf[t] * self.coefficients[t])
                    .sum::<f64>();
                k += n;
                c
            })
            .collect()
    }
}

/// The sampled rows' design columns, kept by kind: each row's standardized numbers, and the
/// indicator columns it switches on (the intercept, its level of each categorical column, the
/// missing flags it raises). A row of a churn table has a few numbers and a dozen indicators
/// among dozens of one-hot columns, so a Newton step costs the pairs of those rather than of
/// every column, with no branch on zeros (IBM Telco's regression: about 9 ms to 5).
struct Design {
    /// Design columns, the intercept (column 0) included.
    width: usize,
    /// The design column of each numeric slot.
    numeric: Vec<usize>,
    /// `numeric.len()` values per row.
    values: Vec<f64>,
    /// The indicator column of each indicator slot per row, or `width` (a spare column, never
    /// solved for) where a slot is off: a missing or unseen category, a value present.
    on: Vec<usize>,
    slots: usize,
}

impl Design {
    fn new(encodings: &[Encoding], table: &Table, sample: &[usize]) -> Design {
        let d = table.features.len();
        let mut numeric = Vec::new();
        // Per input column: the design column of its indicator slot, if it has one.
        let mut indicator = Vec::with_capacity(encodings.len());
        let mut k = 1;
        for e in encodings {
            match *e {
                Encoding::Numeric { flag, .. } => {
                    numeric.push(k);
                    indicator.push(flag.then_some(k + 1));
                    k += 1 + usize::from(flag);
                }
                Encoding::Categorical { levels } => {
                    indicator.push(Some(k));
                    k += levels;
                }
            }
        }
        let width = k;
        let slots = 1 + indicator.iter().flatten().count();
        let mut values = Vec::with_capacity(sample.len() * numeric.len());
        let mut on = Vec::with_capacity(sample.len() * slots);
        for &i in sample {
            on.push(0);
            for (e, (v, first)) in encodings
                .iter()
                .zip(table.x[i * d..(i + 1) * d].iter().zip(&indicator))
            {
                match *e {
                    Encoding::Numeric { mean, sd, flag } => {
                        values.push(if v.is_nan() { 0.0 } else { (v - mean) / sd });
                        if flag {
                            on.push(if v.is_nan() {
                                first.unwrap_or(width)
                            } else {
                                width
                            });
                        }
                    }
                    Encoding::Categorical { levels } => {
                        let column = level(*v, levels).zip(*first).map(|(l, f)| f + l);
                        on.push(column.unwrap_or(width));
                    }
                }
            }
        }
        Design {
            width,
            numeric,
            values,
            on,
            slots,
        }
    }

    fn rows(&self) -> impl Iterator<Item = (&[usize], &[f64])> {
        let m = self.numeric.len();
        self.on
            .chunks_exact(self.slots)
            .zip((0..).map(move |r| &self.values[r * m..(r + 1) * m]))
    }
}

/// Newton's method on the penalized log likelihood over `design`, the intercept (column 0)
/// unpenalized; returns the `design.width` coefficients.
///
/// The Hessian is most of a step's cost, and near the optimum it barely changes: once a step
/// moves no coefficient by [`KEEP_BELOW`], the last Hessian's factor is kept for as long as
/// each step lowers the loss, and those steps sum a row's gradient alone. They converge
/// linearly, if fast from there, so they stop only once negligible.
fn newton(design: &Design, y: &[f64]) -> Vec<f64> {
    let w = design.width;
    let mut beta = vec![0.0; w + 1];
    // The factor of the Hessian last summed, the loss at the previous coefficients and the
    // largest move of the last step.
    let mut factor: Option<Vec<f64>> = None;
    let mut previous = f64::INFINITY;
    let mut last = f64::INFINITY;
    let (mut steps, mut full_steps) = (0, 0);
    for _ in 0..100 {
        steps += 1;
        let keep = factor.is_some() && last < KEEP_BELOW;
        let (loss, grad, mut hess) = derivatives(design, y, &beta, !keep);
        if keep && loss >= previous {
            // The kept factor no longer leads downhill: a full step from here.
            hess = derivatives(design, y, &beta, true).2;
        }
        let full = hess.is_some();
        full_steps += usize::from(full);
        if let Some(mut h) = hess {
            if !cholesky(&mut h, w) {
                break;
            }
            factor = Some(h);
        }
        let step = solve(factor.as_deref().expect("a factor was made"), &grad[..w], w);
        for (b, s) in beta.iter_mut().zip(&step) {
            *b -= s;
        }
        // Converged when the step is negligible or, after a full step, the loss stops
        // falling; rounding in a sum over many rows leaves relative noise near 1e-12, so the
        // thresholds stay above it.
        let largest = step.iter().fold(0.0_f64, |m, s| m.max(s.abs()));
        if largest < 1e-6 || (full && (previous - loss).abs() < 1e-8 * (1.0 + loss.abs())) {
            break;
        }
        (previous, last) = (loss, largest);
    }
    tracing::debug!(
        steps,
        full_steps,
        rows = y.len(),
        width = w,
        "regression fitted"
    );
    beta.truncate(w);
    beta
}

/// The largest move of a full Newton step below which the next steps keep its Hessian.
const KEEP_BELOW: f64 = 1e-2;

/// The penalized loss at `beta` (with the spare column), its gradient, and with `hessian`
/// its Hessian (`design.width` square).
fn derivatives(
    design: &Design,
    y: &[f64],
    beta: &[f64],
    hessian: bool,
) -> (f64, Vec<f64>, Option<Vec<f64>>) {
    let w = design.width;
    // The accumulators have the spare column too; only `w` are solved for, and the spare
    // coefficient stays zero.
    let s = w + 1;
    let mut grad = vec![0.0; s];
    // Each unordered pair of a row's columns lands once, at (a, b) or (b, a); the two are
    // summed below.
    let mut pairs = if hessian {
        vec![0.0; s * s]
    } else {
        Vec::new()
    };
    let mut loss = 0.0;
    for ((on, values), t) in design.rows().zip(y) {
        let z: f64 = on.iter().map(|c| beta[*c]).sum::<f64>()
            + design
                .numeric
                .iter()
                .zip(values)
                .map(|(c, v)| beta[*c] * v)
                .sum::<f64>();
        let e = (-z).exp();
        let p = 1.0 / (1.0 + e);
        // softplus(−z) = ln(1 + e^−z) and softplus(z) = softplus(−z) + z, from the one `exp`
        // (a plain logarithm: `ln_1p`'s precision near zero is lost in a sum over rows).
        let tail = if z < -30.0 { -z } else { (1.0 + e).ln() };
        loss += tail + (1.0 - t) * z;
        let g = p - t;
        for &a in on {
            grad[a] += g;
        }
        for (&a, &v) in design.numeric.iter().zip(values) {
            grad[a] += g * v;
        }
        if !hessian {
            continue;
        }
        let h = (p * (1.0 - p)).max(1e-12);
        for (k, &a) in on.iter().enumerate() {
            let row = &mut pairs[a * s..(a + 1) * s];
            row[a] += h;
            for &b in &on[k + 1..] {
                row[b] += h;
            }
        }
        for (k, (&a, &v)) in design.numeric.iter().zip(values).enumerate() {
            let hv = h * v;
            let row = &mut pairs[a * s..(a + 1) * s];
            for &b in on {
                row[b] += hv;
            }
            for (&b, &u) in design.numeric[k..].iter().zip(&values[k..]) {
                row[b] += hv * u;
            }
        }
    }
    for a in 1..w {
        loss += 0.5 * L2 * beta[a] * beta[a];
        grad[a] += L2 * beta[a];
    }
    let hess = hessian.then(|| {
        let mut hess = vec![0.0; w * w];
        for a in 0..w {
            hess[a * w + a] = pairs[a * s + a] + if a > 0 { L2 } else { 1e-9 };
            for b in a + 1..w {
                let sum = pairs[a * s + b] + pairs[b * s + a];
                hess[a * w + b] = sum;
                hess[b * w + a] = sum;
            }
        }
        hess
    });
    (loss, grad, hess)
}

/// The level a categorical value codes, if it is one of the `levels` seen in training.
fn level(v: f64, levels: usize) -> Option<usize> {
    (v.is_finite() && v >= 0.0 && (v as usize) < levels).then_some(v as usize)
}

/// log(1 + e^z) without overflow.
pub(crate) fn softplus(z: f64) -> f64 {
    if z > 30.0 { z } else { z.exp().ln_1p() }
}

/// Overwrites the symmetric `a` (`n` square) with its Cholesky factor (lower triangle);
/// false when it is not positive definite.
fn cholesky(a: &mut [f64], n: usize) -> bool {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return false;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    true
}

/// Solves `L·Lᵀ · s = b` for the factor `l` of [`cholesky`].
fn solve(l: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut z = vec![0.0; n];
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i * n + k] * z[k];
        }
        z[i] = s / l[i * n + i];
    }
    let mut s = vec![0.0; n];
    for i in (0..n).rev() {
        let mut t = z[i];
        for k in i + 1..n {
            t -= l[k * n + i] * s[k];
        }
        s[i] = t / l[i * n + i];
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_known_linear_rule() {
        // P(churn) = σ(2·x0 − 1), x1 is noise, x2 is a category with one risky level.
        let mut state = 1u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let n = 20_000;
        let mut t = Table {
            features: vec!["x0".into(), "x1".into(), "x2".into()],
            levels: vec![None, None, Some(vec!["a".into(), "b".into()])],
            ..Table::default()
        };
        for i in 0..n {
            let x0 = next() * 2.0 - 1.0;
            let x1 = next();
            let x2 = if next() < 0.5 { 0.0 } else { 1.0 };
            let z = 2.0 * x0 - 1.0 + if x2 > 0.5 { 1.5 } else { 0.0 };
            let label = next() < 1.0 / (1.0 + (-z).exp());
            t.x.extend([x0, if i % 10 == 0 { f64::NAN } else { x1 }, x2]);
            t.label.push(label);
            t.subscriber_id.push(i);
            t.snapshot.push(0);
        }
        let keep: Vec<usize> = (0..n as usize).collect();
        let m = Logistic::fit(&t, &keep);
        // x0 is standardized (sd ≈ 0.577), so its coefficient is ≈ 2 × 0.577.
        let Encoding::Numeric { sd, .. } = m.encodings[0] else {
            panic!("x0 is numeric")
        };
        assert!((m.coefficients[0] / sd - 2.0).abs() < 0.15, "{m:?}");
        assert!(m.coefficients[1].abs() < 0.1, "{m:?}");
        // The level gap of x2 is 1.5 whichever way the penalty splits it.
        let gap = m.coefficients[4] - m.coefficients[3];
        assert!((gap - 1.5).abs() < 0.15, "{m:?}");
        let p = m.logits(&t.x, 3);
        assert!(crate::metrics::auc(&p, &t.label) > 0.7);
        // Each log-odds is the design's dot product to the bit, missing values, unseen and
        // out-of-range levels included.
        let mut design = vec![0.0; m.width()];
        let odd = [0.5, f64::NAN, 1.0, 2.0, 7.0, -1.0, f64::NAN, 0.3, f64::NAN];
        for row in t.x[..3_000].chunks_exact(3).chain(odd.chunks_exact(3)) {
            Logistic::encode(&m.encodings, row, &mut design);
            let dot = m.intercept
                + design
                    .iter()
                    .zip(&m.coefficients)
                    .map(|(a, b)| a * b)
                    .sum::<f64>();
            assert_eq!(m.logit(row).to_bits(), dot.to_bits(), "{row:?}");
        }
        let c = m.contributions(&t.x[0..3]);
        assert_eq!(c.len(), 3);
    }

    /// Newton's method over the dense design matrix, every pair of columns summed row by row:
    /// what [`newton`] computes by kind of column.
    fn dense_newton(x: &[f64], y: &[f64], w: usize) -> Vec<f64> {
        let mut beta = vec![0.0; w];
        for _ in 0..30 {
            let mut grad = vec![0.0; w];
            let mut hess = vec![0.0; w * w];
            for (row, t) in x.chunks_exact(w).zip(y) {
                let z: f64 = row.iter().zip(&beta).map(|(a, b)| a * b).sum();
                let p = 1.0 / (1.0 + (-z).exp());
                let h = (p * (1.0 - p)).max(1e-12);
                for a in 0..w {
                    grad[a] += (p - t) * row[a];
                    for b in 0..w {
                        hess[a * w + b] += h * row[a] * row[b];
                    }
                }
            }
            for a in 1..w {
                grad[a] += L2 * beta[a];
                hess[a * w + a] += L2;
            }
            hess[0] += 1e-9;
            assert!(cholesky(&mut hess, w), "positive definite");
            let step = solve(&hess, &grad, w);
            for (b, s) in beta.iter_mut().zip(&step) {
                *b -= s;
            }
            if step.iter().all(|s| s.abs() < 1e-12) {
                break;
            }
        }
        beta
    }

    #[test]
    fn newton_by_kind_of_column_matches_the_dense_design() {
        // Numbers with and without missing values, a constant, categories with a missing
        // and an unseen level, and an all-missing number.
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let features = ["n0", "c0", "n1", "k", "c1", "gone"];
        let mut t = Table {
            features: features.iter().map(|f| (*f).to_string()).collect(),
            levels: vec![
                None,
                Some(vec!["a".into(), "b".into(), "c".into()]),
                None,
                None,
                Some(vec!["x".into(), "y".into()]),
                None,
            ],
            ..Table::default()
        };
        let n = 600;
        for i in 0..n {
            let n0 = next() * 4.0 - 1.0;
            let c0 = (next() * 3.0).floor();
            let n1 = if i % 7 == 0 { f64::NAN } else { next() * 10.0 };
            let c1 = match i % 11 {
                0 => f64::NAN,
                1 => 5.0,
                _ => (next() * 2.0).floor(),
            };
            let z = n0 - 0.5 + if c0 > 1.5 { 1.0 } else { -0.3 } + 0.05 * n1.max(0.0);
            t.x.extend([n0, c0, n1, 3.0, c1, f64::NAN]);
            t.label.push(next() < 1.0 / (1.0 + (-z).exp()));
            t.subscriber_id.push(i);
            t.snapshot.push(0);
        }
        let keep: Vec<usize> = (0..n as usize).filter(|i| i % 5 != 3).collect();
        let m = Logistic::fit(&t, &keep);

        let w = m.width() + 1;
        let mut x = vec![0.0; keep.len() * w];
        for (row, &i) in x.chunks_exact_mut(w).zip(&keep) {
            row[0] = 1.0;
            Logistic::encode(&m.encodings, &t.x[i * 6..(i + 1) * 6], &mut row[1..]);
        }
        let y: Vec<f64> = keep
            .iter()
            .map(|i| f64::from(u8::from(t.label[*i])))
            .collect();
        let dense = dense_newton(&x, &y, w);
        let fitted: Vec<f64> = std::iter::once(m.intercept)
            .chain(m.coefficients.iter().copied())
            .collect();
        assert_eq!(fitted.len(), dense.len());
        for (a, b) in fitted.iter().zip(&dense) {
            assert!((a - b).abs() < 1e-6, "{fitted:?}\n{dense:?}");
        }
        // The flag of the all-missing column and the constant carry weight only as the data
        // says: the fit is not degenerate.
        assert!(fitted.iter().all(|c| c.is_finite()));
        assert!(fitted[1] > 0.3, "n0 raises churn: {fitted:?}");
    }
}

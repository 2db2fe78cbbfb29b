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
                    if v.is_finite() && *v >= 0.0 && (*v as usize) < levels {
                        out[k + *v as usize] = 1.0;
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
        let p = encodings
            .iter()
            .map(|e| match e {
                Encoding::Numeric { flag, .. } => 1 + usize::from(*flag),
                Encoding::Categorical { levels } => *levels,
            })
            .sum::<usize>();
        // Column 0 is the intercept.
        let w = p + 1;
        let mut x = vec![0.0; sample.len() * w];
        for (r, &i) in sample.iter().enumerate() {
            let row = &mut x[r * w..(r + 1) * w];
            row[0] = 1.0;
            Self::encode(&encodings, &table.x[i * d..(i + 1) * d], &mut row[1..]);
        }
        let y: Vec<f64> = sample
            .iter()
            .map(|i| f64::from(u8::from(table.label[*i])))
            .collect();
        let beta = newton(&x, &y, w);
        Logistic {
            encodings,
            intercept: beta[0],
            coefficients: beta[1..].to_vec(),
        }
    }

    /// Log-odds of churn of every row.
    #[must_use]
    pub fn logits(&self, x: &[f64], d: usize) -> Vec<f64> {
        let mut buf = vec![0.0; self.width()];
        x.chunks_exact(d)
            .map(|row| {
                Self::encode(&self.encodings, row, &mut buf);
                self.intercept
                    + buf
                        .iter()
                        .zip(&self.coefficients)
                        .map(|(a, b)| a * b)
                        .sum::<f64>()
            })
            .collect()
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

/// Newton's method on the penalized log likelihood; `x` is row-major with `w` columns, the first
/// being the (unpenalized) intercept.
fn newton(x: &[f64], y: &[f64], w: usize) -> Vec<f64> {
    let mut beta = vec![0.0; w];
    let mut previous = f64::INFINITY;
    for _ in 0..30 {
        let mut grad = vec![0.0; w];
        let mut hess = vec![0.0; w * w];
        let mut loss = 0.0;
        for (row, t) in x.chunks_exact(w).zip(y) {
            let z: f64 = row.iter().zip(&beta).map(|(a, b)| a * b).sum();
            let p = 1.0 / (1.0 + (-z).exp());
            loss += if *t > 0.5 { softplus(-z) } else { softplus(z) };
            let g = p - t;
            let h = (p * (1.0 - p)).max(1e-12);
            for a in 0..w {
                if row[a] == 0.0 {
                    continue;
                }
                grad[a] += g * row[a];
                let ha = h * row[a];
                // Upper triangle only; mirrored below.
                for b in a..w {
                    hess[a * w + b] += ha * row[b];
                }
            }
        }
        for a in 1..w {
            loss += 0.5 * L2 * beta[a] * beta[a];
            grad[a] += L2 * beta[a];
            hess[a * w + a] += L2;
        }
        hess[0] += 1e-9;
        for a in 0..w {
            for b in 0..a {
                hess[a * w + b] = hess[b * w + a];
            }
        }
        let Some(step) = cholesky_solve(&mut hess, &grad, w) else {
            break;
        };
        for (b, s) in beta.iter_mut().zip(&step) {
            *b -= s;
        }
        // Converged when the step is negligible or the loss stops falling; rounding in a sum
        // over many rows leaves relative noise near 1e-12, so the thresholds stay above it.
        let largest = step.iter().fold(0.0_f64, |m, s| m.max(s.abs()));
        if largest < 1e-6 || (previous - loss).abs() < 1e-8 * (1.0 + loss.abs()) {
            break;
        }
        previous = loss;
    }
    beta
}

/// log(1 + e^z) without overflow.
pub(crate) fn softplus(z: f64) -> f64 {
    if z > 30.0 { z } else { z.exp().ln_1p() }
}

/// Solves `a · s = b` for a symmetric positive definite `a` (overwritten by its factor).
fn cholesky_solve(a: &mut [f64], b: &[f64], n: usize) -> Option<Vec<f64>> {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return None;
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
    let mut z = vec![0.0; n];
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= a[i * n + k] * z[k];
        }
        z[i] = s / a[i * n + i];
    }
    let mut s = vec![0.0; n];
    for i in (0..n).rev() {
        let mut t = z[i];
        for k in i + 1..n {
            t -= a[k * n + i] * s[k];
        }
        s[i] = t / a[i * n + i];
    }
    Some(s)
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
        let c = m.contributions(&t.x[0..3]);
        assert_eq!(c.len(), 3);
    }
}

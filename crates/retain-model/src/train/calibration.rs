//! Calibration: Platt scaling of raw scores, and the blend of the trees' and the regression's
//! calibrated log-odds, weighted and calibrated again on the validation rows.

use serde::{Deserialize, Serialize};

use super::params::REFIT_BELOW;
use crate::forest::on_cores;
use crate::logistic::softplus;
use crate::metrics::{auc, round};

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
    pub(super) fn fit_or(scores: &[f64], labels: &[bool], fallback: Platt) -> Platt {
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

/// The weight of the trees (in tenths) whose calibrated blend has the lowest log loss on
/// `labels`, the blend's AUC, and its calibration. Log loss, not AUC: the AUC of a few hundred
/// validation rows moves with single rows, and chasing it mixed a weak regression into trees
/// that ranked the top decile better on unseen rows.
pub(super) fn choose_blend(trees: &[f64], linear: &[f64], labels: &[bool]) -> (f64, f64, Blend) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::tests::draws;

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

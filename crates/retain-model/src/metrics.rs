//! Evaluation metrics for a churn score: ranking (AUC, PR-AUC, lift, gains), probability quality
//! (log loss, Brier, calibration).

use serde::Serialize;

/// One decile of the ranking, highest scores first.
#[derive(Debug, Clone, Serialize)]
pub struct Decile {
    pub decile: usize,
    pub subscribers: usize,
    pub churners: usize,
    pub churn_rate: f64,
    pub lift: f64,
    /// Share of all churners caught down to this decile.
    pub cumulative_gain: f64,
}

/// Mean predicted against observed churn in a band of predicted probability.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationBin {
    pub from: f64,
    pub to: f64,
    pub subscribers: usize,
    pub mean_predicted: f64,
    pub observed_rate: f64,
}

/// All metrics of one scored sample.
#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    pub rows: usize,
    pub positives: usize,
    pub auc: f64,
    pub pr_auc: f64,
    pub log_loss: f64,
    pub brier: f64,
    pub top_decile_lift: f64,
    pub deciles: Vec<Decile>,
    pub calibration: Vec<CalibrationBin>,
}

fn round(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Area under the ROC curve by the rank-sum formula, ties averaged.
#[must_use]
pub fn auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    let mut ranks = vec![0.0; scores.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        // Exact ties share a rank; equal floats are the point here.
        while j + 1 < order.len() && scores[order[j + 1]].total_cmp(&scores[order[i]]).is_eq() {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            ranks[order[k]] = rank;
        }
        i = j + 1;
    }
    let positives = labels.iter().filter(|l| **l).count() as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return 0.5;
    }
    let rank_sum: f64 = ranks
        .iter()
        .zip(labels)
        .filter(|(_, l)| **l)
        .map(|(r, _)| r)
        .sum();
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// Average precision (area under the precision-recall curve, step-wise).
#[must_use]
pub fn pr_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    let positives = labels.iter().filter(|l| **l).count() as f64;
    if positives == 0.0 {
        return 0.0;
    }
    let mut hits = 0.0;
    let mut total = 0.0;
    for (k, i) in order.iter().enumerate() {
        if labels[*i] {
            hits += 1.0;
            total += hits / (k as f64 + 1.0);
        }
    }
    total / positives
}

/// Computes every metric of probabilities `p` against `labels`.
#[must_use]
pub fn evaluate(p: &[f64], labels: &[bool]) -> Metrics {
    let n = p.len();
    let positives = labels.iter().filter(|l| **l).count();
    let eps = 1e-15;
    let log_loss = p
        .iter()
        .zip(labels)
        .map(|(q, l)| {
            let q = q.clamp(eps, 1.0 - eps);
            if *l { -q.ln() } else { -(1.0 - q).ln() }
        })
        .sum::<f64>()
        / n.max(1) as f64;
    let brier = p
        .iter()
        .zip(labels)
        .map(|(q, l)| (q - f64::from(u8::from(*l))).powi(2))
        .sum::<f64>()
        / n.max(1) as f64;

    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|a, b| p[*b].total_cmp(&p[*a]));
    let base = positives as f64 / n.max(1) as f64;
    let mut deciles = Vec::new();
    let mut caught = 0;
    for d in 0..10 {
        let lo = d * n / 10;
        let hi = (d + 1) * n / 10;
        let churners = order[lo..hi].iter().filter(|i| labels[**i]).count();
        caught += churners;
        let rate = churners as f64 / (hi - lo).max(1) as f64;
        deciles.push(Decile {
            decile: d + 1,
            subscribers: hi - lo,
            churners,
            churn_rate: round(rate),
            lift: if base > 0.0 { round(rate / base) } else { 0.0 },
            cumulative_gain: if positives > 0 {
                round(caught as f64 / positives as f64)
            } else {
                0.0
            },
        });
    }
    let edges = [0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.000_000_1];
    let calibration = edges
        .windows(2)
        .filter_map(|w| {
            let members: Vec<usize> = (0..n).filter(|i| p[*i] >= w[0] && p[*i] < w[1]).collect();
            (!members.is_empty()).then(|| CalibrationBin {
                from: w[0],
                to: w[1].min(1.0),
                subscribers: members.len(),
                mean_predicted: round(
                    members.iter().map(|i| p[*i]).sum::<f64>() / members.len() as f64,
                ),
                observed_rate: round(
                    members.iter().filter(|i| labels[**i]).count() as f64 / members.len() as f64,
                ),
            })
        })
        .collect();
    Metrics {
        rows: n,
        positives,
        auc: round(auc(p, labels)),
        pr_auc: round(pr_auc(p, labels)),
        log_loss: round(log_loss),
        brier: round(brier),
        top_decile_lift: deciles.first().map_or(0.0, |d| d.lift),
        deciles,
        calibration,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_of_known_orderings() {
        let labels = [false, false, true, true];
        assert!((auc(&[0.1, 0.2, 0.8, 0.9], &labels) - 1.0).abs() < 1e-12);
        assert!((auc(&[0.9, 0.8, 0.2, 0.1], &labels) - 0.0).abs() < 1e-12);
        assert!((auc(&[0.5, 0.5, 0.5, 0.5], &labels) - 0.5).abs() < 1e-12);
        // One inversion out of four pairs.
        assert!((auc(&[0.1, 0.6, 0.5, 0.9], &labels) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn lift_and_gains_of_a_perfect_ranking() {
        let p: Vec<f64> = (0..100).map(|i| f64::from(i) / 100.0).collect();
        let labels: Vec<bool> = (0..100).map(|i| i >= 90).collect();
        let m = evaluate(&p, &labels);
        assert!((m.top_decile_lift - 10.0).abs() < 1e-9);
        assert!((m.deciles[0].cumulative_gain - 1.0).abs() < 1e-9);
        assert!((m.pr_auc - 1.0).abs() < 1e-9);
        assert_eq!(m.positives, 10);
    }
}

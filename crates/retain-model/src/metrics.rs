//! Evaluation metrics for a churn score: ranking (AUC, PR-AUC, lift, gains), probability quality
//! (log loss, Brier, calibration).

use serde::{Deserialize, Serialize};

/// One decile of the ranking, highest scores first.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// Expected maximum profit per customer (EMPC) with [`EmpcParams::TELECOM`].
    pub empc: f64,
    /// Share of customers contacted at the EMPC optimum.
    pub empc_targeted: f64,
    pub deciles: Vec<Decile>,
    pub calibration: Vec<CalibrationBin>,
}

/// Four decimals: what reports show.
pub(crate) fn round(x: f64) -> f64 {
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

/// The AUC of [`auc`], for watching a large table's validation rows every round: the scores'
/// bits are radix-sorted with the label in the lowest bit, which costs a fraction of sorting
/// indices by comparison as LightGBM's metric does (on 140,000 validation rows, a round of
/// 29.8 ms with it took 28.4 ms with this). Scores one unit in the last place apart count as
/// tied.
///
/// Only the keys' high 32 bits are radix-sorted, a byte a pass, all four bytes counted in one
/// pass before; keys sharing them (scores within a millionth of each other) are then sorted
/// whole where they lie, a few at a time. On 140,000 probabilities that took 1.6 ms where
/// sorting all eight bytes took 2.6.
pub(crate) fn auc_by_radix(scores: &[f64], labels: &[bool]) -> f64 {
    let mut counts = [[0u32; 256]; 4];
    let mut keys: Vec<u64> = Vec::with_capacity(scores.len());
    for (s, l) in scores.iter().zip(labels) {
        // The float's order as unsigned integers: negatives flipped, positives above them.
        let bits = s.to_bits();
        let ordered = if bits >> 63 == 1 {
            !bits
        } else {
            bits | 1 << 63
        };
        let key = (ordered & !1) | u64::from(*l);
        for (byte, c) in counts.iter_mut().enumerate() {
            c[(key >> (32 + 8 * byte)) as usize & 0xff] += 1;
        }
        keys.push(key);
    }
    let n = u32::try_from(keys.len()).expect("fewer than 2^32 validation rows");
    let mut spare = vec![0u64; keys.len()];
    for (byte, c) in counts.iter_mut().enumerate() {
        // A byte every key shares leaves the order as it is.
        if c.contains(&n) {
            continue;
        }
        let mut start = 0;
        for c in c.iter_mut() {
            (*c, start) = (start, start + *c);
        }
        let shift = 32 + 8 * byte;
        for k in &keys {
            let slot = &mut c[(k >> shift) as usize & 0xff];
            spare[*slot as usize] = *k;
            *slot += 1;
        }
        std::mem::swap(&mut keys, &mut spare);
    }
    // Ascending: each positive outranks the negatives below it and half those tied with it.
    let (mut pairs, mut negatives, mut positives) = (0.0, 0.0, 0.0);
    let mut i = 0;
    while i < keys.len() {
        let high = keys[i] >> 32;
        let mut end = i + 1;
        while end < keys.len() && keys[end] >> 32 == high {
            end += 1;
        }
        let run = &mut keys[i..end];
        if run.len() > 1 {
            run.sort_unstable();
        }
        let mut r = 0;
        while r < run.len() {
            let group = run[r] >> 1;
            let (mut neg, mut pos) = (0.0, 0.0);
            while r < run.len() && run[r] >> 1 == group {
                let positive = (run[r] & 1) as f64;
                pos += positive;
                neg += 1.0 - positive;
                r += 1;
            }
            pairs += pos * (negatives + 0.5 * neg);
            negatives += neg;
            positives += pos;
        }
        i = end;
    }
    if positives == 0.0 || negatives == 0.0 {
        return 0.5;
    }
    pairs / (positives * negatives)
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
    let profit = empc(p, labels, &EmpcParams::TELECOM);
    Metrics {
        rows: n,
        positives,
        auc: round(auc(p, labels)),
        pr_auc: round(pr_auc(p, labels)),
        log_loss: round(log_loss),
        brier: round(brier),
        top_decile_lift: deciles.first().map_or(0.0, |d| d.lift),
        empc: round(profit.0),
        empc_targeted: round(profit.1),
        deciles,
        calibration,
    }
}

/// Population stability index of `actual` against `expected`: bins at the deciles of
/// `expected` (missing values a bin of their own), Σ (a − e) · ln(a / e) over bin shares.
/// Below 0.1 is stable, 0.1–0.25 worth a look, from 0.25 a shift ([`crate::DriftLevel`]).
#[must_use]
pub fn psi(expected: &[f64], actual: &[f64]) -> f64 {
    crate::drift::Bins::of(expected).psi_of(actual)
}

/// The parameters of the expected maximum profit measure for customer churn (Verbraken,
/// Verbeke and Baesens, IEEE TKDE 2013): a retained customer is worth `clv`; the offer costs
/// `incentive` to those who accept it and every contact costs `contact`; a contacted churner
/// accepts with probability γ ~ Beta(`alpha`, `beta`).
#[derive(Debug, Clone, Copy)]
pub struct EmpcParams {
    pub clv: f64,
    pub incentive: f64,
    pub contact: f64,
    pub alpha: f64,
    pub beta: f64,
}

impl EmpcParams {
    /// The paper's telecom defaults: CLV 200, incentive 10, contact 1, γ ~ Beta(6, 14) (mean
    /// acceptance 30%).
    pub const TELECOM: EmpcParams = EmpcParams {
        clv: 200.0,
        incentive: 10.0,
        contact: 1.0,
        alpha: 6.0,
        beta: 14.0,
    };
}

/// Expected maximum profit per customer, and the expected share contacted at the optimum.
///
/// For each acceptance rate γ the best threshold is a vertex of the ROC convex hull; the
/// profit there is integrated over γ's Beta density on a fine grid.
#[must_use]
pub fn empc(scores: &[f64], labels: &[bool], params: &EmpcParams) -> (f64, f64) {
    let n = scores.len();
    let positives = labels.iter().filter(|l| **l).count();
    if positives == 0 || positives == n {
        return (0.0, 0.0);
    }
    let (pos, neg) = (positives as f64, (n - positives) as f64);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    // ROC points (false positive rate, true positive rate), one per distinct threshold.
    let mut roc = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0.0, 0.0);
    for (k, i) in order.iter().enumerate() {
        if labels[*i] {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        let last_of_tie = order
            .get(k + 1)
            .is_none_or(|next| scores[*next].total_cmp(&scores[*i]).is_ne());
        if last_of_tie {
            roc.push((fp / neg, tp / pos));
        }
    }
    // Upper convex hull, left to right.
    let mut hull: Vec<(f64, f64)> = Vec::new();
    for point in roc {
        while hull.len() >= 2 {
            let (a, b) = (hull[hull.len() - 2], hull[hull.len() - 1]);
            let cross = (b.0 - a.0) * (point.1 - a.1) - (b.1 - a.1) * (point.0 - a.0);
            if cross >= 0.0 {
                hull.pop();
            } else {
                break;
            }
        }
        hull.push(point);
    }
    let (pi1, pi0) = (pos / n as f64, neg / n as f64);
    let delta = params.incentive / params.clv;
    let phi = params.contact / params.clv;
    let steps = 2_000;
    let (mut total, mut targeted, mut mass) = (0.0, 0.0, 0.0);
    for s in 0..steps {
        let gamma = (f64::from(s) + 0.5) / f64::from(steps);
        let density = gamma.powf(params.alpha - 1.0) * (1.0 - gamma).powf(params.beta - 1.0);
        let (best, share) = hull
            .iter()
            .map(|(fpr, tpr)| {
                let profit = params.clv
                    * ((gamma * (1.0 - delta) - phi) * pi1 * tpr - (delta + phi) * pi0 * fpr);
                (profit, pi1 * tpr + pi0 * fpr)
            })
            .fold((0.0, 0.0), |best, x| if x.0 > best.0 { x } else { best });
        total += density * best;
        targeted += density * share;
        mass += density;
    }
    (total / mass, targeted / mass)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_radix_auc_is_the_rank_auc() {
        let labels = [false, false, true, true];
        for scores in [
            [0.1, 0.2, 0.8, 0.9],
            [0.9, 0.8, 0.2, 0.1],
            [0.5, 0.5, 0.5, 0.5],
            [0.1, 0.6, 0.5, 0.9],
            [-3.0, 2.0, -0.0, 0.0],
        ] {
            assert!((auc_by_radix(&scores, &labels) - auc(&scores, &labels)).abs() < 1e-12);
        }
        // Raw log-odds of both signs, a few hundred ties among them, every byte of the keys
        // in play.
        let mut state = 12_345_u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let (mut scores, mut labels) = (Vec::new(), Vec::new());
        for i in 0..20_000 {
            let s = if i % 50 == 0 {
                f64::from(i % 7)
            } else {
                (next() - 0.5) * 1e3 * next().powi(8)
            };
            labels.push(next() < 0.2 + 0.5 * f64::from(u8::from(s > 0.0)));
            scores.push(s);
        }
        // Scores sharing their high 32 bits (two units in the last place apart: one apart
        // counts as tied), in a shuffled order, with ties among them.
        for i in 0..3_000_u64 {
            let offset = (i * 7_919) % 1_000;
            let s = f64::from_bits(0.3_f64.to_bits() + 2 * offset);
            labels.push(next() < 0.2 + 0.6 * f64::from(u8::from(offset > 500)));
            scores.push(s);
        }
        let (radix, rank) = (auc_by_radix(&scores, &labels), auc(&scores, &labels));
        assert!((radix - rank).abs() < 1e-12, "{radix} against {rank}");
        let near = scores.len() - 3_000;
        let (radix, rank) = (
            auc_by_radix(&scores[near..], &labels[near..]),
            auc(&scores[near..], &labels[near..]),
        );
        assert!((radix - rank).abs() < 1e-12, "{radix} against {rank}");
        assert!(radix > 0.7, "{radix}");
        assert!(radix > 0.6, "{radix}");
        assert!((auc_by_radix(&scores, &vec![true; scores.len()]) - 0.5).abs() < 1e-12);
    }

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

    #[test]
    fn psi_is_zero_for_the_same_distribution_and_large_for_a_shift() {
        let a: Vec<f64> = (0..1000).map(f64::from).collect();
        assert!(psi(&a, &a) < 1e-9);
        let shifted: Vec<f64> = (500..1500).map(f64::from).collect();
        assert!(psi(&a, &shifted) > 0.25);
        let with_missing: Vec<f64> = (0..1000)
            .map(|i| if i % 2 == 0 { f64::NAN } else { f64::from(i) })
            .collect();
        assert!(psi(&a, &with_missing) > 0.25);
    }

    #[test]
    fn empc_of_perfect_and_useless_rankings() {
        let labels: Vec<bool> = (0..1000).map(|i| i % 10 == 0).collect();
        let perfect: Vec<f64> = labels.iter().map(|l| f64::from(u8::from(*l))).collect();
        let (profit, share) = empc(&perfect, &labels, &EmpcParams::TELECOM);
        // Contact exactly the churners: CLV × (E[γ](1 − δ) − φ) × 10% = 200 × (0.3·0.95 − 0.005) × 0.1.
        assert!((profit - 5.6).abs() < 0.05, "{profit}");
        assert!((share - 0.1).abs() < 0.01, "{share}");
        // A constant score: contacting everyone loses money for most γ, so the optimum is
        // mostly nobody and the profit is small.
        let flat = vec![0.5; 1000];
        let (profit, _) = empc(&flat, &labels, &EmpcParams::TELECOM);
        assert!(profit < 0.5, "{profit}");
    }
}

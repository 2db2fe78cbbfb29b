//! RFM: recency, frequency and monetary scores of the active base, and the groups the
//! department works with.

use crate::config::RfmConfig;
use crate::features::Behaviour;

/// Each active subscriber's recency, frequency and monetary scores (1–5), in the order given.
pub(super) struct Rfm {
    pub r: Vec<u8>,
    pub f: Vec<u8>,
    pub m: Vec<u8>,
}

impl Rfm {
    pub(super) fn score(alive: &[&Behaviour]) -> Rfm {
        Rfm {
            r: alive
                .iter()
                .map(|b| recency_score(b.months_since_consumption))
                .collect(),
            f: quintiles(&alive.iter().map(|b| b.active_days_3m).collect::<Vec<_>>()),
            m: quintiles(&alive.iter().map(|b| b.arpu_3m).collect::<Vec<_>>()),
        }
    }

    /// The RFM group of the `index`-th active subscriber, `b`.
    pub(super) fn group(&self, index: usize, b: &Behaviour, rc: &RfmConfig) -> &'static str {
        let (r, f, m) = (self.r[index], self.f[index], self.m[index]);
        if b.months_since_consumption >= f64::from(rc.sleeping_months)
            && b.arpu_12m >= rc.sleeping_historical_arpu
        {
            "sleeping_high_value"
        } else if b.months_since_consumption < 3.0 && b.arpu_3m > rc.core_active_arpu {
            "core_active"
        } else if f >= rc.high_frequency_min_score && m <= rc.low_spend_max_score {
            "high_frequency_low_spend"
        } else if r <= 2 && m >= 4 {
            "at_risk_valuable"
        } else if b.tenure_months < 6.0 && m >= 3 {
            "new_potential"
        } else if m <= 2 && f <= 2 {
            "low_value"
        } else {
            "regular"
        }
    }
}

/// Scores 1–5 by quintile of the mid-rank (values below plus half the ties), so ties share a
/// score and a tie at the top scores high.
fn quintiles(values: &[f64]) -> Vec<u8> {
    let n = values.len().max(1) as f64;
    let mut out = vec![0; values.len()];
    for_each_tie(values, |indexes, below| {
        let ties = indexes.len() as f64;
        let score = 1 + (((below as f64 + ties / 2.0) / n) * 5.0).floor().min(4.0) as u8;
        for &i in indexes {
            out[i as usize] = score;
        }
    });
    out
}

/// Calls `f` with each run of equal values (their indexes) in ascending order, and how many
/// values are below the run: ranks for millions of values from one sort.
#[allow(clippy::float_cmp)] // a tie is exactly equal values, 0.0 and -0.0 among them
fn for_each_tie(values: &[f64], mut f: impl FnMut(&[u32], usize)) {
    let mut sorted: Vec<(f64, u32)> = values.iter().zip(0..).map(|(&v, i)| (v, i)).collect();
    sorted.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let mut indexes = Vec::new();
    let mut start = 0;
    while start < sorted.len() {
        let value = sorted[start].0;
        indexes.clear();
        indexes.extend(
            sorted[start..]
                .iter()
                .take_while(|(v, _)| *v == value)
                .map(|(_, i)| *i),
        );
        f(&indexes, start);
        start += indexes.len().max(1);
    }
}

/// Recency is naturally discrete in monthly billing: consumed last month scores 5, the month
/// before 4, two months before 3, three to five months 2, six or more 1.
fn recency_score(months_since: f64) -> u8 {
    match months_since as i64 {
        ..1 => 5,
        1 => 4,
        2 => 3,
        3..6 => 2,
        _ => 1,
    }
}

pub(super) fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut values = values.to_vec();
    let at = ((values.len() - 1) as f64 * q).round() as usize;
    *values.select_nth_unstable_by(at, f64::total_cmp).1
}

/// Each value's rank as a share of values strictly below it (0 = lowest).
pub(super) fn quintile_rank(values: &[f64]) -> Vec<f64> {
    let n = values.len().max(1) as f64;
    let mut out = vec![0.0; values.len()];
    for_each_tie(values, |indexes, below| {
        for &i in indexes {
            out[i as usize] = below as f64 / n;
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Values with many ties, a few distinct ones and both zeros.
    fn values(seed: u64, n: usize) -> Vec<f64> {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
        (0..n)
            .map(|i| match i % 7 {
                0 => 0.0,
                1 => -0.0,
                2 => f64::from(rng.random_range(0..5u8)),
                _ => rng.random_range(-50.0..200.0),
            })
            .collect()
    }

    #[test]
    fn ranks_from_one_sort_equal_ranks_counted_value_by_value() {
        for (seed, n) in [(1, 0), (2, 1), (3, 2), (4, 37), (5, 1000)] {
            let values = values(seed, n);
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            let total = n.max(1) as f64;
            let below = |v: f64| sorted.partition_point(|x| *x < v) as f64;
            let ties = |v: f64| sorted.partition_point(|x| *x <= v) as f64 - below(v);
            let scores: Vec<u8> = values
                .iter()
                .map(|&v| {
                    1 + (((below(v) + ties(v) / 2.0) / total) * 5.0)
                        .floor()
                        .min(4.0) as u8
                })
                .collect();
            assert_eq!(quintiles(&values), scores, "n = {n}");
            let ranks: Vec<f64> = values.iter().map(|&v| below(v) / total).collect();
            assert_eq!(quintile_rank(&values), ranks, "n = {n}");
            for q in [0.0, 0.25, 0.5, 0.75, 1.0] {
                let expected = if n == 0 {
                    0.0
                } else {
                    sorted[((n - 1) as f64 * q).round() as usize]
                };
                assert_eq!(
                    percentile(&values, q).to_bits(),
                    expected.to_bits(),
                    "n = {n}"
                );
            }
        }
        // Every score is used, and a tie spanning the top quintile scores 5.
        assert_eq!(quintiles(&[1.0, 2.0, 3.0, 4.0, 5.0]), vec![1, 2, 3, 4, 5]);
        assert_eq!(quintiles(&[1.0, 9.0, 9.0, 9.0, 9.0]), vec![1, 4, 4, 4, 4]);
    }
}

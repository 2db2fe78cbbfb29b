//! Retention curves: Kaplan–Meier survival over tenure, with delayed entry.
//!
//! The data window starts long after most subscribers joined, so a subscriber enters the risk
//! set at the tenure they had when the window opened (left truncation); ignoring that would
//! make long-tenure survival look perfect.

use serde::{Deserialize, Serialize};

/// A survival curve over months of tenure: `survival[t]` = P(still a subscriber at tenure t).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Curve {
    pub survival: Vec<f64>,
    /// Subscribers observed and churn events, for judging how far to trust it.
    pub subjects: u64,
    pub events: u64,
    /// Tenures (months) with anyone at risk: outside them the curve is carried, not observed.
    pub observed: Option<(usize, usize)>,
}

/// One subject: observed from tenure `entry` to `exit` (months); `churned` if the exit is a churn.
#[derive(Debug, Clone, Copy)]
pub struct Subject {
    pub entry: f64,
    pub exit: f64,
    pub churned: bool,
}

/// Kaplan–Meier with delayed entry over whole months up to `max_months`. Beyond the last month
/// with anyone at risk, the last observed hazard continues.
#[must_use]
pub fn kaplan_meier(subjects: &[Subject], max_months: usize) -> Curve {
    let counted: Vec<(Subject, u64)> = subjects.iter().map(|s| (*s, 1)).collect();
    kaplan_meier_counted(&counted, max_months)
}

/// [`kaplan_meier`] of subjects given with how many share each history, as an aggregation
/// over the operator's rows gives them.
#[must_use]
pub fn kaplan_meier_counted(subjects: &[(Subject, u64)], max_months: usize) -> Curve {
    let n = max_months + 1;
    let mut entering = vec![0i64; n + 1];
    let mut leaving = vec![0i64; n + 1];
    let mut events = vec![0u64; n + 1];
    for (s, count) in subjects {
        let entry = (s.entry.max(0.0).floor() as usize).min(n);
        let exit = (s.exit.max(0.0).floor() as usize).min(n);
        if exit < entry {
            continue;
        }
        let count_i = i64::try_from(*count).unwrap_or(i64::MAX);
        entering[entry] += count_i;
        leaving[exit] += count_i;
        if s.churned {
            events[exit] += count;
        }
    }
    let mut survival = Vec::with_capacity(n);
    let mut at_risk: i64 = 0;
    let mut s = 1.0;
    let mut last_hazard = 0.0;
    let mut observed: Option<(usize, usize)> = None;
    survival.push(1.0);
    for t in 0..n - 1 {
        at_risk += entering[t];
        if at_risk > 0 {
            observed = Some(observed.map_or((t, t + 1), |(a, _)| (a, t + 1)));
        }
        let hazard = if at_risk > 0 {
            events[t] as f64 / at_risk as f64
        } else {
            last_hazard
        };
        if at_risk > 0 {
            last_hazard = hazard;
        }
        s *= 1.0 - hazard;
        survival.push(s);
        at_risk -= leaving[t];
    }
    Curve {
        survival,
        subjects: subjects.iter().map(|(_, count)| count).sum(),
        events: events.iter().sum(),
        observed,
    }
}

impl Curve {
    /// Expected discounted months still to come for a subscriber at tenure `tenure`, over the
    /// next `horizon` months.
    #[must_use]
    pub fn expected_months(&self, tenure: f64, horizon: u32, discount: f64) -> f64 {
        let t0 = (tenure.max(0.0) as usize).min(self.survival.len() - 1);
        let base = self.survival[t0].max(1e-9);
        let last = self.survival.len() - 1;
        let tail_ratio = if last > 0 {
            (self.survival[last] / self.survival[last - 1].max(1e-9)).clamp(0.0, 1.0)
        } else {
            1.0
        };
        let mut total = 0.0;
        let mut discounted = 1.0;
        let mut tail = 1.0;
        for k in 1..=horizon as usize {
            let t = t0 + k;
            discounted /= 1.0 + discount;
            let s = if t <= last {
                self.survival[t]
            } else {
                tail *= tail_ratio;
                self.survival[last] * tail
            };
            total += (s / base) * discounted;
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_censoring_it_is_the_empirical_survival() {
        // Four subjects from tenure 0: churn at 1, 2, 3; one still there at 4.
        let subjects = [
            Subject {
                entry: 0.0,
                exit: 1.0,
                churned: true,
            },
            Subject {
                entry: 0.0,
                exit: 2.0,
                churned: true,
            },
            Subject {
                entry: 0.0,
                exit: 3.0,
                churned: true,
            },
            Subject {
                entry: 0.0,
                exit: 4.0,
                churned: false,
            },
        ];
        let curve = kaplan_meier(&subjects, 5);
        let expected = [1.0, 1.0, 0.75, 0.5, 0.25];
        for (t, e) in expected.iter().enumerate() {
            assert!(
                (curve.survival[t] - e).abs() < 1e-9,
                "t={t}: {:?}",
                curve.survival
            );
        }
    }

    #[test]
    fn late_entrants_do_not_inflate_early_risk_sets() {
        // Ten long-tenure subscribers enter at 100 and none churn; two new ones churn at 1.
        let mut subjects = vec![
            Subject {
                entry: 100.0,
                exit: 112.0,
                churned: false
            };
            10
        ];
        subjects.push(Subject {
            entry: 0.0,
            exit: 1.0,
            churned: true,
        });
        subjects.push(Subject {
            entry: 0.0,
            exit: 5.0,
            churned: false,
        });
        let curve = kaplan_meier(&subjects, 120);
        // At tenure 1, only the two new subscribers were at risk: hazard 1/2.
        assert!(
            (curve.survival[2] - 0.5).abs() < 1e-9,
            "{:?}",
            &curve.survival[..4]
        );
        let months = curve.expected_months(100.0, 12, 0.0);
        assert!((months - 12.0).abs() < 1e-9, "{months}");
    }

    #[test]
    fn expected_months_discount_each_month_and_extend_the_tail_geometrically() {
        let curve = Curve {
            survival: vec![1.0, 0.9, 0.8, 0.6],
            ..kaplan_meier(&[], 3)
        };
        let (rate, ratio): (f64, f64) = (0.01, 0.6 / 0.8);
        // From tenure 1 (survival 0.9) over 5 months: two on the curve, three past its end.
        let expected: f64 = [
            0.8,
            0.6,
            0.6 * ratio,
            0.6 * ratio * ratio,
            0.6 * ratio.powi(3),
        ]
        .iter()
        .zip(1..)
        .map(|(s, k)| s / 0.9 / (1.0 + rate).powi(k))
        .sum();
        let months = curve.expected_months(1.0, 5, rate);
        assert!(
            (months - expected).abs() < 1e-12,
            "{months} against {expected}"
        );
    }
}

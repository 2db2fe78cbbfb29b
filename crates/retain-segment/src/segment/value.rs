//! Value and survival: retention curves by plan tier, each active subscriber's lifetime value
//! and value tier, and where cancellations concentrate.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::execution::context::SessionContext;

use super::rfm::{percentile, quintile_rank};
use super::{Retention, round4};
use crate::config::ValueConfig;
use crate::error::Result;
use crate::features::Behaviour;
use crate::survival::{Curve, Subject, kaplan_meier};

/// The longest tenure a curve follows, in months.
const MAX_MONTHS: usize = 360;

type Slice = dyn Fn(&Behaviour) -> bool;

/// Retention curves with delayed entry at the start of the data window: one per plan tier and
/// one over everyone.
pub(super) struct Curves {
    window_months: f64,
    by_tier: BTreeMap<i64, Curve>,
    overall: Curve,
}

impl Curves {
    pub(super) fn fit(people: &[Behaviour], window_months: f64) -> Curves {
        let subject = |b: &Behaviour| subject(b, window_months);
        let mut tiers: Vec<i64> = people.iter().map(|b| b.plan_tier as i64).collect();
        tiers.sort_unstable();
        tiers.dedup();
        let by_tier = tiers
            .into_iter()
            .map(|tier| {
                let subjects: Vec<Subject> = people
                    .iter()
                    .filter(|b| b.plan_tier as i64 == tier)
                    .map(subject)
                    .collect();
                (tier, kaplan_meier(&subjects, MAX_MONTHS))
            })
            .collect();
        let everyone: Vec<Subject> = people.iter().map(subject).collect();
        Curves {
            window_months,
            by_tier,
            overall: kaplan_meier(&everyone, MAX_MONTHS),
        }
    }

    /// The tier's curve when it saw enough cancellations, else everyone's.
    fn for_tier(&self, tier: f64) -> &Curve {
        self.by_tier
            .get(&(tier as i64))
            .filter(|c| c.events >= 20)
            .unwrap_or(&self.overall)
    }

    /// Summaries of everyone's curve, each tier's, and (for everyone including those who
    /// left) by customer segment and by join cohort.
    pub(super) fn summaries(&self, people: &[Behaviour]) -> Vec<Retention> {
        let mut retention = vec![retention_summary("all", &self.overall)];
        for (tier, curve) in &self.by_tier {
            retention.push(retention_summary(&format!("plan_tier_{tier}"), curve));
        }
        let slices: [(&str, &Slice); 7] = [
            ("customer_personal", &|b| !b.is_group_member),
            ("customer_group_member", &|b| b.is_group_member),
            ("joined_until_2015", &|b| b.join_year <= 2015),
            ("joined_2016_2019", &|b| {
                (2016..=2019).contains(&b.join_year)
            }),
            ("joined_2020_2022", &|b| {
                (2020..=2022).contains(&b.join_year)
            }),
            ("joined_2023_2024", &|b| {
                (2023..=2024).contains(&b.join_year)
            }),
            ("joined_2025_on", &|b| b.join_year >= 2025),
        ];
        for (name, keep) in slices {
            let subjects: Vec<Subject> = people
                .iter()
                .filter(|b| keep(b))
                .map(|b| subject(b, self.window_months))
                .collect();
            if !subjects.is_empty() {
                retention.push(retention_summary(
                    name,
                    &kaplan_meier(&subjects, MAX_MONTHS),
                ));
            }
        }
        retention
    }
}

fn subject(b: &Behaviour, window_months: f64) -> Subject {
    Subject {
        entry: (b.tenure_months - window_months).max(0.0),
        exit: b.left_at_tenure.unwrap_or(b.tenure_months),
        churned: b.left_at_tenure.is_some(),
    }
}

/// Each active subscriber's lifetime value and value tier, and the ARPU above which a
/// subscriber counts as mid-to-high value.
pub(super) struct Values {
    pub clv: Vec<f64>,
    pub tier: Vec<&'static str>,
    pub midhigh_cut: f64,
}

impl Values {
    /// Lifetime value: margin × ARPU × expected discounted months — from the churn model's
    /// monthly probability when the subscriber has a score, else from the tier's curve.
    pub(super) fn compute(
        alive: &[&Behaviour],
        curves: &Curves,
        probabilities: Option<&retain_model::Probabilities>,
        vc: &ValueConfig,
    ) -> Values {
        let clv: Vec<f64> = alive
            .iter()
            .map(|b| {
                let months = match probabilities.and_then(|m| m.get(b.subscriber_id)) {
                    Some(p) => {
                        // Σ qᵏ for k = 1..horizon, q the discounted chance of staying a month.
                        let q = (1.0 - p).clamp(0.0, 1.0) / (1.0 + vc.monthly_discount_rate);
                        (0..vc.horizon_months)
                            .fold((0.0, 1.0), |(sum, term): (f64, f64), _| {
                                (sum + term * q, term * q)
                            })
                            .0
                    }
                    None => curves.for_tier(b.plan_tier).expected_months(
                        b.tenure_months,
                        vc.horizon_months,
                        vc.monthly_discount_rate,
                    ),
                };
                (vc.margin_rate * b.arpu_3m * months * 100.0).round() / 100.0
            })
            .collect();
        let tier = quintile_rank(&clv)
            .into_iter()
            .map(|rank| {
                if rank >= 1.0 - vc.high_share {
                    "high"
                } else if rank >= 1.0 - vc.high_share - vc.medium_share {
                    "medium"
                } else {
                    "low"
                }
            })
            .collect();
        let midhigh_cut = vc.midhigh_arpu_threshold.unwrap_or_else(|| {
            percentile(
                &alive.iter().map(|b| b.arpu_3m).collect::<Vec<_>>(),
                1.0 - vc.midhigh_top_share,
            )
        });
        Values {
            clv,
            tier,
            midhigh_cut,
        }
    }
}

fn retention_summary(segment: &str, curve: &Curve) -> Retention {
    let survival = [6usize, 12, 24, 36, 60]
        .iter()
        .map(|t| {
            let seen = curve.observed.is_some_and(|(a, b)| *t >= a && *t <= b);
            let value = curve.survival[(*t).min(curve.survival.len() - 1)];
            (format!("{t}m"), seen.then(|| round4(value)))
        })
        .collect();
    Retention {
        segment: segment.to_owned(),
        subjects: curve.subjects,
        churn_events: curve.events,
        survival,
    }
}

/// Cancellations by tenure band at leaving.
pub(super) fn churn_by_tenure(people: &[Behaviour]) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for b in people.iter().filter_map(|b| b.left_at_tenure) {
        let band = match b as i64 {
            ..3 => "00-03m",
            3..6 => "03-06m",
            6..12 => "06-12m",
            12..24 => "12-24m",
            24..60 => "24-60m",
            _ => "60m+",
        };
        *out.entry(band.to_owned()).or_default() += 1;
    }
    out
}

/// Cancellations by months between leaving and the end of the nearest contract.
pub(super) fn churn_by_contract_end(people: &[Behaviour]) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for b in people.iter().filter(|b| b.left_at_tenure.is_some()) {
        let band = match b.contract_end_at_churn.map(|m| m as i64) {
            None => "no contract within a year",
            Some(..-6) => "ended 7-12 months before",
            Some(-6..-3) => "ended 4-6 months before",
            Some(-3..0) => "ended 1-3 months before",
            Some(0..3) => "ending within 3 months",
            Some(3..7) => "ending in 3-6 months",
            Some(_) => "ending in 7-12 months",
        };
        *out.entry(band.to_owned()).or_default() += 1;
    }
    out
}

/// Cancellations by calendar month before `as_of`.
pub(super) async fn churn_by_month(
    ctx: &SessionContext,
    as_of: NaiveDate,
) -> Result<BTreeMap<String, u64>> {
    let sql = format!(
        "SELECT CAST(date_trunc('month', \"timestamp\") AS DATE) AS m, COUNT(*) AS n FROM events
         WHERE kind = 'cancel' AND \"timestamp\" < TIMESTAMP '{as_of}T00:00:00' GROUP BY 1 ORDER BY 1"
    );
    let batches = retain_features::frame::query(ctx, &sql, "cancellations by month").await?;
    let mut out = BTreeMap::new();
    for b in &batches {
        let m = b
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Date32Type>();
        let n = b
            .column(1)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        for row in 0..b.num_rows() {
            if !m.is_null(row) {
                out.insert(
                    retain_data::days_to_date(m.value(row))
                        .format("%Y-%m")
                        .to_string(),
                    n.value(row) as u64,
                );
            }
        }
    }
    Ok(out)
}

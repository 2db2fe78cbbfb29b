//! Value and survival: retention curves by plan tier, each active subscriber's lifetime value
//! and value tier, and where cancellations concentrate.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::execution::context::SessionContext;

use serde::{Deserialize, Serialize};

use super::{Retention, round4};
use crate::config::ValueConfig;
use crate::error::Result;
use crate::features::Behaviour;
use crate::survival::{Curve, Subject, kaplan_meier_counted};

/// The longest tenure a curve follows, in months.
const MAX_MONTHS: usize = 360;

/// Subscribers who share a history: plan tier, customer type, join year, tenure as of the run
/// and tenure when they left. Counted where the rows are, these carry everything the retention
/// curves and the churn bands need.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cohort {
    pub tier: i64,
    pub is_group_member: bool,
    pub join_year: i64,
    pub tenure_months: f64,
    pub left_at_tenure: Option<f64>,
    pub count: u64,
}

type Slice = dyn Fn(&Cohort) -> bool;

/// Retention curves with delayed entry at the start of the data window: one per plan tier and
/// one over everyone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Curves {
    window_months: f64,
    by_tier: BTreeMap<i64, Curve>,
    overall: Curve,
}

impl Curves {
    pub(super) fn fit(cohorts: &[Cohort], window_months: f64) -> Curves {
        let counted = |keep: &dyn Fn(&Cohort) -> bool| -> Vec<(Subject, u64)> {
            cohorts
                .iter()
                .filter(|c| keep(c))
                .map(|c| (subject(c, window_months), c.count))
                .collect()
        };
        let mut tiers: Vec<i64> = cohorts.iter().map(|c| c.tier).collect();
        tiers.sort_unstable();
        tiers.dedup();
        let by_tier = tiers
            .into_iter()
            .map(|tier| {
                let subjects = counted(&|c| c.tier == tier);
                (tier, kaplan_meier_counted(&subjects, MAX_MONTHS))
            })
            .collect();
        Curves {
            window_months,
            by_tier,
            overall: kaplan_meier_counted(&counted(&|_| true), MAX_MONTHS),
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
    pub(super) fn summaries(&self, cohorts: &[Cohort]) -> Vec<Retention> {
        let mut retention = vec![retention_summary("all", &self.overall)];
        for (tier, curve) in &self.by_tier {
            retention.push(retention_summary(&format!("plan_tier_{tier}"), curve));
        }
        let slices: [(&str, &Slice); 7] = [
            ("customer_personal", &|c| !c.is_group_member),
            ("customer_group_member", &|c| c.is_group_member),
            ("joined_until_2015", &|c| c.join_year <= 2015),
            ("joined_2016_2019", &|c| {
                (2016..=2019).contains(&c.join_year)
            }),
            ("joined_2020_2022", &|c| {
                (2020..=2022).contains(&c.join_year)
            }),
            ("joined_2023_2024", &|c| {
                (2023..=2024).contains(&c.join_year)
            }),
            ("joined_2025_on", &|c| c.join_year >= 2025),
        ];
        for (name, keep) in slices {
            let subjects: Vec<(Subject, u64)> = cohorts
                .iter()
                .filter(|c| keep(c))
                .map(|c| (subject(c, self.window_months), c.count))
                .collect();
            if !subjects.is_empty() {
                retention.push(retention_summary(
                    name,
                    &kaplan_meier_counted(&subjects, MAX_MONTHS),
                ));
            }
        }
        retention
    }
}

fn subject(c: &Cohort, window_months: f64) -> Subject {
    Subject {
        entry: (c.tenure_months - window_months).max(0.0),
        exit: c.left_at_tenure.unwrap_or(c.tenure_months),
        churned: c.left_at_tenure.is_some(),
    }
}

/// Lifetime value: margin × ARPU × expected discounted months — from the churn model's monthly
/// probability when the subscriber has a score, else from the tier's curve.
pub(super) fn lifetime_value(
    b: &Behaviour,
    probability: Option<f64>,
    curves: &Curves,
    vc: &ValueConfig,
) -> f64 {
    let months = match probability {
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
}

/// The value tier of a lifetime value, given the least values of the high and the medium tier
/// (by the share of the active base below them).
pub(super) fn value_tier(clv: f64, high_cut: f64, medium_cut: f64) -> &'static str {
    if clv >= high_cut {
        "high"
    } else if clv >= medium_cut {
        "medium"
    } else {
        "low"
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
pub(super) fn churn_by_tenure(cohorts: &[Cohort]) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for (left, count) in cohorts
        .iter()
        .filter_map(|c| Some((c.left_at_tenure?, c.count)))
    {
        let band = match left as i64 {
            ..3 => "00-03m",
            3..6 => "03-06m",
            6..12 => "06-12m",
            12..24 => "12-24m",
            24..60 => "24-60m",
            _ => "60m+",
        };
        *out.entry(band.to_owned()).or_default() += count;
    }
    out
}

/// Cancellations by months between leaving and the end of the nearest contract, from
/// `(months, leavers)` counts (`None`: no contract ended within a year of leaving).
pub(super) fn churn_by_contract_end(counts: &[(Option<f64>, u64)]) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for (months, count) in counts {
        let band = match months.map(|m| m as i64) {
            None => "no contract within a year",
            Some(..-6) => "ended 7-12 months before",
            Some(-6..-3) => "ended 4-6 months before",
            Some(-3..0) => "ended 1-3 months before",
            Some(0..3) => "ending within 3 months",
            Some(3..7) => "ending in 3-6 months",
            Some(_) => "ending in 7-12 months",
        };
        *out.entry(band.to_owned()).or_default() += count;
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

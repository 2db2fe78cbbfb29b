//! RFM: recency, frequency and monetary scores of the active base, and the groups the
//! department works with. Frequency and monetary are quintiles of the active base
//! ([`super::stats::Histogram::quintile_cuts`]); recency is discrete.

use crate::config::RfmConfig;
use crate::features::Behaviour;

/// The RFM group of an active subscriber `b` with scores `(r, f, m)`.
pub(super) fn group(r: u8, f: u8, m: u8, b: &Behaviour, rc: &RfmConfig) -> &'static str {
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

/// Recency is naturally discrete in monthly billing: consumed last month scores 5, the month
/// before 4, two months before 3, three to five months 2, six or more 1.
pub(super) fn recency_score(months_since: f64) -> u8 {
    match months_since as i64 {
        ..1 => 5,
        1 => 4,
        2 => 3,
        3..6 => 2,
        _ => 1,
    }
}

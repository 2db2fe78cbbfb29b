//! Where each subscriber sits — RFM, value, lifecycle stage, cluster and scenario groups — given
//! what the run fitted over the whole base ([`Placer`]). It is a function of one subscriber's
//! row, so it runs where the rows are ([`super::functions`]).

use serde::{Deserialize, Serialize};

use super::rfm;
use super::stats::score;
use super::value::{Curves, lifetime_value, value_tier};
use crate::cluster::Clustering;
use crate::config::{LifecycleConfig, RfmConfig, ValueConfig};
use crate::features::Behaviour;

/// Everything a subscriber's place depends on beyond their own row. The cut points compared
/// with the rows' values travel as their bits, so that a value equal to a cut on one node is
/// equal to it on every node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Placer {
    pub rfm: RfmConfig,
    pub lifecycle: LifecycleConfig,
    pub value: ValueConfig,
    pub curves: Curves,
    pub clustering: Clustering,
    /// Each cluster's names, zh and en.
    pub names: Vec<(String, String)>,
    /// Quintile cut points of active days (frequency) and of ARPU (monetary).
    pub f_cuts: [u64; 4],
    pub m_cuts: [u64; 4],
    pub voice_median: u64,
    pub data_median: u64,
    pub data_p75: u64,
    pub midhigh_cut: u64,
    /// The least lifetime values of the high and the medium tier (unknown while the lifetime
    /// values are being counted: infinite).
    pub high_cut: u64,
    pub medium_cut: u64,
}

/// One subscriber's place.
#[derive(Debug, Clone)]
pub(super) struct Place {
    pub rfm: Option<(u8, u8, u8)>,
    pub rfm_group: Option<&'static str>,
    pub clv: Option<f64>,
    pub value_tier: Option<&'static str>,
    pub midhigh: bool,
    pub lifecycle_stage: &'static str,
    pub cluster: Option<usize>,
    pub scenarios: Vec<&'static str>,
}

impl Placer {
    /// The features a subscriber is clustered on.
    pub(super) fn cluster_row(b: &Behaviour) -> Vec<f64> {
        vec![
            b.arpu_3m.max(0.0).ln_1p(),
            b.data_3m.max(0.0).ln_1p(),
            b.voice_3m.max(0.0).ln_1p(),
            b.active_days_3m,
            b.tenure_months.max(0.0).ln_1p(),
            b.age,
            b.family_size,
            f64::from(u8::from(b.is_group_member)),
            (b.arpu_3m / b.fee_prev_3m.max(1.0)).clamp(0.0, 3.0),
            b.complaints_6m.ln_1p(),
            b.competitor_calls_6m.ln_1p(),
            b.vas_3m.max(0.0).ln_1p(),
        ]
    }

    pub(super) fn cluster(&self, b: &Behaviour) -> usize {
        self.clustering.assign(&Self::cluster_row(b))
    }

    pub(super) fn lifetime_value(&self, b: &Behaviour, probability: Option<f64>) -> f64 {
        lifetime_value(b, probability, &self.curves, &self.value)
    }

    /// Places `b`: the active by their scores, the departed as churned.
    pub(super) fn place(&self, b: &Behaviour, probability: Option<f64>) -> Place {
        if !b.alive {
            return Place {
                rfm: None,
                rfm_group: None,
                clv: None,
                value_tier: None,
                midhigh: false,
                lifecycle_stage: "churned",
                cluster: None,
                scenarios: Vec::new(),
            };
        }
        let lc = &self.lifecycle;
        let declining = b
            .contract_months_left
            .is_some_and(|m| m <= f64::from(lc.decline_contract_months))
            || (b.fee_prev_3m > 0.0 && b.arpu_3m <= (1.0 - lc.decline_fee_drop) * b.fee_prev_3m)
            || b.silent_months_3m >= f64::from(lc.decline_silent_months);
        let stage = if b.tenure_months < f64::from(lc.onboarding_months) {
            "onboarding"
        } else if declining {
            "decline"
        } else if b.tenure_months < f64::from(lc.growth_months) {
            "growth"
        } else {
            "mature"
        };
        let cut = f64::from_bits;
        let mut scenarios = Vec::new();
        if b.age >= 60.0
            && b.voice_3m >= cut(self.voice_median)
            && b.data_3m <= cut(self.data_median)
        {
            scenarios.push("voice_dominant_senior");
        }
        if b.age < 30.0 && b.data_3m >= cut(self.data_p75) {
            scenarios.push("data_dominant_young");
        }
        if b.family_size >= 2.0 {
            scenarios.push("family_convergence");
        }
        if b.is_group_member {
            scenarios.push(if b.group_size < 10.0 {
                "group_member_small"
            } else if b.group_size < 50.0 {
                "group_member_medium"
            } else {
                "group_member_large"
            });
        }
        let r = rfm::recency_score(b.months_since_consumption);
        let f = score(b.active_days_3m, &self.f_cuts.map(cut));
        let m = score(b.arpu_3m, &self.m_cuts.map(cut));
        let clv = self.lifetime_value(b, probability);
        Place {
            rfm: Some((r, f, m)),
            rfm_group: Some(rfm::group(r, f, m, b, &self.rfm)),
            clv: Some(clv),
            value_tier: Some(value_tier(clv, cut(self.high_cut), cut(self.medium_cut))),
            midhigh: b.arpu_3m >= cut(self.midhigh_cut),
            lifecycle_stage: stage,
            cluster: Some(self.cluster(b)),
            scenarios,
        }
    }
}

//! Evaluation against the control group: retention treated vs control with a 95% confidence
//! interval, per campaign and per offer, level, value tier, segment and channel; ARPU change;
//! cost from the callbacks; ROI; the reasons subscribers stated against the model's.

use std::collections::{BTreeMap, HashMap};

use retain_store::{CallbackRecord, MemberRecord, OutcomeRecord, WorkOrderRecord};
use serde::Serialize;

/// z of a two-sided 95% interval.
const Z95: f64 = 1.959_963_985;

/// Treated vs control in one group of members.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Comparison {
    pub treated: usize,
    pub control: usize,
    pub treated_retention: f64,
    pub control_retention: f64,
    /// Treated minus control retention; none unless both arms have members.
    pub uplift: Option<f64>,
    /// The 95% interval of the uplift (Wald; a group without a control has none).
    pub uplift_ci_low: Option<f64>,
    pub uplift_ci_high: Option<f64>,
}

fn r6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Compares retention of `(arm is treatment, retained)` pairs.
#[must_use]
pub fn compare(rows: impl Iterator<Item = (bool, bool)>) -> Comparison {
    let (mut nt, mut rt, mut nc, mut rc) = (0usize, 0usize, 0usize, 0usize);
    for (treated, retained) in rows {
        if treated {
            nt += 1;
            rt += usize::from(retained);
        } else {
            nc += 1;
            rc += usize::from(retained);
        }
    }
    let rate = |r: usize, n: usize| if n == 0 { 0.0 } else { r as f64 / n as f64 };
    let (pt, pc) = (rate(rt, nt), rate(rc, nc));
    let both = nt > 0 && nc > 0;
    let uplift = pt - pc;
    let ci = both.then(|| {
        let se = (pt * (1.0 - pt) / nt as f64 + pc * (1.0 - pc) / nc as f64).sqrt();
        (uplift - Z95 * se, uplift + Z95 * se)
    });
    Comparison {
        treated: nt,
        control: nc,
        treated_retention: r6(pt),
        control_retention: r6(pc),
        uplift: both.then(|| r6(uplift)),
        uplift_ci_low: ci.map(|c| r6(c.0)),
        uplift_ci_high: ci.map(|c| r6(c.1)),
    }
}

/// Stated reasons against the model's.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ReasonCheck {
    /// Callbacks that recorded a stated reason.
    pub stated: usize,
    /// Of those, the share where the stated reason is the model's.
    pub agreement: f64,
    /// model reason → stated reason → count.
    pub matrix: BTreeMap<String, BTreeMap<String, usize>>,
}

/// A campaign's evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub members: usize,
    pub outcomes: usize,
    /// `simulated` or `observed`.
    pub outcome_source: String,
    #[serde(flatten)]
    pub overall: Comparison,
    /// Mean ARPU change (after − before; a leaver's after is 0) per arm, and their difference.
    pub arpu_change_treated: f64,
    pub arpu_change_control: f64,
    pub arpu_change_uplift: f64,
    pub work_orders: usize,
    pub callbacks: usize,
    pub reached: usize,
    pub accepted: usize,
    /// Contacts attempted plus the offers accepted (committed cost where no callback came).
    pub cost: f64,
    /// Subscribers kept because of the campaign: uplift × treated.
    pub incremental_saves: f64,
    /// Incremental saves × the treated's mean lifetime value.
    pub saved_value: f64,
    /// (saved value − cost) / cost; none without a control group to measure against.
    pub roi: Option<f64>,
    pub by_offer: BTreeMap<String, Comparison>,
    pub by_level: BTreeMap<String, Comparison>,
    pub by_tier: BTreeMap<String, Comparison>,
    pub by_segment: BTreeMap<String, Comparison>,
    pub by_channel: BTreeMap<String, Comparison>,
    pub reasons: ReasonCheck,
    /// The synthetic operator's true average effect on these members, when simulated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub true_uplift: Option<f64>,
}

/// Evaluates a campaign. `contact_cost` is the policy's cost of one contact on a channel.
#[must_use]
pub fn evaluate(
    members: &[MemberRecord],
    outcomes: &[OutcomeRecord],
    orders: &[WorkOrderRecord],
    callbacks: &[CallbackRecord],
    contact_cost: &dyn Fn(&str) -> f64,
    true_uplift: Option<f64>,
) -> Evaluation {
    let outcome: HashMap<i64, &OutcomeRecord> =
        outcomes.iter().map(|o| (o.subscriber_id, o)).collect();
    let observed: Vec<(&MemberRecord, &OutcomeRecord)> = members
        .iter()
        .filter_map(|m| outcome.get(&m.subscriber_id).map(|o| (m, *o)))
        .collect();
    let overall = compare(
        observed
            .iter()
            .map(|(m, o)| (m.arm == "treatment", o.retained)),
    );
    let group = |key: &dyn Fn(&MemberRecord) -> &str| {
        let mut groups: BTreeMap<String, Vec<(bool, bool)>> = BTreeMap::new();
        for (m, o) in &observed {
            groups
                .entry(key(m).to_owned())
                .or_default()
                .push((m.arm == "treatment", o.retained));
        }
        groups
            .into_iter()
            .map(|(k, rows)| (k, compare(rows.into_iter())))
            .collect::<BTreeMap<_, _>>()
    };
    let mean = |arm: &str| {
        let v: Vec<f64> = observed
            .iter()
            .filter(|(m, _)| m.arm == arm)
            .filter_map(|(m, o)| Some(o.arpu_after? - m.arpu))
            .collect();
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let (at, ac) = (mean("treatment"), mean("control"));

    let callback: HashMap<i64, &CallbackRecord> =
        callbacks.iter().map(|c| (c.work_order_id, c)).collect();
    let member: HashMap<i64, &MemberRecord> =
        members.iter().map(|m| (m.subscriber_id, m)).collect();
    let mut cost = 0.0;
    let mut reasons = ReasonCheck::default();
    let mut agree = 0;
    // An offer is paid once per member, however many work orders (escalations) report it.
    let mut paid = std::collections::HashSet::new();
    for w in orders {
        let contact = contact_cost(&w.channel);
        let offer_cost = member
            .get(&w.subscriber_id)
            .map_or(0.0, |m| (m.cost - contact_cost(&m.channel)).max(0.0));
        let c = callback.get(&w.id);
        // No result yet: count what was committed.
        let pays = c.is_none_or(|c| c.accepted) && paid.insert(w.subscriber_id);
        cost += contact + if pays { offer_cost } else { 0.0 };
        if let Some(c) = c
            && let (Some(stated), Some(m)) = (&c.stated_reason, member.get(&w.subscriber_id))
        {
            reasons.stated += 1;
            agree += usize::from(*stated == m.reason);
            *reasons
                .matrix
                .entry(m.reason.clone())
                .or_default()
                .entry(stated.clone())
                .or_insert(0) += 1;
        }
    }
    if reasons.stated > 0 {
        reasons.agreement = r6(agree as f64 / reasons.stated as f64);
    }
    let treated: Vec<&MemberRecord> = members.iter().filter(|m| m.arm == "treatment").collect();
    let mean_clv = if treated.is_empty() {
        0.0
    } else {
        treated.iter().map(|m| m.clv).sum::<f64>() / treated.len() as f64
    };
    let incremental = overall.uplift.unwrap_or(0.0) * overall.treated as f64;
    let saved_value = incremental * mean_clv;
    let source = outcomes
        .first()
        .map_or_else(String::new, |o| o.source.clone());
    Evaluation {
        members: members.len(),
        outcomes: observed.len(),
        outcome_source: source,
        arpu_change_treated: r2(at),
        arpu_change_control: r2(ac),
        arpu_change_uplift: r2(at - ac),
        work_orders: orders.len(),
        callbacks: callbacks.len(),
        reached: callbacks.iter().filter(|c| c.reached).count(),
        accepted: callbacks.iter().filter(|c| c.accepted).count(),
        cost: r2(cost),
        incremental_saves: r2(incremental),
        saved_value: r2(saved_value),
        roi: (overall.uplift.is_some() && cost > 0.0).then(|| r6((saved_value - cost) / cost)),
        by_offer: group(&|m| &m.offer_id),
        by_level: group(&|m| &m.level),
        by_tier: group(&|m| &m.tier),
        by_segment: group(&|m| &m.segment),
        by_channel: group(&|m| &m.channel),
        reasons,
        true_uplift: true_uplift.map(r6),
        overall,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_is_the_wald_interval_and_needs_a_control() {
        // 80/100 treated vs 60/100 control: uplift 0.2, se = sqrt(.16/100 + .24/100) = 0.0632.
        let rows = (0..100)
            .map(|i| (true, i < 80))
            .chain((0..100).map(|i| (false, i < 60)));
        let c = compare(rows);
        assert!((c.uplift.unwrap() - 0.2).abs() < 1e-9);
        let half = 1.959_963_985 * (0.004f64).sqrt();
        assert!((c.uplift_ci_low.unwrap() - (0.2 - half)).abs() < 1e-6);
        assert!((c.uplift_ci_high.unwrap() - (0.2 + half)).abs() < 1e-6);
        let none = compare([(true, true)].into_iter());
        assert_eq!((none.uplift, none.uplift_ci_low), (None, None));
    }
}

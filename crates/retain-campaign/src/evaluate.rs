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
    /// Whether the interval excludes zero; false without one. A result that is not
    /// significant is not evidence that the campaign worked, whatever its sign.
    pub significant: bool,
    /// The smallest uplift these sizes detect at 5% with 80% power.
    pub min_detectable_uplift: Option<f64>,
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
        significant: ci.is_some_and(|(lo, hi)| lo > 0.0 || hi < 0.0),
        min_detectable_uplift: crate::power::min_detectable_uplift(nt as f64, nc as f64, pc)
            .map(r6),
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
    /// Per stated reason, how often the model's reason names it.
    pub by_stated_reason: BTreeMap<String, StatedAgreement>,
}

/// Callbacks stating one reason, and how many the model's reason names.
#[derive(Debug, Clone, Copy, Serialize, Default, PartialEq, Eq)]
pub struct StatedAgreement {
    pub stated: usize,
    pub agreed: usize,
}

/// Net Promoter Score of one arm from 0–10 satisfaction answers: the share of promoters (9–10)
/// minus the share of detractors (0–6), in points from −100 to 100.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct Nps {
    pub answers: usize,
    pub promoters: usize,
    pub detractors: usize,
    pub mean_satisfaction: Option<f64>,
    pub nps: Option<f64>,
}

impl Nps {
    fn of(scores: impl Iterator<Item = u8>) -> Nps {
        let mut n = Nps::default();
        let mut sum = 0u64;
        for s in scores {
            n.answers += 1;
            sum += u64::from(s);
            n.promoters += usize::from(s >= 9);
            n.detractors += usize::from(s <= 6);
        }
        if n.answers > 0 {
            let k = n.answers as f64;
            n.mean_satisfaction = Some(r2(sum as f64 / k));
            n.nps = Some(r2(100.0 * (n.promoters as f64 - n.detractors as f64) / k));
        }
        n
    }
}

/// Offer kinds that give a subscriber a service they did not have (新业务): their take-up is the
/// campaign's new-service penetration. Discounts, renewals, fixes and bill adjustments are not.
pub const NEW_SERVICE_KINDS: &[&str] = &[
    "data_bonus",
    "family_addon",
    "loyalty_upgrade",
    "vip_service",
    "partner_coupon",
];

/// The treated who were offered a kind of offer, and those who took it.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct Takeup {
    pub treated: usize,
    pub taken: usize,
    pub share: f64,
}

/// Members who left, by arm and by whether they left of their own will (自愿/非自愿): an
/// arrears cut-off is not a defection a retention offer could have prevented.
#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq)]
pub struct Leavers {
    pub treated_voluntary: usize,
    pub treated_involuntary: usize,
    pub control_voluntary: usize,
    pub control_involuntary: usize,
}

/// Counts the members whose outcome is a leaving, splitting off those in `involuntary`.
#[must_use]
pub fn leavers_by_class<S: std::hash::BuildHasher>(
    members: &[MemberRecord],
    outcomes: &[OutcomeRecord],
    involuntary: &std::collections::HashSet<i64, S>,
) -> Leavers {
    let left: std::collections::HashSet<i64> = outcomes
        .iter()
        .filter(|o| !o.retained)
        .map(|o| o.subscriber_id)
        .collect();
    let mut out = Leavers::default();
    for m in members.iter().filter(|m| left.contains(&m.subscriber_id)) {
        let cut_off = involuntary.contains(&m.subscriber_id);
        let slot = match (m.arm == "treatment", cut_off) {
            (true, false) => &mut out.treated_voluntary,
            (true, true) => &mut out.treated_involuntary,
            (false, false) => &mut out.control_voluntary,
            (false, true) => &mut out.control_involuntary,
        };
        *slot += 1;
    }
    out
}

/// A campaign's evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// The stage of the seed study's table the campaign served: `retention` (挽留, at-risk
    /// subscribers), `win_back` (挽回, leavers) or `care` (预防/维系, the care triggers).
    pub stage: &'static str,
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
    /// The ROI at the ends of the uplift's 95% interval.
    pub roi_ci_low: Option<f64>,
    pub roi_ci_high: Option<f64>,
    /// The satisfaction survey's calls (measurement, not counted in `cost`).
    pub survey_cost: f64,
    /// NPS of the surveyed treated and control members (the survey asks both arms alike).
    pub nps_treated: Option<f64>,
    pub nps_control: Option<f64>,
    pub survey_treated: Nps,
    pub survey_control: Nps,
    /// Satisfaction the retention calls themselves recorded (treated only, so not compared
    /// with the control).
    pub callback_satisfaction: Nps,
    /// Take-up of each offer kind among the treated offered it.
    pub takeup_by_kind: BTreeMap<String, Takeup>,
    /// The share of the treated who took up a new service ([`NEW_SERVICE_KINDS`]).
    pub new_service_penetration: f64,
    pub by_offer: BTreeMap<String, Comparison>,
    pub by_level: BTreeMap<String, Comparison>,
    pub by_tier: BTreeMap<String, Comparison>,
    pub by_segment: BTreeMap<String, Comparison>,
    pub by_channel: BTreeMap<String, Comparison>,
    /// By the category of the members' reasons (价格/质量/社会/便捷).
    pub by_category: BTreeMap<String, Comparison>,
    /// The members who left, voluntary and involuntary apart (a retention campaign's; none for
    /// win-back, whose members had left already).
    pub left: Leavers,
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
    let arm_of = |id: i64| member.get(&id).map(|m| m.arm.as_str());
    let mut survey_cost = 0.0;
    let (mut survey_t, mut survey_c, mut called) = (Vec::new(), Vec::new(), Vec::new());
    // Who took their offer: an accepted retention call or escalation.
    let mut took = std::collections::HashSet::new();
    for w in orders {
        let contact = contact_cost(&w.channel);
        if w.purpose == crate::workorder::SURVEY {
            survey_cost += contact;
            if let Some(s) = callback.get(&w.id).and_then(|c| c.satisfaction) {
                match arm_of(w.subscriber_id) {
                    Some("treatment") => survey_t.push(s),
                    Some(_) => survey_c.push(s),
                    None => {}
                }
            }
            continue;
        }
        if let Some(c) = callback.get(&w.id) {
            called.extend(c.satisfaction);
            if c.accepted {
                took.insert(w.subscriber_id);
            }
        }
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
            // "Too expensive" names value decline, moving away low engagement.
            let named = retain_model::stated_category(stated) == Some(m.reason.as_str());
            agree += usize::from(named);
            let by = reasons.by_stated_reason.entry(stated.clone()).or_default();
            by.stated += 1;
            by.agreed += usize::from(named);
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
    // Saved value is linear in the uplift, so the ROI's interval is the uplift's, mapped.
    let roi_at = |u: Option<f64>| {
        u.filter(|_| cost > 0.0)
            .map(|u| r6((u * overall.treated as f64 * mean_clv - cost) / cost))
    };
    let mut takeup_by_kind: BTreeMap<String, Takeup> = BTreeMap::new();
    let mut new_service = 0;
    for m in &treated {
        let t = takeup_by_kind.entry(m.offer_kind.clone()).or_default();
        t.treated += 1;
        if took.contains(&m.subscriber_id) {
            t.taken += 1;
            new_service += usize::from(NEW_SERVICE_KINDS.contains(&m.offer_kind.as_str()));
        }
    }
    for t in takeup_by_kind.values_mut() {
        t.share = r6(t.taken as f64 / t.treated.max(1) as f64);
    }
    let (survey_treated, survey_control) =
        (Nps::of(survey_t.into_iter()), Nps::of(survey_c.into_iter()));
    let source = outcomes
        .first()
        .map_or_else(String::new, |o| o.source.clone());
    Evaluation {
        stage: "retention",
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
        roi_ci_low: roi_at(overall.uplift_ci_low),
        roi_ci_high: roi_at(overall.uplift_ci_high),
        survey_cost: r2(survey_cost),
        nps_treated: survey_treated.nps,
        nps_control: survey_control.nps,
        survey_treated,
        survey_control,
        callback_satisfaction: Nps::of(called.into_iter()),
        new_service_penetration: r6(new_service as f64 / treated.len().max(1) as f64),
        takeup_by_kind,
        by_offer: group(&|m| &m.offer_id),
        by_level: group(&|m| &m.level),
        by_tier: group(&|m| &m.tier),
        by_segment: group(&|m| &m.segment),
        by_channel: group(&|m| &m.channel),
        by_category: group(&|m| retain_offers::category_of(&m.reason)),
        left: Leavers::default(),
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
        assert!(c.significant, "[0.076, 0.324] excludes zero");
        assert!(!none.significant, "no control, no evidence");
        // 70/100 vs 60/100: the interval [-0.03, 0.23] includes zero.
        let weak = compare(
            (0..100)
                .map(|i| (true, i < 70))
                .chain((0..100).map(|i| (false, i < 60))),
        );
        assert!(weak.uplift_ci_low.unwrap() < 0.0 && !weak.significant);
        // 100 a side at 60% control retention: 2.8016 × sqrt(0.24 × 0.02) = 0.1941.
        assert!((weak.min_detectable_uplift.unwrap() - 0.194_1).abs() < 1e-3);
    }

    fn member(id: i64, arm: &str, kind: &str) -> MemberRecord {
        MemberRecord {
            subscriber_id: id,
            arm: arm.into(),
            stratum: "red/high".into(),
            level: "red".into(),
            tier: "high".into(),
            segment: "mature".into(),
            reason: "price".into(),
            offer_id: format!("O-{kind}"),
            offer_kind: kind.into(),
            channel: "outbound_call".into(),
            p_churn: 0.5,
            clv: 1000.0,
            arpu: 100.0,
            cost: 22.0,
            expected_cost: 12.0,
            expected_value: 100.0,
        }
    }

    fn order(id: i64, subscriber: i64, purpose: &str) -> WorkOrderRecord {
        WorkOrderRecord {
            id,
            campaign_id: 1,
            subscriber_id: subscriber,
            channel: "outbound_call".into(),
            purpose: purpose.into(),
            offer_id: String::new(),
            branch_id: String::new(),
            manager_id: String::new(),
            due_date: "2026-11-20".into(),
            status: "done".into(),
            payload: serde_json::json!({}),
        }
    }

    fn callback(order: i64, accepted: bool, satisfaction: Option<u8>) -> CallbackRecord {
        CallbackRecord {
            work_order_id: order,
            reached: true,
            accepted,
            stated_reason: None,
            satisfaction,
            notes: String::new(),
            follow_up: None,
            source: "t".into(),
            recorded_by: "t".into(),
        }
    }

    #[test]
    #[allow(clippy::float_cmp)] // rounded values and shares on the grid, compared exactly
    fn nps_roi_interval_and_takeup_come_from_the_arms_alike() {
        // Two treated (one takes a data bonus, one a discount), two control; all surveyed.
        let members = [
            member(1, "treatment", "data_bonus"),
            member(2, "treatment", "fee_discount"),
            member(3, "control", "data_bonus"),
            member(4, "control", "fee_discount"),
        ];
        let outcomes: Vec<OutcomeRecord> = [(1, true), (2, true), (3, true), (4, false)]
            .iter()
            .map(|&(id, retained)| OutcomeRecord {
                subscriber_id: id,
                retained,
                arpu_after: Some(100.0),
                source: "simulated".into(),
            })
            .collect();
        let orders = [
            order(11, 1, "retention"),
            order(12, 2, "retention"),
            order(21, 1, "survey"),
            order(22, 2, "survey"),
            order(23, 3, "survey"),
            order(24, 4, "survey"),
        ];
        let callbacks = [
            callback(11, true, Some(10)),
            callback(12, false, None),
            callback(21, false, Some(10)),
            callback(22, false, Some(9)),
            callback(23, false, Some(6)),
            callback(24, false, Some(8)),
        ];
        let e = evaluate(&members, &outcomes, &orders, &callbacks, &|_| 2.0, None);
        assert_eq!(e.nps_treated, Some(100.0));
        assert_eq!(e.nps_control, Some(-50.0), "one detractor, one passive");
        assert_eq!(e.survey_control.mean_satisfaction, Some(7.0));
        assert_eq!(e.callback_satisfaction.answers, 1);
        // The survey's four calls are measurement, apart from the campaign's cost: two calls
        // and the one offer taken (20 yuan).
        assert_eq!(e.survey_cost, 8.0);
        assert_eq!(e.cost, 24.0);
        assert_eq!(e.takeup_by_kind["data_bonus"].taken, 1);
        assert_eq!(e.takeup_by_kind["fee_discount"].taken, 0);
        assert_eq!(e.new_service_penetration, 0.5);
        // The ROI's interval is the uplift's, mapped: saved value is uplift × 2 × 1000.
        let roi_at = |u: f64| (u * 2.0 * 1000.0 - 24.0) / 24.0;
        let (lo, hi) = (
            e.overall.uplift_ci_low.unwrap(),
            e.overall.uplift_ci_high.unwrap(),
        );
        assert!((e.roi_ci_low.unwrap() - roi_at(lo)).abs() < 1e-4);
        assert!((e.roi_ci_high.unwrap() - roi_at(hi)).abs() < 1e-4);
        assert!(!e.overall.significant, "two a side tell nothing");
        // Member 4 (control) left; as an arrears cut-off it is counted apart.
        let cut: std::collections::HashSet<i64> = [4].into_iter().collect();
        assert_eq!(
            leavers_by_class(&members, &outcomes, &cut),
            Leavers {
                control_involuntary: 1,
                ..Leavers::default()
            }
        );
        let none = std::collections::HashSet::<i64>::new();
        assert_eq!(
            leavers_by_class(&members, &outcomes, &none).control_voluntary,
            1
        );
    }
}

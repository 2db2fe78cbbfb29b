//! Group warning and value: the scorecard over a group's signals, its level and reasons, its
//! lifetime value, and the segment (industry × size) it falls in.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::config::{GroupConfig, step_points, within_points};
use crate::signals::GroupSignals;

/// Warning levels of a group, from the most urgent.
pub const LEVELS: &[(&str, &str)] = &[("red", "红色"), ("yellow", "黄色"), ("blue", "蓝色")];

/// Reasons a group is at risk: code, 中文.
pub const REASONS: &[(&str, &str)] = &[
    ("members_leaving", "成员离网"),
    ("competitor_contact", "成员接触竞争对手"),
    ("revenue_falling", "集团收入下降"),
    ("members_at_risk", "成员流失风险高"),
    ("decision_maker", "决策人流失信号"),
    ("key_person", "关键人流失信号"),
    ("contract_expiry", "集团协议到期"),
    ("product_cancelled", "集团产品拆除"),
    ("competitor_offer", "拜访发现竞争对手"),
    ("complaint", "拜访有投诉"),
    ("neglected", "长期未拜访"),
];

/// Size bands by our member subscriptions: code, 中文, smallest member count.
pub const SIZES: &[(&str, &str, i64)] = &[
    ("large", "大型", 50),
    ("medium", "中型", 10),
    ("small", "小型", 1),
    ("none", "无成员", 0),
];

/// Months of life counted at most in a group's lifetime value.
const MAX_LIFETIME_MONTHS: f64 = 60.0;

/// A reason with the points it brought.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupReason {
    pub code: String,
    pub name_zh: String,
    pub points: u32,
}

/// One group's warning and value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupWarning {
    pub group_id: String,
    pub name: String,
    pub industry: String,
    pub value_tier: String,
    pub size: String,
    pub branch_id: String,
    pub manager_id: Option<String>,
    pub status: String,
    pub members_now: i64,
    pub score: u32,
    /// `red`, `yellow`, `blue`, or none below blue (and for lost groups).
    pub level: Option<String>,
    /// Strongest first.
    pub reasons: Vec<GroupReason>,
    /// Members' fees and group products a month.
    pub monthly_revenue: f64,
    /// Expected months with us, from the members' leaving rate of the last twelve months.
    pub expected_months: f64,
    /// Monthly revenue × expected months.
    pub lifetime_value: f64,
    pub contract_end: Option<NaiveDate>,
    pub last_visit: Option<NaiveDate>,
}

/// The size band of a group with `members` current members.
#[must_use]
pub fn size_band(members: i64) -> &'static str {
    SIZES
        .iter()
        .find(|(_, _, from)| members >= *from)
        .map_or("none", |(code, _, _)| code)
}

fn reason_name(code: &str) -> &'static str {
    REASONS
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("", |(_, zh)| zh)
}

/// Scores one group.
#[must_use]
pub fn assess(s: &GroupSignals, config: &GroupConfig, as_of: NaiveDate) -> GroupWarning {
    let card = &config.scorecard;
    let ratio = |a: i64, b: i64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
    let mut reasons: Vec<(&str, u32)> = Vec::new();
    reasons.push((
        "members_leaving",
        step_points(ratio(s.left_3m, s.members_at_start), &card.members_left),
    ));
    reasons.push((
        "competitor_contact",
        step_points(
            ratio(s.competitor_3m, s.members_now),
            &card.competitor_contact,
        ),
    ));
    let fall = if s.fee_before > 0.0 {
        1.0 - s.fee_recent / s.fee_before
    } else {
        0.0
    };
    reasons.push(("revenue_falling", step_points(fall, &card.revenue_fall)));
    reasons.push((
        "members_at_risk",
        s.member_risk
            .map_or(0, |p| step_points(p, &card.member_risk)),
    ));
    if s.decision_maker_signal {
        reasons.push(("decision_maker", card.decision_maker));
    }
    if s.key_person_signal {
        reasons.push(("key_person", card.key_person));
    }
    if let Some(end) = s.contract_end
        && end >= as_of
    {
        let months = (end - as_of).num_days() as f64 / 30.44;
        reasons.push((
            "contract_expiry",
            within_points(months, &card.contract_ends),
        ));
    }
    if s.products_cancelled_6m > 0 {
        reasons.push(("product_cancelled", card.product_cancelled));
    }
    if s.competitor_visits_3m > 0 {
        reasons.push(("competitor_offer", card.visit_competitor));
    }
    if s.complaint_visits_3m > 0 {
        reasons.push(("complaint", card.visit_complaint));
    }
    let interval = i64::from(config.visits.interval(&s.value_tier));
    let neglected = s
        .last_visit
        .is_none_or(|v| (as_of - v).num_days() > 2 * interval);
    if neglected && s.members_now > 0 {
        reasons.push(("neglected", card.neglected));
    }
    reasons.retain(|(_, p)| *p > 0);
    // Strongest first; the scorecard's order breaks ties so reasons are stable.
    reasons.sort_by_key(|(code, points)| {
        (
            std::cmp::Reverse(*points),
            REASONS.iter().position(|(c, _)| c == code),
        )
    });
    let score: u32 = reasons.iter().map(|(_, p)| p).sum();
    let lost = s.status == "lost";
    let level = if lost {
        None
    } else if score >= card.red {
        Some("red")
    } else if score >= card.yellow {
        Some("yellow")
    } else if score >= card.blue {
        Some("blue")
    } else {
        None
    };

    let monthly_revenue = if lost {
        0.0
    } else {
        s.fee_recent + s.product_fee
    };
    let hazard = if s.members_year_ago > 0 {
        s.left_12m as f64 / s.members_year_ago as f64 / 12.0
    } else {
        0.0
    };
    let expected_months = if lost {
        0.0
    } else {
        (1.0 / hazard.max(1.0 / MAX_LIFETIME_MONTHS)).min(MAX_LIFETIME_MONTHS)
    };
    GroupWarning {
        group_id: s.group_id.clone(),
        name: s.name.clone(),
        industry: s.industry.clone(),
        value_tier: s.value_tier.clone(),
        size: size_band(s.members_now).to_owned(),
        branch_id: s.branch_id.clone(),
        manager_id: s.manager_id.clone(),
        status: s.status.clone(),
        members_now: s.members_now,
        score,
        level: level.map(str::to_owned),
        reasons: reasons
            .into_iter()
            .map(|(code, points)| GroupReason {
                code: code.to_owned(),
                name_zh: reason_name(code).to_owned(),
                points,
            })
            .collect(),
        monthly_revenue: round2(monthly_revenue),
        expected_months: round2(expected_months),
        lifetime_value: round2(monthly_revenue * expected_months),
        contract_end: s.contract_end,
        last_visit: s.last_visit,
    }
}

pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Groups by industry and size band: how many, how many warned, and their value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupSegment {
    pub groups: u64,
    pub warned: u64,
    pub red: u64,
    pub monthly_revenue: f64,
    pub lifetime_value: f64,
}

/// The active groups' segments, keyed `industry/size` (`C/medium`).
#[must_use]
pub fn segments(warnings: &[GroupWarning]) -> BTreeMap<String, GroupSegment> {
    let mut out: BTreeMap<String, GroupSegment> = BTreeMap::new();
    for w in warnings.iter().filter(|w| w.status == "active") {
        let s = out.entry(format!("{}/{}", w.industry, w.size)).or_default();
        s.groups += 1;
        s.warned += u64::from(w.level.is_some());
        s.red += u64::from(w.level.as_deref() == Some("red"));
        s.monthly_revenue = round2(s.monthly_revenue + w.monthly_revenue);
        s.lifetime_value = round2(s.lifetime_value + w.lifetime_value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet() -> GroupSignals {
        GroupSignals {
            group_id: "G1".into(),
            name: "测试集团".into(),
            industry: "C".into(),
            employees: Some(120),
            value_tier: "B".into(),
            branch_id: "HZ01".into(),
            manager_id: Some("HZ01-M01".into()),
            contract_end: None,
            status: "active".into(),
            members: 20,
            members_at_start: 20,
            members_now: 20,
            left_3m: 0,
            left_12m: 1,
            members_year_ago: 20,
            competitor_3m: 0,
            fee_recent: 2000.0,
            fee_before: 2000.0,
            member_risk: Some(0.02),
            decision_maker_signal: false,
            key_person_signal: false,
            key_people: 2,
            products_active: 1,
            product_fee: 300.0,
            products_cancelled_6m: 0,
            last_visit: NaiveDate::from_ymd_opt(2026, 10, 1),
            visits_3m: 2,
            competitor_visits_3m: 0,
            complaint_visits_3m: 0,
        }
    }

    #[test]
    fn a_quiet_group_is_not_warned_and_a_leaving_one_is_red_with_its_reasons() {
        let as_of = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let config = GroupConfig::default();
        let w = assess(&quiet(), &config, as_of);
        assert_eq!((w.score, w.level.as_deref()), (0, None));
        assert_eq!(w.size, "medium");
        assert!((w.monthly_revenue - 2300.0).abs() < 1e-9);
        // One of twenty left in a year: a 1/240 monthly hazard, capped at 60 months.
        assert!((w.expected_months - 60.0).abs() < 1e-12);

        let mut s = quiet();
        s.left_3m = 5;
        s.decision_maker_signal = true;
        s.products_cancelled_6m = 1;
        s.fee_recent = 1500.0;
        let w = assess(&s, &config, as_of);
        assert_eq!(w.level.as_deref(), Some("red"));
        let codes: Vec<&str> = w.reasons.iter().map(|r| r.code.as_str()).collect();
        assert_eq!(
            codes,
            [
                "members_leaving",
                "decision_maker",
                "revenue_falling",
                "product_cancelled"
            ]
        );
        assert_eq!(w.score, 25 + 25 + 15 + 15);
        assert_eq!(w.reasons[0].name_zh, "成员离网");
    }

    #[test]
    fn lost_groups_carry_no_level_and_no_value() {
        let mut s = quiet();
        s.status = "lost".into();
        s.left_3m = 20;
        let w = assess(
            &s,
            &GroupConfig::default(),
            NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        );
        assert_eq!(w.level, None);
        assert!((w.lifetime_value - 0.0).abs() < 1e-12);
    }

    #[test]
    fn an_ending_agreement_and_a_long_silence_count() {
        let as_of = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let mut s = quiet();
        s.contract_end = NaiveDate::from_ymd_opt(2027, 1, 15);
        s.last_visit = NaiveDate::from_ymd_opt(2026, 6, 1);
        let w = assess(&s, &GroupConfig::default(), as_of);
        let codes: Vec<&str> = w.reasons.iter().map(|r| r.code.as_str()).collect();
        assert_eq!(codes, ["contract_expiry", "neglected"]);
        assert_eq!(w.score, 12 + 8);
        assert_eq!(w.level.as_deref(), Some("blue"));
    }
}

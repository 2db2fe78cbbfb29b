//! Visit plans (拜访计划): when each account manager must next see each group. Routine visits
//! follow the group's value tier; a warning brings the next visit forward; an ending agreement
//! gets a renewal visit ahead of its end.

use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::config::VisitRules;
use crate::risk::GroupWarning;

/// Why a visit is planned.
pub const PURPOSES: &[(&str, &str)] = &[
    ("warning", "预警拜访"),
    ("renewal", "续约拜访"),
    ("routine", "例行拜访"),
];

/// One planned visit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedVisit {
    pub group_id: String,
    pub group_name: String,
    pub manager_id: Option<String>,
    pub branch_id: String,
    pub value_tier: String,
    pub due_date: NaiveDate,
    /// `warning`, `renewal` or `routine`.
    pub purpose: String,
    pub level: Option<String>,
    /// Days the routine visit was already overdue on the as-of date.
    pub overdue_days: i64,
    /// The group's reasons, strongest first.
    pub reasons: Vec<String>,
    pub lifetime_value: f64,
}

/// The visits due from `as_of` to the end of the rules' horizon, for every active group, soonest
/// first (the most urgent level, then the most valuable group, first among equal days).
#[must_use]
pub fn plan(warnings: &[GroupWarning], rules: &VisitRules, as_of: NaiveDate) -> Vec<PlannedVisit> {
    let end = as_of + Duration::days(i64::from(rules.horizon_days));
    let mut out = Vec::new();
    for w in warnings.iter().filter(|w| w.status == "active") {
        let interval = Duration::days(i64::from(rules.interval(&w.value_tier)));
        let routine_due = w.last_visit.map_or(as_of, |v| v + interval);
        let overdue_days = (as_of - routine_due).num_days().max(0);
        let mut due = routine_due.max(as_of);
        let mut purpose = "routine";
        let within = match w.level.as_deref() {
            Some("red") => Some(rules.red_within_days),
            Some("yellow") => Some(rules.yellow_within_days),
            _ => None,
        };
        if let Some(days) = within {
            let by = as_of + Duration::days(i64::from(days));
            if by <= due {
                due = by;
            }
            purpose = "warning";
        }
        let mut visits: Vec<(NaiveDate, &str)> = Vec::new();
        while due <= end {
            visits.push((due, purpose));
            // The visit made resets the routine clock.
            due += interval;
            purpose = "routine";
        }
        if let Some(contract_end) = w.contract_end
            && contract_end >= as_of
            && (contract_end - as_of).num_days() <= i64::from(rules.renewal_window_days)
        {
            let target =
                (contract_end - Duration::days(i64::from(rules.renewal_lead_days))).max(as_of);
            // A visit planned within a week of the renewal date carries the renewal instead.
            match visits
                .iter_mut()
                .find(|(d, _)| (*d - target).num_days().abs() <= 7)
            {
                Some(visit) => {
                    if visit.1 == "routine" {
                        visit.1 = "renewal";
                    }
                }
                None => {
                    if target <= end {
                        visits.push((target, "renewal"));
                    }
                }
            }
        }
        for (due_date, purpose) in visits {
            out.push(PlannedVisit {
                group_id: w.group_id.clone(),
                group_name: w.name.clone(),
                manager_id: w.manager_id.clone(),
                branch_id: w.branch_id.clone(),
                value_tier: w.value_tier.clone(),
                due_date,
                purpose: purpose.to_owned(),
                level: w.level.clone(),
                overdue_days,
                reasons: w.reasons.iter().map(|r| r.code.clone()).collect(),
                lifetime_value: w.lifetime_value,
            });
        }
    }
    let urgency = |level: &Option<String>| match level.as_deref() {
        Some("red") => 0,
        Some("yellow") => 1,
        Some("blue") => 2,
        _ => 3,
    };
    out.sort_by(|a, b| {
        a.due_date
            .cmp(&b.due_date)
            .then(urgency(&a.level).cmp(&urgency(&b.level)))
            .then(b.lifetime_value.total_cmp(&a.lifetime_value))
            .then(a.group_id.cmp(&b.group_id))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::risk::GroupReason;

    fn group(id: &str, tier: &str, last: Option<NaiveDate>, level: Option<&str>) -> GroupWarning {
        GroupWarning {
            group_id: id.into(),
            name: format!("{id} 公司"),
            industry: "C".into(),
            value_tier: tier.into(),
            size: "small".into(),
            branch_id: "HZ01".into(),
            manager_id: Some("HZ01-M01".into()),
            status: "active".into(),
            members_now: 5,
            score: 0,
            level: level.map(str::to_owned),
            reasons: level
                .map(|_| GroupReason {
                    code: "members_leaving".into(),
                    name_zh: "成员离网".into(),
                    points: 25,
                })
                .into_iter()
                .collect(),
            monthly_revenue: 100.0,
            expected_months: 60.0,
            lifetime_value: 6000.0,
            contract_end: None,
            last_visit: last,
        }
    }

    fn day(m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, m, d).unwrap()
    }

    #[test]
    fn routine_visits_keep_each_tiers_interval() {
        let as_of = day(11, 1);
        let rules = VisitRules {
            horizon_days: 90,
            ..VisitRules::default()
        };
        let plan = plan(
            &[
                group("GA", "A", Some(day(10, 20)), None),
                group("GC", "C", Some(day(10, 20)), None),
                group("GN", "B", None, None),
            ],
            &rules,
            as_of,
        );
        let dates = |id: &str| -> Vec<NaiveDate> {
            plan.iter()
                .filter(|v| v.group_id == id)
                .map(|v| v.due_date)
                .collect()
        };
        assert_eq!(
            dates("GA"),
            [day(11, 19), day(12, 19), day(10, 20) + Duration::days(90)]
        );
        // C: every 90 days.
        assert_eq!(dates("GC"), [day(10, 20) + Duration::days(90)]);
        // Never visited: due at once, then every 60 days.
        assert_eq!(dates("GN"), [as_of, as_of + Duration::days(60)]);
        assert!(plan.windows(2).all(|w| w[0].due_date <= w[1].due_date));
    }

    #[test]
    fn warnings_bring_the_visit_forward_and_agreements_get_a_renewal_visit() {
        let as_of = day(11, 1);
        let rules = VisitRules::default();
        let mut renewing = group("GR", "D", Some(day(10, 1)), None);
        renewing.contract_end = Some(day(12, 20));
        let plan = plan(
            &[
                group("GW", "C", Some(day(10, 25)), Some("red")),
                group("GY", "C", Some(day(10, 25)), Some("yellow")),
                renewing,
            ],
            &rules,
            as_of,
        );
        let first = |id: &str| plan.iter().find(|v| v.group_id == id).unwrap();
        assert_eq!(
            (first("GW").due_date, first("GW").purpose.as_str()),
            (day(11, 8), "warning")
        );
        assert_eq!(first("GY").due_date, day(11, 15));
        assert_eq!(plan[0].group_id, "GR", "the renewal is due at once");
        assert_eq!(
            (first("GR").due_date, first("GR").purpose.as_str()),
            (as_of, "renewal")
        );
        assert_eq!(first("GW").reasons, ["members_leaving"]);
    }

    #[test]
    fn lost_groups_are_not_visited() {
        let mut lost = group("GL", "A", None, None);
        lost.status = "lost".into();
        assert!(plan(&[lost], &VisitRules::default(), day(11, 1)).is_empty());
    }
}

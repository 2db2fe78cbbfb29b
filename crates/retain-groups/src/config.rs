//! Group-customer settings: the group scorecard, the visit frequencies and the period results are
//! measured over. A workspace overrides them in `<workspace>/groups.toml`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupConfig {
    pub scorecard: Scorecard,
    pub visits: VisitRules,
    pub performance: PerformanceConfig,
}

/// Points a group earns for each signal, and the points that make a level. A signal's points
/// are the highest step it reaches; a group's score is their sum.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scorecard {
    /// Share of the members at the start of the last three months who left since:
    /// `[[share, points], …]`.
    pub members_left: Vec<(f64, u32)>,
    /// Share of current members who called a competitor's service line or forwarded calls to a
    /// competitor's number in the last three months.
    pub competitor_contact: Vec<(f64, u32)>,
    /// Fall of the members' fees, last three months against the three before (0.2 = −20%).
    pub revenue_fall: Vec<(f64, u32)>,
    /// Mean churn probability of the current members, from the newest scores.
    pub member_risk: Vec<(f64, u32)>,
    /// The decision maker's own subscription shows churn signals (competitor contact, a stop
    /// request, a port-out or cancellation) in the last three months.
    pub decision_maker: u32,
    /// Another key person's subscription shows them.
    pub key_person: u32,
    /// The group agreement ends within this many months: `[[months, points], …]`.
    pub contract_ends: Vec<(f64, u32)>,
    /// A group product was cancelled in the last six months.
    pub product_cancelled: u32,
    /// A visit in the last three months found a competitor's offer on the table.
    pub visit_competitor: u32,
    /// A visit in the last three months recorded a complaint.
    pub visit_complaint: u32,
    /// No visit for twice the group's visit interval.
    pub neglected: u32,
    /// Points from which a group is red, yellow and blue.
    pub red: u32,
    pub yellow: u32,
    pub blue: u32,
}

impl Default for Scorecard {
    fn default() -> Self {
        Self {
            members_left: vec![(0.05, 8), (0.1, 15), (0.2, 25)],
            competitor_contact: vec![(0.1, 8), (0.2, 15), (0.35, 20)],
            revenue_fall: vec![(0.1, 8), (0.2, 15)],
            member_risk: vec![(0.15, 8), (0.3, 15)],
            decision_maker: 25,
            key_person: 12,
            contract_ends: vec![(6.0, 6), (3.0, 12)],
            product_cancelled: 15,
            visit_competitor: 20,
            visit_complaint: 10,
            neglected: 8,
            red: 50,
            yellow: 30,
            blue: 15,
        }
    }
}

/// How often a manager must see each group, and how fast a warning or an ending agreement
/// brings the next visit forward.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VisitRules {
    /// Days between routine visits for value tiers A, B, C and D.
    pub interval_days: [u32; 4],
    /// A red group is visited within this many days.
    pub red_within_days: u32,
    /// A yellow group within this many days.
    pub yellow_within_days: u32,
    /// An agreement ending within this many days gets a renewal visit …
    pub renewal_window_days: u32,
    /// … this many days before it ends.
    pub renewal_lead_days: u32,
    /// Days ahead a visit plan covers.
    pub horizon_days: u32,
}

impl Default for VisitRules {
    fn default() -> Self {
        Self {
            interval_days: [30, 60, 90, 180],
            red_within_days: 7,
            yellow_within_days: 14,
            renewal_window_days: 120,
            renewal_lead_days: 60,
            horizon_days: 30,
        }
    }
}

impl VisitRules {
    /// Days between routine visits for a value tier (`A`–`D`; anything else as `D`).
    #[must_use]
    pub fn interval(&self, tier: &str) -> u32 {
        match tier {
            "A" => self.interval_days[0],
            "B" => self.interval_days[1],
            "C" => self.interval_days[2],
            _ => self.interval_days[3],
        }
    }
}

/// The period managers' results are measured over.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PerformanceConfig {
    /// Months before the as-of date.
    pub months: u32,
    /// Every manager's targets, unless a line of `manager` sets their own for the period.
    pub targets: Targets,
    /// Targets of one manager for one period (`period` is the as-of month, `YYYY-MM`).
    pub manager: Vec<ManagerTargets>,
}

impl Default for PerformanceConfig {
    fn default() -> Self {
        Self {
            months: 3,
            targets: Targets::default(),
            manager: Vec::new(),
        }
    }
}

/// What a manager is measured against (考核指标).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Targets {
    /// Share of the base still with us at the period's end.
    pub retention_rate: f64,
    /// Visits that met the plan over the visits planned.
    pub visit_coverage: f64,
    /// Callbacks recorded by the work order's due date over the callbacks recorded.
    pub callbacks_on_time: f64,
}

impl Default for Targets {
    fn default() -> Self {
        Self {
            retention_rate: 0.97,
            visit_coverage: 0.8,
            callbacks_on_time: 0.9,
        }
    }
}

/// One manager's own targets for one period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagerTargets {
    pub manager_id: String,
    /// The as-of month the period ends before, `YYYY-MM`.
    pub period: String,
    #[serde(flatten)]
    pub targets: Targets,
}

impl PerformanceConfig {
    /// The targets of `manager_id` for the period ending before `as_of`.
    #[must_use]
    pub fn targets_for(&self, manager_id: &str, as_of: chrono::NaiveDate) -> Targets {
        let period = as_of.format("%Y-%m").to_string();
        self.manager
            .iter()
            .find(|m| m.manager_id == manager_id && m.period == period)
            .map_or(self.targets, |m| m.targets)
    }
}

impl GroupConfig {
    /// `<workspace>/groups.toml` when present, else the defaults.
    pub fn for_workspace(workspace: &retain_data::Workspace) -> Result<GroupConfig> {
        let path = workspace.root().join("groups.toml");
        if !path.exists() {
            return Ok(GroupConfig::default());
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let config: GroupConfig =
            toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        config
            .check()
            .map_err(|m| Error::Config(format!("{}: {m}", path.display())))?;
        Ok(config)
    }

    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        let s = &self.scorecard;
        if !(s.blue <= s.yellow && s.yellow <= s.red) || s.blue == 0 {
            return Err("scorecard: need 0 < blue <= yellow <= red".into());
        }
        for (name, steps) in [
            ("members_left", &s.members_left),
            ("competitor_contact", &s.competitor_contact),
            ("revenue_fall", &s.revenue_fall),
            ("member_risk", &s.member_risk),
            ("contract_ends", &s.contract_ends),
        ] {
            if steps.len() > 16 || steps.iter().any(|(x, _)| !x.is_finite() || *x < 0.0) {
                return Err(format!(
                    "scorecard.{name}: at most 16 steps of non-negative numbers"
                ));
            }
        }
        let v = &self.visits;
        if v.interval_days.iter().any(|d| !(1..=3650).contains(d)) {
            return Err("visits.interval_days: each between 1 and 3650".into());
        }
        if v.horizon_days == 0 || v.horizon_days > 366 {
            return Err("visits.horizon_days: between 1 and 366".into());
        }
        if !(1..=24).contains(&self.performance.months) {
            return Err("performance.months: between 1 and 24".into());
        }
        let p = &self.performance;
        if p.manager.len() > 100_000 {
            return Err("performance.manager: at most 100,000 lines".into());
        }
        for (what, t) in std::iter::once(("performance.targets".to_owned(), &p.targets)).chain(
            p.manager.iter().map(|m| {
                (
                    format!("performance.manager {} {}", m.manager_id, m.period),
                    &m.targets,
                )
            }),
        ) {
            for (name, v) in [
                ("retention_rate", t.retention_rate),
                ("visit_coverage", t.visit_coverage),
                ("callbacks_on_time", t.callbacks_on_time),
            ] {
                if !(0.0..=1.0).contains(&v) {
                    return Err(format!("{what}: {name} must be a share from 0 to 1"));
                }
            }
        }
        Ok(())
    }
}

/// The points of the highest step `value` reaches (`steps` as `[threshold, points]`, reached
/// when `value >= threshold`).
pub(crate) fn step_points(value: f64, steps: &[(f64, u32)]) -> u32 {
    steps
        .iter()
        .filter(|(threshold, _)| value >= *threshold)
        .map(|(_, points)| *points)
        .max()
        .unwrap_or(0)
}

/// The points of the tightest step `value` falls within (`value <= threshold`), for signals
/// where less is worse (months to the agreement's end).
pub(crate) fn within_points(value: f64, steps: &[(f64, u32)]) -> u32 {
    steps
        .iter()
        .filter(|(threshold, _)| value <= *threshold)
        .map(|(_, points)| *points)
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_take_the_highest_reached() {
        let steps = [(0.05, 8), (0.1, 15), (0.2, 25)];
        assert_eq!(step_points(0.0, &steps), 0);
        assert_eq!(step_points(0.05, &steps), 8);
        assert_eq!(step_points(0.15, &steps), 15);
        assert_eq!(step_points(0.9, &steps), 25);
        assert_eq!(within_points(2.0, &[(6.0, 6), (3.0, 12)]), 12);
        assert_eq!(within_points(5.0, &[(6.0, 6), (3.0, 12)]), 6);
        assert_eq!(within_points(7.0, &[(6.0, 6), (3.0, 12)]), 0);
    }

    #[test]
    fn settings_are_checked() {
        assert!(GroupConfig::default().check().is_ok());
        let mut c = GroupConfig::default();
        c.scorecard.blue = 60;
        assert!(c.check().is_err());
        let mut c = GroupConfig::default();
        c.visits.interval_days[2] = 0;
        assert!(c.check().is_err());
        let bad: std::result::Result<GroupConfig, _> = toml::from_str("[visits]\nhorizon = 3\n");
        assert!(bad.is_err(), "unknown keys are refused");
        let c: GroupConfig = toml::from_str(
            "[performance.targets]\nretention_rate = 0.95\n\n[[performance.manager]]\n\
             manager_id = \"NJ01-M01\"\nperiod = \"2026-11\"\nretention_rate = 0.99\n",
        )
        .unwrap();
        assert!(c.check().is_ok());
        let nov = chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let dec = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let p = &c.performance;
        assert!((p.targets_for("NJ01-M01", nov).retention_rate - 0.99).abs() < 1e-12);
        assert!((p.targets_for("NJ01-M01", dec).retention_rate - 0.95).abs() < 1e-12);
        assert!((p.targets_for("NJ01-M02", nov).visit_coverage - 0.8).abs() < 1e-12);
        let mut c = GroupConfig::default();
        c.performance.targets.visit_coverage = 1.5;
        assert!(c.check().is_err());
    }
}

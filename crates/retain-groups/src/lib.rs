//! Group customers (集团客户) and the account managers who keep them (客户经理).
//!
//! - **Group warning and value** ([`run`]): one SQL plan gathers each group's signals — members
//!   leaving, competitor contact, falling fees, the members' churn scores, the key people's own
//!   churn signals, the agreement's end, cancelled group products, what visits found — and a
//!   configurable scorecard (`groups.toml`) gives each group points, a red/yellow/blue level and
//!   its reasons, with its lifetime value and its segment (industry × size).
//! - **Visit plans** ([`visits::plan`]): routine visits at each value tier's frequency, brought
//!   forward by warnings, and renewal visits ahead of an agreement's end.
//! - **Results** ([`managers::performance`]): per manager and branch, the retention of their
//!   base, visits against plan, work orders, callbacks and saved value.
//!
//! ```no_run
//! # async fn f() -> retain_groups::Result<()> {
//! let workspace = retain_data::Workspace::open("op".as_ref())?;
//! let ctx = retain_features::session(&workspace).await?;
//! let config = retain_groups::GroupConfig::for_workspace(&workspace)?;
//! let as_of = retain_features::default_as_of(&ctx, retain_features::Cadence::Monthly).await?;
//! let run = retain_groups::run(&ctx, &workspace, &config, as_of, &[]).await?;
//! println!("{} red groups", run.report.red);
//! # Ok(()) }
//! ```

mod config;
mod error;
pub mod managers;
mod risk;
mod signals;
mod truth;
mod view;
pub mod visits;
mod workbook;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use datafusion::execution::context::SessionContext;
use retain_data::Workspace;
use serde::{Deserialize, Serialize};

pub use config::{GroupConfig, ManagerTargets, PerformanceConfig, Scorecard, Targets, VisitRules};
pub use error::{Error, Result};
pub use managers::{BranchResult, ManagerResult, PerformanceReport, performance};
pub use risk::{
    GroupReason, GroupSegment, GroupWarning, LEVELS, REASONS, SIZES, assess, segments, size_band,
};
pub use signals::{GroupSignals, group_signals};
pub use truth::TruthCheck;
pub use view::{GroupView, MAX_MEMBERS, group_view};
pub use visits::{PURPOSES, PlannedVisit};
pub use workbook::write_workbook;

/// The directory of group warning lists and visit plans.
pub const DIR: &str = "groups";
/// The visit plans, under [`DIR`].
pub const VISITS_DIR: &str = "visits";
/// The group report under `reports/`.
pub const REPORT: &str = "groups.json";

/// The `retain groups --json` object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupsReport {
    pub as_of: NaiveDate,
    /// Active groups.
    pub groups: u64,
    /// Groups that left as a whole before the as-of date.
    pub lost: u64,
    pub red: u64,
    pub yellow: u64,
    pub blue: u64,
    /// On the synthetic operator: how group risk ranks the groups that truly leave.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auc: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_decile_lift: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truth: Option<TruthCheck>,
    /// Warned groups by their strongest reason.
    pub by_reason: BTreeMap<String, u64>,
    /// Active groups by `industry/size`.
    pub segments: BTreeMap<String, GroupSegment>,
    /// Σ lifetime value of the active groups, and of the red and yellow ones.
    pub lifetime_value: f64,
    pub lifetime_value_at_risk: f64,
    pub visits_planned: u64,
    #[serde(default, skip_serializing_if = "retain_data::is_empty_path")]
    pub list_file: PathBuf,
    #[serde(default, skip_serializing_if = "retain_data::is_empty_path")]
    pub visits_file: PathBuf,
}

/// A group run's results: the report, every group's warning, and the visit plan.
#[derive(Debug, Clone)]
pub struct GroupRun {
    pub report: GroupsReport,
    pub warnings: Vec<GroupWarning>,
    pub visits: Vec<PlannedVisit>,
}

/// Warns every group as of `as_of`, plans the visits, and writes the list, the plan and the
/// report into the workspace. `recorded`: the visits recorded through retain (the store's), which
/// count beside the visits loaded as a table.
pub async fn run(
    ctx: &SessionContext,
    workspace: &Workspace,
    config: &GroupConfig,
    as_of: NaiveDate,
    recorded: &[retain_store::VisitRecord],
) -> Result<GroupRun> {
    let mut signals = group_signals(ctx, workspace, as_of).await?;
    signals::add_recorded(&mut signals, recorded, as_of);
    let mut warnings: Vec<GroupWarning> =
        signals.iter().map(|s| assess(s, config, as_of)).collect();
    // The list reads most urgent first: the active groups by score, then value; the lost last.
    warnings.sort_by(|a, b| {
        (a.status == "lost")
            .cmp(&(b.status == "lost"))
            .then(b.score.cmp(&a.score))
            .then(b.lifetime_value.total_cmp(&a.lifetime_value))
            .then(a.group_id.cmp(&b.group_id))
    });
    let visits = visits::plan(&warnings, &config.visits, as_of);
    let truth = truth::check(&workspace.truth_dir(), &warnings, as_of)?;

    let count = |level: &str| {
        warnings
            .iter()
            .filter(|w| w.level.as_deref() == Some(level))
            .count() as u64
    };
    let mut by_reason = BTreeMap::new();
    for w in warnings.iter().filter(|w| w.level.is_some()) {
        if let Some(r) = w.reasons.first() {
            *by_reason.entry(r.code.clone()).or_insert(0) += 1;
        }
    }
    let active = || warnings.iter().filter(|w| w.status == "active");
    let dir = workspace.root().join(DIR);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let list_file = dir.join(format!("{as_of}.csv"));
    write_list(&list_file, &warnings)?;
    let visits_dir = dir.join(VISITS_DIR);
    std::fs::create_dir_all(&visits_dir)
        .map_err(|e| Error::io(format!("creating {}", visits_dir.display()), e))?;
    let visits_file = visits_dir.join(format!("{as_of}.csv"));
    write_visits(&visits_file, &visits)?;
    let report = GroupsReport {
        as_of,
        groups: active().count() as u64,
        lost: warnings.iter().filter(|w| w.status == "lost").count() as u64,
        red: count("red"),
        yellow: count("yellow"),
        blue: count("blue"),
        auc: truth.as_ref().map(|t| t.auc),
        top_decile_lift: truth.as_ref().map(|t| t.top_decile_lift),
        truth,
        by_reason,
        segments: segments(&warnings),
        lifetime_value: risk::round2(active().map(|w| w.lifetime_value).sum()),
        lifetime_value_at_risk: risk::round2(
            active()
                .filter(|w| matches!(w.level.as_deref(), Some("red" | "yellow")))
                .map(|w| w.lifetime_value)
                .sum(),
        ),
        visits_planned: visits.len() as u64,
        list_file,
        visits_file,
    };
    let reports = retain_features::outputs::reports_dir(workspace);
    retain_data::write_json(&reports.join(REPORT), &report)?;
    Ok(GroupRun {
        report,
        warnings,
        visits,
    })
}

/// The newest group report, if groups have been warned.
pub fn latest_report(workspace: &Workspace) -> Result<Option<GroupsReport>> {
    let path = retain_features::outputs::reports_dir(workspace).join(REPORT);
    Ok(retain_data::read_json(&path)?)
}

/// The longest visit note, in characters.
pub const MAX_NOTE_CHARS: usize = 512;

/// Checks a visit to record: a known channel and outcome, a note of at most
/// [`MAX_NOTE_CHARS`], and a day within the last year and not after `today`.
pub fn check_visit(v: &retain_store::NewVisit, today: NaiveDate) -> Result<NaiveDate> {
    let bad = |m: String| Err(Error::BadRequest(m));
    if !retain_data::VISIT_CHANNELS.contains(&v.channel.as_str()) {
        return bad(format!(
            "channel {:?} is not one of {}",
            v.channel,
            retain_data::VISIT_CHANNELS.join(", ")
        ));
    }
    if !retain_data::VISIT_OUTCOMES.contains(&v.outcome.as_str()) {
        return bad(format!(
            "outcome {:?} is not one of {}",
            v.outcome,
            retain_data::VISIT_OUTCOMES.join(", ")
        ));
    }
    if v.notes.chars().count() > MAX_NOTE_CHARS {
        return bad(format!("notes are longer than {MAX_NOTE_CHARS} characters"));
    }
    let Ok(day) = v.visit_date.parse::<NaiveDate>() else {
        return bad(format!("visit_date {:?} is not YYYY-MM-DD", v.visit_date));
    };
    if day > today || day < today - chrono::Duration::days(366) {
        return bad(format!(
            "visit_date {day} is not within the last year up to today ({today})"
        ));
    }
    Ok(day)
}

/// The newest group list: its as-of date and every group, most urgent first.
pub fn latest_list(workspace: &Workspace) -> Result<Option<(NaiveDate, Vec<GroupWarning>)>> {
    read_newest(&workspace.root().join(DIR), "a group list", |r| {
        let points = r.list(12);
        let reasons = r
            .list(11)
            .iter()
            .enumerate()
            .map(|(i, code)| GroupReason {
                code: (*code).to_owned(),
                name_zh: REASONS
                    .iter()
                    .find(|(c, _)| c == code)
                    .map_or("", |(_, zh)| zh)
                    .to_owned(),
                points: points.get(i).and_then(|p| p.parse().ok()).unwrap_or(0),
            })
            .collect();
        Ok(GroupWarning {
            group_id: r.text(0),
            name: r.text(1),
            industry: r.text(2),
            value_tier: r.text(3),
            size: r.text(4),
            branch_id: r.text(5),
            manager_id: r.optional(6),
            status: r.text(7),
            members_now: r.parse(8)?,
            score: r.parse(9)?,
            level: r.optional(10),
            reasons,
            monthly_revenue: r.parse(13)?,
            expected_months: r.parse(14)?,
            lifetime_value: r.parse(15)?,
            contract_end: r.date(16)?,
            last_visit: r.date(17)?,
        })
    })
}

/// The newest visit plan.
pub fn latest_visits(workspace: &Workspace) -> Result<Option<(NaiveDate, Vec<PlannedVisit>)>> {
    read_newest(
        &workspace.root().join(DIR).join(VISITS_DIR),
        "a visit plan",
        |r| {
            Ok(PlannedVisit {
                due_date: r.parse(0)?,
                group_id: r.text(1),
                group_name: r.text(2),
                manager_id: r.optional(3),
                branch_id: r.text(4),
                value_tier: r.text(5),
                purpose: r.text(6),
                level: r.optional(7),
                overdue_days: r.parse(8)?,
                reasons: r.list(9).into_iter().map(str::to_owned).collect(),
                lifetime_value: r.parse(10)?,
            })
        },
    )
}

/// One record of a list this crate wrote, whose errors name the file.
struct Row<'a> {
    record: csv::StringRecord,
    path: &'a Path,
    what: &'static str,
}

impl Row<'_> {
    fn bad(&self, e: impl std::fmt::Display) -> Error {
        Error::BadRequest(format!("{} is not {}: {e}", self.path.display(), self.what))
    }

    fn text(&self, i: usize) -> String {
        self.record.get(i).unwrap_or_default().to_owned()
    }

    fn optional(&self, i: usize) -> Option<String> {
        Some(self.text(i)).filter(|v| !v.is_empty())
    }

    fn parse<T: std::str::FromStr>(&self, i: usize) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        self.record
            .get(i)
            .unwrap_or_default()
            .parse()
            .map_err(|e| self.bad(e))
    }

    fn date(&self, i: usize) -> Result<Option<NaiveDate>> {
        self.optional(i)
            .map(|d| d.parse().map_err(|e| self.bad(e)))
            .transpose()
    }

    /// A `;`-separated cell.
    fn list(&self, i: usize) -> Vec<&str> {
        self.record
            .get(i)
            .unwrap_or_default()
            .split(';')
            .filter(|c| !c.is_empty())
            .collect()
    }
}

/// The newest file of `dir`, named by its as-of date, parsed a record at a time.
fn read_newest<T>(
    dir: &Path,
    what: &'static str,
    parse: impl Fn(&Row<'_>) -> Result<T>,
) -> Result<Option<(NaiveDate, Vec<T>)>> {
    let Some(path) = retain_data::newest_file(dir, "csv") else {
        return Ok(None);
    };
    let as_of = date_of(&path)?;
    let bad = |e: csv::Error| Error::BadRequest(format!("{} is not {what}: {e}", path.display()));
    let mut reader = csv::Reader::from_path(&path).map_err(bad)?;
    let mut out = Vec::new();
    for record in reader.records() {
        let row = Row {
            record: record.map_err(bad)?,
            path: &path,
            what,
        };
        out.push(parse(&row)?);
    }
    Ok(Some((as_of, out)))
}

/// The as-of date a list or plan is named after.
fn date_of(path: &Path) -> Result<NaiveDate> {
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::BadRequest(format!("{} is not named by a date", path.display())))
}

fn csv_error(path: &Path) -> impl Fn(csv::Error) -> std::io::Error + '_ {
    move |e| std::io::Error::other(format!("{}: {e}", path.display()))
}

fn write_list(path: &Path, warnings: &[GroupWarning]) -> Result<()> {
    retain_data::write_atomically_with(path, |w| {
        w.write_all(retain_data::BOM)?;
        let mut out = csv::Writer::from_writer(w);
        out.write_record([
            "group_id",
            "name",
            "industry",
            "value_tier",
            "size",
            "branch_id",
            "manager_id",
            "status",
            "members",
            "score",
            "level",
            "reasons",
            "reason_points",
            "monthly_revenue",
            "expected_months",
            "lifetime_value",
            "contract_end",
            "last_visit",
        ])
        .map_err(csv_error(path))?;
        for g in warnings {
            let reasons: Vec<&str> = g.reasons.iter().map(|r| r.code.as_str()).collect();
            let points: Vec<String> = g.reasons.iter().map(|r| r.points.to_string()).collect();
            out.write_record([
                g.group_id.as_str(),
                &g.name,
                &g.industry,
                &g.value_tier,
                &g.size,
                &g.branch_id,
                g.manager_id.as_deref().unwrap_or(""),
                &g.status,
                &g.members_now.to_string(),
                &g.score.to_string(),
                g.level.as_deref().unwrap_or(""),
                &reasons.join(";"),
                &points.join(";"),
                &g.monthly_revenue.to_string(),
                &g.expected_months.to_string(),
                &g.lifetime_value.to_string(),
                &g.contract_end.map(|d| d.to_string()).unwrap_or_default(),
                &g.last_visit.map(|d| d.to_string()).unwrap_or_default(),
            ])
            .map_err(csv_error(path))?;
        }
        out.flush()
    })?;
    Ok(())
}

fn write_visits(path: &Path, visits: &[PlannedVisit]) -> Result<()> {
    retain_data::write_atomically_with(path, |w| {
        w.write_all(retain_data::BOM)?;
        let mut out = csv::Writer::from_writer(w);
        out.write_record([
            "due_date",
            "group_id",
            "name",
            "manager_id",
            "branch_id",
            "value_tier",
            "purpose",
            "level",
            "overdue_days",
            "reasons",
            "lifetime_value",
        ])
        .map_err(csv_error(path))?;
        for v in visits {
            out.write_record([
                v.due_date.to_string().as_str(),
                &v.group_id,
                &v.group_name,
                v.manager_id.as_deref().unwrap_or(""),
                &v.branch_id,
                &v.value_tier,
                &v.purpose,
                v.level.as_deref().unwrap_or(""),
                &v.overdue_days.to_string(),
                &v.reasons.join(";"),
                &v.lifetime_value.to_string(),
            ])
            .map_err(csv_error(path))?;
        }
        out.flush()
    })?;
    Ok(())
}

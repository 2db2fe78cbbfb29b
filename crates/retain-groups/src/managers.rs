//! Per-manager and per-branch results (考核) over a period: how much of their base stayed, the
//! visits the frequency rules asked for against those made, and the campaign work orders,
//! callbacks and saved value the operational store holds for them.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};
use datafusion::execution::context::SessionContext;
use retain_data::{Table, Workspace};
use retain_store::{ManagerWork, Store};
use serde::{Deserialize, Serialize};

use crate::config::{GroupConfig, Targets};
use crate::error::{Error, Result};
use crate::risk::round2;
use crate::signals::{months_before, typed_rows};

/// One manager's results.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManagerResult {
    pub manager_id: String,
    /// The branch holding most of the manager's base.
    pub branch_id: String,
    pub groups: u64,
    /// Subscribers assigned to the manager and with us at the start of the period.
    pub subscribers: u64,
    /// Those who ported out or cancelled during it.
    pub left: u64,
    /// 1 − left / subscribers; 1 for an empty base.
    pub retention_rate: f64,
    /// Visits the frequency rules asked for to the manager's groups in the period.
    pub visits_planned: u64,
    /// Visits the manager made in the period.
    pub visits_done: u64,
    /// Visits that met the plan: per group, at most what it asked for.
    pub visits_on_plan: u64,
    pub work_orders: u64,
    pub callbacks: u64,
    pub callbacks_on_time: u64,
    pub accepted: u64,
    /// Members kept beyond the campaigns' control rates, and their lifetime value.
    pub incremental_saves: f64,
    pub saved_value: f64,
    /// Incremental saves per treated member with an outcome, where there were any.
    pub uplift: Option<f64>,
    /// The same over the members the manager visited: the uplift where they were the channel.
    pub visit_uplift: Option<f64>,
    /// visits_on_plan / visits_planned (1 when nothing was planned), and callbacks_on_time /
    /// callbacks (1 without callbacks).
    pub visit_coverage: f64,
    pub callbacks_on_time_rate: f64,
    /// The period's targets and which of them were met.
    pub targets: Targets,
    pub targets_met: u32,
    pub targets_total: u32,
}

/// One branch's results: its managers' and the unassigned subscribers'.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BranchResult {
    pub branch_id: String,
    pub managers: u64,
    pub subscribers: u64,
    pub left: u64,
    pub retention_rate: f64,
    pub visits_planned: u64,
    pub visits_done: u64,
    pub work_orders: u64,
    pub callbacks: u64,
    pub callbacks_on_time: u64,
    pub saved_value: f64,
}

/// The `retain managers --json` object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PerformanceReport {
    pub as_of: NaiveDate,
    /// First day of the period; it ends the day before `as_of`.
    pub period_start: NaiveDate,
    /// Highest saved value first, then retention rate.
    pub managers: Vec<ManagerResult>,
    pub branches: Vec<BranchResult>,
    /// Campaign work orders, since the period's start, with no manager (SMS and outbound calls
    /// to unassigned subscribers).
    pub unassigned_work_orders: u64,
    /// Their callbacks.
    pub unassigned_callbacks: u64,
}

#[derive(Debug, Deserialize)]
struct BaseRow {
    manager_id: String,
    branch_id: String,
    base: i64,
    left_in_period: i64,
}

#[derive(Debug, Deserialize)]
struct GroupVisitRow {
    group_id: String,
    manager_id: Option<String>,
    branch_id: String,
    value_tier: String,
    status: String,
    status_date: NaiveDate,
    visits_to: i64,
}

#[derive(Debug, Deserialize)]
struct VisitorRow {
    manager_id: String,
    visits: i64,
}

/// Every manager's and branch's results over the `config.performance.months` before `as_of`.
pub async fn performance(
    ctx: &SessionContext,
    workspace: &Workspace,
    store: &Store,
    config: &GroupConfig,
    as_of: NaiveDate,
) -> Result<PerformanceReport> {
    let start = months_before(as_of, config.performance.months)?;
    if !workspace.has_table(Table::Subscribers) {
        return Err(Error::BadRequest(
            "no subscribers are loaded: ingest subscribers.csv first".into(),
        ));
    }
    let left = if workspace.has_table(Table::Events) {
        format!(
            "SELECT subscriber_id, min(timestamp) AS left_at FROM events \
             WHERE kind IN ('port_out', 'cancel') AND timestamp < TIMESTAMP '{as_of} 00:00:00' \
             GROUP BY subscriber_id"
        )
    } else {
        "SELECT CAST(NULL AS BIGINT) AS subscriber_id, CAST(NULL AS TIMESTAMP) AS left_at WHERE false"
            .to_owned()
    };
    let base: Vec<BaseRow> = typed_rows(
        ctx,
        &format!(
            "WITH ev AS ({left})
             SELECT coalesce(s.manager_id, '') AS manager_id, s.branch_id,
               sum(CASE WHEN s.join_date < DATE '{start}' AND (ev.left_at IS NULL OR ev.left_at >= TIMESTAMP '{start} 00:00:00')
                   THEN 1 ELSE 0 END) AS base,
               sum(CASE WHEN s.join_date < DATE '{start}' AND ev.left_at >= TIMESTAMP '{start} 00:00:00'
                   THEN 1 ELSE 0 END) AS left_in_period
             FROM subscribers s LEFT JOIN ev ON ev.subscriber_id = s.subscriber_id
             GROUP BY coalesce(s.manager_id, ''), s.branch_id
             ORDER BY 1, 2"
        ),
        "the managers' bases",
    )
    .await?;

    let mut managers: BTreeMap<String, ManagerResult> = BTreeMap::new();
    let mut branches: BTreeMap<String, BranchResult> = BTreeMap::new();
    let mut largest: BTreeMap<String, i64> = BTreeMap::new();
    for row in &base {
        let b = branches.entry(row.branch_id.clone()).or_default();
        b.branch_id.clone_from(&row.branch_id);
        b.subscribers += row.base as u64;
        b.left += row.left_in_period as u64;
        if row.manager_id.is_empty() {
            continue;
        }
        let m = managers.entry(row.manager_id.clone()).or_default();
        m.manager_id.clone_from(&row.manager_id);
        m.subscribers += row.base as u64;
        m.left += row.left_in_period as u64;
        let top = largest.entry(row.manager_id.clone()).or_insert(-1);
        if row.base > *top {
            *top = row.base;
            m.branch_id.clone_from(&row.branch_id);
        }
    }

    // Visits recorded through retain count beside the table's.
    let recorded = store
        .visits_between(&start.to_string(), &as_of.to_string())
        .await?;
    let mut recorded_to: BTreeMap<&str, i64> = BTreeMap::new();
    for r in &recorded {
        let m = managers.entry(r.visit.manager_id.clone()).or_default();
        m.manager_id.clone_from(&r.visit.manager_id);
        m.visits_done += 1;
        *recorded_to.entry(r.visit.group_id.as_str()).or_insert(0) += 1;
    }

    if workspace.has_table(Table::Groups) {
        let visits_to = if workspace.has_table(Table::GroupVisits) {
            format!(
                "SELECT group_id, count(*) AS n FROM group_visits \
                 WHERE visit_date >= DATE '{start}' AND visit_date < DATE '{as_of}' GROUP BY group_id"
            )
        } else {
            "SELECT CAST(NULL AS VARCHAR) AS group_id, 0 AS n WHERE false".to_owned()
        };
        let groups: Vec<GroupVisitRow> = typed_rows(
            ctx,
            &format!(
                "WITH v AS ({visits_to})
                 SELECT g.group_id, g.manager_id, g.branch_id, g.value_tier, g.status, g.status_date, coalesce(v.n, 0) AS visits_to
                 FROM groups g LEFT JOIN v ON v.group_id = g.group_id ORDER BY g.group_id"
            ),
            "the groups' visits",
        )
        .await?;
        for g in &groups {
            let Some(id) = g.manager_id.as_deref().filter(|m| !m.is_empty()) else {
                continue;
            };
            // A group lost during the period asked for visits only while it was ours.
            let until = if g.status == "lost" {
                g.status_date.min(as_of)
            } else {
                as_of
            };
            let days = (until - start).num_days().max(0);
            let interval = i64::from(config.visits.interval(&g.value_tier));
            let planned = (days + interval - 1) / interval;
            let m = managers.entry(id.to_owned()).or_default();
            id.clone_into(&mut m.manager_id);
            // A manager with no subscribers of their own belongs where their groups are.
            if m.branch_id.is_empty() {
                m.branch_id.clone_from(&g.branch_id);
            }
            if g.status != "lost" || g.status_date >= start {
                m.groups += 1;
            }
            m.visits_planned += planned as u64;
            let made = g.visits_to + recorded_to.get(g.group_id.as_str()).copied().unwrap_or(0);
            m.visits_on_plan += made.min(planned).max(0) as u64;
        }
        if workspace.has_table(Table::GroupVisits) {
            let visitors: Vec<VisitorRow> = typed_rows(
                ctx,
                &format!(
                    "SELECT manager_id, count(*) AS visits FROM group_visits \
                     WHERE visit_date >= DATE '{start}' AND visit_date < DATE '{as_of}' \
                     GROUP BY manager_id ORDER BY manager_id"
                ),
                "the managers' visits",
            )
            .await?;
            for v in visitors {
                let m = managers.entry(v.manager_id.clone()).or_default();
                m.manager_id = v.manager_id;
                m.visits_done += v.visits as u64;
            }
        }
    }

    // Campaign work counts from the period's start up to now: the campaigns launched from the
    // newest warnings run after the data's last month, and their work is what managers are
    // doing today.
    let work = store
        .manager_work(&(start - Duration::days(1)).to_string(), "9999-12-31")
        .await?;
    let (mut unassigned, mut unassigned_callbacks) = (0, 0);
    for w in &work {
        if w.manager_id.is_empty() {
            unassigned += w.work_orders as u64;
            unassigned_callbacks += w.callbacks as u64;
            continue;
        }
        let m = managers.entry(w.manager_id.clone()).or_default();
        m.manager_id.clone_from(&w.manager_id);
        add_work(m, w);
    }

    for m in managers.values_mut() {
        m.retention_rate = rate(m.subscribers, m.left);
        m.visit_coverage = share(m.visits_on_plan, m.visits_planned);
        m.callbacks_on_time_rate = share(m.callbacks_on_time, m.callbacks);
        m.targets = config.performance.targets_for(&m.manager_id, as_of);
        let met = [
            m.retention_rate >= m.targets.retention_rate,
            m.visit_coverage >= m.targets.visit_coverage,
            m.callbacks_on_time_rate >= m.targets.callbacks_on_time,
        ];
        m.targets_total = met.len() as u32;
        m.targets_met = met.iter().filter(|x| **x).count() as u32;
        m.saved_value = round2(m.saved_value);
        m.incremental_saves = round2(m.incremental_saves);
        if !m.branch_id.is_empty() {
            let b = branches.entry(m.branch_id.clone()).or_default();
            b.branch_id.clone_from(&m.branch_id);
            b.managers += 1;
            b.visits_planned += m.visits_planned;
            b.visits_done += m.visits_done;
            b.work_orders += m.work_orders;
            b.callbacks += m.callbacks;
            b.callbacks_on_time += m.callbacks_on_time;
            b.saved_value = round2(b.saved_value + m.saved_value);
        }
    }
    for b in branches.values_mut() {
        b.retention_rate = rate(b.subscribers, b.left);
    }
    let mut managers: Vec<ManagerResult> = managers.into_values().collect();
    managers.sort_by(|a, b| {
        b.saved_value
            .total_cmp(&a.saved_value)
            .then(b.retention_rate.total_cmp(&a.retention_rate))
            .then(a.manager_id.cmp(&b.manager_id))
    });
    Ok(PerformanceReport {
        as_of,
        period_start: start,
        managers,
        branches: branches.into_values().collect(),
        unassigned_work_orders: unassigned,
        unassigned_callbacks,
    })
}

fn add_work(m: &mut ManagerResult, w: &ManagerWork) {
    m.work_orders += w.work_orders as u64;
    m.callbacks += w.callbacks as u64;
    m.callbacks_on_time += w.callbacks_on_time as u64;
    m.accepted += w.accepted as u64;
    m.incremental_saves += w.incremental_saves;
    m.saved_value += w.saved_value;
    if w.treated_evaluated > 0 {
        m.uplift =
            Some((w.incremental_saves / w.treated_evaluated as f64 * 10_000.0).round() / 10_000.0);
    }
}

/// `part / whole` to four places; 1 when there was nothing to do.
fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        1.0
    } else {
        (part as f64 / whole as f64 * 10_000.0).round() / 10_000.0
    }
}

fn rate(base: u64, left: u64) -> f64 {
    if base == 0 {
        1.0
    } else {
        ((1.0 - left as f64 / base as f64) * 10_000.0).round() / 10_000.0
    }
}

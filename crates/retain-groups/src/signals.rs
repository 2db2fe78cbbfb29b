//! What the data says about each group as of a date: one SQL plan over the members'
//! subscriptions, events and fees, the key people, the group products and the visits, grouped by
//! group, so it runs on any engine the session is on.

use chrono::{Months, NaiveDate};
use datafusion::execution::context::SessionContext;
use retain_data::{Table, Workspace};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One group's signals.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupSignals {
    pub group_id: String,
    pub name: String,
    pub industry: String,
    pub employees: Option<i64>,
    pub value_tier: String,
    pub branch_id: String,
    pub manager_id: Option<String>,
    pub contract_end: Option<NaiveDate>,
    pub status: String,
    /// Member subscriptions ever seen.
    pub members: i64,
    /// Members with us at the start of the last three months.
    pub members_at_start: i64,
    /// Members with us on the as-of date.
    pub members_now: i64,
    /// Members who ported out or cancelled in the last three months.
    pub left_3m: i64,
    /// Members who left in the last twelve months, and those with us twelve months ago.
    pub left_12m: i64,
    pub members_year_ago: i64,
    /// Current members with competitor contact in the last three months.
    pub competitor_3m: i64,
    /// Members' fees: the last three months and the three before.
    pub fee_recent: f64,
    pub fee_before: f64,
    /// Mean churn probability of the current members in the newest scores.
    pub member_risk: Option<f64>,
    pub decision_maker_signal: bool,
    pub key_person_signal: bool,
    pub key_people: i64,
    pub products_active: i64,
    pub product_fee: f64,
    pub products_cancelled_6m: i64,
    pub last_visit: Option<NaiveDate>,
    pub visits_3m: i64,
    pub competitor_visits_3m: i64,
    pub complaint_visits_3m: i64,
}

/// The signals of every group as of `as_of` (a first day of month).
pub async fn group_signals(
    ctx: &SessionContext,
    workspace: &Workspace,
    as_of: NaiveDate,
) -> Result<Vec<GroupSignals>> {
    if !workspace.has_table(Table::Groups) {
        return Err(Error::BadRequest(
            "no groups are loaded: ingest groups.csv (retain ingest --table groups) first".into(),
        ));
    }
    register_scores(ctx, workspace).await?;
    let scored = ctx
        .table_exist("member_scores")
        .map_err(|e| Error::engine("looking up the scores", e))?;
    let sql = signals_sql(workspace, as_of, scored)?;
    typed_rows(ctx, &sql, "the group signals").await
}

/// The rows `sql` gives, one `T` each: results per group or manager, never per subscriber.
pub(crate) async fn typed_rows<T: serde::de::DeserializeOwned>(
    ctx: &SessionContext,
    sql: &str,
    what: &str,
) -> Result<Vec<T>> {
    let batches = ctx
        .sql(sql)
        .await
        .map_err(|e| Error::engine(format!("planning {what}"), e))?
        .collect()
        .await
        .map_err(|e| Error::engine(format!("computing {what}"), e))?;
    retain_features::json_rows(&batches)
        .into_iter()
        .map(|row| {
            serde_json::from_value(serde_json::Value::Object(row))
                .map_err(|e| Error::BadRequest(format!("reading {what}: {e}")))
        })
        .collect()
}

/// Adds the visits recorded through retain before `as_of` to the signals the tables gave.
pub(crate) fn add_recorded(
    signals: &mut [GroupSignals],
    recorded: &[retain_store::VisitRecord],
    as_of: NaiveDate,
) {
    let Ok(d3) = months_before(as_of, 3) else {
        return;
    };
    let mut by_group: std::collections::HashMap<&str, Vec<(NaiveDate, &str)>> =
        std::collections::HashMap::new();
    for r in recorded {
        if let Ok(day) = r.visit.visit_date.parse::<NaiveDate>()
            && day < as_of
        {
            by_group
                .entry(r.visit.group_id.as_str())
                .or_default()
                .push((day, r.visit.outcome.as_str()));
        }
    }
    for s in signals.iter_mut() {
        let Some(visits) = by_group.get(s.group_id.as_str()) else {
            continue;
        };
        for (day, outcome) in visits {
            s.last_visit = Some(s.last_visit.map_or(*day, |v| v.max(*day)));
            if *day >= d3 {
                s.visits_3m += 1;
                s.competitor_visits_3m += i64::from(*outcome == "competitor_offer");
                s.complaint_visits_3m += i64::from(*outcome == "complaint");
            }
        }
    }
}

/// The newest scores as `member_scores(subscriber_id, probability)`, when the workspace has
/// been scored.
async fn register_scores(ctx: &SessionContext, workspace: &Workspace) -> Result<()> {
    let _ = ctx.deregister_table("member_scores");
    let Some(file) = retain_model::latest_scores(workspace) else {
        return Ok(());
    };
    let options = datafusion::prelude::CsvReadOptions::new().has_header(true);
    ctx.register_csv(
        "member_scores",
        file.path.to_string_lossy().as_ref(),
        options,
    )
    .await
    .map_err(|e| Error::engine(format!("reading {}", file.path.display()), e))?;
    Ok(())
}

pub(crate) fn months_before(as_of: NaiveDate, months: u32) -> Result<NaiveDate> {
    as_of
        .checked_sub_months(Months::new(months))
        .ok_or_else(|| Error::BadRequest(format!("{months} months before {as_of} is out of range")))
}

fn signals_sql(workspace: &Workspace, as_of: NaiveDate, scored: bool) -> Result<String> {
    let d3 = months_before(as_of, 3)?;
    let d6 = months_before(as_of, 6)?;
    let d12 = months_before(as_of, 12)?;
    let has = |t: Table| workspace.has_table(t);
    let date = |d: NaiveDate| format!("DATE '{d}'");
    let ts = |d: NaiveDate| format!("TIMESTAMP '{d} 00:00:00'");
    let (asof_d, d3_d, d6_d, d12_d) = (date(as_of), date(d3), date(d6), date(d12));
    let (asof_t, d3_t, d12_t) = (ts(as_of), ts(d3), ts(d12));

    // Absent optional tables read as empty, so a department that keeps no visits still gets
    // its groups' member signals.
    let key_people = if has(Table::GroupKeyPeople) {
        "SELECT group_id, role, subscriber_id FROM group_key_people".to_owned()
    } else {
        "SELECT CAST(NULL AS VARCHAR) AS group_id, CAST(NULL AS VARCHAR) AS role, \
         CAST(NULL AS BIGINT) AS subscriber_id WHERE false"
            .to_owned()
    };
    let events = if has(Table::Events) {
        format!(
            "SELECT e.subscriber_id,
               max(CASE WHEN e.kind IN ('port_out', 'cancel') THEN 1 ELSE 0 END) AS left_ever,
               max(CASE WHEN e.kind IN ('port_out', 'cancel') AND e.timestamp >= {d3_t} THEN 1 ELSE 0 END) AS left_3m,
               max(CASE WHEN e.kind IN ('port_out', 'cancel') AND e.timestamp >= {d12_t} THEN 1 ELSE 0 END) AS left_12m,
               max(CASE WHEN e.kind IN ('port_out', 'cancel') AND e.timestamp < {d3_t} THEN 1 ELSE 0 END) AS left_before_3m,
               max(CASE WHEN e.kind IN ('port_out', 'cancel') AND e.timestamp < {d12_t} THEN 1 ELSE 0 END) AS left_before_12m,
               max(CASE WHEN e.kind IN ('competitor_service_call', 'forward_to_competitor', 'stop_request')
                         AND e.timestamp >= {d3_t} THEN 1 ELSE 0 END) AS warned_3m,
               max(CASE WHEN e.kind IN ('competitor_service_call', 'forward_to_competitor')
                         AND e.timestamp >= {d3_t} THEN 1 ELSE 0 END) AS competitor_3m
             FROM events e
             WHERE e.timestamp < {asof_t}
               AND e.subscriber_id IN (SELECT subscriber_id FROM subscribers WHERE group_id IS NOT NULL
                                       UNION ALL SELECT subscriber_id FROM kp WHERE subscriber_id IS NOT NULL)
             GROUP BY e.subscriber_id"
        )
    } else {
        "SELECT CAST(NULL AS BIGINT) AS subscriber_id, 0 AS left_ever, 0 AS left_3m, 0 AS left_12m, \
         0 AS left_before_3m, 0 AS left_before_12m, 0 AS warned_3m, 0 AS competitor_3m WHERE false"
            .to_owned()
    };
    let fees = if has(Table::UsageMonthly) {
        format!(
            "SELECT u.subscriber_id,
               sum(CASE WHEN u.period >= {d3_d} THEN u.fee ELSE 0 END) / 3.0 AS fee_recent,
               sum(CASE WHEN u.period < {d3_d} THEN u.fee ELSE 0 END) / 3.0 AS fee_before
             FROM usage_monthly u JOIN subscribers s ON s.subscriber_id = u.subscriber_id
             WHERE s.group_id IS NOT NULL AND u.period >= {d6_d} AND u.period < {asof_d}
             GROUP BY u.subscriber_id"
        )
    } else {
        "SELECT CAST(NULL AS BIGINT) AS subscriber_id, 0.0 AS fee_recent, 0.0 AS fee_before WHERE false"
            .to_owned()
    };
    let scores = if scored {
        "SELECT CAST(subscriber_id AS BIGINT) AS subscriber_id, CAST(probability AS DOUBLE) AS probability \
         FROM member_scores"
            .to_owned()
    } else {
        "SELECT CAST(NULL AS BIGINT) AS subscriber_id, CAST(NULL AS DOUBLE) AS probability WHERE false"
            .to_owned()
    };
    let products = if has(Table::GroupProducts) {
        format!(
            "SELECT group_id,
               sum(CASE WHEN start_date < {asof_d} AND (end_date IS NULL OR end_date >= {asof_d}) THEN 1 ELSE 0 END) AS products_active,
               sum(CASE WHEN start_date < {asof_d} AND (end_date IS NULL OR end_date >= {asof_d}) THEN monthly_fee ELSE 0 END) AS product_fee,
               sum(CASE WHEN end_date >= {d6_d} AND end_date < {asof_d} THEN 1 ELSE 0 END) AS products_cancelled_6m
             FROM group_products GROUP BY group_id"
        )
    } else {
        "SELECT CAST(NULL AS VARCHAR) AS group_id, 0 AS products_active, 0.0 AS product_fee, \
         0 AS products_cancelled_6m WHERE false"
            .to_owned()
    };
    let visits = if has(Table::GroupVisits) {
        format!(
            "SELECT group_id, max(visit_date) AS last_visit,
               sum(CASE WHEN visit_date >= {d3_d} THEN 1 ELSE 0 END) AS visits_3m,
               sum(CASE WHEN visit_date >= {d3_d} AND outcome = 'competitor_offer' THEN 1 ELSE 0 END) AS competitor_visits_3m,
               sum(CASE WHEN visit_date >= {d3_d} AND outcome = 'complaint' THEN 1 ELSE 0 END) AS complaint_visits_3m
             FROM group_visits WHERE visit_date < {asof_d} GROUP BY group_id"
        )
    } else {
        "SELECT CAST(NULL AS VARCHAR) AS group_id, CAST(NULL AS DATE) AS last_visit, 0 AS visits_3m, \
         0 AS competitor_visits_3m, 0 AS complaint_visits_3m WHERE false"
            .to_owned()
    };
    Ok(format!(
        "WITH kp AS ({key_people}),
         ev AS ({events}),
         fees AS ({fees}),
         sc AS ({scores}),
         pm AS (
           SELECT s.group_id, s.subscriber_id,
             CASE WHEN s.join_date < {d3_d} AND coalesce(ev.left_before_3m, 0) = 0 THEN 1 ELSE 0 END AS at_start,
             CASE WHEN s.join_date < {d12_d} AND coalesce(ev.left_before_12m, 0) = 0 THEN 1 ELSE 0 END AS year_ago,
             CASE WHEN s.join_date < {asof_d} AND coalesce(ev.left_ever, 0) = 0 THEN 1 ELSE 0 END AS now,
             CASE WHEN s.join_date < {d3_d} THEN coalesce(ev.left_3m, 0) ELSE 0 END AS left_3m,
             CASE WHEN s.join_date < {d12_d} THEN coalesce(ev.left_12m, 0) ELSE 0 END AS left_12m,
             coalesce(ev.competitor_3m, 0) AS competitor_3m,
             coalesce(fees.fee_recent, 0.0) AS fee_recent,
             coalesce(fees.fee_before, 0.0) AS fee_before,
             sc.probability
           FROM subscribers s
           LEFT JOIN ev ON ev.subscriber_id = s.subscriber_id
           LEFT JOIN fees ON fees.subscriber_id = s.subscriber_id
           LEFT JOIN sc ON sc.subscriber_id = s.subscriber_id
           WHERE s.group_id IS NOT NULL
         ),
         m AS (
           SELECT group_id, count(*) AS members, sum(at_start) AS members_at_start, sum(now) AS members_now,
             sum(left_3m) AS left_3m, sum(left_12m) AS left_12m, sum(year_ago) AS members_year_ago,
             sum(CASE WHEN now = 1 THEN competitor_3m ELSE 0 END) AS competitor_3m,
             sum(fee_recent) AS fee_recent, sum(fee_before) AS fee_before,
             avg(CASE WHEN now = 1 THEN probability END) AS member_risk
           FROM pm GROUP BY group_id
         ),
         k AS (
           SELECT kp.group_id, count(*) AS key_people,
             max(CASE WHEN kp.role = 'decision_maker' AND coalesce(ev.warned_3m, 0) + coalesce(ev.left_3m, 0) > 0
                      THEN 1 ELSE 0 END) AS decision_maker_signal,
             max(CASE WHEN kp.role <> 'decision_maker' AND coalesce(ev.warned_3m, 0) + coalesce(ev.left_3m, 0) > 0
                      THEN 1 ELSE 0 END) AS key_person_signal
           FROM kp LEFT JOIN ev ON ev.subscriber_id = kp.subscriber_id GROUP BY kp.group_id
         ),
         p AS ({products}),
         v AS ({visits})
         SELECT g.group_id, g.name, g.industry, g.employees, g.value_tier, g.branch_id, g.manager_id,
           g.contract_end, CASE WHEN g.status = 'lost' AND g.status_date < {asof_d} THEN 'lost' ELSE 'active' END AS status,
           coalesce(m.members, 0) AS members, coalesce(m.members_at_start, 0) AS members_at_start,
           coalesce(m.members_now, 0) AS members_now, coalesce(m.left_3m, 0) AS left_3m,
           coalesce(m.left_12m, 0) AS left_12m, coalesce(m.members_year_ago, 0) AS members_year_ago,
           coalesce(m.competitor_3m, 0) AS competitor_3m,
           coalesce(m.fee_recent, 0.0) AS fee_recent, coalesce(m.fee_before, 0.0) AS fee_before,
           m.member_risk,
           coalesce(k.decision_maker_signal, 0) = 1 AS decision_maker_signal,
           coalesce(k.key_person_signal, 0) = 1 AS key_person_signal,
           coalesce(k.key_people, 0) AS key_people,
           coalesce(p.products_active, 0) AS products_active, coalesce(p.product_fee, 0.0) AS product_fee,
           coalesce(p.products_cancelled_6m, 0) AS products_cancelled_6m,
           v.last_visit, coalesce(v.visits_3m, 0) AS visits_3m,
           coalesce(v.competitor_visits_3m, 0) AS competitor_visits_3m,
           coalesce(v.complaint_visits_3m, 0) AS complaint_visits_3m
         FROM groups g
         LEFT JOIN m ON m.group_id = g.group_id
         LEFT JOIN k ON k.group_id = g.group_id
         LEFT JOIN p ON p.group_id = g.group_id
         LEFT JOIN v ON v.group_id = g.group_id
         ORDER BY g.group_id"
    ))
}

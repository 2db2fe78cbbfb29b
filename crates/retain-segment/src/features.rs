//! Per-subscriber behaviour as of a date, computed in one SQL query over the workspace tables.

use chrono::{Months, NaiveDate};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::execution::context::SessionContext;

use crate::error::{Error, Result};

/// One subscriber's profile and behaviour as of the as-of date.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    pub subscriber_id: i64,
    /// Joined before the as-of date and not cancelled or ported out by then.
    pub alive: bool,
    pub tenure_months: f64,
    /// Tenure when the subscriber left (for retention curves), if they left before as-of.
    pub left_at_tenure: Option<f64>,
    pub age: f64,
    pub plan_tier: f64,
    pub is_group_member: bool,
    pub group_size: f64,
    pub family_size: f64,
    pub arpu_3m: f64,
    pub arpu_12m: f64,
    pub fee_prev_3m: f64,
    pub active_days_3m: f64,
    pub voice_3m: f64,
    pub data_3m: f64,
    pub sms_3m: f64,
    pub vas_3m: f64,
    pub months_since_consumption: f64,
    pub silent_months_3m: f64,
    pub complaints_6m: f64,
    pub competitor_calls_6m: f64,
    pub contract_months_left: Option<f64>,
    /// For a subscriber who left: months from leaving to the end of the contract that ended
    /// nearest to it (negative: the contract had already ended), within a year either side.
    pub contract_end_at_churn: Option<f64>,
    /// The year the subscriber joined (the join cohort).
    pub join_year: i32,
}

fn date(d: NaiveDate) -> String {
    format!("DATE '{d}'")
}

fn months_back(d: NaiveDate, n: u32) -> NaiveDate {
    d.checked_sub_months(Months::new(n)).expect("date in range")
}

/// The name under which [`sql`] finds the churn probabilities it joins.
pub(crate) const SCORES: &str = "segment_scores";

/// The query; `as_of` is the first day of a month (complete months before it are used). Each
/// row has its churn `probability` from the table [`SCORES`] when `scores`, else `NULL`.
pub(crate) fn sql(as_of: NaiveDate, scores: bool) -> String {
    let s = date(as_of);
    let m3 = date(months_back(as_of, 3));
    let m6 = date(months_back(as_of, 6));
    let m12 = date(months_back(as_of, 12));
    let months = |from: &str, to: &str| {
        format!(
            "CAST((date_part('year', {to}) - date_part('year', {from})) * 12 + (date_part('month', {to}) - date_part('month', {from})) AS DOUBLE)"
        )
    };
    format!(
        "WITH gone AS (
            SELECT subscriber_id, MIN(CAST(\"timestamp\" AS DATE)) AS left_on FROM events
            WHERE kind IN ('cancel', 'port_out') AND \"timestamp\" < TIMESTAMP '{as_of}T00:00:00'
            GROUP BY subscriber_id
        ),
        fam AS (SELECT family_id, COUNT(*) AS n FROM subscribers__all WHERE family_id IS NOT NULL GROUP BY family_id),
        grp AS (SELECT group_id, COUNT(*) AS n FROM subscribers__all WHERE group_id IS NOT NULL GROUP BY group_id),
        u AS (
            SELECT subscriber_id,
                   AVG(CASE WHEN period >= {m3} THEN fee END) AS arpu_3m,
                   AVG(CASE WHEN period >= {m12} AND fee > 0 THEN fee END) AS arpu_12m,
                   AVG(CASE WHEN period >= {m6} AND period < {m3} THEN fee END) AS fee_prev_3m,
                   AVG(CASE WHEN period >= {m3} THEN CAST(active_days AS DOUBLE) END) AS active_days_3m,
                   AVG(CASE WHEN period >= {m3} THEN CAST(voice_minutes AS DOUBLE) END) AS voice_3m,
                   AVG(CASE WHEN period >= {m3} THEN data_mb END) AS data_3m,
                   AVG(CASE WHEN period >= {m3} THEN CAST(sms AS DOUBLE) END) AS sms_3m,
                   AVG(CASE WHEN period >= {m3} THEN vas_fee END) AS vas_3m,
                   MAX(CASE WHEN fee > 0 OR recharge > 0 THEN period END) AS last_consumed,
                   CAST(SUM(CASE WHEN period >= {m3} AND calls_out = 0 THEN 1 ELSE 0 END) AS DOUBLE) AS silent_months_3m
            FROM usage_monthly WHERE period < {s} GROUP BY subscriber_id
        ),
        e AS (
            SELECT subscriber_id,
                   CAST(COUNT(CASE WHEN kind = 'complaint' THEN 1 END) AS DOUBLE) AS complaints_6m,
                   CAST(COUNT(CASE WHEN kind = 'competitor_service_call' THEN 1 END) AS DOUBLE) AS competitor_calls_6m
            FROM events
            WHERE \"timestamp\" >= TIMESTAMP '{from6}T00:00:00' AND \"timestamp\" < TIMESTAMP '{as_of}T00:00:00'
            GROUP BY subscriber_id
        ),
        c AS (
            SELECT subscriber_id, MIN(end_date) AS contract_end FROM contracts
            WHERE start_date < {s} AND end_date >= {s} GROUP BY subscriber_id
        ),
        ce AS (
            SELECT k.subscriber_id,
                   MIN(CASE WHEN {to_end} >= 0 THEN {to_end} END) AS to_end,
                   MAX(CASE WHEN {to_end} < 0 THEN {to_end} END) AS since_end
            FROM contracts k JOIN gone g2 ON g2.subscriber_id = k.subscriber_id
            WHERE k.start_date < g2.left_on
            GROUP BY k.subscriber_id
        )
        SELECT s.subscriber_id,
               g.left_on IS NULL AS alive,
               {tenure} AS tenure_months,
               CASE WHEN g.left_on IS NOT NULL THEN {left_tenure} END AS left_at_tenure,
               CAST(COALESCE(date_part('year', {s}) - date_part('year', s.birth_date), 40) AS DOUBLE) AS age,
               CAST(COALESCE(pl.tier, 1) AS DOUBLE) AS plan_tier,
               s.customer_type = 'group_member' AS is_group_member,
               CAST(COALESCE(grp.n, 0) AS DOUBLE) AS group_size,
               CAST(COALESCE(fam.n, 1) AS DOUBLE) AS family_size,
               COALESCE(u.arpu_3m, 0) AS arpu_3m, COALESCE(u.arpu_12m, 0) AS arpu_12m,
               COALESCE(u.fee_prev_3m, u.arpu_3m, 0) AS fee_prev_3m,
               COALESCE(u.active_days_3m, 0) AS active_days_3m, COALESCE(u.voice_3m, 0) AS voice_3m,
               COALESCE(u.data_3m, 0) AS data_3m, COALESCE(u.sms_3m, 0) AS sms_3m,
               COALESCE(u.vas_3m, 0) AS vas_3m,
               COALESCE({since} - 1, 99) AS months_since_consumption,
               COALESCE(u.silent_months_3m, 0) AS silent_months_3m,
               COALESCE(e.complaints_6m, 0) AS complaints_6m,
               COALESCE(e.competitor_calls_6m, 0) AS competitor_calls_6m,
               {contract_left} AS contract_months_left,
               CASE WHEN ce.to_end <= 12 THEN ce.to_end
                    WHEN ce.since_end >= -12 THEN ce.since_end
               END AS contract_end_at_churn,
               CAST(date_part('year', s.join_date) AS DOUBLE) AS join_year{probability}
        FROM subscribers s
        LEFT JOIN gone g ON g.subscriber_id = s.subscriber_id
        LEFT JOIN plans pl ON pl.plan_id = s.plan_id
        LEFT JOIN fam ON fam.family_id = s.family_id
        LEFT JOIN grp ON grp.group_id = s.group_id
        LEFT JOIN u ON u.subscriber_id = s.subscriber_id
        LEFT JOIN e ON e.subscriber_id = s.subscriber_id
        LEFT JOIN c ON c.subscriber_id = s.subscriber_id
        LEFT JOIN ce ON ce.subscriber_id = s.subscriber_id{scored}
        WHERE s.join_date < {s}
        ORDER BY s.subscriber_id",
        from6 = months_back(as_of, 6),
        tenure = months("s.join_date", &s),
        left_tenure = months("s.join_date", "g.left_on"),
        // The month after the last consumption is month 1 without it.
        since = months("u.last_consumed", &s),
        contract_left = months(&s, "c.contract_end"),
        to_end = months("g2.left_on", "k.end_date"),
        probability = if scores {
            ",\n               sc.probability AS probability"
        } else {
            ",\n               CAST(NULL AS DOUBLE) AS probability"
        },
        scored = if scores {
            format!("\n        LEFT JOIN {SCORES} sc ON sc.subscriber_id = s.subscriber_id")
        } else {
            String::new()
        },
    )
}

fn numbers(batch: &RecordBatch, name: &str) -> Result<ArrayRef> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| Error::Internal(format!("segment features lack {name}")))?;
    datafusion::arrow::compute::cast(column, &DataType::Float64)
        .map_err(|e| Error::Internal(format!("reading {name}: {e}")))
}

/// Computes everyone's behaviour as of `as_of` (the first day of a month), in subscriber order.
pub async fn behaviour(ctx: &SessionContext, as_of: NaiveDate) -> Result<Vec<Behaviour>> {
    let mut out = Vec::new();
    push_behaviour(ctx, as_of, &mut out).await?;
    Ok(out)
}

/// [`behaviour`] computed one subscriber partition of `parts` at a time (`ctx` when `parts` is
/// 1), as a large operator's features are; the same rows in the same order.
pub async fn behaviour_in_partitions(
    ctx: &SessionContext,
    workspace: &retain_data::Workspace,
    as_of: NaiveDate,
    parts: u32,
) -> Result<Vec<Behaviour>> {
    let mut out = Vec::new();
    for part in 0..parts.max(1) {
        let session = retain_features::session_for(ctx, workspace, part, parts).await?;
        push_behaviour(&session, as_of, &mut out).await?;
    }
    Ok(out)
}

async fn push_behaviour(
    ctx: &SessionContext,
    as_of: NaiveDate,
    out: &mut Vec<Behaviour>,
) -> Result<()> {
    let batches =
        retain_features::frame::query(ctx, &sql(as_of, false), "segment features").await?;
    for batch in &batches {
        let get = |name: &str| numbers(batch, name);
        let ids = batch
            .column_by_name("subscriber_id")
            .ok_or_else(|| Error::Internal("no subscriber_id column".into()))?
            .as_primitive::<Int64Type>()
            .clone();
        let alive = batch
            .column_by_name("alive")
            .ok_or_else(|| Error::Internal("no alive column".into()))?
            .as_boolean()
            .clone();
        let group = batch
            .column_by_name("is_group_member")
            .ok_or_else(|| Error::Internal("no group column".into()))?
            .as_boolean()
            .clone();
        let names = [
            "tenure_months",
            "left_at_tenure",
            "age",
            "plan_tier",
            "group_size",
            "family_size",
            "arpu_3m",
            "arpu_12m",
            "fee_prev_3m",
            "active_days_3m",
            "voice_3m",
            "data_3m",
            "sms_3m",
            "vas_3m",
            "months_since_consumption",
            "silent_months_3m",
            "complaints_6m",
            "competitor_calls_6m",
            "contract_months_left",
            "contract_end_at_churn",
            "join_year",
        ];
        let cols: Vec<ArrayRef> = names.iter().map(|n| get(n)).collect::<Result<_>>()?;
        let v = |c: usize, row: usize| -> Option<f64> {
            let a = cols[c].as_primitive::<Float64Type>();
            (!a.is_null(row)).then(|| a.value(row))
        };
        for row in 0..batch.num_rows() {
            let x = |c: usize| v(c, row).unwrap_or(0.0);
            out.push(Behaviour {
                subscriber_id: ids.value(row),
                alive: !alive.is_null(row) && alive.value(row),
                tenure_months: x(0).max(0.0),
                left_at_tenure: v(1, row),
                age: x(2),
                plan_tier: x(3),
                is_group_member: !group.is_null(row) && group.value(row),
                group_size: x(4),
                family_size: x(5),
                arpu_3m: x(6),
                arpu_12m: x(7),
                fee_prev_3m: x(8),
                active_days_3m: x(9),
                voice_3m: x(10),
                data_3m: x(11),
                sms_3m: x(12),
                vas_3m: x(13),
                months_since_consumption: x(14).max(0.0),
                silent_months_3m: x(15),
                complaints_6m: x(16),
                competitor_calls_6m: x(17),
                contract_months_left: v(18, row),
                contract_end_at_churn: v(19, row),
                join_year: x(20) as i32,
            });
        }
    }
    Ok(())
}

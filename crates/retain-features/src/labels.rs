//! Churn labels, traced backwards (倒追). The one place that decides who churned and when; the
//! warning backtest and the model both read it.
//!
//! - **Quantity churn** (数量流失): a cancellation, a port-out or a stop request, dated.
//! - **Value churn** (价值流失): the subscriber stays but the average fee of the last two months
//!   falls by at least `fee_drop` against the four months before, or the plan moves to a lower
//!   tier.
//! - **Voluntary or involuntary** (自愿/非自愿): a cancellation after an arrears suspension
//!   (欠费停机) with no stop request, port-out or other way out is an arrears cut-off, not a
//!   defection: `voluntary = 0`. Every other churn is voluntary. A subscriber is an involuntary
//!   churner when all their labels of a window are involuntary.
//! - **Backwards tracing**: a cancellation preceded by a suspension is the end of about
//!   `suspension_gap_months` of suspension, so its *effective* month — when the subscriber really
//!   left — is that many months earlier. Predictions and rule backtests look at behaviour before
//!   the effective month: for a cancellation in month M that is month M-4 and earlier.

use datafusion::execution::context::SessionContext;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How labels are built. Defaults follow the seed studies.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabelConfig {
    /// Months of suspension that precede a cancellation (停机到销户).
    pub suspension_gap_months: u32,
    /// Share by which the last two months' average fee must fall against the baseline.
    pub fee_drop: f64,
    /// Baseline average fee below which a fall is not value churn (tiny bills fluctuate).
    pub min_baseline_fee: f64,
}

impl Default for LabelConfig {
    fn default() -> Self {
        Self {
            suspension_gap_months: 3,
            fee_drop: 0.3,
            min_baseline_fee: 10.0,
        }
    }
}

/// The name under which [`register_labels`] registers the label view.
pub const LABELS_VIEW: &str = "churn_labels";

/// SQL for the label view: one row per churn occurrence with `subscriber_id`, `churn_type`
/// (`quantity`/`value`), `reason`, `churn_month` and `effective_month` (first days of months),
/// and `voluntary` (1, or 0 for an arrears cut-off).
#[must_use]
pub fn labels_sql(config: &LabelConfig) -> String {
    let gap = config.suspension_gap_months;
    let keep = 1.0 - config.fee_drop;
    let min_base = config.min_baseline_fee;
    format!(
        "WITH exits AS (
            SELECT subscriber_id, kind, \"timestamp\" AS ts FROM events
            WHERE kind IN ('cancel', 'port_out', 'stop_request')
        ),
        suspensions AS (
            SELECT subscriber_id, \"timestamp\" AS ts,
                   CASE WHEN category = 'arrears' THEN 1 ELSE 0 END AS arrears
            FROM events WHERE kind = 'suspension'
        ),
        quantity AS (
            SELECT x.subscriber_id, x.kind,
                   CAST(date_trunc('month', x.ts) AS DATE) AS churn_month,
                   MAX(CASE WHEN s.ts < x.ts AND s.ts >= x.ts - INTERVAL '{gap_plus} months'
                            THEN 1 ELSE 0 END) AS suspended_before,
                   MAX(CASE WHEN s.ts < x.ts AND s.ts >= x.ts - INTERVAL '{gap_plus} months'
                            THEN s.arrears ELSE 0 END) AS arrears_before
            FROM exits x LEFT JOIN suspensions s ON s.subscriber_id = x.subscriber_id
            GROUP BY x.subscriber_id, x.kind, x.ts
        ),
        -- Whoever asked to leave or ported out around the exit left of their own will.
        asked AS (
            SELECT DISTINCT q.subscriber_id, q.churn_month FROM quantity q
            JOIN exits x ON x.subscriber_id = q.subscriber_id
            WHERE x.kind IN ('port_out', 'stop_request')
              AND x.ts >= CAST(q.churn_month AS TIMESTAMP) - INTERVAL '{gap_plus} months'
              AND x.ts < CAST(q.churn_month AS TIMESTAMP) + INTERVAL '1 months'
        ),
        quantity_labels AS (
            SELECT q.subscriber_id, 'quantity' AS churn_type, q.kind AS reason, q.churn_month,
                   CASE WHEN q.kind = 'cancel' AND q.suspended_before = 1
                        THEN CAST(q.churn_month - INTERVAL '{gap} months' AS DATE)
                        ELSE q.churn_month END AS effective_month,
                   CASE WHEN q.kind = 'cancel' AND q.arrears_before = 1 AND a.subscriber_id IS NULL
                        THEN 0 ELSE 1 END AS voluntary
            FROM quantity q
            LEFT JOIN asked a ON a.subscriber_id = q.subscriber_id AND a.churn_month = q.churn_month
        ),
        first_quantity AS (
            SELECT subscriber_id, MIN(effective_month) AS first_effective FROM quantity_labels
            GROUP BY subscriber_id
        ),
        fees AS (
            SELECT subscriber_id, period,
                   AVG(fee) OVER w2 AS recent,
                   AVG(fee) OVER wb AS baseline,
                   COUNT(fee) OVER wb AS baseline_months,
                   MAX(suspended_days) OVER w2 AS suspended
            FROM usage_monthly
            WINDOW w2 AS (PARTITION BY subscriber_id ORDER BY period ROWS BETWEEN 1 PRECEDING AND CURRENT ROW),
                   wb AS (PARTITION BY subscriber_id ORDER BY period ROWS BETWEEN 5 PRECEDING AND 2 PRECEDING)
        ),
        fee_drops AS (
            SELECT subscriber_id, MIN(period) AS churn_month FROM fees
            WHERE baseline_months = 4 AND baseline >= {min_base:?} AND recent <= {keep:?} * baseline
              AND suspended = 0
            GROUP BY subscriber_id
        ),
        downgrades AS (
            SELECT e.subscriber_id, MIN(CAST(date_trunc('month', e.\"timestamp\") AS DATE)) AS churn_month
            FROM events e
            JOIN plans f ON e.from_plan = f.plan_id
            JOIN plans t ON e.to_plan = t.plan_id
            WHERE e.kind = 'plan_change' AND t.tier < f.tier
            GROUP BY e.subscriber_id
        ),
        value_labels AS (
            SELECT subscriber_id, 'value' AS churn_type, 'fee_drop' AS reason, churn_month,
                   churn_month AS effective_month, 1 AS voluntary FROM fee_drops
            UNION ALL
            SELECT subscriber_id, 'value' AS churn_type, 'downgrade' AS reason, churn_month,
                   churn_month AS effective_month, 1 AS voluntary FROM downgrades
        )
        SELECT subscriber_id, churn_type, reason, churn_month, effective_month, voluntary
        FROM quantity_labels
        UNION ALL
        -- A fall in fees on the way out is the quantity churn itself, not value churn.
        SELECT v.subscriber_id, v.churn_type, v.reason, v.churn_month, v.effective_month,
               v.voluntary
        FROM value_labels v LEFT JOIN first_quantity q ON q.subscriber_id = v.subscriber_id
        WHERE q.first_effective IS NULL
           OR v.effective_month < CAST(q.first_effective - INTERVAL '1 months' AS DATE)",
        gap_plus = gap + 1,
    )
}

/// SQL selecting the `subscriber_id`s whose churn labels with `month` (`effective_month` or
/// `churn_month`) in `[from, to)` are all involuntary: the arrears cut-offs of a window, among
/// the quantity labels only when `quantity_only`. Reads the view [`register_labels`] registers.
#[must_use]
pub fn cut_offs_sql(
    month: &str,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
    quantity_only: bool,
) -> String {
    let quantity = if quantity_only {
        "churn_type = 'quantity' AND "
    } else {
        ""
    };
    format!(
        "SELECT subscriber_id FROM {LABELS_VIEW} \
         WHERE {quantity}{month} >= DATE '{from}' AND {month} < DATE '{to}' \
         GROUP BY subscriber_id HAVING MAX(voluntary) = 0"
    )
}

/// Registers the label view over the session's `events`, `usage_monthly` and `plans`.
pub async fn register_labels(ctx: &SessionContext, config: &LabelConfig) -> Result<()> {
    for table in ["events", "usage_monthly", "plans"] {
        if !ctx.table_exist(table).unwrap_or(false) {
            return Err(Error::MissingTable(table));
        }
    }
    let view = ctx
        .sql(&labels_sql(config))
        .await
        .map_err(|e| Error::engine("planning churn labels", e))?
        .into_view();
    // A session that registered labels before (another config) gets this config's view.
    ctx.deregister_table(LABELS_VIEW)
        .map_err(|e| Error::engine("replacing churn labels", e))?;
    ctx.register_table(LABELS_VIEW, view)
        .map_err(|e| Error::engine("registering churn labels", e))?;
    Ok(())
}

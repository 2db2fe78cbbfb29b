//! The operator at a glance: subscribers by status, revenue and churn by month.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Date32Type, Float64Type, Int64Type};
use datafusion::execution::context::SessionContext;
use serde::Serialize;

use crate::error::{Error, Result};

/// Headline numbers of a workspace.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Overview {
    pub subscribers: i64,
    pub active: i64,
    pub suspended: i64,
    pub cancelled: i64,
    pub months: Vec<MonthSummary>,
}

/// One billing month.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MonthSummary {
    /// `YYYY-MM`.
    pub month: String,
    pub billed_subscribers: i64,
    pub revenue: f64,
    /// Revenue per billed subscriber.
    pub arpu: f64,
    /// Cancellations (销户) dated in the month.
    pub cancellations: i64,
}

async fn collect(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    crate::frame::query(ctx, sql, "the overview").await
}

fn has_table(ctx: &SessionContext, name: &str) -> bool {
    ctx.table_exist(name).unwrap_or(false)
}

/// Computes the overview with SQL over the registered tables.
pub async fn overview(ctx: &SessionContext) -> Result<Overview> {
    if !has_table(ctx, "subscribers") {
        return Err(Error::MissingTable("subscribers"));
    }
    let batches = collect(
        ctx,
        "SELECT COUNT(*) AS n, \
                SUM(CASE WHEN status = 'active' THEN 1 ELSE 0 END) AS active, \
                SUM(CASE WHEN status = 'suspended' THEN 1 ELSE 0 END) AS suspended, \
                SUM(CASE WHEN status = 'cancelled' THEN 1 ELSE 0 END) AS cancelled \
         FROM subscribers",
    )
    .await?;
    let value = |col: usize| -> i64 {
        batches.iter().find(|b| b.num_rows() > 0).map_or(0, |b| {
            let a = b.column(col).as_primitive::<Int64Type>();
            if a.is_null(0) { 0 } else { a.value(0) }
        })
    };
    let mut overview = Overview {
        subscribers: value(0),
        active: value(1),
        suspended: value(2),
        cancelled: value(3),
        months: Vec::new(),
    };
    if !has_table(ctx, "usage_monthly") {
        return Ok(overview);
    }
    let cancellations = if has_table(ctx, "events") {
        "SELECT CAST(date_trunc('month', \"timestamp\") AS DATE) AS period, COUNT(*) AS n \
         FROM events WHERE kind = 'cancel' GROUP BY 1"
    } else {
        "SELECT CAST(NULL AS DATE) AS period, CAST(0 AS BIGINT) AS n WHERE false"
    };
    let sql = format!(
        "WITH c AS ({cancellations}) \
         SELECT u.period, COUNT(*) AS billed, SUM(u.fee) AS revenue, \
                COALESCE(MAX(c.n), 0) AS cancellations \
         FROM usage_monthly u LEFT JOIN c ON c.period = u.period \
         WHERE u.fee > 0 GROUP BY u.period ORDER BY u.period"
    );
    for batch in collect(ctx, &sql).await? {
        let period = batch.column(0).as_primitive::<Date32Type>();
        let billed = batch.column(1).as_primitive::<Int64Type>();
        let revenue = batch.column(2).as_primitive::<Float64Type>();
        let cancelled = batch.column(3).as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            let billed_n = billed.value(row);
            let revenue_sum = revenue.value(row);
            overview.months.push(MonthSummary {
                month: retain_data::days_to_date(period.value(row))
                    .format("%Y-%m")
                    .to_string(),
                billed_subscribers: billed_n,
                revenue: (revenue_sum * 100.0).round() / 100.0,
                arpu: if billed_n > 0 {
                    (revenue_sum / billed_n as f64 * 100.0).round() / 100.0
                } else {
                    0.0
                },
                cancellations: cancelled.value(row),
            });
        }
    }
    Ok(overview)
}

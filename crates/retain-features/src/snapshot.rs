//! Point-in-time features for the churn model, and training sets stacked over snapshots.
//!
//! A feature set is a list of named expressions in the condition language, so features and
//! warning rules are computed by the same compiler: one grouped pass per source table, reading
//! only complete periods and events strictly before the as-of date.

use chrono::{Months, NaiveDate};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::execution::context::SessionContext;

use crate::conditions::{feature_ctes, month_start};
use crate::error::{Error, Result};
use crate::expr::{Compiler, parse};
use crate::labels::{LABELS_VIEW, LabelConfig, register_labels};

/// The default features: windows (last 1/2/3/6 months, last weeks), trends (slope; recent
/// against earlier average), volatility, counts and recency of each event kind, tenure,
/// contract and subsidy months left, plan, family and group size, arrears history.
pub const DEFAULT_FEATURES: &[(&str, &str)] = &[
    ("tenure_months", "tenure_months"),
    ("age", "age"),
    ("plan_tier", "plan_tier"),
    ("plan_fee", "plan_fee"),
    ("is_group_member", "is_group_member"),
    ("family_size", "family_size"),
    ("group_size", "group_size"),
    ("has_subsidy", "has_subsidy"),
    ("subsidy_months_left", "subsidy_months_left"),
    ("contract_months_left", "contract_months_left"),
    ("fee_1m", "at(fee, 1m)"),
    ("fee_avg_3m", "avg(fee, 3m)"),
    ("fee_avg_6m", "avg(fee, 6m)"),
    ("fee_trend", "avg(fee, 2m) / avg(fee, 3m..6m)"),
    ("fee_slope_6m", "slope(fee, 6m)"),
    ("fee_std_6m", "stddev(fee, 6m)"),
    ("voice_avg_3m", "avg(voice_minutes, 3m)"),
    (
        "voice_trend",
        "avg(voice_minutes, 2m) / avg(voice_minutes, 3m..6m)",
    ),
    ("calls_out_avg_3m", "avg(calls_out, 3m)"),
    ("calls_in_share", "sum(calls_in, 3m) / sum(calls, 3m)"),
    ("calls_trend", "avg(calls, 2m) / avg(calls, 3m..6m)"),
    ("data_avg_3m", "avg(data_mb, 3m)"),
    ("data_trend", "avg(data_mb, 2m) / avg(data_mb, 3m..6m)"),
    ("data_slope_6m", "slope(data_mb, 6m)"),
    ("sms_avg_3m", "avg(sms, 3m)"),
    ("vas_avg_3m", "avg(vas_fee, 3m)"),
    ("vas_trend", "avg(vas_fee, 2m) / avg(vas_fee, 3m..6m)"),
    ("bundled_1m", "at(bundled_services, 1m)"),
    (
        "bundled_change_3m",
        "at(bundled_services, 1m) - at(bundled_services, 4m)",
    ),
    ("recharge_avg_3m", "avg(recharge, 3m)"),
    ("arrears_1m", "at(arrears, 1m)"),
    ("arrears_max_6m", "max(arrears, 6m)"),
    ("suspended_days_3m", "sum(suspended_days, 3m)"),
    ("active_days_avg_3m", "avg(active_days, 3m)"),
    (
        "active_days_trend",
        "avg(active_share, 2m) / avg(active_share, 3m..6m)",
    ),
    ("complaints_1m", "count(complaint, 1m)"),
    ("complaints_6m", "count(complaint, 6m)"),
    (
        "serious_complaints_6m",
        "count(complaint, 6m, severity = 'serious')",
    ),
    (
        "late_complaints_6m",
        "count(complaint, 6m, resolved_on_time = false)",
    ),
    (
        "network_complaints_6m",
        "count(complaint, 6m, category = 'network')",
    ),
    (
        "billing_complaints_6m",
        "count(complaint, 6m, category = 'billing')",
    ),
    ("days_since_complaint", "days_since(complaint, 6m)"),
    ("competitor_calls_1m", "count(competitor_service_call, 1m)"),
    ("competitor_calls_6m", "count(competitor_service_call, 6m)"),
    (
        "days_since_competitor_call",
        "days_since(competitor_service_call, 6m)",
    ),
    ("forward_days_1m", "days(forward_to_competitor, 1m)"),
    ("forward_days_6m", "days(forward_to_competitor, 6m)"),
    (
        "days_since_forward",
        "days_since(forward_to_competitor, 6m)",
    ),
    ("service_calls_1m", "count(service_call, 1m)"),
    ("service_calls_6m", "count(service_call, 6m)"),
    ("stop_requests_3m", "count(stop_request, 3m)"),
    (
        "arrears_stops_6m",
        "count(suspension, 6m, category = 'arrears')",
    ),
    ("downgrades_6m", "count(plan_change, 6m, downgrade = true)"),
    // The network's experience (network_weekly): the last four weeks, and against the eight
    // before them.
    ("dropped_call_rate_4w", "avg(dropped_call_rate, 4w)"),
    (
        "dropped_call_trend",
        "avg(dropped_call_rate, 4w) / avg(dropped_call_rate, 5w..12w)",
    ),
    ("setup_failures_4w", "sum(setup_failures, 4w)"),
    ("weak_coverage_4w", "avg(weak_coverage_minutes, 4w)"),
    (
        "weak_coverage_trend",
        "avg(weak_coverage_minutes, 4w) / avg(weak_coverage_minutes, 5w..12w)",
    ),
    ("data_stall_4w", "avg(data_stall_seconds, 4w)"),
    ("throughput_4w", "avg(throughput_mbps, 4w)"),
    (
        "throughput_trend",
        "avg(throughput_mbps, 4w) / avg(throughput_mbps, 5w..12w)",
    ),
    // The calling circle (交往圈) over three months. The home cell's rates (`cell_churn_rate`,
    // `cell_complaint_rate`) are for rules and targeting, not the model: they move with a few
    // cells' faults, and where cells are few the serving-shift check refuses them.
    ("circle_size", "circle_size"),
    ("circle_left_share_3m", "circle_left_share"),
    ("competitor_call_share_3m", "competitor_call_share"),
    ("competitor_call_share_1m", "competitor_call_share_1m"),
];

/// The default features that read the network's tables (`network_weekly`, `cells`,
/// `calling_circle`): what `retain train --without network` leaves out.
pub const NETWORK_FEATURES: &[&str] = &[
    "dropped_call_rate_4w",
    "dropped_call_trend",
    "setup_failures_4w",
    "weak_coverage_4w",
    "weak_coverage_trend",
    "data_stall_4w",
    "throughput_4w",
    "throughput_trend",
    "circle_size",
    "circle_left_share_3m",
    "competitor_call_share_3m",
    "competitor_call_share_1m",
];

/// A compiled feature set.
#[derive(Debug)]
pub struct FeatureSet {
    pub names: Vec<String>,
    sqls: Vec<String>,
    compiler: Compiler,
}

impl FeatureSet {
    /// Compiles named expressions; an error names the feature.
    pub fn compile(features: &[(&str, &str)]) -> Result<FeatureSet> {
        let mut compiler = Compiler::default();
        let mut names = Vec::new();
        let mut sqls = Vec::new();
        for (name, text) in features {
            let sql = parse(text).and_then(|e| compiler.value(&e)).map_err(|e| {
                Error::BadFeature(format!(
                    "feature {name} ({text}), at character {}: {}",
                    e.offset + 1,
                    e.message
                ))
            })?;
            names.push((*name).to_owned());
            sqls.push(sql);
        }
        Ok(FeatureSet {
            names,
            sqls,
            compiler,
        })
    }

    /// The default feature set.
    #[must_use]
    pub fn default_set() -> FeatureSet {
        Self::compile(DEFAULT_FEATURES).expect("the default features compile (tested)")
    }

    /// Each feature's name and compiled SQL, in order.
    pub(crate) fn definitions(&self) -> impl Iterator<Item = (&String, &String)> {
        self.names.iter().zip(&self.sqls)
    }

    fn select(&self) -> String {
        self.names
            .iter()
            .zip(&self.sqls)
            .map(|(n, s)| format!("{s} AS \"{n}\""))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Features of every subscriber alive at `as_of` (joined before it, not cancelled or ported
/// out by then), from data strictly before it: `subscriber_id`, then one column per feature.
pub async fn features_as_of(
    ctx: &SessionContext,
    set: &FeatureSet,
    as_of: NaiveDate,
) -> Result<Vec<RecordBatch>> {
    let sql = format!(
        "WITH {} SELECT subscriber_id, {} FROM f ORDER BY subscriber_id",
        feature_ctes(&set.compiler, as_of),
        set.select()
    );
    crate::frame::query(ctx, &sql, "features").await
}

/// The query of every subscriber's features as of `as_of`, in no particular order: what a plan
/// that uses the features (scoring on a cluster) builds on.
#[must_use]
pub fn features_sql(set: &FeatureSet, as_of: NaiveDate) -> String {
    format!(
        "WITH {} SELECT subscriber_id, {} FROM f",
        feature_ctes(&set.compiler, as_of),
        set.select()
    )
}

/// The same features as [`features_as_of`], as a stream of batches in no particular order:
/// scoring ten million subscribers then holds one batch at a time, not the whole table.
pub async fn stream_features_as_of(
    ctx: &SessionContext,
    set: &FeatureSet,
    as_of: NaiveDate,
) -> Result<FeatureStream> {
    let stream = ctx
        .sql(&features_sql(set, as_of))
        .await
        .map_err(|e| Error::engine("planning features", e))?
        .execute_stream()
        .await
        .map_err(|e| Error::engine("computing features", e))?;
    Ok(FeatureStream { stream })
}

/// Features of every subscriber as of `as_of` like [`stream_features_as_of`], computed one
/// partition of the subscribers at a time (`parts` of them) so that the engine's aggregation
/// state holds a `parts`-th of the operator. Each partition reads the row groups of its own
/// subscriber range (`crate::partition_session`).
#[must_use]
pub fn stream_features_partitioned<'a>(
    workspace: &'a retain_data::Workspace,
    set: &'a FeatureSet,
    as_of: NaiveDate,
    parts: u32,
) -> PartitionedFeatures<'a> {
    PartitionedFeatures {
        workspace,
        set,
        as_of,
        parts: parts.max(1),
        next_part: 0,
        current: None,
    }
}

/// Batches of features, partition after partition, see [`stream_features_partitioned`].
pub struct PartitionedFeatures<'a> {
    workspace: &'a retain_data::Workspace,
    set: &'a FeatureSet,
    as_of: NaiveDate,
    parts: u32,
    next_part: u32,
    current: Option<FeatureStream>,
}

impl PartitionedFeatures<'_> {
    /// The next batch, or `None` after the last partition.
    pub async fn next(&mut self) -> Option<Result<RecordBatch>> {
        loop {
            if let Some(stream) = &mut self.current {
                if let Some(batch) = stream.next().await {
                    return Some(batch);
                }
                self.current = None;
            }
            if self.next_part == self.parts {
                return None;
            }
            let part = self.next_part;
            self.next_part += 1;
            tracing::debug!(
                part,
                parts = self.parts,
                "features of a subscriber partition"
            );
            let ctx = match crate::partition_session(self.workspace, part, self.parts).await {
                Ok(ctx) => ctx,
                Err(e) => return Some(Err(e)),
            };
            match stream_features_as_of(&ctx, self.set, self.as_of).await {
                Ok(stream) => self.current = Some(stream),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// Batches of features, see [`stream_features_as_of`].
pub struct FeatureStream {
    stream: datafusion::physical_plan::SendableRecordBatchStream,
}

impl FeatureStream {
    pub(crate) fn new(stream: datafusion::physical_plan::SendableRecordBatchStream) -> Self {
        FeatureStream { stream }
    }

    /// The next batch, or `None` at the end.
    pub async fn next(&mut self) -> Option<Result<RecordBatch>> {
        use futures::StreamExt;
        self.stream
            .next()
            .await
            .map(|b| b.map_err(|e| Error::engine("computing features", e)))
    }
}

/// A training set stacked over monthly snapshots: for each snapshot S, the features as of S of
/// everyone still a subscriber (quantity churn not yet in effect), `snapshot`, and `label` = 1
/// when a churn label takes effect in `[S, S + horizon)`. Registers the label view.
/// On a [`crate::sample_session`], a larger operator's set holds the same sample of
/// subscribers in every snapshot.
pub async fn training_set(
    ctx: &SessionContext,
    set: &FeatureSet,
    snapshots: &[NaiveDate],
    horizon_months: u32,
    labels: &LabelConfig,
) -> Result<Vec<RecordBatch>> {
    register_labels(ctx, labels).await?;
    let mut out = Vec::new();
    for &s in snapshots {
        let s = month_start(s);
        let end = s + Months::new(horizon_months);
        let sql = format!(
            "WITH {ctes},
             lab AS (SELECT DISTINCT subscriber_id FROM {LABELS_VIEW}
                     WHERE effective_month >= DATE '{s}' AND effective_month < DATE '{end}'),
             gone_already AS (SELECT DISTINCT subscriber_id FROM {LABELS_VIEW}
                     WHERE churn_type = 'quantity' AND effective_month < DATE '{s}')
             SELECT f.subscriber_id, DATE '{s}' AS snapshot,
                    CAST(CASE WHEN lab.subscriber_id IS NULL THEN 0 ELSE 1 END AS INT) AS label,
                    {select}
             FROM f
             LEFT JOIN lab ON lab.subscriber_id = f.subscriber_id
             LEFT JOIN gone_already x ON x.subscriber_id = f.subscriber_id
             WHERE x.subscriber_id IS NULL
             ORDER BY f.subscriber_id",
            ctes = feature_ctes(&set.compiler, s),
            select = set.select(),
        );
        out.extend(crate::frame::query(ctx, &sql, "a training snapshot").await?);
    }
    Ok(out)
}

/// Past campaign contacts whose features [`campaign_set`] computes at most, beyond which it
/// takes a hash sample of the contacted subscribers. Uplift trees fit on 150,000 contacts per
/// arm and are compared on 200,000; the reason × offer cells are as steady on half a million
/// contacts as on millions, and the features of millions would each be a pass over the tables.
pub const MAX_CAMPAIGN_CONTACTS: u64 = 500_000;

/// Past campaign contacts with their outcome, for uplift models: for each campaign period P in
/// `periods`, every `campaign_history` row of P with `arm`, `offer_id`, `offer_kind`, `channel`,
/// `reached` and `accepted`, the subscriber's features as of P, and `label` = 1 when the
/// subscriber left within `[P, P + horizon)`: a churn label took effect, or an exit began (a
/// suspension, stop request, port-out or cancellation: the silent path's cancellation comes
/// months later, often after the data ends). The contacted subscribers' rows are read once
/// ([`crate::Subset`]) and each period's plan runs on a session that holds only that period's
/// contacts, so the cost follows the campaigns, not the operator. Beyond
/// `max_contacts` contacts in all (uplift uses [`MAX_CAMPAIGN_CONTACTS`]), a fixed hash sample
/// of the contacted subscribers is taken.
pub async fn campaign_set(
    workspace: &retain_data::Workspace,
    set: &FeatureSet,
    periods: &[NaiveDate],
    horizon_months: u32,
    labels: &LabelConfig,
    max_contacts: u64,
) -> Result<Vec<RecordBatch>> {
    if periods.is_empty() {
        return Ok(Vec::new());
    }
    let list = periods
        .iter()
        .map(|p| format!("DATE '{}'", month_start(*p)))
        .collect::<Vec<_>>()
        .join(", ");
    let contacts = {
        let ctx = crate::session(workspace).await?;
        let counted = crate::frame::query(
            &ctx,
            &format!("SELECT COUNT(*) AS n FROM campaign_history WHERE period IN ({list})"),
            "counting campaign contacts",
        )
        .await?;
        counted
            .iter()
            .find(|b| b.num_rows() > 0)
            .map_or(0, |b| b.column(0).as_primitive::<Int64Type>().value(0))
    };
    let contacts = u64::try_from(contacts).unwrap_or(0);
    let sampled = if contacts > max_contacts {
        tracing::info!(
            contacts,
            max_contacts,
            "a hash sample of the campaign contacts"
        );
        format!(" AND {}", crate::hash_sample(max_contacts, contacts))
    } else {
        String::new()
    };
    let started = std::time::Instant::now();
    let subset = crate::Subset::read(
        workspace,
        &format!(
            "subscriber_id IN (SELECT subscriber_id FROM campaign_history__all \
             WHERE period IN ({list})){sampled}"
        ),
    )
    .await?;
    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        "the contacted subscribers' rows read"
    );
    let mut out = Vec::new();
    for &p in periods {
        let p = month_start(p);
        let ctx = subset
            .session(
                workspace,
                &format!(
                    "subscriber_id IN (SELECT subscriber_id FROM campaign_history__all \
                     WHERE period = DATE '{p}')"
                ),
            )
            .await?;
        let ctx = &ctx;
        register_labels(ctx, labels).await?;
        let end = p + Months::new(horizon_months);
        let sql = format!(
            "WITH {ctes},
             left_after AS (
                SELECT subscriber_id FROM {LABELS_VIEW}
                WHERE effective_month >= DATE '{p}' AND effective_month < DATE '{end}'
                UNION
                SELECT subscriber_id FROM events
                WHERE kind IN ('suspension', 'stop_request', 'port_out', 'cancel')
                  AND \"timestamp\" >= TIMESTAMP '{p}T00:00:00' AND \"timestamp\" < TIMESTAMP '{end}T00:00:00'),
             c AS (SELECT * FROM campaign_history WHERE period = DATE '{p}')
             SELECT c.subscriber_id, DATE '{p}' AS snapshot,
                    CAST(CASE WHEN l.subscriber_id IS NULL THEN 0 ELSE 1 END AS INT) AS label,
                    c.arm, c.offer_id, c.offer_kind, c.channel, c.reached, c.accepted,
                    {select}
             FROM c JOIN f ON f.subscriber_id = c.subscriber_id
             LEFT JOIN (SELECT DISTINCT subscriber_id FROM left_after) l
                    ON l.subscriber_id = c.subscriber_id
             ORDER BY c.subscriber_id",
            ctes = feature_ctes(&set.compiler, p),
            select = set.select(),
        );
        out.extend(crate::frame::query(ctx, &sql, "a campaign snapshot").await?);
    }
    Ok(out)
}

/// The monthly snapshots with `history_months` of data before them and `outcome_months` of data
/// after them (the label horizon plus the suspension gap of a backwards-traced cancellation).
pub async fn observable_snapshots(
    ctx: &SessionContext,
    history_months: u32,
    outcome_months: u32,
) -> Result<Vec<NaiveDate>> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Date32Type;
    let batches = crate::frame::query(
        ctx,
        "SELECT MIN(period), MAX(period) FROM usage_monthly",
        "the data window",
    )
    .await?;
    let Some(b) = batches
        .iter()
        .find(|b| b.num_rows() > 0 && !b.column(0).is_null(0))
    else {
        return Err(Error::BadFeature(
            "usage_monthly has no rows: no snapshot to take".into(),
        ));
    };
    let first = retain_data::days_to_date(b.column(0).as_primitive::<Date32Type>().value(0));
    let last = retain_data::days_to_date(b.column(1).as_primitive::<Date32Type>().value(0));
    let after_last = last + Months::new(1);
    let mut out = Vec::new();
    let mut s = month_start(first + Months::new(history_months));
    while s + Months::new(outcome_months) <= after_last {
        out.push(s);
        s = s + Months::new(1);
    }
    if out.is_empty() {
        return Err(Error::BadFeature(format!(
            "the data ({first} to {last}) is too short: a snapshot needs {history_months} months of history and {outcome_months} months of outcome after it"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{NETWORK_MEASURES, SOCIAL, Source};

    /// `--without network` must leave out exactly the features that read the network's tables.
    #[test]
    fn the_network_features_are_those_reading_the_network() {
        let reading: Vec<&str> = DEFAULT_FEATURES
            .iter()
            .filter(|(name, text)| {
                let set = FeatureSet::compile(&[(name, text)]).unwrap();
                set.compiler.sources.iter().any(|s| match s {
                    Source::Usage { measure, .. } => NETWORK_MEASURES.contains(measure),
                    Source::Profile(name) => SOCIAL.contains(name),
                    _ => false,
                })
            })
            .map(|(name, _)| *name)
            .collect();
        assert_eq!(reading, NETWORK_FEATURES);
    }
}

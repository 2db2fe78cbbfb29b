//! One segmentation run: RFM, lifetime value, lifecycle stage, clusters and scenario groups for
//! every subscriber, with the cluster profiles and retention curves. Each step is a module of
//! its own; this one runs them in order and writes the segments table and the report.

pub(crate) mod functions;
mod place;
mod profiles;
mod read;
mod rfm;
mod stats;
mod value;

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use datafusion::execution::context::SessionContext;
use retain_data::Workspace;
use retain_features::outputs;
use serde::{Deserialize, Serialize};

use crate::config::SegmentConfig;
use crate::error::{Error, Result};
use crate::network::{self, NetworkSegments};
use crate::{cluster, features};
use place::Placer;
use stats::Histogram;

pub use profiles::{ClusterName, ClusterNames};
pub use read::{RfmCell, read_segment_report, rfm_grid};

/// RFM groups: code, 中文.
pub const RFM_GROUPS: &[(&str, &str)] = &[
    ("sleeping_high_value", "沉睡高价值"),
    ("core_active", "核心活跃"),
    ("high_frequency_low_spend", "高频低消"),
    ("at_risk_valuable", "高价值待挽留"),
    ("new_potential", "潜力新客"),
    ("low_value", "低价值"),
    ("regular", "一般保持"),
];
/// Lifecycle stages: code, 中文.
pub const LIFECYCLE_STAGES: &[(&str, &str)] = &[
    ("onboarding", "入网期"),
    ("growth", "成长期"),
    ("mature", "成熟期"),
    ("decline", "衰退期"),
    ("churned", "流失"),
];
/// Value tiers: code, 中文.
pub const VALUE_TIERS: &[(&str, &str)] =
    &[("high", "高价值"), ("medium", "中价值"), ("low", "低价值")];
/// Scenario groups: code, 中文.
pub const SCENARIOS: &[(&str, &str)] = &[
    ("voice_dominant_senior", "语音主导老年客户"),
    ("data_dominant_young", "流量主导年轻客户"),
    ("family_convergence", "家庭融合客户"),
    ("group_member_small", "小型政企成员"),
    ("group_member_medium", "中型政企成员"),
    ("group_member_large", "大型政企成员"),
];

/// A cluster's profile.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterProfile {
    pub id: usize,
    pub name_zh: String,
    pub name_en: String,
    pub size: u64,
    pub share: f64,
    pub revenue_share: f64,
    pub arpu: f64,
    /// Share of the cluster's look-alikes three months earlier who left within those months.
    pub churn_rate: f64,
    pub top_features: Vec<String>,
}

/// A retention curve summary for one segment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Retention {
    pub segment: String,
    pub subjects: u64,
    pub churn_events: u64,
    /// Survival at 6, 12, 24, 36 and 60 months of tenure; null where nobody in the segment was
    /// observed at that tenure (old cohorts were never seen young).
    pub survival: BTreeMap<String, Option<f64>>,
}

/// The segmentation's report under `reports/`, which the dashboard shows.
pub const SEGMENTS_REPORT: &str = "segments.json";

/// The segmentation report (the `--json` object).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegmentReport {
    pub as_of: NaiveDate,
    pub subscribers: u64,
    pub active: u64,
    pub clusters: Vec<ClusterProfile>,
    pub silhouettes: Vec<(usize, f64)>,
    pub rfm_group: BTreeMap<String, u64>,
    pub value_tier: BTreeMap<String, u64>,
    pub lifecycle_stage: BTreeMap<String, u64>,
    pub scenario: BTreeMap<String, u64>,
    /// Members of each tag of the tag library.
    pub tags: BTreeMap<String, u64>,
    pub midhigh: u64,
    /// Where expected lifetimes came from.
    pub value_source: ValueSource,
    pub retention: Vec<Retention>,
    /// Where cancellations concentrate: by tenure band, by calendar month, and by months
    /// between leaving and the end of the nearest contract.
    pub churn_by_tenure: BTreeMap<String, u64>,
    pub churn_by_month: BTreeMap<String, u64>,
    pub churn_by_contract_end: BTreeMap<String, u64>,
    /// Home cells, districts and calling circles; absent without the network's tables.
    #[serde(default)]
    pub network: Option<NetworkSegments>,
    /// Where the segments table and this report were written; left out where the files' place
    /// on the server's disk is nobody's business (the dashboard).
    #[serde(default, skip_serializing_if = "retain_data::is_empty_path")]
    pub segments_file: PathBuf,
    #[serde(default, skip_serializing_if = "retain_data::is_empty_path")]
    pub report_file: PathBuf,
}

/// Where the lifetime values' expected months came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueSource {
    /// The churn model's monthly probabilities.
    Model,
    /// The retention curves of the subscriber's plan tier.
    RetentionCurves,
}

/// Runs the segmentation as of `as_of` (a first day of month) and writes its outputs: the
/// segments table, the tags, and the report under `reports/`.
///
/// Every per-subscriber step is a plan the engine runs where the rows are (on a cluster, the
/// executors): the behaviour of every subscriber is written once to a file beside the segments
/// table; the quintiles, percentiles, retention curves and cluster sizes are counted over it;
/// the clusters are fitted on a sample of at most `fit_sample` active subscribers; and the
/// placement of everyone is a function of their row ([`functions`]) whose table the engine
/// writes. This process holds counts and the sample, never a row per subscriber.
pub async fn segment(
    ctx: &SessionContext,
    config: &SegmentConfig,
    workspace: &Workspace,
    as_of: NaiveDate,
) -> Result<SegmentReport> {
    // Embedded above a million subscribers, a subscriber partition at a time, as the features
    // are; a cluster spreads the plan over its executors.
    let parts = if retain_features::engine::cluster().is_some() {
        1
    } else {
        retain_features::feature_partitions(workspace)?
    };
    segment_in_partitions(ctx, config, workspace, as_of, parts).await
}

/// [`segment`] with the embedded engine's per-subscriber plans run one subscriber partition of
/// `parts` at a time (ignored on a cluster): the same outputs.
pub async fn segment_in_partitions(
    ctx: &SessionContext,
    config: &SegmentConfig,
    workspace: &Workspace,
    as_of: NaiveDate,
    parts: u32,
) -> Result<SegmentReport> {
    let mut clock = std::time::Instant::now();
    let mut lap = |step: &str| {
        tracing::debug!(seconds = clock.elapsed().as_secs_f64(), "segment: {step}");
        clock = std::time::Instant::now();
    };
    let on_cluster = retain_features::engine::cluster().is_some();
    let parts = if on_cluster { 1 } else { parts.max(1) };
    let scores = retain_model::latest_scores(workspace).map(|f| f.path);
    let segments_file = outputs::segments_file(workspace);
    let dir = segments_file.parent().expect("a file in a directory");
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    remove_stale_scratch(dir);
    // Named for this process: two runs at once must not read or remove each other's.
    let behaviour = Scratch(dir.join(format!(
        "{SCRATCH_PREFIX}{as_of}-{}.parquet",
        std::process::id()
    )));
    let run = Run {
        ctx,
        workspace,
        parts,
        scores: scores.as_deref(),
        behaviour: &behaviour.0,
    };
    run.write_behaviour(as_of, on_cluster).await?;
    run.register_behaviour(ctx).await?;
    lap("behaviour");

    let cohorts = run.cohorts().await?;
    let active_filter = "alive";
    let number = |c: &str| format!("COALESCE({c}, 0)");
    let arpu = Histogram::query(ctx, &number("arpu_3m"), BEHAVIOUR, active_filter).await?;
    if arpu.total() == 0 {
        return Err(Error::BadRequest(format!(
            "no active subscribers as of {as_of}"
        )));
    }
    let active_days =
        Histogram::query(ctx, &number("active_days_3m"), BEHAVIOUR, active_filter).await?;
    let voice = Histogram::query(ctx, &number("voice_3m"), BEHAVIOUR, active_filter).await?;
    let data = Histogram::query(ctx, &number("data_3m"), BEHAVIOUR, active_filter).await?;
    let window_months = months_between(first_month(ctx).await?, as_of);
    let curves = value::Curves::fit(&cohorts, window_months);
    lap("RFM quintiles and retention curves");

    let sample = run
        .cluster_sample(arpu.total(), config.clusters.fit_sample)
        .await?;
    let (clustering, _) = cluster::fit(sample, &config.clusters);
    let labels = profiles::labels(&clustering, workspace)?;
    lap("clusters");

    let vc = &config.value;
    let bits = f64::to_bits;
    let mut placer = Placer {
        rfm: config.rfm.clone(),
        lifecycle: config.lifecycle.clone(),
        value: vc.clone(),
        curves,
        clustering,
        names: labels
            .iter()
            .map(|l| (l.name_zh.clone(), l.name_en.clone()))
            .collect(),
        f_cuts: active_days.quintile_cuts().map(bits),
        m_cuts: arpu.quintile_cuts().map(bits),
        voice_median: bits(voice.percentile(0.5)),
        data_median: bits(data.percentile(0.5)),
        data_p75: bits(data.percentile(0.75)),
        midhigh_cut: bits(
            vc.midhigh_arpu_threshold
                .unwrap_or_else(|| arpu.percentile(1.0 - vc.midhigh_top_share)),
        ),
        high_cut: bits(f64::INFINITY),
        medium_cut: bits(f64::INFINITY),
    };
    Run::register_functions(ctx, &placer)?;
    let clv = Histogram::query(
        ctx,
        &format!("{}({})", functions::CLV, functions::args()),
        BEHAVIOUR,
        active_filter,
    )
    .await?;
    placer.high_cut = bits(clv.rank_cut(1.0 - vc.high_share));
    placer.medium_cut = bits(clv.rank_cut(1.0 - vc.high_share - vc.medium_share));
    Run::register_functions(ctx, &placer)?;
    lap("lifetime values");

    let members = run.members(placer.clustering.k).await?;
    let lookalikes = run.lookalikes(as_of, &placer).await?;
    lap("look-alikes' behaviour three months earlier");

    if scores.is_some() {
        run.register_scores(ctx).await?;
    }
    let network = crate::network::segment_network(
        ctx,
        workspace,
        as_of,
        scores.is_some().then_some(features::SCORES),
    )
    .await?;
    lap("home cells and calling circles");

    run.write_placements(&segments_file, on_cluster).await?;
    let placed = run.placed_counts(&segments_file).await?;
    lap("placements");
    // Tags read this run's segments and the newest warning list.
    let _ = ctx.deregister_table("segments");
    let _ = ctx.deregister_table("latest_warnings");
    let tags = crate::tags::TagLibrary::for_workspace(workspace)?
        .compute(ctx, workspace, as_of)
        .await?;
    lap("tags");

    let report = SegmentReport {
        as_of,
        subscribers: cohorts.iter().map(|c| c.count).sum(),
        active: arpu.total(),
        clusters: profiles::profiles(&members, &labels, &lookalikes),
        silhouettes: placer.clustering.silhouettes.clone(),
        rfm_group: placed.count(RFM_GROUPS, |p| p.rfm_group.as_deref().into_iter().collect()),
        value_tier: placed.count(VALUE_TIERS, |p| {
            p.value_tier.as_deref().into_iter().collect()
        }),
        lifecycle_stage: placed.count(LIFECYCLE_STAGES, |p| vec![p.lifecycle_stage.as_str()]),
        scenario: placed.count(SCENARIOS, |p| p.scenarios.split_whitespace().collect()),
        tags,
        value_source: if scores.is_some() {
            ValueSource::Model
        } else {
            ValueSource::RetentionCurves
        },
        midhigh: placed
            .0
            .iter()
            .filter(|(p, _)| p.midhigh)
            .map(|(_, n)| n)
            .sum(),
        retention: placer.curves.summaries(&cohorts),
        churn_by_tenure: value::churn_by_tenure(&cohorts),
        churn_by_month: value::churn_by_month(ctx, as_of).await?,
        churn_by_contract_end: value::churn_by_contract_end(&run.contract_ends().await?),
        network,
        segments_file,
        report_file: outputs::reports_dir(workspace).join(SEGMENTS_REPORT),
    };
    for table in [BEHAVIOUR, features::SCORES, network::HOME, network::CIRCLES] {
        let _ = ctx.deregister_table(table);
    }
    write_report(workspace, &report)?;
    Ok(report)
}

/// Where the run's behaviour file is registered.
const BEHAVIOUR: &str = "segment_behaviour";
/// Where the behaviour three months earlier is registered.
const EARLIER: &str = "segment_earlier";
/// Where the written segments table is registered for counting.
const WRITTEN: &str = "segment_written";

/// The start of a run's scratch file's name in `segments/`.
const SCRATCH_PREFIX: &str = ".behaviour-";

/// Removes scratch files a day old: left by a run that was killed before it could remove its
/// own (no run takes a day).
fn remove_stale_scratch(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let day = std::time::Duration::from_hours(24);
    for entry in entries.filter_map(std::result::Result::ok) {
        let stale = entry
            .file_name()
            .to_string_lossy()
            .starts_with(SCRATCH_PREFIX)
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > day);
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A file of this run that goes however the run ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// What the steps of one run share.
struct Run<'a> {
    ctx: &'a SessionContext,
    workspace: &'a Workspace,
    parts: u32,
    scores: Option<&'a std::path::Path>,
    behaviour: &'a std::path::Path,
}

fn engine(what: &str) -> impl Fn(datafusion::error::DataFusionError) -> Error + '_ {
    move |e| Error::engine(what, e)
}

impl Run<'_> {
    /// Registers the newest scores (if any) in `session` for the behaviour plan.
    async fn register_scores(&self, session: &SessionContext) -> Result<()> {
        let _ = session.deregister_table(features::SCORES);
        let Some(path) = self.scores else {
            return Ok(());
        };
        let schema = Schema::new(vec![
            Field::new("subscriber_id", DataType::Int64, false),
            Field::new("probability", DataType::Float64, true),
            Field::new("decile", DataType::Int64, true),
            Field::new("reason_1", DataType::Utf8, true),
            Field::new("reason_2", DataType::Utf8, true),
            Field::new("reason_3", DataType::Utf8, true),
            Field::new("model_version", DataType::Int64, true),
        ]);
        session
            .register_csv(
                features::SCORES,
                &*path.to_string_lossy(),
                datafusion::prelude::CsvReadOptions::new()
                    .schema(&schema)
                    .has_header(true),
            )
            .await
            .map_err(engine("reading the churn scores"))
    }

    /// Writes every subscriber's behaviour as of `as_of`, in subscriber order, to the run's
    /// behaviour file: from an executor on a cluster, else streamed a partition at a time.
    async fn write_behaviour(&self, as_of: NaiveDate, on_cluster: bool) -> Result<()> {
        let sql = features::sql(as_of, self.scores.is_some());
        let path = self.behaviour;
        if on_cluster {
            self.register_scores(self.ctx).await?;
            self.ctx
                .sql(&sql)
                .await
                .map_err(engine("planning the behaviour"))?
                .write_parquet(
                    &path.to_string_lossy(),
                    datafusion::dataframe::DataFrameWriteOptions::new()
                        .with_single_file_output(true),
                    None,
                )
                .await
                .map_err(engine("writing the behaviour"))?;
            return Ok(());
        }
        let mut writer = None;
        for part in 0..self.parts.max(1) {
            let session =
                retain_features::session_for(self.ctx, self.workspace, part, self.parts).await?;
            self.register_scores(&session).await?;
            let mut stream = session
                .sql(&sql)
                .await
                .map_err(engine("planning the behaviour"))?
                .execute_stream()
                .await
                .map_err(engine("computing the behaviour"))?;
            while let Some(batch) = futures::StreamExt::next(&mut stream).await {
                let batch = batch.map_err(engine("computing the behaviour"))?;
                if writer.is_none() {
                    writer = Some(retain_data::TableWriter::create(path, batch.schema())?);
                }
                if let Some(w) = writer.as_mut() {
                    w.write(&batch)?;
                }
            }
        }
        match writer {
            Some(w) => {
                w.close()?;
                Ok(())
            }
            None => Err(Error::BadRequest(format!(
                "no subscriber had joined by {as_of}"
            ))),
        }
    }

    /// Registers the behaviour file in `session`, known to be in subscriber order.
    async fn register_behaviour(&self, session: &SessionContext) -> Result<()> {
        use datafusion::prelude::{ParquetReadOptions, col};
        let _ = session.deregister_table(BEHAVIOUR);
        let options = ParquetReadOptions::default()
            .file_sort_order(vec![vec![col("subscriber_id").sort(true, false)]]);
        session
            .register_parquet(BEHAVIOUR, &*self.behaviour.to_string_lossy(), options)
            .await
            .map_err(engine("reading the behaviour"))
    }

    fn register_functions(session: &SessionContext, placer: &Placer) -> Result<()> {
        for udf in functions::functions(placer)? {
            session.register_udf(udf);
        }
        Ok(())
    }

    async fn query(&self, sql: &str, what: &str) -> Result<Vec<RecordBatch>> {
        Ok(retain_features::frame::query(self.ctx, sql, what).await?)
    }

    /// Everyone counted by the history the retention curves need.
    async fn cohorts(&self) -> Result<Vec<value::Cohort>> {
        let batches = self
            .query(
                &format!(
                    "SELECT CAST(COALESCE(plan_tier, 0) AS BIGINT) AS tier, \
                     COALESCE(is_group_member, FALSE) AS grp, \
                     CAST(COALESCE(join_year, 0) AS BIGINT) AS join_year, \
                     greatest(COALESCE(tenure_months, 0), 0) AS tenure, left_at_tenure, \
                     COUNT(*) AS n FROM {BEHAVIOUR} GROUP BY 1, 2, 3, 4, 5"
                ),
                "counting tenures",
            )
            .await?;
        let mut out = Vec::new();
        for b in &batches {
            let int = |i: usize| b.column(i).as_primitive::<Int64Type>();
            let float = |i: usize| b.column(i).as_primitive::<Float64Type>();
            let (tier, group, year, tenure, left, n) = (
                int(0),
                b.column(1).as_boolean(),
                int(2),
                float(3),
                float(4),
                int(5),
            );
            for row in 0..b.num_rows() {
                out.push(value::Cohort {
                    tier: tier.value(row),
                    is_group_member: group.value(row),
                    join_year: year.value(row),
                    tenure_months: tenure.value(row),
                    left_at_tenure: (!left.is_null(row)).then(|| left.value(row)),
                    count: u64::try_from(n.value(row)).unwrap_or(0),
                });
            }
        }
        // Curves sum their subjects' counts: in one order, whatever the engine's.
        out.sort_by(|a, b| {
            (a.tier, a.is_group_member, a.join_year)
                .cmp(&(b.tier, b.is_group_member, b.join_year))
                .then(a.tenure_months.total_cmp(&b.tenure_months))
                .then(
                    a.left_at_tenure
                        .unwrap_or(f64::NEG_INFINITY)
                        .total_cmp(&b.left_at_tenure.unwrap_or(f64::NEG_INFINITY)),
                )
        });
        Ok(out)
    }

    /// Leavers counted by months between leaving and the nearest contract end.
    async fn contract_ends(&self) -> Result<Vec<(Option<f64>, u64)>> {
        let batches = self
            .query(
                &format!(
                    "SELECT contract_end_at_churn, COUNT(*) AS n FROM {BEHAVIOUR} \
                     WHERE left_at_tenure IS NOT NULL GROUP BY 1"
                ),
                "counting leavers by contract end",
            )
            .await?;
        let mut out = Vec::new();
        for b in &batches {
            let months = b.column(0).as_primitive::<Float64Type>();
            let n = b.column(1).as_primitive::<Int64Type>();
            for row in 0..b.num_rows() {
                out.push((
                    (!months.is_null(row)).then(|| months.value(row)),
                    u64::try_from(n.value(row)).unwrap_or(0),
                ));
            }
        }
        Ok(out)
    }

    /// The clustering features of a fixed hash sample of about `keep` of the `active`
    /// subscribers (all of them when fewer), in subscriber order.
    async fn cluster_sample(&self, active: u64, keep: u64) -> Result<Vec<Vec<f64>>> {
        let sample = if active > keep {
            format!(" AND {}", retain_features::hash_sample(keep, active))
        } else {
            String::new()
        };
        let batches = self
            .query(
                &format!(
                    "SELECT {} FROM {BEHAVIOUR} WHERE alive{sample} ORDER BY subscriber_id",
                    functions::args()
                ),
                "sampling the active subscribers",
            )
            .await?;
        let mut rows = Vec::new();
        for b in &batches {
            let behaviours = functions::rows(b.columns())
                .map_err(|e| Error::Internal(format!("the cluster sample: {e}")))?;
            rows.extend(behaviours.iter().map(|(b, _)| Placer::cluster_row(b)));
        }
        Ok(rows)
    }

    /// Each of the `k` clusters' active members and revenue.
    async fn members(&self, k: usize) -> Result<Vec<profiles::Members>> {
        let batches = self
            .query(
                &format!(
                    "SELECT {}({}) AS c, COUNT(*) AS n, SUM(COALESCE(arpu_3m, 0)) AS revenue \
                     FROM {BEHAVIOUR} WHERE alive GROUP BY 1",
                    functions::CLUSTER,
                    functions::args()
                ),
                "sizing the clusters",
            )
            .await?;
        let mut out = vec![profiles::Members::default(); k];
        for b in &batches {
            let (c, n) = (
                b.column(0).as_primitive::<Int64Type>(),
                b.column(1).as_primitive::<Int64Type>(),
            );
            let revenue = b.column(2).as_primitive::<Float64Type>();
            for row in 0..b.num_rows() {
                if let Some(slot) = usize::try_from(c.value(row))
                    .ok()
                    .and_then(|c| out.get_mut(c))
                {
                    slot.size = u64::try_from(n.value(row)).unwrap_or(0);
                    slot.revenue = revenue.value(row);
                }
            }
        }
        Ok(out)
    }

    /// Per cluster, subscribers alive three months before `as_of` placed with the same
    /// centroids, and how many of them left since: the churn rate of look-alikes.
    async fn lookalikes(&self, as_of: NaiveDate, placer: &Placer) -> Result<Vec<(u64, u64)>> {
        let earlier = as_of
            .checked_sub_months(chrono::Months::new(3))
            .ok_or_else(|| Error::BadRequest(format!("{as_of} is out of range")))?;
        let sql = format!(
            "SELECT {}({}) AS c, COUNT(*) AS seen, \
             SUM(CASE WHEN n.subscriber_id IS NULL THEN 0 ELSE 1 END) AS gone \
             FROM {EARLIER} e LEFT JOIN (SELECT subscriber_id FROM {BEHAVIOUR} WHERE NOT alive) n \
             ON n.subscriber_id = e.subscriber_id WHERE e.alive GROUP BY 1",
            functions::CLUSTER,
            functions::args(),
        );
        let mut out = vec![(0u64, 0u64); placer.clustering.k];
        for part in 0..self.parts.max(1) {
            let session =
                retain_features::session_for(self.ctx, self.workspace, part, self.parts).await?;
            if self.parts > 1 {
                self.register_behaviour(&session).await?;
                Self::register_functions(&session, placer)?;
            }
            let _ = session.deregister_table(EARLIER);
            let frame = session
                .sql(&features::sql(earlier, false))
                .await
                .map_err(engine("planning the earlier behaviour"))?;
            session
                .register_table(EARLIER, frame.into_view())
                .map_err(engine("planning the earlier behaviour"))?;
            let batches =
                retain_features::frame::query(&session, &sql, "counting the look-alikes").await;
            let _ = session.deregister_table(EARLIER);
            for b in &batches? {
                let (c, seen, gone) = (
                    b.column(0).as_primitive::<Int64Type>(),
                    b.column(1).as_primitive::<Int64Type>(),
                    b.column(2).as_primitive::<Int64Type>(),
                );
                for row in 0..b.num_rows() {
                    if let Some(slot) = usize::try_from(c.value(row))
                        .ok()
                        .and_then(|c| out.get_mut(c))
                    {
                        slot.0 += u64::try_from(seen.value(row)).unwrap_or(0);
                        slot.1 += u64::try_from(gone.value(row)).unwrap_or(0);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Writes the segments table: everyone's place, in subscriber order, from an executor on
    /// a cluster, else streamed; under a temporary name renamed into place once complete.
    async fn write_placements(&self, path: &std::path::Path, on_cluster: bool) -> Result<()> {
        let columns = functions::place_fields()
            .iter()
            .map(|f| format!("get_field(p, '{0}') AS {0}", f.name()))
            .collect::<Vec<_>>()
            .join(", ");
        // Where the subscriber lives on the network and the circle it calls in, beside its place.
        let (home, circles) = (network::HOME, network::CIRCLES);
        let sql = format!(
            "SELECT b.subscriber_id, {columns}, h.home_cell, h.district, c.circle, \
             c.circle_leader, c.circle_churn_rate \
             FROM (SELECT subscriber_id, {}({}) AS p FROM {BEHAVIOUR}) b \
             LEFT JOIN {home} h ON h.subscriber_id = b.subscriber_id \
             LEFT JOIN {circles} c ON c.subscriber_id = b.subscriber_id \
             ORDER BY b.subscriber_id",
            functions::PLACE,
            functions::args()
        );
        let partial =
            Scratch(path.with_extension(format!("parquet.{}.writing", std::process::id())));
        let frame = self
            .ctx
            .sql(&sql)
            .await
            .map_err(engine("planning the placements"))?;
        if on_cluster {
            frame
                .write_parquet(
                    &partial.0.to_string_lossy(),
                    datafusion::dataframe::DataFrameWriteOptions::new()
                        .with_single_file_output(true),
                    None,
                )
                .await
                .map_err(engine("writing the segments"))?;
        } else {
            let mut stream = frame
                .execute_stream()
                .await
                .map_err(engine("placing the subscribers"))?;
            let mut writer = retain_data::TableWriter::create(&partial.0, stream.schema())?;
            while let Some(batch) = futures::StreamExt::next(&mut stream).await {
                writer.write(&batch.map_err(engine("placing the subscribers"))?)?;
            }
            writer.close()?;
        }
        std::fs::rename(&partial.0, path)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))
    }

    /// The segments table counted by everything the report counts.
    async fn placed_counts(&self, path: &std::path::Path) -> Result<Placed> {
        let _ = self.ctx.deregister_table(WRITTEN);
        self.ctx
            .register_parquet(
                WRITTEN,
                &*path.to_string_lossy(),
                datafusion::prelude::ParquetReadOptions::default(),
            )
            .await
            .map_err(engine("reading the segments"))?;
        let batches = self
            .query(
                &format!(
                    "SELECT rfm_group, value_tier, lifecycle_stage, scenarios, midhigh, \
                     COUNT(*) AS n FROM {WRITTEN} GROUP BY 1, 2, 3, 4, 5"
                ),
                "counting the segments",
            )
            .await;
        let _ = self.ctx.deregister_table(WRITTEN);
        let mut out = Vec::new();
        for b in &batches? {
            let text = |i: usize| -> Result<Vec<Option<String>>> {
                let cast = datafusion::arrow::compute::cast(b.column(i), &DataType::Utf8)
                    .map_err(|e| Error::Internal(format!("reading the segments: {e}")))?;
                let strings = cast.as_string::<i32>();
                Ok((0..b.num_rows())
                    .map(|r| (!strings.is_null(r)).then(|| strings.value(r).to_owned()))
                    .collect())
            };
            let (group, tier, stage, scenarios) = (text(0)?, text(1)?, text(2)?, text(3)?);
            let midhigh = b.column(4).as_boolean();
            let n = b.column(5).as_primitive::<Int64Type>();
            for row in 0..b.num_rows() {
                out.push((
                    PlacedGroup {
                        rfm_group: group[row].clone(),
                        value_tier: tier[row].clone(),
                        lifecycle_stage: stage[row].clone().unwrap_or_default(),
                        scenarios: scenarios[row].clone().unwrap_or_default(),
                        midhigh: !midhigh.is_null(row) && midhigh.value(row),
                    },
                    u64::try_from(n.value(row)).unwrap_or(0),
                ));
            }
        }
        Ok(Placed(out))
    }
}

/// Subscribers who share every counted column of the segments table.
struct PlacedGroup {
    rfm_group: Option<String>,
    value_tier: Option<String>,
    lifecycle_stage: String,
    scenarios: String,
    midhigh: bool,
}

/// The segments table as [`PlacedGroup`]s and their sizes.
struct Placed(Vec<(PlacedGroup, u64)>);

impl Placed {
    /// Members of each code (every code listed, empty ones as 0).
    fn count(
        &self,
        codes: &[(&str, &str)],
        pick: impl Fn(&PlacedGroup) -> Vec<&str>,
    ) -> BTreeMap<String, u64> {
        let mut map: BTreeMap<String, u64> =
            codes.iter().map(|(c, _)| ((*c).to_owned(), 0)).collect();
        for (group, n) in &self.0 {
            for code in pick(group) {
                *map.entry(code.to_owned()).or_default() += n;
            }
        }
        map
    }
}

/// Writes the report (JSON, for the dashboard) and the clusters' table (Markdown, for
/// analysts) under `reports/`.
fn write_report(workspace: &Workspace, report: &SegmentReport) -> Result<()> {
    retain_data::write_json(&report.report_file, report)?;
    retain_data::write_atomically(
        &outputs::reports_dir(workspace).join("clusters.md"),
        profiles::cluster_markdown(report).as_bytes(),
    )?;
    Ok(())
}

/// The first month the usage table covers.
async fn first_month(ctx: &SessionContext) -> Result<NaiveDate> {
    Ok(
        retain_features::loaded_periods(ctx, retain_features::Cadence::Monthly)
            .await?
            .0,
    )
}

fn months_between(a: NaiveDate, b: NaiveDate) -> f64 {
    use chrono::Datelike;
    f64::from((b.year() - a.year()) * 12 + b.month() as i32 - a.month() as i32)
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

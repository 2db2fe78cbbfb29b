//! One segmentation run: RFM, lifetime value, lifecycle stage, clusters and scenario groups for
//! every subscriber, with the cluster profiles and retention curves. Each step is a module of
//! its own; this one runs them in order and writes the segments table and the report.

mod place;
mod profiles;
mod read;
mod rfm;
mod value;

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::NaiveDate;
use datafusion::execution::context::SessionContext;
use retain_data::{SubscriberId, Workspace};
use retain_features::outputs;
use serde::{Deserialize, Serialize};

use crate::cluster;
use crate::config::SegmentConfig;
use crate::error::{Error, Result};
use crate::features::{Behaviour, behaviour_in_partitions};

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

/// A named subset of subscribers, for retention curves.
/// Where one subscriber sits.
#[derive(Debug, Clone, Serialize)]
pub struct Placement {
    pub subscriber_id: SubscriberId,
    pub rfm: Option<(u8, u8, u8)>,
    pub rfm_group: Option<&'static str>,
    pub clv: Option<f64>,
    pub value_tier: Option<&'static str>,
    pub midhigh: bool,
    pub lifecycle_stage: &'static str,
    pub cluster: Option<usize>,
    pub scenarios: Vec<&'static str>,
}

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
pub async fn segment(
    ctx: &SessionContext,
    config: &SegmentConfig,
    workspace: &Workspace,
    as_of: NaiveDate,
) -> Result<(SegmentReport, Vec<Placement>)> {
    let mut clock = std::time::Instant::now();
    let mut lap = |step: &str| {
        tracing::debug!(seconds = clock.elapsed().as_secs_f64(), "segment: {step}");
        clock = std::time::Instant::now();
    };
    // Above a million subscribers, a subscriber partition at a time, as the features are.
    let parts = retain_features::feature_partitions(workspace)?;
    let people = behaviour_in_partitions(ctx, workspace, as_of, parts).await?;
    lap("behaviour");
    let alive: Vec<&Behaviour> = people.iter().filter(|b| b.alive).collect();
    if alive.is_empty() {
        return Err(Error::BadRequest(format!(
            "no active subscribers as of {as_of}"
        )));
    }

    let rfm = rfm::Rfm::score(&alive);
    let window_months = months_between(first_month(ctx).await?, as_of);
    let curves = value::Curves::fit(&people, window_months);
    let probabilities = retain_model::latest_scores(workspace)
        .map(|f| f.probabilities())
        .transpose()?;
    let values = value::Values::compute(&alive, &curves, probabilities.as_ref(), &config.value);
    lap("RFM, retention curves and lifetime value");

    let rows: Vec<Vec<f64>> = alive.iter().map(|b| profiles::cluster_row(b)).collect();
    let (clustering, clusters) = cluster::fit(rows, &config.clusters);
    let labels = profiles::labels(&clustering, workspace)?;
    lap("clusters");
    let lookalikes =
        profiles::lookalike_churn(ctx, workspace, &people, &clustering, as_of, parts).await?;
    lap("look-alikes' behaviour three months earlier");

    let placements = place::place(&people, &rfm, &values, &clusters, config);
    let segments_file = outputs::segments_file(workspace);
    place::write_placements(&segments_file, &placements, &labels)?;
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
        subscribers: people.len() as u64,
        active: alive.len() as u64,
        clusters: profiles::profiles(&alive, &clusters, &labels, &lookalikes),
        silhouettes: clustering.silhouettes.clone(),
        rfm_group: count(RFM_GROUPS, &placements, |p| {
            p.rfm_group.into_iter().collect()
        }),
        value_tier: count(VALUE_TIERS, &placements, |p| {
            p.value_tier.into_iter().collect()
        }),
        lifecycle_stage: count(LIFECYCLE_STAGES, &placements, |p| vec![p.lifecycle_stage]),
        scenario: count(SCENARIOS, &placements, |p| p.scenarios.clone()),
        tags,
        value_source: if probabilities.is_some() {
            ValueSource::Model
        } else {
            ValueSource::RetentionCurves
        },
        midhigh: placements.iter().filter(|p| p.midhigh).count() as u64,
        retention: curves.summaries(&people),
        churn_by_tenure: value::churn_by_tenure(&people),
        churn_by_month: value::churn_by_month(ctx, as_of).await?,
        churn_by_contract_end: value::churn_by_contract_end(&people),
        segments_file,
        report_file: outputs::reports_dir(workspace).join(SEGMENTS_REPORT),
    };
    write_report(workspace, &report)?;
    Ok((report, placements))
}

/// Members of each code (every code listed, empty ones as 0).
fn count(
    codes: &[(&str, &str)],
    placements: &[Placement],
    pick: impl Fn(&Placement) -> Vec<&'static str>,
) -> BTreeMap<String, u64> {
    let mut map: BTreeMap<String, u64> = codes.iter().map(|(c, _)| ((*c).to_owned(), 0)).collect();
    for p in placements {
        for code in pick(p) {
            *map.entry(code.to_owned()).or_default() += 1;
        }
    }
    map
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

//! One segmentation run: RFM, lifetime value, lifecycle stage, clusters and scenario groups for
//! every subscriber, with the cluster profiles and retention curves.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{Months, NaiveDate};
use datafusion::arrow::array::{
    Array, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::execution::context::SessionContext;
use retain_data::Workspace;
use retain_features::outputs;
use serde::{Deserialize, Serialize};

use crate::cluster::{self, Clustering};
use crate::config::SegmentConfig;
use crate::error::{Error, Result};
use crate::features::{Behaviour, behaviour_in_partitions};
use crate::survival::{Curve, Subject, kaplan_meier};

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
type Slice = dyn Fn(&Behaviour) -> bool;

/// Where one subscriber sits.
#[derive(Debug, Clone, Serialize)]
pub struct Placement {
    pub subscriber_id: i64,
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
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
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
    /// Where expected lifetimes came from: `model` (churn scores) or `retention_curves`.
    pub value_source: &'static str,
    pub retention: Vec<Retention>,
    /// Where cancellations concentrate: by tenure band, by calendar month, and by months
    /// between leaving and the end of the nearest contract.
    pub churn_by_tenure: BTreeMap<String, u64>,
    pub churn_by_month: BTreeMap<String, u64>,
    pub churn_by_contract_end: BTreeMap<String, u64>,
    pub segments_file: PathBuf,
    pub report_file: PathBuf,
}

/// An analyst's names for clusters, kept in `<workspace>/cluster_names.toml`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ClusterNames {
    #[serde(default, rename = "cluster")]
    pub clusters: Vec<ClusterName>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterName {
    pub id: usize,
    pub name_zh: String,
    pub name_en: String,
}

impl ClusterNames {
    pub fn load(workspace: &Workspace) -> Result<ClusterNames> {
        let path = workspace.root().join("cluster_names.toml");
        if !path.exists() {
            return Ok(ClusterNames::default());
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Records a name for a cluster, replacing an earlier one.
    pub fn rename(workspace: &Workspace, id: usize, name_zh: &str, name_en: &str) -> Result<()> {
        let mut names = Self::load(workspace)?;
        names.clusters.retain(|c| c.id != id);
        names.clusters.push(ClusterName {
            id,
            name_zh: name_zh.to_owned(),
            name_en: name_en.to_owned(),
        });
        names.clusters.sort_by_key(|c| c.id);
        let text = toml::to_string_pretty(&names).map_err(|e| Error::Internal(e.to_string()))?;
        retain_data::write_atomically(
            &workspace.root().join("cluster_names.toml"),
            text.as_bytes(),
        )?;
        Ok(())
    }
}

fn cluster_row(b: &Behaviour) -> Vec<f64> {
    vec![
        b.arpu_3m.max(0.0).ln_1p(),
        b.data_3m.max(0.0).ln_1p(),
        b.voice_3m.max(0.0).ln_1p(),
        b.active_days_3m,
        b.tenure_months.max(0.0).ln_1p(),
        b.age,
        b.family_size,
        f64::from(u8::from(b.is_group_member)),
        (b.arpu_3m / b.fee_prev_3m.max(1.0)).clamp(0.0, 3.0),
        b.complaints_6m.ln_1p(),
        b.competitor_calls_6m.ln_1p(),
        b.vas_3m.max(0.0).ln_1p(),
    ]
}

/// Scores 1–5 by quintile of the mid-rank (values below plus half the ties), so ties share a
/// score and a tie at the top scores high.
fn quintiles(values: &[f64]) -> Vec<u8> {
    let n = values.len().max(1) as f64;
    let mut out = vec![0; values.len()];
    for_each_tie(values, |indexes, below| {
        let ties = indexes.len() as f64;
        let score = 1 + (((below as f64 + ties / 2.0) / n) * 5.0).floor().min(4.0) as u8;
        for &i in indexes {
            out[i as usize] = score;
        }
    });
    out
}

/// Calls `f` with each run of equal values (their indexes) in ascending order, and how many
/// values are below the run: ranks for millions of values from one sort.
#[allow(clippy::float_cmp)] // a tie is exactly equal values, 0.0 and -0.0 among them
fn for_each_tie(values: &[f64], mut f: impl FnMut(&[u32], usize)) {
    let mut sorted: Vec<(f64, u32)> = values.iter().zip(0..).map(|(&v, i)| (v, i)).collect();
    sorted.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let mut indexes = Vec::new();
    let mut start = 0;
    while start < sorted.len() {
        let value = sorted[start].0;
        indexes.clear();
        indexes.extend(
            sorted[start..]
                .iter()
                .take_while(|(v, _)| *v == value)
                .map(|(_, i)| *i),
        );
        f(&indexes, start);
        start += indexes.len().max(1);
    }
}

/// Recency is naturally discrete in monthly billing: consumed last month scores 5, the month
/// before 4, two months before 3, three to five months 2, six or more 1.
fn recency_score(months_since: f64) -> u8 {
    match months_since as i64 {
        ..1 => 5,
        1 => 4,
        2 => 3,
        3..6 => 2,
        _ => 1,
    }
}

fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut values = values.to_vec();
    let at = ((values.len() - 1) as f64 * q).round() as usize;
    *values.select_nth_unstable_by(at, f64::total_cmp).1
}

/// The first month the usage table covers.
async fn first_month(ctx: &SessionContext) -> Result<NaiveDate> {
    let batches = ctx
        .sql("SELECT MIN(period) FROM usage_monthly")
        .await
        .map_err(|e| Error::engine("finding the data window", e))?
        .collect()
        .await
        .map_err(|e| Error::engine("finding the data window", e))?;
    batches
        .iter()
        .find(|b| b.num_rows() > 0 && !b.column(0).is_null(0))
        .map(|b| {
            retain_data::days_to_date(
                b.column(0)
                    .as_primitive::<datafusion::arrow::datatypes::Date32Type>()
                    .value(0),
            )
        })
        .ok_or_else(|| Error::BadRequest("usage_monthly has no rows: load usage first".into()))
}

fn months_between(a: NaiveDate, b: NaiveDate) -> f64 {
    use chrono::Datelike;
    f64::from((b.year() - a.year()) * 12 + b.month() as i32 - a.month() as i32)
}

/// Runs the segmentation as of `as_of` (a first day of month) and writes its outputs under
/// `<root>/segments/` and `<root>/reports/`.
#[allow(clippy::too_many_lines)]
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
    if people.iter().all(|b| !b.alive) {
        return Err(Error::BadRequest(format!(
            "no active subscribers as of {as_of}"
        )));
    }
    let alive: Vec<&Behaviour> = people.iter().filter(|b| b.alive).collect();

    // RFM.
    let r: Vec<u8> = alive
        .iter()
        .map(|b| recency_score(b.months_since_consumption))
        .collect();
    let f = quintiles(&alive.iter().map(|b| b.active_days_3m).collect::<Vec<_>>());
    let m = quintiles(&alive.iter().map(|b| b.arpu_3m).collect::<Vec<_>>());
    let rc = &config.rfm;
    let group_of = |i: usize, b: &Behaviour| -> &'static str {
        if b.months_since_consumption >= f64::from(rc.sleeping_months)
            && b.arpu_12m >= rc.sleeping_historical_arpu
        {
            "sleeping_high_value"
        } else if b.months_since_consumption < 3.0 && b.arpu_3m > rc.core_active_arpu {
            "core_active"
        } else if f[i] >= rc.high_frequency_min_score && m[i] <= rc.low_spend_max_score {
            "high_frequency_low_spend"
        } else if r[i] <= 2 && m[i] >= 4 {
            "at_risk_valuable"
        } else if b.tenure_months < 6.0 && m[i] >= 3 {
            "new_potential"
        } else if m[i] <= 2 && f[i] <= 2 {
            "low_value"
        } else {
            "regular"
        }
    };

    // Retention curves by plan tier, with delayed entry at the start of the data window.
    let window_months = months_between(first_month(ctx).await?, as_of);
    let subject = |b: &Behaviour| Subject {
        entry: (b.tenure_months - window_months).max(0.0),
        exit: b.left_at_tenure.unwrap_or(b.tenure_months),
        churned: b.left_at_tenure.is_some(),
    };
    let max_months = 360;
    let mut curves: BTreeMap<i64, Curve> = BTreeMap::new();
    let tiers: Vec<i64> = {
        let mut t: Vec<i64> = people.iter().map(|b| b.plan_tier as i64).collect();
        t.sort_unstable();
        t.dedup();
        t
    };
    for tier in &tiers {
        let subjects: Vec<Subject> = people
            .iter()
            .filter(|b| b.plan_tier as i64 == *tier)
            .map(subject)
            .collect();
        curves.insert(*tier, kaplan_meier(&subjects, max_months));
    }
    let overall = kaplan_meier(&people.iter().map(subject).collect::<Vec<_>>(), max_months);

    // Lifetime value: margin × ARPU × expected discounted months — from the churn model's
    // monthly probability when the subscriber has a score, else from the tier's curve.
    let vc = &config.value;
    let probabilities = retain_model::latest_scores(workspace)
        .map(|f| f.probabilities())
        .transpose()?;
    let clv: Vec<f64> = alive
        .iter()
        .map(|b| {
            if let Some(p) = probabilities.as_ref().and_then(|m| m.get(b.subscriber_id)) {
                // Σ qᵏ for k = 1..horizon, q the discounted chance of staying a month.
                let q = (1.0 - p).clamp(0.0, 1.0) / (1.0 + vc.monthly_discount_rate);
                let (months, _) = (0..vc.horizon_months)
                    .fold((0.0, 1.0), |(sum, term): (f64, f64), _| {
                        (sum + term * q, term * q)
                    });
                return (vc.margin_rate * b.arpu_3m * months * 100.0).round() / 100.0;
            }
            let curve = curves
                .get(&(b.plan_tier as i64))
                .filter(|c| c.events >= 20)
                .unwrap_or(&overall);
            let months =
                curve.expected_months(b.tenure_months, vc.horizon_months, vc.monthly_discount_rate);
            (vc.margin_rate * b.arpu_3m * months * 100.0).round() / 100.0
        })
        .collect();
    let clv_rank = quintile_rank(&clv);
    let midhigh_cut = vc.midhigh_arpu_threshold.unwrap_or_else(|| {
        percentile(
            &alive.iter().map(|b| b.arpu_3m).collect::<Vec<_>>(),
            1.0 - vc.midhigh_top_share,
        )
    });

    // Clusters on the active base, named from their centroids.
    lap("RFM, retention curves and lifetime value");
    let rows: Vec<Vec<f64>> = alive.iter().map(|b| cluster_row(b)).collect();
    let (clustering, labels) = cluster::fit(rows, &config.clusters);
    let names = cluster_names(&clustering, workspace)?;
    lap("clusters");

    // Churn rate of look-alikes: subscribers alive three months earlier, placed with the same
    // centroids, and whether they left since.
    let earlier = as_of
        .checked_sub_months(Months::new(3))
        .expect("date in range");
    let left_now: HashSet<i64> = people
        .iter()
        .filter(|b| !b.alive)
        .map(|b| b.subscriber_id)
        .collect();
    let mut lookalikes = vec![(0u64, 0u64); clustering.k];
    for b in behaviour_in_partitions(ctx, workspace, earlier, parts)
        .await?
        .iter()
        .filter(|b| b.alive)
    {
        let c = clustering.assign(&cluster_row(b));
        lookalikes[c].0 += 1;
        lookalikes[c].1 += u64::from(left_now.contains(&b.subscriber_id));
    }

    lap("look-alikes' behaviour three months earlier");
    let voice_median = percentile(&alive.iter().map(|b| b.voice_3m).collect::<Vec<_>>(), 0.5);
    let data_median = percentile(&alive.iter().map(|b| b.data_3m).collect::<Vec<_>>(), 0.5);
    let data_p75 = percentile(&alive.iter().map(|b| b.data_3m).collect::<Vec<_>>(), 0.75);
    let lc = &config.lifecycle;
    let mut placements = Vec::with_capacity(people.len());
    let mut alive_index = 0;
    for b in &people {
        if !b.alive {
            placements.push(Placement {
                subscriber_id: b.subscriber_id,
                rfm: None,
                rfm_group: None,
                clv: None,
                value_tier: None,
                midhigh: false,
                lifecycle_stage: "churned",
                cluster: None,
                scenarios: Vec::new(),
            });
            continue;
        }
        let i = alive_index;
        alive_index += 1;
        let declining = b
            .contract_months_left
            .is_some_and(|m| m <= f64::from(lc.decline_contract_months))
            || (b.fee_prev_3m > 0.0 && b.arpu_3m <= (1.0 - lc.decline_fee_drop) * b.fee_prev_3m)
            || b.silent_months_3m >= f64::from(lc.decline_silent_months);
        let stage = if b.tenure_months < f64::from(lc.onboarding_months) {
            "onboarding"
        } else if declining {
            "decline"
        } else if b.tenure_months < f64::from(lc.growth_months) {
            "growth"
        } else {
            "mature"
        };
        let tier = if clv_rank[i] >= 1.0 - vc.high_share {
            "high"
        } else if clv_rank[i] >= 1.0 - vc.high_share - vc.medium_share {
            "medium"
        } else {
            "low"
        };
        let mut scenarios = Vec::new();
        if b.age >= 60.0 && b.voice_3m >= voice_median && b.data_3m <= data_median {
            scenarios.push("voice_dominant_senior");
        }
        if b.age < 30.0 && b.data_3m >= data_p75 {
            scenarios.push("data_dominant_young");
        }
        if b.family_size >= 2.0 {
            scenarios.push("family_convergence");
        }
        if b.is_group_member {
            scenarios.push(if b.group_size < 10.0 {
                "group_member_small"
            } else if b.group_size < 50.0 {
                "group_member_medium"
            } else {
                "group_member_large"
            });
        }
        placements.push(Placement {
            subscriber_id: b.subscriber_id,
            rfm: Some((r[i], f[i], m[i])),
            rfm_group: Some(group_of(i, b)),
            clv: Some(clv[i]),
            value_tier: Some(tier),
            midhigh: b.arpu_3m >= midhigh_cut,
            lifecycle_stage: stage,
            cluster: Some(labels[i]),
            scenarios,
        });
    }

    let total_revenue: f64 = alive.iter().map(|b| b.arpu_3m).sum::<f64>().max(1e-9);
    let clusters: Vec<ClusterProfile> = (0..clustering.k)
        .map(|c| {
            let members: Vec<&Behaviour> = alive
                .iter()
                .zip(&labels)
                .filter(|(_, l)| **l == c)
                .map(|(b, _)| *b)
                .collect();
            let revenue: f64 = members.iter().map(|b| b.arpu_3m).sum();
            let (seen, left) = lookalikes[c];
            ClusterProfile {
                id: c,
                name_zh: names[c].0.clone(),
                name_en: names[c].1.clone(),
                size: members.len() as u64,
                share: round4(members.len() as f64 / alive.len() as f64),
                revenue_share: round4(revenue / total_revenue),
                arpu: (revenue / members.len().max(1) as f64 * 100.0).round() / 100.0,
                churn_rate: if seen > 0 {
                    round4(left as f64 / seen as f64)
                } else {
                    0.0
                },
                top_features: names[c].2.clone(),
            }
        })
        .collect();

    let count = |codes: &[(&str, &str)],
                 pick: &dyn Fn(&Placement) -> Option<&'static str>|
     -> BTreeMap<String, u64> {
        let mut map: BTreeMap<String, u64> =
            codes.iter().map(|(c, _)| ((*c).to_owned(), 0)).collect();
        for p in &placements {
            if let Some(code) = pick(p) {
                *map.entry(code.to_owned()).or_default() += 1;
            }
        }
        map
    };
    let rfm_group = count(RFM_GROUPS, &|p| p.rfm_group);
    let value_tier = count(VALUE_TIERS, &|p| p.value_tier);
    let lifecycle_stage = count(LIFECYCLE_STAGES, &|p| Some(p.lifecycle_stage));
    let mut scenario: BTreeMap<String, u64> = SCENARIOS
        .iter()
        .map(|(c, _)| ((*c).to_owned(), 0))
        .collect();
    for p in &placements {
        for s in &p.scenarios {
            *scenario.entry((*s).to_owned()).or_default() += 1;
        }
    }

    let mut retention = vec![retention_summary("all", &overall)];
    for (tier, curve) in &curves {
        retention.push(retention_summary(&format!("plan_tier_{tier}"), curve));
    }
    // By customer segment and by join cohort, for everyone including those who left.
    let slices: [(&str, &Slice); 7] = [
        ("customer_personal", &|b| !b.is_group_member),
        ("customer_group_member", &|b| b.is_group_member),
        ("joined_until_2015", &|b| b.join_year <= 2015),
        ("joined_2016_2019", &|b| {
            (2016..=2019).contains(&b.join_year)
        }),
        ("joined_2020_2022", &|b| {
            (2020..=2022).contains(&b.join_year)
        }),
        ("joined_2023_2024", &|b| {
            (2023..=2024).contains(&b.join_year)
        }),
        ("joined_2025_on", &|b| b.join_year >= 2025),
    ];
    for (name, keep) in slices {
        let subjects: Vec<Subject> = people.iter().filter(|b| keep(b)).map(subject).collect();
        if !subjects.is_empty() {
            retention.push(retention_summary(
                name,
                &kaplan_meier(&subjects, max_months),
            ));
        }
    }
    let mut churn_by_tenure: BTreeMap<String, u64> = BTreeMap::new();
    for b in people.iter().filter_map(|b| b.left_at_tenure) {
        let band = match b as i64 {
            ..3 => "00-03m",
            3..6 => "03-06m",
            6..12 => "06-12m",
            12..24 => "12-24m",
            24..60 => "24-60m",
            _ => "60m+",
        };
        *churn_by_tenure.entry(band.to_owned()).or_default() += 1;
    }
    let churn_by_month = churn_by_month(ctx, as_of).await?;
    let mut churn_by_contract_end: BTreeMap<String, u64> = BTreeMap::new();
    for b in people.iter().filter(|b| b.left_at_tenure.is_some()) {
        let band = match b.contract_end_at_churn.map(|m| m as i64) {
            None => "no contract within a year",
            Some(..-6) => "ended 7-12 months before",
            Some(-6..-3) => "ended 4-6 months before",
            Some(-3..0) => "ended 1-3 months before",
            Some(0..3) => "ending within 3 months",
            Some(3..7) => "ending in 3-6 months",
            Some(_) => "ending in 7-12 months",
        };
        *churn_by_contract_end.entry(band.to_owned()).or_default() += 1;
    }

    lap("placements and summaries");
    let segments_file = outputs::segments_file(workspace);
    write_placements(&segments_file, &placements, &names)?;
    lap("segments file");
    // Tags read this run's segments and the newest warning list.
    let _ = ctx.deregister_table("segments");
    let _ = ctx.deregister_table("latest_warnings");
    let tags = crate::tags::TagLibrary::for_workspace(workspace)?
        .compute(ctx, workspace, as_of)
        .await?;
    lap("tags");
    let report_file = outputs::reports_dir(workspace).join(SEGMENTS_REPORT);
    let report = SegmentReport {
        as_of,
        subscribers: people.len() as u64,
        active: alive.len() as u64,
        clusters,
        silhouettes: clustering.silhouettes.clone(),
        rfm_group,
        value_tier,
        lifecycle_stage,
        scenario,
        tags,
        value_source: if probabilities.is_some() {
            "model"
        } else {
            "retention_curves"
        },
        midhigh: placements.iter().filter(|p| p.midhigh).count() as u64,
        retention,
        churn_by_tenure,
        churn_by_month,
        churn_by_contract_end,
        segments_file,
        report_file: report_file.clone(),
    };
    std::fs::create_dir_all(outputs::reports_dir(workspace))
        .map_err(|e| Error::io("creating reports/", e))?;
    retain_data::write_atomically(
        &report_file,
        serde_json::to_string_pretty(&report)
            .map_err(|e| Error::Internal(e.to_string()))?
            .as_bytes(),
    )?;
    retain_data::write_atomically(
        &outputs::reports_dir(workspace).join("clusters.md"),
        cluster_markdown(&report).as_bytes(),
    )?;
    Ok((report, placements))
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Each value's rank as a share of values strictly below it (0 = lowest).
fn quintile_rank(values: &[f64]) -> Vec<f64> {
    let n = values.len().max(1) as f64;
    let mut out = vec![0.0; values.len()];
    for_each_tie(values, |indexes, below| {
        for &i in indexes {
            out[i as usize] = below as f64 / n;
        }
    });
    out
}

fn retention_summary(segment: &str, curve: &Curve) -> Retention {
    let survival = [6usize, 12, 24, 36, 60]
        .iter()
        .map(|t| {
            let seen = curve.observed.is_some_and(|(a, b)| *t >= a && *t <= b);
            let value = curve.survival[(*t).min(curve.survival.len() - 1)];
            (format!("{t}m"), seen.then(|| round4(value)))
        })
        .collect();
    Retention {
        segment: segment.to_owned(),
        subjects: curve.subjects,
        churn_events: curve.events,
        survival,
    }
}

fn cluster_names(
    clustering: &Clustering,
    workspace: &Workspace,
) -> Result<Vec<(String, String, Vec<String>)>> {
    let mut names = clustering.names();
    for n in ClusterNames::load(workspace)?.clusters {
        if let Some(slot) = names.get_mut(n.id) {
            slot.0 = n.name_zh;
            slot.1 = n.name_en;
        }
    }
    Ok(names)
}

async fn churn_by_month(ctx: &SessionContext, as_of: NaiveDate) -> Result<BTreeMap<String, u64>> {
    let sql = format!(
        "SELECT CAST(date_trunc('month', \"timestamp\") AS DATE) AS m, COUNT(*) AS n FROM events
         WHERE kind = 'cancel' AND \"timestamp\" < TIMESTAMP '{as_of}T00:00:00' GROUP BY 1 ORDER BY 1"
    );
    let batches = ctx
        .sql(&sql)
        .await
        .map_err(|e| Error::engine("counting cancellations", e))?
        .collect()
        .await
        .map_err(|e| Error::engine("counting cancellations", e))?;
    let mut out = BTreeMap::new();
    for b in &batches {
        let m = b
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Date32Type>();
        let n = b
            .column(1)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        for row in 0..b.num_rows() {
            if !m.is_null(row) {
                out.insert(
                    retain_data::days_to_date(m.value(row))
                        .format("%Y-%m")
                        .to_string(),
                    n.value(row) as u64,
                );
            }
        }
    }
    Ok(out)
}

fn write_placements(
    path: &Path,
    placements: &[Placement],
    names: &[(String, String, Vec<String>)],
) -> Result<()> {
    let dir = path.parent().expect("a file in a directory");
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("subscriber_id", DataType::Int64, false),
        Field::new("rfm_r", DataType::Int64, true),
        Field::new("rfm_f", DataType::Int64, true),
        Field::new("rfm_m", DataType::Int64, true),
        Field::new("rfm_group", DataType::Utf8, true),
        Field::new("clv", DataType::Float64, true),
        Field::new("value_tier", DataType::Utf8, true),
        Field::new("midhigh", DataType::Boolean, false),
        Field::new("lifecycle_stage", DataType::Utf8, false),
        Field::new("cluster", DataType::Int64, true),
        Field::new("cluster_name_zh", DataType::Utf8, true),
        Field::new("cluster_name_en", DataType::Utf8, true),
        Field::new("scenarios", DataType::Utf8, false),
    ]));
    let name = |p: &Placement, zh: bool| {
        p.cluster.map(|c| {
            if zh {
                names[c].0.clone()
            } else {
                names[c].1.clone()
            }
        })
    };
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(
                placements.iter().map(|p| p.subscriber_id),
            )),
            Arc::new(
                placements
                    .iter()
                    .map(|p| p.rfm.map(|r| i64::from(r.0)))
                    .collect::<Int64Array>(),
            ),
            Arc::new(
                placements
                    .iter()
                    .map(|p| p.rfm.map(|r| i64::from(r.1)))
                    .collect::<Int64Array>(),
            ),
            Arc::new(
                placements
                    .iter()
                    .map(|p| p.rfm.map(|r| i64::from(r.2)))
                    .collect::<Int64Array>(),
            ),
            Arc::new(
                placements
                    .iter()
                    .map(|p| p.rfm_group)
                    .collect::<StringArray>(),
            ),
            Arc::new(placements.iter().map(|p| p.clv).collect::<Float64Array>()),
            Arc::new(
                placements
                    .iter()
                    .map(|p| p.value_tier)
                    .collect::<StringArray>(),
            ),
            Arc::new(
                placements
                    .iter()
                    .map(|p| Some(p.midhigh))
                    .collect::<BooleanArray>(),
            ),
            Arc::new(StringArray::from_iter_values(
                placements.iter().map(|p| p.lifecycle_stage),
            )),
            Arc::new(
                placements
                    .iter()
                    .map(|p| p.cluster.map(|c| c as i64))
                    .collect::<Int64Array>(),
            ),
            Arc::new(
                placements
                    .iter()
                    .map(|p| name(p, true))
                    .collect::<StringArray>(),
            ),
            Arc::new(
                placements
                    .iter()
                    .map(|p| name(p, false))
                    .collect::<StringArray>(),
            ),
            Arc::new(StringArray::from_iter_values(
                placements.iter().map(|p| p.scenarios.join(" ")),
            )),
        ],
    )
    .map_err(|e| Error::Internal(format!("building the segment table: {e}")))?;
    let tmp = path.with_extension("parquet.tmp");
    let mut writer = retain_data::TableWriter::create(&tmp, schema)?;
    writer.write(&batch)?;
    writer.close()?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

fn cluster_markdown(report: &SegmentReport) -> String {
    use std::fmt::Write as _;
    let mut s = format!(
        "# 客户分群 / Behavioural clusters (as of {})\n\n{} active subscribers, k = {} chosen by silhouette {:?}.\n\n\
         | # | 名称 | name | size | share | revenue share | ARPU | churn rate (3 months) | top features |\n|---|---|---|---|---|---|---|---|---|\n",
        report.as_of,
        report.active,
        report.clusters.len(),
        report.silhouettes
    );
    for c in &report.clusters {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.1}% | {:.1}% | {:.2} | {:.2}% | {} |",
            c.id,
            c.name_zh,
            c.name_en,
            c.size,
            c.share * 100.0,
            c.revenue_share * 100.0,
            c.arpu,
            c.churn_rate * 100.0,
            c.top_features.join(", ")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Values with many ties, a few distinct ones and both zeros.
    fn values(seed: u64, n: usize) -> Vec<f64> {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
        (0..n)
            .map(|i| match i % 7 {
                0 => 0.0,
                1 => -0.0,
                2 => f64::from(rng.random_range(0..5u8)),
                _ => rng.random_range(-50.0..200.0),
            })
            .collect()
    }

    #[test]
    fn ranks_from_one_sort_equal_ranks_counted_value_by_value() {
        for (seed, n) in [(1, 0), (2, 1), (3, 2), (4, 37), (5, 1000)] {
            let values = values(seed, n);
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            let total = n.max(1) as f64;
            let below = |v: f64| sorted.partition_point(|x| *x < v) as f64;
            let ties = |v: f64| sorted.partition_point(|x| *x <= v) as f64 - below(v);
            let scores: Vec<u8> = values
                .iter()
                .map(|&v| {
                    1 + (((below(v) + ties(v) / 2.0) / total) * 5.0)
                        .floor()
                        .min(4.0) as u8
                })
                .collect();
            assert_eq!(quintiles(&values), scores, "n = {n}");
            let ranks: Vec<f64> = values.iter().map(|&v| below(v) / total).collect();
            assert_eq!(quintile_rank(&values), ranks, "n = {n}");
            for q in [0.0, 0.25, 0.5, 0.75, 1.0] {
                let expected = if n == 0 {
                    0.0
                } else {
                    sorted[((n - 1) as f64 * q).round() as usize]
                };
                assert_eq!(
                    percentile(&values, q).to_bits(),
                    expected.to_bits(),
                    "n = {n}"
                );
            }
        }
        // Every score is used, and a tie spanning the top quintile scores 5.
        assert_eq!(quintiles(&[1.0, 2.0, 3.0, 4.0, 5.0]), vec![1, 2, 3, 4, 5]);
        assert_eq!(quintiles(&[1.0, 9.0, 9.0, 9.0, 9.0]), vec![1, 4, 4, 4, 4]);
    }
}

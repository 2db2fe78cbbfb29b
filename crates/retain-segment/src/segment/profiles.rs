//! Clusters of the active base: their features, their names (the analyst's where given), their
//! profiles and how their look-alikes churned.

use retain_data::Workspace;
use serde::{Deserialize, Serialize};

use super::{ClusterProfile, SegmentReport, round4};
use crate::cluster::Clustering;
use crate::error::{Error, Result};

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

/// A cluster's names and the features its name is made of.
pub(super) struct ClusterLabel {
    pub name_zh: String,
    pub name_en: String,
    pub top_features: Vec<String>,
}

/// The clusters' names from their centroids, replaced by the analyst's where given.
pub(super) fn labels(clustering: &Clustering, workspace: &Workspace) -> Result<Vec<ClusterLabel>> {
    let mut labels: Vec<ClusterLabel> = clustering
        .names()
        .into_iter()
        .map(|(name_zh, name_en, top_features)| ClusterLabel {
            name_zh,
            name_en,
            top_features,
        })
        .collect();
    for n in ClusterNames::load(workspace)?.clusters {
        if let Some(slot) = labels.get_mut(n.id) {
            slot.name_zh = n.name_zh;
            slot.name_en = n.name_en;
        }
    }
    Ok(labels)
}

/// A cluster's members and their revenue (the sum of their three-month ARPU).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Members {
    pub size: u64,
    pub revenue: f64,
}

/// Each cluster's size, revenue, ARPU and look-alike churn (`(seen, left)` per cluster).
pub(super) fn profiles(
    members: &[Members],
    labels: &[ClusterLabel],
    lookalikes: &[(u64, u64)],
) -> Vec<ClusterProfile> {
    let active: u64 = members.iter().map(|m| m.size).sum();
    let total_revenue: f64 = members.iter().map(|m| m.revenue).sum::<f64>().max(1e-9);
    labels
        .iter()
        .enumerate()
        .map(|(c, label)| {
            let Members { size, revenue } = members.get(c).copied().unwrap_or_default();
            let (seen, left) = lookalikes.get(c).copied().unwrap_or_default();
            ClusterProfile {
                id: c,
                name_zh: label.name_zh.clone(),
                name_en: label.name_en.clone(),
                size,
                share: round4(size as f64 / active.max(1) as f64),
                revenue_share: round4(revenue / total_revenue),
                arpu: (revenue / size.max(1) as f64 * 100.0).round() / 100.0,
                churn_rate: if seen > 0 {
                    round4(left as f64 / seen as f64)
                } else {
                    0.0
                },
                top_features: label.top_features.clone(),
            }
        })
        .collect()
}

/// The clusters as a Markdown table for analysts.
pub(super) fn cluster_markdown(report: &SegmentReport) -> String {
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

//! Segmentation settings: every threshold the department may want to change, with defaults from
//! the seed studies. A workspace overrides them in `<workspace>/segments.toml`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SegmentConfig {
    pub rfm: RfmConfig,
    pub value: ValueConfig,
    pub lifecycle: LifecycleConfig,
    pub clusters: ClusterConfig,
}

/// Named RFM groups, tested in this order; the first that matches names the subscriber.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RfmConfig {
    /// Core active (核心活跃): consumed in the last 3 months and monthly ARPU above this.
    pub core_active_arpu: f64,
    /// Sleeping high-value (沉睡高价值): no consumption for this many months …
    pub sleeping_months: u32,
    /// … but a historical ARPU of at least this.
    pub sleeping_historical_arpu: f64,
    /// High-frequency low-spend (高频低消): frequency score at least this …
    pub high_frequency_min_score: u8,
    /// … and monetary score at most this.
    pub low_spend_max_score: u8,
}

impl Default for RfmConfig {
    fn default() -> Self {
        Self {
            core_active_arpu: 100.0,
            sleeping_months: 6,
            sleeping_historical_arpu: 80.0,
            high_frequency_min_score: 4,
            low_spend_max_score: 2,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValueConfig {
    /// Share of ARPU that is margin.
    pub margin_rate: f64,
    /// Monthly discount rate for lifetime value.
    pub monthly_discount_rate: f64,
    /// Months of future counted in lifetime value.
    pub horizon_months: u32,
    /// Share of subscribers, by lifetime value, in the high tier.
    pub high_share: f64,
    /// Share in the medium tier (below the high tier).
    pub medium_share: f64,
    /// Mid/high-end (中高端): the top share by ARPU …
    pub midhigh_top_share: f64,
    /// … or, when set, an ARPU threshold instead.
    pub midhigh_arpu_threshold: Option<f64>,
}

impl Default for ValueConfig {
    fn default() -> Self {
        Self {
            margin_rate: 0.6,
            monthly_discount_rate: 0.01,
            horizon_months: 60,
            high_share: 0.2,
            medium_share: 0.3,
            midhigh_top_share: 0.3,
            midhigh_arpu_threshold: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleConfig {
    /// Onboarding (入网期): the first months after joining.
    pub onboarding_months: u32,
    /// Growth (成长期): until this tenure, unless declining.
    pub growth_months: u32,
    /// Decline (衰退期): a contract ends within this many months …
    pub decline_contract_months: u32,
    /// … or the last 3 months' fee fell by this share against the 3 before …
    pub decline_fee_drop: f64,
    /// … or this many of the last 3 months had no outgoing call.
    pub decline_silent_months: u32,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            onboarding_months: 3,
            growth_months: 12,
            decline_contract_months: 3,
            decline_fee_drop: 0.3,
            decline_silent_months: 1,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    pub k_min: usize,
    pub k_max: usize,
    pub seed: u64,
    /// Subscribers per mini-batch.
    pub batch_size: usize,
    pub iterations: usize,
    /// Subscribers sampled to compute the silhouette that picks k.
    pub silhouette_sample: usize,
    /// Active subscribers the clusters are fitted on, at most: a fixed hash sample of them
    /// beyond, every one of them up to it. Everyone is then placed by the fitted centroids.
    pub fit_sample: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            k_min: 4,
            k_max: 8,
            seed: 42,
            batch_size: 4096,
            iterations: 150,
            silhouette_sample: 3000,
            fit_sample: 200_000,
        }
    }
}

impl SegmentConfig {
    /// `<workspace>/segments.toml` when present, else the defaults.
    pub fn for_workspace(workspace: &retain_data::Workspace) -> Result<SegmentConfig> {
        let path = workspace.root().join("segments.toml");
        if !path.exists() {
            return Ok(SegmentConfig::default());
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let config: SegmentConfig =
            toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        config
            .check()
            .map_err(|m| Error::Config(format!("{}: {m}", path.display())))?;
        Ok(config)
    }

    fn check(&self) -> std::result::Result<(), String> {
        let c = &self.clusters;
        if c.k_min < 2 || c.k_max < c.k_min {
            return Err("clusters: need 2 <= k_min <= k_max".into());
        }
        if c.fit_sample < 100 {
            return Err("clusters: fit_sample must be at least 100".into());
        }
        let v = &self.value;
        if !(0.0..=1.0).contains(&(v.high_share + v.medium_share)) {
            return Err("value: high_share + medium_share must be within 0..1".into());
        }
        Ok(())
    }
}

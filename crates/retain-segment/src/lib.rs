//! Segmentation (细分) — "one segment, one strategy" (一类一策): every subscriber gets a named
//! place.
//!
//! - **RFM** for telecom: recency of consumption, frequency (active days), monetary (ARPU);
//!   quintile scores and named groups (core active, sleeping high-value, high-frequency
//!   low-spend, …) with thresholds in [`SegmentConfig`].
//! - **Lifetime value** for a contractual business: margin × ARPU × the expected discounted
//!   months still to come, from a Kaplan–Meier retention curve per plan tier (with delayed
//!   entry, as the data window opens long after most subscribers joined); value tiers and the
//!   operator's mid/high-end (中高端) definition.
//! - **Lifecycle stage**: onboarding, growth, mature, decline, churned.
//! - **Behavioural clusters**: seeded mini-batch k-means++ on standardized behaviour, k chosen by
//!   silhouette, each cluster named in zh and en from its most distinctive features (renamable).
//! - **Scenario groups**: voice-dominant seniors, data-dominant young, family convergence, group
//!   members by account size.
//! - **Network and circles**: each subscriber's home cell and district, and calling circles
//!   (communities of the call graph) with their leaders and churn; the cells' churn and risk.
//! - **Tag library** (标签库): named conditions over features, segments and warnings, recomputed
//!   each run; target groups are selected by tag expressions.
//!
//! ```no_run
//! # async fn f() -> retain_segment::Result<()> {
//! let workspace = retain_data::Workspace::open("op".as_ref())?;
//! let ctx = retain_features::session(&workspace).await?;
//! let config = retain_segment::SegmentConfig::for_workspace(&workspace)?;
//! let as_of = chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
//! let report = retain_segment::segment(&ctx, &config, &workspace, as_of).await?;
//! println!("{} clusters", report.clusters.len());
//! # Ok(()) }
//! ```

mod cluster;
mod config;
mod customer;
mod error;
mod features;
mod network;
mod segment;
mod survival;
mod tags;

pub use config::{ClusterConfig, LifecycleConfig, RfmConfig, SegmentConfig, ValueConfig};
pub use customer::{Customer360, Row, TagRef, Usage, customer_360};
pub use error::{Error, Result};
pub use features::{Behaviour, behaviour, behaviour_in_partitions};
pub use network::{
    Cell, District, GRAPH_MONTHS, Graph, MAX_CIRCLE, MIN_TIE_CALLS, Member, NetworkSegments,
    Standing, WAVE_RATE, cells_file, circles, circles_file, communities, read_cells,
};
pub use segment::{
    ClusterName, ClusterNames, ClusterProfile, LIFECYCLE_STAGES, RFM_GROUPS, Retention, RfmCell,
    SCENARIOS, SEGMENTS_REPORT, SegmentReport, VALUE_TIERS, ValueSource, read_segment_report,
    rfm_grid, segment, segment_in_partitions,
};

/// The segmentation's functions as plans carry them (see `retain-cluster`'s codec).
pub mod functions {
    pub use crate::segment::functions::{CLUSTER, CLV, PLACE, decode_udf, encode_udf};
}
pub use survival::{Curve, Subject, kaplan_meier, kaplan_meier_counted};
pub use tags::{
    DEFAULT_TAGS, Tag, TagLibrary, check_target_expression, select_by_tags, select_whole_circles,
};

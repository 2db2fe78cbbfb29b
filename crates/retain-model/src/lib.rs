//! Churn prediction: gradient-boosted trees (LightGBM, the same library as the Python peer) on
//! point-in-time features, trained on stacked snapshots with a time-based split, early-stopped
//! and Platt-calibrated on the validation snapshot, evaluated on the latest one; per-subscriber
//! reasons from exact TreeSHAP contributions summed into reason categories; a registry of
//! versioned model files with their features and metrics.

mod error;
mod metrics;
mod reasons;
mod registry;
mod train;

pub use error::{Error, Result};
pub use metrics::{CalibrationBin, Decile, Metrics, auc, evaluate, pr_auc};
pub use reasons::{CATEGORIES, Reason, category, top_reasons};
pub use registry::{ModelMeta, load_latest, save};
pub use train::{ChurnModel, Platt, Score, Table, TrainReport, train};

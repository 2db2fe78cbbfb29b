//! Churn prediction: gradient-boosted trees (histogram-based and leaf-wise, as LightGBM grows
//! them, grown in Rust: `grow/`) blended with a logistic-regression floor, early-stopped, blended and Platt-calibrated on
//! validation rows; point-in-time snapshots with a time-based split, or any churn table with a
//! stratified one; per-subscriber reasons from exact TreeSHAP contributions summed into reason
//! categories; evaluation metrics including EMPC and PSI; a registry of versioned model files
//! with a champion, promoted over by better challengers and rolled back on request; drift of a
//! scored population against the champion's test month.

mod causes;
mod champion;
mod columns;
mod drift;
mod error;
mod eval;
mod forest;
mod frame;
pub mod functions;
mod grow;
mod logistic;
mod masks;
mod metrics;
mod reasons;
mod registry;
mod report;
mod report_html;
mod score_plan;
mod scores;
mod scoring;
mod shap;
mod split;
mod table;
mod train;
mod workspace_run;

pub use causes::{CauseModel, stated_category};
pub use champion::{
    Action, ChampionRecord, Decision, ListedVersion, Listing, Standing, beats, champion_record,
    champion_version, contest, list, load_champion, rollback,
};
pub use drift::{
    Bins, Drift, DriftLevel, DriftReference, FeatureBins, FeatureStability, Stability,
};
pub use error::{Error, Result};
pub use eval::{EvalOptions, EvalReport, evaluate_files};
pub use forest::Forest;
pub use frame::{Frame, read_frame};
pub use logistic::Logistic;
pub use masks::Isa;
pub use metrics::{CalibrationBin, Decile, EmpcParams, Metrics, auc, empc, evaluate, pr_auc, psi};
pub use reasons::{
    CATEGORIES, REASON_CODES, Reason, category, cause_reason, cause_reasons, top_reasons,
};
pub use registry::{ModelMeta, load, save};
pub use report::{
    Agreement, BacktestFold, ChurnersByClass, CohortMetrics, FeatureDrift, LeftOut, ModelReport,
    ReasonReport, model_report, read_model_report, write_model_report,
};
pub use scores::{
    Probabilities, ScoreLine, ScoresFile, latest_scores, previous_scores, scores_path, write_scores,
};
pub use scoring::{Scored, Scorer};
pub use shap::Explainer;
pub use split::{sample, stratified};
pub use table::Table;
pub use train::{
    Blend, ChurnModel, FitReport, Fold, Platt, Score, TrainReport, fit, rolling_backtest,
    rows_where, snapshots, train,
};
pub use workspace_run::{ScoreDrift, ScoreSummary, TrainOptions, score_workspace, train_workspace};

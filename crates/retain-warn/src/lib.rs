//! Churn early warning (流失预警): which subscribers show churn signals this week, how serious,
//! and why.
//!
//! Rules are data (`rules/default.toml`, overridable per workspace): each has a condition in a
//! small typed language (`retain_features::expr`) that compiles to SQL, so one query scores every subscriber in
//! a single pass of DataFusion. Scores mark potential churners; the weekly levels (red, yellow,
//! blue) combine the subsidy risk with special conditions. [`backtest`] measures every rule and
//! level against the churn labels.
//!
//! ```no_run
//! # async fn f() -> retain_warn::Result<()> {
//! let workspace = retain_data::Workspace::open("op".as_ref())?;
//! let ctx = retain_features::session(&workspace).await?;
//! let rules = retain_warn::RuleSet::for_workspace(&workspace, None)?;
//! let as_of = retain_features::default_as_of(&ctx, retain_features::Cadence::Weekly).await?;
//! let (summary, _) =
//!     retain_warn::run(&ctx, &rules, &workspace, as_of, retain_features::Cadence::Weekly).await?;
//! println!("{} red", summary.red);
//! # Ok(()) }
//! ```

mod backtest;
mod error;
mod list;
mod propose;
mod query;
mod rules;
mod run;

pub use backtest::{
    BACKTEST_REPORT, BacktestOptions, BacktestReport, Involuntary, Metrics, RuleMetrics,
    ScoreCount, Slice, backtest, read_backtest_report, write_backtest_report,
};
pub use error::{Error, Result};
pub use list::{Level, ListFile, Listed, all_lists, latest_list};
pub use propose::{
    CohortChange, MARKER, MIN_HITS, PointChange, Proposal, accept as accept_proposal,
    current_text as current_rules_text, proposal_files, propose, propose_for_workspace,
    reject as reject_proposal, with_cohorts,
};
pub use rules::{
    CATEGORIES, ChurnType, CohortRules, DEFAULT_RULES, MAX_POINTS, Rule, RuleSet, Scorecard,
};
pub use run::{
    COHORTS, Changes, FiredRule, LEVELS, WarnSummary, Warning, evaluate, evaluate_partitioned, run,
};

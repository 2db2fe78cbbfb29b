//! Retention offers and next-best-action (维系政策适配): the offer library as data, uplift
//! learned from past campaigns against their control groups, a global assignment of offers and
//! channels under budgets, capacities and the contact policy, a verifier that rechecks every
//! constraint, a simulation against the synthetic operator's true offer effects, and real-time
//! decisions from a precomputed index.

mod assign;
mod decide;
mod error;
mod estimator;
mod inputs;
mod learn;
mod library;
mod policy;
mod reason;
mod run;
mod simulate;
mod strategy;
mod trees;
mod uplift;
mod verify;

pub use assign::{Assignment, Choice, Plan, Skipped, Strategy, arbitrate, choices};
pub use decide::{Decision, DecisionIndex, Ranked, mask};
pub use error::{Error, Result};
pub use estimator::{Method, SaveRate, Uplift, UpliftReport};
pub use inputs::{Candidate, Contact, Features, Inputs, Ledger, load, msisdn_map, read_dnd};
pub use learn::{
    Cell, Counts, LEARNING_FILE, Learned, LearnedRow, Learning, LearningView, Posterior,
};
pub use library::{Approval, Channel, CostModel, DEFAULT_OFFERS, Kind, Library, Offer, Stage};
pub use policy::{ChannelPolicy, Level, Policy};
pub use reason::{REASONS, Signals, UNKNOWN, reason_index};
pub use run::{
    Baseline, ForwardRow, MATCH_REPORT, MatchOptions, MatchReport, MatchRun, Prepared, SavedValue,
    Tally, forward, latest_run_dir, prepare, read_match_report, run_dir, run_match, select,
};
pub use simulate::{Simulated, Truth, simulate};
pub use strategy::{CATEGORIES, DEFAULT_STRATEGIES, STAGES, Strategies, StrategyCell, category_of};
pub use uplift::{Cells, HORIZON_MONTHS, History, HistoryRow, Qini, evaluate, load_history, qini};
pub use verify::{Violation, verify};

pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub(crate) fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

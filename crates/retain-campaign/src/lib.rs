//! Retention campaigns as a closed loop (四步一库: plan, approve, execute, evaluate, and a
//! library of plans). A campaign is created from a template of the plan library, rehearsed on
//! a sample, approved at the level its budget needs, launched as work orders per channel with
//! a stratified control group held out, followed up by callbacks, and evaluated against the
//! control group; its contacts flow back into `campaign_history`, where the uplift model and
//! the contact policy read them.

mod approval;
mod callbacks;
mod care;
mod care_loop;
mod error;
mod evaluate;
mod learn;
mod outcomes;
mod plan;
mod power;
mod responses;
mod service;
mod steps;
mod template;
mod winback;
mod workorder;

pub use approval::{Action, Actor, LEVEL_LIMITS, Role, required_level};
pub use callbacks::{ImportReport, STATED_ONLY, stated_reasons};
pub use care::CareReport;
pub use error::{Error, Result};
pub use evaluate::{
    Comparison, Evaluation, Leavers, NEW_SERVICE_KINDS, Nps, ReasonCheck, Takeup, compare,
    evaluate, leavers_by_class,
};
pub use learn::learn;
pub use plan::{PlanRequest, Planned, Projection, plan};
pub use power::{Power, choose as choose_control_share, min_detectable_uplift, power_of};
pub use service::{
    CallbackForm, Campaigns, CreateRequest, LaunchReport, Rehearsal, SimulationReport, TemplateInfo,
};
pub use template::{
    BUNDLED, Due, Flow, MAX_WINDOW_MONTHS, OfferFilter, Population, Script, Sms, Target, Template,
    bundled,
};
pub use winback::{
    Leaver, WinbackReport, WinbackSummary, is_win_back, leavers, summarize, write_list,
};

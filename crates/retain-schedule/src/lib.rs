//! The loop that runs itself: a workspace's schedule (`schedule.toml`) of retain's steps —
//! loading deliveries, the weekly and monthly warnings, features, training, scoring,
//! segmentation, matching and automatic campaigns — run when due.
//!
//! `retain serve` runs a [`Scheduler`] cycle every half minute; `retain cycle` runs one, for
//! cron or a systemd timer. Each cycle takes the due jobs in the schedule's order. A job runs
//! under a lease in the operational store, so no two processes run it at once; every attempt
//! is recorded there with what it produced or why it failed; a failure is retried after a
//! doubling back-off and alerted to a webhook; a slot missed while nothing ran is run once,
//! late. Time comes from a [`Clock`], so all of this is tested on a simulated one.
//!
//! The steps themselves belong to the binary ([`Steps`]): this crate knows when, not how.

mod alert;
mod cycle;
pub mod delivery;
mod error;
mod file;
mod plan;

pub use alert::{Endpoint, send as send_alert};
pub use cycle::{
    Action, Attempt, Clock, CycleReport, FakeClock, JobReport, JobState, Outcome, Scheduler, Steps,
    SystemClock, holder_name,
};
pub use error::{Error, Result};
pub use file::{
    Alert, Cadence, CampaignRules, DEFAULT, FILE, Job, MAX_FILE_BYTES, MAX_JOBS, Schedule, Step,
};
pub use plan::{Decision, ON_TIME, decide, recheck_at, retry_at};

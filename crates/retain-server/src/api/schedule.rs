//! The schedule and its runs: when each job runs next, how its attempts ended.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use retain_schedule::{JobState, Schedule, Scheduler, SystemClock};
use retain_store::JobRunRecord;
use serde::{Deserialize, Serialize};

use super::relative;
use crate::AppState;
use crate::error::{ApiError, ApiResult};

#[derive(Deserialize)]
pub(crate) struct ScheduleQuery {
    job: Option<String>,
    limit: Option<u32>,
}

/// The workspace's schedule and the latest attempts of its jobs.
#[derive(Serialize)]
pub(crate) struct ScheduleAnswer {
    /// Whether the workspace has a schedule file.
    configured: bool,
    /// Why the schedule file cannot be used, when it cannot (the runs are still listed).
    error: Option<String>,
    timezone: Option<String>,
    jobs: Vec<JobState>,
    runs: Vec<JobRunRecord>,
}

pub(crate) async fn schedule(
    State(state): State<AppState>,
    q: Result<Query<ScheduleQuery>, QueryRejection>,
) -> ApiResult<Json<ScheduleAnswer>> {
    let Query(q) = q?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request("limit must be 1 to 1000"));
    }
    let job = q.job.as_deref().filter(|j| !j.is_empty());
    if job.is_some_and(|j| j.len() > 64) {
        return Err(ApiError::bad_request("a job name is at most 64 characters"));
    }
    let store = &state.0.store;
    let path = state
        .0
        .campaigns
        .workspace
        .root()
        .join(retain_schedule::FILE);
    let (schedule, error) = match Schedule::load(&path) {
        Ok(s) => (s, None),
        Err(e) => (None, Some(e.to_string())),
    };
    let mut jobs = match &schedule {
        Some(schedule) => Scheduler {
            store,
            schedule,
            clock: Arc::new(SystemClock),
            holder: String::new(),
        }
        .states()
        .await
        .map_err(ApiError::internal)?,
        None => Vec::new(),
    };
    let mut runs = store.job_runs(job, limit).await?;
    // Steps' summaries and errors name files by their place on the server's disk: they are
    // told relative to the workspace instead.
    let root = format!("{}/", state.0.campaigns.workspace.root().display());
    for r in runs
        .iter_mut()
        .chain(jobs.iter_mut().filter_map(|j| j.last.as_mut()))
    {
        if let Some(s) = r.summary.as_mut() {
            relative(s, &root);
        }
        if let Some(e) = r.error.as_mut() {
            *e = e.replace(&root, "");
        }
    }
    Ok(Json(ScheduleAnswer {
        configured: schedule.is_some() || error.is_some(),
        error: error.map(|e| e.replace(&root, "")),
        timezone: schedule.map(|s| s.timezone.name().to_owned()),
        jobs,
        runs,
    }))
}

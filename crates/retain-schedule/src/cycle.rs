//! One pass of the scheduler: every due job, in the schedule's order, each under its lease,
//! each attempt recorded with what it produced or why it failed.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use retain_store::{JobEnd, JobRunRecord, JobStatus, Store};
use serde::Serialize;

use crate::error::Result;
use crate::file::{Job, Schedule, Step};
use crate::plan::{Decision, decide, recheck_at, retry_at};

/// Where the scheduler's time comes from: the system's, or a simulated one.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told: for tests and simulations.
#[derive(Debug)]
pub struct FakeClock(Mutex<DateTime<Utc>>);

impl FakeClock {
    #[must_use]
    pub fn new(t: DateTime<Utc>) -> FakeClock {
        FakeClock(Mutex::new(t))
    }

    pub fn set(&self, t: DateTime<Utc>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = t;
    }

    pub fn advance(&self, by: Duration) {
        let mut t = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *t += by;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What a step did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It ran; what it produced.
    Done(serde_json::Value),
    /// Its input is not complete yet (a partial delivery): looked at again later.
    Waiting(String),
    /// There was nothing to do.
    Nothing(String),
}

/// The attempt a step runs as.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub slot: DateTime<Utc>,
    pub attempt: u32,
    pub run_id: i64,
    pub schedule: &'a Schedule,
}

/// The steps a scheduler runs: retain's commands, or a test's stand-ins. A step runs on the
/// calling thread and may block; its error is what an operator reads on the runs page.
pub trait Steps {
    fn run(&self, job: &Job, attempt: &Attempt<'_>) -> std::result::Result<Outcome, String>;
}

/// What became of one job in a cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Ran an attempt (see its status).
    Ran,
    /// Another process holds the job's lease: it is running there.
    Busy,
    /// Not due.
    Idle,
    /// A late slot it does not catch up, recorded as skipped.
    Missed,
    /// Switched off in the schedule.
    Disabled,
}

/// One job's line in a cycle's report.
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    pub job: String,
    pub step: Step,
    pub action: Action,
    pub run_id: Option<i64>,
    pub slot: Option<DateTime<Utc>>,
    pub attempt: Option<u32>,
    pub status: Option<JobStatus>,
    /// What the step produced.
    pub summary: Option<serde_json::Value>,
    pub error: Option<String>,
    pub retry_at: Option<DateTime<Utc>>,
    /// When the job is next due, as of the cycle's end.
    pub next_run: Option<DateTime<Utc>>,
    /// Why an alert about this job could not be delivered.
    pub alert_error: Option<String>,
}

/// A cycle's report.
#[derive(Debug, Clone, Serialize)]
pub struct CycleReport {
    pub at: DateTime<Utc>,
    pub holder: String,
    pub jobs: Vec<JobReport>,
}

/// A job's standing for `retain schedule list` and the dashboard.
#[derive(Debug, Clone, Serialize)]
pub struct JobState {
    pub job: String,
    pub step: Step,
    pub cron: String,
    pub cron_description: String,
    pub enabled: bool,
    /// When it is next due: now when it is due already.
    pub next_run: Option<DateTime<Utc>>,
    pub last: Option<JobRunRecord>,
}

/// This process's name in leases and records: host and process id.
#[must_use]
pub fn holder_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// The scheduler over one store and schedule.
pub struct Scheduler<'a> {
    pub store: &'a Store,
    pub schedule: &'a Schedule,
    pub clock: Arc<dyn Clock>,
    pub holder: String,
}

impl Scheduler<'_> {
    /// Every job's standing at the clock's time.
    pub async fn states(&self) -> Result<Vec<JobState>> {
        let now = self.clock.now();
        let mut states = Vec::with_capacity(self.schedule.jobs.len());
        for job in &self.schedule.jobs {
            let last = self.store.last_job_run(&job.name).await?;
            let next_run = if !job.enabled {
                None
            } else if last
                .as_ref()
                .is_some_and(|l| l.status == JobStatus::Running)
            {
                job.slot_after(self.schedule.timezone, now)
            } else {
                match decide(job, self.schedule.timezone, last.as_ref(), now) {
                    Decision::Run { .. } => Some(now),
                    Decision::Miss { .. } => job.slot_after(self.schedule.timezone, now),
                    Decision::Idle { next } => next,
                }
            };
            states.push(JobState {
                job: job.name.clone(),
                step: job.step,
                cron: job.cron_text.clone(),
                cron_description: job.describe(),
                enabled: job.enabled,
                next_run,
                last,
            });
        }
        Ok(states)
    }

    /// Runs what is due once, job after job in the schedule's order. `rt` runs the store's
    /// calls and the lease's renewal; steps may use it too, but this is not called from
    /// inside it.
    pub fn cycle(&self, rt: &tokio::runtime::Runtime, steps: &dyn Steps) -> Result<CycleReport> {
        let at = self.clock.now();
        let mut jobs = Vec::with_capacity(self.schedule.jobs.len());
        for job in &self.schedule.jobs {
            jobs.push(self.one(rt, steps, job, false)?);
        }
        Ok(CycleReport {
            at,
            holder: self.holder.clone(),
            jobs,
        })
    }

    /// Runs one job now, whatever its schedule says (an operator re-running the weekly
    /// warning once a late delivery is in): an attempt at a slot of its own, the clock's time,
    /// under the job's lease like any other. A switched-off job runs too: it was asked for
    /// by name.
    pub fn run_now(
        &self,
        rt: &tokio::runtime::Runtime,
        steps: &dyn Steps,
        name: &str,
    ) -> Result<JobReport> {
        let job = self.schedule.job(name).ok_or_else(|| {
            let names: Vec<&str> = self.schedule.jobs.iter().map(|j| j.name.as_str()).collect();
            crate::error::Error::UnknownJob(format!(
                "no job {name:?} in the schedule; its jobs: {}",
                names.join(", ")
            ))
        })?;
        self.one(rt, steps, job, true)
    }

    fn report(job: &Job, action: Action) -> JobReport {
        JobReport {
            job: job.name.clone(),
            step: job.step,
            action,
            run_id: None,
            slot: None,
            attempt: None,
            status: None,
            summary: None,
            error: None,
            retry_at: None,
            next_run: None,
            alert_error: None,
        }
    }

    fn one(
        &self,
        rt: &tokio::runtime::Runtime,
        steps: &dyn Steps,
        job: &Job,
        now_asked: bool,
    ) -> Result<JobReport> {
        if !job.enabled && !now_asked {
            return Ok(Self::report(job, Action::Disabled));
        }
        let tz = self.schedule.timezone;
        let lease = Duration::minutes(i64::from(job.lease_minutes));
        let now = self.clock.now();
        // Decided before taking the lease, so an idle job costs one read and no write.
        let last = rt.block_on(self.store.last_job_run(&job.name))?;
        let stale = last
            .as_ref()
            .is_some_and(|l| l.status == JobStatus::Running);
        if !stale
            && !now_asked
            && let Decision::Idle { next } = decide(job, tz, last.as_ref(), now)
        {
            let mut r = Self::report(job, Action::Idle);
            r.next_run = next;
            return Ok(r);
        }
        if !rt.block_on(
            self.store
                .acquire_job_lease(&job.name, &self.holder, now, now + lease),
        )? {
            let mut r = Self::report(job, Action::Busy);
            r.slot = last.as_ref().map(|l| l.slot);
            return Ok(r);
        }
        let result = self.leased(rt, steps, job, now_asked);
        let released = rt.block_on(self.store.release_job_lease(&job.name, &self.holder));
        let report = result?;
        released?;
        Ok(report)
    }

    /// The job under its lease: the latest attempt is read again, since another process may
    /// have run the job between the first read and the lease.
    fn leased(
        &self,
        rt: &tokio::runtime::Runtime,
        steps: &dyn Steps,
        job: &Job,
        now_asked: bool,
    ) -> Result<JobReport> {
        let tz = self.schedule.timezone;
        let now = self.clock.now();
        let mut last = rt.block_on(self.store.last_job_run(&job.name))?;
        if let Some(l) = last.as_mut().filter(|l| l.status == JobStatus::Running) {
            // The lease was free, so whoever recorded this attempt stopped without ending it.
            let error = format!(
                "interrupted: {} stopped while running it (its lease expired)",
                l.holder
            );
            let retry = retry_at(job, l.attempt, now).map(|_| now);
            rt.block_on(self.store.end_job_run(
                l.id,
                now,
                &JobEnd {
                    status: JobStatus::Failed,
                    summary: None,
                    error: Some(&error),
                    retry_at: retry,
                },
            ))?;
            tracing::warn!(job = %job.name, "{error}");
            l.status = JobStatus::Failed;
            l.retry_at = retry;
        }
        let decision = if now_asked {
            Decision::Run {
                slot: now,
                attempt: 1,
            }
        } else {
            decide(job, tz, last.as_ref(), now)
        };
        let (slot, attempt) = match decision {
            Decision::Idle { next } => {
                let mut r = Self::report(job, Action::Idle);
                r.next_run = next;
                return Ok(r);
            }
            Decision::Miss { slot } => {
                let id =
                    rt.block_on(
                        self.store
                            .start_job_run(&job.name, slot, 1, &self.holder, now),
                    )?;
                let why = format!(
                    "missed: the slot passed more than {} minutes before anything ran, and the job does not catch up",
                    crate::plan::ON_TIME.num_minutes()
                );
                rt.block_on(self.store.end_job_run(
                    id,
                    now,
                    &JobEnd {
                        status: JobStatus::Skipped,
                        summary: None,
                        error: Some(&why),
                        retry_at: None,
                    },
                ))?;
                let mut r = Self::report(job, Action::Missed);
                (r.run_id, r.slot, r.status, r.error) =
                    (Some(id), Some(slot), Some(JobStatus::Skipped), Some(why));
                r.next_run = job.slot_after(tz, now);
                return Ok(r);
            }
            Decision::Run { slot, attempt } => (slot, attempt),
        };
        let run_id =
            rt.block_on(
                self.store
                    .start_job_run(&job.name, slot, attempt, &self.holder, now),
            )?;
        tracing::info!(job = %job.name, %slot, attempt, "running");
        let renewal = self.renew_while_running(rt, job);
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            steps.run(
                job,
                &Attempt {
                    slot,
                    attempt,
                    run_id,
                    schedule: self.schedule,
                },
            )
        }))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            Err(format!("internal error: {what}"))
        });
        renewal.abort();
        let end = self.clock.now();
        let (status, summary, error, retry) = match &outcome {
            Ok(Outcome::Done(summary)) => (JobStatus::Succeeded, Some(summary), None, None),
            Ok(Outcome::Nothing(why)) => (JobStatus::Skipped, None, Some(why.clone()), None),
            Ok(Outcome::Waiting(why)) => (
                JobStatus::Waiting,
                None,
                Some(why.clone()),
                Some(recheck_at(job, end)),
            ),
            Err(e) => (
                JobStatus::Failed,
                None,
                Some(e.clone()),
                retry_at(job, attempt, end),
            ),
        };
        rt.block_on(self.store.end_job_run(
            run_id,
            end,
            &JobEnd {
                status,
                summary,
                error: error.as_deref(),
                retry_at: retry,
            },
        ))?;
        let mut r = Self::report(job, Action::Ran);
        (r.run_id, r.slot, r.attempt, r.status) =
            (Some(run_id), Some(slot), Some(attempt), Some(status));
        (r.error, r.retry_at, r.summary) = (error, retry, summary.cloned());
        r.next_run = match retry {
            Some(at) => Some(job.slot_after(tz, end).map_or(at, |s| s.min(at))),
            None => job.slot_after(tz, end),
        };
        if status == JobStatus::Failed {
            tracing::warn!(job = %job.name, attempt, error = r.error.as_deref().unwrap_or(""), "failed");
            let event = serde_json::json!({
                "event": "job_failed",
                "job": job.name,
                "step": job.step,
                "slot": slot,
                "attempt": attempt,
                "attempts": job.attempts,
                "run_id": run_id,
                "error": r.error,
                "retry_at": retry,
                "gave_up": retry.is_none(),
                "holder": self.holder,
            });
            if let Err(e) = rt.block_on(crate::alert::send(&self.schedule.alert, &event)) {
                tracing::warn!(job = %job.name, "{e}");
                r.alert_error = Some(e);
            }
        }
        Ok(r)
    }

    /// Keeps the job's lease while its step runs, so a long training is not taken for a dead
    /// one; a process that dies stops renewing and the lease lapses.
    fn renew_while_running(
        &self,
        rt: &tokio::runtime::Runtime,
        job: &Job,
    ) -> tokio::task::JoinHandle<()> {
        let (store, clock, holder, name) = (
            self.store.clone(),
            Arc::clone(&self.clock),
            self.holder.clone(),
            job.name.clone(),
        );
        let lease = Duration::minutes(i64::from(job.lease_minutes));
        let every = std::time::Duration::from_secs(u64::from(job.lease_minutes) * 60 / 3);
        rt.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match store
                    .renew_job_lease(&name, &holder, clock.now() + lease)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(job = %name, "the job's lease was lost while it ran");
                        return;
                    }
                    Err(e) => tracing::warn!(job = %name, "renewing the job's lease: {e}"),
                }
            }
        })
    }
}

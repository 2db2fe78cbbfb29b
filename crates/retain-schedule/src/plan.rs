//! When a job runs: its latest slot against its latest recorded attempt, on any clock.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use retain_store::{JobRunRecord, JobStatus};
use serde::Serialize;

use crate::file::Job;

/// How late a job that does not catch up may still run its slot.
pub const ON_TIME: Duration = Duration::minutes(15);

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::hours(24);

/// What a job should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Run this attempt at this slot.
    Run { slot: DateTime<Utc>, attempt: u32 },
    /// A slot passed while nothing ran and the job does not catch up: recorded as skipped.
    Miss { slot: DateTime<Utc> },
    /// Nothing now; `next` is when something will be due.
    Idle { next: Option<DateTime<Utc>> },
}

/// What `job` should do at `now`, given its latest attempt. A slot newer than that attempt's
/// supersedes it, whatever became of it: however many slots were missed, the job runs once,
/// for the latest. Otherwise a failed attempt is retried, and a waiting one looked at again,
/// from its `retry_at`. An attempt whose slot lies ahead of `now` (a clock set back, or a
/// replay `--at` a later time) is superseded too, or it would hold the job until then.
#[must_use]
pub fn decide(job: &Job, tz: Tz, last: Option<&JobRunRecord>, now: DateTime<Utc>) -> Decision {
    let next_slot = job.slot_after(tz, now);
    if let Some(slot) = job.slot_at_or_before(tz, now)
        && last.is_none_or(|l| slot > l.slot || l.slot > now)
    {
        return if job.catch_up || now - slot <= ON_TIME {
            Decision::Run { slot, attempt: 1 }
        } else {
            Decision::Miss { slot }
        };
    }
    let Some(last) = last else {
        return Decision::Idle { next: next_slot };
    };
    match (last.status, last.retry_at) {
        (JobStatus::Failed | JobStatus::Waiting, Some(at)) if at <= now => Decision::Run {
            slot: last.slot,
            // Looking again at a waiting input is not another attempt at the step.
            attempt: if last.status == JobStatus::Failed {
                last.attempt + 1
            } else {
                last.attempt
            },
        },
        (JobStatus::Failed | JobStatus::Waiting, Some(at)) => Decision::Idle {
            next: Some(next_slot.map_or(at, |s| s.min(at))),
        },
        _ => Decision::Idle { next: next_slot },
    }
}

/// When a failed attempt is tried again; `None` once the job's attempts are used up.
#[must_use]
pub fn retry_at(job: &Job, attempt: u32, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if attempt >= job.attempts {
        return None;
    }
    let doubled = Duration::minutes(i64::from(job.backoff_minutes))
        * 2i32.saturating_pow(attempt.saturating_sub(1).min(20));
    Some(now + doubled.min(MAX_BACKOFF))
}

/// When a waiting job looks at its input again.
#[must_use]
pub fn recheck_at(job: &Job, now: DateTime<Utc>) -> DateTime<Utc> {
    now + Duration::minutes(i64::from(job.recheck_minutes))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use chrono::TimeZone as _;

    use super::*;
    use crate::file::Schedule;

    fn job(extra: &str) -> (Job, Tz) {
        let s = Schedule::parse(
            &format!("[[job]]\nname = \"w\"\nstep = \"warn\"\ncron = \"0 6 * * MON\"\n{extra}"),
            Path::new("schedule.toml"),
        )
        .unwrap();
        (s.jobs[0].clone(), s.timezone)
    }

    fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        // Shanghai time, as the schedule reads.
        chrono_tz::Asia::Shanghai
            .with_ymd_and_hms(2026, 12, d, h, m, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn record(
        slot: DateTime<Utc>,
        attempt: u32,
        status: JobStatus,
        retry: Option<DateTime<Utc>>,
    ) -> JobRunRecord {
        JobRunRecord {
            id: 1,
            job: "w".into(),
            slot,
            attempt,
            holder: "h".into(),
            started_at: slot,
            finished_at: Some(slot),
            status,
            summary: None,
            error: None,
            retry_at: retry,
        }
    }

    #[test]
    fn a_job_runs_its_latest_slot_once() {
        let (j, tz) = job("");
        // 7 December 2026 is a Monday.
        let monday = at(7, 6, 0);
        assert_eq!(
            decide(&j, tz, None, at(7, 6, 1)),
            Decision::Run {
                slot: monday,
                attempt: 1
            }
        );
        let done = record(monday, 1, JobStatus::Succeeded, None);
        assert_eq!(
            decide(&j, tz, Some(&done), at(9, 12, 0)),
            Decision::Idle {
                next: Some(at(14, 6, 0))
            }
        );
        // Three Mondays missed: one run, for the latest.
        assert_eq!(
            decide(&j, tz, Some(&done), at(30, 9, 0)),
            Decision::Run {
                slot: at(28, 6, 0),
                attempt: 1
            }
        );
    }

    #[test]
    fn an_attempt_from_the_future_does_not_hold_the_job() {
        let (j, tz) = job("");
        let later = record(at(28, 6, 0), 1, JobStatus::Succeeded, None);
        assert_eq!(
            decide(&j, tz, Some(&later), at(9, 12, 0)),
            Decision::Run {
                slot: at(7, 6, 0),
                attempt: 1
            }
        );
    }

    #[test]
    fn a_job_that_does_not_catch_up_skips_a_late_slot() {
        let (j, tz) = job("catch_up = false\n");
        assert_eq!(
            decide(&j, tz, None, at(7, 6, 10)),
            Decision::Run {
                slot: at(7, 6, 0),
                attempt: 1
            }
        );
        assert_eq!(
            decide(&j, tz, None, at(7, 7, 0)),
            Decision::Miss { slot: at(7, 6, 0) }
        );
    }

    #[test]
    fn failures_are_retried_with_doubling_waits_until_the_attempts_are_used() {
        let (j, tz) = job("attempts = 3\nbackoff_minutes = 10\n");
        let slot = at(7, 6, 0);
        assert_eq!(retry_at(&j, 1, slot), Some(slot + Duration::minutes(10)));
        assert_eq!(retry_at(&j, 2, slot), Some(slot + Duration::minutes(20)));
        assert_eq!(retry_at(&j, 3, slot), None);
        let failed = record(slot, 1, JobStatus::Failed, retry_at(&j, 1, slot));
        assert_eq!(
            decide(&j, tz, Some(&failed), at(7, 6, 5)),
            Decision::Idle {
                next: Some(at(7, 6, 10))
            }
        );
        assert_eq!(
            decide(&j, tz, Some(&failed), at(7, 6, 10)),
            Decision::Run { slot, attempt: 2 }
        );
        let given_up = record(slot, 3, JobStatus::Failed, None);
        assert_eq!(
            decide(&j, tz, Some(&given_up), at(8, 0, 0)),
            Decision::Idle {
                next: Some(at(14, 6, 0))
            }
        );
        // A new slot starts over at the first attempt.
        assert_eq!(
            decide(&j, tz, Some(&given_up), at(14, 6, 0)),
            Decision::Run {
                slot: at(14, 6, 0),
                attempt: 1
            }
        );
        // The wait is capped at a day however many attempts are allowed.
        let (many, _) = job("attempts = 20\nbackoff_minutes = 1440\n");
        assert_eq!(retry_at(&many, 19, slot), Some(slot + Duration::hours(24)));
    }

    #[test]
    fn a_waiting_job_looks_again_without_spending_an_attempt() {
        let (j, tz) = job("recheck_minutes = 15\n");
        let slot = at(7, 6, 0);
        let waiting = record(slot, 1, JobStatus::Waiting, Some(recheck_at(&j, slot)));
        assert_eq!(
            decide(&j, tz, Some(&waiting), at(7, 6, 15)),
            Decision::Run { slot, attempt: 1 }
        );
    }
}

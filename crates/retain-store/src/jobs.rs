//! The scheduler's record: attempts of scheduled jobs, and the leases that keep one job from
//! running twice at once across processes. Every time comes from the caller, so a scheduler
//! on a simulated clock records simulated times.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sqlx::Row;

use crate::Store;
use crate::error::{Error, Result};
use crate::sql::{parse_json, query, query_scalar};

/// How an attempt of a scheduled job ended, or that it has not yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Running,
    Succeeded,
    Failed,
    /// Its input was not complete (a partial delivery); looked at again at `retry_at`.
    Waiting,
    /// Nothing to do, or a missed slot the job does not catch up.
    Skipped,
}

impl JobStatus {
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Waiting => "waiting",
            JobStatus::Skipped => "skipped",
        }
    }

    #[must_use]
    pub fn from_code(code: &str) -> Option<JobStatus> {
        [
            JobStatus::Running,
            JobStatus::Succeeded,
            JobStatus::Failed,
            JobStatus::Waiting,
            JobStatus::Skipped,
        ]
        .into_iter()
        .find(|s| s.code() == code)
    }
}

/// One attempt of a scheduled job at one slot.
#[derive(Debug, Clone, Serialize)]
pub struct JobRunRecord {
    pub id: i64,
    pub job: String,
    /// The time the job's cron expression named, which this attempt ran for.
    pub slot: DateTime<Utc>,
    pub attempt: u32,
    /// The process that ran it (`host:pid`).
    pub holder: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: JobStatus,
    /// What the step produced.
    pub summary: Option<serde_json::Value>,
    pub error: Option<String>,
    /// When a failed or waiting attempt is tried again; none once it is given up.
    pub retry_at: Option<DateTime<Utc>>,
}

/// How an attempt ends.
#[derive(Debug, Clone)]
pub struct JobEnd<'a> {
    pub status: JobStatus,
    pub summary: Option<&'a serde_json::Value>,
    pub error: Option<&'a str>,
    pub retry_at: Option<DateTime<Utc>>,
}

/// Times as stored: fixed width in UTC, so text order is time order.
fn text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_time(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::Corrupt(format!("timestamp {text:?}: {e}")))
}

const COLUMNS: &str = "SELECT id, job, slot, attempt, holder, started_at, finished_at, status, \
                       summary, error, retry_at FROM job_runs";

fn record(row: &sqlx::any::AnyRow) -> Result<JobRunRecord> {
    let time = |name: &str| -> Result<Option<DateTime<Utc>>> {
        let t: Option<String> = row.try_get(name)?;
        t.as_deref().map(parse_time).transpose()
    };
    let status: String = row.try_get("status")?;
    let summary: Option<String> = row.try_get("summary")?;
    Ok(JobRunRecord {
        id: row.try_get("id")?,
        job: row.try_get("job")?,
        slot: parse_time(&row.try_get::<String, _>("slot")?)?,
        attempt: u32::try_from(row.try_get::<i64, _>("attempt")?)
            .map_err(|e| Error::Corrupt(format!("attempt: {e}")))?,
        holder: row.try_get("holder")?,
        started_at: parse_time(&row.try_get::<String, _>("started_at")?)?,
        finished_at: time("finished_at")?,
        status: JobStatus::from_code(&status)
            .ok_or_else(|| Error::Corrupt(format!("job status {status:?}")))?,
        summary: summary.as_deref().map(parse_json).transpose()?,
        error: row.try_get("error")?,
        retry_at: time("retry_at")?,
    })
}

impl Store {
    /// Takes `job`'s lease for `holder` until `expires`, when no other holder has it or theirs
    /// expired before `now`; whether it was taken. A holder that has it takes it again.
    pub async fn acquire_job_lease(
        &self,
        job: &str,
        holder: &str,
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> Result<bool> {
        let done = query(
            self.d,
            "INSERT INTO job_leases (job, holder, expires_at) VALUES (?, ?, ?) \
             ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE job_leases.expires_at < ? OR job_leases.holder = excluded.holder",
        )
        .bind(job)
        .bind(holder)
        .bind(text(expires))
        .bind(text(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Extends a lease `holder` has; false when it lost it (it expired and another took it).
    pub async fn renew_job_lease(
        &self,
        job: &str,
        holder: &str,
        expires: DateTime<Utc>,
    ) -> Result<bool> {
        let done = query(
            self.d,
            "UPDATE job_leases SET expires_at = ? WHERE job = ? AND holder = ?",
        )
        .bind(text(expires))
        .bind(job)
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives a lease back; a lease another holder has taken meanwhile is left alone.
    pub async fn release_job_lease(&self, job: &str, holder: &str) -> Result<()> {
        query(
            self.d,
            "DELETE FROM job_leases WHERE job = ? AND holder = ?",
        )
        .bind(job)
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records the start of an attempt.
    pub async fn start_job_run(
        &self,
        job: &str,
        slot: DateTime<Utc>,
        attempt: u32,
        holder: &str,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        Ok(query_scalar(
            self.d,
            "INSERT INTO job_runs (job, slot, attempt, holder, started_at, status) \
             VALUES (?, ?, ?, ?, ?, 'running') RETURNING id",
        )
        .bind(job)
        .bind(text(slot))
        .bind(i64::from(attempt))
        .bind(holder)
        .bind(text(now))
        .fetch_one(&self.pool)
        .await?)
    }

    /// Records how an attempt ended.
    pub async fn end_job_run(&self, id: i64, now: DateTime<Utc>, end: &JobEnd<'_>) -> Result<()> {
        let done = query(
            self.d,
            "UPDATE job_runs SET finished_at = ?, status = ?, summary = ?, error = ?, \
             retry_at = ? WHERE id = ?",
        )
        .bind(text(now))
        .bind(end.status.code())
        .bind(end.summary.map(ToString::to_string))
        .bind(end.error)
        .bind(end.retry_at.map(text))
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(format!("job run {id}")));
        }
        Ok(())
    }

    /// The latest attempt of `job`, if it ever ran.
    pub async fn last_job_run(&self, job: &str) -> Result<Option<JobRunRecord>> {
        let sql = format!("{COLUMNS} WHERE job = ? ORDER BY id DESC LIMIT 1");
        let row = sqlx::query(sqlx::AssertSqlSafe(self.d.translate(sql)))
            .bind(job)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(record).transpose()
    }

    /// The latest attempts, newest first: of one job, or of all.
    pub async fn job_runs(&self, job: Option<&str>, limit: u32) -> Result<Vec<JobRunRecord>> {
        let rows = if let Some(job) = job {
            let sql = format!("{COLUMNS} WHERE job = ? ORDER BY id DESC LIMIT ?");
            sqlx::query(sqlx::AssertSqlSafe(self.d.translate(sql)))
                .bind(job)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
        } else {
            let sql = format!("{COLUMNS} ORDER BY id DESC LIMIT ?");
            sqlx::query(sqlx::AssertSqlSafe(self.d.translate(sql)))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
        };
        rows.iter().map(record).collect()
    }
}

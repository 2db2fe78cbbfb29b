//! Runs and ingest history: what each command run did, and which files were loaded, so the
//! same file is not loaded twice.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use crate::Store;
use crate::error::{Error, Result};
use crate::sql::{now, parse_json, query, query_scalar};

/// The id of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RunId(pub i64);

/// A recorded run.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub kind: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: String,
    pub params: serde_json::Value,
    pub summary: Option<serde_json::Value>,
    pub error: Option<String>,
}

/// One input file loaded into a table.
#[derive(Debug, Clone, Serialize)]
pub struct IngestFileRecord {
    pub table: String,
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    pub read: u64,
    pub loaded: u64,
    pub quarantined: u64,
    pub quarantine_file: String,
}

fn parse_time(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::Corrupt(format!("timestamp {text:?}: {e}")))
}

impl Store {
    /// Records the start of a run.
    pub async fn begin_run(&self, kind: &str, params: &serde_json::Value) -> Result<RunId> {
        let id: i64 = query_scalar(self.d,
            "INSERT INTO runs (kind, started_at, status, params) VALUES (?, ?, 'running', ?) RETURNING id",
        )
        .bind(kind)
        .bind(now())
        .bind(params.to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok(RunId(id))
    }

    /// Marks a run succeeded with its summary.
    pub async fn finish_run(&self, run: RunId, summary: &serde_json::Value) -> Result<()> {
        self.end_run(run, "succeeded", Some(summary), None).await
    }

    /// Marks a run failed with the error a user saw.
    pub async fn fail_run(&self, run: RunId, error: &str) -> Result<()> {
        self.end_run(run, "failed", None, Some(error)).await
    }

    async fn end_run(
        &self,
        run: RunId,
        status: &str,
        summary: Option<&serde_json::Value>,
        error: Option<&str>,
    ) -> Result<()> {
        query(
            self.d,
            "UPDATE runs SET finished_at = ?, status = ?, summary = ?, error = ? WHERE id = ?",
        )
        .bind(now())
        .bind(status)
        .bind(summary.map(ToString::to_string))
        .bind(error)
        .bind(run.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records the files of a successful load, in one transaction.
    pub async fn record_ingest(&self, run: RunId, files: &[IngestFileRecord]) -> Result<()> {
        let mut tx = self.begin().await?;
        for f in files {
            query(
                self.d,
                "INSERT INTO ingest_files (run_id, table_name, path, sha256, bytes, read_rows, \
                 loaded_rows, quarantined_rows, quarantine_file, loaded_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(run.0)
            .bind(&f.table)
            .bind(&f.path)
            .bind(&f.sha256)
            .bind(f.bytes as i64)
            .bind(f.read as i64)
            .bind(f.loaded as i64)
            .bind(f.quarantined as i64)
            .bind(&f.quarantine_file)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Whether a file with this content was loaded into `table` before.
    pub async fn loaded_before(&self, table: &str, sha256: &str) -> Result<bool> {
        let found: Option<i64> = query_scalar(
            self.d,
            "SELECT 1 FROM ingest_files WHERE table_name = ? AND sha256 = ? LIMIT 1",
        )
        .bind(table)
        .bind(sha256)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    /// The most recent runs, newest first.
    pub async fn runs(&self, limit: u32) -> Result<Vec<RunRecord>> {
        let rows = query(
            self.d,
            "SELECT id, kind, started_at, finished_at, status, params, summary, error \
             FROM runs ORDER BY id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let finished: Option<String> = row.try_get("finished_at")?;
                let summary: Option<String> = row.try_get("summary")?;
                Ok(RunRecord {
                    id: row.try_get("id")?,
                    kind: row.try_get("kind")?,
                    started_at: parse_time(&row.try_get::<String, _>("started_at")?)?,
                    finished_at: finished.as_deref().map(parse_time).transpose()?,
                    status: row.try_get("status")?,
                    params: parse_json(&row.try_get::<String, _>("params")?)?,
                    summary: summary.as_deref().map(parse_json).transpose()?,
                    error: row.try_get("error")?,
                })
            })
            .collect()
    }
}

//! The SQLite backend: a file in the workspace, WAL mode, one writer at a time.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::error::{Error, Result};
use crate::{IngestFileRecord, RunId, RunRecord};

#[derive(Debug, Clone)]
pub(crate) struct SqliteStore {
    pub(crate) pool: SqlitePool,
}

pub(crate) fn now() -> String {
    Utc::now().to_rfc3339()
}

fn parse_time(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::Corrupt(format!("timestamp {text:?}: {e}")))
}

pub(crate) fn parse_json(text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt(format!("JSON {text:?}: {e}")))
}

impl SqliteStore {
    pub(crate) async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }

    pub(crate) async fn begin_run(&self, kind: &str, params: &serde_json::Value) -> Result<RunId> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO runs (kind, started_at, status, params) VALUES (?, ?, 'running', ?) RETURNING id",
        )
        .bind(kind)
        .bind(now())
        .bind(params.to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok(RunId(id))
    }

    pub(crate) async fn end_run(
        &self,
        run: RunId,
        status: &str,
        summary: Option<&serde_json::Value>,
        error: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
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

    pub(crate) async fn replace_offers(
        &self,
        offers: &[(String, serde_json::Value)],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM offers").execute(&mut *tx).await?;
        for (id, definition) in offers {
            sqlx::query("INSERT INTO offers (id, definition, updated_at) VALUES (?, ?, ?)")
                .bind(id)
                .bind(definition.to_string())
                .bind(now())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn offers(&self) -> Result<Vec<(String, serde_json::Value)>> {
        let rows = sqlx::query("SELECT id, definition FROM offers ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.get::<String, _>(0), parse_json(&r.get::<String, _>(1))?)))
            .collect()
    }

    pub(crate) async fn record_ingest(&self, run: RunId, files: &[IngestFileRecord]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for f in files {
            sqlx::query(
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

    pub(crate) async fn loaded_before(&self, table: &str, sha256: &str) -> Result<bool> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM ingest_files WHERE table_name = ? AND sha256 = ? LIMIT 1",
        )
        .bind(table)
        .bind(sha256)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    pub(crate) async fn runs(&self, limit: u32) -> Result<Vec<RunRecord>> {
        let rows = sqlx::query(
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

//! The store's SQL, one implementation for both backends: SQLite (a file in the workspace, WAL
//! mode, one writer at a time) and PostgreSQL. Statements are written once with `?`
//! placeholders and portable SQL; [`Dialect`] rewrites the placeholders for PostgreSQL and
//! supplies the one statement that differs, taking the write lock.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use sqlx::any::{AnyArguments, AnyPoolOptions};
use sqlx::query::{Query, QueryScalar};
use sqlx::{Any, AssertSqlSafe, Row, Transaction};

use crate::error::{Error, Result};
use crate::{IngestFileRecord, RunId, RunRecord, Store};

/// Which SQL the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The statement with `?` and `?N` placeholders as this dialect writes them.
    pub(crate) fn translate(self, sql: impl Into<Cow<'static, str>>) -> Cow<'static, str> {
        let sql = sql.into();
        if self == Dialect::Sqlite {
            return sql;
        }
        let mut out = String::with_capacity(sql.len() + 8);
        let mut next = 0;
        let mut quoted = false;
        let mut chars = sql.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\'' => {
                    quoted = !quoted;
                    out.push(c);
                }
                '?' if !quoted => {
                    out.push('$');
                    if chars.peek().is_some_and(char::is_ascii_digit) {
                        while let Some(d) = chars.next_if(char::is_ascii_digit) {
                            out.push(d);
                        }
                    } else {
                        next += 1;
                        out.push_str(&next.to_string());
                    }
                }
                _ => out.push(c),
            }
        }
        Cow::Owned(out)
    }
}

/// A statement in the store's dialect.
pub(crate) fn query(d: Dialect, sql: &'static str) -> Query<'static, Any, AnyArguments> {
    sqlx::query(AssertSqlSafe(d.translate(sql)))
}

/// A one-column statement in the store's dialect.
pub(crate) fn query_scalar<O>(
    d: Dialect,
    sql: &'static str,
) -> QueryScalar<'static, Any, O, AnyArguments>
where
    (O,): for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
{
    sqlx::query_scalar(AssertSqlSafe(d.translate(sql)))
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

impl Store {
    /// Opens the pool and brings the schema up to date; [`Store::connect`] picks the dialect.
    pub(crate) async fn open(url: &str, d: Dialect) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let url = match d {
            // Create the file on first use; sqlx turns foreign keys on and waits 5 s for locks.
            Dialect::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
            }
            _ => url.to_owned(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if d == Dialect::Sqlite { 4 } else { 8 })
            .connect(&url)
            .await?;
        match d {
            Dialect::Sqlite => {
                // Readers go on while one process writes; the setting stays with the file.
                sqlx::query("PRAGMA journal_mode = WAL")
                    .execute(&pool)
                    .await?;
                sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
            }
            Dialect::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await?,
        }
        Ok(Self { pool, d })
    }

    /// A transaction that writes. On SQLite it is `BEGIN IMMEDIATE`, which takes the write
    /// lock, waiting for it, before the first statement: a deferred transaction that has read
    /// cannot wait when it comes to write while another connection holds the lock (SQLite
    /// would deadlock them), and fails at once with "database is locked". PostgreSQL's rows
    /// lock as they are written.
    pub(crate) async fn begin(&self) -> Result<Transaction<'static, Any>> {
        match self.d {
            Dialect::Sqlite => Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?),
            Dialect::Postgres => Ok(self.pool.begin().await?),
        }
    }

    /// A transaction that holds the store's write lock from its first statement, so state read
    /// in it cannot change before it commits: [`Store::begin`] on SQLite, a self-exclusive
    /// lock on PostgreSQL (readers are not blocked).
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>> {
        let mut tx = self.begin().await?;
        match self.d {
            Dialect::Sqlite => Ok(tx),
            Dialect::Postgres => {
                sqlx::query("LOCK TABLE campaigns IN SHARE ROW EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            }
        }
    }

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

    /// Replaces the stored offer library with `offers` (id, definition), in one transaction.
    pub async fn replace_offers(&self, offers: &[(String, serde_json::Value)]) -> Result<()> {
        let mut tx = self.begin().await?;
        query(self.d, "DELETE FROM offers")
            .execute(&mut *tx)
            .await?;
        for (id, definition) in offers {
            query(
                self.d,
                "INSERT INTO offers (id, definition, updated_at) VALUES (?, ?, ?)",
            )
            .bind(id)
            .bind(definition.to_string())
            .bind(now())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The stored offer library, by id.
    pub async fn offers(&self) -> Result<Vec<(String, serde_json::Value)>> {
        let rows = query(self.d, "SELECT id, definition FROM offers ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.get::<String, _>(0), parse_json(&r.get::<String, _>(1))?)))
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_transaction_that_reads_first_waits_for_another_writer() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let store = Store::open(&url, Dialect::Sqlite).await.unwrap();
        let mut holder = store.begin().await.unwrap();
        query(
            store.d,
            "INSERT INTO offers (id, definition, updated_at) VALUES ('A', '{}', 'now')",
        )
        .execute(&mut *holder)
        .await
        .unwrap();
        // Another connection reads, then writes, while the first holds the write lock: as a
        // callback file recorded while a dropped launch's rollback is still pending.
        let other = store.clone();
        let reads_then_writes = tokio::spawn(async move {
            let mut tx = other.begin().await?;
            let seen: i64 = query_scalar(other.d, "SELECT count(*) FROM offers")
                .fetch_one(&mut *tx)
                .await?;
            query(
                other.d,
                "INSERT INTO offers (id, definition, updated_at) VALUES ('B', '{}', 'now')",
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, Error>(seen)
        });
        tokio::task::spawn_blocking(|| std::thread::sleep(std::time::Duration::from_millis(300)))
            .await
            .unwrap();
        holder.commit().await.unwrap();
        // It waited for the lock rather than failing with "database is locked", and so saw
        // the first writer's row.
        assert_eq!(reads_then_writes.await.unwrap().unwrap(), 1);
    }
}

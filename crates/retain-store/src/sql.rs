//! The store's SQL, one implementation for both backends: SQLite (a file in the workspace, WAL
//! mode, one writer at a time) and PostgreSQL. Statements are written once with `?`
//! placeholders and portable SQL; [`Dialect`] rewrites the placeholders for PostgreSQL and
//! supplies the one statement that differs, taking the write lock. This module opens the store
//! and its transactions; the statements live in the modules of what they store.

use std::borrow::Cow;

use chrono::Utc;
use sqlx::any::{AnyArguments, AnyPoolOptions};
use sqlx::query::{Query, QueryScalar};
use sqlx::{Any, AssertSqlSafe, Transaction};

use crate::Store;
use crate::error::{Error, Result};

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

/// Rows written or keys looked up per statement: at most seven parameters a row, well inside
/// both databases' limits.
pub(crate) const ROWS_PER_STATEMENT: usize = 256;

/// `count` copies of `item` separated by commas, for statements built for a number of rows.
pub(crate) fn repeated(item: &str, count: usize) -> String {
    vec![item; count].join(", ")
}

pub(crate) fn now() -> String {
    Utc::now().to_rfc3339()
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        let sql = "SELECT '?' FROM t WHERE a = ? AND (?2 IS NULL OR b = ?2) AND c = ?";
        assert_eq!(
            Dialect::translate(Dialect::Postgres, "SELECT '?' FROM t WHERE a = ? AND c = ?"),
            "SELECT '?' FROM t WHERE a = $1 AND c = $2"
        );
        assert_eq!(
            Dialect::translate(Dialect::Postgres, "WHERE (?1 IS NULL OR e = ?1) LIMIT ?3"),
            "WHERE ($1 IS NULL OR e = $1) LIMIT $3"
        );
        assert_eq!(Dialect::translate(Dialect::Sqlite, sql), sql);
    }

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

//! The audit log: the store's own events, written in the transaction of the change they
//! record, and journaled events appended in bulk and indexed by entity in sorted runs.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::Store;
use crate::error::{Error, Result};
use crate::records::{Audit, AuditEvent, JournaledAudit};
use crate::sql::{Dialect, ROWS_PER_STATEMENT, now, parse_json, query, query_scalar, repeated};

/// Appends to the audit log inside `tx`: the event commits or rolls back with the change it
/// records.
pub(crate) async fn audit(
    d: Dialect,
    tx: &mut Transaction<'_, Any>,
    entity: &str,
    entity_id: &str,
    a: &Audit<'_>,
) -> Result<()> {
    query(d,
        "INSERT INTO audit_log (at, actor, action, entity, entity_id, detail) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(now())
    .bind(a.actor)
    .bind(a.action)
    .bind(entity)
    .bind(entity_id)
    .bind(a.detail.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn audit_event(r: &AnyRow) -> Result<AuditEvent> {
    Ok(AuditEvent {
        id: r.try_get("id")?,
        at: r.try_get("at")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        entity: r.try_get("entity")?,
        entity_id: r.try_get("entity_id")?,
        detail: parse_json(&r.try_get::<String, _>("detail")?)?,
    })
}

impl Store {
    /// Appends to the audit log.
    pub async fn audit(&self, entity: &str, entity_id: &str, a: &Audit<'_>) -> Result<()> {
        let mut tx = self.begin().await?;
        audit(self.d, &mut tx, entity, entity_id, a).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Appends journaled events in one transaction, in order: all of them or none. An event
    /// whose key is already in the log is skipped; returns how many were new.
    ///
    /// Multi-row inserts, each skipping the keys already present.
    pub async fn append_journaled(&self, events: &[JournaledAudit]) -> Result<u64> {
        let mut tx = self.begin().await?;
        if self.d == Dialect::Postgres {
            // PostgreSQL hands out ids before commit, so one in flight can be below one already
            // visible; the indexer locks this out and so waits for appends in flight.
            sqlx::query("LOCK TABLE audit_journal_runs IN ROW SHARE MODE")
                .execute(&mut *tx)
                .await?;
        }
        let mut appended = 0;
        for chunk in events.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO audit_log (journal_key, at, actor, action, entity, entity_id, detail) \
                 VALUES {} ON CONFLICT (journal_key) DO NOTHING",
                repeated("(?, ?, ?, ?, ?, ?, ?)", chunk.len())
            );
            let mut insert = sqlx::query(sqlx::AssertSqlSafe(self.d.translate(sql)));
            for e in chunk {
                insert = insert
                    .bind(&e.key)
                    .bind(&e.at)
                    .bind(text(&e.actor))
                    .bind(text(&e.action))
                    .bind(text(&e.entity))
                    .bind(text(&e.entity_id))
                    .bind(text(&e.detail.to_string()).replace("\\u0000", "\\ufffd"));
            }
            appended += insert.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(appended)
    }

    /// The audit log of an entity kind, or of one entity, in order.
    pub async fn audit_log(
        &self,
        entity: &str,
        entity_id: Option<&str>,
    ) -> Result<Vec<AuditEvent>> {
        // Three parts, none overlapping: the store's own events, by their index; journaled
        // events up to the last run's end, by the runs (an event in two runs is one event);
        // and journaled events after it, by a scan of the end of the log.
        let one = if entity_id.is_some() {
            " AND entity_id = ?2"
        } else {
            ""
        };
        let sql = format!(
            "SELECT * FROM audit_log WHERE journal_key IS NULL AND entity = ?1{one} \
             UNION ALL \
             SELECT * FROM audit_log WHERE id IN (SELECT id FROM audit_journal_index \
                 WHERE run IN (SELECT run FROM audit_journal_runs) AND entity = ?1{one}) \
             AND id <= (SELECT coalesce(max(upto), 0) FROM audit_journal_runs) \
             UNION ALL \
             SELECT * FROM audit_log \
             WHERE id > (SELECT coalesce(max(upto), 0) FROM audit_journal_runs) \
             AND journal_key IS NOT NULL AND entity = ?1{one} \
             ORDER BY id"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(self.d.translate(sql))).bind(entity);
        if let Some(id) = entity_id {
            q = q.bind(id);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(audit_event).collect()
    }

    /// Journaled events not yet in the bulk index, and the highest event id indexed.
    pub async fn audit_index_lag(&self) -> Result<(u64, i64)> {
        let upto: i64 = query_scalar(
            self.d,
            "SELECT coalesce(max(upto), 0) FROM audit_journal_runs",
        )
        .fetch_one(&self.pool)
        .await?;
        let lag: i64 = query_scalar(
            self.d,
            "SELECT count(*) FROM audit_log WHERE id > ? AND journal_key IS NOT NULL",
        )
        .bind(upto)
        .fetch_one(&self.pool)
        .await?;
        Ok((u64::try_from(lag).unwrap_or(0), upto))
    }

    /// Moves journaled events into the audit log's bulk index (see the migration
    /// `0007_audit_bulk_index.sql`): up to `max_rows` of them, sorted, `chunk_rows` to a
    /// transaction, awaiting `between` after each chunk and stopping early when it answers
    /// false. Returns how many events were indexed. Queries are right whether or not this has
    /// run; it only keeps them fast.
    ///
    /// A pass indexes the events past the last run as a new run: it sorts them into a temporary
    /// table and appends them from it to the index in key order, each step a transaction of its
    /// own; stopped early, it leaves the run unlisted. The rows never leave the database.
    pub async fn index_audit<F>(
        &self,
        max_rows: usize,
        chunk_rows: usize,
        mut between: impl FnMut() -> F,
    ) -> Result<usize>
    where
        F: Future<Output = bool>,
    {
        let chunk = i64::try_from(chunk_rows.max(1)).unwrap_or(i64::MAX);
        // Temporary tables belong to a connection: the pass keeps one.
        let mut conn = self.pool.acquire().await?;
        let batch_table = match self.d {
            Dialect::Sqlite => {
                sqlx::query("PRAGMA temp_store = MEMORY")
                    .execute(&mut *conn)
                    .await?;
                "CREATE TEMP TABLE audit_batch (entity TEXT NOT NULL, entity_id TEXT NOT NULL, \
                 id INTEGER NOT NULL, PRIMARY KEY (entity, entity_id, id)) WITHOUT ROWID"
            }
            Dialect::Postgres => {
                "CREATE TEMP TABLE audit_batch (entity TEXT NOT NULL, entity_id TEXT NOT NULL, \
                 id BIGINT NOT NULL, PRIMARY KEY (entity, entity_id, id))"
            }
        };
        sqlx::query("DROP TABLE IF EXISTS audit_batch")
            .execute(&mut *conn)
            .await?;
        sqlx::query(batch_table).execute(&mut *conn).await?;

        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        if self.d == Dialect::Postgres {
            sqlx::query("LOCK TABLE audit_journal_runs IN EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await?;
        }
        let (upto, run): (i64, i64) = sqlx::query_as(
            "SELECT coalesce(max(upto), 0), coalesce(max(run), -1) + 1 FROM audit_journal_runs",
        )
        .fetch_one(&mut *tx)
        .await?;
        let to: Option<i64> = query_scalar(
            self.d,
            "SELECT max(id) FROM (SELECT id FROM audit_log \
             WHERE id > ? AND journal_key IS NOT NULL ORDER BY id LIMIT ?) b",
        )
        .bind(upto)
        .bind(i64::try_from(max_rows).unwrap_or(i64::MAX))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let Some(to) = to else {
            return Ok(0);
        };

        // Sorted in the temporary table, a slice of the log at a time.
        let mut from = upto;
        while from < to {
            query(
                self.d,
                "INSERT INTO audit_batch (entity, entity_id, id) \
                 SELECT entity, entity_id, id FROM audit_log \
                 WHERE id > ? AND id <= ? AND journal_key IS NOT NULL",
            )
            .bind(from)
            .bind(to.min(from.saturating_add(chunk)))
            .execute(&mut *conn)
            .await?;
            from = from.saturating_add(chunk);
            if !between().await {
                return Ok(0);
            }
        }
        let events: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_batch")
            .fetch_one(&mut *conn)
            .await?;
        // Appended to the index in key order, each step up to the key `chunk` rows on.
        let mut last = (String::new(), String::new(), -1_i64);
        loop {
            let bound: Option<(String, String, i64)> = query(
                self.d,
                "SELECT entity, entity_id, id FROM audit_batch \
                 WHERE (entity, entity_id, id) > (?, ?, ?) \
                 ORDER BY entity, entity_id, id LIMIT 1 OFFSET ?",
            )
            .bind(&last.0)
            .bind(&last.1)
            .bind(last.2)
            .bind(chunk - 1)
            .fetch_optional(&mut *conn)
            .await?
            .map(|r| Ok::<_, Error>((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .transpose()?;
            let upper = if bound.is_some() {
                " AND (entity, entity_id, id) <= (?, ?, ?)"
            } else {
                ""
            };
            let sql = format!(
                "INSERT INTO audit_journal_index (run, entity, entity_id, id) \
                 SELECT ?, entity, entity_id, id FROM audit_batch \
                 WHERE (entity, entity_id, id) > (?, ?, ?){upper} \
                 ORDER BY entity, entity_id, id ON CONFLICT DO NOTHING"
            );
            let mut insert = sqlx::query(sqlx::AssertSqlSafe(self.d.translate(sql)))
                .bind(run)
                .bind(&last.0)
                .bind(&last.1)
                .bind(last.2);
            if let Some(b) = &bound {
                insert = insert.bind(&b.0).bind(&b.1).bind(b.2);
            }
            insert.execute(&mut *conn).await?;
            let Some(b) = bound else { break };
            last = b;
            if !between().await {
                return Ok(0);
            }
        }
        sqlx::query("DROP TABLE audit_batch")
            .execute(&mut *conn)
            .await?;
        // Listed only if no other pass listed a run since this one began.
        let listed = query(
            self.d,
            "INSERT INTO audit_journal_runs (run, upto, events) SELECT ?, ?, ? \
             WHERE (SELECT coalesce(max(upto), 0) FROM audit_journal_runs) = ? \
             ON CONFLICT DO NOTHING",
        )
        .bind(run)
        .bind(to)
        .bind(events)
        .bind(upto)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        Ok(if listed == 1 {
            usize::try_from(events).unwrap_or(usize::MAX)
        } else {
            0
        })
    }

    /// The newest audit events first, optionally of one entity kind or one actor.
    pub async fn audit_recent(
        &self,
        entity: Option<&str>,
        actor: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>> {
        let rows = query(
            self.d,
            "SELECT * FROM audit_log WHERE (?1 IS NULL OR entity = ?1) \
             AND (?2 IS NULL OR actor = ?2) ORDER BY id DESC LIMIT ?3",
        )
        .bind(entity)
        .bind(actor)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_event).collect()
    }
}

/// `value` as PostgreSQL can store it: text there cannot hold a NUL character, and an audit
/// event that cannot be stored would hold up every event behind it. SQLite gets the same text,
/// so both stores keep the same log.
fn text(value: &str) -> String {
    value.replace('\0', "\u{fffd}")
}

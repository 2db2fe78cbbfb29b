//! Campaigns in the store. State changes are conditional updates inside transactions, so two
//! processes racing on one campaign cannot both win.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::Store;
use crate::error::{Error, Result};
use crate::records::{
    Audit, AuditEvent, CallbackRecord, CampaignRecord, JournaledAudit, Launched, MemberRecord,
    NewCampaign, NewWorkOrder, OutcomeRecord, PlannedContact, Scope, TemplateRecord, UserRecord,
    WorkOrderRecord,
};
use crate::sql::{Dialect, now, parse_json, query, query_scalar};

/// For crash tests: abort the process after inserting this many work orders of a launch,
/// inside its transaction.
const FAULT_ENV: &str = "RETAIN_FAULT_ABORT_LAUNCH_AFTER";

async fn audit(
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

/// Rows written or keys looked up per statement: at most seven parameters a row, well inside
/// both databases' limits.
const ROWS_PER_STATEMENT: usize = 256;

/// `count` copies of `item` separated by commas, for statements built for a number of rows.
fn repeated(item: &str, count: usize) -> String {
    vec![item; count].join(", ")
}

fn campaign(row: &AnyRow) -> Result<CampaignRecord> {
    let json = |name: &str| -> Result<Option<serde_json::Value>> {
        row.try_get::<Option<String>, _>(name)?
            .as_deref()
            .map(parse_json)
            .transpose()
    };
    Ok(CampaignRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        template: row.try_get("template")?,
        template_version: row.try_get("template_version")?,
        definition: parse_json(&row.try_get::<String, _>("definition")?)?,
        budget: row.try_get("budget")?,
        as_of: row.try_get("as_of")?,
        seed: row.try_get("seed")?,
        owner: row.try_get("owner")?,
        status: row.try_get("status")?,
        approval_level: row.try_get("approval_level")?,
        rehearsal: json("rehearsal")?,
        evaluation: json("evaluation")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
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

fn work_order(row: &AnyRow) -> Result<WorkOrderRecord> {
    Ok(WorkOrderRecord {
        id: row.try_get("id")?,
        campaign_id: row.try_get("campaign_id")?,
        subscriber_id: row.try_get("subscriber_id")?,
        channel: row.try_get("channel")?,
        purpose: row.try_get("purpose")?,
        offer_id: row.try_get("offer_id")?,
        branch_id: row.try_get("branch_id")?,
        manager_id: row.try_get("manager_id")?,
        due_date: row.try_get("due_date")?,
        status: row.try_get("status")?,
        payload: parse_json(&row.try_get::<String, _>("payload")?)?,
    })
}

async fn insert_work_order(
    d: Dialect,
    tx: &mut Transaction<'_, Any>,
    campaign_id: i64,
    w: &NewWorkOrder,
) -> Result<bool> {
    let done = query(d,
        "INSERT INTO work_orders (campaign_id, subscriber_id, channel, purpose, offer_id, branch_id, \
         manager_id, due_date, status, payload, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?) \
         ON CONFLICT (campaign_id, subscriber_id, channel, purpose) DO NOTHING",
    )
    .bind(campaign_id)
    .bind(w.subscriber_id)
    .bind(&w.channel)
    .bind(&w.purpose)
    .bind(&w.offer_id)
    .bind(&w.branch_id)
    .bind(&w.manager_id)
    .bind(&w.due_date)
    .bind(w.payload.to_string())
    .bind(now())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

async fn count(
    d: Dialect,
    tx: &mut Transaction<'_, Any>,
    sql: &'static str,
    id: i64,
) -> Result<u64> {
    let n: i64 = query_scalar(d, sql).bind(id).fetch_one(&mut **tx).await?;
    Ok(n as u64)
}

impl Store {
    /// Creates a draft campaign and audits it.
    pub async fn create_campaign(&self, c: &NewCampaign, actor: &str) -> Result<i64> {
        let mut tx = self.begin().await?;
        let at = now();
        let id: i64 = query_scalar(self.d,
            "INSERT INTO campaigns (name, kind, template, template_version, definition, budget, as_of, \
             seed, owner, status, approval_level, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'draft', ?, ?, ?) RETURNING id",
        )
        .bind(&c.name)
        .bind(&c.kind)
        .bind(&c.template)
        .bind(c.template_version)
        .bind(c.definition.to_string())
        .bind(c.budget)
        .bind(&c.as_of)
        .bind(c.seed)
        .bind(&c.owner)
        .bind(c.approval_level)
        .bind(&at)
        .bind(&at)
        .fetch_one(&mut *tx)
        .await?;
        let detail = serde_json::json!({
            "name": c.name, "template": c.template, "template_version": c.template_version,
            "budget": c.budget, "as_of": c.as_of, "approval_level": c.approval_level,
        });
        audit(
            self.d,
            &mut tx,
            "campaign",
            &id.to_string(),
            &Audit {
                actor,
                action: "create",
                detail,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// One campaign.
    pub async fn campaign(&self, id: i64) -> Result<Option<CampaignRecord>> {
        query(self.d, "SELECT * FROM campaigns WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(campaign)
            .transpose()
    }

    /// Every campaign, oldest first.
    pub async fn campaigns(&self) -> Result<Vec<CampaignRecord>> {
        query(self.d, "SELECT * FROM campaigns ORDER BY id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(campaign)
            .collect()
    }

    /// Moves a campaign from one of `from` to `to`, storing `column` (`rehearsal` or
    /// `evaluation`) when given, and audits it, in one transaction. A campaign in another state
    /// is a [`Error::Conflict`].
    pub async fn transition(
        &self,
        id: i64,
        from: &[&str],
        to: &str,
        column: Option<(&str, &serde_json::Value)>,
        event: &Audit<'_>,
    ) -> Result<()> {
        // The write lock first: of two racing changes, the second sees the first's status.
        let mut tx = self.begin_write().await?;
        let status: Option<String> =
            query_scalar(self.d, "SELECT status FROM campaigns WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(status) = status else {
            return Err(Error::NotFound(format!("campaign {id}")));
        };
        if !from.contains(&status.as_str()) {
            return Err(Error::Conflict(format!(
                "campaign {id} is {status}; {} needs it {}",
                event.action,
                from.join(" or ")
            )));
        }
        let q = match column {
            Some((name, value)) => {
                let sql = match name {
                    "rehearsal" => {
                        "UPDATE campaigns SET status = ?, updated_at = ?, rehearsal = ? WHERE id = ?"
                    }
                    "evaluation" => {
                        "UPDATE campaigns SET status = ?, updated_at = ?, evaluation = ? WHERE id = ?"
                    }
                    other => return Err(Error::Corrupt(format!("no campaign column {other}"))),
                };
                query(self.d, sql)
                    .bind(to)
                    .bind(now())
                    .bind(value.to_string())
                    .bind(id)
            }
            None => query(
                self.d,
                "UPDATE campaigns SET status = ?, updated_at = ? WHERE id = ?",
            )
            .bind(to)
            .bind(now())
            .bind(id),
        };
        q.execute(&mut *tx).await?;
        audit(self.d, &mut tx, "campaign", &id.to_string(), event).await?;
        tx.commit().await?;
        Ok(())
    }

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

    /// Launches an approved campaign: its members, its work orders and its new status in one
    /// transaction. A launched campaign is left as it is and its counts returned, so launching
    /// again, or after a crash (which rolls the transaction back), never duplicates or loses a
    /// work order.
    pub async fn launch(
        &self,
        id: i64,
        members: &[MemberRecord],
        orders: &[NewWorkOrder],
        event: &Audit<'_>,
    ) -> Result<Launched> {
        let fault: Option<usize> = std::env::var(FAULT_ENV).ok().and_then(|v| v.parse().ok());
        // BEGIN IMMEDIATE: the write lock is taken before the status is read, so a second
        // launcher waits and then sees `launched`.
        let mut tx = self.begin_write().await?;
        let status: Option<String> =
            query_scalar(self.d, "SELECT status FROM campaigns WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(status) = status else {
            return Err(Error::NotFound(format!("campaign {id}")));
        };
        let counts = "SELECT COUNT(*) FROM work_orders WHERE campaign_id = ?";
        let member_counts = "SELECT COUNT(*) FROM campaign_members WHERE campaign_id = ?";
        match status.as_str() {
            "approved" => {}
            "launched" | "evaluated" => {
                return Ok(Launched {
                    created: false,
                    work_orders: count(self.d, &mut tx, counts, id).await?,
                    members: count(self.d, &mut tx, member_counts, id).await?,
                });
            }
            other => {
                return Err(Error::Conflict(format!(
                    "campaign {id} is {other}; launch needs it approved"
                )));
            }
        }
        for m in members {
            query(self.d,
                "INSERT INTO campaign_members (campaign_id, subscriber_id, arm, stratum, level, tier, \
                 segment, reason, offer_id, offer_kind, channel, p_churn, clv, arpu, cost, \
                 expected_cost, expected_value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(m.subscriber_id)
            .bind(&m.arm)
            .bind(&m.stratum)
            .bind(&m.level)
            .bind(&m.tier)
            .bind(&m.segment)
            .bind(&m.reason)
            .bind(&m.offer_id)
            .bind(&m.offer_kind)
            .bind(&m.channel)
            .bind(m.p_churn)
            .bind(m.clv)
            .bind(m.arpu)
            .bind(m.cost)
            .bind(m.expected_cost)
            .bind(m.expected_value)
            .execute(&mut *tx)
            .await?;
        }
        // Planned outside the lock: a campaign launched meanwhile may have taken some of these
        // members. Nobody is in two running experiments, so such a launch is refused whole.
        let shared: i64 = query_scalar(self.d,
            "SELECT COUNT(*) FROM campaign_members a \
             JOIN campaign_members b ON b.subscriber_id = a.subscriber_id AND b.campaign_id <> a.campaign_id \
             JOIN campaigns c ON c.id = b.campaign_id AND c.status = 'launched' \
             WHERE a.campaign_id = ?",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if shared > 0 {
            return Err(Error::Conflict(format!(
                "{shared} members of campaign {id} joined another campaign launched meanwhile; \
                 launch again to plan without them"
            )));
        }
        for (i, w) in orders.iter().enumerate() {
            if fault == Some(i) {
                std::process::abort();
            }
            insert_work_order(self.d, &mut tx, id, w).await?;
        }
        query(
            self.d,
            "UPDATE campaigns SET status = 'launched', updated_at = ? WHERE id = ?",
        )
        .bind(now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        audit(self.d, &mut tx, "campaign", &id.to_string(), event).await?;
        let launched = Launched {
            created: true,
            work_orders: count(self.d, &mut tx, counts, id).await?,
            members: count(self.d, &mut tx, member_counts, id).await?,
        };
        tx.commit().await?;
        Ok(launched)
    }

    /// Adds work orders to a campaign in one transaction, skipping those it already has; returns
    /// how many were new.
    pub async fn add_work_orders(&self, id: i64, orders: &[NewWorkOrder]) -> Result<u64> {
        let mut tx = self.begin().await?;
        let mut added = 0;
        for w in orders {
            added += u64::from(insert_work_order(self.d, &mut tx, id, w).await?);
        }
        tx.commit().await?;
        Ok(added)
    }

    /// A campaign's work orders.
    pub async fn work_orders(&self, id: i64) -> Result<Vec<WorkOrderRecord>> {
        query(
            self.d,
            "SELECT * FROM work_orders WHERE campaign_id = ? ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(work_order)
        .collect()
    }

    /// One work order.
    pub async fn work_order(&self, id: i64) -> Result<Option<WorkOrderRecord>> {
        query(self.d, "SELECT * FROM work_orders WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(work_order)
            .transpose()
    }

    /// Work orders of launched campaigns, open ones first and soonest due first; only those in
    /// `scope` when given, only those of `status` when given.
    pub async fn work_queue(
        &self,
        scope: Option<&Scope>,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<WorkOrderRecord>> {
        let (manager, branch) = Scope::filters(scope);
        query(
            self.d,
            "SELECT w.* FROM work_orders w JOIN campaigns c ON c.id = w.campaign_id \
             WHERE c.status = 'launched' AND (?1 IS NULL OR w.manager_id = ?1) \
             AND (?2 IS NULL OR w.branch_id = ?2) AND (?3 IS NULL OR w.status = ?3) \
             ORDER BY w.status = 'open' DESC, w.due_date, w.id LIMIT ?4",
        )
        .bind(manager)
        .bind(branch)
        .bind(status)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(work_order)
        .collect()
    }

    /// The contacts of launched campaigns, with refusals their callbacks found. An evaluated
    /// campaign's contacts are in `campaign_history` by then.
    pub async fn planned_contacts(&self) -> Result<Vec<PlannedContact>> {
        let rows = query(
            self.d,
            "SELECT w.campaign_id, w.subscriber_id, w.channel, w.offer_id, w.due_date, \
             CASE WHEN cb.reached = 1 AND cb.accepted = 0 THEN 1 ELSE 0 END AS refused \
             FROM work_orders w JOIN campaigns c ON c.id = w.campaign_id \
             LEFT JOIN callbacks cb ON cb.work_order_id = w.id \
             WHERE c.status = 'launched' ORDER BY w.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PlannedContact {
                    campaign_id: r.try_get("campaign_id")?,
                    subscriber_id: r.try_get("subscriber_id")?,
                    channel: r.try_get("channel")?,
                    offer_id: r.try_get("offer_id")?,
                    due_date: r.try_get("due_date")?,
                    refused: r.try_get::<i64, _>("refused")? == 1,
                })
            })
            .collect()
    }

    /// (campaign, subscriber) of the members of launched campaigns other than `except`.
    pub async fn running_members(&self, except: i64) -> Result<Vec<(i64, i64)>> {
        let rows = query(
            self.d,
            "SELECT m.campaign_id, m.subscriber_id FROM campaign_members m \
             JOIN campaigns c ON c.id = m.campaign_id \
             WHERE c.status = 'launched' AND c.id <> ?",
        )
        .bind(except)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// A campaign's members.
    pub async fn members(&self, id: i64) -> Result<Vec<MemberRecord>> {
        let rows = query(
            self.d,
            "SELECT * FROM campaign_members WHERE campaign_id = ? ORDER BY subscriber_id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MemberRecord {
                    subscriber_id: r.try_get("subscriber_id")?,
                    arm: r.try_get("arm")?,
                    stratum: r.try_get("stratum")?,
                    level: r.try_get("level")?,
                    tier: r.try_get("tier")?,
                    segment: r.try_get("segment")?,
                    reason: r.try_get("reason")?,
                    offer_id: r.try_get("offer_id")?,
                    offer_kind: r.try_get("offer_kind")?,
                    channel: r.try_get("channel")?,
                    p_churn: r.try_get("p_churn")?,
                    clv: r.try_get("clv")?,
                    arpu: r.try_get("arpu")?,
                    cost: r.try_get("cost")?,
                    expected_cost: r.try_get("expected_cost")?,
                    expected_value: r.try_get("expected_value")?,
                })
            })
            .collect()
    }

    /// Records callbacks (a later one for the same work order replaces the earlier) and closes
    /// their work orders, in one transaction; returns (inserted, updated).
    pub async fn record_callbacks(
        &self,
        id: i64,
        callbacks: &[CallbackRecord],
        event: &Audit<'_>,
    ) -> Result<(u64, u64)> {
        let mut tx = self.begin().await?;
        let (mut inserted, mut updated) = (0, 0);
        for c in callbacks {
            let owner: Option<i64> =
                query_scalar(self.d, "SELECT campaign_id FROM work_orders WHERE id = ?")
                    .bind(c.work_order_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if owner != Some(id) {
                return Err(Error::Conflict(format!(
                    "work order {} is not one of campaign {id}'s",
                    c.work_order_id
                )));
            }
            let existed: Option<i64> =
                query_scalar(self.d, "SELECT 1 FROM callbacks WHERE work_order_id = ?")
                    .bind(c.work_order_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            query(
                self.d,
                "INSERT INTO callbacks (work_order_id, reached, accepted, stated_reason, notes, \
                 follow_up, source, recorded_by, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (work_order_id) DO UPDATE SET reached = excluded.reached, \
                 accepted = excluded.accepted, stated_reason = excluded.stated_reason, \
                 notes = excluded.notes, follow_up = excluded.follow_up, source = excluded.source, \
                 recorded_by = excluded.recorded_by, recorded_at = excluded.recorded_at",
            )
            .bind(c.work_order_id)
            .bind(i64::from(c.reached))
            .bind(i64::from(c.accepted))
            .bind(&c.stated_reason)
            .bind(&c.notes)
            .bind(&c.follow_up)
            .bind(&c.source)
            .bind(&c.recorded_by)
            .bind(now())
            .execute(&mut *tx)
            .await?;
            query(
                self.d,
                "UPDATE work_orders SET status = 'done' WHERE id = ?",
            )
            .bind(c.work_order_id)
            .execute(&mut *tx)
            .await?;
            if existed.is_some() {
                updated += 1;
            } else {
                inserted += 1;
            }
        }
        audit(self.d, &mut tx, "campaign", &id.to_string(), event).await?;
        tx.commit().await?;
        Ok((inserted, updated))
    }

    /// A campaign's callbacks.
    pub async fn callbacks(&self, id: i64) -> Result<Vec<CallbackRecord>> {
        let rows = query(
            self.d,
            "SELECT cb.* FROM callbacks cb JOIN work_orders w ON w.id = cb.work_order_id \
             WHERE w.campaign_id = ? ORDER BY cb.work_order_id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CallbackRecord {
                    work_order_id: r.try_get("work_order_id")?,
                    reached: r.try_get::<i64, _>("reached")? == 1,
                    accepted: r.try_get::<i64, _>("accepted")? == 1,
                    stated_reason: r.try_get("stated_reason")?,
                    notes: r.try_get("notes")?,
                    follow_up: r.try_get("follow_up")?,
                    source: r.try_get("source")?,
                    recorded_by: r.try_get("recorded_by")?,
                })
            })
            .collect()
    }

    /// Records members' outcomes, replacing earlier ones, in one transaction.
    pub async fn record_outcomes(&self, id: i64, outcomes: &[OutcomeRecord]) -> Result<()> {
        let mut tx = self.begin().await?;
        for o in outcomes {
            query(self.d,
                "INSERT INTO campaign_outcomes (campaign_id, subscriber_id, retained, arpu_after, \
                 source, observed_at) VALUES (?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (campaign_id, subscriber_id) DO UPDATE SET retained = excluded.retained, \
                 arpu_after = excluded.arpu_after, source = excluded.source, observed_at = excluded.observed_at",
            )
            .bind(id)
            .bind(o.subscriber_id)
            .bind(i64::from(o.retained))
            .bind(o.arpu_after)
            .bind(&o.source)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A campaign's outcomes.
    pub async fn outcomes(&self, id: i64) -> Result<Vec<OutcomeRecord>> {
        let rows = query(
            self.d,
            "SELECT * FROM campaign_outcomes WHERE campaign_id = ? ORDER BY subscriber_id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OutcomeRecord {
                    subscriber_id: r.try_get("subscriber_id")?,
                    retained: r.try_get::<i64, _>("retained")? == 1,
                    arpu_after: r.try_get("arpu_after")?,
                    source: r.try_get("source")?,
                })
            })
            .collect()
    }

    /// Saves a new version of a plan template; returns the version.
    pub async fn save_template(
        &self,
        name: &str,
        definition: &serde_json::Value,
        actor: &str,
    ) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        let latest: Option<i64> = query_scalar(
            self.d,
            "SELECT MAX(version) FROM plan_templates WHERE name = ?",
        )
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        let version = latest.unwrap_or(0) + 1;
        query(self.d,
            "INSERT INTO plan_templates (name, version, definition, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(name)
        .bind(version)
        .bind(definition.to_string())
        .bind(now())
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        audit(
            self.d,
            &mut tx,
            "plan_template",
            name,
            &Audit {
                actor,
                action: "save",
                detail: serde_json::json!({ "version": version }),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(version)
    }

    /// Every saved template version.
    pub async fn templates(&self) -> Result<Vec<TemplateRecord>> {
        let rows = query(
            self.d,
            "SELECT * FROM plan_templates ORDER BY name, version",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TemplateRecord {
                    name: r.try_get("name")?,
                    version: r.try_get("version")?,
                    definition: parse_json(&r.try_get::<String, _>("definition")?)?,
                    created_at: r.try_get("created_at")?,
                    created_by: r.try_get("created_by")?,
                })
            })
            .collect()
    }

    /// Replaces a user's password hash (an unknown name is [`Error::NotFound`]) and audits it.
    pub async fn set_password(&self, name: &str, hash: &str, actor: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        let changed = query(self.d, "UPDATE users SET password_hash = ? WHERE name = ?")
            .bind(hash)
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed == 0 {
            return Err(Error::NotFound(format!("user {name:?}")));
        }
        audit(
            self.d,
            &mut tx,
            "user",
            name,
            &Audit {
                actor,
                action: "password",
                detail: serde_json::json!({}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds a user (a name taken is a [`Error::Conflict`]; a name, manager id or branch id
    /// [`UserRecord::check`] refuses is [`Error::Invalid`]) and audits it.
    pub async fn add_user(&self, u: &UserRecord, actor: &str) -> Result<()> {
        u.check().map_err(Error::Invalid)?;
        let mut tx = self.begin().await?;
        let exists: Option<i64> = query_scalar(self.d, "SELECT 1 FROM users WHERE name = ?")
            .bind(&u.name)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(Error::Conflict(format!("a user {:?} exists", u.name)));
        }
        query(
            self.d,
            "INSERT INTO users (name, role, manager_id, branch_id, approval_level, password_hash, \
             created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&u.name)
        .bind(&u.role)
        .bind(&u.manager_id)
        .bind(&u.branch_id)
        .bind(u.approval_level)
        .bind(&u.password_hash)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        audit(
            self.d,
            &mut tx,
            "user",
            &u.name,
            &Audit {
                actor,
                action: "add",
                detail: serde_json::json!({
                    "role": u.role, "manager_id": u.manager_id, "branch_id": u.branch_id,
                    "approval_level": u.approval_level,
                }),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<UserRecord>> {
        let rows = query(self.d, "SELECT * FROM users ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(UserRecord {
                    name: r.try_get("name")?,
                    role: r.try_get("role")?,
                    manager_id: r.try_get("manager_id")?,
                    branch_id: r.try_get("branch_id")?,
                    approval_level: r.try_get("approval_level")?,
                    password_hash: r.try_get("password_hash")?,
                    created_at: r.try_get("created_at")?,
                    disabled: r.try_get::<i64, _>("disabled")? == 1,
                })
            })
            .collect()
    }

    /// One user.
    pub async fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        Ok(self.users().await?.into_iter().find(|u| u.name == name))
    }

    /// The open work orders in launched campaigns of several subscribers at once, each
    /// subscriber's soonest due first: one query for a group of requests, as the server's
    /// work order reader asks.
    pub async fn open_work_orders_of(
        &self,
        subscriber_ids: &[i64],
    ) -> Result<Vec<WorkOrderRecord>> {
        let mut out = Vec::new();
        for chunk in subscriber_ids.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT w.* FROM work_orders w JOIN campaigns c ON c.id = w.campaign_id \
                 WHERE w.subscriber_id IN ({}) AND w.status = 'open' AND c.status = 'launched' \
                 ORDER BY w.subscriber_id, w.due_date, w.id",
                repeated("?", chunk.len())
            );
            let mut select = sqlx::query(sqlx::AssertSqlSafe(self.d.translate(sql)));
            for id in chunk {
                select = select.bind(*id);
            }
            for row in select.fetch_all(&self.pool).await? {
                out.push(work_order(&row)?);
            }
        }
        Ok(out)
    }

    /// A subscriber's open work orders in launched campaigns, soonest due first: what the
    /// counter or the phone should also do when the subscriber turns up.
    pub async fn open_work_orders(&self, subscriber_id: i64) -> Result<Vec<WorkOrderRecord>> {
        self.open_work_orders_of(&[subscriber_id]).await
    }
}

/// `value` as PostgreSQL can store it: text there cannot hold a NUL character, and an audit
/// event that cannot be stored would hold up every event behind it. SQLite gets the same text,
/// so both stores keep the same log.
fn text(value: &str) -> String {
    value.replace('\0', "\u{fffd}")
}

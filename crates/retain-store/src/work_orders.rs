//! Work orders: written at launch and after, read by campaign, by queue and by subscriber; and
//! the contacts they plan, which the next campaign's contact policy weighs.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::Store;
use crate::error::Result;
use crate::records::{NewWorkOrder, PlannedContact, Scope, WorkOrderRecord};
use crate::sql::{Dialect, ROWS_PER_STATEMENT, now, parse_json, query, repeated};

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

pub(crate) async fn insert_work_order(
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

impl Store {
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
}

/// One account manager's campaign work over a period: the work orders assigned to them, the
/// callbacks recorded (on time when recorded by the due date) and, where campaigns have been
/// evaluated against a control group, the members kept beyond the control's rate.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ManagerWork {
    /// Empty for work orders without a manager.
    pub manager_id: String,
    pub work_orders: i64,
    pub callbacks: i64,
    pub callbacks_on_time: i64,
    pub accepted: i64,
    /// Treated members with an outcome, in campaigns with an evaluated control group.
    pub treated_evaluated: i64,
    /// Σ (retained − the campaign control's retention rate) over them.
    pub incremental_saves: f64,
    /// The same, each weighted by the member's lifetime value.
    pub saved_value: f64,
    /// Of the treated evaluated, those the manager visited (a `manager_visit` work order), and
    /// their incremental saves: the campaigns' uplift where the manager was the channel.
    pub visited_evaluated: i64,
    pub visited_incremental_saves: f64,
}

impl Store {
    /// Every manager's campaign work in campaigns whose as-of date lies in `(after, until]`
    /// (`YYYY-MM-DD`), aggregated in the store.
    pub async fn manager_work(&self, after: &str, until: &str) -> Result<Vec<ManagerWork>> {
        let orders = query(
            self.d,
            "SELECT w.manager_id, COUNT(*) AS work_orders, COUNT(cb.work_order_id) AS callbacks, \
             SUM(CASE WHEN cb.work_order_id IS NOT NULL AND SUBSTR(cb.recorded_at, 1, 10) <= w.due_date \
                 THEN 1 ELSE 0 END) AS on_time, \
             SUM(CASE WHEN cb.accepted = 1 THEN 1 ELSE 0 END) AS accepted \
             FROM work_orders w JOIN campaigns c ON c.id = w.campaign_id \
             LEFT JOIN callbacks cb ON cb.work_order_id = w.id \
             WHERE c.as_of > ?1 AND c.as_of <= ?2 \
             GROUP BY w.manager_id ORDER BY w.manager_id",
        )
        .bind(after)
        .bind(until)
        .fetch_all(&self.pool)
        .await?;
        let saved = query(
            self.d,
            "WITH ctl AS ( \
               SELECT m.campaign_id, AVG(CAST(o.retained AS DOUBLE PRECISION)) AS rate \
               FROM campaign_members m JOIN campaign_outcomes o \
                 ON o.campaign_id = m.campaign_id AND o.subscriber_id = m.subscriber_id \
               WHERE m.arm = 'control' GROUP BY m.campaign_id), \
             wm AS ( \
               SELECT campaign_id, subscriber_id, MIN(manager_id) AS manager_id, \
                 MAX(CASE WHEN channel = 'manager_visit' THEN 1 ELSE 0 END) AS visited \
               FROM work_orders GROUP BY campaign_id, subscriber_id) \
             SELECT wm.manager_id, COUNT(*) AS treated, \
               SUM(CAST(o.retained AS DOUBLE PRECISION) - ctl.rate) AS incremental, \
               SUM((CAST(o.retained AS DOUBLE PRECISION) - ctl.rate) * m.clv) AS saved_value, \
               SUM(wm.visited) AS visited, \
               SUM(CASE WHEN wm.visited = 1 THEN CAST(o.retained AS DOUBLE PRECISION) - ctl.rate \
                   ELSE CAST(0 AS DOUBLE PRECISION) END) AS visited_incremental \
             FROM campaign_members m \
             JOIN campaign_outcomes o ON o.campaign_id = m.campaign_id AND o.subscriber_id = m.subscriber_id \
             JOIN ctl ON ctl.campaign_id = m.campaign_id \
             JOIN wm ON wm.campaign_id = m.campaign_id AND wm.subscriber_id = m.subscriber_id \
             JOIN campaigns c ON c.id = m.campaign_id \
             WHERE m.arm = 'treatment' AND c.as_of > ?1 AND c.as_of <= ?2 \
             GROUP BY wm.manager_id ORDER BY wm.manager_id",
        )
        .bind(after)
        .bind(until)
        .fetch_all(&self.pool)
        .await?;
        let mut out: std::collections::BTreeMap<String, ManagerWork> =
            std::collections::BTreeMap::new();
        for row in &orders {
            let id: String = row.try_get("manager_id")?;
            let w = out.entry(id.clone()).or_default();
            w.manager_id = id;
            w.work_orders = row.try_get("work_orders")?;
            w.callbacks = row.try_get("callbacks")?;
            w.callbacks_on_time = row.try_get::<Option<i64>, _>("on_time")?.unwrap_or(0);
            w.accepted = row.try_get::<Option<i64>, _>("accepted")?.unwrap_or(0);
        }
        for row in &saved {
            let id: String = row.try_get("manager_id")?;
            let w = out.entry(id.clone()).or_default();
            w.manager_id = id;
            w.treated_evaluated = row.try_get("treated")?;
            w.incremental_saves = row.try_get::<Option<f64>, _>("incremental")?.unwrap_or(0.0);
            w.saved_value = row.try_get::<Option<f64>, _>("saved_value")?.unwrap_or(0.0);
            w.visited_evaluated = row.try_get::<Option<i64>, _>("visited")?.unwrap_or(0);
            w.visited_incremental_saves = row
                .try_get::<Option<f64>, _>("visited_incremental")?
                .unwrap_or(0.0);
        }
        Ok(out.into_values().collect())
    }
}

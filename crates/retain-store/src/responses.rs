//! What comes back from a launched campaign: callbacks, which close their work orders, and
//! members' outcomes at the end of the horizon.

use sqlx::Row;

use crate::Store;
use crate::audit::audit;
use crate::error::{Error, Result};
use crate::records::{Audit, CallbackRecord, OutcomeRecord};
use crate::sql::{now, query, query_scalar};

impl Store {
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
                 follow_up, source, recorded_by, recorded_at, satisfaction) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (work_order_id) DO UPDATE SET reached = excluded.reached, \
                 accepted = excluded.accepted, stated_reason = excluded.stated_reason, \
                 satisfaction = excluded.satisfaction, notes = excluded.notes, follow_up = excluded.follow_up, source = excluded.source, \
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
            .bind(c.satisfaction.map(i64::from))
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
                    satisfaction: r
                        .try_get::<Option<i64>, _>("satisfaction")?
                        .and_then(|v| u8::try_from(v).ok()),
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
}

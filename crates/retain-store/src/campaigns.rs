//! Campaigns: created as drafts, moved from state to state and launched with their members.
//! State changes are conditional updates inside transactions, so two processes racing on one
//! campaign cannot both win.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::Store;
use crate::audit::audit;
use crate::error::{Error, Result};
use crate::records::{
    Audit, CampaignRecord, CampaignStatus, Launched, MemberRecord, NewCampaign, NewWorkOrder,
};
use crate::sql::{Dialect, now, parse_json, query, query_scalar};
use crate::work_orders::insert_work_order;

/// For crash tests: abort the process after inserting this many work orders of a launch,
/// inside its transaction.
const FAULT_ENV: &str = "RETAIN_FAULT_ABORT_LAUNCH_AFTER";

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
        status: status(&row.try_get::<String, _>("status")?)?,
        approval_level: row.try_get("approval_level")?,
        rehearsal: json("rehearsal")?,
        evaluation: json("evaluation")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
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
        from: &[CampaignStatus],
        to: CampaignStatus,
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
        if !from.contains(&self::status(&status)?) {
            let needs: Vec<&str> = from.iter().map(|s| s.code()).collect();
            return Err(Error::Conflict(format!(
                "campaign {id} is {status}; {} needs it {}",
                event.action,
                needs.join(" or ")
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
                    .bind(to.code())
                    .bind(now())
                    .bind(value.to_string())
                    .bind(id)
            }
            None => query(
                self.d,
                "UPDATE campaigns SET status = ?, updated_at = ? WHERE id = ?",
            )
            .bind(to.code())
            .bind(now())
            .bind(id),
        };
        q.execute(&mut *tx).await?;
        audit(self.d, &mut tx, "campaign", &id.to_string(), event).await?;
        tx.commit().await?;
        Ok(())
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
        match self::status(&status)? {
            CampaignStatus::Approved => {}
            CampaignStatus::Launched | CampaignStatus::Evaluated => {
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
}

/// A stored status; one the schema's check would refuse is corruption.
fn status(code: &str) -> Result<CampaignStatus> {
    CampaignStatus::from_code(code)
        .ok_or_else(|| Error::Corrupt(format!("campaign status {code:?}")))
}

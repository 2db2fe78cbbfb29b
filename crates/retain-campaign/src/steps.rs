//! A campaign's steps before its contacts: planning, rehearsal on a sample, approval and the
//! launch into work orders.

use std::collections::HashSet;

use chrono::NaiveDate;
use retain_store::{Audit, CampaignRecord};

use crate::approval::{Action, Actor};
use crate::error::{Error, Result};
use crate::plan::{PlanRequest, Planned, plan};
use crate::service::{Campaigns, LaunchReport, Rehearsal};
use crate::template::Template;

impl Campaigns {
    pub(crate) async fn plan_for(
        &self,
        c: &CampaignRecord,
        sample: Option<f64>,
    ) -> Result<Planned> {
        let t = Template::from_json(&c.definition, &format!("campaign {}", c.id))?;
        let as_of = NaiveDate::parse_from_str(&c.as_of, "%Y-%m-%d")
            .map_err(|e| Error::Internal(format!("campaign {} as_of: {e}", c.id)))?;
        let running: Vec<_> = self
            .store
            .planned_contacts()
            .await?
            .into_iter()
            .filter(|p| p.campaign_id != c.id)
            .collect();
        let busy: HashSet<i64> = self
            .store
            .running_members(c.id)
            .await?
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        crate::learn(&self.store, &self.workspace).await?;
        plan(
            &self.ctx,
            &self.workspace,
            &PlanRequest {
                template: &t,
                budget: c.budget,
                as_of,
                seed: c.seed as u64,
                sample,
                // The launch holds out the share the approver saw rehearsed.
                control_share: sample
                    .is_none()
                    .then(|| {
                        c.rehearsal
                            .as_ref()
                            .and_then(|r| r["power"]["control_share"].as_f64())
                    })
                    .flatten(),
                running: &running,
                busy: &busy,
            },
        )
        .await
    }

    /// Plans on a sample and projects reach, cost, saves, ROI and conflicts to the whole
    /// target; the campaign becomes `rehearsed`.
    pub async fn rehearse(&self, id: i64, actor: &Actor) -> Result<Rehearsal> {
        actor.may(Action::Plan)?;
        let c = self.get(id).await?;
        if !matches!(
            c.status,
            retain_store::CampaignStatus::Draft | retain_store::CampaignStatus::Rehearsed
        ) {
            return Err(Error::Conflict(format!(
                "campaign {id} is {}; only a draft or rehearsed campaign is rehearsed",
                c.status
            )));
        }
        let t = Template::from_json(&c.definition, &format!("campaign {id}"))?;
        let share = t.rehearsal_share;
        let p = self.plan_for(&c, Some(share)).await?;
        let scale = 1.0 / share;
        let mut projected = p.projection.clone();
        for v in [
            &mut projected.expected_reach,
            &mut projected.cost,
            &mut projected.expected_cost,
            &mut projected.expected_saves,
            &mut projected.expected_saved_value,
            &mut projected.survey_cost,
        ] {
            *v = (*v * scale * 100.0).round() / 100.0;
        }
        for v in [
            &mut projected.members,
            &mut projected.treated,
            &mut projected.control,
            &mut projected.surveys,
        ] {
            *v = (*v as f64 * scale).round() as usize;
        }
        for v in projected
            .treated_by_channel
            .values_mut()
            .chain(projected.members_by_level.values_mut())
        {
            *v = (*v as f64 * scale).round() as usize;
        }
        projected.expected_roi = (projected.expected_roi * 1e4).round() / 1e4;
        let r = Rehearsal {
            id,
            as_of: c.as_of.clone(),
            sample_share: share,
            target: p.target,
            sampled: p.sampled,
            projected,
            min_detectable_uplift: p.power.min_detectable_uplift,
            power: p.power,
            conflicts_running_campaigns: p.in_running_campaigns,
            skipped_by_constraint: p.skipped_by_constraint,
            constraint_violations: p.violations.len(),
            approval_level: c.approval_level,
            notes: p.notes,
        };
        let json = serde_json::to_value(&r).map_err(|e| Error::Internal(e.to_string()))?;
        self.store
            .transition(
                id,
                &[retain_store::CampaignStatus::Draft, retain_store::CampaignStatus::Rehearsed],
                retain_store::CampaignStatus::Rehearsed,
                Some(("rehearsal", &json)),
                &Audit {
                    actor: &actor.name,
                    action: "rehearse",
                    detail: serde_json::json!({
                        "target": r.target, "projected_members": r.projected.members,
                        "projected_cost": r.projected.cost, "expected_roi": r.projected.expected_roi,
                        "control_share": r.power.control_share,
                        "min_detectable_uplift": r.min_detectable_uplift,
                    }),
                },
            )
            .await?;
        Ok(r)
    }

    /// Approves (or rejects) a rehearsed campaign. A refusal is audited too.
    pub async fn approve(
        &self,
        id: i64,
        actor: &Actor,
        reject: bool,
        note: &str,
    ) -> Result<CampaignRecord> {
        let c = self.get(id).await?;
        if let Err(e) = actor.may_approve(&c.owner, c.approval_level) {
            self.store
                .audit(
                    "campaign",
                    &id.to_string(),
                    &Audit {
                        actor: &actor.name,
                        action: "approve_refused",
                        detail: serde_json::json!({
                            "reason": e.to_string(), "level": c.approval_level,
                            "approver_level": actor.level, "role": actor.role.code(),
                            "note": note,
                        }),
                    },
                )
                .await?;
            return Err(e);
        }
        let (to, action) = if reject {
            (retain_store::CampaignStatus::Rejected, "reject")
        } else {
            (retain_store::CampaignStatus::Approved, "approve")
        };
        self.store
            .transition(
                id,
                &[retain_store::CampaignStatus::Rehearsed],
                to,
                None,
                &Audit {
                    actor: &actor.name,
                    action,
                    detail: serde_json::json!({
                        "level": c.approval_level, "approver_level": actor.level,
                        "role": actor.role.code(), "budget": c.budget, "note": note,
                    }),
                },
            )
            .await?;
        self.get(id).await
    }

    /// Launches an approved campaign: members, control group and work orders in one
    /// transaction, then the channel files. Launching again only rewrites the files.
    pub async fn launch(&self, id: i64, actor: &Actor) -> Result<LaunchReport> {
        actor.may(Action::Launch)?;
        let c = self.get(id).await?;
        let _busy = self.exclusive(id, "launched")?;
        let (launched, projection, power) = match c.status {
            retain_store::CampaignStatus::Launched | retain_store::CampaignStatus::Evaluated => (
                self.store
                    .launch(
                        id,
                        &[],
                        &[],
                        &Audit {
                            actor: &actor.name,
                            action: "launch",
                            detail: serde_json::json!({}),
                        },
                    )
                    .await?,
                None,
                None,
            ),
            retain_store::CampaignStatus::Approved => {
                let p = self.plan_for(&c, None).await?;
                if let Some(v) = p.violations.first() {
                    return Err(Error::Internal(format!(
                        "the plan breaks {} constraints (first: {v:?}); not launched",
                        p.violations.len()
                    )));
                }
                let detail = serde_json::json!({
                    "members": p.members.len(), "work_orders": p.orders.len(),
                    "cost": (p.projection.cost * 100.0).round() / 100.0,
                    "control_share": p.power.control_share,
                });
                let l = self
                    .store
                    .launch(
                        id,
                        &p.members,
                        &p.orders,
                        &Audit {
                            actor: &actor.name,
                            action: "launch",
                            detail,
                        },
                    )
                    .await?;
                (l, Some(p.projection), Some(p.power))
            }
            other => {
                return Err(Error::Conflict(format!(
                    "campaign {id} is {other}; launch needs it approved"
                )));
            }
        };
        let orders = self.store.work_orders(id).await?;
        let files = crate::workorder::write_files(&self.dir(id).join("work_orders"), &orders)?;
        Ok(LaunchReport {
            id,
            created: launched.created,
            work_orders: launched.work_orders,
            members: launched.members,
            files,
            plan: projection,
            power,
        })
    }
}

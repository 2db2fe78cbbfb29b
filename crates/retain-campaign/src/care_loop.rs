//! The monthly care campaign (关怀): who is due, its campaign and its launch.

use chrono::{Datelike, NaiveDate};
use retain_offers::Policy;
use retain_store::{Audit, CampaignRecord, NewCampaign};

use crate::approval::{Action, Actor};
use crate::care::CareReport;
use crate::error::Result;

use crate::service::Campaigns;

impl Campaigns {
    /// Runs the care triggers for the month of `as_of` (default: the month after the data):
    /// the month's care campaign gets one work order per trigger the contact policy allows.
    /// Running it again the same month adds only what is new.
    pub async fn care(&self, as_of: Option<NaiveDate>, actor: &Actor) -> Result<CareReport> {
        actor.may(Action::Launch)?;
        let date = match as_of {
            Some(d) => d,
            None => self.default_as_of().await?,
        };
        let month = date.with_day(1).unwrap_or(date);
        let id = self.care_campaign(month, actor).await?;
        let hits = crate::care::triggers(&self.ctx, month).await?;
        let profiles = crate::plan::profiles(&self.ctx).await?;
        let msisdn: std::collections::HashMap<String, i64> = profiles
            .iter()
            .map(|(id, p)| (p.msisdn.clone(), *id))
            .collect();
        let planned: Vec<_> = self
            .store
            .planned_contacts()
            .await?
            .into_iter()
            .filter(|p| p.campaign_id != id)
            .collect();
        let own = self.store.work_orders(id).await?;
        let history = self.contact_history().await?;
        let policy = Policy::for_workspace(&self.workspace)?;
        let mut report = CareReport {
            id,
            month: month.format("%Y-%m").to_string(),
            ..CareReport::default()
        };
        let orders = crate::care::orders(
            &hits,
            self.root(),
            &policy,
            &planned,
            &own,
            &history,
            &crate::care::Reach {
                profiles: &profiles,
                msisdn: &msisdn,
            },
            &mut report,
        )?;
        let mut by_purpose: std::collections::BTreeMap<String, Vec<retain_store::NewWorkOrder>> =
            std::collections::BTreeMap::new();
        for o in orders {
            by_purpose.entry(o.purpose.clone()).or_default().push(o);
        }
        for (purpose, orders) in by_purpose {
            let added = self.store.add_work_orders(id, &orders).await?;
            report.created.insert(purpose, added);
        }
        let all = self.store.work_orders(id).await?;
        report.work_orders = all.len() as u64;
        crate::workorder::write_files(&self.dir(id).join("work_orders"), &all)?;
        self.store
            .audit(
                "campaign",
                &id.to_string(),
                &Audit {
                    actor: &actor.name,
                    action: "care",
                    detail: serde_json::json!({
                        "created": report.created, "held_back": report.held_back,
                    }),
                },
            )
            .await?;
        Ok(report)
    }

    /// The month's care campaign, created launched on first use (care needs no approval: it
    /// offers nothing that costs more than the contact).
    pub(crate) async fn care_campaign(&self, month: NaiveDate, actor: &Actor) -> Result<i64> {
        let find = |all: Vec<CampaignRecord>| {
            all.into_iter()
                .find(|c| c.kind == "care" && c.as_of == month.to_string())
        };
        if let Some(c) = find(self.list().await?) {
            // A run that died between creating and launching it left a draft: launch it now.
            if c.status == retain_store::CampaignStatus::Draft {
                self.launch_care(c.id, month, actor).await?;
            }
            return Ok(c.id);
        }
        let new = NewCampaign {
            name: format!("客户关怀 {}", month.format("%Y-%m")),
            kind: "care".into(),
            template: "care".into(),
            template_version: 0,
            definition: serde_json::json!({
                "triggers": ["welcome", "first_bill", "birthday", "contract_expiry"],
            }),
            budget: 0.0,
            as_of: month.to_string(),
            seed: 0,
            owner: actor.name.clone(),
            approval_level: 0,
        };
        match self.store.create_campaign(&new, &actor.name).await {
            Ok(id) => {
                self.launch_care(id, month, actor).await?;
                Ok(id)
            }
            // Another run created it first: the unique index allows one per month.
            Err(e) => find(self.list().await?)
                .map(|c| c.id)
                .ok_or_else(|| e.into()),
        }
    }

    pub(crate) async fn launch_care(&self, id: i64, month: NaiveDate, actor: &Actor) -> Result<()> {
        let done = self
            .store
            .transition(
                id,
                &[retain_store::CampaignStatus::Draft],
                retain_store::CampaignStatus::Launched,
                None,
                &Audit {
                    actor: &actor.name,
                    action: "launch",
                    detail: serde_json::json!({ "care": month.to_string() }),
                },
            )
            .await;
        match done {
            // A racing run launched it first.
            Ok(()) | Err(retain_store::Error::Conflict(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

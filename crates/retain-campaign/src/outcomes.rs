//! Outcomes: evaluation against the control group, observed retention, and the feedback of
//! every contact into `campaign_history`.

use std::path::{Path, PathBuf};

use chrono::{Datelike, Months, NaiveDate};
use retain_data::{IngestOptions, Table};
use retain_offers::{Channel, HORIZON_MONTHS, Policy};
use retain_store::{Audit, CampaignRecord};

use crate::approval::{Action, Actor};
use crate::error::{Error, Result};
use crate::evaluate::{Evaluation, evaluate};
use crate::service::{Campaigns, ctx_err};

/// The months a campaign's outcome is read over from the month of its date: [`HORIZON_MONTHS`],
/// or a win-back campaign's `return_months`.
fn outcome_window(c: &CampaignRecord) -> Result<(NaiveDate, NaiveDate)> {
    let start = NaiveDate::parse_from_str(&c.as_of, "%Y-%m-%d")
        .map_err(|e| Error::Internal(format!("campaign {} as_of: {e}", c.id)))?;
    let start = start.with_day(1).unwrap_or(start);
    let months = if crate::winback::is_win_back(c) {
        crate::winback::return_months(c)
    } else {
        HORIZON_MONTHS
    };
    Ok((start, start + Months::new(months)))
}

impl Campaigns {
    /// Evaluates against the control group, stores the evaluation and feeds the campaign's
    /// contacts back into `campaign_history`, where the uplift model and the contact ledger
    /// read them.
    pub async fn evaluate(&self, id: i64, actor: &Actor) -> Result<(Evaluation, PathBuf)> {
        actor.may(Action::Evaluate)?;
        let c = self.get(id).await?;
        Self::require_launched(&c)?;
        let _busy = self.exclusive(id, "evaluated")?;
        let members = self.store.members(id).await?;
        if members.is_empty() {
            return Err(Error::Conflict(format!(
                "campaign {id} has no members: its target was empty when it was launched"
            )));
        }
        let mut outcomes = self.store.outcomes(id).await?;
        if outcomes.is_empty() || outcomes.iter().all(|o| o.source == "observed") {
            let observed = self.observe(&c, &members).await?;
            self.store.record_outcomes(id, &observed).await?;
            outcomes = self.store.outcomes(id).await?;
        }
        let orders = self.store.work_orders(id).await?;
        let callbacks = self.store.callbacks(id).await?;
        let policy = Policy::for_workspace(&self.workspace)?;
        let cost =
            |ch: &str| Channel::from_code(ch).map_or(0.0, |c| policy.channel(c).contact_cost);
        let mut e = evaluate(&members, &outcomes, &orders, &callbacks, &cost, None);
        if crate::winback::is_win_back(&c) {
            e.stage = "win_back";
        } else if c.kind == "care" {
            e.stage = "care";
        }
        let simulated = outcomes.iter().all(|o| o.source == "simulated");
        if simulated {
            e.true_uplift = self.simulated_truth(id).await?;
        }
        if !crate::winback::is_win_back(&c) {
            let cut_off = if simulated {
                retain_offers::Truth::load(&self.workspace.truth_dir())?
                    .map(|t| t.involuntary)
                    .unwrap_or_default()
            } else {
                self.cut_off(&c).await?
            };
            e.left = crate::evaluate::leavers_by_class(&members, &outcomes, &cut_off);
        }
        let history = self.write_history(&c, &members, &orders, &callbacks, &cost)?;
        // A return is not a save: win-back contacts stay out of the history the uplift of
        // retention offers is learned from.
        if !crate::winback::is_win_back(&c) {
            self.feed_back(c.id, &history).await?;
        }
        // The outcomes re-tune the offers: the next matching values by them.
        crate::learn(&self.store, &self.workspace).await?;
        let json = serde_json::to_value(&e).map_err(|e| Error::Internal(e.to_string()))?;
        self.store
            .transition(
                id,
                &[retain_store::CampaignStatus::Launched, retain_store::CampaignStatus::Evaluated],
                retain_store::CampaignStatus::Evaluated,
                Some(("evaluation", &json)),
                &Audit {
                    actor: &actor.name,
                    action: "evaluate",
                    detail: serde_json::json!({
                        "uplift": e.overall.uplift, "ci": [e.overall.uplift_ci_low, e.overall.uplift_ci_high],
                        "roi": e.roi,
                    }),
                },
            )
            .await?;
        let report = self.dir(id).join("evaluation.json");
        std::fs::create_dir_all(self.dir(id))
            .map_err(ctx_err("creating the campaign directory"))?;
        retain_data::write_atomically(
            &report,
            serde_json::to_string_pretty(&e)
                .map_err(|e| Error::Internal(e.to_string()))?
                .as_bytes(),
        )?;
        Ok((e, history))
    }

    /// The subscribers whose churn in the campaign's outcome window was an arrears cut-off
    /// (the churn labels' `voluntary = 0`, by the month the churn was recorded).
    async fn cut_off(&self, c: &CampaignRecord) -> Result<std::collections::HashSet<i64>> {
        let (start, end) = outcome_window(c)?;
        retain_features::register_labels(&self.ctx, &retain_features::LabelConfig::default())
            .await?;
        let batches = retain_features::frame::query(
            &self.ctx,
            &retain_features::cut_offs_sql("churn_month", start, end, true),
            "arrears cut-offs",
        )
        .await?;
        Ok(retain_features::frame::ids(&batches, "subscriber_id")?
            .into_iter()
            .collect())
    }

    /// Outcomes from the loaded data: a member left if cancelled or ported out within
    /// [`HORIZON_MONTHS`] of the campaign date; ARPU after is the fee of the window's last
    /// month. Refused until the data covers that month.
    pub(crate) async fn observe(
        &self,
        c: &CampaignRecord,
        members: &[retain_store::MemberRecord],
    ) -> Result<Vec<retain_store::OutcomeRecord>> {
        let (start, end) = outcome_window(c)?;
        let last = end - Months::new(1);
        let loaded_until = self.default_as_of().await? - Months::new(1);
        if loaded_until < last {
            return Err(Error::Conflict(format!(
                "campaign {} has no outcomes yet: they are observed once the data covers {} \
                 (loaded up to {}); on the synthetic operator, retain campaign callbacks --simulate",
                c.id,
                last.format("%Y-%m"),
                loaded_until.format("%Y-%m")
            )));
        }
        // A leaver returned when the same subscriber (number) is active again after the
        // campaign date; anyone else stayed unless cancelled or ported out in the window.
        let kept = if crate::winback::is_win_back(c) {
            format!(
                "CASE WHEN s.status <> 'cancelled' AND s.status_date >= DATE '{start}' \
                 AND s.status_date < DATE '{end}' THEN 1 ELSE 0 END"
            )
        } else {
            format!(
                "CASE WHEN (s.status = 'cancelled' AND s.status_date < DATE '{end}') \
                 OR x.subscriber_id IS NOT NULL THEN 0 ELSE 1 END"
            )
        };
        let sql = format!(
            "SELECT s.subscriber_id,
                    {kept} AS retained,
                    u.fee
             FROM subscribers s
             LEFT JOIN (SELECT DISTINCT subscriber_id FROM events
                        WHERE kind IN ('port_out', 'cancel')
                          AND timestamp >= TIMESTAMP '{start}T00:00:00'
                          AND timestamp < TIMESTAMP '{end}T00:00:00') x
                    ON x.subscriber_id = s.subscriber_id
             LEFT JOIN usage_monthly u
                    ON u.subscriber_id = s.subscriber_id AND u.period = DATE '{last}'"
        );
        let batches = retain_features::frame::query(&self.ctx, &sql, "campaign outcomes").await?;
        let ids = retain_features::frame::ids(&batches, "subscriber_id")?;
        let retained = retain_features::frame::floats(&batches, "retained")?;
        let fee = retain_features::frame::floats(&batches, "fee")?;
        let row: std::collections::HashMap<i64, usize> =
            ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        Ok(members
            .iter()
            .filter_map(|m| {
                let i = *row.get(&m.subscriber_id)?;
                let kept = retained[i] > 0.5;
                Some(retain_store::OutcomeRecord {
                    subscriber_id: m.subscriber_id,
                    retained: kept,
                    // A member who stayed without a usage row has no known ARPU: left out of
                    // the ARPU change rather than counted as a leaver.
                    arpu_after: if !kept {
                        Some(0.0)
                    } else if fee[i].is_finite() {
                        Some(fee[i])
                    } else {
                        None
                    },
                    source: "observed".into(),
                })
            })
            .collect())
    }

    /// Past treatment contacts of `campaign_history` by subscriber: (date, refused).
    pub(crate) async fn contact_history(
        &self,
    ) -> Result<std::collections::HashMap<i64, Vec<(NaiveDate, bool)>>> {
        let mut out: std::collections::HashMap<i64, Vec<(NaiveDate, bool)>> =
            std::collections::HashMap::new();
        if !self.ctx.table_exist("campaign_history").unwrap_or(false) {
            return Ok(out);
        }
        let batches = retain_features::frame::query(
            &self.ctx,
            "SELECT subscriber_id, CAST(contact_date AS VARCHAR) AS d,
                    CAST(reached AND NOT accepted AS BOOLEAN) AS refused
             FROM campaign_history WHERE arm = 'treatment' AND contact_date IS NOT NULL",
            "contact history",
        )
        .await?;
        let dates = retain_features::frame::texts(&batches, "d")?;
        let refused = retain_features::frame::floats(&batches, "refused")?;
        for (i, id) in retain_features::frame::ids(&batches, "subscriber_id")?
            .into_iter()
            .enumerate()
        {
            if let Ok(d) = NaiveDate::parse_from_str(&dates[i], "%Y-%m-%d") {
                out.entry(id).or_default().push((d, refused[i] > 0.5));
            }
        }
        Ok(out)
    }

    /// The true uplift the latest simulation recorded in the audit log.
    pub(crate) async fn simulated_truth(&self, id: i64) -> Result<Option<f64>> {
        Ok(self
            .store
            .audit_log("campaign", Some(&id.to_string()))
            .await?
            .iter()
            .rev()
            .find(|e| e.action == "callbacks_simulated")
            .and_then(|e| {
                e.detail
                    .get("true_uplift")
                    .and_then(serde_json::Value::as_f64)
            })
            .map(|t| (t * 1e6).round() / 1e6))
    }

    /// Writes the campaign's rows in `campaign_history` form, to be loaded by [`Self::feed_back`].
    pub(crate) fn write_history(
        &self,
        c: &CampaignRecord,
        members: &[retain_store::MemberRecord],
        orders: &[retain_store::WorkOrderRecord],
        callbacks: &[retain_store::CallbackRecord],
        contact_cost: &dyn Fn(&str) -> f64,
    ) -> Result<PathBuf> {
        let first: std::collections::HashMap<i64, &retain_store::WorkOrderRecord> = orders
            .iter()
            .filter(|w| w.purpose == "retention")
            .map(|w| (w.subscriber_id, w))
            .collect();
        let result: std::collections::HashMap<i64, &retain_store::CallbackRecord> =
            callbacks.iter().map(|cb| (cb.work_order_id, cb)).collect();
        let period = NaiveDate::parse_from_str(&c.as_of, "%Y-%m-%d")
            .map(|d| d.format("%Y-%m-01").to_string())
            .unwrap_or_default();
        let path = self.dir(c.id).join("campaign_history.csv");
        let mut w = csv::Writer::from_writer(Vec::new());
        let err = |e| Error::csv(path.display().to_string(), e);
        w.write_record([
            "campaign_id",
            "period",
            "subscriber_id",
            "arm",
            "offer_id",
            "offer_kind",
            "channel",
            "contact_date",
            "reached",
            "accepted",
            "cost",
        ])
        .map_err(err)?;
        for m in members {
            let order = first.get(&m.subscriber_id);
            let cb = order.and_then(|o| result.get(&o.id));
            let treated = m.arm == "treatment";
            let date = order.map_or(c.as_of.clone(), |o| o.due_date.clone());
            let accepted = cb.is_some_and(|cb| cb.accepted);
            w.write_record([
                format!("RC{}", c.id),
                period.clone(),
                m.subscriber_id.to_string(),
                m.arm.clone(),
                if treated {
                    m.offer_id.clone()
                } else {
                    String::new()
                },
                if treated {
                    m.offer_kind.clone()
                } else {
                    String::new()
                },
                m.channel.clone(),
                date,
                cb.is_some_and(|cb| cb.reached).to_string(),
                accepted.to_string(),
                if !treated {
                    "0.00".into()
                } else if accepted {
                    format!("{:.2}", m.cost)
                } else {
                    format!("{:.2}", contact_cost(&m.channel))
                },
            ])
            .map_err(err)?;
        }
        let bytes = w.into_inner().map_err(|e| Error::Internal(e.to_string()))?;
        std::fs::create_dir_all(self.dir(c.id))
            .map_err(ctx_err("creating the campaign directory"))?;
        retain_data::write_atomically(&path, &bytes)?;
        Ok(path)
    }

    /// Loads the campaign's rows written by [`Self::write_history`] into `campaign_history`.
    pub(crate) async fn feed_back(&self, id: i64, path: &Path) -> Result<()> {
        let options = IngestOptions {
            label: format!("campaign-{id}-history"),
            ..IngestOptions::default()
        };
        // The load rewrites the table (waiting for its lock): off the async workers.
        let workspace = self.workspace.clone();
        let file = path.to_path_buf();
        let report = tokio::task::spawn_blocking(move || {
            retain_data::ingest(
                &workspace,
                Table::CampaignHistory,
                std::slice::from_ref(&file),
                &options,
            )
        })
        .await
        .map_err(|e| Error::Internal(format!("loading the campaign's history: {e}")))??;
        if report.quarantined > 0 {
            return Err(Error::Internal(format!(
                "{} of the campaign's history rows were refused; see {}",
                report.quarantined,
                path.display()
            )));
        }
        Ok(())
    }
}

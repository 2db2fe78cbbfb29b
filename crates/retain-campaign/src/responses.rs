//! What comes back from the contacts: callback files and forms, escalations of unresolved
//! ones, simulated callbacks.

use std::path::Path;

use chrono::{NaiveDate, Utc};
use retain_offers::{Cells, Channel, Kind, Library, Truth, load_history};
use retain_store::{Audit, CampaignRecord};

use crate::approval::{Action, Actor};
use crate::callbacks::{ImportReport, Parsed, parse, parse_text, quarantine, simulate};
use crate::error::{Error, Result};
use crate::service::{CallbackForm, Campaigns, SimulationReport};
use crate::template::Template;

impl Campaigns {
    pub(crate) fn require_launched(c: &CampaignRecord) -> Result<()> {
        if c.status.is_launched() {
            Ok(())
        } else {
            Err(Error::Conflict(format!(
                "campaign {} is {}; callbacks and evaluation need it launched",
                c.id, c.status
            )))
        }
    }

    /// Imports a call centre's result file; rejected rows go to the quarantine file.
    pub async fn import_callbacks(
        &self,
        id: i64,
        file: &Path,
        actor: &Actor,
    ) -> Result<ImportReport> {
        actor.may(Action::RecordCallbacks)?;
        let c = self.get(id).await?;
        Self::require_launched(&c)?;
        let orders = self.store.work_orders(id).await?;
        let Parsed {
            good,
            bad,
            headers,
            read,
        } = parse(file, &orders, &actor.name)?;
        let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3f");
        let qfile = self
            .workspace
            .quarantine_dir()
            .join(format!("callbacks-{id}-{stamp}.csv"));
        quarantine(&qfile, &headers, &bad)?;
        let (inserted, updated) = self
            .store
            .record_callbacks(
                id,
                &good,
                &Audit {
                    actor: &actor.name,
                    action: "callbacks",
                    detail: serde_json::json!({
                        "file": file.display().to_string(), "read": read,
                        "loaded": good.len(), "quarantined": bad.len(),
                    }),
                },
            )
            .await?;
        self.escalate(&c, &good).await?;
        Ok(ImportReport {
            file: file.to_path_buf(),
            read,
            loaded: good.len(),
            quarantined: bad.len(),
            inserted,
            updated,
            quarantine_file: qfile,
            errors: bad.iter().take(20).map(|(_, e)| e.clone()).collect(),
        })
    }

    /// Records one callback entered in a form (the manager's queue, the counter) with the
    /// same checks as a result file. `scope` limits it to one account manager's or branch's
    /// work orders: any other id answers as not found.
    pub async fn record_callback(
        &self,
        work_order_id: i64,
        form: &CallbackForm,
        scope: Option<&retain_store::Scope>,
        actor: &Actor,
    ) -> Result<retain_store::CallbackRecord> {
        actor.may(Action::RecordCallbacks)?;
        let not_found = || Error::NotFound(format!("work order {work_order_id}"));
        let order = self
            .store
            .work_order(work_order_id)
            .await?
            .filter(|w| scope.is_none_or(|s| s.admits(&w.manager_id, &w.branch_id)))
            .ok_or_else(not_found)?;
        let c = self.get(order.campaign_id).await?;
        Self::require_launched(&c)?;
        let mut text = csv::Writer::from_writer(Vec::new());
        let fields = [
            work_order_id.to_string(),
            u8::from(form.reached).to_string(),
            u8::from(form.accepted).to_string(),
            form.stated_reason.clone().unwrap_or_default(),
            form.satisfaction.map(|s| s.to_string()).unwrap_or_default(),
            form.notes.clone(),
            form.follow_up.clone().unwrap_or_default(),
        ];
        // The columns of a filled-in call list, in its order.
        text.write_record(std::iter::once("work_order_id").chain(crate::workorder::RESULT_COLUMNS))
            .and_then(|()| text.write_record(&fields))
            .map_err(|e| Error::Internal(format!("writing the callback form: {e}")))?;
        let text = String::from_utf8(
            text.into_inner()
                .map_err(|e| Error::Internal(format!("writing the callback form: {e}")))?,
        )
        .map_err(|e| Error::Internal(e.to_string()))?;
        let Parsed { mut good, bad, .. } = parse_text(
            Path::new("form"),
            &text,
            std::slice::from_ref(&order),
            &actor.name,
        )?;
        if let Some((_, why)) = bad.into_iter().next() {
            // The form has no file and lines to point at: name the work order instead.
            let reason = why.splitn(4, ':').nth(3).unwrap_or(&why).trim();
            return Err(Error::BadRequest(format!(
                "work order {work_order_id}: {reason}"
            )));
        }
        let mut callback = good.pop().ok_or_else(not_found)?;
        callback.source = "manual".into();
        self.store
            .record_callbacks(
                c.id,
                std::slice::from_ref(&callback),
                &Audit {
                    actor: &actor.name,
                    action: "callback",
                    detail: serde_json::json!({
                        "work_order_id": work_order_id, "reached": callback.reached,
                        "accepted": callback.accepted,
                    }),
                },
            )
            .await?;
        self.escalate(&c, std::slice::from_ref(&callback)).await?;
        Ok(callback)
    }

    /// A work order that did not reach the subscriber escalates to the next channel of the
    /// level's flow (a visit that found no one becomes a call, a call a counter pop-up).
    pub(crate) async fn escalate(
        &self,
        c: &CampaignRecord,
        callbacks: &[retain_store::CallbackRecord],
    ) -> Result<u64> {
        // Care contacts have no flow to escalate along.
        if c.kind == "care" || callbacks.iter().all(|cb| cb.reached) {
            return Ok(0);
        }
        let t = Template::from_json(&c.definition, &format!("campaign {}", c.id))?;
        let orders = self.store.work_orders(c.id).await?;
        let members = self.store.members(c.id).await?;
        let level: std::collections::HashMap<i64, &str> = members
            .iter()
            .map(|m| (m.subscriber_id, m.level.as_str()))
            .collect();
        let by_id: std::collections::HashMap<i64, &retain_store::WorkOrderRecord> =
            orders.iter().map(|w| (w.id, w)).collect();
        let today = Utc::now().date_naive();
        let mut next = Vec::new();
        for cb in callbacks.iter().filter(|cb| !cb.reached) {
            let Some(w) = by_id.get(&cb.work_order_id) else {
                continue;
            };
            // A survey nobody answered is a missing answer, not a contact to escalate.
            if w.purpose == crate::workorder::SURVEY {
                continue;
            }
            let Some(lv) = level
                .get(&w.subscriber_id)
                .and_then(|l| retain_offers::Level::from_code(l))
            else {
                continue;
            };
            let flow = t.flow.for_level(lv);
            let Some(pos) = flow.iter().position(|ch| ch.code() == w.channel) else {
                continue;
            };
            let Some(channel) = flow[pos + 1..]
                .iter()
                .copied()
                .find(|ch| *ch != Channel::ManagerVisit || !w.manager_id.is_empty())
            else {
                continue;
            };
            let start = cb
                .follow_up
                .as_deref()
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .unwrap_or(today);
            next.push(retain_store::NewWorkOrder {
                subscriber_id: w.subscriber_id,
                channel: channel.code().into(),
                purpose: "escalation".into(),
                offer_id: w.offer_id.clone(),
                branch_id: w.branch_id.clone(),
                manager_id: w.manager_id.clone(),
                due_date: t.due(channel, start).to_string(),
                payload: w.payload.clone(),
            });
        }
        if next.is_empty() {
            return Ok(0);
        }
        let added = self.store.add_work_orders(c.id, &next).await?;
        let orders = self.store.work_orders(c.id).await?;
        crate::workorder::write_files(&self.dir(c.id).join("work_orders"), &orders)?;
        Ok(added)
    }

    /// Synthetic operator only: callbacks and outcomes drawn from its true offer effects.
    pub async fn simulate_callbacks(&self, id: i64, actor: &Actor) -> Result<SimulationReport> {
        actor.may(Action::RecordCallbacks)?;
        let c = self.get(id).await?;
        Self::require_launched(&c)?;
        let _busy = self.exclusive(id, "simulated")?;
        if crate::winback::is_win_back(&c) {
            return self.simulate_returns(&c, actor).await;
        }
        let truth = Truth::load(&self.workspace.truth_dir())?.ok_or_else(|| {
            Error::BadRequest(
                "--simulate needs the synthetic operator's truth/ directory (retain synth or retain demo)"
                    .into(),
            )
        })?;
        let history = load_history(&self.ctx, &self.workspace).await?;
        let cells = Cells::fit(&history, |_| true);
        let library = Library::for_workspace(&self.workspace)?;
        let members = self.store.members(id).await?;
        let orders = self.store.work_orders(id).await?;
        let reach = |ch: Channel| cells.reach(ch).unwrap_or(0.75);
        let accept = |kind: &str| {
            Kind::from_code(kind)
                .and_then(|k| cells.accept_rate(k))
                .unwrap_or(0.2)
        };
        let share = |offer: &str| {
            library
                .offers
                .iter()
                .find(|o| o.id == offer)
                .map_or(0.0, |o| o.cost.arpu_share)
        };
        let sim = simulate(
            &members,
            &orders,
            &truth,
            &reach,
            &accept,
            &share,
            c.seed as u64 ^ 0x51,
        );
        self.record_simulation(id, &sim, actor).await
    }

    /// Records simulated callbacks and outcomes; the true uplift goes into the audit log,
    /// where the evaluation finds it.
    async fn record_simulation(
        &self,
        id: i64,
        sim: &crate::callbacks::Simulation,
        actor: &Actor,
    ) -> Result<SimulationReport> {
        self.store
            .record_callbacks(
                id,
                &sim.callbacks,
                &Audit {
                    actor: &actor.name,
                    action: "callbacks_simulated",
                    detail: serde_json::json!({
                        "callbacks": sim.callbacks.len(), "true_uplift": sim.true_uplift,
                    }),
                },
            )
            .await?;
        self.store.record_outcomes(id, &sim.outcomes).await?;
        Ok(SimulationReport {
            id,
            callbacks: sim.callbacks.len(),
            reached: sim.callbacks.iter().filter(|c| c.reached).count(),
            accepted: sim.callbacks.iter().filter(|c| c.accepted).count(),
            outcomes: sim.outcomes.len(),
            true_uplift: (sim.true_uplift * 1e6).round() / 1e6,
        })
    }

    /// A win-back campaign on the synthetic operator: who comes back, from the truth's return
    /// propensities (`truth/return_effects.csv`).
    async fn simulate_returns(
        &self,
        c: &CampaignRecord,
        actor: &Actor,
    ) -> Result<SimulationReport> {
        let truth =
            crate::winback::ReturnTruth::load(&self.workspace.truth_dir())?.ok_or_else(|| {
                Error::BadRequest(
                    "--simulate on a win-back campaign needs the synthetic operator's \
                     truth/return_effects.csv (retain synth or retain demo)"
                        .into(),
                )
            })?;
        let history = load_history(&self.ctx, &self.workspace).await?;
        let cells = Cells::fit(&history, |_| true);
        let members = self.store.members(c.id).await?;
        let orders = self.store.work_orders(c.id).await?;
        let reach = |ch: Channel| cells.reach(ch).unwrap_or(0.75);
        let months = crate::winback::return_months(c);
        let sim = crate::winback::simulate(
            &members,
            &orders,
            &truth,
            &reach,
            c.seed as u64 ^ 0x51,
            months,
        );
        self.record_simulation(c.id, &sim, actor).await
    }
}

//! The campaign loop over one workspace and its operational store: create from a template,
//! rehearse, approve, launch, record callbacks, evaluate, and feed the results back.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use chrono::{Datelike, Months, NaiveDate, Utc};
use datafusion::execution::context::SessionContext;
use retain_data::{IngestOptions, Table, Workspace};
use retain_offers::{Cells, Channel, HORIZON_MONTHS, Kind, Library, Policy, Truth, load_history};
use retain_store::{Audit, CampaignRecord, NewCampaign, Store};
use serde::Serialize;

use crate::approval::{Action, Actor, required_level};
use crate::callbacks::{ImportReport, Parsed, parse, parse_text, quarantine, simulate};
use crate::care::CareReport;
use crate::error::{Error, Result};
use crate::evaluate::{Evaluation, evaluate};
use crate::plan::{PlanRequest, Planned, Projection, plan};
use crate::template::{Template, bundled};

/// A template as the plan library lists it.
#[derive(Debug, Clone, Serialize)]
pub struct TemplateInfo {
    pub name: String,
    /// 0 for the bundled version.
    pub version: i64,
    pub source: &'static str,
    pub name_zh: String,
    pub name_en: String,
    pub budget: f64,
    pub control_share: f64,
}

/// What creating asks for.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    pub template: String,
    pub budget: Option<f64>,
    pub as_of: Option<NaiveDate>,
    pub name: Option<String>,
    pub seed: Option<u64>,
}

/// What a rehearsal projects for the whole target from its sample.
#[derive(Debug, Clone, Serialize)]
pub struct Rehearsal {
    pub id: i64,
    pub as_of: String,
    pub sample_share: f64,
    pub target: usize,
    pub sampled: usize,
    /// The sample's plan scaled to the whole target.
    pub projected: Projection,
    /// Target subscribers already in another running campaign: they are left out.
    pub conflicts_running_campaigns: usize,
    /// Target subscribers the contact policy or the budget leaves out, by constraint (in the
    /// sample).
    pub skipped_by_constraint: std::collections::BTreeMap<&'static str, usize>,
    pub constraint_violations: usize,
    pub approval_level: i64,
    pub notes: Vec<String>,
}

/// What a launch did.
#[derive(Debug, Clone, Serialize)]
pub struct LaunchReport {
    pub id: i64,
    /// False when the campaign had been launched before: nothing new was written to the
    /// store, and the files were rewritten from it.
    pub created: bool,
    pub work_orders: u64,
    pub members: u64,
    pub files: Vec<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Projection>,
}

/// What a simulation recorded.
#[derive(Debug, Clone, Serialize)]
pub struct SimulationReport {
    pub id: i64,
    pub callbacks: usize,
    pub reached: usize,
    pub accepted: usize,
    pub outcomes: usize,
    pub true_uplift: f64,
}

/// One callback as a form gives it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct CallbackForm {
    pub reached: bool,
    pub accepted: bool,
    /// A code or its Chinese name (see [`crate::stated_reasons`]).
    #[serde(default)]
    pub stated_reason: Option<String>,
    #[serde(default)]
    pub notes: String,
    /// YYYY-MM-DD.
    #[serde(default)]
    pub follow_up: Option<String>,
}

/// The campaign loop of one workspace.
pub struct Campaigns {
    pub workspace: Workspace,
    pub store: Store,
    pub ctx: SessionContext,
}

fn ctx_err(what: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(what.to_owned(), e)
}

impl Campaigns {
    pub async fn open(root: &Path) -> Result<Campaigns> {
        Self::open_with_store(root, None).await
    }

    /// Opens the workspace with another operational store than its `retain.toml` names.
    pub async fn open_with_store(root: &Path, store_url: Option<&str>) -> Result<Campaigns> {
        let workspace = Workspace::open(root)?;
        let url = store_url.map_or_else(|| workspace.store_url(), str::to_owned);
        let store = Store::connect(&url).await?;
        let ctx = retain_features::session(&workspace)
            .await
            .map_err(|e| Error::BadRequest(e.to_string()))?;
        Ok(Campaigns {
            workspace,
            store,
            ctx,
        })
    }

    fn root(&self) -> &Path {
        self.workspace.root()
    }

    /// The campaign's directory of work-order files and reports.
    #[must_use]
    pub fn dir(&self, id: i64) -> PathBuf {
        self.root().join("campaigns").join(id.to_string())
    }

    /// The plan library: saved templates (every version) and the bundled ones.
    pub async fn templates(&self) -> Result<Vec<TemplateInfo>> {
        let mut out = Vec::new();
        for r in self.store.templates().await? {
            let t = Template::from_json(
                &r.definition,
                &format!("template {} v{}", r.name, r.version),
            )?;
            out.push(info(&t, r.version, "saved"));
        }
        for t in bundled()? {
            out.push(info(&t, 0, "bundled"));
        }
        Ok(out)
    }

    /// The newest saved version of `name`, else the bundled one.
    pub async fn template(&self, name: &str) -> Result<(Template, i64)> {
        let saved = self
            .store
            .templates()
            .await?
            .into_iter()
            .filter(|r| r.name == name)
            .max_by_key(|r| r.version);
        if let Some(r) = saved {
            return Ok((
                Template::from_json(&r.definition, &format!("template {name} v{}", r.version))?,
                r.version,
            ));
        }
        bundled()?
            .into_iter()
            .find(|t| t.name == name)
            .map(|t| (t, 0))
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no template {name:?} (retain campaign templates lists them)"
                ))
            })
    }

    /// Saves a template file as the next version of its name.
    pub async fn save_template(&self, file: &Path, actor: &Actor) -> Result<(String, i64)> {
        actor.may(Action::Plan)?;
        let text = std::fs::read_to_string(file)
            .map_err(ctx_err(&format!("reading {}", file.display())))?;
        let t = Template::parse(&text, file)?;
        let json = serde_json::to_value(&t).map_err(|e| Error::Internal(e.to_string()))?;
        let version = self
            .store
            .save_template(&t.name, &json, &actor.name)
            .await?;
        Ok((t.name, version))
    }

    /// Copies a template under a new name as its version 1 (or next version).
    pub async fn clone_template(&self, from: &str, to: &str, actor: &Actor) -> Result<i64> {
        actor.may(Action::Plan)?;
        let (mut t, _) = self.template(from).await?;
        t.name = to.to_owned();
        let json = serde_json::to_value(&t).map_err(|e| Error::Internal(e.to_string()))?;
        Template::from_json(&json, to)?;
        Ok(self.store.save_template(to, &json, &actor.name).await?)
    }

    /// The first day of the month after the last loaded one.
    pub async fn default_as_of(&self) -> Result<NaiveDate> {
        retain_warn::default_as_of(&self.ctx, retain_warn::Cadence::Monthly)
            .await
            .map_err(|e| Error::BadRequest(e.to_string()))
    }

    /// Creates a draft campaign from a template.
    pub async fn create(&self, req: &CreateRequest, actor: &Actor) -> Result<CampaignRecord> {
        actor.may(Action::Plan)?;
        let (mut t, version) = self.template(&req.template).await?;
        if let Some(b) = req.budget {
            if !(b.is_finite() && b >= 0.0) {
                return Err(Error::BadRequest(format!(
                    "the budget must be a number ≥ 0, not {b}"
                )));
            }
            t.budget = b;
        }
        let as_of = match req.as_of {
            Some(d) => d,
            None => self.default_as_of().await?,
        };
        let seed = req
            .seed
            .unwrap_or_else(|| Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64);
        let new = NewCampaign {
            name: req
                .name
                .clone()
                .unwrap_or_else(|| format!("{} {as_of}", t.name_zh)),
            kind: "retention".into(),
            template: t.name.clone(),
            template_version: version,
            definition: serde_json::to_value(&t).map_err(|e| Error::Internal(e.to_string()))?,
            budget: t.budget,
            as_of: as_of.to_string(),
            // SQLite integers are signed: the bits are kept, and read back as they were.
            seed: seed as i64,
            owner: actor.name.clone(),
            approval_level: required_level(t.budget),
        };
        let id = self.store.create_campaign(&new, &actor.name).await?;
        self.get(id).await
    }

    pub async fn get(&self, id: i64) -> Result<CampaignRecord> {
        self.store
            .campaign(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("campaign {id}")))
    }

    pub async fn list(&self) -> Result<Vec<CampaignRecord>> {
        Ok(self.store.campaigns().await?)
    }

    async fn plan_for(&self, c: &CampaignRecord, sample: Option<f64>) -> Result<Planned> {
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
        plan(
            &self.ctx,
            &self.workspace,
            &PlanRequest {
                template: &t,
                budget: c.budget,
                as_of,
                seed: c.seed as u64,
                sample,
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
        if !matches!(c.status.as_str(), "draft" | "rehearsed") {
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
        ] {
            *v = (*v * scale * 100.0).round() / 100.0;
        }
        for v in [
            &mut projected.members,
            &mut projected.treated,
            &mut projected.control,
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
                &["draft", "rehearsed"],
                "rehearsed",
                Some(("rehearsal", &json)),
                &Audit {
                    actor: &actor.name,
                    action: "rehearse",
                    detail: serde_json::json!({
                        "target": r.target, "projected_members": r.projected.members,
                        "projected_cost": r.projected.cost, "expected_roi": r.projected.expected_roi,
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
            ("rejected", "reject")
        } else {
            ("approved", "approve")
        };
        self.store
            .transition(
                id,
                &["rehearsed"],
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
        let (launched, projection) = match c.status.as_str() {
            "launched" | "evaluated" => (
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
            ),
            "approved" => {
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
                (l, Some(p.projection))
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
        })
    }

    fn require_launched(c: &CampaignRecord) -> Result<()> {
        if matches!(c.status.as_str(), "launched" | "evaluated") {
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
            form.notes.clone(),
            form.follow_up.clone().unwrap_or_default(),
        ];
        text.write_record([
            "work_order_id",
            "reached",
            "accepted",
            "stated_reason",
            "notes",
            "follow_up",
        ])
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
    async fn escalate(
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
        if outcomes.iter().all(|o| o.source == "simulated") {
            e.true_uplift = self.simulated_truth(id).await?;
        }
        let history = self.write_history(&c, &members, &orders, &callbacks, &cost)?;
        self.feed_back(c.id, &history).await?;
        let json = serde_json::to_value(&e).map_err(|e| Error::Internal(e.to_string()))?;
        self.store
            .transition(
                id,
                &["launched", "evaluated"],
                "evaluated",
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

    /// Outcomes from the loaded data: a member left if cancelled or ported out within
    /// [`HORIZON_MONTHS`] of the campaign date; ARPU after is the fee of the window's last
    /// month. Refused until the data covers that month.
    async fn observe(
        &self,
        c: &CampaignRecord,
        members: &[retain_store::MemberRecord],
    ) -> Result<Vec<retain_store::OutcomeRecord>> {
        let start = NaiveDate::parse_from_str(&c.as_of, "%Y-%m-%d")
            .map_err(|e| Error::Internal(format!("campaign {} as_of: {e}", c.id)))?;
        let start = start.with_day(1).unwrap_or(start);
        let end = start + Months::new(HORIZON_MONTHS);
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
        let sql = format!(
            "SELECT s.subscriber_id,
                    CASE WHEN (s.status = 'cancelled' AND s.status_date < DATE '{end}')
                           OR x.subscriber_id IS NOT NULL THEN 0 ELSE 1 END AS retained,
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
    async fn care_campaign(&self, month: NaiveDate, actor: &Actor) -> Result<i64> {
        let find = |all: Vec<CampaignRecord>| {
            all.into_iter()
                .find(|c| c.kind == "care" && c.as_of == month.to_string())
        };
        if let Some(c) = find(self.list().await?) {
            // A run that died between creating and launching it left a draft: launch it now.
            if c.status == "draft" {
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

    async fn launch_care(&self, id: i64, month: NaiveDate, actor: &Actor) -> Result<()> {
        let done = self
            .store
            .transition(
                id,
                &["draft"],
                "launched",
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

    /// Past treatment contacts of `campaign_history` by subscriber: (date, refused).
    async fn contact_history(
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
    async fn simulated_truth(&self, id: i64) -> Result<Option<f64>> {
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

    /// Claims campaign `id` for a launch, an evaluation or a simulation until the guard is
    /// dropped: a second caller, in this process or another, gets a conflict at once instead
    /// of racing the first over the campaign's files and its rows in `campaign_history` (a
    /// double-clicked button changes nothing twice).
    fn exclusive(&self, id: i64, doing: &str) -> Result<std::fs::File> {
        let dir = self.dir(id);
        std::fs::create_dir_all(&dir).map_err(ctx_err("creating the campaign directory"))?;
        let path = dir.join(".busy");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(ctx_err("opening the campaign's lock"))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Conflict(format!(
                "campaign {id} is busy with another request, so it was not {doing} again; \
                 try again when that request has finished"
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(ctx_err("locking the campaign")(e)),
        }
    }

    /// Writes the campaign's rows in `campaign_history` form, to be loaded by [`Self::feed_back`].
    fn write_history(
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
    async fn feed_back(&self, id: i64, path: &Path) -> Result<()> {
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

fn info(t: &Template, version: i64, source: &'static str) -> TemplateInfo {
    TemplateInfo {
        name: t.name.clone(),
        version,
        source,
        name_zh: t.name_zh.clone(),
        name_en: t.name_en.clone(),
        budget: t.budget,
        control_share: t.control_share,
    }
}

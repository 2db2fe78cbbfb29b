//! The campaign loop over one workspace and its operational store: create from a template,
//! rehearse, approve, launch, record callbacks, evaluate, and feed the results back.

use std::path::{Path, PathBuf};

use chrono::{NaiveDate, Utc};
use datafusion::execution::context::SessionContext;
use retain_data::Workspace;
use retain_store::{CampaignRecord, NewCampaign, Store};
use serde::Serialize;

use crate::approval::{Action, Actor, required_level};
use crate::error::{Error, Result};
use crate::plan::Projection;
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
    /// The smallest retention uplift the planned sizes detect (5% two-sided, 80% power).
    pub min_detectable_uplift: Option<f64>,
    /// What the planned sizes can detect and the control share chosen for it.
    pub power: crate::power::Power,
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
    /// The control share the launch held out and what its sizes can detect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub power: Option<crate::power::Power>,
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
    /// 0 (not at all satisfied) to 10 (extremely satisfied), when asked.
    #[serde(default)]
    pub satisfaction: Option<u8>,
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

pub(crate) fn ctx_err(what: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(what.to_owned(), e)
}

impl Campaigns {
    pub async fn open(workspace: &Workspace) -> Result<Campaigns> {
        Self::open_with_store(workspace, None).await
    }

    /// Opens the workspace with another operational store than its `retain.toml` names.
    pub async fn open_with_store(
        workspace: &Workspace,
        store_url: Option<&str>,
    ) -> Result<Campaigns> {
        let workspace = workspace.clone();
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

    pub(crate) fn root(&self) -> &Path {
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
        retain_features::default_as_of(&self.ctx, retain_features::Cadence::Monthly)
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

    /// Claims campaign `id` for a launch, an evaluation or a simulation until the guard is
    /// dropped: a second caller, in this process or another, gets a conflict at once instead
    /// of racing the first over the campaign's files and its rows in `campaign_history` (a
    /// double-clicked button changes nothing twice).
    pub(crate) fn exclusive(&self, id: i64, doing: &str) -> Result<std::fs::File> {
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

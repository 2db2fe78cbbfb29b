//! The model registry: `<workspace>/models/v<N>/{model.txt, meta.json}`, versions counted up
//! and every one kept; which of them scores is the champion's business (`champion.rs`).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use retain_data::Workspace;
use serde::{Deserialize, Serialize};

use crate::causes::CauseModel;
use crate::drift::DriftReference;
use crate::error::{Error, Result};
use crate::logistic::Logistic;
use crate::train::{Blend, ChurnModel, Platt, TrainReport};

/// What is kept beside a model file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelMeta {
    pub version: u32,
    pub features: Vec<String>,
    pub platt: Platt,
    /// The floor model and how it is blended with the trees; models saved before the blend
    /// existed are trees only.
    #[serde(default)]
    pub logistic: Logistic,
    #[serde(default)]
    pub blend: Blend,
    /// Per categorical feature, the trees' code of each level.
    #[serde(default)]
    pub level_order: Vec<Option<Vec<f64>>>,
    /// Training window: the snapshots used.
    pub snapshots: Vec<String>,
    pub horizon_months: u32,
    pub metrics: serde_json::Value,
    /// When it was saved; absent in models saved before it was recorded.
    #[serde(default)]
    pub trained_at: Option<DateTime<Utc>>,
    /// The bins of the test month's population, which scoring measures drift against; absent
    /// in models saved before drift was watched.
    #[serde(default)]
    pub drift: Option<DriftReference>,
    /// The cause model ranking the reasons; absent when the training set had too few leavers
    /// with a stated reason, and in models saved before causes were learned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causes: Option<CauseModel>,
}

fn io(context: String, e: std::io::Error) -> Error {
    Error::Io { context, source: e }
}

/// The registry's directory.
pub(crate) fn models_dir(workspace: &Workspace) -> PathBuf {
    workspace.root().join("models")
}

/// The saved versions, oldest first.
pub(crate) fn saved_versions(workspace: &Workspace) -> Vec<u32> {
    let mut all = versions(&models_dir(workspace));
    all.sort_unstable();
    all
}

fn versions(dir: &Path) -> Vec<u32> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| {
                e.ok()?
                    .file_name()
                    .to_str()?
                    .strip_prefix('v')?
                    .parse()
                    .ok()
            })
            .collect()
        })
        .unwrap_or_default()
}

/// Saves a model as the next version, with the bins scoring watches drift against; returns
/// its directory. Two trainings saving at once get two versions: each writes a directory of
/// its own and publishes it under the first version no other has taken.
pub fn save(
    workspace: &Workspace,
    model: &ChurnModel,
    report: &TrainReport,
    snapshots: Vec<String>,
    horizon_months: u32,
    drift: Option<DriftReference>,
) -> Result<(u32, PathBuf)> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = models_dir(workspace);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".saving-{}-{n}.tmp", std::process::id()));
    if tmp.exists() {
        // Left by a process of the same id that died.
        std::fs::remove_dir_all(&tmp).map_err(|e| io(format!("removing {}", tmp.display()), e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| io(format!("creating {}", tmp.display()), e))?;
    let version = versions(&dir).into_iter().max().unwrap_or(0) + 1;
    std::fs::write(tmp.join("model.txt"), model.text())
        .map_err(|e| io("writing model.txt".into(), e))?;
    let mut meta = ModelMeta {
        version,
        features: model.features.clone(),
        platt: model.platt,
        logistic: model.logistic.clone(),
        blend: model.blend,
        level_order: model.level_order.clone(),
        snapshots,
        horizon_months,
        metrics: serde_json::to_value(
            serde_json::json!({"test": &report.test, "fit": &report.fit}),
        )
        .map_err(|e| Error::Data(e.to_string()))?,
        trained_at: Some(Utc::now()),
        drift,
        causes: model.causes.clone(),
    };
    // The version appears whole or not at all; renaming onto a version another saving took
    // meanwhile fails, and this one takes the next.
    loop {
        let text = serde_json::to_string_pretty(&meta).map_err(|e| Error::Data(e.to_string()))?;
        std::fs::write(tmp.join("meta.json"), text)
            .map_err(|e| io("writing meta.json".into(), e))?;
        let target = dir.join(format!("v{}", meta.version));
        match std::fs::rename(&tmp, &target) {
            Ok(()) => return Ok((meta.version, target)),
            Err(_) if target.exists() && meta.version < u32::MAX - 1 => meta.version += 1,
            Err(e) => return Err(io(format!("publishing {}", target.display()), e)),
        }
    }
}

/// Saved version `version`, whole.
pub fn load(workspace: &Workspace, version: u32) -> Result<(ChurnModel, ModelMeta)> {
    let path = models_dir(workspace).join(format!("v{version}"));
    if !path.is_dir() {
        return Err(Error::Registry(format!(
            "there is no model v{version} in {}",
            models_dir(workspace).display()
        )));
    }
    let meta = read_meta(&path)?;
    if let Some(causes) = &meta.causes
        && !causes.fits(&meta.features)
    {
        return Err(Error::Data(format!(
            "{}: its cause model does not fit the model's features (a file edited, or saved by \
             another version); train again",
            path.display()
        )));
    }
    let trees = std::fs::read_to_string(path.join("model.txt"))
        .map_err(|e| io(format!("reading {}", path.join("model.txt").display()), e))?;
    Ok((
        ChurnModel {
            forest: crate::forest::Forest::from_lightgbm(&trees)?,
            features: meta.features.clone(),
            platt: meta.platt,
            logistic: meta.logistic.clone(),
            blend: meta.blend,
            level_order: meta.level_order.clone(),
            causes: meta.causes.clone(),
        },
        meta,
    ))
}

/// The `meta.json` of the version directory `path`.
pub(crate) fn read_meta(path: &Path) -> Result<ModelMeta> {
    let text = std::fs::read_to_string(path.join("meta.json"))
        .map_err(|e| io(format!("reading {}", path.display()), e))?;
    serde_json::from_str(&text).map_err(|e| Error::Data(format!("{}: {e}", path.display())))
}

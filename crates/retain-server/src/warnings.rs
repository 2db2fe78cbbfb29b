//! The warning lists `retain warn` writes (`<root>/warnings/<as-of>.csv`), read once per file
//! version and kept while the file is unchanged.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use retain_data::Workspace;
use serde::Serialize;

/// One subscriber on a warning list.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Warning {
    pub subscriber_id: i64,
    pub level: String,
    pub score: i64,
    pub cohort: String,
    pub branch_id: String,
    pub manager_id: String,
    pub rules: Vec<String>,
    pub reasons_zh: String,
    pub reasons_en: String,
}

/// A parsed list.
#[derive(Debug)]
pub(crate) struct List {
    /// The list's date, from its file name.
    pub as_of: String,
    pub items: Vec<Warning>,
}

type Entry = (PathBuf, Option<SystemTime>, Arc<List>);

#[derive(Debug, Default)]
pub(crate) struct Cache(Mutex<Option<Entry>>);

impl Cache {
    /// The newest list, or `None` before the first warning run.
    pub(crate) fn latest(&self, workspace: &Workspace) -> Result<Option<Arc<List>>, String> {
        let dir = retain_features::outputs::warnings_dir(workspace);
        let Some(file) = retain_data::newest_file(&dir, "csv") else {
            return Ok(None);
        };
        let modified = std::fs::metadata(&file).and_then(|m| m.modified()).ok();
        let mut cached = self.0.lock().map_err(|e| e.to_string())?;
        if let Some((path, at, list)) = cached.as_ref()
            && *path == file
            && *at == modified
        {
            return Ok(Some(list.clone()));
        }
        let list = Arc::new(read(&file)?);
        *cached = Some((file, modified, list.clone()));
        Ok(Some(list))
    }
}

/// Counts by level of every list in the directory, oldest first: the warning trend.
pub(crate) fn trend(workspace: &Workspace) -> Vec<serde_json::Value> {
    let Ok(entries) = std::fs::read_dir(retain_features::outputs::warnings_dir(workspace)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    files.sort();
    files
        .iter()
        .filter_map(|f| {
            let list = read(f).ok()?;
            let count = |l: &str| list.items.iter().filter(|w| w.level == l).count();
            Some(serde_json::json!({
                "as_of": list.as_of, "red": count("red"), "yellow": count("yellow"),
                "blue": count("blue"),
            }))
        })
        .collect()
}

fn read(file: &Path) -> Result<List, String> {
    let name = file.display().to_string();
    let mut reader = csv::Reader::from_path(file).map_err(|e| format!("{name}: {e}"))?;
    let headers = reader
        .headers()
        .map_err(|e| format!("{name}: {e}"))?
        .clone();
    let col = |n: &str| headers.iter().position(|h| h == n);
    let (Some(id), Some(level), Some(score)) = (col("subscriber_id"), col("level"), col("score"))
    else {
        return Err(format!(
            "{name}: not a warning list (needs subscriber_id, level, score)"
        ));
    };
    let text =
        |r: &csv::StringRecord, c: Option<usize>| c.and_then(|c| r.get(c)).unwrap_or("").to_owned();
    let mut items = Vec::new();
    for record in reader.records() {
        let r = record.map_err(|e| format!("{name}: {e}"))?;
        let Ok(subscriber_id) = r.get(id).unwrap_or("").parse() else {
            continue;
        };
        items.push(Warning {
            subscriber_id,
            level: text(&r, Some(level)),
            score: r.get(score).and_then(|s| s.parse().ok()).unwrap_or(0),
            cohort: text(&r, col("cohort")),
            branch_id: text(&r, col("branch_id")),
            manager_id: text(&r, col("manager_id")),
            rules: text(&r, col("rules"))
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            reasons_zh: text(&r, col("reasons_zh")),
            reasons_en: text(&r, col("reasons_en")),
        });
    }
    Ok(List {
        as_of: file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        items,
    })
}

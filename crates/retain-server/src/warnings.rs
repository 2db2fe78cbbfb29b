//! The newest warning list, read through the warning stage's reader once per file version
//! and kept while the file is unchanged.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use retain_data::Workspace;
use retain_warn::{Level, ListFile, Listed};

/// A parsed list.
#[derive(Debug)]
pub(crate) struct List {
    /// `<as-of>-<cadence>`, from its file name.
    pub as_of: String,
    pub items: Vec<Listed>,
}

impl List {
    /// The list's date and its subscribers by level.
    pub(crate) fn levels(&self) -> ListLevels {
        ListLevels {
            as_of: self.as_of.clone(),
            levels: LevelCounts::of(self.items.iter()),
        }
    }
}

/// Subscribers by warning level.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub(crate) struct LevelCounts {
    pub red: usize,
    pub yellow: usize,
    pub blue: usize,
}

impl LevelCounts {
    pub(crate) fn of<'a>(items: impl Iterator<Item = &'a Listed>) -> LevelCounts {
        let mut counts = LevelCounts {
            red: 0,
            yellow: 0,
            blue: 0,
        };
        for w in items {
            match w.level {
                Level::Red => counts.red += 1,
                Level::Yellow => counts.yellow += 1,
                Level::Blue => counts.blue += 1,
            }
        }
        counts
    }
}

/// A list's date and its subscribers by level: a point of the warning trend.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct ListLevels {
    pub as_of: String,
    #[serde(flatten)]
    pub levels: LevelCounts,
}

type Entry = (PathBuf, Option<SystemTime>, Arc<List>);

#[derive(Debug, Default)]
pub(crate) struct Cache(Mutex<Option<Entry>>);

impl Cache {
    /// The newest list, or `None` before the first warning run.
    pub(crate) fn latest(&self, workspace: &Workspace) -> Result<Option<Arc<List>>, String> {
        let Some(file) = retain_warn::latest_list(workspace) else {
            return Ok(None);
        };
        let modified = std::fs::metadata(&file.path)
            .and_then(|m| m.modified())
            .ok();
        let mut cached = self.0.lock().map_err(|e| e.to_string())?;
        if let Some((path, at, list)) = cached.as_ref()
            && *path == file.path
            && *at == modified
        {
            return Ok(Some(list.clone()));
        }
        let list = Arc::new(read(&file)?);
        *cached = Some((file.path, modified, list.clone()));
        Ok(Some(list))
    }
}

/// Counts by level of every list, oldest first: the warning trend.
pub(crate) fn trend(workspace: &Workspace) -> Vec<ListLevels> {
    retain_warn::all_lists(workspace)
        .iter()
        .filter_map(|f| read(f).ok().map(|list| list.levels()))
        .collect()
}

fn read(file: &ListFile) -> Result<List, String> {
    Ok(List {
        as_of: file.name.clone(),
        items: file.read().map_err(|e| e.to_string())?,
    })
}

//! The workspace: one directory holding an operator's data and state.
//!
//! ```text
//! D/
//!   retain.toml          settings (store URL, analytic engine, time zone, currency)
//!   tables/<table>/data.parquet   analytical tables, canonical schema
//!   quarantine/          rejected rows of every ingest, with file, line, column and reason
//!   incoming/            where `retain demo` puts the synthetic operator's export
//!   truth/               the synthetic operator's hidden truth (never read by the pipeline)
//!   retain.db            the operational store (SQLite, the default)
//! ```
//!
//! Tables are replaced as a whole directory by rename, so a reader sees the old table or the new
//! one, never half of each; [`Workspace::open`] finishes or rolls back a swap a crash interrupted.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::schema::Table;

/// The name of the settings file at the workspace root.
pub const CONFIG_FILE: &str = "retain.toml";
const TABLES_DIR: &str = "tables";
const TABLE_FILE: &str = "data.parquet";

/// `retain.toml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceConfig {
    #[serde(default)]
    pub workspace: WorkspaceSection,
    #[serde(default)]
    pub store: StoreSection,
    #[serde(default)]
    pub engine: EngineSection,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSection {
    /// A name for people: shown in reports and the dashboard.
    pub name: String,
    /// Time zone of the operator's timestamps (they are stored as local time).
    pub time_zone: String,
    pub currency: String,
}

impl Default for WorkspaceSection {
    fn default() -> Self {
        Self {
            name: "retain".to_owned(),
            time_zone: "Asia/Shanghai".to_owned(),
            currency: "CNY".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// `sqlite://retain.db` (relative to the workspace) by default; `postgres://…` in production.
    pub url: String,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            url: "sqlite://retain.db".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    /// Where the analytic steps run: `embedded` (DataFusion in the process, the default) or
    /// `ballista://HOST:PORT` (an Apache Ballista scheduler; docs/cluster.md). `--engine` and
    /// `RETAIN_ENGINE` override it for one command.
    pub url: String,
}

impl Default for EngineSection {
    fn default() -> Self {
        Self {
            url: "embedded".to_owned(),
        }
    }
}

/// An opened workspace directory.
#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
    config: WorkspaceConfig,
}

impl Workspace {
    /// Opens the workspace at `root`, creating it (and `retain.toml`) if it does not exist.
    pub fn create_or_open(root: &Path) -> Result<Workspace> {
        if !root.join(CONFIG_FILE).exists() {
            std::fs::create_dir_all(root)
                .map_err(|e| Error::io(format!("creating workspace {}", root.display()), e))?;
            let mut config = WorkspaceConfig::default();
            if let Some(name) = root.file_name().and_then(|n| n.to_str()) {
                name.clone_into(&mut config.workspace.name);
            }
            let text = toml::to_string_pretty(&config).map_err(|e| Error::Workspace {
                path: root.to_path_buf(),
                reason: e.to_string(),
            })?;
            write_atomically(&root.join(CONFIG_FILE), text.as_bytes())?;
        }
        Self::open(root)
    }

    /// Opens an existing workspace.
    pub fn open(root: &Path) -> Result<Workspace> {
        let path = root.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Workspace {
                    path: root.to_path_buf(),
                    reason: format!(
                        "no {CONFIG_FILE} here: not a retain workspace (run `retain ingest` or `retain demo` to create one)"
                    ),
                }
            } else {
                Error::io(format!("reading {}", path.display()), e)
            }
        })?;
        let config: WorkspaceConfig = toml::from_str(&text).map_err(|e| Error::Workspace {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let workspace = Workspace {
            root: root.to_path_buf(),
            config,
        };
        workspace.recover()?;
        Ok(workspace)
    }

    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    #[must_use]
    pub fn config(&self) -> &WorkspaceConfig {
        &self.config
    }

    /// The directory of a table; it holds `data.parquet` once the table has data.
    #[must_use]
    pub fn table_dir(&self, table: Table) -> PathBuf {
        self.root.join(TABLES_DIR).join(table.name())
    }

    /// The Parquet file of a table.
    #[must_use]
    pub fn table_file(&self, table: Table) -> PathBuf {
        self.table_dir(table).join(TABLE_FILE)
    }

    /// Whether the table has been loaded.
    #[must_use]
    pub fn has_table(&self, table: Table) -> bool {
        self.table_file(table).exists()
    }

    /// Rows in a table (0 when not loaded), from the Parquet footer.
    pub fn table_rows(&self, table: Table) -> Result<u64> {
        let path = self.table_file(table);
        if !path.exists() {
            return Ok(0);
        }
        crate::table::row_count(&path)
    }

    /// `parts - 1` subscriber ids that split the stored subscribers into `parts` ranges of
    /// equal size: range `i` runs from cut `i - 1` up to but excluding cut `i`. Ingest clusters
    /// subscriber-keyed tables by such ranges, so a plan restricted to one range reads only its
    /// row groups. Without subscribers every cut is `i64::MAX` (the first range holds all).
    pub fn subscriber_cuts(&self, parts: usize) -> Result<Vec<i64>> {
        let ids = self.subscriber_ids()?;
        Ok(crate::table::equal_cuts(&ids, parts))
    }

    /// The stored subscriber ids, sorted (empty before the subscribers table is loaded).
    pub(crate) fn subscriber_ids(&self) -> Result<Vec<i64>> {
        let path = self.table_file(Table::Subscribers);
        if !path.exists() {
            return Ok(Vec::new());
        }
        crate::table::sorted_int_column(&path, Table::Subscribers.spec(), "subscriber_id")
    }

    #[must_use]
    pub fn quarantine_dir(&self) -> PathBuf {
        self.root.join("quarantine")
    }

    #[must_use]
    pub fn incoming_dir(&self) -> PathBuf {
        self.root.join("incoming")
    }

    #[must_use]
    pub fn truth_dir(&self) -> PathBuf {
        self.root.join("truth")
    }

    /// Scratch space of one writer, for work that becomes visible only by a final rename: a
    /// directory of its own (two loads with the same label never share one), removed when the
    /// [`Staging`] is dropped. Its lock file is held while the writer lives, so recovery in
    /// another process removes only the staging of writers that died.
    pub(crate) fn staging(&self, label: &str) -> Result<Staging> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let tables = self.root.join(TABLES_DIR);
        std::fs::create_dir_all(&tables)
            .map_err(|e| Error::io(format!("creating {}", tables.display()), e))?;
        let safe: String = label
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        let name = format!(
            "{STAGING_PREFIX}{safe}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = tables.join(&name);
        let lock_path = tables.join(format!("{name}{LOCK_SUFFIX}"));
        // The lock comes first: a staging directory without a held lock is a dead writer's.
        let lock = lock_file(&lock_path)?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        Ok(Staging {
            dir,
            lock_path,
            _lock: lock,
        })
    }

    /// Takes the table's rewrite lock, waiting while another writer (in this process or any
    /// other) holds it: loads of one table run one at a time, each merging with what the one
    /// before it swapped in. Held until the returned guard is dropped.
    pub fn lock_table(&self, table: Table) -> Result<TableLock> {
        let tables = self.root.join(TABLES_DIR);
        std::fs::create_dir_all(&tables)
            .map_err(|e| Error::io(format!("creating {}", tables.display()), e))?;
        lock_file(&tables.join(format!("{TABLE_LOCK_PREFIX}{}", table.name())))
    }

    /// The operational store's URL, with a relative SQLite path resolved against the workspace.
    #[must_use]
    pub fn store_url(&self) -> String {
        let url = &self.config.store.url;
        match url.strip_prefix("sqlite://") {
            Some(path) if !Path::new(path).is_absolute() => {
                format!("sqlite://{}", self.root.join(path).display())
            }
            _ => url.clone(),
        }
    }

    /// Replaces a table's directory by `new_dir` with two renames, keeping the old one until the
    /// new one is in place.
    pub(crate) fn swap_table(&self, table: Table, new_dir: &Path) -> Result<()> {
        let dir = self.table_dir(table);
        let old = old_dir(&dir);
        if dir.exists() {
            std::fs::rename(&dir, &old)
                .map_err(|e| Error::io(format!("moving {} aside", dir.display()), e))?;
        }
        std::fs::rename(new_dir, &dir)
            .map_err(|e| Error::io(format!("moving the new {table} table in place"), e))?;
        if old.exists() {
            std::fs::remove_dir_all(&old)
                .map_err(|e| Error::io(format!("removing {}", old.display()), e))?;
        }
        sync_dir(&self.root.join(TABLES_DIR));
        Ok(())
    }

    /// Puts back a table whose swap was interrupted and removes the staging of dead writers.
    /// A table or staging directory whose writer still holds its lock is left alone: opening a
    /// workspace must never break a load in progress in another process.
    fn recover(&self) -> Result<()> {
        let tables = self.root.join(TABLES_DIR);
        if !tables.exists() {
            return Ok(());
        }
        for table in Table::ALL {
            let dir = self.table_dir(table);
            let old = old_dir(&dir);
            if !old.exists() {
                continue;
            }
            let lock_path = tables.join(format!(".lock-{}", table.name()));
            let lock = open_lock(&lock_path)?;
            if !try_lock(&lock, &lock_path)? {
                continue;
            }
            if !old.exists() {
                continue;
            }
            if dir.exists() {
                std::fs::remove_dir_all(&old)
            } else {
                tracing::warn!(%table, "restoring the table from an interrupted load");
                std::fs::rename(&old, &dir)
            }
            .map_err(|e| Error::io(format!("recovering {}", old.display()), e))?;
        }
        let entries = std::fs::read_dir(&tables)
            .map_err(|e| Error::io(format!("listing {}", tables.display()), e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with(STAGING_PREFIX) || name.ends_with(LOCK_SUFFIX) {
                continue;
            }
            let lock_path = tables.join(format!("{name}{LOCK_SUFFIX}"));
            let lock = open_lock(&lock_path)?;
            if try_lock(&lock, &lock_path)? {
                tracing::warn!(staging = %name, "removing the staging of an interrupted load");
                let _ = std::fs::remove_dir_all(entry.path());
                let _ = std::fs::remove_file(&lock_path);
            }
        }
        Ok(())
    }
}

pub(crate) const STAGING_PREFIX: &str = ".staging-";
/// A table's rewrite lock is `tables/.lock-<table>`.
pub(crate) const TABLE_LOCK_PREFIX: &str = ".lock-";
const LOCK_SUFFIX: &str = ".lock";

/// A writer's staging directory; removed, and its lock released, when dropped.
#[derive(Debug)]
pub(crate) struct Staging {
    dir: PathBuf,
    lock_path: PathBuf,
    _lock: FileLock,
}

impl Staging {
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

/// A table's rewrite lock (see [`Workspace::lock_table`]); released when dropped.
pub type TableLock = FileLock;

/// An exclusive lock held on a file, against every other holder in this process or any
/// other; released when dropped.
#[derive(Debug)]
pub struct FileLock {
    _file: std::fs::File,
}

/// Takes the lock of the file at `path` (created if absent), waiting while another holds it:
/// what makes a workspace operation exclusive across processes.
pub fn lock_file(path: &Path) -> Result<FileLock> {
    let file = open_lock(path)?;
    file.lock()
        .map_err(|e| Error::io(format!("locking {}", path.display()), e))?;
    Ok(FileLock { _file: file })
}

fn open_lock(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))
}

/// Takes `file`'s lock if no one holds it.
fn try_lock(file: &std::fs::File, path: &Path) -> Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(Error::io(format!("locking {}", path.display()), e))
        }
    }
}

fn old_dir(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".old");
    dir.with_file_name(name)
}

fn sync_dir(dir: &Path) {
    // Best effort: makes the renames durable where the platform allows opening directories.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The last file of `dir` with extension `extension`, by name. Outputs are named by date
/// (`2026-10-26-weekly.csv`, `2026-11-01.csv`), so the last name is the newest.
#[must_use]
pub fn newest_file(dir: &Path, extension: &str) -> Option<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == extension))
        .collect();
    files.sort();
    files.pop()
}

/// Writes a file so that it is either absent, or complete with the new content, also after a
/// crash or a power cut: the content goes to a temporary file of its own in the same directory
/// (named after the process and a counter, so writers at the same time never share one), which
/// is synced to disk, renamed over `path`, and the directory synced so the rename lasts. Of
/// writers at the same time, the last rename wins, whole.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically_with(path, |w| std::io::Write::write_all(w, bytes))
}

/// Writes `value` as indented JSON at `path`, creating its directory, whole or not at all: the
/// stages' reports.
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    let text = serde_json::to_vec_pretty(value).map_err(|e| Error::Workspace {
        path: path.to_path_buf(),
        reason: format!("cannot be written as JSON: {e}"),
    })?;
    write_atomically(path, &text)
}

/// Whether `path` is empty: a report's file place left out (`skip_serializing_if`).
#[must_use]
pub fn is_empty_path(path: &Path) -> bool {
    path.as_os_str().is_empty()
}

/// Reads a file [`write_json`] wrote; `None` when there is none.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Workspace {
                path: path.to_path_buf(),
                reason: format!("not the JSON expected: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

/// The UTF-8 byte order mark that starts every CSV file meant for people: without it a
/// Chinese-language Excel reads UTF-8 as the local code page and shows the Chinese garbled.
/// Every reader here (the `csv` crate, ingest) skips it.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// [`write_atomically`] for content too large to hold in memory: `write` streams it into the
/// temporary file.
pub fn write_atomically_with(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    use std::io::Write as _;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy());
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_file_name(format!(".{name}.{}-{n}.tmp", std::process::id()));
    let written = std::fs::File::create_new(&tmp)
        .and_then(|f| {
            let mut w = std::io::BufWriter::new(f);
            write(&mut w)?;
            w.flush()?;
            w.get_ref().sync_all()
        })
        .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))
        .and_then(|()| {
            std::fs::rename(&tmp, path)
                .map_err(|e| Error::io(format!("writing {}", path.display()), e))
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    sync_dir_strictly(dir)
}

/// Syncs a directory after a rename in it; where directories cannot be opened (not Unix),
/// there is nothing to sync.
fn sync_dir_strictly(dir: &Path) -> Result<()> {
    let synced = std::fs::File::open(dir).and_then(|d| d.sync_all());
    match synced {
        Err(e) if cfg!(unix) => Err(Error::io(format!("syncing {}", dir.display()), e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_workspace_gets_a_config_and_resolves_its_store() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("op");
        let ws = Workspace::create_or_open(&root).unwrap();
        assert!(root.join(CONFIG_FILE).exists());
        assert_eq!(ws.config().workspace.name, "op");
        assert_eq!(
            ws.store_url(),
            format!("sqlite://{}", root.join("retain.db").display())
        );
        assert!(!ws.has_table(Table::Plans));
        assert_eq!(ws.table_rows(Table::Plans).unwrap(), 0);
    }

    #[test]
    fn a_report_reads_back_as_written_and_a_missing_or_foreign_one_says_so() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Report {
            as_of: String,
            counts: Vec<u64>,
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reports").join("r.json");
        assert_eq!(read_json::<Report>(&path).unwrap(), None);
        let report = Report {
            as_of: "2026-11-01".into(),
            counts: vec![3, 1],
        };
        write_json(&path, &report).unwrap();
        assert_eq!(read_json::<Report>(&path).unwrap(), Some(report));
        // Nothing but the report is left beside it.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
        std::fs::write(&path, r#"{"as_of": 7}"#).unwrap();
        let err = read_json::<Report>(&path).unwrap_err().to_string();
        assert!(
            err.contains("r.json") && err.contains("not the JSON expected"),
            "{err}"
        );
    }

    #[test]
    fn opening_a_directory_that_is_not_a_workspace_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let err = Workspace::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("not a retain workspace"), "{err}");
    }

    /// Writers of one file at the same time each leave a whole file behind them: whichever
    /// rename comes last, the file holds one writer's content entirely, and no temporary file
    /// stays.
    #[test]
    fn concurrent_atomic_writes_leave_one_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.toml");
        let contents: Vec<Vec<u8>> = (0..16u8)
            .map(|i| vec![b'a' + i; 256 * 1024 + usize::from(i)])
            .collect();
        for _ in 0..4 {
            std::thread::scope(|s| {
                for c in &contents {
                    s.spawn(|| write_atomically(&path, c).unwrap());
                }
            });
            let written = std::fs::read(&path).unwrap();
            assert!(contents.contains(&written), "a whole file of one writer");
        }
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["rules.toml"]);
    }

    #[test]
    fn an_interrupted_swap_is_rolled_back_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::create_or_open(dir.path()).unwrap();
        let table_dir = ws.table_dir(Table::Plans);
        let old = old_dir(&table_dir);
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join(TABLE_FILE), b"x").unwrap();
        // A dead writer's staging: its lock file is gone or no longer held.
        let staging = dir.path().join(TABLES_DIR).join(".staging-crashed-1-0");
        std::fs::create_dir_all(&staging).unwrap();

        let ws = Workspace::open(dir.path()).unwrap();
        assert!(ws.table_file(Table::Plans).exists());
        assert!(!old.exists());
        assert!(!staging.exists());
    }

    #[test]
    fn opening_leaves_a_live_writers_staging_and_swap_alone() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::create_or_open(dir.path()).unwrap();
        let live = ws.staging("ingest").unwrap();
        std::fs::write(live.path().join("part-0000.parquet"), b"x").unwrap();
        // A swap in progress: the table moved aside, the new one not yet in place.
        let lock = ws.lock_table(Table::Plans).unwrap();
        let old = old_dir(&ws.table_dir(Table::Plans));
        std::fs::create_dir_all(&old).unwrap();

        // Another process opening the workspace (a second open here: locks are per open file).
        Workspace::open(dir.path()).unwrap();
        assert!(live.path().join("part-0000.parquet").exists());
        assert!(old.exists() && !ws.table_dir(Table::Plans).exists());

        drop(lock);
        let staging = live.path().to_path_buf();
        drop(live);
        assert!(!staging.exists());
        Workspace::open(dir.path()).unwrap();
        assert!(ws.table_dir(Table::Plans).exists() && !old.exists());
    }

    #[test]
    fn two_stagings_with_one_label_get_their_own_directories() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::create_or_open(dir.path()).unwrap();
        let a = ws.staging("campaign-1-history").unwrap();
        let b = ws.staging("campaign-1-history").unwrap();
        assert_ne!(a.path(), b.path());
        let kept = b.path().to_path_buf();
        drop(a);
        assert!(kept.exists());
    }

    #[test]
    fn a_table_lock_waits_for_the_writer_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::create_or_open(dir.path()).unwrap();
        let first = ws.lock_table(Table::Events).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let other = ws.clone();
        let waiter = std::thread::spawn(move || {
            let _second = other.lock_table(Table::Events).unwrap();
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(200))
                .is_err(),
            "the second writer got the lock while the first held it"
        );
        // Another table is not held up.
        drop(ws.lock_table(Table::Plans).unwrap());
        drop(first);
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        waiter.join().unwrap();
    }
}

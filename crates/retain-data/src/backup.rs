//! A workspace in one file and back: `retain backup` and `retain restore`.
//!
//! The archive is a zip of the workspace's files with a manifest (`retain-backup.json`) that
//! lists every file with its size and SHA-256, and, when the store is SQLite, a consistent copy
//! of the store taken by the caller (`store.sqlite`). Restoring checks every entry against the
//! manifest while it unpacks into a scratch directory beside the target, and renames it into
//! place only when all of it is there and whole: a damaged archive leaves nothing behind.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Location, Result};
use crate::schema::Table;
use crate::workspace::{STAGING_PREFIX, TABLE_LOCK_PREFIX, Workspace};

/// The manifest's name in the archive.
const MANIFEST: &str = "retain-backup.json";
/// The store's copy's name in the archive.
const STORE: &str = "store.sqlite";
/// What a restore takes on trust from an archive, at most: entries, the manifest's size, and
/// the bytes unpacked (the manifest's own total is checked against every entry as it comes).
const MAX_ENTRIES: usize = 1_000_000;
const MAX_MANIFEST: u64 = 256 << 20;
const MAX_UNPACKED: u64 = 16 << 40;
/// Directory levels walked in a workspace.
const MAX_DEPTH: usize = 16;
const FORMAT: u32 = 1;

/// One file of the archive.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BackedUpFile {
    /// Relative to the workspace's root, `/`-separated.
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// The archive's table of contents.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The retain version that wrote it.
    pub version: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub files: Vec<BackedUpFile>,
    /// The SQLite store's copy, when the store is SQLite.
    pub store: Option<BackedUpFile>,
}

/// What a backup or a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct BackupSummary {
    pub archive: PathBuf,
    pub dir: PathBuf,
    pub files: usize,
    pub bytes: u64,
    /// Where the store's copy came from or went to, when there was one.
    pub store: Option<PathBuf>,
}

/// Writes `workspace` and, when given, the store's consistent copy `store` to the zip `out`,
/// whole or not at all. Every table's rewrite lock is held meanwhile, so no load swaps a table
/// under it; the other outputs are replaced by renames and are read whole, old or new.
pub fn backup(workspace: &Workspace, store: Option<&Path>, out: &Path) -> Result<BackupSummary> {
    let _locks: Vec<_> = Table::ALL
        .iter()
        .map(|t| workspace.lock_table(*t))
        .collect::<Result<_>>()?;
    let root = workspace.root();
    let mut files = Vec::new();
    collect(root, root, 0, &skipped(workspace, out), &mut files)?;
    files.sort();
    let io = |what: String| move |e| Error::io(what, e);
    let partial = out.with_extension("zip.partial");
    let written = (|| {
        let file = std::fs::File::create(&partial)
            .map_err(io(format!("creating {}", partial.display())))?;
        let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
        let mut listed = Vec::with_capacity(files.len());
        for (name, path) in &files {
            listed.push(add(&mut zip, name, path, &partial)?);
        }
        let store = store
            .map(|path| add(&mut zip, STORE, path, &partial))
            .transpose()?;
        let manifest = Manifest {
            format: FORMAT,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            created_at: chrono::Utc::now(),
            files: listed,
            store,
        };
        let text = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
        zip.start_file(MANIFEST, deflated())
            .map_err(|e| zip_error(&partial, MANIFEST, &e))?;
        zip.write_all(&text)
            .map_err(io(format!("writing {}", partial.display())))?;
        let file = zip
            .finish()
            .map_err(|e| zip_error(&partial, MANIFEST, &e))?
            .into_inner()
            .map_err(|e| Error::io(format!("writing {}", partial.display()), e.into_error()))?;
        file.sync_all()
            .map_err(io(format!("writing {}", partial.display())))?;
        Ok::<_, Error>(manifest)
    })();
    let manifest = match written {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, out).map_err(io(format!("writing {}", out.display())))?;
    Ok(BackupSummary {
        archive: out.to_path_buf(),
        dir: root.to_path_buf(),
        files: manifest.files.len(),
        bytes: manifest.files.iter().map(|f| f.bytes).sum(),
        store: store.map(Path::to_path_buf),
    })
}

/// What a backup leaves out: locks, scratch space, half-written files, the live store (its
/// consistent copy goes in instead) and the archive itself.
fn skipped(workspace: &Workspace, out: &Path) -> impl Fn(&Path) -> bool {
    let store = workspace
        .store_url()
        .strip_prefix("sqlite://")
        .map(|p| PathBuf::from(p.split('?').next().unwrap_or(p)));
    let out = std::path::absolute(out).unwrap_or_else(|_| out.to_path_buf());
    move |path: &Path| {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.as_deref().unwrap_or("");
        let live_store = store.as_ref().is_some_and(|s| {
            let s = s.to_string_lossy();
            let p = path.to_string_lossy();
            p == s
                || p.strip_prefix(s.as_ref())
                    .is_some_and(|rest| rest.starts_with('-'))
        });
        let scratch = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ["lock", "old", "tmp", "partial", "writing"].contains(&e));
        live_store
            || scratch
            || std::path::absolute(path).is_ok_and(|p| p == out)
            || name.starts_with(TABLE_LOCK_PREFIX)
            || name.starts_with(STAGING_PREFIX)
    }
}

/// Every regular file under `dir`, as (archive name, path).
fn collect(
    root: &Path,
    dir: &Path,
    depth: usize,
    skip: &impl Fn(&Path) -> bool,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::Workspace {
            path: dir.to_path_buf(),
            reason: format!("more than {MAX_DEPTH} directory levels"),
        });
    }
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
        let path = entry.path();
        if skip(&path) {
            continue;
        }
        let kind = entry
            .file_type()
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        if kind.is_dir() {
            collect(root, &path, depth + 1, skip, out)?;
        } else if kind.is_file() {
            let relative = path.strip_prefix(root).expect("walked from the root");
            let name: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push((name.join("/"), path));
        }
    }
    Ok(())
}

fn deflated() -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true)
}

fn zip_error(archive: &Path, entry: &str, e: &zip::result::ZipError) -> Error {
    Error::BadFile {
        location: Location {
            file: archive.to_path_buf(),
            line: 0,
            column: Some(entry.to_owned()),
        },
        reason: e.to_string(),
    }
}

/// Copies `path` into the archive as `name`, hashing as it goes.
fn add<W: Write + std::io::Seek>(
    zip: &mut zip::ZipWriter<W>,
    name: &str,
    path: &Path,
    archive: &Path,
) -> Result<BackedUpFile> {
    // Parquet and workbooks are compressed already.
    let stored = [".parquet", ".xlsx", ".zip", ".gz"]
        .iter()
        .any(|ext| name.ends_with(ext));
    let options = if stored {
        deflated().compression_method(zip::CompressionMethod::Stored)
    } else {
        deflated()
    };
    zip.start_file(name, options)
        .map_err(|e| zip_error(archive, name, &e))?;
    let file = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let (bytes, sha256) = copy_hashed(file, zip).map_err(|e| match e {
        Copy::Read(e) => Error::io(format!("reading {}", path.display()), e),
        Copy::Write(e) => Error::io(format!("writing {}", archive.display()), e),
    })?;
    Ok(BackedUpFile {
        path: name.to_owned(),
        bytes,
        sha256,
    })
}

/// Which side of a copy failed.
pub(crate) enum Copy {
    Read(std::io::Error),
    Write(std::io::Error),
}

/// Copies `from` to `to` a megabyte at a time; returns the bytes copied and their SHA-256 in
/// hexadecimal.
pub(crate) fn copy_hashed(
    mut from: impl Read,
    mut to: impl Write,
) -> std::result::Result<(u64, String), Copy> {
    let mut hash = Sha256::new();
    let mut bytes = 0_u64;
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = from.read(&mut buf).map_err(Copy::Read)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        to.write_all(&buf[..n]).map_err(Copy::Write)?;
        bytes += n as u64;
    }
    Ok((bytes, format!("{:x}", hash.finalize())))
}

/// Unpacks the backup `archive` into `dir`, which must not exist or be empty, checking every
/// file against the manifest; the store's copy goes where the restored workspace's settings
/// put a SQLite store, which must not exist yet. Nothing is left behind when any check fails.
pub fn restore(archive: &Path, dir: &Path) -> Result<BackupSummary> {
    if dir.exists() && !crate::is_empty_path(dir) {
        return Err(Error::Workspace {
            path: dir.to_path_buf(),
            reason: "not empty: restore into a new or empty directory".into(),
        });
    }
    let bad = |entry: &str, reason: String| Error::BadFile {
        location: Location {
            file: archive.to_path_buf(),
            line: 0,
            column: Some(entry.to_owned()),
        },
        reason,
    };
    let file = std::fs::File::open(archive)
        .map_err(|e| Error::io(format!("reading {}", archive.display()), e))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| bad("", format!("not a retain backup: {e}")))?;
    if zip.len() > MAX_ENTRIES {
        return Err(bad("", format!("more than {MAX_ENTRIES} entries")));
    }
    let manifest: Manifest = {
        let entry = zip
            .by_name(MANIFEST)
            .map_err(|_| bad(MANIFEST, "missing: not a retain backup".into()))?;
        let mut text = Vec::new();
        entry
            .take(MAX_MANIFEST + 1)
            .read_to_end(&mut text)
            .map_err(|e| bad(MANIFEST, e.to_string()))?;
        if text.len() as u64 > MAX_MANIFEST {
            return Err(bad(MANIFEST, format!("larger than {MAX_MANIFEST} bytes")));
        }
        serde_json::from_slice(&text).map_err(|e| bad(MANIFEST, e.to_string()))?
    };
    if manifest.format != FORMAT {
        return Err(bad(
            MANIFEST,
            format!(
                "format {} is not {FORMAT}, the one this retain reads",
                manifest.format
            ),
        ));
    }
    let total: u64 = manifest
        .files
        .iter()
        .chain(&manifest.store)
        .map(|f| f.bytes)
        .sum();
    if total > MAX_UNPACKED {
        return Err(bad(MANIFEST, format!("{total} bytes to unpack")));
    }
    let mut expected: BTreeMap<&str, &BackedUpFile> = BTreeMap::new();
    for f in manifest.files.iter().chain(&manifest.store) {
        if expected.insert(f.path.as_str(), f).is_some() {
            return Err(bad(&f.path, "listed twice in the manifest".into()));
        }
    }

    let parent = std::path::absolute(dir)
        .map_err(|e| Error::io(format!("resolving {}", dir.display()), e))?;
    let parent = parent.parent().unwrap_or(Path::new("/")).to_path_buf();
    std::fs::create_dir_all(&parent)
        .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    let scratch = parent.join(format!(
        ".restoring-{}-{}",
        dir.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&scratch);
    let unpacked = unpack(&mut zip, &expected, &scratch, &bad);
    let placed = unpacked.and_then(|()| place(&scratch, dir, manifest.store.is_some()));
    let store = match placed {
        Ok(store) => store,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&scratch);
            return Err(e);
        }
    };
    Ok(BackupSummary {
        archive: archive.to_path_buf(),
        dir: dir.to_path_buf(),
        files: manifest.files.len(),
        bytes: manifest.files.iter().map(|f| f.bytes).sum(),
        store,
    })
}

/// Every entry of the archive into `scratch`, each checked against `expected`.
fn unpack<R: Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    expected: &BTreeMap<&str, &BackedUpFile>,
    scratch: &Path,
    bad: &impl Fn(&str, String) -> Error,
) -> Result<()> {
    let mut seen = 0;
    for i in 0..zip.len() {
        let entry = zip
            .by_index(i)
            .map_err(|e| bad("", format!("entry {i}: {e}")))?;
        let name = entry.name().to_owned();
        if name == MANIFEST || entry.is_dir() {
            continue;
        }
        let Some(listed) = expected.get(name.as_str()) else {
            return Err(bad(&name, "not in the manifest".into()));
        };
        let Some(relative) = entry.enclosed_name() else {
            return Err(bad(&name, "a path outside the workspace".into()));
        };
        let target = if name == STORE {
            scratch.join(format!(".{STORE}"))
        } else {
            scratch.join(relative)
        };
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        let mut out = std::fs::File::create(&target)
            .map_err(|e| Error::io(format!("creating {}", target.display()), e))?;
        // One byte beyond the listed size is enough to know it lied.
        let (bytes, sha256) =
            copy_hashed(entry.take(listed.bytes + 1), &mut out).map_err(|e| match e {
                Copy::Read(e) => bad(&name, format!("unreadable: {e}")),
                Copy::Write(e) => Error::io(format!("writing {}", target.display()), e),
            })?;
        if bytes != listed.bytes || sha256 != listed.sha256 {
            return Err(bad(
                &name,
                "damaged: its size or checksum differs from the manifest's".into(),
            ));
        }
        out.sync_all()
            .map_err(|e| Error::io(format!("writing {}", target.display()), e))?;
        seen += 1;
    }
    if seen != expected.len() {
        let missing = expected
            .keys()
            .find(|name| {
                let path = if **name == STORE {
                    scratch.join(format!(".{STORE}"))
                } else {
                    scratch.join(name)
                };
                !path.exists()
            })
            .copied()
            .unwrap_or("");
        return Err(bad(
            missing,
            "listed in the manifest but not in the archive".into(),
        ));
    }
    Ok(())
}

/// Moves the store's copy where the restored settings want it, then the scratch directory to
/// `dir`; returns where the store went.
fn place(scratch: &Path, dir: &Path, has_store: bool) -> Result<Option<PathBuf>> {
    std::fs::create_dir_all(scratch)
        .map_err(|e| Error::io(format!("creating {}", scratch.display()), e))?;
    let mut store = None;
    if has_store {
        let copy = scratch.join(format!(".{STORE}"));
        let restored = Workspace::open(scratch)?;
        let url = restored.store_url();
        let Some(path) = url.strip_prefix("sqlite://") else {
            return Err(Error::Workspace {
                path: dir.to_path_buf(),
                reason: format!(
                    "the archive holds a SQLite store, but the restored settings name {url}"
                ),
            });
        };
        let path = PathBuf::from(path.split('?').next().unwrap_or(path));
        // A store inside the workspace moves with it; one elsewhere must not be overwritten.
        let (now, later) = match path.strip_prefix(scratch) {
            Ok(relative) => (path.clone(), dir.join(relative)),
            Err(_) => (path.clone(), path.clone()),
        };
        if later.exists() {
            return Err(Error::Workspace {
                path: later,
                reason: "the store the restored settings name exists already".into(),
            });
        }
        if let Some(parent) = now.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        }
        std::fs::rename(&copy, &now)
            .or_else(|_| std::fs::copy(&copy, &now).map(|_| ()))
            .map_err(|e| Error::io(format!("placing the store at {}", now.display()), e))?;
        store = Some(later);
    }
    if dir.exists() {
        std::fs::remove_dir(dir)
            .map_err(|e| Error::io(format!("replacing {}", dir.display()), e))?;
    }
    std::fs::rename(scratch, dir)
        .map_err(|e| Error::io(format!("moving the restored files to {}", dir.display()), e))?;
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An archive of `entries` (name, bytes) with a manifest listing `listed` (name, bytes).
    fn archive(path: &Path, entries: &[(&str, &[u8])], listed: &[(&str, &[u8])]) {
        let file = std::fs::File::create(path).unwrap();
        let mut zip = zip::ZipWriter::new(file);
        for (name, bytes) in entries {
            zip.start_file(*name, deflated()).unwrap();
            zip.write_all(bytes).unwrap();
        }
        let manifest = Manifest {
            format: FORMAT,
            version: "test".into(),
            created_at: chrono::Utc::now(),
            files: listed
                .iter()
                .map(|(name, bytes)| BackedUpFile {
                    path: (*name).to_owned(),
                    bytes: bytes.len() as u64,
                    sha256: format!("{:x}", Sha256::digest(bytes)),
                })
                .collect(),
            store: None,
        };
        zip.start_file(MANIFEST, deflated()).unwrap();
        zip.write_all(&serde_json::to_vec(&manifest).unwrap())
            .unwrap();
        zip.finish().unwrap();
    }

    fn refused(entries: &[(&str, &[u8])], listed: &[(&str, &[u8])]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hostile.zip");
        archive(&path, entries, listed);
        let target = dir.path().join("into").join("ws");
        let error = restore(&path, &target).unwrap_err().to_string();
        assert!(!target.exists(), "{error}");
        assert!(!dir.path().join("evil.txt").exists());
        assert!(!dir.path().join("into").join("evil.txt").exists());
        let left: Vec<_> = std::fs::read_dir(dir.path().join("into"))
            .map(|d| d.filter_map(std::result::Result::ok).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{left:?}");
        error
    }

    #[test]
    fn hostile_archives_are_refused_and_leave_nothing() {
        let config: &[u8] = b"";
        let evil: &[u8] = b"owned";
        let error = refused(
            &[("retain.toml", config), ("../evil.txt", evil)],
            &[("retain.toml", config), ("../evil.txt", evil)],
        );
        assert!(error.contains("outside the workspace"), "{error}");
        let error = refused(&[("retain.toml", b"12345")], &[("retain.toml", b"1")]);
        assert!(
            error.contains("damaged") && error.contains("retain.toml"),
            "{error}"
        );
        let error = refused(
            &[("retain.toml", config), ("extra.bin", evil)],
            &[("retain.toml", config)],
        );
        assert!(error.contains("not in the manifest"), "{error}");
        let error = refused(&[], &[("retain.toml", config)]);
        assert!(error.contains("not in the archive"), "{error}");
    }
}

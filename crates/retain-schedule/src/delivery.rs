//! Deliveries in the drop folder: `<workspace>/drop/<delivery>/` holds an export's files and a
//! `manifest.json` that lists them. A delivery is complete when the manifest is there and
//! every file it lists has its stated size (and checksum, when given); until then it waits,
//! so a file still being copied is never loaded half-written. Loaded deliveries move to
//! `drop/loaded/`.
//!
//! ```json
//! {"files": [{"table": "subscribers", "file": "subscribers.csv", "bytes": 1048576,
//!             "sha256": "…"}]}
//! ```

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// The manifest's name in a delivery.
pub const MANIFEST: &str = "manifest.json";

/// Where loaded deliveries go, inside the drop folder.
pub const LOADED: &str = "loaded";

/// A larger manifest is refused unread.
pub const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

/// More files than one export has.
pub const MAX_FILES: usize = 1000;

/// More deliveries than are looked at in one pass; the rest wait for the next.
pub const MAX_DELIVERIES: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestText {
    files: Vec<FileText>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileText {
    table: String,
    file: String,
    bytes: u64,
    #[serde(default)]
    sha256: Option<String>,
}

/// One file of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryFile {
    /// The canonical table it loads into, as the manifest names it.
    pub table: String,
    pub path: PathBuf,
    pub bytes: u64,
}

/// A delivery as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Every file present as the manifest describes it.
    Complete {
        name: String,
        dir: PathBuf,
        files: Vec<DeliveryFile>,
    },
    /// Not yet: what is missing.
    Partial { name: String, missing: Vec<String> },
}

impl Delivery {
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Delivery::Complete { name, .. } | Delivery::Partial { name, .. } => name,
        }
    }
}

/// The deliveries in `drop`, in name order (name them by date to load them in order); none
/// when the folder does not exist. A manifest that is malformed or names a file outside its
/// delivery is an error naming the manifest.
pub fn deliveries(drop: &Path) -> Result<Vec<Delivery>> {
    let entries = match std::fs::read_dir(drop) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(drop, e)),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(drop, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name == LOADED || name.starts_with('.') || !entry.path().is_dir() {
            continue;
        }
        dirs.push((name, entry.path()));
    }
    dirs.sort();
    dirs.truncate(MAX_DELIVERIES);
    dirs.into_iter()
        .map(|(name, dir)| delivery(name, dir))
        .collect()
}

fn delivery(name: String, dir: PathBuf) -> Result<Delivery> {
    let manifest = dir.join(MANIFEST);
    let meta = match std::fs::metadata(&manifest) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Delivery::Partial {
                name,
                missing: vec![MANIFEST.into()],
            });
        }
        Err(e) => return Err(Error::io(&manifest, e)),
    };
    if meta.len() > MAX_MANIFEST_BYTES {
        return Err(Error::invalid(
            &manifest,
            format!(
                "{} bytes; a manifest is at most {MAX_MANIFEST_BYTES}",
                meta.len()
            ),
        ));
    }
    let text = std::fs::read(&manifest).map_err(|e| Error::io(&manifest, e))?;
    let parsed: ManifestText = serde_json::from_slice(&text).map_err(|e| {
        Error::invalid(
            &manifest,
            format!("line {}, column {}: {e}", e.line(), e.column()),
        )
    })?;
    if parsed.files.is_empty() || parsed.files.len() > MAX_FILES {
        return Err(Error::invalid(
            &manifest,
            format!(
                "{} files; a delivery lists 1–{MAX_FILES}",
                parsed.files.len()
            ),
        ));
    }
    let mut files = Vec::with_capacity(parsed.files.len());
    let mut missing = Vec::new();
    for f in parsed.files {
        // A plain name: a manifest must not reach outside its delivery.
        if f.file.is_empty()
            || f.file.len() > 255
            || f.file.contains(['/', '\\', '\0'])
            || f.file.starts_with('.')
        {
            return Err(Error::invalid(
                &manifest,
                format!(
                    "file {:?}: a plain file name in the delivery's folder",
                    f.file
                ),
            ));
        }
        let path = dir.join(&f.file);
        match std::fs::metadata(&path) {
            Ok(m) if m.len() == f.bytes => {
                if let Some(want) = &f.sha256 {
                    let got = sha256(&path)?;
                    if !got.eq_ignore_ascii_case(want) {
                        return Err(Error::invalid(
                            &manifest,
                            format!(
                                "{}: all {} bytes are there but their SHA-256 is {got}, not {want}: the delivery is damaged",
                                f.file, f.bytes
                            ),
                        ));
                    }
                }
                files.push(DeliveryFile {
                    table: f.table,
                    path,
                    bytes: f.bytes,
                });
            }
            Ok(m) if m.len() < f.bytes => {
                missing.push(format!("{} ({} of {} bytes)", f.file, m.len(), f.bytes));
            }
            Ok(m) => {
                return Err(Error::invalid(
                    &manifest,
                    format!(
                        "{}: {} bytes, more than the {} the manifest states",
                        f.file,
                        m.len(),
                        f.bytes
                    ),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing.push(f.file),
            Err(e) => return Err(Error::io(&path, e)),
        }
    }
    Ok(if missing.is_empty() {
        Delivery::Complete { name, dir, files }
    } else {
        Delivery::Partial { name, missing }
    })
}

fn sha256(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        }))
}

/// Moves a loaded delivery to `drop/loaded/`, under a new name if one is there already; where
/// it went.
pub fn mark_loaded(drop: &Path, name: &str) -> Result<PathBuf> {
    let loaded = drop.join(LOADED);
    std::fs::create_dir_all(&loaded).map_err(|e| Error::io(&loaded, e))?;
    let mut to = loaded.join(name);
    let mut n = 1;
    while to.exists() {
        n += 1;
        to = loaded.join(format!("{name}.{n}"));
    }
    let from = drop.join(name);
    std::fs::rename(&from, &to).map_err(|e| Error::io(&from, e))?;
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn a_delivery_waits_until_every_file_is_whole() {
        let drop = tempfile::tempdir().unwrap();
        let d = drop.path().join("2026-12-01");
        write(&d, "plans.csv", "plan_id\n");
        assert_eq!(
            deliveries(drop.path()).unwrap(),
            vec![Delivery::Partial {
                name: "2026-12-01".into(),
                missing: vec![MANIFEST.into()]
            }]
        );
        write(
            &d,
            MANIFEST,
            r#"{"files": [{"table": "plans", "file": "plans.csv", "bytes": 8},
                          {"table": "subscribers", "file": "subs.csv", "bytes": 12}]}"#,
        );
        write(&d, "subs.csv", "subscriber");
        let Delivery::Partial { missing, .. } = &deliveries(drop.path()).unwrap()[0] else {
            panic!("complete too early")
        };
        assert_eq!(missing, &["subs.csv (10 of 12 bytes)".to_owned()]);
        write(&d, "subs.csv", "subscriber\n\n");
        let Delivery::Complete { files, .. } = &deliveries(drop.path()).unwrap()[0] else {
            panic!("still partial")
        };
        assert_eq!(files.len(), 2);
        let to = mark_loaded(drop.path(), "2026-12-01").unwrap();
        assert!(to.join("plans.csv").exists());
        assert!(deliveries(drop.path()).unwrap().is_empty());
    }

    #[test]
    fn a_hostile_or_damaged_manifest_is_refused_by_name() {
        let drop = tempfile::tempdir().unwrap();
        let d = drop.path().join("a");
        write(&d, "x.csv", "abc");
        for (manifest, expect) in [
            (
                r#"{"files": [{"table": "t", "file": "../x.csv", "bytes": 3}]}"#,
                "plain file name",
            ),
            (
                r#"{"files": [{"table": "t", "file": "x.csv", "bytes": 2}]}"#,
                "more than",
            ),
            (
                r#"{"files": [{"table": "t", "file": "x.csv", "bytes": 3, "sha256": "00"}]}"#,
                "damaged",
            ),
            (r#"{"files": []}"#, "1–1000"),
            (r#"{"files": [{"table": "t"}"#, "line 1"),
        ] {
            write(&d, MANIFEST, manifest);
            let e = deliveries(drop.path()).unwrap_err().to_string();
            assert!(
                e.contains("manifest.json") && e.contains(expect),
                "{manifest}: {e}"
            );
        }
        let sum = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        write(
            &d,
            MANIFEST,
            &format!(
                r#"{{"files": [{{"table": "t", "file": "x.csv", "bytes": 3, "sha256": "{sum}"}}]}}"#
            ),
        );
        assert!(matches!(
            deliveries(drop.path()).unwrap()[0],
            Delivery::Complete { .. }
        ));
    }
}

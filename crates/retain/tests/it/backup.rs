//! `retain backup` and `retain restore`: a workspace and its store round-trip through one file,
//! and a damaged archive or a used directory leaves nothing behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::{demo_months_12, retain, retain_json, s, user_add};

/// Every file under `root` but the live store and lock files, by relative path, with its bytes.
fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let lock = path.extension().is_some_and(|e| e == "lock");
            if name.starts_with("retain.db") || name.starts_with(".lock") || lock {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.insert(path.strip_prefix(root).unwrap().to_path_buf(), bytes);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The files of `a` that `b` lacks.
fn only<'a>(a: &'a BTreeMap<PathBuf, Vec<u8>>, b: &BTreeMap<PathBuf, Vec<u8>>) -> Vec<&'a PathBuf> {
    a.keys().filter(|k| !b.contains_key(*k)).collect()
}

#[test]
fn a_workspace_and_its_store_round_trip_and_a_damaged_archive_restores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    demo_months_12(&ws, 1_500, 5);
    let (ok, added) = user_add(
        &[
            "--dir",
            s(&ws),
            "--name",
            "wang.li",
            "--role",
            "analyst",
            "--json",
        ],
        "a long enough password",
    );
    assert!(ok, "{added}");
    let archive = dir.path().join("weekly.zip");
    let (ok, backed_up) = retain_json(&["backup", "--dir", s(&ws), "--out", s(&archive), "--json"]);
    assert!(ok, "{backed_up}");
    assert_eq!(backed_up["store_included"], true);
    assert!(backed_up["files"].as_u64().unwrap() > 10, "{backed_up}");

    let restored = dir.path().join("restored");
    let (ok, summary) = retain_json(&["restore", "--dir", s(&restored), s(&archive), "--json"]);
    assert!(ok, "{summary}");
    assert_eq!(summary["files"], backed_up["files"]);
    let (here, there) = (files(&ws), files(&restored));
    assert!(
        only(&here, &there).is_empty() && only(&there, &here).is_empty(),
        "only in the workspace: {:?}; only in the restored one: {:?}",
        only(&here, &there),
        only(&there, &here)
    );
    assert!(here == there, "a restored file differs");
    // The store came back: its users and its runs.
    for command in ["user list", "status"] {
        let query = |w: &Path| {
            let mut args: Vec<&str> = command.split(' ').collect();
            args.extend(["--dir", s(w), "--json"]);
            let (ok, mut json) = retain_json(&args);
            assert!(ok, "{json}");
            json.as_object_mut().unwrap().remove("dir");
            json
        };
        assert_eq!(query(&ws), query(&restored), "{command}");
    }
    // The restored workspace works: a warning run on it.
    let (ok, warned) = retain_json(&["warn", "--dir", s(&restored), "--json"]);
    assert!(ok, "{warned}");

    // Not into a directory in use.
    let out = retain(&["restore", "--dir", s(&restored), s(&archive)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));

    // A damaged archive: one byte changed a third of the way in.
    let mut bytes = std::fs::read(&archive).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x5a;
    let damaged = dir.path().join("damaged.zip");
    std::fs::write(&damaged, &bytes).unwrap();
    let target = dir.path().join("from-damaged");
    let out = retain(&["restore", "--dir", s(&target), s(&damaged)]);
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(error.contains("damaged.zip"), "{error}");
    assert!(!target.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(std::result::Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".restoring"))
        .collect();
    assert!(leftovers.is_empty());

    // Not an archive at all.
    let out = retain(&["restore", "--dir", s(&target), s(&ws.join("retain.toml"))]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a retain backup"));
}

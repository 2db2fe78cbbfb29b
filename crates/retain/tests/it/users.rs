//! Users added from the command line: names, roles and manager ids checked first.

use crate::common::*;

/// User names and the ids that scope a manager are checked before anything is stored: an empty
/// `--manager-id` would show the manager every subscriber without an account manager.
#[test]
fn user_names_and_manager_ids_are_checked_before_users_are_added() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("retain.toml"), "").unwrap();
    let w = dir.path().to_str().unwrap();
    let long = "m".repeat(65);
    for args in [
        &["--name", "wang", "--role", "manager", "--manager-id", ""][..],
        &["--name", "wang", "--role", "manager", "--manager-id", " "],
        &["--name", "wang", "--role", "manager", "--manager-id", &long],
        &["--name", "wang", "--role", "manager", "--branch-id", ""],
        &["--name", "", "--role", "analyst"],
        &["--name", &long, "--role", "analyst"],
        &["--name", "wang wei", "--role", "analyst"],
        &["--name", "=1+1", "--role", "analyst"],
    ] {
        let (ok, _) = user_add(&[&["--dir", w], args].concat(), "correct horse");
        assert!(!ok, "refused: {args:?}");
    }
    let (ok, added) = user_add(
        &[
            "--dir",
            w,
            "--name",
            "wang",
            "--role",
            "manager",
            "--manager-id",
            "NJ01-M01",
            "--json",
        ],
        "correct horse",
    );
    assert!(ok && added["manager_id"] == "NJ01-M01", "{added}");
    let (ok, list) = retain_json(&["user", "list", "--dir", w, "--json"]);
    assert!(ok, "{list}");
    assert_eq!(list["users"].as_array().unwrap().len(), 1, "{list}");
}

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

/// An admin disables, enables, removes and resets users from the command line; each change is
/// checked first and done once however often it is asked.
#[test]
fn users_are_disabled_enabled_removed_and_their_passwords_reset() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("retain.toml"), "").unwrap();
    let w = dir.path().to_str().unwrap();
    for name in ["li", "zhou"] {
        let (ok, _) = user_add(
            &["--dir", w, "--name", name, "--role", "analyst"],
            "correct horse",
        );
        assert!(ok);
    }
    let disabled = |name: &str| -> Option<bool> {
        let (ok, list) = retain_json(&["user", "list", "--dir", w, "--json"]);
        assert!(ok, "{list}");
        list["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == name)
            .map(|u| u["disabled"].as_bool().unwrap())
    };
    assert_eq!(disabled("li"), Some(false));
    for _ in 0..2 {
        let (ok, r) = retain_json(&["user", "disable", "--dir", w, "--name", "li", "--json"]);
        assert!(ok && r["done"] == "disabled", "{r}");
        assert_eq!(disabled("li"), Some(true));
    }
    let (ok, _) = retain_json(&["user", "enable", "--dir", w, "--name", "li", "--json"]);
    assert!(ok);
    assert_eq!(disabled("li"), Some(false));

    // A new password is checked as at login, and set.
    let (ok, _) = user_with_password("reset-password", &["--dir", w, "--name", "li"], "short");
    assert!(!ok, "a short password is refused");
    let (ok, r) = user_with_password(
        "reset-password",
        &["--dir", w, "--name", "li", "--json"],
        "a brand new password",
    );
    assert!(ok && r["done"] == "password reset", "{r}");

    let (ok, _) = retain_json(&["user", "remove", "--dir", w, "--name", "zhou", "--json"]);
    assert!(ok);
    assert_eq!(disabled("zhou"), None);
    let out = retain(&["user", "remove", "--dir", w, "--name", "zhou"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("zhou"));
    let out = retain(&["user", "disable", "--dir", w, "--name", "nobody"]);
    assert!(!out.status.success());
    let out = retain(&["user", "disable", "--dir", w, "--name", "=1+1"]);
    assert!(!out.status.success());
}

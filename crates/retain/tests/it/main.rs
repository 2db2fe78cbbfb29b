//! The command-line interface that outside checks rely on, run as a user would run it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// This crate's directory, read at run time: a test binary reused from a build in another
/// checkout must still look at this one.
fn manifest_dir() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it for tests"))
}

fn retain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_retain"))
        .args(args)
        .env("RETAIN_LOG", "warn")
        .output()
        .expect("the retain binary runs")
}

/// Runs a `--json` command and parses its one stdout object.
fn retain_json(args: &[&str]) -> (bool, serde_json::Value) {
    let out = retain(args);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "one JSON line on stdout, got: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success(),
        serde_json::from_str(lines[0]).unwrap(),
    )
}

fn fixture(name: &str) -> PathBuf {
    manifest_dir()
        .join("../retain-data/tests/fixtures")
        .join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn demo_leaves_tables_truth_and_store_and_reconciles() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("demo");
    let (ok, json) = retain_json(&[
        "demo",
        "--subscribers",
        "1500",
        "--months",
        "12",
        "--seed",
        "7",
        "--dir",
        s(&ws),
        "--json",
    ]);
    assert!(ok, "{json}");
    for table in [
        "plans",
        "subscribers",
        "contracts",
        "usage_monthly",
        "usage_weekly",
        "events",
        "campaign_history",
    ] {
        assert!(
            ws.join("tables").join(table).join("data.parquet").exists(),
            "{table}"
        );
    }
    assert!(ws.join("truth/churn.csv").exists());
    assert!(ws.join("truth/offer_effects.csv").exists());
    assert!(ws.join("retain.db").exists());
    let tables = json["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 7);
    for t in tables {
        assert_eq!(t["read"], t["loaded"], "synthetic data is clean: {t}");
        assert_eq!(t["quarantined"], 0);
    }
    assert_eq!(json["overview"]["subscribers"], 1500);
    assert_eq!(json["overview"]["months"].as_array().unwrap().len(), 12);
    assert!(json["overview"]["cancelled"].as_i64().unwrap() > 0);
    assert!(
        json["warnings"]["red"].as_u64().is_some(),
        "{}",
        json["warnings"]
    );
    assert!(json["warn_backtest"]["levels"]["red"]["precision"].is_number());
    assert!(!json["model"].is_null(), "{}", json["model"]);

    // The early-warning interface: counts per level and the list file.
    let (ok, warn) = retain_json(&["warn", "--dir", s(&ws), "--json"]);
    assert!(ok, "{warn}");
    let listed = warn["red"].as_u64().unwrap()
        + warn["yellow"].as_u64().unwrap()
        + warn["blue"].as_u64().unwrap();
    let file = std::fs::read_to_string(warn["warnings_file"].as_str().unwrap()).unwrap();
    assert_eq!(file.lines().count() as u64, 1 + listed);
    // A re-run for the same date compares with the list before that date (none here).
    assert!(warn["changes"]["previous"].is_null());
    assert_eq!(warn["changes"]["new"].as_u64().unwrap(), listed);
    let (ok, backtest) = retain_json(&["warn", "--dir", s(&ws), "--backtest", "--json"]);
    assert!(ok, "{backtest}");
    for level in ["red", "yellow", "blue"] {
        for key in ["precision", "recall", "lift"] {
            assert!(
                backtest["levels"][level][key].is_number(),
                "{level}.{key}: {backtest}"
            );
        }
    }

    // Segmentation and the customer view.
    let (ok, seg) = retain_json(&["segment", "--dir", s(&ws), "--json"]);
    assert!(ok, "{seg}");
    let clusters = seg["clusters"].as_array().unwrap();
    assert!((4..=12).contains(&clusters.len()));
    for c in clusters {
        for key in ["name_zh", "name_en", "size", "churn_rate"] {
            assert!(!c[key].is_null(), "{key}: {c}");
        }
    }
    for key in ["rfm_group", "value_tier", "lifecycle_stage"] {
        assert!(
            seg[key]
                .as_object()
                .unwrap()
                .values()
                .any(|v| v.as_u64().unwrap() > 0),
            "{key}"
        );
    }
    let (ok, customer) = retain_json(&["customer", "100000001", "--dir", s(&ws), "--json"]);
    assert!(ok, "{customer}");
    for key in [
        "profile",
        "usage",
        "events",
        "warnings",
        "churn",
        "segments",
        "tags",
        "value",
        "contacts",
        "recommendations",
    ] {
        assert!(customer.get(key).is_some(), "{key}");
    }
    assert!(seg["tags"]["enterprise_member"].as_u64().unwrap() > 0);
    let target = dir.path().join("target.csv");
    let (ok, picked) = retain_json(&[
        "target",
        "--dir",
        s(&ws),
        "--tags",
        "enterprise_member and not family_account",
        "--out",
        s(&target),
        "--json",
    ]);
    assert!(ok, "{picked}");
    let rows = std::fs::read_to_string(&target).unwrap().lines().count() as u64;
    assert_eq!(rows, 1 + picked["count"].as_u64().unwrap());
    let out = retain(&["customer", "42", "--dir", s(&ws), "--json"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("subscriber 42 is not in this workspace")
    );

    // Point-in-time features and a labelled training set.
    let train = dir.path().join("train.parquet");
    let (ok, t) = retain_json(&[
        "features",
        "--dir",
        s(&ws),
        "--training",
        "--out",
        s(&train),
        "--json",
    ]);
    assert!(ok, "{t}");
    assert!(t["rows"].as_u64().unwrap() > 1000 && train.exists());
    assert_eq!(t["features"], 55);

    // The demo computed the features once; matching read them rather than the tables.
    assert_eq!(json["features"]["as_of"], json["matching"]["as_of"]);
    assert_eq!(
        json["matching"]["features"], "stored",
        "{}",
        json["matching"]
    );
    // The snapshot scoring and matching read: written again, it is read until a table changes.
    let (ok, stored) = retain_json(&["features", "--dir", s(&ws), "--json"]);
    assert!(ok, "{stored}");
    assert_eq!(stored["stored"], true);
    assert_eq!(stored["features"], 55);
    assert!(Path::new(stored["file"].as_str().unwrap()).exists());

    // The churn model: train on the snapshots, then score everyone.
    {
        assert_eq!(json["model"]["score"]["features"], "stored");
        let (ok, model) = retain_json(&["train", "--dir", s(&ws), "--json"]);
        assert!(ok, "{model}");
        for key in [
            "auc",
            "pr_auc",
            "top_decile_lift",
            "train_seconds",
            "rows_train",
            "rows_test",
            "reason_top1_agreement",
        ] {
            assert!(model[key].is_number(), "{key}: {model}");
        }
        // 1,500 subscribers give one small training snapshot: only the shape is checked here;
        // model quality is tested in retain-model.
        assert!(
            (0.0..=1.0).contains(&model["auc"].as_f64().unwrap()),
            "{model}"
        );
        let (ok, scored) = retain_json(&["score", "--dir", s(&ws), "--json"]);
        assert!(ok, "{scored}");
        assert!(scored["scored"].as_u64().unwrap() > 1000);
        assert_eq!(scored["features"], "stored", "{scored}");
        // Scores from the snapshot are the scores from the tables, to the last digit.
        let file = scored["scores_file"].as_str().unwrap().to_owned();
        let from_snapshot = std::fs::read_to_string(&file).unwrap();
        std::fs::remove_dir_all(ws.join("features")).unwrap();
        let (ok, again) = retain_json(&["score", "--dir", s(&ws), "--json"]);
        assert!(ok, "{again}");
        assert_eq!(again["features"], "computed", "{again}");
        assert!(
            std::fs::read_to_string(&file).unwrap() == from_snapshot,
            "scores differ between stored and computed features"
        );
        let (ok, _) = retain_json(&["features", "--dir", s(&ws), "--json"]);
        assert!(ok);
        // The customer view and lifetime values read the scores.
        let (ok, customer) = retain_json(&["customer", "100000001", "--dir", s(&ws), "--json"]);
        assert!(ok);
        if customer["profile"]["status"] != "cancelled" {
            assert_eq!(
                customer["churn"]["available"], true,
                "{}",
                customer["churn"]
            );
            assert!(customer["churn"]["probability"].is_number());
        }
        let (ok, seg) = retain_json(&["segment", "--dir", s(&ws), "--json"]);
        assert!(ok);
        assert_eq!(seg["value_source"], "model");
    }

    // Offer matching: the interface, the verifier, the simulation against the truth.
    assert_eq!(
        json["matching"]["constraint_violations"], 0,
        "{}",
        json["matching"]
    );
    let (ok, matched) = retain_json(&["match", "--dir", s(&ws), "--budget", "800", "--json"]);
    assert!(ok, "{matched}");
    assert_eq!(matched["features"], "stored", "{matched}");
    assert_eq!(matched["constraint_violations"], 0, "{matched}");
    assert!(matched["assigned"].as_u64().unwrap() > 0, "{matched}");
    assert!(matched["cost"].as_f64().unwrap() <= 800.0);
    for key in ["retain", "random", "max_discount"] {
        assert!(
            matched["simulated_saved_value"][key].is_number(),
            "{key}: {matched}"
        );
    }
    assert!(matched["uplift"]["qini"].is_number());
    let assignment = std::fs::read_to_string(matched["assignment_file"].as_str().unwrap()).unwrap();
    let first: i64 = assignment
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (ok, decision) = retain_json(&[
        "decide",
        &first.to_string(),
        "--dir",
        s(&ws),
        "--at",
        "2026-11-02T10:00",
        "--json",
    ]);
    assert!(ok, "{decision}");
    assert_eq!(decision["at_risk"], true, "{decision}");
    assert!(
        !decision["offers"].as_array().unwrap().is_empty(),
        "{decision}"
    );
    let (ok, customer) = retain_json(&["customer", &first.to_string(), "--dir", s(&ws), "--json"]);
    assert!(ok);
    assert_eq!(
        customer["recommendations"]["available"], true,
        "{}",
        customer["recommendations"]
    );
    let (ok, offers) = retain_json(&["offers", "--dir", s(&ws), "--json"]);
    assert!(ok);
    assert_eq!(offers["offers"].as_array().unwrap().len(), 16);
    let out = retain(&[
        "match",
        "--dir",
        s(&ws),
        "--budget",
        "800",
        "--offer",
        "NO-SUCH",
        "--json",
    ]);
    assert!(!out.status.success());

    let (ok, status) = retain_json(&["status", "--dir", s(&ws), "--json"]);
    assert!(ok);
    let kinds: Vec<&str> = status["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    // The demo run started first; its ingest runs follow it.
    assert_eq!(
        kinds.iter().filter(|k| **k == "demo").count(),
        1,
        "{kinds:?}"
    );
    assert!(kinds.contains(&"ingest"));
    assert!(
        status["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "succeeded")
    );
    // Offer eligibility reads tags; a broken library names the file, line and offer.
    std::fs::write(
        ws.join("offers.toml"),
        "[[offer]]\nid = \"EXPIRY-CALL\"\nname_zh = \"到期提醒\"\nname_en = \"Expiry call\"\nkind = \"contract_renewal\"\ncost = { fixed = 5 }\neligibility = \"tag('contract_expiring')\"\nreasons = [\"contract_expiry\"]\nchannels = [\"outbound_call\"]\n",
    )
    .unwrap();
    let (ok, matched) = retain_json(&["match", "--dir", s(&ws), "--budget", "800", "--json"]);
    assert!(ok, "{matched}");
    assert_eq!(matched["offers"], 1);
    assert_eq!(matched["constraint_violations"], 0);
    std::fs::write(
        ws.join("offers.toml"),
        "[[offer]]\nid = \"X\"\nkind = \"gift\"\n",
    )
    .unwrap();
    let out = retain(&["match", "--dir", s(&ws), "--budget", "800", "--json"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("offers.toml:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(ws.join("offers.toml")).unwrap();
}

#[test]
fn synth_is_deterministic_from_its_seed() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    for out in [&a, &b] {
        let (ok, json) = retain_json(&[
            "synth",
            "--subscribers",
            "700",
            "--months",
            "6",
            "--seed",
            "3",
            "--out",
            s(out),
            "--json",
        ]);
        assert!(ok);
        assert_eq!(json["summary"]["counts"]["subscribers"], 700);
    }
    for file in [
        "subscribers.csv",
        "usage_monthly.csv",
        "usage_weekly.csv",
        "events.csv",
        "campaign_history.csv",
        "truth/churn.csv",
    ] {
        assert_eq!(
            std::fs::read(a.join(file)).unwrap(),
            std::fs::read(b.join(file)).unwrap(),
            "{file}"
        );
    }
}

#[test]
fn ingest_json_reports_reconciled_counts_and_the_quarantine_file() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let (ok, plans) = retain_json(&[
        "ingest",
        "--dir",
        s(&ws),
        "--table",
        "plans",
        "--json",
        s(&fixture("plans.csv")),
    ]);
    assert!(ok, "{plans}");
    assert_eq!(plans["read"], 3);
    let (ok, json) = retain_json(&[
        "ingest",
        "--dir",
        s(&ws),
        "--table",
        "subscribers",
        "--json",
        s(&fixture("subscribers_bad.csv")),
    ]);
    assert!(ok, "{json}");
    assert_eq!(
        (
            json["read"].as_u64(),
            json["loaded"].as_u64(),
            json["quarantined"].as_u64()
        ),
        (Some(10), Some(2), Some(8))
    );
    let quarantine = PathBuf::from(json["quarantine_file"].as_str().unwrap());
    let text = std::fs::read_to_string(quarantine).unwrap();
    assert_eq!(
        text.lines().count(),
        1 + 8,
        "header + one line per rejected row"
    );
    assert!(json["already_loaded"].as_array().unwrap().is_empty());

    // The same file again: the table does not change, and retain says it saw the file before.
    let (ok, again) = retain_json(&[
        "ingest",
        "--dir",
        s(&ws),
        "--table",
        "subscribers",
        "--json",
        s(&fixture("subscribers_bad.csv")),
    ]);
    assert!(ok);
    assert_eq!(again["table_rows"], 2);
    assert_eq!(again["already_loaded"].as_array().unwrap().len(), 1);
}

#[test]
fn ingest_failures_are_json_with_a_location_and_a_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    retain_json(&[
        "ingest",
        "--dir",
        s(&ws),
        "--table",
        "plans",
        "--json",
        s(&fixture("plans.csv")),
    ]);
    let (ok, json) = retain_json(&[
        "ingest",
        "--dir",
        s(&ws),
        "--table",
        "subscribers",
        "--json",
        s(&fixture("subscribers_missing_column.csv")),
    ]);
    assert!(!ok);
    assert_eq!(json["status"], "failed");
    assert_eq!(json["line"], 1);
    assert_eq!(json["column"], "msisdn");

    let (ok, json) = retain_json(&[
        "ingest",
        "--dir",
        s(&ws),
        "--table",
        "subscribers",
        "--max-bad-ratio",
        "0.1",
        "--json",
        s(&fixture("subscribers_bad.csv")),
    ]);
    assert!(!ok);
    assert_eq!(json["status"], "aborted");
    assert_eq!(
        (
            json["read"].as_u64(),
            json["loaded"].as_u64(),
            json["quarantined"].as_u64()
        ),
        (Some(10), Some(0), Some(8))
    );
    assert!(!ws.join("tables/subscribers/data.parquet").exists());

    let out = retain(&[
        "ingest",
        "--dir",
        s(&ws),
        "--table",
        "nope",
        s(&fixture("plans.csv")),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown table \"nope\""));
}

#[test]
fn a_broken_rules_file_names_the_rule_and_position_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let (ok, _) = retain_json(&[
        "demo",
        "--subscribers",
        "300",
        "--months",
        "6",
        "--dir",
        s(&ws),
        "--json",
    ]);
    assert!(ok);
    std::fs::remove_dir_all(ws.join("warnings")).unwrap();
    let rules = dir.path().join("rules.toml");
    let text = retain_warn_default().replace(
        "count(forward_to_competitor, 3m) >= 1",
        "count(forward_to_competitor, 3m) >=",
    );
    std::fs::write(&rules, &text).unwrap();
    let out = retain(&["warn", "--dir", s(&ws), "--rules", s(&rules)]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .position(|l| l.contains("count(forward_to_competitor, 3m) >=\""))
        .unwrap()
        + 1;
    assert!(stderr.contains(&format!("rules.toml:{line}:")), "{stderr}");
    assert!(stderr.contains("rule EW011"), "{stderr}");
    assert!(!ws.join("warnings").exists(), "nothing written");

    // The engine's options come from DATAFUSION_* variables; a bad one stops the step.
    let warn = |value: &str| {
        Command::new(env!("CARGO_BIN_EXE_retain"))
            .args(["warn", "--dir", s(&ws)])
            .env("RETAIN_LOG", "warn")
            .env("DATAFUSION_EXECUTION_PARQUET_PUSHDOWN_FILTERS", value)
            .output()
            .expect("the retain binary runs")
    };
    let out = warn("sometimes");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DATAFUSION_"), "{stderr}");
    assert!(!ws.join("warnings").exists(), "nothing written");
    let out = warn("true");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ws.join("warnings").exists());
}

fn retain_warn_default() -> String {
    std::fs::read_to_string(manifest_dir().join("../retain-warn/rules/default.toml")).unwrap()
}

/// `retain user add ARGS --password-stdin` with `password` on standard input.
fn user_add(args: &[&str], password: &str) -> (bool, serde_json::Value) {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_retain"))
        .args(["user", "add"])
        .args(args)
        .arg("--password-stdin")
        .env("RETAIN_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    (
        out.status.success(),
        serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null),
    )
}

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

fn id_of(json: &serde_json::Value) -> String {
    json["id"].as_i64().expect("an id").to_string()
}

#[test]
fn the_campaign_loop_runs_from_the_command_line_and_launches_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("demo");
    let (ok, demo) = retain_json(&[
        "demo",
        "--subscribers",
        "2000",
        "--months",
        "12",
        "--seed",
        "3",
        "--dir",
        s(&ws),
        "--json",
    ]);
    assert!(ok, "{demo}");
    // The demo ran the loop on the bundled weekly high-end template.
    assert!(
        demo["campaign"]["id"].as_i64().is_some(),
        "{}",
        demo["campaign"]
    );
    let w = s(&ws);
    let (ok, templates) = retain_json(&["campaign", "templates", "--dir", w, "--json"]);
    assert!(ok);
    assert!(
        templates["templates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "weekly-high-end"),
        "{templates}"
    );
    let (ok, created) = retain_json(&[
        "campaign",
        "create",
        "--dir",
        w,
        "--template",
        "level-flow",
        "--budget",
        "30000",
        "--json",
    ]);
    assert!(ok, "{created}");
    let id = id_of(&created);
    assert_eq!(created["approval_level"], 2);
    let (ok, r) = retain_json(&["campaign", "rehearse", "--dir", w, "--id", &id, "--json"]);
    assert!(ok, "{r}");
    assert!(r["projected"]["cost"].as_f64().unwrap() > 0.0, "{r}");
    // A level-1 approver may not sign a level-2 budget; the refusal is audited.
    let (ok, li) = user_add(
        &[
            "--dir",
            w,
            "--name",
            "li",
            "--role",
            "approver",
            "--approval-level",
            "1",
            "--json",
        ],
        "correct horse",
    );
    assert!(ok, "{li}");
    assert!(li.get("password_hash").is_none(), "{li}");
    let (ok, _) = user_add(
        &["--dir", w, "--name", "li", "--role", "approver"],
        "correct horse",
    );
    assert!(!ok, "a name is taken once");
    let (ok, _) = user_add(&["--dir", w, "--name", "wu", "--role", "approver"], "short");
    assert!(!ok, "passwords have at least 8 characters");
    // A branch head is a manager scoped to a branch; a manager needs one scope or the other.
    let (ok, zhao) = user_add(
        &[
            "--dir",
            w,
            "--name",
            "zhao",
            "--role",
            "manager",
            "--branch-id",
            "NJ04",
            "--json",
        ],
        "correct horse",
    );
    assert!(ok && zhao["branch_id"] == "NJ04", "{zhao}");
    let (ok, _) = user_add(
        &["--dir", w, "--name", "qian", "--role", "manager"],
        "correct horse",
    );
    assert!(!ok, "a manager without a scope is refused");
    let (ok, _) = user_add(
        &[
            "--dir",
            w,
            "--name",
            "sun",
            "--role",
            "analyst",
            "--branch-id",
            "NJ04",
        ],
        "correct horse",
    );
    assert!(!ok, "only managers are scoped to a branch");
    let out = retain(&["campaign", "approve", "--dir", w, "--id", &id, "--as", "li"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("level 2"));
    let out = retain(&[
        "campaign", "approve", "--dir", w, "--id", &id, "--as", "nobody",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user"));
    let (_, shown) = retain_json(&["campaign", "show", "--dir", w, "--id", &id, "--json"]);
    let refused: Vec<&serde_json::Value> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "approve_refused")
        .collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["actor"], "li");
    let (ok, a) = retain_json(&["campaign", "approve", "--dir", w, "--id", &id, "--json"]);
    assert!(ok && a["status"] == "approved", "{a}");
    let (ok, first) = retain_json(&["campaign", "launch", "--dir", w, "--id", &id, "--json"]);
    assert!(ok, "{first}");
    let orders = first["work_orders"].as_u64().unwrap();
    assert!(orders > 0);
    let (ok, again) = retain_json(&["campaign", "launch", "--dir", w, "--id", &id, "--json"]);
    assert!(ok && again["created"] == false, "{again}");
    assert_eq!(again["work_orders"].as_u64().unwrap(), orders);
    let (ok, sim) = retain_json(&[
        "campaign",
        "callbacks",
        "--dir",
        w,
        "--id",
        &id,
        "--simulate",
        "--json",
    ]);
    assert!(ok, "{sim}");
    let (ok, e) = retain_json(&["campaign", "evaluate", "--dir", w, "--id", &id, "--json"]);
    assert!(ok, "{e}");
    for key in [
        "treated_retention",
        "control_retention",
        "uplift",
        "uplift_ci_low",
        "uplift_ci_high",
        "roi",
    ] {
        assert!(e[key].is_number(), "{key}: {e}");
    }
    let (lo, up, hi) = (
        e["uplift_ci_low"].as_f64().unwrap(),
        e["uplift"].as_f64().unwrap(),
        e["uplift_ci_high"].as_f64().unwrap(),
    );
    assert!(lo <= up && up <= hi, "{e}");

    // A launch killed inside its transaction leaves nothing; the next one makes one full set.
    let (ok, created) = retain_json(&[
        "campaign",
        "create",
        "--dir",
        w,
        "--template",
        "level-flow",
        "--budget",
        "30000",
        "--json",
    ]);
    assert!(ok, "{created}");
    let id = id_of(&created);
    assert!(
        retain(&["campaign", "rehearse", "--dir", w, "--id", &id])
            .status
            .success()
    );
    assert!(
        retain(&["campaign", "approve", "--dir", w, "--id", &id])
            .status
            .success()
    );
    let crashed = Command::new(env!("CARGO_BIN_EXE_retain"))
        .args(["campaign", "launch", "--dir", w, "--id", &id])
        .env("RETAIN_LOG", "warn")
        .env("RETAIN_FAULT_ABORT_LAUNCH_AFTER", "2")
        .output()
        .unwrap();
    assert!(!crashed.status.success(), "the launch was killed");
    let (_, shown) = retain_json(&["campaign", "show", "--dir", w, "--id", &id, "--json"]);
    assert_eq!(shown["campaign"]["status"], "approved", "{shown}");
    assert_eq!(
        (shown["work_orders"].as_u64(), shown["members"].as_u64()),
        (Some(0), Some(0))
    );
    let (ok, launched) = retain_json(&["campaign", "launch", "--dir", w, "--id", &id, "--json"]);
    assert!(ok && launched["created"] == true, "{launched}");
    let (ok, twice) = retain_json(&["campaign", "launch", "--dir", w, "--id", &id, "--json"]);
    assert!(ok && twice["created"] == false, "{twice}");
    let (_, shown) = retain_json(&["campaign", "show", "--dir", w, "--id", &id, "--json"]);
    assert!(shown["treated"].as_u64().unwrap() > 2, "{shown}");
    assert_eq!(
        shown["work_orders"], shown["treated"],
        "one work order per treated member"
    );
    assert_eq!(shown["work_orders"], launched["work_orders"]);
    assert_eq!(shown["work_orders"], twice["work_orders"]);
    // At the counter, the decision shows the subscriber's open work orders, number masked.
    let file = launched["files"][0].as_str().unwrap();
    let text = std::fs::read_to_string(file).unwrap();
    let row: Vec<&str> = text.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(
        text.lines().next().unwrap().split(',').nth(5),
        Some("subscriber_id")
    );
    let (ok, decision) =
        retain_json(&["decide", row[5], "--dir", w, "--channel", "store", "--json"]);
    assert!(ok, "{decision}");
    let open = decision["work_orders"].as_array().unwrap();
    assert!(
        open.iter()
            .any(|o| o["campaign_id"].as_i64().map(|c| c.to_string()) == Some(id.clone())),
        "{decision}"
    );
    assert!(open.iter().all(|o| o["details"].get("msisdn").is_none()));
    let (ok, list) = retain_json(&["campaign", "list", "--dir", w, "--json"]);
    assert!(ok);
    assert_eq!(list["count"], 3);
}

/// The purge delay and the transparent huge pages setting mimalloc reports using at start-up,
/// from its verbose option listing, in the last process that started; `preset` sets both.
fn allocator_in_use(args: &[&str], preset: Option<(&str, &str)>) -> (String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_retain"));
    command
        .args(args)
        .env("RETAIN_LOG", "warn")
        .env("MIMALLOC_VERBOSE", "1");
    match preset {
        Some((delay, thp)) => command
            .env("MIMALLOC_PURGE_DELAY", delay)
            .env("MIMALLOC_ALLOW_THP", thp),
        None => command
            .env_remove("MIMALLOC_PURGE_DELAY")
            .env_remove("MIMALLOC_ALLOW_THP"),
    };
    let out = command.output().expect("the retain binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let option = |name: &str| {
        let prefix = format!("option '{name}': ");
        stderr
            .lines()
            .rev()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .expect("mimalloc lists its options when verbose")
            .trim()
            .to_owned()
    };
    (option("purge_delay"), option("allow_thp"))
}

#[test]
fn batch_steps_keep_freed_memory_in_small_pages_and_other_commands_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("synth");
    let synth = [
        "synth",
        "--subscribers",
        "50",
        "--months",
        "6",
        "--out",
        s(&out),
    ];
    let tuned = ("-1".to_owned(), "0".to_owned());
    assert_eq!(allocator_in_use(&synth, None), tuned);
    // Options the operator chose are kept.
    assert_eq!(
        allocator_in_use(&synth, Some(("250", "1"))),
        ("250".to_owned(), "1".to_owned())
    );
    // Quick commands and the server keep mimalloc's defaults.
    let (delay, thp) = allocator_in_use(&["schema"], None);
    assert_ne!(delay, "-1");
    assert_eq!(thp, "1");
}

/// A table too small to cut, where no feature can be split: `--json` still prints one object
/// (LightGBM, which retain grew its trees with before, warned on standard output there).
#[test]
fn model_eval_json_is_one_object_even_where_no_tree_can_split() {
    use std::fmt::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("tiny.csv");
    let mut csv = String::from("id,a,b,churn\n");
    for i in 0..60 {
        let a = f64::from(i * 37 % 60) / 60.0;
        let level = if i % 2 == 0 { "x" } else { "y" };
        writeln!(csv, "{i},{a:.3},{level},{}", u8::from(a > 0.6)).unwrap();
    }
    std::fs::write(&table, csv).unwrap();
    let (ok, report) = retain_json(&[
        "model",
        "eval",
        "--train",
        s(&table),
        "--split",
        "0.3",
        "--target",
        "churn",
        "--json",
    ]);
    assert!(ok, "{report}");
    let rows = report["rows_train"].as_u64().unwrap() + report["rows_test"].as_u64().unwrap();
    assert_eq!(rows, 60);
    assert!(report["auc"].as_f64().is_some(), "{report}");
}

//! Synthesis and ingest from the command line: determinism, reconciled counts, and failures
//! that name the place in the file; rules files checked before anything is written.

use crate::common::*;

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

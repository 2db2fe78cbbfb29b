//! Rules re-tuned per tenure cohort from the command line: a cohort's rules apply to it alone;
//! a proposal is a diff that is accepted (and becomes the rules) or rejected (and changes
//! nothing), and is refused over rules that changed since it was made.

use crate::common::*;

fn demo(dir: &Path, seed: &str) -> PathBuf {
    let ws = dir.join(format!("ws{seed}"));
    let (ok, demo) = retain_json(&[
        "demo",
        "--subscribers",
        "2000",
        "--months",
        "13",
        "--seed",
        seed,
        "--dir",
        s(&ws),
        "--json",
    ]);
    assert!(ok, "{demo}");
    ws
}

fn warn(ws: &Path) -> serde_json::Value {
    let (ok, w) = retain_json(&["warn", "--dir", s(ws), "--json"]);
    assert!(ok, "{w}");
    w
}

#[test]
fn a_cohorts_threshold_and_points_apply_to_that_cohort_alone() {
    let dir = tempfile::tempdir().unwrap();
    let ws = demo(dir.path(), "4");
    let before = warn(&ws);
    std::fs::write(
        ws.join("rules.toml"),
        format!(
            "{}\n[cohorts.lt6m]\nthreshold = 100\n",
            retain_warn_default()
        ),
    )
    .unwrap();
    let after = warn(&ws);
    for level in ["red", "yellow", "blue"] {
        assert_eq!(after["cohorts"]["lt6m"][level], 0, "{after}");
        for other in ["6to12m", "gt12m"] {
            assert_eq!(
                after["cohorts"][other][level], before["cohorts"][other][level],
                "{other} {level}"
            );
        }
    }
    assert!(
        before["cohorts"]["lt6m"]
            .as_object()
            .unwrap()
            .values()
            .any(|v| v.as_u64() > Some(0)),
        "the test needs new subscribers with warnings: {before}"
    );
}

#[test]
fn a_proposal_is_a_diff_that_is_accepted_or_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let ws = demo(dir.path(), "17");
    let w = s(&ws);
    let proposal_file = ws.join("rules-proposal.toml");
    assert!(
        !retain(&["warn", "--dir", w, "--accept-proposal"])
            .status
            .success()
    );

    let (ok, p) = retain_json(&["warn", "--dir", w, "--propose", "--json"]);
    assert!(ok, "{p}");
    let cohorts = p["cohorts"].as_array().unwrap();
    assert_eq!(cohorts.len(), 3, "{p}");
    assert!(p["target_precision"].as_f64().unwrap() > 0.0, "{p}");
    for c in cohorts {
        assert!(c["threshold_after"].as_i64().unwrap() >= 1, "{c}");
        for change in c["points"].as_array().unwrap() {
            assert!(change["hits"].as_u64().unwrap() >= 30, "{change}");
            assert_ne!(change["before"], change["after"], "{change}");
        }
    }
    let proposed = std::fs::read_to_string(&proposal_file).unwrap();
    assert!(proposed.contains("retain warn --propose"), "{proposed}");
    assert!(
        !ws.join("rules.toml").exists(),
        "proposing changes no rules"
    );

    // Rejected: gone, and the rules are the defaults still.
    assert!(
        retain(&["warn", "--dir", w, "--reject-proposal"])
            .status
            .success()
    );
    assert!(!proposal_file.exists());
    assert!(!ws.join("rules.toml").exists());

    // Proposed again and accepted: the proposal is the rules, and warnings use it.
    let (ok, again) = retain_json(&["warn", "--dir", w, "--propose", "--json"]);
    assert!(ok, "{again}");
    assert_eq!(
        again["cohorts"], p["cohorts"],
        "the same data proposes the same"
    );
    let (ok, accepted) = retain_json(&["warn", "--dir", w, "--accept-proposal", "--json"]);
    assert!(ok, "{accepted}");
    assert_eq!(
        std::fs::read_to_string(ws.join("rules.toml")).unwrap(),
        proposed
    );
    assert!(!proposal_file.exists());
    let listed = warn(&ws);
    let expected: u64 = ["lt6m", "6to12m", "gt12m"]
        .iter()
        .flat_map(|c| ["red", "yellow", "blue"].map(|l| listed["cohorts"][c][l].as_u64().unwrap()))
        .sum();
    assert_eq!(
        expected,
        listed["red"].as_u64().unwrap()
            + listed["yellow"].as_u64().unwrap()
            + listed["blue"].as_u64().unwrap()
    );

    // A proposal made over rules that then changed is refused.
    assert!(retain(&["warn", "--dir", w, "--propose"]).status.success());
    let mut edited = std::fs::read_to_string(ws.join("rules.toml")).unwrap();
    edited = edited.replacen("threshold = 10", "threshold = 11", 1);
    std::fs::write(ws.join("rules.toml"), &edited).unwrap();
    let out = retain(&["warn", "--dir", w, "--accept-proposal"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("propose again"));
    assert_eq!(
        std::fs::read_to_string(ws.join("rules.toml")).unwrap(),
        edited
    );
}

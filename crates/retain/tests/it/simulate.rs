//! `retain simulate`: the closed loop on a synthetic operator, its report's shape, what the
//! scheduler recorded on the simulated clock, what the offers learned, and bad requests.

use crate::common::*;

const POLICIES: [&str; 4] = ["learning", "fixed_priors", "random", "oracle"];

fn simulate(dir: &std::path::Path, seed: u64, months: u32) -> serde_json::Value {
    let (ok, r) = retain_json(&[
        "simulate",
        "--subscribers",
        "3000",
        "--months",
        &months.to_string(),
        "--seed",
        &seed.to_string(),
        "--dir",
        s(dir),
        "--json",
    ]);
    assert!(ok, "{r}");
    r
}

fn total(report: &serde_json::Value, policy: &str) -> f64 {
    report["months"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["saved_value"][policy].as_f64().unwrap())
        .sum()
}

#[test]
fn the_loop_runs_month_by_month_on_the_scheduler_and_learns() {
    for seed in [3, 11] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sim");
        let r = simulate(&dir, seed, 3);
        let months = r["months"].as_array().unwrap();
        assert_eq!(months.len(), 3, "seed {seed}");
        for (i, m) in months.iter().enumerate() {
            assert_eq!(m["month"], i + 1);
            assert!(m["listed"].as_u64().unwrap() > 0);
            for p in POLICIES {
                let v = m["saved_value"][p].as_f64().unwrap();
                assert!(v.is_finite() && v >= 0.0, "seed {seed} month {i} {p}: {v}");
                assert!(m["spent"][p].as_f64().unwrap() <= r["budget"].as_f64().unwrap());
            }
        }
        // Knowing every leaver's cause and the true effects keeps the most.
        assert!(
            total(&r, "oracle") > total(&r, "random"),
            "seed {seed}: {}",
            r["total_saved_value"]
        );
        // The outcomes of the first months' contacts were read before the last match.
        assert_eq!(months[0]["outcomes_learned"], 0);
        assert!(months[2]["outcomes_learned"].as_u64().unwrap() > 0);
        let learning: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("offers/learning.json")).unwrap())
                .unwrap();
        assert!(!learning["treated"].as_object().unwrap().is_empty());
        assert!(!r["learned"].as_array().unwrap().is_empty());
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("reports/simulation.json")).unwrap())
                .unwrap();
        assert_eq!(saved["months"], r["months"]);

        // Every month's three jobs ran on the simulated clock and were recorded.
        let (ok, runs) = retain_json(&["schedule", "runs", "--dir", s(&dir), "--json"]);
        assert!(ok, "{runs}");
        let runs = runs["runs"].as_array().unwrap();
        for job in ["outcomes", "monthly-warning", "monthly-match"] {
            let done: Vec<_> = runs
                .iter()
                .filter(|x| x["job"] == job && x["status"] == "succeeded")
                .collect();
            assert_eq!(done.len(), 3, "seed {seed} {job}: {runs:?}");
        }

        if seed == 3 {
            // The same seed simulates the same months.
            let again = simulate(&tmp.path().join("again"), seed, 3);
            assert_eq!(again["months"], r["months"]);
        }
    }
}

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let busy = tmp.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("keep.txt"), "mine").unwrap();
    for (args, says) in [
        (vec!["--months", "0"], "--months must be"),
        (vec!["--months", "1000"], "--months must be"),
        (vec!["--subscribers", "10"], "--subscribers must be"),
        (vec!["--list-share", "0"], "--list-share must be"),
        (vec!["--budget=-5"], "--budget must be"),
    ] {
        let dir = tmp.path().join("fresh");
        let mut all = vec!["simulate", "--dir", s(&dir)];
        all.extend(args);
        let out = retain(&all);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{err}");
        assert!(
            !dir.exists(),
            "a refused simulation wrote {}",
            dir.display()
        );
    }
    let out = retain(&["simulate", "--subscribers", "3000", "--dir", s(&busy)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not empty"));
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);
}

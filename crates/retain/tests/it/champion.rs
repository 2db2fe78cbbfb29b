//! Champion and challenger: every training kept, promotion by the rule, scoring with the
//! champion, drift against its test month, rollbacks.

use crate::common::*;

/// A small synthetic operator with its first model (trained and promoted by the demo).
fn demo(dir: &Path, seed: u64) -> PathBuf {
    let ws = dir.join(format!("demo-{seed}"));
    let json = demo_months_12(&ws, 3000, seed);
    assert_eq!(json["model"]["train"]["promotion"]["action"], "promoted");
    assert_eq!(
        json["model"]["train"]["promotion"]["reason"],
        "the first model"
    );
    ws
}

fn champion(ws: &Path) -> u64 {
    let (ok, listing) = retain_json(&["model", "list", "--dir", s(ws), "--json"]);
    assert!(ok, "{listing}");
    listing["champion"].as_u64().unwrap()
}

/// Scores everyone and checks that every line of the scores file names the champion's version.
fn score_with(ws: &Path, version: u64) -> serde_json::Value {
    let (ok, scored) = retain_json(&["score", "--dir", s(ws), "--json"]);
    assert!(ok, "{scored}");
    assert_eq!(scored["model_version"], version, "{scored}");
    let file = std::fs::read_to_string(scored["scores_file"].as_str().unwrap()).unwrap();
    let mut lines = file.lines();
    let column = lines
        .next()
        .unwrap()
        .split(',')
        .position(|c| c == "model_version")
        .unwrap();
    let version = version.to_string();
    assert!(
        lines.all(|l| l.split(',').nth(column) == Some(version.as_str())),
        "a score from another version than v{version}"
    );
    scored
}

/// The rule of docs/decisions.md, recomputed from the reported standings.
fn beats(challenger: &serde_json::Value, champion: &serde_json::Value) -> bool {
    let measures = ["empc", "auc", "top_decile_lift"];
    let (new, old) = (
        measures.map(|m| challenger[m].as_f64().unwrap()),
        measures.map(|m| champion[m].as_f64().unwrap()),
    );
    new.iter().zip(&old).all(|(n, o)| n >= o) && new.iter().zip(&old).any(|(n, o)| n > o)
}

/// Trains a challenger and checks its decision against the rule; returns the champion after.
fn train_challenger(ws: &Path, extra: &[&str], champion_before: u64) -> serde_json::Value {
    let mut args = vec!["train", "--dir", s(ws), "--json"];
    args.extend_from_slice(extra);
    let (ok, model) = retain_json(&args);
    assert!(ok, "{model}");
    let promotion = &model["promotion"];
    assert_eq!(promotion["version"], model["version"]);
    assert_eq!(promotion["previous"], champion_before);
    assert_eq!(promotion["challenger"]["version"], model["version"]);
    assert_eq!(promotion["challenger"]["auc"], model["auc"], "{promotion}");
    assert_eq!(promotion["incumbent"]["version"], champion_before);
    let promoted = beats(&promotion["challenger"], &promotion["incumbent"]);
    assert_eq!(
        promotion["action"],
        if promoted { "promoted" } else { "not_promoted" },
        "{promotion}"
    );
    let expected = if promoted {
        model["version"].as_u64().unwrap()
    } else {
        champion_before
    };
    assert_eq!(promotion["champion"], expected);
    assert_eq!(champion(ws), expected);
    model
}

#[test]
fn challengers_are_kept_promoted_by_the_rule_and_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let ws = demo(dir.path(), 7);
    assert_eq!(champion(&ws), 1);

    // The same data and seed grow the same model: a tie keeps the champion.
    let same = train_challenger(&ws, &[], 1);
    assert_eq!(same["version"], 2);
    assert_eq!(same["promotion"]["action"], "not_promoted");
    let reason = same["promotion"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("no better than the champion v1"),
        "{reason}"
    );
    // A model of a tenth of the subscribers ranks the test month worse than the champion.
    let small = train_challenger(&ws, &["--max-subscribers", "300"], 1);
    assert_eq!(small["version"], 3);
    assert_eq!(small["promotion"]["action"], "not_promoted");
    for v in ["v1", "v2", "v3"] {
        assert!(ws.join("models").join(v).join("model.txt").exists(), "{v}");
    }

    // Scoring keeps the champion, and says how far today's population is from its test month.
    let scored = score_with(&ws, 1);
    let drift = &scored["drift"];
    assert_eq!(
        drift["reference"], same["promotion"]["test_month"],
        "{drift}"
    );
    for level in [&drift["level"], &drift["score"]["level"]] {
        assert!(["ok", "watch", "alert"].contains(&level.as_str().unwrap()));
    }
    assert!(drift["score"]["psi"].as_f64().unwrap() >= 0.0);
    assert_eq!(drift["features"].as_array().unwrap().len(), 10, "{drift}");

    let (ok, listing) = retain_json(&["model", "list", "--dir", s(&ws), "--json"]);
    assert!(ok);
    let versions = listing["versions"].as_array().unwrap();
    let marked: Vec<(u64, bool, &str)> = versions
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().unwrap(),
                v["champion"].as_bool().unwrap(),
                v["decision"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        marked,
        [
            (1, true, "promoted"),
            (2, false, "not_promoted"),
            (3, false, "not_promoted")
        ]
    );
    assert_eq!(versions[2]["auc"], small["auc"]);

    // A rollback to any version switches what scores; the default goes back to the one before.
    let (ok, back) = retain_json(&["model", "rollback", "--dir", s(&ws), "--to", "3", "--json"]);
    assert!(ok, "{back}");
    assert_eq!(back["action"], "rolled_back");
    assert_eq!(
        (&back["champion"], &back["previous"]),
        (&3.into(), &1.into())
    );
    score_with(&ws, 3);
    let (ok, back) = retain_json(&["model", "rollback", "--dir", s(&ws), "--json"]);
    assert!(ok, "{back}");
    assert_eq!(back["champion"], 1);
    score_with(&ws, 1);

    // Versions that do not exist, and rolling back past the first champion, are refused.
    let out = retain(&["model", "rollback", "--dir", s(&ws), "--to", "9"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("there is no model v9 to roll back to; the registry holds v1, v2, v3"),
        "{stderr}"
    );
    let out = retain(&["model", "rollback", "--dir", s(&ws)]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no earlier champion"), "{stderr}");
    assert_eq!(champion(&ws), 1);
    let (_, listing) = retain_json(&["model", "list", "--dir", s(&ws), "--json"]);
    let actions: Vec<&str> = listing["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "promoted",
            "not_promoted",
            "not_promoted",
            "rolled_back",
            "rolled_back"
        ]
    );
    // The table a person reads marks the champion.
    let out = retain(&["model", "list", "--dir", s(&ws)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("*v1 ") && text.contains("* champion: v1"),
        "{text}"
    );
}

/// On other seeds of the synthetic operator, whatever the challengers' metrics, the decision
/// follows the rule and the scores come from the champion.
#[test]
fn scores_come_from_the_champion_on_several_seeds() {
    let dir = tempfile::tempdir().unwrap();
    for seed in [11, 23] {
        let ws = demo(dir.path(), seed);
        let small = train_challenger(&ws, &["--max-subscribers", "300"], 1);
        let after_small = small["promotion"]["champion"].as_u64().unwrap();
        let full = train_challenger(&ws, &[], after_small);
        score_with(&ws, full["promotion"]["champion"].as_u64().unwrap());
    }
}

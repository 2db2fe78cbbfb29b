//! The demo end to end: tables, truth, store and reports, reconciled.

use crate::common::*;

#[test]
fn demo_leaves_tables_truth_and_store_and_reconciles() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("demo");
    let json = demo_months_12(&ws, 1500, 7);
    for table in [
        "plans",
        "subscribers",
        "contracts",
        "usage_monthly",
        "usage_weekly",
        "events",
        "campaign_history",
        "groups",
        "group_key_people",
        "group_products",
        "group_visits",
        "cells",
        "network_weekly",
        "calling_circle",
    ] {
        assert!(
            ws.join("tables").join(table).join("data.parquet").exists(),
            "{table}"
        );
    }
    assert!(ws.join("truth/churn.csv").exists());
    assert!(ws.join("truth/offer_effects.csv").exists());
    assert!(ws.join("truth/groups.csv").exists());
    assert!(ws.join("retain.db").exists());
    let tables = json["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 14);
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

    // Group customers: the interface, the files, and managers' results that reconcile with the
    // demo campaign's work orders.
    let (ok, groups) = retain_json(&["groups", "--dir", s(&ws), "--json"]);
    assert!(ok, "{groups}");
    for key in ["groups", "red", "yellow", "blue", "lost", "visits_planned"] {
        assert!(groups[key].is_u64(), "{key}: {groups}");
    }
    assert_eq!(groups["red"], json["groups"]["red"], "{groups}");
    let list = std::fs::read_to_string(groups["list_file"].as_str().unwrap()).unwrap();
    assert_eq!(
        list.lines().count() as u64,
        1 + groups["groups"].as_u64().unwrap() + groups["lost"].as_u64().unwrap()
    );
    let (ok, managers) = retain_json(&["managers", "--dir", s(&ws), "--json"]);
    assert!(ok, "{managers}");
    let listed = managers["managers"].as_array().unwrap();
    assert!(!listed.is_empty(), "{managers}");
    for m in listed {
        for key in [
            "manager_id",
            "retention_rate",
            "saved_value",
            "visits_planned",
            "visits_done",
        ] {
            assert!(!m[key].is_null(), "{key}: {m}");
        }
    }
    let orders: u64 = listed
        .iter()
        .map(|m| m["work_orders"].as_u64().unwrap())
        .sum::<u64>()
        + managers["unassigned_work_orders"].as_u64().unwrap();
    assert_eq!(
        orders,
        json["campaign"]["work_orders"].as_u64().unwrap(),
        "{managers}"
    );
    assert_eq!(orders, json["managers"]["work_orders"].as_u64().unwrap());
    // The demo's simulated callbacks, each counted once: a manager's or nobody's.
    let callbacks: u64 = listed
        .iter()
        .map(|m| m["callbacks"].as_u64().unwrap())
        .sum::<u64>()
        + managers["unassigned_callbacks"].as_u64().unwrap();
    assert_eq!(
        callbacks,
        json["campaign"]["evaluation"]["callbacks"]
            .as_u64()
            .unwrap(),
        "{managers}"
    );

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
    // Arrears cut-offs (非自愿) are counted apart from the defections they are among.
    let inv = &backtest["involuntary"];
    let churners = inv["churners"].as_u64().unwrap();
    assert!(
        churners > 0 && churners < backtest["positives"].as_u64().unwrap(),
        "{inv}"
    );
    let caught = inv["caught"].as_u64().unwrap();
    assert!(caught <= churners, "{inv}");
    let by_level: u64 = ["red", "yellow", "blue"]
        .iter()
        .map(|l| inv["by_level"][l].as_u64().unwrap())
        .sum();
    assert!(by_level <= caught, "{inv}");
    assert_eq!(
        inv["voluntary_caught"].as_u64().unwrap() + caught,
        backtest["potential_churners"]["true_positives"]
            .as_u64()
            .unwrap(),
        "{inv}"
    );

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
    assert_eq!(t["features"], 65);

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
    assert_eq!(stored["features"], 65);
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
        // How the reasons were ranked: by the cause model when enough leavers said why.
        let ranked_by = model["reasons"]["ranked_by"].as_str().unwrap_or_default();
        assert!(
            ["cause_model", "contributions"].contains(&ranked_by),
            "{model}"
        );
        // The test month's churners, arrears cut-offs (非自愿) apart.
        let by_class = &model["churners_by_class"];
        for key in ["voluntary", "involuntary"] {
            let all = by_class[key].as_u64().unwrap();
            let top = by_class[format!("{key}_top_decile")].as_u64().unwrap();
            assert!(top <= all, "{by_class}");
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
    for key in [
        "retain",
        "random",
        "max_discount",
        "oracle",
        "retain_vs_oracle",
    ] {
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
    // The strategy table: every category × stage, each naming offers of the library.
    let cells = offers["strategies"].as_array().unwrap();
    assert_eq!(cells.len(), 16, "{cells:?}");
    assert!(cells.iter().any(|c| {
        c["category"] == "quality"
            && c["stage"] == "retention"
            && c["offers"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!("NETFIX-VISIT"))
    }));
    let offers = offers["offers"].as_array().unwrap();
    assert_eq!(offers.len(), 24);
    assert_eq!(
        offers.iter().filter(|o| o["stage"] == "win_back").count(),
        2,
        "the library's win-back offers are marked as such"
    );
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

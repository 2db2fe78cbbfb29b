//! The network's experience and the calling circle: the demo workspace holds the three tables,
//! `train --without network` trains the same model without them and prints the same keys, and
//! the network rule (EW024) warns of the network-caused leavers before their first complaint,
//! on two seeds.

use std::collections::{BTreeSet, HashMap};

use chrono::{Months, NaiveDate};
use retain_features::FeatureSet;

use crate::common::*;

/// Each network-caused leaver's exit month, from the synthetic truth (`YYYY-MM`).
fn network_leavers(ws: &Path) -> HashMap<i64, NaiveDate> {
    let text = std::fs::read_to_string(ws.join("truth/churn.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (id, outcome, cause, exit) = (
        col("subscriber_id"),
        col("outcome"),
        col("cause"),
        col("exit_month"),
    );
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f[outcome] == "churned" && f[cause] == "network_quality")
        .map(|f| {
            let month = NaiveDate::parse_from_str(&format!("{}-01", f[exit]), "%Y-%m-%d").unwrap();
            (f[id].parse().unwrap(), month)
        })
        .collect()
}

/// (share of network-caused leavers EW024 flags before any complaint, share of everyone it
/// flags, mean days of lead before the first complaint or the exit).
fn network_rule_lead(ws: &Path) -> (f64, f64, f64) {
    let rules = retain_warn::RuleSet::default_rules();
    let rule = rules.rules.iter().find(|r| r.id == "EW024").unwrap();
    let set = FeatureSet::compile(&[("flag", rule.when.as_str())]).unwrap();
    let leavers = network_leavers(ws);
    assert!(
        leavers.len() >= 20,
        "{} network-caused leavers",
        leavers.len()
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let workspace = retain_data::Workspace::open(ws).unwrap();
        let ctx = retain_features::session(&workspace).await.unwrap();
        let first_complaint: HashMap<i64, NaiveDate> = {
            let batches = retain_features::frame::query(
                &ctx,
                "SELECT subscriber_id, CAST(CAST(MIN(\"timestamp\") AS DATE) AS VARCHAR) AS day \
                 FROM events WHERE kind = 'complaint' GROUP BY subscriber_id",
                "first complaints",
            )
            .await
            .unwrap();
            let ids = retain_features::frame::ids(&batches, "subscriber_id").unwrap();
            let days = retain_features::frame::texts(&batches, "day").unwrap();
            ids.into_iter()
                .zip(days)
                .map(|(id, d)| (id, NaiveDate::parse_from_str(&d, "%Y-%m-%d").unwrap()))
                .collect()
        };
        // Monthly, from the fourth month (twelve weeks of history) to the last.
        let first = NaiveDate::from_ymd_opt(2025, 8, 1).unwrap();
        let last = NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
        let mut flagged: HashMap<i64, NaiveDate> = HashMap::new();
        let (mut flags, mut population) = (0usize, 0usize);
        let mut as_of = first;
        while as_of <= last {
            let batches = retain_features::features_as_of(&ctx, &set, as_of)
                .await
                .unwrap();
            let ids = retain_features::frame::ids(&batches, "subscriber_id").unwrap();
            let values = retain_features::frame::floats(&batches, "flag").unwrap();
            let now: Vec<i64> = ids
                .into_iter()
                .zip(values)
                .filter(|(_, f)| *f > 0.5)
                .map(|(id, _)| id)
                .collect();
            flags += now.len();
            population += workspace
                .table_rows(retain_data::Table::Subscribers)
                .unwrap() as usize;
            for id in now {
                flagged.entry(id).or_insert(as_of);
            }
            as_of = as_of + Months::new(1);
        }
        let (mut caught, mut counted, mut lead) = (0usize, 0usize, 0i64);
        for (id, exit) in &leavers {
            if *exit < first + Months::new(3) {
                continue;
            }
            counted += 1;
            // Warned in time: before the exit month and before the first complaint, if any.
            let deadline = first_complaint
                .get(id)
                .copied()
                .map_or(*exit, |c| c.min(*exit));
            if let Some(day) = flagged.get(id)
                && *day <= deadline
                && *day < *exit
            {
                caught += 1;
                lead += (deadline - *day).num_days();
            }
        }
        assert!(counted >= 10, "{counted} network-caused leavers counted");
        let mean_lead = if caught == 0 {
            0.0
        } else {
            lead as f64 / caught as f64
        };
        (
            caught as f64 / counted as f64,
            flags as f64 / population as f64,
            mean_lead,
        )
    })
}

#[test]
fn the_network_tables_add_to_the_model_and_warn_before_the_complaint() {
    let dir = tempfile::tempdir().unwrap();
    for seed in [7u64, 42] {
        let ws = dir.path().join(format!("ws{seed}"));
        let seed_text = seed.to_string();
        let (ok, demo) = retain_json(&[
            "demo",
            "--subscribers",
            "8000",
            "--seed",
            &seed_text,
            "--dir",
            s(&ws),
            "--json",
        ]);
        assert!(ok, "{demo}");
        for table in ["network_weekly", "cells", "calling_circle"] {
            assert!(
                ws.join("tables").join(table).join("data.parquet").exists(),
                "seed {seed}: tables/{table}"
            );
        }
        let with = &demo["model"]["train"];
        let (ok, without) =
            retain_json(&["train", "--dir", s(&ws), "--without", "network", "--json"]);
        assert!(ok, "{without}");
        let keys = |v: &serde_json::Value| {
            v.as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<BTreeSet<_>>()
        };
        assert_eq!(keys(with), keys(&without), "seed {seed}");
        let used = |v: &serde_json::Value| -> Vec<String> {
            v["importance"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p[0].as_str().unwrap().to_owned())
                .collect()
        };
        for feature in used(&without) {
            assert!(
                !retain_features::NETWORK_FEATURES.contains(&feature.as_str()),
                "seed {seed}: {feature} in a model trained without the network"
            );
        }
        let (caught, flagged, lead) = network_rule_lead(&ws);
        eprintln!(
            "seed {seed}: AUC {} / {} without, lift {} / {}, reasons {} / {}; EW024 warns {caught:.2} \
             of network-caused leavers before their first complaint, {lead:.0} days ahead, \
             flagging {flagged:.4} of subscriber-months",
            with["auc"],
            without["auc"],
            with["top_decile_lift"],
            without["top_decile_lift"],
            with["reason_top1_agreement"],
            without["reason_top1_agreement"],
        );
        assert!(caught >= 0.25, "seed {seed}: caught {caught}");
        // Specific: it flags the network's leavers far more often than everyone.
        assert!(
            caught >= 5.0 * flagged,
            "seed {seed}: {caught} vs {flagged}"
        );
        assert!(lead >= 14.0, "seed {seed}: lead {lead} days");
        // The segmentation found the circles and the cells; a target widens to whole circles.
        let network = &demo["segments"]["network"];
        assert!(
            network["circles"].as_u64().unwrap() > 0,
            "seed {seed}: {network}"
        );
        assert!(
            network["homed"].as_u64().unwrap() > 0,
            "seed {seed}: {network}"
        );
        let target = |widen: bool| {
            let mut args = vec![
                "target",
                "--dir",
                s(&ws),
                "--tags",
                "contract_expiring",
                "--json",
            ];
            if widen {
                args.push("--whole-circles");
            }
            let (ok, v) = retain_json(&args);
            assert!(ok, "{v}");
            assert_eq!(v["whole_circles"], widen);
            v["count"].as_u64().unwrap()
        };
        let (alone, widened) = (target(false), target(true));
        assert!(
            widened > alone && alone > 0,
            "seed {seed}: {alone} → {widened}"
        );
        // An unknown group is refused, naming the known ones.
        let out = retain(&["train", "--dir", s(&ws), "--without", "netwrk"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--without netwrk") && err.contains("network"),
            "{err}"
        );
    }
}

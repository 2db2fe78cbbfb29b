//! Segmentation on a small synthetic operator: every active subscriber gets a place, clusters
//! are distinct and named, and the customer view has every section.

use std::collections::HashSet;

use chrono::NaiveDate;
use retain_data::Workspace;
use retain_segment::{ClusterNames, SegmentConfig};

mod network;

async fn operator(
    dir: &std::path::Path,
) -> (Workspace, datafusion::execution::context::SessionContext) {
    let params = retain_synth::SynthParams {
        subscribers: 3000,
        months: 12,
        seed: 11,
        ..Default::default()
    };
    let ws = retain_synth::synthetic_workspace(&params, dir).unwrap();
    let ctx = retain_features::session(&ws).await.unwrap();
    (ws, ctx)
}

/// A row of the segments table.
#[derive(Debug)]
struct Place {
    subscriber_id: retain_data::SubscriberId,
    rfm: Option<(i64, i64, i64)>,
    rfm_group: Option<String>,
    clv: Option<f64>,
    value_tier: Option<String>,
    lifecycle_stage: String,
    cluster: Option<i64>,
}

fn read_places(path: &std::path::Path) -> Vec<Place> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Float64Type, Int64Type};
    let file = std::fs::File::open(path).unwrap();
    let reader =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 8192)
            .unwrap();
    let mut out = Vec::new();
    for batch in reader {
        let b = batch.unwrap();
        let col = |name: &str| b.column_by_name(name).unwrap().clone();
        let int = |name: &str| {
            let c = col(name);
            let c = c.as_primitive::<Int64Type>().clone();
            move |row: usize| (!c.is_null(row)).then(|| c.value(row))
        };
        let text = |name: &str| {
            let c = datafusion::arrow::compute::cast(
                &col(name),
                &datafusion::arrow::datatypes::DataType::Utf8,
            )
            .unwrap();
            let c = c.as_string::<i32>().clone();
            move |row: usize| (!c.is_null(row)).then(|| c.value(row).to_owned())
        };
        let (r, f, m, cluster) = (int("rfm_r"), int("rfm_f"), int("rfm_m"), int("cluster"));
        let id = int("subscriber_id");
        let (group, tier, stage) = (
            text("rfm_group"),
            text("value_tier"),
            text("lifecycle_stage"),
        );
        let clv = col("clv").as_primitive::<Float64Type>().clone();
        for row in 0..b.num_rows() {
            out.push(Place {
                subscriber_id: retain_data::SubscriberId(id(row).unwrap()),
                rfm: r(row).map(|r| (r, f(row).unwrap(), m(row).unwrap())),
                rfm_group: group(row),
                clv: (!clv.is_null(row)).then(|| clv.value(row)),
                value_tier: tier(row),
                lifecycle_stage: stage(row).unwrap(),
                cluster: cluster(row),
            });
        }
    }
    out
}

#[tokio::test]
async fn every_active_subscriber_gets_a_named_place() {
    let dir = tempfile::tempdir().unwrap();
    let (ws, ctx) = operator(dir.path()).await;
    let as_of = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    let config = SegmentConfig::default();
    let report = retain_segment::segment(&ctx, &config, &ws, as_of)
        .await
        .unwrap();
    let placements = read_places(&report.segments_file);

    assert!(
        (4..=12).contains(&report.clusters.len()),
        "{:?}",
        report.silhouettes
    );
    let names: HashSet<&str> = report.clusters.iter().map(|c| c.name_zh.as_str()).collect();
    assert_eq!(names.len(), report.clusters.len(), "cluster names differ");
    assert!(
        report
            .clusters
            .iter()
            .all(|c| c.size > 0 && !c.name_en.is_empty())
    );
    let shares: f64 = report.clusters.iter().map(|c| c.share).sum();
    assert!((shares - 1.0).abs() < 1e-3, "{shares}");

    assert_eq!(placements.len() as u64, report.subscribers);
    assert!(
        placements
            .windows(2)
            .all(|w| w[0].subscriber_id < w[1].subscriber_id)
    );
    let active: Vec<_> = placements
        .iter()
        .filter(|p| p.lifecycle_stage != "churned")
        .collect();
    assert_eq!(active.len() as u64, report.active);
    for p in &active {
        assert!(
            p.rfm_group.is_some() && p.value_tier.is_some() && p.cluster.is_some(),
            "{p:?}"
        );
        let (r, f, m) = p.rfm.unwrap();
        assert!((1..=5).contains(&r) && (1..=5).contains(&f) && (1..=5).contains(&m));
    }
    assert!(report.lifecycle_stage["churned"] > 0);
    assert!(report.lifecycle_stage["onboarding"] > 0);
    assert_eq!(
        report.lifecycle_stage.values().sum::<u64>(),
        report.subscribers
    );
    assert_eq!(report.value_tier.values().sum::<u64>(), report.active);
    // Lifetime value orders the tiers.
    let mean = |tier: &str| {
        let v: Vec<f64> = active
            .iter()
            .filter(|p| p.value_tier.as_deref() == Some(tier))
            .map(|p| p.clv.unwrap())
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    assert!(mean("high") > mean("medium") && mean("medium") > mean("low"));
    // Retention curves fall with tenure.
    let all = &report.retention[0];
    let (six, sixty) = (all.survival["6m"].unwrap(), all.survival["60m"].unwrap());
    assert!(sixty < six && six <= 1.0);
    // Subscribers who joined long ago were never observed young.
    let old = report
        .retention
        .iter()
        .find(|r| r.segment == "joined_until_2015")
        .unwrap();
    assert_eq!(old.survival["12m"], None);
    assert!(report.churn_by_contract_end.values().sum::<u64>() > 0);
    assert!(report.segments_file.exists() && report.report_file.exists());
    // The run's scratch files are gone.
    let left: Vec<String> = std::fs::read_dir(report.segments_file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| {
            ![
                "subscribers.parquet",
                "tags.parquet",
                "circles.parquet",
                "cells.parquet",
            ]
            .contains(&name.as_str())
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(ws.root().join("reports/clusters.md").exists());

    // Seeded: the same data gives the same clusters.
    let again = retain_segment::segment(&ctx, &config, &ws, as_of)
        .await
        .unwrap();
    assert_eq!(
        report
            .clusters
            .iter()
            .map(|c| (c.size, c.name_zh.clone()))
            .collect::<Vec<_>>(),
        again
            .clusters
            .iter()
            .map(|c| (c.size, c.name_zh.clone()))
            .collect::<Vec<_>>()
    );

    // Subscriber partitions give the same table and the same report.
    let whole_table = format!("{:?}", read_places(&report.segments_file));
    let parted = retain_segment::segment_in_partitions(&ctx, &config, &ws, as_of, 3)
        .await
        .unwrap();
    assert_eq!(
        format!("{:?}", read_places(&parted.segments_file)),
        whole_table
    );
    assert_eq!(
        serde_json::to_value(&parted).unwrap(),
        serde_json::to_value(&report).unwrap()
    );

    // Fitted on a sample, the centroids still place everyone active, the same way each run.
    let mut sampled = config.clone();
    sampled.clusters.fit_sample = 1000;
    let first = retain_segment::segment(&ctx, &sampled, &ws, as_of)
        .await
        .unwrap();
    let sampled_table = format!("{:?}", read_places(&first.segments_file));
    assert_ne!(sampled_table, whole_table, "a sample fits other centroids");
    assert_eq!(
        first.clusters.iter().map(|c| c.size).sum::<u64>(),
        first.active
    );
    assert!(
        read_places(&first.segments_file)
            .iter()
            .all(|p| p.cluster.is_some() == (p.lifecycle_stage != "churned"))
    );
    let second = retain_segment::segment(&ctx, &sampled, &ws, as_of)
        .await
        .unwrap();
    assert_eq!(
        format!("{:?}", read_places(&second.segments_file)),
        sampled_table
    );
    retain_segment::segment(&ctx, &config, &ws, as_of)
        .await
        .unwrap();

    // An analyst's name replaces the automatic one.
    ClusterNames::rename(&ws, 0, "测试客群", "test group").unwrap();
    let renamed = retain_segment::segment(&ctx, &config, &ws, as_of)
        .await
        .unwrap();
    assert_eq!(renamed.clusters[0].name_zh, "测试客群");
    assert_eq!(renamed.clusters[0].name_en, "test group");

    // Tags are recomputed with the run and select target groups.
    assert!(
        report.tags["enterprise_member"] > 0 && report.tags["new_subscriber"] > 0,
        "{:?}",
        report.tags
    );
    assert!(
        report.tags["core_active"] > 0,
        "tags read this run's segments: {:?}",
        report.tags
    );
    let library = retain_segment::TagLibrary::for_workspace(&ws).unwrap();
    let members = retain_segment::select_by_tags(&ctx, &ws, &library, "enterprise_member")
        .await
        .unwrap();
    assert_eq!(members.len() as u64, report.tags["enterprise_member"]);
    let none = retain_segment::select_by_tags(
        &ctx,
        &ws,
        &library,
        "enterprise_member and not enterprise_member",
    )
    .await
    .unwrap();
    assert!(none.is_empty());
    let err = retain_segment::select_by_tags(&ctx, &ws, &library, "vip and")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("target expression"), "{err}");

    // Warning rules can read tags and segments.
    let rules = retain_warn::RuleSet::parse(
        &retain_warn::DEFAULT_RULES.replace(
            "when = \"count(plan_change, 1m, downgrade = true) >= 1\"",
            "when = \"tag('enterprise_member') and value_tier = 'high'\"",
        ),
        std::path::Path::new("rules.toml"),
    )
    .unwrap();
    let ctx2 = retain_features::session(&ws).await.unwrap();
    let (summary, _) =
        retain_warn::run(&ctx2, &rules, &ws, as_of, retain_features::Cadence::Monthly)
            .await
            .unwrap();
    let hits = summary.rule_hits["EW006"];
    assert!(
        hits > 0 && hits <= report.tags["enterprise_member"],
        "{hits}"
    );
    // In subscriber partitions, each reads its own subscribers' tags and segments.
    let (_, _, parted_hits, _) = retain_warn::evaluate_partitioned(&ws, &rules, as_of, 3)
        .await
        .unwrap();
    assert_eq!(parted_hits["EW006"], hits);

    // Tags computed partition by partition are the tags computed at once.
    let tags_file = ws.root().join("segments").join("tags.parquet");
    let read_tags = || {
        let file = std::fs::File::open(&tags_file).unwrap();
        let reader =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 8192)
                .unwrap();
        reader.map(Result::unwrap).collect::<Vec<_>>()
    };
    // Behaviour computed partition by partition is everyone's, in the same order.
    let at_once = retain_segment::behaviour(&ctx, as_of).await.unwrap();
    let parted = retain_segment::behaviour_in_partitions(&ctx, &ws, as_of, 3)
        .await
        .unwrap();
    assert!(at_once.iter().any(|b| b.family_size > 1.0));
    // The same values, up to the order in which the engine summed a subscriber's months.
    assert_same_up_to_rounding(&format!("{parted:?}"), &format!("{at_once:?}"));

    // Recomputed at once first, in a session that has not read the outputs yet: the warning
    // run above changed what `midhigh_warned` reads.
    let fresh = retain_features::session(&ws).await.unwrap();
    let at_once = library
        .compute_in_partitions(&fresh, &ws, as_of, 1)
        .await
        .unwrap();
    assert!(at_once["midhigh_warned"] > 0, "{at_once:?}");
    let whole = read_tags();
    let counts = library
        .compute_in_partitions(&fresh, &ws, as_of, 3)
        .await
        .unwrap();
    assert_eq!(counts, at_once);
    let concat = |batches: &[datafusion::arrow::array::RecordBatch]| {
        datafusion::arrow::compute::concat_batches(&batches[0].schema(), batches).unwrap()
    };
    assert_eq!(concat(&read_tags()), concat(&whole));

    // The customer view has every section.
    let id = active[0].subscriber_id;
    let view = retain_segment::customer_360(&ctx, &ws, id)
        .await
        .unwrap()
        .unwrap();
    let view = serde_json::to_value(view).unwrap();
    for key in [
        "profile", "usage", "events", "warnings", "churn", "segments", "tags", "value", "contacts",
    ] {
        assert!(view.get(key).is_some(), "{key}");
    }
    assert_eq!(view["profile"]["subscriber_id"], id.get());
    assert!(!view["usage"]["monthly"].as_array().unwrap().is_empty());
    assert!(view["segments"]["cluster"]["name_zh"].is_string());
    let member = members[0];
    let view = retain_segment::customer_360(&ctx, &ws, member.into())
        .await
        .unwrap()
        .unwrap();
    let view = serde_json::to_value(view).unwrap();
    let tags: Vec<&str> = view["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert!(tags.contains(&"enterprise_member"), "{tags:?}");
    assert!(
        retain_segment::customer_360(&ctx, &ws, 1.into())
            .await
            .unwrap()
            .is_none()
    );
}

/// Two debug renderings equal but for the last bits of their decimal numbers: a sum of the same
/// values in another order can differ there.
fn assert_same_up_to_rounding(a: &str, b: &str) {
    let split = |s: &str| -> Vec<String> {
        s.split(|c: char| c.is_whitespace() || ",:{}()[]".contains(c))
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let (ta, tb) = (split(a), split(b));
    assert_eq!(ta.len(), tb.len(), "different shapes");
    for (x, y) in ta.iter().zip(&tb) {
        match (x.parse::<f64>(), y.parse::<f64>()) {
            (Ok(u), Ok(v)) => assert!(
                (u - v).abs() <= 1e-9 * u.abs().max(v.abs()).max(1.0),
                "{x} against {y}"
            ),
            _ => assert_eq!(x, y),
        }
    }
}

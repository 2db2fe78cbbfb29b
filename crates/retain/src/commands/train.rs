//! `retain train` and `retain score`: the churn model.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use retain_data::Workspace;
use retain_features::{FeatureSet, LabelConfig};
use retain_model::Table;
use retain_store::Store;

use crate::output;

pub(crate) use super::model_args::{Args, ScoreArgs};

/// The synthetic truth's cause of each churner, mapped to the model's reason categories.
fn truth_categories(root: &Path) -> Option<HashMap<i64, &'static str>> {
    let mut reader = csv::Reader::from_path(root.join("truth").join("churn.csv")).ok()?;
    let mut map = HashMap::new();
    for record in reader.records().flatten() {
        let category = match record.get(3)? {
            "price" => "value_decline",
            "network_quality" => "network_quality",
            "contract_expiry" => "contract_expiry",
            "competitor_lure" => "competitor_lure",
            "billing_dispute" => "billing_arrears",
            _ => "low_engagement",
        };
        if record.get(1)? == "churned" {
            map.insert(record.get(0)?.parse().ok()?, category);
        }
    }
    Some(map)
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let workspace = Workspace::open(&args.dir)?;
    let rt = super::runtime()?;
    let store = rt.block_on(Store::connect(&workspace.store_url()))?;
    let summary = execute(&rt, &store, &workspace, args)?;
    if args.json {
        return output::print_json(&summary);
    }
    output::print_text(&describe(&summary));
    Ok(())
}

/// Trains, saves and evaluates a model, recording the run; returns the `--json` object.
pub(crate) fn execute(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    workspace: &Workspace,
    args: &Args,
) -> anyhow::Result<serde_json::Value> {
    let params = serde_json::json!({ "horizon": args.horizon, "gap": args.gap });
    let work = || -> anyhow::Result<serde_json::Value> {
        let set = FeatureSet::default_set();
        let labels = LabelConfig {
            suspension_gap_months: args.gap,
            ..LabelConfig::default()
        };
        let (batches, snapshots) = rt.block_on(async {
            let ctx = retain_features::session(workspace).await?;
            let snapshots =
                retain_features::observable_snapshots(&ctx, 6, args.horizon + args.gap).await?;
            let batches =
                retain_features::training_set(&ctx, &set, &snapshots, args.horizon, &labels)
                    .await?;
            Ok::<_, anyhow::Error>((batches, snapshots))
        })?;
        let table = Table::from_batches(&batches)?;
        let (model, report) = retain_model::train(&table)?;
        let names: Vec<String> = snapshots
            .iter()
            .map(|s| s.format("%Y-%m").to_string())
            .collect();
        let (version, dir) =
            retain_model::save(workspace.root(), &model, &report, names, args.horizon)?;

        // How often the top reason of a caught churner is its true cause (synthetic data only).
        let last = table.snapshot.iter().copied().max().unwrap_or(0);
        let rows: Vec<usize> = (0..table.label.len())
            .filter(|i| table.snapshot[*i] == last)
            .collect();
        let d = table.features.len();
        let test = Table {
            features: table.features.clone(),
            subscriber_id: rows.iter().map(|i| table.subscriber_id[*i]).collect(),
            snapshot: rows.iter().map(|i| table.snapshot[*i]).collect(),
            label: rows.iter().map(|i| table.label[*i]).collect(),
            x: rows
                .iter()
                .flat_map(|i| table.x[i * d..(i + 1) * d].iter().copied())
                .collect(),
        };
        let scores = model.score(&test)?;
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|a, b| scores[*b].probability.total_cmp(&scores[*a].probability));
        let agreement = truth_categories(workspace.root()).map(|truth| {
            let caught: Vec<usize> = order[..scores.len() / 10]
                .iter()
                .copied()
                .filter(|i| test.label[*i])
                .collect();
            let matched = caught
                .iter()
                .filter(|i| {
                    let s = &scores[**i];
                    truth
                        .get(&s.subscriber_id)
                        .is_some_and(|c| s.reasons.first().is_some_and(|r| r.category == *c))
                })
                .count();
            if caught.is_empty() {
                0.0
            } else {
                (matched as f64 / caught.len() as f64 * 10_000.0).round() / 10_000.0
            }
        });
        let m = &report.test;
        let summary = serde_json::json!({
            "version": version,
            "model_dir": dir,
            "auc": m.auc,
            "pr_auc": m.pr_auc,
            "log_loss": m.log_loss,
            "brier": m.brier,
            "top_decile_lift": m.top_decile_lift,
            "train_seconds": report.train_seconds,
            "rows_train": report.rows_train,
            "rows_valid": report.rows_valid,
            "rows_test": report.rows_test,
            "best_iteration": report.best_iteration,
            "reason_top1_agreement": agreement,
            "deciles": m.deciles,
            "calibration": m.calibration,
            "importance": report.importance.iter().take(15).collect::<Vec<_>>(),
        });
        let reports = workspace.root().join("reports");
        std::fs::create_dir_all(&reports)?;
        retain_data::write_atomically(
            &reports.join("model.json"),
            serde_json::to_string_pretty(&summary)?.as_bytes(),
        )?;
        Ok(summary)
    };
    super::recorded(rt, store, "train", &params, work, |s| Ok(s.clone()))
}

fn describe(summary: &serde_json::Value) -> String {
    let mut text = format!(
        "churn model v{} → {}\n  test snapshot: AUC {}, PR-AUC {}, top-decile lift {}, log loss {}, Brier {}\n  rows: train {}, validation {}, test {}; {} trees in {:.1}s\n",
        summary["version"],
        summary["model_dir"].as_str().unwrap_or(""),
        summary["auc"],
        summary["pr_auc"],
        summary["top_decile_lift"],
        summary["log_loss"],
        summary["brier"],
        summary["rows_train"],
        summary["rows_valid"],
        summary["rows_test"],
        summary["best_iteration"],
        summary["train_seconds"].as_f64().unwrap_or(0.0)
    );
    if !summary["reason_top1_agreement"].is_null() {
        let _ = writeln!(
            text,
            "  top reason = true cause for {} of caught churners",
            summary["reason_top1_agreement"]
        );
    }
    text
}

pub(crate) fn score(args: &ScoreArgs) -> anyhow::Result<()> {
    let workspace = Workspace::open(&args.dir)?;
    let rt = super::runtime()?;
    let summary = score_execute(&rt, &workspace, args.as_of.as_deref())?;
    if args.json {
        return output::print_json(&summary);
    }
    output::print_text(&format!(
        "scored {} subscribers as of {} with model v{} → {}",
        summary["scored"],
        summary["as_of"].as_str().unwrap_or(""),
        summary["model_version"],
        summary["scores_file"].as_str().unwrap_or("")
    ));
    Ok(())
}

/// Scores everyone with the newest model and writes `scores/<as-of>.csv`.
pub(crate) fn score_execute(
    rt: &tokio::runtime::Runtime,
    workspace: &Workspace,
    as_of: Option<&str>,
) -> anyhow::Result<serde_json::Value> {
    let Some((model, meta)) = retain_model::load_latest(workspace.root())? else {
        anyhow::bail!("no churn model in this workspace: run `retain train` first");
    };
    let (batches, as_of) = rt.block_on(async {
        let ctx = retain_features::session(workspace).await?;
        let as_of = match as_of {
            Some(text) => super::parse_as_of(text)?,
            None => retain_warn::default_as_of(&ctx, retain_warn::Cadence::Monthly).await?,
        };
        let set = FeatureSet::default_set();
        Ok::<_, anyhow::Error>((
            retain_features::features_as_of(&ctx, &set, as_of).await?,
            as_of,
        ))
    })?;
    let table = Table::from_batches(&batches)?;
    let scores = model.score(&table)?;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].probability.total_cmp(&scores[*a].probability));
    let mut decile = vec![0usize; scores.len()];
    for (rank, i) in order.iter().enumerate() {
        decile[*i] = rank * 10 / scores.len().max(1) + 1;
    }
    let dir = workspace.root().join("scores");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(format!("{as_of}.csv"));
    let mut w = csv::Writer::from_path(&file)?;
    w.write_record([
        "subscriber_id",
        "probability",
        "decile",
        "reason_1",
        "reason_2",
        "reason_3",
        "model_version",
    ])?;
    for &i in &order {
        let s = &scores[i];
        let reason = |k: usize| s.reasons.get(k).map_or("", |r| r.category);
        w.write_record([
            s.subscriber_id.to_string().as_str(),
            &format!("{:.6}", s.probability),
            &decile[i].to_string(),
            reason(0),
            reason(1),
            reason(2),
            &meta.version.to_string(),
        ])?;
    }
    w.flush()?;
    Ok(serde_json::json!({
        "as_of": as_of,
        "model_version": meta.version,
        "scored": scores.len(),
        "mean_probability": scores.iter().map(|s| s.probability).sum::<f64>() / scores.len().max(1) as f64,
        "scores_file": file,
    }))
}

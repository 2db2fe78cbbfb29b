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
use super::model_args::{ModelArgs, ModelCommand};

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
    let params =
        serde_json::json!({ "horizon": args.horizon, "gap": args.gap, "backtest": args.backtest });
    let work = || -> anyhow::Result<serde_json::Value> {
        let set = FeatureSet::default_set();
        let labels = LabelConfig {
            suspension_gap_months: args.gap,
            ..LabelConfig::default()
        };
        let (batches, snapshots) = rt.block_on(async {
            // The sample is taken at the tables, so the feature plans aggregate only it.
            let (ctx, _) = retain_features::sample_session(workspace, args.max_subscribers).await?;
            let snapshots =
                retain_features::observable_snapshots(&ctx, 6, args.horizon + args.gap).await?;
            let batches =
                retain_features::training_set(&ctx, &set, &snapshots, args.horizon, &labels)
                    .await?;
            Ok::<_, anyhow::Error>((batches, snapshots))
        })?;
        let table = Table::from_batches(&batches)?;
        tracing::info!(rows = table.len(), "training set built");
        let (model, report) = retain_model::train(&table)?;
        tracing::info!(seconds = report.fit.train_seconds, "model trained");
        let names: Vec<String> = snapshots
            .iter()
            .map(|s| s.format("%Y-%m").to_string())
            .collect();
        let (version, dir) =
            retain_model::save(workspace.root(), &model, &report, names, args.horizon)?;

        // How often the top reason of a caught churner is its true cause (synthetic data only).
        let last = table.snapshot.iter().copied().max().unwrap_or(0);
        let test = table.subset(&retain_model::rows_where(&table, |s| s == last));
        // Reasons for the top decile: where the agreement with the truth is measured.
        let scores = model.score(&test, 0.1)?;
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
        let cohorts = cohort_metrics(&test, &scores);
        let drift = feature_drift(&table, last);
        let backtest = retain_model::rolling_backtest(&table, args.backtest)?
            .into_iter()
            .map(|f| {
                let mut v = serde_json::to_value(&f).unwrap_or_default();
                v["test_snapshot"] = serde_json::json!(day_to_month(f.test_snapshot));
                v
            })
            .collect::<Vec<_>>();
        let summary = serde_json::json!({
            "version": version,
            "model_dir": dir,
            "auc": m.auc,
            "pr_auc": m.pr_auc,
            "log_loss": m.log_loss,
            "brier": m.brier,
            "top_decile_lift": m.top_decile_lift,
            "train_seconds": report.fit.train_seconds,
            "rows_train": report.rows_train,
            "rows_valid": report.rows_valid,
            "rows_test": report.rows_test,
            "best_iteration": report.fit.best_iteration,
            "blend": report.fit,
            "empc": m.empc,
            "reason_top1_agreement": agreement,
            "deciles": m.deciles,
            "calibration": m.calibration,
            "importance": report.importance.iter().take(15).collect::<Vec<_>>(),
            "cohorts": cohorts,
            "feature_drift": drift,
            "backtest": backtest,
        });
        let reports = workspace.root().join("reports");
        std::fs::create_dir_all(&reports)?;
        retain_data::write_atomically(
            &reports.join("model.json"),
            serde_json::to_string_pretty(&summary)?.as_bytes(),
        )?;
        retain_data::write_atomically(
            &reports.join("model.html"),
            super::model_report::html(&summary).as_bytes(),
        )?;
        Ok(summary)
    };
    super::recorded(rt, store, "train", &params, work, |s| Ok(s.clone()))
}

fn day_to_month(days: i32) -> String {
    chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163)
        .map_or_else(String::new, |d| d.format("%Y-%m").to_string())
}

/// Whether a tenure in months belongs to a cohort.
type CohortMember = fn(f64) -> bool;

/// Tenure cohorts of the test snapshot: new (< 6 months), settling (6–12), established (> 12).
fn cohort_metrics(test: &Table, scores: &[retain_model::Score]) -> serde_json::Value {
    let Some(j) = test.features.iter().position(|f| f == "tenure_months") else {
        return serde_json::Value::Null;
    };
    let d = test.features.len();
    let cohorts: [(&str, CohortMember); 3] = [
        ("tenure_under_6", |t| t < 6.0),
        ("tenure_6_to_12", |t| (6.0..=12.0).contains(&t)),
        ("tenure_over_12", |t| t > 12.0),
    ];
    let mut out = serde_json::Map::new();
    for (name, member) in cohorts {
        let rows: Vec<usize> = (0..test.len())
            .filter(|i| member(test.x[i * d + j]))
            .collect();
        let p: Vec<f64> = rows.iter().map(|i| scores[*i].probability).collect();
        let labels: Vec<bool> = rows.iter().map(|i| test.label[*i]).collect();
        let m = retain_model::evaluate(&p, &labels);
        out.insert(
            name.to_string(),
            serde_json::json!({
                "rows": m.rows, "churners": m.positives, "auc": m.auc, "pr_auc": m.pr_auc,
                "top_decile_lift": m.top_decile_lift, "brier": m.brier,
            }),
        );
    }
    serde_json::Value::Object(out)
}

/// The ten features whose test-snapshot distribution moved most from the training rows (PSI).
fn feature_drift(table: &Table, test_snapshot: i32) -> Vec<serde_json::Value> {
    let d = table.features.len();
    // One pass in row order (the matrix is row-major), splitting each column in two.
    let mut train = vec![Vec::new(); d];
    let mut test = vec![Vec::new(); d];
    for (i, row) in table.x.chunks_exact(d).enumerate() {
        let side = if table.snapshot[i] == test_snapshot {
            &mut test
        } else {
            &mut train
        };
        for (column, v) in side.iter_mut().zip(row) {
            column.push(*v);
        }
    }
    let mut drift: Vec<(String, f64)> = (0..d)
        .map(|j| {
            (
                table.features[j].clone(),
                retain_model::psi(&train[j], &test[j]),
            )
        })
        .collect();
    drift.sort_by(|a, b| b.1.total_cmp(&a.1));
    drift
        .into_iter()
        .take(10)
        .map(|(feature, psi)| serde_json::json!({ "feature": feature, "psi": psi }))
        .collect()
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
    let (scoring, as_of, origin) = rt.block_on(async {
        let ctx = retain_features::session(workspace).await?;
        let as_of = match as_of {
            Some(text) => super::parse_as_of(text)?,
            None => retain_warn::default_as_of(&ctx, retain_warn::Cadence::Monthly).await?,
        };
        let set = FeatureSet::default_set();
        let parts = retain_features::feature_partitions(workspace)?;
        let mut stream = retain_features::stored::features(workspace, &set, as_of, parts).await?;
        let origin = stream.origin();
        let mut scorer = retain_model::Scorer::new(&model);
        while let Some(batch) = stream.next().await {
            scorer.push(batch?)?;
        }
        Ok::<_, anyhow::Error>((scorer.finish()?, as_of, origin))
    })?;
    let retain_model::Scored {
        ids,
        probabilities,
        reasons,
    } = scoring;
    let file = retain_model::write_scores(
        workspace,
        as_of,
        meta.version,
        &ids,
        &probabilities,
        &reasons,
    )?;
    // Drift against the scores before; an unreadable older file only costs the comparison.
    let drift = retain_model::previous_scores(workspace, &file.path).and_then(|previous| {
        let before: Vec<f64> = previous
            .probabilities()
            .map_err(|e| tracing::warn!("no score drift: {e}"))
            .ok()?
            .values()
            .collect();
        Some(serde_json::json!({
            "against": previous.name(),
            "psi": retain_model::psi(&before, &probabilities),
        }))
    });
    Ok(serde_json::json!({
        "as_of": as_of,
        "model_version": meta.version,
        "scored": ids.len(),
        "explained": reasons.len(),
        "features": origin,
        "mean_probability": probabilities.iter().sum::<f64>() / ids.len().max(1) as f64,
        "scores_file": file.path,
        "score_drift": drift,
    }))
}

/// `retain model …`.
pub(crate) fn model(args: &ModelArgs) -> anyhow::Result<()> {
    match &args.command {
        ModelCommand::Eval(a) => {
            let report = retain_model::evaluate_files(&retain_model::EvalOptions {
                train: a.train.clone(),
                test: a.test.clone(),
                split: a.split,
                seed: a.seed,
                target: a.target.clone(),
                id: a.id.clone(),
                predictions: a.predictions.clone(),
            })?;
            if a.json {
                return output::print_json(&report);
            }
            output::print_text(&format!(
                "trained on {} rows, tested on {} ({} skipped without a target)\n  AUC {}, PR-AUC {}, top-decile lift {}, log loss {}, Brier {}, EMPC {}\n  {} numeric and {} categorical features; {} trees, blend weight of the trees {}; trained in {:.2}s, scored in {:.3}s",
                report.rows_train,
                report.rows_test,
                report.rows_skipped,
                report.auc,
                report.pr_auc,
                report.top_decile_lift,
                report.log_loss,
                report.brier,
                report.empc,
                report.numeric.len(),
                report.categorical.len(),
                report.fit.trees,
                report.fit.gbdt_weight,
                report.train_seconds,
                report.score_seconds,
            ));
            Ok(())
        }
    }
}

//! `retain train` and `retain score`: the churn model.

use std::fmt::Write as _;

use retain_data::Workspace;
use retain_features::{FeatureSet, LabelConfig};
use retain_model::Table;
use retain_store::Store;

use crate::output;

pub(crate) use super::model_args::{Args, ScoreArgs};
use super::model_args::{ModelArgs, ModelCommand};

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
        let (version, dir) = retain_model::save(workspace, &model, &report, names, args.horizon)?;

        let summary = retain_model::model_report(
            workspace,
            &table,
            (&model, &report),
            (version, dir),
            args.backtest,
        )?;
        retain_model::write_model_report(workspace, &summary)?;
        Ok(serde_json::to_value(summary)?)
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
    let Some((model, meta)) = retain_model::load_latest(workspace)? else {
        anyhow::bail!("no churn model in this workspace: run `retain train` first");
    };
    let (scoring, as_of, origin) = rt.block_on(async {
        let ctx = retain_features::session(workspace).await?;
        let as_of = match as_of {
            Some(text) => super::parse_as_of(text)?,
            None => retain_features::default_as_of(&ctx, retain_features::Cadence::Monthly).await?,
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

//! `retain train` and `retain score`: the churn model.

use std::fmt::Write as _;

use retain_data::Workspace;
use retain_model::{ModelReport, ScoreSummary, TrainOptions};
use retain_store::Store;

use crate::output;

pub(crate) use super::model_args::{Args, ScoreArgs};
use super::model_args::{ModelArgs, ModelCommand};

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let workspace = Workspace::open(&args.dir)?;
    args.engine.apply(&workspace)?;
    let rt = super::runtime()?;
    let store = rt.block_on(Store::connect(&workspace.store_url()))?;
    let summary = execute(&rt, &store, &workspace, args)?;
    if args.json {
        return output::print_json(&summary);
    }
    output::print_text(&describe(&summary));
    Ok(())
}

/// Trains, saves and evaluates a model, recording the run.
pub(crate) fn execute(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    workspace: &Workspace,
    args: &Args,
) -> anyhow::Result<ModelReport> {
    let options = TrainOptions {
        horizon: args.horizon,
        gap: args.gap,
        backtest: args.backtest,
        max_subscribers: args.max_subscribers,
    };
    let params = serde_json::to_value(&options)?;
    let work = || Ok(rt.block_on(retain_model::train_workspace(workspace, &options))?);
    super::recorded(rt, store, "train", &params, work, |s| {
        Ok(serde_json::to_value(s)?)
    })
}

fn describe(r: &ModelReport) -> String {
    let mut text = format!(
        "churn model v{} → {}\n  test snapshot: AUC {}, PR-AUC {}, top-decile lift {}, log loss {}, Brier {}\n  rows: train {}, validation {}, test {}; {} trees in {:.1}s\n",
        r.version,
        r.model_dir.display(),
        r.auc,
        r.pr_auc,
        r.top_decile_lift,
        r.log_loss,
        r.brier,
        r.rows_train,
        r.rows_valid,
        r.rows_test,
        r.best_iteration,
        r.train_seconds
    );
    if let Some(agreement) = r.reason_top1_agreement {
        let _ = writeln!(
            text,
            "  top reason = true cause for {agreement} of caught churners"
        );
    }
    text
}

pub(crate) fn score(args: &ScoreArgs) -> anyhow::Result<()> {
    let workspace = Workspace::open(&args.dir)?;
    args.engine.apply(&workspace)?;
    let rt = super::runtime()?;
    let summary = score_execute(&rt, &workspace, args.as_of.as_deref())?;
    if args.json {
        return output::print_json(&summary);
    }
    output::print_text(&format!(
        "scored {} subscribers as of {} with model v{} → {}",
        summary.scored,
        summary.as_of,
        summary.model_version,
        summary.scores_file.display()
    ));
    Ok(())
}

/// Scores everyone with the newest model and writes the scores.
pub(crate) fn score_execute(
    rt: &tokio::runtime::Runtime,
    workspace: &Workspace,
    as_of: Option<&str>,
) -> anyhow::Result<ScoreSummary> {
    let as_of = as_of.map(super::parse_as_of).transpose()?;
    Ok(rt.block_on(retain_model::score_workspace(workspace, as_of))?)
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

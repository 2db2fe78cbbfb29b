//! `retain train` and `retain score`: the churn model.

use std::fmt::Write as _;

use retain_data::Workspace;
use retain_model::{Decision, Drift, ModelReport, ScoreSummary, TrainOptions};
use retain_store::Store;

use crate::output;

pub(crate) use super::model_args::{Args, ScoreArgs};
use super::model_args::{ListArgs, ModelArgs, ModelCommand, RollbackArgs};

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
        accept_shift: args.accept_shift.clone(),
        without: args.without.clone(),
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
    if let Some(decision) = &r.promotion {
        text.push_str(&describe_promotion(decision));
    }
    text
}

/// The challenger against the champion, on the test month.
fn describe_promotion(decision: &Decision) -> String {
    let mut text = format!(
        "  {} v{}: {}; champion v{}\n",
        decision.action, decision.version, decision.reason, decision.champion
    );
    let month = decision.test_month.as_deref().unwrap_or("the test month");
    for (role, standing) in [
        ("challenger", &decision.challenger),
        ("champion", &decision.incumbent),
    ] {
        if let Some(s) = standing {
            let _ = writeln!(
                text,
                "    {role} v{} on {month}: EMPC {}, AUC {}, top-decile lift {}",
                s.version, s.empc, s.auc, s.top_decile_lift
            );
        }
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
    let mut text = format!(
        "scored {} subscribers as of {} with the champion v{} → {}",
        summary.scored,
        summary.as_of,
        summary.model_version,
        summary.scores_file.display()
    );
    if let Some(drift) = &summary.drift {
        text.push_str(&describe_drift(drift));
    }
    output::print_text(&text);
    Ok(())
}

fn describe_drift(drift: &Drift) -> String {
    let mut text = format!(
        "\n  drift from {} (PSI): {}; probabilities {} ({}); features: {} watch, {} alert",
        drift.reference,
        drift.level,
        drift.score.psi,
        drift.score.level,
        drift.features_watch,
        drift.features_alert
    );
    let moved: Vec<String> = drift
        .features
        .iter()
        .take(3)
        .map(|f| format!("{} {}", f.feature, f.stability.psi))
        .collect();
    if !moved.is_empty() {
        let _ = write!(text, "; most moved: {}", moved.join(", "));
    }
    text
}

/// Scores everyone with the champion and writes the scores.
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
        ModelCommand::List(a) => list(a),
        ModelCommand::Rollback(a) => rollback(a),
    }
}

/// `retain model list`.
fn list(args: &ListArgs) -> anyhow::Result<()> {
    let workspace = Workspace::open(&args.dir)?;
    let listing = retain_model::list(&workspace)?;
    if args.json {
        return output::print_json(&listing);
    }
    if listing.versions.is_empty() {
        output::print_text("no churn model in this workspace: run `retain train` first");
        return Ok(());
    }
    let number = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), |x| x.to_string());
    let mut text = String::from("version  test month  EMPC    AUC     lift    decision\n");
    for v in &listing.versions {
        let _ = writeln!(
            text,
            "{}{:<7}  {:<10}  {:<6}  {:<6}  {:<6}  {}{}",
            if v.champion { "*" } else { " " },
            format!("v{}", v.version),
            v.test_month.as_deref().unwrap_or("-"),
            number(v.empc),
            number(v.auc),
            number(v.top_decile_lift),
            v.decision.map_or_else(|| "-".to_owned(), |d| d.to_string()),
            v.error
                .as_deref()
                .map(|e| format!(" (unreadable: {e})"))
                .unwrap_or_default(),
        );
    }
    if let Some(champion) = listing.champion {
        let _ = write!(text, "* champion: v{champion}");
    }
    output::print_text(&text);
    Ok(())
}

/// `retain model rollback`.
fn rollback(args: &RollbackArgs) -> anyhow::Result<()> {
    let workspace = Workspace::open(&args.dir)?;
    let decision = retain_model::rollback(&workspace, args.to)?;
    if args.json {
        return output::print_json(&decision);
    }
    output::print_text(&format!(
        "champion: v{} (was v{})",
        decision.champion,
        decision.previous.unwrap_or(decision.champion)
    ));
    Ok(())
}

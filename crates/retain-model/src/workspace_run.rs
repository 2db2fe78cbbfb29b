//! The churn model on a workspace: training on its history (a sample of subscribers above a
//! size, labels built backwards from the suspension gap) and scoring everyone as of a date.

use std::path::PathBuf;

use chrono::NaiveDate;
use retain_data::Workspace;
use retain_features::{Cadence, FeatureSet, LabelConfig};
use serde::Serialize;

use crate::{Drift, DriftLevel, DriftReference, Error, ModelReport, Result, Table};

/// How `retain train` builds its training set.
#[derive(Debug, Clone, Serialize)]
pub struct TrainOptions {
    /// Months ahead the model predicts a cancellation.
    pub horizon: u32,
    /// Months of suspension before a cancellation (倒追): features end before them.
    pub gap: u32,
    /// Snapshots of the rolling time backtest (0: none).
    pub backtest: usize,
    /// Above this many subscribers, train on a sample of them taken at the tables.
    pub max_subscribers: u64,
}

/// Trains a model on the workspace's history, saves it as the next version in the registry,
/// promotes it to champion if it beats the champion on the test month, and writes its
/// evaluation report.
pub async fn train_workspace(workspace: &Workspace, options: &TrainOptions) -> Result<ModelReport> {
    let set = FeatureSet::default_set();
    let labels = LabelConfig {
        suspension_gap_months: options.gap,
        ..LabelConfig::default()
    };
    // The sample is taken at the tables, so the feature plans aggregate only it.
    let (ctx, _) = retain_features::sample_session(workspace, options.max_subscribers).await?;
    let snapshots =
        retain_features::observable_snapshots(&ctx, 6, options.horizon + options.gap).await?;
    let batches =
        retain_features::training_set(&ctx, &set, &snapshots, options.horizon, &labels).await?;
    let table = Table::from_batches(&batches)?;
    tracing::info!(rows = table.len(), "training set built");
    let (model, report) = crate::train(&table)?;
    tracing::info!(seconds = report.fit.train_seconds, "model trained");
    let names: Vec<String> = snapshots
        .iter()
        .map(|s| s.format("%Y-%m").to_string())
        .collect();
    // The out-of-time month `train` tested on: its population is the drift reference, and
    // champion and challenger are compared on its rows.
    let last = table.snapshot.iter().copied().max().unwrap_or(0);
    let test = table.subset(&crate::rows_where(&table, |s| s == last));
    let test_month = names.last().cloned().unwrap_or_default();
    let reference = DriftReference::of(&test, &model.probabilities(&test.x)?, test_month.clone());
    let (version, dir) = crate::save(
        workspace,
        &model,
        &report,
        names,
        options.horizon,
        Some(reference),
    )?;
    let challenger = crate::Standing::of(version, &report.test);
    let decision = crate::contest(workspace, challenger, &test, &test_month)?;
    tracing::info!(
        version,
        champion = decision.champion,
        reason = decision.reason,
        "{}",
        if decision.action == crate::Action::Promoted {
            "challenger promoted"
        } else {
            "challenger not promoted"
        }
    );
    let mut summary = crate::model_report(
        workspace,
        &table,
        (&model, &report),
        (version, dir),
        options.backtest,
    )?;
    summary.promotion = Some(decision);
    crate::write_model_report(workspace, &summary)?;
    Ok(summary)
}

/// What scoring everyone did (the `retain score --json` object).
#[derive(Debug, Clone, Serialize)]
pub struct ScoreSummary {
    pub as_of: NaiveDate,
    pub model_version: u32,
    pub scored: usize,
    /// Subscribers given reasons: the riskiest.
    pub explained: usize,
    pub features: retain_features::stored::Origin,
    pub mean_probability: f64,
    pub scores_file: PathBuf,
    /// How far the probabilities moved from the scores before, if there were any.
    pub score_drift: Option<ScoreDrift>,
    /// How far the scored population (probabilities and features) moved from the champion's
    /// test month; absent for models saved before drift was watched.
    pub drift: Option<Drift>,
}

/// The population stability of the probabilities against an earlier scoring.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreDrift {
    pub against: String,
    pub psi: f64,
}

/// Scores everyone with the champion as of `as_of` (by default the month after the last one
/// loaded) and writes the scores; warns when the population shifted from the champion's.
pub async fn score_workspace(
    workspace: &Workspace,
    as_of: Option<NaiveDate>,
) -> Result<ScoreSummary> {
    let Some((model, meta)) = crate::load_champion(workspace)? else {
        return Err(Error::Data(
            "no churn model in this workspace: run `retain train` first".into(),
        ));
    };
    let ctx = retain_features::session(workspace).await?;
    let as_of = match as_of {
        Some(date) => date,
        None => retain_features::default_as_of(&ctx, Cadence::Monthly).await?,
    };
    let set = FeatureSet::default_set();
    let parts = retain_features::feature_partitions(workspace)?;
    let mut stream = retain_features::stored::features(workspace, &set, as_of, parts).await?;
    let features = stream.origin();
    let mut scorer = crate::Scorer::new(&model);
    if let Some(reference) = &meta.drift {
        scorer = scorer.watching(reference);
    }
    while let Some(batch) = stream.next().await {
        scorer.push(batch?)?;
    }
    let crate::Scored {
        ids,
        probabilities,
        reasons,
        drift,
    } = scorer.finish()?;
    if let Some(drift) = &drift {
        warn_of_shifts(drift, meta.version);
    }
    let file = crate::write_scores(
        workspace,
        as_of,
        meta.version,
        &ids,
        &probabilities,
        &reasons,
    )?;
    // Drift against the scores before; an unreadable older file only costs the comparison.
    let score_drift = crate::previous_scores(workspace, &file.path).and_then(|previous| {
        let before: Vec<f64> = previous
            .probabilities()
            .map_err(|e| tracing::warn!("no score drift: {e}"))
            .ok()?
            .values()
            .collect();
        Some(ScoreDrift {
            against: previous.name(),
            psi: crate::psi(&before, &probabilities),
        })
    });
    Ok(ScoreSummary {
        as_of,
        model_version: meta.version,
        scored: ids.len(),
        explained: reasons.len(),
        features,
        mean_probability: probabilities.iter().sum::<f64>() / ids.len().max(1) as f64,
        scores_file: file.path,
        score_drift,
        drift,
    })
}

/// A warning when the probabilities or any feature reached the alert level.
fn warn_of_shifts(drift: &Drift, version: u32) {
    if drift.score.level == DriftLevel::Alert {
        tracing::warn!(
            psi = drift.score.psi,
            reference = drift.reference,
            "the churn probabilities shifted from model v{version}'s test month"
        );
    }
    if drift.features_alert > 0 {
        let shifted: Vec<String> = drift
            .features
            .iter()
            .filter(|f| f.stability.level == DriftLevel::Alert)
            .map(|f| format!("{} {}", f.feature, f.stability.psi))
            .collect();
        tracing::warn!(
            features = drift.features_alert,
            reference = drift.reference,
            "features shifted from model v{version}'s test month (PSI): {}",
            shifted.join(", ")
        );
    }
}

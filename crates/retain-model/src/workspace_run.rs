//! The churn model on a workspace: training on its history (a sample of subscribers above a
//! size, labels built backwards from the suspension gap) and scoring everyone as of a date.

use std::path::PathBuf;

use chrono::NaiveDate;
use retain_data::Workspace;
use retain_features::{Cadence, FeatureSet, LabelConfig, NETWORK_FEATURES};
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
    /// Features allowed to shift between the test month and what scoring will see (`all`
    /// for any): a training is otherwise refused over such a shift ([`MAX_SERVING_PSI`]).
    #[serde(default)]
    pub accept_shift: Vec<String>,
    /// Groups of features left out of the training (`network`: [`NETWORK_FEATURES`]).
    #[serde(default)]
    pub without: Vec<String>,
}

/// The groups of features `--without` can leave out.
pub(crate) const FEATURE_GROUPS: &[&str] = &["network"];

/// Above this population stability index between the test month and what scoring will see, a
/// feature the model uses is a skew (computed one way for training and another for scoring) or
/// a population the model never saw; either way its scores would mislead (0.25 is the usual
/// bar of a major shift).
pub(crate) const MAX_SERVING_PSI: f64 = 0.25;
/// Subscribers of the scoring population the shift is measured on at most.
const SERVING_SAMPLE: usize = 200_000;

/// Trains a model on the workspace's history, saves it as the next version in the registry,
/// promotes it to champion if it beats the champion on the test month, and writes its
/// evaluation report.
pub async fn train_workspace(workspace: &Workspace, options: &TrainOptions) -> Result<ModelReport> {
    let set = FeatureSet::default_set();
    if let Some(unknown) = options
        .accept_shift
        .iter()
        .find(|f| *f != "all" && !set.names.contains(f))
    {
        return Err(Error::Data(format!(
            "--accept-shift {unknown}: no feature of the model's set is called that (one of {}, \
             or all)",
            set.names.join(", ")
        )));
    }
    if let Some(unknown) = options
        .without
        .iter()
        .find(|g| !FEATURE_GROUPS.contains(&g.as_str()))
    {
        return Err(Error::Data(format!(
            "--without {unknown}: no such group of features (one of {})",
            FEATURE_GROUPS.join(", ")
        )));
    }
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
    let mut full = Table::from_batches(&batches)?;
    // The out-of-time month `train` tests on, with every feature: the champion meets the
    // challenger there on the features it was trained on, which may be more.
    let last = full.snapshot.iter().copied().max().unwrap_or(0);
    let test_full = full.subset(&crate::rows_where(&full, |s| s == last));
    if options.without.iter().any(|g| g == "network") {
        let keep: Vec<String> = full
            .features
            .iter()
            .filter(|f| !NETWORK_FEATURES.contains(&f.as_str()))
            .cloned()
            .collect();
        full = full.select(&keep)?;
    }
    // The population scoring will see (a sample): a feature it sees far more often than the
    // training snapshots did is left out, and the model's features are checked against it.
    let serving = serving_sample(workspace, &ctx, &set).await?;
    let (table, left_out) = leave_out_unseen(full, serving.as_ref());
    for l in &left_out {
        tracing::warn!(
            feature = l.feature,
            seen_in_training = l.seen_in_training,
            seen_in_newest = l.seen_in_newest,
            "left out of the model: the training snapshots cannot see it"
        );
    }
    tracing::info!(rows = table.len(), "training set built");
    let (mut model, report) = crate::train(&table)?;
    tracing::info!(seconds = report.fit.train_seconds, "model trained");
    // The cause model learns from the training months' leavers only: the test month's
    // stated reasons are what its agreement is measured on.
    let statements = stated_causes(&ctx).await?;
    let said = crate::causes::said_at(&table, &statements, options.horizon, options.gap);
    // The test month's leavers grade the cause model: their statements never train it, even
    // from an earlier snapshot whose label window overlaps (a horizon above one month).
    let graders: std::collections::HashSet<i64> = (0..table.len())
        .filter(|&i| table.snapshot[i] == last && table.label[i])
        .map(|i| table.subscriber_id[i])
        .collect();
    let learners: Vec<usize> = crate::rows_where(&table, |s| s < last)
        .into_iter()
        .filter(|&i| !graders.contains(&table.subscriber_id[i]))
        .collect();
    model.causes = crate::causes::learn(&table, &learners, &said);
    let stated: std::collections::HashMap<i64, &'static str> = (0..table.len())
        .filter(|&i| table.snapshot[i] == last)
        .filter_map(|i| said[i].map(|c| (table.subscriber_id[i], c)))
        .collect();
    if let Some(c) = &model.causes {
        tracing::info!(
            leavers = c.rows,
            classes = c.classes.len(),
            "cause model fitted"
        );
    } else {
        tracing::info!(
            "too few leavers with a stated reason: reasons are ranked by their contributions"
        );
    }
    let names: Vec<String> = snapshots
        .iter()
        .map(|s| s.format("%Y-%m").to_string())
        .collect();
    // The out-of-time month's population is the drift reference, and champion and challenger
    // are compared on its rows.
    let test = table.subset(&crate::rows_where(&table, |s| s == last));
    let test_month = names.last().cloned().unwrap_or_default();
    let test_probabilities = model.probabilities(&test.x)?;
    let reference = DriftReference::of(&test, &test_probabilities, test_month.clone());
    // Train/serve skew, checked before anything is saved: the features as scoring will see
    // them against the test month's.
    if let Some(serving) = &serving {
        refuse_shifts(
            &serving_drift(serving, &model, &reference)?,
            &options.accept_shift,
        )?;
    }
    // Arrears cut-offs among the test month's churners, counted apart (自愿/非自愿).
    let by_class = match snapshots.iter().max() {
        Some(&s) => {
            let end = s + chrono::Months::new(options.horizon);
            let batches = retain_features::frame::query(
                &ctx,
                &retain_features::cut_offs_sql("effective_month", s, end, false),
                "the test month's arrears cut-offs",
            )
            .await?;
            let cut_off: std::collections::HashSet<i64> =
                retain_features::frame::ids(&batches, "subscriber_id")?
                    .into_iter()
                    .collect();
            Some(crate::report::ChurnersByClass::count(
                &test.label,
                &test_probabilities,
                |i| cut_off.contains(&test.subscriber_id[i]),
            ))
        }
        None => None,
    };
    let (version, dir) = crate::save(
        workspace,
        &model,
        &report,
        names,
        options.horizon,
        Some(reference),
    )?;
    let challenger = crate::Standing::of(version, &report.test);
    let decision = crate::contest(workspace, challenger, &test_full, &test_month)?;
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
        &stated,
    )?;
    summary.promotion = Some(decision);
    summary.features_left_out = left_out;
    summary.churners_by_class = by_class;
    crate::write_model_report(workspace, &summary)?;
    Ok(summary)
}

/// The population scoring will see, as of the data's end: its first [`SERVING_SAMPLE`]
/// subscribers (feature partitions are hash samples), from the stored snapshot when fresh.
/// `None` on a cluster, where scoring measures the whole population on the executors instead.
async fn serving_sample(
    workspace: &Workspace,
    ctx: &datafusion::prelude::SessionContext,
    set: &FeatureSet,
) -> Result<Option<Table>> {
    if retain_features::engine::cluster().is_some() {
        return Ok(None);
    }
    let as_of = retain_features::default_as_of(ctx, Cadence::Monthly).await?;
    let parts = retain_features::feature_partitions(workspace)?;
    let mut stream = retain_features::stored::features(workspace, set, as_of, parts).await?;
    let mut batches = Vec::new();
    let mut rows = 0;
    while rows < SERVING_SAMPLE
        && let Some(batch) = stream.next().await
    {
        let batch = batch?;
        rows += batch.num_rows();
        batches.push(batch);
    }
    if rows == 0 {
        return Ok(None);
    }
    Table::from_batches(&batches).map(Some)
}

/// How far `serving` (on the model's features) moved from the test month's `reference`.
fn serving_drift(
    serving: &Table,
    model: &crate::ChurnModel,
    reference: &DriftReference,
) -> Result<Drift> {
    let x = serving.columns(&model.features)?;
    let mut tally = crate::drift::Tally::new(reference);
    tally.add(&model.features, &x);
    Ok(tally.finish(&model.probabilities(&x)?))
}

/// Refuses a training whose used features shifted beyond [`MAX_SERVING_PSI`] between the test
/// month and scoring, unless `accepted` names them (or is `all`).
fn refuse_shifts(drift: &Drift, accepted: &[String]) -> Result<()> {
    let all = accepted.iter().any(|a| a == "all");
    let shifted: Vec<String> = drift
        .features
        .iter()
        .filter(|f| f.stability.psi > MAX_SERVING_PSI && !all && !accepted.contains(&f.feature))
        .map(|f| format!("{} (PSI {:.2})", f.feature, f.stability.psi))
        .collect();
    for f in drift
        .features
        .iter()
        .filter(|f| f.stability.psi > MAX_SERVING_PSI)
    {
        if all || accepted.contains(&f.feature) {
            tracing::warn!(feature = f.feature, psi = f.stability.psi, "shift accepted");
        }
    }
    if shifted.is_empty() {
        return Ok(());
    }
    Err(Error::Data(format!(
        "train/serve skew: {} moved from the test month {} to what scoring will see by more \
         than PSI {MAX_SERVING_PSI}; a feature computed one way for training and another for \
         scoring, or a population the model never saw, would make its scores mislead. Nothing \
         was saved. Fix the feature or its data, or train anyway with --accept-shift FEATURE \
         (or --accept-shift all)",
        shifted.join(", "),
        drift.reference
    )))
}

/// What leavers said at their exits (离网原因, `events.stated_reason` on a port-out, a stop
/// request or a plan change) that names a reason category; empty when the events carry none.
async fn stated_causes(
    ctx: &datafusion::prelude::SessionContext,
) -> Result<crate::causes::Statements> {
    let mut out = crate::causes::Statements::new();
    let Ok(events) = ctx.table("events").await else {
        return Ok(out);
    };
    if events
        .schema()
        .field_with_unqualified_name("stated_reason")
        .is_err()
    {
        return Ok(out);
    }
    let batches = retain_features::frame::query(
        ctx,
        "SELECT subscriber_id, stated_reason,
            CAST(CAST(CAST(\"timestamp\" AS DATE) AS INT) AS DOUBLE) AS day
         FROM events
         WHERE stated_reason IS NOT NULL
           AND kind IN ('port_out', 'stop_request', 'plan_change')",
        "the leavers' stated reasons",
    )
    .await?;
    let ids = retain_features::frame::ids(&batches, "subscriber_id")?;
    let reasons = retain_features::frame::texts(&batches, "stated_reason")?;
    let days = retain_features::frame::floats(&batches, "day")?;
    for ((id, reason), day) in ids.into_iter().zip(reasons).zip(days) {
        if let Some(category) = crate::causes::stated_category(&reason)
            && day.is_finite()
        {
            out.entry(id).or_default().push((day as i32, category));
        }
    }
    Ok(out)
}

/// Features below this share of training rows with a value carry nothing a tree can learn,
/// yet scoring would compute them and watch them drift.
const MIN_SEEN: f64 = 0.01;

/// Leaves out the features the training snapshots cannot see as the newest snapshot or the
/// scoring population (`serving`, a sample) does: present in under 1% of the training rows, or
/// in under half the share of the newest snapshot's or the scoring population's rows. Weekly
/// usage kept for fewer weeks than the snapshots reach back is the case in point: the trees
/// would learn nothing from it, and scoring, which sees it, would take it for drift.
fn leave_out_unseen(table: Table, serving: Option<&Table>) -> (Table, Vec<crate::report::LeftOut>) {
    let d = table.features.len();
    // Each feature's share of the scoring population with a value, where it has the feature.
    let serving_share = |name: &str| {
        let serving = serving.filter(|t| !t.is_empty())?;
        let j = serving.features.iter().position(|f| f == name)?;
        let w = serving.features.len();
        let seen = serving
            .x
            .iter()
            .skip(j)
            .step_by(w)
            .filter(|v| !v.is_nan())
            .count();
        Some(seen as f64 / serving.len() as f64)
    };
    let last = table.snapshot.iter().copied().max().unwrap_or(0);
    let (mut seen_old, mut seen_new) = (vec![0usize; d], vec![0usize; d]);
    let (mut rows_old, mut rows_new) = (0usize, 0usize);
    for (row, &snapshot) in table.x.chunks_exact(d.max(1)).zip(&table.snapshot) {
        let (seen, rows) = if snapshot == last {
            (&mut seen_new, &mut rows_new)
        } else {
            (&mut seen_old, &mut rows_old)
        };
        *rows += 1;
        for (s, v) in seen.iter_mut().zip(row) {
            *s += usize::from(!v.is_nan());
        }
    }
    let share = |n: usize, rows: usize| {
        if rows == 0 {
            0.0
        } else {
            n as f64 / rows as f64
        }
    };
    let mut keep = Vec::with_capacity(d);
    let mut left_out = Vec::new();
    for j in 0..d {
        let (old, newest) = (share(seen_old[j], rows_old), share(seen_new[j], rows_new));
        let new = serving_share(&table.features[j]).map_or(newest, |s| s.max(newest));
        // A table of one snapshot (a short history) has no training rows apart from it.
        let training = if rows_old == 0 { new } else { old };
        if training < MIN_SEEN || training < 0.5 * new {
            left_out.push(crate::report::LeftOut {
                feature: table.features[j].clone(),
                seen_in_training: crate::metrics::round(training),
                seen_in_newest: crate::metrics::round(new),
            });
        } else {
            keep.push(table.features[j].clone());
        }
    }
    if left_out.is_empty() || keep.is_empty() {
        return (table, Vec::new());
    }
    let table = table
        .select(&keep)
        .expect("every kept feature is in the table");
    (table, left_out)
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
    if retain_features::engine::cluster().is_some() {
        // Where the rows are: the client gathers no feature rows from the executors.
        return crate::score_plan::score_as_plans(workspace, &ctx, &model, &meta, as_of).await;
    }
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
pub(crate) fn warn_of_shifts(drift: &Drift, version: u32) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Three features over two old snapshots and the newest: `seen` everywhere, `weekly` only
    /// in the newest, `rare` almost nowhere.
    fn table() -> Table {
        let mut t = Table {
            features: vec!["seen".into(), "weekly".into(), "rare".into()],
            ..Table::default()
        };
        for (i, snapshot) in [10, 20, 30].iter().cycle().take(600).enumerate() {
            t.subscriber_id.push(i as i64);
            t.snapshot.push(*snapshot);
            t.label.push(i % 7 == 0);
            let weekly = if *snapshot == 30 { 1.0 } else { f64::NAN };
            let rare = if i == 0 { 1.0 } else { f64::NAN };
            t.x.extend([i as f64, weekly, rare]);
        }
        t
    }

    #[test]
    fn features_the_training_snapshots_cannot_see_are_left_out() {
        let (kept, left_out) = leave_out_unseen(table(), None);
        assert_eq!(kept.features, ["seen"]);
        assert_eq!(kept.x.len(), 600);
        assert!((kept.x[5] - 5.0).abs() < 1e-12);
        let names: Vec<&str> = left_out.iter().map(|l| l.feature.as_str()).collect();
        assert_eq!(names, ["weekly", "rare"]);
        assert!((left_out[0].seen_in_newest - 1.0).abs() < 1e-9);
        assert!(left_out[0].seen_in_training.abs() < 1e-12);
    }

    #[test]
    fn a_table_of_features_all_seen_is_kept_whole() {
        let mut t = table();
        t.x.iter_mut().for_each(|v| {
            if v.is_nan() {
                *v = 0.0;
            }
        });
        let (kept, left_out) = leave_out_unseen(t, None);
        assert_eq!(kept.features.len(), 3);
        assert!(left_out.is_empty());
    }

    #[test]
    fn a_shift_above_the_bar_refuses_the_training_unless_accepted() {
        let stability = |psi: f64| crate::drift::Stability {
            psi,
            level: DriftLevel::of(psi),
        };
        let drift = Drift {
            reference: "2026-07".into(),
            level: DriftLevel::Alert,
            score: stability(0.02),
            features_watch: 1,
            features_alert: 1,
            features: vec![
                crate::drift::FeatureStability {
                    feature: "active_days_trend".into(),
                    stability: stability(0.34),
                },
                crate::drift::FeatureStability {
                    feature: "voice_trend".into(),
                    stability: stability(0.15),
                },
            ],
        };
        let err = refuse_shifts(&drift, &[]).unwrap_err().to_string();
        assert!(err.contains("active_days_trend (PSI 0.34)"), "{err}");
        assert!(
            err.contains("2026-07") && err.contains("--accept-shift"),
            "{err}"
        );
        assert!(!err.contains("voice_trend"), "{err}");
        assert!(refuse_shifts(&drift, &["voice_trend".into()]).is_err());
        refuse_shifts(&drift, &["active_days_trend".into()]).unwrap();
        refuse_shifts(&drift, &["all".into()]).unwrap();
    }

    #[test]
    fn select_takes_a_models_columns_in_its_order_and_names_a_missing_one() {
        let t = table().select(&["rare".into(), "seen".into()]).unwrap();
        assert_eq!(t.features, ["rare", "seen"]);
        // Row 0 is (rare 1, seen 0), row 1 (rare missing, seen 1).
        assert!((t.x[0] - 1.0).abs() < 1e-12 && t.x[1].abs() < 1e-12);
        assert!(t.x[2].is_nan());
        assert!((t.x[3] - 1.0).abs() < 1e-12);
        let err = table().select(&["nope".into()]).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }
}

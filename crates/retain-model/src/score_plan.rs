//! Scoring everyone as plans the engine runs where the rows are: on a cluster, each executor
//! scores, tallies and explains its own partitions with the model carried in the plan
//! ([`crate::functions`]), and the scores file is written by an executor. The client sends the
//! model and receives a handful of numbers: the count, the mean, the drift tally and the
//! threshold of the explained; never the operator's rows.
//!
//! The file is the one [`crate::Scorer`] and [`crate::write_scores`] write on one machine, byte
//! for byte: the same ranking (probability, then id), deciles, reasons for the same riskiest
//! subscribers, and probabilities printed with six decimals.

use chrono::NaiveDate;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use datafusion::common::config::CsvOptions;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::execution::context::SessionContext;
use datafusion::prelude::ParquetReadOptions;
use retain_data::Workspace;
use retain_features::FeatureSet;
use retain_features::stored::Origin;

use crate::error::{Error, Result};
use crate::functions::{ChurnFunctions, DECIMAL, DRIFT, Decimal, DriftTally, PROBABILITY, REASONS};
use crate::registry::ModelMeta;
use crate::scoring::{REASONS_MAX, REASONS_SHARE};
use crate::train::ChurnModel;
use crate::workspace_run::{ScoreDrift, ScoreSummary, warn_of_shifts};

/// The features scored, as the plans name them.
const FEATURES: &str = "scored_features";

fn engine(what: &str) -> impl Fn(datafusion::error::DataFusionError) -> Error + '_ {
    move |e| Error::Data(format!("{what}: {e}"))
}

/// Scores everyone in `ctx` (a cluster's session) as of `as_of` and writes the scores file.
pub(crate) async fn score_as_plans(
    workspace: &Workspace,
    ctx: &SessionContext,
    model: &ChurnModel,
    meta: &ModelMeta,
    as_of: NaiveDate,
) -> Result<ScoreSummary> {
    let set = FeatureSet::default_set();
    let origin = register_features(workspace, ctx, &set, as_of).await?;
    score_registered(workspace, ctx, model, meta, as_of, origin).await
}

/// [`score_as_plans`] of the features registered as [`FEATURES`].
async fn score_registered(
    workspace: &Workspace,
    ctx: &SessionContext,
    model: &ChurnModel,
    meta: &ModelMeta,
    as_of: NaiveDate,
    origin: Origin,
) -> Result<ScoreSummary> {
    let columns: Vec<String> = ctx
        .table(FEATURES)
        .await
        .map_err(engine("the features"))?
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    if let Some(missing) = model.features.iter().find(|f| !columns.contains(f)) {
        return Err(Error::Data(format!(
            "the features as of {as_of} have no {missing}, which model v{} was trained on",
            meta.version
        )));
    }
    let functions = ChurnFunctions::new(model);
    ctx.register_udf(functions.probability);
    ctx.register_udf(functions.reasons);
    ctx.register_udf(Decimal::udf());
    let args = quoted(&model.features);

    // One pass for the count, the mean and the drift tally.
    let (tally, tallied) = match &meta.drift {
        Some(reference) => {
            let (udaf, taken) = DriftTally::function(reference, &model.features);
            ctx.register_udaf(udaf);
            let columns = std::iter::once("p".to_owned())
                .chain(taken.iter().map(|f| format!("\"{f}\"")))
                .collect::<Vec<_>>()
                .join(", ");
            (format!(", {DRIFT}({columns}) AS tally"), Some(taken))
        }
        None => (String::new(), None),
    };
    let sql = format!(
        "SELECT COUNT(*) AS n, AVG(p) AS mean{tally} FROM \
         (SELECT {PROBABILITY}({args}) AS p, {args} FROM {FEATURES})"
    );
    let batches = collect(ctx, &sql, "tallying the scores").await?;
    let batch = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| Error::Data("tallying the scores gave no row".into()))?;
    let n = usize::try_from(batch.column(0).as_primitive::<Int64Type>().value(0)).unwrap_or(0);
    if n == 0 {
        return Err(Error::Data(format!("no subscriber to score as of {as_of}")));
    }
    let mean = batch.column(1).as_primitive::<Float64Type>().value(0);
    let drift = match (&meta.drift, &tallied) {
        (Some(reference), Some(_)) => {
            let counts = batch.column(2).as_binary::<i32>();
            let drift = DriftTally::drift(reference, &model.features, counts.value(0))?;
            warn_of_shifts(&drift, meta.version);
            Some(drift)
        }
        _ => None,
    };

    // The riskiest `explained` get reasons: the last of them, by the file's order, is the bar.
    let explained = ((n as f64 * REASONS_SHARE).ceil() as usize).min(REASONS_MAX);
    let bar = format!(
        "SELECT subscriber_id, p FROM (SELECT subscriber_id, {PROBABILITY}({args}) AS p \
         FROM {FEATURES}) ORDER BY p DESC, subscriber_id LIMIT 1 OFFSET {}",
        explained.saturating_sub(1)
    );
    let batches = collect(ctx, &bar, "finding the riskiest subscribers").await?;
    let (bar_id, bar_p) = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .map(|b| {
            (
                b.column(0).as_primitive::<Int64Type>().value(0),
                b.column(1).as_primitive::<Float64Type>().value(0),
            )
        })
        .ok_or_else(|| Error::Data("finding the riskiest subscribers gave no row".into()))?;

    let path = crate::scores_path(workspace, as_of);
    let dir = path.parent().expect("a scores file is in a directory");
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let partial = path.with_extension("csv.writing");
    // `{bar_p:?}` prints the probability so that it reads back as the same f64.
    let write = format!(
        "WITH s AS (SELECT subscriber_id, {PROBABILITY}({args}) AS p, {args} FROM {FEATURES}), \
         r AS (SELECT subscriber_id, p, CASE WHEN p > {bar_p:?} OR (p = {bar_p:?} AND \
         subscriber_id <= {bar_id}) THEN {REASONS}({args}) END AS reasons FROM s) \
         SELECT subscriber_id, {DECIMAL}(p, 6) AS probability, \
         (CAST(ROW_NUMBER() OVER (ORDER BY p DESC, subscriber_id) AS BIGINT) - 1) * 10 / {n} + 1 \
         AS decile, split_part(reasons, '|', 1) AS reason_1, split_part(reasons, '|', 2) AS \
         reason_2, split_part(reasons, '|', 3) AS reason_3, CAST({version} AS BIGINT) AS \
         model_version FROM r ORDER BY p DESC, subscriber_id",
        version = meta.version
    );
    let written = async {
        ctx.sql(&write)
            .await
            .map_err(engine("planning the scores"))?
            .write_csv(
                &partial.to_string_lossy(),
                DataFrameWriteOptions::new().with_single_file_output(true),
                Some(CsvOptions::default().with_has_header(true)),
            )
            .await
            .map_err(engine("writing the scores"))
    }
    .await;
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, &path)
        .map_err(|e| Error::io(format!("publishing {}", path.display()), e))?;
    let file = crate::ScoresFile::at(path.clone())
        .ok_or_else(|| Error::Data(format!("{}: not a scores file name", path.display())))?;
    let score_drift = crate::previous_scores(workspace, &file.path).and_then(|previous| {
        let values = |f: &crate::ScoresFile| -> Option<Vec<f64>> {
            f.probabilities()
                .map_err(|e| tracing::warn!("no score drift: {e}"))
                .ok()
                .map(|p| p.values().collect())
        };
        Some(ScoreDrift {
            against: previous.name(),
            psi: crate::psi(&values(&previous)?, &values(&file)?),
        })
    });
    Ok(ScoreSummary {
        as_of,
        model_version: meta.version,
        scored: n,
        explained,
        features: origin,
        mean_probability: mean,
        scores_file: file.path,
        score_drift,
        drift,
    })
}

/// The features as of `as_of` under [`FEATURES`]: the stored snapshot when fresh, else their
/// plan.
async fn register_features(
    workspace: &Workspace,
    ctx: &SessionContext,
    set: &FeatureSet,
    as_of: NaiveDate,
) -> Result<Origin> {
    let _ = ctx.deregister_table(FEATURES);
    if let Some((file, _)) = retain_features::stored::fresh(workspace, set, as_of)? {
        ctx.register_parquet(
            FEATURES,
            &*file.to_string_lossy(),
            ParquetReadOptions::default(),
        )
        .await
        .map_err(engine("reading the stored features"))?;
        return Ok(Origin::Stored);
    }
    let frame = ctx
        .sql(&retain_features::features_sql(set, as_of))
        .await
        .map_err(engine("planning the features"))?;
    ctx.register_table(FEATURES, frame.into_view())
        .map_err(engine("planning the features"))?;
    Ok(Origin::Computed)
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn collect(
    ctx: &SessionContext,
    sql: &str,
    what: &str,
) -> Result<Vec<datafusion::arrow::array::RecordBatch>> {
    ctx.sql(sql)
        .await
        .map_err(engine(what))?
        .collect()
        .await
        .map_err(engine(what))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::table::Table;

    /// A model read back from its text (as the registry loads one) and its meta, with drift
    /// bins from its training rows.
    fn model_and_rows(rows: usize) -> (ChurnModel, ModelMeta, Table) {
        let mut rng = crate::split::SplitMix(11);
        let mut next = move || rng.unit();
        let (mut x, mut label) = (Vec::new(), Vec::new());
        for _ in 0..rows {
            let (complaints, fee) = (next() * 5.0, next() * 100.0);
            label.push(next() < 0.05 + 0.1 * complaints - 0.001 * fee);
            // Ties in probability at the reasons' bar: a share of rows repeat.
            x.extend([complaints.floor(), (fee / 10.0).floor()]);
        }
        let t = Table {
            features: vec!["complaints_3m".into(), "fee_avg_3m".into()],
            subscriber_id: (0..rows as i64).map(|i| 1_000 + i * 3).collect(),
            snapshot: vec![0; rows],
            label,
            x,
            levels: vec![None, None],
        };
        let all: Vec<usize> = (0..rows).collect();
        let (model, _) = crate::train::fit(&t, &all[..rows * 4 / 5], &all[rows * 4 / 5..]).unwrap();
        let p = model.probabilities(&t.x).unwrap();
        let text = model.text();
        let model = ChurnModel {
            forest: crate::forest::Forest::from_lightgbm(&text).unwrap(),
            ..model
        };
        let meta = ModelMeta {
            version: 3,
            features: model.features.clone(),
            platt: model.platt,
            logistic: model.logistic.clone(),
            blend: model.blend,
            level_order: model.level_order.clone(),
            snapshots: Vec::new(),
            horizon_months: 3,
            metrics: serde_json::Value::Null,
            trained_at: None,
            drift: Some(DriftReference::of(&t, &p, "2026-01".into())),
            causes: None,
        };
        (model, meta, t)
    }

    use crate::drift::DriftReference;

    #[test]
    fn scores_written_by_plans_are_the_scorers_file_byte_for_byte() {
        let (model, meta, t) = model_and_rows(2_000);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let as_of = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();

        // The embedded scorer, as `score_workspace` runs it.
        let here = tempfile::tempdir().unwrap();
        let here = Workspace::create_or_open(here.path()).unwrap();
        let columns: Vec<ArrayRef> =
            std::iter::once(Arc::new(Int64Array::from(t.subscriber_id.clone())) as ArrayRef)
                .chain((0..2).map(|j| {
                    Arc::new(Float64Array::from(
                        (0..t.len()).map(|r| t.x[r * 2 + j]).collect::<Vec<_>>(),
                    )) as ArrayRef
                }))
                .collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("subscriber_id", DataType::Int64, false),
            Field::new("complaints_3m", DataType::Float64, true),
            Field::new("fee_avg_3m", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(schema, columns).unwrap();
        let mut scorer = crate::Scorer::new(&model).watching(meta.drift.as_ref().unwrap());
        scorer.push(batch.clone()).unwrap();
        let scored = scorer.finish().unwrap();
        let file = crate::write_scores(
            &here,
            as_of,
            meta.version,
            &scored.ids,
            &scored.probabilities,
            &scored.reasons,
        )
        .unwrap();
        let want = std::fs::read_to_string(&file.path).unwrap();

        // The plans, over the same rows split into partitions.
        let there = tempfile::tempdir().unwrap();
        let there = Workspace::create_or_open(there.path()).unwrap();
        let ctx = SessionContext::new_with_config(
            datafusion::prelude::SessionConfig::new().with_target_partitions(3),
        );
        let parts: Vec<RecordBatch> = (0..4).map(|k| batch.slice(k * 500, 500)).collect();
        let table = datafusion::datasource::MemTable::try_new(
            batch.schema(),
            parts.into_iter().map(|b| vec![b]).collect(),
        )
        .unwrap();
        ctx.register_table(FEATURES, Arc::new(table)).unwrap();
        let summary = rt
            .block_on(score_registered(
                &there,
                &ctx,
                &model,
                &meta,
                as_of,
                Origin::Stored,
            ))
            .unwrap();
        let got = std::fs::read_to_string(&summary.scores_file).unwrap();
        assert_eq!(got, want);
        assert_eq!(summary.scored, 2_000);
        assert_eq!(summary.explained, 600);
        assert_eq!(
            summary
                .drift
                .as_ref()
                .map(|d| serde_json::to_string(d).unwrap()),
            scored
                .drift
                .as_ref()
                .map(|d| serde_json::to_string(d).unwrap())
        );
        let mean = scored.probabilities.iter().sum::<f64>() / 2_000.0;
        assert!((summary.mean_probability - mean).abs() < 1e-12);
        assert!(
            !there
                .root()
                .join("scores")
                .join("2026-03-01.csv.writing")
                .exists()
        );

        // A model whose features the rows lack is refused, naming the feature.
        let mut other = meta.clone();
        other.version = 4;
        let lacking = ChurnModel {
            features: vec!["complaints_3m".into(), "arrears_days".into()],
            forest: model.forest.clone(),
            level_order: model.level_order.clone(),
            platt: model.platt,
            logistic: model.logistic.clone(),
            blend: model.blend,
            causes: None,
        };
        let error = rt
            .block_on(score_registered(
                &there,
                &ctx,
                &lacking,
                &other,
                as_of,
                Origin::Stored,
            ))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("arrears_days") && error.contains("v4"),
            "{error}"
        );
    }
}

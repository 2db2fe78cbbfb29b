//! A warning run: score everyone as of a date, write the warning list, and compare it with the
//! previous run.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::execution::context::SessionContext;
use futures::StreamExt;
use serde::Serialize;

use crate::error::{Error, Result};
use retain_features::Cadence;
use retain_features::conditions::month_start;

use crate::list::Level;
use crate::query::scoring_query;
use crate::rules::RuleSet;

/// Warning level codes, most serious first.
pub const LEVELS: [&str; 3] = [Level::Red.code(), Level::Yellow.code(), Level::Blue.code()];
/// Tenure cohorts, reported separately because their churn causes differ.
pub const COHORTS: [&str; 3] = ["lt6m", "6to12m", "gt12m"];

/// A rule that fired for a subscriber, with the values that made it fire.
#[derive(Debug, Clone, Serialize)]
pub struct FiredRule {
    pub id: String,
    pub name_zh: String,
    pub name_en: String,
    pub points: i64,
    pub values: BTreeMap<String, serde_json::Value>,
}

/// One subscriber on the warning list.
#[derive(Debug, Clone, Serialize)]
pub struct Warning {
    pub subscriber_id: i64,
    pub level: Level,
    pub score: i64,
    pub cohort: String,
    pub branch_id: Option<String>,
    pub manager_id: Option<String>,
    pub rules: Vec<FiredRule>,
}

/// What changed since the previous run of the same cadence.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Changes {
    pub previous: Option<PathBuf>,
    pub new: u64,
    pub escalated: u64,
    pub de_escalated: u64,
    pub unchanged: u64,
    pub resolved: u64,
}

/// The summary of a run (the `--json` object).
#[derive(Debug, Clone, Serialize)]
pub struct WarnSummary {
    pub as_of: NaiveDate,
    pub cadence: Cadence,
    pub rules_file: PathBuf,
    pub scored: u64,
    pub potential_churners: u64,
    pub red: u64,
    pub yellow: u64,
    pub blue: u64,
    /// Level counts per tenure cohort.
    pub cohorts: BTreeMap<String, BTreeMap<String, u64>>,
    /// How many subscribers each rule fired for.
    pub rule_hits: BTreeMap<String, u64>,
    pub warnings_file: PathBuf,
    pub changes: Changes,
}

fn json_value(array: &ArrayRef, row: usize) -> serde_json::Value {
    if array.is_null(row) {
        return serde_json::Value::Null;
    }
    match array.data_type() {
        DataType::Boolean => serde_json::Value::Bool(array.as_boolean().value(row)),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).into(),
        DataType::Float64 => {
            let v = array.as_primitive::<Float64Type>().value(row);
            serde_json::Number::from_f64((v * 100.0).round() / 100.0)
                .map_or(serde_json::Value::Null, serde_json::Value::Number)
        }
        _ => serde_json::Value::Null,
    }
}

/// A string column as `Utf8`, whichever string layout the engine produced (Parquet strings come
/// back as `Utf8View`).
pub(crate) fn strings(array: &ArrayRef) -> Result<StringArray> {
    let cast = datafusion::arrow::compute::cast(array, &DataType::Utf8)
        .map_err(|e| Error::BadRequest(format!("internal: reading a text column: {e}")))?;
    Ok(cast.as_string::<i32>().clone())
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| Error::BadRequest(format!("internal: scoring output lacks {name}")))
}

/// Scores every subscriber as of `as_of` and returns the warned ones, most serious first.
pub async fn evaluate(
    ctx: &SessionContext,
    rules: &RuleSet,
    as_of: NaiveDate,
) -> Result<(u64, Vec<Warning>, BTreeMap<String, u64>, u64)> {
    let query = scoring_query(rules, as_of);
    // One pass over everyone gives the counts and the list: a second query for the counts
    // computed every condition's features again, half of a warning run.
    let sql = format!(
        "WITH {}, scored AS ({}) SELECT * FROM scored",
        query.ctes, query.select
    );
    let mut stream = ctx
        .sql(&sql)
        .await
        .map_err(|e| Error::engine("planning the warning run", e))?
        .execute_stream()
        .await
        .map_err(|e| Error::engine("running the warning run", e))?;
    let mut scored = 0;
    let mut hit_counts = vec![0u64; rules.rules.len()];
    let mut warnings = Vec::new();
    let mut potential = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| Error::engine("running the warning run", e))?;
        scored += batch.num_rows() as u64;
        let ids = column(&batch, "subscriber_id")?
            .as_primitive::<Int64Type>()
            .clone();
        let levels = strings(column(&batch, "level")?)?;
        let scores = column(&batch, "score")?.as_primitive::<Int64Type>().clone();
        let cohorts = strings(column(&batch, "cohort")?)?;
        let branches = strings(column(&batch, "branch_id")?)?;
        let managers = strings(column(&batch, "manager_id")?)?;
        let hits: Vec<BooleanArray> = (0..rules.rules.len())
            .map(|i| column(&batch, &format!("r{i}")).map(|a| a.as_boolean().clone()))
            .collect::<Result<_>>()?;
        for (count, hit) in hit_counts.iter_mut().zip(&hits) {
            *count += hit.true_count() as u64;
        }
        for row in 0..batch.num_rows() {
            let score = scores.value(row);
            let cohort = cohorts.value(row);
            if score >= rules.threshold_in(cohort) {
                potential += 1;
            }
            if levels.is_null(row) {
                continue;
            }
            let mut fired = Vec::new();
            for (i, rule) in rules.rules.iter().enumerate() {
                if !hits[i].value(row) {
                    continue;
                }
                let mut values = BTreeMap::new();
                for alias in &rule.inputs {
                    let index: usize = alias[1..].parse().expect("aliases are f<index>");
                    let label = rules.compiler.sources[index].label();
                    values.insert(label, json_value(column(&batch, alias)?, row));
                }
                fired.push(FiredRule {
                    id: rule.id.clone(),
                    name_zh: rule.name_zh.clone(),
                    name_en: rule.name_en.clone(),
                    points: rules.points_in(i, cohort),
                    values,
                });
            }
            let level = Level::from_code(levels.value(row)).ok_or_else(|| {
                Error::BadRequest(format!("the scorecard gave level {:?}", levels.value(row)))
            })?;
            warnings.push(Warning {
                subscriber_id: ids.value(row),
                level,
                score,
                cohort: cohort.to_owned(),
                branch_id: (!branches.is_null(row)).then(|| branches.value(row).to_owned()),
                manager_id: (!managers.is_null(row)).then(|| managers.value(row).to_owned()),
                rules: fired,
            });
        }
    }
    let rule_hits = rules
        .rules
        .iter()
        .zip(hit_counts)
        .map(|(rule, n)| (rule.id.clone(), n))
        .collect();
    sort_warnings(&mut warnings);
    Ok((scored, warnings, rule_hits, potential))
}

/// Sorted so the list reads red first, highest score first, and is stable across runs.
fn sort_warnings(warnings: &mut [Warning]) {
    warnings.sort_by(|a, b| {
        a.level
            .cmp(&b.level)
            .then(b.score.cmp(&a.score))
            .then(a.subscriber_id.cmp(&b.subscriber_id))
    });
}

/// [`evaluate`] one partition of the subscribers at a time (`parts` of them), each on its
/// own session with the outputs that conditions read registered, merged into what one run over
/// everyone returns. A ten-million-subscriber operator's scoring state does not fit in memory
/// at once; a million's does.
pub async fn evaluate_partitioned(
    workspace: &retain_data::Workspace,
    rules: &RuleSet,
    as_of: NaiveDate,
    parts: u32,
) -> Result<(u64, Vec<Warning>, BTreeMap<String, u64>, u64)> {
    let parts = parts.max(1);
    let (mut scored, mut warnings, mut rule_hits, mut potential) =
        (0, Vec::new(), BTreeMap::new(), 0);
    for part in 0..parts {
        let started = std::time::Instant::now();
        let ctx = retain_features::partition_session(workspace, part, parts).await?;
        retain_features::conditions::register_outputs(&ctx, workspace, &rules.compiler).await?;
        let ready = started.elapsed();
        let (s, w, hits, p) = evaluate(&ctx, rules, as_of).await?;
        // Where a large operator's warning run spends its time, partition by partition.
        tracing::debug!(
            part,
            parts,
            scored = s,
            warned = w.len(),
            session_s = ready.as_secs_f64(),
            scoring_s = started.elapsed().saturating_sub(ready).as_secs_f64(),
            "warning partition"
        );
        scored += s;
        potential += p;
        warnings.extend(w);
        for (rule, n) in hits {
            *rule_hits.entry(rule).or_insert(0) += n;
        }
    }
    sort_warnings(&mut warnings);
    Ok((scored, warnings, rule_hits, potential))
}

/// Runs the warning for a workspace and writes the list under `<workspace>/warnings/`.
pub async fn run(
    ctx: &SessionContext,
    rules: &RuleSet,
    workspace: &retain_data::Workspace,
    as_of: NaiveDate,
    cadence: Cadence,
) -> Result<(WarnSummary, Vec<Warning>)> {
    let parts = retain_features::feature_partitions(workspace)?;
    let (scored, warnings, rule_hits, potential) = if parts > 1 {
        evaluate_partitioned(workspace, rules, as_of, parts).await?
    } else {
        retain_features::conditions::register_outputs(ctx, workspace, &rules.compiler).await?;
        evaluate(ctx, rules, as_of).await?
    };
    let dir = retain_features::outputs::warnings_dir(workspace);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let stem = format!("{as_of}-{}", cadence.name());
    let previous = previous_list(&dir, &stem, cadence)?;
    let changes = compare(previous.as_deref(), &warnings)?;
    let csv_path = crate::list::write(&dir, &stem, &warnings)?;

    let mut cohorts: BTreeMap<String, BTreeMap<String, u64>> = COHORTS
        .iter()
        .map(|c| {
            (
                (*c).to_owned(),
                LEVELS.iter().map(|l| ((*l).to_owned(), 0)).collect(),
            )
        })
        .collect();
    for w in &warnings {
        *cohorts
            .entry(w.cohort.clone())
            .or_default()
            .entry(w.level.code().to_owned())
            .or_default() += 1;
    }
    let count = |level: Level| warnings.iter().filter(|w| w.level == level).count() as u64;
    let summary = WarnSummary {
        as_of,
        cadence,
        rules_file: rules.source.clone(),
        scored,
        potential_churners: potential,
        red: count(Level::Red),
        yellow: count(Level::Yellow),
        blue: count(Level::Blue),
        cohorts,
        rule_hits,
        warnings_file: csv_path,
        changes,
    };
    Ok((summary, warnings))
}

/// The latest earlier list of the same cadence; a re-run for the same date compares with the
/// list before it, not with itself.
fn previous_list(dir: &Path, stem: &str, cadence: Cadence) -> Result<Option<PathBuf>> {
    let suffix = format!("-{}.parquet", cadence.name());
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(&suffix) && n.as_str() < format!("{stem}.parquet").as_str())
        .collect();
    names.sort();
    Ok(names.pop().map(|n| dir.join(n)))
}

fn compare(previous: Option<&Path>, warnings: &[Warning]) -> Result<Changes> {
    let Some(path) = previous else {
        return Ok(Changes {
            new: warnings.len() as u64,
            ..Changes::default()
        });
    };
    let mut before: HashMap<i64, Option<Level>> = HashMap::new();
    for batch in retain_data::read_batches(path)? {
        let batch =
            batch.map_err(|e| Error::BadRequest(format!("reading {}: {e}", path.display())))?;
        let ids = batch.column(0).as_primitive::<Int64Type>();
        let levels = batch.column(1).as_string::<i32>();
        for row in 0..batch.num_rows() {
            before.insert(ids.value(row), Level::from_code(levels.value(row)));
        }
    }
    let mut changes = Changes {
        previous: Some(path.to_path_buf()),
        ..Changes::default()
    };
    for w in warnings {
        match before.remove(&w.subscriber_id) {
            None => changes.new += 1,
            // Red is the least level, so a smaller level is an escalation; a level this
            // version does not know counts as the mildest.
            Some(old) => match old.map_or(std::cmp::Ordering::Less, |old| w.level.cmp(&old)) {
                std::cmp::Ordering::Less => changes.escalated += 1,
                std::cmp::Ordering::Greater => changes.de_escalated += 1,
                std::cmp::Ordering::Equal => changes.unchanged += 1,
            },
        }
    }
    changes.resolved = before.len() as u64;
    Ok(changes)
}

/// The month of `date` as `YYYY-MM`.
pub(crate) fn month_label(date: NaiveDate) -> String {
    month_start(date).format("%Y-%m").to_string()
}

//! `retain model eval`: the training recipe on any churn table, so retain can be measured on
//! data it has never seen with the same defaults as on its own.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::frame::{Column, Frame, read_frame};
use crate::metrics::{Metrics, evaluate};
use crate::split::stratified;
use crate::table::Table;
use crate::train::{FitReport, REFIT_BELOW, fit};

/// A text column with more distinct values than this share of rows (and more than
/// [`MAX_LEVELS`]) names rows rather than describing them, like a customer id: it is dropped.
const ID_LIKE_SHARE: f64 = 0.5;
/// Levels kept per categorical column, the most frequent first; the rest share one level.
const MAX_LEVELS: usize = 100;
/// Share of the training rows held out for early stopping, blending and calibration.
const VALIDATION_SHARE: f64 = 0.2;

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub train: PathBuf,
    /// A separate test file; without it, `split` of the training file is held out.
    pub test: Option<PathBuf>,
    pub split: f64,
    pub seed: u64,
    pub target: String,
    pub id: Option<String>,
    /// Writes `id,label,probability` for every test row here.
    pub predictions: Option<PathBuf>,
}

/// A column that is not used, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Dropped {
    pub column: String,
    pub reason: String,
}

/// The outcome of an evaluation.
#[derive(Debug, Serialize)]
pub struct EvalReport {
    pub auc: f64,
    pub pr_auc: f64,
    pub top_decile_lift: f64,
    pub log_loss: f64,
    pub brier: f64,
    pub empc: f64,
    pub train_seconds: f64,
    /// Probabilities of every test row (features already in memory), on every core.
    pub score_seconds: f64,
    /// The same scoring on one core: what the goal of a million rows a second per core
    /// counts, where two cores of a virtual machine may not double a core's rate.
    pub score_seconds_one_core: f64,
    pub rows_train: usize,
    pub rows_test: usize,
    /// Rows without a usable target value.
    pub rows_skipped: usize,
    /// The target value counted as churn.
    pub positive_label: String,
    pub numeric: Vec<String>,
    pub categorical: Vec<String>,
    pub dropped: Vec<Dropped>,
    pub fit: FitReport,
    pub test: Metrics,
}

/// How the target's values map to churn.
struct Target {
    positive: String,
    negative: String,
}

const YES: &[&str] = &["1", "yes", "y", "true", "t", "churn", "churned"];
const NO: &[&str] = &["0", "no", "n", "false", "f", "stay", "stayed", "retained"];

fn normalize(value: &str) -> String {
    value.trim().trim_end_matches('.').to_lowercase()
}

impl Target {
    /// Reads the two values of the target column: the usual spellings of yes/no, or else the
    /// less frequent of exactly two values counts as churn (churners are the minority).
    fn infer(frame: &Frame, column: usize) -> Result<Target> {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for r in 0..frame.rows {
            if let Some(v) = frame.columns[column].text(r) {
                *counts.entry(normalize(&v)).or_default() += 1;
            }
        }
        let mut values: Vec<(String, usize)> = counts.into_iter().collect();
        values.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        let name = &frame.names[column];
        match values.as_slice() {
            [(a, _), (b, _)] => {
                let (positive, negative) = if YES.contains(&a.as_str()) && NO.contains(&b.as_str())
                {
                    (a.clone(), b.clone())
                } else if YES.contains(&b.as_str()) && NO.contains(&a.as_str()) {
                    (b.clone(), a.clone())
                } else {
                    (a.clone(), b.clone())
                };
                Ok(Target { positive, negative })
            }
            _ => Err(Error::Data(format!(
                "{}: the target column {name:?} must have exactly two values; it has {}",
                frame.path.display(),
                values.len()
            ))),
        }
    }

    /// The label of a row, `None` when missing or neither value.
    fn label(&self, frame: &Frame, column: usize, row: usize) -> Option<bool> {
        let v = normalize(&frame.columns[column].text(row)?);
        if v == self.positive {
            Some(true)
        } else if v == self.negative {
            Some(false)
        } else {
            None
        }
    }
}

/// How each column of the training file becomes a feature.
enum Plan {
    Numeric,
    Categorical(HashMap<String, usize>, Vec<String>),
}

/// Decides every column's role from the training file.
fn plan(
    frame: &Frame,
    skip: &[usize],
    rows: &[usize],
) -> (Vec<(usize, String, Plan)>, Vec<Dropped>) {
    let mut features = Vec::new();
    let mut dropped = Vec::new();
    for (j, name) in frame.names.iter().enumerate() {
        if skip.contains(&j) {
            continue;
        }
        match &frame.columns[j] {
            Column::Numbers(v) => {
                if rows.iter().all(|r| v[*r].is_nan()) {
                    dropped.push(Dropped {
                        column: name.clone(),
                        reason: "always missing".into(),
                    });
                } else {
                    features.push((j, name.clone(), Plan::Numeric));
                }
            }
            Column::Text(v) => {
                let mut counts: HashMap<&str, usize> = HashMap::new();
                for r in rows {
                    if let Some(cell) = v[*r].as_deref() {
                        *counts.entry(cell).or_default() += 1;
                    }
                }
                if counts.is_empty() {
                    dropped.push(Dropped {
                        column: name.clone(),
                        reason: "always missing".into(),
                    });
                    continue;
                }
                if counts.len() > MAX_LEVELS
                    && counts.len() as f64 > ID_LIKE_SHARE * rows.len() as f64
                {
                    dropped.push(Dropped {
                        column: name.clone(),
                        reason: format!(
                            "identifier-like: {} distinct values in {} rows",
                            counts.len(),
                            rows.len()
                        ),
                    });
                    continue;
                }
                let mut levels: Vec<(&str, usize)> = counts.into_iter().collect();
                levels.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
                let mut names: Vec<String> = levels
                    .iter()
                    .take(MAX_LEVELS)
                    .map(|(l, _)| (*l).to_string())
                    .collect();
                let mut codes: HashMap<String, usize> = names
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (l.clone(), i))
                    .collect();
                if levels.len() > MAX_LEVELS {
                    let other = names.len();
                    names.push("(other)".into());
                    for (l, _) in &levels[MAX_LEVELS..] {
                        codes.insert((*l).to_string(), other);
                    }
                }
                features.push((j, name.clone(), Plan::Categorical(codes, names)));
            }
        }
    }
    (features, dropped)
}

/// The rows `rows` of `frame` as a table, encoded by `features` (found by name, so a test file
/// may order its columns differently). Levels unseen in training are missing.
fn encode(
    frame: &Frame,
    features: &[(usize, String, Plan)],
    rows: &[usize],
    labels: &[bool],
) -> Result<Table> {
    let columns: Vec<usize> = features
        .iter()
        .map(|(_, name, _)| frame.index(name))
        .collect::<Result<_>>()?;
    let mut t = Table {
        features: features.iter().map(|(_, n, _)| n.clone()).collect(),
        levels: features
            .iter()
            .map(|(_, _, p)| match p {
                Plan::Numeric => None,
                Plan::Categorical(_, names) => Some(names.clone()),
            })
            .collect(),
        ..Table::default()
    };
    t.x.reserve(rows.len() * features.len());
    for (k, &r) in rows.iter().enumerate() {
        t.subscriber_id.push(r as i64);
        t.snapshot.push(0);
        t.label.push(labels[k]);
        for ((_, _, p), &j) in features.iter().zip(&columns) {
            let column = &frame.columns[j];
            t.x.push(match p {
                Plan::Numeric => column.number(r),
                Plan::Categorical(codes, _) => column
                    .text(r)
                    .and_then(|v| codes.get(&v))
                    .map_or(f64::NAN, |c| *c as f64),
            });
        }
    }
    Ok(t)
}

/// Rows with a usable target and their labels.
fn labelled(frame: &Frame, target: &Target, column: usize) -> (Vec<usize>, Vec<bool>) {
    (0..frame.rows)
        .filter_map(|r| target.label(frame, column, r).map(|l| (r, l)))
        .unzip()
}

/// Trains with the default recipe and evaluates on the test rows.
pub fn evaluate_files(options: &EvalOptions) -> Result<EvalReport> {
    if !(0.0..1.0).contains(&options.split) || options.split <= 0.0 {
        return Err(Error::Data(format!(
            "--split must be between 0 and 1; it is {}",
            options.split
        )));
    }
    let train_frame = read_frame(&options.train)?;
    let target_col = train_frame.index(&options.target)?;
    let id_col = options
        .id
        .as_deref()
        .map(|id| train_frame.index(id))
        .transpose()?;
    let target = Target::infer(&train_frame, target_col)?;
    let (rows, labels) = labelled(&train_frame, &target, target_col);
    let mut skipped = train_frame.rows - rows.len();

    // The training and test rows: a second file, or a stratified share of the first.
    let test_frame = options.test.as_deref().map(read_frame).transpose()?;
    let (train_rows, train_labels, test_rows, test_labels) = if let Some(test) = &test_frame {
        let column = test.index(&options.target)?;
        let (test_rows, test_labels) = labelled(test, &target, column);
        skipped += test.rows - test_rows.len();
        (rows, labels, test_rows, test_labels)
    } else {
        let mut by_row = vec![false; train_frame.rows];
        for (r, l) in rows.iter().zip(&labels) {
            by_row[*r] = *l;
        }
        let (kept, held) = stratified(&rows, &by_row, options.split, options.seed);
        let kept_labels = kept.iter().map(|r| by_row[*r]).collect();
        let held_labels = held.iter().map(|r| by_row[*r]).collect();
        (kept, kept_labels, held, held_labels)
    };
    if train_labels.iter().all(|l| *l) || train_labels.iter().all(|l| !*l) {
        return Err(Error::Data(format!(
            "{}: the training rows need both churners and non-churners",
            options.train.display()
        )));
    }

    let skip: Vec<usize> = std::iter::once(target_col).chain(id_col).collect();
    let (features, dropped) = plan(&train_frame, &skip, &train_rows);
    if features.is_empty() {
        return Err(Error::Data("no usable feature column".into()));
    }
    // The validation rows are drawn before encoding, so that a large table can be laid out
    // with its fitting rows first and its validation rows after, each in file order: the
    // trainer then bins both where they lie, where copying them out took a second on the synthetic
    // operator's 700,000 rows. A small table keeps the file's order, which its refit's row
    // sampling follows; its copies cost nothing.
    let positions: Vec<usize> = (0..train_rows.len()).collect();
    let (fit_at, valid_at) = stratified(&positions, &train_labels, VALIDATION_SHARE, options.seed);
    let (order, fit_rows, valid_rows) = if train_rows.len() < REFIT_BELOW {
        (positions, fit_at, valid_at)
    } else {
        let fitting = fit_at.len();
        let order = fit_at.into_iter().chain(valid_at).collect();
        (
            order,
            (0..fitting).collect(),
            (fitting..train_rows.len()).collect(),
        )
    };
    let rows: Vec<usize> = order.iter().map(|k| train_rows[*k]).collect();
    let labels: Vec<bool> = order.iter().map(|k| train_labels[*k]).collect();
    let train = encode(&train_frame, &features, &rows, &labels)?;
    let test_source = test_frame.as_ref().unwrap_or(&train_frame);
    let test = encode(test_source, &features, &test_rows, &test_labels)?;

    let (model, fit_report) = fit(&train, &fit_rows, &valid_rows)?;
    let started = Instant::now();
    let p = model.probabilities(&test.x)?;
    let score_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let _one_core_scores = model.probabilities_on_one_core(&test.x)?;
    let score_seconds_one_core = started.elapsed().as_secs_f64();
    let metrics = evaluate(&p, &test.label);
    if let Some(path) = &options.predictions {
        write_predictions(path, test_source, id_col, &test_rows, &test.label, &p)?;
    }
    let names = |categorical: bool| {
        features
            .iter()
            .filter(|(_, _, p)| matches!(p, Plan::Categorical(..)) == categorical)
            .map(|(_, n, _)| n.clone())
            .collect()
    };
    Ok(EvalReport {
        auc: metrics.auc,
        pr_auc: metrics.pr_auc,
        top_decile_lift: metrics.top_decile_lift,
        log_loss: metrics.log_loss,
        brier: metrics.brier,
        empc: metrics.empc,
        train_seconds: fit_report.train_seconds,
        score_seconds,
        score_seconds_one_core,
        rows_train: train.len(),
        rows_test: test.len(),
        rows_skipped: skipped,
        positive_label: target.positive,
        numeric: names(false),
        categorical: names(true),
        dropped,
        fit: fit_report,
        test: metrics,
    })
}

fn write_predictions(
    path: &Path,
    frame: &Frame,
    id_col: Option<usize>,
    rows: &[usize],
    labels: &[bool],
    p: &[f64],
) -> Result<()> {
    let fail = |e: csv::Error| Error::Data(format!("{}: {e}", path.display()));
    let mut w = csv::Writer::from_path(path).map_err(fail)?;
    w.write_record(["id", "label", "probability"])
        .map_err(fail)?;
    for ((r, l), q) in rows.iter().zip(labels).zip(p) {
        let id = id_col
            .and_then(|j| frame.columns[j].text(*r))
            .unwrap_or_else(|| r.to_string());
        w.write_record([id, u8::from(*l).to_string(), format!("{q:.8}")])
            .map_err(fail)?;
    }
    w.flush().map_err(|e| Error::Io {
        context: format!("writing {}", path.display()),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    /// A churn table whose signal is split between a number and a category.
    fn write_table(path: &Path, rows: usize, seed: u64) {
        let mut state = seed;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut text = String::from("customerID,contract,monthly,noise,Churn\n");
        for i in 0..rows {
            let contract = ["Month-to-month", "One year", "Two year"][(next() * 3.0) as usize];
            let monthly = 20.0 + next() * 100.0;
            let z = -2.0
                + monthly / 50.0
                + if contract == "Month-to-month" {
                    1.5
                } else {
                    -0.5
                };
            let churn = next() < 1.0 / (1.0 + (-z).exp());
            let monthly = if i % 50 == 0 {
                String::new()
            } else {
                format!("{monthly:.2}")
            };
            let _ = writeln!(
                text,
                "{i:04}-X,{contract},{monthly},{:.3},{}",
                next(),
                if churn { "Yes" } else { "No" }
            );
        }
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn learns_a_table_it_has_never_seen() {
        let dir = tempfile::tempdir().unwrap();
        let train = dir.path().join("train.csv");
        write_table(&train, 4000, 3);
        let predictions = dir.path().join("p.csv");
        let report = evaluate_files(&EvalOptions {
            train: train.clone(),
            test: None,
            split: 0.3,
            seed: 42,
            target: "Churn".into(),
            id: Some("customerID".into()),
            predictions: Some(predictions.clone()),
        })
        .unwrap();
        assert_eq!(report.rows_train + report.rows_test, 4000);
        assert_eq!(report.rows_test, 1200);
        assert_eq!(report.positive_label, "yes");
        assert_eq!(report.categorical, ["contract"]);
        assert_eq!(report.numeric, ["monthly", "noise"]);
        assert!(report.auc > 0.7, "{}", report.auc);
        assert!(report.top_decile_lift > 1.5);
        let written = std::fs::read_to_string(&predictions).unwrap();
        assert_eq!(written.lines().count(), 1201);
        assert!(written.lines().nth(1).unwrap().contains("-X,"));
        // The same seed gives the same split and model.
        let again = evaluate_files(&EvalOptions {
            train,
            test: None,
            split: 0.3,
            seed: 42,
            target: "Churn".into(),
            id: Some("customerID".into()),
            predictions: None,
        })
        .unwrap();
        assert!((again.auc - report.auc).abs() < 1e-12);
    }

    #[test]
    fn an_id_column_not_named_is_dropped_as_identifier_like() {
        let dir = tempfile::tempdir().unwrap();
        let (train, test) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
        write_table(&train, 3000, 5);
        write_table(&test, 1000, 6);
        let report = evaluate_files(&EvalOptions {
            train,
            test: Some(test),
            split: 0.3,
            seed: 1,
            target: "Churn".into(),
            id: None,
            predictions: None,
        })
        .unwrap();
        assert_eq!(report.rows_test, 1000);
        assert_eq!(report.dropped.len(), 1);
        assert_eq!(report.dropped[0].column, "customerID");
    }

    #[test]
    fn a_target_with_three_values_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "x,y\n1,a\n2,b\n3,c\n").unwrap();
        let e = evaluate_files(&EvalOptions {
            train: path,
            test: None,
            split: 0.3,
            seed: 1,
            target: "y".into(),
            id: None,
            predictions: None,
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("exactly two values; it has 3"), "{e}");
    }
}

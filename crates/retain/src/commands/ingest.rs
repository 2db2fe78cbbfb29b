//! `retain ingest`: validate and load files into a workspace table.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use retain_data::{Encoding, IngestOptions, IngestReport, Mapping, Table, Workspace};
use retain_store::{IngestFileRecord, Store};

use crate::output;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Workspace directory (created if it does not exist).
    #[arg(long, env = "RETAIN_DIR")]
    pub dir: PathBuf,
    /// Canonical table: plans, subscribers, contracts, usage_monthly, usage_weekly, events,
    /// campaign_history.
    #[arg(long)]
    pub table: String,
    /// Column mapping file (TOML) for an export with its own column names and codes.
    #[arg(long)]
    pub mapping: Option<PathBuf>,
    /// Text encoding of CSV files: auto, utf-8, gbk or gb18030 (overrides the mapping).
    #[arg(long)]
    pub encoding: Option<Encoding>,
    /// Abort the whole load, writing nothing, if more than this share (0–1) of rows is bad.
    #[arg(long)]
    pub max_bad_ratio: Option<f64>,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// Files to load (CSV, Excel .xlsx or Parquet), all into the same table.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let table = Table::from_name(&args.table).with_context(|| {
        let names: Vec<&str> = Table::ALL.iter().map(|t| t.name()).collect();
        format!(
            "unknown table {:?}; tables are {}",
            args.table,
            names.join(", ")
        )
    })?;
    if let Some(r) = args.max_bad_ratio
        && !(0.0..=1.0).contains(&r)
    {
        anyhow::bail!("--max-bad-ratio must be between 0 and 1, got {r}");
    }
    let workspace = Workspace::create_or_open(&args.dir)?;
    let mapping = match &args.mapping {
        Some(path) => Mapping::load(path, table.spec())?,
        None => Mapping::default(),
    };
    let options = IngestOptions {
        mapping,
        encoding: args.encoding,
        max_bad_ratio: args.max_bad_ratio,
        ..IngestOptions::default()
    };
    let rt = super::runtime()?;
    let store = rt.block_on(Store::connect(&workspace.store_url()))?;
    match load(&rt, &store, &workspace, table, &args.files, &options) {
        Ok(loaded) => {
            if args.json {
                output::print_json(&loaded)
            } else {
                output::print_text(&describe(&loaded.report, &loaded.already_loaded));
                Ok(())
            }
        }
        Err(error) => {
            if args.json {
                output::print_json(&failure_json(&error))?;
            }
            Err(error)
        }
    }
}

/// A successful load, as printed with `--json`.
#[derive(Debug, serde::Serialize)]
pub(crate) struct LoadOutcome {
    #[serde(flatten)]
    pub report: IngestReport,
    pub status: &'static str,
    pub run_id: i64,
    /// Files whose exact content had been loaded into this table before (loading them again
    /// replaced rows by identical rows).
    pub already_loaded: Vec<PathBuf>,
}

/// Loads files into a table and records the run in the store.
pub(crate) fn load(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    workspace: &Workspace,
    table: Table,
    files: &[PathBuf],
    options: &IngestOptions,
) -> anyhow::Result<LoadOutcome> {
    let params = serde_json::json!({
        "table": table.name(),
        "files": files,
        "max_bad_ratio": options.max_bad_ratio,
    });
    let run = rt.block_on(store.begin_run("ingest", &params))?;
    let report = match retain_data::ingest(workspace, table, files, options) {
        Ok(report) => report,
        Err(error) => {
            rt.block_on(store.fail_run(run, &error.to_string()))?;
            return Err(anyhow::Error::new(error).context(format!("loading {table}")));
        }
    };
    let mut already_loaded = Vec::new();
    for file in &report.files {
        if rt.block_on(store.loaded_before(table.name(), &file.sha256))? {
            already_loaded.push(file.file.clone());
        }
    }
    let records: Vec<IngestFileRecord> = report
        .files
        .iter()
        .map(|f| IngestFileRecord {
            table: table.name().to_owned(),
            path: f.file.display().to_string(),
            sha256: f.sha256.clone(),
            bytes: f.bytes,
            read: f.read,
            loaded: f.loaded,
            quarantined: f.quarantined,
            quarantine_file: report.quarantine_file.display().to_string(),
        })
        .collect();
    rt.block_on(store.record_ingest(run, &records))?;
    rt.block_on(store.finish_run(run, &serde_json::to_value(&report)?))?;
    Ok(LoadOutcome {
        report,
        status: "loaded",
        run_id: run.0,
        already_loaded,
    })
}

/// The `--json` object of a failed load: what was counted, and the error.
fn failure_json(error: &anyhow::Error) -> serde_json::Value {
    let data_error = error
        .chain()
        .find_map(|e| e.downcast_ref::<retain_data::Error>());
    match data_error {
        Some(retain_data::Error::TooManyBadRows {
            read,
            quarantined,
            quarantine_file,
            ..
        }) => serde_json::json!({
            "status": "aborted",
            "read": read,
            "loaded": 0,
            "quarantined": quarantined,
            "quarantine_file": quarantine_file,
            "error": format!("{error:#}"),
        }),
        Some(retain_data::Error::BadFile { location, reason }) => serde_json::json!({
            "status": "failed",
            "read": 0,
            "loaded": 0,
            "quarantined": 0,
            "quarantine_file": null,
            "error": format!("{error:#}"),
            "file": location.file,
            "line": location.line,
            "column": location.column,
            "reason": reason,
        }),
        _ => serde_json::json!({
            "status": "failed",
            "read": 0,
            "loaded": 0,
            "quarantined": 0,
            "quarantine_file": null,
            "error": format!("{error:#}"),
        }),
    }
}

fn describe(report: &IngestReport, already: &[PathBuf]) -> String {
    let mut text = format!(
        "{}: read {} = loaded {} + quarantined {}; {} new, {} replaced; the table now has {} rows",
        report.table,
        report.read,
        report.loaded,
        report.quarantined,
        report.inserted,
        report.replaced,
        report.table_rows
    );
    if report.quarantined > 0 {
        let _ = write!(
            text,
            "\n  rejected rows and reasons: {}",
            report.quarantine_file.display()
        );
        for (column, n) in &report.rejected_by_column {
            let _ = write!(text, "\n    {column}: {n}");
        }
    }
    for file in &report.files {
        if !file.source.ignored_columns.is_empty() {
            let _ = write!(
                text,
                "\n  {}: ignored columns {}",
                short(&file.file),
                file.source.ignored_columns.join(", ")
            );
        }
    }
    for file in already {
        let _ = write!(
            text,
            "\n  {} was loaded before with the same content; its rows replaced identical rows",
            short(file)
        );
    }
    text
}

fn short(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

//! Helpers every module of the ingest tests shares: fixtures, a scratch workspace, loads that
//! assert the counts reconcile, and readers of the quarantine file and the stored tables.

use std::path::{Path, PathBuf};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use retain_data::{IngestOptions, IngestReport, Table, Workspace, ingest};

/// This crate's directory, read at run time: a test binary reused from a build in another
/// checkout must still look at this one.
pub(crate) fn manifest_dir() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it for tests"))
}

pub(crate) fn fixture(name: &str) -> PathBuf {
    manifest_dir().join("tests/fixtures").join(name)
}

pub(crate) struct Setup {
    _dir: tempfile::TempDir,
    pub(crate) ws: Workspace,
    pub(crate) scratch: PathBuf,
}

pub(crate) fn workspace() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::create_or_open(&dir.path().join("ws")).unwrap();
    let scratch = dir.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    Setup {
        _dir: dir,
        ws,
        scratch,
    }
}

pub(crate) fn options(label: &str) -> IngestOptions {
    IngestOptions {
        label: label.to_owned(),
        ..IngestOptions::default()
    }
}

pub(crate) fn load(ws: &Workspace, table: Table, file: &Path, label: &str) -> IngestReport {
    let report = ingest(ws, table, &[file.to_path_buf()], &options(label)).unwrap();
    assert_eq!(
        report.read,
        report.loaded + report.quarantined,
        "{report:?}"
    );
    report
}

/// Workspace with plans and the four good subscribers loaded.
pub(crate) fn with_subscribers() -> Setup {
    let s = workspace();
    load(&s.ws, Table::Plans, &fixture("plans.csv"), "plans");
    load(
        &s.ws,
        Table::Subscribers,
        &fixture("subscribers.csv"),
        "subs",
    );
    s
}

/// The quarantine file as (line, column, reason) triples.
pub(crate) fn quarantine(report: &IngestReport) -> Vec<(u64, String, String)> {
    let mut reader = csv::Reader::from_path(&report.quarantine_file).unwrap();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[1].parse().unwrap(), r[2].to_owned(), r[3].to_owned())
        })
        .collect()
}

pub(crate) fn table_batches(ws: &Workspace, table: Table) -> Vec<RecordBatch> {
    retain_data::read_batches(&ws.table_file(table))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

pub(crate) fn ids(ws: &Workspace, table: Table) -> Vec<i64> {
    let mut ids: Vec<i64> = table_batches(ws, table)
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    ids.sort_unstable();
    ids
}

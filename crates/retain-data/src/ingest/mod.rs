//! Validated ingest of operator files into a canonical table.
//!
//! Every row read ends either in the table or in the quarantine file with its file, line,
//! column and reason, so `read = loaded + quarantined` always holds. Rows are canonical rows: a
//! line of a wide export (one column per measure and month) is one row per month, so for it
//! `read = lines × months`. A load is all or nothing:
//! the new rows are staged, merged with the existing table (a row whose key already exists
//! replaces it, so loading the same file twice changes nothing) and put in place by a rename.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::mapping::{Encoding, Mapping};
use crate::parse::FieldFormat;
use crate::schema::{Table, TableSpec};
use crate::source::{Limits, RawRecord, SourceInfo, read_file};
use crate::stage::{Origin, Stager};
use crate::table::{Router, equal_cuts};
use crate::workspace::Workspace;

// The steps of a load, each a module; this one runs them in order over the files.
mod duplicates;
mod merge;
mod quarantine;
mod validate;

use duplicates::{Duplicate, find_duplicates, read_back};
use merge::write_table;
use quarantine::{QuarantineWriter, Rejection};
use validate::{Checked, ReferenceSets, validate};

/// Records handed from the reading thread to the validating one at a time.
const RECORD_CHUNK: usize = 4_096;
/// Upper bound on staged partitions (open files while staging).
const MAX_PARTITIONS: usize = 256;
/// Subscribers per stored cluster. A subscriber-keyed load of a larger operator is staged in
/// subscriber-id ranges of about this many subscribers, whatever its own size, so the stored
/// table is clustered finely enough for a plan over one feature partition (a million
/// subscribers) to skip nearly all of the other row groups.
const CLUSTER_SUBSCRIBERS: u64 = 250_000;

/// Options of one load.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub mapping: Mapping,
    /// Overrides the mapping's encoding when set.
    pub encoding: Option<Encoding>,
    /// Abort, writing nothing to the table, when more than this share of rows is rejected.
    pub max_bad_ratio: Option<f64>,
    /// Lines longer than this are rejected (a guard against files that are not what they seem).
    pub max_line_bytes: usize,
    /// Names the quarantine file and staging area; unique per load.
    pub label: String,
    /// Input bytes per staged partition. A load keeps one partition's keys in memory at a time
    /// (about 100 bytes a row), so this bounds its memory whatever the size of the files.
    pub partition_bytes: u64,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            mapping: Mapping::default(),
            encoding: None,
            max_bad_ratio: None,
            max_line_bytes: 1 << 20,
            label: chrono::Local::now().format("%Y%m%dT%H%M%S%.3f").to_string(),
            partition_bytes: 256 << 20,
        }
    }
}

/// What happened to one input file. Counts are canonical rows; `lines` (in `source`) counts the
/// file's lines, which differ only for a wide export.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub file: PathBuf,
    /// SHA-256 of the file's bytes: the same content loaded again is recognisable.
    pub sha256: String,
    pub bytes: u64,
    #[serde(flatten)]
    pub source: SourceInfo,
    pub read: u64,
    pub loaded: u64,
    pub quarantined: u64,
}

/// What a load did. `read == loaded + quarantined` always.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub table: String,
    pub read: u64,
    pub loaded: u64,
    pub quarantined: u64,
    /// Loaded rows whose key was new to the table.
    pub inserted: u64,
    /// Loaded rows that replaced a row with the same key.
    pub replaced: u64,
    /// Rows in the table after the load.
    pub table_rows: u64,
    pub quarantine_file: PathBuf,
    /// Rejected rows per column (`(row)` for problems with the row as a whole).
    pub rejected_by_column: BTreeMap<String, u64>,
    pub files: Vec<FileReport>,
}

/// Loads `files` into `table` of the workspace.
#[tracing::instrument(skip_all, fields(table = %table, files = files.len()))]
pub fn ingest(
    workspace: &Workspace,
    table: Table,
    files: &[PathBuf],
    options: &IngestOptions,
) -> Result<IngestReport> {
    // Held to the end: a second load of this table (or an evaluation feeding it) waits, then
    // merges with what this one swapped in.
    let _lock = workspace.lock_table(table)?;
    let spec = table.spec();
    let references = ReferenceSets::load(workspace, spec)?;
    let format = FieldFormat {
        date_format: options.mapping.date_format.clone(),
        timestamp_format: options.mapping.timestamp_format.clone(),
    };
    let encoding = options.encoding.unwrap_or(options.mapping.encoding);
    let limits = Limits {
        max_line_bytes: options.max_line_bytes,
    };

    let quarantine_dir = workspace.quarantine_dir();
    std::fs::create_dir_all(&quarantine_dir)
        .map_err(|e| Error::io(format!("creating {}", quarantine_dir.display()), e))?;
    let mut quarantine = QuarantineWriter::create(
        quarantine_dir.join(format!("{}-{}.csv", options.label, table.name())),
        files,
    )?;
    let staging = workspace.staging(&options.label)?;
    let result = stage_and_merge(
        workspace,
        spec,
        files,
        &references,
        &format,
        encoding,
        limits,
        options,
        staging.path(),
        &mut quarantine,
    );
    drop(staging);
    let mut report = match result {
        Ok(report) => report,
        Err(e) => {
            // The load failed as a whole; a partial list of rejected rows would mislead.
            quarantine.discard();
            return Err(e);
        }
    };
    let (quarantine_file, by_column) = quarantine.finish()?;
    report.quarantine_file = quarantine_file;
    report.rejected_by_column = by_column;
    if let Some(max) = options.max_bad_ratio
        && report.read > 0
    {
        let ratio = report.quarantined as f64 / report.read as f64;
        if ratio > max {
            return Err(Error::TooManyBadRows {
                read: report.read,
                quarantined: report.quarantined,
                ratio: ratio * 100.0,
                max: max * 100.0,
                quarantine_file: report.quarantine_file,
            });
        }
    }
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn stage_and_merge(
    workspace: &Workspace,
    spec: &TableSpec,
    files: &[PathBuf],
    references: &ReferenceSets,
    format: &FieldFormat,
    encoding: Encoding,
    limits: Limits,
    options: &IngestOptions,
    staging: &Path,
    quarantine: &mut QuarantineWriter,
) -> Result<IngestReport> {
    let key_indexes: Vec<usize> = spec
        .key
        .iter()
        .map(|k| spec.column_index(k).expect("checked by schema tests"))
        .collect();
    let input_bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    let by_size = usize::try_from(input_bytes.div_ceil(options.partition_bytes.max(1)))
        .unwrap_or(MAX_PARTITIONS)
        .clamp(1, MAX_PARTITIONS);
    let started = std::time::Instant::now();
    let router = router(workspace, spec, by_size)?;
    let partitions = router.partitions();
    let mut stager = Stager::create(staging, "new", spec, &key_indexes, router.clone())?;
    let mut reports = Vec::with_capacity(files.len());

    for (file_index, file) in files.iter().enumerate() {
        // Three threads per file: one reads, lines up and validates records, one stages the
        // rows and writes the rejections (in order, so the quarantine file stays in line
        // order), one takes the file's SHA-256.
        let (source, (read, loaded, quarantined), (sha256, bytes)) =
            std::thread::scope(|scope| -> Result<_> {
                let hashing = scope.spawn(|| digest(file));
                let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Checked>>(8);
                let stager = &mut stager;
                let quarantine = &mut *quarantine;
                let staging = scope.spawn(move || -> Result<(u64, u64, u64)> {
                    let (mut read, mut loaded, mut quarantined) = (0u64, 0u64, 0u64);
                    for checked in rx.into_iter().flatten() {
                        let ordinal = read;
                        read += 1;
                        match checked.outcome {
                            Ok(row) => {
                                let origin = Origin {
                                    file: file_index as i64,
                                    ordinal: ordinal as i64,
                                    line: checked.line as i64,
                                };
                                stager.push(&row, origin)?;
                                loaded += 1;
                            }
                            Err((column, reason, raw)) => {
                                quarantined += 1;
                                quarantine.write(&Rejection {
                                    file: file_index,
                                    line: checked.line,
                                    column,
                                    reason,
                                    raw,
                                })?;
                            }
                        }
                    }
                    Ok((read, loaded, quarantined))
                });
                let mut chunk = Vec::with_capacity(RECORD_CHUNK);
                let mut sink = |mut record: RawRecord| -> Result<()> {
                    let outcome = match record.problem.take() {
                        Some((column, reason)) => Err((column, reason, record.raw())),
                        None => validate(spec, &record, format, options, references)
                            .map_err(|(column, reason)| (Some(column), reason, record.raw())),
                    };
                    chunk.push(Checked {
                        line: record.line,
                        outcome,
                    });
                    if chunk.len() >= RECORD_CHUNK {
                        let full = std::mem::replace(&mut chunk, Vec::with_capacity(RECORD_CHUNK));
                        // A closed channel means staging stopped on an error, reported below.
                        tx.send(full).map_err(|_| {
                            Error::io("staging rows", std::io::Error::other("stopped"))
                        })?;
                    }
                    Ok(())
                };
                let source = read_file(file, spec, &options.mapping, encoding, limits, &mut sink);
                if source.is_ok() && !chunk.is_empty() {
                    let _ = tx.send(chunk);
                }
                drop(tx);
                let counts = staging.join().expect("the staging thread does not panic")?;
                let source = source?;
                let digest = hashing.join().expect("the hashing thread does not panic")?;
                Ok((source, counts, digest))
            })?;
        if read == 0 {
            tracing::warn!(file = %file.display(), "the file has a header but no rows");
        }
        reports.push(FileReport {
            file: file.clone(),
            sha256,
            bytes,
            source,
            read,
            loaded,
            quarantined,
        });
    }
    let (staged, ordered) = stager.finish()?;
    let staged_at = started.elapsed();

    let duplicates = find_duplicates(spec, &key_indexes, &staged, &ordered, files)?;
    let searched_at = started.elapsed();
    let mut all: Vec<&Duplicate> = duplicates.iter().flatten().collect();
    all.sort_by_key(|d| d.origin);
    for d in &all {
        let report = &mut reports[usize::try_from(d.origin.file).expect("a file index")];
        report.loaded -= 1;
        report.quarantined += 1;
    }
    for rejection in read_back(&all, files, spec, options, encoding, limits, &key_indexes)? {
        quarantine.write_late(rejection);
    }

    let read: u64 = reports.iter().map(|r| r.read).sum();
    let loaded: u64 = reports.iter().map(|r| r.loaded).sum();
    let quarantined: u64 = reports.iter().map(|r| r.quarantined).sum();
    let mut report = IngestReport {
        table: spec.name().to_owned(),
        read,
        loaded,
        quarantined,
        inserted: loaded,
        replaced: 0,
        table_rows: 0,
        quarantine_file: PathBuf::new(),
        rejected_by_column: BTreeMap::new(),
        files: reports,
    };
    if let Some(max) = options.max_bad_ratio
        && read > 0
        && quarantined as f64 / read as f64 > max
    {
        // The caller turns this into an error; the table is left as it was.
        return Ok(report);
    }

    let (merged_dir, replaced, table_rows) = write_table(
        workspace,
        spec,
        &key_indexes,
        &router,
        &staged,
        &duplicates,
        staging,
    )?;
    report.replaced = replaced;
    report.table_rows = table_rows;
    tracing::debug!(
        read_and_staged_s = staged_at.as_secs_f64(),
        duplicates_s = searched_at.saturating_sub(staged_at).as_secs_f64(),
        merged_s = started.elapsed().saturating_sub(searched_at).as_secs_f64(),
        "ingest phases of {}",
        spec.name()
    );
    report.inserted = loaded - report.replaced;
    workspace.swap_table(spec.table, &merged_dir)?;
    tracing::info!(
        read,
        loaded,
        quarantined,
        partitions,
        rows = report.table_rows,
        "loaded {}",
        spec.name()
    );
    Ok(report)
}

/// How a load is staged: a subscriber-keyed table in ranges of subscriber ids (at least one per
/// [`CLUSTER_SUBSCRIBERS`] stored subscribers, so the table comes out clustered), anything else,
/// or any table before subscribers are stored, by a hash of its key; `by_size` partitions at
/// least, to bound the keys held in memory at once.
fn router(workspace: &Workspace, spec: &TableSpec, by_size: usize) -> Result<Router> {
    let Some(at) = spec.key.iter().position(|k| *k == "subscriber_id") else {
        return Ok(Router::Hash(by_size));
    };
    let ids = workspace.subscriber_ids()?;
    let by_subscribers =
        usize::try_from((ids.len() as u64).div_ceil(CLUSTER_SUBSCRIBERS)).unwrap_or(MAX_PARTITIONS);
    let partitions = by_size.max(by_subscribers).min(MAX_PARTITIONS);
    Ok(if partitions > 1 && !ids.is_empty() {
        Router::Ranges {
            at,
            cuts: equal_cuts(&ids, partitions),
        }
    } else {
        Router::Hash(by_size)
    })
}

/// SHA-256 and size of a file, streamed.
fn digest(path: &Path) -> Result<(String, u64)> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let (bytes, hex) = crate::backup::copy_hashed(file, std::io::sink()).map_err(|e| match e {
        crate::backup::Copy::Read(e) | crate::backup::Copy::Write(e) => {
            Error::io(format!("reading {}", path.display()), e)
        }
    })?;
    Ok((hex, bytes))
}

//! Validated ingest of operator files into a canonical table.
//!
//! Every row read ends either in the table or in the quarantine file with its file, line,
//! column and reason, so `read = loaded + quarantined` always holds. Rows are canonical rows: a
//! line of a wide export (one column per measure and month) is one row per month, so for it
//! `read = lines × months`. A load is all or nothing:
//! the new rows are staged, merged with the existing table (a row whose key already exists
//! replaces it, so loading the same file twice changes nothing) and put in place by a rename.

use std::collections::BTreeMap;
use std::collections::hash_map::Entry;
use std::path::{Path, PathBuf};

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::Int64Type;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::mapping::{Encoding, Mapping};
use crate::parse::{FieldFormat, Value, days_to_date, parse_field};
use crate::schema::{ColumnKind, Table, TableSpec};
use crate::source::{Limits, RawRecord, SourceInfo, read_file};
use crate::stage::{self, Origin, Stager, route_stored};
use crate::table::{
    FastMap, FastSet, Key, KeyColumns, KeyPart, Router, TableAssembler, TableWriter, column_values,
    equal_cuts, fast_map, fast_set, read_batches, read_columns, row_count,
};

/// Records handed from the reading thread to the validating one at a time.
const RECORD_CHUNK: usize = 4_096;
/// Upper bound on staged partitions (open files while staging).
const MAX_PARTITIONS: usize = 256;
/// Subscribers per stored cluster. A subscriber-keyed load of a larger operator is staged in
/// subscriber-id ranges of about this many subscribers, whatever its own size, so the stored
/// table is clustered finely enough for a plan over one feature partition (a million
/// subscribers) to skip nearly all of the other row groups.
const CLUSTER_SUBSCRIBERS: u64 = 250_000;
use crate::workspace::Workspace;

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

/// A record read and validated: its row, or the column, reason and line it is rejected with.
struct Checked {
    line: u64,
    outcome: std::result::Result<Vec<Value>, (Option<String>, String, String)>,
}

/// One rejected row.
struct Rejection {
    /// Index of the file in the load.
    file: usize,
    line: u64,
    column: Option<String>,
    reason: String,
    raw: String,
}

struct QuarantineWriter {
    writer: csv::Writer<std::fs::File>,
    tmp: PathBuf,
    path: PathBuf,
    files: Vec<String>,
    by_column: BTreeMap<String, u64>,
    /// Rejections found after the read (duplicates), merged into line order at the end.
    late: Vec<Rejection>,
}

impl QuarantineWriter {
    fn create(path: PathBuf, files: &[PathBuf]) -> Result<Self> {
        let tmp = path.with_extension("csv.tmp");
        let mut writer = csv::Writer::from_path(&tmp).map_err(|e| Error::Io {
            context: format!("creating {}", tmp.display()),
            source: e.into(),
        })?;
        writer
            .write_record(["file", "line", "column", "reason", "raw"])
            .map_err(|e| Error::io("writing the quarantine file", e.into()))?;
        Ok(Self {
            writer,
            tmp,
            path,
            files: files.iter().map(|f| f.display().to_string()).collect(),
            by_column: BTreeMap::new(),
            late: Vec::new(),
        })
    }

    fn count(&mut self, r: &Rejection) {
        let column = r.column.as_deref().unwrap_or("");
        *self
            .by_column
            .entry(if column.is_empty() {
                "(row)".to_owned()
            } else {
                column.to_owned()
            })
            .or_default() += 1;
    }

    fn write(&mut self, r: &Rejection) -> Result<()> {
        self.count(r);
        write_rejection(&mut self.writer, &self.files, r)
    }

    fn write_late(&mut self, r: Rejection) {
        self.count(&r);
        self.late.push(r);
    }

    fn discard(self) {
        drop(self.writer);
        let _ = std::fs::remove_file(&self.tmp);
    }

    fn finish(self) -> Result<(PathBuf, BTreeMap<String, u64>)> {
        let file = self
            .writer
            .into_inner()
            .map_err(|e| Error::io("writing the quarantine file", e.into_error()))?;
        file.sync_all()
            .map_err(|e| Error::io("syncing the quarantine file", e))?;
        drop(file);
        let written = if self.late.is_empty() {
            self.tmp
        } else {
            let merged = merge_late(&self.tmp, self.late, &self.files)?;
            let _ = std::fs::remove_file(&self.tmp);
            merged
        };
        std::fs::rename(&written, &self.path)
            .map_err(|e| Error::io(format!("writing {}", self.path.display()), e))?;
        Ok((self.path, self.by_column))
    }
}

/// Writes the rejections of `tmp` with the late ones in their places, by file and line, to a
/// new file; returns its path.
fn merge_late(tmp: &Path, mut late: Vec<Rejection>, files: &[String]) -> Result<PathBuf> {
    let quarantine_io = |e: csv::Error| Error::io("writing the quarantine file", e.into());
    late.sort_by_key(|r| (r.file, r.line));
    let merged_path = tmp.with_extension("merging");
    let mut merged = csv::Writer::from_path(&merged_path).map_err(quarantine_io)?;
    merged
        .write_record(["file", "line", "column", "reason", "raw"])
        .map_err(quarantine_io)?;
    let mut reader = csv::Reader::from_path(tmp).map_err(quarantine_io)?;
    let mut late = late.into_iter().peekable();
    for record in reader.records() {
        let record = record.map_err(quarantine_io)?;
        let place = (
            files
                .iter()
                .position(|f| crate::spreadsheet_cell(f) == record[0])
                .unwrap_or(usize::MAX),
            record[1].parse::<u64>().unwrap_or(u64::MAX),
        );
        while let Some(r) = late.next_if(|r| (r.file, r.line) <= place) {
            write_rejection(&mut merged, files, &r)?;
        }
        merged.write_record(&record).map_err(quarantine_io)?;
    }
    for r in late {
        write_rejection(&mut merged, files, &r)?;
    }
    merged
        .into_inner()
        .map_err(|e| Error::io("writing the quarantine file", e.into_error()))?
        .sync_all()
        .map_err(|e| Error::io("syncing the quarantine file", e))?;
    Ok(merged_path)
}

fn write_rejection(
    writer: &mut csv::Writer<std::fs::File>,
    files: &[String],
    r: &Rejection,
) -> Result<()> {
    // People open the quarantine file in a spreadsheet: a rejected row is the operator's data.
    let cell = crate::spreadsheet_cell;
    writer
        .write_record([
            cell(&files[r.file]).as_ref(),
            r.line.to_string().as_str(),
            &cell(r.column.as_deref().unwrap_or("")),
            &cell(&r.reason),
            &cell(&r.raw),
        ])
        .map_err(|e| Error::io("writing the quarantine file", e.into()))
}

/// Key sets of the tables a load refers to, by referencing column.
struct ReferenceSets {
    sets: Vec<(usize, Table, FastSet<KeyPart>)>,
}

impl ReferenceSets {
    fn load(workspace: &Workspace, spec: &TableSpec) -> Result<Self> {
        let mut sets = Vec::new();
        for reference in spec.references {
            if !workspace.has_table(reference.table) {
                return Err(Error::MissingReferencedTable {
                    table: spec.name().to_owned(),
                    target: reference.table.name().to_owned(),
                });
            }
            let values = column_values(
                &workspace.table_file(reference.table),
                reference.table.spec(),
                reference.target_column,
            )?;
            let index = spec
                .column_index(reference.column)
                .expect("checked by schema tests");
            sets.push((index, reference.table, values));
        }
        Ok(Self { sets })
    }

    fn check(&self, spec: &TableSpec, row: &[Value]) -> Option<(usize, String)> {
        for (index, table, values) in &self.sets {
            let value = &row[*index];
            if *value == Value::Null {
                continue;
            }
            let key = KeyPart::from_value(value);
            if !values.contains(&key) {
                return Some((
                    *index,
                    format!(
                        "{} {key} does not exist in {table}",
                        spec.columns[*index].name
                    ),
                ));
            }
        }
        None
    }
}

/// Cross-field checks a single column cannot express. Returns (column index, reason).
fn check_row(spec: &TableSpec, row: &[Value]) -> Option<(usize, String)> {
    let get = |name: &str| {
        let i = spec.column_index(name).expect("known column");
        (i, &row[i])
    };
    let date = |v: &Value| match v {
        Value::Date(d) => Some(*d),
        _ => None,
    };
    match spec.table {
        Table::Subscribers => {
            let (_, join) = get("join_date");
            let (bi, birth) = get("birth_date");
            if let (Some(j), Some(b)) = (date(join), date(birth))
                && b > j
            {
                return Some((bi, "birth_date is after join_date".to_owned()));
            }
            let (si, status_date) = get("status_date");
            if let (Some(j), Some(s)) = (date(join), date(status_date))
                && s < j
            {
                return Some((si, "status_date is before join_date".to_owned()));
            }
            let (_, kind) = get("customer_type");
            let (gi, group) = get("group_id");
            if *kind == Value::Text("group_member".to_owned()) && *group == Value::Null {
                return Some((gi, "a group_member needs a group_id".to_owned()));
            }
        }
        Table::Contracts => {
            let (_, start) = get("start_date");
            let (ei, end) = get("end_date");
            if let (Some(s), Some(e)) = (date(start), date(end))
                && e < s
            {
                return Some((ei, "end_date is before start_date".to_owned()));
            }
        }
        Table::UsageMonthly => {
            let (_, period) = get("period");
            if let Some(p) = date(period) {
                let first = days_to_date(p);
                let days = first
                    .checked_add_months(chrono::Months::new(1))
                    .map_or(31, |next| (next - first).num_days());
                for name in ["suspended_days", "active_days"] {
                    let (i, v) = get(name);
                    if let Value::Int(n) = v
                        && *n > days
                    {
                        return Some((i, format!("{n} days in a month of {days} days")));
                    }
                }
            }
        }
        Table::Events => {
            let (_, kind) = get("kind");
            if *kind == Value::Text("plan_change".to_owned()) {
                for name in ["from_plan", "to_plan"] {
                    let (i, v) = get(name);
                    if *v == Value::Null {
                        return Some((i, format!("a plan_change needs {name}")));
                    }
                }
            }
        }
        Table::CampaignHistory => {
            let (_, arm) = get("arm");
            let (oi, offer) = get("offer_id");
            if *arm == Value::Text("treatment".to_owned()) && *offer == Value::Null {
                return Some((oi, "the treatment arm needs an offer_id".to_owned()));
            }
        }
        Table::Plans | Table::UsageWeekly => {}
    }
    None
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

    let table = spec.table;
    let existing = workspace.table_file(table);
    let stored = if !existing.exists() {
        None
    } else if partitions == 1 {
        Some(vec![existing.clone()])
    } else {
        Some(route_stored(
            &existing,
            staging,
            spec,
            &key_indexes,
            &router,
        )?)
    };
    let merged_dir = staging.join(table.name());
    std::fs::create_dir_all(&merged_dir)
        .map_err(|e| Error::io(format!("creating {}", merged_dir.display()), e))?;
    let mut merged = TableAssembler::create(&merged_dir.join("data.parquet"), spec.arrow_schema())?;
    // One thread reads and filters the partitions while this one encodes them and assembles
    // the table file: the two halves of the merge take about as long as each other. A
    // partition with nothing to drop or merge (a first load without duplicates) is copied as
    // it was staged, without being decoded.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Merged>(4);
    let replaced = std::thread::scope(|scope| -> Result<u64> {
        let (key_indexes, staged, duplicates) = (&key_indexes, &staged, &duplicates);
        let (stored, existing) = (stored.as_deref(), &existing);
        // The sender moves into the reader, so the channel closes when it is done.
        let reading = scope.spawn(move || {
            merge_batches(spec, key_indexes, staged, stored, duplicates, existing, &tx)
        });
        let mut encoding: Option<(PathBuf, TableWriter)> = None;
        let mut scratch = 0usize;
        let mut writing = Ok(());
        for message in rx {
            writing = match message {
                Merged::Rows(rows) => {
                    let writer = if let Some((_, writer)) = &mut encoding {
                        Ok(writer)
                    } else {
                        let path = staging.join(format!("merged-{scratch:04}.parquet"));
                        scratch += 1;
                        TableWriter::create(&path, spec.arrow_schema())
                            .map(|writer| &mut encoding.insert((path, writer)).1)
                    };
                    writer.and_then(|writer| writer.write(&rows))
                }
                // A row group never straddles two partitions, so with ranges its statistics
                // bound one range.
                Merged::PartitionEnd => match encoding.take() {
                    Some((path, writer)) => writer
                        .close_scratch()
                        .and_then(|_| merged.append_file(&path))
                        .map(|_| {
                            let _ = std::fs::remove_file(&path);
                        }),
                    None => Ok(()),
                },
                Merged::Copy(p) => merged.append_file(&staged[p]).map(|_| ()),
            };
            if writing.is_err() {
                break;
            }
        }
        let replaced = reading.join().expect("the merge's reader does not panic")?;
        writing.map(|()| replaced)
    })?;
    report.replaced = replaced;
    report.table_rows = merged.close()?;
    tracing::debug!(
        read_and_staged_s = staged_at.as_secs_f64(),
        duplicates_s = searched_at.saturating_sub(staged_at).as_secs_f64(),
        merged_s = started.elapsed().saturating_sub(searched_at).as_secs_f64(),
        "ingest phases of {}",
        spec.name()
    );
    report.inserted = loaded - report.replaced;
    workspace.swap_table(table, &merged_dir)?;
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

/// What the merge's reader hands to its writer.
enum Merged {
    /// Rows of the partition being merged.
    Rows(RecordBatch),
    /// The partition's rows are all sent.
    PartitionEnd,
    /// The staged partition, as it is, is the table's rows for it.
    Copy(usize),
}

/// Sends the merged table's rows partition by partition: the stored rows whose key the load
/// does not replace, then the staged rows that are not duplicates. Returns how many stored
/// rows were replaced. Stops early, without error, if the writer stopped.
fn merge_batches(
    spec: &TableSpec,
    key_indexes: &[usize],
    staged: &[PathBuf],
    stored: Option<&[PathBuf]>,
    duplicates: &[Vec<Duplicate>],
    existing: &Path,
    tx: &std::sync::mpsc::SyncSender<Merged>,
) -> Result<u64> {
    let columns: Vec<usize> = (0..spec.columns.len()).collect();
    let mut replaced = 0;
    for (p, staged) in staged.iter().enumerate() {
        if stored.is_none() && duplicates[p].is_empty() {
            if tx.send(Merged::Copy(p)).is_err() {
                return Ok(replaced);
            }
            continue;
        }
        let mut out = Vec::new();
        if let Some(stored) = stored {
            let keys = staged_keys(spec, key_indexes, staged)?;
            for batch in read_batches(&stored[p])? {
                let batch = batch.map_err(|e| Error::Arrow {
                    context: format!("reading {}", existing.display()),
                    source: e,
                })?;
                let (kept, dropped) = drop_keys(spec, key_indexes, &batch, &keys)?;
                replaced += dropped;
                if kept.num_rows() > 0 {
                    out.push(kept);
                }
                if !send(tx, &mut out) {
                    return Ok(replaced);
                }
            }
        }
        let mut skip: FastSet<(i64, i64)> = fast_set(duplicates[p].len());
        skip.extend(
            duplicates[p]
                .iter()
                .map(|d| (d.origin.file, d.origin.ordinal)),
        );
        for batch in read_batches(staged)? {
            let batch = batch.map_err(|e| Error::Arrow {
                context: "reading staged rows".to_owned(),
                source: e,
            })?;
            let keep: Option<BooleanArray> = (!skip.is_empty()).then(|| {
                (0..batch.num_rows())
                    .map(|row| {
                        let o = stage::origin(&batch, columns.len(), row);
                        Some(!skip.contains(&(o.file, o.ordinal)))
                    })
                    .collect()
            });
            let rows = batch.project(&columns).map_err(|e| Error::Arrow {
                context: "reading staged rows".to_owned(),
                source: e,
            })?;
            let rows = match keep {
                Some(keep) => filter_record_batch(&rows, &keep).map_err(|e| Error::Arrow {
                    context: "dropping duplicate rows".to_owned(),
                    source: e,
                })?,
                None => rows,
            };
            out.push(rows);
            if !send(tx, &mut out) {
                return Ok(replaced);
            }
        }
        if tx.send(Merged::PartitionEnd).is_err() {
            return Ok(replaced);
        }
    }
    Ok(replaced)
}

/// Sends the batches in `out`; false if the writer has stopped.
fn send(tx: &std::sync::mpsc::SyncSender<Merged>, out: &mut Vec<RecordBatch>) -> bool {
    out.drain(..)
        .all(|rows| tx.send(Merged::Rows(rows)).is_ok())
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

/// A staged row whose key an earlier row of the same load already has.
struct Duplicate {
    origin: Origin,
    reason: String,
}

/// A duplicate search's partitions, by index.
type Found = Vec<(usize, Vec<Duplicate>)>;

/// The duplicates of each staged partition, in read order. Rows are staged in read order, so
/// the first row of a key in its partition is the first one read. Partitions hold disjoint keys,
/// so they are searched side by side, one per core. A partition whose keys strictly increased
/// while it was staged (`ordered`) has none and is not read.
fn find_duplicates(
    spec: &TableSpec,
    key_indexes: &[usize],
    staged: &[PathBuf],
    ordered: &[bool],
    files: &[PathBuf],
) -> Result<Vec<Vec<Duplicate>>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(staged.len())
        .max(1);
    let found: Vec<Result<Found>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> Result<Found> {
                    let mut mine = Vec::new();
                    let mut first = fast_map(0);
                    loop {
                        let p = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(path) = staged.get(p) else {
                            return Ok(mine);
                        };
                        if ordered[p] {
                            continue;
                        }
                        let found =
                            partition_duplicates(spec, key_indexes, path, files, &mut first)?;
                        mine.push((p, found));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a duplicate search does not panic"))
            .collect()
    });
    let mut out: Vec<Vec<Duplicate>> = (0..staged.len()).map(|_| Vec::new()).collect();
    for worker in found {
        for (p, duplicates) in worker? {
            out[p] = duplicates;
        }
    }
    Ok(out)
}

/// The duplicates of one staged partition. `first` is the caller's map, kept from partition to
/// partition: a fresh map of millions of keys for each one spent its time faulting pages in.
fn partition_duplicates(
    spec: &TableSpec,
    key_indexes: &[usize],
    path: &Path,
    files: &[PathBuf],
    first: &mut FastMap<Key, Origin>,
) -> Result<Vec<Duplicate>> {
    first.clear();
    first.reserve(usize::try_from(row_count(path)?).unwrap_or(0));
    let mut duplicates = Vec::new();
    each_staged_key(spec, key_indexes, path, |key, origin| {
        match first.entry(key) {
            Entry::Occupied(seen) => duplicates.push(Duplicate {
                origin,
                reason: duplicate_reason(
                    spec,
                    key_indexes,
                    &seen.key().parts(),
                    *seen.get(),
                    origin,
                    files,
                ),
            }),
            Entry::Vacant(slot) => {
                slot.insert(origin);
            }
        }
    })?;
    Ok(duplicates)
}

fn duplicate_reason(
    spec: &TableSpec,
    key_indexes: &[usize],
    key: &[KeyPart],
    first: Origin,
    this: Origin,
    files: &[PathBuf],
) -> String {
    let shown: Vec<String> = key_indexes
        .iter()
        .zip(key)
        .map(|(&i, part)| {
            let column = &spec.columns[i];
            let value = match (column.kind, part) {
                (ColumnKind::Month, KeyPart::Int(days)) => i32::try_from(*days).map_or_else(
                    |_| part.to_string(),
                    |d| days_to_date(d).format("%Y-%m").to_string(),
                ),
                (ColumnKind::Date | ColumnKind::Week, KeyPart::Int(days)) => i32::try_from(*days)
                    .map_or_else(|_| part.to_string(), |d| days_to_date(d).to_string()),
                _ => part.to_string(),
            };
            format!("{}={value}", column.name)
        })
        .collect();
    let place = if first.file == this.file {
        format!("line {}", first.line)
    } else {
        let file = usize::try_from(first.file).expect("a file index");
        format!("{} line {}", files[file].display(), first.line)
    };
    format!("duplicate key {} (first seen on {place})", shown.join(", "))
}

/// Reads the duplicate records back from their files, for the quarantine file. Only files with
/// duplicates are read again.
fn read_back(
    duplicates: &[&Duplicate],
    files: &[PathBuf],
    spec: &TableSpec,
    options: &IngestOptions,
    encoding: Encoding,
    limits: Limits,
    key_indexes: &[usize],
) -> Result<Vec<Rejection>> {
    let mut out = Vec::with_capacity(duplicates.len());
    let mut by_file: BTreeMap<i64, BTreeMap<i64, &Duplicate>> = BTreeMap::new();
    for d in duplicates {
        by_file
            .entry(d.origin.file)
            .or_default()
            .insert(d.origin.ordinal, d);
    }
    for (file_index, wanted) in by_file {
        let index = usize::try_from(file_index).expect("a file index");
        let mut ordinal = 0i64;
        let mut sink = |record: RawRecord| -> Result<()> {
            if let Some(d) = wanted.get(&ordinal) {
                out.push(Rejection {
                    file: index,
                    line: record.line,
                    column: Some(record.names[key_indexes[0]].clone()),
                    reason: d.reason.clone(),
                    raw: record.raw(),
                });
            }
            ordinal += 1;
            Ok(())
        };
        read_file(
            &files[index],
            spec,
            &options.mapping,
            encoding,
            limits,
            &mut sink,
        )?;
    }
    Ok(out)
}

/// Every key of a staged partition.
fn staged_keys(spec: &TableSpec, key_indexes: &[usize], path: &Path) -> Result<FastSet<Key>> {
    let mut keys = fast_set(row_count(path)?);
    each_staged_key(spec, key_indexes, path, |key, _| {
        keys.insert(key);
    })?;
    Ok(keys)
}

/// Calls `f` with the key and origin of every row of a staged partition, in order.
fn each_staged_key(
    spec: &TableSpec,
    key_indexes: &[usize],
    path: &Path,
    mut f: impl FnMut(Key, Origin),
) -> Result<()> {
    // Only the key and the origin are read: decoding every column was most of the search.
    let columns = spec.columns.len();
    let mut projection: Vec<usize> = key_indexes.to_vec();
    projection.sort_unstable();
    projection.dedup();
    let keys_at: Vec<(usize, ColumnKind)> = key_indexes
        .iter()
        .map(|k| {
            let at = projection.binary_search(k).expect("a projected key column");
            (at, spec.columns[*k].kind)
        })
        .collect();
    let origin_at = projection.len();
    projection.extend(columns..columns + 3);
    for batch in read_columns(path, Some(&projection))? {
        let batch = batch.map_err(|e| Error::Arrow {
            context: "reading staged rows".to_owned(),
            source: e,
        })?;
        let keys = KeyColumns::at(&batch, keys_at.iter().copied());
        let origin = |i: usize| batch.column(origin_at + i).as_primitive::<Int64Type>();
        let (file, ordinal, line) = (origin(0), origin(1), origin(2));
        for row in 0..batch.num_rows() {
            let origin = Origin {
                file: file.value(row),
                ordinal: ordinal.value(row),
                line: line.value(row),
            };
            f(keys.key(row), origin);
        }
    }
    Ok(())
}

/// Keeps the rows of `batch` whose key is not in `replace`; returns them and how many were dropped.
fn drop_keys(
    spec: &TableSpec,
    key_indexes: &[usize],
    batch: &RecordBatch,
    replace: &FastSet<Key>,
) -> Result<(RecordBatch, u64)> {
    let mut keep = Vec::with_capacity(batch.num_rows());
    let mut dropped = 0;
    let keys = KeyColumns::new(spec, key_indexes, batch);
    for row in 0..batch.num_rows() {
        let hit = replace.contains(&keys.key(row));
        dropped += u64::from(hit);
        keep.push(!hit);
    }
    let kept = filter_record_batch(batch, &keep.into()).map_err(|e| Error::Arrow {
        context: "merging with the existing table".to_owned(),
        source: e,
    })?;
    Ok((kept, dropped))
}

/// Validates one record into a row, or names the column and reason it was rejected for.
/// Duplicate keys are found later, over the staged rows.
fn validate(
    spec: &TableSpec,
    record: &RawRecord,
    format: &FieldFormat,
    options: &IngestOptions,
    references: &ReferenceSets,
) -> std::result::Result<Vec<Value>, (String, String)> {
    // Problems are reported under the record's names: canonical ones, or a wide export's own.
    let name = |i: usize| record.names[i].clone();
    let mut row = Vec::with_capacity(spec.columns.len());
    for (i, column) in spec.columns.iter().enumerate() {
        let text = record
            .field(i)
            .map_or("", |f| options.mapping.translate(column.name, f));
        let value = parse_field(text, column.kind, format).map_err(|reason| (name(i), reason))?;
        if value == Value::Null && column.required {
            return Err((name(i), "required value is empty".to_owned()));
        }
        row.push(value);
    }
    if let Some((i, reason)) = check_row(spec, &row) {
        return Err((name(i), reason));
    }
    if let Some((i, reason)) = references.check(spec, &row) {
        return Err((name(i), reason));
    }
    Ok(row)
}

/// SHA-256 and size of a file, streamed.
fn digest(path: &Path) -> Result<(String, u64)> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut file = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        hasher.update(&buf[..n]);
    }
    let hex = hasher
        .finalize()
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            use std::fmt::Write as _;
            let _ = write!(hex, "{b:02x}");
            hex
        });
    Ok((hex, bytes))
}

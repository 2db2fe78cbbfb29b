//! Validated ingest of operator files into a canonical table.
//!
//! Every row read ends either in the table or in the quarantine file with its file, line,
//! column and reason, so `read = loaded + quarantined` always holds. Rows are canonical rows: a
//! line of a wide export (one column per measure and month) is one row per month, so for it
//! `read = lines × months`. A load is all or nothing:
//! the new rows are staged, merged with the existing table (a row whose key already exists
//! replaces it, so loading the same file twice changes nothing) and put in place by a rename.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::compute::filter_record_batch;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::mapping::{Encoding, Mapping};
use crate::parse::{FieldFormat, Value, days_to_date, parse_field};
use crate::schema::{Table, TableSpec};
use crate::source::{Limits, RawRecord, SourceInfo, read_file};
use crate::table::{
    BATCH_ROWS, BatchBuilder, Key, KeyPart, TableWriter, column_values, read_batches,
};
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
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            mapping: Mapping::default(),
            encoding: None,
            max_bad_ratio: None,
            max_line_bytes: 1 << 20,
            label: chrono::Local::now().format("%Y%m%dT%H%M%S%.3f").to_string(),
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

/// One rejected row.
struct Rejection {
    file: PathBuf,
    line: u64,
    column: Option<String>,
    reason: String,
    raw: String,
}

struct QuarantineWriter {
    writer: csv::Writer<std::fs::File>,
    tmp: PathBuf,
    path: PathBuf,
    by_column: BTreeMap<String, u64>,
}

impl QuarantineWriter {
    fn create(path: PathBuf) -> Result<Self> {
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
            by_column: BTreeMap::new(),
        })
    }

    fn write(&mut self, r: &Rejection) -> Result<()> {
        let column = r.column.as_deref().unwrap_or("");
        *self
            .by_column
            .entry(if column.is_empty() {
                "(row)".to_owned()
            } else {
                column.to_owned()
            })
            .or_default() += 1;
        self.writer
            .write_record([
                r.file.display().to_string().as_str(),
                r.line.to_string().as_str(),
                column,
                r.reason.as_str(),
                r.raw.as_str(),
            ])
            .map_err(|e| Error::io("writing the quarantine file", e.into()))
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
        std::fs::rename(&self.tmp, &self.path)
            .map_err(|e| Error::io(format!("writing {}", self.path.display()), e))?;
        Ok((self.path, self.by_column))
    }
}

/// Key sets of the tables a load refers to, by referencing column.
struct ReferenceSets {
    sets: Vec<(usize, Table, HashSet<KeyPart>)>,
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
    let mut quarantine = QuarantineWriter::create(quarantine_dir.join(format!(
        "{}-{}.csv",
        options.label,
        table.name()
    )))?;
    let staging = workspace.staging_dir(&options.label);
    std::fs::create_dir_all(&staging)
        .map_err(|e| Error::io(format!("creating {}", staging.display()), e))?;
    let result = stage_and_merge(
        workspace,
        spec,
        files,
        &references,
        &format,
        encoding,
        limits,
        options,
        &staging,
        &mut quarantine,
    );
    let _ = std::fs::remove_dir_all(&staging);
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
    let schema = spec.arrow_schema();
    let new_path = staging.join("new.parquet");
    let mut writer = TableWriter::create(&new_path, schema.clone())?;
    let mut builder = BatchBuilder::new(spec);
    let key_indexes: Vec<usize> = spec
        .key
        .iter()
        .map(|k| spec.column_index(k).expect("checked by schema tests"))
        .collect();
    // Key → (file index, line) of the row that holds it in this load.
    let mut seen: HashMap<Key, (usize, u64)> = HashMap::new();
    let mut reports = Vec::with_capacity(files.len());

    for (file_index, file) in files.iter().enumerate() {
        let (mut read, mut loaded, mut quarantined) = (0u64, 0u64, 0u64);
        let mut sink = |record: RawRecord| -> Result<()> {
            read += 1;
            let reject = |column: Option<String>, reason: String| Rejection {
                file: file.clone(),
                line: record.line,
                column,
                reason,
                raw: record.raw.clone(),
            };
            if let Some((column, reason)) = record.problem.clone() {
                quarantined += 1;
                return quarantine.write(&reject(column, reason));
            }
            match validate(
                spec,
                &record,
                format,
                options,
                references,
                &key_indexes,
                &mut seen,
                files,
                file_index,
            ) {
                Ok(row) => {
                    builder.append(&row);
                    loaded += 1;
                    if builder.len() >= BATCH_ROWS {
                        writer.write(&builder.finish()?)?;
                    }
                    Ok(())
                }
                Err((column, reason)) => {
                    quarantined += 1;
                    quarantine.write(&reject(Some(column), reason))
                }
            }
        };
        let source = read_file(file, spec, &options.mapping, encoding, limits, &mut sink)?;
        if read == 0 {
            tracing::warn!(file = %file.display(), "the file has a header but no rows");
        }
        let (sha256, bytes) = digest(file)?;
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
    if builder.len() > 0 {
        writer.write(&builder.finish()?)?;
    }
    writer.close()?;

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
    let merged_dir = staging.join(table.name());
    std::fs::create_dir_all(&merged_dir)
        .map_err(|e| Error::io(format!("creating {}", merged_dir.display()), e))?;
    let merged_path = merged_dir.join("data.parquet");
    let mut merged = TableWriter::create(&merged_path, schema)?;
    if existing.exists() {
        for batch in read_batches(&existing)? {
            let batch = batch.map_err(|e| Error::Arrow {
                context: format!("reading {}", existing.display()),
                source: e,
            })?;
            let (kept, replaced) = drop_keys(spec, &key_indexes, &batch, &seen)?;
            report.replaced += replaced;
            if kept.num_rows() > 0 {
                merged.write(&kept)?;
            }
        }
    }
    for batch in read_batches(&new_path)? {
        let batch = batch.map_err(|e| Error::Arrow {
            context: "reading staged rows".to_owned(),
            source: e,
        })?;
        merged.write(&batch)?;
    }
    report.table_rows = merged.close()?;
    report.inserted = loaded - report.replaced;
    workspace.swap_table(table, &merged_dir)?;
    tracing::info!(
        read,
        loaded,
        quarantined,
        rows = report.table_rows,
        "loaded {}",
        spec.name()
    );
    Ok(report)
}

/// Keeps the rows of `batch` whose key is not in `replace`; returns them and how many were dropped.
fn drop_keys(
    spec: &TableSpec,
    key_indexes: &[usize],
    batch: &RecordBatch,
    replace: &HashMap<Key, (usize, u64)>,
) -> Result<(RecordBatch, u64)> {
    let mut keep = Vec::with_capacity(batch.num_rows());
    let mut dropped = 0;
    for row in 0..batch.num_rows() {
        let key: Key = key_indexes
            .iter()
            .map(|&i| KeyPart::from_array(batch.column(i), spec.columns[i].kind, row))
            .collect();
        let hit = replace.contains_key(&key);
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
#[allow(clippy::too_many_arguments)]
fn validate(
    spec: &TableSpec,
    record: &RawRecord,
    format: &FieldFormat,
    options: &IngestOptions,
    references: &ReferenceSets,
    key_indexes: &[usize],
    seen: &mut HashMap<Key, (usize, u64)>,
    files: &[PathBuf],
    file_index: usize,
) -> std::result::Result<Vec<Value>, (String, String)> {
    // Problems are reported under the record's names: canonical ones, or a wide export's own.
    let name = |i: usize| record.names[i].clone();
    let mut row = Vec::with_capacity(spec.columns.len());
    for (i, (column, field)) in spec.columns.iter().zip(&record.fields).enumerate() {
        let text = field
            .as_deref()
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
    let key: Key = key_indexes
        .iter()
        .map(|&i| KeyPart::from_value(&row[i]))
        .collect();
    if let Some((first_file, first_line)) = seen.get(&key) {
        let shown: Vec<String> = key_indexes
            .iter()
            .zip(key.iter())
            .map(|(&i, k)| format!("{}={k}", spec.columns[i].name))
            .collect();
        let place = if *first_file == file_index {
            format!("line {first_line}")
        } else {
            format!("{} line {first_line}", files[*first_file].display())
        };
        return Err((
            name(key_indexes[0]),
            format!("duplicate key {} (first seen on {place})", shown.join(", ")),
        ));
    }
    seen.insert(key, (file_index, record.line));
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

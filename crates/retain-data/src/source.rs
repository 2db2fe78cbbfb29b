//! Reading input files (CSV in UTF-8 or GBK/GB18030, or Parquet) into raw records whose fields
//! are lined up with the canonical columns of a table.
//!
//! Nothing here judges values; it only finds the fields, decodes the text and reports shape
//! problems (wrong field count, over-long lines, undecodable bytes) for the row. The one
//! exception is the arithmetic a mapping asks for (sums, rounding, days before a date), whose
//! inputs must be numbers.
//!
//! A wide export (a mapping with `[wide]`) holds several months per line: each line yields one
//! record per month, in calendar order, all with the line's number.

use std::borrow::Cow;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{Error, Result};
use crate::mapping::{
    ColumnSource, Computed, Encoding, Mapping, PERIOD, Rounding, Wide, WideMonth, reference_date,
};
use crate::schema::TableSpec;

/// Where a canonical column's value comes from.
#[derive(Debug, Clone)]
enum FieldSource {
    Index(usize),
    Computed(ComputedSource),
    Constant(String),
    Absent,
}

/// A value computed from header columns, as the mapping asks.
#[derive(Debug, Clone)]
struct ComputedSource {
    /// The one column, or the parts of a sum.
    indexes: Vec<usize>,
    /// Their header names, for problems with one of them.
    parts: Vec<String>,
    round: Option<Rounding>,
    days_before: Option<chrono::NaiveDate>,
}

/// How a source record becomes one canonical row: a plain export has one layout, a wide one one
/// per month.
#[derive(Debug)]
struct Layout {
    fields: Arc<[FieldSource]>,
    /// The name problems with each canonical column are reported under.
    names: Arc<[String]>,
    /// The month of a wide layout, `YYYY-MM`.
    month: Option<String>,
}

/// The header matched against the table.
#[derive(Debug)]
struct Resolved {
    layouts: Vec<Layout>,
    delimiter: char,
    ignored: Vec<String>,
    /// Whether problems name the export's columns (wide: `arpu_7` says which month) rather than
    /// the canonical ones.
    source_names: bool,
}

/// The fields of one source line, decoded: one buffer and where each field ends, so a line
/// costs a few allocations instead of one per field.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    text: String,
    ends: Vec<usize>,
    /// The line as read, when it is not what the fields spell (bytes that did not decode).
    raw: Option<String>,
}

impl Fields {
    fn push(&mut self, field: &str) {
        self.text.push_str(field);
        self.ends.push(self.text.len());
    }

    /// Field `i`; `""` past the end (a short line is a problem of its own).
    fn get(&self, i: usize) -> &str {
        match self.ends.get(i) {
            Some(&end) => &self.text[if i == 0 { 0 } else { self.ends[i - 1] }..end],
            None => "",
        }
    }

    #[cfg(test)]
    fn of(values: &[&str]) -> Fields {
        let mut fields = Fields::default();
        for v in values {
            fields.push(v);
        }
        fields
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.ends.len()).map(|i| self.get(i))
    }

    /// The line as text, re-quoted where needed.
    fn line(&self, delimiter: char) -> String {
        if let Some(raw) = &self.raw {
            return raw.clone();
        }
        let mut out = String::with_capacity(self.text.len() + self.ends.len());
        for (i, field) in self.iter().enumerate() {
            if i > 0 {
                out.push(delimiter);
            }
            push_quoted(&mut out, field, delimiter);
        }
        out
    }
}

fn push_quoted(out: &mut String, field: &str, delimiter: char) {
    if field.contains([delimiter, '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

/// One record of an input file, lined up with the table's canonical columns.
#[derive(Debug)]
pub(crate) struct RawRecord {
    /// 1-based line (CSV) or row (Parquet, counting the header as line 1 so the numbers look
    /// alike) where the record starts.
    pub line: u64,
    /// The source line, shared by the records of a wide line.
    source: Arc<Fields>,
    /// Where each canonical column comes from.
    layout: Arc<[FieldSource]>,
    /// Values of the computed columns, by canonical column; empty when there are none.
    computed: Vec<Option<String>>,
    delimiter: char,
    /// The name a problem with each canonical column is reported under: the canonical name, or
    /// in a wide export the export's own column (`arpu_7`).
    pub names: Arc<[String]>,
    /// A problem with the record as a whole: (column, reason).
    pub problem: Option<(Option<String>, String)>,
}

impl RawRecord {
    /// Canonical column `i`'s text; `None` when the source has no such column.
    pub(crate) fn field(&self, i: usize) -> Option<&str> {
        match &self.layout[i] {
            FieldSource::Index(j) => Some(self.source.get(*j)),
            FieldSource::Constant(value) => Some(value),
            FieldSource::Computed(_) => self.computed.get(i).and_then(Option::as_deref),
            FieldSource::Absent => None,
        }
    }

    /// The record as it was read, for the quarantine file.
    pub(crate) fn raw(&self) -> String {
        self.source.line(self.delimiter)
    }
}

/// What was learned about a file while reading it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SourceInfo {
    pub format: &'static str,
    pub encoding: Option<&'static str>,
    /// Columns of the file that no canonical column uses.
    pub ignored_columns: Vec<String>,
    /// Source lines (Parquet rows) read. Each yields one record per month of a wide mapping, one
    /// otherwise.
    pub lines: u64,
}

/// Reading limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_line_bytes: usize,
}

const SNIFF_BYTES: usize = 64 * 1024;

/// Reads `path` and hands every record to `sink`, in file order.
pub(crate) fn read_file(
    path: &Path,
    spec: &TableSpec,
    mapping: &Mapping,
    encoding: Encoding,
    limits: Limits,
    sink: &mut dyn FnMut(RawRecord) -> Result<()>,
) -> Result<SourceInfo> {
    let mut file =
        File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    (&mut file)
        .take(SNIFF_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    if head.is_empty() {
        return Err(Error::bad_file(
            path,
            0,
            None,
            "the file is empty: expected a header line",
        ));
    }
    if head.starts_with(b"PAR1") {
        return read_parquet(path, spec, mapping, sink);
    }
    if head.starts_with(&[0x1f, 0x8b]) || head.starts_with(b"PK\x03\x04") {
        return Err(Error::bad_file(
            path,
            0,
            None,
            "this is a compressed archive (gzip/zip), not a CSV file: decompress it first",
        ));
    }
    if let Some(pos) = head.iter().position(|&b| b == 0) {
        return Err(Error::bad_file(
            path,
            0,
            None,
            format!("this is not a CSV text file: binary content (a NUL byte) at byte {pos}"),
        ));
    }
    let encoding = match encoding {
        Encoding::Auto => sniff_encoding(&head),
        other => other,
    };
    drop(file);
    read_csv(path, spec, mapping, encoding, limits, sink)
}

/// UTF-8 when the sample is UTF-8 (a character cut at the sample's end is fine); GB18030 when the
/// sample is not UTF-8 but decodes cleanly as GB18030; UTF-8 otherwise, so the bad rows are
/// quarantined one by one instead of the whole file being misread.
fn sniff_encoding(sample: &[u8]) -> Encoding {
    match std::str::from_utf8(sample) {
        Ok(_) => Encoding::Utf8,
        Err(e) if e.error_len().is_none() => Encoding::Utf8,
        Err(_) => {
            // Cut at the last line break so a split multi-byte character does not count.
            let end = sample
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(sample.len(), |p| p + 1);
            let (_, had_errors) = encoding_rs::GB18030.decode_without_bom_handling(&sample[..end]);
            if had_errors {
                Encoding::Utf8
            } else {
                Encoding::Gb18030
            }
        }
    }
}

fn decode(bytes: &[u8], encoding: Encoding) -> std::result::Result<Cow<'_, str>, String> {
    match encoding {
        Encoding::Gbk | Encoding::Gb18030 => encoding_rs::GB18030
            .decode_without_bom_handling_and_without_replacement(bytes)
            .ok_or_else(|| "bytes that are not valid GBK/GB18030 text".to_owned()),
        Encoding::Utf8 | Encoding::Auto => std::str::from_utf8(bytes)
            .map(Cow::Borrowed)
            .map_err(|e| {
                format!(
                    "invalid UTF-8 at byte {} of the field (if the file is GBK, say --encoding gbk)",
                    e.valid_up_to()
                )
            }),
    }
}

fn encoding_name(encoding: Encoding) -> &'static str {
    match encoding {
        Encoding::Utf8 | Encoding::Auto => "utf-8",
        Encoding::Gbk => "gbk",
        Encoding::Gb18030 => "gb18030",
    }
}

/// Matches the file's header against the table, through the mapping.
fn resolve_columns(
    path: &Path,
    spec: &TableSpec,
    mapping: &Mapping,
    header: &[String],
) -> Result<Resolved> {
    let normalized: Vec<String> = header.iter().map(|h| h.trim().to_lowercase()).collect();
    let mut used = vec![false; header.len()];
    let layouts = match &mapping.wide {
        None => vec![resolve_layout(
            path,
            spec,
            mapping,
            header,
            &normalized,
            None,
            &mut used,
        )?],
        Some(wide) => {
            let months = wide
                .months()
                .map_err(|reason| Error::bad_file(path, 0, None, reason))?;
            months
                .iter()
                .map(|month| {
                    resolve_layout(
                        path,
                        spec,
                        mapping,
                        header,
                        &normalized,
                        Some((wide, month)),
                        &mut used,
                    )
                })
                .collect::<Result<_>>()?
        }
    };
    for (i, name) in normalized.iter().enumerate() {
        if !used[i] && normalized[..i].contains(name) {
            return Err(Error::bad_file(
                path,
                1,
                Some(&header[i]),
                "the header names this column twice",
            ));
        }
    }
    let ignored = header
        .iter()
        .zip(&used)
        .filter(|(_, used)| !**used)
        .map(|(h, _)| h.clone())
        .collect();
    Ok(Resolved {
        layouts,
        delimiter: mapping.delimiter.unwrap_or(','),
        ignored,
        source_names: mapping.wide.is_some(),
    })
}

/// Resolves the canonical columns for one layout: the whole row, or one month of a wide row.
fn resolve_layout(
    path: &Path,
    spec: &TableSpec,
    mapping: &Mapping,
    header: &[String],
    normalized: &[String],
    wide: Option<(&Wide, &WideMonth)>,
    used: &mut [bool],
) -> Result<Layout> {
    let find = |name: &str| {
        let wanted = name.trim().to_lowercase();
        normalized.iter().position(|h| *h == wanted)
    };
    // Whether each header column is taken, and by the mapping's naming it. A column the mapping
    // names twice is deliberate (the phone number is also the id); one taken by its canonical
    // name and again by the mapping is a slip.
    let mut claims: Vec<Option<bool>> = vec![None; header.len()];
    let mut claim = |index: usize, explicit: bool| -> Result<()> {
        if let Some(other_explicit) = claims[index]
            && !(explicit && other_explicit)
        {
            return Err(Error::bad_file(
                path,
                1,
                Some(&header[index]),
                "the same source column is mapped to two canonical columns",
            ));
        }
        claims[index] = Some(explicit);
        used[index] = true;
        Ok(())
    };
    let mut fields = Vec::with_capacity(spec.columns.len());
    let mut names = Vec::with_capacity(spec.columns.len());
    for column in spec.columns {
        if let Some((_, month)) = wide
            && column.name == PERIOD
        {
            fields.push(FieldSource::Constant(month.month.clone()));
            names.push(PERIOD.to_owned());
            continue;
        }
        let source = mapping.source(column.name);
        let per_month = wide
            .filter(|(w, _)| source.is_some() && !w.per_row.iter().any(|name| name == column.name));
        let inputs: Vec<String> = match source {
            Some(source) => source
                .inputs()
                .into_iter()
                .map(|stem| match per_month {
                    Some((w, month)) => w.column_name(stem, &month.suffix),
                    None => stem.to_owned(),
                })
                .collect(),
            None => vec![column.name.to_owned()],
        };
        let found: Vec<Option<usize>> = inputs.iter().map(|name| find(name)).collect();
        if found.iter().all(Option::is_some) {
            let indexes: Vec<usize> = found.into_iter().flatten().collect();
            for &index in &indexes {
                claim(index, source.is_some())?;
            }
            let parts: Vec<String> = indexes.iter().map(|&i| header[i].clone()).collect();
            names.push(if wide.is_some() {
                parts.join("+")
            } else {
                column.name.to_owned()
            });
            fields.push(field_source(path, source, indexes, parts)?);
            continue;
        }
        let missing = inputs
            .iter()
            .zip(&found)
            .find_map(|(name, f)| f.is_none().then_some(name.as_str()))
            .expect("one input is missing");
        if let Some((_, month)) = per_month {
            // A monthly column must exist for every month; falling back to a default would hide
            // a month the export left out.
            let stem = source.map_or("", |s| s.inputs()[0]);
            let similar: Vec<&str> = header
                .iter()
                .map(String::as_str)
                .filter(|h| h.trim().to_lowercase().starts_with(&stem.to_lowercase()))
                .collect();
            return Err(Error::bad_file(
                path,
                1,
                Some(missing),
                format!(
                    "missing column {missing}, which [columns] {} needs for {}; {}",
                    column.name,
                    month.month,
                    if similar.is_empty() {
                        format!("no column of the header starts with {stem:?}")
                    } else {
                        format!("the header has {}", similar.join(", "))
                    }
                ),
            ));
        }
        if let Some(value) = mapping.defaults.get(column.name) {
            fields.push(FieldSource::Constant(value.clone()));
        } else if column.required {
            let hint = if missing == column.name {
                String::new()
            } else {
                format!(" (mapped from {missing:?})")
            };
            return Err(Error::bad_file(
                path,
                1,
                Some(column.name),
                format!(
                    "missing required column {}{hint}; the header has: {}",
                    column.name,
                    header.join(", ")
                ),
            ));
        } else {
            fields.push(FieldSource::Absent);
        }
        names.push(column.name.to_owned());
    }
    Ok(Layout {
        fields: fields.into(),
        names: names.into(),
        month: wide.map(|(_, month)| month.month.clone()),
    })
}

fn field_source(
    path: &Path,
    source: Option<&ColumnSource>,
    indexes: Vec<usize>,
    parts: Vec<String>,
) -> Result<FieldSource> {
    match source {
        Some(ColumnSource::Computed(Computed {
            sum,
            round,
            days_before,
            ..
        })) if sum.is_some() || round.is_some() || days_before.is_some() => {
            let days_before = days_before
                .as_deref()
                .map(reference_date)
                .transpose()
                .map_err(|reason| Error::bad_file(path, 0, None, reason))?;
            Ok(FieldSource::Computed(ComputedSource {
                indexes,
                parts,
                round: *round,
                days_before,
            }))
        }
        _ => Ok(FieldSource::Index(indexes[0])),
    }
}

/// Lines up one source line with the canonical columns, once per layout, and hands the
/// records to `sink`. A problem with the line as a whole rejects the record of every layout, so
/// the counts of a wide load stay in rows.
fn emit(
    resolved: &Resolved,
    line: u64,
    source: Fields,
    problem: Option<&(Option<String>, String)>,
    sink: &mut dyn FnMut(RawRecord) -> Result<()>,
) -> Result<()> {
    let source = Arc::new(source);
    for layout in &resolved.layouts {
        let (computed, problem) = match problem {
            Some((column, reason)) => {
                let reason = match &layout.month {
                    Some(month) => format!("{reason} (the {month} row)"),
                    None => reason.clone(),
                };
                (Vec::new(), Some((column.clone(), reason)))
            }
            None => match computed(layout, &source, resolved.source_names) {
                Ok(computed) => (computed, None),
                Err(problem) => (Vec::new(), Some(problem)),
            },
        };
        sink(RawRecord {
            line,
            source: Arc::clone(&source),
            layout: Arc::clone(&layout.fields),
            computed,
            delimiter: resolved.delimiter,
            names: Arc::clone(&layout.names),
            problem,
        })?;
    }
    Ok(())
}

type Problem = (Option<String>, String);

/// The values of a layout's computed columns, by canonical column (empty when it has none).
fn computed(
    layout: &Layout,
    source: &Fields,
    source_names: bool,
) -> std::result::Result<Vec<Option<String>>, Problem> {
    if !layout
        .fields
        .iter()
        .any(|f| matches!(f, FieldSource::Computed(_)))
    {
        return Ok(Vec::new());
    }
    layout
        .fields
        .iter()
        .enumerate()
        .map(|(i, field)| match field {
            FieldSource::Computed(computed) => {
                compute(computed, source).map_err(|(part, reason)| {
                    let part = &computed.parts[part];
                    if source_names {
                        (Some(part.clone()), reason)
                    } else {
                        (Some(layout.names[i].clone()), format!("{part}: {reason}"))
                    }
                })
            }
            _ => Ok(None),
        })
        .collect()
}

/// Digits after the decimal point, or `None` for a number in exponent form.
fn decimals(text: &str) -> Option<usize> {
    if text.contains(['e', 'E']) {
        return None;
    }
    Some(
        text.split_once('.')
            .map_or(0, |(_, fraction)| fraction.len()),
    )
}

/// Computes a value the mapping asks for; on a bad input, returns which part and why.
fn compute(
    computed: &ComputedSource,
    source: &Fields,
) -> std::result::Result<Option<String>, (usize, String)> {
    let texts: Vec<&str> = computed
        .indexes
        .iter()
        .map(|&i| source.get(i).trim())
        .collect();
    let empty = texts.iter().filter(|t| t.is_empty()).count();
    if empty == texts.len() {
        return Ok(None);
    }
    if empty > 0 {
        // Counting an empty part as 0 would invent a value the export does not have.
        let at = texts
            .iter()
            .position(|t| t.is_empty())
            .expect("one is empty");
        let other = texts
            .iter()
            .position(|t| !t.is_empty())
            .expect("one is not");
        return Err((
            at,
            format!(
                "empty, while {} has a value: a sum needs all its columns",
                computed.parts[other]
            ),
        ));
    }
    let mut total = 0.0;
    let mut places = Some(0);
    for (part, text) in texts.iter().enumerate() {
        let value = text
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| (part, format!("{text:?} is not a number")))?;
        total += value;
        places = places.zip(decimals(text)).map(|(a, b)| a.max(b).min(12));
    }
    // Binary fractions make 40.31 + 26.83 = 67.14000000000001; the parts' precision is all the
    // sum has, and rounding up must not count that noise as a started minute.
    if let Some(places) = places {
        total = format!("{total:.places$}")
            .parse()
            .expect("a formatted number");
    }
    if let Some(reference) = computed.days_before {
        let days = Some(total)
            .filter(|d| d.fract() == 0.0 && (0.0..=1.0e6).contains(d))
            .and_then(|d| reference.checked_sub_signed(chrono::Duration::days(d as i64)))
            .ok_or_else(|| (0, format!("{:?} is not a whole number of days", texts[0])))?;
        return Ok(Some(days.format("%Y-%m-%d").to_string()));
    }
    Ok(Some(match (computed.round, places) {
        (Some(Rounding::Nearest), _) => format!("{:.0}", total.round()),
        (Some(Rounding::Up), _) => format!("{:.0}", total.ceil()),
        (None, Some(places)) => format!("{total:.places$}"),
        (None, None) => total.to_string(),
    }))
}

fn read_csv(
    path: &Path,
    spec: &TableSpec,
    mapping: &Mapping,
    encoding: Encoding,
    limits: Limits,
    sink: &mut dyn FnMut(RawRecord) -> Result<()>,
) -> Result<SourceInfo> {
    let file = File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(mapping.delimiter.map_or(b',', |d| d as u8))
        .buffer_capacity(1 << 20)
        .from_reader(std::io::BufReader::with_capacity(1 << 20, file));
    let csv_error = |e: csv::Error| -> Error {
        let line = e.position().map_or(0, csv::Position::line);
        match e.into_kind() {
            csv::ErrorKind::Io(io) => Error::io(format!("reading {}", path.display()), io),
            other => Error::bad_file(path, line, None, format!("{other:?}")),
        }
    };

    let mut record = csv::ByteRecord::new();
    if !reader.read_byte_record(&mut record).map_err(csv_error)? {
        return Err(Error::bad_file(
            path,
            0,
            None,
            "the file is empty: expected a header line",
        ));
    }
    let mut header = Vec::with_capacity(record.len());
    for (i, field) in record.iter().enumerate() {
        let field = if i == 0 {
            field.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(field)
        } else {
            field
        };
        let name = decode(field, encoding).map_err(|reason| {
            Error::bad_file(path, 1, None, format!("the header line has {reason}"))
        })?;
        header.push(name.into_owned());
    }
    let resolved = resolve_columns(path, spec, mapping, &header)?;

    let mut lines = 0;
    while reader.read_byte_record(&mut record).map_err(csv_error)? {
        lines += 1;
        let line = record.position().map_or(0, csv::Position::line);
        let mut problem = None;
        let bytes = record.as_slice().len() + record.len().saturating_sub(1);
        if bytes > limits.max_line_bytes {
            problem = Some((
                None,
                format!(
                    "the line is {bytes} bytes long, over the limit of {} bytes",
                    limits.max_line_bytes
                ),
            ));
        } else if record.len() != header.len() {
            problem = Some((
                None,
                format!(
                    "expected {} fields like the header, found {}",
                    header.len(),
                    record.len()
                ),
            ));
        }
        let fields = fields_of(&record, encoding, resolved.delimiter, &header, &mut problem);
        emit(&resolved, line, fields, problem.as_ref(), sink)?;
    }
    Ok(SourceInfo {
        format: "csv",
        encoding: Some(encoding_name(encoding)),
        ignored_columns: resolved.ignored,
        lines,
    })
}

/// The fields of a CSV record, decoded. A field that does not decode sets `problem` (unless
/// the line has one already) and the line is kept as read, undecodable bytes shown as U+FFFD.
fn fields_of(
    record: &csv::ByteRecord,
    encoding: Encoding,
    delimiter: char,
    header: &[String],
    problem: &mut Option<Problem>,
) -> Fields {
    let mut fields = Fields {
        text: String::with_capacity(record.as_slice().len()),
        ends: Vec::with_capacity(record.len()),
        raw: None,
    };
    // The usual case: the whole UTF-8 line checked at once.
    if matches!(encoding, Encoding::Utf8 | Encoding::Auto)
        && let Ok(text) = std::str::from_utf8(record.as_slice())
    {
        // The record's bytes are its fields end to end, so its text is the fields' text and
        // each field ends where the record says, unless a field ends inside a character (a
        // delimiter between the bytes of one): then each field is decoded on its own below.
        fields.ends.extend(record.iter().scan(0, |end, field| {
            *end += field.len();
            Some(*end)
        }));
        if fields.ends.iter().all(|&end| text.is_char_boundary(end)) {
            fields.text.push_str(text);
            return fields;
        }
        fields.ends.clear();
    }
    let mut undecodable = false;
    for (i, field) in record.iter().enumerate() {
        match decode(field, encoding) {
            Ok(text) => fields.push(&text),
            Err(reason) => {
                undecodable = true;
                if problem.is_none() {
                    *problem = Some((header.get(i).cloned(), reason));
                }
                fields.push("");
            }
        }
    }
    if undecodable {
        let mut raw = Fields::default();
        for field in record {
            raw.push(&String::from_utf8_lossy(field));
        }
        fields.raw = Some(raw.line(delimiter));
    }
    fields
}

fn read_parquet(
    path: &Path,
    spec: &TableSpec,
    mapping: &Mapping,
    sink: &mut dyn FnMut(RawRecord) -> Result<()>,
) -> Result<SourceInfo> {
    let file = File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| Error::bad_file(path, 0, None, format!("not a readable Parquet file: {e}")))?;
    let header: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let resolved = resolve_columns(path, spec, mapping, &header)?;
    let reader = builder
        .with_batch_size(8192)
        .build()
        .map_err(|e| Error::bad_file(path, 0, None, format!("not a readable Parquet file: {e}")))?;
    let mut row: u64 = 1;
    for batch in reader {
        let batch = batch.map_err(|e| {
            Error::bad_file(
                path,
                row + 1,
                None,
                format!("the Parquet data cannot be read: {e}"),
            )
        })?;
        let mut columns = Vec::with_capacity(batch.num_columns());
        for (i, column) in batch.columns().iter().enumerate() {
            let text = arrow::compute::cast(column, &DataType::Utf8).map_err(|e| {
                Error::bad_file(
                    path,
                    0,
                    Some(&header[i]),
                    format!(
                        "column of type {} cannot be read as text: {e}",
                        column.data_type()
                    ),
                )
            })?;
            columns.push(text);
        }
        for r in 0..batch.num_rows() {
            row += 1;
            let mut fields = Fields::default();
            for c in &columns {
                let c = c.as_string::<i32>();
                fields.push(if c.is_null(r) { "" } else { c.value(r) });
            }
            emit(&resolved, row, fields, None, sink)?;
        }
    }
    Ok(SourceInfo {
        format: "parquet",
        encoding: None,
        ignored_columns: resolved.ignored,
        lines: row - 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_tells_gbk_from_utf8() {
        let text = "subscriber_id,city\n1,南京市\n";
        assert_eq!(sniff_encoding(text.as_bytes()), Encoding::Utf8);
        let (gbk, _, _) = encoding_rs::GBK.encode(text);
        assert_eq!(sniff_encoding(&gbk), Encoding::Gb18030);
        // A UTF-8 character cut by the sample boundary is still UTF-8.
        let cut = &text.as_bytes()[..text.len() - 3];
        assert_eq!(sniff_encoding(cut), Encoding::Utf8);
        // Bytes that are neither stay UTF-8, so only the bad rows are rejected.
        assert_eq!(sniff_encoding(b"a,b\n1,\xff\xff\n"), Encoding::Utf8);
    }

    fn sum(round: Option<Rounding>) -> ComputedSource {
        ComputedSource {
            indexes: vec![0, 1],
            parts: vec!["a".into(), "b".into()],
            round,
            days_before: None,
        }
    }

    #[test]
    fn sums_keep_the_parts_precision_and_round_only_as_asked() {
        let run = |c: &ComputedSource, a: &str, b: &str| compute(c, &Fields::of(&[a, b]));
        let some = |s: &str| Ok(Some(s.to_owned()));
        assert_eq!(run(&sum(None), "40.31", "26.83"), some("67.14"));
        assert_eq!(run(&sum(None), "1e2", "1"), some("101"));
        // Binary noise must not make 2 minutes into 3.
        assert_eq!(run(&sum(Some(Rounding::Up)), "1.1", "0.9"), some("2"));
        assert_eq!(run(&sum(Some(Rounding::Up)), "0.2", "0"), some("1"));
        assert_eq!(run(&sum(Some(Rounding::Up)), "0", "0.00"), some("0"));
        assert_eq!(run(&sum(Some(Rounding::Nearest)), "0.2", "0.2"), some("0"));
        assert_eq!(run(&sum(None), "", " "), Ok(None));
        assert_eq!(
            run(&sum(None), "1", ""),
            Err((
                1,
                "empty, while a has a value: a sum needs all its columns".to_owned()
            ))
        );
        assert_eq!(
            run(&sum(None), "x", "1"),
            Err((0, "\"x\" is not a number".to_owned()))
        );
        assert_eq!(run(&sum(None), "1", "inf").unwrap_err().0, 1);
    }

    #[test]
    fn days_before_a_reference_date() {
        let aon = ComputedSource {
            indexes: vec![0],
            parts: vec!["aon".into()],
            round: None,
            days_before: chrono::NaiveDate::from_ymd_opt(2014, 9, 30),
        };
        let run = |days: &str| compute(&aon, &Fields::of(&[days]));
        assert_eq!(run("400"), Ok(Some("2013-08-26".to_owned())));
        assert_eq!(run("400.0"), Ok(Some("2013-08-26".to_owned())));
        assert_eq!(run(""), Ok(None));
        for bad in ["1.5", "-1", "1e9"] {
            assert!(
                run(bad)
                    .unwrap_err()
                    .1
                    .contains("not a whole number of days")
            );
        }
    }

    #[test]
    fn a_column_taken_by_its_name_and_by_the_mapping_is_an_error() {
        let spec = crate::schema::Table::Plans.spec();
        let header = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let slip: Mapping = toml::from_str("[columns]\nname = \"plan_id\"\n").unwrap();
        let plans = header(&["plan_id", "monthly_fee", "data_mb", "voice_minutes", "tier"]);
        let err = resolve_columns(Path::new("p.csv"), spec, &slip, &plans).unwrap_err();
        assert!(
            err.to_string().contains("mapped to two canonical columns"),
            "{err}"
        );

        // Named twice by the mapping, it is deliberate.
        let twice: Mapping =
            toml::from_str("[columns]\nplan_id = \"code\"\nname = \"code\"\n").unwrap();
        let plans = header(&["code", "monthly_fee", "data_mb", "voice_minutes", "tier"]);
        let resolved = resolve_columns(Path::new("p.csv"), spec, &twice, &plans).unwrap();
        assert!(matches!(
            resolved.layouts[0].fields[..2],
            [FieldSource::Index(0), FieldSource::Index(0)]
        ));
    }

    #[test]
    fn raw_lines_are_requoted() {
        let fields = Fields::of(&["1", "a,b", "say \"hi\"", ""]);
        assert_eq!(fields.line(','), "1,\"a,b\",\"say \"\"hi\"\"\",");
        assert_eq!(fields.get(1), "a,b");
        assert_eq!(fields.get(3), "");
        assert_eq!(fields.get(4), "");
    }

    #[test]
    fn undecodable_fields_are_a_problem_and_the_line_is_kept_as_read() {
        let header = vec!["a".to_owned(), "b".to_owned()];
        let record = csv::ByteRecord::from(vec![&b"x;y"[..], &b"\xff1"[..]]);
        let mut problem = None;
        let fields = fields_of(&record, Encoding::Utf8, ';', &header, &mut problem);
        let (column, reason) = problem.unwrap();
        assert_eq!(column.as_deref(), Some("b"));
        assert!(reason.contains("invalid UTF-8 at byte 0"), "{reason}");
        assert_eq!(fields.line(';'), "\"x;y\";\u{fffd}1");
        // GBK text decodes whole.
        let (gbk, _, _) = encoding_rs::GBK.encode("南京");
        let record = csv::ByteRecord::from(vec![&b"1"[..], &gbk[..]]);
        let mut problem = None;
        let fields = fields_of(&record, Encoding::Gbk, ',', &header, &mut problem);
        assert!(problem.is_none());
        assert_eq!(fields.get(1), "南京");
        assert_eq!(fields.line(','), "1,南京");
    }

    #[test]
    fn a_character_split_by_a_delimiter_is_a_problem_not_a_panic() {
        // "中" is E4 B8 AD: split over two fields, each field is invalid although the fields
        // end to end are valid UTF-8.
        let header = vec!["a".to_owned(), "b".to_owned()];
        let record = csv::ByteRecord::from(vec![&b"\xe4\xb8"[..], &b"\xad"[..]]);
        let mut problem = None;
        let fields = fields_of(&record, Encoding::Utf8, ',', &header, &mut problem);
        let (column, reason) = problem.unwrap();
        assert_eq!(column.as_deref(), Some("a"));
        assert!(reason.contains("invalid UTF-8"), "{reason}");
        assert_eq!(fields.get(0), "");
        // Whole fields still take the fast way.
        let record = csv::ByteRecord::from(vec![&b"1"[..], "中".as_bytes(), &b""[..]]);
        let mut problem = None;
        let fields = fields_of(&record, Encoding::Utf8, ',', &header, &mut problem);
        assert!(problem.is_none());
        assert_eq!(
            (fields.get(0), fields.get(1), fields.get(2)),
            ("1", "中", "")
        );
        assert_eq!(fields.get(3), "");
    }
}

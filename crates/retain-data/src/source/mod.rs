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

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::mapping::{Encoding, Mapping, Rounding};

use crate::schema::TableSpec;
pub use csv_file::decode_text;
pub use xlsx_file::{first_sheet_csv, is_workbook};

// A module per part of reading: the header matched through the mapping, the values a mapping
// computes, and a reader per file format. The types they share are defined here, where all of
// them see their fields.
mod compute;
mod csv_file;
mod header;
mod parquet_file;
mod xlsx_file;

use compute::computed;
use csv_file::{read_csv, sniff_encoding};
use parquet_file::read_parquet;

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
    if head.starts_with(b"PK\x03\x04") && xlsx_file::is_workbook(path) {
        drop(file);
        return xlsx_file::read_xlsx(path, spec, mapping, limits, sink);
    }
    if head.starts_with(&[0x1f, 0x8b]) || head.starts_with(b"PK\x03\x04") {
        return Err(Error::bad_file(
            path,
            0,
            None,
            "this is a compressed archive (gzip/zip), not a CSV file: decompress it first \
             (an Excel workbook is read when its name ends in .xlsx)",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_lines_are_requoted() {
        let fields = Fields::of(&["1", "a,b", "say \"hi\"", ""]);
        assert_eq!(fields.line(','), "1,\"a,b\",\"say \"\"hi\"\"\",");
        assert_eq!(fields.get(1), "a,b");
        assert_eq!(fields.get(3), "");
        assert_eq!(fields.get(4), "");
    }
}

//! Reading input files (CSV in UTF-8 or GBK/GB18030, or Parquet) into raw records whose fields
//! are lined up with the canonical columns of a table.
//!
//! Nothing here judges values; it only finds the fields, decodes the text and reports shape
//! problems (wrong field count, over-long lines, undecodable bytes) for the row.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{Error, Result};
use crate::mapping::{Encoding, Mapping};
use crate::schema::TableSpec;

/// Where a canonical column's value comes from.
#[derive(Debug, Clone)]
enum FieldSource {
    Index(usize),
    Constant(String),
    Absent,
}

/// One record of an input file, lined up with the table's canonical columns.
#[derive(Debug)]
pub(crate) struct RawRecord {
    /// 1-based line (CSV) or row (Parquet, counting the header as line 1 so the numbers look
    /// alike) where the record starts.
    pub line: u64,
    /// One entry per canonical column; `None` when the source has no such column.
    pub fields: Vec<Option<String>>,
    /// The record as it was read, for the quarantine file.
    pub raw: String,
    /// A problem with the record as a whole: (column, reason).
    pub problem: Option<(Option<String>, String)>,
}

/// What was learned about a file while reading it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SourceInfo {
    pub format: &'static str,
    pub encoding: Option<&'static str>,
    /// Columns of the file that no canonical column uses.
    pub ignored_columns: Vec<String>,
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

fn decode(bytes: &[u8], encoding: Encoding) -> std::result::Result<String, String> {
    match encoding {
        Encoding::Gbk | Encoding::Gb18030 => encoding_rs::GB18030
            .decode_without_bom_handling_and_without_replacement(bytes)
            .map(std::borrow::Cow::into_owned)
            .ok_or_else(|| "bytes that are not valid GBK/GB18030 text".to_owned()),
        Encoding::Utf8 | Encoding::Auto => std::str::from_utf8(bytes)
            .map(str::to_owned)
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
) -> Result<(Vec<FieldSource>, Vec<String>)> {
    let normalized: Vec<String> = header.iter().map(|h| h.trim().to_lowercase()).collect();
    let mut used = vec![false; header.len()];
    let mut sources = Vec::with_capacity(spec.columns.len());
    for column in spec.columns {
        let wanted = mapping.source_name(column.name).trim().to_lowercase();
        let found = normalized.iter().position(|h| *h == wanted);
        if let Some(index) = found {
            if used[index] {
                return Err(Error::bad_file(
                    path,
                    1,
                    Some(&header[index]),
                    "the same source column is mapped to two canonical columns",
                ));
            }
            used[index] = true;
            sources.push(FieldSource::Index(index));
        } else if let Some(value) = mapping.defaults.get(column.name) {
            sources.push(FieldSource::Constant(value.clone()));
        } else if column.required {
            let hint = if wanted == column.name {
                String::new()
            } else {
                format!(" (mapped from {wanted:?})")
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
            sources.push(FieldSource::Absent);
        }
    }
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
    Ok((sources, ignored))
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
        header.push(name);
    }
    let (sources, ignored) = resolve_columns(path, spec, mapping, &header)?;

    let delimiter = mapping.delimiter.unwrap_or(',');
    while reader.read_byte_record(&mut record).map_err(csv_error)? {
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
        let mut decoded: Vec<Option<String>> = Vec::with_capacity(record.len());
        for (i, field) in record.iter().enumerate() {
            match decode(field, encoding) {
                Ok(text) => decoded.push(Some(text)),
                Err(reason) => {
                    if problem.is_none() {
                        problem = Some((header.get(i).cloned(), reason));
                    }
                    decoded.push(None);
                }
            }
        }
        let raw = raw_line(&record, delimiter);
        let fields = if problem.is_some() {
            Vec::new()
        } else {
            sources
                .iter()
                .map(|s| match s {
                    FieldSource::Index(i) => decoded[*i].take(),
                    FieldSource::Constant(v) => Some(v.clone()),
                    FieldSource::Absent => None,
                })
                .collect()
        };
        sink(RawRecord {
            line,
            fields,
            raw,
            problem,
        })?;
    }
    Ok(SourceInfo {
        format: "csv",
        encoding: Some(encoding_name(encoding)),
        ignored_columns: ignored,
    })
}

/// The record as text, re-quoted where needed; undecodable bytes are shown as U+FFFD.
fn raw_line(record: &csv::ByteRecord, delimiter: char) -> String {
    let mut out = String::new();
    for (i, field) in record.iter().enumerate() {
        if i > 0 {
            out.push(delimiter);
        }
        let text = String::from_utf8_lossy(field);
        if text.contains([delimiter, '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&text.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&text);
        }
    }
    out
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
    let (sources, ignored) = resolve_columns(path, spec, mapping, &header)?;
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
            let values: Vec<Option<&str>> = columns
                .iter()
                .map(|c| {
                    let c = c.as_string::<i32>();
                    (!c.is_null(r)).then(|| c.value(r))
                })
                .collect();
            let raw = values
                .iter()
                .map(|v| v.unwrap_or(""))
                .collect::<Vec<_>>()
                .join(",");
            let fields = sources
                .iter()
                .map(|s| match s {
                    FieldSource::Index(i) => values[*i].map(str::to_owned),
                    FieldSource::Constant(v) => Some(v.clone()),
                    FieldSource::Absent => None,
                })
                .collect();
            sink(RawRecord {
                line: row,
                fields,
                raw,
                problem: None,
            })?;
        }
    }
    Ok(SourceInfo {
        format: "parquet",
        encoding: None,
        ignored_columns: ignored,
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

    #[test]
    fn raw_lines_are_requoted() {
        let record = csv::ByteRecord::from(vec!["1", "a,b", "say \"hi\""]);
        assert_eq!(raw_line(&record, ','), "1,\"a,b\",\"say \"\"hi\"\"\"");
    }
}

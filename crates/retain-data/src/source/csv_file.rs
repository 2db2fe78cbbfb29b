//! CSV files: the encoding (sniffed, or as the mapping says), the header, and each line decoded
//! into fields, with shape problems (field count, over-long lines, bad bytes) kept for its row.

use std::borrow::Cow;
use std::fs::File;
use std::path::Path;

use super::header::resolve_columns;
use super::{Fields, Limits, Problem, RawRecord, SourceInfo, emit};
use crate::error::{Error, Result};
use crate::mapping::{Encoding, Mapping};
use crate::schema::TableSpec;

/// UTF-8 when the sample is UTF-8 (a character cut at the sample's end is fine); GB18030 when the
/// sample is not UTF-8 but decodes cleanly as GB18030; UTF-8 otherwise, so the bad rows are
/// quarantined one by one instead of the whole file being misread.
pub(super) fn sniff_encoding(sample: &[u8]) -> Encoding {
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

/// A whole small file people saved (a call centre's result sheet): UTF-8, with or without a
/// byte order mark, or else GBK/GB18030 as a Chinese-language Excel saves "CSV", told apart as
/// ingest tells them. An error says where the bytes stop being either.
pub fn decode_text(bytes: &[u8]) -> std::result::Result<(String, &'static str), String> {
    let bytes = bytes.strip_prefix(crate::BOM).unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok((text.to_owned(), "utf-8")),
        Err(e) => {
            match encoding_rs::GB18030.decode_without_bom_handling_and_without_replacement(bytes) {
                Some(text) => Ok((text.into_owned(), "gb18030")),
                None => Err(format!(
                    "neither UTF-8 (invalid at byte {}) nor GBK/GB18030 text",
                    e.valid_up_to()
                )),
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

pub(super) fn read_csv(
    path: &Path,
    spec: &TableSpec,
    mapping: &Mapping,
    encoding: Encoding,
    limits: Limits,
    sink: &mut dyn FnMut(RawRecord) -> Result<()>,
) -> Result<SourceInfo> {
    let file = File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    read_csv_from(
        path,
        std::io::BufReader::with_capacity(1 << 20, file),
        spec,
        mapping,
        encoding,
        mapping.delimiter.unwrap_or(','),
        limits,
        sink,
    )
}

/// [`read_csv`] over any reader of CSV text (a workbook's sheet, say); `path` names it in
/// errors.
#[allow(clippy::too_many_arguments)]
pub(super) fn read_csv_from(
    path: &Path,
    input: impl std::io::Read,
    spec: &TableSpec,
    mapping: &Mapping,
    encoding: Encoding,
    delimiter: char,
    limits: Limits,
    sink: &mut dyn FnMut(RawRecord) -> Result<()>,
) -> Result<SourceInfo> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter as u8)
        .buffer_capacity(1 << 20)
        .from_reader(input);
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
    fn a_whole_text_is_utf8_or_gbk_and_its_bom_is_dropped() {
        let text = "work_order_id,stated_reason\n1,资费偏高\n";
        assert_eq!(
            decode_text(format!("\u{feff}{text}").as_bytes()).unwrap(),
            (text.to_owned(), "utf-8")
        );
        let (gbk, _, _) = encoding_rs::GBK.encode(text);
        assert_eq!(decode_text(&gbk).unwrap(), (text.to_owned(), "gb18030"));
        // A character outside GBK, in GB18030's four-byte form.
        let (four, _, _) = encoding_rs::GB18030.encode("1,𠀀\n");
        assert_eq!(decode_text(&four).unwrap().0, "1,𠀀\n");
        let err = decode_text(b"1,\xff\xfe\xff\n").unwrap_err();
        assert!(err.contains("byte 2"), "{err}");
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

//! Excel workbooks (`.xlsx`): the first sheet read like a CSV file, row for line, so a
//! rejected row names its sheet row and column as a CSV row names its line.

use std::path::Path;

use calamine::{DataRef, Reader as _, Xlsx};

use super::csv_file::read_csv_from;
use super::{Limits, RawRecord, SourceInfo};
use crate::error::{Error, Result};
use crate::mapping::{Encoding, Mapping};
use crate::schema::TableSpec;

/// The largest workbook read: its first sheet is held whole while it is read, and a workbook
/// this size already holds Excel's limit of a million rows.
pub(super) const MAX_XLSX_BYTES: u64 = 256 << 20;

/// Whether `path` names an Excel workbook of the kind read here.
#[must_use]
pub fn is_workbook(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("xlsx") || e.eq_ignore_ascii_case("xlsm"))
}

pub(super) fn read_xlsx(
    path: &Path,
    spec: &TableSpec,
    mapping: &Mapping,
    limits: Limits,
    sink: &mut dyn FnMut(RawRecord) -> Result<()>,
) -> Result<SourceInfo> {
    let text = first_sheet_csv(path)?;
    let mut info = read_csv_from(
        path,
        std::io::Cursor::new(text),
        spec,
        mapping,
        Encoding::Utf8,
        ',',
        limits,
        sink,
    )?;
    info.format = "xlsx";
    info.encoding = None;
    Ok(info)
}

/// The most a workbook may unpack to (its entries' declared sizes): a zip of a few MiB can hold
/// gigabytes of XML.
const MAX_UNPACKED_BYTES: u64 = 2 << 30;
/// The most CSV text one sheet may make.
const MAX_SHEET_TEXT_BYTES: usize = 1 << 30;
/// Excel's own limits.
const MAX_ROWS: u32 = 1_048_576;
const MAX_COLUMNS: u32 = 16_384;

/// The first sheet of the workbook at `path` as CSV text, one line per sheet row (blank lines
/// for rows without cells), so line numbers are the sheet's row numbers. Cells are read one at
/// a time and every size is bounded: the file, what it unpacks to, rows, columns and text.
pub fn first_sheet_csv(path: &Path) -> Result<Vec<u8>> {
    let bad = |reason: String| Error::bad_file(path, 0, None, reason);
    let size = std::fs::metadata(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?
        .len();
    if size > MAX_XLSX_BYTES {
        return Err(bad(format!(
            "the workbook is {} MiB, over the limit of {} MiB: save the sheet as CSV",
            size >> 20,
            MAX_XLSX_BYTES >> 20
        )));
    }
    let unreadable = |e: &dyn std::fmt::Display| bad(format!("not a readable Excel workbook: {e}"));
    let file = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| unreadable(&e))?;
    let mut unpacked = 0u64;
    for i in 0..zip.len() {
        unpacked += zip.by_index_raw(i).map_err(|e| unreadable(&e))?.size();
    }
    if unpacked > MAX_UNPACKED_BYTES {
        return Err(bad(format!(
            "the workbook unpacks to {} MiB, over the limit of {} MiB",
            unpacked >> 20,
            MAX_UNPACKED_BYTES >> 20
        )));
    }
    let mut book: Xlsx<_> = calamine::open_workbook(path).map_err(|e| unreadable(&e))?;
    let name = book
        .sheet_names()
        .first()
        .cloned()
        .ok_or_else(|| bad("the workbook has no sheet".into()))?;
    let mut cells = book
        .worksheet_cells_reader(&name)
        .map_err(|e| unreadable(&e))?;
    let mut text = Vec::new();
    // The sheet row the next line of `text` stands for (0-based).
    let mut next_line = 0u32;
    let mut row: Vec<String> = Vec::new();
    let mut current: Option<u32> = None;
    // The header's width: a sheet stores no cell for an empty one, so a row whose last cells
    // were left empty (no notes) is as wide as the header all the same.
    let mut width = 0usize;
    let mut flush = |text: &mut Vec<u8>, at: u32, row: &mut Vec<String>| -> Result<()> {
        // Rows come in order in a sheet Excel wrote; one that does not is read where it stands.
        text.resize(text.len() + at.saturating_sub(next_line) as usize, b'\n');
        if width == 0 {
            width = row.len();
        } else if row.len() < width {
            row.resize(width, String::new());
        }
        let mut w = csv::WriterBuilder::new()
            .flexible(true)
            .from_writer(Vec::new());
        w.write_record(row.iter())
            .map_err(|e| Error::io(format!("reading {}", path.display()), e.into()))?;
        text.extend(
            w.into_inner()
                .map_err(|e| Error::io(format!("reading {}", path.display()), e.into_error()))?,
        );
        next_line = next_line.max(at + 1);
        row.clear();
        Ok(())
    };
    while let Some(cell) = cells.next_cell().map_err(|e| unreadable(&e))? {
        let (r, c) = cell.get_position();
        if r >= MAX_ROWS || c >= MAX_COLUMNS {
            return Err(bad(format!(
                "a cell at row {}, column {} lies beyond Excel's {MAX_ROWS} rows and {MAX_COLUMNS} columns",
                u64::from(r) + 1,
                u64::from(c) + 1
            )));
        }
        if current.is_some_and(|at| at != r) {
            flush(&mut text, current.unwrap_or(0), &mut row)?;
        }
        current = Some(r);
        if row.len() <= c as usize {
            row.resize(c as usize + 1, String::new());
        }
        row[c as usize] = cell_text(cell.get_value());
        if text.len() > MAX_SHEET_TEXT_BYTES {
            return Err(bad(format!(
                "the sheet holds over {} MiB of text: save it as CSV",
                MAX_SHEET_TEXT_BYTES >> 20
            )));
        }
    }
    if let Some(at) = current {
        flush(&mut text, at, &mut row)?;
    }
    Ok(text)
}

/// A cell as the text a CSV export of the sheet would hold: whole numbers without a decimal
/// point, dates as `YYYY-MM-DD` (with the time when there is one), errors as Excel shows them.
fn cell_text(cell: &DataRef<'_>) -> String {
    match cell {
        DataRef::Empty => String::new(),
        DataRef::SharedString(s) => (*s).to_owned(),
        DataRef::String(s) | DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.clone(),
        DataRef::Int(i) => i.to_string(),
        DataRef::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
        DataRef::Float(f) => f.to_string(),
        DataRef::Bool(b) => b.to_string(),
        DataRef::DateTime(d) if d.is_datetime() => {
            let (y, mo, day, h, mi, s, _) = d.to_ymd_hms_milli();
            if (h, mi, s) == (0, 0, 0) {
                format!("{y:04}-{mo:02}-{day:02}")
            } else {
                format!("{y:04}-{mo:02}-{day:02} {h:02}:{mi:02}:{s:02}")
            }
        }
        DataRef::DateTime(d) => d.as_f64().to_string(),
        DataRef::Error(e) => e.to_string(),
    }
}

//! Excel workbooks (`.xlsx`): the first sheet read like a CSV file, row for line, so a
//! rejected row names its sheet row and column as a CSV row names its line.

use std::path::Path;

use calamine::{Data, Reader as _, Xlsx};

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

/// The first sheet of the workbook at `path` as CSV text, one line per sheet row (blank lines
/// for the rows above the first used one), so line numbers are the sheet's row numbers.
pub fn first_sheet_csv(path: &Path) -> Result<Vec<u8>> {
    let size = std::fs::metadata(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?
        .len();
    if size > MAX_XLSX_BYTES {
        return Err(Error::bad_file(
            path,
            0,
            None,
            format!(
                "the workbook is {} MiB, over the limit of {} MiB: save the sheet as CSV",
                size >> 20,
                MAX_XLSX_BYTES >> 20
            ),
        ));
    }
    let unreadable = |e: &dyn std::fmt::Display| {
        Error::bad_file(path, 0, None, format!("not a readable Excel workbook: {e}"))
    };
    let mut book: Xlsx<_> = calamine::open_workbook(path).map_err(|e| unreadable(&e))?;
    let sheet = book
        .worksheet_range_at(0)
        .ok_or_else(|| Error::bad_file(path, 0, None, "the workbook has no sheet"))?
        .map_err(|e| unreadable(&e))?;
    // Empty lines before the first used row keep the line numbers the sheet's row numbers.
    let first_row = sheet.start().map_or(0, |(row, _)| row as usize);
    let first_column = sheet.start().map_or(0, |(_, column)| column as usize);
    let mut text = vec![b'\n'; first_row];
    {
        let mut w = csv::WriterBuilder::new()
            .flexible(true)
            .from_writer(&mut text);
        for row in sheet.rows() {
            // Columns before the first used one are empty in every row: keep them, so a
            // header in column C still has the columns of the sheet.
            let cells =
                std::iter::repeat_n(String::new(), first_column).chain(row.iter().map(cell_text));
            w.write_record(cells)
                .map_err(|e| Error::io(format!("reading {}", path.display()), e.into()))?;
        }
        w.flush()
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    }
    Ok(text)
}

/// A cell as the text a CSV export of the sheet would hold: whole numbers without a decimal
/// point, dates as `YYYY-MM-DD` (with the time when there is one), errors as Excel shows them.
fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(d) if d.is_datetime() => {
            let (y, mo, day, h, mi, s, _) = d.to_ymd_hms_milli();
            if (h, mi, s) == (0, 0, 0) {
                format!("{y:04}-{mo:02}-{day:02}")
            } else {
                format!("{y:04}-{mo:02}-{day:02} {h:02}:{mi:02}:{s:02}")
            }
        }
        Data::DateTime(d) => d.as_f64().to_string(),
        Data::Error(e) => e.to_string(),
    }
}

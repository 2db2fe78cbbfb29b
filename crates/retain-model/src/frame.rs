//! Any churn table from a file: CSV (delimiter sniffed) or Parquet, read into typed columns.
//!
//! A CSV column is numeric when at least 95% of its non-missing cells parse as numbers (the rest
//! become missing, as a data team's `pd.to_numeric(errors="coerce")` would); otherwise it is
//! text. Missing cells are empty ones and the usual spellings: NA, N/A, NaN, null, None, ?.

use std::path::{Path, PathBuf};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{Error, Result};

/// Share of parseable cells above which a text column is read as numbers.
const NUMERIC_SHARE: f64 = 0.95;

/// One column's cells.
#[derive(Debug, Clone)]
pub enum Column {
    /// `NaN` for missing.
    Numbers(Vec<f64>),
    Text(Vec<Option<String>>),
}

impl Column {
    /// The cell as text, `None` when missing.
    #[must_use]
    pub fn text(&self, row: usize) -> Option<String> {
        match self {
            Column::Numbers(v) => v[row].is_finite().then(|| v[row].to_string()),
            Column::Text(v) => v[row].clone(),
        }
    }

    /// The cell as a number, `NaN` when missing or not a number.
    #[must_use]
    pub fn number(&self, row: usize) -> f64 {
        match self {
            Column::Numbers(v) => v[row],
            Column::Text(v) => v[row].as_deref().map_or(f64::NAN, parse_number),
        }
    }
}

/// A table read from a file.
#[derive(Debug, Clone)]
pub struct Frame {
    pub path: PathBuf,
    pub names: Vec<String>,
    pub columns: Vec<Column>,
    pub rows: usize,
}

impl Frame {
    /// The index of column `name`, or an error listing the columns there are.
    pub fn index(&self, name: &str) -> Result<usize> {
        self.names.iter().position(|n| n == name).ok_or_else(|| {
            Error::Data(format!(
                "{}: no column {name:?} (columns: {})",
                self.path.display(),
                self.names.join(", ")
            ))
        })
    }
}

fn is_missing(cell: &str) -> bool {
    matches!(
        cell,
        "" | "NA" | "N/A" | "NaN" | "nan" | "null" | "NULL" | "None" | "?"
    )
}

fn parse_number(cell: &str) -> f64 {
    cell.trim().parse::<f64>().unwrap_or(f64::NAN)
}

/// Reads a CSV or Parquet file (by extension) into typed columns.
pub fn read_frame(path: &Path) -> Result<Frame> {
    let parquet = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    if parquet {
        read_parquet(path)
    } else {
        read_csv(path)
    }
}

fn io(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Data(format!("{}: {e}", path.display()))
}

fn read_csv(path: &Path) -> Result<Frame> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        context: format!("reading {}", path.display()),
        source: e,
    })?;
    let header = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    // One header line: not worth a byte-counting crate.
    #[allow(clippy::naive_bytecount)]
    let count = |c: u8| header.iter().filter(|b| **b == c).count();
    let delimiter = [b',', b';', b'\t', b'|']
        .into_iter()
        .max_by_key(|c| (count(*c), *c == b','))
        .unwrap_or(b',');
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_reader(bytes.as_slice());
    let names: Vec<String> = reader
        .headers()
        .map_err(|e| io(path, e))?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
        .collect();
    let mut cells: Vec<Vec<Option<String>>> = vec![Vec::new(); names.len()];
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                return Err(Error::Data(format!("{}, line {line}: {e}", path.display())));
            }
        }
        for (column, cell) in cells.iter_mut().zip(record.iter()) {
            let cell = cell.trim();
            column.push((!is_missing(cell)).then(|| cell.to_string()));
        }
    }
    let rows = cells.first().map_or(0, Vec::len);
    let columns = cells
        .into_iter()
        .map(|column| {
            let present = column.iter().flatten().count();
            let numeric = column
                .iter()
                .flatten()
                .filter(|c| parse_number(c).is_finite())
                .count();
            if present > 0 && numeric as f64 >= NUMERIC_SHARE * present as f64 {
                Column::Numbers(
                    column
                        .iter()
                        .map(|c| c.as_deref().map_or(f64::NAN, parse_number))
                        .collect(),
                )
            } else {
                Column::Text(column)
            }
        })
        .collect();
    Ok(Frame {
        path: path.to_path_buf(),
        names,
        columns,
        rows,
    })
}

fn read_parquet(path: &Path) -> Result<Frame> {
    let file = std::fs::File::open(path).map_err(|e| Error::Io {
        context: format!("opening {}", path.display()),
        source: e,
    })?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(ParquetRecordBatchReaderBuilder::build)
        .map_err(|e| io(path, e))?;
    let batches: Vec<RecordBatch> = reader
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| io(path, e))?;
    let Some(first) = batches.first() else {
        return Err(Error::Data(format!("{}: no rows", path.display())));
    };
    let schema = first.schema();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut columns = Vec::with_capacity(names.len());
    for (j, field) in schema.fields().iter().enumerate() {
        let textual = matches!(
            field.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(..)
        );
        // Dates and times count as days or units since the epoch: order is what trees need.
        let as_number = match field.data_type() {
            DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) => DataType::Int64,
            _ => DataType::Float64,
        };
        let mut numbers = Vec::new();
        let mut text = Vec::new();
        for b in &batches {
            let array = b.column(j);
            if textual {
                let strings = cast(array, &DataType::Utf8).map_err(|e| io(path, e))?;
                let strings = strings.as_string::<i32>();
                text.extend((0..strings.len()).map(|r| {
                    let cell = strings.value(r).trim();
                    (strings.is_valid(r) && !is_missing(cell)).then(|| cell.to_string())
                }));
            } else {
                let widened = cast(array, &as_number)
                    .and_then(|a| cast(&a, &DataType::Float64))
                    .map_err(|e| {
                        io(
                            path,
                            format!(
                                "column {}: {} is not numeric: {e}",
                                field.name(),
                                field.data_type()
                            ),
                        )
                    })?;
                let values = widened.as_primitive::<Float64Type>();
                numbers.extend((0..values.len()).map(|r| {
                    if values.is_valid(r) {
                        values.value(r)
                    } else {
                        f64::NAN
                    }
                }));
            }
        }
        columns.push(if textual {
            Column::Text(text)
        } else {
            Column::Numbers(numbers)
        });
    }
    Ok(Frame {
        path: path.to_path_buf(),
        rows: batches.iter().map(RecordBatch::num_rows).sum(),
        names,
        columns,
    })
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    #[test]
    fn csv_types_are_inferred_and_missing_cells_recognized() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let mut text = String::from("id;plan;charges;churn\n");
        for i in 0..40 {
            let charges = if i == 3 {
                " ".to_string()
            } else {
                format!("{i}.5")
            };
            let _ = writeln!(text, "c{i};{};{charges};{}", ["a", "b"][i % 2], i % 3 == 0);
        }
        // One junk cell among numbers is coerced to missing, not a reason to call it text.
        text.push_str("c40;a;junk;False\n");
        std::fs::write(&path, text).unwrap();
        let f = read_frame(&path).unwrap();
        assert_eq!(f.rows, 41);
        assert_eq!(f.names, ["id", "plan", "charges", "churn"]);
        assert!(matches!(f.columns[1], Column::Text(_)));
        let Column::Numbers(charges) = &f.columns[2] else {
            panic!("charges should be numeric")
        };
        assert!(charges[3].is_nan() && charges[40].is_nan());
        assert!((charges[4] - 4.5).abs() < 1e-12);
        assert_eq!(f.columns[3].text(0).as_deref(), Some("true"));
        assert!(
            f.index("nope")
                .unwrap_err()
                .to_string()
                .contains("columns: id, plan")
        );
    }

    #[test]
    fn a_ragged_csv_row_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "a,b\n1,2\n3\n").unwrap();
        let e = read_frame(&path).unwrap_err().to_string();
        assert!(e.contains("t.csv, line 3"), "{e}");
    }
}

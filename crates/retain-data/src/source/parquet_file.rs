//! Parquet files: every column read as text, so the records look like a CSV file's and are
//! checked the same way.

use std::fs::File;
use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::header::resolve_columns;
use super::{Fields, RawRecord, SourceInfo, emit};
use crate::error::{Error, Result};
use crate::mapping::Mapping;
use crate::schema::TableSpec;

pub(super) fn read_parquet(
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

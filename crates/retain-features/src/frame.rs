//! Query results as plain columns: the stages after the engine (matching, planning, the
//! server) work on dense per-subscriber arrays.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::execution::context::SessionContext;

use crate::error::{Error, Result};

/// Runs `sql`; errors name `what` was being computed.
pub async fn query(ctx: &SessionContext, sql: &str, what: &str) -> Result<Vec<RecordBatch>> {
    ctx.sql(sql)
        .await
        .map_err(|e| Error::engine(format!("planning {what}"), e))?
        .collect()
        .await
        .map_err(|e| Error::engine(format!("computing {what}"), e))
}

fn column_index(batches: &[RecordBatch], name: &str) -> Option<usize> {
    batches.first().and_then(|b| b.schema().index_of(name).ok())
}

/// A column as `f64` (`NaN` for null; booleans as 0/1).
pub fn floats(batches: &[RecordBatch], name: &str) -> Result<Vec<f64>> {
    let Some(j) = column_index(batches, name) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for b in batches {
        let col = b.column(j);
        let col = if col.data_type() == &DataType::Boolean {
            cast(
                &cast(col, &DataType::Int32).map_err(arrow)?,
                &DataType::Float64,
            )
        } else {
            cast(col, &DataType::Float64)
        }
        .map_err(arrow)?;
        let a = col.as_primitive::<Float64Type>();
        out.extend((0..a.len()).map(|i| if a.is_null(i) { f64::NAN } else { a.value(i) }));
    }
    Ok(out)
}

/// A column as text (empty for null).
pub fn texts(batches: &[RecordBatch], name: &str) -> Result<Vec<String>> {
    let Some(j) = column_index(batches, name) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for b in batches {
        let col = cast(b.column(j), &DataType::Utf8).map_err(arrow)?;
        let a = col.as_string::<i32>();
        out.extend((0..a.len()).map(|i| {
            if a.is_null(i) {
                String::new()
            } else {
                a.value(i).to_owned()
            }
        }));
    }
    Ok(out)
}

/// A column as `i64` ids (0 for null).
pub fn ids(batches: &[RecordBatch], name: &str) -> Result<Vec<i64>> {
    let Some(j) = column_index(batches, name) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for b in batches {
        let col = cast(b.column(j), &DataType::Int64).map_err(arrow)?;
        let a = col.as_primitive::<Int64Type>();
        out.extend((0..a.len()).map(|i| if a.is_null(i) { 0 } else { a.value(i) }));
    }
    Ok(out)
}

/// Calls `f` with each row's id (`id_column`, 0 for null) and its `columns` as text (`""` for
/// null), read where they are: no string is copied.
pub fn for_each_text_row(
    batches: &[RecordBatch],
    id_column: &str,
    columns: &[&str],
    mut f: impl FnMut(i64, &[&str]),
) -> Result<()> {
    let column = |b: &RecordBatch, name: &str, to: &DataType| {
        let column = b
            .column_by_name(name)
            .ok_or_else(|| Error::Internal(format!("no {name} column")))?;
        cast(column, to).map_err(arrow)
    };
    for b in batches {
        let ids = column(b, id_column, &DataType::Int64)?;
        let ids = ids.as_primitive::<Int64Type>();
        let texts = columns
            .iter()
            .map(|name| column(b, name, &DataType::Utf8))
            .collect::<Result<Vec<_>>>()?;
        let texts: Vec<_> = texts.iter().map(AsArray::as_string::<i32>).collect();
        let mut row = Vec::with_capacity(texts.len());
        for r in 0..b.num_rows() {
            row.clear();
            row.extend(
                texts
                    .iter()
                    .map(|a| if a.is_null(r) { "" } else { a.value(r) }),
            );
            f(if ids.is_null(r) { 0 } else { ids.value(r) }, &row);
        }
    }
    Ok(())
}

#[allow(clippy::needless_pass_by_value)] // the shape `map_err` passes
fn arrow(e: datafusion::arrow::error::ArrowError) -> Error {
    Error::Internal(format!("converting a column: {e}"))
}

//! Record batches as JSON rows, for reports and per-subscriber views (never for analytics).

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Float64Type, Int32Type, Int64Type, TimeUnit, TimestampSecondType,
};
use serde_json::{Map, Value};

fn value(array: &ArrayRef, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).into(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(row).into(),
        DataType::Float64 => {
            let v = array.as_primitive::<Float64Type>().value(row);
            serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
        }
        DataType::Boolean => array.as_boolean().value(row).into(),
        DataType::Utf8 => array.as_string::<i32>().value(row).into(),
        DataType::LargeUtf8 => array.as_string::<i64>().value(row).into(),
        DataType::Utf8View => array.as_string_view().value(row).into(),
        DataType::Date32 => {
            retain_data::days_to_date(array.as_primitive::<Date32Type>().value(row))
                .to_string()
                .into()
        }
        DataType::Timestamp(TimeUnit::Second, _) => {
            let secs = array.as_primitive::<TimestampSecondType>().value(row);
            chrono::DateTime::from_timestamp(secs, 0).map_or(Value::Null, |t| {
                t.naive_utc().format("%Y-%m-%d %H:%M:%S").to_string().into()
            })
        }
        other => format!("<{other}>").into(),
    }
}

/// Every row of the batches as a JSON object keyed by column name.
#[must_use]
pub fn json_rows(batches: &[RecordBatch]) -> Vec<Map<String, Value>> {
    let mut rows = Vec::new();
    for batch in batches {
        let schema = batch.schema();
        for row in 0..batch.num_rows() {
            let mut object = Map::new();
            for (field, column) in schema.fields().iter().zip(batch.columns()) {
                object.insert(field.name().clone(), value(column, row));
            }
            rows.push(object);
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Date32Array, Int64Array, StringViewArray};
    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;

    #[test]
    fn typed_columns_become_json_values() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("city", DataType::Utf8View, true),
            Field::new("day", DataType::Date32, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![7])),
                Arc::new(StringViewArray::from(vec![Some("南京")])),
                Arc::new(Date32Array::from(vec![None])),
            ],
        )
        .unwrap();
        let rows = json_rows(&[batch]);
        assert_eq!(
            Value::Object(rows[0].clone()),
            serde_json::json!({"id": 7, "city": "南京", "day": null})
        );
    }
}

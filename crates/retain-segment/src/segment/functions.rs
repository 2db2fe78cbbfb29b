//! The segmentation's per-subscriber steps as functions of a plan's rows, so that they run
//! where the rows are. On a cluster they travel inside the plan with the [`Placer`] they carry
//! (`retain-cluster`'s codec calls [`encode_udf`] and [`decode_udf`]), and every executor places
//! its own partitions: the client holds the counts and the sample it fitted on, never a row per
//! subscriber.
//!
//! Each takes the columns [`ARGS`] names, in that order:
//! - `retain_segment_clv(…)`: an active subscriber's lifetime value;
//! - `retain_segment_cluster(…)`: their behavioural cluster;
//! - `retain_segment_place(…)`: their whole place, as a struct of the segments table's columns.

use std::any::Any;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBuilder, Float64Array, Float64Builder,
    Int64Builder, StringBuilder, StructArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Float64Type};
use datafusion::common::DataFusionError;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::place::Placer;
use crate::error::{Error, Result};
use crate::features::Behaviour;

pub const CLV: &str = "retain_segment_clv";
pub const CLUSTER: &str = "retain_segment_cluster";
pub const PLACE: &str = "retain_segment_place";

/// The columns the functions take, in order: a subscriber's behaviour and churn probability.
pub(super) const ARGS: &[&str] = &[
    "alive",
    "is_group_member",
    "tenure_months",
    "age",
    "plan_tier",
    "group_size",
    "family_size",
    "arpu_3m",
    "arpu_12m",
    "fee_prev_3m",
    "active_days_3m",
    "voice_3m",
    "data_3m",
    "vas_3m",
    "months_since_consumption",
    "silent_months_3m",
    "complaints_6m",
    "competitor_calls_6m",
    "contract_months_left",
    "probability",
];

/// The arguments as a plan spells them.
pub(super) fn args() -> String {
    ARGS.join(", ")
}

/// Bounds what a plan may ask a decoder to hold: centroids and curves are a few kilobytes.
const MAX_PAYLOAD: usize = 16 << 20;

/// A placer with its bytes on the wire. Every engine places with the placer decoded from the
/// bytes, the client's embedded engine included, so all agree to the bit.
struct Carried {
    placer: Placer,
    bytes: Vec<u8>,
    key: u64,
}

impl Carried {
    fn decoded(bytes: &[u8]) -> Result<Carried> {
        if bytes.len() > MAX_PAYLOAD {
            return Err(Error::Internal(format!(
                "a segmentation of {} bytes in a plan: more than the {MAX_PAYLOAD} allowed",
                bytes.len()
            )));
        }
        let placer: Placer = serde_json::from_slice(bytes)
            .map_err(|e| Error::Internal(format!("a segmentation in a plan: {e}")))?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut h);
        Ok(Carried {
            placer,
            bytes: bytes.to_vec(),
            key: h.finish(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Output {
    Clv,
    Cluster,
    Place,
}

impl Output {
    fn of(name: &str) -> Option<Output> {
        Some(match name {
            CLV => Output::Clv,
            CLUSTER => Output::Cluster,
            PLACE => Output::Place,
            _ => return None,
        })
    }
}

/// One of the segmentation's functions over one placer.
pub(super) struct SegmentFunction {
    output: Output,
    carried: Arc<Carried>,
    signature: Signature,
}

impl std::fmt::Debug for SegmentFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentFunction")
            .field("name", &self.name())
            .field("key", &self.carried.key)
            .finish_non_exhaustive()
    }
}

impl PartialEq for SegmentFunction {
    fn eq(&self, other: &Self) -> bool {
        self.output == other.output && self.carried.key == other.carried.key
    }
}
impl Eq for SegmentFunction {}
impl Hash for SegmentFunction {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.output.hash(state);
        self.carried.key.hash(state);
    }
}

/// The three functions of `placer`, to register in a session.
pub(super) fn functions(placer: &Placer) -> Result<[ScalarUDF; 3]> {
    let bytes = serde_json::to_vec(placer)
        .map_err(|e| Error::Internal(format!("encoding the segmentation: {e}")))?;
    let carried = Arc::new(Carried::decoded(&bytes)?);
    Ok([Output::Clv, Output::Cluster, Output::Place]
        .map(|output| SegmentFunction::udf(output, Arc::clone(&carried))))
}

impl SegmentFunction {
    fn udf(output: Output, carried: Arc<Carried>) -> ScalarUDF {
        ScalarUDF::new_from_impl(SegmentFunction {
            output,
            carried,
            signature: Signature::variadic_any(Volatility::Immutable),
        })
    }
}

fn engine_error(e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Execution(e.to_string())
}

/// The segments table's columns after `subscriber_id`, as [`PLACE`] returns them.
pub(super) fn place_fields() -> Fields {
    Fields::from(vec![
        Field::new("rfm_r", DataType::Int64, true),
        Field::new("rfm_f", DataType::Int64, true),
        Field::new("rfm_m", DataType::Int64, true),
        Field::new("rfm_group", DataType::Utf8, true),
        Field::new("clv", DataType::Float64, true),
        Field::new("value_tier", DataType::Utf8, true),
        Field::new("midhigh", DataType::Boolean, false),
        Field::new("lifecycle_stage", DataType::Utf8, false),
        Field::new("cluster", DataType::Int64, true),
        Field::new("cluster_name_zh", DataType::Utf8, true),
        Field::new("cluster_name_en", DataType::Utf8, true),
        Field::new("scenarios", DataType::Utf8, false),
    ])
}

/// The rows of the arguments as behaviours and probabilities, as the segmentation reads them:
/// a missing number is 0, a missing flag false, tenure and months since consumption at least 0.
pub(super) fn rows(
    columns: &[ArrayRef],
) -> datafusion::common::Result<Vec<(Behaviour, Option<f64>)>> {
    if columns.len() != ARGS.len() {
        return Err(engine_error(format!(
            "the segmentation's functions take {} columns ({}), not {}",
            ARGS.len(),
            ARGS.join(", "),
            columns.len()
        )));
    }
    let flag = |c: &ArrayRef| -> datafusion::common::Result<BooleanArray> {
        let cast = datafusion::arrow::compute::cast(c, &DataType::Boolean)?;
        Ok(cast.as_boolean().clone())
    };
    let number = |c: &ArrayRef| -> datafusion::common::Result<Float64Array> {
        let cast = datafusion::arrow::compute::cast(c, &DataType::Float64)?;
        Ok(cast.as_primitive::<Float64Type>().clone())
    };
    let (alive, group) = (flag(&columns[0])?, flag(&columns[1])?);
    let numbers: Vec<Float64Array> = columns[2..].iter().map(number).collect::<Result<_, _>>()?;
    let rows = columns.first().map_or(0, Array::len);
    let mut out = Vec::with_capacity(rows);
    for row in 0..rows {
        let v = |c: usize| (!numbers[c].is_null(row)).then(|| numbers[c].value(row));
        let x = |c: usize| v(c).unwrap_or(0.0);
        let b = Behaviour {
            alive: !alive.is_null(row) && alive.value(row),
            is_group_member: !group.is_null(row) && group.value(row),
            tenure_months: x(0).max(0.0),
            age: x(1),
            plan_tier: x(2),
            group_size: x(3),
            family_size: x(4),
            arpu_3m: x(5),
            arpu_12m: x(6),
            fee_prev_3m: x(7),
            active_days_3m: x(8),
            voice_3m: x(9),
            data_3m: x(10),
            vas_3m: x(11),
            months_since_consumption: x(12).max(0.0),
            silent_months_3m: x(13),
            complaints_6m: x(14),
            competitor_calls_6m: x(15),
            contract_months_left: v(16),
            ..Behaviour::default()
        };
        out.push((b, v(17)));
    }
    Ok(out)
}

impl ScalarUDFImpl for SegmentFunction {
    fn name(&self) -> &str {
        match self.output {
            Output::Clv => CLV,
            Output::Cluster => CLUSTER,
            Output::Place => PLACE,
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(match self.output {
            Output::Clv => DataType::Float64,
            Output::Cluster => DataType::Int64,
            Output::Place => DataType::Struct(place_fields()),
        })
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let columns = ColumnarValue::values_to_arrays(&args.args)?;
        let rows = rows(&columns)?;
        let placer = &self.carried.placer;
        let array: ArrayRef = match self.output {
            Output::Clv => Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|(b, p)| placer.lifetime_value(b, *p)),
            )),
            Output::Cluster => Arc::new(
                rows.iter()
                    .map(|(b, _)| i64::try_from(placer.cluster(b)).ok())
                    .collect::<datafusion::arrow::array::Int64Array>(),
            ),
            Output::Place => Arc::new(placed(placer, &rows)?),
        };
        Ok(ColumnarValue::Array(array))
    }
}

/// The places of `rows`, as the struct [`place_fields`] describes.
fn placed(
    placer: &Placer,
    rows: &[(Behaviour, Option<f64>)],
) -> datafusion::common::Result<StructArray> {
    let n = rows.len();
    let (mut r, mut f, mut m) = (
        Int64Builder::with_capacity(n),
        Int64Builder::with_capacity(n),
        Int64Builder::with_capacity(n),
    );
    let mut group = StringBuilder::with_capacity(n, n * 12);
    let mut clv = Float64Builder::with_capacity(n);
    let mut tier = StringBuilder::with_capacity(n, n * 6);
    let mut midhigh = BooleanBuilder::with_capacity(n);
    let mut stage = StringBuilder::with_capacity(n, n * 8);
    let mut cluster = Int64Builder::with_capacity(n);
    let (mut zh, mut en) = (
        StringBuilder::with_capacity(n, n * 12),
        StringBuilder::with_capacity(n, n * 24),
    );
    let mut scenarios = StringBuilder::with_capacity(n, n * 16);
    for (b, p) in rows {
        let place = placer.place(b, *p);
        let scores = place.rfm.map(|(a, b, c)| [a, b, c].map(i64::from));
        r.append_option(scores.map(|s| s[0]));
        f.append_option(scores.map(|s| s[1]));
        m.append_option(scores.map(|s| s[2]));
        group.append_option(place.rfm_group);
        clv.append_option(place.clv);
        tier.append_option(place.value_tier);
        midhigh.append_value(place.midhigh);
        stage.append_value(place.lifecycle_stage);
        cluster.append_option(place.cluster.and_then(|c| i64::try_from(c).ok()));
        let names = place.cluster.and_then(|c| placer.names.get(c));
        zh.append_option(names.map(|(z, _)| z.as_str()));
        en.append_option(names.map(|(_, e)| e.as_str()));
        scenarios.append_value(place.scenarios.join(" "));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(r.finish()),
        Arc::new(f.finish()),
        Arc::new(m.finish()),
        Arc::new(group.finish()),
        Arc::new(clv.finish()),
        Arc::new(tier.finish()),
        Arc::new(midhigh.finish()),
        Arc::new(stage.finish()),
        Arc::new(cluster.finish()),
        Arc::new(zh.finish()),
        Arc::new(en.finish()),
        Arc::new(scenarios.finish()),
    ];
    Ok(StructArray::try_new(place_fields(), columns, None)?)
}

/// What a plan carries for one of the segmentation's functions, or `None` for another function.
#[must_use]
pub fn encode_udf(udf: &ScalarUDF) -> Option<Vec<u8>> {
    let inner: &dyn Any = udf.inner().as_ref();
    inner
        .downcast_ref::<SegmentFunction>()
        .map(|f| f.carried.bytes.clone())
}

/// One of the segmentation's functions from what a plan carried, or `None` for another name.
#[must_use]
pub fn decode_udf(name: &str, bytes: &[u8]) -> Option<Result<ScalarUDF>> {
    let output = Output::of(name)?;
    Some(Carried::decoded(bytes).map(|c| SegmentFunction::udf(output, Arc::new(c))))
}

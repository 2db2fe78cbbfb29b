//! The churn model as functions of a plan's rows, so that scoring runs where the rows are. On a
//! cluster the functions travel inside the plan with the model they carry (`retain-cluster`'s
//! codec calls [`encode_udf`] and [`decode_udf`]), and every executor scores its own partitions:
//! the client never gathers the operator's feature rows.
//!
//! - `retain_churn_probability(f₁, …, f_d)`: the calibrated probability of each row.
//! - `retain_churn_reasons(f₁, …, f_d)`: its reason categories, strongest first, `|`-separated.
//! - `retain_drift_tally(p, f…)`: an aggregate counting the probabilities and features into the
//!   champion's drift bins, merged across partitions (see [`DriftTally`]).
//! - `retain_decimal(x, digits)`: `x` with a fixed number of decimals, as the scores file
//!   prints probabilities.

use std::any::Any;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, Float64Array, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use serde::{Deserialize, Serialize};

use crate::causes::CauseModel;
use crate::drift::{Drift, DriftReference};
use crate::error::{Error, Result};
use crate::forest::Forest;
use crate::logistic::Logistic;
use crate::shap::Explainer;
use crate::table::Table;
use crate::train::{Blend, ChurnModel, Platt};

pub const PROBABILITY: &str = "retain_churn_probability";
pub const REASONS: &str = "retain_churn_reasons";
pub const DRIFT: &str = "retain_drift_tally";
pub const DECIMAL: &str = "retain_decimal";

/// Bounds what a plan may ask a decoder to hold: a model's text is a few megabytes.
const MAX_PAYLOAD: usize = 512 << 20;

/// A model as it travels: the trees in LightGBM's text format (what the registry saves, so a
/// model decoded on an executor is the one the client loaded) and the rest of its parts.
#[derive(Serialize, Deserialize)]
struct Wire {
    trees: String,
    features: Vec<String>,
    level_order: Vec<Option<Vec<f64>>>,
    platt: Platt,
    logistic: Logistic,
    blend: Blend,
    #[serde(default)]
    causes: Option<CauseModel>,
}

/// A model with its bytes on the wire, shared by the functions made from it.
struct Carried {
    model: ChurnModel,
    /// Prepared on the first batch that needs reasons, then kept for the others.
    explainer: std::sync::OnceLock<Explainer<'static>>,
    bytes: Vec<u8>,
    /// A hash of the bytes: two functions of the same model are equal.
    key: u64,
}

impl Carried {
    fn of(model: &ChurnModel) -> Carried {
        let wire = Wire {
            trees: model.text(),
            features: model.features.clone(),
            level_order: model.level_order.clone(),
            platt: model.platt,
            logistic: model.logistic.clone(),
            blend: model.blend,
            causes: model.causes.clone(),
        };
        let bytes = serde_json::to_vec(&wire).expect("a model serializes");
        Carried::decoded(&bytes).expect("a model's own bytes decode")
    }

    fn decoded(bytes: &[u8]) -> Result<Carried> {
        if bytes.len() > MAX_PAYLOAD {
            return Err(Error::Data(format!(
                "a churn model of {} bytes in a plan: more than the {MAX_PAYLOAD} allowed",
                bytes.len()
            )));
        }
        let wire: Wire = serde_json::from_slice(bytes)
            .map_err(|e| Error::Data(format!("a churn model in a plan: {e}")))?;
        if wire
            .causes
            .as_ref()
            .is_some_and(|c| !c.fits(&wire.features))
        {
            return Err(Error::Data(
                "a churn model in a plan: its cause model does not fit its features".into(),
            ));
        }
        let model = ChurnModel {
            forest: Forest::from_lightgbm(&wire.trees)?,
            features: wire.features,
            level_order: wire.level_order,
            platt: wire.platt,
            logistic: wire.logistic,
            blend: wire.blend,
            causes: wire.causes,
        };
        Ok(Carried {
            model,
            explainer: std::sync::OnceLock::new(),
            bytes: bytes.to_vec(),
            key: key(bytes),
        })
    }
}

impl Carried {
    /// The model `bytes` carry, decoded once per process while any plan still holds it: an
    /// executor decodes every task's plan, and the tasks of one scoring share the model and the
    /// explainer prepared for it.
    fn shared(bytes: &[u8]) -> Result<Arc<Carried>> {
        static LIVE: std::sync::Mutex<Vec<std::sync::Weak<Carried>>> =
            std::sync::Mutex::new(Vec::new());
        let wanted = key(bytes);
        let mut live = LIVE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        live.retain(|w| w.strong_count() > 0);
        if let Some(found) = live
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .find(|c| c.key == wanted && c.bytes == bytes)
        {
            return Ok(found);
        }
        let carried = Arc::new(Carried::decoded(bytes)?);
        live.push(Arc::downgrade(&carried));
        Ok(carried)
    }

    fn explainer(&self) -> datafusion::common::Result<&Explainer<'static>> {
        if let Some(explainer) = self.explainer.get() {
            return Ok(explainer);
        }
        let explainer = Explainer::owning(self.model.forest.clone()).map_err(engine_error)?;
        Ok(self.explainer.get_or_init(|| explainer))
    }
}

fn key(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

fn engine_error(e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Execution(e.to_string())
}

/// What a [`ChurnFunction`] gives for each row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Output {
    Probability,
    Reasons,
}

/// `retain_churn_probability` or `retain_churn_reasons` of one model: arguments are the model's
/// features in its order, as `Float64`.
pub struct ChurnFunction {
    output: Output,
    carried: Arc<Carried>,
    signature: Signature,
}

impl std::fmt::Debug for ChurnFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChurnFunction")
            .field("name", &self.name())
            .field("features", &self.carried.model.features.len())
            .field("key", &self.carried.key)
            .finish_non_exhaustive()
    }
}

impl PartialEq for ChurnFunction {
    fn eq(&self, other: &Self) -> bool {
        self.output == other.output && self.carried.key == other.carried.key
    }
}
impl Eq for ChurnFunction {}
impl Hash for ChurnFunction {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.output.hash(state);
        self.carried.key.hash(state);
    }
}

impl ChurnFunction {
    fn new(output: Output, carried: Arc<Carried>) -> ChurnFunction {
        let d = carried.model.features.len();
        ChurnFunction {
            output,
            carried,
            signature: Signature::uniform(d, vec![DataType::Float64], Volatility::Immutable),
        }
    }

    /// The rows of `args` as a table of the model's features (missing and non-finite: NaN).
    fn table(&self, args: &[ColumnarValue], rows: usize) -> datafusion::common::Result<Table> {
        let columns = ColumnarValue::values_to_arrays(args)?;
        let model = &self.carried.model;
        if columns.len() != model.features.len() {
            return Err(engine_error(format!(
                "{} takes the model's {} features, not {}",
                self.name(),
                model.features.len(),
                columns.len()
            )));
        }
        let columns: Vec<&Float64Array> = columns
            .iter()
            .map(|c| c.as_primitive_opt::<Float64Type>())
            .collect::<Option<_>>()
            .ok_or_else(|| engine_error(format!("{} takes Float64 features", self.name())))?;
        let mut x = Vec::with_capacity(rows * columns.len());
        for r in 0..rows {
            for c in &columns {
                x.push(if c.is_null(r) || !c.value(r).is_finite() {
                    f64::NAN
                } else {
                    c.value(r)
                });
            }
        }
        Ok(Table {
            features: model.features.clone(),
            subscriber_id: (0..rows as i64).collect(),
            snapshot: vec![0; rows],
            label: vec![false; rows],
            x,
            levels: Vec::new(),
        })
    }
}

impl ScalarUDFImpl for ChurnFunction {
    fn name(&self) -> &str {
        match self.output {
            Output::Probability => PROBABILITY,
            Output::Reasons => REASONS,
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(match self.output {
            Output::Probability => DataType::Float64,
            Output::Reasons => DataType::Utf8,
        })
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let rows = args.number_rows;
        let table = self.table(&args.args, rows)?;
        let model = &self.carried.model;
        let array: ArrayRef = match self.output {
            Output::Probability => {
                let p = model.probabilities(&table.x).map_err(engine_error)?;
                Arc::new(Float64Array::from(p))
            }
            Output::Reasons => {
                let mut out = StringBuilder::with_capacity(rows, rows * 24);
                let explainer = if model.blend.gbdt_weight > 0.0 {
                    Some(self.carried.explainer()?)
                } else {
                    None
                };
                let scores = model
                    .score_explained_by(&table, 1.0, explainer)
                    .map_err(engine_error)?;
                for score in scores {
                    let categories: Vec<&str> = score.reasons.iter().map(|r| r.category).collect();
                    out.append_value(categories.join("|"));
                }
                Arc::new(out.finish())
            }
        };
        Ok(ColumnarValue::Array(array))
    }
}

/// The scoring functions of `model`, to register in a session or call in a plan.
pub struct ChurnFunctions {
    pub probability: ScalarUDF,
    pub reasons: ScalarUDF,
}

impl ChurnFunctions {
    #[must_use]
    pub fn new(model: &ChurnModel) -> ChurnFunctions {
        let carried = Arc::new(Carried::of(model));
        ChurnFunctions {
            probability: ScalarUDF::new_from_impl(ChurnFunction::new(
                Output::Probability,
                Arc::clone(&carried),
            )),
            reasons: ScalarUDF::new_from_impl(ChurnFunction::new(Output::Reasons, carried)),
        }
    }
}

/// The reference bins a [`DriftTally`] counts into, and which of its features the scored rows
/// have (those are the tally's arguments after the probability, in the reference's order).
#[derive(Serialize, Deserialize)]
struct TallyWire {
    reference: DriftReference,
    present: Vec<bool>,
}

/// `retain_drift_tally(p, f…)`: the counts of the probabilities and the present features in the
/// reference's bins, as one binary value ([`DriftTally::drift`] reads it). Partial counts merge
/// by addition, so the tally of a cluster's partitions is the tally of all rows.
pub struct DriftTally {
    wire: Arc<TallyWire>,
    bytes: Arc<Vec<u8>>,
    key: u64,
    signature: Signature,
}

impl std::fmt::Debug for DriftTally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriftTally")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}
impl PartialEq for DriftTally {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for DriftTally {}
impl Hash for DriftTally {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl DriftTally {
    /// A tally against `reference` of rows that carry `columns`; returns the function and the
    /// reference features it takes after the probability, in order.
    #[must_use]
    pub fn function(reference: &DriftReference, columns: &[String]) -> (AggregateUDF, Vec<String>) {
        let present: Vec<bool> = reference
            .features
            .iter()
            .map(|f| columns.contains(&f.feature))
            .collect();
        let taken = reference
            .features
            .iter()
            .zip(&present)
            .filter(|(_, p)| **p)
            .map(|(f, _)| f.feature.clone())
            .collect();
        let wire = TallyWire {
            reference: reference.clone(),
            present,
        };
        let bytes = serde_json::to_vec(&wire).expect("a drift reference serializes");
        let tally = DriftTally::from_wire(wire, bytes);
        (AggregateUDF::new_from_impl(tally), taken)
    }

    fn from_wire(wire: TallyWire, bytes: Vec<u8>) -> DriftTally {
        let arguments = 1 + wire.present.iter().filter(|p| **p).count();
        DriftTally {
            key: key(&bytes),
            wire: Arc::new(wire),
            bytes: Arc::new(bytes),
            signature: Signature::uniform(
                arguments,
                vec![DataType::Float64],
                Volatility::Immutable,
            ),
        }
    }

    fn decoded(bytes: &[u8]) -> Result<DriftTally> {
        if bytes.len() > MAX_PAYLOAD {
            return Err(Error::Data(
                "a drift reference in a plan is too large".into(),
            ));
        }
        let wire: TallyWire = serde_json::from_slice(bytes)
            .map_err(|e| Error::Data(format!("a drift reference in a plan: {e}")))?;
        Ok(DriftTally::from_wire(wire, bytes.to_vec()))
    }

    /// The drift of the tally's value `counts` against `reference` (the one it was made with).
    pub fn drift(reference: &DriftReference, columns: &[String], counts: &[u8]) -> Result<Drift> {
        let (_, taken) = DriftTally::function(reference, columns);
        let counts = unpack(counts);
        let mut tallies = Vec::with_capacity(1 + taken.len());
        let mut at = 0;
        let bins = std::iter::once(&reference.score).chain(
            reference
                .features
                .iter()
                .filter_map(|f| taken.contains(&f.feature).then_some(&f.bins)),
        );
        for b in bins {
            let n = b.empty().len();
            let Some(slice) = counts.get(at..at + n) else {
                return Err(Error::Data(
                    "a drift tally shorter than its reference's bins".into(),
                ));
            };
            tallies.push(slice.to_vec());
            at += n;
        }
        let score = tallies.remove(0);
        Ok(crate::drift::from_counts(
            reference, &taken, &score, &tallies,
        ))
    }
}

impl AggregateUDFImpl for DriftTally {
    fn name(&self) -> &str {
        DRIFT
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Binary)
    }

    fn accumulator(&self, _: AccumulatorArgs) -> datafusion::common::Result<Box<dyn Accumulator>> {
        let wire = &self.wire;
        let bins: Vec<crate::drift::Bins> = std::iter::once(wire.reference.score.clone())
            .chain(
                wire.reference
                    .features
                    .iter()
                    .zip(&wire.present)
                    .filter(|(_, p)| **p)
                    .map(|(f, _)| f.bins.clone()),
            )
            .collect();
        let counts = bins.iter().map(crate::drift::Bins::empty).collect();
        Ok(Box::new(TallyAccumulator { bins, counts }))
    }
}

#[derive(Debug)]
struct TallyAccumulator {
    /// The probability's bins, then each present feature's.
    bins: Vec<crate::drift::Bins>,
    counts: Vec<Vec<u64>>,
}

fn pack(counts: &[Vec<u64>]) -> Vec<u8> {
    counts
        .iter()
        .flatten()
        .flat_map(|c| c.to_le_bytes())
        .collect()
}

fn unpack(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("eight bytes")))
        .collect()
}

impl Accumulator for TallyAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> datafusion::common::Result<()> {
        if values.len() != self.bins.len() {
            return Err(engine_error(format!(
                "{DRIFT} takes {} arguments, not {}",
                self.bins.len(),
                values.len()
            )));
        }
        for ((column, bins), counts) in values.iter().zip(&self.bins).zip(&mut self.counts) {
            let column = column
                .as_primitive_opt::<Float64Type>()
                .ok_or_else(|| engine_error(format!("{DRIFT} takes Float64 arguments")))?;
            for r in 0..column.len() {
                let v = if column.is_null(r) || !column.value(r).is_finite() {
                    f64::NAN
                } else {
                    column.value(r)
                };
                bins.count(counts, v);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> datafusion::common::Result<ScalarValue> {
        Ok(ScalarValue::Binary(Some(pack(&self.counts))))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.counts.iter().map(|c| c.len() * 8).sum::<usize>()
    }

    fn state(&mut self) -> datafusion::common::Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> datafusion::common::Result<()> {
        let Some(states) = states.first().and_then(|s| s.as_binary_opt::<i32>()) else {
            return Err(engine_error(format!(
                "{DRIFT}: a partial tally is not binary"
            )));
        };
        let states: &BinaryArray = states;
        let width: usize = self.counts.iter().map(Vec::len).sum();
        for r in 0..states.len() {
            if states.is_null(r) {
                continue;
            }
            let other = unpack(states.value(r));
            if other.len() != width {
                return Err(engine_error(format!(
                    "{DRIFT}: a partial tally of {} counts, not {width}",
                    other.len()
                )));
            }
            let mut other = other.into_iter();
            for c in self.counts.iter_mut().flatten() {
                *c += other.next().expect("as many counts as checked");
            }
        }
        Ok(())
    }
}

/// `retain_decimal(x, digits)`: `x` printed with `digits` decimals (at most 17) as Rust prints
/// `{:.digits$}`, so a file written by a cluster's executors has the embedded writer's bytes.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Decimal {
    signature: Signature,
}

impl Default for Decimal {
    fn default() -> Self {
        Decimal {
            signature: Signature::exact(
                vec![DataType::Float64, DataType::Int64],
                Volatility::Immutable,
            ),
        }
    }
}

impl Decimal {
    #[must_use]
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(Decimal::default())
    }
}

impl ScalarUDFImpl for Decimal {
    fn name(&self) -> &str {
        DECIMAL
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let columns = ColumnarValue::values_to_arrays(&args.args)?;
        let (Some(x), Some(digits)) = (
            columns
                .first()
                .and_then(|c| c.as_primitive_opt::<Float64Type>()),
            columns
                .get(1)
                .and_then(|c| c.as_primitive_opt::<Int64Type>()),
        ) else {
            return Err(engine_error(format!("{DECIMAL} takes (Float64, Int64)")));
        };
        let mut out = StringBuilder::with_capacity(x.len(), x.len() * 8);
        for r in 0..x.len() {
            if x.is_null(r) || digits.is_null(r) {
                out.append_null();
            } else {
                let digits = usize::try_from(digits.value(r).clamp(0, 17)).unwrap_or(0);
                out.append_value(format!("{:.digits$}", x.value(r)));
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// What a plan carries for one of retain's functions, or `None` for another function.
#[must_use]
pub fn encode_udf(udf: &ScalarUDF) -> Option<Vec<u8>> {
    let inner: &dyn Any = udf.inner().as_ref();
    if let Some(f) = inner.downcast_ref::<ChurnFunction>() {
        return Some(f.carried.bytes.clone());
    }
    // A payload of its own, so it never falls through to a registry that lacks it.
    inner.downcast_ref::<Decimal>().map(|_| vec![1])
}

/// One of retain's functions from what a plan carried, or `None` for another name.
#[must_use]
pub fn decode_udf(name: &str, bytes: &[u8]) -> Option<Result<ScalarUDF>> {
    let output = match name {
        PROBABILITY => Output::Probability,
        REASONS => Output::Reasons,
        DECIMAL => return Some(Ok(Decimal::udf())),
        _ => return None,
    };
    Some(Carried::shared(bytes).map(|c| ScalarUDF::new_from_impl(ChurnFunction::new(output, c))))
}

/// What a plan carries for retain's aggregate, or `None` for another one.
#[must_use]
pub fn encode_udaf(udaf: &AggregateUDF) -> Option<Vec<u8>> {
    let inner: &dyn Any = udaf.inner().as_ref();
    inner
        .downcast_ref::<DriftTally>()
        .map(|t| t.bytes.as_ref().clone())
}

/// retain's aggregate from what a plan carried, or `None` for another name.
#[must_use]
pub fn decode_udaf(name: &str, bytes: &[u8]) -> Option<Result<AggregateUDF>> {
    (name == DRIFT).then(|| DriftTally::decoded(bytes).map(AggregateUDF::new_from_impl))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::prelude::SessionContext;

    #[test]
    fn decimals_print_as_rust_does() {
        let ctx = SessionContext::new();
        ctx.register_udf(Decimal::udf());
        let rt = tokio_runtime();
        let batches = rt.block_on(async {
            ctx.sql("SELECT retain_decimal(x, 6) AS s FROM (VALUES (0.1234565), (1.0), (2.5e-7), (NULL)) t(x)")
                .await
                .unwrap()
                .collect()
                .await
                .unwrap()
        });
        let s = batches[0].column(0).as_string::<i32>();
        let want = [0.123_456_5_f64, 1.0, 2.5e-7].map(|x| format!("{x:.6}"));
        assert_eq!(s.value(0), want[0]);
        assert_eq!(s.value(1), want[1]);
        assert_eq!(s.value(2), want[2]);
        assert!(s.is_null(3));
    }

    #[test]
    fn a_tally_merged_from_parts_is_the_tally_of_all_rows() {
        let reference = DriftReference {
            month: "2026-01".into(),
            rows: 4,
            score: crate::drift::Bins {
                edges: vec![0.5],
                shares: vec![0.5, 0.5, 0.0],
            },
            features: vec![
                crate::drift::FeatureBins {
                    feature: "a".into(),
                    bins: crate::drift::Bins {
                        edges: vec![1.0, 2.0],
                        shares: vec![0.25, 0.25, 0.5, 0.0],
                    },
                },
                crate::drift::FeatureBins {
                    feature: "gone".into(),
                    bins: crate::drift::Bins {
                        edges: vec![1.0],
                        shares: vec![0.5, 0.5, 0.0],
                    },
                },
            ],
        };
        let columns = vec!["a".to_owned(), "b".to_owned()];
        let (udaf, taken) = DriftTally::function(&reference, &columns);
        assert_eq!(taken, ["a"]);
        let bytes = encode_udaf(&udaf).unwrap();
        let decoded = decode_udaf(DRIFT, &bytes).unwrap().unwrap();
        assert_eq!(decoded, udaf);
        let tally = |p: Vec<f64>, a: Vec<Option<f64>>| {
            let mut acc = udaf.inner().accumulator(accumulator_args()).unwrap();
            let p: ArrayRef = Arc::new(Float64Array::from(p));
            let a: ArrayRef = Arc::new(Float64Array::from(a));
            acc.update_batch(&[p, a]).unwrap();
            acc.state().unwrap().remove(0).to_array().unwrap()
        };
        let one = tally(vec![0.1, 0.9], vec![Some(0.5), None]);
        let two = tally(vec![0.7], vec![Some(2.5)]);
        let mut all = udaf.inner().accumulator(accumulator_args()).unwrap();
        all.merge_batch(&[one]).unwrap();
        all.merge_batch(&[two]).unwrap();
        let ScalarValue::Binary(Some(counts)) = all.evaluate().unwrap() else {
            panic!("a binary tally");
        };
        assert_eq!(unpack(&counts), [1, 2, 0, 1, 0, 1, 1]);
        let drift = DriftTally::drift(&reference, &columns, &counts).unwrap();
        assert_eq!(drift.features.len(), 1);
        assert_eq!(drift.features[0].feature, "a");
        assert!(DriftTally::drift(&reference, &columns, &counts[..8]).is_err());
    }

    fn accumulator_args() -> AccumulatorArgs<'static> {
        static SCHEMA: std::sync::LazyLock<Schema> = std::sync::LazyLock::new(Schema::empty);
        AccumulatorArgs {
            return_field: Arc::new(Field::new("t", DataType::Binary, true)),
            schema: &SCHEMA,
            ignore_nulls: false,
            order_bys: &[],
            is_reversed: false,
            name: "t",
            is_distinct: false,
            exprs: &[],
            expr_fields: &[],
        }
    }

    #[test]
    fn a_model_decoded_from_a_plan_scores_as_the_model_does() {
        // A model as the registry loads it: read back from its text, as every scored model is.
        let model = Carried::of(&small_model()).model;
        let functions = ChurnFunctions::new(&model);
        let bytes = encode_udf(&functions.probability).unwrap();
        let probability = decode_udf(PROBABILITY, &bytes).unwrap().unwrap();
        assert_eq!(probability, functions.probability);
        let reasons = decode_udf(REASONS, &bytes).unwrap().unwrap();
        // Decoded once while a plan holds it.
        let again = decode_udf(PROBABILITY, &bytes).unwrap().unwrap();
        let carried = |f: &ScalarUDF| {
            let inner: &dyn Any = f.inner().as_ref();
            Arc::clone(&inner.downcast_ref::<ChurnFunction>().unwrap().carried)
        };
        assert!(Arc::ptr_eq(&carried(&probability), &carried(&again)));
        assert!(decode_udf(PROBABILITY, b"not a model").unwrap().is_err());
        assert!(decode_udf("abs", b"").is_none());

        let d = model.features.len();
        let rows = 50;
        let x: Vec<f64> = (0..rows * d)
            .map(|i| ((i * 7919) % 97) as f64 / 9.0)
            .collect();
        let fields: Vec<Field> = model
            .features
            .iter()
            .map(|f| Field::new(f, DataType::Float64, true))
            .collect();
        let columns: Vec<ArrayRef> = (0..d)
            .map(|j| {
                Arc::new(Float64Array::from(
                    (0..rows).map(|r| x[r * d + j]).collect::<Vec<_>>(),
                )) as ArrayRef
            })
            .collect();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        let ctx = SessionContext::new();
        ctx.register_batch("t", batch).unwrap();
        ctx.register_udf(probability);
        ctx.register_udf(reasons);
        let args = model
            .features
            .iter()
            .map(|f| format!("\"{f}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let rt = tokio_runtime();
        let batches = rt.block_on(async {
            ctx.sql(&format!(
                "SELECT {PROBABILITY}({args}) AS p, {REASONS}({args}) AS r FROM t"
            ))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap()
        });
        let p: Vec<f64> = batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Float64Type>().values().to_vec())
            .collect();
        let r: Vec<String> = batches
            .iter()
            .flat_map(|b| {
                let s: &StringArray = b.column(1).as_string::<i32>();
                s.iter().map(|v| v.unwrap().to_owned()).collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(p, model.probabilities(&x).unwrap());
        let table = Table {
            features: model.features.clone(),
            subscriber_id: (0..rows as i64).collect(),
            snapshot: vec![0; rows],
            label: vec![false; rows],
            x,
            levels: Vec::new(),
        };
        let want: Vec<String> = model
            .score(&table, 1.0)
            .unwrap()
            .into_iter()
            .map(|s| {
                s.reasons
                    .iter()
                    .map(|r| r.category)
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect();
        assert_eq!(r, want);
        assert!(r.iter().any(|r| !r.is_empty()));
    }

    /// A model of three features, one categorical, that churn rises with.
    fn small_model() -> ChurnModel {
        let mut rng = crate::split::SplitMix(7);
        let mut next = move || rng.unit();
        let rows = 3_000;
        let (mut x, mut label) = (Vec::new(), Vec::new());
        for _ in 0..rows {
            let (complaints, fee, plan) = (next() * 5.0, next() * 100.0, (next() * 3.0).floor());
            let risk = 0.1 + 0.12 * complaints - 0.002 * fee + 0.1 * plan;
            label.push(next() < risk);
            x.extend([complaints, fee, plan]);
        }
        let t = Table {
            features: vec!["complaints_3m".into(), "fee_avg_3m".into(), "plan".into()],
            subscriber_id: (0..rows as i64).collect(),
            snapshot: vec![0; rows],
            label,
            x,
            levels: vec![None, None, Some(vec!["a".into(), "b".into(), "c".into()])],
        };
        let all: Vec<usize> = (0..rows).collect();
        crate::train::fit(&t, &all[..2_400], &all[2_400..])
            .unwrap()
            .0
    }

    fn tokio_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }
}

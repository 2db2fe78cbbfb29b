//! retain's codecs: Ballista's own, plus retain's functions, which carry what they need (a churn
//! model, drift bins, a segmentation's cut points and centroids) inside the plan so that an
//! executor runs them as the client built them. The client, the scheduler and every executor use
//! the same pair.

use std::sync::Arc;

use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::parsers::CsvQuoteStyle;
use datafusion::common::{DataFusionError, Result, TableReference};
use datafusion::datasource::TableProvider;
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::datasource::file_format::csv::CsvFormatFactory;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{AggregateUDF, Extension, LogicalPlan, ScalarUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use retain_model::functions;
use retain_segment::functions as segments;

fn decoded<T, E: std::fmt::Display>(
    found: Option<std::result::Result<T, E>>,
    name: &str,
) -> Option<Result<Arc<T>>> {
    found.map(|r| {
        r.map(Arc::new).map_err(|e| {
            DataFusionError::Execution(format!("decoding retain's function {name}: {e}"))
        })
    })
}

/// Appends what one of retain's functions carries; false for another function.
fn carried(bytes: Option<Vec<u8>>, buf: &mut Vec<u8>) -> bool {
    let Some(bytes) = bytes else {
        return false;
    };
    buf.extend_from_slice(&bytes);
    true
}

/// The four methods by which both codecs carry retain's functions, then defer to Ballista's.
macro_rules! retain_functions {
    () => {
        fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
            decoded(functions::decode_udf(name, buf), name)
                .or_else(|| decoded(segments::decode_udf(name, buf), name))
                .unwrap_or_else(|| self.0.try_decode_udf(name, buf))
        }

        fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
            if carried(functions::encode_udf(node), buf) || carried(segments::encode_udf(node), buf)
            {
                return Ok(());
            }
            self.0.try_encode_udf(node, buf)
        }

        fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
            decoded(functions::decode_udaf(name, buf), name)
                .unwrap_or_else(|| self.0.try_decode_udaf(name, buf))
        }

        fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
            if carried(functions::encode_udaf(node), buf) {
                return Ok(());
            }
            self.0.try_encode_udaf(node, buf)
        }
    };
}

/// The logical codec: Ballista's, and retain's functions.
#[derive(Debug, Default)]
pub(crate) struct LogicalCodec(BallistaLogicalExtensionCodec);

impl LogicalExtensionCodec for LogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        self.0.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.0.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        self.0
            .try_decode_table_provider(buf, table_ref, schema, ctx)
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        self.0.try_encode_table_provider(table_ref, node, buf)
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn FileFormatFactory>> {
        let format = self.0.try_decode_file_format(buf, ctx)?;
        Ok(with_csv_quote_style_mended(format))
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> Result<()> {
        self.0.try_encode_file_format(buf, node)
    }

    retain_functions!();
}

/// The physical codec: Ballista's, and retain's functions.
#[derive(Debug, Default)]
pub(crate) struct PhysicalCodec(BallistaPhysicalExtensionCodec);

impl PhysicalExtensionCodec for PhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.0.try_decode(buf, inputs, ctx, proto_converter)
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        self.0.try_encode(node, buf, proto_converter)
    }

    retain_functions!();
}

/// DataFusion 55 writes a CSV format's quote style to the wire as the position of its own enum
/// (`Always` first) and reads it as the protocol's (`Necessary` first): a file written on a
/// cluster had every field quoted. The two styles trade places on the way, so trading them back
/// once read restores the style asked for; the cluster test compares the files byte for byte.
fn with_csv_quote_style_mended(format: Arc<dyn FileFormatFactory>) -> Arc<dyn FileFormatFactory> {
    let Some(csv) = format.downcast_ref::<CsvFormatFactory>() else {
        return format;
    };
    let Some(mut options) = csv.options.clone() else {
        return format;
    };
    options.quote_style = match options.quote_style {
        CsvQuoteStyle::Always => CsvQuoteStyle::Necessary,
        CsvQuoteStyle::Necessary => CsvQuoteStyle::Always,
        other => other,
    };
    Arc::new(CsvFormatFactory {
        options: Some(options),
    })
}

/// The codecs as Ballista's settings take them.
#[must_use]
pub(crate) fn logical() -> Arc<dyn LogicalExtensionCodec> {
    Arc::new(LogicalCodec::default())
}

#[must_use]
pub(crate) fn physical() -> Arc<dyn PhysicalExtensionCodec> {
    Arc::new(PhysicalCodec::default())
}

#[cfg(test)]
mod tests {
    use datafusion::common::config::CsvOptions;
    use datafusion::prelude::SessionContext;

    use super::*;

    /// What Ballista's scheduler reads of a CSV format the client wrote, through retain's codec.
    fn through_the_wire(style: CsvQuoteStyle) -> CsvQuoteStyle {
        let codec = LogicalCodec::default();
        let format: Arc<dyn FileFormatFactory> = Arc::new(CsvFormatFactory {
            options: Some(CsvOptions {
                quote_style: style,
                ..CsvOptions::default()
            }),
        });
        let mut buf = Vec::new();
        codec.try_encode_file_format(&mut buf, format).unwrap();
        let ctx = SessionContext::new().task_ctx();
        let format = codec.try_decode_file_format(&buf, &ctx).unwrap();
        let csv = format.downcast_ref::<CsvFormatFactory>().unwrap();
        csv.options.as_ref().unwrap().quote_style
    }

    #[test]
    fn a_csv_quote_style_arrives_as_it_was_asked_for() {
        for style in [
            CsvQuoteStyle::Necessary,
            CsvQuoteStyle::Always,
            CsvQuoteStyle::NonNumeric,
            CsvQuoteStyle::Never,
        ] {
            assert_eq!(through_the_wire(style), style);
        }
    }

    #[test]
    fn retain_functions_travel_with_what_they_carry() {
        let codec = PhysicalCodec::default();
        let decimal = retain_model::functions::Decimal::udf();
        let mut buf = Vec::new();
        codec.try_encode_udf(&decimal, &mut buf).unwrap();
        assert!(!buf.is_empty());
        assert_eq!(
            *codec
                .try_decode_udf(retain_model::functions::DECIMAL, &buf)
                .unwrap(),
            decimal
        );
        let error = codec
            .try_decode_udf(retain_model::functions::PROBABILITY, b"{}")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(retain_model::functions::PROBABILITY),
            "{error}"
        );
        // Another function is left to the registry.
        assert!(codec.try_decode_udf("no_such_function", b"").is_err());
    }
}

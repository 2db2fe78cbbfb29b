//! A table file read over the bytes of one subscriber range's row groups only.
//!
//! The engine splits a scan among its threads by byte ranges of the file, and a row group
//! belongs to the range holding its first page. A partition's rows are a tenth of a clustered
//! table, all in one such range: one thread decoded them while the others waited. Given the
//! partition's bytes instead of the whole file, the engine splits those among its threads.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{ScanArgs, ScanResult, Session};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
use datafusion::parquet::file::statistics::Statistics;
use datafusion::physical_plan::ExecutionPlan;

use crate::error::{Error, Result};

/// The bytes `[start, end)` of `path` that hold the first pages of every row group whose
/// `subscriber_id` may lie in `[lower, upper)` (a bound that is `None` is open): reading that
/// range reads those row groups and no other before the first or after the last. A file
/// without the column or its statistics is read whole (`None`).
pub(crate) fn row_group_bytes(
    path: &Path,
    lower: Option<i64>,
    upper: Option<i64>,
) -> Result<Option<(i64, i64)>> {
    let io = |e| Error::Io {
        context: format!("reading {}", path.display()),
        source: e,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let reader = SerializedFileReader::new(file)
        .map_err(|e| Error::engine(format!("reading {}", path.display()), e.into()))?;
    let metadata = reader.metadata();
    let schema = metadata.file_metadata().schema_descr();
    let Some(column) =
        (0..schema.num_columns()).find(|&i| schema.column(i).name() == "subscriber_id")
    else {
        return Ok(None);
    };
    let (mut first, mut last) = (None, None);
    for group in metadata.row_groups() {
        let bounds = match group.column(column).statistics() {
            Some(Statistics::Int64(s)) => s.min_opt().copied().zip(s.max_opt().copied()),
            _ => None,
        };
        // Without statistics a row group may hold anything: the whole file is read.
        let Some((min, max)) = bounds else {
            return Ok(None);
        };
        if lower.is_some_and(|l| max < l) || upper.is_some_and(|u| min >= u) {
            continue;
        }
        let start = group.column(0);
        let offset = start
            .dictionary_page_offset()
            .unwrap_or_else(|| start.data_page_offset());
        first.get_or_insert(offset);
        last = Some(offset);
    }
    Ok(Some(match (first, last) {
        (Some(first), Some(last)) => (first, last + 1),
        // No row group: a range before the first page ("PAR1" comes first) reads nothing.
        _ => (0, 1),
    }))
}

/// A table whose scans read only the bytes `[start, end)` of its file.
pub(crate) struct RangedTable {
    inner: Arc<dyn TableProvider>,
    start: i64,
    end: i64,
}

impl fmt::Debug for RangedTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RangedTable")
            .field("start", &self.start)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl RangedTable {
    pub(crate) fn new(inner: Arc<dyn TableProvider>, (start, end): (i64, i64)) -> RangedTable {
        RangedTable { inner, start, end }
    }

    /// The inner table's plan with every file of its scans given the range.
    fn restrict(
        &self,
        plan: Arc<dyn ExecutionPlan>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(scan) = node.downcast_ref::<DataSourceExec>() else {
                return Ok(Transformed::no(node));
            };
            let Some(config) = scan.data_source().downcast_ref::<FileScanConfig>() else {
                return Ok(Transformed::no(node));
            };
            let mut config = config.clone();
            config.file_groups = config
                .file_groups
                .iter()
                .map(|group| {
                    FileGroup::new(
                        group
                            .iter()
                            .map(|file| file.clone().with_range(self.start, self.end))
                            .collect(),
                    )
                })
                .collect();
            let ranged: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
            Ok(Transformed::yes(ranged))
        })
        .map(|t| t.data)
    }
}

#[async_trait::async_trait]
impl TableProvider for RangedTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let plan = self.inner.scan(state, projection, filters, limit).await?;
        self.restrict(plan)
    }

    async fn scan_with_args<'a>(
        &self,
        state: &dyn Session,
        args: ScanArgs<'a>,
    ) -> datafusion::error::Result<ScanResult> {
        let plan = self.inner.scan_with_args(state, args).await?.into_inner();
        Ok(self.restrict(plan)?.into())
    }
}

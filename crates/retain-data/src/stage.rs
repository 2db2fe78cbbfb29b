//! The staging area of a load: validated rows spread over partitions of their key.
//!
//! Duplicate detection and the merge with the stored table need the keys of a load in memory.
//! Held all at once, ten million subscribers' weekly usage would need tens of gigabytes, so the
//! rows are staged in partitions by a hash of the key and each partition is checked on its
//! own: memory follows the partition size, not the load size. Rows keep their place in the
//! source (file, record ordinal, line) so duplicates are found in read order and can be read
//! back for the quarantine file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};

use crate::error::{Error, Result};
use crate::parse::Value;
use crate::schema::TableSpec;
use crate::table::{BatchBuilder, Key, KeyRef, ORIGIN_COLUMNS, Router, TableWriter};

/// Staged rows buffered per partition before a batch is written. Small, because every
/// partition has its own buffer.
const PARTITION_BATCH_ROWS: usize = 8_192;
/// Row groups of staged files: what each partition's writer holds in memory.
const STAGED_ROW_GROUP_ROWS: usize = 131_072;

/// Where a staged row came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Origin {
    /// Index of the file in the load.
    pub file: i64,
    /// 0-based record number in the file (a wide line yields several records).
    pub ordinal: i64,
    /// The record's line, for messages.
    pub line: i64,
}

/// The staged schema: the table's columns, then the origin of each row.
pub(crate) fn staged_schema(spec: &TableSpec) -> SchemaRef {
    let mut fields: Vec<Arc<Field>> = spec.arrow_schema().fields().iter().cloned().collect();
    for name in ORIGIN_COLUMNS {
        fields.push(Arc::new(Field::new(name, DataType::Int64, false)));
    }
    Arc::new(Schema::new(fields))
}

/// The origin of row `row` of a staged batch.
pub(crate) fn origin(batch: &RecordBatch, columns: usize, row: usize) -> Origin {
    let at = |i: usize| {
        batch
            .column(columns + i)
            .as_primitive::<Int64Type>()
            .value(row)
    };
    Origin {
        file: at(0),
        ordinal: at(1),
        line: at(2),
    }
}

struct Partition {
    path: PathBuf,
    writer: TableWriter,
    builder: BatchBuilder,
    origins: Vec<Origin>,
    order: KeyOrder,
}

/// Whether the keys staged in a partition so far strictly increase, comparing their parts first
/// to last or last to first. Exports come sorted by key (subscriber, then period) or by period,
/// then subscriber; a partition whose keys strictly increase either way holds no duplicate,
/// and the search for duplicates, a hash table of every key, is skipped for it.
struct KeyOrder {
    last: Option<Key>,
    forward: bool,
    backward: bool,
}

impl KeyOrder {
    fn new() -> Self {
        Self {
            last: None,
            forward: true,
            backward: true,
        }
    }

    fn push(&mut self, key: Key) {
        if let Some(last) = &self.last {
            self.forward &= key.cmp_parts(last, false).is_gt();
            self.backward &= key.cmp_parts(last, true).is_gt();
        }
        self.last = Some(key);
    }

    fn strict(&self) -> bool {
        self.forward || self.backward
    }
}

/// Writers of the staged partitions.
pub(crate) struct Stager {
    schema: SchemaRef,
    key_indexes: Vec<usize>,
    router: Router,
    partitions: Vec<Partition>,
    batch_rows: usize,
}

impl Stager {
    pub(crate) fn create(
        dir: &Path,
        prefix: &str,
        spec: &TableSpec,
        key_indexes: &[usize],
        router: Router,
    ) -> Result<Self> {
        let schema = staged_schema(spec);
        let partitions = (0..router.partitions())
            .map(|p| {
                let path = dir.join(format!("{prefix}-{p:04}.parquet"));
                Ok(Partition {
                    writer: TableWriter::with_row_groups(
                        &path,
                        schema.clone(),
                        STAGED_ROW_GROUP_ROWS,
                    )?,
                    path,
                    builder: BatchBuilder::new(spec),
                    origins: Vec::new(),
                    order: KeyOrder::new(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let batch_rows = if partitions.len() == 1 {
            crate::table::BATCH_ROWS
        } else {
            PARTITION_BATCH_ROWS
        };
        Ok(Self {
            schema,
            key_indexes: key_indexes.to_vec(),
            router,
            partitions,
            batch_rows,
        })
    }

    pub(crate) fn push(&mut self, row: &[Value], origin: Origin) -> Result<()> {
        let key = self
            .key_indexes
            .iter()
            .map(|&i| KeyRef::from_value(&row[i]));
        let p = self.router.route(key.clone());
        let partition = &mut self.partitions[p];
        if partition.order.strict() {
            partition.order.push(Key::new(key));
        }
        partition.builder.append(row);
        partition.origins.push(origin);
        if partition.builder.len() >= self.batch_rows {
            flush(&self.schema, partition)?;
        }
        Ok(())
    }

    /// Writes what is buffered and closes every partition; returns their files in order, and
    /// for each whether its keys strictly increased in staging order (so none is repeated).
    pub(crate) fn finish(mut self) -> Result<(Vec<PathBuf>, Vec<bool>)> {
        let mut paths = Vec::with_capacity(self.partitions.len());
        let mut ordered = Vec::with_capacity(self.partitions.len());
        for mut partition in self.partitions.drain(..) {
            if partition.builder.len() > 0 {
                flush(&self.schema, &mut partition)?;
            }
            partition.writer.close_scratch()?;
            paths.push(partition.path);
            ordered.push(partition.order.strict());
        }
        Ok((paths, ordered))
    }
}

fn flush(schema: &SchemaRef, partition: &mut Partition) -> Result<()> {
    let batch = partition.builder.finish()?;
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    let origins = std::mem::take(&mut partition.origins);
    columns.push(Arc::new(Int64Array::from_iter_values(
        origins.iter().map(|o| o.file),
    )));
    columns.push(Arc::new(Int64Array::from_iter_values(
        origins.iter().map(|o| o.ordinal),
    )));
    columns.push(Arc::new(Int64Array::from_iter_values(
        origins.iter().map(|o| o.line),
    )));
    let staged = RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::Arrow {
        context: "staging rows".to_owned(),
        source: e,
    })?;
    partition.writer.write(&staged)
}

/// Routes the rows of a stored table file into partition files the way the staged rows were,
/// so each can be merged with the staged partition of the same number.
pub(crate) fn route_stored(
    file: &Path,
    dir: &Path,
    spec: &TableSpec,
    key_indexes: &[usize],
    router: &Router,
) -> Result<Vec<PathBuf>> {
    let partitions = router.partitions();
    let schema = spec.arrow_schema();
    let mut writers = (0..partitions)
        .map(|p| {
            let path = dir.join(format!("stored-{p:04}.parquet"));
            TableWriter::with_row_groups(&path, schema.clone(), STAGED_ROW_GROUP_ROWS)
                .map(|w| (path, w))
        })
        .collect::<Result<Vec<_>>>()?;
    for batch in crate::table::read_batches(file)? {
        let batch = batch.map_err(|e| Error::Arrow {
            context: format!("reading {}", file.display()),
            source: e,
        })?;
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); partitions];
        for row in 0..batch.num_rows() {
            let p = router.route(
                key_indexes
                    .iter()
                    .map(|&i| KeyRef::from_array(batch.column(i), spec.columns[i].kind, row)),
            );
            rows[p].push(u32::try_from(row).expect("batches are small"));
        }
        for (p, rows) in rows.into_iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            let taken =
                arrow::compute::take_record_batch(&batch, &arrow::array::UInt32Array::from(rows))
                    .map_err(|e| Error::Arrow {
                    context: "partitioning the stored table".to_owned(),
                    source: e,
                })?;
            writers[p].1.write(&taken)?;
        }
    }
    writers
        .into_iter()
        .map(|(path, writer)| writer.close_scratch().map(|_| path))
        .collect()
}

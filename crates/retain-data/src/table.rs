//! Canonical tables in Arrow and Parquet: building record batches from validated values,
//! writing and reading table files, and the row keys used for upserts and references.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder,
    RecordBatch, StringBuilder, TimestampSecondBuilder,
};
use arrow::datatypes::{Date32Type, Int64Type, SchemaRef, TimestampSecondType};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};

use crate::error::{Error, Result};
use crate::parse::Value;
use crate::schema::{ColumnKind, TableSpec};

/// Rows per record batch while building and reading tables.
pub(crate) const BATCH_ROWS: usize = 65_536;

/// One part of a row key. Keys never contain floats.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum KeyPart {
    Int(i64),
    Text(Box<str>),
    Null,
}

pub(crate) type Key = Box<[KeyPart]>;

impl KeyPart {
    pub(crate) fn from_value(value: &Value) -> KeyPart {
        KeyRef::from_value(value).to_owned()
    }

    /// The key part of row `row` of a stored column.
    pub(crate) fn from_array(array: &ArrayRef, kind: ColumnKind, row: usize) -> KeyPart {
        KeyRef::from_array(array, kind, row).to_owned()
    }
}

/// A key part borrowed from a parsed value or a stored column. Both give the same hash, so a
/// row is put in the same partition whether it is being loaded or already in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum KeyRef<'a> {
    Int(i64),
    Text(&'a str),
    Null,
}

impl<'a> KeyRef<'a> {
    pub(crate) fn from_value(value: &'a Value) -> Self {
        match value {
            Value::Int(v) | Value::Timestamp(v) => KeyRef::Int(*v),
            Value::Date(v) => KeyRef::Int(i64::from(*v)),
            Value::Text(v) => KeyRef::Text(v),
            Value::Bool(v) => KeyRef::Int(i64::from(*v)),
            Value::Float(_) | Value::Null => KeyRef::Null,
        }
    }

    pub(crate) fn from_array(array: &'a ArrayRef, kind: ColumnKind, row: usize) -> Self {
        if array.is_null(row) {
            return KeyRef::Null;
        }
        match kind {
            ColumnKind::Int { .. } => KeyRef::Int(array.as_primitive::<Int64Type>().value(row)),
            ColumnKind::Date | ColumnKind::Month | ColumnKind::Week => {
                KeyRef::Int(i64::from(array.as_primitive::<Date32Type>().value(row)))
            }
            ColumnKind::Timestamp => {
                KeyRef::Int(array.as_primitive::<TimestampSecondType>().value(row))
            }
            ColumnKind::Text { .. } | ColumnKind::Msisdn | ColumnKind::Enum(_) => {
                KeyRef::Text(array.as_string::<i32>().value(row))
            }
            ColumnKind::Bool => KeyRef::Int(i64::from(array.as_boolean().value(row))),
            ColumnKind::Float { .. } => KeyRef::Null,
        }
    }

    fn to_owned(self) -> KeyPart {
        match self {
            KeyRef::Int(v) => KeyPart::Int(v),
            KeyRef::Text(v) => KeyPart::Text(v.into()),
            KeyRef::Null => KeyPart::Null,
        }
    }
}

/// The partition (of `partitions`) a key belongs to. The hasher has fixed keys, so the answer
/// is the same for every row of one load, loaded or stored.
pub(crate) fn partition_of<'a>(
    parts: impl Iterator<Item = KeyRef<'a>>,
    partitions: usize,
) -> usize {
    use std::hash::{Hash, Hasher};
    if partitions <= 1 {
        return 0;
    }
    let mut hasher = std::hash::DefaultHasher::new();
    for part in parts {
        part.hash(&mut hasher);
    }
    (hasher.finish() % partitions as u64) as usize
}

/// How the rows of a load are spread over its staged partitions. Either way a partition is a
/// function of the key, so duplicates and replaced rows always meet in one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Router {
    /// By a hash of the whole key.
    Hash(usize),
    /// By ranges of the subscriber id, key part `at`: partition `i` holds the ids from
    /// `cuts[i - 1]` up to but excluding `cuts[i]`. Partitions are merged in order, so the stored
    /// table comes out clustered by subscriber and a plan over a range of subscribers skips
    /// every other row group.
    Ranges { at: usize, cuts: Vec<i64> },
}

impl Router {
    pub(crate) fn partitions(&self) -> usize {
        match self {
            Router::Hash(partitions) => (*partitions).max(1),
            Router::Ranges { cuts, .. } => cuts.len() + 1,
        }
    }

    /// The partition of a key, given its parts in key order.
    pub(crate) fn route<'a>(&self, mut parts: impl Iterator<Item = KeyRef<'a>>) -> usize {
        match self {
            Router::Hash(partitions) => partition_of(parts, *partitions),
            Router::Ranges { at, cuts } => match parts.nth(*at) {
                Some(KeyRef::Int(id)) => range_of(cuts, id),
                _ => 0,
            },
        }
    }
}

/// The range of `id` among the ranges `cuts` splits the ids into.
pub(crate) fn range_of(cuts: &[i64], id: i64) -> usize {
    cuts.partition_point(|&cut| cut <= id)
}

/// `parts - 1` cut points that split sorted `ids` into `parts` ranges of (nearly) equal size;
/// with fewer ids than parts some ranges are empty.
pub(crate) fn equal_cuts(ids: &[i64], parts: usize) -> Vec<i64> {
    let parts = parts.max(1);
    (1..parts)
        .map(|i| ids.get(i * ids.len() / parts).copied().unwrap_or(i64::MAX))
        .collect()
}

/// Every value of an integer column of a table file, sorted.
pub(crate) fn sorted_int_column(path: &Path, spec: &TableSpec, column: &str) -> Result<Vec<i64>> {
    let index = spec
        .column_index(column)
        .expect("callers name real columns");
    let file = File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| Error::Parquet {
        context: format!("reading {}", path.display()),
        source: e,
    })?;
    let mask = parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), [index]);
    let rows = usize::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| Error::Parquet {
            context: format!("reading {}", path.display()),
            source: e,
        })?;
    let mut values = Vec::with_capacity(rows);
    for batch in reader {
        let batch = batch.map_err(|e| Error::Arrow {
            context: format!("reading {}", path.display()),
            source: e,
        })?;
        values.extend(batch.column(0).as_primitive::<Int64Type>().iter().flatten());
    }
    values.sort_unstable();
    Ok(values)
}

impl std::fmt::Display for KeyPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyPart::Int(v) => write!(f, "{v}"),
            KeyPart::Text(v) => f.write_str(v),
            KeyPart::Null => f.write_str("(empty)"),
        }
    }
}

enum ColumnBuilder {
    Int(Int64Builder),
    Float(Float64Builder),
    Text(StringBuilder),
    Date(Date32Builder),
    Timestamp(TimestampSecondBuilder),
    Bool(BooleanBuilder),
}

impl ColumnBuilder {
    fn new(kind: ColumnKind) -> Self {
        match kind {
            ColumnKind::Int { .. } => Self::Int(Int64Builder::with_capacity(BATCH_ROWS)),
            ColumnKind::Float { .. } => Self::Float(Float64Builder::with_capacity(BATCH_ROWS)),
            ColumnKind::Text { .. } | ColumnKind::Msisdn | ColumnKind::Enum(_) => {
                Self::Text(StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 8))
            }
            ColumnKind::Date | ColumnKind::Month | ColumnKind::Week => {
                Self::Date(Date32Builder::with_capacity(BATCH_ROWS))
            }
            ColumnKind::Timestamp => {
                Self::Timestamp(TimestampSecondBuilder::with_capacity(BATCH_ROWS))
            }
            ColumnKind::Bool => Self::Bool(BooleanBuilder::with_capacity(BATCH_ROWS)),
        }
    }

    fn append(&mut self, value: &Value) {
        // Values were parsed for this very column kind, so a mismatch is a bug; it is stored
        // as null rather than crashing a load.
        match (self, value) {
            (Self::Int(b), Value::Int(v)) => b.append_value(*v),
            (Self::Float(b), Value::Float(v)) => b.append_value(*v),
            (Self::Text(b), Value::Text(v)) => b.append_value(v),
            (Self::Date(b), Value::Date(v)) => b.append_value(*v),
            (Self::Timestamp(b), Value::Timestamp(v)) => b.append_value(*v),
            (Self::Bool(b), Value::Bool(v)) => b.append_value(*v),
            (Self::Int(b), _) => b.append_null(),
            (Self::Float(b), _) => b.append_null(),
            (Self::Text(b), _) => b.append_null(),
            (Self::Date(b), _) => b.append_null(),
            (Self::Timestamp(b), _) => b.append_null(),
            (Self::Bool(b), _) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Int(b) => Arc::new(b.finish()),
            Self::Float(b) => Arc::new(b.finish()),
            Self::Text(b) => Arc::new(b.finish()),
            Self::Date(b) => Arc::new(b.finish()),
            Self::Timestamp(b) => Arc::new(b.finish()),
            Self::Bool(b) => Arc::new(b.finish()),
        }
    }
}

/// Accumulates validated rows into record batches of the table's schema.
pub(crate) struct BatchBuilder {
    schema: SchemaRef,
    columns: Vec<ColumnBuilder>,
    rows: usize,
}

impl BatchBuilder {
    pub(crate) fn new(spec: &TableSpec) -> Self {
        Self {
            schema: spec.arrow_schema(),
            columns: spec
                .columns
                .iter()
                .map(|c| ColumnBuilder::new(c.kind))
                .collect(),
            rows: 0,
        }
    }

    pub(crate) fn append(&mut self, row: &[Value]) {
        for (builder, value) in self.columns.iter_mut().zip(row) {
            builder.append(value);
        }
        self.rows += 1;
    }

    pub(crate) fn len(&self) -> usize {
        self.rows
    }

    pub(crate) fn finish(&mut self) -> Result<RecordBatch> {
        let arrays = self.columns.iter_mut().map(ColumnBuilder::finish).collect();
        self.rows = 0;
        RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| Error::Arrow {
            context: "building a record batch".to_owned(),
            source: e,
        })
    }
}

/// A Parquet writer for a table file.
pub struct TableWriter {
    writer: ArrowWriter<File>,
    path: std::path::PathBuf,
    rows: u64,
}

impl TableWriter {
    pub fn create(path: &Path, schema: SchemaRef) -> Result<TableWriter> {
        Self::with_row_groups(path, schema, 1 << 20)
    }

    /// A writer whose row groups hold at most `rows` rows: what it buffers in memory.
    pub(crate) fn with_row_groups(
        path: &Path,
        schema: SchemaRef,
        rows: usize,
    ) -> Result<TableWriter> {
        let file =
            File::create(path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(rows))
            .build();
        let writer =
            ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| Error::Parquet {
                context: format!("creating {}", path.display()),
                source: e,
            })?;
        Ok(TableWriter {
            writer,
            path: path.to_path_buf(),
            rows: 0,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        self.writer.write(batch).map_err(|e| Error::Parquet {
            context: format!("writing {}", self.path.display()),
            source: e,
        })
    }

    /// Closes the row group being written, so the rows written next start a new one.
    pub(crate) fn end_row_group(&mut self) -> Result<()> {
        self.writer.flush().map_err(|e| Error::Parquet {
            context: format!("writing {}", self.path.display()),
            source: e,
        })
    }

    /// Finishes the file and flushes it to disk; returns the rows written.
    pub fn close(self) -> Result<u64> {
        let path = self.path;
        let file = self.writer.into_inner().map_err(|e| Error::Parquet {
            context: format!("finishing {}", path.display()),
            source: e,
        })?;
        file.sync_all()
            .map_err(|e| Error::io(format!("syncing {}", path.display()), e))?;
        Ok(self.rows)
    }
}

/// Opens a table file for reading in batches.
pub fn read_batches(path: &Path) -> Result<ParquetRecordBatchReader> {
    let file = File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(BATCH_ROWS).build())
        .map_err(|e| Error::Parquet {
            context: format!("reading {}", path.display()),
            source: e,
        })
}

/// Rows in a Parquet file, from its footer.
pub fn row_count(path: &Path) -> Result<u64> {
    let file = File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let reader = SerializedFileReader::new(file).map_err(|e| Error::Parquet {
        context: format!("reading {}", path.display()),
        source: e,
    })?;
    Ok(reader.metadata().file_metadata().num_rows() as u64)
}

// Key sets run to millions of entries: a fast hash and a table sized once matter more
// than resistance to crafted collisions (the input is the operator's own export).
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
pub(crate) type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

pub(crate) fn fast_map<K, V>(capacity: u64) -> FastMap<K, V> {
    HashMap::with_capacity_and_hasher(
        usize::try_from(capacity).unwrap_or(0),
        foldhash::fast::RandomState::default(),
    )
}

pub(crate) fn fast_set<K>(capacity: impl TryInto<usize>) -> FastSet<K> {
    HashSet::with_capacity_and_hasher(
        capacity.try_into().unwrap_or(0),
        foldhash::fast::RandomState::default(),
    )
}

/// The distinct values of one column of a stored table, as key parts.
pub(crate) fn column_values(
    path: &Path,
    spec: &TableSpec,
    column: &str,
) -> Result<FastSet<KeyPart>> {
    let index = spec
        .column_index(column)
        .expect("references name real columns (checked by a unit test)");
    let kind = spec.columns[index].kind;
    let mut values = fast_set(row_count(path)?);
    for batch in read_batches(path)? {
        let batch = batch.map_err(|e| Error::Arrow {
            context: format!("reading {}", path.display()),
            source: e,
        })?;
        let array = batch.column(index);
        for row in 0..batch.num_rows() {
            values.insert(KeyPart::from_array(array, kind, row));
        }
    }
    Ok(values)
}

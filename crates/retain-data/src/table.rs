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
use arrow::datatypes::{DataType, Date32Type, Int64Type, SchemaRef, TimestampSecondType};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, Encoding};
use parquet::column::writer::ColumnCloseResult;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;

use crate::error::{Error, Result};
use crate::parse::Value;
use crate::schema::{ColumnKind, TableSpec};

/// The columns a staged row carries after the table's own: where it was read.
pub(crate) const ORIGIN_COLUMNS: [&str; 3] = ["_file", "_ordinal", "_line"];

/// Rows per record batch while building and reading tables.
pub(crate) const BATCH_ROWS: usize = 65_536;

/// One part of a row key. Keys never contain floats.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum KeyPart {
    Int(i64),
    Text(Box<str>),
    Null,
}

/// A row key. Keys of one or two integers (every subscriber-keyed usage table's) are held
/// inline: a load hashes hundreds of millions of them, and allocating each one was most of
/// the duplicate search. A key has one form only, so equal keys compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Ints { parts: [i64; 2], len: u8 },
    Parts(Box<[KeyPart]>),
}

impl Key {
    pub(crate) fn new<'a>(parts: impl Iterator<Item = KeyRef<'a>> + Clone) -> Key {
        let mut ints = [0i64; 2];
        let mut len = 0u8;
        for part in parts.clone() {
            match part {
                KeyRef::Int(v) if usize::from(len) < ints.len() => {
                    ints[usize::from(len)] = v;
                    len += 1;
                }
                _ => return Key::Parts(parts.map(KeyRef::to_owned).collect()),
            }
        }
        Key::Ints { parts: ints, len }
    }

    fn len(&self) -> usize {
        match self {
            Key::Ints { len, .. } => usize::from(*len),
            Key::Parts(parts) => parts.len(),
        }
    }

    fn part(&self, i: usize) -> KeyRef<'_> {
        match self {
            Key::Ints { parts, .. } => KeyRef::Int(parts[i]),
            Key::Parts(parts) => match &parts[i] {
                KeyPart::Int(v) => KeyRef::Int(*v),
                KeyPart::Text(v) => KeyRef::Text(v),
                KeyPart::Null => KeyRef::Null,
            },
        }
    }

    /// Orders two keys of one table part by part, first to last, or last to first when
    /// `reversed` (an export sorted by period, then subscriber).
    pub(crate) fn cmp_parts(&self, other: &Key, reversed: bool) -> std::cmp::Ordering {
        let n = self.len().min(other.len());
        let at = |i: usize| if reversed { n - 1 - i } else { i };
        (0..n)
            .map(|i| self.part(at(i)).cmp(&other.part(at(i))))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| self.len().cmp(&other.len()))
    }

    /// The key's parts, in key column order.
    pub(crate) fn parts(&self) -> Vec<KeyPart> {
        match self {
            Key::Ints { parts, len } => parts[..usize::from(*len)]
                .iter()
                .map(|&v| KeyPart::Int(v))
                .collect(),
            Key::Parts(parts) => parts.to_vec(),
        }
    }
}

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

/// The key columns of one batch, cast to their types once: casting per row was a visible share
/// of a load's duplicate search.
pub(crate) struct KeyColumns<'a>(Vec<KeyColumn<'a>>);

enum KeyColumn<'a> {
    Int(&'a arrow::array::Int64Array),
    Date(&'a arrow::array::Date32Array),
    Timestamp(&'a arrow::array::TimestampSecondArray),
    Text(&'a arrow::array::StringArray),
    Bool(&'a arrow::array::BooleanArray),
    Null,
}

impl<'a> KeyColumns<'a> {
    pub(crate) fn new(spec: &TableSpec, key_indexes: &[usize], batch: &'a RecordBatch) -> Self {
        Self::at(
            batch,
            key_indexes.iter().map(|&i| (i, spec.columns[i].kind)),
        )
    }

    /// The key columns at these positions of `batch`, of these kinds: for a batch that holds
    /// only some of the table's columns.
    pub(crate) fn at(
        batch: &'a RecordBatch,
        columns: impl Iterator<Item = (usize, ColumnKind)>,
    ) -> Self {
        let column = |(i, kind): (usize, ColumnKind)| {
            let array = batch.column(i);
            match kind {
                ColumnKind::Int { .. } => KeyColumn::Int(array.as_primitive()),
                ColumnKind::Date | ColumnKind::Month | ColumnKind::Week => {
                    KeyColumn::Date(array.as_primitive())
                }
                ColumnKind::Timestamp => KeyColumn::Timestamp(array.as_primitive()),
                ColumnKind::Text { .. } | ColumnKind::Msisdn | ColumnKind::Enum(_) => {
                    KeyColumn::Text(array.as_string())
                }
                ColumnKind::Bool => KeyColumn::Bool(array.as_boolean()),
                ColumnKind::Float { .. } => KeyColumn::Null,
            }
        };
        KeyColumns(columns.map(column).collect())
    }

    /// The key of row `row`; the same as [`KeyRef::from_array`] gives column by column.
    pub(crate) fn key(&self, row: usize) -> Key {
        Key::new(self.0.iter().map(|column| {
            let valid = |array: &dyn Array| array.is_valid(row);
            match column {
                KeyColumn::Int(a) if valid(*a) => KeyRef::Int(a.value(row)),
                KeyColumn::Date(a) if valid(*a) => KeyRef::Int(i64::from(a.value(row))),
                KeyColumn::Timestamp(a) if valid(*a) => KeyRef::Int(a.value(row)),
                KeyColumn::Text(a) if valid(*a) => KeyRef::Text(a.value(row)),
                KeyColumn::Bool(a) if valid(*a) => KeyRef::Int(i64::from(a.value(row))),
                _ => KeyRef::Null,
            }
        }))
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
        let props = writer_properties(&schema, rows);
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

impl TableWriter {
    /// Finishes a scratch file (staged rows, or a partition's rows before they are copied into
    /// the table) without flushing it to disk: a load that fails, crash included, discards them.
    pub(crate) fn close_scratch(self) -> Result<u64> {
        self.writer.close().map_err(|e| Error::Parquet {
            context: format!("finishing {}", self.path.display()),
            source: e,
        })?;
        Ok(self.rows)
    }
}

/// How every table and staged file is written.
fn writer_properties(schema: &SchemaRef, rows: usize) -> WriterProperties {
    let mut props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(rows));
    for field in schema.fields() {
        let column = ColumnPath::from(field.name().as_str());
        // Measures (fees, megabytes) are nearly all distinct: a dictionary fills up and is
        // thrown away in every row group, and building it was a tenth of a load. A staged
        // row's origin counts up, which delta encoding stores in a few bits.
        if field.data_type() == &DataType::Float64 {
            props = props.set_column_dictionary_enabled(column, false);
        } else if ORIGIN_COLUMNS.contains(&field.name().as_str()) {
            props = props
                .set_column_dictionary_enabled(column.clone(), false)
                .set_column_encoding(column, Encoding::DELTA_BINARY_PACKED);
        }
    }
    props.build()
}

/// Writes a table file from row groups already encoded in other Parquet files, copying their
/// column chunks byte for byte instead of decoding and encoding the rows again. A source may
/// carry more columns after the table's own (a staged file's origin); they are left out.
pub(crate) struct TableAssembler {
    writer: SerializedFileWriter<File>,
    path: std::path::PathBuf,
    columns: usize,
    rows: u64,
}

impl TableAssembler {
    pub(crate) fn create(path: &Path, schema: SchemaRef) -> Result<TableAssembler> {
        let file =
            File::create(path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        let parquet = |e| Error::Parquet {
            context: format!("creating {}", path.display()),
            source: e,
        };
        let columns = schema.fields().len();
        // Made through the Arrow writer so the file carries the Arrow schema as every table
        // file does.
        let props = writer_properties(&schema, 1 << 20);
        let (writer, _) = ArrowWriter::try_new(file, schema, Some(props))
            .and_then(ArrowWriter::into_serialized_writer)
            .map_err(parquet)?;
        Ok(TableAssembler {
            writer,
            path: path.to_path_buf(),
            columns,
            rows: 0,
        })
    }

    /// Appends every row group of `source`, whose first columns must be the table's, as
    /// encoded there; returns the rows appended.
    pub(crate) fn append_file(&mut self, source: &Path) -> Result<u64> {
        let parquet = |e| Error::Parquet {
            context: format!("copying {} into {}", source.display(), self.path.display()),
            source: e,
        };
        let file = File::open(source)
            .map_err(|e| Error::io(format!("opening {}", source.display()), e))?;
        let metadata = ParquetMetaDataReader::new()
            .with_page_index_policy(PageIndexPolicy::Optional)
            .parse_and_finish(&file)
            .map_err(parquet)?;
        let mut appended = 0u64;
        for (g, group) in metadata.row_groups().iter().enumerate() {
            let rows = u64::try_from(group.num_rows()).unwrap_or(0);
            let mut out = self.writer.next_row_group().map_err(parquet)?;
            for (c, chunk) in group.columns().iter().take(self.columns).enumerate() {
                let close = ColumnCloseResult {
                    bytes_written: u64::try_from(chunk.compressed_size()).unwrap_or(0),
                    rows_written: rows,
                    metadata: chunk.clone(),
                    bloom_filter: None,
                    column_index: metadata
                        .column_index()
                        .and_then(|index| index.get(g)?.get(c).cloned()),
                    offset_index: metadata
                        .offset_index()
                        .and_then(|index| index.get(g)?.get(c).cloned()),
                };
                out.append_column(&file, close).map_err(parquet)?;
            }
            out.close().map_err(parquet)?;
            appended += rows;
        }
        self.rows += appended;
        Ok(appended)
    }

    /// Finishes the file and flushes it to disk; returns the rows written.
    pub(crate) fn close(mut self) -> Result<u64> {
        let path = self.path;
        self.writer.finish().map_err(|e| Error::Parquet {
            context: format!("finishing {}", path.display()),
            source: e,
        })?;
        self.writer
            .inner()
            .sync_all()
            .map_err(|e| Error::io(format!("syncing {}", path.display()), e))?;
        Ok(self.rows)
    }
}

/// Opens a table file for reading in batches.
pub fn read_batches(path: &Path) -> Result<ParquetRecordBatchReader> {
    read_columns(path, None)
}

/// Opens a table file for reading the columns at `columns` (ascending; all if `None`).
pub(crate) fn read_columns(
    path: &Path,
    columns: Option<&[usize]>,
) -> Result<ParquetRecordBatchReader> {
    let file = File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| {
            let b = match columns {
                Some(columns) => {
                    let mask = ProjectionMask::roots(b.parquet_schema(), columns.iter().copied());
                    b.with_projection(mask)
                }
                None => b,
            };
            b.with_batch_size(BATCH_ROWS).build()
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::{Greater, Less};

    #[test]
    fn keys_have_one_form() {
        let ints = Key::new([KeyRef::Int(7), KeyRef::Int(-3)].into_iter());
        assert!(matches!(ints, Key::Ints { len: 2, .. }));
        assert_eq!(ints.parts(), vec![KeyPart::Int(7), KeyPart::Int(-3)]);
        assert_ne!(ints, Key::new([KeyRef::Int(7)].into_iter()));
        assert_ne!(
            ints,
            Key::new([KeyRef::Int(7), KeyRef::Int(-3), KeyRef::Int(0)].into_iter())
        );
        let mixed = Key::new([KeyRef::Int(7), KeyRef::Text("a")].into_iter());
        assert_eq!(
            mixed.parts(),
            vec![KeyPart::Int(7), KeyPart::Text("a".into())]
        );
        assert_eq!(
            mixed,
            Key::new([KeyRef::Int(7), KeyRef::Text("a")].into_iter())
        );
        let null = Key::new([KeyRef::Int(0), KeyRef::Null].into_iter());
        assert_ne!(null, Key::new([KeyRef::Int(0), KeyRef::Int(0)].into_iter()));
        assert_eq!(Key::new(std::iter::empty()).parts(), Vec::<KeyPart>::new());
        let a = Key::new([KeyRef::Int(1), KeyRef::Int(9)].into_iter());
        let b = Key::new([KeyRef::Int(2), KeyRef::Int(3)].into_iter());
        assert_eq!(b.cmp_parts(&a, false), Greater);
        assert_eq!(b.cmp_parts(&a, true), Less);
        let t = Key::new([KeyRef::Int(1), KeyRef::Text("b")].into_iter());
        let u = Key::new([KeyRef::Int(1), KeyRef::Text("a")].into_iter());
        assert_eq!(t.cmp_parts(&u, false), Greater);
        assert!(t.cmp_parts(&t, true).is_eq());
    }
}

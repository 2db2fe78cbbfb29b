//! Duplicate keys within one load, found over the staged partitions after the read (the first
//! row read wins), and the duplicate records read back from their files for the quarantine.

use std::collections::BTreeMap;
use std::collections::hash_map::Entry;
use std::path::{Path, PathBuf};

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;

use super::IngestOptions;
use super::quarantine::Rejection;
use crate::error::{Error, Result};
use crate::mapping::Encoding;
use crate::parse::days_to_date;
use crate::schema::{ColumnKind, TableSpec};
use crate::source::{Limits, RawRecord, read_file};
use crate::stage::Origin;
use crate::table::{FastMap, Key, KeyColumns, KeyPart, fast_map, read_columns, row_count};

/// A staged row whose key an earlier row of the same load already has.
pub(super) struct Duplicate {
    pub(super) origin: Origin,
    pub(super) reason: String,
}

/// A duplicate search's partitions, by index.
type Found = Vec<(usize, Vec<Duplicate>)>;

/// The duplicates of each staged partition, in read order. Rows are staged in read order, so
/// the first row of a key in its partition is the first one read. Partitions hold disjoint keys,
/// so they are searched side by side, one per core. A partition whose keys strictly increased
/// while it was staged (`ordered`) has none and is not read.
pub(super) fn find_duplicates(
    spec: &TableSpec,
    key_indexes: &[usize],
    staged: &[PathBuf],
    ordered: &[bool],
    files: &[PathBuf],
) -> Result<Vec<Vec<Duplicate>>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(staged.len())
        .max(1);
    let found: Vec<Result<Found>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> Result<Found> {
                    let mut mine = Vec::new();
                    let mut first = fast_map(0);
                    loop {
                        let p = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(path) = staged.get(p) else {
                            return Ok(mine);
                        };
                        if ordered[p] {
                            continue;
                        }
                        let found =
                            partition_duplicates(spec, key_indexes, path, files, &mut first)?;
                        mine.push((p, found));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a duplicate search does not panic"))
            .collect()
    });
    let mut out: Vec<Vec<Duplicate>> = (0..staged.len()).map(|_| Vec::new()).collect();
    for worker in found {
        for (p, duplicates) in worker? {
            out[p] = duplicates;
        }
    }
    Ok(out)
}

/// The duplicates of one staged partition. `first` is the caller's map, kept from partition to
/// partition: a fresh map of millions of keys for each one spent its time faulting pages in.
fn partition_duplicates(
    spec: &TableSpec,
    key_indexes: &[usize],
    path: &Path,
    files: &[PathBuf],
    first: &mut FastMap<Key, Origin>,
) -> Result<Vec<Duplicate>> {
    first.clear();
    first.reserve(usize::try_from(row_count(path)?).unwrap_or(0));
    let mut duplicates = Vec::new();
    each_staged_key(spec, key_indexes, path, |key, origin| {
        match first.entry(key) {
            Entry::Occupied(seen) => duplicates.push(Duplicate {
                origin,
                reason: duplicate_reason(
                    spec,
                    key_indexes,
                    &seen.key().parts(),
                    *seen.get(),
                    origin,
                    files,
                ),
            }),
            Entry::Vacant(slot) => {
                slot.insert(origin);
            }
        }
    })?;
    Ok(duplicates)
}

fn duplicate_reason(
    spec: &TableSpec,
    key_indexes: &[usize],
    key: &[KeyPart],
    first: Origin,
    this: Origin,
    files: &[PathBuf],
) -> String {
    let shown: Vec<String> = key_indexes
        .iter()
        .zip(key)
        .map(|(&i, part)| {
            let column = &spec.columns[i];
            let value = match (column.kind, part) {
                (ColumnKind::Month, KeyPart::Int(days)) => i32::try_from(*days).map_or_else(
                    |_| part.to_string(),
                    |d| days_to_date(d).format("%Y-%m").to_string(),
                ),
                (ColumnKind::Date | ColumnKind::Week, KeyPart::Int(days)) => i32::try_from(*days)
                    .map_or_else(|_| part.to_string(), |d| days_to_date(d).to_string()),
                _ => part.to_string(),
            };
            format!("{}={value}", column.name)
        })
        .collect();
    let place = if first.file == this.file {
        format!("line {}", first.line)
    } else {
        let file = usize::try_from(first.file).expect("a file index");
        format!("{} line {}", files[file].display(), first.line)
    };
    format!("duplicate key {} (first seen on {place})", shown.join(", "))
}

/// Reads the duplicate records back from their files, for the quarantine file. Only files with
/// duplicates are read again.
pub(super) fn read_back(
    duplicates: &[&Duplicate],
    files: &[PathBuf],
    spec: &TableSpec,
    options: &IngestOptions,
    encoding: Encoding,
    limits: Limits,
    key_indexes: &[usize],
) -> Result<Vec<Rejection>> {
    let mut out = Vec::with_capacity(duplicates.len());
    let mut by_file: BTreeMap<i64, BTreeMap<i64, &Duplicate>> = BTreeMap::new();
    for d in duplicates {
        by_file
            .entry(d.origin.file)
            .or_default()
            .insert(d.origin.ordinal, d);
    }
    for (file_index, wanted) in by_file {
        let index = usize::try_from(file_index).expect("a file index");
        let mut ordinal = 0i64;
        let mut sink = |record: RawRecord| -> Result<()> {
            if let Some(d) = wanted.get(&ordinal) {
                out.push(Rejection {
                    file: index,
                    line: record.line,
                    column: Some(record.names[key_indexes[0]].clone()),
                    reason: d.reason.clone(),
                    raw: record.raw(),
                });
            }
            ordinal += 1;
            Ok(())
        };
        read_file(
            &files[index],
            spec,
            &options.mapping,
            encoding,
            limits,
            &mut sink,
        )?;
    }
    Ok(out)
}

/// Calls `f` with the key and origin of every row of a staged partition, in order.
pub(super) fn each_staged_key(
    spec: &TableSpec,
    key_indexes: &[usize],
    path: &Path,
    mut f: impl FnMut(Key, Origin),
) -> Result<()> {
    // Only the key and the origin are read: decoding every column was most of the search.
    let columns = spec.columns.len();
    let mut projection: Vec<usize> = key_indexes.to_vec();
    projection.sort_unstable();
    projection.dedup();
    let keys_at: Vec<(usize, ColumnKind)> = key_indexes
        .iter()
        .map(|k| {
            let at = projection.binary_search(k).expect("a projected key column");
            (at, spec.columns[*k].kind)
        })
        .collect();
    let origin_at = projection.len();
    projection.extend(columns..columns + 3);
    for batch in read_columns(path, Some(&projection))? {
        let batch = batch.map_err(|e| Error::Arrow {
            context: "reading staged rows".to_owned(),
            source: e,
        })?;
        let keys = KeyColumns::at(&batch, keys_at.iter().copied());
        let origin = |i: usize| batch.column(origin_at + i).as_primitive::<Int64Type>();
        let (file, ordinal, line) = (origin(0), origin(1), origin(2));
        for row in 0..batch.num_rows() {
            let origin = Origin {
                file: file.value(row),
                ordinal: ordinal.value(row),
                line: line.value(row),
            };
            f(keys.key(row), origin);
        }
    }
    Ok(())
}

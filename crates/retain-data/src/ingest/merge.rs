//! Writing the table a load leaves: the stored rows the load does not replace and the staged
//! rows that are not duplicates, partition by partition, read on one thread and encoded on
//! another.

use std::path::{Path, PathBuf};

use arrow::array::{BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;

use super::duplicates::{Duplicate, each_staged_key};
use crate::error::{Error, Result};
use crate::schema::TableSpec;
use crate::stage::{self, route_stored};
use crate::table::{
    FastSet, Key, KeyColumns, Router, TableAssembler, TableWriter, fast_set, read_batches,
    row_count,
};
use crate::workspace::Workspace;

/// Writes the table this load leaves into a directory of `staging`: the stored rows, routed to
/// the load's partitions, merged with the staged ones less their duplicates. Returns the
/// directory, how many stored rows were replaced and the rows of the table.
pub(super) fn write_table(
    workspace: &Workspace,
    spec: &TableSpec,
    key_indexes: &[usize],
    router: &Router,
    staged: &[PathBuf],
    duplicates: &[Vec<Duplicate>],
    staging: &Path,
) -> Result<(PathBuf, u64, u64)> {
    let table = spec.table;
    let existing = workspace.table_file(table);
    let stored = if !existing.exists() {
        None
    } else if router.partitions() == 1 {
        Some(vec![existing.clone()])
    } else {
        Some(route_stored(&existing, staging, spec, key_indexes, router)?)
    };
    let merged_dir = staging.join(table.name());
    std::fs::create_dir_all(&merged_dir)
        .map_err(|e| Error::io(format!("creating {}", merged_dir.display()), e))?;
    let mut merged = TableAssembler::create(&merged_dir.join("data.parquet"), spec.arrow_schema())?;
    // One thread reads and filters the partitions while this one encodes them and assembles
    // the table file: the two halves of the merge take about as long as each other. A
    // partition with nothing to drop or merge (a first load without duplicates) is copied as
    // it was staged, without being decoded.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Merged>(4);
    let replaced = std::thread::scope(|scope| -> Result<u64> {
        let (stored, existing) = (stored.as_deref(), &existing);
        // The sender moves into the reader, so the channel closes when it is done.
        let reading = scope.spawn(move || {
            merge_batches(spec, key_indexes, staged, stored, duplicates, existing, &tx)
        });
        let mut encoding: Option<(PathBuf, TableWriter)> = None;
        let mut scratch = 0usize;
        let mut writing = Ok(());
        for message in rx {
            writing = match message {
                Merged::Rows(rows) => {
                    let writer = if let Some((_, writer)) = &mut encoding {
                        Ok(writer)
                    } else {
                        let path = staging.join(format!("merged-{scratch:04}.parquet"));
                        scratch += 1;
                        TableWriter::create(&path, spec.arrow_schema())
                            .map(|writer| &mut encoding.insert((path, writer)).1)
                    };
                    writer.and_then(|writer| writer.write(&rows))
                }
                // A row group never straddles two partitions, so with ranges its statistics
                // bound one range.
                Merged::PartitionEnd => match encoding.take() {
                    Some((path, writer)) => writer
                        .close_scratch()
                        .and_then(|_| merged.append_file(&path))
                        .map(|_| {
                            let _ = std::fs::remove_file(&path);
                        }),
                    None => Ok(()),
                },
                Merged::Copy(p) => merged.append_file(&staged[p]).map(|_| ()),
            };
            if writing.is_err() {
                break;
            }
        }
        let replaced = reading.join().expect("the merge's reader does not panic")?;
        writing.map(|()| replaced)
    })?;
    let rows = merged.close()?;
    Ok((merged_dir, replaced, rows))
}

/// What the merge's reader hands to its writer.
enum Merged {
    /// Rows of the partition being merged.
    Rows(RecordBatch),
    /// The partition's rows are all sent.
    PartitionEnd,
    /// The staged partition, as it is, is the table's rows for it.
    Copy(usize),
}

/// Sends the merged table's rows partition by partition: the stored rows whose key the load
/// does not replace, then the staged rows that are not duplicates. Returns how many stored
/// rows were replaced. Stops early, without error, if the writer stopped.
fn merge_batches(
    spec: &TableSpec,
    key_indexes: &[usize],
    staged: &[PathBuf],
    stored: Option<&[PathBuf]>,
    duplicates: &[Vec<Duplicate>],
    existing: &Path,
    tx: &std::sync::mpsc::SyncSender<Merged>,
) -> Result<u64> {
    let columns: Vec<usize> = (0..spec.columns.len()).collect();
    let mut replaced = 0;
    for (p, staged) in staged.iter().enumerate() {
        if stored.is_none() && duplicates[p].is_empty() {
            if tx.send(Merged::Copy(p)).is_err() {
                return Ok(replaced);
            }
            continue;
        }
        let mut out = Vec::new();
        if let Some(stored) = stored {
            let keys = staged_keys(spec, key_indexes, staged)?;
            for batch in read_batches(&stored[p])? {
                let batch = batch.map_err(|e| Error::Arrow {
                    context: format!("reading {}", existing.display()),
                    source: e,
                })?;
                let (kept, dropped) = drop_keys(spec, key_indexes, &batch, &keys)?;
                replaced += dropped;
                if kept.num_rows() > 0 {
                    out.push(kept);
                }
                if !send(tx, &mut out) {
                    return Ok(replaced);
                }
            }
        }
        let mut skip: FastSet<(i64, i64)> = fast_set(duplicates[p].len());
        skip.extend(
            duplicates[p]
                .iter()
                .map(|d| (d.origin.file, d.origin.ordinal)),
        );
        for batch in read_batches(staged)? {
            let batch = batch.map_err(|e| Error::Arrow {
                context: "reading staged rows".to_owned(),
                source: e,
            })?;
            let keep: Option<BooleanArray> = (!skip.is_empty()).then(|| {
                (0..batch.num_rows())
                    .map(|row| {
                        let o = stage::origin(&batch, columns.len(), row);
                        Some(!skip.contains(&(o.file, o.ordinal)))
                    })
                    .collect()
            });
            let rows = batch.project(&columns).map_err(|e| Error::Arrow {
                context: "reading staged rows".to_owned(),
                source: e,
            })?;
            let rows = match keep {
                Some(keep) => filter_record_batch(&rows, &keep).map_err(|e| Error::Arrow {
                    context: "dropping duplicate rows".to_owned(),
                    source: e,
                })?,
                None => rows,
            };
            out.push(rows);
            if !send(tx, &mut out) {
                return Ok(replaced);
            }
        }
        if tx.send(Merged::PartitionEnd).is_err() {
            return Ok(replaced);
        }
    }
    Ok(replaced)
}

/// Sends the batches in `out`; false if the writer has stopped.
fn send(tx: &std::sync::mpsc::SyncSender<Merged>, out: &mut Vec<RecordBatch>) -> bool {
    out.drain(..)
        .all(|rows| tx.send(Merged::Rows(rows)).is_ok())
}

/// Every key of a staged partition.
fn staged_keys(spec: &TableSpec, key_indexes: &[usize], path: &Path) -> Result<FastSet<Key>> {
    let mut keys = fast_set(row_count(path)?);
    each_staged_key(spec, key_indexes, path, |key, _| {
        keys.insert(key);
    })?;
    Ok(keys)
}

/// Keeps the rows of `batch` whose key is not in `replace`; returns them and how many were dropped.
fn drop_keys(
    spec: &TableSpec,
    key_indexes: &[usize],
    batch: &RecordBatch,
    replace: &FastSet<Key>,
) -> Result<(RecordBatch, u64)> {
    let mut keep = Vec::with_capacity(batch.num_rows());
    let mut dropped = 0;
    let keys = KeyColumns::new(spec, key_indexes, batch);
    for row in 0..batch.num_rows() {
        let hit = replace.contains(&keys.key(row));
        dropped += u64::from(hit);
        keep.push(!hit);
    }
    let kept = filter_record_batch(batch, &keep.into()).map_err(|e| Error::Arrow {
        context: "merging with the existing table".to_owned(),
        source: e,
    })?;
    Ok((kept, dropped))
}

//! Feature snapshots computed once per run and read by the steps after it.
//!
//! Scoring and offer matching need the same features as of the same date; at ten million
//! subscribers each computation reads every table again (minutes). `retain features` writes
//! the snapshot into the workspace (`features/<as-of>.parquet`) with a manifest naming what it
//! was computed from: the as-of date, the feature definitions and every table file's size and
//! modification time. A later step uses the snapshot only while all of those are unchanged, so
//! a new load, a changed feature set or another date means computing again, never stale
//! features.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::UInt64Type;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::execution::context::SessionContext;
use datafusion::prelude::ParquetReadOptions;
use retain_data::{Table, Workspace};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::snapshot::{
    FeatureSet, FeatureStream, PartitionedFeatures, stream_features_partitioned,
};

/// Where snapshots live in a workspace.
const SNAPSHOT_DIR: &str = "features";
/// Snapshots kept: the newest as-of dates; a monthly cycle needs one, a re-run of last month
/// another.
const KEEP: usize = 3;

/// What a stored snapshot was computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub as_of: NaiveDate,
    /// SHA-256 of the as-of date, the feature definitions and the tables' files.
    pub fingerprint: String,
    pub features: Vec<String>,
    pub rows: u64,
    /// The Parquet file's size, so a file replaced behind the manifest is not trusted.
    pub bytes: u64,
}

/// The snapshot file as of `as_of` (present or not).
#[must_use]
pub fn snapshot_file(workspace: &Workspace, as_of: NaiveDate) -> PathBuf {
    workspace
        .root()
        .join(SNAPSHOT_DIR)
        .join(format!("{as_of}.parquet"))
}

fn manifest_file(workspace: &Workspace, as_of: NaiveDate) -> PathBuf {
    snapshot_file(workspace, as_of).with_extension("json")
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { context, source }
}

/// Removes `path`; one already gone is fine.
fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(io(format!("removing {}", path.display()))(e))
        }
        _ => Ok(()),
    }
}

/// The fingerprint of the features `set` would compute as of `as_of` from the tables as they
/// are now. Ingest replaces a table's file by a rename, so every load changes its modification
/// time; copying a workspace without keeping times only costs a recomputation.
pub fn fingerprint(workspace: &Workspace, set: &FeatureSet, as_of: NaiveDate) -> Result<String> {
    let mut hash = Sha256::new();
    hash.update(as_of.to_string());
    for (name, sql) in set.definitions() {
        hash.update([0]);
        hash.update(name);
        hash.update([0]);
        hash.update(sql);
    }
    for table in Table::ALL {
        let path = workspace.table_file(table);
        hash.update([1]);
        hash.update(table.name());
        match std::fs::metadata(&path) {
            Ok(meta) => {
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                hash.update(meta.len().to_le_bytes());
                hash.update(modified.to_le_bytes());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => hash.update(b"absent"),
            Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
        }
    }
    Ok(format!("{:x}", hash.finalize()))
}

/// The stored snapshot as of `as_of`, when it is still what `set` would compute now.
pub fn fresh(
    workspace: &Workspace,
    set: &FeatureSet,
    as_of: NaiveDate,
) -> Result<Option<(PathBuf, Manifest)>> {
    let path = manifest_file(workspace, as_of);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
    };
    let Ok(manifest) = serde_json::from_str::<Manifest>(&text) else {
        tracing::warn!(file = %path.display(), "unreadable feature manifest: computing again");
        return Ok(None);
    };
    let file = snapshot_file(workspace, as_of);
    let bytes = std::fs::metadata(&file).map(|m| m.len()).ok();
    if manifest.as_of != as_of
        || manifest.features != set.names
        || bytes != Some(manifest.bytes)
        || manifest.fingerprint != fingerprint(workspace, set, as_of)?
    {
        return Ok(None);
    }
    Ok(Some((file, manifest)))
}

/// Computes the features of every subscriber as of `as_of` (one partition of `parts` at a
/// time) and stores them as the workspace's snapshot. The snapshot appears whole or not at
/// all: the manifest is removed first and written last, after the file is in place.
pub async fn write(
    workspace: &Workspace,
    set: &FeatureSet,
    as_of: NaiveDate,
    parts: u32,
) -> Result<Manifest> {
    let dir = workspace.root().join(SNAPSHOT_DIR);
    std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
    // Taken before reading: a load that lands meanwhile leaves a snapshot that is never used.
    let fingerprint = fingerprint(workspace, set, as_of)?;
    let file = snapshot_file(workspace, as_of);
    let manifest_path = manifest_file(workspace, as_of);
    let tmp = file.with_extension("parquet.tmp");
    let rows = compute_into(workspace, set, as_of, parts, &tmp).await?;
    remove_if_present(&manifest_path)?;
    std::fs::rename(&tmp, &file).map_err(io(format!("writing {}", file.display())))?;
    let bytes = std::fs::metadata(&file)
        .map_err(io(format!("reading {}", file.display())))?
        .len();
    let manifest = Manifest {
        as_of,
        fingerprint,
        features: set.names.clone(),
        rows,
        bytes,
    };
    let text = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
    retain_data::write_atomically(&manifest_path, &text)?;
    prune(&dir)?;
    Ok(manifest)
}

/// Computes the features of every subscriber as of `as_of` into the Parquet file `path`,
/// streamed one partition of `parts` at a time and written as they come, so memory stays
/// bounded at any operator size; returns the rows written.
pub async fn compute_into(
    workspace: &Workspace,
    set: &FeatureSet,
    as_of: NaiveDate,
    parts: u32,
    path: &Path,
) -> Result<u64> {
    if crate::engine::cluster().is_some() {
        return compute_on_cluster(workspace, set, as_of, path).await;
    }
    let mut stream = stream_features_partitioned(workspace, set, as_of, parts);
    let mut writer = None;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        if writer.is_none() {
            writer = Some(retain_data::TableWriter::create(path, batch.schema())?);
        }
        if let Some(w) = writer.as_mut() {
            w.write(&batch)?;
        }
    }
    let Some(writer) = writer else {
        return Err(Error::MissingOutput(format!(
            "no subscriber to compute features for as of {as_of}"
        )));
    };
    Ok(writer.close()?)
}

/// [`compute_into`] on a cluster: one plan whose file an executor writes, so the rows never
/// pass through this process. `path` must be on storage the executors share.
async fn compute_on_cluster(
    workspace: &Workspace,
    set: &FeatureSet,
    as_of: NaiveDate,
    path: &Path,
) -> Result<u64> {
    let ctx = crate::session(workspace).await?;
    let written = async {
        ctx.sql(&crate::features_sql(set, as_of))
            .await
            .map_err(|e| Error::engine("planning features", e))?
            .write_parquet(
                &path.to_string_lossy(),
                DataFrameWriteOptions::new().with_single_file_output(true),
                None,
            )
            .await
            .map_err(|e| Error::engine(format!("writing {}", path.display()), e))
    }
    .await;
    let rows = written.and_then(|batches| {
        let rows = batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .and_then(|b| {
                b.column(0)
                    .as_primitive_opt::<UInt64Type>()
                    .map(|c| c.value(0))
            })
            .unwrap_or(0);
        if rows == 0 {
            return Err(Error::MissingOutput(format!(
                "no subscriber to compute features for as of {as_of}"
            )));
        }
        Ok(rows)
    });
    if rows.is_err() {
        let _ = std::fs::remove_file(path);
    }
    rows
}

/// Removes all but the newest [`KEEP`] snapshots (by as-of date).
fn prune(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(io(format!("reading {}", dir.display())))?;
    let mut dates: Vec<NaiveDate> = entries
        .filter_map(std::result::Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".json")?.parse().ok()
        })
        .collect();
    dates.sort_unstable_by(|a, b| b.cmp(a));
    for old in dates.into_iter().skip(KEEP) {
        for ext in ["json", "parquet"] {
            remove_if_present(&dir.join(format!("{old}.{ext}")))?;
        }
    }
    Ok(())
}

/// Where a run's features came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Read from the workspace's snapshot.
    Stored,
    /// Computed from the tables.
    #[default]
    Computed,
}

/// The features of every subscriber as of a date: read from the stored snapshot when it is
/// fresh, otherwise computed partition by partition. Rows come in no particular order.
pub enum Features<'a> {
    Stored(FeatureStream),
    Computed(PartitionedFeatures<'a>),
}

impl Features<'_> {
    #[must_use]
    pub fn origin(&self) -> Origin {
        match self {
            Features::Stored(_) => Origin::Stored,
            Features::Computed(_) => Origin::Computed,
        }
    }

    /// The next batch: `subscriber_id`, then one column per feature.
    pub async fn next(&mut self) -> Option<Result<datafusion::arrow::array::RecordBatch>> {
        match self {
            Features::Stored(s) => s.next().await,
            Features::Computed(c) => c.next().await,
        }
    }
}

/// The features of every subscriber as of `as_of`, from the snapshot when fresh.
pub async fn features<'a>(
    workspace: &'a Workspace,
    set: &'a FeatureSet,
    as_of: NaiveDate,
    parts: u32,
) -> Result<Features<'a>> {
    if let Some((file, manifest)) = fresh(workspace, set, as_of)? {
        tracing::info!(file = %file.display(), rows = manifest.rows, "features from the stored snapshot");
        return Ok(Features::Stored(read(&file).await?));
    }
    tracing::info!(%as_of, "computing features (no fresh snapshot: retain features writes one)");
    Ok(Features::Computed(stream_features_partitioned(
        workspace, set, as_of, parts,
    )))
}

async fn read(file: &Path) -> Result<FeatureStream> {
    let ctx = SessionContext::new();
    let path = file.to_string_lossy();
    let frame = ctx
        .read_parquet(path.as_ref(), ParquetReadOptions::default())
        .await
        .map_err(|e| Error::engine(format!("opening {}", file.display()), e))?;
    let stream = frame
        .execute_stream()
        .await
        .map_err(|e| Error::engine(format!("reading {}", file.display()), e))?;
    Ok(FeatureStream::new(stream))
}

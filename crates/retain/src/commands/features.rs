//! `retain features`: point-in-time features, or a training set stacked over snapshots.

use std::path::PathBuf;

use retain_data::Workspace;
use retain_features::{FeatureSet, LabelConfig};

use crate::output;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Workspace directory.
    #[arg(long, env = "RETAIN_DIR")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub engine: super::cluster::EngineArg,
    /// Features as of this date (YYYY-MM-DD); defaults to the month after the last loaded one.
    #[arg(long)]
    pub as_of: Option<String>,
    /// Build a training set instead: every observable monthly snapshot, with labels.
    #[arg(long)]
    pub training: bool,
    /// Training: churn counted when it takes effect within this many months of the snapshot.
    #[arg(long, default_value_t = 1)]
    pub horizon: u32,
    /// Months of suspension before a cancellation (倒追 gap).
    #[arg(long, default_value_t = 3)]
    pub gap: u32,
    /// Parquet file to write. Without it (one snapshot, not a training set) the snapshot is
    /// stored in the workspace (`features/<as-of>.parquet`), where scoring and offer matching
    /// read it instead of computing the same features again.
    #[arg(long, required_if_eq("training", "true"))]
    pub out: Option<PathBuf>,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let workspace = Workspace::open(&args.dir)?;
    args.engine.apply(&workspace)?;
    let rt = super::runtime()?;
    let Some(out) = &args.out else {
        return store(&rt, &workspace, args);
    };
    let set = FeatureSet::default_set();
    let tmp = out.with_extension("parquet.tmp");
    let (rows, snapshots) = rt.block_on(async {
        if args.training {
            let ctx = retain_features::session(&workspace).await?;
            let labels = LabelConfig {
                suspension_gap_months: args.gap,
                ..LabelConfig::default()
            };
            let snapshots =
                retain_features::observable_snapshots(&ctx, 6, args.horizon + args.gap).await?;
            let batches =
                retain_features::training_set(&ctx, &set, &snapshots, args.horizon, &labels)
                    .await?;
            let Some(first) = batches.first() else {
                anyhow::bail!("no snapshot with subscribers to compute features for");
            };
            let mut writer = retain_data::TableWriter::create(&tmp, first.schema())?;
            for b in &batches {
                writer.write(b)?;
            }
            return Ok::<_, anyhow::Error>((writer.close()?, snapshots));
        }
        let as_of = as_of_or_default(&workspace, args.as_of.as_deref()).await?;
        let parts = retain_features::feature_partitions(&workspace)?;
        let rows =
            retain_features::stored::compute_into(&workspace, &set, as_of, parts, &tmp).await?;
        Ok((rows, vec![as_of]))
    })?;
    std::fs::rename(&tmp, out)?;
    let summary = serde_json::json!({
        "file": out,
        "rows": rows,
        "features": set.names.len(),
        "snapshots": snapshots,
    });
    if args.json {
        return output::print_json(&summary);
    }
    output::print_text(&format!(
        "{rows} rows × {} features over {} snapshot(s) → {}",
        set.names.len(),
        snapshots.len(),
        out.display()
    ));
    Ok(())
}

/// Computes the default features as of `as_of` (default: the month after the last loaded one)
/// into the workspace's snapshot, for the steps after this one to read.
pub(crate) fn write_snapshot(
    rt: &tokio::runtime::Runtime,
    workspace: &Workspace,
    as_of: Option<&str>,
) -> anyhow::Result<retain_features::stored::Manifest> {
    let set = FeatureSet::default_set();
    rt.block_on(async {
        let as_of = as_of_or_default(workspace, as_of).await?;
        let parts = retain_features::feature_partitions(workspace)?;
        Ok(retain_features::stored::write(workspace, &set, as_of, parts).await?)
    })
}

/// The date given, or the month after the last loaded one.
async fn as_of_or_default(
    workspace: &Workspace,
    as_of: Option<&str>,
) -> anyhow::Result<chrono::NaiveDate> {
    if let Some(text) = as_of {
        return super::parse_as_of(text);
    }
    let ctx = retain_features::session(workspace).await?;
    Ok(retain_features::default_as_of(&ctx, retain_features::Cadence::Monthly).await?)
}

/// `retain features` without `--out`: the workspace's snapshot.
fn store(rt: &tokio::runtime::Runtime, workspace: &Workspace, args: &Args) -> anyhow::Result<()> {
    let manifest = write_snapshot(rt, workspace, args.as_of.as_deref())?;
    let file = retain_features::stored::snapshot_file(workspace, manifest.as_of);
    let summary = serde_json::json!({
        "file": file,
        "rows": manifest.rows,
        "features": manifest.features.len(),
        "snapshots": [manifest.as_of],
        "stored": true,
    });
    if args.json {
        return output::print_json(&summary);
    }
    output::print_text(&format!(
        "{} rows × {} features as of {} → {} (read by retain score and retain match until a table changes)",
        manifest.rows,
        manifest.features.len(),
        manifest.as_of,
        file.display()
    ));
    Ok(())
}

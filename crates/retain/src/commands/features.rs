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
    /// Parquet file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let workspace = Workspace::open(&args.dir)?;
    let set = FeatureSet::default_set();
    let rt = super::runtime()?;
    let tmp = args.out.with_extension("parquet.tmp");
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
        let as_of = if let Some(text) = &args.as_of {
            super::parse_as_of(text)?
        } else {
            let ctx = retain_features::session(&workspace).await?;
            retain_warn::default_as_of(&ctx, retain_warn::Cadence::Monthly).await?
        };
        // Streamed one subscriber partition at a time and written as it comes: memory stays
        // bounded at any operator size.
        let parts = retain_features::feature_partitions(&workspace)?;
        let mut stream =
            retain_features::stream_features_partitioned(&workspace, &set, as_of, parts);
        let mut writer = None;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            if writer.is_none() {
                writer = Some(retain_data::TableWriter::create(&tmp, batch.schema())?);
            }
            if let Some(w) = writer.as_mut() {
                w.write(&batch)?;
            }
        }
        let Some(writer) = writer else {
            anyhow::bail!("no subscriber to compute features for");
        };
        Ok((writer.close()?, vec![as_of]))
    })?;
    std::fs::rename(&tmp, &args.out)?;
    let summary = serde_json::json!({
        "file": args.out,
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
        args.out.display()
    ));
    Ok(())
}

//! `retain segment`: RFM, value, lifecycle, clusters and scenario groups for every subscriber.

use std::fmt::Write as _;
use std::path::PathBuf;

use retain_data::Workspace;
use retain_segment::{ClusterNames, SegmentConfig, SegmentReport};
use retain_store::Store;

use crate::output;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Workspace directory.
    #[arg(long, env = "RETAIN_DIR")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub engine: super::cluster::EngineArg,
    /// Segment as of this month start (YYYY-MM-DD); defaults to the month after the last
    /// loaded one.
    #[arg(long)]
    pub as_of: Option<String>,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct RenameArgs {
    /// Workspace directory.
    #[arg(long, env = "RETAIN_DIR")]
    pub dir: PathBuf,
    /// Cluster number, as `retain segment` lists it.
    #[arg(long)]
    pub cluster: usize,
    /// Chinese name.
    #[arg(long)]
    pub zh: String,
    /// English name.
    #[arg(long)]
    pub en: String,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let workspace = Workspace::open(&args.dir)?;
    args.engine.apply(&workspace)?;
    let rt = super::runtime()?;
    let store = rt.block_on(Store::connect(&workspace.store_url()))?;
    let report = execute(&rt, &store, &workspace, args.as_of.as_deref())?;
    if args.json {
        return output::print_json(&report);
    }
    output::print_text(&describe(&report));
    Ok(())
}

pub(crate) fn rename(args: &RenameArgs) -> anyhow::Result<()> {
    let workspace = Workspace::open(&args.dir)?;
    ClusterNames::rename(&workspace, args.cluster, &args.zh, &args.en)?;
    output::print_text(&format!(
        "cluster {} is now {} / {}; the next `retain segment` uses the name",
        args.cluster, args.zh, args.en
    ));
    Ok(())
}

/// Runs the segmentation and records the run.
pub(crate) fn execute(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    workspace: &Workspace,
    as_of: Option<&str>,
) -> anyhow::Result<SegmentReport> {
    let config = SegmentConfig::for_workspace(workspace)?;
    let params = serde_json::json!({ "as_of": as_of });
    let work = || {
        rt.block_on(async {
            let ctx = retain_features::session(workspace).await?;
            let as_of = match as_of {
                Some(text) => super::parse_month_start(text)?,
                None => {
                    retain_features::default_as_of(&ctx, retain_features::Cadence::Monthly).await?
                }
            };
            let report = retain_segment::segment(&ctx, &config, workspace, as_of).await?;
            Ok::<_, anyhow::Error>(report)
        })
    };
    super::recorded(rt, store, "segment", &params, work, |r| {
        Ok(serde_json::to_value(r)?)
    })
}

fn describe(r: &SegmentReport) -> String {
    let mut text = format!(
        "segmentation as of {}: {} subscribers, {} active, {} mid/high-end\n\nclusters (k by silhouette {:?}):\n",
        r.as_of, r.subscribers, r.active, r.midhigh, r.silhouettes
    );
    for c in &r.clusters {
        let _ = writeln!(
            text,
            "  #{} {} / {}: {} ({:.1}%), revenue {:.1}%, ARPU {:.2}, churn {:.2}%",
            c.id,
            c.name_zh,
            c.name_en,
            c.size,
            c.share * 100.0,
            c.revenue_share * 100.0,
            c.arpu,
            c.churn_rate * 100.0
        );
    }
    for (title, map) in [
        ("RFM groups", &r.rfm_group),
        ("value tiers", &r.value_tier),
        ("lifecycle stages", &r.lifecycle_stage),
        ("scenario groups", &r.scenario),
    ] {
        let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(text, "{title}: {}", parts.join(", "));
    }
    let _ = write!(
        text,
        "per subscriber: {}\nreport: {}",
        r.segments_file.display(),
        r.report_file.display()
    );
    text
}

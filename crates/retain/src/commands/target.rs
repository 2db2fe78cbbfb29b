//! `retain target`: select a target group by tags.

use std::path::PathBuf;

use retain_data::Workspace;
use retain_segment::TagLibrary;

use crate::output;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Workspace directory.
    #[arg(long, env = "RETAIN_DIR")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub engine: super::cluster::EngineArg,
    /// Tag expression, for example "contract_expiring and competitor_contact and not enterprise_member".
    #[arg(long)]
    pub tags: String,
    /// Widen the group to whole calling circles: every active member of a circle (from the last
    /// `retain segment`) one of the selected subscribers belongs to.
    #[arg(long)]
    pub whole_circles: bool,
    /// Write the selected subscriber ids to this CSV file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let workspace = Workspace::open(&args.dir)?;
    args.engine.apply(&workspace)?;
    let library = TagLibrary::for_workspace(&workspace)?;
    let rt = super::runtime()?;
    let ids = rt.block_on(async {
        let ctx = retain_features::session(&workspace).await?;
        let ids = if args.whole_circles {
            retain_segment::select_whole_circles(&ctx, &workspace, &library, &args.tags).await?
        } else {
            retain_segment::select_by_tags(&ctx, &workspace, &library, &args.tags).await?
        };
        Ok::<_, anyhow::Error>(ids)
    })?;
    if let Some(out) = &args.out {
        let mut text = String::from("subscriber_id\n");
        for id in &ids {
            text.push_str(&id.to_string());
            text.push('\n');
        }
        retain_data::write_atomically(out, text.as_bytes())?;
    }
    if args.json {
        return output::print_json(&serde_json::json!({
            "expression": args.tags,
            "whole_circles": args.whole_circles,
            "count": ids.len(),
            "file": args.out,
            "sample": ids.iter().take(20).collect::<Vec<_>>(),
        }));
    }
    let circles = if args.whole_circles {
        " (with their whole calling circles)"
    } else {
        ""
    };
    output::print_text(&format!(
        "{} subscribers match {:?}{circles}",
        ids.len(),
        args.tags
    ));
    Ok(())
}

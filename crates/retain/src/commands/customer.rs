//! `retain customer ID`: the 360 view of one subscriber.

use std::path::PathBuf;

use retain_data::Workspace;

use crate::output;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Subscriber id.
    pub id: i64,
    /// Workspace directory.
    #[arg(long, env = "RETAIN_DIR")]
    pub dir: PathBuf,
    /// Print one JSON object (the default output is the same object, indented).
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let workspace = Workspace::open(&args.dir)?;
    let rt = super::runtime()?;
    let view = rt.block_on(async {
        let ctx = retain_features::session(&workspace).await?;
        let view = retain_segment::customer_360(&ctx, workspace.root(), args.id).await?;
        Ok::<_, anyhow::Error>(view)
    })?;
    let Some(view) = view else {
        anyhow::bail!("subscriber {} is not in this workspace", args.id);
    };
    if args.json {
        output::print_json(&view)
    } else {
        output::print_text(&serde_json::to_string_pretty(&view)?);
        Ok(())
    }
}

//! `retain status`: what a workspace holds.

use std::fmt::Write as _;
use std::path::PathBuf;

use retain_data::{Table, Workspace};
use retain_store::Store;
use serde::Serialize;

use crate::output;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Workspace directory.
    #[arg(long, env = "RETAIN_DIR")]
    pub dir: PathBuf,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Status {
    dir: PathBuf,
    tables: Vec<(String, u64)>,
    runs: Vec<retain_store::RunRecord>,
    overview: Option<retain_features::Overview>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let workspace = Workspace::open(&args.dir)?;
    let tables = Table::ALL
        .iter()
        .map(|t| Ok((t.name().to_owned(), workspace.table_rows(*t)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let rt = super::runtime()?;
    let store = rt.block_on(Store::connect(&workspace.store_url()))?;
    let runs = rt.block_on(store.runs(50))?;
    let overview = if workspace.has_table(Table::Subscribers) {
        Some(rt.block_on(async {
            let ctx = retain_features::session(&workspace).await?;
            retain_features::overview(&ctx).await
        })?)
    } else {
        None
    };
    let status = Status {
        dir: args.dir.clone(),
        tables,
        runs,
        overview,
    };
    if args.json {
        return output::print_json(&status);
    }
    let mut text = format!("workspace {}\n\ntables:\n", status.dir.display());
    for (name, rows) in &status.tables {
        let _ = writeln!(text, "  {name:<17} {rows:>10} rows");
    }
    text.push_str("\nrecent runs:\n");
    for r in &status.runs {
        let _ = writeln!(
            text,
            "  #{:<4} {:<8} {:<10} {}",
            r.id,
            r.kind,
            r.status,
            r.started_at.format("%Y-%m-%d %H:%M:%S")
        );
    }
    if let Some(o) = &status.overview {
        let _ = writeln!(
            text,
            "\nsubscribers: {} ({} active, {} suspended, {} cancelled)",
            o.subscribers, o.active, o.suspended, o.cancelled
        );
    }
    output::print_text(&text);
    Ok(())
}

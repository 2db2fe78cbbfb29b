//! `retain backup` and `retain restore`: a workspace and its store in one file, and back.

use std::path::PathBuf;

use retain_data::Workspace;
use retain_store::Store;

use crate::output;

#[derive(Debug, clap::Args)]
pub(crate) struct BackupArgs {
    /// Workspace directory.
    #[arg(long, env = "RETAIN_DIR")]
    pub dir: PathBuf,
    /// The archive to write (a zip; replaced whole when complete).
    #[arg(long)]
    pub out: PathBuf,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct RestoreArgs {
    /// The directory to restore into: new, or empty.
    #[arg(long)]
    pub dir: PathBuf,
    /// The archive `retain backup` wrote.
    pub archive: PathBuf,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn backup(args: &BackupArgs) -> anyhow::Result<()> {
    let workspace = Workspace::open(&args.dir)?;
    let rt = super::runtime()?;
    // Beside the archive, named as a partial file, so a backup into the workspace skips it.
    let name = args.out.file_name().unwrap_or_default().to_string_lossy();
    let copy = args
        .out
        .with_file_name(format!(".{name}.{}.store.partial", std::process::id()));
    let _ = std::fs::remove_file(&copy);
    let result = rt
        .block_on(async {
            let store = Store::connect(&workspace.store_url()).await?;
            let copied = store.snapshot_into(&copy).await;
            store.close().await;
            anyhow::Ok(copied?)
        })
        .and_then(|copied| {
            let summary =
                retain_data::backup(&workspace, copied.then_some(copy.as_path()), &args.out)?;
            Ok((copied, summary))
        });
    let _ = std::fs::remove_file(&copy);
    let (copied, summary) = result?;
    let store_note = if copied {
        "the SQLite store's copy is included"
    } else {
        "the store is PostgreSQL: back it up with pg_dump (docs/deploy.md)"
    };
    if args.json {
        return output::print_json(&serde_json::json!({
            "archive": summary.archive,
            "dir": summary.dir,
            "files": summary.files,
            "bytes": summary.bytes,
            "store_included": copied,
        }));
    }
    output::print_text(&format!(
        "backed up {} ({} files, {} bytes) to {}; {store_note}",
        summary.dir.display(),
        summary.files,
        summary.bytes,
        summary.archive.display()
    ));
    Ok(())
}

pub(crate) fn restore(args: &RestoreArgs) -> anyhow::Result<()> {
    let summary = retain_data::restore(&args.archive, &args.dir)?;
    if args.json {
        return output::print_json(&summary);
    }
    output::print_text(&format!(
        "restored {} files ({} bytes) from {} into {}{}",
        summary.files,
        summary.bytes,
        summary.archive.display(),
        summary.dir.display(),
        summary
            .store
            .as_ref()
            .map(|s| format!("; the store at {}", s.display()))
            .unwrap_or_default()
    ));
    Ok(())
}

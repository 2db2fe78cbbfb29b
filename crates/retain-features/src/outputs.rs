//! Where the stages' outputs that conditions read live in a workspace. The warning list, the
//! segmentation and the tags are each written by their own stage, but warning rules read
//! segments and tags while tags read warnings, so their places are named here, below both, and
//! every writer and reader asks for them instead of joining paths of its own.

use std::path::PathBuf;

use datafusion::prelude::SessionContext;
use retain_data::Workspace;

use crate::Result;

/// The segmentation's placement of every active subscriber (`retain segment`).
#[must_use]
pub fn segments_file(workspace: &Workspace) -> PathBuf {
    workspace
        .root()
        .join("segments")
        .join("subscribers.parquet")
}

/// The tag library's memberships: one boolean column per tag (`retain segment`).
#[must_use]
pub fn tags_file(workspace: &Workspace) -> PathBuf {
    workspace.root().join("segments").join("tags.parquet")
}

/// The warning lists, `<as-of>-<cadence>.csv` and `.parquet` (`retain warn`).
#[must_use]
pub fn warnings_dir(workspace: &Workspace) -> PathBuf {
    workspace.root().join("warnings")
}

/// The stages' reports, JSON and Markdown, that the dashboard shows.
#[must_use]
pub fn reports_dir(workspace: &Workspace) -> PathBuf {
    workspace.root().join("reports")
}

/// Registers the segmentation's table as `segments` in `ctx` unless a table of that name is
/// there already; false when the workspace has not been segmented.
pub async fn register_segments(ctx: &SessionContext, workspace: &Workspace) -> Result<bool> {
    let file = segments_file(workspace);
    if !file.exists() {
        return Ok(false);
    }
    if !ctx.table_exist("segments").unwrap_or(false) {
        crate::conditions::register_parquet(ctx, "segments", &file).await?;
    }
    Ok(true)
}

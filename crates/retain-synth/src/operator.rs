//! A synthetic operator loaded into a workspace, the way every stage's tests and examples start.

use std::path::Path;

use retain_data::{IngestOptions, Table, Workspace, ingest};

use crate::{Result, SynthParams, synthesize};

/// Synthesizes the operator `params` describes into `dir/in`, keeps its truth in the workspace
/// `dir/ws` (where the evaluations look for it) and ingests every table there.
pub fn synthetic_workspace(params: &SynthParams, dir: &Path) -> Result<Workspace> {
    let workspace = Workspace::create_or_open(&dir.join("ws"))?;
    let summary = synthesize(params, &dir.join("in"), &workspace.truth_dir())?;
    for (name, file) in &summary.files {
        let table = Table::from_name(name)
            .ok_or_else(|| crate::Error::Params(format!("synthesized an unknown table {name}")))?;
        ingest(
            &workspace,
            table,
            std::slice::from_ref(file),
            &IngestOptions {
                label: name.clone(),
                ..IngestOptions::default()
            },
        )?;
    }
    Ok(workspace)
}

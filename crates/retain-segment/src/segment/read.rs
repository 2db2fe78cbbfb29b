//! Readers of the segmentation's artifacts for other stages and the dashboard: the report and
//! the RFM grid over the segments table.

use datafusion::execution::context::SessionContext;
use retain_data::Workspace;
use retain_features::outputs;
use serde::Serialize;

use super::{SEGMENTS_REPORT, SegmentReport};
use crate::error::Result;

/// The newest segmentation's report, if the workspace has been segmented.
pub fn read_segment_report(workspace: &Workspace) -> Result<Option<SegmentReport>> {
    Ok(retain_data::read_json(
        &outputs::reports_dir(workspace).join(SEGMENTS_REPORT),
    )?)
}

/// One cell of the RFM grid: subscribers with recency score `r` and frequency score `f`, and
/// their mean monetary score.
#[derive(Debug, Clone, Serialize)]
pub struct RfmCell {
    pub r: i64,
    pub f: i64,
    pub subscribers: i64,
    pub m: f64,
}

/// Subscribers by recency × frequency score (1–5 each) with their mean monetary score: the
/// RFM grid of the segment explorer. `None` when the workspace has not been segmented.
pub async fn rfm_grid(ctx: &SessionContext, workspace: &Workspace) -> Result<Option<Vec<RfmCell>>> {
    if !outputs::register_segments(ctx, workspace).await? {
        return Ok(None);
    }
    let batches = retain_features::frame::query(
        ctx,
        "SELECT rfm_r AS r, rfm_f AS f, COUNT(*) AS subscribers, AVG(rfm_m) AS m \
         FROM segments WHERE rfm_r IS NOT NULL AND rfm_f IS NOT NULL \
         GROUP BY rfm_r, rfm_f ORDER BY r, f",
        "the RFM grid",
    )
    .await?;
    let column = |name| retain_features::frame::ids(&batches, name);
    let (r, f, subscribers) = (column("r")?, column("f")?, column("subscribers")?);
    let m = retain_features::frame::floats(&batches, "m")?;
    Ok(Some(
        (0..r.len())
            .map(|i| RfmCell {
                r: r[i],
                f: f[i],
                subscribers: subscribers[i],
                m: m[i],
            })
            .collect(),
    ))
}

//! Segments, the RFM grid, tags and target selection, the churn model's report.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::{Extension, Json};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::engine;
use crate::AppState;
use crate::auth::Session;
use crate::error::{ApiError, ApiResult};
use retain_data::SubscriberId;

/// The segment explorer: the segmentation's report and its RFM grid.
#[derive(Serialize)]
pub(crate) struct SegmentsAnswer {
    #[serde(flatten)]
    report: retain_segment::SegmentReport,
    rfm_grid: Option<Vec<retain_segment::RfmCell>>,
}

pub(crate) async fn segments(State(state): State<AppState>) -> ApiResult<Json<SegmentsAnswer>> {
    let workspace = &state.0.campaigns.workspace;
    let mut report = retain_segment::read_segment_report(workspace)
        .map_err(engine)?
        .ok_or_else(|| ApiError::unavailable("no segmentation yet: run retain segment first"))?;
    // Paths of the server's disk are no business of the browser.
    report.segments_file = PathBuf::new();
    report.report_file = PathBuf::new();
    let rfm_grid = retain_segment::rfm_grid(&state.0.campaigns.ctx, workspace)
        .await
        .map_err(engine)?;
    Ok(Json(SegmentsAnswer { report, rfm_grid }))
}

/// The network's segmentation: the cells with their subscribers, churn and risk for the map,
/// the districts and the calling circles' sums.
#[derive(Serialize)]
pub(crate) struct NetworkAnswer {
    as_of: chrono::NaiveDate,
    summary: retain_segment::NetworkSegments,
    cells: Vec<retain_segment::Cell>,
}

#[derive(Deserialize)]
pub(crate) struct NetworkQuery {
    /// Only the cells of this district.
    district: Option<String>,
}

pub(crate) async fn network(
    State(state): State<AppState>,
    q: Result<Query<NetworkQuery>, QueryRejection>,
) -> ApiResult<Json<NetworkAnswer>> {
    let Query(q) = q?;
    let workspace = &state.0.campaigns.workspace;
    let report = retain_segment::read_segment_report(workspace)
        .map_err(engine)?
        .ok_or_else(|| ApiError::unavailable("no segmentation yet: run retain segment first"))?;
    let summary = report.network.ok_or_else(|| {
        ApiError::unavailable(
            "no network segmentation: the workspace holds no cells or call records",
        )
    })?;
    let mut cells = retain_segment::read_cells(workspace).map_err(engine)?;
    if let Some(district) = &q.district {
        cells.retain(|c| c.district.as_deref() == Some(district.as_str()));
    }
    Ok(Json(NetworkAnswer {
        as_of: report.as_of,
        summary,
        cells,
    }))
}

/// The tag library with each tag's members at the last segmentation.
#[derive(Serialize)]
pub(crate) struct TagsAnswer {
    source: Option<String>,
    tags: Vec<TagCount>,
}

#[derive(Serialize)]
pub(crate) struct TagCount {
    #[serde(flatten)]
    tag: retain_segment::Tag,
    count: Option<u64>,
}

pub(crate) async fn tags(State(state): State<AppState>) -> ApiResult<Json<TagsAnswer>> {
    let workspace = &state.0.campaigns.workspace;
    let library = retain_segment::TagLibrary::for_workspace(workspace).map_err(engine)?;
    let counts = retain_segment::read_segment_report(workspace)
        .map_err(engine)?
        .map(|r| r.tags)
        .unwrap_or_default();
    Ok(Json(TagsAnswer {
        source: library
            .source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned()),
        tags: library
            .tags
            .into_iter()
            .map(|tag| TagCount {
                count: counts.get(&tag.id).copied(),
                tag,
            })
            .collect(),
    }))
}

fn segment_error(e: retain_segment::Error) -> ApiError {
    match e {
        retain_segment::Error::BadRequest(m) => ApiError::bad_request(m),
        other => ApiError::internal(other),
    }
}

#[derive(Deserialize)]
pub(crate) struct TargetQuery {
    tags: String,
    /// Widen the group to the whole calling circles of those selected.
    #[serde(default)]
    whole_circles: bool,
}

pub(crate) async fn targets(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    q: Result<Query<TargetQuery>, QueryRejection>,
) -> ApiResult<Json<TargetAnswer>> {
    let Query(q) = q?;
    let library =
        retain_segment::TagLibrary::for_workspace(&state.0.campaigns.workspace).map_err(engine)?;
    // A bad expression is the caller's error whatever state the workspace is in.
    retain_segment::check_target_expression(&library, &q.tags).map_err(segment_error)?;
    if !retain_features::outputs::tags_file(&state.0.campaigns.workspace).exists() {
        return Err(ApiError::unavailable(
            "no tags computed yet: run retain segment first",
        ));
    }
    let (ctx, workspace) = (&state.0.campaigns.ctx, &state.0.campaigns.workspace);
    let ids = if q.whole_circles {
        retain_segment::select_whole_circles(ctx, workspace, &library, &q.tags).await
    } else {
        retain_segment::select_by_tags(ctx, workspace, &library, &q.tags).await
    }
    .map_err(segment_error)?;
    let sample = ids
        .iter()
        .take(20)
        .map(|&id| Masked {
            subscriber_id: SubscriberId(id),
            msisdn: state.masked(SubscriberId(id)),
        })
        .collect();
    state
        .audit(
            &s,
            "target",
            &q.tags,
            "select",
            json!({ "count": ids.len(), "whole_circles": q.whole_circles }),
        )
        .await?;
    Ok(Json(TargetAnswer {
        count: ids.len(),
        expression: q.tags,
        whole_circles: q.whole_circles,
        sample,
    }))
}

/// The subscribers a tag expression selects: how many, and the first few, masked.
#[derive(Serialize)]
pub(crate) struct TargetAnswer {
    expression: String,
    whole_circles: bool,
    count: usize,
    sample: Vec<Masked>,
}

/// A subscriber as the lists show them: the id and the masked number.
#[derive(Serialize)]
pub(crate) struct Masked {
    subscriber_id: SubscriberId,
    msisdn: String,
}

/// The model registry: every version with its test metrics, the champion that scores, and
/// the history of promotions and rollbacks.
pub(crate) async fn model_versions(
    State(state): State<AppState>,
) -> ApiResult<Json<serde_json::Value>> {
    let workspace = &state.0.campaigns.workspace;
    let listing = retain_model::list(workspace).map_err(ApiError::internal)?;
    let mut answer = serde_json::to_value(listing).map_err(ApiError::internal)?;
    super::relative(&mut answer, &format!("{}/", workspace.root().display()));
    Ok(Json(answer))
}

pub(crate) async fn model(
    State(state): State<AppState>,
) -> ApiResult<Json<retain_model::ModelReport>> {
    let mut report = retain_model::read_model_report(&state.0.campaigns.workspace)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::unavailable("no churn model yet: run retain train first"))?;
    // Paths of the server's disk are no business of the browser.
    report.model_dir = PathBuf::new();
    Ok(Json(report))
}

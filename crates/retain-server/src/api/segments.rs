//! Segments, the RFM grid, tags and target selection, the churn model's report.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Answer, engine};
use crate::AppState;
use crate::auth::Session;
use crate::error::{ApiError, ApiResult};

pub(crate) async fn segments(State(state): State<AppState>) -> Answer {
    let mut report = state
        .report(retain_segment::SEGMENTS_REPORT)?
        .ok_or_else(|| ApiError::unavailable("no segmentation yet: run retain segment first"))?;
    if let Some(o) = report.as_object_mut() {
        // Paths of the server's disk are no business of the browser.
        o.remove("segments_file");
        o.remove("report_file");
    }
    report["rfm_grid"] = rfm_grid(&state).await?;
    Ok(Json(report))
}

/// Subscribers by recency × frequency score (1–5 each) with their mean monetary score: the
/// RFM grid of the segment explorer.
async fn rfm_grid(state: &AppState) -> ApiResult<Value> {
    let ctx = &state.0.campaigns.ctx;
    if !retain_offers::register_segments(ctx, &state.0.campaigns.workspace)
        .await
        .map_err(engine)?
    {
        return Ok(Value::Null);
    }
    let batches = retain_features::frame::query(
        ctx,
        "SELECT rfm_r AS r, rfm_f AS f, COUNT(*) AS subscribers, AVG(rfm_m) AS m \
         FROM segments WHERE rfm_r IS NOT NULL AND rfm_f IS NOT NULL \
         GROUP BY rfm_r, rfm_f ORDER BY r, f",
        "the RFM grid",
    )
    .await
    .map_err(engine)?;
    Ok(Value::Array(
        retain_features::json_rows(&batches)
            .into_iter()
            .map(Value::Object)
            .collect(),
    ))
}

pub(crate) async fn tags(State(state): State<AppState>) -> Answer {
    let library =
        retain_segment::TagLibrary::for_workspace(&state.0.campaigns.workspace).map_err(engine)?;
    let counts = state
        .report(retain_segment::SEGMENTS_REPORT)?
        .and_then(|r| r.get("tags").cloned())
        .unwrap_or(Value::Null);
    let tags: Vec<Value> = library
        .tags
        .iter()
        .map(|t| {
            let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
            v["count"] = counts.get(&t.id).cloned().unwrap_or(Value::Null);
            v
        })
        .collect();
    Ok(Json(json!({
        "source": library.source.file_name().map(|n| n.to_string_lossy().into_owned()),
        "tags": tags,
    })))
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
}

pub(crate) async fn targets(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    q: Result<Query<TargetQuery>, QueryRejection>,
) -> Answer {
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
    let ids = retain_segment::select_by_tags(
        &state.0.campaigns.ctx,
        &state.0.campaigns.workspace,
        &library,
        &q.tags,
    )
    .await
    .map_err(segment_error)?;
    let sample: Vec<Value> = ids
        .iter()
        .take(20)
        .map(|id| json!({ "subscriber_id": id, "msisdn": state.masked(*id) }))
        .collect();
    state
        .audit(
            &s,
            "target",
            &q.tags,
            "select",
            json!({ "count": ids.len() }),
        )
        .await?;
    Ok(Json(
        json!({ "expression": q.tags, "count": ids.len(), "sample": sample }),
    ))
}

pub(crate) async fn model(State(state): State<AppState>) -> Answer {
    let mut report = retain_model::read_model_report(&state.0.campaigns.workspace)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::unavailable("no churn model yet: run retain train first"))?;
    if let Some(o) = report.as_object_mut() {
        o.remove("model_dir");
    }
    Ok(Json(report))
}

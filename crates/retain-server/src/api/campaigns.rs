//! Campaigns and their steps, the work-order queue and callbacks, the audit log.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::sources::optional_body;
use super::{id_of, off_thread};
use crate::AppState;
use crate::auth::Session;
use crate::error::{ApiError, ApiResult};
use retain_data::SubscriberId;

/// The plan library.
#[derive(Serialize)]
pub(crate) struct TemplatesAnswer {
    templates: Vec<retain_campaign::TemplateInfo>,
}

pub(crate) async fn templates(State(state): State<AppState>) -> ApiResult<Json<TemplatesAnswer>> {
    let templates = state.0.campaigns.templates().await?;
    Ok(Json(TemplatesAnswer { templates }))
}

/// Every campaign, newest first, with its uplift once evaluated.
#[derive(Serialize)]
pub(crate) struct CampaignsAnswer {
    campaigns: Vec<CampaignLine>,
}

#[derive(Serialize)]
pub(crate) struct CampaignLine {
    id: i64,
    name: String,
    kind: String,
    template: String,
    status: retain_store::CampaignStatus,
    budget: f64,
    as_of: String,
    owner: String,
    approval_level: i64,
    updated_at: String,
    uplift: Option<Value>,
}

pub(crate) async fn campaigns(State(state): State<AppState>) -> ApiResult<Json<CampaignsAnswer>> {
    let campaigns = state
        .0
        .campaigns
        .list()
        .await?
        .into_iter()
        .map(|c| CampaignLine {
            uplift: c.evaluation.as_ref().and_then(|e| e.get("uplift")).cloned(),
            id: c.id,
            name: c.name,
            kind: c.kind,
            template: c.template,
            status: c.status,
            budget: c.budget,
            as_of: c.as_of,
            owner: c.owner,
            approval_level: c.approval_level,
            updated_at: c.updated_at,
        })
        .collect();
    Ok(Json(CampaignsAnswer { campaigns }))
}

/// One campaign with its history and its work orders' progress by channel.
#[derive(Serialize)]
pub(crate) struct CampaignAnswer {
    #[serde(flatten)]
    campaign: retain_store::CampaignRecord,
    history: Vec<retain_store::AuditEvent>,
    work_orders: OrderProgress,
}

#[derive(Serialize)]
pub(crate) struct OrderProgress {
    total: usize,
    by_channel: Vec<ChannelProgress>,
}

#[derive(Serialize)]
pub(crate) struct ChannelProgress {
    channel: String,
    work_orders: usize,
    done: usize,
}

pub(crate) async fn campaign(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignAnswer>> {
    let id = id_of(&id, "campaign id")?;
    let campaign = state.0.campaigns.get(id).await?;
    let history = state
        .0
        .store
        .audit_log("campaign", Some(&id.to_string()))
        .await?;
    let orders = state.0.store.work_orders(id).await?;
    let mut by_channel = std::collections::BTreeMap::<&str, (usize, usize)>::new();
    for w in &orders {
        let e = by_channel.entry(&w.channel).or_default();
        e.0 += 1;
        e.1 += usize::from(w.status != "open");
    }
    let by_channel = by_channel
        .into_iter()
        .map(|(channel, (work_orders, done))| ChannelProgress {
            channel: channel.to_owned(),
            work_orders,
            done,
        })
        .collect();
    Ok(Json(CampaignAnswer {
        campaign,
        history,
        work_orders: OrderProgress {
            total: orders.len(),
            by_channel,
        },
    }))
}

#[derive(Deserialize)]
pub(crate) struct CreateCampaign {
    template: String,
    budget: Option<f64>,
    name: Option<String>,
    /// YYYY-MM-DD.
    as_of: Option<String>,
    seed: Option<u64>,
}

pub(crate) async fn create_campaign(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    body: Result<Json<CreateCampaign>, JsonRejection>,
) -> ApiResult<Json<retain_store::CampaignRecord>> {
    let Json(b) = body?;
    if b.budget.is_some_and(|x| !x.is_finite() || x <= 0.0) {
        return Err(ApiError::bad_request("budget must be a positive amount"));
    }
    let as_of = match b.as_of.as_deref().filter(|d| !d.is_empty()) {
        None => None,
        Some(d) => Some(
            chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| ApiError::bad_request(format!("as_of {d:?} is not YYYY-MM-DD")))
                .and_then(|d| {
                    retain_features::conditions::check_as_of(d).map_err(ApiError::bad_request)
                })?,
        ),
    };
    let req = retain_campaign::CreateRequest {
        template: b.template,
        budget: b.budget,
        as_of,
        name: b.name.filter(|n| !n.trim().is_empty()),
        seed: b.seed,
    };
    Ok(Json(state.0.campaigns.create(&req, &s.actor()).await?))
}

#[derive(Deserialize)]
struct Note {
    #[serde(default)]
    note: String,
}

/// An optional JSON body `{"note": "..."}`.
fn note(body: &Bytes) -> ApiResult<String> {
    Ok(optional_body::<Note>(body)?
        .map(|n| n.note)
        .unwrap_or_default())
}

pub(crate) async fn rehearse(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
) -> ApiResult<Json<retain_campaign::Rehearsal>> {
    let id = id_of(&id, "campaign id")?;
    let actor = s.actor();
    let r = off_thread(state, move |state| async move {
        Ok(state.0.campaigns.rehearse(id, &actor).await?)
    })
    .await?;
    Ok(Json(r))
}

pub(crate) async fn approve(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<retain_store::CampaignRecord>> {
    let id = id_of(&id, "campaign id")?;
    let c = state
        .0
        .campaigns
        .approve(id, &s.actor(), false, &note(&body)?)
        .await?;
    Ok(Json(c))
}

pub(crate) async fn reject(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<retain_store::CampaignRecord>> {
    let id = id_of(&id, "campaign id")?;
    let note = note(&body)?;
    if note.trim().is_empty() {
        return Err(ApiError::bad_request("a rejection needs a note saying why"));
    }
    let c = state
        .0
        .campaigns
        .approve(id, &s.actor(), true, &note)
        .await?;
    Ok(Json(c))
}

pub(crate) async fn launch(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
) -> ApiResult<Json<retain_campaign::LaunchReport>> {
    let id = id_of(&id, "campaign id")?;
    let actor = s.actor();
    let mut r = off_thread(state, move |state| async move {
        Ok(state.0.campaigns.launch(id, &actor).await?)
    })
    .await?;
    // The work-order files by name: the server's directories are no business of the browser.
    r.files = r
        .files
        .iter()
        .filter_map(|f| f.file_name().map(std::path::PathBuf::from))
        .collect();
    Ok(Json(r))
}

pub(crate) async fn simulate(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
) -> ApiResult<Json<retain_campaign::SimulationReport>> {
    let id = id_of(&id, "campaign id")?;
    Ok(Json(
        state.0.campaigns.simulate_callbacks(id, &s.actor()).await?,
    ))
}

pub(crate) async fn evaluate(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
) -> ApiResult<Json<retain_campaign::Evaluation>> {
    let id = id_of(&id, "campaign id")?;
    let (e, _) = state.0.campaigns.evaluate(id, &s.actor()).await?;
    Ok(Json(e))
}

#[derive(Deserialize)]
pub(crate) struct QueueQuery {
    status: Option<String>,
    limit: Option<u32>,
}

pub(crate) async fn work_orders(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    q: Result<Query<QueueQuery>, QueryRejection>,
) -> ApiResult<Json<QueueAnswer>> {
    let Query(q) = q?;
    let status = q.status.as_deref().filter(|v| !v.is_empty() && *v != "all");
    if let Some(v) = status
        && !["open", "done"].contains(&v)
    {
        return Err(ApiError::bad_request(format!(
            "status {v:?} is not open, done or all"
        )));
    }
    let limit = q.limit.unwrap_or(200);
    if limit == 0 || limit > 5000 {
        return Err(ApiError::bad_request("limit must be 1 to 5000"));
    }
    let orders = state
        .0
        .store
        .work_queue(s.scope().as_ref(), status, limit)
        .await?;
    let items: Vec<QueuedOrder> = orders
        .into_iter()
        .map(|order| QueuedOrder {
            msisdn: state.masked(SubscriberId(order.subscriber_id)),
            order,
        })
        .collect();
    state
        .audit(
            &s,
            "work_orders",
            status.unwrap_or("all"),
            "list",
            json!({ "rows": items.len() }),
        )
        .await?;
    Ok(Json(QueueAnswer {
        items,
        stated_reasons: retain_campaign::stated_reasons()
            .map(|(code, zh)| StatedReason { code, zh })
            .collect(),
    }))
}

/// The work-order queue with the reasons a callback may record.
#[derive(Serialize)]
pub(crate) struct QueueAnswer {
    items: Vec<QueuedOrder>,
    stated_reasons: Vec<StatedReason>,
}

/// A work order with the subscriber's number masked.
#[derive(Serialize)]
pub(crate) struct QueuedOrder {
    #[serde(flatten)]
    order: retain_store::WorkOrderRecord,
    msisdn: String,
}

#[derive(Serialize)]
pub(crate) struct StatedReason {
    code: &'static str,
    zh: &'static str,
}

pub(crate) async fn callback(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    body: Result<Json<retain_campaign::CallbackForm>, JsonRejection>,
) -> ApiResult<Json<retain_store::CallbackRecord>> {
    let id = id_of(&id, "work order id")?;
    let Json(form) = body?;
    let cb = state
        .0
        .campaigns
        .record_callback(id, &form, s.scope().as_ref(), &s.actor())
        .await?;
    Ok(Json(cb))
}

#[derive(Deserialize)]
pub(crate) struct AuditQuery {
    entity: Option<String>,
    actor: Option<String>,
    limit: Option<u32>,
}

pub(crate) async fn audit(
    State(state): State<AppState>,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> ApiResult<Json<AuditAnswer>> {
    let Query(q) = q?;
    let limit = q.limit.unwrap_or(200);
    if limit == 0 || limit > 5000 {
        return Err(ApiError::bad_request("limit must be 1 to 5000"));
    }
    state.flush_audit().await;
    let events = state
        .0
        .store
        .audit_recent(
            q.entity.as_deref().filter(|v| !v.is_empty()),
            q.actor.as_deref().filter(|v| !v.is_empty()),
            limit,
        )
        .await?;
    Ok(Json(AuditAnswer { events }))
}

/// The newest audit events.
#[derive(Serialize)]
pub(crate) struct AuditAnswer {
    events: Vec<retain_store::AuditEvent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WinbackQuery {
    window_months: Option<u32>,
    limit: Option<usize>,
}

/// The recent leavers (挽回): counts, and the most valuable first with the number masked; a
/// manager sees the leavers they kept.
#[derive(Serialize)]
pub(crate) struct WinbackAnswer {
    #[serde(flatten)]
    summary: retain_campaign::WinbackSummary,
    items: Vec<retain_campaign::Leaver>,
}

pub(crate) async fn winback(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    q: Result<Query<WinbackQuery>, QueryRejection>,
) -> ApiResult<Json<WinbackAnswer>> {
    let Query(q) = q?;
    let window = q.window_months.unwrap_or(3);
    if !(1..=retain_campaign::MAX_WINDOW_MONTHS).contains(&window) {
        return Err(ApiError::bad_request(format!(
            "window_months must be 1 to {}",
            retain_campaign::MAX_WINDOW_MONTHS
        )));
    }
    let limit = q.limit.unwrap_or(200);
    if limit == 0 || limit > 5000 {
        return Err(ApiError::bad_request("limit must be 1 to 5000"));
    }
    let scope = s.scope();
    let answer = off_thread(state.clone(), move |state| async move {
        let c = &state.0.campaigns;
        let as_of = c.default_as_of().await?;
        let mut leavers = retain_campaign::leavers(&c.ctx, &c.workspace, as_of, window).await?;
        leavers.retain(|l| {
            scope
                .as_ref()
                .is_none_or(|sc| sc.admits(&l.manager_id, &l.branch_id))
        });
        let summary = retain_campaign::summarize(as_of, window, &leavers);
        leavers.sort_by(|a, b| {
            b.value
                .total_cmp(&a.value)
                .then(a.subscriber_id.cmp(&b.subscriber_id))
        });
        leavers.truncate(limit);
        for l in &mut leavers {
            l.msisdn = retain_offers::mask(&l.msisdn);
        }
        Ok(WinbackAnswer {
            summary,
            items: leavers,
        })
    })
    .await?;
    state
        .audit(
            &s,
            "winback",
            &window.to_string(),
            "list",
            json!({ "rows": answer.items.len() }),
        )
        .await?;
    Ok(Json(answer))
}

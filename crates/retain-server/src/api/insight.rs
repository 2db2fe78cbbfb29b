//! The overview, the warning list and its export, one customer, real-time decisions.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use retain_warn::Level;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{engine, id_of};
use crate::AppState;
use crate::auth::Session;
use crate::error::{ApiError, ApiResult};
use crate::warnings::{LevelCounts, ListLevels};
use retain_data::SubscriberId;

/// The home page: the operator's headline numbers, the newest warning list by level and its
/// trend, and how each campaign did.
#[derive(Serialize)]
pub(crate) struct OverviewAnswer {
    operator: retain_features::Overview,
    warnings: Option<ListLevels>,
    warning_trend: Vec<ListLevels>,
    campaigns: Vec<CampaignResult>,
}

/// A campaign's evaluation as the overview shows it (empty before it is evaluated).
#[derive(Serialize)]
pub(crate) struct CampaignResult {
    id: i64,
    name: String,
    status: retain_store::CampaignStatus,
    treated_retention: Option<Value>,
    control_retention: Option<Value>,
    uplift: Option<Value>,
    roi: Option<Value>,
}

pub(crate) async fn overview(State(state): State<AppState>) -> ApiResult<Json<OverviewAnswer>> {
    let operator = state
        .0
        .overview
        .get_or_try_init(|| async {
            retain_features::overview(&state.0.campaigns.ctx)
                .await
                .map_err(engine)
        })
        .await?
        .clone();
    let workspace = &state.0.campaigns.workspace;
    let warnings = state
        .0
        .warnings
        .latest(workspace)
        .map_err(engine)?
        .map(|l| l.levels());
    let campaigns = state
        .0
        .store
        .campaigns()
        .await?
        .into_iter()
        .filter(|c| c.kind != "care")
        .map(|c| {
            let e = c.evaluation.as_ref();
            let field = |name: &str| e.and_then(|e| e.get(name)).cloned();
            CampaignResult {
                treated_retention: field("treated_retention"),
                control_retention: field("control_retention"),
                uplift: field("uplift"),
                roi: field("roi"),
                id: c.id,
                name: c.name,
                status: c.status,
            }
        })
        .collect();
    Ok(Json(OverviewAnswer {
        operator,
        warnings,
        warning_trend: crate::warnings::trend(workspace),
        campaigns,
    }))
}

#[derive(Deserialize)]
pub(crate) struct WarningQuery {
    level: Option<String>,
    branch: Option<String>,
    manager: Option<String>,
    rule: Option<String>,
    cohort: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
    /// `csv` exports the whole filtered list.
    format: Option<String>,
}

pub(crate) async fn warnings(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    q: Result<Query<WarningQuery>, QueryRejection>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let Query(q) = q?;
    let csv = match q.format.as_deref() {
        None | Some("" | "json") => false,
        Some("csv") => true,
        Some(f) => {
            return Err(ApiError::bad_request(format!(
                "format {f:?} is not json or csv"
            )));
        }
    };
    let level = match q.level.as_deref().filter(|l| !l.is_empty()) {
        None => None,
        Some(l) => Some(Level::from_code(l).ok_or_else(|| {
            ApiError::bad_request(format!("level {l:?} is not red, yellow or blue"))
        })?),
    };
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request("limit must be 1 to 1000"));
    }
    let Some(list) = state
        .0
        .warnings
        .latest(&state.0.campaigns.workspace)
        .map_err(engine)?
    else {
        return Err(ApiError::unavailable(
            "no warning list yet: run retain warn first",
        ));
    };
    let given = |v: &Option<String>| v.as_deref().filter(|v| !v.is_empty()).map(str::to_owned);
    let (branch, manager, rule, cohort) = (
        given(&q.branch),
        given(&q.manager),
        given(&q.rule),
        given(&q.cohort),
    );
    let scope = s.scope();
    let matching: Vec<&retain_warn::Listed> = list
        .items
        .iter()
        .filter(|w| {
            scope
                .as_ref()
                .is_none_or(|sc| sc.admits(&w.manager_id, &w.branch_id))
        })
        .filter(|w| level.is_none_or(|l| w.level == l))
        .filter(|w| branch.as_ref().is_none_or(|b| &w.branch_id == b))
        .filter(|w| manager.as_ref().is_none_or(|m| &w.manager_id == m))
        .filter(|w| cohort.as_ref().is_none_or(|c| &w.cohort == c))
        .filter(|w| rule.as_ref().is_none_or(|r| w.rules.contains(r)))
        .collect();
    if csv {
        return export_warnings(&state, &s, &list.as_of, &matching)
            .await
            .map(IntoResponse::into_response);
    }
    let items: Vec<ListedAnswer> = matching
        .iter()
        .skip(q.offset.unwrap_or(0))
        .take(limit)
        .map(|w| ListedAnswer {
            msisdn: state.masked(w.subscriber_id),
            listed: w,
        })
        .collect();
    state
        .audit(
            &s,
            "warnings",
            &list.as_of,
            "list",
            json!({ "rows": items.len(), "total": matching.len(), "offset": q.offset.unwrap_or(0) }),
        )
        .await?;
    Ok(Json(WarningsAnswer {
        as_of: &list.as_of,
        total: matching.len(),
        by_level: LevelCounts::of(matching.iter().copied()),
        items,
    })
    .into_response())
}

/// A page of the filtered warning list.
#[derive(Serialize)]
pub(crate) struct WarningsAnswer<'a> {
    as_of: &'a str,
    /// Subscribers the filter keeps, on every page.
    total: usize,
    by_level: LevelCounts,
    items: Vec<ListedAnswer<'a>>,
}

/// A listed subscriber with the number masked.
#[derive(Serialize)]
pub(crate) struct ListedAnswer<'a> {
    #[serde(flatten)]
    listed: &'a retain_warn::Listed,
    msisdn: String,
}

/// The filtered warning list as a CSV download (UTF-8 with a byte-order mark, so spreadsheet
/// programs read the Chinese right), numbers masked; every export is audited.
async fn export_warnings(
    state: &AppState,
    s: &Session,
    as_of: &str,
    rows: &[&retain_warn::Listed],
) -> ApiResult<impl axum::response::IntoResponse> {
    let mut out = csv::Writer::from_writer(retain_data::BOM.to_vec());
    let header = [
        "subscriber_id",
        "msisdn",
        "level",
        "score",
        "cohort",
        "branch_id",
        "manager_id",
        "rules",
        "reasons_zh",
        "reasons_en",
    ];
    out.write_record(header).map_err(ApiError::internal)?;
    // Ids, branches and reasons come from the operator's data: never a formula when opened.
    let cell = |t: &str| retain_data::spreadsheet_cell(t).into_owned();
    for w in rows {
        out.write_record([
            w.subscriber_id.to_string(),
            state.masked(w.subscriber_id),
            w.level.code().to_owned(),
            w.score.to_string(),
            cell(&w.cohort),
            cell(&w.branch_id),
            cell(&w.manager_id),
            cell(&w.rules.join(" ")),
            cell(&w.reasons_zh),
            cell(&w.reasons_en),
        ])
        .map_err(ApiError::internal)?;
    }
    let bytes = out.into_inner().map_err(ApiError::internal)?;
    state
        .audit(
            s,
            "warnings",
            as_of,
            "export",
            json!({ "rows": rows.len() }),
        )
        .await?;
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/csv; charset=utf-8".to_owned(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"warnings-{as_of}.csv\""),
            ),
        ],
        bytes,
    ))
}

/// The 360 view of a subscriber, their offers now, and their open work orders.
#[derive(Serialize)]
pub(crate) struct CustomerAnswer {
    #[serde(flatten)]
    view: retain_segment::Customer360,
    /// Null before a match run.
    recommendations: Option<retain_offers::Decision>,
    work_orders: Vec<retain_store::WorkOrderRecord>,
}

pub(crate) async fn customer(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
) -> ApiResult<Json<CustomerAnswer>> {
    let id = SubscriberId(id_of(&id, "customer id")?);
    let not_found = || ApiError::not_found(format!("no subscriber {id}"));
    if !state.sees(&s, id) {
        return Err(not_found());
    }
    let mut view =
        retain_segment::customer_360(&state.0.campaigns.ctx, &state.0.campaigns.workspace, id)
            .await
            .map_err(engine)?
            .ok_or_else(not_found)?;
    view.profile
        .insert("msisdn".into(), state.masked(id).into());
    // A circle reaches past the manager's own subscribers: the others stay anonymous.
    if let Some(members) = view
        .network
        .pointer_mut("/circle/members")
        .and_then(serde_json::Value::as_array_mut)
    {
        for m in members {
            let visible = m["subscriber_id"]
                .as_i64()
                .is_some_and(|other| state.sees(&s, SubscriberId(other)));
            if !visible {
                m["subscriber_id"] = serde_json::Value::Null;
            }
        }
    }
    let now = chrono::Local::now().naive_local();
    let recommendations = state
        .0
        .decisions
        .as_ref()
        .and_then(|index| index.decide(&id.to_string(), now, None));
    let work_orders = state.0.store.open_work_orders(id.get()).await?;
    state
        .audit(&s, "customer", &id.to_string(), "read", json!({}))
        .await?;
    Ok(Json(CustomerAnswer {
        view,
        recommendations,
        work_orders,
    }))
}

#[derive(Deserialize)]
pub(crate) struct DecisionQuery {
    channel: Option<String>,
}

pub(crate) async fn decision(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(key): Path<String>,
    q: Result<Query<DecisionQuery>, QueryRejection>,
) -> ApiResult<Json<DecisionAnswer>> {
    let Query(q) = q?;
    let Some(index) = &state.0.decisions else {
        return Err(ApiError::unavailable(
            "no match run yet: run retain match first",
        ));
    };
    let channel = match q.channel.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            retain_offers::Channel::from_code(c)
                .ok_or_else(|| ApiError::bad_request(format!("unknown channel {c:?}")))?,
        ),
    };
    let now = chrono::Local::now().naive_local();
    let not_found = || ApiError::not_found("no such subscriber");
    let decision = index.decide(&key, now, channel).ok_or_else(not_found)?;
    // A manager sees only their own subscribers; others look as if they did not exist.
    if !state.sees(&s, decision.subscriber_id) {
        return Err(not_found());
    }
    let work_orders = state
        .audit_reading(
            &s,
            "customer",
            &decision.subscriber_id.to_string(),
            "decision",
            json!({ "channel": q.channel }),
            Some(decision.subscriber_id.get()),
        )
        .await?;
    Ok(Json(DecisionAnswer {
        decision,
        work_orders,
    }))
}

/// The offers to make a subscriber now, and the work orders open for them.
#[derive(Serialize)]
pub(crate) struct DecisionAnswer {
    #[serde(flatten)]
    decision: retain_offers::Decision,
    work_orders: Vec<retain_store::WorkOrderRecord>,
}

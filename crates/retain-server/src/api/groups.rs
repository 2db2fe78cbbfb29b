//! Group customers and the account managers' workbench: the group list, group 360, the visit
//! queue, visits recorded from the dashboard, and the managers' league table. A manager sees
//! only the groups they keep and their own results.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::engine;
use crate::AppState;
use crate::auth::Session;
use crate::error::{ApiError, ApiResult};

/// Whether the session may see a group kept by `manager_id` in `branch_id`.
fn sees_group(s: &Session, manager_id: Option<&str>, branch_id: &str) -> bool {
    s.scope()
        .is_none_or(|scope| scope.admits(manager_id.unwrap_or(""), branch_id))
}

fn groups_error(e: retain_groups::Error) -> ApiError {
    match e {
        retain_groups::Error::BadRequest(m) => ApiError::bad_request(m),
        other => ApiError::internal(other),
    }
}

#[derive(Deserialize)]
pub(crate) struct GroupsQuery {
    level: Option<String>,
    limit: Option<usize>,
}

/// The group list.
#[derive(Serialize)]
pub(crate) struct GroupsAnswer {
    as_of: chrono::NaiveDate,
    /// The report's counts (the whole operator's, also for a manager).
    report: Option<retain_groups::GroupsReport>,
    /// The groups the session may see, by level and status (a manager's own).
    counts: ScopedCounts,
    /// Matching groups the session may see.
    total: usize,
    groups: Vec<retain_groups::GroupWarning>,
}

#[derive(Serialize, Default)]
pub(crate) struct ScopedCounts {
    active: usize,
    lost: usize,
    red: usize,
    yellow: usize,
    blue: usize,
}

pub(crate) async fn groups(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    q: Result<Query<GroupsQuery>, QueryRejection>,
) -> ApiResult<Json<GroupsAnswer>> {
    let Query(q) = q?;
    let level = q.level.as_deref().filter(|l| !l.is_empty());
    if let Some(l) = level
        && !["red", "yellow", "blue"].contains(&l)
    {
        return Err(ApiError::bad_request(format!(
            "level {l:?} is not red, yellow or blue"
        )));
    }
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request("limit must be 1 to 1000"));
    }
    let workspace = &state.0.campaigns.workspace;
    let Some((as_of, list)) = retain_groups::latest_list(workspace).map_err(engine)? else {
        return Err(ApiError::unavailable(
            "no group warning yet: run retain groups first",
        ));
    };
    let mut report = retain_groups::latest_report(workspace).map_err(engine)?;
    if let Some(r) = report.as_mut() {
        r.list_file = std::path::PathBuf::new();
        r.visits_file = std::path::PathBuf::new();
    }
    let visible: Vec<retain_groups::GroupWarning> = list
        .into_iter()
        .filter(|g| sees_group(&s, g.manager_id.as_deref(), &g.branch_id))
        .collect();
    let mut counts = ScopedCounts::default();
    for g in &visible {
        if g.status == "lost" {
            counts.lost += 1;
        } else {
            counts.active += 1;
        }
        match g.level.as_deref() {
            Some("red") => counts.red += 1,
            Some("yellow") => counts.yellow += 1,
            Some("blue") => counts.blue += 1,
            _ => {}
        }
    }
    let matching: Vec<retain_groups::GroupWarning> = visible
        .into_iter()
        .filter(|g| level.is_none_or(|l| g.level.as_deref() == Some(l)))
        .collect();
    let total = matching.len();
    Ok(Json(GroupsAnswer {
        as_of,
        report,
        counts,
        total,
        groups: matching.into_iter().take(limit).collect(),
    }))
}

/// Group 360.
#[derive(Serialize)]
pub(crate) struct GroupAnswer {
    /// The group's warning in the newest list, if it was warned.
    warning: Option<retain_groups::GroupWarning>,
    #[serde(flatten)]
    view: retain_groups::GroupView,
    /// Visits recorded through retain, newest first.
    recorded_visits: Vec<retain_store::VisitRecord>,
    /// The group's planned visits in the newest plan.
    planned_visits: Vec<retain_groups::PlannedVisit>,
}

/// The longest group id a request may name (the data model's id columns hold 64 characters).
const MAX_ID_CHARS: usize = 64;

fn group_id(id: &str) -> ApiResult<&str> {
    if id.is_empty() || id.chars().count() > MAX_ID_CHARS {
        return Err(ApiError::bad_request(format!(
            "a group id has 1 to {MAX_ID_CHARS} characters"
        )));
    }
    Ok(id)
}

/// The group as the session may see it: `None` for a group unknown or kept by someone else,
/// so that a manager cannot tell another's groups from ones that do not exist.
async fn visible_group(
    state: &AppState,
    s: &Session,
    id: &str,
) -> ApiResult<Option<retain_groups::GroupView>> {
    let view = retain_groups::group_view(&state.0.campaigns.ctx, &state.0.campaigns.workspace, id)
        .await
        .map_err(groups_error)?;
    Ok(view.filter(|v| {
        let field = |k: &str| v.group.get(k).and_then(|x| x.as_str()).map(str::to_owned);
        sees_group(
            s,
            field("manager_id").as_deref(),
            &field("branch_id").unwrap_or_default(),
        )
    }))
}

pub(crate) async fn group(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
) -> ApiResult<Json<GroupAnswer>> {
    let id = group_id(&id)?;
    let Some(view) = visible_group(&state, &s, id).await? else {
        return Err(ApiError::not_found(format!("no group {id:?}")));
    };
    let workspace = &state.0.campaigns.workspace;
    let warning = retain_groups::latest_list(workspace)
        .map_err(engine)?
        .and_then(|(_, list)| list.into_iter().find(|g| g.group_id == id));
    let planned_visits = retain_groups::latest_visits(workspace)
        .map_err(engine)?
        .map(|(_, plan)| plan.into_iter().filter(|v| v.group_id == id).collect())
        .unwrap_or_default();
    let recorded_visits = state.0.store.group_visits(id, 100).await?;
    state
        .audit(
            &s,
            "group",
            id,
            "view",
            json!({ "members": view.members.len() }),
        )
        .await?;
    Ok(Json(GroupAnswer {
        warning,
        view,
        recorded_visits,
        planned_visits,
    }))
}

/// A visit as the form sends it.
#[derive(Deserialize)]
pub(crate) struct VisitForm {
    visit_date: String,
    channel: String,
    outcome: String,
    #[serde(default)]
    notes: String,
    /// Who visited; a manager records only their own visits, and the group's manager is taken
    /// when an analyst leaves it out.
    manager_id: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct VisitAnswer {
    /// False when the same group, manager and day had been recorded already: nothing changed.
    created: bool,
    visit: retain_store::VisitRecord,
}

pub(crate) async fn record_visit(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    body: Result<Json<VisitForm>, JsonRejection>,
) -> ApiResult<Json<VisitAnswer>> {
    let id = group_id(&id)?;
    let Json(form) = body?;
    let Some(view) = visible_group(&state, &s, id).await? else {
        return Err(ApiError::not_found(format!("no group {id:?}")));
    };
    let keeper = view
        .group
        .get("manager_id")
        .and_then(|m| m.as_str())
        .map(str::to_owned);
    let manager_id = if s.role == "manager" {
        let own = s.manager_id.clone().filter(|m| !m.is_empty());
        match (own, form.manager_id.as_deref().filter(|m| !m.is_empty())) {
            (Some(own), None) => own,
            (Some(own), Some(given)) if given == own => own,
            _ => {
                return Err(ApiError::forbidden(
                    "a manager records only their own visits",
                ));
            }
        }
    } else {
        match form.manager_id.filter(|m| !m.is_empty()).or(keeper) {
            Some(m) if m.chars().count() <= MAX_ID_CHARS => m,
            Some(_) => return Err(ApiError::bad_request("manager_id is too long")),
            None => {
                return Err(ApiError::bad_request(
                    "the group has no manager: say whose visit it was (manager_id)",
                ));
            }
        }
    };
    let visit = retain_store::NewVisit {
        group_id: id.to_owned(),
        manager_id,
        visit_date: form.visit_date,
        channel: form.channel,
        outcome: form.outcome,
        notes: form.notes,
    };
    // Today where the operator works: the form's date is the manager's calendar day.
    let zone: chrono_tz::Tz = state
        .0
        .campaigns
        .workspace
        .config()
        .workspace
        .time_zone
        .parse()
        .unwrap_or(chrono_tz::Tz::Asia__Shanghai);
    let today = chrono::Utc::now().with_timezone(&zone).date_naive();
    retain_groups::check_visit(&visit, today).map_err(groups_error)?;
    let (visit, created) = state.0.store.record_visit(&visit, &s.name).await?;
    if created {
        state
            .audit(
                &s,
                "group",
                id,
                "record_visit",
                json!({ "visit_id": visit.id, "visit_date": visit.visit.visit_date,
                        "outcome": visit.visit.outcome }),
            )
            .await?;
    }
    Ok(Json(VisitAnswer { created, visit }))
}

#[derive(Deserialize)]
pub(crate) struct VisitsQuery {
    limit: Option<usize>,
}

/// The visit queue: the newest plan's visits the session may see, soonest first, each with
/// the visit recorded since the plan, if any.
#[derive(Serialize)]
pub(crate) struct VisitsAnswer {
    as_of: Option<chrono::NaiveDate>,
    total: usize,
    visits: Vec<QueuedVisit>,
}

#[derive(Serialize)]
pub(crate) struct QueuedVisit {
    #[serde(flatten)]
    planned: retain_groups::PlannedVisit,
    /// The day a visit to the group was recorded on or after the plan's date.
    done_on: Option<String>,
}

pub(crate) async fn visits(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    q: Result<Query<VisitsQuery>, QueryRejection>,
) -> ApiResult<Json<VisitsAnswer>> {
    let Query(q) = q?;
    let limit = q.limit.unwrap_or(200);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request("limit must be 1 to 1000"));
    }
    let Some((as_of, plan)) =
        retain_groups::latest_visits(&state.0.campaigns.workspace).map_err(engine)?
    else {
        return Ok(Json(VisitsAnswer {
            as_of: None,
            total: 0,
            visits: Vec::new(),
        }));
    };
    let recorded = state
        .0
        .store
        .visits_between(&as_of.to_string(), "9999-12-31")
        .await?;
    let mine: Vec<retain_groups::PlannedVisit> = plan
        .into_iter()
        .filter(|v| sees_group(&s, v.manager_id.as_deref(), &v.branch_id))
        .collect();
    let total = mine.len();
    // Each visit recorded since the plan answers one planned visit of its group, the earliest
    // still open: a group due twice is done twice only when visited twice.
    let mut made: std::collections::HashMap<&str, std::collections::VecDeque<&str>> =
        std::collections::HashMap::new();
    for r in &recorded {
        made.entry(r.visit.group_id.as_str())
            .or_default()
            .push_back(r.visit.visit_date.as_str());
    }
    let mut queued: Vec<QueuedVisit> = mine
        .into_iter()
        .map(|planned| QueuedVisit {
            planned,
            done_on: None,
        })
        .collect();
    let mut order: Vec<usize> = (0..queued.len()).collect();
    order.sort_by(|a, b| {
        queued[*a]
            .planned
            .due_date
            .cmp(&queued[*b].planned.due_date)
    });
    for i in order {
        if let Some(days) = made.get_mut(queued[i].planned.group_id.as_str()) {
            queued[i].done_on = days.pop_front().map(str::to_owned);
        }
    }
    let visits = queued.into_iter().take(limit).collect();
    Ok(Json(VisitsAnswer {
        as_of: Some(as_of),
        total,
        visits,
    }))
}

/// The managers' league table: a manager sees their own line and branch only.
pub(crate) async fn managers(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
) -> ApiResult<Json<retain_groups::PerformanceReport>> {
    let workspace = &state.0.campaigns.workspace;
    let config = retain_groups::GroupConfig::for_workspace(workspace).map_err(groups_error)?;
    let ctx = &state.0.campaigns.ctx;
    let as_of = retain_features::default_as_of(ctx, retain_features::Cadence::Monthly)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let mut report = retain_groups::performance(ctx, workspace, &state.0.store, &config, as_of)
        .await
        .map_err(groups_error)?;
    if let Some(scope) = s.scope() {
        report
            .managers
            .retain(|m| scope.admits(&m.manager_id, &m.branch_id));
        let branches: Vec<String> = report
            .managers
            .iter()
            .map(|m| m.branch_id.clone())
            .collect();
        report.branches.retain(|b| branches.contains(&b.branch_id));
        report.unassigned_work_orders = 0;
        report.unassigned_callbacks = 0;
    }
    Ok(Json(report))
}

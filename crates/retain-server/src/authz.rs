//! Who may call what: one table of method × route × roles, enforced by one middleware in
//! front of every authenticated route. A route missing from the table is refused to all.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::auth::Session;
use crate::error::ApiError;

/// One line of the table.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub method: &'static str,
    pub path: &'static str,
    pub roles: &'static [&'static str],
}

const ALL: &[&str] = &["admin", "analyst", "approver", "manager", "store"];
/// Those who plan: the retention department's analysts (and admins).
const PLAN: &[&str] = &["admin", "analyst"];
/// Those who read the department's aggregates and plans.
const DEPARTMENT: &[&str] = &["admin", "analyst", "approver"];
/// Those who work with named subscribers; managers only with their own.
const SUBSCRIBERS: &[&str] = &["admin", "analyst", "manager"];

const fn rule(method: &'static str, path: &'static str, roles: &'static [&'static str]) -> Rule {
    Rule {
        method,
        path,
        roles,
    }
}

/// The role × endpoint table.
pub const RULES: &[Rule] = &[
    rule("GET", "/api/v1/me", ALL),
    rule("POST", "/api/v1/logout", ALL),
    rule("GET", "/api/v1/overview", DEPARTMENT),
    rule("GET", "/api/v1/warnings", SUBSCRIBERS),
    rule("GET", "/api/v1/customers/{id}", SUBSCRIBERS),
    // Store staff look subscribers up at the counter by number: decisions only.
    rule(
        "GET",
        "/api/v1/decisions/{key}",
        &["admin", "analyst", "manager", "store"],
    ),
    rule("GET", "/api/v1/segments", DEPARTMENT),
    rule("GET", "/api/v1/network", DEPARTMENT),
    rule("GET", "/api/v1/tags", DEPARTMENT),
    rule("GET", "/api/v1/targets", DEPARTMENT),
    rule("GET", "/api/v1/model", DEPARTMENT),
    rule("GET", "/api/v1/model/versions", DEPARTMENT),
    rule("GET", "/api/v1/rules", DEPARTMENT),
    rule("PUT", "/api/v1/rules", PLAN),
    rule("POST", "/api/v1/rules/backtest", PLAN),
    rule("GET", "/api/v1/rules/proposal", DEPARTMENT),
    rule("POST", "/api/v1/rules/proposal", PLAN),
    rule("POST", "/api/v1/rules/proposal/accept", PLAN),
    rule("POST", "/api/v1/rules/proposal/reject", PLAN),
    rule("GET", "/api/v1/offers", DEPARTMENT),
    rule("PUT", "/api/v1/offers", PLAN),
    rule("GET", "/api/v1/templates", DEPARTMENT),
    rule("GET", "/api/v1/campaigns", DEPARTMENT),
    rule("POST", "/api/v1/campaigns", PLAN),
    rule("GET", "/api/v1/campaigns/{id}", DEPARTMENT),
    rule("POST", "/api/v1/campaigns/{id}/rehearse", PLAN),
    rule(
        "POST",
        "/api/v1/campaigns/{id}/approve",
        &["admin", "approver"],
    ),
    rule(
        "POST",
        "/api/v1/campaigns/{id}/reject",
        &["admin", "approver"],
    ),
    rule("POST", "/api/v1/campaigns/{id}/launch", PLAN),
    rule("POST", "/api/v1/campaigns/{id}/simulate", PLAN),
    rule("POST", "/api/v1/campaigns/{id}/evaluate", PLAN),
    rule("GET", "/api/v1/winback", SUBSCRIBERS),
    rule("GET", "/api/v1/work-orders", SUBSCRIBERS),
    rule("POST", "/api/v1/work-orders/{id}/callback", SUBSCRIBERS),
    // Managers see the groups they keep, their visit queue and their own results.
    rule("GET", "/api/v1/groups", SUBSCRIBERS),
    rule("GET", "/api/v1/groups/{id}", SUBSCRIBERS),
    rule("POST", "/api/v1/groups/{id}/visits", SUBSCRIBERS),
    rule("GET", "/api/v1/visits", SUBSCRIBERS),
    rule(
        "GET",
        "/api/v1/managers",
        &["admin", "analyst", "approver", "manager"],
    ),
    rule("GET", "/api/v1/audit", &["admin"]),
    rule("GET", "/api/v1/schedule", DEPARTMENT),
];

/// The session of a bearer token or of the dashboard's cookie.
pub(crate) fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
) -> Result<Session, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let cookie = crate::auth::cookie(headers);
    let token = bearer.or(cookie.as_deref()).ok_or_else(|| {
        ApiError::unauthorized("log in first (Authorization: Bearer TOKEN, or the dashboard)")
    })?;
    let session = state
        .0
        .sessions
        .lock()
        .ok()
        .and_then(|s| s.get(token).cloned())
        .filter(|s| s.expires > Instant::now())
        .ok_or_else(|| ApiError::unauthorized("the session is unknown or expired; log in again"))?;
    // A cookie rides along with any request the browser makes, so a change also needs the
    // token only the dashboard's own page can read.
    if bearer.is_none() && !matches!(*method, Method::GET | Method::HEAD) {
        let sent = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
        if sent != Some(session.csrf.as_str()) {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "csrf",
                "missing or wrong X-CSRF-Token; reload the page",
            ));
        }
    }
    Ok(session)
}

/// Refuses a session whose user was disabled, removed or given another role since login, and
/// ends all of that user's sessions. The store is asked at most once per user every
/// `user_recheck`, so the check costs nothing on a busy counter.
async fn still_enabled(state: &AppState, session: &crate::auth::Session) -> Result<(), ApiError> {
    let now = Instant::now();
    let cached = state
        .0
        .user_checks
        .lock()
        .ok()
        .and_then(|m| m.get(&session.name).copied())
        .filter(|(at, _)| now.duration_since(*at) < state.0.options.user_recheck);
    let enabled = if let Some((_, ok)) = cached {
        ok
    } else {
        let user = state
            .0
            .store
            .user(&session.name)
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        let ok = user.is_some_and(|u| !u.disabled && u.role == session.role);
        if let Ok(mut m) = state.0.user_checks.lock() {
            m.insert(session.name.clone(), (now, ok));
        }
        ok
    };
    if enabled {
        return Ok(());
    }
    if let Ok(mut sessions) = state.0.sessions.lock() {
        sessions.retain(|_, s| s.name != session.name);
    }
    Err(ApiError::unauthorized(format!(
        "user {} was disabled, removed or given another role: ask an admin",
        session.name
    )))
}

/// Authenticates, checks the table and hands the session to the handler.
pub(crate) async fn authorize(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let session = match authenticate(&state, req.headers(), req.method()) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = still_enabled(&state, &session).await {
        return e.into_response();
    }
    let allowed = RULES
        .iter()
        .find(|r| r.method == req.method().as_str() && r.path == path)
        .is_some_and(|r| r.roles.contains(&session.role.as_str()));
    if !allowed {
        return ApiError::forbidden(format!(
            "role {} may not {} {path}",
            session.role,
            req.method()
        ))
        .into_response();
    }
    req.extensions_mut().insert(session);
    next.run(req).await
}

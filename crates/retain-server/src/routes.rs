//! Routes, the role × endpoint rules and the OpenAPI document.

use std::fmt::Write as _;
use std::time::Instant;

use axum::Json;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::auth::{Session, TOKEN_LIFETIME, token, verify_password};

/// The API.
pub fn router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/openapi.json", get(|| async { Json(openapi()) }))
        .route("/api/v1/login", post(login))
        .route("/api/v1/decisions/{key}", get(decision))
        .layer(axum::middleware::from_fn_with_state(state.clone(), count))
        .with_state(state)
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// Counts every response by route and status, for `/metrics`.
async fn count(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    if let Ok(mut m) = state.0.requests.lock() {
        *m.entry((route, response.status().as_u16())).or_insert(0) += 1;
    }
    response
}

async fn healthz(State(state): State<AppState>) -> Response {
    match state.0.store.runs(1).await {
        Ok(_) => Json(json!({ "status": "ok" })).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = String::from(
        "# HELP retain_http_requests_total Requests served, by route and status.\n# TYPE retain_http_requests_total counter\n",
    );
    if let Ok(m) = state.0.requests.lock() {
        for ((route, status), n) in m.iter() {
            let _ = writeln!(
                text,
                "retain_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
    }
    let sessions = state.0.sessions.lock().map_or(0, |s| s.len());
    let _ = writeln!(
        text,
        "# HELP retain_sessions Logged-in sessions.\n# TYPE retain_sessions gauge\nretain_sessions {sessions}"
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

#[derive(Deserialize)]
struct Login {
    name: String,
    password: String,
}

async fn login(State(state): State<AppState>, Json(body): Json<Login>) -> Response {
    let user = match state.0.store.user(&body.name).await {
        Ok(u) => u,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let ok = user
        .as_ref()
        .is_some_and(|u| !u.disabled && verify_password(&body.password, &u.password_hash));
    let audit = retain_store::Audit {
        actor: &body.name,
        action: if ok { "login" } else { "login_failed" },
        detail: json!({}),
    };
    if let Err(e) = state.0.store.audit("user", &body.name, &audit).await {
        return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string());
    }
    let Some(user) = user.filter(|_| ok) else {
        // The same answer for an unknown name and a wrong password.
        return error(StatusCode::UNAUTHORIZED, "wrong name or password");
    };
    let t = token();
    let session = Session {
        name: user.name.clone(),
        role: user.role.clone(),
        manager_id: user.manager_id.clone(),
        expires: Instant::now() + TOKEN_LIFETIME,
    };
    if let Ok(mut s) = state.0.sessions.lock() {
        s.retain(|_, v| v.expires > Instant::now());
        s.insert(t.clone(), session);
    }
    Json(json!({
        "token": t, "name": user.name, "role": user.role,
        "manager_id": user.manager_id, "expires_in": TOKEN_LIFETIME.as_secs(),
    }))
    .into_response()
}

/// The session of a bearer token, or the status and message refusing the request.
fn session(
    state: &AppState,
    headers: &HeaderMap,
    roles: &[&str],
) -> Result<Session, (StatusCode, String)> {
    let unauthorized = |m: &str| (StatusCode::UNAUTHORIZED, m.to_owned());
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("log in first: Authorization: Bearer TOKEN"))?;
    let session = state
        .0
        .sessions
        .lock()
        .ok()
        .and_then(|s| s.get(token).cloned())
        .filter(|s| s.expires > Instant::now())
        .ok_or_else(|| unauthorized("the token is unknown or expired"))?;
    if !roles.contains(&session.role.as_str()) {
        return Err((
            StatusCode::FORBIDDEN,
            format!("role {} may not use this endpoint", session.role),
        ));
    }
    Ok(session)
}

#[derive(Deserialize)]
struct DecisionQuery {
    channel: Option<String>,
}

/// Roles that may ask for a decision: everyone who talks to subscribers or plans for them.
const DECISION_ROLES: [&str; 4] = ["admin", "analyst", "manager", "store"];

async fn decision(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(q): Query<DecisionQuery>,
) -> Response {
    let session = match session(&state, &headers, &DECISION_ROLES) {
        Ok(s) => s,
        Err((status, message)) => return error(status, &message),
    };
    tracing::debug!(user = %session.name, key = %key, "decision");
    let Some(index) = &state.0.decisions else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no match run yet: run retain match first",
        );
    };
    let channel = match q.channel.as_deref() {
        None => None,
        Some(c) => match retain_offers::Channel::from_code(c) {
            Some(c) => Some(c),
            None => return error(StatusCode::BAD_REQUEST, &format!("unknown channel {c:?}")),
        },
    };
    let now = chrono::Local::now().naive_local();
    let Some(decision) = index.decide(&key, now, channel) else {
        return error(StatusCode::NOT_FOUND, "no such subscriber");
    };
    // A manager sees only their own subscribers; others look as if they did not exist.
    if session.role == "manager"
        && state.0.managers.get(&decision.subscriber_id) != session.manager_id.as_ref()
    {
        return error(StatusCode::NOT_FOUND, "no such subscriber");
    }
    Json(decision).into_response()
}

/// The OpenAPI document of the routes above.
#[must_use]
pub fn openapi() -> serde_json::Value {
    let error = json!({ "$ref": "#/components/schemas/Error" });
    json!({
        "openapi": "3.1.0",
        "info": { "title": "retain", "version": env!("CARGO_PKG_VERSION") },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": { "type": "object", "properties": { "error": { "type": "string" } } }
            }
        },
        "paths": {
            "/healthz": { "get": { "summary": "Liveness and store health", "responses": {
                "200": { "description": "healthy" }, "503": { "description": "store unavailable" } } } },
            "/metrics": { "get": { "summary": "Prometheus metrics", "responses": {
                "200": { "description": "text exposition format" } } } },
            "/api/v1/login": { "post": {
                "summary": "Log in; returns a bearer token valid for 8 hours",
                "requestBody": { "content": { "application/json": { "schema": {
                    "type": "object", "required": ["name", "password"],
                    "properties": { "name": { "type": "string" }, "password": { "type": "string" } } } } } },
                "responses": { "200": { "description": "token, role, manager_id, expires_in" },
                               "401": { "description": "wrong name or password", "content": { "application/json": { "schema": error } } } } } },
            "/api/v1/decisions/{key}": { "get": {
                "summary": "Ranked retention offers for one subscriber (id or msisdn), with the reason, talking points and contact-policy blocks; managers see only their own subscribers",
                "security": [{ "bearer": [] }],
                "parameters": [
                    { "name": "key", "in": "path", "required": true, "schema": { "type": "string" } },
                    { "name": "channel", "in": "query", "schema": { "type": "string",
                      "enum": ["sms", "app", "outbound_call", "store", "manager_visit"] } } ],
                "responses": { "200": { "description": "the decision" },
                               "401": { "description": "no or expired token" },
                               "403": { "description": "role not allowed (approver)" },
                               "404": { "description": "no such subscriber (or not the manager's)" } } } }
        }
    })
}

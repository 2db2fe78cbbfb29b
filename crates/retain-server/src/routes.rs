//! The router: public routes (health, metrics, OpenAPI, login, the dashboard's files) and the
//! authenticated API behind [`crate::authz::authorize`].

use std::fmt::Write as _;
use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::api;
use crate::auth::{COOKIE, Session, TOKEN_LIFETIME, token, verify_password};
use crate::error::{ApiError, ApiResult};

/// The API and the dashboard.
pub fn router(state: AppState) -> axum::Router {
    let protected = axum::Router::new()
        .route("/api/v1/me", get(me))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/overview", get(api::overview))
        .route("/api/v1/warnings", get(api::warnings))
        .route("/api/v1/customers/{id}", get(api::customer))
        .route("/api/v1/decisions/{key}", get(api::decision))
        .route("/api/v1/segments", get(api::segments))
        .route("/api/v1/tags", get(api::tags))
        .route("/api/v1/targets", get(api::targets))
        .route("/api/v1/model", get(api::model))
        .route("/api/v1/rules", get(api::rules).put(api::put_rules))
        .route("/api/v1/rules/backtest", post(api::backtest_rules))
        .route("/api/v1/offers", get(api::offers).put(api::put_offers))
        .route("/api/v1/templates", get(api::templates))
        .route(
            "/api/v1/campaigns",
            get(api::campaigns).post(api::create_campaign),
        )
        .route("/api/v1/campaigns/{id}", get(api::campaign))
        .route("/api/v1/campaigns/{id}/rehearse", post(api::rehearse))
        .route("/api/v1/campaigns/{id}/approve", post(api::approve))
        .route("/api/v1/campaigns/{id}/reject", post(api::reject))
        .route("/api/v1/campaigns/{id}/launch", post(api::launch))
        .route("/api/v1/campaigns/{id}/simulate", post(api::simulate))
        .route("/api/v1/campaigns/{id}/evaluate", post(api::evaluate))
        .route("/api/v1/work-orders", get(api::work_orders))
        .route("/api/v1/work-orders/{id}/callback", post(api::callback))
        .route("/api/v1/audit", get(api::audit))
        .route_layer(axum::middleware::from_fn(crate::mask::mask_answers))
        .route_layer(from_fn_with_state(state.clone(), crate::authz::authorize));
    axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(
            "/api/openapi.json",
            get(|| async { Json(crate::openapi::openapi()) }),
        )
        .route("/api/v1/login", post(login))
        .route("/api/v1/session", post(session_login))
        .merge(protected)
        .merge(crate::ui::routes())
        .fallback(|| async { ApiError::not_found("no such page or endpoint") })
        .layer(axum::middleware::from_fn(crate::guard::refuse_nul))
        .layer(from_fn_with_state(state.clone(), count))
        .with_state(state)
}

/// Counts every response by route and status, for `/metrics`.
async fn count(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().clone();
    let started = Instant::now();
    let response = next.run(req).await;
    tracing::info!(
        %method,
        %route,
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis(),
        "request"
    );
    if let Ok(mut m) = state.0.requests.lock() {
        *m.entry((route, response.status().as_u16())).or_insert(0) += 1;
    }
    response
}

async fn healthz(State(state): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    state
        .0
        .store
        .runs(1)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(Json(json!({ "status": "ok" })))
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
    let set_aside = crate::audit::SET_ASIDE.load(std::sync::atomic::Ordering::Relaxed);
    let _ = writeln!(
        text,
        "# HELP retain_audit_set_aside_total Audit events the store refused, set aside in the journal's directory.\n# TYPE retain_audit_set_aside_total counter\nretain_audit_set_aside_total {set_aside}"
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

#[derive(Deserialize)]
pub(crate) struct Login {
    name: String,
    password: String,
}

/// Checks a login (rate-limited per name, every attempt audited) and opens a session.
async fn open_session(state: &AppState, body: &Login) -> ApiResult<(String, Session)> {
    let now = Instant::now();
    let wait = state
        .0
        .lockout
        .lock()
        .ok()
        .and_then(|l| l.wait(&body.name, now));
    if let Some(wait) = wait {
        state
            .0
            .store
            .audit(
                "user",
                &body.name,
                &retain_store::Audit {
                    actor: &body.name,
                    action: "login_locked",
                    detail: json!({}),
                },
            )
            .await?;
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "locked",
            format!(
                "too many failed logins for {}; try again in {} minutes",
                body.name,
                wait.as_secs().div_ceil(60)
            ),
        ));
    }
    let user = state.0.store.user(&body.name).await?;
    let ok = user
        .as_ref()
        .is_some_and(|u| !u.disabled && verify_password(&body.password, &u.password_hash));
    let audit = retain_store::Audit {
        actor: &body.name,
        action: if ok { "login" } else { "login_failed" },
        detail: json!({}),
    };
    state.0.store.audit("user", &body.name, &audit).await?;
    if let Ok(mut l) = state.0.lockout.lock() {
        if ok {
            l.succeeded(&body.name);
        } else {
            l.failed(&body.name, now);
        }
    }
    let Some(user) = user.filter(|_| ok) else {
        // The same answer for an unknown name and a wrong password.
        return Err(ApiError::unauthorized("wrong name or password"));
    };
    let t = token();
    let session = Session {
        name: user.name.clone(),
        role: user.role.clone(),
        manager_id: user.manager_id.clone(),
        branch_id: user.branch_id.clone(),
        approval_level: user.approval_level,
        csrf: token(),
        expires: now + TOKEN_LIFETIME,
    };
    if let Ok(mut s) = state.0.sessions.lock() {
        s.retain(|_, v| v.expires > now);
        s.insert(t.clone(), session.clone());
    }
    Ok((t, session))
}

fn describe(s: &Session) -> serde_json::Value {
    json!({
        "name": s.name, "role": s.role, "manager_id": s.manager_id, "branch_id": s.branch_id,
        "approval_level": s.approval_level, "csrf": s.csrf,
        "expires_in": s.expires.saturating_duration_since(Instant::now()).as_secs(),
    })
}

/// API login: a bearer token.
async fn login(
    State(state): State<AppState>,
    body: Result<Json<Login>, JsonRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Json(body) = body?;
    let (t, s) = open_session(&state, &body).await?;
    let mut out = describe(&s);
    out["token"] = t.into();
    Ok(Json(out))
}

/// Dashboard login: an HttpOnly, SameSite=Strict cookie; the page gets only the CSRF token.
async fn session_login(
    State(state): State<AppState>,
    body: Result<Json<Login>, JsonRejection>,
) -> ApiResult<Response> {
    let Json(body) = body?;
    let (t, s) = open_session(&state, &body).await?;
    let cookie = format!(
        "{COOKIE}={t}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        TOKEN_LIFETIME.as_secs()
    );
    let mut res = Json(describe(&s)).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
    );
    Ok(res)
}

async fn me(Extension(s): Extension<Session>) -> Json<serde_json::Value> {
    Json(describe(&s))
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    if let Some(t) = bearer.or_else(|| crate::auth::cookie(&headers))
        && let Ok(mut s) = state.0.sessions.lock()
    {
        s.remove(&t);
    }
    let mut res = Json(json!({ "status": "logged out" })).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("retain_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    res
}

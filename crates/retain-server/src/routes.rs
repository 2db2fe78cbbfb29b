//! The router: public routes (health, metrics, OpenAPI, login, the dashboard's files) and the
//! authenticated API behind [`crate::authz::authorize`].

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::api;
use crate::auth::{
    COOKIE, MAX_NAME_BYTES, MAX_PASSWORD_BYTES, Session, TOKEN_LIFETIME, token, verify_password,
};
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
        .route("/api/v1/network", get(api::network))
        .route("/api/v1/tags", get(api::tags))
        .route("/api/v1/targets", get(api::targets))
        .route("/api/v1/model", get(api::model))
        .route("/api/v1/model/versions", get(api::model_versions))
        .route("/api/v1/rules", get(api::rules).put(api::put_rules))
        .route("/api/v1/rules/backtest", post(api::backtest_rules))
        .route(
            "/api/v1/rules/proposal",
            get(api::rules_proposal).post(api::propose_rules),
        )
        .route(
            "/api/v1/rules/proposal/accept",
            post(api::accept_rules_proposal),
        )
        .route(
            "/api/v1/rules/proposal/reject",
            post(api::reject_rules_proposal),
        )
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
        .route("/api/v1/groups", get(api::groups))
        .route("/api/v1/groups/{id}", get(api::group))
        .route("/api/v1/groups/{id}/visits", post(api::record_visit))
        .route("/api/v1/visits", get(api::visits))
        .route("/api/v1/managers", get(api::managers))
        .route("/api/v1/winback", get(api::winback))
        .route("/api/v1/audit", get(api::audit))
        .route("/api/v1/schedule", get(api::schedule))
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
        .layer(from_fn_with_state(state.clone(), limits))
        .layer(from_fn(security_headers))
        .layer(from_fn_with_state(state.clone(), count))
        .with_state(state)
}

/// Every answer: `X-Content-Type-Options: nosniff`, so a browser never runs an answer as
/// something else than its type says; and `Cache-Control: no-store` on all but the dashboard's
/// own files (which set their own), so no cache keeps customer data or a token.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// The body, read whole before any handler runs: at most [`crate::ServerOptions`]'
/// `max_body_bytes` (413 `too_large`) within `body_read_timeout` (408 `timeout`), with no NUL
/// character in it or the address (400); then the handler, given `request_timeout` to answer
/// (503 `timeout`).
async fn limits(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let options = &state.0.options;
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "the request body is larger than {} bytes",
                options.max_body_bytes
            ),
        )
        .into_response()
    };
    if declared.is_some_and(|n| n > options.max_body_bytes as u64) {
        return too_large();
    }
    let limited = http_body_util::Limited::new(body, options.max_body_bytes);
    let read = tokio::time::timeout(
        options.body_read_timeout,
        http_body_util::BodyExt::collect(limited),
    )
    .await;
    let bytes = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Ok(Err(e)) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_body",
                format!("reading the request body: {e}"),
            )
            .into_response();
        }
        Err(_) => {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                format!(
                    "the request body did not arrive within {} seconds",
                    options.body_read_timeout.as_secs_f64()
                ),
            )
            .into_response();
        }
    };
    if let Some(refused) = crate::guard::nul_in(&parts.uri, &bytes) {
        return refused.into_response();
    }
    let req = Request::from_parts(parts, Body::from(bytes));
    match tokio::time::timeout(options.request_timeout, next.run(req)).await {
        Ok(res) => res,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "no answer within {} seconds; try again later",
                options.request_timeout.as_secs_f64()
            ),
        )
        .into_response(),
    }
}

/// Counts every response by route and status, for `/metrics`.
async fn count(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().clone();
    let started = Instant::now();
    let in_flight = state.0.latency.start();
    let response = next.run(req).await;
    drop(in_flight);
    state.0.latency.observe(&route, started.elapsed());
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

/// Whether the caller may read `/metrics`: the metrics token, or an admin's session.
fn may_read_metrics(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let (Some(want), Some(sent)) = (&state.0.options.metrics_token, bearer)
        && same_secret(want, sent)
    {
        return Ok(());
    }
    let session = crate::authz::authenticate(state, headers, &Method::GET)?;
    if session.role != "admin" {
        return Err(ApiError::forbidden(format!(
            "role {} may not GET /metrics (admins and the metrics token may)",
            session.role
        )));
    }
    Ok(())
}

/// Compares two secrets in a time that does not depend on where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    use sha2::Digest as _;
    let (a, b) = (sha2::Sha256::digest(a), sha2::Sha256::digest(b));
    a.iter().zip(b.iter()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = may_read_metrics(&state, &headers) {
        return e.into_response();
    }
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
    state.0.latency.write(&mut text);
    // The store's recent runs: a store that cannot answer leaves them out, not the page.
    if let Ok(runs) = state.0.store.runs(200).await {
        crate::metrics::write_runs(&mut text, &runs);
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
    let _ = writeln!(
        text,
        "# HELP retain_audit_queue_depth Audit events journaled, not yet in the store's audit log.\n# TYPE retain_audit_queue_depth gauge\nretain_audit_queue_depth {}",
        state.0.journal.depth()
    );
    let checks = state.0.password_checks.load(Ordering::Relaxed);
    let _ = writeln!(
        text,
        "# HELP retain_login_password_checks_total Passwords checked at login (Argon2), for known and unknown names alike.\n# TYPE retain_login_password_checks_total counter\nretain_login_password_checks_total {checks}"
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

#[derive(Deserialize)]
pub(crate) struct Login {
    name: String,
    password: String,
}

/// Refuses a login that no user could have before any work is done or anything is stored.
fn check_login(body: &Login) -> ApiResult<()> {
    if body.name.is_empty()
        || body.name.len() > MAX_NAME_BYTES
        || body.name.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(format!(
            "a user name is 1 to {MAX_NAME_BYTES} bytes without control characters"
        )));
    }
    if body.password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::bad_request(format!(
            "a password is at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Checks `password` against `hash`, or against the dummy hash when the name is unknown, on a
/// blocking thread, with at most as many checks at a time as there are cores.
async fn check_password(state: &AppState, password: &str, hash: Option<String>) -> ApiResult<bool> {
    let slot = state
        .0
        .password_slots
        .clone()
        .acquire_owned()
        .await
        .map_err(ApiError::internal)?;
    state.0.password_checks.fetch_add(1, Ordering::Relaxed);
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        match &hash {
            Some(hash) => verify_password(&password, hash),
            None => verify_password(&password, crate::auth::dummy_hash()),
        }
    })
    .await
    .map_err(ApiError::internal)
}

/// Checks a login (rate-limited per name, every attempt audited) and opens a session. The
/// attempt counts as failed before the password is checked, so attempts at the same time
/// cannot pass the lockout; an unknown name costs the same password check as a known one.
async fn open_session(state: &AppState, body: &Login) -> ApiResult<(String, Session)> {
    check_login(body)?;
    let now = Instant::now();
    let begun = state
        .0
        .lockout
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .begin(&body.name, now);
    if let Err(wait) = begun {
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
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let matches = check_password(state, &body.password, hash).await?;
    let ok = matches && user.as_ref().is_some_and(|u| !u.disabled);
    let audit = retain_store::Audit {
        actor: &body.name,
        action: if ok { "login" } else { "login_failed" },
        detail: json!({}),
    };
    state.0.store.audit("user", &body.name, &audit).await?;
    if ok {
        state
            .0
            .lockout
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .succeeded(&body.name);
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
    // The store just said this user may work: a stale "disabled" must not refuse the session.
    if let Ok(mut checks) = state.0.user_checks.lock() {
        checks.insert(user.name.clone(), (now, true));
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
        "{COOKIE}={t}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        TOKEN_LIFETIME.as_secs(),
        secure(&state)
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
    let cookie = format!(
        "{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
        secure(&state)
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

/// The cookie attribute that keeps it to HTTPS, when the server is set to.
fn secure(state: &AppState) -> &'static str {
    if state.0.options.secure_cookies {
        "; Secure"
    } else {
        ""
    }
}

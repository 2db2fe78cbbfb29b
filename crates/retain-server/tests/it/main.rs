//! The API on a small synthetic operator: login, lockout, the role × endpoint matrix derived
//! from the authorization table, manager scoping, the dashboard's cookie and CSRF token, JSON
//! errors, health, metrics and the OpenAPI document.

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use chrono::NaiveDate;
use retain_data::{IngestOptions, Table, Workspace, ingest};
use retain_server::{AppState, RULES, hash_password, router};
use retain_store::{Store, UserRecord};
use tower::ServiceExt as _;

/// The operational store of a test: SQLite in the workspace, or a fresh PostgreSQL database
/// (`None` when no PostgreSQL server is configured; the test is then skipped).
async fn store_url(postgres: bool) -> Option<Option<String>> {
    if !postgres {
        return Some(None);
    }
    let url = retain_store::scratch_postgres_database("server")
        .await
        .unwrap();
    if url.is_none() {
        eprintln!("skipped: set RETAIN_TEST_POSTGRES_URL to run on PostgreSQL");
        return None;
    }
    Some(url)
}

async fn workspace(dir: &std::path::Path, store: Option<String>) -> Workspace {
    let params = retain_synth::SynthParams {
        subscribers: 1200,
        months: 12,
        seed: 8,
        ..Default::default()
    };
    let mut ws = Workspace::create_or_open(&dir.join("ws")).unwrap();
    if let Some(url) = store {
        let config = ws.root().join("retain.toml");
        let text = std::fs::read_to_string(&config).unwrap();
        let text = text.replace("url = \"sqlite://retain.db\"", &format!("url = \"{url}\""));
        std::fs::write(&config, text).unwrap();
        ws = Workspace::open(ws.root()).unwrap();
        assert!(ws.store_url().starts_with("postgres://"));
    }
    let summary =
        retain_synth::synthesize(&params, &dir.join("in"), &ws.root().join("truth")).unwrap();
    for (name, file) in &summary.files {
        ingest(
            &ws,
            Table::from_name(name).unwrap(),
            std::slice::from_ref(file),
            &IngestOptions {
                label: name.clone(),
                ..IngestOptions::default()
            },
        )
        .unwrap();
    }
    let ctx = retain_features::session(&ws).await.unwrap();
    let as_of = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    let rules = retain_warn::RuleSet::parse(
        retain_warn::DEFAULT_RULES,
        std::path::Path::new("rules.toml"),
    )
    .unwrap();
    retain_warn::run(
        &ctx,
        &rules,
        ws.root(),
        as_of,
        retain_warn::Cadence::Monthly,
    )
    .await
    .unwrap();
    retain_offers::run_match(
        &ctx,
        ws.root(),
        &retain_offers::MatchOptions {
            as_of,
            budget: 5000.0,
            seed: 1,
            partitions: None,
        },
    )
    .await
    .unwrap();
    ws
}

async fn send(
    app: &axum::Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b)),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = to_bytes(res.into_body(), 1 << 24).await.unwrap();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, headers, json)
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (StatusCode, serde_json::Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    let (status, _, json) = send(app, method, uri, &headers, body.map(|b| b.to_string())).await;
    (status, json)
}

const PASSWORD: &str = "a long password";

async fn login(app: &axum::Router, name: &str) -> String {
    let (status, body) = call(
        app,
        "POST",
        "/api/v1/login",
        None,
        Some(serde_json::json!({ "name": name, "password": PASSWORD })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

async fn add_user(store: &Store, name: &str, role: &str, manager_id: Option<&str>) {
    let user = UserRecord {
        name: name.into(),
        role: role.into(),
        manager_id: manager_id.map(str::to_owned),
        branch_id: None,
        approval_level: if matches!(role, "approver" | "admin") {
            3
        } else {
            0
        },
        password_hash: hash_password(PASSWORD).unwrap(),
        created_at: String::new(),
        disabled: false,
    };
    store.add_user(&user, "test").await.unwrap();
}

/// (subscriber, manager, branch) of the synthetic operator.
fn subscribers(dir: &std::path::Path) -> Vec<(String, String, String)> {
    let subs = std::fs::read_to_string(dir.join("in/subscribers.csv")).unwrap();
    let header: Vec<&str> = subs.lines().next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    subs.lines()
        .skip(1)
        .map(|l| {
            let r: Vec<&str> = l.split(',').collect();
            (
                r[col("subscriber_id")].to_owned(),
                r[col("manager_id")].to_owned(),
                r[col("branch_id")].to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_endpoint_answers_each_role_as_the_table_says_on_sqlite() {
    role_matrix(false).await;
}

#[tokio::test]
async fn every_endpoint_answers_each_role_as_the_table_says_on_postgres() {
    role_matrix(true).await;
}

async fn role_matrix(postgres: bool) {
    let Some(url) = store_url(postgres).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path(), url).await;
    let store = Store::connect(&ws.store_url()).await.unwrap();
    add_user(&store, "root", "admin", None).await;
    add_user(&store, "ana", "analyst", None).await;
    add_user(&store, "li", "approver", None).await;
    add_user(&store, "zhou", "store", None).await;
    let state = AppState::open(ws.root()).await.unwrap();
    let app = router(state.clone());

    // A launched campaign, through the API, so work orders exist.
    let root = login(&app, "root").await;
    let (status, c) = call(
        &app,
        "POST",
        "/api/v1/campaigns",
        Some(&root),
        Some(serde_json::json!({ "template": "level-flow", "budget": 5000 })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    let id = c["id"].as_i64().unwrap();
    for step in ["rehearse", "approve", "launch"] {
        let (status, body) = call(
            &app,
            "POST",
            &format!("/api/v1/campaigns/{id}/{step}"),
            Some(&root),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{step}: {body}");
    }
    let (_, queue) = call(
        &app,
        "GET",
        "/api/v1/work-orders?limit=5000",
        Some(&root),
        None,
    )
    .await;
    let orders = queue["items"].as_array().unwrap();
    assert!(!orders.is_empty(), "the launch made work orders");
    let order = orders
        .iter()
        .find(|w| !w["manager_id"].as_str().unwrap().is_empty())
        .expect("a work order with an account manager");
    let manager = order["manager_id"].as_str().unwrap().to_owned();
    let order_id = order["id"].as_i64().unwrap();
    let customer = order["subscriber_id"].as_i64().unwrap();
    add_user(&store, "wang", "manager", Some(&manager)).await;

    // The counter's decision shows the subscriber's open work orders (read by the audit
    // writer with its group) and is audited.
    let zhou = login(&app, "zhou").await;
    let (status, decision) = call(
        &app,
        "GET",
        &format!("/api/v1/decisions/{customer}?channel=store"),
        Some(&zhou),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{decision}");
    let open: Vec<i64> = decision["work_orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_i64().unwrap())
        .collect();
    assert!(open.contains(&order_id), "{decision}");
    assert!(
        open.iter().all(|id| orders
            .iter()
            .any(|w| w["id"] == *id && w["subscriber_id"] == customer)),
        "{decision}"
    );
    state.flush_audit().await;
    let audited = store
        .audit_log("customer", Some(&customer.to_string()))
        .await
        .unwrap();
    assert!(
        audited
            .iter()
            .any(|e| e.actor == "zhou" && e.action == "decision"),
        "{audited:?}"
    );

    let users = [
        ("root", "admin"),
        ("ana", "analyst"),
        ("li", "approver"),
        ("wang", "manager"),
        ("zhou", "store"),
    ];
    let mut tokens = Vec::new();
    for (name, role) in users {
        tokens.push((name, role, login(&app, name).await));
    }
    let concrete = |path: &str| {
        let path = if path == "/api/v1/targets" {
            "/api/v1/targets?tags=contract_expiring"
        } else {
            path
        };
        path.replace("/campaigns/{id}", &format!("/campaigns/{id}"))
            .replace("/work-orders/{id}", &format!("/work-orders/{order_id}"))
            .replace("{id}", &customer.to_string())
            .replace("{key}", &customer.to_string())
    };
    // Logging out ends the session the rest of the matrix uses: it goes last.
    let mut rules: Vec<_> = RULES.iter().collect();
    rules.sort_by_key(|r| r.path == "/api/v1/logout");
    for rule in rules {
        let uri = concrete(rule.path);
        let body = match (rule.method, rule.path) {
            ("POST", "/api/v1/campaigns") => Some(serde_json::json!({ "template": "level-flow" })),
            (_, "/api/v1/work-orders/{id}/callback") => {
                Some(serde_json::json!({ "reached": true, "accepted": false }))
            }
            (_, "/api/v1/campaigns/{id}/reject") => Some(serde_json::json!({ "note": "no" })),
            ("PUT", "/api/v1/rules") => {
                Some(serde_json::json!({ "toml": retain_warn::DEFAULT_RULES }))
            }
            ("PUT", "/api/v1/offers") => {
                Some(serde_json::json!({ "toml": retain_offers::DEFAULT_OFFERS }))
            }
            _ => None,
        };
        let (status, _) = call(&app, rule.method, &uri, None, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{} {uri} without a token",
            rule.method
        );
        for (name, role, token) in &tokens {
            let (status, answer) = call(&app, rule.method, &uri, Some(token), body.clone()).await;
            let what = format!("{name} ({role}) {} {uri}: {status} {answer}", rule.method);
            if rule.roles.contains(role) {
                let ok = status.is_success()
                    // A step the campaign's state no longer allows: authorized all the same.
                    || (status == StatusCode::CONFLICT && uri.contains("/campaigns/"))
                    // Reports this test does not build (segments, model): authorized, not ready.
                    || (status == StatusCode::SERVICE_UNAVAILABLE
                        && answer["code"] == "not_ready");
                assert!(ok, "{what}");
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{what}");
                assert_eq!(answer["code"], "forbidden", "{what}");
            }
        }
    }
}

#[tokio::test]
async fn managers_see_only_their_own_subscribers_on_sqlite() {
    manager_scope(false).await;
}

#[tokio::test]
async fn managers_see_only_their_own_subscribers_on_postgres() {
    manager_scope(true).await;
}

async fn manager_scope(postgres: bool) {
    let Some(url) = store_url(postgres).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path(), url).await;
    let store = Store::connect(&ws.store_url()).await.unwrap();
    let subs = subscribers(dir.path());
    let (mine, manager, branch) = subs.iter().find(|(_, m, _)| !m.is_empty()).unwrap().clone();
    let (theirs, _, _) = subs
        .iter()
        .find(|(_, m, _)| !m.is_empty() && *m != manager)
        .expect("two managers")
        .clone();
    let (elsewhere, _, _) = subs
        .iter()
        .find(|(_, _, b)| *b != branch)
        .expect("two branches")
        .clone();
    let (unmanaged, _, _) = subs
        .iter()
        .find(|(_, m, b)| m.is_empty() && *b == branch)
        .expect("a subscriber of the branch without an account manager")
        .clone();
    add_user(&store, "ana", "analyst", None).await;
    add_user(&store, "li", "approver", None).await;
    add_user(&store, "wang", "manager", Some(&manager)).await;
    add_user(&store, "zhou", "store", None).await;
    let head = UserRecord {
        name: "zhao".into(),
        role: "manager".into(),
        manager_id: None,
        branch_id: Some(branch.clone()),
        approval_level: 0,
        password_hash: hash_password(PASSWORD).unwrap(),
        created_at: String::new(),
        disabled: false,
    };
    store.add_user(&head, "test").await.unwrap();
    let state = AppState::open(ws.root()).await.unwrap();
    let app = router(state.clone());

    // A branch head (a manager scoped to a branch) sees the whole branch and nothing else.
    let zhao = login(&app, "zhao").await;
    for (id, expected) in [
        (&mine, StatusCode::OK),
        (&unmanaged, StatusCode::OK),
        (&elsewhere, StatusCode::NOT_FOUND),
    ] {
        let uri = format!("/api/v1/customers/{id}");
        let (status, body) = call(&app, "GET", &uri, Some(&zhao), None).await;
        assert_eq!(status, expected, "{uri}: {body}");
    }
    let (_, list) = call(
        &app,
        "GET",
        "/api/v1/warnings?limit=1000",
        Some(&zhao),
        None,
    )
    .await;
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["branch_id"] == branch.as_str()),
        "{list}"
    );

    let (status, body) = call(&app, "GET", "/healthz", None, None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    for (name, password) in [("ana", "wrong password"), ("nobody", PASSWORD)] {
        let (status, body) = call(
            &app,
            "POST",
            "/api/v1/login",
            None,
            Some(serde_json::json!({ "name": name, "password": password })),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["code"], "unauthorized");
    }

    let wang = login(&app, "wang").await;
    for uri in [
        format!("/api/v1/customers/{mine}"),
        format!("/api/v1/decisions/{mine}?channel=store"),
    ] {
        let (status, body) = call(&app, "GET", &uri, Some(&wang), None).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        let number = body["msisdn"]
            .as_str()
            .or(body["profile"]["msisdn"].as_str())
            .unwrap();
        assert!(number.contains("****"), "masked: {number}");
    }
    for uri in [
        format!("/api/v1/customers/{theirs}"),
        format!("/api/v1/decisions/{theirs}"),
    ] {
        let (status, body) = call(&app, "GET", &uri, Some(&wang), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {body}");
        assert_eq!(body["code"], "not_found");
    }
    let (status, list) = call(
        &app,
        "GET",
        "/api/v1/warnings?limit=1000",
        Some(&wang),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let items = list["items"].as_array().unwrap();
    assert!(
        items.iter().all(|w| w["manager_id"] == manager.as_str()),
        "{list}"
    );
    let ana = login(&app, "ana").await;
    let (_, all) = call(&app, "GET", "/api/v1/warnings?limit=1000", Some(&ana), None).await;
    assert!(all["total"].as_u64() > list["total"].as_u64());

    state.flush_audit().await;
    // Reads of customer data are in the audit log.
    let log = store.audit_log("customer", Some(&mine)).await.unwrap();
    let actions: Vec<(&str, &str)> = log
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str()))
        .collect();
    assert_eq!(
        actions,
        [("zhao", "read"), ("wang", "read"), ("wang", "decision")]
    );
    state.flush_audit().await;
    let log = store.audit_log("user", Some("ana")).await.unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["add", "login_failed", "login"]);

    let (status, doc) = call(&app, "GET", "/api/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["paths"]["/api/v1/decisions/{key}"]["get"].is_object());
    let (_, metrics) = call(&app, "GET", "/metrics", None, None).await;
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains(
            "retain_http_requests_total{route=\"/api/v1/decisions/{key}\",status=\"404\"} 1"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn bad_input_gets_a_json_error_never_a_500() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path(), None).await;
    let store = Store::connect(&ws.store_url()).await.unwrap();
    add_user(&store, "ana", "analyst", None).await;
    let state = AppState::open(ws.root()).await.unwrap();
    let app = router(state.clone());
    let ana = login(&app, "ana").await;
    let auth = format!("Bearer {ana}");
    let h = [("authorization", auth.as_str())];
    // Target expressions that once overflowed the parser's stack, aborting the server, or
    // held a worker for over a minute; a NUL byte, which PostgreSQL cannot store.
    let parens = format!("/api/v1/targets?tags={}", "(".repeat(2000));
    let minus = format!("/api/v1/targets?tags={}", "-".repeat(20_000));
    let nots = format!("/api/v1/targets?tags={}x", "not%20".repeat(3000));
    let some_nots = format!("/api/v1/targets?tags={}x", "not%20".repeat(100));
    for (uri, message) in [
        (parens.as_str(), "levels deep"),
        (minus.as_str(), "bytes long"),
        (nots.as_str(), "bytes long"),
        (some_nots.as_str(), "levels deep"),
        ("/api/v1/targets?tags=a%00", "control character U+0000"),
    ] {
        let started = std::time::Instant::now();
        let (status, _, answer) = send(&app, "GET", uri, &h, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        let text = answer["message"].as_str().unwrap();
        assert!(
            text.contains(message) && text.contains("line 1, column"),
            "{text}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
    for (method, uri, body, code) in [
        ("GET", "/api/v1/warnings?limit=abc", None, "bad_request"),
        ("GET", "/api/v1/warnings?limit=0", None, "bad_request"),
        ("GET", "/api/v1/warnings?level=purple", None, "bad_request"),
        ("GET", "/api/v1/customers/abc", None, "bad_request"),
        ("GET", "/api/v1/customers/1", None, "not_found"),
        (
            "GET",
            "/api/v1/decisions/1x?channel=pigeon",
            None,
            "bad_request",
        ),
        ("GET", "/api/v1/campaigns/99", None, "not_found"),
        (
            "GET",
            "/api/v1/work-orders?status=lost",
            None,
            "bad_request",
        ),
        ("POST", "/api/v1/campaigns", Some("{not json"), "bad_body"),
        (
            "POST",
            "/api/v1/campaigns",
            Some(r#"{"budget": 5}"#),
            "bad_body",
        ),
        (
            "POST",
            "/api/v1/campaigns",
            Some(r#"{"template": "nope"}"#),
            "not_found",
        ),
        (
            "POST",
            "/api/v1/campaigns",
            Some(r#"{"template": "level-flow", "budget": -1}"#),
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/campaigns",
            Some(r#"{"template": "level-flow", "as_of": "0001-01-01"}"#),
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/campaigns",
            Some(r#"{"template": "level-flow", "as_of": "2999-01-01"}"#),
            "bad_request",
        ),
        ("POST", "/api/v1/campaigns/99/rehearse", None, "not_found"),
        (
            "POST",
            "/api/v1/work-orders/99/callback",
            Some(r#"{"reached": true}"#),
            "bad_body",
        ),
        (
            "POST",
            "/api/v1/work-orders/99/callback",
            Some(r#"{"reached": true, "accepted": true}"#),
            "not_found",
        ),
        ("GET", "/api/v1/nothing-here", None, "not_found"),
    ] {
        let (status, _, answer) = send(&app, method, uri, &h, body.map(str::to_owned)).await;
        assert!(
            status.is_client_error(),
            "{method} {uri}: {status} {answer}"
        );
        assert_eq!(answer["code"], code, "{method} {uri}: {status} {answer}");
        assert!(!answer["message"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn the_dashboard_session_is_a_cookie_and_changes_need_the_csrf_token() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path(), None).await;
    let store = Store::connect(&ws.store_url()).await.unwrap();
    add_user(&store, "ana", "analyst", None).await;
    let state = AppState::open(ws.root()).await.unwrap();
    let app = router(state.clone());

    let (status, _, page) = send(&app, "GET", "/", &[], None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.as_str().unwrap().contains("/assets/echarts.min.js"));
    let (status, headers, _) = send(&app, "GET", "/assets/echarts.min.js", &[], None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );

    let login = serde_json::json!({ "name": "ana", "password": PASSWORD }).to_string();
    let (status, headers, me) = send(&app, "POST", "/api/v1/session", &[], Some(login)).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert!(
        me.get("token").is_none(),
        "the page never sees the session token"
    );
    let set = headers["set-cookie"].to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    let csrf = me["csrf"].as_str().unwrap().to_owned();

    let (status, _, body) = send(
        &app,
        "GET",
        "/api/v1/campaigns",
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let create = r#"{"template": "level-flow"}"#.to_owned();
    let (status, _, body) = send(
        &app,
        "POST",
        "/api/v1/campaigns",
        &[("cookie", &cookie)],
        Some(create.clone()),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("csrf"))
    );
    let (status, _, body) = send(
        &app,
        "POST",
        "/api/v1/campaigns",
        &[("cookie", &cookie), ("x-csrf-token", "guessed")],
        Some(create.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _, body) = send(
        &app,
        "POST",
        "/api/v1/campaigns",
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        Some(create),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, _, _) = send(
        &app,
        "POST",
        "/api/v1/logout",
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(&app, "GET", "/api/v1/me", &[("cookie", &cookie)], None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn rules_and_offers_are_checked_before_they_replace_the_files_and_changes_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path(), None).await;
    let store = Store::connect(&ws.store_url()).await.unwrap();
    add_user(&store, "ana", "analyst", None).await;
    let state = AppState::open(ws.root()).await.unwrap();
    let app = router(state.clone());
    let ana = login(&app, "ana").await;

    let (_, current) = call(&app, "GET", "/api/v1/rules", Some(&ana), None).await;
    let text = current["toml"].as_str().unwrap().to_owned();
    let broken = text.replacen("when = \"", "when = \"no_such_feature > 1 and ", 1);
    let (status, body) = call(
        &app,
        "PUT",
        "/api/v1/rules",
        Some(&ana),
        Some(serde_json::json!({ "toml": broken })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("rules.toml:"),
        "{body}"
    );
    assert!(!ws.root().join("rules.toml").exists(), "nothing written");

    // The rules as they were are a valid change: saved, audited, and backtested on request.
    let (status, body) = call(
        &app,
        "PUT",
        "/api/v1/rules",
        Some(&ana),
        Some(serde_json::json!({ "toml": text, "note": "same rules, now a file" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        std::fs::read_to_string(ws.root().join("rules.toml")).unwrap(),
        text
    );
    let (status, report) = call(&app, "POST", "/api/v1/rules/backtest", Some(&ana), None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert!(report["population"].as_u64().unwrap() > 0, "{report}");

    let (status, body) = call(
        &app,
        "PUT",
        "/api/v1/offers",
        Some(&ana),
        Some(serde_json::json!({ "toml": "[[offer]]\nid = 1" })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = call(
        &app,
        "PUT",
        "/api/v1/offers",
        Some(&ana),
        Some(serde_json::json!({ "toml": retain_offers::DEFAULT_OFFERS })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // The export is the filtered list, numbers masked, and is audited.
    let auth = format!("Bearer {ana}");
    let (status, headers, body) = send(
        &app,
        "GET",
        "/api/v1/warnings?level=red&format=csv",
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let text = body.as_str().unwrap();
    let lines: Vec<&str> = text.lines().skip(1).collect();
    assert!(!lines.is_empty());
    assert!(
        lines
            .iter()
            .all(|l| l.split(',').nth(1).unwrap().contains("****"))
    );
    assert!(lines.iter().all(|l| l.split(',').nth(2) == Some("red")));

    state.flush_audit().await;
    let changes: Vec<String> = store
        .audit_recent(None, Some("ana"), 20)
        .await
        .unwrap()
        .iter()
        .map(|e| format!("{} {}", e.entity, e.action))
        .collect();
    for expected in ["rules change", "offers change", "warnings export"] {
        assert!(changes.iter().any(|c| c == expected), "{changes:?}");
    }
    assert_eq!(changes.iter().filter(|c| *c == "rules change").count(), 1);
}

#[tokio::test]
async fn repeated_failed_logins_lock_the_name_out() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path(), None).await;
    let store = Store::connect(&ws.store_url()).await.unwrap();
    add_user(&store, "ana", "analyst", None).await;
    add_user(&store, "li", "approver", None).await;
    let state = AppState::open(ws.root()).await.unwrap();
    let app = router(state.clone());
    let attempt = |name: &'static str, password: &'static str| {
        let app = app.clone();
        async move {
            call(
                &app,
                "POST",
                "/api/v1/login",
                None,
                Some(serde_json::json!({ "name": name, "password": password })),
            )
            .await
        }
    };
    for _ in 0..5 {
        assert_eq!(attempt("ana", "guess").await.0, StatusCode::UNAUTHORIZED);
    }
    // Locked: even the right password waits for the window to pass.
    let (status, body) = attempt("ana", PASSWORD).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("locked"))
    );
    // Another name is not affected.
    assert_eq!(attempt("li", PASSWORD).await.0, StatusCode::OK);
    state.flush_audit().await;
    let log = store.audit_log("user", Some("ana")).await.unwrap();
    assert_eq!(log.last().unwrap().action, "login_locked");
}

#[test]
fn the_openapi_document_covers_the_authorization_table() {
    let doc = retain_server::openapi();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(
        retain_server::undescribed().is_empty(),
        "{:?}",
        retain_server::undescribed()
    );
    for rule in RULES {
        let op = &doc["paths"][rule.path][rule.method.to_ascii_lowercase()];
        assert!(
            op.is_object(),
            "{} {} is in the document",
            rule.method,
            rule.path
        );
        assert!(op["description"].as_str().unwrap().contains(rule.roles[0]));
    }
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(p, _)| {
            p.starts_with("/api/v1/") && !p.ends_with("/login") && !p.ends_with("/session")
        })
        .map(|(_, ops)| ops.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, RULES.len(), "no operation without a rule");
}

/// One request over a real connection: (status, JSON body).
async fn over_tcp(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.unwrap_or("");
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n{auth}\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer.split(' ').nth(1).unwrap().parse().unwrap();
    let (_, body) = answer.split_once("\r\n\r\n").unwrap();
    (status, serde_json::from_str(body).unwrap_or_default())
}

/// A server asked to stop stops accepting, and its audited reads are in the store with no
/// journal segment left to replay and the SQLite write-ahead log folded into the database.
#[tokio::test]
async fn a_server_asked_to_stop_leaves_its_audit_in_the_store_and_nothing_to_replay() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path(), None).await;
    let store = Store::connect(&ws.store_url()).await.unwrap();
    add_user(&store, "ana", "analyst", None).await;
    store.close().await;
    let state = AppState::open(ws.root()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(retain_server::serve_on(state, listener, async {
        let _ = stopped.await;
    }));

    let login = serde_json::json!({ "name": "ana", "password": PASSWORD }).to_string();
    let (status, body) = over_tcp(addr, "POST", "/api/v1/login", None, Some(&login)).await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let read: Vec<String> = subscribers(dir.path())
        .into_iter()
        .take(25)
        .map(|(id, _, _)| id)
        .collect();
    for id in &read {
        let path = format!("/api/v1/customers/{id}");
        let (status, body) = over_tcp(addr, "GET", &path, Some(&token), None).await;
        assert_eq!(status, 200, "{path}: {body}");
    }

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "a stopped server accepts no connection"
    );
    let journal: Vec<_> = std::fs::read_dir(ws.root().join("audit-journal"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(journal.is_empty(), "{journal:?}");
    let wal = ws.root().join("retain.db-wal");
    assert!(
        std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "the write-ahead log is folded back"
    );
    let store = Store::connect(&ws.store_url()).await.unwrap();
    let log = store.audit_log("customer", None).await.unwrap();
    let mut audited: Vec<&str> = log
        .iter()
        .filter(|e| e.actor == "ana" && e.action == "read")
        .map(|e| e.entity_id.as_str())
        .collect();
    audited.sort_unstable();
    let mut expected: Vec<&str> = read.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(audited, expected);
}

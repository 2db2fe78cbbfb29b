//! The API on a small synthetic operator: login, the role × endpoint matrix, manager scoping,
//! health, metrics and the OpenAPI document.

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use chrono::NaiveDate;
use retain_data::{IngestOptions, Table, Workspace, ingest};
use retain_server::{AppState, hash_password, router};
use retain_store::{Store, UserRecord};
use tower::ServiceExt as _;

async fn workspace(dir: &std::path::Path) -> Workspace {
    let params = retain_synth::SynthParams {
        subscribers: 1200,
        months: 12,
        seed: 8,
        ..Default::default()
    };
    let ws = Workspace::create_or_open(&dir.join("ws")).unwrap();
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
        },
    )
    .await
    .unwrap();
    ws
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (StatusCode, serde_json::Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = to_bytes(res.into_body(), 1 << 20).await.unwrap();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, json)
}

async fn login(app: &axum::Router, name: &str, password: &str) -> String {
    let (status, body) = call(
        app,
        "POST",
        "/api/v1/login",
        None,
        Some(serde_json::json!({ "name": name, "password": password })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn roles_and_scoping_decide_who_sees_a_decision() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path()).await;
    let store = Store::connect(&ws.store_url()).await.unwrap();
    // A subscriber with an account manager, and one of another manager.
    let subs = std::fs::read_to_string(dir.path().join("in/subscribers.csv")).unwrap();
    let header: Vec<&str> = subs.lines().next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let rows: Vec<Vec<&str>> = subs
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let managed: Vec<&Vec<&str>> = rows
        .iter()
        .filter(|r| !r[col("manager_id")].is_empty())
        .collect();
    let mine = managed[0];
    let manager = mine[col("manager_id")];
    let theirs = managed
        .iter()
        .find(|r| r[col("manager_id")] != manager)
        .expect("two managers");
    for (name, role, manager_id) in [
        ("ana", "analyst", None),
        ("li", "approver", None),
        ("wang", "manager", Some(manager.to_owned())),
        ("zhou", "store", None),
    ] {
        let user = UserRecord {
            name: name.into(),
            role: role.into(),
            manager_id,
            approval_level: i64::from(role == "approver"),
            password_hash: hash_password("a long password").unwrap(),
            created_at: String::new(),
            disabled: false,
        };
        store.add_user(&user, "test").await.unwrap();
    }
    let app = router(AppState::open(ws.root()).await.unwrap());

    let (status, body) = call(&app, "GET", "/healthz", None, None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, _) = call(
        &app,
        "POST",
        "/api/v1/login",
        None,
        Some(serde_json::json!({ "name": "ana", "password": "wrong password" })),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(
        &app,
        "POST",
        "/api/v1/login",
        None,
        Some(serde_json::json!({ "name": "nobody", "password": "a long password" })),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let id = mine[col("subscriber_id")];
    let uri = format!("/api/v1/decisions/{id}?channel=store");
    let (status, _) = call(&app, "GET", &uri, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(&app, "GET", &uri, Some("forged"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The role × endpoint matrix of decisions.
    for (name, expected) in [
        ("ana", StatusCode::OK),
        ("li", StatusCode::FORBIDDEN),
        ("wang", StatusCode::OK),
        ("zhou", StatusCode::OK),
    ] {
        let token = login(&app, name, "a long password").await;
        let (status, body) = call(&app, "GET", &uri, Some(&token), None).await;
        assert_eq!(status, expected, "{name}: {body}");
        if status == StatusCode::OK {
            assert_eq!(body["subscriber_id"].to_string(), id);
            assert!(
                body["msisdn"].as_str().unwrap().contains('*'),
                "masked: {body}"
            );
        }
    }
    // A manager does not see another manager's subscriber.
    let token = login(&app, "wang", "a long password").await;
    let other = format!("/api/v1/decisions/{}", theirs[col("subscriber_id")]);
    let (status, _) = call(&app, "GET", &other, Some(&token), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&app, "GET", &format!("{uri}x"), Some(&token), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, doc) = call(&app, "GET", "/api/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["paths"]["/api/v1/decisions/{key}"]["get"].is_object());
    let (_, metrics) = call(&app, "GET", "/metrics", None, None).await;
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains(
            "retain_http_requests_total{route=\"/api/v1/decisions/{key}\",status=\"403\"} 1"
        ),
        "{text}"
    );
    let log = store.audit_log("user", Some("ana")).await.unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["add", "login_failed", "login"]);
}

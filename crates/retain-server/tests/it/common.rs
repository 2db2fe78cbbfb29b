//! What every test of the API shares: a small synthetic operator served on either store,
//! requests and logins, and the numbers and subscribers to look for in answers.

pub(crate) use axum::body::{Body, to_bytes};
pub(crate) use axum::http::{Request, StatusCode};
pub(crate) use chrono::NaiveDate;
pub(crate) use retain_data::Workspace;
pub(crate) use retain_server::{AppState, RULES, hash_password, router};
pub(crate) use retain_store::{Store, UserRecord};
pub(crate) use tower::ServiceExt as _;

/// The operational store of a test: SQLite in the workspace, or a fresh PostgreSQL database
/// (`None` when no PostgreSQL server is configured; the test is then skipped).
pub(crate) async fn store_url(postgres: bool) -> Option<Option<String>> {
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

pub(crate) async fn workspace(dir: &std::path::Path, store: Option<String>) -> Workspace {
    let params = retain_synth::SynthParams {
        subscribers: 1200,
        months: 12,
        seed: 8,
        ..Default::default()
    };
    let mut ws = retain_synth::synthetic_workspace(&params, dir).unwrap();
    if let Some(url) = store {
        let config = ws.root().join("retain.toml");
        let text = std::fs::read_to_string(&config).unwrap();
        let text = text.replace("url = \"sqlite://retain.db\"", &format!("url = \"{url}\""));
        std::fs::write(&config, text).unwrap();
        ws = Workspace::open(ws.root()).unwrap();
        assert!(ws.store_url().starts_with("postgres://"));
    }
    let ctx = retain_features::session(&ws).await.unwrap();
    let as_of = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    let rules = retain_warn::RuleSet::parse(
        retain_warn::DEFAULT_RULES,
        std::path::Path::new("rules.toml"),
    )
    .unwrap();
    retain_warn::run(&ctx, &rules, &ws, as_of, retain_features::Cadence::Monthly)
        .await
        .unwrap();
    retain_offers::run_match(
        &ctx,
        &ws,
        &retain_offers::MatchOptions {
            as_of,
            budget: 5000.0,
            seed: 1,
            partitions: None,
        },
    )
    .await
    .unwrap();
    retain_groups::run(
        &ctx,
        &ws,
        &retain_groups::GroupConfig::default(),
        as_of,
        &[],
    )
    .await
    .unwrap();
    ws
}

pub(crate) async fn send(
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

pub(crate) async fn call(
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

pub(crate) const PASSWORD: &str = "a long password";

pub(crate) async fn login(app: &axum::Router, name: &str) -> String {
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

pub(crate) async fn add_user(store: &Store, name: &str, role: &str, manager_id: Option<&str>) {
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

/// Every subscriber's phone number, in the order of `subscribers`.
pub(crate) fn phone_numbers(dir: &std::path::Path) -> Vec<String> {
    let subs = std::fs::read_to_string(dir.join("in/subscribers.csv")).unwrap();
    let header: Vec<&str> = subs.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "msisdn").unwrap();
    subs.lines()
        .skip(1)
        .map(|l| l.split(',').nth(col).unwrap().to_owned())
        .collect()
}

/// The full phone numbers of `numbers` that appear in `text`.
pub(crate) fn full_numbers(text: &str, numbers: &[String]) -> Vec<String> {
    let known: std::collections::HashSet<&str> = numbers.iter().map(String::as_str).collect();
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|run| known.contains(run))
        .map(str::to_owned)
        .collect()
}

/// (subscriber, manager, branch) of the synthetic operator.
pub(crate) fn subscribers(dir: &std::path::Path) -> Vec<(String, String, String)> {
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

/// One request over a real connection: (status, JSON body).
pub(crate) async fn over_tcp(
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

/// A counter of `/metrics`, read with an admin's token.
pub(crate) async fn metric(app: &axum::Router, token: &str, name: &str) -> u64 {
    let (status, text) = call(app, "GET", "/metrics", Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let text = text.as_str().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} in {text}"))
        .parse()
        .unwrap()
}

//! Logins and sessions: the dashboard's cookie and CSRF token, lockout, guessing in parallel,
//! slow clients and the metrics' token.

use crate::common::*;

#[tokio::test]
async fn the_dashboard_session_is_a_cookie_and_changes_need_the_csrf_token() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path(), None).await;
    let store = Store::connect(&ws.store_url()).await.unwrap();
    add_user(&store, "ana", "analyst", None).await;
    let state = AppState::open(&ws).await.unwrap();
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
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("; Secure"),
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
async fn repeated_failed_logins_lock_the_name_out() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path(), None).await;
    let store = Store::connect(&ws.store_url()).await.unwrap();
    add_user(&store, "ana", "analyst", None).await;
    add_user(&store, "li", "approver", None).await;
    let state = AppState::open(&ws).await.unwrap();
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

/// Login holds under attack: wrong passwords sent at the same time count each, so the lockout
/// holds; an unknown name costs the same password check as a known one, so the answer's time
/// does not tell which names exist; names and passwords too long for any user are refused
/// before anything is stored. Every answer carries `nosniff` and `no-store`, `/metrics` is for
/// admins, and bodies over the limit are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_holds_under_parallel_guesses_and_does_not_tell_which_names_exist() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path(), None).await;
    let store = Store::connect(&ws.store_url()).await.unwrap();
    add_user(&store, "ana", "analyst", None).await;
    add_user(&store, "li", "analyst", None).await;
    add_user(&store, "root", "admin", None).await;
    let state = AppState::open(&ws).await.unwrap();
    let app = router(state.clone());
    let root = login(&app, "root").await;
    let attempt = |name: String, password: String| {
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

    // 64 wrong passwords at once: five are checked, the rest are locked out, and then so is
    // the right one.
    let guesses: Vec<_> = (0..64)
        .map(|n| tokio::spawn(attempt("ana".into(), format!("guess {n}"))))
        .collect();
    let mut answers = Vec::new();
    for g in guesses {
        answers.push(g.await.unwrap().0);
    }
    let count = |s: StatusCode| answers.iter().filter(|a| **a == s).count();
    assert_eq!(
        (
            count(StatusCode::UNAUTHORIZED),
            count(StatusCode::TOO_MANY_REQUESTS)
        ),
        (5, 59),
        "{answers:?}"
    );
    let (status, body) = attempt("ana".into(), PASSWORD.into()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("locked"))
    );
    let failed = store.audit_log("user", Some("ana")).await.unwrap();
    assert_eq!(
        failed.iter().filter(|e| e.action == "login_failed").count(),
        5
    );

    // An unknown name has its password checked (against a dummy hash) as a known one has, so
    // it costs the same Argon2 work (not timed here: timings belong in benchmarks).
    let checks = metric(&app, &root, "retain_login_password_checks_total").await;
    for n in 0..3 {
        let (status, _) = attempt(format!("ghost-{n}"), "guess".into()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        metric(&app, &root, "retain_login_password_checks_total").await,
        checks + 3
    );
    // Names and passwords no user can have: refused before any work, nothing stored.
    let audited = store.audit_recent(None, None, 10_000).await.unwrap().len();
    for (name, password) in [
        ("x".repeat(1_000_000), PASSWORD.to_owned()),
        ("x".repeat(65), PASSWORD.to_owned()),
        (String::new(), PASSWORD.to_owned()),
        ("li\u{0}".to_owned(), PASSWORD.to_owned()),
        ("li".to_owned(), "p".repeat(257)),
    ] {
        let (status, body) = attempt(name, password).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("bad_request")),
            "{body}"
        );
    }
    assert_eq!(
        store.audit_recent(None, None, 10_000).await.unwrap().len(),
        audited,
        "nothing audited"
    );
    assert_eq!(
        attempt("li".into(), PASSWORD.into()).await.0,
        StatusCode::OK
    );

    // Every answer says nosniff; all but the dashboard's files say no-store.
    let auth = format!("Bearer {root}");
    for (uri, headers, cache) in [
        ("/healthz", vec![], "no-store"),
        (
            "/api/v1/me",
            vec![("authorization", auth.as_str())],
            "no-store",
        ),
        (
            "/api/v1/warnings?limit=1",
            vec![("authorization", auth.as_str())],
            "no-store",
        ),
        ("/api/v1/me", vec![], "no-store"),
        ("/no-such-page", vec![], "no-store"),
        ("/assets/app.js", vec![], "no-cache"),
    ] {
        let (_, h, _) = send(&app, "GET", uri, &headers, None).await;
        assert_eq!(h["x-content-type-options"], "nosniff", "{uri}");
        assert_eq!(h["cache-control"], cache, "{uri}");
    }

    // /metrics shows nothing, sessions least of all, to anyone but admins.
    let (status, body) = call(&app, "GET", "/metrics", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!body.to_string().contains("retain_sessions"), "{body}");
    let li = login(&app, "li").await;
    let (status, body) = call(&app, "GET", "/metrics", Some(&li), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(metric(&app, &root, "retain_sessions").await >= 2);

    // A body over the limit is refused whole.
    let huge = serde_json::json!({ "toml": "#".repeat(2 << 20) }).to_string();
    let (status, _, body) = send(
        &app,
        "PUT",
        "/api/v1/rules",
        &[("authorization", &auth)],
        Some(huge),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("too_large"))
    );
    assert!(!ws.root().join("rules.toml").exists());
}

/// Over a real connection: a client that sends its headers or its body too slowly is cut
/// off; `/metrics` answers the metrics token; and a request the server cannot answer within
/// its time gets 503 `timeout`.
#[tokio::test]
async fn slow_clients_are_cut_off_and_metrics_take_their_token() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path(), None).await;
    let store = Store::connect(&ws.store_url()).await.unwrap();
    add_user(&store, "ana", "analyst", None).await;
    store.close().await;
    let short = std::time::Duration::from_millis(300);
    let options = retain_server::ServerOptions {
        metrics_token: Some("scrape-secret".into()),
        header_read_timeout: short,
        body_read_timeout: short,
        ..retain_server::ServerOptions::for_addr("127.0.0.1:0")
    };
    assert!(
        !options.secure_cookies,
        "a loopback server's cookie works over http"
    );
    let state = AppState::open_with_options(&ws, None, options)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(retain_server::serve_on(state, listener, async {
        let _ = stopped.await;
    }));

    let (status, _) = over_tcp(addr, "GET", "/metrics", Some("scrape-secret"), None).await;
    assert_eq!(status, 200);
    let (status, _) = over_tcp(addr, "GET", "/metrics", Some("guessed"), None).await;
    assert_eq!(status, 401);

    let wait = std::time::Duration::from_secs(10);
    // Headers that never end: the connection is closed.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(wait, slow.read_to_end(&mut answer)).await;
    assert!(
        closed.is_ok(),
        "a connection without whole headers is closed"
    );
    // A body that never comes: 408.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(
        b"POST /api/v1/login HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\
          content-type: application/json\r\ncontent-length: 100\r\n\r\n{\"name\"",
    )
    .await
    .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(wait, slow.read_to_string(&mut answer))
        .await
        .expect("an answer in time")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"timeout\""), "{answer}");

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();

    // A server given a millisecond answers a login (an Argon2 check) with 503 `timeout`.
    let options = retain_server::ServerOptions {
        request_timeout: std::time::Duration::from_millis(1),
        ..retain_server::ServerOptions::default()
    };
    let state = AppState::open_with_options(&ws, None, options)
        .await
        .unwrap();
    let app = router(state.clone());
    let (status, body) = call(
        &app,
        "POST",
        "/api/v1/login",
        None,
        Some(serde_json::json!({ "name": "ana", "password": PASSWORD })),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("timeout")),
        "{body}"
    );
    state.close().await;
}

/// A user disabled or removed from the command line (another process, the same store) loses
/// their sessions on the next check, cannot log in, and works again once enabled.
#[tokio::test]
async fn a_disabled_or_removed_user_loses_their_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path(), None).await;
    let store = Store::connect(&ws.store_url()).await.unwrap();
    add_user(&store, "ana", "analyst", None).await;
    add_user(&store, "bo", "analyst", None).await;
    let options = retain_server::ServerOptions {
        user_recheck: std::time::Duration::ZERO,
        ..retain_server::ServerOptions::default()
    };
    let state = AppState::open_with_options(&ws, None, options)
        .await
        .unwrap();
    let app = router(state.clone());
    let ana = login(&app, "ana").await;
    let bo = login(&app, "bo").await;
    let (status, _) = call(&app, "GET", "/api/v1/me", Some(&ana), None).await;
    assert_eq!(status, StatusCode::OK);

    assert!(store.set_user_disabled("ana", true, "root").await.unwrap());
    // Twice changes nothing twice.
    assert!(!store.set_user_disabled("ana", true, "root").await.unwrap());
    let (status, body) = call(&app, "GET", "/api/v1/me", Some(&ana), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.to_string().contains("disabled"), "{body}");
    let (status, _) = call(&app, "GET", "/api/v1/me", Some(&bo), None).await;
    assert_eq!(status, StatusCode::OK, "another user keeps working");
    let (status, _) = call(
        &app,
        "POST",
        "/api/v1/login",
        None,
        Some(serde_json::json!({ "name": "ana", "password": PASSWORD })),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    store.set_user_disabled("ana", false, "root").await.unwrap();
    let ana = login(&app, "ana").await;
    let (status, _) = call(&app, "GET", "/api/v1/me", Some(&ana), None).await;
    assert_eq!(status, StatusCode::OK);

    store.remove_user("bo", "root").await.unwrap();
    let (status, _) = call(&app, "GET", "/api/v1/me", Some(&bo), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(matches!(
        store.remove_user("bo", "root").await,
        Err(retain_store::Error::NotFound(_))
    ));
    state.flush_audit().await;
    let log = store.audit_log("user", Some("ana")).await.unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert!(
        actions.contains(&"disable") && actions.contains(&"enable"),
        "{actions:?}"
    );
}

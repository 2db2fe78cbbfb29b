//! The audit journal under a server that stops, and events the store refuses.

use crate::common::*;

/// A server asked to stop stops accepting, and its audited reads are in the store with no
/// journal segment left to replay and the SQLite write-ahead log folded into the database.
#[tokio::test]
async fn a_server_asked_to_stop_leaves_its_audit_in_the_store_and_nothing_to_replay() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path(), None).await;
    let store = Store::connect(&ws.store_url()).await.unwrap();
    add_user(&store, "ana", "analyst", None).await;
    store.close().await;
    let state = AppState::open(&ws).await.unwrap();
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

/// An audit event the store refuses (PostgreSQL cannot hold a NUL character; here a trigger
/// refuses one subscriber's reads) is set aside and counted, and every event behind it still
/// reaches the log: reading the log answers, and the server stops.
#[tokio::test]
async fn an_audit_event_the_store_refuses_is_set_aside_and_holds_nothing_up() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path(), None).await;
    let store = Store::connect(&ws.store_url()).await.unwrap();
    add_user(&store, "root", "admin", None).await;
    let ids: Vec<String> = subscribers(dir.path())
        .into_iter()
        .take(3)
        .map(|(id, _, _)| id)
        .collect();
    let poisoned = ids[1].clone();
    store.close().await;
    let sqlite = sqlx::SqlitePool::connect(&ws.store_url()).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TRIGGER refuse_one BEFORE INSERT ON audit_log \
         WHEN NEW.entity = 'customer' AND NEW.entity_id = '{poisoned}' \
         BEGIN SELECT RAISE(ABORT, 'refused for the test'); END"
    )))
    .execute(&sqlite)
    .await
    .unwrap();
    sqlite.close().await;
    let state = AppState::open(&ws).await.unwrap();
    let app = router(state.clone());
    let root = login(&app, "root").await;
    for id in &ids {
        let (status, body) = call(
            &app,
            "GET",
            &format!("/api/v1/customers/{id}"),
            Some(&root),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, log) = tokio::time::timeout(
        std::time::Duration::from_mins(1),
        call(
            &app,
            "GET",
            "/api/v1/audit?entity=customer&limit=100",
            Some(&root),
            None,
        ),
    )
    .await
    .expect("reading the audit log answers");
    assert_eq!(status, StatusCode::OK, "{log}");
    let logged: Vec<&str> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["entity_id"].as_str())
        .collect();
    assert!(
        logged.contains(&ids[0].as_str()) && logged.contains(&ids[2].as_str()),
        "{log}"
    );
    assert!(!logged.contains(&poisoned.as_str()), "{log}");
    let set_aside =
        std::fs::read_to_string(ws.root().join("audit-journal/set-aside.jsonl.refused")).unwrap();
    assert_eq!(set_aside.lines().count(), 1, "{set_aside}");
    assert!(set_aside.contains(&poisoned));
    let (_, _, metrics) = send(
        &app,
        "GET",
        "/metrics",
        &[("authorization", &format!("Bearer {root}"))],
        None,
    )
    .await;
    assert!(
        metrics
            .as_str()
            .unwrap_or_default()
            .contains("retain_audit_set_aside_total 1"),
        "{metrics}"
    );
    tokio::time::timeout(std::time::Duration::from_mins(1), state.close())
        .await
        .expect("the server stops");
}

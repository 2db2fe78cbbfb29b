//! Rules and offers replaced over the API: checked first, and every change audited.

use crate::common::*;

#[tokio::test]
async fn rules_and_offers_are_checked_before_they_replace_the_files_and_changes_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path(), None).await;
    let store = Store::connect(&ws.store_url()).await.unwrap();
    add_user(&store, "ana", "analyst", None).await;
    let state = AppState::open(&ws).await.unwrap();
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

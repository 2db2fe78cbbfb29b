//! The schedule page's answer: each job with its next run and last attempt, attempts newest
//! first, and no place on the server's disk in any of it.

use chrono::{TimeZone as _, Utc};
use retain_store::{JobEnd, JobStatus};

use crate::common::*;

#[tokio::test]
async fn the_schedule_lists_jobs_and_attempts_without_the_servers_directories() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path(), None).await;
    let store = Store::connect(&ws.store_url()).await.unwrap();
    add_user(&store, "ana", "analyst", None).await;
    let app = router(AppState::open(&ws).await.unwrap());
    let token = login(&app, "ana").await;

    let (status, none) = call(&app, "GET", "/api/v1/schedule", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{none}");
    assert_eq!(none["configured"], false);
    assert_eq!(none["jobs"], serde_json::json!([]));

    std::fs::write(
        ws.root().join("schedule.toml"),
        "[[job]]\nname = \"weekly-warning\"\nstep = \"warn\"\ncron = \"0 6 * * MON\"\n",
    )
    .unwrap();
    let slot = Utc.with_ymd_and_hms(2026, 12, 6, 22, 0, 0).unwrap();
    let run = store
        .start_job_run("weekly-warning", slot, 1, "host:1", slot)
        .await
        .unwrap();
    let file = ws.root().join("warnings/2026-12-07-weekly.csv");
    let summary = serde_json::json!({ "warnings": { "red": 4, "warnings_file": file } });
    let error = format!("{}: disk full", ws.root().join("scores").display());
    store
        .end_job_run(
            run,
            slot,
            &JobEnd {
                status: JobStatus::Failed,
                summary: Some(&summary),
                error: Some(&error),
                retry_at: None,
            },
        )
        .await
        .unwrap();
    let (status, answer) = call(&app, "GET", "/api/v1/schedule", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["configured"], true);
    assert_eq!(answer["timezone"], "Asia/Shanghai");
    let job = &answer["jobs"][0];
    assert_eq!(job["job"], "weekly-warning");
    assert!(job["next_run"].is_string(), "{job}");
    assert_eq!(job["last"]["status"], "failed");
    let runs = answer["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0]["summary"]["warnings"]["warnings_file"],
        "warnings/2026-12-07-weekly.csv"
    );
    assert_eq!(runs[0]["error"], "scores: disk full");
    let root = dir.path().display().to_string();
    assert!(!answer.to_string().contains(&root), "{answer}");

    // A broken schedule is reported, without its path, and the attempts are still listed.
    std::fs::write(ws.root().join("schedule.toml"), "[[job]]\nname = 1\n").unwrap();
    let (status, broken) = call(&app, "GET", "/api/v1/schedule", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{broken}");
    assert!(
        broken["error"]
            .as_str()
            .unwrap()
            .starts_with("schedule.toml: line 2"),
        "{broken}"
    );
    assert_eq!(broken["runs"].as_array().unwrap().len(), 1);
    for bad in ["?limit=0", "?limit=1001", "?limit=x"] {
        let (status, _) = call(
            &app,
            "GET",
            &format!("/api/v1/schedule{bad}"),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let (_, one) = call(
        &app,
        "GET",
        "/api/v1/schedule?job=other",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(one["runs"], serde_json::json!([]));
}

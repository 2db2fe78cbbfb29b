//! The scheduler's leases and runs, told the same way on every backend.

use chrono::{Duration, TimeZone, Utc};

use crate::{JobEnd, JobStatus, Store};

/// One job's lease is held by one process at a time; an expired one is taken over, a lost one
/// cannot be renewed, and attempts are recorded in order with how they ended.
pub(super) async fn job_story(store: &Store) {
    let t0 = Utc.with_ymd_and_hms(2026, 12, 7, 6, 0, 0).unwrap();
    let hour = Duration::hours(1);
    assert!(
        store
            .acquire_job_lease("warn", "a:1", t0, t0 + hour)
            .await
            .unwrap()
    );
    assert!(
        !store
            .acquire_job_lease("warn", "b:2", t0, t0 + hour)
            .await
            .unwrap()
    );
    // Another job is free; the holder may take its own lease again.
    assert!(
        store
            .acquire_job_lease("train", "b:2", t0, t0 + hour)
            .await
            .unwrap()
    );
    assert!(
        store
            .acquire_job_lease("warn", "a:1", t0, t0 + hour)
            .await
            .unwrap()
    );
    // Renewed, it outlives the first expiry.
    assert!(
        store
            .renew_job_lease("warn", "a:1", t0 + hour * 2)
            .await
            .unwrap()
    );
    assert!(
        !store
            .acquire_job_lease(
                "warn",
                "b:2",
                t0 + hour + Duration::minutes(1),
                t0 + hour * 3
            )
            .await
            .unwrap()
    );
    // Expired: another takes it over, and the first can neither renew nor release it.
    let later = t0 + hour * 2 + Duration::seconds(1);
    assert!(
        store
            .acquire_job_lease("warn", "b:2", later, later + hour)
            .await
            .unwrap()
    );
    assert!(
        !store
            .renew_job_lease("warn", "a:1", later + hour)
            .await
            .unwrap()
    );
    store.release_job_lease("warn", "a:1").await.unwrap();
    assert!(
        !store
            .acquire_job_lease("warn", "c:3", later, later + hour)
            .await
            .unwrap()
    );
    store.release_job_lease("warn", "b:2").await.unwrap();
    assert!(
        store
            .acquire_job_lease("warn", "c:3", later, later + hour)
            .await
            .unwrap()
    );

    assert!(store.last_job_run("warn").await.unwrap().is_none());
    let first = store
        .start_job_run("warn", t0, 1, "c:3", later)
        .await
        .unwrap();
    let running = store.last_job_run("warn").await.unwrap().unwrap();
    assert_eq!(
        (running.status, running.attempt, running.slot),
        (JobStatus::Running, 1, t0)
    );
    store
        .end_job_run(
            first,
            later + Duration::seconds(5),
            &JobEnd {
                status: JobStatus::Failed,
                summary: None,
                error: Some("no subscribers loaded"),
                retry_at: Some(later + Duration::minutes(10)),
            },
        )
        .await
        .unwrap();
    let second = store
        .start_job_run("warn", t0, 2, "c:3", later + hour)
        .await
        .unwrap();
    let summary = serde_json::json!({"red": 3});
    store
        .end_job_run(
            second,
            later + hour,
            &JobEnd {
                status: JobStatus::Succeeded,
                summary: Some(&summary),
                error: None,
                retry_at: None,
            },
        )
        .await
        .unwrap();
    let runs = store.job_runs(Some("warn"), 10).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!((runs[0].attempt, runs[0].status), (2, JobStatus::Succeeded));
    assert_eq!(runs[0].summary.as_ref(), Some(&summary));
    assert_eq!(runs[1].status, JobStatus::Failed);
    assert_eq!(runs[1].error.as_deref(), Some("no subscribers loaded"));
    assert_eq!(runs[1].retry_at, Some(later + Duration::minutes(10)));
    assert!(store.job_runs(Some("train"), 10).await.unwrap().is_empty());
    assert_eq!(store.job_runs(None, 1).await.unwrap().len(), 1);
    let missing = JobEnd {
        status: JobStatus::Skipped,
        summary: None,
        error: None,
        retry_at: None,
    };
    assert!(store.end_job_run(9999, later, &missing).await.is_err());
}

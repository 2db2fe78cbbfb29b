//! The audit log's stories: append-only, journaled events appended once, and found by entity
//! through the bulk index however far indexing got.

use crate::{Audit, JournaledAudit, Store};

/// What was audited stays as it was: the store refuses updates and deletes.
pub(super) async fn audit_is_append_only(store: &Store) {
    for sql in [
        "UPDATE audit_log SET actor = 'someone else'",
        "DELETE FROM audit_log",
    ] {
        let err = sqlx::query(sql).execute(&store.pool).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert!(!store.audit_recent(None, None, 10).await.unwrap().is_empty());
}

/// A group larger than one insert statement is written whole and in order, and a replay
/// of the same journal appends nothing twice.
pub(super) async fn journaled_events_are_appended_once(store: &Store) {
    let events: Vec<JournaledAudit> = (0..600)
        .map(|n| JournaledAudit {
            key: format!("boot-{n}"),
            at: format!("2026-11-25T10:00:{:02}+00:00", n % 60),
            actor: if n % 2 == 0 { "store-1" } else { "store-2" }.to_owned(),
            action: "decision".to_owned(),
            entity: "probe".to_owned(),
            entity_id: n.to_string(),
            detail: serde_json::json!({ "n": n }),
        })
        .collect();
    assert_eq!(store.append_journaled(&events[..400]).await.unwrap(), 400);
    // A replay overlaps what was appended before the crash.
    assert_eq!(store.append_journaled(&events).await.unwrap(), 200);
    let log = store.audit_log("probe", None).await.unwrap();
    assert_eq!(log.len(), 600);
    for (n, event) in log.iter().enumerate() {
        assert_eq!(event.entity_id, n.to_string());
        assert_eq!(event.detail["n"], n);
        assert_eq!(event.at, events[n].at);
        assert_eq!(event.actor, if n % 2 == 0 { "store-1" } else { "store-2" });
        assert_eq!(event.action, "decision");
    }
    // A NUL character (a hostile target expression) is stored, as U+FFFD: PostgreSQL text
    // cannot hold NUL, and an event the store refuses would hold up the journal.
    let hostile = JournaledAudit {
        key: "boot-nul".to_owned(),
        at: "2026-11-25T11:00:00+00:00".to_owned(),
        actor: "ana\0".to_owned(),
        action: "select".to_owned(),
        entity: "probe-nul".to_owned(),
        entity_id: "contract_expiring\0 or (".to_owned(),
        detail: serde_json::json!({ "tags": "a\u{0}b" }),
    };
    assert_eq!(store.append_journaled(&[hostile]).await.unwrap(), 1);
    let log = store.audit_log("probe-nul", None).await.unwrap();
    assert_eq!(log[0].entity_id, "contract_expiring\u{fffd} or (");
    assert_eq!(log[0].actor, "ana\u{fffd}");
    assert_eq!(log[0].detail["tags"], "a\u{fffd}b");
}

/// The first `events` journaled events of kind `bulk` appended, in order, for two
/// subscribers and for all, and the store's own event on subscriber 3 beside them.
async fn bulk_log_is_whole(store: &Store, events: usize) {
    for id in [Some("3"), Some("5"), None] {
        let log = store.audit_log("bulk", id).await.unwrap();
        let want: Vec<String> = (0..events)
            .map(|n| ((n * 7) % 13).to_string())
            .filter(|e| id.is_none_or(|id| id == e))
            .collect();
        let (direct, journaled): (Vec<_>, Vec<_>) =
            log.iter().partition(|e| e.detail.get("direct").is_some());
        let journaled: Vec<String> = journaled.iter().map(|e| e.entity_id.clone()).collect();
        assert_eq!(journaled, want, "{id:?} after {events} events");
        assert_eq!(direct.len(), usize::from(id != Some("5")), "{id:?}");
        assert!(log.windows(2).all(|w| w[0].id < w[1].id), "in order");
    }
}

/// Journaled events are found by entity whether they are in a listed run, after the last
/// one, or in a pass that stopped halfway; the store's own events beside them.
pub(super) async fn journaled_events_are_found_through_the_bulk_index(store: &Store) {
    let journaled = |from: usize, to: usize| -> Vec<JournaledAudit> {
        (from..to)
            .map(|n| JournaledAudit {
                key: format!("bulk-{n:06}"),
                at: "2026-11-25T10:00:00+00:00".to_owned(),
                actor: "store-1".to_owned(),
                action: "decision".to_owned(),
                entity: "bulk".to_owned(),
                // Out of order, so sorting them for the index matters.
                entity_id: ((n * 7) % 13).to_string(),
                detail: serde_json::json!({ "n": n }),
            })
            .collect()
    };
    let direct = Audit {
        actor: "admin",
        action: "note",
        detail: serde_json::json!({ "direct": true }),
    };
    let (lag, _) = store.audit_index_lag().await.unwrap();
    store.append_journaled(&journaled(0, 300)).await.unwrap();
    store.audit("bulk", "3", &direct).await.unwrap();
    store.append_journaled(&journaled(300, 500)).await.unwrap();
    assert_eq!(store.audit_index_lag().await.unwrap().0, lag + 500);
    bulk_log_is_whole(store, 500).await;

    // A pass asked to stop two steps into appending to the index (after one step per 64
    // ids of the log to sort them) leaves entries of a run it does not list.
    let last = store.audit_recent(None, None, 1).await.unwrap()[0].id;
    let sorting = (last + 63) / 64;
    let mut steps = 0;
    let stopped = store
        .index_audit(usize::MAX, 64, || {
            steps += 1;
            std::future::ready(steps < sorting + 2)
        })
        .await
        .unwrap();
    assert_eq!(stopped, 0);
    let unlisted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_journal_index \
         WHERE run NOT IN (SELECT run FROM audit_journal_runs)",
    )
    .fetch_one(&store.pool)
    .await
    .unwrap();
    assert_eq!(unlisted, 128);
    assert_eq!(store.audit_index_lag().await.unwrap().0, lag + 500);
    bulk_log_is_whole(store, 500).await;

    // Part of the way (over the stopped pass's entries), then the rest, with more events
    // arriving between.
    let go_on = || std::future::ready(true);
    let first = store
        .index_audit(lag as usize + 200, 64, go_on)
        .await
        .unwrap();
    assert_eq!(first, lag as usize + 200);
    assert_eq!(store.audit_index_lag().await.unwrap().0, 300);
    bulk_log_is_whole(store, 500).await;
    store.append_journaled(&journaled(500, 520)).await.unwrap();
    assert_eq!(
        store.index_audit(usize::MAX, 1000, go_on).await.unwrap(),
        320
    );
    let (lag, upto) = store.audit_index_lag().await.unwrap();
    assert_eq!(lag, 0);
    assert_eq!(upto, store.audit_recent(None, None, 1).await.unwrap()[0].id);
    bulk_log_is_whole(store, 520).await;
    assert_eq!(store.index_audit(usize::MAX, 64, go_on).await.unwrap(), 0);
}

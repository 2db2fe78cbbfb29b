//! The journal against a store on disk: replay, crash cut-offs, flushes.

use super::drain::parse_segment;
use super::*;

fn event(n: u32) -> JournaledAudit {
    JournaledAudit {
        key: format!("k-{n}"),
        at: "2026-11-25T10:00:00+00:00".into(),
        actor: "zhou".into(),
        action: "decision".into(),
        entity: "customer".into(),
        entity_id: n.to_string(),
        detail: serde_json::json!({ "channel": "store" }),
    }
}

fn lines(events: &[JournaledAudit]) -> Vec<u8> {
    let mut text = Vec::new();
    for e in events {
        text.extend(serde_json::to_vec(e).unwrap());
        text.push(b'\n');
    }
    text
}

async fn store(dir: &Path) -> Store {
    Store::connect(&format!("sqlite://{}", dir.join("retain.db").display()))
        .await
        .unwrap()
}

#[test]
fn a_line_cut_short_at_the_end_is_dropped_and_a_bad_line_before_it_is_counted() {
    let all: Vec<_> = (0..3).map(event).collect();
    let mut text = lines(&all);
    let (events, bad) = parse_segment(Path::new("s.jsonl"), &text);
    assert_eq!((events, bad), (all.clone(), 0));
    text.extend_from_slice(br#"{"key":"k-3","at":"#);
    text.extend([0; 100]);
    let (events, bad) = parse_segment(Path::new("s.jsonl"), &text);
    assert_eq!((events, bad), (all.clone(), 0));
    let mut text = b"not json\n".to_vec();
    text.extend(lines(&all));
    let (events, bad) = parse_segment(Path::new("s.jsonl"), &text);
    assert_eq!((events, bad), (all, 1));
}

/// What a crashed server journaled reaches the store once, however much of it had
/// already been appended; a segment held by a running server is left alone.
#[tokio::test]
async fn a_stopped_servers_journal_is_replayed_once_and_a_live_one_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let journal = dir.path().join(DIR);
    std::fs::create_dir_all(&journal).unwrap();
    let all: Vec<_> = (0..10).map(event).collect();
    // The crash came after the first four reached the store.
    assert_eq!(store.append_journaled(&all[..4]).await.unwrap(), 4);
    let mut text = lines(&all);
    text.extend_from_slice(b"{\"key\":\"k-10\"");
    std::fs::write(journal.join("00000000000000000001-7-000000.jsonl"), text).unwrap();
    let live = journal.join("00000000000000000002-8-000000.jsonl");
    std::fs::write(&live, lines(&[event(99)])).unwrap();
    let lock = File::open(&live).unwrap();
    lock.try_lock().unwrap();

    replay(&journal, &store).await.unwrap();
    let log = store.audit_log("customer", None).await.unwrap();
    let ids: Vec<&str> = log.iter().map(|e| e.entity_id.as_str()).collect();
    assert_eq!(ids, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    let left: Vec<PathBuf> = std::fs::read_dir(&journal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(left, [live]);
}

/// An append is answered once its line is on disk; flushing puts it in the store; closing
/// puts the rest there and leaves no segment behind.
#[tokio::test]
async fn appended_events_are_on_disk_when_answered_and_in_the_store_after_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let path = dir.path().join(DIR);
    let journal = Journal::open(&path, store.clone()).await.unwrap();
    let keys: Vec<String> = (0..12).map(|_| journal.key()).collect();
    assert!(keys.windows(2).all(|k| k[0] < k[1]), "{keys:?}");
    let appends = (0..50).map(|n| {
        let mut e = event(n);
        e.key = journal.key();
        journal.append(e)
    });
    for result in futures::future::join_all(appends).await {
        result.unwrap();
    }
    let mut on_disk = 0;
    for segment in std::fs::read_dir(&path).unwrap() {
        let segment = segment.unwrap().path();
        let text = std::fs::read(&segment).unwrap();
        let events = parse_segment(&segment, &text).0.len();
        // The next segment may still be being filled with zeros on its own thread: it holds
        // no events yet. One that holds events was written in place, at its full length.
        if events > 0 {
            assert_eq!(text.len() as u64, SEGMENT_BYTES, "written in place");
        } else {
            assert!(text.len() as u64 <= SEGMENT_BYTES);
        }
        on_disk += events;
    }
    assert_eq!(on_disk, 50);

    journal.flush().await;
    assert_eq!(store.audit_log("customer", None).await.unwrap().len(), 50);

    // Many more than a segment holds: they rotate, and the full ones are deleted once
    // the store has their events.
    for round in 0..4 {
        let appends = (0..500).map(|n| {
            let mut e = event(1000 * (round + 1) + n);
            e.key = journal.key();
            journal.append(e)
        });
        for result in futures::future::join_all(appends).await {
            result.unwrap();
        }
    }
    journal.flush().await;
    let log = store.audit_log("customer", None).await.unwrap();
    assert_eq!(log.len(), 2050);
    let keys: std::collections::HashSet<&str> = log.iter().map(|e| e.entity_id.as_str()).collect();
    assert_eq!(keys.len(), 2050);
    let names: Vec<String> = std::fs::read_dir(&path)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.len() <= 2, "{names:?}");
    assert!(
        names.iter().all(|n| !n.ends_with("-000000.jsonl")),
        "{names:?}"
    );

    // The indexer takes them into the bulk index in passes, each at least an eighth of
    // what it indexed before, and a subscriber's events are found either way.
    let mut waited = 0;
    while store.audit_index_lag().await.unwrap().0 >= 300 {
        assert!(waited < 3000, "the indexer did not catch up");
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    let (lag, upto) = store.audit_index_lag().await.unwrap();
    assert!(upto > 1700, "indexed up to {upto}, {lag} waiting");
    for id in ["7", "1003", "4499"] {
        let one = store.audit_log("customer", Some(id)).await.unwrap();
        assert_eq!(one.len(), 1, "{id}");
        assert_eq!(one[0].entity_id, id);
    }

    // Closing waits for the last events to reach the store and deletes every segment.
    let last: Vec<_> = (0..20)
        .map(|n| {
            let mut e = event(9000 + n);
            e.key = journal.key();
            journal.append(e)
        })
        .collect();
    for result in futures::future::join_all(last).await {
        result.unwrap();
    }
    journal.close().await;
    let left: Vec<_> = std::fs::read_dir(&path).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(store.audit_log("customer", None).await.unwrap().len(), 2070);
    let mut late = event(99_999);
    late.key = journal.key();
    assert!(
        journal.append(late).await.is_err(),
        "a closed journal takes no events"
    );
}

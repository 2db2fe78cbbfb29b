//! The audit journal. Every read of customer data is audited before it is answered, so nothing
//! answered is missing from the log after a crash. Committing each read, or each group of
//! reads, to the store on the answer's path made the store's driver the cost of a request: a
//! thousand transactions a second, each a chain of thread hand-offs. The journal keeps the
//! guarantee at the cost of one `write` and one `fdatasync` per group:
//!
//! - a request appends its event to the queue and waits until the group it joined is written
//!   to the current segment file (`audit-journal/*.jsonl` in the workspace) and synced to disk;
//!   one thread writes and syncs, so groups form while it waits on the disk. Segments are
//!   written full of zeros and synced before they are used, and lines overwrite the zeros: a
//!   sync then flushes data only. A sync that also had to record a file's new length would
//!   wait for the file system's journal, and with it for everything other files (the store's
//!   checkpoints) have pending: the answers stalled for hundreds of milliseconds;
//! - a task appends the synced events to the store's audit log a few times a second, in large
//!   transactions, each event with a key of its own; a segment whose events are all in the store
//!   is deleted;
//! - on start, segments left by a server that stopped (their file lock is free) are appended to
//!   the store and deleted. Keys make the replay idempotent: what reached the store before the
//!   crash is not appended twice.
//!
//! Reading the audit log first waits until every event journaled so far is in the store
//! ([`Journal::flush`]).
//!
//! A third task indexes the appended events by entity in bulk ([`Store::index_audit`]), once
//! enough have gathered that each pass touches each page of the index a few times, sorted and
//! in paced chunks: indexed one by one on their random subscriber ids, every event dirtied a
//! page of its own and the journal's syncs waited behind those writes.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use retain_store::{JournaledAudit, Store};
use tokio::sync::{Notify, mpsc, oneshot, watch};

/// The journal's directory in a workspace.
pub(crate) const DIR: &str = "audit-journal";
/// The size of a segment file, about 3,500 events (small in tests, to see them rotate). Each
/// is written full of zeros and synced before use; a small one keeps that burst on the disk
/// short for the answers' syncs that wait behind it.
const SEGMENT_BYTES: u64 = if cfg!(test) { 64 << 10 } else { 1 << 20 };
/// Events appended to the store in one transaction at most.
const DRAIN_GROUP: usize = 8192;
/// How long synced events gather before they are appended to the store, unless someone reads
/// the log: the store sees a few large transactions a second, not one per group.
const DRAIN_PAUSE: Duration = Duration::from_millis(200);
/// A drain slower than this is logged (at info), to place a slow answer against it.
const SLOW_DRAIN: Duration = Duration::from_millis(50);

/// Events wait for the bulk index until there are at least this many, and at least an eighth
/// of those indexed before (so passes grow with the log and each touches every page of the
/// index a few times at most) but at most `INDEX_MAX`, which bounds a pass's memory and the
/// end of the log a query scans.
const INDEX_MIN: u64 = if cfg!(test) { 100 } else { 50_000 };
const INDEX_MAX: u64 = 1_000_000;
/// Events indexed in one transaction, and the least pause after each, so that a pass's writes
/// spread over seconds instead of stalling the disk for the answers' syncs.
const INDEX_CHUNK: usize = 4096;
const INDEX_PAUSE: Duration = Duration::from_millis(50);

/// The journal of a running server.
pub(crate) struct Journal {
    shared: Arc<Shared>,
    /// Names this server's events: start time and process, unique across restarts.
    boot: String,
    next: AtomicU64,
    /// Events appended to the store so far.
    drained: watch::Receiver<u64>,
    /// Wakes the drainer early.
    hurry: Arc<Notify>,
    /// The drainer, awaited when the journal closes.
    drainer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The indexer, told to stop and awaited when the journal closes.
    indexer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    stop_indexing: watch::Sender<bool>,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

#[derive(Default)]
struct Queue {
    /// The events' lines, not yet written.
    lines: Vec<u8>,
    events: Vec<JournaledAudit>,
    waiters: Vec<oneshot::Sender<Result<(), String>>>,
    /// Events queued since the server started.
    queued: u64,
    closed: bool,
}

enum ToStore {
    Events(Vec<JournaledAudit>),
    /// A segment whose events have all been sent.
    Sealed(PathBuf),
}

/// One segment file, locked while it is written so that another server on the same workspace
/// does not replay it. Its lines end at the first zero byte.
struct Segment {
    path: PathBuf,
    file: File,
    /// Where the next line goes.
    end: u64,
}

impl Segment {
    /// Writes the file full of zeros and syncs it and its name.
    fn create(dir: &Path, boot: &str, number: u64) -> std::io::Result<Segment> {
        let path = dir.join(format!("{boot}-{number:06}.jsonl"));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        file.try_lock().map_err(std::io::Error::from)?;
        let zeros = vec![0u8; 64 << 10];
        for _ in 0..SEGMENT_BYTES / zeros.len() as u64 {
            file.write_all(&zeros)?;
        }
        file.sync_all()?;
        File::open(dir)?.sync_all()?;
        Ok(Segment { path, file, end: 0 })
    }

    /// Writes the lines in place and syncs them.
    fn write(&mut self, lines: &[u8]) -> std::io::Result<()> {
        self.file.write_all_at(lines, self.end)?;
        self.end += lines.len() as u64;
        self.file.sync_data()
    }

    /// Starts preparing the next segment on another thread.
    fn prepare(dir: &Path, boot: &str, number: u64) -> JoinHandle<std::io::Result<Segment>> {
        let (dir, boot) = (dir.to_path_buf(), boot.to_owned());
        std::thread::spawn(move || Segment::create(&dir, &boot, number))
    }
}

impl Journal {
    /// Replays the segments a stopped server left in `dir` into `store`, then starts the
    /// writer thread and the drainer task.
    pub(crate) async fn open(dir: &Path, store: Store) -> std::io::Result<Journal> {
        std::fs::create_dir_all(dir)?;
        replay(dir, &store).await?;
        let boot = format!(
            "{:020}-{}",
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default(),
            std::process::id()
        );
        let segment = Segment::create(dir, &boot, 0)?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
        });
        let (to_store, from_writer) = mpsc::unbounded_channel();
        let (drained_tx, drained) = watch::channel(0);
        let hurry = Arc::new(Notify::new());
        {
            let shared = shared.clone();
            let dir = dir.to_path_buf();
            let boot = boot.clone();
            std::thread::Builder::new()
                .name("audit-journal".into())
                .spawn(move || write_loop(&shared, &dir, &boot, segment, &to_store))?;
        }
        let (stop_indexing, stop) = watch::channel(false);
        let indexer = tokio::spawn(index_loop(store.clone(), drained.clone(), stop));
        let drainer = tokio::spawn(drain_loop(
            store,
            dir.join(SET_ASIDE_FILE),
            from_writer,
            drained_tx,
            hurry.clone(),
        ));
        Ok(Journal {
            shared,
            boot,
            next: AtomicU64::new(0),
            drained,
            hurry,
            drainer: Mutex::new(Some(drainer)),
            indexer: Mutex::new(Some(indexer)),
            stop_indexing,
        })
    }

    /// A key for the next event, unique to it. The counter is zero-padded so that keys sort
    /// in the order they were given and the store's unique index on them grows at its end.
    pub(crate) fn key(&self) -> String {
        format!(
            "{}-{:012}",
            self.boot,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Journals an event; the answer comes once it is on disk.
    pub(crate) async fn append(&self, event: JournaledAudit) -> Result<(), String> {
        let mut line = serde_json::to_vec(&event).map_err(|e| e.to_string())?;
        line.push(b'\n');
        let (done, written) = oneshot::channel();
        {
            let mut q = self
                .shared
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if q.closed {
                return Err("the audit journal is closed".into());
            }
            q.lines.extend_from_slice(&line);
            q.events.push(event);
            q.waiters.push(done);
            q.queued += 1;
        }
        self.shared.ready.notify_one();
        written
            .await
            .unwrap_or_else(|_| Err("the audit journal stopped".into()))
    }

    /// Waits until every event journaled so far is in the store's audit log.
    pub(crate) async fn flush(&self) {
        let queued = self
            .shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .queued;
        let mut drained = self.drained.clone();
        while *drained.borrow_and_update() < queued {
            self.hurry.notify_one();
            if drained.changed().await.is_err() {
                return;
            }
        }
    }
}

impl Journal {
    /// Stops taking events and waits until every event journaled so far is in the store and
    /// every segment deleted: a server that stops this way leaves nothing to replay.
    pub(crate) async fn close(&self) {
        self.stop_taking();
        self.hurry.notify_one();
        // What is not indexed now is indexed after the next start.
        self.stop_indexing.send_replace(true);
        for (name, task) in [("drainer", &self.drainer), ("indexer", &self.indexer)] {
            let task = task.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(task) = task
                && let Err(e) = task.await
            {
                tracing::error!("audit journal: the {name} stopped: {e}");
            }
        }
    }

    /// Refuses further events; the writer writes what is queued and ends.
    fn stop_taking(&self) {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed = true;
        self.shared.ready.notify_one();
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.stop_taking();
    }
}

/// Writes and syncs each group, answers its waiters and passes its events on.
fn write_loop(
    shared: &Shared,
    dir: &Path,
    boot: &str,
    mut segment: Segment,
    to_store: &mpsc::UnboundedSender<ToStore>,
) {
    let mut number = 0;
    let mut next = Some(Segment::prepare(dir, boot, number + 1));
    loop {
        let (lines, events, waiters) = {
            let mut q = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
            while q.lines.is_empty() && !q.closed {
                q = shared.ready.wait(q).unwrap_or_else(PoisonError::into_inner);
            }
            if q.lines.is_empty() {
                break;
            }
            (
                std::mem::take(&mut q.lines),
                std::mem::take(&mut q.events),
                std::mem::take(&mut q.waiters),
            )
        };
        if segment.end + lines.len() as u64 > SEGMENT_BYTES {
            let prepared = next.take().map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("preparing a segment panicked")))
            });
            match prepared {
                Some(Ok(fresh)) => {
                    number += 1;
                    let old = std::mem::replace(&mut segment, fresh);
                    let _ = to_store.send(ToStore::Sealed(old.path));
                    next = Some(Segment::prepare(dir, boot, number + 1));
                }
                // The current segment grows on (its syncs are slower); it is replayed whole if
                // need be.
                Some(Err(e)) => {
                    tracing::error!("audit journal: a new segment in {}: {e}", dir.display());
                }
                None => {}
            }
        }
        let written = segment
            .write(&lines)
            .map_err(|e| format!("audit journal {}: {e}", segment.path.display()));
        if let Err(e) = &written {
            tracing::error!("{e}");
        }
        // Even unsynced events go on to the store: better there than nowhere.
        let _ = to_store.send(ToStore::Events(events));
        for w in waiters {
            let _ = w.send(written.clone());
        }
    }
    let _ = to_store.send(ToStore::Sealed(segment.path));
    // The unused next segment holds no events.
    if let Some(Ok(Ok(unused))) = next.map(JoinHandle::join) {
        let _ = to_store.send(ToStore::Sealed(unused.path));
    }
}

/// Where events the store refuses are set aside, one JSON line each, in the journal's
/// directory; replay does not read it.
pub(crate) const SET_ASIDE_FILE: &str = "set-aside.jsonl.refused";
/// Appends of a group the store refused before its events are tried one at a time.
const GROUP_ATTEMPTS: u32 = 3;
/// Events the store refused since the server started, for `/metrics`.
pub(crate) static SET_ASIDE: AtomicU64 = AtomicU64::new(0);

/// Appends `events` to the store. A group the store keeps refusing is appended one event at a
/// time, and an event it refuses while it takes others (one it cannot hold) is set aside in
/// `set_aside` and counted, so one bad event cannot hold up every event behind it. While the
/// store is down, it waits and tries again: nothing is lost.
async fn append_or_set_aside(store: &Store, events: &[JournaledAudit], set_aside: &Path) {
    for attempt in 1..=GROUP_ATTEMPTS {
        match store.append_journaled(events).await {
            Ok(_) => return,
            Err(e) => tracing::error!(
                "audit journal: appending {} events to the store (attempt {attempt}): {e}",
                events.len()
            ),
        }
        if attempt < GROUP_ATTEMPTS {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    let mut i = 0;
    while i < events.len() {
        let one = &events[i..=i];
        let Err(e) = store.append_journaled(one).await else {
            i += 1;
            continue;
        };
        if store.ping().await.is_err() {
            tracing::error!("audit journal: the store is down ({e}); trying again");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        tracing::error!(
            "audit journal: the store refuses event {} ({e}); set aside in {}",
            one[0].key,
            set_aside.display()
        );
        let line = serde_json::to_string(&one[0]).unwrap_or_default() + "\n";
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(set_aside)
            .and_then(|mut f| {
                f.write_all(line.as_bytes())?;
                f.sync_data()
            });
        if let Err(e) = written {
            tracing::error!(
                "audit journal: setting aside in {}: {e}",
                set_aside.display()
            );
        }
        SET_ASIDE.fetch_add(1, Ordering::Relaxed);
        i += 1;
    }
}

/// Appends synced events to the store and deletes the segments it has all of.
async fn drain_loop(
    store: Store,
    set_aside: PathBuf,
    mut from_writer: mpsc::UnboundedReceiver<ToStore>,
    drained: watch::Sender<u64>,
    hurry: Arc<Notify>,
) {
    let mut messages = Vec::new();
    let mut events = Vec::new();
    let mut sealed = Vec::new();
    let mut total = 0;
    while from_writer.recv_many(&mut messages, DRAIN_GROUP).await > 0 {
        for m in messages.drain(..) {
            match m {
                ToStore::Events(e) => events.extend(e),
                ToStore::Sealed(path) => sealed.push(path),
            }
        }
        let began = Instant::now();
        for chunk in events.chunks(DRAIN_GROUP) {
            append_or_set_aside(&store, chunk, &set_aside).await;
        }
        for path in sealed.drain(..) {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::error!("audit journal: removing {}: {e}", path.display());
            }
        }
        if began.elapsed() > SLOW_DRAIN {
            tracing::info!(
                "audit journal: {} events took {:.0} ms to append to the store",
                events.len(),
                began.elapsed().as_secs_f64() * 1000.0
            );
        }
        total += events.len() as u64;
        events.clear();
        drained.send_replace(total);
        // A closed journal's last events go to the store without a pause.
        if from_writer.is_closed() {
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(DRAIN_PAUSE) => {}
            () = hurry.notified() => {}
        }
    }
}

/// Indexes appended events in bulk whenever enough have gathered, until told to stop.
async fn index_loop(
    store: Store,
    mut drained: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut seen = *drained.borrow_and_update();
    loop {
        let (lag, upto) = match store.audit_index_lag().await {
            Ok(v) => v,
            Err(e) => {
                tracing::error!("audit index: {e}");
                (0, 0)
            }
        };
        let batch = (u64::try_from(upto).unwrap_or(0) / 8).clamp(INDEX_MIN, INDEX_MAX);
        let mut waiting = lag;
        while waiting < batch {
            tokio::select! {
                changed = drained.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let now = *drained.borrow_and_update();
                    waiting += now - seen;
                    seen = now;
                }
                _ = stop.changed() => return,
            }
        }
        // After each chunk, a pause of at least three times what it took: the pass keeps to a
        // quarter of the store's time, whatever the disk.
        let mut resumed = Instant::now();
        let pace = || {
            let pause = INDEX_PAUSE.max(resumed.elapsed() * 3);
            resumed = Instant::now() + pause;
            let stop = stop.clone();
            async move {
                tokio::time::sleep(pause).await;
                !*stop.borrow()
            }
        };
        let began = Instant::now();
        tracing::info!("audit index: a pass over {waiting} events after id {upto} begins");
        match store
            .index_audit(
                usize::try_from(batch).unwrap_or(usize::MAX),
                INDEX_CHUNK,
                pace,
            )
            .await
        {
            Ok(_) if *stop.borrow() => {
                tracing::info!(
                    "audit index: the pass stopped with the server; the next resumes it"
                );
            }
            Ok(n) => tracing::info!(
                "audit index: {n} events indexed in {:.1} s",
                began.elapsed().as_secs_f64()
            ),
            Err(e) => {
                tracing::error!("audit index: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// Appends the events of every segment no running server holds to the store, then deletes
/// the segment. A line cut short by a crash was never answered and is dropped; any other line
/// that cannot be read is reported and the segment kept for inspection.
async fn replay(dir: &Path, store: &Store) -> std::io::Result<()> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    paths.sort();
    for path in paths {
        let mut file = File::open(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => continue,
            Err(TryLockError::Error(e)) => return Err(e),
        }
        let mut text = Vec::new();
        file.read_to_end(&mut text)?;
        let (events, bad) = parse_segment(&path, &text);
        for chunk in events.chunks(DRAIN_GROUP) {
            append_or_set_aside(store, chunk, &dir.join(SET_ASIDE_FILE)).await;
        }
        tracing::info!(
            "audit journal: replayed {} events of {}",
            events.len(),
            path.display()
        );
        if bad == 0 {
            std::fs::remove_file(&path)?;
        } else {
            std::fs::rename(&path, path.with_extension("jsonl.unreadable"))?;
        }
    }
    Ok(())
}

/// The events of a segment's text and how many lines could not be read.
fn parse_segment(path: &Path, text: &[u8]) -> (Vec<JournaledAudit>, usize) {
    let mut events = Vec::new();
    let mut bad = 0;
    // The zeros a segment was prepared with follow its last line.
    let text = &text[..text.iter().position(|b| *b == 0).unwrap_or(text.len())];
    let complete = text.last().is_none_or(|b| *b == b'\n');
    let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
    let last = lines.len().saturating_sub(1);
    for (n, line) in lines.into_iter().enumerate() {
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<JournaledAudit>(line) {
            Ok(e) => events.push(e),
            Err(_) if n == last && !complete => {
                tracing::warn!(
                    "audit journal {} line {}: cut short by a crash before it was answered; dropped",
                    path.display(),
                    n + 1
                );
            }
            Err(e) => {
                tracing::error!("audit journal {} line {}: {e}", path.display(), n + 1);
                bad += 1;
            }
        }
    }
    (events, bad)
}

/// The open work orders of subscribers, read for many requests in one query: every statement
/// is a round trip to the store (a thread hand-off on SQLite), and at thousands of decisions a
/// second the round trips, not the queries, were the cost.
pub(crate) struct OrdersWanted {
    pub subscriber: i64,
    pub done: oneshot::Sender<Result<Vec<retain_store::WorkOrderRecord>, String>>,
}

/// Reads at most this many subscribers' work orders in one query.
const READ_GROUP: usize = 512;

/// Starts the reader; it ends when every sender is gone.
pub(crate) fn order_reader(store: Store) -> mpsc::Sender<OrdersWanted> {
    let (tx, mut rx) = mpsc::channel::<OrdersWanted>(4 * READ_GROUP);
    tokio::spawn(async move {
        let mut group = Vec::with_capacity(READ_GROUP);
        while rx.recv_many(&mut group, READ_GROUP).await > 0 {
            let mut ids: Vec<i64> = group.iter().map(|w| w.subscriber).collect();
            ids.sort_unstable();
            ids.dedup();
            let mut by = std::collections::HashMap::<i64, Vec<_>>::new();
            let read = store.open_work_orders_of(&ids).await.map(|orders| {
                for order in orders {
                    by.entry(order.subscriber_id).or_default().push(order);
                }
            });
            for w in group.drain(..) {
                let answer = match &read {
                    Ok(()) => Ok(by.get(&w.subscriber).cloned().unwrap_or_default()),
                    Err(e) => Err(e.to_string()),
                };
                // A caller that gave up waiting needs no answer.
                let _ = w.done.send(answer);
            }
        }
    });
    tx
}

#[cfg(test)]
mod tests {
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
            assert_eq!(text.len() as u64, SEGMENT_BYTES, "written in place");
            on_disk += parse_segment(&segment, &text).0.len();
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
        let keys: std::collections::HashSet<&str> =
            log.iter().map(|e| e.entity_id.as_str()).collect();
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
}

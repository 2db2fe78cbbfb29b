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

mod drain;

use retain_store::{JournaledAudit, Store};
use tokio::sync::{Notify, mpsc, oneshot, watch};

pub(crate) use drain::{SET_ASIDE, SET_ASIDE_FILE};
use drain::{drain_loop, index_loop, replay};

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

    /// Events journaled but not yet in the store's audit log: what a store that fell behind
    /// or went down leaves waiting.
    pub(crate) fn depth(&self) -> u64 {
        self.queued().saturating_sub(*self.drained.borrow())
    }

    /// Events queued since the server started.
    fn queued(&self) -> u64 {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .queued
    }

    /// Waits until every event journaled so far is in the store's audit log.
    pub(crate) async fn flush(&self) {
        let queued = self.queued();
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

#[cfg(test)]
mod tests;

//! The journal's side towards the store: appending synced events in large transactions
//! (setting aside what the store refuses), indexing them in bulk, and replaying the segments a
//! stopped server left.

use super::*;

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
pub(super) async fn drain_loop(
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
pub(super) async fn index_loop(
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
pub(super) async fn replay(dir: &Path, store: &Store) -> std::io::Result<()> {
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
pub(super) fn parse_segment(path: &Path, text: &[u8]) -> (Vec<JournaledAudit>, usize) {
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

//! Audit of reads with group commit. Every read of customer data is audited before it is
//! answered, but one insert and commit per request would make all requests queue for the
//! store's write lock. One task writes instead: each request hands over its event and waits for
//! the commit of the group it joined, so nothing answered is missing from the log after a crash.

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

/// One event waiting to be written.
pub(crate) struct Pending {
    pub actor: String,
    pub action: String,
    pub entity: String,
    pub entity_id: String,
    pub detail: Value,
    pub done: oneshot::Sender<Result<(), String>>,
}

/// Events written in one transaction at most.
const GROUP: usize = 512;

/// Starts the writer; it ends when every sender is gone.
pub(crate) fn writer(store: retain_store::Store) -> mpsc::Sender<Pending> {
    let (tx, mut rx) = mpsc::channel::<Pending>(4 * GROUP);
    tokio::spawn(async move {
        let mut group = Vec::with_capacity(GROUP);
        while rx.recv_many(&mut group, GROUP).await > 0 {
            let audits: Vec<retain_store::Audit<'_>> = group
                .iter()
                .map(|p| retain_store::Audit {
                    actor: &p.actor,
                    action: &p.action,
                    detail: p.detail.clone(),
                })
                .collect();
            let events: Vec<(&str, &str, &retain_store::Audit<'_>)> = group
                .iter()
                .zip(&audits)
                .map(|(p, a)| (p.entity.as_str(), p.entity_id.as_str(), a))
                .collect();
            let result = store.audit_batch(&events).await.map_err(|e| e.to_string());
            drop(events);
            drop(audits);
            for p in group.drain(..) {
                // A caller that gave up waiting needs no answer.
                let _ = p.done.send(result.clone());
            }
        }
    });
    tx
}

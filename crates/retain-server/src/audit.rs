//! Audit of reads with group commit. Every read of customer data is audited before it is
//! answered, but one insert and commit per request would make all requests queue for the
//! store's write lock. One task writes instead: each request hands over its event and waits for
//! the commit of the group it joined, so nothing answered is missing from the log after a crash.
//!
//! A decision also needs the subscriber's open work orders. The writer reads those for the
//! whole group in one query before it commits, so a decision costs the store no statement of
//! its own: every statement is a round trip (a thread hand-off on SQLite), and at thousands of
//! decisions a second the round trips, not the queries, were the cost.

use std::collections::HashMap;

use retain_store::WorkOrderRecord;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

/// One event waiting to be written.
pub(crate) struct Pending {
    pub actor: String,
    pub action: String,
    pub entity: String,
    pub entity_id: String,
    pub detail: Value,
    /// A subscriber whose open work orders the request needs.
    pub work_orders_of: Option<i64>,
    pub done: oneshot::Sender<Done>,
}

/// The answer to a pending event.
pub(crate) struct Done {
    pub committed: Result<(), String>,
    /// The open work orders of `work_orders_of` (empty when none was asked for).
    pub work_orders: Result<Vec<WorkOrderRecord>, String>,
}

/// Events written in one transaction at most.
const GROUP: usize = 512;

/// Starts the writer; it ends when every sender is gone.
pub(crate) fn writer(store: retain_store::Store) -> mpsc::Sender<Pending> {
    let (tx, mut rx) = mpsc::channel::<Pending>(4 * GROUP);
    tokio::spawn(async move {
        let mut group = Vec::with_capacity(GROUP);
        while rx.recv_many(&mut group, GROUP).await > 0 {
            let mut ids: Vec<i64> = group.iter().filter_map(|p| p.work_orders_of).collect();
            ids.sort_unstable();
            ids.dedup();
            let orders: Result<HashMap<i64, Vec<WorkOrderRecord>>, String> = if ids.is_empty() {
                Ok(HashMap::new())
            } else {
                store
                    .open_work_orders_of(&ids)
                    .await
                    .map(|orders| {
                        let mut by: HashMap<i64, Vec<WorkOrderRecord>> = HashMap::new();
                        for order in orders {
                            by.entry(order.subscriber_id).or_default().push(order);
                        }
                        by
                    })
                    .map_err(|e| e.to_string())
            };
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
                let work_orders = match (&orders, p.work_orders_of) {
                    (_, None) => Ok(Vec::new()),
                    (Ok(by), Some(id)) => Ok(by.get(&id).cloned().unwrap_or_default()),
                    (Err(e), Some(_)) => Err(e.clone()),
                };
                // A caller that gave up waiting needs no answer.
                let _ = p.done.send(Done {
                    committed: result.clone(),
                    work_orders,
                });
            }
        }
    });
    tx
}

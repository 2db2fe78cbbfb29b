//! Open work orders read for many requests at once.

use retain_store::Store;
use tokio::sync::{mpsc, oneshot};

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

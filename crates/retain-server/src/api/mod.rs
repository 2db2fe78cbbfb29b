//! The data endpoints. Each handler gets the session the authorization layer admitted; the
//! per-manager scope is applied here, where the rows are known.

use retain_data::SubscriberId;
use serde_json::Value;

use crate::AppState;
use crate::auth::Session;
use crate::error::{ApiError, ApiResult};

mod campaigns;
mod groups;
mod insight;
mod schedule;
mod segments;
mod sources;

pub(crate) use campaigns::*;
pub(crate) use groups::*;
pub(crate) use insight::*;
pub(crate) use schedule::*;
pub(crate) use segments::*;
pub(crate) use sources::*;

pub(crate) fn id_of(text: &str, what: &str) -> ApiResult<i64> {
    text.parse()
        .map_err(|_| ApiError::bad_request(format!("{what} {text:?} is not a number")))
}

impl AppState {
    fn masked(&self, id: SubscriberId) -> String {
        self.0
            .msisdn
            .get(&id.get())
            .map_or_else(String::new, |m| retain_offers::mask(m))
    }

    /// Whether the session may see the subscriber: a manager only their own (or their
    /// branch's).
    fn sees(&self, s: &Session, id: SubscriberId) -> bool {
        let id = id.get();
        let field = |m: &std::collections::HashMap<i64, String>| {
            m.get(&id).map_or_else(String::new, Clone::clone)
        };
        s.scope().is_none_or(|scope| {
            self.0.msisdn.contains_key(&id)
                && scope.admits(&field(&self.0.managers), &field(&self.0.branches))
        })
    }

    /// Audits a read or a change; the request fails when its audit cannot be recorded.
    async fn audit(
        &self,
        s: &Session,
        entity: &str,
        id: &str,
        action: &str,
        detail: Value,
    ) -> ApiResult<()> {
        self.audit_reading(s, entity, id, action, detail, None)
            .await
            .map(drop)
    }

    /// Audits a read (see `audit.rs`) and reads the open work orders of `work_orders_of`
    /// meanwhile.
    async fn audit_reading(
        &self,
        s: &Session,
        entity: &str,
        id: &str,
        action: &str,
        detail: Value,
        work_orders_of: Option<i64>,
    ) -> ApiResult<Vec<retain_store::WorkOrderRecord>> {
        let journal = &self.0.journal;
        let event = retain_store::JournaledAudit {
            key: journal.key(),
            at: chrono::Utc::now().to_rfc3339(),
            actor: s.name.clone(),
            action: action.to_owned(),
            entity: entity.to_owned(),
            entity_id: id.to_owned(),
            detail,
        };
        let orders = async {
            let Some(subscriber) = work_orders_of else {
                return Ok(Vec::new());
            };
            let (done, answer) = tokio::sync::oneshot::channel();
            let wanted = crate::orders::OrdersWanted { subscriber, done };
            match self.0.orders.send(wanted).await {
                Ok(()) => answer
                    .await
                    .unwrap_or_else(|_| Err("the work order reader stopped".into())),
                Err(_) => Err("the work order reader stopped".into()),
            }
        };
        let (journaled, orders) = tokio::join!(journal.append(event), orders);
        // Nothing is answered that the audit log does not hold.
        if let Err(e) = journaled {
            tracing::error!("audit {entity} {id} {action}: {e}");
            return Err(ApiError::audit_unavailable());
        }
        orders.map_err(ApiError::internal)
    }
}

/// Runs planning work on a blocking thread: it is CPU-bound, and with the churn model built
/// in its future is not `Send` (the model's booster is not).
pub(crate) async fn off_thread<T, F, Fut>(state: AppState, f: F) -> ApiResult<T>
where
    F: FnOnce(AppState) -> Fut + Send + 'static,
    Fut: Future<Output = ApiResult<T>>,
    T: Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(f(state)))
        .await
        .map_err(ApiError::internal)?
}

pub(crate) fn engine(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e)
}

/// Every string in `value` with the workspace's directory taken off its front.
pub(crate) fn relative(value: &mut serde_json::Value, root: &str) {
    match value {
        serde_json::Value::String(s) if s.contains(root) => *s = s.replace(root, ""),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| relative(v, root)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|v| relative(v, root)),
        _ => {}
    }
}

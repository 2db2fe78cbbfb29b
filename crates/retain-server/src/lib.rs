//! The HTTP API and the dashboard over a workspace: login with users of the operational store
//! (bearer tokens for the API, an HttpOnly cookie with CSRF protection for the dashboard),
//! roles and per-manager data scoping enforced in one table, warnings, customer 360,
//! segments, model, offers, decisions, campaigns, work orders and callbacks, the audit log,
//! health, metrics and the OpenAPI document. Handlers call the domain crates; none of those
//! knows HTTP.

mod api;
mod audit;
mod auth;
mod authz;
mod error;
mod guard;
mod mask;
mod openapi;
mod routes;
mod ui;
mod warnings;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use retain_campaign::Campaigns;
use retain_offers::DecisionIndex;
use retain_store::Store;

pub use auth::{hash_password, new_password, verify_password};
pub use authz::RULES;
pub use openapi::{openapi, undescribed};
pub use routes::router;

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] retain_store::Error),
    #[error(transparent)]
    Data(#[from] retain_data::Error),
    #[error(transparent)]
    Offers(#[from] retain_offers::Error),
    #[error(transparent)]
    Campaign(#[from] retain_campaign::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub(crate) struct Inner {
    pub root: PathBuf,
    pub store: Store,
    /// The campaign loop; its query session serves every read of the data.
    pub campaigns: Campaigns,
    pub sessions: Mutex<HashMap<String, auth::Session>>,
    pub lockout: Mutex<auth::Lockout>,
    /// The latest match run's decisions, when there is one.
    pub decisions: Option<DecisionIndex>,
    /// subscriber → account manager and branch, for data scoping.
    pub managers: HashMap<i64, String>,
    pub branches: HashMap<i64, String>,
    /// subscriber → phone number, shown masked.
    pub msisdn: HashMap<i64, String>,
    pub warnings: warnings::Cache,
    /// Audited reads, journaled before they are answered.
    pub journal: audit::Journal,
    /// Open work orders, read for many requests at once.
    pub orders: tokio::sync::mpsc::Sender<audit::OrdersWanted>,
    /// The overview, computed once: the data does not change while the server runs.
    pub overview: tokio::sync::OnceCell<serde_json::Value>,
    /// (route, status) → requests served.
    pub requests: Mutex<BTreeMap<(String, u16), u64>>,
}

impl AppState {
    /// Opens a workspace: its store, the latest decisions and who manages whom.
    pub async fn open(root: &Path) -> Result<AppState, Error> {
        Self::open_with_store(root, None).await
    }

    /// Opens a workspace with another operational store than its `retain.toml` names
    /// (`sqlite://…` or `postgres://…`).
    pub async fn open_with_store(root: &Path, store_url: Option<&str>) -> Result<AppState, Error> {
        let campaigns = Campaigns::open_with_store(root, store_url).await?;
        let ctx = &campaigns.ctx;
        let batches = retain_offers::frame::query(
            ctx,
            "SELECT subscriber_id, manager_id, branch_id, msisdn FROM subscribers",
            "account managers",
        )
        .await?;
        let ids = retain_offers::frame::ids(&batches, "subscriber_id")?;
        let managers = ids
            .iter()
            .copied()
            .zip(retain_offers::frame::texts(&batches, "manager_id")?)
            .filter(|(_, m)| !m.is_empty())
            .collect();
        let branches = ids
            .iter()
            .copied()
            .zip(retain_offers::frame::texts(&batches, "branch_id")?)
            .collect();
        let msisdn: HashMap<i64, String> = ids
            .into_iter()
            .zip(retain_offers::frame::texts(&batches, "msisdn")?)
            .collect();
        let decisions = match retain_offers::latest_run_dir(root) {
            Some(dir) => Some(DecisionIndex::load(
                &dir,
                msisdn.iter().map(|(id, m)| (m.clone(), *id)).collect(),
            )?),
            None => None,
        };
        let journal = audit::Journal::open(&root.join(audit::DIR), campaigns.store.clone()).await?;
        let orders = audit::order_reader(campaigns.store.clone());
        Ok(AppState(Arc::new(Inner {
            root: root.to_path_buf(),
            store: campaigns.store.clone(),
            campaigns,
            sessions: Mutex::new(HashMap::new()),
            lockout: Mutex::new(auth::Lockout::default()),
            decisions,
            managers,
            branches,
            msisdn,
            warnings: warnings::Cache::default(),
            journal,
            orders,
            overview: tokio::sync::OnceCell::new(),
            requests: Mutex::new(BTreeMap::new()),
        })))
    }

    /// Waits until every audited read so far is in the store's audit log (reads are journaled
    /// first and appended to the store a few times a second).
    pub async fn flush_audit(&self) {
        self.0.journal.flush().await;
    }

    /// Stops the server's background work: every journaled audit event is appended to the
    /// store and its segment deleted, and the store is closed (SQLite folds its write-ahead
    /// log back into the database). Requests after this fail.
    pub async fn close(&self) {
        self.0.journal.close().await;
        self.0.store.close().await;
    }
}

/// How long requests in flight may take to finish once the server is asked to stop.
const GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves the API and the dashboard on `addr` until the process is asked to stop (SIGTERM, as
/// a service manager stops it, or Ctrl-C).
pub async fn serve(state: AppState, addr: &str) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_on(state, listener, stop_requested()).await
}

/// Serves on `listener` until `stop` completes, then stops accepting, lets the requests in
/// flight finish (for at most [`GRACE`]) and closes the state ([`AppState::close`]): a server
/// stopped this way leaves no audit journal to replay.
pub async fn serve_on(
    state: AppState,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    tracing::info!(
        "serving {} on http://{}",
        state.0.root.display(),
        listener.local_addr()?
    );
    let (stopping, mut stopped) = tokio::sync::watch::channel(false);
    let served = axum::serve(listener, router(state.clone())).with_graceful_shutdown(async move {
        let _ = stopped.wait_for(|s| *s).await;
    });
    let deadline = async move {
        stop.await;
        tracing::info!("stopping: finishing the requests in flight");
        let _ = stopping.send(true);
        tokio::time::sleep(GRACE).await;
    };
    let served = tokio::select! {
        served = served => served,
        () = deadline => {
            tracing::warn!("stopping: requests still open after {GRACE:?} are dropped");
            Ok(())
        }
    };
    state.close().await;
    tracing::info!("stopped: the audit journal is in the store");
    Ok(served?)
}

/// Completes on SIGTERM or Ctrl-C.
async fn stop_requested() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::error!("cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

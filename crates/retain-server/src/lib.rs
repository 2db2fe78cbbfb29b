//! The HTTP API over a workspace: login with users of the operational store, bearer tokens,
//! roles and per-manager data scoping, real-time decisions, health and metrics, and the
//! OpenAPI document. Handlers call the domain crates; none of them knows HTTP.

mod auth;
mod routes;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use retain_offers::DecisionIndex;
use retain_store::Store;

pub use auth::{hash_password, verify_password};
pub use routes::{openapi, router};

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
    Features(#[from] retain_features::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub(crate) struct Inner {
    pub root: PathBuf,
    pub store: Store,
    pub sessions: Mutex<HashMap<String, auth::Session>>,
    /// The latest match run's decisions, when there is one.
    pub decisions: Option<DecisionIndex>,
    /// subscriber → account manager, for data scoping.
    pub managers: HashMap<i64, String>,
    /// (route, status) → requests served.
    pub requests: Mutex<BTreeMap<(String, u16), u64>>,
}

impl AppState {
    /// Opens a workspace: its store, the latest decisions and who manages whom.
    pub async fn open(root: &Path) -> Result<AppState, Error> {
        let workspace = retain_data::Workspace::open(root)?;
        let store = Store::connect(&workspace.store_url()).await?;
        let ctx = retain_features::session(&workspace).await?;
        let batches = retain_offers::frame::query(
            &ctx,
            "SELECT subscriber_id, manager_id FROM subscribers",
            "account managers",
        )
        .await?;
        let managers = retain_offers::frame::ids(&batches, "subscriber_id")?
            .into_iter()
            .zip(retain_offers::frame::texts(&batches, "manager_id")?)
            .filter(|(_, m)| !m.is_empty())
            .collect();
        let decisions = match retain_offers::latest_run_dir(root) {
            Some(dir) => Some(DecisionIndex::load(
                &dir,
                retain_offers::msisdn_map(&ctx).await?,
            )?),
            None => None,
        };
        Ok(AppState(Arc::new(Inner {
            root: root.to_path_buf(),
            store,
            sessions: Mutex::new(HashMap::new()),
            decisions,
            managers,
            requests: Mutex::new(BTreeMap::new()),
        })))
    }
}

/// Serves the API on `addr` until the process ends.
pub async fn serve(state: AppState, addr: &str) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(
        "serving {} on http://{}",
        state.0.root.display(),
        listener.local_addr()?
    );
    axum::serve(listener, router(state)).await?;
    Ok(())
}

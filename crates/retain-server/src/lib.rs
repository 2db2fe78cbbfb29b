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
mod metrics;
mod openapi;
mod orders;
mod routes;
mod ui;
mod warnings;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use retain_campaign::Campaigns;
use retain_data::Workspace;
use retain_offers::DecisionIndex;
use retain_store::Store;

pub use auth::{MAX_PASSWORD_BYTES, hash_password, new_password, verify_password};
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
    Features(#[from] retain_features::Error),
    #[error(transparent)]
    Offers(#[from] retain_offers::Error),
    #[error(transparent)]
    Campaign(#[from] retain_campaign::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// How the server meets the network: its cookie, who reads `/metrics`, timeouts and limits.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Mark the dashboard's session cookie `Secure`, so browsers send it over HTTPS only. On by
    /// default; [`ServerOptions::for_addr`] turns it off for a server only this machine reaches.
    pub secure_cookies: bool,
    /// A token that may read `/metrics` (`Authorization: Bearer TOKEN`, as Prometheus sends
    /// it); without one only admins' sessions may.
    pub metrics_token: Option<String>,
    /// How long a client may take to send a request's headers (and an idle connection stays
    /// open) before the connection is closed.
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body (408 `timeout`).
    pub body_read_timeout: Duration,
    /// How long the server works on a request before it gives up (503 `timeout`).
    pub request_timeout: Duration,
    /// The largest request body accepted (413 `too_large`).
    pub max_body_bytes: usize,
    /// How long a session's user is trusted to be enabled before the store is asked again: a
    /// user disabled or removed from the command line loses their sessions within this.
    pub user_recheck: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            secure_cookies: true,
            metrics_token: None,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_mins(5),
            max_body_bytes: 1 << 20,
            user_recheck: Duration::from_secs(5),
        }
    }
}

impl ServerOptions {
    /// The defaults for a server listening on `addr`: `Secure` cookies unless the address is a
    /// loopback one (`127.0.0.1`, `[::1]`, `localhost`), which a browser reaches over plain
    /// HTTP. A server on any other address is meant to be reached over HTTPS (directly or
    /// through a proxy that terminates TLS).
    #[must_use]
    pub fn for_addr(addr: &str) -> ServerOptions {
        ServerOptions {
            secure_cookies: !is_loopback(addr),
            ..ServerOptions::default()
        }
    }
}

/// Whether `addr` (`host:port`) only accepts connections from this machine.
#[must_use]
pub fn is_loopback(addr: &str) -> bool {
    if let Ok(a) = addr.parse::<std::net::SocketAddr>() {
        return a.ip().is_loopback();
    }
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.eq_ignore_ascii_case("localhost")
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
    /// user → when the store last said whether they may still work, and what it said.
    pub(crate) user_checks: Mutex<HashMap<String, (Instant, bool)>>,
    pub lockout: Mutex<auth::Lockout>,
    /// Argon2 runs on blocking threads, this many at a time (each takes 19 MiB).
    pub password_slots: Arc<tokio::sync::Semaphore>,
    /// Passwords checked, for known and unknown names alike.
    pub password_checks: AtomicU64,
    pub options: ServerOptions,
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
    pub orders: tokio::sync::mpsc::Sender<orders::OrdersWanted>,
    /// The overview, computed once: the data does not change while the server runs.
    pub overview: tokio::sync::OnceCell<retain_features::Overview>,
    /// (route, status) → requests served.
    pub requests: Mutex<BTreeMap<(String, u16), u64>>,
    /// Latencies per route and requests in flight.
    pub(crate) latency: metrics::Latency,
}

impl AppState {
    /// Opens a workspace: its store, the latest decisions and who manages whom.
    pub async fn open(workspace: &Workspace) -> Result<AppState, Error> {
        Self::open_with_store(workspace, None).await
    }

    /// Opens a workspace with another operational store than its `retain.toml` names
    /// (`sqlite://…` or `postgres://…`).
    pub async fn open_with_store(
        workspace: &Workspace,
        store_url: Option<&str>,
    ) -> Result<AppState, Error> {
        Self::open_with_options(workspace, store_url, ServerOptions::default()).await
    }

    /// Opens a workspace (with another store when `store_url` names one) to serve it with
    /// `options`.
    pub async fn open_with_options(
        workspace: &Workspace,
        store_url: Option<&str>,
        options: ServerOptions,
    ) -> Result<AppState, Error> {
        // The hash unknown names are checked against, ready before the first login.
        drop(tokio::task::spawn_blocking(auth::dummy_hash));
        let campaigns = Campaigns::open_with_store(workspace, store_url).await?;
        let ctx = &campaigns.ctx;
        let batches = retain_features::frame::query(
            ctx,
            "SELECT subscriber_id, manager_id, branch_id, msisdn FROM subscribers",
            "account managers",
        )
        .await?;
        let ids = retain_features::frame::ids(&batches, "subscriber_id")?;
        let managers = ids
            .iter()
            .copied()
            .zip(retain_features::frame::texts(&batches, "manager_id")?)
            .filter(|(_, m)| !m.is_empty())
            .collect();
        let branches = ids
            .iter()
            .copied()
            .zip(retain_features::frame::texts(&batches, "branch_id")?)
            .collect();
        let msisdn: HashMap<i64, String> = ids
            .into_iter()
            .zip(retain_features::frame::texts(&batches, "msisdn")?)
            .collect();
        let decisions = match retain_offers::latest_run_dir(&campaigns.workspace) {
            Some(dir) => Some(DecisionIndex::load(
                &dir,
                msisdn.iter().map(|(id, m)| (m.clone(), *id)).collect(),
            )?),
            None => None,
        };
        let journal =
            audit::Journal::open(&workspace.root().join(audit::DIR), campaigns.store.clone())
                .await?;
        let orders = orders::order_reader(campaigns.store.clone());
        Ok(AppState(Arc::new(Inner {
            root: workspace.root().to_path_buf(),
            store: campaigns.store.clone(),
            campaigns,
            sessions: Mutex::new(HashMap::new()),
            user_checks: Mutex::new(HashMap::new()),
            lockout: Mutex::new(auth::Lockout::default()),
            password_slots: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8)),
            )),
            password_checks: AtomicU64::new(0),
            options,
            decisions,
            managers,
            branches,
            msisdn,
            warnings: warnings::Cache::default(),
            journal,
            orders,
            overview: tokio::sync::OnceCell::new(),
            requests: Mutex::new(BTreeMap::new()),
            latency: metrics::Latency::default(),
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

/// Request headers larger than this are refused (431) before any handler runs.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Serves on `listener` until `stop` completes, then stops accepting, lets the requests in
/// flight finish (for at most [`GRACE`]) and closes the state ([`AppState::close`]): a server
/// stopped this way leaves no audit journal to replay. A connection that takes longer than
/// [`ServerOptions::header_read_timeout`] to send a request's headers, or stays idle that
/// long between requests, is closed.
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
    let app = router(state.clone());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(state.0.options.header_read_timeout)
        .max_header_size(MAX_HEADER_BYTES);
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let connection = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let mut stopped = stopped.clone();
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(e) = served {
                        tracing::debug!("connection: {e}");
                    }
                    return;
                }
                _ = stopped.wait_for(|s| *s) => {}
            }
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        });
        // Finished connections leave the set as new ones come.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    tracing::info!("stopping: finishing the requests in flight");
    let _ = stopping.send(true);
    let finished = tokio::time::timeout(GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!("stopping: requests still open after {GRACE:?} are dropped");
        connections.shutdown().await;
    }
    state.close().await;
    tracing::info!("stopped: the audit journal is in the store");
    Ok(())
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

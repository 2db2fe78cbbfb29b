//! Where the analytic plans run: the embedded engine (DataFusion in this process, the default)
//! or a cluster engine the binary connects to (Apache Ballista, in `retain-cluster`).
//!
//! The choice is made once per process, before the first session: it is a deployment setting
//! like the allocator, and every stage of a run must see the same engine. This crate only holds
//! the choice; the cluster's client lives in the leaf crate that depends on Ballista, so that the
//! library crates and their tests build without it.

use std::fmt;
use std::sync::{Arc, OnceLock};

use datafusion::execution::context::SessionContext;
use datafusion::prelude::SessionConfig;

use crate::error::Result;

/// Builds a session whose plans run on a cluster, from the session configuration retain would
/// give the embedded engine.
pub trait Cluster: Send + Sync {
    /// The engine's URL as the user gave it (`ballista://host:port`), for logs and run records.
    fn url(&self) -> &str;
    /// A session whose plans execute on the cluster. Tables registered in it must be readable by
    /// every node (a shared filesystem path or object storage).
    fn session(&self, config: SessionConfig) -> Result<SessionContext>;
}

impl fmt::Debug for dyn Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster").field("url", &self.url()).finish()
    }
}

static CLUSTER: OnceLock<Arc<dyn Cluster>> = OnceLock::new();

/// Runs every later session's plans on `cluster`. A process runs on one engine: a second call
/// with another engine is refused.
pub fn use_cluster(cluster: Arc<dyn Cluster>) -> std::result::Result<(), String> {
    let url = cluster.url().to_owned();
    let installed = CLUSTER.get_or_init(|| cluster);
    if installed.url() == url {
        Ok(())
    } else {
        Err(format!(
            "this process already runs on {}; it cannot switch to {url}",
            installed.url()
        ))
    }
}

/// The cluster plans run on, if one was chosen.
#[must_use]
pub fn cluster() -> Option<&'static Arc<dyn Cluster>> {
    CLUSTER.get()
}

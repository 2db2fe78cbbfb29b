//! `retain cluster scheduler`: Ballista's scheduler, as retain runs it.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;

use crate::engine::split_address;
use crate::error::{Error, Result};

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// `HOST:PORT` to listen on; clients use `ballista://HOST:PORT` and executors
    /// `--scheduler HOST:PORT`.
    pub bind: String,
    /// The host name executors and clients reach this scheduler by, when not the bound one
    /// (behind NAT or in a container).
    pub external_host: Option<String>,
    /// Seconds without a heartbeat after which an executor is taken for dead and its tasks are
    /// run again elsewhere.
    pub executor_timeout_seconds: u64,
    /// Times a task is tried before its job fails.
    pub task_max_failures: usize,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            bind: "127.0.0.1:50050".to_owned(),
            external_host: None,
            executor_timeout_seconds: 60,
            task_max_failures: 4,
        }
    }
}

/// Runs the scheduler until the process is stopped.
pub async fn run_scheduler(options: &SchedulerOptions) -> Result<()> {
    let (host, port, address) = resolve(&options.bind)?;
    let timeout = options.executor_timeout_seconds.max(1);
    let config = SchedulerConfig {
        bind_host: address.ip().to_string(),
        bind_port: port,
        external_host: options.external_host.clone().unwrap_or(host),
        executor_timeout_seconds: timeout,
        // Dead executors are looked for several times within a timeout, so that a killed one's
        // tasks are rescheduled soon after it is declared dead.
        expire_dead_executor_interval_seconds: (timeout / 4).clamp(1, 15),
        no_executors_grace_period_seconds: timeout,
        task_max_failures: options.task_max_failures.max(1),
        override_logical_codec: Some(crate::codec::logical()),
        override_physical_codec: Some(crate::codec::physical()),
        ..SchedulerConfig::default()
    };
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| ballista("setting up the scheduler's state", e))?;
    tracing::info!(%address, "retain cluster scheduler listening");
    start_server(cluster, address, Arc::new(config))
        .await
        .map_err(|e| ballista(format!("the scheduler on {address}"), e))
}

/// `HOST:PORT` checked, split, and resolved to the address to bind.
pub(crate) fn resolve(address: &str) -> Result<(String, u16, SocketAddr)> {
    let (host, port) = split_address(address).map_err(|reason| Error::BadAddress {
        address: address.to_owned(),
        reason,
    })?;
    let socket = address
        .to_socket_addrs()
        .map_err(|e| Error::BadAddress {
            address: address.to_owned(),
            reason: e.to_string(),
        })?
        .next()
        .ok_or_else(|| Error::BadAddress {
            address: address.to_owned(),
            reason: "resolves to no address".to_owned(),
        })?;
    Ok((host, port, socket))
}

pub(crate) fn ballista(
    context: impl Into<String>,
    source: ballista_core::error::BallistaError,
) -> Error {
    Error::Ballista {
        context: context.into(),
        source,
    }
}

//! `retain cluster executor`: Ballista's executor, as retain runs it.

use std::path::PathBuf;
use std::sync::Arc;

use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};

use crate::engine::split_address;
use crate::error::{Error, Result};
use crate::scheduler::{ballista, resolve};

/// How an executor runs.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler's `HOST:PORT`.
    pub scheduler: String,
    /// `HOST:PORT` of this executor's data (Arrow Flight) service; its task service listens on
    /// the next port unless [`ExecutorOptions::grpc_port`] says otherwise.
    pub bind: String,
    pub grpc_port: Option<u16>,
    /// The host name the scheduler and the other executors reach this one by, when not the
    /// bound one.
    pub external_host: Option<String>,
    /// Tasks run at once; all cores when 0.
    pub concurrent_tasks: usize,
    /// Where shuffle files are written; a temporary directory when not given.
    pub work_dir: Option<PathBuf>,
    /// Seconds between heartbeats to the scheduler: well under its executor timeout.
    pub heartbeat_seconds: u64,
    /// Memory the executor's tasks may hold before they spill, in bytes; a share of the
    /// machine's (or the container's) memory when not given.
    pub memory_bytes: Option<u64>,
}

impl Default for ExecutorOptions {
    fn default() -> Self {
        ExecutorOptions {
            scheduler: "127.0.0.1:50050".to_owned(),
            bind: "127.0.0.1:50051".to_owned(),
            grpc_port: None,
            external_host: None,
            concurrent_tasks: 0,
            work_dir: None,
            heartbeat_seconds: 10,
            memory_bytes: None,
        }
    }
}

/// Runs an executor until the process is stopped or the scheduler tells it to stop.
pub async fn run_executor(options: &ExecutorOptions) -> Result<()> {
    let (scheduler_host, scheduler_port) =
        split_address(&options.scheduler).map_err(|reason| Error::BadAddress {
            address: options.scheduler.clone(),
            reason,
        })?;
    let (host, port, address) = resolve(&options.bind)?;
    let grpc_port = match options.grpc_port {
        Some(p) => p,
        None => port.checked_add(1).ok_or_else(|| Error::BadAddress {
            address: options.bind.clone(),
            reason: "the task service needs the next port: give --grpc-port".to_owned(),
        })?,
    };
    let config = ExecutorProcessConfig {
        bind_host: address.ip().to_string(),
        port,
        grpc_port,
        external_host: Some(options.external_host.clone().unwrap_or(host)),
        scheduler_host,
        scheduler_port,
        vcores: options.concurrent_tasks,
        work_dir: options
            .work_dir
            .as_ref()
            .map(|d| d.to_string_lossy().into_owned()),
        executor_heartbeat_interval_seconds: options.heartbeat_seconds.max(1),
        memory_pool_size: options.memory_bytes,
        // A task's log line per metric would drown the executor's log.
        print_thread_info: false,
        override_logical_codec: Some(crate::codec::logical()),
        override_physical_codec: Some(crate::codec::physical()),
        ..ExecutorProcessConfig::default()
    };
    tracing::info!(%address, grpc_port, scheduler = %options.scheduler, "retain cluster executor starting");
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| ballista(format!("the executor on {address}"), e))
}

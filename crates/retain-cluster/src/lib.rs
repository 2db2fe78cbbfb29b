//! retain on an Apache Ballista cluster.
//!
//! Every analytic step of retain is a DataFusion plan over the workspace's Parquet tables, and
//! Ballista runs DataFusion plans on a scheduler and its executors. This crate holds the three
//! parts of that: the scheduler and the executor as retain runs them (`retain cluster scheduler`,
//! `retain cluster executor`), and the client session the analytic commands use when given
//! `--engine ballista://HOST:PORT` ([`connect`]).
//!
//! Ballista and its gRPC stack are heavy: they live in this leaf crate, which only the binary
//! depends on; the library crates see a cluster through [`retain_features::engine::Cluster`].

mod codec;
mod engine;
mod error;
mod executor;
mod scheduler;

pub use engine::{EngineUrl, connect};
pub use error::{Error, Result};
pub use executor::{ExecutorOptions, run_executor};
pub use scheduler::{SchedulerOptions, run_scheduler};

//! Errors of the cluster's processes and of connecting to one.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An engine URL that is not `ballista://HOST:PORT`.
    #[error("engine {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    /// An address to bind or reach that is not `HOST:PORT`.
    #[error("address {address:?}: {reason}")]
    BadAddress { address: String, reason: String },
    #[error("{context}: {source}")]
    Ballista {
        context: String,
        #[source]
        source: ballista_core::error::BallistaError,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

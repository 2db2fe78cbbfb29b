//! Errors of churn modelling.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data cannot be used for training or scoring.
    #[error("{0}")]
    Data(String),
    /// The trees could not be grown or read.
    #[error("model: {0}")]
    Model(String),
    /// The registry has no such version, or no earlier champion to roll back to.
    #[error("{0}")]
    Registry(String),
    /// The workspace's files could not be written or read.
    #[error(transparent)]
    Workspace(#[from] retain_data::Error),
    /// The features or labels could not be computed.
    #[error(transparent)]
    Features(#[from] retain_features::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

retain_data::context_errors!(Error {
    Io => io(std::io::Error),
});

pub type Result<T, E = Error> = std::result::Result<T, E>;

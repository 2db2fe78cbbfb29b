//! Errors of the group-customer work.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("group settings: {0}")]
    Config(String),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Data(#[from] retain_data::Error),
    #[error(transparent)]
    Features(#[from] retain_features::Error),
    #[error(transparent)]
    Store(#[from] retain_store::Error),
    #[error("{context}: {source}")]
    Engine {
        context: String,
        #[source]
        source: datafusion::error::DataFusionError,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

retain_data::context_errors!(Error {
    Engine => engine(datafusion::error::DataFusionError),
    Io => io(std::io::Error),
});

pub type Result<T, E = Error> = std::result::Result<T, E>;

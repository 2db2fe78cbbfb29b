//! Errors of the analytical layer.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Data(#[from] retain_data::Error),
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
    /// A feature definition does not compile.
    #[error("{0}")]
    BadFeature(String),
    /// An output of another stage that a condition reads is missing.
    #[error("{0}")]
    MissingOutput(String),
    /// A table the step needs has not been loaded.
    #[error("table {0} is not loaded in this workspace: run `retain ingest` for it first")]
    MissingTable(&'static str),
    /// A query's result did not have the shape its reader expected.
    #[error("internal: {0}")]
    Internal(String),
}

retain_data::context_errors!(Error {
    Engine => engine(datafusion::error::DataFusionError),
});

pub type Result<T, E = Error> = std::result::Result<T, E>;

//! Errors of the early-warning engine.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rules file is wrong: names the rule and the position in the file.
    #[error("{}:{line}:{column}: rule {rule}: {message}", path.display())]
    BadRule {
        path: PathBuf,
        rule: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{0}")]
    BadRequest(String),
    /// The state a step needs is not there: no proposal to accept, or rules changed under it.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Data(#[from] retain_data::Error),
    #[error(transparent)]
    Features(#[from] retain_features::Error),
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

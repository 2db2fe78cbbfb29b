//! Errors of the scheduler.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A schedule or manifest file that cannot be used as written.
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] retain_store::Error),
    /// A job asked for by name that the schedule does not have.
    #[error("{0}")]
    UnknownJob(String),
}

impl Error {
    pub(crate) fn invalid(file: &Path, message: String) -> Error {
        Error::Invalid {
            file: file.display().to_string(),
            message,
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            context: path.display().to_string(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

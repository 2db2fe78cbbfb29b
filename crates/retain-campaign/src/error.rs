//! Errors of campaigns.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A template or input file that does not parse or validate; the message names the file,
    /// line and column.
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    BadRequest(String),
    /// The actor may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// The campaign is not in the state the step needs.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Offers(#[from] retain_offers::Error),
    #[error(transparent)]
    Data(#[from] retain_data::Error),
    #[error(transparent)]
    Features(#[from] retain_features::Error),
    #[error("internal: {0}")]
    Internal(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Csv {
        context: String,
        #[source]
        source: csv::Error,
    },
    #[error("{context}: {source}")]
    Engine {
        context: String,
        #[source]
        source: datafusion::error::DataFusionError,
    },
    #[error("writing {path}: {message}")]
    Xlsx { path: String, message: String },
    #[error(transparent)]
    Store(retain_store::Error),
}

impl From<retain_store::Error> for Error {
    fn from(e: retain_store::Error) -> Self {
        match e {
            retain_store::Error::NotFound(m) => Error::NotFound(m),
            retain_store::Error::Conflict(m) => Error::Conflict(m),
            retain_store::Error::Invalid(m) => Error::BadRequest(m),
            other => Error::Store(other),
        }
    }
}

retain_data::context_errors!(Error {
    Io => io(std::io::Error),
    Csv => csv(csv::Error),
});

pub type Result<T, E = Error> = std::result::Result<T, E>;

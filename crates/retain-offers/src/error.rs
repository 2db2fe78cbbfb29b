//! Errors of offers and matching.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A library or policy file that does not parse or validate; the message names the file,
    /// line and column.
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    MissingInput(String),
    #[error(transparent)]
    Data(#[from] retain_data::Error),
    #[error(transparent)]
    Features(#[from] retain_features::Error),
    #[error("internal: {0}")]
    Internal(String),
    #[error("uplift model: {0}")]
    Model(String),
    /// The warning list could not be read.
    #[error(transparent)]
    Warnings(#[from] retain_warn::Error),
    /// The churn scores could not be read.
    #[error(transparent)]
    Scores(#[from] retain_model::Error),
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
    #[error("{context}: {source}")]
    Csv {
        context: String,
        #[source]
        source: csv::Error,
    },
}

retain_data::context_errors!(Error {
    Engine => engine(datafusion::error::DataFusionError),
    Io => io(std::io::Error),
    Csv => csv(csv::Error),
});

pub type Result<T, E = Error> = std::result::Result<T, E>;

//! Errors of the operational store.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unsupported store URL {0}")]
    UnsupportedUrl(String),
    #[error("operational store: {0}")]
    Database(#[from] sqlx::Error),
    #[error("operational store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("not found: {0}")]
    NotFound(String),
    /// The entity is not in the state the change needs (launching a draft, approving twice).
    #[error("{0}")]
    Conflict(String),
    #[error("operational store holds malformed data: {0}")]
    Corrupt(String),
    /// A value the store refuses to keep (a user name or manager id out of bounds).
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

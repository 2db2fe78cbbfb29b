//! Errors of the data layer. User errors (a bad file, a bad mapping) say what to fix; they are
//! kept apart from internal ones (I/O, Parquet) so the binary can report each as it deserves.

use std::path::PathBuf;

/// A place in an input file, for error messages: `file:line, column`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    pub file: PathBuf,
    /// 1-based line (CSV) or row (Parquet); 0 when the problem is the file as a whole.
    pub line: u64,
    pub column: Option<String>,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if let Some(column) = &self.column {
            write!(f, ", column {column}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input file cannot be loaded at all (not CSV, empty, missing required column, …).
    #[error("{location}: {reason}")]
    BadFile { location: Location, reason: String },
    /// A mapping file is invalid.
    #[error("mapping file {path}: {reason}")]
    BadMapping { path: PathBuf, reason: String },
    /// More rows were bad than the caller allowed; nothing was written to the table.
    #[error(
        "{quarantined} of {read} rows were rejected ({ratio:.2}% > the allowed {max:.2}%); nothing was loaded. The rejected rows and reasons are in {quarantine_file}"
    )]
    TooManyBadRows {
        read: u64,
        quarantined: u64,
        ratio: f64,
        max: f64,
        quarantine_file: PathBuf,
    },
    /// The table references another one that has not been loaded.
    #[error(
        "table {table} references {target}, which is empty in this workspace: ingest {target} first"
    )]
    MissingReferencedTable { table: String, target: String },
    /// The workspace is missing or malformed.
    #[error("workspace {path}: {reason}")]
    Workspace { path: PathBuf, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Parquet {
        context: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("{context}: {source}")]
    Arrow {
        context: String,
        #[source]
        source: arrow::error::ArrowError,
    },
}

impl Error {
    /// Whether the error is the user's to fix (bad input), as opposed to an internal failure.
    #[must_use]
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Error::BadFile { .. }
                | Error::BadMapping { .. }
                | Error::TooManyBadRows { .. }
                | Error::MissingReferencedTable { .. }
                | Error::Workspace { .. }
        )
    }

    pub(crate) fn bad_file(
        file: &std::path::Path,
        line: u64,
        column: Option<&str>,
        reason: impl Into<String>,
    ) -> Self {
        Error::BadFile {
            location: Location {
                file: file.to_path_buf(),
                line,
                column: column.map(str::to_owned),
            },
            reason: reason.into(),
        }
    }
}

crate::context_errors!(Error {
    Io => io(std::io::Error),
});

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Constructors for an error enum's `{ context, source }` variants, written once for every
/// crate: `context_errors!(Error { Io => io(std::io::Error) })` gives
/// `Error::io("reading x", e)`.
#[macro_export]
macro_rules! context_errors {
    ($error:ident { $($variant:ident => $constructor:ident($source:ty)),+ $(,)? }) => {
        impl $error {
            $(
                #[allow(dead_code)]
                pub(crate) fn $constructor(context: impl Into<String>, source: $source) -> Self {
                    $error::$variant {
                        context: context.into(),
                        source,
                    }
                }
            )+
        }
    };
}

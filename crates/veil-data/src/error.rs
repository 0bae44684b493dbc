//! [`DataError`]: what can go wrong reading a dataset, always naming the file.

use std::path::PathBuf;

/// Errors from locating or parsing datasets.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// File path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A file's content does not follow its format.
    #[error("{path}: {reason}")]
    Format {
        /// File path.
        path: PathBuf,
        /// What is wrong, e.g. "truncated: expected 7840000 pixel bytes, found 1200".
        reason: String,
    },
    /// A required file or directory is missing.
    #[error("{what} not found at {path}{hint}")]
    Missing {
        /// What was looked for.
        what: String,
        /// Where.
        path: PathBuf,
        /// Extra hint (may be empty).
        hint: String,
    },
    /// No data directory was given.
    #[error("no data directory: pass --data DIR or set VEIL_DATA")]
    NoDataDir,
    /// Unknown dataset name.
    #[error(
        "unknown dataset `{0}` (known: mnist, fashion-mnist, cifar10, gtsrb, postop, activity, synthetic, folder:PATH)"
    )]
    UnknownDataset(String),
}

impl DataError {
    pub(crate) fn format(path: &std::path::Path, reason: impl Into<String>) -> Self {
        DataError::Format {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

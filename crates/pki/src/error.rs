//! The one error type of the crate.

use std::io;
use std::path::PathBuf;

use crate::san::SanError;

/// Why a PKI operation failed. Messages name the file or the input at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("invalid certificate: {0}")]
    BadCertificate(String),
    #[error("invalid private key: {0}")]
    BadKey(String),
    #[error("the private key does not belong to the certificate")]
    KeyMismatch,
    #[error("{0}")]
    InvalidInput(String),
    #[error(transparent)]
    San(#[from] SanError),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: {reason}", path.display())]
    BadFile { path: PathBuf, reason: String },
    #[error("unknown vendor {vendor:?}: there is no root of trust in {} (known vendors: {}); create it with `warden pki init --vendor {vendor}`", dir.display(), if known.is_empty() { "none".to_owned() } else { known.join(", ") })]
    UnknownVendor { vendor: String, dir: PathBuf, known: Vec<String> },
    #[error("{} holds only one of cert.pem and key.pem; remove it or restore the missing file", .0.display())]
    Incomplete(PathBuf),
    #[error("{} already exists; choose another name", .0.display())]
    Exists(PathBuf),
}

impl PkiError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        PkiError::Io { path: path.into(), source }
    }
}

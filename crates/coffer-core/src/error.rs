//! The core's error type, with the Vault status code each maps to.

/// An error answered to a request. Messages never carry secret values.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input (400).
    #[error("{0}")]
    BadRequest(String),
    /// No token, an invalid token, or a capability missing (403).
    #[error("permission denied")]
    PermissionDenied,
    /// Nothing at this path (404 with an empty error list, as Vault answers).
    #[error("not found")]
    NotFound,
    /// No handler for this path (404 with a message).
    #[error("{0}")]
    UnsupportedPath(String),
    /// The path exists but not with this method (405).
    #[error("unsupported operation")]
    UnsupportedOperation,
    /// The server is sealed (503).
    #[error("Vault is sealed")]
    Sealed,
    /// Too many requests (429); `retry_after` in seconds.
    #[error("{message}")]
    RateLimited {
        /// What was limited.
        message: String,
        /// Seconds the client should wait.
        retry_after: u64,
    },
    /// Any other status with its messages.
    #[error("{}", errors.join("; "))]
    Status {
        /// HTTP status code.
        code: u16,
        /// Messages for the `errors` list.
        errors: Vec<String>,
    },
    /// A failure inside the server (500).
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// A 400 with `msg`.
    pub fn bad(msg: impl Into<String>) -> Self {
        Error::BadRequest(msg.into())
    }

    /// The HTTP status code Vault answers for this error.
    pub fn status(&self) -> u16 {
        match self {
            Error::BadRequest(_) => 400,
            Error::PermissionDenied => 403,
            Error::NotFound | Error::UnsupportedPath(_) => 404,
            Error::UnsupportedOperation => 405,
            Error::Sealed => 503,
            Error::RateLimited { .. } => 429,
            Error::Status { code, .. } => *code,
            Error::Internal(_) => 500,
        }
    }

    /// The messages of the `errors` list.
    pub fn messages(&self) -> Vec<String> {
        match self {
            Error::NotFound => Vec::new(),
            Error::Status { errors, .. } => errors.clone(),
            other => vec![other.to_string()],
        }
    }
}

impl From<coffer_storage::StorageError> for Error {
    fn from(e: coffer_storage::StorageError) -> Self {
        Error::Internal(e.to_string())
    }
}

/// Result type of the core.
pub type Result<T> = std::result::Result<T, Error>;

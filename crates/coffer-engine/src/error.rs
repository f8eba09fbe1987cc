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
    #[error("Coffer is sealed")]
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
    /// A broken invariant inside the server (500): a state the code
    /// should never reach.
    #[error("{0}")]
    Internal(String),
    /// The storage backend failed (500); the backend's error is the source.
    #[error("{0}")]
    Storage(#[source] coffer_storage::StorageError),
    /// Stored data that does not decode (500). Names what and where, never
    /// the content (see [`Error::corrupt_json`]).
    #[error("corrupt {0}")]
    Corrupt(String),
    /// A cryptographic operation failed (500): key generation, signing,
    /// decryption. The source, when kept, carries no key or plaintext.
    #[error("{op} failed")]
    Crypto {
        /// What was attempted.
        op: &'static str,
        /// The library's error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A value of the server's own did not encode (500).
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// serde's error (about the shape, never a stored value).
        #[source]
        source: serde_json::Error,
    },
    /// A worker (a thread or task the request waits on) stopped (500).
    #[error("{0} stopped")]
    Stopped(&'static str),
    /// No audit device recorded what had to be recorded (500): the request
    /// is refused rather than served unaudited.
    #[error("{0}")]
    Audit(String),
}

impl Error {
    /// A 400 with `msg`.
    pub fn bad(msg: impl Into<String>) -> Self {
        Error::BadRequest(msg.into())
    }

    /// A 500 for stored data that does not decode: `what` names it.
    pub fn corrupt(what: impl Into<String>) -> Self {
        Error::Corrupt(what.into())
    }

    /// A 500 for a failed cryptographic operation `op`, keeping `source`.
    pub fn crypto(
        op: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Crypto {
            op,
            source: Some(Box::new(source)),
        }
    }

    /// A 500 for a failed cryptographic operation whose library error
    /// carries nothing (an opaque `Unspecified`).
    pub fn crypto_failed(op: &'static str) -> Self {
        Error::Crypto { op, source: None }
    }

    /// A 500 for a value of the server's own that did not encode.
    pub fn encode(what: &'static str, source: serde_json::Error) -> Self {
        Error::Encode { what, source }
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
            Error::Internal(_)
            | Error::Storage(_)
            | Error::Corrupt(_)
            | Error::Crypto { .. }
            | Error::Encode { .. }
            | Error::Stopped(_)
            | Error::Audit(_) => 500,
        }
    }

    /// Whether this is a failure inside the server, whose detail (storage
    /// keys, backend messages) belongs in the server log only: the HTTP
    /// layer answers it with a request id, never its text.
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            Error::Internal(_)
                | Error::Storage(_)
                | Error::Corrupt(_)
                | Error::Crypto { .. }
                | Error::Encode { .. }
                | Error::Stopped(_)
                | Error::Audit(_)
        )
    }

    /// A 500 for stored JSON that does not decode. It names `what` and the
    /// kind and place of the error, never the content: serde's own messages
    /// quote values (`invalid type: string "..."`), and this text reaches the
    /// server log.
    pub fn corrupt_json(what: &str, e: &serde_json::Error) -> Self {
        let kind = match e.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected shape",
            serde_json::error::Category::Eof => "truncated",
        };
        Error::Corrupt(format!(
            "{what}: {kind} at line {} column {}",
            e.line(),
            e.column()
        ))
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
        match e {
            // The database is down or unreachable: 503, as while sealed,
            // so load balancers and clients retry elsewhere or later.
            coffer_storage::StorageError::Unavailable => Error::Status {
                code: 503,
                errors: vec!["storage unavailable: the storage backend cannot be reached".into()],
            },
            // Another node restored a snapshot: this node seals at its next
            // log read; until then it must not serve writes.
            coffer_storage::StorageError::Replaced => Error::Status {
                code: 503,
                errors: vec![
                    "the store was replaced by a snapshot restore on another node; this node \
                     seals and must be unsealed again"
                        .into(),
                ],
            },
            other => Error::Storage(other),
        }
    }
}

/// Result type of the core.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_failures_are_typed_500s_that_keep_their_source() {
        use std::error::Error as _;
        let e = Error::crypto(
            "opening the keyring",
            coffer_crypto::CryptoError::Authentication,
        );
        assert_eq!(e.to_string(), "opening the keyring failed");
        assert_eq!(
            e.source().map(ToString::to_string).as_deref(),
            Some("message authentication failed")
        );
        let encode = serde_json::to_vec(&std::collections::HashMap::from([((1, 2), 3)]))
            .expect_err("tuple keys do not encode");
        for e in [
            e,
            Error::corrupt("mount table"),
            Error::encode("the seal configuration", encode),
            Error::Stopped("the audit writer"),
            Error::Audit("no audit device recorded the entry".into()),
        ] {
            assert_eq!(e.status(), 500, "{e}");
            assert!(e.is_internal(), "{e}");
        }
    }

    #[test]
    fn corrupt_json_never_quotes_the_entry() {
        let e = serde_json::from_str::<u64>("\"s3cret-value\"").unwrap_err();
        assert!(e.to_string().contains("s3cret-value"));
        let msg = Error::corrupt_json("entry \"k\"", &e).to_string();
        assert!(!msg.contains("s3cret-value"), "{msg}");
        assert!(msg.contains("entry \"k\""), "{msg}");
    }
}

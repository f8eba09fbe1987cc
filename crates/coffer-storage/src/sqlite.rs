//! SQLite backend (work in progress: the implementation lands in the next commit).

use std::path::Path;

use crate::{Result, StorageError};

/// The embedded SQLite backend. Not implemented yet: `open` always fails.
#[derive(Debug)]
pub struct SqliteBackend {
    _private: (),
}

impl SqliteBackend {
    /// Opens the database at `path`. Not implemented yet: always fails.
    pub fn open(_path: impl AsRef<Path>) -> Result<Self> {
        Err(StorageError::Unavailable)
    }
}

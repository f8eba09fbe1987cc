//! A small pool of read-only connections used from tokio's blocking pool.

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::Connection;
use tokio::sync::Semaphore;

use super::connection::open_reader;
use crate::{Result, StorageError};

/// Read-only connections, at most one per concurrent read.
pub(super) struct Readers {
    path: Arc<Path>,
    idle: Arc<Mutex<Vec<Connection>>>,
    permits: Arc<Semaphore>,
}

impl Readers {
    /// Opens `count` read-only connections to `path`.
    pub(super) fn open(path: &Path, count: usize) -> Result<Self> {
        let conns = (0..count)
            .map(|_| open_reader(path))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            path: Arc::from(path),
            idle: Arc::new(Mutex::new(conns)),
            permits: Arc::new(Semaphore::new(count)),
        })
    }

    /// Runs `f` with a connection on the blocking pool, waiting (without
    /// blocking the runtime) while every connection is busy.
    pub(super) async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| StorageError::Unavailable)?;
        let idle = Arc::clone(&self.idle);
        let path = Arc::clone(&self.path);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // A connection is missing only if an earlier closure panicked.
            let conn = match idle.lock().pop() {
                Some(conn) => conn,
                None => open_reader(&path)?,
            };
            let out = f(&conn);
            idle.lock().push(conn);
            out
        })
        .await
        .map_err(|_| StorageError::Unavailable)?
    }
}

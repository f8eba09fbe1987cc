//! SQLite backend: the embedded default.
//!
//! One file, WAL journal, `synchronous=FULL`, one `kv` table (`key TEXT
//! PRIMARY KEY, value BLOB`, `WITHOUT ROWID`).
//!
//! * Writes go to a single writer thread that owns the only read-write
//!   connection ([`writer`]). It drains everything queued, applies it in one
//!   transaction with a savepoint per caller, commits once (one fsync) and
//!   only then acknowledges each caller: group commit. A conditional batch
//!   reads its expected keys in its savepoint first (one point read each).
//! * Reads run on tokio's blocking pool over a few read-only connections
//!   ([`readers`]); WAL lets them proceed while the writer commits.
//! * A snapshot export reads on a connection of its own, in one read
//!   transaction: WAL gives it a fixed view of the file while the writer
//!   goes on committing (SQLite's online backup API was the other way; it
//!   copies pages into a second database file, which would then have to be
//!   read back entry by entry, and the format would be SQLite's own instead
//!   of entries that also restore into PostgreSQL). An import is one
//!   `BEGIN IMMEDIATE` transaction on the writer thread.
//! * Dropping the backend lets the writer finish what is queued, then joins it.
//! * One process at a time: `open` takes an exclusive `flock` on `<db>.lock`
//!   (which holds the owner's pid) and keeps it until the backend is dropped.

mod connection;
mod readers;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension};

use crate::children::ChildWalk;
use crate::snapshot::{Batcher, Entry, Export, ImportItem, CHANNEL_BATCHES};
use crate::{Backend, Expect, Op, Result, StorageError};
use readers::Readers;
use writer::Writer;

/// Durable key-value storage in one SQLite database file.
pub struct SqliteBackend {
    path: PathBuf,
    readers: Readers,
    writer: Writer,
    /// The exclusive lock on `<path>.lock`; dropped last, after the writer
    /// has finished.
    _lock: std::fs::File,
}

impl SqliteBackend {
    /// Opens (creating if needed, with mode 0600) the database at `path`.
    ///
    /// The parent directory must exist. Blocks while it opens the file and
    /// creates the schema, so call it at startup rather than per request.
    ///
    /// Takes an exclusive advisory lock on `<path>.lock` for the backend's
    /// lifetime: while one process holds the database, another's `open`
    /// fails with [`StorageError::InUse`] (naming the holder's pid).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let lock = connection::lock_exclusive(&path)?;
        let conn = connection::open_writer(&path)?;
        let readers = Readers::open(&path, reader_count())?;
        let writer = Writer::spawn(conn)?;
        Ok(Self {
            path,
            readers,
            writer,
            _lock: lock,
        })
    }

    /// The database file this backend stores into.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// How many read-only connections to keep: a couple per core, within reason.
fn reader_count() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get() * 2)
        .clamp(2, 8)
}

/// Maps a SQLite error to a storage error. SQLite messages carry no bound
/// values, and callers add only the key as context.
fn db_error(context: &str, err: rusqlite::Error) -> StorageError {
    StorageError::Backend(format!("sqlite {context}: {err}"))
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let key = key.to_string();
        self.readers
            .run(move |conn| {
                conn.prepare_cached("SELECT value FROM kv WHERE key = ?1")
                    .and_then(|mut stmt| stmt.query_row([&key], |row| row.get(0)).optional())
                    .map_err(|e| db_error(&format!("get {key:?}"), e))
            })
            .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.list_page(prefix, "", None).await
    }

    async fn list_page(
        &self,
        prefix: &str,
        after: &str,
        limit: Option<usize>,
    ) -> Result<Vec<String>> {
        let (prefix, after) = (prefix.to_string(), after.to_string());
        self.readers
            .run(move |conn| {
                list_children(conn, &prefix, &after, limit)
                    .map_err(|e| db_error(&format!("list {prefix:?}"), e))
            })
            .await
    }

    async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let prefix = prefix.to_string();
        self.readers
            .run(move |conn| {
                keys_from(conn, &prefix)
                    .map_err(|e| db_error(&format!("keys_with_prefix {prefix:?}"), e))
            })
            .await
    }

    async fn write_batch(&self, ops: Vec<Op>) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        self.writer
            .submit(writer::Batch {
                expect: Vec::new(),
                ops,
            })
            .await
            .map(|_| ())
    }

    async fn write_batch_if(&self, expect: Vec<Expect>, ops: Vec<Op>) -> Result<bool> {
        if expect.is_empty() && ops.is_empty() {
            return Ok(true);
        }
        self.writer.submit(writer::Batch { expect, ops }).await
    }

    async fn export(&self) -> Result<Export> {
        let path = self.path.clone();
        let (totals_tx, totals) = tokio::sync::oneshot::channel();
        let (tx, entries) = tokio::sync::mpsc::channel(CHANNEL_BATCHES);
        std::thread::Builder::new()
            .name("coffer-sqlite-export".into())
            .spawn(move || export_rows(&path, totals_tx, &tx))
            .map_err(|e| StorageError::Backend(format!("sqlite: cannot start the export: {e}")))?;
        let (count, bytes) = totals.await.map_err(|_| StorageError::Unavailable)??;
        Ok(Export {
            count,
            bytes,
            entries,
        })
    }

    async fn import(&self, items: tokio::sync::mpsc::Receiver<ImportItem>) -> Result<u64> {
        self.writer.replace(items).await
    }
}

/// The export thread: one read transaction on a connection of its own (its
/// first statement fixes the WAL snapshot every later one reads), totals
/// first, then every entry in key order, batch by batch. Ends early when
/// the receiver goes away.
fn export_rows(
    path: &Path,
    totals: tokio::sync::oneshot::Sender<Result<(u64, u64)>>,
    tx: &tokio::sync::mpsc::Sender<Result<Vec<Entry>>>,
) {
    let mut totals = Some(totals);
    let outcome = (|| -> Result<()> {
        let conn = connection::open_reader(path)?;
        let err = |e| db_error("export", e);
        let snapshot = conn.unchecked_transaction().map_err(err)?;
        let (count, bytes): (i64, i64) = snapshot
            .query_row(
                "SELECT count(*), coalesce(sum(length(CAST(key AS BLOB)) + length(value)), 0) FROM kv",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(err)?;
        let as_u64 = |n: i64| u64::try_from(n).unwrap_or(0);
        if let Some(t) = totals.take() {
            let _ = t.send(Ok((as_u64(count), as_u64(bytes))));
        }
        let mut stmt = snapshot
            .prepare("SELECT key, value FROM kv ORDER BY key")
            .map_err(err)?;
        let mut rows = stmt.query([]).map_err(err)?;
        let mut batcher = Batcher::default();
        while let Some(row) = rows.next().map_err(err)? {
            let entry = Entry {
                key: row.get(0).map_err(err)?,
                value: row.get(1).map_err(err)?,
            };
            if let Some(batch) = batcher.push(entry) {
                if tx.blocking_send(Ok(batch)).is_err() {
                    return Ok(());
                }
            }
        }
        if let Some(batch) = batcher.take() {
            let _ = tx.blocking_send(Ok(batch));
        }
        Ok(())
    })();
    if let Err(e) = outcome {
        match totals.take() {
            Some(t) => {
                let _ = t.send(Err(e));
            }
            None => {
                let _ = tx.blocking_send(Err(e));
            }
        }
    }
}

/// Every key starting with `prefix`, sorted (one range scan).
fn keys_from(conn: &Connection, prefix: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT key FROM kv WHERE key >= ?1 ORDER BY key")?;
    let mut rows = stmt.query([prefix])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let key: String = row.get(0)?;
        if !key.starts_with(prefix) {
            break;
        }
        out.push(key);
    }
    Ok(out)
}

/// The direct children of `prefix` after `after`, at most `limit`, seeking
/// past each directory's contents.
///
/// The queries share one read transaction, so the listing is a consistent
/// snapshot even while batches commit.
fn list_children(
    conn: &Connection,
    prefix: &str,
    after: &str,
    limit: Option<usize>,
) -> rusqlite::Result<Vec<String>> {
    let snapshot = conn.unchecked_transaction()?;
    let mut stmt = snapshot.prepare_cached("SELECT key FROM kv WHERE key >= ?1 ORDER BY key")?;
    let out = ChildWalk::new(prefix, Some(after), limit).run(|from, feed| {
        let mut rows = stmt.query([from])?;
        while let Some(row) = rows.next()? {
            let key: String = row.get(0)?;
            if !feed(&key) {
                break;
            }
        }
        Ok::<(), rusqlite::Error>(())
    })?;
    drop(stmt);
    snapshot.finish()?;
    Ok(out)
}

//! Physical storage for Coffer.
//!
//! A [`Backend`] stores opaque byte values under string keys. It knows nothing
//! of encryption: everything the core writes has already passed the barrier.
//! Keys are `/`-separated paths, like Vault's physical storage.

use std::time::Duration;

use async_trait::async_trait;

mod children;
pub mod fence;
pub mod memory;
pub mod pg_tls;
pub mod postgresql;
pub mod snapshot;
pub mod sqlite;

pub use memory::MemoryBackend;
pub use postgresql::{PostgresBackend, PostgresConfig};
pub use snapshot::{Entry, Export, ImportItem};
pub use sqlite::SqliteBackend;

/// Errors a storage backend can return.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The underlying database failed.
    #[error("storage backend error: {0}")]
    Backend(String),
    /// The storage is held by another process (its exclusive lock is taken).
    #[error("{0}")]
    InUse(String),
    /// The backend is closed, its worker has stopped, or its database
    /// cannot be reached.
    #[error("storage backend is unavailable")]
    Unavailable,
    /// A fenced write (background work) whose leader term is no longer the
    /// current one: this node lost the leader lease, nothing was written.
    #[error("write refused: this node no longer holds the leader lease (term {0})")]
    Fenced(u64),
    /// A write from a node that has not seen the store replaced (a snapshot
    /// restored on another node): nothing was written. The node seals at
    /// its next read of the change log and must be unsealed again.
    #[error("write refused: the store was replaced by a snapshot restore; unseal this node again")]
    Replaced,
}

/// What changed in a shared store since a position of its change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changes {
    /// Every key other processes wrote between the given position and
    /// `position` (which the caller passes next time).
    Keys {
        /// The log position these changes reach.
        position: u64,
        /// Keys written (put or deleted) by other processes, in log order.
        keys: Vec<String>,
    },
    /// The log no longer reaches back to the given position (it was
    /// pruned, or the store was recreated): drop every cache.
    Lost {
        /// The current log position.
        position: u64,
    },
    /// Another node replaced the whole store (restored a snapshot): every
    /// cache and the keyring in memory may be stale, and this node's writes
    /// are refused ([`StorageError::Replaced`]) until it [`Backend::rejoin`]s.
    Replaced {
        /// The current log position.
        position: u64,
    },
}

/// A node's claim to lead background work on a shared store.
#[derive(Debug, Clone)]
pub struct LeaderClaim {
    /// This process's unique node id.
    pub holder: String,
    /// The address clients reach this node at (`api_addr`).
    pub api_addr: String,
    /// How long the lease lasts without renewal (the failover bound).
    pub ttl: Duration,
}

/// The current holder of the leader lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderRecord {
    /// Node id of the holder.
    pub holder: String,
    /// Its `api_addr`.
    pub api_addr: String,
    /// The fencing token: incremented at every change of holder.
    pub term: u64,
    /// When the holder took the lease (seconds since the Unix epoch).
    pub acquired_at: i64,
    /// Whether the lease is still within its expiry.
    pub live: bool,
}

/// Result type of storage operations.
pub type Result<T> = std::result::Result<T, StorageError>;

/// One operation of an atomic batch.
///
/// Its `Debug` output shows a value's length, never its bytes.
#[derive(Clone, PartialEq, Eq)]
pub enum Op {
    /// Write `value` under `key`, replacing what was there.
    Put {
        /// Storage key.
        key: String,
        /// Value bytes.
        value: Vec<u8>,
    },
    /// Remove `key`; removing an absent key is not an error.
    Delete {
        /// Storage key.
        key: String,
    },
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Put { key, value } => f
                .debug_struct("Put")
                .field("key", key)
                .field("value", &format_args!("<{} bytes>", value.len()))
                .finish(),
            Op::Delete { key } => f.debug_struct("Delete").field("key", key).finish(),
        }
    }
}

/// The state of one stored value, for conditional writes: the SHA-256 of
/// its bytes.
///
/// Two values have the same version exactly when they are byte for byte
/// equal, so a value written again unchanged keeps its version. Above the
/// barrier that never happens by accident: every write is sealed with a
/// fresh random nonce, so every rewrite, even of the same plaintext, is a
/// new version (no ABA).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version([u8; 32]);

impl Version {
    /// The version of the stored bytes `value`.
    pub fn of(value: &[u8]) -> Version {
        Version(coffer_crypto::hash::sha256(value))
    }

    /// The digest, for backends that compare it in their database.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Shows the first bytes of the digest (a digest of a ciphertext, never a value).
impl std::fmt::Debug for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Version(")?;
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

/// What a conditional write expects of one key: `None` that it is absent,
/// `Some(v)` that it holds exactly the value of version `v`.
pub type Expect = (String, Option<Version>);

/// Whether `stored` (a key's value, or `None` when absent) is in the state
/// `want` of an [`Expect`].
pub fn is_as_expected(stored: Option<&[u8]>, want: Option<&Version>) -> bool {
    match (stored, want) {
        (None, None) => true,
        (Some(v), Some(w)) => Version::of(v) == *w,
        _ => false,
    }
}

/// A key-value store with durable, atomic writes.
///
/// Every acknowledged write (a returned `Ok`) must survive a process kill and,
/// as far as the backend can promise it, power loss.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Reads the value under `key`, or `None` when absent.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Writes `value` under `key`.
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.write_batch(vec![Op::Put {
            key: key.to_string(),
            value,
        }])
        .await
    }

    /// Deletes `key`; deleting an absent key succeeds.
    async fn delete(&self, key: &str) -> Result<()> {
        self.write_batch(vec![Op::Delete {
            key: key.to_string(),
        }])
        .await
    }

    /// Lists the direct children of `prefix`, Vault style: a key `prefix + "a"`
    /// gives `"a"`, a key `prefix + "b/c"` gives `"b/"`. Sorted, without
    /// duplicates. `prefix` is normally empty or ends in `/`.
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;

    /// One page of [`Backend::list`]: the children that sort after `after`
    /// (an entry as a listing returns it: `"b"` or `"b/"`; empty for the
    /// start), at most `limit` of them (`None`: all). Backends read only
    /// what the page needs; this default filters a full listing.
    async fn list_page(
        &self,
        prefix: &str,
        after: &str,
        limit: Option<usize>,
    ) -> Result<Vec<String>> {
        let mut all = self.list(prefix).await?;
        if !after.is_empty() {
            all.retain(|k| k.as_str() > after);
        }
        if let Some(n) = limit {
            all.truncate(n);
        }
        Ok(all)
    }

    /// Returns every full key that starts with `prefix`, sorted.
    async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>>;

    /// Applies all `ops` atomically and durably: either all are visible, or none.
    ///
    /// Inside [`fence::fenced`], a shared backend applies them only while
    /// the fence's term is the current leader term, checked in the same
    /// transaction (else [`StorageError::Fenced`]).
    async fn write_batch(&self, ops: Vec<Op>) -> Result<()>;

    /// Applies `ops` as [`Backend::write_batch`] does, but only if every key
    /// of `expect` is still in the state it names (absent, or holding the
    /// value of that [`Version`]) when the batch commits; checked and
    /// applied in one transaction, so of any number of writers expecting
    /// the same state of a key at most one succeeds. Returns `false`, having
    /// written nothing, when some key is not in its expected state. An empty
    /// `expect` always applies (as `write_batch`).
    ///
    /// Fencing applies as to `write_batch`.
    async fn write_batch_if(&self, expect: Vec<Expect>, ops: Vec<Op>) -> Result<bool>;

    /// Whether several processes share this store at once (PostgreSQL).
    /// Then caches must follow [`Backend::changes_since`] and background
    /// work needs the leader lease.
    fn is_shared(&self) -> bool {
        false
    }

    /// The keys other processes wrote since `position` (0 = the log's
    /// start). `None` for a store no other process writes.
    async fn changes_since(&self, _position: u64) -> Result<Option<Changes>> {
        Ok(None)
    }

    /// Takes or renews the leader lease; returns the term when this
    /// claim holds it, `None` when another live holder does. Unshared
    /// backends always answer term 1.
    async fn claim_leadership(&self, _claim: &LeaderClaim) -> Result<Option<u64>> {
        Ok(Some(1))
    }

    /// Gives up the lease if `holder` holds it (clean shutdown, seal).
    async fn release_leadership(&self, _holder: &str) -> Result<()> {
        Ok(())
    }

    /// The lease's current holder, if any (`None` for unshared backends).
    async fn leader(&self) -> Result<Option<LeaderRecord>> {
        Ok(None)
    }

    /// Starts streaming every entry, in key order, from one consistent
    /// read that lets writes go on (see [`snapshot`]). The totals are taken
    /// in the same read.
    async fn export(&self) -> Result<Export>;

    /// Replaces the whole store, in one transaction, with the entries
    /// `items` sends, once it sends [`ImportItem::Commit`]; a channel closed
    /// before that, or a failure, leaves the store as it was. Returns how
    /// many entries the store now holds. On shared storage other nodes see
    /// [`Changes::Replaced`] and their writes are refused until they
    /// [`Backend::rejoin`].
    async fn import(&self, items: tokio::sync::mpsc::Receiver<ImportItem>) -> Result<u64>;

    /// Accepts the store as it is now (after an unseal has reloaded
    /// everything from it): writes refused after another node's
    /// [`Backend::import`] are allowed again. A no-op on unshared storage.
    async fn rejoin(&self) -> Result<()> {
        Ok(())
    }
}

/// Derives the Vault-style directory listing of `prefix` from full keys.
///
/// Shared by backends that can only enumerate full keys.
pub fn children_of<'a>(prefix: &str, keys: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for key in keys {
        let Some(rest) = key.strip_prefix(prefix) else {
            continue;
        };
        if rest.is_empty() {
            continue;
        }
        let child = match rest.find('/') {
            Some(i) => &rest[..=i],
            None => rest,
        };
        if out.last().map(String::as_str) != Some(child) {
            out.push(child.to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The smallest key past every key under the directory `prefix + name + "/"`.
///
/// `'0'` is the byte right after `'/'`, so in byte order every key that starts
/// with `prefix + name + "/"` sorts below the returned key and nothing between
/// them has another prefix. Backends use it to skip a directory's contents
/// when listing.
pub(crate) fn dir_skip_key(prefix: &str, name: &str) -> String {
    format!("{prefix}{name}0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_debug_hides_values() {
        let marker = ["hidden", "value", "91c2"].join("-");
        let put = Op::Put {
            key: "a/b".into(),
            value: marker.clone().into_bytes(),
        };
        let shown = format!("{put:?}");
        assert_eq!(shown, r#"Put { key: "a/b", value: <17 bytes> }"#);
        assert!(!shown.contains(&marker));
        let del = Op::Delete { key: "k".into() };
        assert_eq!(format!("{del:?}"), r#"Delete { key: "k" }"#);
    }
}

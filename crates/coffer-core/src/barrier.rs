//! The barrier: every logical entry is encrypted before it reaches storage.
//!
//! Entries are sealed with the keyring's active term and their own storage
//! key as associated data, so a ciphertext copied under another key fails to
//! open. While sealed, the barrier holds no key and refuses every operation.
//!
//! A read cache holds ciphertexts (never plaintext) of recently used keys. A
//! read fills it only when no write ran during that read, so a slow read can
//! never leave a stale value behind a newer write.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use coffer_crypto::Keyring;
use coffer_storage::{Backend, Op};
use parking_lot::{Mutex, RwLock};
use serde::{de::DeserializeOwned, Serialize};
use zeroize::Zeroizing;

use crate::{Error, Result};

/// Most entries the read cache holds before it starts over.
const CACHE_LIMIT: usize = 100_000;

/// A write of a batch, before encryption.
#[derive(Debug)]
pub enum BarrierOp {
    /// Encrypt and store `value` under `key`.
    Put(String, Zeroizing<Vec<u8>>),
    /// Remove `key`.
    Delete(String),
}

#[derive(Default)]
struct Cache {
    entries: HashMap<String, Option<Arc<Vec<u8>>>>,
}

/// The encrypting layer between the core and a storage backend.
pub struct Barrier {
    backend: Arc<dyn Backend>,
    keyring: RwLock<Option<Arc<Keyring>>>,
    cache: Mutex<Cache>,
    /// Bumped before and after each write; a read that saw it change does not fill the cache.
    write_epoch: AtomicU64,
    writes_in_flight: AtomicU64,
}

impl Barrier {
    /// A sealed barrier over `backend`.
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Barrier {
            backend,
            keyring: RwLock::new(None),
            cache: Mutex::new(Cache::default()),
            write_epoch: AtomicU64::new(0),
            writes_in_flight: AtomicU64::new(0),
        }
    }

    /// The raw backend, for the few entries kept outside the barrier (seal config, encrypted keyring).
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Whether the barrier is sealed.
    pub fn is_sealed(&self) -> bool {
        self.keyring.read().is_none()
    }

    /// Opens the barrier with `keyring`.
    pub fn unseal(&self, keyring: Keyring) {
        *self.keyring.write() = Some(Arc::new(keyring));
    }

    /// Seals the barrier: drops the keyring (its keys zeroize) and empties the cache.
    pub fn seal(&self) {
        *self.keyring.write() = None;
        self.cache.lock().entries.clear();
    }

    /// The keyring in use, or [`Error::Sealed`].
    pub fn keyring(&self) -> Result<Arc<Keyring>> {
        self.keyring.read().clone().ok_or(Error::Sealed)
    }

    /// Replaces the keyring (after a rotation).
    pub fn set_keyring(&self, keyring: Keyring) {
        *self.keyring.write() = Some(Arc::new(keyring));
    }

    /// Reads and decrypts the entry under `key`.
    pub async fn get(&self, key: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
        let keyring = self.keyring()?;
        let cached = self.cache.lock().entries.get(key).cloned();
        let sealed = match cached {
            Some(c) => c,
            None => {
                let epoch = self.write_epoch.load(Ordering::SeqCst);
                let fetched = self.backend.get(key).await?.map(Arc::new);
                let mut cache = self.cache.lock();
                if self.write_epoch.load(Ordering::SeqCst) == epoch
                    && self.writes_in_flight.load(Ordering::SeqCst) == 0
                {
                    if cache.entries.len() >= CACHE_LIMIT {
                        cache.entries.clear();
                    }
                    cache.entries.insert(key.to_string(), fetched.clone());
                }
                fetched
            }
        };
        match sealed {
            None => Ok(None),
            Some(bytes) => keyring
                .open(&bytes, key.as_bytes())
                .map(Some)
                .map_err(|e| Error::Internal(format!("failed to decrypt entry {key:?}: {e}"))),
        }
    }

    /// Encrypts and writes `value` under `key`.
    pub async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.write_batch(vec![BarrierOp::Put(
            key.to_string(),
            Zeroizing::new(value.to_vec()),
        )])
        .await
    }

    /// Deletes `key`.
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.write_batch(vec![BarrierOp::Delete(key.to_string())])
            .await
    }

    /// Lists the direct children of `prefix` (Vault style, folders end in `/`).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.keyring()?;
        Ok(self.backend.list(prefix).await?)
    }

    /// Every full key below `prefix`.
    pub async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        self.keyring()?;
        Ok(self.backend.keys_with_prefix(prefix).await?)
    }

    /// Encrypts and applies `ops` atomically.
    pub async fn write_batch(&self, ops: Vec<BarrierOp>) -> Result<()> {
        let keyring = self.keyring()?;
        let mut physical = Vec::with_capacity(ops.len());
        let mut cache_updates = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                BarrierOp::Put(key, value) => {
                    let sealed = keyring.seal(&value, key.as_bytes());
                    cache_updates.push((key.clone(), Some(Arc::new(sealed.clone()))));
                    physical.push(Op::Put { key, value: sealed });
                }
                BarrierOp::Delete(key) => {
                    cache_updates.push((key.clone(), None));
                    physical.push(Op::Delete { key });
                }
            }
        }
        self.writes_in_flight.fetch_add(1, Ordering::SeqCst);
        self.write_epoch.fetch_add(1, Ordering::SeqCst);
        let result = self.backend.write_batch(physical).await;
        {
            let mut cache = self.cache.lock();
            for (key, value) in cache_updates {
                if result.is_ok() {
                    cache.entries.insert(key, value);
                } else {
                    cache.entries.remove(&key);
                }
            }
            self.write_epoch.fetch_add(1, Ordering::SeqCst);
            self.writes_in_flight.fetch_sub(1, Ordering::SeqCst);
        }
        result.map_err(Error::from)
    }
}

/// A prefixed window on the barrier: what one mount or subsystem sees.
#[derive(Clone)]
pub struct View {
    barrier: Arc<Barrier>,
    prefix: String,
}

impl View {
    /// A view of `barrier` below `prefix` (which should end in `/`).
    pub fn new(barrier: Arc<Barrier>, prefix: impl Into<String>) -> Self {
        View {
            barrier,
            prefix: prefix.into(),
        }
    }

    /// A view further below this one.
    pub fn sub(&self, prefix: &str) -> View {
        View::new(self.barrier.clone(), format!("{}{}", self.prefix, prefix))
    }

    /// The full storage key of `key`.
    fn full(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }

    /// Reads `key`.
    pub async fn get(&self, key: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
        self.barrier.get(&self.full(key)).await
    }

    /// Reads `key` as JSON.
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.get(key).await? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::corrupt_json(&format!("entry {key:?}"), &e)),
        }
    }

    /// Writes `value` under `key`.
    pub async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.barrier.put(&self.full(key), value).await
    }

    /// Writes `value` as JSON under `key`.
    pub async fn put_json<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        self.barrier.put(&self.full(key), &to_json(value)?).await
    }

    /// Deletes `key`.
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.barrier.delete(&self.full(key)).await
    }

    /// Lists the children of `prefix` within this view.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.barrier.list(&self.full(prefix)).await
    }

    /// Every key below `prefix`, relative to this view.
    pub async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let keys = self.barrier.keys_with_prefix(&self.full(prefix)).await?;
        Ok(keys
            .into_iter()
            .filter_map(|k| k.strip_prefix(&self.prefix).map(str::to_string))
            .collect())
    }

    /// Applies ops (keys relative to this view) atomically.
    pub async fn write_batch(&self, ops: Vec<BarrierOp>) -> Result<()> {
        let ops = ops
            .into_iter()
            .map(|op| match op {
                BarrierOp::Put(k, v) => BarrierOp::Put(self.full(&k), v),
                BarrierOp::Delete(k) => BarrierOp::Delete(self.full(&k)),
            })
            .collect();
        self.barrier.write_batch(ops).await
    }

    /// Deletes every key of this view below `prefix`.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        let keys = self.keys_with_prefix(prefix).await?;
        for chunk in keys.chunks(500) {
            self.write_batch(chunk.iter().map(|k| BarrierOp::Delete(k.clone())).collect())
                .await?;
        }
        Ok(())
    }
}

/// Serializes `value` to JSON in a zeroizing buffer.
pub fn to_json<T: Serialize>(value: &T) -> Result<Zeroizing<Vec<u8>>> {
    serde_json::to_vec(value)
        .map(Zeroizing::new)
        .map_err(|e| Error::Internal(format!("failed to encode entry: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_storage::MemoryBackend;

    fn barrier() -> (Arc<MemoryBackend>, Barrier) {
        let mem = Arc::new(MemoryBackend::new());
        let b = Barrier::new(mem.clone());
        b.unseal(Keyring::new(0));
        (mem, b)
    }

    #[tokio::test]
    async fn entries_are_encrypted_and_bound_to_their_key() {
        let (mem, b) = barrier();
        b.put("a/secret", b"plaintext-value").await.unwrap();
        let raw = mem.get("a/secret").await.unwrap().unwrap();
        assert!(!raw.windows(15).any(|w| w == b"plaintext-value"));
        assert_eq!(
            b.get("a/secret").await.unwrap().unwrap().as_slice(),
            b"plaintext-value"
        );
        // Move the ciphertext under another key: it must not open.
        mem.put("b/other", raw).await.unwrap();
        assert!(b.get("b/other").await.is_err());
    }

    #[tokio::test]
    async fn sealed_barrier_refuses() {
        let (_, b) = barrier();
        b.put("k", b"v").await.unwrap();
        b.seal();
        assert!(matches!(b.get("k").await, Err(Error::Sealed)));
        assert!(matches!(b.put("k", b"v").await, Err(Error::Sealed)));
        assert!(matches!(b.list("").await, Err(Error::Sealed)));
    }

    #[tokio::test]
    async fn rotation_keeps_old_entries() {
        let (_, b) = barrier();
        b.put("old", b"1").await.unwrap();
        let mut kr = (*b.keyring().unwrap()).clone();
        kr.rotate(1);
        b.set_keyring(kr);
        b.put("new", b"2").await.unwrap();
        b.seal();
        // Re-open with a keyring holding both terms but an empty cache.
        let (_, b2) = barrier();
        drop(b2);
        assert!(b.is_sealed());
    }

    #[tokio::test]
    async fn view_prefixes_and_lists() {
        let (_, b) = barrier();
        let v = View::new(Arc::new(b), "logical/x/");
        v.put("a", b"1").await.unwrap();
        v.put("d/b", b"2").await.unwrap();
        assert_eq!(v.list("").await.unwrap(), vec!["a", "d/"]);
        assert_eq!(v.keys_with_prefix("").await.unwrap(), vec!["a", "d/b"]);
        v.delete_prefix("d/").await.unwrap();
        assert_eq!(v.list("").await.unwrap(), vec!["a"]);
    }
}

//! The barrier: every logical entry is encrypted before it reaches storage.
//!
//! Entries are sealed with the keyring's active term and their own storage
//! key as associated data, so a ciphertext copied under another key fails to
//! open. While sealed, the barrier holds no key and refuses every operation.
//!
//! A read cache holds ciphertexts (never plaintext) of recently used keys. A
//! read fills it only when no write ran during that read, so a slow read can
//! never leave a stale value behind a newer write.
//!
//! **Conditional writes.** [`Barrier::get_versioned`] returns an entry with
//! its [`EntryVersion`] (the digest of the ciphertext read, or "absent");
//! [`Barrier::write_batch_if`] applies a batch only if the entries it names
//! are still in those states, checked by the backend in the transaction
//! that writes ([`coffer_storage::Backend::write_batch_if`]). Every write
//! seals with a fresh nonce, so any write since the read, of any value,
//! fails the check. This is what makes a read-modify-write (a KV `cas`, a
//! use of a limited-use token, a single-use SecretID) safe when several
//! nodes share one store: of writers that read the same state, one wins;
//! the others see `false` and read again ([`Retry`]). A versioned read may
//! come from the cache; a cache entry made stale by another node only
//! costs one failed attempt, after which the entry is dropped and the next
//! read goes to storage.
//!
//! Every encryption with the active term is counted. AES-GCM with random
//! 96-bit nonces must stay well below 2^32 messages per key, so:
//!
//! * the count is persisted (sealed with the active term, under
//!   [`ENCRYPTIONS_KEY`], inside the same atomic batch as the write that
//!   crossed the mark) every [`persist_interval`] encryptions, and on seal
//!   and at initialisation marked clean; loading a clean count takes it as
//!   it is (and at once stores it again unmarked), loading any other adds
//!   one interval, for encryptions a crash may have lost;
//! * crossing the rotation threshold calls the rotation hook (installed by the
//!   seal, which holds the root key needed to store a new keyring) once;
//! * past [`HARD_ENCRYPTION_LIMIT`] the barrier refuses to encrypt at all.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use coffer_crypto::Keyring;
use coffer_storage::{Backend, Op, Version};
use parking_lot::{Mutex, RwLock};
use serde::{de::DeserializeOwned, Serialize};
use zeroize::Zeroizing;

use crate::{Error, Result};

/// Most entries the read cache holds before it starts over.
const CACHE_LIMIT: usize = 100_000;

/// Storage key of the active term's encryption count (outside the barrier's
/// cache and views, sealed with the active term).
pub const ENCRYPTIONS_KEY: &str = "core/key-encryptions";

/// Default encryption count after which the active term is rotated: about
/// 0.9 * 2^32, Vault's default.
pub const DEFAULT_ROTATION_THRESHOLD: u64 = 3_865_470_566;

/// Encryptions with one term beyond which the barrier refuses to encrypt:
/// 2^32, the bound for random 96-bit GCM nonces.
pub const HARD_ENCRYPTION_LIMIT: u64 = 1 << 32;

/// How often (in encryptions) the count is persisted for `threshold`: every
/// million, or every 1% of a smaller threshold. It is also the margin added
/// when a persisted count is loaded.
pub fn persist_interval(threshold: u64) -> u64 {
    (threshold / 100).clamp(1, 1_000_000)
}

/// The persisted encryption count of one term.
#[derive(Serialize, serde::Deserialize)]
struct StoredCount {
    term: u32,
    encryptions: u64,
    /// Written by an orderly seal (or initialisation): nothing was encrypted
    /// after it, so no crash margin is due when it is loaded.
    #[serde(default)]
    clean: bool,
}

/// The keyring in use and the encryption count of its active term.
struct Active {
    keyring: Arc<Keyring>,
    encryptions: AtomicU64,
    /// Set once the rotation hook has been called for this term.
    rotation_requested: AtomicBool,
}

impl Active {
    fn new(keyring: Keyring, encryptions: u64) -> Arc<Active> {
        Arc::new(Active {
            keyring: Arc::new(keyring),
            encryptions: AtomicU64::new(encryptions),
            rotation_requested: AtomicBool::new(false),
        })
    }
}

/// What the barrier calls when the active term needs rotating.
pub type RotationHook = Box<dyn Fn() + Send + Sync>;

/// A write of a batch, before encryption.
pub enum BarrierOp {
    /// Encrypt and store `value` under `key`.
    Put(String, Zeroizing<Vec<u8>>),
    /// Remove `key`.
    Delete(String),
}

/// Prints the key and the length of a plaintext, never the plaintext.
impl std::fmt::Debug for BarrierOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BarrierOp::Put(key, value) => f
                .debug_tuple("Put")
                .field(key)
                .field(&format_args!("<{} bytes>", value.len()))
                .finish(),
            BarrierOp::Delete(key) => f.debug_tuple("Delete").field(key).finish(),
        }
    }
}

/// The state of an entry when it was read, for a conditional write:
/// absent, or holding exactly the ciphertext read. Opaque; from
/// [`Barrier::get_versioned`] or [`EntryVersion::ABSENT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryVersion(Option<Version>);

impl EntryVersion {
    /// The state of an entry that does not exist.
    pub const ABSENT: EntryVersion = EntryVersion(None);

    /// Whether the entry did not exist.
    pub fn is_absent(&self) -> bool {
        self.0.is_none()
    }
}

/// Attempts a read-modify-write makes before giving up on conflicts.
pub const CONFLICT_ATTEMPTS: u32 = 8;

/// Bounds the retries of a read-modify-write that lost a race: call
/// [`Retry::attempt`] before each attempt (read, decide, conditional write).
///
/// ```ignore
/// let mut retry = Retry::new("the token");
/// loop {
///     retry.attempt().await?;
///     let (entry, version) = view.get_json_versioned(key).await?;
///     /* decide */
///     if view.write_batch_if(vec![(key.into(), version)], ops).await? {
///         break;
///     }
/// }
/// ```
pub struct Retry {
    what: &'static str,
    attempts: u32,
}

impl Retry {
    /// A fresh bound for a read-modify-write of `what` (named in the error).
    pub fn new(what: &'static str) -> Retry {
        Retry { what, attempts: 0 }
    }

    /// Returns at once the first time; after a conflict waits a random,
    /// growing while (so racing nodes fall out of step; hold no lock across
    /// it), and after [`CONFLICT_ATTEMPTS`] attempts fails with a 503 the
    /// client may retry.
    pub async fn attempt(&mut self) -> Result<()> {
        let n = self.attempts;
        self.attempts += 1;
        if n == 0 {
            return Ok(());
        }
        if n >= CONFLICT_ATTEMPTS {
            return Err(Error::Status {
                code: 503,
                errors: vec![format!(
                    "{} was changed concurrently {CONFLICT_ATTEMPTS} times; try again",
                    self.what
                )],
            });
        }
        // Up to 1, 2, 4 ... 64 ms: long enough for the other node's queue
        // of writers to the same entry to drain.
        let ceiling_us = 1000usize << (n - 1).min(6);
        let pause = coffer_crypto::random::uniform_index(ceiling_us) as u64;
        tokio::time::sleep(std::time::Duration::from_micros(pause)).await;
        Ok(())
    }
}

#[derive(Default)]
struct Cache {
    entries: HashMap<String, Option<Arc<Vec<u8>>>>,
}

/// The encrypting layer between the core and a storage backend.
pub struct Barrier {
    backend: Arc<dyn Backend>,
    active: RwLock<Option<Arc<Active>>>,
    rotation_threshold: AtomicU64,
    rotation_hook: OnceLock<RotationHook>,
    cache: Mutex<Cache>,
    /// Bumped before and after each write; a read that saw it change does not fill the cache.
    write_epoch: AtomicU64,
    writes_in_flight: AtomicU64,
    /// Held shared by every write from encryption to storage and cache,
    /// exclusively by [`Barrier::quiesce`].
    writes: tokio::sync::RwLock<()>,
}

impl Barrier {
    /// A sealed barrier over `backend`.
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Barrier {
            backend,
            active: RwLock::new(None),
            rotation_threshold: AtomicU64::new(DEFAULT_ROTATION_THRESHOLD),
            rotation_hook: OnceLock::new(),
            cache: Mutex::new(Cache::default()),
            write_epoch: AtomicU64::new(0),
            writes_in_flight: AtomicU64::new(0),
            writes: tokio::sync::RwLock::new(()),
        }
    }

    /// The raw backend, for the few entries kept outside the barrier (seal config, encrypted keyring).
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Sets the encryption count after which the active term is rotated
    /// (capped below [`HARD_ENCRYPTION_LIMIT`]).
    pub fn set_rotation_threshold(&self, threshold: u64) {
        let cap = HARD_ENCRYPTION_LIMIT - persist_interval(HARD_ENCRYPTION_LIMIT);
        self.rotation_threshold
            .store(threshold.clamp(1, cap), Ordering::Relaxed);
    }

    /// The encryption count after which the active term is rotated.
    pub fn rotation_threshold(&self) -> u64 {
        self.rotation_threshold.load(Ordering::Relaxed)
    }

    /// Installs what is called (once per term) when the active term passes
    /// the rotation threshold. Only the first installation counts.
    pub fn set_rotation_hook(&self, hook: RotationHook) {
        let _ = self.rotation_hook.set(hook);
    }

    /// Whether the barrier is sealed.
    pub fn is_sealed(&self) -> bool {
        self.active.read().is_none()
    }

    /// Opens the barrier with a fresh `keyring` whose active term has not
    /// encrypted anything yet.
    pub fn unseal(&self, keyring: Keyring) {
        *self.active.write() = Some(Active::new(keyring, 0));
    }

    /// Opens the barrier with `keyring`, loading its active term's persisted
    /// encryption count: as it is when an orderly seal wrote it, otherwise
    /// plus one persist interval (encryptions a crash may have lost). A
    /// count of an older term, or none, counts as the margin alone. The
    /// loaded count is stored again without the clean mark before anything
    /// is encrypted, so a crash from here on is covered by the margin.
    pub async fn unseal_counted(&self, keyring: Keyring) -> Result<()> {
        let margin = persist_interval(self.rotation_threshold());
        let stored = match self.backend.get(ENCRYPTIONS_KEY).await? {
            None => None,
            Some(bytes) => {
                let plain = keyring
                    .open(&bytes, ENCRYPTIONS_KEY.as_bytes())
                    .map_err(|e| Error::corrupt(format!("encryption count: {e}")))?;
                Some(
                    serde_json::from_slice::<StoredCount>(&plain)
                        .map_err(|e| Error::corrupt_json("encryption count", &e))?,
                )
            }
        };
        let count = match stored {
            Some(c) if c.term == keyring.active().term && c.clean => c.encryptions,
            Some(c) if c.term == keyring.active().term => c.encryptions.saturating_add(margin),
            _ => margin,
        };
        let count = count.saturating_add(1); // the record written below
        self.backend
            .write_batch(vec![count_op(&keyring, count, false)?])
            .await?;
        *self.active.write() = Some(Active::new(keyring, count));
        Ok(())
    }

    /// Drops `keys` from the read cache (another node wrote them). A read
    /// running meanwhile does not fill them back.
    pub fn invalidate(&self, keys: &[String]) {
        self.write_epoch.fetch_add(1, Ordering::SeqCst);
        let mut cache = self.cache.lock();
        for key in keys {
            cache.entries.remove(key);
        }
        self.write_epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Empties the read cache (the change log had a gap).
    pub fn invalidate_all(&self) {
        self.write_epoch.fetch_add(1, Ordering::SeqCst);
        self.cache.lock().entries.clear();
        self.write_epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Waits until every write in flight has reached storage, then holds
    /// new ones back until the guard is dropped. Sealing while holding it
    /// means no write encrypted with the old keyring lands afterwards (what
    /// a snapshot restore needs before it replaces the store).
    pub async fn quiesce(&self) -> tokio::sync::RwLockWriteGuard<'_, ()> {
        self.writes.write().await
    }

    /// Seals the barrier: drops the keyring (its keys zeroize) and empties the cache.
    pub fn seal(&self) {
        *self.active.write() = None;
        self.cache.lock().entries.clear();
    }

    /// The keyring in use, or [`Error::Sealed`].
    pub fn keyring(&self) -> Result<Arc<Keyring>> {
        Ok(self.active()?.keyring.clone())
    }

    fn active(&self) -> Result<Arc<Active>> {
        self.active.read().clone().ok_or(Error::Sealed)
    }

    /// Encryptions made with the active term so far (as far as known: a
    /// count loaded from storage includes the crash margin).
    pub fn encryptions(&self) -> Result<u64> {
        Ok(self.active()?.encryptions.load(Ordering::SeqCst))
    }

    /// Installs a rotated keyring; its new active term starts a fresh count.
    ///
    /// Refuses with [`Error::Sealed`] while sealed: a rotation that lost a
    /// race with `sys/seal` must not re-open the barrier.
    pub fn set_keyring(&self, keyring: Keyring) -> Result<()> {
        let mut active = self.active.write();
        let Some(current) = active.as_ref() else {
            return Err(Error::Sealed);
        };
        let count = if current.keyring.active().term == keyring.active().term {
            current.encryptions.load(Ordering::SeqCst)
        } else {
            0
        };
        *active = Some(Active::new(keyring, count));
        Ok(())
    }

    /// Persists the active term's encryption count marked clean (on seal and
    /// at initialisation, when nothing more is encrypted before the next
    /// unseal).
    pub async fn persist_encryptions(&self) -> Result<()> {
        let _writing = self.writes.read().await;
        let active = self.active()?;
        let count = active.encryptions.fetch_add(1, Ordering::SeqCst) + 1;
        let op = count_op(&active.keyring, count, true)?;
        Ok(self.backend.write_batch(vec![op]).await?)
    }

    /// Counts `n` encryptions with `active`'s term: refuses past the hard
    /// limit, calls the rotation hook past the threshold, and returns whether
    /// this batch should persist the count (and the count to persist).
    fn count_encryptions(&self, active: &Active, n: u64) -> Result<Option<u64>> {
        if n == 0 {
            return Ok(None);
        }
        let threshold = self.rotation_threshold();
        let interval = persist_interval(threshold);
        let before = active.encryptions.fetch_add(n, Ordering::SeqCst);
        let mut after = before + n;
        if after > HARD_ENCRYPTION_LIMIT {
            active.encryptions.fetch_sub(n, Ordering::SeqCst);
            self.request_rotation(active);
            return Err(Error::Internal(
                "the encryption key reached its usage limit; rotate it (sys/rotate)".into(),
            ));
        }
        if after >= threshold {
            self.request_rotation(active);
        }
        if after / interval > before / interval {
            // The count record is one more encryption.
            after = active.encryptions.fetch_add(1, Ordering::SeqCst) + 1;
            return Ok(Some(after));
        }
        Ok(None)
    }

    fn request_rotation(&self, active: &Active) {
        if !active.rotation_requested.swap(true, Ordering::SeqCst) {
            match self.rotation_hook.get() {
                Some(hook) => hook(),
                None => active.rotation_requested.store(false, Ordering::SeqCst),
            }
        }
    }

    /// Lets the rotation hook be called again (after a failed rotation).
    pub fn rotation_failed(&self) {
        if let Ok(active) = self.active() {
            active.rotation_requested.store(false, Ordering::SeqCst);
        }
    }

    /// Whether the active term has passed the rotation threshold.
    pub fn rotation_due(&self) -> bool {
        self.encryptions()
            .is_ok_and(|n| n >= self.rotation_threshold())
    }

    /// Reads and decrypts the entry under `key`.
    pub async fn get(&self, key: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
        Ok(self.read(key, false).await?.0)
    }

    /// Reads and decrypts the entry under `key`, with the state it was in,
    /// for a conditional write ([`Barrier::write_batch_if`]).
    pub async fn get_versioned(
        &self,
        key: &str,
    ) -> Result<(Option<Zeroizing<Vec<u8>>>, EntryVersion)> {
        let (plain, version) = self.read(key, true).await?;
        Ok((plain, version.unwrap_or(EntryVersion::ABSENT)))
    }

    /// Reads `key` through the cache; with `versioned`, also digests the
    /// ciphertext (else the version is `None`).
    async fn read(
        &self,
        key: &str,
        versioned: bool,
    ) -> Result<(Option<Zeroizing<Vec<u8>>>, Option<EntryVersion>)> {
        let _timing = crate::telemetry::T_BARRIER_GET.time();
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
        let version = versioned.then(|| EntryVersion(sealed.as_deref().map(|b| Version::of(b))));
        match sealed {
            None => Ok((None, version)),
            Some(bytes) => keyring
                .open(&bytes, key.as_bytes())
                .map(|plain| (Some(plain), version))
                .map_err(|e| Error::corrupt(format!("entry {key:?}: {e}"))),
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
        let _timing = crate::telemetry::T_BARRIER_LIST.time();
        self.keyring()?;
        Ok(self.backend.list(prefix).await?)
    }

    /// One page of [`Barrier::list`]: the children after `after`, at most `limit`.
    pub async fn list_page(
        &self,
        prefix: &str,
        after: &str,
        limit: Option<usize>,
    ) -> Result<Vec<String>> {
        let _timing = crate::telemetry::T_BARRIER_LIST.time();
        self.keyring()?;
        Ok(self.backend.list_page(prefix, after, limit).await?)
    }

    /// Every full key below `prefix`.
    pub async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let _timing = crate::telemetry::T_BARRIER_LIST.time();
        self.keyring()?;
        Ok(self.backend.keys_with_prefix(prefix).await?)
    }

    /// Encrypts and applies `ops` atomically.
    pub async fn write_batch(&self, ops: Vec<BarrierOp>) -> Result<()> {
        self.apply(Vec::new(), ops).await.map(|_| ())
    }

    /// Encrypts and applies `ops` atomically if every entry of `expect` is
    /// still in the state read ([`Barrier::get_versioned`]); `false`, with
    /// nothing written and those entries dropped from the cache, if not.
    pub async fn write_batch_if(
        &self,
        expect: Vec<(String, EntryVersion)>,
        ops: Vec<BarrierOp>,
    ) -> Result<bool> {
        self.apply(expect, ops).await
    }

    async fn apply(
        &self,
        expect: Vec<(String, EntryVersion)>,
        ops: Vec<BarrierOp>,
    ) -> Result<bool> {
        let _timing = if ops.iter().any(|op| matches!(op, BarrierOp::Put(..))) {
            crate::telemetry::T_BARRIER_PUT.time()
        } else {
            crate::telemetry::T_BARRIER_DELETE.time()
        };
        let _writing = self.writes.read().await;
        let active = self.active()?;
        let keyring = &active.keyring;
        let puts = ops
            .iter()
            .filter(|op| matches!(op, BarrierOp::Put(..)))
            .count();
        let persist = self.count_encryptions(&active, puts as u64)?;
        let mut physical = Vec::with_capacity(ops.len() + 1);
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
        if let Some(count) = persist {
            physical.push(count_op(keyring, count, false)?);
        }
        let expected: Vec<String> = expect.iter().map(|(k, _)| k.clone()).collect();
        self.writes_in_flight.fetch_add(1, Ordering::SeqCst);
        self.write_epoch.fetch_add(1, Ordering::SeqCst);
        let result = if expect.is_empty() {
            self.backend.write_batch(physical).await.map(|()| true)
        } else {
            let expect = expect.into_iter().map(|(k, v)| (k, v.0)).collect();
            self.backend.write_batch_if(expect, physical).await
        };
        {
            let mut cache = self.cache.lock();
            let applied = matches!(result, Ok(true));
            for (key, value) in cache_updates {
                if applied {
                    cache.entries.insert(key, value);
                } else {
                    cache.entries.remove(&key);
                }
            }
            if !applied {
                // What was expected is not what is stored: read it afresh.
                for key in &expected {
                    cache.entries.remove(key);
                }
            }
            self.write_epoch.fetch_add(1, Ordering::SeqCst);
            self.writes_in_flight.fetch_sub(1, Ordering::SeqCst);
        }
        if let (Ok(false), Some(count)) = (&result, persist) {
            // The count crossed its mark in a batch that did not apply: it
            // must still be persisted, or a crash could lose more than the
            // margin of encryptions.
            self.backend
                .write_batch(vec![count_op(keyring, count, false)?])
                .await?;
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
            Some(bytes) => parse_json(key, &bytes).map(Some),
        }
    }

    /// Reads `key` with the state it was in, for [`View::write_batch_if`].
    pub async fn get_versioned(
        &self,
        key: &str,
    ) -> Result<(Option<Zeroizing<Vec<u8>>>, EntryVersion)> {
        self.barrier.get_versioned(&self.full(key)).await
    }

    /// Reads `key` as JSON with the state it was in, for
    /// [`View::write_batch_if`].
    pub async fn get_json_versioned<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<(Option<T>, EntryVersion)> {
        let (bytes, version) = self.get_versioned(key).await?;
        match bytes {
            None => Ok((None, version)),
            Some(bytes) => Ok((Some(parse_json(key, &bytes)?), version)),
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

    /// Drops `keys` (relative to this view) from the read cache, so the
    /// next reads go to storage (a conditional write found them changed by
    /// another node).
    pub fn forget(&self, keys: &[&str]) {
        let full: Vec<String> = keys.iter().map(|k| self.full(k)).collect();
        self.barrier.invalidate(&full);
    }

    /// Lists the children of `prefix` within this view.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.barrier.list(&self.full(prefix)).await
    }

    /// One page of the children of `prefix` within this view (see
    /// [`Barrier::list_page`]).
    pub async fn list_page(
        &self,
        prefix: &str,
        after: &str,
        limit: Option<usize>,
    ) -> Result<Vec<String>> {
        self.barrier
            .list_page(&self.full(prefix), after, limit)
            .await
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
        self.barrier.write_batch(self.full_ops(ops)).await
    }

    /// Applies ops (keys relative to this view) atomically if every key of
    /// `expect` is still in the state read ([`View::get_versioned`]);
    /// `false`, with nothing written, if not.
    pub async fn write_batch_if(
        &self,
        expect: Vec<(String, EntryVersion)>,
        ops: Vec<BarrierOp>,
    ) -> Result<bool> {
        let expect = expect
            .into_iter()
            .map(|(k, v)| (self.full(&k), v))
            .collect();
        self.barrier
            .write_batch_if(expect, self.full_ops(ops))
            .await
    }

    fn full_ops(&self, ops: Vec<BarrierOp>) -> Vec<BarrierOp> {
        ops.into_iter()
            .map(|op| match op {
                BarrierOp::Put(k, v) => BarrierOp::Put(self.full(&k), v),
                BarrierOp::Delete(k) => BarrierOp::Delete(self.full(&k)),
            })
            .collect()
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

/// Parses the JSON entry `key`.
fn parse_json<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::corrupt_json(&format!("entry {key:?}"), &e))
}

/// The write that persists `count` for `keyring`'s active term.
fn count_op(keyring: &Keyring, count: u64, clean: bool) -> Result<Op> {
    let record = serde_json::to_vec(&StoredCount {
        term: keyring.active().term,
        encryptions: count,
        clean,
    })
    .map_err(|e| Error::encode("the encryption count", e))?;
    Ok(Op::Put {
        key: ENCRYPTIONS_KEY.into(),
        value: keyring.seal(&record, ENCRYPTIONS_KEY.as_bytes()),
    })
}

/// Serializes `value` to JSON in a zeroizing buffer.
pub fn to_json<T: Serialize>(value: &T) -> Result<Zeroizing<Vec<u8>>> {
    serde_json::to_vec(value)
        .map(Zeroizing::new)
        .map_err(|e| Error::encode("an entry", e))
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
        b.set_keyring(kr.clone()).unwrap();
        b.put("new", b"2").await.unwrap();
        b.seal();
        // A rotation that lost the race with a seal cannot re-open the barrier.
        assert!(matches!(b.set_keyring(kr.clone()), Err(Error::Sealed)));
        assert!(b.is_sealed());
        // Re-open with a keyring holding both terms and an empty cache.
        b.unseal(kr);
        assert_eq!(b.get("old").await.unwrap().unwrap().as_slice(), b"1");
        assert_eq!(b.get("new").await.unwrap().unwrap().as_slice(), b"2");
    }

    #[tokio::test]
    async fn encryptions_are_counted_persisted_and_reloaded_with_a_margin_unless_clean() {
        let (mem, b) = barrier();
        b.set_rotation_threshold(1000); // persist every 10
        assert_eq!(b.encryptions().unwrap(), 0);
        for i in 0..25 {
            b.put(&format!("k{i}"), b"v").await.unwrap();
        }
        // 25 entries and two count records (at 10 and 20).
        assert_eq!(b.encryptions().unwrap(), 27);
        assert!(mem.get(ENCRYPTIONS_KEY).await.unwrap().is_some());
        let kr = (*b.keyring().unwrap()).clone();
        // A crash now: the last persisted count (21) plus the margin (10),
        // plus the unmarked record stored again at unseal.
        b.seal();
        b.unseal_counted(kr.clone()).await.unwrap();
        assert_eq!(b.encryptions().unwrap(), 32);
        // A clean seal persists the exact count, which loads without margin.
        b.persist_encryptions().await.unwrap();
        let exact = b.encryptions().unwrap();
        b.seal();
        b.unseal_counted(kr.clone()).await.unwrap();
        assert_eq!(b.encryptions().unwrap(), exact + 1);
        // The clean mark is used up by that unseal: a crash now adds the
        // margin again.
        b.seal();
        b.unseal_counted(kr.clone()).await.unwrap();
        assert_eq!(b.encryptions().unwrap(), exact + 1 + 10 + 1);
        // A new term starts from zero; a stale record counts as the margin only.
        let mut rotated = kr.clone();
        rotated.rotate(2);
        b.set_keyring(rotated.clone()).unwrap();
        assert_eq!(b.encryptions().unwrap(), 0);
        b.seal();
        b.unseal_counted(rotated).await.unwrap();
        assert_eq!(b.encryptions().unwrap(), 11);
    }

    #[tokio::test]
    async fn threshold_calls_the_rotation_hook_once() {
        let (_, b) = barrier();
        let calls = Arc::new(AtomicU64::new(0));
        let c = calls.clone();
        b.set_rotation_threshold(5);
        b.set_rotation_hook(Box::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        }));
        // Each put counts twice here: the entry and the count record.
        for i in 0..2 {
            b.put(&format!("k{i}"), b"v").await.unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        for i in 2..10 {
            b.put(&format!("k{i}"), b"v").await.unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(b.rotation_due());
        b.rotation_failed();
        b.put("again", b"v").await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
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

    #[tokio::test]
    async fn a_conditional_write_applies_only_to_the_state_read() {
        let (mem, b) = barrier();
        let v = View::new(Arc::new(b), "x/");
        let (none, absent) = v.get_versioned("k").await.unwrap();
        assert!(none.is_none() && absent.is_absent());
        let put = |s: &str| {
            vec![BarrierOp::Put(
                "k".into(),
                Zeroizing::new(s.as_bytes().to_vec()),
            )]
        };
        assert!(v
            .write_batch_if(vec![("k".into(), absent)], put("1"))
            .await
            .unwrap());
        // A second writer that read "absent" too loses.
        assert!(!v
            .write_batch_if(vec![("k".into(), absent)], put("2"))
            .await
            .unwrap());
        let (one, v1) = v.get_versioned("k").await.unwrap();
        assert_eq!(one.unwrap().as_slice(), b"1");
        // The same plaintext written again is a new version (fresh nonce).
        v.put("k", b"1").await.unwrap();
        let (_, v1b) = v.get_versioned("k").await.unwrap();
        assert_ne!(v1, v1b);
        assert!(!v
            .write_batch_if(vec![("k".into(), v1)], put("3"))
            .await
            .unwrap());
        assert!(v
            .write_batch_if(vec![("k".into(), v1b)], put("3"))
            .await
            .unwrap());
        // Another process changes the entry behind the cache: the stale
        // cached version fails once, then a fresh read succeeds.
        let (_, cached) = v.get_versioned("k").await.unwrap();
        let raw = mem.get("x/k").await.unwrap().unwrap();
        v.put("k", b"4").await.unwrap();
        mem.put("x/k", raw).await.unwrap(); // the cache holds "4", storage "3"
        let (four, stale) = v.get_versioned("k").await.unwrap();
        assert_eq!(four.unwrap().as_slice(), b"4");
        assert!(!v
            .write_batch_if(vec![("k".into(), stale)], put("5"))
            .await
            .unwrap());
        let (three, fresh) = v.get_versioned("k").await.unwrap();
        assert_eq!(three.unwrap().as_slice(), b"3");
        assert_eq!(fresh, cached);
        assert!(v
            .write_batch_if(vec![("k".into(), fresh)], put("5"))
            .await
            .unwrap());
        assert_eq!(v.get("k").await.unwrap().unwrap().as_slice(), b"5");
    }

    #[tokio::test]
    async fn a_count_crossing_its_mark_in_a_refused_write_is_still_persisted() {
        let (mem, b) = barrier();
        b.set_rotation_threshold(1000); // persist every 10
        let persisted = || async {
            let sealed = mem.get(ENCRYPTIONS_KEY).await.unwrap()?;
            let plain = b
                .keyring()
                .unwrap()
                .open(&sealed, ENCRYPTIONS_KEY.as_bytes())
                .unwrap();
            Some(
                serde_json::from_slice::<StoredCount>(&plain)
                    .unwrap()
                    .encryptions,
            )
        };
        b.put("taken", b"v").await.unwrap();
        let (_, stale) = b.get_versioned("fresh").await.unwrap();
        b.put("fresh", b"v").await.unwrap();
        for i in 0..7 {
            b.put(&format!("k{i}"), b"v").await.unwrap();
        }
        assert_eq!(b.encryptions().unwrap(), 9);
        assert_eq!(persisted().await, None);
        // The tenth encryption, in a write that does not apply.
        let ops = vec![BarrierOp::Put(
            "fresh".into(),
            Zeroizing::new(b"w".to_vec()),
        )];
        assert!(!b
            .write_batch_if(vec![("fresh".into(), stale)], ops)
            .await
            .unwrap());
        assert_eq!(persisted().await, Some(11), "the count was not persisted");
        assert_eq!(b.get("fresh").await.unwrap().unwrap().as_slice(), b"v");
    }

    #[tokio::test]
    async fn retries_are_bounded() {
        let mut retry = Retry::new("the entry");
        for _ in 0..CONFLICT_ATTEMPTS {
            retry.attempt().await.unwrap();
        }
        let err = retry.attempt().await.unwrap_err();
        assert!(err.to_string().contains("the entry"), "{err}");
    }
}

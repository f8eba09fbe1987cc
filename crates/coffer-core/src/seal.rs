//! The seal: initialisation into Shamir key shares, unsealing, sealing.
//!
//! Two entries sit outside the barrier: the seal configuration (shares and
//! threshold, plain JSON) and the keyring, encrypted with the root key. The
//! root key exists only as Shamir shares held by operators, and in memory
//! while the server is unsealed (for key rotation); it is zeroized on seal.
//!
//! Unseal completion, sealing and every keyring change (`sys/rotate`, the
//! automatic rotation at the encryption threshold) run under one admin lock,
//! shared with the core, so a rotation can neither lose another's term (its
//! read-modify-write of the keyring is serialised) nor re-open a barrier
//! sealed meanwhile (the barrier also refuses a new keyring while sealed).

use std::sync::{Arc, Weak};

use coffer_crypto::{shamir, Key, Keyring};
use coffer_storage::Op;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::barrier::Barrier;
use crate::{Error, Result};

/// Storage key of the seal configuration (outside the barrier, plain).
pub const SEAL_CONFIG_KEY: &str = "core/seal-config";
/// Storage key of the keyring (outside the barrier, sealed by the root key).
pub const KEYRING_KEY: &str = "core/keyring";

/// The persisted seal configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SealConfig {
    /// Seal type; always "shamir".
    #[serde(rename = "type")]
    pub kind: String,
    /// Number of key shares.
    pub secret_shares: u32,
    /// Shares needed to unseal.
    pub secret_threshold: u32,
}

/// What an unseal submission led to.
#[derive(Debug, PartialEq, Eq)]
pub enum UnsealProgress {
    /// More shares are needed; `progress` held so far.
    Pending {
        /// Shares held.
        progress: u32,
    },
    /// The barrier is now unsealed.
    Unsealed,
}

struct State {
    config: Option<SealConfig>,
    parts: Vec<Zeroizing<Vec<u8>>>,
    nonce: String,
    root_key: Option<Key>,
}

/// The lock serialising unseal completion, seal and keyring changes.
pub type AdminLock = Arc<tokio::sync::Mutex<()>>;

/// Initialisation, unseal progress and the in-memory root key.
pub struct Seal {
    barrier: Arc<Barrier>,
    state: Arc<Mutex<State>>,
    admin: AdminLock,
}

impl Seal {
    /// A seal over `barrier`, reading no storage yet. `admin` is the lock its
    /// owner holds while sealing; unseal completion and rotations take it too.
    /// Installs the barrier's rotation hook: past the encryption threshold, a
    /// task rotates the active term under `admin`.
    pub fn new(barrier: Arc<Barrier>, admin: AdminLock) -> Self {
        let state = Arc::new(Mutex::new(State {
            config: None,
            parts: Vec::new(),
            nonce: String::new(),
            root_key: None,
        }));
        let (weak_barrier, weak_state) = (Arc::downgrade(&barrier), Arc::downgrade(&state));
        let hook_admin = Arc::downgrade(&admin);
        barrier.set_rotation_hook(Box::new(move || {
            auto_rotate(weak_barrier.clone(), weak_state.clone(), hook_admin.clone())
        }));
        Seal {
            barrier,
            state,
            admin,
        }
    }

    /// The seal configuration, or `None` when not initialised.
    pub async fn config(&self) -> Result<Option<SealConfig>> {
        if let Some(c) = self.state.lock().config.clone() {
            return Ok(Some(c));
        }
        let raw = self.barrier.backend().get(SEAL_CONFIG_KEY).await?;
        let config: Option<SealConfig> = match raw {
            None => None,
            Some(bytes) => Some(
                serde_json::from_slice(&bytes)
                    .map_err(|e| Error::corrupt_json("seal configuration", &e))?,
            ),
        };
        if config.is_some() {
            self.state.lock().config = config.clone();
        }
        Ok(config)
    }

    /// Unseal progress: (shares held, nonce of this attempt).
    pub fn progress(&self) -> (u32, String) {
        let s = self.state.lock();
        (s.parts.len() as u32, s.nonce.clone())
    }

    /// Initialises: creates the root key and keyring, stores them, and
    /// returns the key shares and the root key (to create the root token).
    pub async fn initialize(
        &self,
        shares: u32,
        threshold: u32,
    ) -> Result<(Vec<Zeroizing<Vec<u8>>>, Key, Keyring)> {
        shamir::validate(shares, threshold).map_err(|e| Error::bad(e.to_string()))?;
        if self.config().await?.is_some() {
            return Err(Error::bad("Coffer is already initialized"));
        }
        let root = Key::generate();
        let keyring = Keyring::new(crate::util::now().timestamp());
        let sealed_keyring = root.seal(&keyring.to_bytes(), KEYRING_KEY.as_bytes());
        let config = SealConfig {
            kind: "shamir".into(),
            secret_shares: shares,
            secret_threshold: threshold,
        };
        let config_bytes =
            serde_json::to_vec(&config).map_err(|e| Error::encode("the seal configuration", e))?;
        self.barrier
            .backend()
            .write_batch(vec![
                Op::Put {
                    key: KEYRING_KEY.into(),
                    value: sealed_keyring,
                },
                Op::Put {
                    key: SEAL_CONFIG_KEY.into(),
                    value: config_bytes,
                },
            ])
            .await?;
        let parts = shamir::split(root.as_bytes(), shares, threshold)
            .map_err(|e| Error::crypto("splitting the root key", e))?;
        self.state.lock().config = Some(config);
        Ok((parts, root, keyring))
    }

    /// Adds one key share; with enough shares, recovers the root key, opens
    /// the keyring and unseals the barrier. A wrong combination resets progress.
    pub async fn submit(&self, key: Zeroizing<Vec<u8>>) -> Result<UnsealProgress> {
        let config = self
            .config()
            .await?
            .ok_or_else(|| Error::bad("Coffer is not initialized"))?;
        if !self.barrier.is_sealed() {
            return Ok(UnsealProgress::Unsealed);
        }
        let parts = {
            let mut s = self.state.lock();
            if s.parts.is_empty() {
                s.nonce = coffer_crypto::random::uuid();
            }
            let dup = s
                .parts
                .iter()
                .any(|p| coffer_crypto::hash::constant_time_eq(p, &key));
            if !dup {
                s.parts.push(key);
            }
            if (s.parts.len() as u32) < config.secret_threshold {
                return Ok(UnsealProgress::Pending {
                    progress: s.parts.len() as u32,
                });
            }
            let parts = std::mem::take(&mut s.parts);
            s.nonce.clear();
            parts
        };
        let root_bytes = shamir::combine(&parts, config.secret_threshold)
            .map_err(|_| Error::bad("unseal failed: invalid key shares"))?;
        let root = Key::from_slice(&root_bytes)
            .map_err(|_| Error::bad("unseal failed: invalid key shares"))?;
        self.unseal_with_root(root).await?;
        Ok(UnsealProgress::Unsealed)
    }

    /// Unseals directly with the root key (dev mode and initialisation),
    /// under the admin lock.
    pub async fn unseal_with_root(&self, root: Key) -> Result<()> {
        let _admin = self.admin.lock().await;
        if !self.barrier.is_sealed() {
            return Ok(());
        }
        // Whatever this node knew of the store is gone with the seal: take
        // it as it is now (after another node's snapshot restore, the
        // storage refuses this node's writes until it does).
        self.barrier.backend().rejoin().await?;
        let keyring = open_keyring(&self.barrier, &root).await?;
        self.barrier.unseal_counted(keyring).await?;
        self.state.lock().root_key = Some(root);
        Ok(())
    }

    /// Forgets the cached seal configuration (another node rekeyed).
    pub fn forget_config(&self) {
        self.state.lock().config = None;
    }

    /// Re-opens the keyring from storage with the root key in memory and
    /// installs it (another node rotated it). [`Error::Sealed`] while
    /// sealed; an error when the stored keyring no longer opens with this
    /// root key (another node rekeyed).
    pub async fn reload_keyring(&self) -> Result<()> {
        let root = self.state.lock().root_key.clone().ok_or(Error::Sealed)?;
        let keyring = open_keyring(&self.barrier, &root).await?;
        self.barrier.set_keyring(keyring)
    }

    /// Discards unseal progress.
    pub fn reset(&self) {
        let mut s = self.state.lock();
        s.parts.clear();
        s.nonce.clear();
    }

    /// Seals: drops the root key and the keyring. The caller holds the admin
    /// lock (the core's `seal`, `initialize` and failed `unseal` do).
    pub fn seal(&self) {
        let mut s = self.state.lock();
        s.root_key = None;
        s.parts.clear();
        s.nonce.clear();
        self.barrier.seal();
    }

    /// Recovers the root key from `parts` (at least the threshold of the
    /// current configuration) and checks that it is the root key in use:
    /// how rekey and root generation prove a quorum of operators agrees.
    pub fn recover_root(&self, parts: &[Zeroizing<Vec<u8>>]) -> Result<Key> {
        let s = self.state.lock();
        let config = s
            .config
            .as_ref()
            .ok_or_else(|| Error::bad("Vault is not initialized"))?;
        let current = s.root_key.as_ref().ok_or(Error::Sealed)?;
        let invalid = || Error::bad("unable to reconstruct the root key: invalid key shares");
        let bytes = shamir::combine(parts, config.secret_threshold).map_err(|_| invalid())?;
        let root = Key::from_slice(&bytes).map_err(|_| invalid())?;
        if !coffer_crypto::hash::constant_time_eq(root.as_bytes(), current.as_bytes()) {
            return Err(invalid());
        }
        Ok(root)
    }

    /// Makes `root` the root key, split into `shares` with `threshold`
    /// (Vault's rekey): the keyring sealed under it and the new seal
    /// configuration are written in one atomic batch under the admin lock,
    /// so after a crash either the old shares or the new ones open the
    /// store, never neither. `previous` is the root key the caller's shares
    /// recovered: if the root key changed meanwhile, nothing is written.
    pub async fn install_root(
        &self,
        previous: &Key,
        root: &Key,
        shares: u32,
        threshold: u32,
    ) -> Result<()> {
        shamir::validate(shares, threshold).map_err(|e| Error::bad(e.to_string()))?;
        let _admin = self.admin.lock().await;
        {
            let s = self.state.lock();
            let current = s.root_key.as_ref().ok_or(Error::Sealed)?;
            if !coffer_crypto::hash::constant_time_eq(previous.as_bytes(), current.as_bytes()) {
                return Err(Error::bad("the root key changed during the operation"));
            }
        }
        let keyring = self.barrier.keyring()?;
        let config = SealConfig {
            kind: "shamir".into(),
            secret_shares: shares,
            secret_threshold: threshold,
        };
        let config_bytes =
            serde_json::to_vec(&config).map_err(|e| Error::encode("the seal configuration", e))?;
        self.barrier
            .backend()
            .write_batch(vec![
                Op::Put {
                    key: KEYRING_KEY.into(),
                    value: root.seal(&keyring.to_bytes(), KEYRING_KEY.as_bytes()),
                },
                Op::Put {
                    key: SEAL_CONFIG_KEY.into(),
                    value: config_bytes,
                },
            ])
            .await?;
        let mut s = self.state.lock();
        s.config = Some(config);
        s.root_key = Some(root.clone());
        Ok(())
    }

    /// Adds a keyring term and stores the keyring, under the admin lock;
    /// returns the new term.
    pub async fn rotate(&self) -> Result<u32> {
        let _admin = self.admin.lock().await;
        rotate_locked(&self.barrier, &self.state).await
    }
}

async fn open_keyring(barrier: &Barrier, root: &Key) -> Result<Keyring> {
    let sealed = barrier
        .backend()
        .get(KEYRING_KEY)
        .await?
        .ok_or_else(|| Error::corrupt("store: the keyring is missing"))?;
    let plain = root
        .open(&sealed, KEYRING_KEY.as_bytes())
        .map_err(|_| Error::bad("unseal failed: invalid key shares"))?;
    Keyring::from_bytes(&plain).map_err(|e| Error::crypto("opening the keyring", e))
}

/// Rotates the keyring; the caller holds the admin lock, so the keyring read
/// here is the one in storage and no seal runs until it is installed.
async fn rotate_locked(barrier: &Barrier, state: &Mutex<State>) -> Result<u32> {
    let root = state.lock().root_key.clone().ok_or(Error::Sealed)?;
    let mut keyring = if barrier.backend().is_shared() {
        // Another node may have rotated since: start from the stored keyring,
        // never overwrite a term it added.
        let stored = open_keyring(barrier, &root).await?;
        barrier.set_keyring(stored.clone())?;
        stored
    } else {
        (*barrier.keyring()?).clone()
    };
    let term = keyring.rotate(crate::util::now().timestamp());
    let sealed = root.seal(&keyring.to_bytes(), KEYRING_KEY.as_bytes());
    barrier.backend().put(KEYRING_KEY, sealed).await?;
    barrier.set_keyring(keyring)?;
    Ok(term)
}

/// The barrier's rotation hook: rotates the active term in a task, under the
/// admin lock, if it is still due once the lock is held.
fn auto_rotate(
    barrier: Weak<Barrier>,
    state: Weak<Mutex<State>>,
    admin: Weak<tokio::sync::Mutex<()>>,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        if let Some(b) = barrier.upgrade() {
            b.rotation_failed();
        }
        return;
    };
    runtime.spawn(async move {
        let (Some(barrier), Some(state), Some(admin)) =
            (barrier.upgrade(), state.upgrade(), admin.upgrade())
        else {
            return;
        };
        let _admin = admin.lock().await;
        if barrier.is_sealed() || !barrier.rotation_due() {
            return;
        }
        let count = barrier.encryptions().unwrap_or_default();
        match rotate_locked(&barrier, &state).await {
            Ok(term) => tracing::info!(
                term,
                encryptions = count,
                "encryption key rotated automatically at its usage threshold"
            ),
            Err(Error::Sealed) => {}
            Err(e) => {
                tracing::warn!(error = %e, "automatic encryption key rotation failed");
                barrier.rotation_failed();
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_storage::MemoryBackend;

    #[tokio::test]
    async fn init_unseal_seal_cycle() {
        let barrier = Arc::new(Barrier::new(Arc::new(MemoryBackend::new())));
        let seal = Seal::new(barrier.clone(), AdminLock::default());
        assert!(seal.config().await.unwrap().is_none());
        let (parts, _, _) = seal.initialize(5, 3).await.unwrap();
        assert_eq!(parts.len(), 5);
        assert!(seal.initialize(5, 3).await.is_err());
        assert!(barrier.is_sealed());
        assert_eq!(
            seal.submit(parts[4].clone()).await.unwrap(),
            UnsealProgress::Pending { progress: 1 }
        );
        // The same share twice does not count twice.
        assert_eq!(
            seal.submit(parts[4].clone()).await.unwrap(),
            UnsealProgress::Pending { progress: 1 }
        );
        seal.submit(parts[0].clone()).await.unwrap();
        assert_eq!(
            seal.submit(parts[2].clone()).await.unwrap(),
            UnsealProgress::Unsealed
        );
        assert!(!barrier.is_sealed());
        barrier.put("x", b"y").await.unwrap();
        assert_eq!(seal.rotate().await.unwrap(), 2);
        seal.seal();
        assert!(barrier.is_sealed());
        for p in &parts[1..4] {
            seal.submit(p.clone()).await.unwrap();
        }
        assert!(!barrier.is_sealed());
        assert_eq!(barrier.keyring().unwrap().active().term, 2);
        assert_eq!(barrier.get("x").await.unwrap().unwrap().as_slice(), b"y");
    }

    #[tokio::test]
    async fn install_root_replaces_the_shares_and_refuses_a_stale_root() {
        let barrier = Arc::new(Barrier::new(Arc::new(MemoryBackend::new())));
        let seal = Seal::new(barrier.clone(), AdminLock::default());
        let (parts, root, _) = seal.initialize(3, 2).await.unwrap();
        seal.unseal_with_root(root).await.unwrap();
        barrier.put("x", b"y").await.unwrap();
        let previous = seal.recover_root(&parts[..2]).unwrap();
        assert!(seal.recover_root(&parts[..1]).is_err());
        let new_root = Key::generate();
        // A root key that is not the one in use changes nothing.
        assert!(seal.install_root(&new_root, &new_root, 1, 1).await.is_err());
        seal.install_root(&previous, &new_root, 1, 1).await.unwrap();
        assert_eq!(seal.config().await.unwrap().unwrap().secret_threshold, 1);
        seal.seal();
        assert!(seal.submit(parts[0].clone()).await.is_err());
        let share = shamir::split(new_root.as_bytes(), 1, 1).unwrap();
        assert_eq!(
            seal.submit(share[0].clone()).await.unwrap(),
            UnsealProgress::Unsealed
        );
        assert_eq!(barrier.get("x").await.unwrap().unwrap().as_slice(), b"y");
    }

    #[tokio::test]
    async fn wrong_shares_fail_and_reset() {
        let barrier = Arc::new(Barrier::new(Arc::new(MemoryBackend::new())));
        let seal = Seal::new(barrier.clone(), AdminLock::default());
        seal.initialize(3, 2).await.unwrap();
        seal.submit(Zeroizing::new(vec![1u8; 33])).await.unwrap();
        assert!(seal.submit(Zeroizing::new(vec![2u8; 33])).await.is_err());
        assert_eq!(seal.progress().0, 0);
        assert!(barrier.is_sealed());
    }

    #[tokio::test]
    async fn active_term_rotates_itself_at_the_configured_threshold() {
        let core = crate::core::Core::new(
            Arc::new(MemoryBackend::new()),
            crate::core::CoreConfig {
                key_rotation_threshold: 50,
                ..Default::default()
            },
        );
        let (key, _token) = core.dev_setup(None).await.unwrap().unwrap();
        assert_eq!(core.barrier.keyring().unwrap().active().term, 1);
        for i in 0..60 {
            core.barrier.put(&format!("x/{i}"), b"v").await.unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while core.barrier.keyring().unwrap().active().term < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "no automatic rotation"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(core.barrier.encryptions().unwrap() < 50);
        // The rotated keyring was stored: it is what the next unseal opens.
        core.seal().await;
        assert!(core.unseal(key).await.unwrap());
        let keyring = core.barrier.keyring().unwrap();
        assert!(keyring.active().term >= 2);
        for i in 0..60 {
            let v = core.barrier.get(&format!("x/{i}")).await.unwrap().unwrap();
            assert_eq!(v.as_slice(), b"v");
        }
    }

    #[tokio::test]
    async fn concurrent_rotations_are_not_lost_and_stop_at_seal() {
        let barrier = Arc::new(Barrier::new(Arc::new(MemoryBackend::new())));
        let seal = Arc::new(Seal::new(barrier.clone(), AdminLock::default()));
        let (_, root, _) = seal.initialize(1, 1).await.unwrap();
        seal.unseal_with_root(root).await.unwrap();
        let tasks: Vec<_> = (0..40)
            .map(|_| {
                let seal = seal.clone();
                tokio::spawn(async move { seal.rotate().await.unwrap() })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(barrier.keyring().unwrap().active().term, 41);
        seal.seal();
        assert!(matches!(seal.rotate().await, Err(Error::Sealed)));
        assert!(barrier.is_sealed());
    }
}

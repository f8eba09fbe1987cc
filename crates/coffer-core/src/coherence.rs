//! Cache coherence across nodes that share one store (PostgreSQL).
//!
//! Every write group a node commits is logged with its keys under a
//! sequence number taken in commit order (see `coffer_storage::postgresql`).
//! Before each request (and each background pass) a node reads the log past
//! the position it has applied and drops, from every cache, what other
//! nodes changed:
//!
//! | keys | what is refreshed |
//! | --- | --- |
//! | any | the barrier's ciphertext cache entry |
//! | `core/keyring` | the keyring, re-opened with the root key (a rekey elsewhere seals this node) |
//! | `core/seal-config` | the cached seal configuration |
//! | `core/mounts` | the mount table and router |
//! | `sys/policy/…` | parsed policies and compiled ACLs |
//! | `sys/token/id/<h>` | that token's parsed entry; the expiry index |
//! | `sys/token/batch-key` | the batch token key |
//! | `sys/expire/id/<id>` | the lease expiry queue |
//! | `core/cors` | the CORS configuration |
//! | `sys/quotas/…` | the rate-limit quotas and their configuration (unchanged quotas keep their counts) |
//! | `sys/identity/…` | the identity store (entities, aliases, groups), reloaded |
//! | `sys/audit/config` | the audit devices: those enabled elsewhere start here, those disabled stop |
//! | `sys/audit/request-headers` | the audited request headers |
//! | `sys/events/<second>/<id>` | an event made on another node, published to this node's subscribers ([`crate::cluster_events`]) |
//! | `logical/<uuid>/…` | what that mount's engine caches of the key (`Engine::changed_elsewhere`: KV v2's parsed metadata) |
//!
//! A log that no longer reaches back (pruned, or the store was recreated)
//! drops every cache and reloads the mount table, keyring and lease queue.
//! A store replaced by a snapshot restore on another node (its epoch
//! changed) seals this node instead: its keyring, caches and audit state
//! belong to the store that was replaced, and its writes are refused by the
//! storage until it is unsealed again with the snapshot's keys.
//!
//! **Read-your-writes across nodes.** A request is served only after a log
//! read that *started after the request arrived* has been applied, so every
//! write acknowledged anywhere before the request arrived is visible to it:
//! a token revoked or a policy removed on node A is refused on node B on the
//! next request, with no window beyond that one log read. Concurrent
//! requests share one log read (at most one runs at a time, and a read
//! serves every request that arrived before it began). If the log cannot be
//! read, the request fails with 503: nothing is served from a cache that
//! might be stale.

use std::time::Instant;

use coffer_storage::Changes;

use crate::core::Core;
use crate::{Error, Result};

/// The applied log position and when the last successful log read began.
#[derive(Default)]
pub(crate) struct Coherence {
    gate: tokio::sync::Mutex<Gate>,
}

#[derive(Default)]
struct Gate {
    position: u64,
    last_read_started: Option<Instant>,
}

/// The 503 a request gets while the shared store cannot be read.
fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::Status {
        code: 503,
        errors: vec![format!("storage unavailable: {e}")],
    }
}

impl Core {
    /// Starts following the change log from its current end (at unseal,
    /// before anything is loaded, so no later write is missed).
    pub(crate) async fn coherence_start(&self) -> Result<()> {
        let backend = self.barrier.backend();
        if !backend.is_shared() {
            return Ok(());
        }
        let mut gate = self.coherence.gate.lock().await;
        let position = match backend.changes_since(u64::MAX).await? {
            Some(
                Changes::Lost { position }
                | Changes::Keys { position, .. }
                | Changes::Replaced { position },
            ) => position,
            None => 0,
        };
        gate.position = position;
        gate.last_read_started = Some(Instant::now());
        Ok(())
    }

    /// Applies every change other nodes committed before this call (see the
    /// module docs). A no-op on unshared storage.
    pub(crate) async fn sync_storage(&self) -> Result<()> {
        let backend = self.barrier.backend();
        if !backend.is_shared() {
            return Ok(());
        }
        let arrived = Instant::now();
        let mut gate = self.coherence.gate.lock().await;
        if gate.last_read_started.is_some_and(|t| t >= arrived) {
            // A read that began after this request arrived has been applied.
            return Ok(());
        }
        let started = Instant::now();
        let changes = backend
            .changes_since(gate.position)
            .await
            .map_err(unavailable)?;
        match changes {
            None => {}
            Some(Changes::Keys { position, keys }) => {
                if !keys.is_empty() {
                    self.apply_changes(&keys).await.map_err(unavailable)?;
                }
                gate.position = position;
            }
            Some(Changes::Lost { position }) => {
                tracing::warn!("change log does not reach back far enough: dropping every cache");
                self.reload_everything().await.map_err(unavailable)?;
                gate.position = position;
            }
            Some(Changes::Replaced { position }) => {
                tracing::warn!(
                    "another node restored a snapshot over this store: sealing; unseal with \
                     the snapshot's unseal keys"
                );
                gate.position = position;
                drop(gate);
                self.seal().await;
                return Err(Error::Sealed);
            }
        }
        gate.last_read_started = Some(started);
        Ok(())
    }

    /// Drops and reloads what `keys` (written by other nodes) affect.
    async fn apply_changes(&self, keys: &[String]) -> Result<()> {
        self.barrier.invalidate(keys);
        let mut mounts = false;
        let mut keyring = false;
        let mut policies = false;
        let mut cors = false;
        let mut quotas = false;
        let mut identity = false;
        let mut audit = false;
        let mut events = Vec::new();
        let mut engines: Option<std::collections::HashMap<String, crate::mounts::Mounted>> = None;
        for key in keys {
            match key.as_str() {
                crate::seal::KEYRING_KEY => keyring = true,
                crate::seal::SEAL_CONFIG_KEY => self.seal.forget_config(),
                crate::mounts::MOUNT_TABLE_KEY => mounts = true,
                crate::sys_cors::KEY => cors = true,
                crate::audit::CONFIG_STORAGE_KEY => audit = true,
                crate::audit::headers::STORAGE_KEY => self.audit.follow_headers().await?,
                "sys/token/batch-key" => self.tokens.forget_batch_key(),
                "sys/token/wrapping-jwt-key" => self.tokens.wrapping_jwt().clear(),
                k => {
                    if k.starts_with(crate::cluster_events::PREFIX) {
                        events.push(k);
                    } else if k.starts_with("sys/policy/") {
                        policies = true;
                    } else if k.starts_with("sys/identity/") {
                        identity = true;
                    } else if k.starts_with(crate::quotas::STORAGE_PREFIX) {
                        quotas = true;
                    } else if let Some(hash) = k.strip_prefix("sys/token/id/") {
                        self.tokens.changed_elsewhere(hash).await?;
                    } else if let Some(id) = k.strip_prefix("sys/expire/id/") {
                        self.leases.changed_elsewhere(id).await?;
                    } else if let Some((uuid, rest)) =
                        k.strip_prefix("logical/").and_then(|r| r.split_once('/'))
                    {
                        let by_uuid = engines.get_or_insert_with(|| {
                            self.router
                                .read()
                                .entries()
                                .map(|m| (m.entry.uuid.clone(), m.clone()))
                                .collect()
                        });
                        if let Some(m) = by_uuid.get(uuid) {
                            m.engine.changed_elsewhere(rest);
                        }
                    }
                }
            }
        }
        if keyring {
            self.follow_keyring().await?;
        }
        if policies {
            self.policies.clear_caches();
        }
        if mounts {
            let _admin = self.admin.lock().await;
            self.load_mounts().await?;
        }
        if cors {
            crate::sys_cors::load(self).await?;
        }
        if quotas {
            self.quotas.load().await?;
        }
        if identity {
            // Group and entity policies apply at once on every node.
            self.identity.load().await?;
        }
        if audit {
            self.audit.follow_config().await?;
        }
        // Last: a subscriber told of a change reads it with every cache
        // already refreshed.
        for key in events {
            crate::cluster_events::apply(self, key).await?;
        }
        Ok(())
    }

    /// Re-opens the keyring another node rotated. If it no longer opens
    /// with this node's root key (a rekey elsewhere), this node seals: it
    /// must never write a keyring sealed with a root key no share opens.
    async fn follow_keyring(&self) -> Result<()> {
        match self.seal.reload_keyring().await {
            Ok(()) => Ok(()),
            Err(Error::Sealed) => Ok(()),
            Err(e) => {
                tracing::error!(
                    error = %e,
                    "the keyring in storage no longer opens with this node's root key \
                     (rekeyed on another node): sealing; unseal with the new shares"
                );
                self.seal().await;
                Err(Error::Sealed)
            }
        }
    }

    /// After a gap in the log: every cache is dropped, and what is held
    /// in memory (mount table, keyring, lease queue, CORS) is reloaded.
    async fn reload_everything(&self) -> Result<()> {
        self.barrier.invalidate_all();
        self.seal.forget_config();
        self.tokens.clear_cache();
        self.policies.clear_caches();
        self.follow_keyring().await?;
        {
            let _admin = self.admin.lock().await;
            self.load_mounts().await?;
        }
        self.leases.load().await?;
        self.identity.load().await?;
        self.audit.follow_config().await?;
        self.audit.follow_headers().await?;
        self.quotas.load().await?;
        crate::sys_cors::load(self).await
    }
}

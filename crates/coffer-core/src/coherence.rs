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
//! requests share log reads: a request waits for a read in flight that
//! began after it arrived, or starts one; at most [`READS_IN_FLIGHT`] run at
//! once, so a request that arrives just after a read began need not wait
//! for that read and then a whole second one. A read runs as a task of its
//! own (a client that goes away cancels nothing), its outcome reaches every
//! waiter at once, and results are applied in log order under one lock
//! (a read whose position was already applied changes nothing). If the log
//! cannot be read, the request fails with 503: nothing is served from a
//! cache that might be stale.

use std::time::Instant;

use coffer_storage::Changes;
use tokio::sync::watch;

use crate::core::Core;
use crate::{Error, Result};

/// Log reads that may be in flight at once.
pub(crate) const READS_IN_FLIGHT: usize = 2;

/// How one log read ended, as every request waiting on it learns it.
#[derive(Clone)]
enum Outcome {
    Applied,
    Unavailable(String),
    Sealed,
}

impl Outcome {
    fn into_result(self) -> Result<()> {
        match self {
            Outcome::Applied => Ok(()),
            Outcome::Unavailable(e) => Err(unavailable(e)),
            Outcome::Sealed => Err(Error::Sealed),
        }
    }
}

/// The log reads in flight and what has been applied.
#[derive(Default)]
pub(crate) struct Coherence {
    reads: parking_lot::Mutex<Reads>,
    /// The applied log position; held while a read's result is applied.
    applied: tokio::sync::Mutex<u64>,
}

#[derive(Default)]
struct Reads {
    /// Every change committed before this instant has been applied.
    covered_until: Option<Instant>,
    /// Reads in flight: id, start, and where their outcome is announced.
    in_flight: Vec<(u64, Instant, watch::Receiver<Option<Outcome>>)>,
    next_id: u64,
}

/// What a request does after looking at the reads in flight.
enum Step {
    Done,
    /// Wait for this read, then answer with its outcome.
    Await(watch::Receiver<Option<Outcome>>),
    /// Wait for this (older) read to end, then look again.
    Again(watch::Receiver<Option<Outcome>>),
    /// Start a read with this id and start.
    Start(u64, Instant, watch::Sender<Option<Outcome>>),
}

/// The 503 a request gets while the shared store cannot be read.
fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::Status {
        code: 503,
        errors: vec![format!("storage unavailable: {e}")],
    }
}

/// Waits for the read behind `rx` to announce its outcome (a read whose
/// task ended without one counts as the store being unavailable).
async fn outcome(mut rx: watch::Receiver<Option<Outcome>>) -> Outcome {
    match rx.wait_for(Option::is_some).await {
        Ok(v) => v.clone().unwrap_or(Outcome::Applied),
        Err(_) => Outcome::Unavailable("the change log read ended early".into()),
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
        let mut applied = self.coherence.applied.lock().await;
        let started = Instant::now();
        let position = match backend.changes_since(u64::MAX).await? {
            Some(
                Changes::Lost { position }
                | Changes::Keys { position, .. }
                | Changes::Replaced { position },
            ) => position,
            None => 0,
        };
        *applied = position;
        self.coherence.reads.lock().covered_until = Some(started);
        Ok(())
    }

    /// Applies every change other nodes committed before this call (see the
    /// module docs). A no-op on unshared storage.
    pub(crate) async fn sync_storage(&self) -> Result<()> {
        if !self.barrier.backend().is_shared() {
            return Ok(());
        }
        let arrived = Instant::now();
        loop {
            let step = {
                let mut reads = self.coherence.reads.lock();
                if reads.covered_until.is_some_and(|t| t >= arrived) {
                    Step::Done
                } else if let Some((_, _, rx)) = reads
                    .in_flight
                    .iter()
                    .find(|(_, started, _)| *started >= arrived)
                {
                    Step::Await(rx.clone())
                } else if reads.in_flight.len() < READS_IN_FLIGHT {
                    let (tx, rx) = watch::channel(None);
                    let id = reads.next_id;
                    reads.next_id += 1;
                    let started = Instant::now();
                    reads.in_flight.push((id, started, rx));
                    Step::Start(id, started, tx)
                } else {
                    // Every read in flight began before this request: wait
                    // for the newest to end; a new one may start then.
                    match reads.in_flight.last() {
                        Some((_, _, rx)) => Step::Again(rx.clone()),
                        None => continue,
                    }
                }
            };
            match step {
                Step::Done => return Ok(()),
                Step::Await(rx) => return outcome(rx).await.into_result(),
                Step::Again(rx) => {
                    outcome(rx).await;
                }
                Step::Start(id, started, tx) => {
                    let rx = tx.subscribe();
                    match self.this.upgrade() {
                        Some(core) => {
                            tokio::spawn(async move { core.log_read(id, started, tx).await });
                        }
                        None => return Err(Error::Sealed),
                    }
                    return outcome(rx).await.into_result();
                }
            }
        }
    }

    /// One log read: reads past the applied position, applies what other
    /// nodes changed (in log order), and announces the outcome.
    async fn log_read(&self, id: u64, started: Instant, tx: watch::Sender<Option<Outcome>>) {
        let outcome = self.read_and_apply().await;
        {
            let mut reads = self.coherence.reads.lock();
            reads.in_flight.retain(|(i, _, _)| *i != id);
            if matches!(outcome, Outcome::Applied) {
                reads.covered_until = Some(reads.covered_until.map_or(started, |t| t.max(started)));
            }
        }
        let _ = tx.send(Some(outcome));
    }

    async fn read_and_apply(&self) -> Outcome {
        let backend = self.barrier.backend();
        let since = *self.coherence.applied.lock().await;
        let changes = match backend.changes_since(since).await {
            Ok(c) => c,
            Err(e) => return Outcome::Unavailable(e.to_string()),
        };
        let mut applied = self.coherence.applied.lock().await;
        let result = match changes {
            None => Ok(()),
            // Applied already by a read that began later and ended first.
            Some(Changes::Keys { position, .. }) if position <= *applied => Ok(()),
            Some(Changes::Keys { position, keys }) => {
                let r = if keys.is_empty() {
                    Ok(())
                } else {
                    self.apply_changes(&keys).await
                };
                if r.is_ok() {
                    *applied = position;
                }
                r
            }
            Some(Changes::Lost { position }) => {
                tracing::warn!("change log does not reach back far enough: dropping every cache");
                let r = self.reload_everything().await;
                if r.is_ok() {
                    *applied = position;
                }
                r
            }
            Some(Changes::Replaced { position }) => {
                tracing::warn!(
                    "another node restored a snapshot over this store: sealing; unseal with \
                     the snapshot's unseal keys"
                );
                *applied = position;
                drop(applied);
                self.seal().await;
                return Outcome::Sealed;
            }
        };
        match result {
            Ok(()) => Outcome::Applied,
            Err(Error::Sealed) => Outcome::Sealed,
            Err(e) => Outcome::Unavailable(e.to_string()),
        }
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

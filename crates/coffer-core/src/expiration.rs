//! The expiration manager: leases of dynamic credentials.
//!
//! An engine answering with a [`crate::LeaseRequest`] gets a lease whose id
//! starts with the request path (so `revoke-prefix` works), tied to the token
//! that asked. A lease is revoked through its engine when it expires (checked
//! every second by the background task, and at unseal for leases that ended
//! while the server was down), when its token is revoked or expires, when its
//! mount is disabled (which fails, keeping the mount, while a lease cannot be
//! revoked), or on request.
//!
//! A lease never outlives its token: its TTL, and each renewal's, is capped
//! by the token's remaining TTL (tokens without expiry, such as root, set no
//! cap), and the token's expiry revokes its leases. (Tokens' own leases
//! live in the token store, see [`crate::token`].)
//!
//! Layout in its view: `id/<lease id>` holds a [`LeaseEntry`];
//! `token/<token hash>/<sha256(lease id)>` indexes leases by token.

use std::collections::BTreeSet;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::barrier::{to_json, BarrierOp, View};
use crate::core::Core;
use crate::engine::EngineCtx;
use crate::mounts::Mounted;
use crate::token::TokenEntry;
use crate::util::{now, rfc3339};
use crate::{Error, LeaseRequest, Result};

use coffer_engine::mounts::SYSTEM_MAX_TTL as SYSTEM_TTL;

/// A stored lease.
#[derive(Clone, Serialize, Deserialize)]
pub struct LeaseEntry {
    /// The lease id: `<request path>/<uuid>`.
    pub lease_id: String,
    /// The mount that issued it.
    pub mount_path: String,
    /// Hash of the token that asked for it.
    pub token_hash: Option<String>,
    /// Issue time, seconds since the epoch.
    pub issue_time: i64,
    /// Expiry, seconds since the epoch.
    pub expire_time: i64,
    /// Last renewal, if any.
    pub last_renewal: Option<i64>,
    /// Renewals never extend past this.
    pub max_expire_time: i64,
    /// Whether renewals are allowed.
    pub renewable: bool,
    /// Engine data to revoke or renew with.
    pub internal: Value,
}

/// Leaves out the engine's internal data.
impl std::fmt::Debug for LeaseEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseEntry")
            .field("lease_id", &self.lease_id)
            .field("mount_path", &self.mount_path)
            .field("token_hash", &self.token_hash)
            .field("issue_time", &self.issue_time)
            .field("expire_time", &self.expire_time)
            .field("last_renewal", &self.last_renewal)
            .field("max_expire_time", &self.max_expire_time)
            .field("renewable", &self.renewable)
            .field("internal", &crate::redact::Redacted)
            .finish()
    }
}

impl LeaseEntry {
    /// The lease as `sys/leases/lookup` shows it.
    pub fn to_json(&self) -> Value {
        let fmt = |t: i64| {
            chrono::DateTime::from_timestamp(t, 0)
                .map(|d| rfc3339(&d))
                .unwrap_or_default()
        };
        // The path that issued it: the lease id without its final segment.
        let path = self
            .lease_id
            .rsplit_once('/')
            .map(|(p, _)| p)
            .unwrap_or_default();
        json!({
            "id": self.lease_id,
            "path": path,
            "issue_time": fmt(self.issue_time),
            "expire_time": fmt(self.expire_time),
            "last_renewal": self.last_renewal.map(fmt),
            "renewable": self.renewable,
            "ttl": (self.expire_time - now().timestamp()).max(0),
        })
    }
}

/// Leases and their expiry queue.
pub struct Expiration {
    view: View,
    queue: Mutex<BTreeSet<(i64, String)>>,
    /// Where `coffer/lease-revoke` events go.
    events: std::sync::Arc<crate::events::EventBus>,
}

fn token_index_key(token_hash: &str, lease_id: &str) -> String {
    format!(
        "token/{token_hash}/{}",
        coffer_crypto::hash::sha256_hex(lease_id.as_bytes())
    )
}

fn secs(s: u64) -> i64 {
    i64::try_from(s).unwrap_or(i64::MAX / 4)
}

impl Expiration {
    /// A manager over `view`.
    pub fn new(view: View, events: std::sync::Arc<crate::events::EventBus>) -> Self {
        Expiration {
            view,
            queue: Mutex::new(BTreeSet::new()),
            events,
        }
    }

    /// Loads every lease's expiry into the queue (after unseal).
    pub async fn load(&self) -> Result<()> {
        let mut queue = BTreeSet::new();
        for key in self.view.keys_with_prefix("id/").await? {
            let rel = key.trim_start_matches("id/");
            if let Some(e) = self
                .view
                .get_json::<LeaseEntry>(&format!("id/{rel}"))
                .await?
            {
                queue.insert((e.expire_time, e.lease_id));
            }
        }
        *self.queue.lock() = queue;
        Ok(())
    }

    /// Another node wrote the lease `lease_id`: queue its (new) expiry.
    /// Stale queue entries are harmless: expiry re-reads the lease.
    pub async fn changed_elsewhere(&self, lease_id: &str) -> Result<()> {
        if let Some(e) = self
            .view
            .get_json::<LeaseEntry>(&format!("id/{lease_id}"))
            .await?
        {
            self.queue.lock().insert((e.expire_time, e.lease_id));
        }
        Ok(())
    }

    /// How many leases are held (Vault's `vault.expire.num_leases`).
    pub fn len(&self) -> usize {
        self.queue.lock().len()
    }

    /// Whether no lease is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Empties the queue (on seal).
    pub fn clear(&self) {
        self.queue.lock().clear();
    }

    /// Registers a lease for a response of `mount` to `request_path`, asked
    /// for by `token`; the lease ends no later than the token.
    pub async fn register(
        &self,
        request_path: &str,
        mount: &crate::mounts::MountEntry,
        token: Option<&TokenEntry>,
        req: &LeaseRequest,
    ) -> Result<LeaseEntry> {
        // A batch token is never stored: its leases are tracked by its
        // parent (an orphan batch token's by nobody), capped at its expiry.
        let token_hash = token.and_then(|t| {
            if t.is_batch() {
                t.parent.as_deref()
            } else {
                Some(t.id_hash.as_str())
            }
        });
        let at = now().timestamp();
        let mount_max = if mount.config.max_lease_ttl > 0 {
            mount.config.max_lease_ttl
        } else {
            SYSTEM_TTL
        };
        let max = if req.max_ttl > 0 {
            req.max_ttl.min(mount_max)
        } else {
            mount_max
        };
        let default = if mount.config.default_lease_ttl > 0 {
            mount.config.default_lease_ttl
        } else {
            SYSTEM_TTL
        };
        let mut ttl = if req.ttl > 0 { req.ttl } else { default }.min(max);
        if let Some(token_expiry) = token.and_then(|t| t.expire_time) {
            ttl = ttl.min(u64::try_from(token_expiry - at).unwrap_or(0));
        }
        let entry = LeaseEntry {
            lease_id: format!(
                "{}/{}",
                request_path.trim_end_matches('/'),
                coffer_crypto::random::token_string(24)
            ),
            mount_path: mount.path.clone(),
            token_hash: token_hash.map(str::to_string),
            issue_time: at,
            expire_time: at + secs(ttl),
            last_renewal: None,
            max_expire_time: match token.filter(|t| t.is_batch()).and_then(|t| t.expire_time) {
                Some(batch_end) => (at + secs(max)).min(batch_end),
                None => at + secs(max),
            },
            renewable: req.renewable,
            internal: req.internal.clone(),
        };
        let mut ops = vec![BarrierOp::Put(
            format!("id/{}", entry.lease_id),
            to_json(&entry)?,
        )];
        if let Some(h) = &entry.token_hash {
            ops.push(BarrierOp::Put(
                token_index_key(h, &entry.lease_id),
                to_json(&entry.lease_id)?,
            ));
        }
        self.view.write_batch(ops).await?;
        self.queue
            .lock()
            .insert((entry.expire_time, entry.lease_id.clone()));
        Ok(entry)
    }

    /// Looks a lease up.
    pub async fn lookup(&self, lease_id: &str) -> Result<Option<LeaseEntry>> {
        if lease_id.is_empty() {
            return Ok(None);
        }
        self.view.get_json(&format!("id/{lease_id}")).await
    }

    /// Lease ids directly below `prefix` (Vault-style listing).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.view.list(&format!("id/{prefix}")).await
    }

    /// Renews a lease by `increment` seconds (0: its original TTL), capped by its max.
    pub async fn renew(&self, core: &Core, lease_id: &str, increment: u64) -> Result<LeaseEntry> {
        let mut entry = self
            .lookup(lease_id)
            .await?
            .ok_or_else(|| Error::bad("lease not found"))?;
        if !entry.renewable {
            return Err(Error::bad("lease is not renewable"));
        }
        let at = now().timestamp();
        let original = (entry.expire_time - entry.last_renewal.unwrap_or(entry.issue_time)).max(1);
        let want = if increment > 0 {
            secs(increment)
        } else {
            original
        };
        let mut expire = (at + want).min(entry.max_expire_time);
        if let Some(h) = &entry.token_hash {
            let token =
                core.tokens.lookup_hash(h).await?.ok_or_else(|| {
                    Error::bad("the token of this lease has expired or been revoked")
                })?;
            if let Some(t) = token.expire_time {
                expire = expire.min(t);
            }
        }
        let ttl = u64::try_from((expire - at).max(0)).unwrap_or(0);
        let mounted = core.router.read().get(&entry.mount_path).cloned();
        if let Some(m) = mounted {
            let ctx = EngineCtx {
                view: &m.view,
                mount: &m.entry,
                token: None,
            };
            m.engine.renew_lease(&ctx, &entry.internal, ttl).await?;
        }
        self.queue
            .lock()
            .remove(&(entry.expire_time, entry.lease_id.clone()));
        entry.expire_time = expire;
        entry.last_renewal = Some(at);
        self.view
            .put_json(&format!("id/{}", entry.lease_id), &entry)
            .await?;
        self.queue
            .lock()
            .insert((entry.expire_time, entry.lease_id.clone()));
        Ok(entry)
    }

    /// Revokes one lease through its engine; with `force`, drops the lease
    /// even when the engine fails (Vault's revoke-force).
    pub async fn revoke(&self, core: &Core, lease_id: &str, force: bool) -> Result<()> {
        let Some(entry) = self.lookup(lease_id).await? else {
            return Ok(());
        };
        let mounted = core.router.read().get(&entry.mount_path).cloned();
        self.revoke_entry(entry, mounted.as_ref(), force).await
    }

    /// Revokes `entry` through `mounted`'s engine (none: the mount is gone,
    /// only the record is dropped), then drops the record.
    async fn revoke_entry(
        &self,
        entry: LeaseEntry,
        mounted: Option<&Mounted>,
        force: bool,
    ) -> Result<()> {
        if let Some(m) = mounted {
            let ctx = EngineCtx {
                view: &m.view,
                mount: &m.entry,
                token: None,
            };
            if let Err(e) = m.engine.revoke_lease(&ctx, &entry.internal).await {
                if !force {
                    return Err(Error::bad(format!("failed to revoke lease: {e}")));
                }
                tracing::warn!(lease = %entry.lease_id, error = %e, "forced lease revocation; the credential may remain");
            }
        }
        let mut ops = vec![BarrierOp::Delete(format!("id/{}", entry.lease_id))];
        if let Some(h) = &entry.token_hash {
            ops.push(BarrierOp::Delete(token_index_key(h, &entry.lease_id)));
        }
        self.view.write_batch(ops).await?;
        self.queue
            .lock()
            .remove(&(entry.expire_time, entry.lease_id.clone()));
        tracing::info!(lease = %entry.lease_id, "lease revoked");
        // The path the credential was read from: the lease id less its
        // last segment (`database/creds/app/<id>` -> `database/creds/app`).
        let path = entry
            .lease_id
            .rsplit_once('/')
            .map(|(p, _)| p.to_string())
            .unwrap_or_default();
        let meta = crate::events::metadata([
            ("path", path.clone()),
            ("data_path", path.clone()),
            ("lease_id", entry.lease_id.clone()),
            ("operation", "lease-revoke".to_string()),
        ]);
        self.events.publish(
            crate::events::LEASE_REVOKE,
            mounted.map(|m| &*m.entry),
            &path,
            meta,
        );
        Ok(())
    }

    /// Revokes every lease whose id starts with `prefix`.
    pub async fn revoke_prefix(&self, core: &Core, prefix: &str, force: bool) -> Result<usize> {
        let keys = self.view.keys_with_prefix(&format!("id/{prefix}")).await?;
        let mut n = 0;
        for key in keys {
            self.revoke(core, key.trim_start_matches("id/"), force)
                .await?;
            n += 1;
        }
        Ok(n)
    }

    /// Revokes every lease of the mount `m` through its engine (used before
    /// the mount is removed, so `m` need not be routable any more). Stops at
    /// the first lease that cannot be revoked, with its error; the leases not
    /// yet revoked stay. Returns how many were revoked.
    pub async fn revoke_mount(&self, m: &Mounted) -> Result<usize> {
        let mut n = 0;
        for key in self
            .view
            .keys_with_prefix(&format!("id/{}", m.entry.path))
            .await?
        {
            let Some(entry) = self.view.get_json::<LeaseEntry>(&key).await? else {
                continue;
            };
            if entry.mount_path != m.entry.path {
                continue;
            }
            self.revoke_entry(entry, Some(m), false).await?;
            n += 1;
        }
        Ok(n)
    }

    /// Revokes the leases of a token. A lease whose engine cannot revoke it
    /// now (its database is down, say) is kept and retried by the expiry
    /// pass, so that the credential is not forgotten while it still works.
    pub async fn revoke_token(&self, core: &Core, token_hash: &str) -> Result<()> {
        let prefix = format!("token/{token_hash}/");
        for key in self.view.keys_with_prefix(&prefix).await? {
            let lease: Option<String> = self.view.get_json(&key).await?;
            match lease {
                Some(id) => {
                    if let Err(e) = self.revoke(core, &id, false).await {
                        tracing::warn!(lease = %id, error = %e, "lease of a revoked token could not be revoked; will retry");
                        self.expire_now(&id).await?;
                    }
                }
                None => self.view.delete(&key).await?,
            }
        }
        Ok(())
    }

    /// Moves a lease's expiry to now, so the expiry pass revokes it (and
    /// retries with backoff while its engine fails).
    async fn expire_now(&self, lease_id: &str) -> Result<()> {
        let Some(mut entry) = self.lookup(lease_id).await? else {
            return Ok(());
        };
        let at = now().timestamp();
        let old = (entry.expire_time, entry.lease_id.clone());
        if entry.expire_time > at {
            entry.expire_time = at;
            entry.renewable = false;
            self.view
                .put_json(&format!("id/{}", entry.lease_id), &entry)
                .await?;
        }
        let mut q = self.queue.lock();
        q.remove(&old);
        q.insert((entry.expire_time.min(at), entry.lease_id));
        Ok(())
    }

    /// Revokes every lease whose time is up; returns how many. A lease
    /// whose engine fails stays and is retried 30 s later.
    pub async fn revoke_due(&self, core: &Core) -> Result<usize> {
        let at = now().timestamp();
        let due: Vec<String> = {
            let mut q = self.queue.lock();
            let mut due = Vec::new();
            while q.first().is_some_and(|(t, _)| *t <= at) {
                if let Some((_, id)) = q.pop_first() {
                    due.push(id);
                }
            }
            due
        };
        let mut n = 0;
        for id in due {
            // Renewed (here or on another node) since it was queued: requeue.
            match self.view.get_json::<LeaseEntry>(&format!("id/{id}")).await {
                Ok(None) => continue,
                Ok(Some(e)) if e.expire_time > at => {
                    self.queue.lock().insert((e.expire_time, id));
                    continue;
                }
                Ok(Some(_)) => {}
                Err(e) => {
                    tracing::warn!(lease = %id, error = %e, "expired lease could not be read; will retry");
                    self.queue.lock().insert((at + 30, id));
                    continue;
                }
            }
            match self.revoke(core, &id, false).await {
                Ok(()) => n += 1,
                Err(e) => {
                    // Keep the lease and retry later; the credential must not outlive it silently.
                    tracing::warn!(lease = %id, error = %e, "expired lease could not be revoked; will retry");
                    self.queue.lock().insert((at + 30, id));
                }
            }
        }
        Ok(n)
    }
}

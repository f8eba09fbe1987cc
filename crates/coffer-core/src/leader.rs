//! The leader of background work, fenced.
//!
//! Every unsealed node serves reads and writes; only background work
//! (lease and token expiry, the rotation scheduler, engines' periodic
//! passes such as static-role rotation, tidy) needs one node. On shared
//! storage that node holds the leader lease, a row its renewal task renews
//! every `ttl / 5` with an expiry of `ttl` (the failover bound, default 5 s,
//! `lease_ttl` in `[storage.postgresql]`). A node that cannot renew (it is
//! paused, partitioned or sealed) loses the lease when it expires, and the
//! next node to claim it gets the term plus one.
//!
//! The background pass runs inside `coffer_storage::fence::fenced(term)`:
//! every write it makes checks, in its own transaction, that `term` is
//! still the live lease's term. A leader that was paused past its lease
//! and resumes mid-pass therefore writes nothing: its revocations and
//! rotations fail with `Fenced` and are redone by the new leader.
//! Locally a node also stops starting passes once 80% of the lease since
//! its last successful renewal has gone by.
//!
//! On unshared storage (SQLite, memory) the node is always the leader.

use std::time::{Duration, Instant};

use coffer_storage::LeaderClaim;
use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::core::{Core, VERSION};
use crate::util::{now, rfc3339};
use crate::Result;

/// The default lease length: failover within about this long.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(5);
/// Storage prefix of the node registry `sys/ha-status` reads.
const NODES_PREFIX: &str = "core/ha/node/";
/// A node whose last echo is older than this is not listed.
const NODE_STALE_SECS: i64 = 30;
/// Registry entries older than this are removed by the leader.
const NODE_FORGET_SECS: i64 = 3600;

/// This node's view of the leader lease.
pub(crate) struct Leadership {
    /// This process's node id (the lease holder name).
    pub(crate) node_id: String,
    /// This node's `api_addr`.
    api_addr: Mutex<String>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    term: u64,
    /// Until when this node may start background passes.
    valid_until: Option<Instant>,
    /// Seconds since the epoch at which this node last became leader.
    since: Option<i64>,
}

impl Leadership {
    pub(crate) fn new(api_addr: &str) -> Self {
        Leadership {
            node_id: coffer_crypto::random::uuid(),
            api_addr: Mutex::new(api_addr.to_string()),
            state: Mutex::new(State::default()),
        }
    }

    /// The term this node leads with, if its lease is still good.
    pub(crate) fn current_term(&self) -> Option<u64> {
        let s = self.state.lock();
        s.valid_until
            .filter(|t| Instant::now() < *t)
            .map(|_| s.term)
    }

    fn lost(&self) {
        let mut s = self.state.lock();
        if s.valid_until.take().is_some() {
            tracing::warn!(
                term = s.term,
                "leader lease lost: background work stops on this node"
            );
        }
        s.since = None;
    }
}

impl Core {
    /// Sets this node's `api_addr` once the listener is bound (when the
    /// configuration names none).
    pub fn set_api_addr(&self, addr: String) {
        *self.leadership.api_addr.lock() = addr;
    }

    /// This node's `api_addr` (configured, or the bound listener's).
    pub(crate) fn api_addr(&self) -> String {
        self.leadership.api_addr.lock().clone()
    }

    fn claim(&self) -> LeaderClaim {
        LeaderClaim {
            holder: self.leadership.node_id.clone(),
            api_addr: self.api_addr(),
            ttl: self.config.leader_lease_ttl,
        }
    }

    /// Claims or renews the lease once; returns the term when held.
    pub(crate) async fn renew_leadership(&self) -> Option<u64> {
        let ttl = self.config.leader_lease_ttl;
        let started = Instant::now();
        let claim = self.claim();
        let outcome =
            tokio::time::timeout(ttl / 2, self.barrier.backend().claim_leadership(&claim)).await;
        match outcome {
            Ok(Ok(Some(term))) => {
                let mut s = self.leadership.state.lock();
                if s.valid_until.is_none() || s.term != term {
                    tracing::info!(term, "leader lease taken: this node runs background work");
                    s.since = Some(now().timestamp());
                }
                s.term = term;
                s.valid_until = Some(started + ttl.mul_f64(0.8));
                Some(term)
            }
            Ok(Ok(None)) => {
                self.leadership.lost();
                None
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "leader lease renewal failed");
                self.leadership.current_term()
            }
            Err(_) => {
                tracing::warn!("leader lease renewal timed out");
                self.leadership.current_term()
            }
        }
    }

    /// Gives the lease up (seal, shutdown) so another node takes over at once.
    pub async fn release_leadership(&self) {
        self.leadership.lost();
        if let Err(e) = self
            .barrier
            .backend()
            .release_leadership(&self.leadership.node_id)
            .await
        {
            tracing::warn!(error = %e, "leader lease not released");
        }
    }

    /// Records this node in the registry `sys/ha-status` lists.
    pub(crate) async fn echo_node(&self) -> Result<()> {
        if !self.barrier.backend().is_shared() {
            return Ok(());
        }
        let entry = json!({
            "node_id": self.leadership.node_id,
            "hostname": hostname(),
            "api_address": self.api_addr(),
            "version": VERSION,
            "last_echo": now().timestamp(),
        });
        let bytes = crate::barrier::to_json(&entry)?;
        self.barrier
            .put(
                &format!("{NODES_PREFIX}{}", self.leadership.node_id),
                &bytes,
            )
            .await
    }

    /// Drops registry entries of nodes long gone (leader only).
    pub(crate) async fn forget_old_nodes(&self) -> Result<()> {
        for (key, entry) in self.node_entries().await? {
            let last = entry["last_echo"].as_i64().unwrap_or(0);
            if now().timestamp() - last > NODE_FORGET_SECS {
                self.barrier.delete(&key).await?;
            }
        }
        Ok(())
    }

    async fn node_entries(&self) -> Result<Vec<(String, Value)>> {
        let mut out = Vec::new();
        for key in self.barrier.keys_with_prefix(NODES_PREFIX).await? {
            if let Some(bytes) = self.barrier.get(&key).await? {
                if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
                    out.push((key, v));
                }
            }
        }
        Ok(out)
    }

    /// `sys/leader` in Vault's shape.
    pub(crate) async fn leader_status(&self) -> Result<Value> {
        let backend = self.barrier.backend();
        if !backend.is_shared() {
            return Ok(json!({
                "ha_enabled": false,
                "is_self": false,
                "active_time": "0001-01-01T00:00:00Z",
                "leader_address": "",
                "leader_cluster_address": "",
                "performance_standby": false,
                "performance_standby_last_remote_wal": 0,
            }));
        }
        let record = backend.leader().await?.filter(|r| r.live);
        let (is_self, address, active) = match &record {
            Some(r) => (
                r.holder == self.leadership.node_id,
                r.api_addr.clone(),
                chrono::DateTime::from_timestamp(r.acquired_at, 0)
                    .map(|t| rfc3339(&t))
                    .unwrap_or_default(),
            ),
            None => (false, String::new(), "0001-01-01T00:00:00Z".to_string()),
        };
        Ok(json!({
            "ha_enabled": true,
            "is_self": is_self,
            "active_time": active,
            "leader_address": address,
            "leader_cluster_address": "",
            "performance_standby": false,
            "performance_standby_last_remote_wal": 0,
        }))
    }

    /// `sys/ha-status` in Vault's shape: the nodes seen in the last 30 s,
    /// the lease holder marked `active_node`.
    pub(crate) async fn ha_status(&self) -> Result<Value> {
        let backend = self.barrier.backend();
        if !backend.is_shared() {
            return Ok(json!({"nodes": [{
                "hostname": hostname(),
                "api_address": self.api_addr(),
                "cluster_address": "",
                "active_node": true,
                "last_echo": null,
                "version": VERSION,
                "upgrade_version": VERSION,
                "redundancy_zone": "",
            }]}));
        }
        let holder = backend.leader().await?.filter(|r| r.live).map(|r| r.holder);
        let at = now().timestamp();
        let mut nodes = Vec::new();
        for (_, e) in self.node_entries().await? {
            let last = e["last_echo"].as_i64().unwrap_or(0);
            if at - last > NODE_STALE_SECS {
                continue;
            }
            let active = holder.as_deref() == e["node_id"].as_str();
            let echo = chrono::DateTime::from_timestamp(last, 0).map(|t| rfc3339(&t));
            nodes.push(json!({
                "hostname": e["hostname"],
                "api_address": e["api_address"],
                "cluster_address": "",
                "active_node": active,
                "last_echo": if active { Value::Null } else { json!(echo) },
                "version": e["version"],
                "upgrade_version": e["version"],
                "redundancy_zone": "",
            }));
        }
        Ok(json!({ "nodes": nodes }))
    }
}

/// The host's name, as `sys/ha-status` shows it.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

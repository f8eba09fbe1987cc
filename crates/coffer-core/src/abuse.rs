//! Login abuse controls: failed logins are rate limited per client address,
//! auth mount and identity (429 with Retry-After), with a much looser limit
//! per address alone against identity sprays, and an identity is locked out
//! after a threshold of failures (Vault's user lockout). Counting per
//! identity keeps one client's junk logins from throttling everyone else
//! behind the same load balancer. Lockouts answer "permission denied", like
//! a wrong password, so they reveal nothing more than Vault does.
//!
//! The address limits are this node's (in memory): they shape one node's
//! load. The identity counts and lockouts live in the store (view
//! `sys/lockout/`, one record per mount accessor and SHA-256 of the
//! identity), so every node that shares the store counts the same failures
//! and refuses the same identity, and a lockout outlives a restart, as in
//! Vault. A failure is a conditional write, so failures racing on several
//! nodes are all counted. Records whose window and lockout are over are
//! removed when their identity next logs in, or by a sweep that a failure
//! starts at most once a minute per node, so a spray of made-up identities
//! cannot grow the store without bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::barrier::{BarrierOp, Retry, View};
use crate::{Error, Result};

/// Failed logins an address may make per window, for one mount and
/// identity, before it is throttled.
const ADDRESS_FAILURES_PER_WINDOW: u32 = 20;
/// Failed logins an address may make per window over all identities.
const ADDRESS_SPRAY_PER_WINDOW: u32 = 500;
/// The window of the per-address limit.
const ADDRESS_WINDOW: Duration = Duration::from_secs(60);
/// Entries kept before expired ones are swept.
const SWEEP_AT: usize = 10_000;
/// Beyond this many tracked addresses, only the address-wide counters are kept.
const HARD_CAP: usize = 100_000;
/// A record keeps at most this many bytes of its identity's name (the key
/// is the digest of the whole name, so a long name is still locked out;
/// a record stays small whatever name a spray makes up).
const MAX_STORED_NAME: usize = 256;
/// Identities whose failures could not be recorded (the store refused the
/// write), locked on this node for the lockout duration: a store that
/// fails writes must not turn into unlimited guesses.
const UNRECORDED_CAP: usize = 10_000;
/// How often at most a node sweeps finished identity records.
const RECORD_SWEEP_EVERY: Duration = Duration::from_secs(60);

pub use crate::mounts::LockoutConfig;

/// A client address, with the mount accessor and identity it tried (both
/// `None` for the address-wide spray counter).
type AddressKey = (IpAddr, Option<(String, Option<String>)>);

/// The per-address counter key of an attempt on one mount and identity.
fn address_key(ip: IpAddr, accessor: &str, identity: Option<&str>) -> AddressKey {
    (
        ip,
        Some((accessor.to_string(), identity.map(str::to_string))),
    )
}

#[derive(Clone, Copy)]
struct Counter {
    failures: u32,
    first: Instant,
}

/// One identity's failed logins on one auth mount, as stored.
#[derive(Serialize, Deserialize)]
struct IdentityRecord {
    /// The identity as the auth method names it (user name, role id).
    identity: String,
    /// Failures counted since `first_ms`.
    failures: u32,
    /// Wall-clock milliseconds of the first failure counted.
    first_ms: u64,
    /// Wall-clock milliseconds until which the identity is locked out.
    #[serde(default)]
    locked_until_ms: Option<u64>,
}

impl IdentityRecord {
    fn locked_at(&self, now_ms: u64) -> bool {
        self.locked_until_ms.is_some_and(|t| t > now_ms)
    }

    /// Whether the record counts nothing any more at `now_ms`: its lockout
    /// (if any) is over and so is its counting window.
    fn finished_at(&self, now_ms: u64, cfg: &LockoutConfig) -> bool {
        if self.locked_at(now_ms) {
            return false;
        }
        self.locked_until_ms.is_some()
            || now_ms.saturating_sub(self.first_ms)
                >= cfg.lockout_counter_reset.saturating_mul(1000)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The record key of an identity: the mount accessor, then the identity's
/// SHA-256 (identities may hold any character; the record holds the name).
fn record_key(accessor: &str, identity: &str) -> String {
    format!(
        "{accessor}/{}",
        coffer_crypto::hash::sha256_hex(identity.as_bytes())
    )
}

/// Tracks failed logins: address limits in memory, identity lockouts in the store.
pub struct LoginGuard {
    addresses: Mutex<HashMap<AddressKey, Counter>>,
    configs: Mutex<HashMap<String, LockoutConfig>>,
    /// The identity records (`sys/lockout/`).
    records: View,
    /// Serialises this node's failure writes, so its own concurrent
    /// failures do not make each other retry; other nodes' are caught by
    /// the conditional write.
    record_writes: tokio::sync::Mutex<()>,
    last_sweep: Mutex<Option<Instant>>,
    /// Identities whose failure could not be recorded, until when.
    unrecorded: Mutex<HashMap<String, Instant>>,
}

impl LoginGuard {
    /// A guard whose identity records live in `records`.
    pub fn new(records: View) -> Self {
        LoginGuard {
            addresses: Mutex::default(),
            configs: Mutex::default(),
            records,
            record_writes: tokio::sync::Mutex::new(()),
            last_sweep: Mutex::new(None),
            unrecorded: Mutex::default(),
        }
    }

    /// Sets the lockout configuration of the auth mount with `accessor`.
    pub fn configure(&self, accessor: &str, config: LockoutConfig) {
        self.configs.lock().insert(accessor.to_string(), config);
    }

    fn config(&self, accessor: &str) -> LockoutConfig {
        self.configs
            .lock()
            .get(accessor)
            .copied()
            .unwrap_or_default()
    }

    /// Refuses a login attempt while its address is throttled or its
    /// identity locked. Fails (503 and the like) if the record cannot be
    /// read: a lockout is never skipped because the store is down.
    pub async fn check(
        &self,
        addr: Option<IpAddr>,
        accessor: &str,
        identity: Option<&str>,
    ) -> Result<()> {
        if let Some(ip) = addr {
            self.check_address(ip, accessor, identity)?;
        }
        if let Some(id) = identity {
            let cfg = self.config(accessor);
            if cfg.disable_lockout {
                return Ok(());
            }
            let key = record_key(accessor, id);
            if self
                .unrecorded
                .lock()
                .get(&key)
                .is_some_and(|until| *until > Instant::now())
            {
                return Err(Error::PermissionDenied);
            }
            let record: Option<IdentityRecord> = self.records.get_json(&key).await?;
            if record.is_some_and(|r| r.locked_at(now_ms())) {
                return Err(Error::PermissionDenied);
            }
        }
        Ok(())
    }

    fn check_address(&self, ip: IpAddr, accessor: &str, identity: Option<&str>) -> Result<()> {
        let now = Instant::now();
        let scoped = address_key(ip, accessor, identity);
        let map = self.addresses.lock();
        for (key, limit) in [
            (scoped, ADDRESS_FAILURES_PER_WINDOW),
            ((ip, None), ADDRESS_SPRAY_PER_WINDOW),
        ] {
            if let Some(c) = map.get(&key) {
                let elapsed = now.duration_since(c.first);
                if elapsed < ADDRESS_WINDOW && c.failures >= limit {
                    let retry = (ADDRESS_WINDOW - elapsed).as_secs().max(1);
                    return Err(Error::RateLimited {
                        message: "too many failed login attempts; try again later".into(),
                        retry_after: retry,
                    });
                }
            }
        }
        Ok(())
    }

    /// Records a failed login against the address and the identity.
    pub async fn failure(
        &self,
        addr: Option<IpAddr>,
        accessor: &str,
        identity: Option<&str>,
    ) -> Result<()> {
        if let Some(ip) = addr {
            self.address_failure(ip, accessor, identity);
        }
        let Some(id) = identity else {
            return Ok(());
        };
        let cfg = self.config(accessor);
        if cfg.disable_lockout || cfg.lockout_threshold == 0 {
            return Ok(());
        }
        if let Err(e) = self.identity_failure(accessor, id, &cfg).await {
            let mut unrecorded = self.unrecorded.lock();
            let now = Instant::now();
            unrecorded.retain(|_, until| *until > now);
            if unrecorded.len() < UNRECORDED_CAP {
                unrecorded.insert(
                    record_key(accessor, id),
                    now + Duration::from_secs(cfg.lockout_duration),
                );
            }
            return Err(e);
        }
        self.maybe_sweep();
        Ok(())
    }

    fn address_failure(&self, ip: IpAddr, accessor: &str, identity: Option<&str>) {
        let now = Instant::now();
        let mut map = self.addresses.lock();
        if map.len() > SWEEP_AT {
            map.retain(|_, c| now.duration_since(c.first) < ADDRESS_WINDOW);
        }
        if map.len() > HARD_CAP {
            map.retain(|k, _| k.1.is_none());
        }
        let scoped = address_key(ip, accessor, identity);
        for key in [scoped, (ip, None)] {
            let c = map.entry(key).or_insert(Counter {
                failures: 0,
                first: now,
            });
            if now.duration_since(c.first) >= ADDRESS_WINDOW {
                *c = Counter {
                    failures: 0,
                    first: now,
                };
            }
            c.failures = c.failures.saturating_add(1);
        }
    }

    /// Counts one failure of `id` in its stored record (a conditional
    /// write, retried if another node wrote the record meanwhile).
    async fn identity_failure(&self, accessor: &str, id: &str, cfg: &LockoutConfig) -> Result<()> {
        let key = record_key(accessor, id);
        let _serial = self.record_writes.lock().await;
        let mut retry = Retry::new("the login lockout record");
        loop {
            retry.attempt().await?;
            let (stored, read) = self
                .records
                .get_json_versioned::<IdentityRecord>(&key)
                .await?;
            let now = now_ms();
            let mut record = match stored {
                Some(r) if r.locked_at(now) => return Ok(()),
                Some(r) if !r.finished_at(now, cfg) => r,
                _ => IdentityRecord {
                    identity: id.to_string(),
                    failures: 0,
                    first_ms: now,
                    locked_until_ms: None,
                },
            };
            if record.identity.len() > MAX_STORED_NAME {
                let mut end = MAX_STORED_NAME;
                while !record.identity.is_char_boundary(end) {
                    end -= 1;
                }
                record.identity.truncate(end);
            }
            record.failures = record.failures.saturating_add(1);
            let locks = record.failures >= cfg.lockout_threshold;
            if locks {
                record.locked_until_ms =
                    Some(now.saturating_add(cfg.lockout_duration.saturating_mul(1000)));
            }
            let ops = vec![BarrierOp::Put(
                key.clone(),
                crate::barrier::to_json(&record)?,
            )];
            if self
                .records
                .write_batch_if(vec![(key.clone(), read)], ops)
                .await?
            {
                if locks {
                    tracing::warn!(
                        mount = accessor,
                        "login identity locked out after repeated failures"
                    );
                }
                return Ok(());
            }
        }
    }

    /// Starts a sweep of finished records if none ran on this node in the
    /// last minute.
    fn maybe_sweep(&self) {
        let now = Instant::now();
        {
            let mut last = self.last_sweep.lock();
            if last.is_some_and(|t| now.duration_since(t) < RECORD_SWEEP_EVERY) {
                return;
            }
            *last = Some(now);
        }
        let records = self.records.clone();
        let configs = self.configs.lock().clone();
        tokio::spawn(async move {
            if let Err(e) = sweep(&records, &configs).await {
                tracing::warn!(error = %e, "sweep of login lockout records failed");
            }
        });
    }

    /// Records a login's outcome: success clears the identity's failures;
    /// a refusal (400 or 403) counts against the address and identity;
    /// any other error (the server's) counts against neither.
    pub async fn record<T>(
        &self,
        addr: Option<IpAddr>,
        accessor: &str,
        identity: Option<&str>,
        outcome: &crate::Result<T>,
    ) -> Result<()> {
        match outcome {
            Ok(_) => self.success(accessor, identity).await,
            Err(e) if matches!(e.status(), 400 | 403) => {
                self.failure(addr, accessor, identity).await
            }
            Err(_) => Ok(()),
        }
    }

    /// Clears an identity's failures after a successful login.
    pub async fn success(&self, accessor: &str, identity: Option<&str>) -> Result<()> {
        let Some(id) = identity else {
            return Ok(());
        };
        let key = record_key(accessor, id);
        // A read first (cached): most logins have no record to clear.
        if self.records.get(&key).await?.is_some() {
            self.records.delete(&key).await?;
        }
        Ok(())
    }

    /// The identities locked out now, as (mount accessor, identity): what
    /// `sys/locked-users` lists, for every node sharing the store.
    pub async fn locked(&self) -> Result<Vec<(String, String)>> {
        let now = now_ms();
        let mut out = Vec::new();
        for accessor in self.records.list("").await? {
            let accessor = accessor.trim_end_matches('/');
            for name in self.records.list(&format!("{accessor}/")).await? {
                let key = format!("{accessor}/{name}");
                if let Some(r) = self.records.get_json::<IdentityRecord>(&key).await? {
                    if r.locked_at(now) {
                        out.push((accessor.to_string(), r.identity));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Lifts the lockout of one identity of a mount
    /// (`sys/locked-users/:accessor/unlock/:alias`), on every node.
    pub async fn unlock(&self, accessor: &str, identity: &str) -> Result<()> {
        self.records.delete(&record_key(accessor, identity)).await
    }
}

/// Deletes every record whose lockout and counting window are over; each
/// delete is conditional, so a failure counted meanwhile elsewhere stays.
async fn sweep(records: &View, configs: &HashMap<String, LockoutConfig>) -> Result<()> {
    let now = now_ms();
    for accessor in records.list("").await? {
        let accessor = accessor.trim_end_matches('/');
        let cfg = configs.get(accessor).copied().unwrap_or_default();
        for name in records.list(&format!("{accessor}/")).await? {
            let key = format!("{accessor}/{name}");
            let (record, read) = match records.get_json_versioned::<IdentityRecord>(&key).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(error = %e, "unreadable login lockout record left in place");
                    continue;
                }
            };
            if record.is_some_and(|r| r.finished_at(now, &cfg)) {
                records
                    .write_batch_if(vec![(key.clone(), read)], vec![BarrierOp::Delete(key)])
                    .await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::barrier::Barrier;

    /// A store and a guard on it; more guards on the same store are more nodes.
    fn store() -> Arc<Barrier> {
        let barrier = Arc::new(Barrier::new(Arc::new(coffer_storage::MemoryBackend::new())));
        barrier.unseal(coffer_crypto::Keyring::new(0));
        barrier
    }

    fn guard(barrier: &Arc<Barrier>, threshold: u32) -> LoginGuard {
        let g = LoginGuard::new(View::new(barrier.clone(), "sys/lockout/"));
        g.configure(
            "m",
            LockoutConfig {
                lockout_threshold: threshold,
                ..Default::default()
            },
        );
        g
    }

    #[tokio::test]
    async fn identity_locks_after_threshold() {
        let g = guard(&store(), 3);
        for _ in 0..2 {
            g.failure(None, "m", Some("alice")).await.unwrap();
            assert!(g.check(None, "m", Some("alice")).await.is_ok());
        }
        g.failure(None, "m", Some("alice")).await.unwrap();
        assert!(matches!(
            g.check(None, "m", Some("alice")).await,
            Err(Error::PermissionDenied)
        ));
        assert!(g.check(None, "m", Some("bob")).await.is_ok());
        assert_eq!(
            g.locked().await.unwrap(),
            vec![("m".to_string(), "alice".to_string())]
        );
        g.unlock("m", "alice").await.unwrap();
        assert!(g.check(None, "m", Some("alice")).await.is_ok());
        assert!(g.locked().await.unwrap().is_empty());
    }

    /// Two nodes on one store count the same failures: an attacker who
    /// spreads guesses over the nodes gets the threshold, not a multiple of
    /// it, and the lockout and its lifting hold on both.
    #[tokio::test]
    async fn nodes_sharing_a_store_share_counts_and_lockouts() {
        let barrier = store();
        let (a, b) = (guard(&barrier, 4), guard(&barrier, 4));
        for i in 0..3 {
            let node = if i % 2 == 0 { &a } else { &b };
            node.failure(None, "m", Some("alice")).await.unwrap();
        }
        assert!(a.check(None, "m", Some("alice")).await.is_ok());
        b.failure(None, "m", Some("alice")).await.unwrap();
        for node in [&a, &b] {
            assert!(matches!(
                node.check(None, "m", Some("alice")).await,
                Err(Error::PermissionDenied)
            ));
        }
        assert_eq!(a.locked().await.unwrap().len(), 1);
        b.unlock("m", "alice").await.unwrap();
        assert!(a.check(None, "m", Some("alice")).await.is_ok());
    }

    /// 32 concurrent failures, half on each of two nodes, are all counted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_failures_on_two_nodes_are_all_counted() {
        let barrier = store();
        let nodes = Arc::new([guard(&barrier, 32), guard(&barrier, 32)]);
        let mut tasks = Vec::new();
        for i in 0..31 {
            let nodes = nodes.clone();
            tasks.push(tokio::spawn(async move {
                nodes[i % 2].failure(None, "m", Some("alice")).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert!(nodes[0].check(None, "m", Some("alice")).await.is_ok());
        nodes[1].failure(None, "m", Some("alice")).await.unwrap();
        assert!(matches!(
            nodes[0].check(None, "m", Some("alice")).await,
            Err(Error::PermissionDenied)
        ));
    }

    #[tokio::test]
    async fn address_is_rate_limited_per_identity() {
        let g = guard(&store(), 5);
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        for _ in 0..ADDRESS_FAILURES_PER_WINDOW {
            g.failure(Some(ip), "m", None).await.unwrap();
        }
        match g.check(Some(ip), "m", None).await {
            Err(Error::RateLimited { retry_after, .. }) => assert!(retry_after >= 1),
            other => panic!("expected a rate limit, got {other:?}"),
        }
        // Someone else behind the same address, or the same client on another mount, still logs in.
        assert!(g.check(Some(ip), "m", Some("alice")).await.is_ok());
        assert!(g.check(Some(ip), "other", None).await.is_ok());
    }

    #[tokio::test]
    async fn identity_spray_from_one_address_is_limited_and_swept() {
        let barrier = store();
        let g = guard(&barrier, 5);
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        for i in 0..ADDRESS_SPRAY_PER_WINDOW {
            g.failure(Some(ip), "m", Some(&format!("u{i}")))
                .await
                .unwrap();
        }
        assert!(matches!(
            g.check(Some(ip), "m", Some("new")).await,
            Err(Error::RateLimited { .. })
        ));
        // With a zero counting window every record is finished: a sweep removes them all.
        let mut configs = HashMap::new();
        configs.insert(
            "m".to_string(),
            LockoutConfig {
                lockout_counter_reset: 0,
                ..Default::default()
            },
        );
        sweep(&g.records, &configs).await.unwrap();
        assert!(g.records.keys_with_prefix("").await.unwrap().is_empty());
    }

    /// A failure the store refuses to record still locks the identity on
    /// this node: a failing store never means unlimited guesses.
    #[tokio::test]
    async fn a_failure_that_cannot_be_recorded_locks_on_this_node() {
        let barrier = store();
        let g = guard(&barrier, 5);
        barrier.seal();
        assert!(g.failure(None, "m", Some("alice")).await.is_err());
        assert!(matches!(
            g.check(None, "m", Some("alice")).await,
            Err(Error::PermissionDenied)
        ));
    }

    #[tokio::test]
    async fn success_resets() {
        let g = guard(&store(), 2);
        g.failure(None, "m", Some("a")).await.unwrap();
        g.success("m", Some("a")).await.unwrap();
        g.failure(None, "m", Some("a")).await.unwrap();
        assert!(g.check(None, "m", Some("a")).await.is_ok());
    }

    /// The record names the identity only inside the encrypted value, never
    /// in its key; a very long identity is locked out too, its record small.
    #[tokio::test]
    async fn records_are_keyed_by_digest() {
        let g = guard(&store(), 1);
        g.failure(None, "m", Some("alice@example.com"))
            .await
            .unwrap();
        let keys = g.records.keys_with_prefix("").await.unwrap();
        assert_eq!(keys.len(), 1);
        assert!(!keys[0].contains("alice"));
        let long = "x".repeat(100_000);
        g.failure(None, "m", Some(&long)).await.unwrap();
        assert!(matches!(
            g.check(None, "m", Some(&long)).await,
            Err(Error::PermissionDenied)
        ));
        let locked = g.locked().await.unwrap();
        assert!(locked.iter().any(|(_, n)| n.len() == MAX_STORED_NAME));
    }
}

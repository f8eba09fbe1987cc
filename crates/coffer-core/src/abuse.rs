//! Login abuse controls: failed logins are rate limited per client address,
//! auth mount and identity (429 with Retry-After), with a much looser limit
//! per address alone against identity sprays, and an identity is locked out
//! after a threshold of failures (Vault's user lockout). Counting per
//! identity keeps one client's junk logins from throttling everyone else
//! behind the same load balancer. Lockouts answer "permission denied", like
//! a wrong password, so they reveal nothing more than Vault does.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

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
/// Beyond this many tracked identities, only active lockouts are kept.
const HARD_CAP: usize = 100_000;

pub use crate::mounts::LockoutConfig;

/// A client address, with the mount accessor and identity it tried (both
/// `None` for the address-wide spray counter).
type AddressKey = (IpAddr, Option<(String, Option<String>)>);

#[derive(Clone, Copy)]
struct Counter {
    failures: u32,
    first: Instant,
    locked_until: Option<Instant>,
}

/// Tracks failed logins in memory.
#[derive(Default)]
pub struct LoginGuard {
    addresses: Mutex<HashMap<AddressKey, Counter>>,
    identities: Mutex<HashMap<(String, String), Counter>>,
    configs: Mutex<HashMap<String, LockoutConfig>>,
}

impl LoginGuard {
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

    /// Refuses a login attempt while its address is throttled or its identity locked.
    pub fn check(
        &self,
        addr: Option<IpAddr>,
        accessor: &str,
        identity: Option<&str>,
    ) -> Result<()> {
        let now = Instant::now();
        if let Some(ip) = addr {
            let scoped = (
                ip,
                Some((accessor.to_string(), identity.map(str::to_string))),
            );
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
        }
        if let Some(id) = identity {
            let cfg = self.config(accessor);
            if cfg.disable_lockout {
                return Ok(());
            }
            let key = (accessor.to_string(), id.to_string());
            if let Some(c) = self.identities.lock().get(&key) {
                if c.locked_until.is_some_and(|t| t > now) {
                    return Err(Error::PermissionDenied);
                }
            }
        }
        Ok(())
    }

    /// Records a failed login.
    pub fn failure(&self, addr: Option<IpAddr>, accessor: &str, identity: Option<&str>) {
        let now = Instant::now();
        if let Some(ip) = addr {
            let mut map = self.addresses.lock();
            if map.len() > SWEEP_AT {
                map.retain(|_, c| now.duration_since(c.first) < ADDRESS_WINDOW);
            }
            if map.len() > HARD_CAP {
                map.retain(|k, _| k.1.is_none());
            }
            let scoped = (
                ip,
                Some((accessor.to_string(), identity.map(str::to_string))),
            );
            for key in [scoped, (ip, None)] {
                let c = map.entry(key).or_insert(Counter {
                    failures: 0,
                    first: now,
                    locked_until: None,
                });
                if now.duration_since(c.first) >= ADDRESS_WINDOW {
                    *c = Counter {
                        failures: 0,
                        first: now,
                        locked_until: None,
                    };
                }
                c.failures = c.failures.saturating_add(1);
            }
        }
        if let Some(id) = identity {
            let cfg = self.config(accessor);
            if cfg.disable_lockout || cfg.lockout_threshold == 0 {
                return;
            }
            let reset = Duration::from_secs(cfg.lockout_counter_reset);
            let mut map = self.identities.lock();
            if map.len() > SWEEP_AT {
                map.retain(|_, c| {
                    now.duration_since(c.first) < reset || c.locked_until.is_some_and(|t| t > now)
                });
            }
            if map.len() > HARD_CAP {
                // Under a spray of made-up identities, forget the oldest rather than grow.
                map.retain(|_, c| c.locked_until.is_some_and(|t| t > now));
            }
            let c = map
                .entry((accessor.to_string(), id.to_string()))
                .or_insert(Counter {
                    failures: 0,
                    first: now,
                    locked_until: None,
                });
            let lock_over = c.locked_until.is_some_and(|t| t <= now);
            if now.duration_since(c.first) >= reset || lock_over {
                *c = Counter {
                    failures: 0,
                    first: now,
                    locked_until: None,
                };
            }
            c.failures = c.failures.saturating_add(1);
            if c.failures >= cfg.lockout_threshold {
                c.locked_until = Some(now + Duration::from_secs(cfg.lockout_duration));
                tracing::warn!(
                    mount = accessor,
                    "login identity locked out after repeated failures"
                );
            }
        }
    }

    /// Records a login's outcome: success clears the identity's failures;
    /// a refusal (400 or 403) counts against the address and identity;
    /// any other error (the server's) counts against neither.
    pub fn record<T>(
        &self,
        addr: Option<IpAddr>,
        accessor: &str,
        identity: Option<&str>,
        outcome: &crate::Result<T>,
    ) {
        match outcome {
            Ok(_) => self.success(accessor, identity),
            Err(e) if matches!(e.status(), 400 | 403) => self.failure(addr, accessor, identity),
            Err(_) => {}
        }
    }

    /// Clears an identity's failures after a successful login.
    pub fn success(&self, accessor: &str, identity: Option<&str>) {
        if let Some(id) = identity {
            self.identities
                .lock()
                .remove(&(accessor.to_string(), id.to_string()));
        }
    }

    /// The identities locked out now, as (mount accessor, identity): what
    /// `sys/locked-users` lists. Lockouts are this node's: each node counts
    /// the failed logins it serves.
    pub fn locked(&self) -> Vec<(String, String)> {
        let now = Instant::now();
        self.identities
            .lock()
            .iter()
            .filter(|(_, c)| c.locked_until.is_some_and(|t| t > now))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Lifts every lockout of a mount (`sys/locked-users/:accessor/unlock`).
    pub fn unlock(&self, accessor: &str, identity: &str) {
        self.identities
            .lock()
            .remove(&(accessor.to_string(), identity.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_locks_after_threshold() {
        let g = LoginGuard::default();
        g.configure(
            "m",
            LockoutConfig {
                lockout_threshold: 3,
                ..Default::default()
            },
        );
        for _ in 0..2 {
            g.failure(None, "m", Some("alice"));
            assert!(g.check(None, "m", Some("alice")).is_ok());
        }
        g.failure(None, "m", Some("alice"));
        assert!(matches!(
            g.check(None, "m", Some("alice")),
            Err(Error::PermissionDenied)
        ));
        assert!(g.check(None, "m", Some("bob")).is_ok());
        g.unlock("m", "alice");
        assert!(g.check(None, "m", Some("alice")).is_ok());
    }

    #[test]
    fn address_is_rate_limited_per_identity() {
        let g = LoginGuard::default();
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        for _ in 0..ADDRESS_FAILURES_PER_WINDOW {
            g.failure(Some(ip), "m", None);
        }
        match g.check(Some(ip), "m", None) {
            Err(Error::RateLimited { retry_after, .. }) => assert!(retry_after >= 1),
            other => panic!("expected a rate limit, got {other:?}"),
        }
        // Someone else behind the same address, or the same client on another mount, still logs in.
        assert!(g.check(Some(ip), "m", Some("alice")).is_ok());
        assert!(g.check(Some(ip), "other", None).is_ok());
    }

    #[test]
    fn identity_spray_from_one_address_is_limited() {
        let g = LoginGuard::default();
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        for i in 0..ADDRESS_SPRAY_PER_WINDOW {
            g.failure(Some(ip), "m", Some(&format!("u{i}")));
        }
        assert!(matches!(
            g.check(Some(ip), "m", Some("new")),
            Err(Error::RateLimited { .. })
        ));
    }

    #[test]
    fn success_resets() {
        let g = LoginGuard::default();
        g.configure(
            "m",
            LockoutConfig {
                lockout_threshold: 2,
                ..Default::default()
            },
        );
        g.failure(None, "m", Some("a"));
        g.success("m", Some("a"));
        g.failure(None, "m", Some("a"));
        assert!(g.check(None, "m", Some("a")).is_ok());
    }
}

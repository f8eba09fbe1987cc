//! Stored ACL policies and the compiled ACLs of token policy sets.
//!
//! Policies live at `sys/policy/<name>` behind the barrier as their original
//! text. `root` and `response-wrapping` (the policy of wrapping tokens,
//! not listed, as in Vault) are built in and immutable; `default` is stored at first unseal
//! from Vault's default rules and may be edited but not deleted.
//!
//! Parsed policies and compiled ACLs are cached in [`ParsedCache`]s: a write
//! or delete holds a write guard on both while it changes storage, and a
//! reader's fill lands only if no write ran since the reader started, so a
//! read racing a write can never cache the old ACL.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::barrier::View;
use crate::cache::ParsedCache;
use crate::policy::{Acl, Policy, DEFAULT_POLICY_HCL};
use crate::{Error, Result};

#[derive(Serialize, Deserialize)]
struct StoredPolicy {
    name: String,
    raw: String,
}

/// Reads, writes and compiles policies, with caches cleared on every change.
pub struct PolicyStore {
    view: View,
    /// Parsed policies by name.
    parsed: ParsedCache<Policy>,
    /// Compiled ACLs by sorted policy set (names joined by `\n`, which no
    /// policy name contains).
    acls: ParsedCache<Acl>,
}

/// Normalises a policy name as Vault does: trimmed and lower-cased.
pub fn normalize_name(name: &str) -> Result<String> {
    let n = name.trim().to_lowercase();
    if n.is_empty() {
        return Err(Error::bad("policy name cannot be empty"));
    }
    if n.contains('/') || n.chars().any(char::is_control) {
        return Err(Error::bad(format!("invalid policy name {name:?}")));
    }
    Ok(n)
}

impl PolicyStore {
    /// A store over `view`.
    pub fn new(view: View) -> Self {
        PolicyStore {
            view,
            parsed: ParsedCache::default(),
            acls: ParsedCache::default(),
        }
    }

    /// Empties the caches (on seal).
    pub fn clear_caches(&self) {
        self.parsed.clear();
        self.acls.clear();
    }

    /// Writes the default policy if it is not stored yet.
    pub async fn ensure_default(&self) -> Result<()> {
        if self.view.get("default").await?.is_none() {
            self.write("default", DEFAULT_POLICY_HCL).await?;
        }
        Ok(())
    }

    /// The policy text stored under `name`.
    pub async fn read_raw(&self, name: &str) -> Result<Option<String>> {
        let name = normalize_name(name)?;
        if name == "root" {
            return Ok(Some(String::new()));
        }
        if name == crate::wrapping::POLICY {
            return Ok(Some(crate::wrapping::POLICY_HCL.to_string()));
        }
        Ok(self
            .view
            .get_json::<StoredPolicy>(&name)
            .await?
            .map(|p| p.raw))
    }

    /// Parses and stores a policy; a policy that does not parse is refused
    /// with its line and problem.
    pub async fn write(&self, name: &str, text: &str) -> Result<()> {
        let name = normalize_name(name)?;
        if name == "root" {
            return Err(Error::bad("cannot update root policy"));
        }
        if name == crate::wrapping::POLICY {
            return Err(Error::bad(format!("cannot update {name:?} policy")));
        }
        Policy::parse(&name, text)
            .map_err(|e| Error::bad(format!("failed to parse policy: {e}")))?;
        let _p = self.parsed.begin_write(&name);
        let _a = self.acls.begin_write_all();
        self.view
            .put_json(
                &name,
                &StoredPolicy {
                    name: name.clone(),
                    raw: text.to_string(),
                },
            )
            .await?;
        Ok(())
    }

    /// Deletes a policy (`root` and `default` cannot be deleted).
    pub async fn delete(&self, name: &str) -> Result<()> {
        let name = normalize_name(name)?;
        if name == "root" || name == "default" || name == crate::wrapping::POLICY {
            return Err(Error::bad(format!("cannot delete {name} policy")));
        }
        let _p = self.parsed.begin_write(&name);
        let _a = self.acls.begin_write_all();
        self.view.delete(&name).await?;
        Ok(())
    }

    /// Names of all policies, `root` included, sorted.
    pub async fn list(&self) -> Result<Vec<String>> {
        let mut names = self.view.list("").await?;
        names.push("root".into());
        names.sort();
        names.dedup();
        Ok(names)
    }

    async fn get(&self, name: &str) -> Result<Option<Arc<Policy>>> {
        if name == "root" {
            return Ok(Some(Arc::new(Policy::root())));
        }
        if name == crate::wrapping::POLICY {
            // Built in and immutable, like root; parsed on an ACL cache miss.
            let policy = Policy::parse(name, crate::wrapping::POLICY_HCL)
                .map_err(|e| Error::Internal(format!("built-in policy {name:?}: {e}")))?;
            return Ok(Some(Arc::new(policy)));
        }
        if let Some(p) = self.parsed.get(name) {
            return Ok(Some(p));
        }
        let epoch = self.parsed.epoch();
        let Some(stored) = self.view.get_json::<StoredPolicy>(name).await? else {
            return Ok(None);
        };
        let policy = Arc::new(
            Policy::parse(name, &stored.raw)
                .map_err(|e| Error::Internal(format!("stored policy {name:?} is invalid: {e}")))?,
        );
        self.parsed.fill(name, policy.clone(), epoch);
        Ok(Some(policy))
    }

    /// The compiled ACL of a set of policy names (unknown names grant nothing).
    pub async fn acl(&self, names: &[String]) -> Result<Arc<Acl>> {
        let mut key: Vec<String> = names.to_vec();
        key.sort();
        key.dedup();
        let cache_key = key.join("\n");
        if let Some(acl) = self.acls.get(&cache_key) {
            return Ok(acl);
        }
        // Taken before any policy is read: a write from now on voids the fill.
        let epoch = self.acls.epoch();
        let mut policies = Vec::with_capacity(key.len());
        for name in &key {
            if let Some(p) = self.get(name).await? {
                policies.push((*p).clone());
            }
        }
        let acl = Arc::new(Acl::new(&policies));
        self.acls.fill(&cache_key, acl.clone(), epoch);
        Ok(acl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barrier::Barrier;
    use crate::policy::Operation;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn store() -> Arc<PolicyStore> {
        let barrier = Arc::new(Barrier::new(Arc::new(coffer_storage::MemoryBackend::new())));
        barrier.unseal(coffer_crypto::Keyring::new(0));
        Arc::new(PolicyStore::new(View::new(barrier, "sys/policy/")))
    }

    /// Version `i` of policy p: read on `secret/v<i>`, plus filler paths
    /// so that parsing and compiling take a while (a wider race window).
    fn version(i: usize) -> String {
        let mut text = format!("path \"secret/v{i}\" {{ capabilities = [\"read\"] }}\n");
        for n in 0..40 {
            text.push_str(&format!(
                "path \"filler/{n}/+/x*\" {{ capabilities = [\"list\"] }}\n"
            ));
        }
        text
    }

    fn grants(acl: &Acl, i: usize) -> bool {
        acl.authorize(Operation::Read, &format!("secret/v{i}"), None)
            .is_ok()
    }

    /// Readers compile the ACL of {p, default} while a writer rewrites p;
    /// once the writer is done and the readers have stopped, the cached ACL
    /// must be the one of the last stored version.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_read_racing_a_write_never_caches_the_old_acl() {
        let s = store();
        s.ensure_default().await.unwrap();
        let names = vec!["p".to_string(), "default".to_string()];
        s.write("p", &version(0)).await.unwrap();
        let mut last = 0;
        for round in 1..=100 {
            let stop = Arc::new(AtomicBool::new(false));
            let readers: Vec<_> = (0..12)
                .map(|_| {
                    let (s, stop, names) = (s.clone(), stop.clone(), names.clone());
                    tokio::spawn(async move {
                        while !stop.load(Ordering::Relaxed) {
                            s.acl(&names).await.unwrap();
                            tokio::task::yield_now().await;
                        }
                    })
                })
                .collect();
            // A burst of writes: readers that missed after one write's clear
            // read storage while the next write lands.
            for _ in 0..10 {
                last += 1;
                s.write("p", &version(last)).await.unwrap();
                tokio::task::yield_now().await;
            }
            stop.store(true, Ordering::Relaxed);
            for r in readers {
                r.await.unwrap();
            }
            let acl = s.acl(&names).await.unwrap();
            let stored = s.read_raw("p").await.unwrap().unwrap();
            assert_eq!(stored, version(last));
            assert!(
                grants(&acl, last) && !grants(&acl, last - 1),
                "round {round}: the cached ACL is not the stored policy's"
            );
        }
        s.delete("p").await.unwrap();
        assert!(!grants(&s.acl(&names).await.unwrap(), last));
    }
}

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

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::barrier::View;
use crate::cache::ParsedCache;
use crate::identity::template::{self, Allow, TemplateData};
use crate::policy::{Acl, PathPattern, PathRule, Policy, DEFAULT_POLICY_HCL};
use crate::{Error, Result};

#[derive(Serialize, Deserialize)]
struct StoredPolicy {
    name: String,
    raw: String,
    /// Writes so far (1 after the first); 0 for a policy stored before
    /// versions were kept.
    #[serde(default)]
    version: u64,
    /// When it was last written.
    #[serde(default)]
    modified: Option<DateTime<Utc>>,
    /// Whether the next write must carry `cas`.
    #[serde(default)]
    cas_required: bool,
    /// Whether identity template values may hold `/` (OpenBao).
    #[serde(default)]
    allow_slashes_in_identity_templates: bool,
    /// Whether identity template values may hold `*` or `+` (OpenBao).
    #[serde(default)]
    allow_wildcards_in_identity_templates: bool,
}

/// A stored policy as `sys/policies/acl/<name>` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRecord {
    /// The policy text (empty for `root`).
    pub raw: String,
    /// Writes so far (0 for `root`).
    pub version: u64,
    /// When it was last written (none for `root`).
    pub modified: Option<DateTime<Utc>>,
    /// Whether the next write must carry `cas`.
    pub cas_required: bool,
    /// What identity template values may hold in this policy's paths.
    pub allow: Allow,
}

/// OpenBao's check-and-set options of one policy write.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    /// The version the caller expects the policy to be at (0: absent).
    pub cas: Option<u64>,
    /// Whether later writes must carry `cas` (a write without it resets
    /// the flag, as OpenBao's POST resets unspecified fields).
    pub cas_required: bool,
    /// OpenBao's `allow_slashes_in_identity_templates` and
    /// `allow_wildcards_in_identity_templates` (reset by a write without them).
    pub allow: Allow,
}

/// A parsed policy with what its identity templates may expand to.
pub struct Loaded {
    /// The parsed policy.
    pub policy: Policy,
    /// Whether any of its paths holds an identity template.
    pub templated: bool,
    /// What template values may hold.
    pub allow: Allow,
}

/// Reads, writes and compiles policies, with caches cleared on every change.
pub struct PolicyStore {
    view: View,
    /// Parsed policies by name.
    parsed: ParsedCache<Loaded>,
    /// Compiled ACLs by sorted policy set (names joined by `\n`, which no
    /// policy name contains).
    acls: ParsedCache<Acl>,
    /// Serialises writes, so a check-and-set compares against the version
    /// its own write replaces.
    write_lock: Mutex<()>,
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
            write_lock: Mutex::new(()),
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
        Ok(self.read(name).await?.map(|r| r.raw))
    }

    /// The policy stored under `name`, with its version and write time.
    pub async fn read(&self, name: &str) -> Result<Option<PolicyRecord>> {
        let name = normalize_name(name)?;
        if name == "root" {
            return Ok(Some(PolicyRecord {
                raw: String::new(),
                version: 0,
                modified: None,
                cas_required: false,
                allow: Allow::default(),
            }));
        }
        if name == crate::wrapping::POLICY {
            return Ok(Some(PolicyRecord {
                raw: crate::wrapping::POLICY_HCL.to_string(),
                version: 0,
                modified: None,
                cas_required: false,
                allow: Allow::default(),
            }));
        }
        Ok(self
            .view
            .get_json::<StoredPolicy>(&name)
            .await?
            .map(|p| PolicyRecord {
                raw: p.raw,
                version: p.version,
                modified: p.modified,
                cas_required: p.cas_required,
                allow: Allow {
                    slashes: p.allow_slashes_in_identity_templates,
                    wildcards: p.allow_wildcards_in_identity_templates,
                },
            }))
    }

    /// Parses and stores a policy; a policy that does not parse is refused
    /// with its line and problem.
    pub async fn write(&self, name: &str, text: &str) -> Result<()> {
        self.write_with(name, text, WriteOptions::default()).await
    }

    /// [`write`](Self::write) with OpenBao's check-and-set: `cas`, when
    /// given, must equal the stored version (0 when there is none), and a
    /// policy stored with `cas_required` (or a write asking for it) must be
    /// given one.
    pub async fn write_with(&self, name: &str, text: &str, opts: WriteOptions) -> Result<()> {
        let name = normalize_name(name)?;
        if name == "root" {
            return Err(Error::bad("cannot update root policy"));
        }
        if name == crate::wrapping::POLICY {
            return Err(Error::bad(format!("cannot update {name:?} policy")));
        }
        Policy::parse(&name, text)
            .map_err(|e| Error::bad(format!("failed to parse policy: {e}")))?;
        let _w = self.write_lock.lock().await;
        let existing = self.view.get_json::<StoredPolicy>(&name).await?;
        let current = existing.as_ref().map_or(0, |p| p.version);
        let required = opts.cas_required || existing.as_ref().is_some_and(|p| p.cas_required);
        match opts.cas {
            None if required => {
                return Err(Error::bad(
                    "check-and-set parameter required for this policy",
                ))
            }
            Some(c) if c != current => {
                return Err(Error::bad(format!(
                    "check-and-set parameter did not match the current version {current}"
                )))
            }
            _ => {}
        }
        let _p = self.parsed.begin_write(&name);
        let _a = self.acls.begin_write_all();
        self.view
            .put_json(
                &name,
                &StoredPolicy {
                    name: name.clone(),
                    raw: text.to_string(),
                    version: current + 1,
                    modified: Some(crate::util::now()),
                    cas_required: opts.cas_required,
                    allow_slashes_in_identity_templates: opts.allow.slashes,
                    allow_wildcards_in_identity_templates: opts.allow.wildcards,
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
        names.retain(|n| n != "root");
        names.sort();
        names.dedup();
        // As Vault: the stored names in order, then `root` (never stored).
        names.push("root".into());
        Ok(names)
    }

    async fn get(&self, name: &str) -> Result<Option<Arc<Loaded>>> {
        let loaded = |policy: Policy, allow: Allow| {
            let templated = policy
                .rules()
                .iter()
                .any(|r| template::is_templated(r.pattern.as_str()));
            Arc::new(Loaded {
                policy,
                templated,
                allow,
            })
        };
        if name == "root" {
            return Ok(Some(loaded(Policy::root(), Allow::default())));
        }
        if name == crate::wrapping::POLICY {
            // Built in and immutable, like root; parsed on an ACL cache miss.
            let policy = Policy::parse(name, crate::wrapping::POLICY_HCL)
                .map_err(|e| Error::Internal(format!("built-in policy {name:?}: {e}")))?;
            return Ok(Some(loaded(policy, Allow::default())));
        }
        if let Some(p) = self.parsed.get(name) {
            return Ok(Some(p));
        }
        let epoch = self.parsed.epoch();
        let Some(stored) = self.view.get_json::<StoredPolicy>(name).await? else {
            return Ok(None);
        };
        let policy = Policy::parse(name, &stored.raw)
            .map_err(|e| Error::corrupt(format!("stored policy {name:?}: {e}")))?;
        let allow = Allow {
            slashes: stored.allow_slashes_in_identity_templates,
            wildcards: stored.allow_wildcards_in_identity_templates,
        };
        let policy = loaded(policy, allow);
        self.parsed.fill(name, policy.clone(), epoch);
        Ok(Some(policy))
    }

    /// The compiled ACL of a set of policy names (unknown names grant
    /// nothing), without identity: templated paths do not apply.
    pub async fn acl(&self, names: &[String]) -> Result<Arc<Acl>> {
        self.acl_for(names, None).await
    }

    /// The compiled ACL of a set of policy names for a token whose entity
    /// the identity store describes as `identity` (its template data and
    /// the store's epoch it was read at). Templated paths are resolved
    /// against exactly that data ([`crate::identity::template`]); an ACL
    /// holding them is cached under the entity and the epoch, so any
    /// identity change makes the next request build it afresh. A value the
    /// policy does not allow fails the whole ACL (400 `Forbidden` for
    /// every request of the token, as OpenBao answers).
    pub async fn acl_for(
        &self,
        names: &[String],
        identity: Option<(&TemplateData, u64)>,
    ) -> Result<Arc<Acl>> {
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
                policies.push(p);
            }
        }
        if !policies.iter().any(|p| p.templated) {
            let plain: Vec<Policy> = policies.iter().map(|p| p.policy.clone()).collect();
            let acl = Arc::new(Acl::new(&plain));
            self.acls.fill(&cache_key, acl.clone(), epoch);
            return Ok(acl);
        }
        // No name or id holds a NUL: the key cannot collide with a plain set.
        let templated_key = match identity {
            Some((data, at)) => format!("{cache_key}\0{}\0{at}", data.entity_id),
            None => format!("{cache_key}\0"),
        };
        if let Some(acl) = self.acls.get(&templated_key) {
            return Ok(acl);
        }
        let mut rendered = Vec::with_capacity(policies.len());
        for p in &policies {
            if !p.templated {
                rendered.push(p.policy.clone());
                continue;
            }
            let mut rules = Vec::with_capacity(p.policy.rules().len());
            for rule in p.policy.rules() {
                let text = rule.pattern.as_str();
                if !template::is_templated(text) {
                    rules.push(rule.clone());
                    continue;
                }
                let Some((data, _)) = identity else {
                    continue;
                };
                match template::render(text, data, p.allow) {
                    Ok(Some(path)) => {
                        let Ok(pattern) = PathPattern::parse(&path) else {
                            // Fail closed: dropping the rule could drop a deny.
                            tracing::warn!(policy = %p.policy.name(),
                                "a templated policy path rendered to an invalid pattern");
                            return Err(Error::Status {
                                code: 400,
                                errors: vec!["Forbidden".into()],
                            });
                        };
                        rules.push(PathRule {
                            pattern,
                            ..rule.clone()
                        });
                    }
                    Ok(None) => {}
                    Err(forbidden) => {
                        tracing::warn!(policy = %p.policy.name(), error = %forbidden,
                            "failed to construct ACL from a templated policy");
                        // OpenBao's answer to a token whose ACL cannot be built.
                        return Err(Error::Status {
                            code: 400,
                            errors: vec!["Forbidden".into()],
                        });
                    }
                }
            }
            rendered.push(Policy::from_rules(p.policy.name(), rules));
        }
        let acl = Arc::new(Acl::new(&rendered));
        self.acls.fill(&templated_key, acl.clone(), epoch);
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

    /// 32 concurrent writes naming the same `cas`: exactly one lands, and
    /// the version counts every write.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn check_and_set_lets_one_of_many_racing_writes_land() {
        let s = store();
        let text = "path \"a/*\" { capabilities = [\"read\"] }";
        s.write("p", text).await.unwrap();
        let cas = |c| WriteOptions {
            cas: Some(c),
            ..Default::default()
        };
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.write_with("p", text, cas(1)).await.is_ok() })
            })
            .collect();
        let mut landed = 0;
        for t in tasks {
            landed += usize::from(t.await.unwrap());
        }
        assert_eq!(landed, 1);
        let r = s.read("p").await.unwrap().unwrap();
        assert_eq!(r.version, 2);
        assert!(r.modified.is_some());
        // cas 0 creates; a required cas is enforced, then reset by a write without the flag.
        assert!(s.write_with("q", text, cas(1)).await.is_err());
        let req = WriteOptions {
            cas: Some(0),
            cas_required: true,
            ..Default::default()
        };
        s.write_with("q", text, req).await.unwrap();
        assert!(s.write("q", text).await.is_err());
        s.write_with("q", text, cas(1)).await.unwrap();
        assert!(!s.read("q").await.unwrap().unwrap().cas_required);
        s.write("q", text).await.unwrap();
        assert_eq!(s.read("root").await.unwrap().unwrap().version, 0);
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

//! Stored ACL policies and the compiled ACLs of token policy sets.
//!
//! Policies live at `sys/policy/<name>` behind the barrier as their original
//! text. `root` is built in and immutable; `default` is stored at first unseal
//! from Vault's default rules and may be edited but not deleted.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::barrier::View;
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
    parsed: RwLock<HashMap<String, Arc<Policy>>>,
    acls: RwLock<HashMap<Vec<String>, Arc<Acl>>>,
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
            parsed: RwLock::new(HashMap::new()),
            acls: RwLock::new(HashMap::new()),
        }
    }

    /// Empties the caches (on seal, and after any change).
    pub fn clear_caches(&self) {
        self.parsed.write().clear();
        self.acls.write().clear();
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
        Policy::parse(&name, text)
            .map_err(|e| Error::bad(format!("failed to parse policy: {e}")))?;
        self.view
            .put_json(
                &name,
                &StoredPolicy {
                    name: name.clone(),
                    raw: text.to_string(),
                },
            )
            .await?;
        self.clear_caches();
        Ok(())
    }

    /// Deletes a policy (`root` and `default` cannot be deleted).
    pub async fn delete(&self, name: &str) -> Result<()> {
        let name = normalize_name(name)?;
        if name == "root" || name == "default" {
            return Err(Error::bad(format!("cannot delete {name} policy")));
        }
        self.view.delete(&name).await?;
        self.clear_caches();
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
        if let Some(p) = self.parsed.read().get(name) {
            return Ok(Some(p.clone()));
        }
        let Some(stored) = self.view.get_json::<StoredPolicy>(name).await? else {
            return Ok(None);
        };
        let policy = Arc::new(
            Policy::parse(name, &stored.raw)
                .map_err(|e| Error::Internal(format!("stored policy {name:?} is invalid: {e}")))?,
        );
        self.parsed.write().insert(name.to_string(), policy.clone());
        Ok(Some(policy))
    }

    /// The compiled ACL of a set of policy names (unknown names grant nothing).
    pub async fn acl(&self, names: &[String]) -> Result<Arc<Acl>> {
        let mut key: Vec<String> = names.to_vec();
        key.sort();
        key.dedup();
        if let Some(acl) = self.acls.read().get(&key) {
            return Ok(acl.clone());
        }
        let mut policies = Vec::with_capacity(key.len());
        for name in &key {
            if let Some(p) = self.get(name).await? {
                policies.push((*p).clone());
            }
        }
        let acl = Arc::new(Acl::new(&policies));
        self.acls.write().insert(key, acl.clone());
        Ok(acl)
    }
}

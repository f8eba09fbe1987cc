//! The mount table and the router: which engine answers which path.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::barrier::View;
use crate::engine::Engine;
use crate::{Error, Result};

/// Storage key of the mount table (behind the barrier).
pub const MOUNT_TABLE_KEY: &str = "core/mounts";

/// The version every built-in engine runs, in Vault's form
/// (`running_plugin_version` in the mount tables, `mount_running_version`
/// in audit entries).
pub const BUILTIN_VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"), "+builtin.coffer");

/// The system-wide default and maximum lease TTL (32 days), as Vault's:
/// what a mount's `default_lease_ttl`/`max_lease_ttl` of 0 stands for.
pub const SYSTEM_MAX_TTL: u64 = 2_764_800;

/// Engine type of the per-token cubbyhole, mounted by the core itself.
pub const CUBBYHOLE_KIND: &str = "cubbyhole";
/// Engine type of the identity store's mount, mounted by the core itself.
pub const IDENTITY_KIND: &str = "identity";

/// A mount's tunable settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountConfig {
    /// Default lease TTL in seconds (0: system default).
    #[serde(default)]
    pub default_lease_ttl: u64,
    /// Maximum lease TTL in seconds (0: system default).
    #[serde(default)]
    pub max_lease_ttl: u64,
    /// Vault's flag, kept for compatibility.
    #[serde(default)]
    pub force_no_cache: bool,
    /// Login lockout settings of an auth mount (Vault's `user_lockout_config`).
    #[serde(default)]
    pub user_lockout_config: Option<LockoutConfig>,
}

/// Vault's `user_lockout_config` of an auth mount.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockoutConfig {
    /// Failures that lock an identity out.
    pub lockout_threshold: u32,
    /// How long a lockout lasts, in seconds.
    pub lockout_duration: u64,
    /// Seconds after which the failure count starts over.
    pub lockout_counter_reset: u64,
    /// Turns lockout off.
    pub disable_lockout: bool,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        // Vault's defaults.
        LockoutConfig {
            lockout_threshold: 5,
            lockout_duration: 15 * 60,
            lockout_counter_reset: 15 * 60,
            disable_lockout: false,
        }
    }
}

/// One entry of the mount table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountEntry {
    /// Mount path with a trailing slash, e.g. `secret/`.
    pub path: String,
    /// Engine type: `kv`, `system`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// The mount's accessor, e.g. `kv_1a2b3c4d`.
    pub accessor: String,
    /// Unique id; also names the mount's storage prefix.
    pub uuid: String,
    /// Tunables.
    #[serde(default)]
    pub config: MountConfig,
    /// Engine options, e.g. `version = "2"` for KV.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Vault's replication flag, kept for compatibility.
    #[serde(default)]
    pub local: bool,
    /// Vault's seal-wrap flag, kept for compatibility.
    #[serde(default)]
    pub seal_wrap: bool,
}

impl MountEntry {
    /// A new entry with fresh uuid and accessor.
    pub fn new(path: &str, kind: &str) -> Self {
        let uuid = coffer_crypto::random::uuid();
        MountEntry {
            path: path.to_string(),
            kind: kind.to_string(),
            description: String::new(),
            accessor: format!("{}_{}", kind.replace('-', "_"), &uuid[..8]),
            uuid,
            config: MountConfig::default(),
            options: BTreeMap::new(),
            local: false,
            seal_wrap: false,
        }
    }

    /// The entry as `GET sys/mounts` shows it.
    pub fn to_json(&self) -> Value {
        // As Vault: a mount an operator created shows `options` as an object
        // and a `deprecation_status`; the built-in cubbyhole shows neither.
        let builtin = self.kind == CUBBYHOLE_KIND || self.kind == IDENTITY_KIND;
        let options: Value = if self.options.is_empty() && builtin {
            Value::Null
        } else {
            json!(self.options)
        };
        let mut config = json!({
            "default_lease_ttl": self.config.default_lease_ttl,
            "force_no_cache": self.config.force_no_cache,
            "max_lease_ttl": self.config.max_lease_ttl,
        });
        if self.path.starts_with("auth/") {
            config["token_type"] = json!("default-service");
        }
        if self.kind == IDENTITY_KIND {
            // As Vault's identity mount (its OIDC endpoints read the header).
            config["passthrough_request_headers"] = json!(["Authorization"]);
        }
        let mut out = json!({
            "accessor": self.accessor,
            "config": config,
            "description": self.description,
            "external_entropy_access": false,
            "local": self.local,
            "options": options,
            "plugin_version": "",
            "running_plugin_version": BUILTIN_VERSION,
            "running_sha256": "",
            "seal_wrap": self.seal_wrap,
            "type": self.kind,
            "uuid": self.uuid,
        });
        if !builtin {
            out["deprecation_status"] = json!("supported");
        }
        out
    }

    /// The storage prefix of the mount's data.
    pub fn storage_prefix(&self) -> String {
        format!("logical/{}/", self.uuid)
    }
}

/// A mounted engine with its entry and storage view.
#[derive(Clone)]
pub struct Mounted {
    /// The mount's entry.
    pub entry: Arc<MountEntry>,
    /// The engine.
    pub engine: Arc<dyn Engine>,
    /// The engine's storage.
    pub view: View,
    /// A second engine that answers the paths it [claims](Engine::claims)
    /// below this mount, with the mount's entry and view: the lifecycle
    /// API of a KV v2 mount (`lifecycle/`, `rotate/`). `None` for most.
    pub sub_router: Option<Arc<dyn Engine>>,
}

impl Mounted {
    /// The mount as its sub-router: same entry and view, the sub-router's
    /// engine.
    fn as_sub_router(&self, engine: Arc<dyn Engine>) -> Mounted {
        Mounted {
            entry: self.entry.clone(),
            engine,
            view: self.view.clone(),
            sub_router: None,
        }
    }
}

/// Routes paths to mounts by longest prefix.
#[derive(Clone, Default)]
pub struct Router {
    /// The kernel's own backends (`sys/`, `auth/token/`): always routed,
    /// sealed or not, ahead of every mount; never listed by
    /// [`Router::entries`] nor changed by [`Router::insert`]/[`Router::remove`].
    kernel: Vec<Mounted>,
    /// Mounts sorted by path length, longest first.
    mounts: Vec<Mounted>,
}

impl Router {
    /// A router holding only the kernel's own backends.
    pub fn with_kernel(kernel: Vec<Mounted>) -> Router {
        Router {
            kernel,
            mounts: Vec::new(),
        }
    }

    /// Adds a mount.
    pub fn insert(&mut self, m: Mounted) {
        self.mounts.retain(|x| x.entry.path != m.entry.path);
        self.mounts.push(m);
        self.mounts
            .sort_by_key(|m| std::cmp::Reverse(m.entry.path.len()));
    }

    /// Removes the mount at `path`.
    pub fn remove(&mut self, path: &str) -> Option<Mounted> {
        let i = self.mounts.iter().position(|m| m.entry.path == path)?;
        Some(self.mounts.remove(i))
    }

    /// The mount answering `path`, and the path relative to it: a kernel
    /// backend first, else the longest mount prefix; a path its mount's
    /// sub-router claims goes to that sub-router.
    pub fn route<'a>(&self, path: &'a str) -> Option<(Mounted, &'a str)> {
        for m in self.kernel.iter().chain(&self.mounts) {
            let mp = m.entry.path.as_str();
            let rest = match path.strip_prefix(mp) {
                Some(rest) => rest,
                None if mp.strip_suffix('/') == Some(path) => "",
                None => continue,
            };
            return Some(match &m.sub_router {
                Some(sub) if sub.claims(rest) => (m.as_sub_router(sub.clone()), rest),
                _ => (m.clone(), rest),
            });
        }
        None
    }

    /// The mount at exactly `path`.
    pub fn get(&self, path: &str) -> Option<&Mounted> {
        self.mounts.iter().find(|m| m.entry.path == path)
    }

    /// All mounts.
    pub fn entries(&self) -> impl Iterator<Item = &Mounted> {
        self.mounts.iter()
    }
}

/// Checks and normalises a mount path given by a user: no empty or `..`
/// segments; returns it with one trailing slash.
pub fn normalize_mount_path(path: &str) -> Result<String> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return Err(Error::bad("mount path cannot be empty"));
    }
    if trimmed
        .split('/')
        .any(|seg| seg.is_empty() || seg == ".." || seg == ".")
    {
        return Err(Error::bad(format!("invalid mount path {path:?}")));
    }
    Ok(format!("{trimmed}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths() {
        assert_eq!(normalize_mount_path("secret").unwrap(), "secret/");
        assert_eq!(normalize_mount_path("/a/b/").unwrap(), "a/b/");
        assert!(normalize_mount_path("").is_err());
        assert!(normalize_mount_path("a//b").is_err());
        assert!(normalize_mount_path("a/../b").is_err());
    }
}

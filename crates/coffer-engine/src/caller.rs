//! The caller: the stored record of the token a request was made with,
//! as the token store keeps it and the pipeline hands it to engines
//! ([`crate::engine::EngineCtx::token`]) and to the audit trail.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::time::{now, rfc3339};

/// A stored token: everything but the token itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenEntry {
    /// SHA-256 of the token, hex.
    pub id_hash: String,
    /// The accessor: a second handle that can look up or revoke but not use the token.
    pub accessor: String,
    /// Policies attached.
    pub policies: Vec<String>,
    /// The parent's hash; `None` for an orphan.
    #[serde(default)]
    pub parent: Option<String>,
    /// Shown in audit logs.
    pub display_name: String,
    /// Free metadata.
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    /// Uses left; 0 means unlimited.
    #[serde(default)]
    pub num_uses: u64,
    /// Creation time, seconds since the epoch.
    pub creation_time: i64,
    /// TTL in seconds; 0 means none (root tokens).
    #[serde(default)]
    pub ttl: u64,
    /// Expiry, seconds since the epoch.
    #[serde(default)]
    pub expire_time: Option<i64>,
    /// The path that created it, e.g. `auth/token/root`.
    pub path: String,
    /// Whether it may be renewed.
    #[serde(default)]
    pub renewable: bool,
    /// Explicit maximum TTL in seconds (0: none).
    #[serde(default)]
    pub explicit_max_ttl: u64,
    /// Period in seconds of a periodic token (0: none).
    #[serde(default)]
    pub period: u64,
    /// Hard limit on the token's life from its creation, seconds since the
    /// epoch (from explicit_max_ttl or the mount's max TTL); renewals stop here.
    #[serde(default)]
    pub max_expire_time: Option<i64>,
    /// Client CIDR blocks the token may be used from.
    #[serde(default)]
    pub bound_cidrs: Vec<String>,
    /// The token role it was created from, if any.
    #[serde(default)]
    pub role: Option<String>,
    /// Set when a request took the last of a limited-use token's uses: the
    /// token authenticates nothing more and is revoked when that request
    /// ends (or by tidy, after a crash in between).
    #[serde(default)]
    pub uses_exhausted: bool,
    /// The identity entity the token acts for (empty: none); its policies
    /// and its groups' are added at each request.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub entity_id: String,
}

impl TokenEntry {
    /// Whether the token has expired at `at` (seconds since the epoch).
    pub fn expired(&self, at: i64) -> bool {
        self.expire_time.is_some_and(|t| t <= at)
    }

    /// Whether this is a batch token (never stored; batch tokens have no accessor).
    pub fn is_batch(&self) -> bool {
        self.accessor.is_empty()
    }

    /// Whether the token carries the root policy.
    pub fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == "root")
    }

    /// The entry as `lookup` shows it (never the token itself unless given).
    pub fn to_lookup_json(&self, id: Option<&str>) -> Value {
        let at = now().timestamp();
        let ttl = self.expire_time.map(|t| (t - at).max(0)).unwrap_or(0);
        let fmt = |secs: i64| {
            chrono::DateTime::from_timestamp(secs, 0)
                .map(|t| rfc3339(&t))
                .unwrap_or_default()
        };
        let mut out = json!({
            "accessor": self.accessor,
            "creation_time": self.creation_time,
            "creation_ttl": self.ttl,
            "display_name": self.display_name,
            "entity_id": self.entity_id,
            "expire_time": self.expire_time.map(fmt),
            "explicit_max_ttl": self.explicit_max_ttl,
            "id": id.unwrap_or(""),
            "issue_time": fmt(self.creation_time),
            "meta": if self.meta.is_empty() { Value::Null } else { json!(self.meta) },
            "num_uses": self.num_uses,
            "orphan": self.parent.is_none(),
            "path": self.path,
            "policies": self.policies,
            "renewable": self.renewable,
            "ttl": ttl,
            "type": self.token_type(),
        });
        // As Vault's lookup: these appear only when set.
        if let Some(o) = out.as_object_mut() {
            if self.period > 0 {
                o.insert("period".into(), json!(self.period));
            }
            if !self.bound_cidrs.is_empty() {
                o.insert("bound_cidrs".into(), json!(self.bound_cidrs));
            }
            if let Some(role) = self.role.as_ref().filter(|r| !r.is_empty()) {
                o.insert("role".into(), json!(role));
            }
        }
        out
    }

    /// `service` or `batch`, as Vault names token types.
    pub fn token_type(&self) -> &'static str {
        if self.is_batch() {
            "batch"
        } else {
            "service"
        }
    }

    /// The id of this token's lease (`<creating path>/h<digest>`), or `None`
    /// for tokens without a TTL (root) and batch tokens, which have none.
    pub fn lease_id(&self) -> Option<String> {
        if self.expire_time.is_none() || self.is_batch() {
            return None;
        }
        Some(format!(
            "{}/h{}",
            self.path.trim_end_matches('/'),
            coffer_crypto::hash::sha256_hex(self.id_hash.as_bytes())
        ))
    }
}

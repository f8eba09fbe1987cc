//! The token store: tokens kept only as hashes, looked up on every request.
//!
//! Layout inside its view: `id/<sha256(token)>` holds a [`TokenEntry`];
//! `accessor/<accessor>` holds the hash it points to. A token is
//! `cfs.` followed by 32 random URL-safe characters (192 bits), so it is
//! recognisable in leaks and by scanners. Only root tokens and lookups are
//! built here; the full token API builds on the same entry.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::barrier::{to_json, BarrierOp, View};
use crate::util::{now, rfc3339};
use crate::{Error, Result};

/// Prefix of every token Coffer generates.
pub const TOKEN_PREFIX: &str = "cfs.";

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
}

impl TokenEntry {
    /// Whether the token has expired at `at` (seconds since the epoch).
    pub fn expired(&self, at: i64) -> bool {
        self.expire_time.is_some_and(|t| t <= at)
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
        json!({
            "accessor": self.accessor,
            "creation_time": self.creation_time,
            "creation_ttl": self.ttl,
            "display_name": self.display_name,
            "entity_id": "",
            "expire_time": self.expire_time.map(fmt),
            "explicit_max_ttl": 0,
            "id": id.unwrap_or(""),
            "issue_time": fmt(self.creation_time),
            "meta": if self.meta.is_empty() { Value::Null } else { json!(self.meta) },
            "num_uses": self.num_uses,
            "orphan": self.parent.is_none(),
            "path": self.path,
            "policies": self.policies,
            "renewable": self.renewable,
            "ttl": ttl,
            "type": "service",
        })
    }
}

/// Hash under which a token is stored.
pub fn hash_token(token: &str) -> String {
    coffer_crypto::hash::sha256_hex(token.as_bytes())
}

/// Generates a new token string.
pub fn generate_token() -> Zeroizing<String> {
    Zeroizing::new(format!(
        "{TOKEN_PREFIX}{}",
        coffer_crypto::random::token_string(32)
    ))
}

/// Stores and looks up tokens.
#[derive(Clone)]
pub struct TokenStore {
    view: View,
}

impl TokenStore {
    /// A store over `view`.
    pub fn new(view: View) -> Self {
        TokenStore { view }
    }

    /// Creates a root token, with `id` when given (dev mode), else generated.
    pub async fn create_root(&self, id: Option<&str>) -> Result<Zeroizing<String>> {
        let token = match id {
            Some(i) if !i.is_empty() => Zeroizing::new(i.to_string()),
            _ => generate_token(),
        };
        let entry = TokenEntry {
            id_hash: hash_token(&token),
            accessor: coffer_crypto::random::token_string(24),
            policies: vec!["root".into()],
            parent: None,
            display_name: "root".into(),
            meta: BTreeMap::new(),
            num_uses: 0,
            creation_time: now().timestamp(),
            ttl: 0,
            expire_time: None,
            path: "auth/token/root".into(),
            renewable: false,
        };
        self.store(&entry).await?;
        Ok(token)
    }

    /// Writes an entry and its accessor index atomically.
    pub async fn store(&self, entry: &TokenEntry) -> Result<()> {
        self.view
            .write_batch(vec![
                BarrierOp::Put(format!("id/{}", entry.id_hash), to_json(entry)?),
                BarrierOp::Put(
                    format!("accessor/{}", entry.accessor),
                    to_json(&entry.id_hash)?,
                ),
            ])
            .await
    }

    /// Looks up a valid token; `None` if unknown or expired.
    pub async fn lookup(&self, token: &str) -> Result<Option<TokenEntry>> {
        if token.is_empty() {
            return Ok(None);
        }
        let entry: Option<TokenEntry> = self
            .view
            .get_json(&format!("id/{}", hash_token(token)))
            .await?;
        let at = now().timestamp();
        Ok(entry.filter(|e| !e.expired(at)))
    }

    /// Revokes a token by hash.
    pub async fn revoke_hash(&self, hash: &str) -> Result<()> {
        let entry: Option<TokenEntry> = self.view.get_json(&format!("id/{hash}")).await?;
        let Some(entry) = entry else {
            return Err(Error::bad("token not found"));
        };
        self.view
            .write_batch(vec![
                BarrierOp::Delete(format!("id/{hash}")),
                BarrierOp::Delete(format!("accessor/{}", entry.accessor)),
            ])
            .await
    }
}

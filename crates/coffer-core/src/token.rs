//! The token store: tokens kept only as hashes, looked up on every request.
//!
//! Layout inside its view: `id/<sha256(token)>` holds a [`TokenEntry`];
//! `accessor/<accessor>` holds the hash it points to. A token is
//! `cfs.` followed by 32 random URL-safe characters (192 bits), so it is
//! recognisable in leaks and by scanners. `parent/<parent hash>/<child hash>`
//! links a token to its children, so revoking a parent revokes its tree.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::barrier::{to_json, BarrierOp, View};
use crate::cache::ParsedCache;
use crate::util::{now, rfc3339};
use crate::Result;

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
            "explicit_max_ttl": self.explicit_max_ttl,
            "id": id.unwrap_or(""),
            "issue_time": fmt(self.creation_time),
            "meta": if self.meta.is_empty() { Value::Null } else { json!(self.meta) },
            "num_uses": self.num_uses,
            "orphan": self.parent.is_none(),
            "period": if self.period > 0 { json!(self.period) } else { Value::Null },
            "bound_cidrs": if self.bound_cidrs.is_empty() { Value::Null } else { json!(self.bound_cidrs) },
            "role": self.role.clone().unwrap_or_default(),
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
    /// Parsed entries by hash (no token, no secret: entries hold only hashes and metadata).
    parsed: std::sync::Arc<ParsedCache<TokenEntry>>,
    /// Serialises the read-modify-write of use counts.
    uses: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl TokenStore {
    /// A store over `view`.
    pub fn new(view: View) -> Self {
        TokenStore {
            view,
            parsed: std::sync::Arc::new(ParsedCache::default()),
            uses: std::sync::Arc::new(tokio::sync::Mutex::new(())),
        }
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
            explicit_max_ttl: 0,
            period: 0,
            max_expire_time: None,
            bound_cidrs: Vec::new(),
            role: None,
            uses_exhausted: false,
        };
        self.store(&entry).await?;
        Ok(token)
    }

    /// Writes a new entry, its accessor index and its parent link atomically.
    pub async fn store(&self, entry: &TokenEntry) -> Result<()> {
        let _w = self.parsed.begin_write(&entry.id_hash);
        let mut ops = vec![
            BarrierOp::Put(format!("id/{}", entry.id_hash), to_json(entry)?),
            BarrierOp::Put(
                format!("accessor/{}", entry.accessor),
                to_json(&entry.id_hash)?,
            ),
        ];
        if let Some(parent) = &entry.parent {
            ops.push(BarrierOp::Put(
                format!("parent/{parent}/{}", entry.id_hash),
                Zeroizing::new(b"{}".to_vec()),
            ));
        }
        self.view.write_batch(ops).await
    }

    /// Rewrites an existing entry (renewal, re-parenting). Use counts are
    /// only ever changed by [`TokenStore::take_use`]: the stored count is
    /// kept, so an update built from an older read cannot give uses back.
    pub async fn update(&self, entry: &TokenEntry) -> Result<()> {
        let _guard = self.uses.lock().await;
        let stored: Option<TokenEntry> = self
            .view
            .get_json(&format!("id/{}", entry.id_hash))
            .await?;
        let Some(stored) = stored else {
            // Revoked meanwhile: writing it back would resurrect it.
            return Ok(());
        };
        let mut entry = entry.clone();
        entry.num_uses = stored.num_uses;
        entry.uses_exhausted = stored.uses_exhausted;
        self.put_entry(&entry).await
    }

    async fn put_entry(&self, entry: &TokenEntry) -> Result<()> {
        let _w = self.parsed.begin_write(&entry.id_hash);
        self.view
            .put_json(&format!("id/{}", entry.id_hash), entry)
            .await
    }

    /// Looks up a valid token; `None` if unknown, expired or used up.
    pub async fn lookup(&self, token: &str) -> Result<Option<TokenEntry>> {
        if token.is_empty() {
            return Ok(None);
        }
        Ok(self
            .lookup_hash(&hash_token(token))
            .await?
            .filter(|e| !e.uses_exhausted))
    }

    /// Takes one use of a limited-use token, atomically with every other
    /// use: returns the entry as it stands after this use (with
    /// `uses_exhausted` set when this was the last), or `None` when the
    /// token is gone, expired or has no use left. Tokens without a use limit
    /// are returned unchanged.
    pub async fn take_use(&self, hash: &str) -> Result<Option<TokenEntry>> {
        let _guard = self.uses.lock().await;
        let Some(mut entry) = self.lookup_hash(hash).await? else {
            return Ok(None);
        };
        if entry.uses_exhausted {
            return Ok(None);
        }
        if entry.num_uses == 0 {
            return Ok(Some(entry));
        }
        entry.num_uses -= 1;
        if entry.num_uses == 0 {
            entry.uses_exhausted = true;
        }
        self.put_entry(&entry).await?;
        Ok(Some(entry))
    }

    /// Looks up a valid token by its hash.
    pub async fn lookup_hash(&self, hash: &str) -> Result<Option<TokenEntry>> {
        let at = now().timestamp();
        if let Some(e) = self.parsed.get(hash) {
            return Ok((!e.expired(at)).then(|| (*e).clone()));
        }
        let epoch = self.parsed.epoch();
        let entry: Option<TokenEntry> = self.view.get_json(&format!("id/{hash}")).await?;
        if let Some(e) = &entry {
            self.parsed
                .fill(hash, std::sync::Arc::new(e.clone()), epoch);
        }
        Ok(entry.filter(|e| !e.expired(at)))
    }

    /// Forgets parsed entries (on seal).
    pub fn clear_cache(&self) {
        self.parsed.clear();
    }

    /// Looks up a valid token by its accessor.
    pub async fn lookup_accessor(&self, accessor: &str) -> Result<Option<TokenEntry>> {
        if accessor.is_empty() || accessor.contains('/') {
            return Ok(None);
        }
        let hash: Option<String> = self.view.get_json(&format!("accessor/{accessor}")).await?;
        match hash {
            Some(h) => self.lookup_hash(&h).await,
            None => Ok(None),
        }
    }

    /// All accessors.
    pub async fn accessors(&self) -> Result<Vec<String>> {
        self.view.list("accessor/").await
    }

    /// Revokes a token and, depth first, every descendant. Returns the
    /// entries revoked so that the caller can revoke their leases too.
    pub async fn revoke_tree(&self, hash: &str) -> Result<Vec<TokenEntry>> {
        let mut revoked = Vec::new();
        let mut stack = vec![hash.to_string()];
        let mut order = Vec::new();
        while let Some(h) = stack.pop() {
            for child in self.view.list(&format!("parent/{h}/")).await? {
                stack.push(child.trim_end_matches('/').to_string());
            }
            order.push(h);
        }
        // Children first, so a crash midway never leaves a live child of a revoked parent.
        for h in order.into_iter().rev() {
            if let Some(e) = self.revoke_one(&h).await? {
                revoked.push(e);
            }
        }
        Ok(revoked)
    }

    /// Revokes only this token; its children become orphans.
    pub async fn revoke_orphan(&self, hash: &str) -> Result<Option<TokenEntry>> {
        for child in self.view.list(&format!("parent/{hash}/")).await? {
            let child = child.trim_end_matches('/');
            let entry: Option<TokenEntry> = self.view.get_json(&format!("id/{child}")).await?;
            if let Some(mut e) = entry {
                e.parent = None;
                self.update(&e).await?;
            }
        }
        self.revoke_one(hash).await
    }

    async fn revoke_one(&self, hash: &str) -> Result<Option<TokenEntry>> {
        // Under the uses lock, so a use taken concurrently cannot write the entry back.
        let _guard = self.uses.lock().await;
        let _w = self.parsed.begin_write(hash);
        let entry: Option<TokenEntry> = self.view.get_json(&format!("id/{hash}")).await?;
        let mut ops = vec![BarrierOp::Delete(format!("id/{hash}"))];
        let children = self
            .view
            .keys_with_prefix(&format!("parent/{hash}/"))
            .await?;
        ops.extend(children.into_iter().map(BarrierOp::Delete));
        if let Some(e) = &entry {
            ops.push(BarrierOp::Delete(format!("accessor/{}", e.accessor)));
            if let Some(p) = &e.parent {
                ops.push(BarrierOp::Delete(format!("parent/{p}/{hash}")));
            }
        }
        self.view.write_batch(ops).await?;
        Ok(entry)
    }

    /// Removes expired tokens (with their subtrees), dangling accessors and
    /// parent links. Returns how many tokens were removed.
    pub async fn tidy(&self) -> Result<usize> {
        let at = now().timestamp();
        let mut removed = 0;
        for key in self.view.list("id/").await? {
            let entry: Option<TokenEntry> = self.view.get_json(&format!("id/{key}")).await?;
            if let Some(e) = entry {
                if e.expired(at) || e.uses_exhausted {
                    removed += self.revoke_tree(&e.id_hash).await?.len();
                }
            }
        }
        for accessor in self.view.list("accessor/").await? {
            let hash: Option<String> = self.view.get_json(&format!("accessor/{accessor}")).await?;
            let live = match &hash {
                Some(h) => self.view.get(&format!("id/{h}")).await?.is_some(),
                None => false,
            };
            if !live {
                self.view.delete(&format!("accessor/{accessor}")).await?;
            }
        }
        for parent in self.view.list("parent/").await? {
            let parent = parent.trim_end_matches('/');
            if self.view.get(&format!("id/{parent}")).await?.is_none() {
                for child in self.view.list(&format!("parent/{parent}/")).await? {
                    let child = child.trim_end_matches('/');
                    let entry: Option<TokenEntry> =
                        self.view.get_json(&format!("id/{child}")).await?;
                    if let Some(e) = entry {
                        // A child whose parent vanished is revoked, as Vault's tidy does.
                        removed += self.revoke_tree(&e.id_hash).await?.len();
                    }
                }
                self.view
                    .delete_prefix(&format!("parent/{parent}/"))
                    .await?;
            }
        }
        Ok(removed)
    }

    /// Stores a token role.
    pub async fn put_role(&self, name: &str, role: &Value) -> Result<()> {
        self.view.put_json(&format!("role/{name}"), role).await
    }

    /// Reads a token role.
    pub async fn get_role(&self, name: &str) -> Result<Option<Value>> {
        self.view.get_json(&format!("role/{name}")).await
    }

    /// Deletes a token role.
    pub async fn delete_role(&self, name: &str) -> Result<()> {
        self.view.delete(&format!("role/{name}")).await
    }

    /// Names of token roles.
    pub async fn list_roles(&self) -> Result<Vec<String>> {
        self.view.list("role/").await
    }
}

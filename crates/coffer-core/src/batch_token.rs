//! Batch tokens: tokens that are never stored, as Vault's.
//!
//! A batch token is `cfb.` followed by the URL-safe base64 of an AES-256-GCM
//! sealed, compact copy of its entry (policies, parent, times, path, ...).
//! The key is a random 256-bit key kept in the token store's view (so it is
//! encrypted by the barrier, like everything stored, and survives restarts);
//! it is created on first use. Any node that can read the barrier can verify
//! a batch token without a storage write.
//!
//! The trade-off, as Vault's: a batch token cannot be revoked on its own,
//! renewed, used to create tokens, or looked up by accessor (it has none).
//! It ends at its TTL, or at once when its parent (if it is not an orphan)
//! is revoked or expires, since every lookup checks the parent is still
//! valid. Its dynamic leases are tracked by its parent (orphans: by nobody)
//! and capped at its expiry.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::barrier::View;
use crate::token::{hash_token, TokenEntry};
use crate::{Error, Result};

/// Prefix of every batch token.
pub const BATCH_PREFIX: &str = "cfb.";

/// Associated data of every sealed batch token (binds the ciphertext to its use).
const AAD: &[u8] = b"coffer batch token v1";

/// Where the key lives in the token store's view.
const KEY_PATH: &str = "batch-key";

/// Longest batch token accepted (far beyond any minted one).
const MAX_LEN: usize = 16 * 1024;

/// The sealed part of a batch token, with short field names to keep it small.
#[derive(Serialize, Deserialize)]
struct Payload {
    #[serde(rename = "p")]
    policies: Vec<String>,
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    parent: Option<String>,
    #[serde(rename = "d")]
    display_name: String,
    #[serde(rename = "m", default, skip_serializing_if = "BTreeMap::is_empty")]
    meta: BTreeMap<String, String>,
    #[serde(rename = "c")]
    creation_time: i64,
    #[serde(rename = "t")]
    ttl: u64,
    #[serde(rename = "x")]
    expire_time: i64,
    #[serde(rename = "o")]
    path: String,
    #[serde(rename = "b", default, skip_serializing_if = "Vec::is_empty")]
    bound_cidrs: Vec<String>,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    #[serde(rename = "e", default)]
    explicit_max_ttl: u64,
    #[serde(rename = "n", default, skip_serializing_if = "String::is_empty")]
    entity_id: String,
}

/// Seals and opens batch tokens with the store's batch key.
pub struct BatchKeys {
    view: View,
    key: parking_lot::Mutex<Option<Arc<coffer_crypto::aead::Key>>>,
    create: tokio::sync::Mutex<()>,
}

impl BatchKeys {
    /// Keys kept in `view` (the token store's).
    pub fn new(view: View) -> Self {
        BatchKeys {
            view,
            key: parking_lot::Mutex::new(None),
            create: tokio::sync::Mutex::new(()),
        }
    }

    /// Forgets the key held in memory (on seal).
    pub fn clear(&self) {
        *self.key.lock() = None;
    }

    /// The key; with `create`, made and stored when there is none yet.
    async fn key(&self, create: bool) -> Result<Option<Arc<coffer_crypto::aead::Key>>> {
        if let Some(k) = self.key.lock().clone() {
            return Ok(Some(k));
        }
        // One creator at a time, so two first tokens cannot store two keys.
        let _one = self.create.lock().await;
        if let Some(k) = self.key.lock().clone() {
            return Ok(Some(k));
        }
        let key = match self.view.get(KEY_PATH).await? {
            Some(bytes) => coffer_crypto::aead::Key::from_slice(&bytes)
                .map_err(|_| Error::corrupt("batch token key"))?,
            None if create => {
                let k = coffer_crypto::aead::Key::generate();
                self.view.put(KEY_PATH, k.as_bytes()).await?;
                k
            }
            None => return Ok(None),
        };
        let key = Arc::new(key);
        *self.key.lock() = Some(key.clone());
        Ok(Some(key))
    }

    /// Turns `entry` (built by the minting code, with an expiry) into a batch
    /// token; returns the token and the entry as lookups will see it.
    pub async fn seal(&self, entry: &TokenEntry) -> Result<(Zeroizing<String>, TokenEntry)> {
        let expire_time = entry
            .expire_time
            .ok_or_else(|| Error::bad("batch tokens must have a TTL"))?;
        let payload = Payload {
            policies: entry.policies.clone(),
            parent: entry.parent.clone(),
            display_name: entry.display_name.clone(),
            meta: entry.meta.clone(),
            creation_time: entry.creation_time,
            ttl: entry.ttl,
            expire_time,
            path: entry.path.clone(),
            bound_cidrs: entry.bound_cidrs.clone(),
            role: entry.role.clone(),
            explicit_max_ttl: entry.explicit_max_ttl,
            entity_id: entry.entity_id.clone(),
        };
        let plain = Zeroizing::new(
            serde_json::to_vec(&payload).map_err(|e| Error::encode("a batch token", e))?,
        );
        let key = self
            .key(true)
            .await?
            .ok_or_else(|| Error::Internal("no batch token key".into()))?;
        let sealed = key.seal(&plain, AAD);
        let token = Zeroizing::new(format!(
            "{BATCH_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed)
        ));
        let opened = to_entry(&token, payload);
        Ok((token, opened))
    }

    /// Opens a batch token; `None` when it is not one Coffer sealed. Does
    /// not check expiry or the parent: [`crate::token::TokenStore::lookup`] does.
    pub async fn open(&self, token: &str) -> Result<Option<TokenEntry>> {
        let Some(body) = token.strip_prefix(BATCH_PREFIX) else {
            return Ok(None);
        };
        if token.len() > MAX_LEN {
            return Ok(None);
        }
        let Ok(sealed) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body) else {
            return Ok(None);
        };
        let Some(key) = self.key(false).await? else {
            return Ok(None);
        };
        let Ok(plain) = key.open(&sealed, AAD) else {
            return Ok(None);
        };
        let Ok(payload) = serde_json::from_slice::<Payload>(&plain) else {
            return Ok(None);
        };
        Ok(Some(to_entry(token, payload)))
    }
}

fn to_entry(token: &str, p: Payload) -> TokenEntry {
    TokenEntry {
        id_hash: hash_token(token),
        // No accessor: that is what marks a batch token.
        accessor: String::new(),
        policies: p.policies,
        parent: p.parent,
        display_name: p.display_name,
        meta: p.meta,
        num_uses: 0,
        creation_time: p.creation_time,
        ttl: p.ttl,
        expire_time: Some(p.expire_time),
        path: p.path,
        renewable: false,
        explicit_max_ttl: p.explicit_max_ttl,
        period: 0,
        max_expire_time: Some(p.expire_time),
        bound_cidrs: p.bound_cidrs,
        role: p.role,
        uses_exhausted: false,
        entity_id: p.entity_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barrier::Barrier;

    fn keys() -> BatchKeys {
        let barrier = Arc::new(Barrier::new(Arc::new(coffer_storage::MemoryBackend::new())));
        barrier.unseal(coffer_crypto::Keyring::new(0));
        BatchKeys::new(View::new(barrier, "sys/token/"))
    }

    fn entry() -> TokenEntry {
        TokenEntry {
            id_hash: String::new(),
            accessor: String::new(),
            policies: vec!["default".into(), "p".into()],
            parent: Some("parenthash".into()),
            display_name: "token".into(),
            meta: BTreeMap::new(),
            num_uses: 0,
            creation_time: 100,
            ttl: 60,
            expire_time: Some(160),
            path: "auth/token/create".into(),
            renewable: false,
            explicit_max_ttl: 0,
            period: 0,
            max_expire_time: None,
            bound_cidrs: Vec::new(),
            role: None,
            uses_exhausted: false,
            entity_id: String::new(),
        }
    }

    #[tokio::test]
    async fn a_sealed_token_opens_and_a_tampered_one_does_not() {
        let k = keys();
        let (token, seen) = k.seal(&entry()).await.unwrap();
        assert!(token.starts_with(BATCH_PREFIX));
        let opened = k.open(&token).await.unwrap().expect("opens");
        assert_eq!(opened.policies, vec!["default", "p"]);
        assert_eq!(opened.parent.as_deref(), Some("parenthash"));
        assert_eq!(opened.id_hash, seen.id_hash);
        assert!(opened.is_batch());
        // Flip one character of the body: authentication fails.
        let mut bad = token.to_string();
        let last = bad.pop().unwrap();
        bad.push(if last == 'A' { 'B' } else { 'A' });
        assert!(k.open(&bad).await.unwrap().is_none());
        assert!(k.open("cfb.!!!").await.unwrap().is_none());
        assert!(k.open("cfs.abc").await.unwrap().is_none());
        // After a restart (key forgotten in memory), the stored key opens it.
        k.clear();
        assert!(k.open(&token).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn without_a_key_nothing_opens() {
        let k = keys();
        assert!(k.open("cfb.AAAA").await.unwrap().is_none());
    }
}

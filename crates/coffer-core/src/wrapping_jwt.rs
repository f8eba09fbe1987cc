//! Wrapping tokens as JWTs (Vault's `X-Vault-Wrap-Format: jwt`).
//!
//! The JWT is signed with ES512 by a P-521 key the store makes on first
//! use and keeps behind the barrier (`sys/token/wrapping-jwt-key`, PKCS#8).
//! Its claims are Vault's: `jti` (the wrapping token itself), `type`
//! (`wrapping`), `addr` (this node's `api_addr`), `accessor` (empty, as in
//! Vault), `iat`, `nbf` (five seconds before, for clock skew) and `exp`.
//!
//! Only `sys/wrapping/{lookup,unwrap,rewrap}` accept one, in the token
//! header or the `token` parameter: [`JwtKey::open`] checks the signature,
//! the type and the times, then the request goes on with the `jti` token,
//! which is still single-use and still checked as a wrapping token.

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P521_SHA512_FIXED,
    ECDSA_P521_SHA512_FIXED_SIGNING,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::barrier::View;
use crate::{Error, Result};

/// Where the signing key lives, in the token store's view.
pub const KEY_PATH: &str = "wrapping-jwt-key";

/// The JWT's protected header: always this one.
const HEADER: &str = r#"{"alg":"ES512","typ":"JWT"}"#;

/// Longest JWT looked at (a minted one is about 420 bytes).
const MAX_LEN: usize = 4096;

/// Seconds `nbf` lies before `iat`.
const SKEW: i64 = 5;

/// The claims of a wrapping JWT.
#[derive(Serialize, Deserialize)]
struct Claims {
    accessor: String,
    addr: String,
    exp: i64,
    iat: i64,
    jti: String,
    nbf: i64,
    #[serde(rename = "type")]
    kind: String,
}

/// The `jti` is the wrapping token itself: wiped when the claims go.
impl Drop for Claims {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.jti.zeroize();
    }
}

/// The header fields checked on the way in.
#[derive(Deserialize)]
struct Header {
    alg: String,
}

/// The store's wrapping-JWT key, loaded (or made) on first use.
pub struct JwtKey {
    view: View,
    key: parking_lot::Mutex<Option<Arc<EcdsaKeyPair>>>,
    create: tokio::sync::Mutex<()>,
}

/// Whether `token` has the shape of a JWT (three base64url parts); a
/// Coffer token never has.
pub fn looks_like_jwt(token: &str) -> bool {
    token.len() <= MAX_LEN && token.starts_with("eyJ") && token.matches('.').count() == 2
}

impl JwtKey {
    /// A key kept in `view` (the token store's).
    pub fn new(view: View) -> Self {
        JwtKey {
            view,
            key: parking_lot::Mutex::new(None),
            create: tokio::sync::Mutex::new(()),
        }
    }

    /// Forgets the key held in memory (on seal, or when another node made it).
    pub fn clear(&self) {
        *self.key.lock() = None;
    }

    async fn key(&self, create: bool) -> Result<Option<Arc<EcdsaKeyPair>>> {
        if let Some(k) = self.key.lock().clone() {
            return Ok(Some(k));
        }
        let _one = self.create.lock().await;
        if let Some(k) = self.key.lock().clone() {
            return Ok(Some(k));
        }
        let pkcs8: Zeroizing<Vec<u8>> = match self.view.get(KEY_PATH).await? {
            Some(bytes) => bytes,
            None if create => {
                let doc = EcdsaKeyPair::generate_pkcs8(
                    &ECDSA_P521_SHA512_FIXED_SIGNING,
                    &SystemRandom::new(),
                )
                .map_err(|_| Error::crypto_failed("generating the wrapping JWT key"))?;
                let bytes = Zeroizing::new(doc.as_ref().to_vec());
                self.view.put(KEY_PATH, &bytes).await?;
                bytes
            }
            None => return Ok(None),
        };
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P521_SHA512_FIXED_SIGNING, &pkcs8)
            .map_err(|_| Error::corrupt("wrapping JWT key"))?;
        let pair = Arc::new(pair);
        *self.key.lock() = Some(pair.clone());
        Ok(Some(pair))
    }

    /// The JWT standing for wrapping token `token`, issued at `iat` for
    /// `ttl` seconds by the node at `addr`.
    pub async fn issue(
        &self,
        token: &str,
        iat: i64,
        ttl: u64,
        addr: &str,
    ) -> Result<Zeroizing<String>> {
        let key = self
            .key(true)
            .await?
            .ok_or_else(|| Error::Internal("no wrapping JWT key".into()))?;
        let claims = Claims {
            accessor: String::new(),
            addr: addr.to_string(),
            exp: iat.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
            iat,
            jti: token.to_string(),
            nbf: iat - SKEW,
            kind: "wrapping".into(),
        };
        let body = Zeroizing::new(
            serde_json::to_vec(&claims).map_err(|e| Error::encode("the wrapping JWT claims", e))?,
        );
        let mut jwt = Zeroizing::new(format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(HEADER),
            URL_SAFE_NO_PAD.encode(&*body)
        ));
        let sig = key
            .sign(&SystemRandom::new(), jwt.as_bytes())
            .map_err(|_| Error::crypto_failed("signing the wrapping JWT"))?;
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(sig.as_ref()));
        Ok(jwt)
    }

    /// The wrapping token a JWT stands for, when the JWT is one this store
    /// signed, of type `wrapping` and valid at `now`; `None` otherwise.
    pub async fn open(&self, jwt: &str, now: i64) -> Result<Option<Zeroizing<String>>> {
        if !looks_like_jwt(jwt) {
            return Ok(None);
        }
        let Some(key) = self.key(false).await? else {
            return Ok(None);
        };
        let mut parts = jwt.splitn(3, '.');
        let (Some(h), Some(c), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
            return Ok(None);
        };
        let header: Option<Header> = URL_SAFE_NO_PAD
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if header.is_none_or(|h| h.alg != "ES512") {
            return Ok(None);
        }
        let Ok(sig) = URL_SAFE_NO_PAD.decode(s) else {
            return Ok(None);
        };
        let public = UnparsedPublicKey::new(&ECDSA_P521_SHA512_FIXED, key.public_key().as_ref());
        let signed = &jwt[..h.len() + 1 + c.len()];
        if public.verify(signed.as_bytes(), &sig).is_err() {
            return Ok(None);
        }
        let claims: Option<Claims> = URL_SAFE_NO_PAD
            .decode(c)
            .ok()
            .map(Zeroizing::new)
            .and_then(|b| serde_json::from_slice(&b).ok());
        Ok(claims
            .filter(|c| c.kind == "wrapping" && c.nbf <= now && now < c.exp)
            .map(|mut c| Zeroizing::new(std::mem::take(&mut c.jti))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barrier::Barrier;

    fn key() -> JwtKey {
        let barrier = Arc::new(Barrier::new(Arc::new(coffer_storage::MemoryBackend::new())));
        barrier.unseal(coffer_crypto::Keyring::new(0));
        JwtKey::new(View::new(barrier, "sys/token/"))
    }

    #[tokio::test]
    async fn a_jwt_opens_to_its_token_only_while_valid_and_untouched() {
        let k = key();
        let jwt = k
            .issue("cfs.wrapping", 1_000, 60, "https://coffer:8200")
            .await
            .unwrap();
        assert!(looks_like_jwt(&jwt));
        let open = |t: String, at: i64| {
            let k = &k;
            async move { k.open(&t, at).await.unwrap().map(|z| z.to_string()) }
        };
        assert_eq!(
            open(jwt.to_string(), 1_000).await.as_deref(),
            Some("cfs.wrapping")
        );
        assert_eq!(
            open(jwt.to_string(), 996).await.as_deref(),
            Some("cfs.wrapping")
        );
        assert_eq!(open(jwt.to_string(), 994).await, None, "before nbf");
        assert_eq!(open(jwt.to_string(), 1_060).await, None, "expired");
        // Claims swapped for others, keeping the signature: refused.
        let parts: Vec<&str> = jwt.split('.').collect();
        let forged = r#"{"accessor":"","addr":"","exp":99999999999,"iat":0,"jti":"cfs.other","nbf":0,"type":"wrapping"}"#;
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(forged),
            parts[2]
        );
        assert_eq!(open(forged, 1_000).await, None);
        // Another store's key signs nothing this one accepts.
        let other = key().issue("cfs.wrapping", 1_000, 60, "").await.unwrap();
        assert_eq!(open(other.to_string(), 1_000).await, None);
        // Another algorithm in the header: refused before any check.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            parts[1]
        );
        assert_eq!(open(none, 1_000).await, None);
        for junk in ["", "eyJ", "eyJ..", "eyJa.b.c", "cfs.abc"] {
            assert_eq!(open(junk.to_string(), 1_000).await, None, "{junk}");
        }
    }

    #[tokio::test]
    async fn the_key_is_made_once_and_survives_a_reload() {
        let k = key();
        let jwt = k.issue("cfs.t", 10, 60, "").await.unwrap();
        k.clear();
        assert!(k.open(&jwt, 20).await.unwrap().is_some());
        let stored = k.view.get(KEY_PATH).await.unwrap().expect("stored");
        let again = k.issue("cfs.u", 10, 60, "").await.unwrap();
        assert!(k.open(&again, 20).await.unwrap().is_some());
        assert_eq!(k.view.get(KEY_PATH).await.unwrap().unwrap(), stored);
    }
}

//! Issuers (Vault's multi-issuer model): a CA certificate, its chain and
//! the key that signs with it. Stored at `issuer/<id>`, keys at `key/<id>`,
//! the default at `config/issuers`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use x509_parser::prelude::*;

use super::keys::{Key, StoredKey};
use crate::engine::EngineCtx;
use crate::{Error, Result};

/// A stored issuer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredIssuer {
    /// Its id (a UUID).
    pub issuer_id: String,
    /// Its name (may be empty).
    #[serde(default)]
    pub issuer_name: String,
    /// The key that signs with it.
    pub key_id: String,
    /// The CA certificate, PEM.
    pub certificate: String,
    /// Its chain, itself first, then its parents (PEM each).
    pub ca_chain: Vec<String>,
}

/// `config/issuers`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IssuersConfig {
    /// The default issuer's id (empty: none).
    #[serde(default)]
    pub default: String,
}

/// A loaded issuer able to sign.
pub struct Signer {
    /// The issuer.
    pub issuer: StoredIssuer,
    /// Its key.
    pub key: Key,
}

impl Signer {
    /// The rcgen issuer over this issuer's certificate and key.
    pub fn rcgen(&self) -> Result<rcgen::Issuer<'static, &rcgen::KeyPair>> {
        rcgen::Issuer::from_ca_cert_pem(&self.issuer.certificate, self.key.pair())
            .map_err(|e| Error::crypto("loading the issuer certificate", e))
    }

    /// The issuer certificate's NotAfter (Unix seconds).
    pub fn not_after(&self) -> Result<i64> {
        Ok(super::store::facts(&self.issuer.certificate)?.1)
    }
}

/// The issuers config.
pub async fn config(ctx: &EngineCtx<'_>) -> Result<IssuersConfig> {
    Ok(ctx
        .view
        .get_json("config/issuers")
        .await?
        .unwrap_or_default())
}

/// Every issuer id.
pub async fn ids(ctx: &EngineCtx<'_>) -> Result<Vec<String>> {
    ctx.view.list("issuer/").await
}

/// Resolves `reference` (`default`, an id or a name) to an issuer.
pub async fn resolve(ctx: &EngineCtx<'_>, reference: &str) -> Result<Option<StoredIssuer>> {
    let reference = reference.trim();
    if reference.is_empty() || reference == "default" {
        let cfg = config(ctx).await?;
        if cfg.default.is_empty() {
            return Ok(None);
        }
        return ctx.view.get_json(&format!("issuer/{}", cfg.default)).await;
    }
    if reference.contains('/') {
        return Ok(None);
    }
    if let Some(i) = ctx
        .view
        .get_json::<StoredIssuer>(&format!("issuer/{reference}"))
        .await?
    {
        return Ok(Some(i));
    }
    for id in ids(ctx).await? {
        if let Some(i) = ctx
            .view
            .get_json::<StoredIssuer>(&format!("issuer/{id}"))
            .await?
        {
            if !i.issuer_name.is_empty() && i.issuer_name == reference {
                return Ok(Some(i));
            }
        }
    }
    Ok(None)
}

/// The issuer `reference` names with its key, or a 400 saying none exists.
pub async fn signer(ctx: &EngineCtx<'_>, reference: &str) -> Result<Signer> {
    let issuer = resolve(ctx, reference).await?.ok_or_else(|| {
        Error::bad(format!(
            "issuer {reference:?} does not exist: generate or import a CA first"
        ))
    })?;
    if issuer.key_id.is_empty() {
        return Err(Error::bad(format!(
            "issuer {reference:?} has no key in this mount and cannot sign"
        )));
    }
    let stored: StoredKey = ctx
        .view
        .get_json(&format!("key/{}", issuer.key_id))
        .await?
        .ok_or_else(|| Error::bad("the issuer's key is missing"))?;
    let key = stored.load()?;
    Ok(Signer { issuer, key })
}

/// Checks a name for an issuer or key: not `default`, no `/`, at most 128 characters.
pub fn check_name(field: &str, name: &str) -> Result<()> {
    if name == "default"
        || name.len() > 128
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(Error::bad(format!("invalid {field} {name:?}")));
    }
    Ok(())
}

/// Stores `key` and answers its id.
pub async fn put_key(ctx: &EngineCtx<'_>, key: &Key, name: &str) -> Result<String> {
    let id = coffer_crypto::random::uuid();
    let stored = StoredKey::of(key, id.clone(), name.to_string());
    ctx.view.put_json(&format!("key/{id}"), &stored).await?;
    Ok(id)
}

/// Stores a new issuer; it becomes the default when there is none.
pub async fn put_issuer(
    ctx: &EngineCtx<'_>,
    name: &str,
    key_id: &str,
    certificate: String,
    ca_chain: Vec<String>,
) -> Result<StoredIssuer> {
    if !name.is_empty() && resolve(ctx, name).await?.is_some() {
        return Err(Error::bad(format!(
            "issuer name {name:?} is already in use"
        )));
    }
    let issuer = StoredIssuer {
        issuer_id: coffer_crypto::random::uuid(),
        issuer_name: name.to_string(),
        key_id: key_id.to_string(),
        certificate,
        ca_chain,
    };
    ctx.view
        .put_json(&format!("issuer/{}", issuer.issuer_id), &issuer)
        .await?;
    let mut cfg = config(ctx).await?;
    let default_gone = cfg.default.is_empty()
        || ctx
            .view
            .get(&format!("issuer/{}", cfg.default))
            .await?
            .is_none();
    if default_gone {
        cfg.default = issuer.issuer_id.clone();
        ctx.view.put_json("config/issuers", &cfg).await?;
    }
    Ok(issuer)
}

/// Every PEM certificate in `text`, in order.
pub fn split_pem(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let tail = &rest[start..];
        let Some(end) = tail.find("-----END CERTIFICATE-----") else {
            break;
        };
        let end = end + "-----END CERTIFICATE-----".len();
        out.push(format!("{}\n", &tail[..end]));
        rest = &tail[end..];
    }
    out
}

/// The issuer as `issuer/:ref` answers it.
pub fn to_json(i: &StoredIssuer) -> Value {
    json!({
        "issuer_id": i.issuer_id,
        "issuer_name": i.issuer_name,
        "key_id": i.key_id,
        "certificate": i.certificate,
        "ca_chain": i.ca_chain,
        "manual_chain": null,
        "leaf_not_after_behavior": "err",
        "usage": "crl-signing,issuing-certificates,ocsp-signing,read-only",
        "revocation_signature_algorithm": "",
        "issuing_certificates": [],
        "crl_distribution_points": [],
        "delta_crl_distribution_points": [],
        "ocsp_servers": [],
        "revoked": false,
    })
}

/// Whether the PEM certificate is a CA (basicConstraints CA:TRUE).
pub fn is_ca(pem: &str) -> bool {
    let Ok((_, p)) = parse_x509_pem(pem.as_bytes()) else {
        return false;
    };
    let Ok((_, c)) = X509Certificate::from_der(&p.contents) else {
        return false;
    };
    matches!(c.basic_constraints(), Ok(Some(bc)) if bc.value.ca)
}

/// The DER SubjectPublicKeyInfo of a PEM certificate.
pub fn spki_of(pem: &str) -> Option<Vec<u8>> {
    let (_, p) = parse_x509_pem(pem.as_bytes()).ok()?;
    let (_, c) = X509Certificate::from_der(&p.contents).ok()?;
    Some(c.public_key().raw.to_vec())
}

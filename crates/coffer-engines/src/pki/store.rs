//! The certificate store: every certificate the mount signed (unless its
//! role says `no_store`) at `certs/<serial>`, revocations at
//! `revoked/<serial>`, both keyed by the serial in hyphen form.

use serde::{Deserialize, Serialize};
use x509_parser::prelude::*;

use crate::engine::EngineCtx;
use crate::{Error, Result};

/// A stored certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertEntry {
    /// PEM.
    pub certificate: String,
    /// The issuer that signed it.
    #[serde(default)]
    pub issuer_id: String,
    /// NotAfter, Unix seconds.
    pub not_after: i64,
    /// When it was revoked (Unix seconds), if it was.
    #[serde(default)]
    pub revocation_time: Option<i64>,
}

/// A revocation, kept until tidied.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Revoked {
    /// The serial, colon form.
    pub serial_number: String,
    /// The issuer that signed the certificate.
    pub issuer_id: String,
    /// When it was revoked (Unix seconds).
    pub revocation_time: i64,
    /// The certificate's NotAfter (Unix seconds).
    pub not_after: i64,
}

/// Canonical colon form of a serial given with colons or hyphens, any case.
pub fn normalize_serial(raw: &str) -> Result<String> {
    let s = raw.trim().to_ascii_lowercase().replace('-', ":");
    let ok = !s.is_empty()
        && s.len() <= 3 * 64
        && s.split(':')
            .all(|b| b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit()));
    if !ok {
        return Err(Error::bad(format!("invalid serial number {raw:?}")));
    }
    Ok(s)
}

/// The storage key part of a colon serial.
pub fn key_of(serial: &str) -> String {
    serial.replace(':', "-")
}

/// The colon serial of the raw serial bytes (leading zero octets removed).
pub fn serial_text(raw: &[u8]) -> String {
    let start = raw
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    raw[start..]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// What the store needs to know of a PEM certificate: serial, NotAfter.
pub fn facts(pem: &str) -> Result<(String, i64)> {
    let (_, p) =
        parse_x509_pem(pem.as_bytes()).map_err(|_| Error::bad("invalid certificate PEM"))?;
    let (_, c) =
        X509Certificate::from_der(&p.contents).map_err(|_| Error::bad("invalid certificate"))?;
    Ok((
        serial_text(c.raw_serial()),
        c.validity().not_after.timestamp(),
    ))
}

/// Stores `pem`, signed by `issuer_id`.
pub async fn put(ctx: &EngineCtx<'_>, pem: &str, issuer_id: &str) -> Result<String> {
    let (serial, not_after) = facts(pem)?;
    let entry = CertEntry {
        certificate: pem.to_string(),
        issuer_id: issuer_id.to_string(),
        not_after,
        revocation_time: None,
    };
    ctx.view
        .put_json(&format!("certs/{}", key_of(&serial)), &entry)
        .await?;
    Ok(serial)
}

/// The stored certificate with `serial` (colon form).
pub async fn get(ctx: &EngineCtx<'_>, serial: &str) -> Result<Option<CertEntry>> {
    ctx.view
        .get_json(&format!("certs/{}", key_of(serial)))
        .await
}

/// Every stored serial, colon form.
pub async fn list(ctx: &EngineCtx<'_>) -> Result<Vec<String>> {
    Ok(ctx
        .view
        .list("certs/")
        .await?
        .into_iter()
        .map(|k| k.replace('-', ":"))
        .collect())
}

/// Every revocation.
pub async fn revoked(ctx: &EngineCtx<'_>) -> Result<Vec<Revoked>> {
    let mut out = Vec::new();
    for k in ctx.view.list("revoked/").await? {
        if let Some(r) = ctx
            .view
            .get_json::<Revoked>(&format!("revoked/{k}"))
            .await?
        {
            out.push(r);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials() {
        assert_eq!(normalize_serial("0A-Bc-01").unwrap(), "0a:bc:01");
        assert_eq!(normalize_serial("0a:bc:01").unwrap(), "0a:bc:01");
        for bad in ["", "0a:b", "zz", "0a::01", "../x", "0a/01"] {
            assert!(normalize_serial(bad).is_err(), "{bad}");
        }
        assert_eq!(serial_text(&[0, 0x8a, 1]), "8a:01");
        assert_eq!(key_of("8a:01"), "8a-01");
    }
}

//! The `pki` rotator: a certificate secret reissued from a pki mount's role
//! the operator declared (`[rotator.NAME] type = "pki"`, mount, role, lead
//! time, grace period). The lifecycle record names the declaration and the
//! names to ask for (`common_name`, `alt_names`, `ip_sans`), which the
//! role's rules judge like any request's.
//!
//! - create: issue a certificate; it and its key are the pending version
//!   (`certificate`, `private_key`, `private_key_type`, `issuing_ca`,
//!   `ca_chain`, `serial_number`, `expiration`);
//! - set: nothing (the pending version is where it is used);
//! - test: the certificate is valid now, signed by `issuing_ca`, which is
//!   one of the mount's own issuers, its chain links up, and the private
//!   key is the certificate's;
//! - finish: the replaced certificate (if the mount issued it) is revoked
//!   after the grace period, by the pki mount's background work;
//! - rollback: the pending certificate is revoked at once.

use serde_json::{json, Map, Value};
use x509_parser::prelude::*;
use zeroize::Zeroize;

use super::registry::PkiRotator;
use super::rotators::StepInput;
use crate::engine::EngineCtx;
use crate::engines::EngineExt;
use crate::util::{now, Params};
use crate::{Error, Result};

/// Settings a lifecycle record may give the `pki` rotator.
pub const SETTINGS: [&str; 4] = ["name", "common_name", "alt_names", "ip_sans"];

/// Checks a record's settings (the names are judged by the role at issue).
pub fn validate(settings: &Map<String, Value>) -> Result<()> {
    let p = Params(settings);
    if p.str("common_name")?.unwrap_or("").trim().is_empty() {
        return Err(Error::bad(
            "rotation.settings.common_name is required for the pki rotator",
        ));
    }
    p.str_list("alt_names")?;
    p.str_list("ip_sans")?;
    Ok(())
}

/// Runs one step for the declared rotator `decl`.
pub async fn step(decl: &PkiRotator, input: &StepInput<'_>) -> Result<Option<Value>> {
    let router = input
        .router
        .ok_or_else(|| Error::Internal("the pki rotator needs the mount table".into()))?;
    let m = router
        .read()
        .get(&decl.mount)
        .cloned()
        .ok_or_else(|| Error::bad(format!("pki rotator: no mount at {}", decl.mount)))?;
    let pki = m
        .engine
        .as_pki()
        .ok_or_else(|| Error::bad(format!("pki rotator: {} is not a pki mount", decl.mount)))?;
    let ctx = EngineCtx {
        view: &m.view,
        mount: &m.entry,
        token: None,
    };
    let serial_of = |v: &Value| {
        v.get("serial_number")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    match input.step {
        "create" => {
            let p = Params(input.settings);
            let mut data = Map::new();
            data.insert(
                "common_name".into(),
                json!(p.str("common_name")?.unwrap_or("")),
            );
            if let Some(a) = p.str_list("alt_names")? {
                data.insert("alt_names".into(), json!(a));
            }
            if let Some(i) = p.str_list("ip_sans")? {
                data.insert("ip_sans".into(), json!(i));
            }
            if let Some(t) = decl.ttl {
                data.insert("ttl".into(), json!(t));
            }
            let issued = pki.issue_for(&ctx, &decl.role, &data).await?;
            let mut pending = Map::new();
            for k in [
                "certificate",
                "private_key",
                "private_key_type",
                "issuing_ca",
                "ca_chain",
                "serial_number",
                "expiration",
            ] {
                if let Some(v) = issued.get(k) {
                    pending.insert(k.into(), v.clone());
                }
            }
            Ok(Some(Value::Object(pending)))
        }
        "test" => {
            let anchors = pki.issuer_certificates(&ctx).await?;
            if let Err(e) = check(input.pending, &anchors) {
                if let Some(s) = serial_of(input.pending) {
                    if let Err(r) = pki.revoke_now(&ctx, &s).await {
                        tracing::warn!(error = %r, "could not revoke the failed pending certificate");
                    }
                }
                return Err(e);
            }
            Ok(None)
        }
        "finish" => {
            if let Some(old) = serial_of(input.current) {
                if pki.issued(&ctx, &old).await? {
                    let at = now().timestamp() + i64::try_from(decl.grace_period).unwrap_or(0);
                    pki.revoke_at(&ctx, &old, at).await?;
                }
            }
            Ok(None)
        }
        "rollback" => {
            if let Some(s) = serial_of(input.pending) {
                if pki.issued(&ctx, &s).await? {
                    pki.revoke_now(&ctx, &s).await?;
                }
            }
            Ok(None)
        }
        _ => Ok(None),
    }
}

fn der_of(pem: &str) -> Result<Vec<u8>> {
    let (_, p) = parse_x509_pem(pem.as_bytes())
        .map_err(|_| Error::bad("the pending version holds no PEM certificate"))?;
    Ok(p.contents)
}

/// The test step's checks of a pending certificate against the mount's issuers.
pub fn check(pending: &Value, anchors: &[String]) -> Result<()> {
    let field = |k: &str| {
        pending
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::bad(format!("the pending version has no {k}")))
    };
    let cert_der = der_of(field("certificate")?)?;
    let ca_pem = field("issuing_ca")?;
    let ca_der = der_of(ca_pem)?;
    let (_, cert) = X509Certificate::from_der(&cert_der)
        .map_err(|_| Error::bad("the pending certificate cannot be parsed"))?;
    let (_, ca) = X509Certificate::from_der(&ca_der)
        .map_err(|_| Error::bad("the pending issuing_ca cannot be parsed"))?;
    // The anchor is the mount's, never what the pending value says.
    let anchored = anchors
        .iter()
        .filter_map(|a| der_of(a).ok())
        .any(|a| a == ca_der);
    if !anchored {
        return Err(Error::bad(
            "the pending certificate's issuing_ca is not an issuer of the pki mount",
        ));
    }
    cert.verify_signature(Some(ca.public_key()))
        .map_err(|_| Error::bad("the pending certificate is not signed by its issuing_ca"))?;
    let t = now().timestamp();
    let v = cert.validity();
    if v.not_before.timestamp() > t || v.not_after.timestamp() <= t {
        return Err(Error::bad("the pending certificate is not valid now"));
    }
    // Each chain link is signed by the next.
    if let Some(chain) = pending.get("ca_chain").and_then(Value::as_array) {
        let ders: Vec<Vec<u8>> = chain
            .iter()
            .filter_map(Value::as_str)
            .map(der_of)
            .collect::<Result<_>>()?;
        for pair in ders.windows(2) {
            let (_, child) = X509Certificate::from_der(&pair[0])
                .map_err(|_| Error::bad("the pending ca_chain cannot be parsed"))?;
            let (_, parent) = X509Certificate::from_der(&pair[1])
                .map_err(|_| Error::bad("the pending ca_chain cannot be parsed"))?;
            child
                .verify_signature(Some(parent.public_key()))
                .map_err(|_| Error::bad("the pending ca_chain does not link up"))?;
        }
    }
    let mut key = rcgen::KeyPair::from_pem(field("private_key")?)
        .map_err(|_| Error::bad("the pending private key cannot be read"))?;
    let matches = rcgen::PublicKeyData::subject_public_key_info(&key) == cert.public_key().raw;
    key.zeroize();
    if !matches {
        return Err(Error::bad(
            "the pending private key is not the certificate's",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, IsCa, Issuer, KeyPair};

    fn ca(name: &str) -> (String, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, name.to_string());
        (p.self_signed(&key).unwrap().pem(), key)
    }

    fn leaf(ca_pem: &str, ca_key: &KeyPair) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_ca_cert_pem(ca_pem, ca_key).unwrap();
        let mut p = CertificateParams::new(vec!["app.example.com".to_string()]).unwrap();
        p.not_before = ::time::OffsetDateTime::now_utc() - ::time::Duration::minutes(1);
        p.not_after = ::time::OffsetDateTime::now_utc() + ::time::Duration::hours(1);
        (
            p.signed_by(&key, &issuer).unwrap().pem(),
            key.serialize_pem(),
        )
    }

    #[test]
    fn the_test_step_trusts_only_the_mounts_issuers() {
        let (mount_ca, mount_key) = ca("mount");
        let (cert, key) = leaf(&mount_ca, &mount_key);
        let good = json!({"certificate": cert, "private_key": key, "issuing_ca": mount_ca, "ca_chain": [mount_ca]});
        assert!(check(&good, std::slice::from_ref(&mount_ca)).is_ok());
        // A pending value that brings its own CA is refused.
        let (own_ca, own_key) = ca("mount");
        let (cert2, key2) = leaf(&own_ca, &own_key);
        let forged = json!({"certificate": cert2, "private_key": key2, "issuing_ca": own_ca});
        let e = check(&forged, std::slice::from_ref(&mount_ca)).unwrap_err();
        assert!(
            e.to_string().contains("not an issuer of the pki mount"),
            "{e}"
        );
        // Claiming the mount's CA as issuer does not make a foreign signature good.
        let lying = json!({"certificate": cert2, "private_key": key2, "issuing_ca": mount_ca});
        assert!(check(&lying, std::slice::from_ref(&mount_ca)).is_err());
        // A key that is not the certificate's is refused.
        let wrong_key = json!({"certificate": cert, "private_key": key2, "issuing_ca": mount_ca});
        let e = check(&wrong_key, std::slice::from_ref(&mount_ca)).unwrap_err();
        assert!(e.to_string().contains("not the certificate's"), "{e}");
        assert!(check(&json!({}), &[mount_ca]).is_err());
    }
}

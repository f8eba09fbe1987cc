//! `sign`, `verify` (signatures and HMACs) and `hmac`, single or
//! `batch_input`, in Vault's shapes.

use base64::Engine as _;
use serde_json::{Map, Value};

use super::crypt::{answer, items, run_items, split_named, OnItemError};
use super::material::{self, Hash, RsaPadding, SignParams};
use super::policy::{decode_b64, KeyType, Policy, B64};
use super::Transit;
use crate::engine::EngineCtx;
use crate::util::Params;
use crate::{Error, Request, Response, Result};

/// The hash named in the path (which wins) or by `field` in the body.
fn hash_of(top: &Params<'_>, tail: Option<&str>, field: &str) -> Result<Hash> {
    let name = match tail {
        Some(t) => t,
        None => top.str(field)?.unwrap_or("sha2-256"),
    };
    Hash::parse(name).ok_or_else(|| {
        if field == "algorithm" {
            Error::bad(format!("unsupported algorithm {name}"))
        } else {
            Error::bad(format!("invalid hash algorithm {name:?}"))
        }
    })
}

fn sign_params(top: &Params<'_>, tail: Option<&str>, kind: KeyType) -> Result<SignParams> {
    let hash = hash_of(top, tail, "hash_algorithm")?;
    let padding = match top.str("signature_algorithm")?.unwrap_or("") {
        "" | "pss" => RsaPadding::Pss,
        "pkcs1v15" => RsaPadding::Pkcs1v15,
        other if kind.is_rsa() => {
            return Err(Error::bad(format!(
                "unsupported rsa signature algorithm {other}"
            )))
        }
        _ => RsaPadding::Pss,
    };
    // Coffer's PSS salt is the hash's length (Go's "hash", -1); "auto"
    // (Vault's default) is accepted and signs the same way.
    match top.0.get("salt_length") {
        None | Some(Value::Null) => {}
        Some(Value::String(v)) if matches!(v.as_str(), "" | "auto" | "hash" | "-1") => {}
        Some(Value::Number(n)) if n.as_i64() == Some(-1) => {}
        Some(_) => {
            return Err(Error::bad(
                "salt_length other than auto or hash is not supported by Coffer's transit engine",
            ))
        }
    }
    match top.str("marshaling_algorithm")?.unwrap_or("asn1") {
        "asn1" => {}
        "jws" => {
            return Err(Error::bad(
                "marshaling algorithm jws is not supported by Coffer's transit engine",
            ))
        }
        other => {
            return Err(Error::bad(format!(
                "unsupported marshaling algorithm {other}"
            )))
        }
    }
    Ok(SignParams {
        hash,
        prehashed: top.bool("prehashed")?.unwrap_or(false),
        padding,
    })
}

fn input_of(item: &Params<'_>) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    decode_b64(item.str("input")?.unwrap_or(""))
        .map_err(|e| Error::bad(format!("unable to decode input as base64: {e}")))
}

fn check_context(p: &Policy, item: &Params<'_>) -> Result<()> {
    if p.derived && item.str("context")?.is_none_or(|c| c.is_empty()) {
        return Err(Error::bad("missing 'context' for key derivation"));
    }
    Ok(())
}

pub(super) async fn sign(
    t: &Transit,
    ctx: &EngineCtx<'_>,
    req: &Request,
    name: &str,
    tail: Option<&str>,
) -> Result<Response> {
    let top = Params(&req.data);
    let (items, batch) = items(req)?;
    let Some(p) = t.get(ctx, name).await? else {
        return Err(Error::bad("signing key not found"));
    };
    if !p.kind.supports_signing() {
        return Err(Error::bad(format!(
            "key type {} does not support signing",
            p.kind.name()
        )));
    }
    let params = sign_params(&top, tail, p.kind)?;
    let (ver, _) = p.for_encryption(top.u64("key_version")?.unwrap_or(0))?;
    let outcomes = run_items(&p, &items, move |p, item| {
        let item = Params(item);
        check_context(p, &item)?;
        let input = input_of(&item)?;
        let v = p
            .versions
            .get(&ver)
            .ok_or_else(|| Error::bad("no such key version"))?;
        let sig = material::sign(p.kind, &v.key, &input, &params)?;
        let mut m = Map::new();
        m.insert("key_version".into(), ver.into());
        m.insert(
            "signature".into(),
            format!("vault:v{ver}:{}", B64.encode(sig)).into(),
        );
        Ok(m)
    })
    .await?;
    let mut error_fields = Map::new();
    error_fields.insert("key_version".into(), 0.into());
    answer(&items, outcomes, batch, OnItemError::Ok, &error_fields)
}

/// Renames the ciphertext wording of the policy's version errors.
fn as_signature_error(e: Error, what: &str) -> Error {
    match e {
        Error::BadRequest(m) => Error::BadRequest(m.replace("invalid ciphertext", what)),
        other => other,
    }
}

fn verify_signature(p: &Policy, item: &Params<'_>, sig: &str, params: &SignParams) -> Result<bool> {
    if !p.kind.supports_signing() {
        return Err(Error::bad(format!(
            "key type {} does not support verification",
            p.kind.name()
        )));
    }
    check_context(p, item)?;
    let input = input_of(item)?;
    let (ver, body) = split_named(sig, "signature")?;
    let (_, v) = p
        .for_decryption(ver)
        .map_err(|e| as_signature_error(e, "invalid signature"))?;
    let sig = decode_b64(body).map_err(|_| Error::bad("invalid base64 signature value"))?;
    material::verify(p.kind, &v.key, &input, &sig, params)
}

fn hmac_key(p: &Policy, ver: u32) -> Result<&[u8]> {
    let v = p
        .versions
        .get(&ver)
        .ok_or_else(|| Error::bad("no such key version"))?;
    Ok(if p.kind == KeyType::Hmac {
        &v.key
    } else {
        &v.hmac_key
    })
}

fn verify_hmac(p: &Policy, item: &Params<'_>, mac: &str, hash: Hash) -> Result<bool> {
    let input = input_of(item)?;
    let Some(rest) = mac.strip_prefix("vault:v") else {
        return Err(Error::bad("invalid HMAC to verify: no prefix"));
    };
    let Some((ver, body)) = rest.split_once(':') else {
        return Err(Error::bad("invalid HMAC: wrong number of fields"));
    };
    let ver: i64 = ver
        .parse()
        .map_err(|_| Error::bad("invalid HMAC: version number could not be decoded"))?;
    let expected =
        decode_b64(body).map_err(|_| Error::bad("unable to decode verification HMAC as base64"))?;
    if ver > i64::from(p.latest_version) {
        return Err(Error::bad("invalid HMAC: version is too new"));
    }
    if ver < i64::from(p.min_decryption_version) {
        return Err(Error::bad(
            "cannot verify HMAC: version is too old (disallowed by policy)",
        ));
    }
    // min_decryption_version <= ver <= latest_version.
    let key = hmac_key(p, ver as u32)?;
    let actual = material::hmac_sign(hash, key, &input);
    Ok(coffer_crypto::hash::constant_time_eq(&actual, &expected))
}

pub(super) async fn verify(
    t: &Transit,
    ctx: &EngineCtx<'_>,
    req: &Request,
    name: &str,
    tail: Option<&str>,
) -> Result<Response> {
    let top = Params(&req.data);
    let (items, batch) = items(req)?;
    let Some(p) = t.get(ctx, name).await? else {
        return Err(Error::bad("signature verification key not found"));
    };
    let hash = hash_of(&top, tail, "hash_algorithm")?;
    let params = if p.kind.supports_signing() {
        Some(sign_params(&top, tail, p.kind)?)
    } else {
        None
    };
    if !batch {
        let item = Params(&req.data);
        let valid = match (item.str("signature")?, item.str("hmac")?) {
            (Some(sig), _) => match &params {
                Some(params) => verify_signature(&p, &item, sig, params)?,
                None => {
                    return Err(Error::bad(format!(
                        "key type {} does not support verification",
                        p.kind.name()
                    )))
                }
            },
            (None, Some(mac)) => verify_hmac(&p, &item, mac, hash)?,
            (None, None) => {
                return Err(Error::bad(
                    "neither a 'signature' nor an 'hmac' were given to verify",
                ))
            }
        };
        return Ok(Response::data(serde_json::json!({ "valid": valid })));
    }
    let outcomes = run_items(&p, &items, move |p, item| {
        let item = Params(item);
        let valid = match (item.str("signature")?, item.str("hmac")?) {
            (Some(sig), _) => match &params {
                Some(params) => verify_signature(p, &item, sig, params)?,
                None => {
                    return Err(Error::bad(format!(
                        "key type {} does not support verification",
                        p.kind.name()
                    )))
                }
            },
            (None, Some(mac)) => verify_hmac(p, &item, mac, hash)?,
            (None, None) => return Err(Error::bad("missing signature or hmac to verify")),
        };
        let mut m = Map::new();
        // Vault's batch items leave out a false `valid`.
        if valid {
            m.insert("valid".into(), Value::Bool(true));
        }
        Ok(m)
    })
    .await?;
    answer(&items, outcomes, batch, OnItemError::Ok, &Map::new())
}

pub(super) async fn hmac(
    t: &Transit,
    ctx: &EngineCtx<'_>,
    req: &Request,
    name: &str,
    tail: Option<&str>,
) -> Result<Response> {
    let top = Params(&req.data);
    let (items, batch) = items(req)?;
    let Some(p) = t.get(ctx, name).await? else {
        return Err(Error::bad("encryption key not found"));
    };
    let hash = hash_of(&top, tail, "algorithm")?;
    let requested = top.u64("key_version")?.unwrap_or(0);
    let ver = if requested == 0 {
        p.latest_version
    } else if requested > u64::from(p.latest_version) {
        return Err(Error::bad("invalid key version"));
    } else {
        // requested <= latest_version, a u32.
        requested as u32
    };
    if p.min_encryption_version > 0 && ver < p.min_encryption_version {
        return Err(Error::bad(
            "cannot generate HMAC: version is too old (disallowed by policy)",
        ));
    }
    hmac_key(&p, ver)?;
    let outcomes = run_items(&p, &items, move |p, item| {
        let input = input_of(&Params(item))?;
        let mac = material::hmac_sign(hash, hmac_key(p, ver)?, &input);
        let mut m = Map::new();
        m.insert(
            "hmac".into(),
            format!("vault:v{ver}:{}", B64.encode(mac)).into(),
        );
        Ok(m)
    })
    .await?;
    answer(&items, outcomes, batch, OnItemError::Ok, &Map::new())
}

//! `encrypt`, `decrypt`, `rewrap` and `datakey`, single or `batch_input`,
//! with Vault's ciphertext form `vault:v<N>:<base64>` and its messages.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use super::material;
use super::policy::{decode_b64, KeyType, Policy, B64};
use super::Transit;
use crate::engine::EngineCtx;
use crate::util::Params;
use crate::{Error, Operation, Request, Response, Result};

/// The prefix of every ciphertext, signature and HMAC.
const PREFIX: &str = "vault:v";

/// The request's items: its `batch_input`, or the request itself; and
/// whether it was a batch.
pub(super) fn items(req: &Request) -> Result<(Vec<Map<String, Value>>, bool)> {
    match req.data.get("batch_input") {
        None | Some(Value::Null) => Ok((vec![req.data.clone()], false)),
        Some(Value::Array(list)) => {
            if list.is_empty() {
                return Err(Error::bad("missing batch input to process"));
            }
            let items = list
                .iter()
                .map(|v| match v {
                    Value::Object(m) => Ok(m.clone()),
                    _ => Err(Error::bad(
                        "failed to parse batch input: expected a list of objects",
                    )),
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((items, true))
        }
        Some(_) => Err(Error::bad(
            "failed to parse batch input: expected a list of objects",
        )),
    }
}

/// One item's outcome: its fields, or an error.
pub(super) type Outcome = std::result::Result<Map<String, Value>, Error>;

/// How a batch with failed items answers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum OnItemError {
    /// 400 (500 if only internal errors) with the results, as encrypt and decrypt.
    Status,
    /// 200 with the errors in the results, as sign, verify, hmac and rewrap.
    Ok,
}

/// The answer for `outcomes`: the single item's fields or its error, or
/// `batch_results` (each with its `reference`). `on_error` adds fields an
/// errored item still shows (Vault's zero values).
pub(super) fn answer(
    items: &[Map<String, Value>],
    outcomes: Vec<Outcome>,
    batch: bool,
    mode: OnItemError,
    error_fields: &Map<String, Value>,
) -> Result<Response> {
    if !batch {
        let Some(outcome) = outcomes.into_iter().next() else {
            return Err(Error::Internal(
                "transit: a single request gave no outcome".into(),
            ));
        };
        return outcome.map(|m| Response::data(Value::Object(m)));
    }
    let (mut user_error, mut internal_error) = (false, false);
    let mut results = Vec::with_capacity(outcomes.len());
    for (item, outcome) in items.iter().zip(outcomes) {
        let mut m = match outcome {
            Ok(m) => m,
            Err(e) => {
                if e.status() >= 500 {
                    internal_error = true;
                } else {
                    user_error = true;
                }
                let mut m = error_fields.clone();
                let msg = if e.status() >= 500 {
                    "internal error".to_string()
                } else {
                    e.to_string()
                };
                m.insert("error".into(), msg.into());
                m
            }
        };
        let reference = item
            .get("reference")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        m.insert("reference".into(), reference.into());
        results.push(Value::Object(m));
    }
    let resp = Response::data(json!({ "batch_results": results }));
    Ok(match mode {
        OnItemError::Status if user_error => resp.with_status(400),
        OnItemError::Status if internal_error => resp.with_status(500),
        _ => resp,
    })
}

/// Items past which a batch runs on a blocking thread, not the runtime.
const INLINE_ITEMS: usize = 64;

/// Runs `f` over `items`: inline for a few fast items, on a blocking
/// thread for RSA keys (milliseconds each) and large batches, so crypto
/// never holds up the async runtime for long.
pub(super) async fn run_items<F>(
    p: &Arc<Policy>,
    items: &[Map<String, Value>],
    f: F,
) -> Result<Vec<Outcome>>
where
    F: Fn(&Policy, &Map<String, Value>) -> Outcome + Send + 'static,
{
    if !p.kind.is_rsa() && items.len() <= INLINE_ITEMS {
        return Ok(items.iter().map(|i| f(p, i)).collect());
    }
    let p = p.clone();
    let items = items.to_vec();
    tokio::task::spawn_blocking(move || items.iter().map(|i| f(&p, i)).collect())
        .await
        .map_err(|_| Error::Stopped("the transit worker"))
}

/// The key material for one operation: the version's key, or for a
/// derived key the one derived from the item's `context`.
fn op_key(p: &Policy, key: &[u8], item: &Params<'_>) -> Result<Zeroizing<Vec<u8>>> {
    if !p.derived {
        return Ok(Zeroizing::new(key.to_vec()));
    }
    let context = match item.str("context")? {
        Some(c) if !c.is_empty() => {
            decode_b64(c).map_err(|_| Error::bad("failed to base64-decode context"))?
        }
        _ => {
            return Err(Error::bad(
                "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key",
            ))
        }
    };
    material::derive(key, &context)
}

/// The item's `associated_data`, for AEAD keys only.
fn associated_data(p: &Policy, item: &Params<'_>) -> Result<Zeroizing<Vec<u8>>> {
    match item.str("associated_data")? {
        Some(a) if !a.is_empty() => {
            if !p.kind.is_aead() {
                return Err(Error::bad(format!(
                    "associated data is not supported for key type {}",
                    p.kind.name()
                )));
            }
            decode_b64(a).map_err(|_| Error::bad("failed to base64-decode associated_data"))
        }
        _ => Ok(Zeroizing::new(Vec::new())),
    }
}

/// Encrypts `plaintext` for one item: `(ciphertext, version)`.
fn seal(p: &Policy, item: &Params<'_>, plaintext: &[u8]) -> Result<(String, u32)> {
    if !p.kind.supports_encryption() {
        return Err(Error::bad(format!(
            "message encryption not supported for key type {}",
            p.kind.name()
        )));
    }
    let (ver, v) = p.for_encryption(item.u64("key_version")?.unwrap_or(0))?;
    let key = op_key(p, &v.key, item)?;
    let aad = associated_data(p, item)?;
    let sealed = material::encrypt(p.kind, &key, plaintext, &aad)?;
    Ok((format!("{PREFIX}{ver}:{}", B64.encode(sealed)), ver))
}

/// Splits `vault:v<N>:<rest>` into the version and the rest, with Vault's
/// messages; the version's limits are checked by the policy.
pub(super) fn split_versioned(value: &str) -> Result<(i64, &str)> {
    split_named(value, "ciphertext")
}

/// [`split_versioned`] for a `what` (`ciphertext`, `signature`, `HMAC`).
pub(super) fn split_named<'a>(value: &'a str, what: &str) -> Result<(i64, &'a str)> {
    let Some(rest) = value.strip_prefix(PREFIX) else {
        return Err(Error::bad(format!("invalid {what}: no prefix")));
    };
    let Some((ver, body)) = rest.split_once(':') else {
        return Err(Error::bad(format!(
            "invalid {what}: wrong number of fields"
        )));
    };
    let ver = ver.parse::<i64>().map_err(|_| {
        Error::bad(format!(
            "invalid {what}: version number could not be decoded"
        ))
    })?;
    Ok((ver, body))
}

/// Decrypts one item's `ciphertext`: `(plaintext, version)`.
fn open(p: &Policy, item: &Params<'_>) -> Result<(Zeroizing<Vec<u8>>, u32)> {
    let Some(ct) = item.str("ciphertext")?.filter(|c| !c.is_empty()) else {
        return Err(Error::bad("missing ciphertext to decrypt"));
    };
    if !p.kind.supports_encryption() {
        return Err(Error::bad(format!(
            "message decryption not supported for key type {}",
            p.kind.name()
        )));
    }
    let (ver, body) = split_versioned(ct)?;
    let (ver, v) = p.for_decryption(ver)?;
    let sealed =
        decode_b64(body).map_err(|_| Error::bad("invalid ciphertext: could not decode base64"))?;
    let key = op_key(p, &v.key, item)?;
    let aad = associated_data(p, item)?;
    Ok((material::decrypt(p.kind, &key, &sealed, &aad)?, ver))
}

/// The key for encrypt, made first when the request is a `create` (Vault's
/// upsert: the path's existence check found no key).
async fn key_for_encrypt(
    t: &Transit,
    ctx: &EngineCtx<'_>,
    req: &Request,
    name: &str,
    items: &[Map<String, Value>],
) -> Result<Arc<Policy>> {
    if let Some(p) = t.get(ctx, name).await? {
        return Ok(p);
    }
    if req.operation != Operation::Create {
        return Err(Error::bad("encryption key not found"));
    }
    let top = Params(&req.data);
    let kind_name = top.str("type")?.unwrap_or("aes256-gcm96");
    let kind = match KeyType::parse(kind_name) {
        Some(k) if k.is_aead() => k,
        _ => return Err(Error::bad(format!("unknown key type {kind_name}"))),
    };
    let derived = items.iter().any(|i| {
        i.get("context")
            .and_then(Value::as_str)
            .is_some_and(|c| !c.is_empty())
    });
    let _g = t.write.lock().await;
    if let Some(p) = t.load_locked(ctx, name).await? {
        return Ok(p);
    }
    // Vault's upsert takes only the type, derivation and convergence.
    let mut create = Map::new();
    if let Some(c) = req.data.get("convergent_encryption") {
        create.insert("convergent_encryption".into(), c.clone());
    }
    let policy = super::keys::new_policy(name, kind, &Params(&create), derived).await?;
    t.store_locked(ctx, policy).await
}

pub(super) async fn encrypt(
    t: &Transit,
    ctx: &EngineCtx<'_>,
    req: &Request,
    name: &str,
) -> Result<Response> {
    let (items, batch) = items(req)?;
    let p = key_for_encrypt(t, ctx, req, name, &items).await?;
    let outcomes = run_items(&p, &items, move |p, item| {
        let item = Params(item);
        let plaintext = match item.str("plaintext")? {
            Some(s) => decode_b64(s).map_err(Error::bad)?,
            None => return Err(Error::bad("missing plaintext to encrypt")),
        };
        let (ct, ver) = seal(p, &item, &plaintext)?;
        let mut m = Map::new();
        m.insert("ciphertext".into(), ct.into());
        m.insert("key_version".into(), ver.into());
        Ok(m)
    })
    .await?;
    answer(&items, outcomes, batch, OnItemError::Status, &Map::new())
}

pub(super) async fn decrypt(
    t: &Transit,
    ctx: &EngineCtx<'_>,
    req: &Request,
    name: &str,
) -> Result<Response> {
    let (items, batch) = items(req)?;
    let Some(p) = t.get(ctx, name).await? else {
        return Err(Error::bad("encryption key not found"));
    };
    let outcomes = run_items(&p, &items, move |p, item| {
        let (plain, _) = open(p, &Params(item))?;
        let mut m = Map::new();
        m.insert("plaintext".into(), B64.encode(plain.as_slice()).into());
        Ok(m)
    })
    .await?;
    let mut error_fields = Map::new();
    error_fields.insert("plaintext".into(), "".into());
    answer(&items, outcomes, batch, OnItemError::Status, &error_fields)
}

pub(super) async fn rewrap(
    t: &Transit,
    ctx: &EngineCtx<'_>,
    req: &Request,
    name: &str,
) -> Result<Response> {
    let (items, batch) = items(req)?;
    let Some(p) = t.get(ctx, name).await? else {
        return Err(Error::bad("encryption key not found"));
    };
    let outcomes = run_items(&p, &items, move |p, item| {
        let item = Params(item);
        let (plain, _) = open(p, &item)?;
        let (ct, ver) = seal(p, &item, &plain)?;
        let mut m = Map::new();
        m.insert("ciphertext".into(), ct.into());
        m.insert("key_version".into(), ver.into());
        Ok(m)
    })
    .await?;
    answer(&items, outcomes, batch, OnItemError::Ok, &Map::new())
}

pub(super) async fn datakey(
    t: &Transit,
    ctx: &EngineCtx<'_>,
    req: &Request,
    kind: &str,
    name: &str,
) -> Result<Response> {
    let with_plaintext = match kind {
        "plaintext" => true,
        "wrapped" => false,
        _ => return Err(Error::bad("Invalid path, must be 'plaintext' or 'wrapped'")),
    };
    let Some(p) = t.get(ctx, name).await? else {
        return Err(Error::bad("encryption key not found"));
    };
    let params = Params(&req.data);
    let bits = params.u64("bits")?.unwrap_or(256);
    if !matches!(bits, 128 | 256 | 512) {
        return Err(Error::bad("invalid bit length"));
    }
    // bits is 128, 256 or 512.
    let new_key = Zeroizing::new(coffer_crypto::random::bytes((bits / 8) as usize));
    let (ct, ver) = seal(&p, &params, &new_key)?;
    let mut data = Map::new();
    data.insert("ciphertext".into(), ct.into());
    data.insert("key_version".into(), ver.into());
    if with_plaintext {
        data.insert("plaintext".into(), B64.encode(new_key.as_slice()).into());
    }
    Ok(Response::data(Value::Object(data)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ciphertext_prefix_and_versions() {
        assert_eq!(split_versioned("vault:v3:AAAA").unwrap(), (3, "AAAA"));
        assert_eq!(
            split_versioned("garbage").unwrap_err().to_string(),
            "invalid ciphertext: no prefix"
        );
        assert_eq!(
            split_versioned("vault:vx:AAAA").unwrap_err().to_string(),
            "invalid ciphertext: version number could not be decoded"
        );
        assert_eq!(
            split_versioned("vault:v1").unwrap_err().to_string(),
            "invalid ciphertext: wrong number of fields"
        );
    }

    #[test]
    fn a_rotated_key_opens_old_ciphertexts_above_the_minimum() {
        let mut p = Policy::new("k", KeyType::Aes256Gcm96, 0).unwrap();
        let empty = Map::new();
        let (c1, v1) = seal(&p, &Params(&empty), b"one").unwrap();
        assert!(c1.starts_with("vault:v1:"));
        assert_eq!(v1, 1);
        p.rotate().unwrap();
        let (c2, _) = seal(&p, &Params(&empty), b"two").unwrap();
        assert!(c2.starts_with("vault:v2:"));
        let open_ct = |p: &Policy, c: &str| {
            let mut m = Map::new();
            m.insert("ciphertext".into(), c.into());
            open(p, &Params(&m)).map(|(pt, _)| pt.to_vec())
        };
        assert_eq!(open_ct(&p, &c1).unwrap(), b"one");
        p.min_decryption_version = 2;
        assert!(open_ct(&p, &c1)
            .unwrap_err()
            .to_string()
            .contains("too old"));
        assert_eq!(open_ct(&p, &c2).unwrap(), b"two");
    }
}

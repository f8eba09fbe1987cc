//! `keys/…` (create, read, list, delete, config, rotate, trim) and
//! `export/…`, with Vault's parameters and messages.

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::material;
use super::policy::{KeyType, Policy, B64};
use super::{name_and_tail, unsupported, writes_only, Transit};
use crate::engine::EngineCtx;
use crate::util::Params;
use crate::{Error, Operation, Request, Response, Result};

/// Vault's shortest automatic rotation period: one hour.
const MIN_AUTO_ROTATE: u64 = 3600;

pub(super) async fn handle(
    t: &Transit,
    ctx: &EngineCtx<'_>,
    req: &Request,
    rest: &str,
) -> Result<Response> {
    if rest.is_empty() {
        return match req.operation {
            Operation::List => Response::list(ctx.view.list(super::POLICY_PREFIX).await?),
            _ => Err(Error::UnsupportedOperation),
        };
    }
    let (name, tail) = name_and_tail(rest)?;
    match (tail, req.operation) {
        (None, Operation::Read) => match t.get(ctx, name).await? {
            Some(p) => Ok(Response::data(p.read_data())),
            None => Err(Error::NotFound),
        },
        (None, Operation::Create | Operation::Update) => create(t, ctx, req, name).await,
        (None, Operation::Delete) => delete(t, ctx, name).await,
        (Some("config"), _) => {
            writes_only(req)?;
            config(t, ctx, req, name).await
        }
        (Some("rotate"), _) => {
            writes_only(req)?;
            rotate(t, ctx, name).await
        }
        (Some("trim"), _) => {
            writes_only(req)?;
            trim(t, ctx, req, name).await
        }
        (None, _) => Err(Error::UnsupportedOperation),
        (Some(_), _) => Err(unsupported(rest)),
    }
}

/// An automatic rotation period as Vault accepts it: 0 or at least an hour.
fn auto_rotate(p: &Params<'_>) -> Result<Option<u64>> {
    match p.duration("auto_rotate_period")? {
        Some(v) if v != 0 && v < MIN_AUTO_ROTATE => Err(Error::bad(
            "auto rotate period must be 0 to disable or at least an hour",
        )),
        other => Ok(other),
    }
}

/// A new key built from a create request's parameters (also used by
/// create-on-encrypt with `kind` given).
pub(super) async fn new_policy(
    name: &str,
    kind: KeyType,
    p: &Params<'_>,
    derived: bool,
) -> Result<Policy> {
    let convergent = p.bool("convergent_encryption")?.unwrap_or(false);
    if convergent && !derived {
        return Err(Error::bad(
            "convergent encryption requires derivation to be enabled",
        ));
    }
    if convergent {
        return Err(Error::bad(
            "convergent encryption is not supported by Coffer's transit engine",
        ));
    }
    if derived && !kind.supports_derivation() {
        return Err(Error::bad(format!(
            "key derivation and convergent encryption not supported for keys of type {}",
            kind.name()
        )));
    }
    if derived && kind == KeyType::Ed25519 {
        return Err(Error::bad(
            "derived ed25519 keys are not supported by Coffer's transit engine",
        ));
    }
    let key_size = if kind == KeyType::Hmac {
        let size = p.u64("key_size")?.unwrap_or(0);
        if !(32..=512).contains(&size) {
            return Err(Error::bad(
                "invalid key size for HMAC key, must be between 32 and 512 bytes",
            ));
        }
        // Within 32..=512.
        size as usize
    } else {
        0
    };
    let auto = auto_rotate(p)?.unwrap_or(0);
    let owned = name.to_string();
    let mut policy = super::blocking(move || Policy::new(&owned, kind, key_size)).await?;
    policy.derived = derived;
    policy.exportable = p.bool("exportable")?.unwrap_or(false);
    policy.allow_plaintext_backup = p.bool("allow_plaintext_backup")?.unwrap_or(false);
    policy.auto_rotate_period = auto;
    Ok(policy)
}

async fn create(t: &Transit, ctx: &EngineCtx<'_>, req: &Request, name: &str) -> Result<Response> {
    let p = Params(&req.data);
    let kind_name = p.str("type")?.unwrap_or("aes256-gcm96");
    let kind = KeyType::parse(kind_name)
        .ok_or_else(|| Error::bad(format!("unknown key type {kind_name}")))?;
    let derived = p.bool("derived")?.unwrap_or(false);
    let _g = t.write.lock().await;
    if let Some(existing) = t.load_locked(ctx, name).await? {
        // As Vault: creating an existing key changes nothing.
        return Ok(Response::data(existing.read_data()));
    }
    let policy = new_policy(name, kind, &p, derived).await?;
    let stored = t.store_locked(ctx, policy).await?;
    Ok(Response::data(stored.read_data()))
}

async fn delete(t: &Transit, ctx: &EngineCtx<'_>, name: &str) -> Result<Response> {
    let _g = t.write.lock().await;
    let Some(p) = t.load_locked(ctx, name).await? else {
        return Err(Error::bad(format!(
            "error deleting policy {name}: could not delete key; not found"
        )));
    };
    if !p.deletion_allowed {
        return Err(Error::bad(format!(
            "error deleting policy {name}: deletion is not allowed for this key"
        )));
    }
    t.remove_locked(ctx, name).await?;
    Ok(Response::empty())
}

fn version_param(p: &Params<'_>, name: &str) -> Result<Option<i64>> {
    p.i64(name)
}

async fn config(t: &Transit, ctx: &EngineCtx<'_>, req: &Request, name: &str) -> Result<Response> {
    let p = Params(&req.data);
    let _g = t.write.lock().await;
    let Some(cur) = t.load_locked(ctx, name).await? else {
        return Err(Error::bad(format!(
            "no existing key named {name} could be found"
        )));
    };
    let mut next = (*cur).clone();
    let mut warnings = Vec::new();
    if let Some(v) = version_param(&p, "min_decryption_version")? {
        if v < 0 {
            return Err(Error::bad("min decryption version cannot be negative"));
        }
        let v = if v == 0 {
            warnings.push(
                "since Vault 0.3, transit key numbering starts at 1; forcing minimum to 1".into(),
            );
            1
        } else {
            v
        };
        if v != i64::from(next.min_decryption_version) {
            if v > i64::from(next.latest_version) {
                return Err(Error::bad(format!(
                    "cannot set min decryption version of {v}, latest key version is {}",
                    next.latest_version
                )));
            }
            if v < i64::from(next.min_available_version) {
                return Err(Error::bad(format!(
                    "cannot set min decryption version of {v} below min available version {}",
                    next.min_available_version
                )));
            }
            // 1 <= v <= latest_version.
            next.min_decryption_version = v as u32;
        }
    }
    if let Some(v) = version_param(&p, "min_encryption_version")? {
        if v < 0 {
            return Err(Error::bad("min encryption version cannot be negative"));
        }
        if v != i64::from(next.min_encryption_version) {
            if v > i64::from(next.latest_version) {
                return Err(Error::bad(format!(
                    "cannot set min encryption version of {v}, latest key version is {}",
                    next.latest_version
                )));
            }
            if v < i64::from(next.min_available_version) {
                return Err(Error::bad(format!(
                    "cannot set min encryption version of {v} below min available version {}",
                    next.min_available_version
                )));
            }
            // 0 <= v <= latest_version.
            next.min_encryption_version = v as u32;
        }
    }
    if next.min_encryption_version > 0 && next.min_encryption_version < next.min_decryption_version
    {
        return Err(Error::bad(
            "cannot set min encryption/decryption values; min encryption version must be greater than or equal to min decryption version",
        ));
    }
    if let Some(b) = p.bool("deletion_allowed")? {
        next.deletion_allowed = b;
    }
    // Exportability and plaintext backup can be turned on, never off.
    if p.bool("exportable")? == Some(true) {
        next.exportable = true;
    }
    if p.bool("allow_plaintext_backup")? == Some(true) {
        next.allow_plaintext_backup = true;
    }
    if let Some(period) = auto_rotate(&p)? {
        next.auto_rotate_period = period;
    }
    let stored = t.store_locked(ctx, next).await?;
    let mut resp = Response::data(stored.read_data());
    resp.warnings = warnings;
    Ok(resp)
}

async fn rotate(t: &Transit, ctx: &EngineCtx<'_>, name: &str) -> Result<Response> {
    let _g = t.write.lock().await;
    let Some(cur) = t.load_locked(ctx, name).await? else {
        return Err(Error::bad("key not found"));
    };
    let mut next = (*cur).clone();
    let next = super::blocking(move || next.rotate().map(|()| next)).await?;
    let stored = t.store_locked(ctx, next).await?;
    Ok(Response::data(stored.read_data()))
}

async fn trim(t: &Transit, ctx: &EngineCtx<'_>, req: &Request, name: &str) -> Result<Response> {
    let p = Params(&req.data);
    let _g = t.write.lock().await;
    let Some(cur) = t.load_locked(ctx, name).await? else {
        return Err(Error::bad("invalid key name"));
    };
    let Some(min) = p.i64("min_available_version")? else {
        return Err(Error::bad("missing min_available_version"));
    };
    let reason = if min < i64::from(cur.min_available_version) {
        Some("minimum available version cannot be decremented")
    } else if cur.min_encryption_version == 0 {
        Some("minimum available version cannot be set when minimum encryption version is not set")
    } else if min > i64::from(cur.min_encryption_version) {
        Some("minimum available version cannot be greater than minmum encryption version")
    } else if min > i64::from(cur.min_decryption_version) {
        Some("minimum available version cannot be greater than minimum decryption version")
    } else if min <= 0 {
        Some("minimum available version should be positive")
    } else {
        None
    };
    if let Some(reason) = reason {
        return Err(Error::bad(reason));
    }
    let mut next = (*cur).clone();
    // 1 <= min <= min_decryption_version, a u32.
    let min = min as u32;
    next.min_available_version = min;
    next.versions.retain(|v, _| *v >= min);
    let stored = t.store_locked(ctx, next).await?;
    Ok(Response::data(stored.read_data()))
}

/// `export/<type>/<name>[/<version>]`.
pub(super) async fn export(
    t: &Transit,
    ctx: &EngineCtx<'_>,
    req: &Request,
    rest: &str,
) -> Result<Response> {
    if req.operation != Operation::Read {
        return Err(Error::UnsupportedOperation);
    }
    let mut parts = rest.split('/');
    let (Some(kind), Some(name)) = (parts.next(), parts.next()) else {
        return Err(unsupported(rest));
    };
    let version = parts.next();
    if parts.next().is_some() || !super::valid_name(name) || version == Some("") {
        return Err(unsupported(rest));
    }
    if !matches!(kind, "encryption-key" | "signing-key" | "hmac-key") {
        return Err(Error::bad(format!("invalid export type: {kind}")));
    }
    let Some(p) = t.get(ctx, name).await? else {
        return Err(Error::NotFound);
    };
    if !p.exportable {
        return Err(Error::bad("private key material is not exportable"));
    }
    match kind {
        "encryption-key" if !p.kind.supports_encryption() => {
            return Err(Error::bad("encryption not supported for the key"))
        }
        "signing-key" if !p.kind.supports_signing() => {
            return Err(Error::bad("signing not supported for the key"))
        }
        _ => {}
    }
    let selected: Vec<u32> = match version {
        None => p
            .versions
            .range(p.min_decryption_version..)
            .map(|(v, _)| *v)
            .collect(),
        Some(v) => {
            let ver = if v == "latest" {
                p.latest_version
            } else {
                v.parse::<u32>()
                    .map_err(|_| Error::bad("could not parse key version"))?
            };
            if ver < p.min_decryption_version || !p.versions.contains_key(&ver) {
                return Err(Error::bad("version does not exist or cannot be found"));
            }
            vec![ver]
        }
    };
    let mut keys = Map::new();
    for ver in selected {
        let Some(v) = p.versions.get(&ver) else {
            continue;
        };
        let shown = match kind {
            "hmac-key" if p.kind == KeyType::Hmac => B64.encode(v.key.as_slice()),
            "hmac-key" => B64.encode(v.hmac_key.as_slice()),
            _ if p.kind.is_aead() => B64.encode(v.key.as_slice()),
            _ => material::export_signing(p.kind, &v.key)?.to_string(),
        };
        keys.insert(ver.to_string(), Value::String(shown));
    }
    Ok(Response::data(json!({
        "keys": keys,
        "name": p.name,
        "type": p.kind.name(),
    })))
}

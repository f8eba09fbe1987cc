//! `sys/rekey/*`: new unseal key shares for the same data (Vault's rekey).
//!
//! `PUT sys/rekey/init` starts an attempt (new `secret_shares` and
//! `secret_threshold`, optional `require_verification`); a quorum of the
//! current shares is submitted to `sys/rekey/update` with the attempt's
//! nonce. The share that completes the quorum gets a fresh root key: the
//! keyring is re-sealed under it and the new seal configuration written in
//! one atomic batch ([`crate::seal::Seal::install_root`]), and the answer
//! carries the new shares. From that moment the old shares no longer open
//! the store; a crash before it leaves them valid.
//!
//! With `require_verification`, the new shares are only issued, not yet in
//! force: a quorum of them must come back to `sys/rekey/verify` (with the
//! `verification_nonce`) before they replace the old ones. Until then the
//! old shares keep working, and a crash or seal forgets the pending key.
//!
//! Like Vault's, these endpoints take no token (the shares authorize them);
//! Coffer audits them all the same. A seal cancels any attempt.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use coffer_crypto::{shamir, Key};
use parking_lot::Mutex;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::core::Core;
use crate::shares::{key_and_nonce, Added, Collection};
use crate::util::Params;
use crate::{Error, Operation, Request, Response, Result};

/// The rekey attempt in progress, if any.
#[derive(Default)]
pub(crate) struct RekeyState {
    attempt: Mutex<Option<Attempt>>,
}

struct Attempt {
    shares: u32,
    threshold: u32,
    verification_required: bool,
    /// The current shares, collected toward the quorum.
    collect: Collection,
    /// With verification: the new key, issued but not yet in force.
    pending: Option<Pending>,
}

struct Pending {
    /// The root key the current shares recovered.
    previous: Key,
    /// The new root key.
    root: Key,
    /// The new shares, collected back for verification.
    verify: Collection,
}

impl RekeyState {
    /// Forgets any attempt (on seal).
    pub fn cancel(&self) {
        *self.attempt.lock() = None;
    }
}

/// Whether `path` (the full request path) is a rekey endpoint.
pub(crate) fn is_path(path: &str) -> bool {
    matches!(
        path,
        "sys/rekey/init" | "sys/rekey/update" | "sys/rekey/verify"
    )
}

/// Answers a rekey endpoint (unsealed core; the caller audits).
pub(crate) async fn handle(core: &Core, req: &Request) -> Result<Response> {
    use Operation::*;
    match (req.path.as_str(), req.operation) {
        ("sys/rekey/init", Read) => status(core).await,
        ("sys/rekey/init", Create | Update) => start(core, req).await,
        ("sys/rekey/init", Delete) => {
            core.rekey.cancel();
            Ok(Response::empty())
        }
        ("sys/rekey/update", Create | Update) => update(core, req).await,
        ("sys/rekey/verify", Read) => verify_status(core),
        ("sys/rekey/verify", Create | Update) => verify(core, req).await,
        ("sys/rekey/verify", Delete) => {
            {
                let mut guard = core.rekey.attempt.lock();
                let pending = guard
                    .as_mut()
                    .and_then(|a| a.pending.as_mut())
                    .ok_or_else(|| Error::bad("no rekey verification in progress"))?;
                pending.verify = Collection::new(pending.verify.required);
            }
            verify_status(core)
        }
        _ => Err(Error::UnsupportedOperation),
    }
}

/// The current seal configuration's threshold (the shares a rekey needs).
async fn required(core: &Core) -> Result<u32> {
    Ok(core
        .seal
        .config()
        .await?
        .ok_or_else(|| Error::bad("Vault is not initialized"))?
        .secret_threshold)
}

async fn status(core: &Core) -> Result<Response> {
    let required = required(core).await?;
    let guard = core.rekey.attempt.lock();
    let mut body = json!({
        "nonce": "", "started": false, "t": 0, "n": 0, "progress": 0,
        "required": required, "pgp_fingerprints": null, "backup": false,
        "verification_required": false,
    });
    if let Some(a) = guard.as_ref() {
        body["nonce"] = json!(a.collect.nonce);
        body["started"] = json!(true);
        body["t"] = json!(a.threshold);
        body["n"] = json!(a.shares);
        body["progress"] = json!(a.collect.progress());
        body["verification_required"] = json!(a.verification_required);
        if let Some(p) = &a.pending {
            body["verification_nonce"] = json!(p.verify.nonce);
        }
    }
    Ok(Response::raw(body))
}

async fn start(core: &Core, req: &Request) -> Result<Response> {
    let p = Params(&req.data);
    refuse_pgp(&req.data)?;
    let shares = p.u64("secret_shares")?.unwrap_or(0);
    let threshold = p.u64("secret_threshold")?.unwrap_or(0);
    let invalid = |m: String| Error::bad(format!("invalid rekey seal configuration: {m}"));
    let shares =
        u32::try_from(shares).map_err(|_| invalid("shares must be less than 256".into()))?;
    let threshold = u32::try_from(threshold).map_err(|_| invalid("threshold too large".into()))?;
    shamir::validate(shares, threshold).map_err(|e| invalid(e.to_string()))?;
    let verification_required = p.bool("require_verification")?.unwrap_or(false);
    let required = required(core).await?;
    {
        let mut guard = core.rekey.attempt.lock();
        if guard.is_some() {
            return Err(Error::bad("rekey already in progress"));
        }
        *guard = Some(Attempt {
            shares,
            threshold,
            verification_required,
            collect: Collection::new(required),
            pending: None,
        });
    }
    tracing::info!(
        shares,
        threshold,
        verification_required,
        "rekey initialized"
    );
    status(core).await
}

/// PGP-encrypted shares are not supported: refuse rather than hand out plain ones.
fn refuse_pgp(data: &serde_json::Map<String, Value>) -> Result<()> {
    for field in ["pgp_keys", "backup"] {
        match data.get(field) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => {}
            Some(Value::Array(a)) if a.is_empty() => {}
            Some(Value::String(s)) if s.is_empty() => {}
            Some(_) => return Err(Error::bad(format!("{field} is not supported"))),
        }
    }
    Ok(())
}

async fn update(core: &Core, req: &Request) -> Result<Response> {
    let (key, nonce) = key_and_nonce(&req.data)?;
    let collected = {
        let mut guard = core.rekey.attempt.lock();
        let a = guard
            .as_mut()
            .ok_or_else(|| Error::bad("no rekey in progress"))?;
        if a.pending.is_some() {
            return Err(Error::bad(
                "rekey operation complete; the new shares await verification at sys/rekey/verify",
            ));
        }
        match a.collect.add(&nonce, key, "rekey")? {
            Added::Pending(_) => None,
            Added::Complete(parts) => Some((parts, a.shares, a.threshold, a.verification_required)),
        }
    };
    let Some((parts, shares, threshold, verification_required)) = collected else {
        return status(core).await;
    };
    let outcome = complete(
        core,
        &nonce,
        &parts,
        shares,
        threshold,
        verification_required,
    )
    .await;
    if outcome.is_err() {
        if let Some(a) = core.rekey.attempt.lock().as_mut() {
            if a.collect.nonce == nonce {
                a.collect.failed();
            }
        }
    }
    outcome
}

/// The quorum is in: recover the root key, make the new one, and either
/// install it (no verification) or hold it for verification.
async fn complete(
    core: &Core,
    nonce: &str,
    parts: &[Zeroizing<Vec<u8>>],
    shares: u32,
    threshold: u32,
    verification_required: bool,
) -> Result<Response> {
    let previous = core.seal.recover_root(parts)?;
    let root = Key::generate();
    let new_shares = shamir::split(root.as_bytes(), shares, threshold)
        .map_err(|e| Error::crypto("splitting the new root key", e))?;
    let mut body = json!({
        "nonce": nonce,
        "complete": true,
        "keys": new_shares.iter().map(|k| hex::encode(k.as_slice())).collect::<Vec<_>>(),
        "keys_base64": new_shares.iter().map(|k| STANDARD.encode(k.as_slice())).collect::<Vec<_>>(),
        "pgp_fingerprints": null,
        "backup": false,
        "verification_required": verification_required,
    });
    if verification_required {
        let mut guard = core.rekey.attempt.lock();
        let a = guard
            .as_mut()
            .filter(|a| a.collect.nonce == nonce)
            .ok_or_else(|| Error::bad("the rekey was cancelled"))?;
        let verify = Collection::new(threshold);
        body["verification_nonce"] = json!(verify.nonce);
        a.pending = Some(Pending {
            previous,
            root,
            verify,
        });
        tracing::info!("rekey shares issued; awaiting verification");
        return Ok(Response::raw(body));
    }
    if core
        .rekey
        .attempt
        .lock()
        .as_ref()
        .is_none_or(|a| a.collect.nonce != nonce)
    {
        return Err(Error::bad("the rekey was cancelled"));
    }
    core.seal
        .install_root(&previous, &root, shares, threshold)
        .await?;
    core.rekey.cancel();
    tracing::info!(
        shares,
        threshold,
        "rekey complete: new unseal key shares in force"
    );
    Ok(Response::raw(body))
}

fn verify_status(core: &Core) -> Result<Response> {
    let guard = core.rekey.attempt.lock();
    let a = guard
        .as_ref()
        .ok_or_else(|| Error::bad("no rekey configuration found"))?;
    let p = a
        .pending
        .as_ref()
        .ok_or_else(|| Error::bad("no rekey verification in progress"))?;
    Ok(Response::raw(json!({
        "nonce": p.verify.nonce,
        "started": true,
        "t": a.threshold,
        "n": a.shares,
        "progress": p.verify.progress(),
    })))
}

async fn verify(core: &Core, req: &Request) -> Result<Response> {
    let (key, nonce) = key_and_nonce(&req.data)?;
    let (parts, previous, root, shares, threshold) = {
        let mut guard = core.rekey.attempt.lock();
        let a = guard
            .as_mut()
            .ok_or_else(|| Error::bad("no rekey configuration found"))?;
        let (shares, threshold) = (a.shares, a.threshold);
        let p = a
            .pending
            .as_mut()
            .ok_or_else(|| Error::bad("no rekey verification in progress"))?;
        match p.verify.add(&nonce, key, "verify")? {
            Added::Pending(progress) => {
                return Ok(Response::raw(json!({
                    "nonce": p.verify.nonce, "started": true,
                    "t": threshold, "n": shares, "progress": progress,
                })))
            }
            Added::Complete(parts) => {
                (parts, p.previous.clone(), p.root.clone(), shares, threshold)
            }
        }
    };
    let installed = async {
        let bytes = shamir::combine(&parts, threshold)
            .map_err(|_| Error::bad("rekey verification failed: invalid key shares"))?;
        if !coffer_crypto::hash::constant_time_eq(&bytes, root.as_bytes()) {
            return Err(Error::bad("rekey verification failed: invalid key shares"));
        }
        core.seal
            .install_root(&previous, &root, shares, threshold)
            .await
    }
    .await;
    if let Err(e) = installed {
        if let Some(p) = core
            .rekey
            .attempt
            .lock()
            .as_mut()
            .and_then(|a| a.pending.as_mut())
        {
            if p.verify.nonce == nonce {
                p.verify.failed();
            }
        }
        return Err(e);
    }
    core.rekey.cancel();
    tracing::info!(
        shares,
        threshold,
        "rekey verified: new unseal key shares in force"
    );
    Ok(Response::raw(json!({"nonce": nonce, "complete": true})))
}

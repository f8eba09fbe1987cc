//! Revocation and CRLs: `revoke`, `crl`, `crl/pem`, `cert/crl`,
//! `crl/rotate`, `tidy`, `tidy-status`, and revocations deferred to a time
//! (the `pki` rotator's grace period), kept at `deferred/<serial>`.

use rcgen::{CertificateRevocationListParams, RevokedCertParams, SerialNumber};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::issuers::{self, StoredIssuer};
use super::store::{self, Revoked};
use super::{issue, urls};
use crate::engine::EngineCtx;
use crate::util::{now, rfc3339, Params};
use crate::{Error, Operation, Request, Response, Result};

/// Content type of a DER CRL.
const DER_CRL: &str = "application/pkix-crl";
/// Content type of a PEM CRL.
const PEM_FILE: &str = "application/x-pem-file";

/// A built CRL of one issuer (`crl/<issuer id>`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BuiltCrl {
    /// Its CRL number.
    pub number: u64,
    /// PEM.
    pub pem: String,
    /// Its nextUpdate (Unix seconds).
    pub next_update: i64,
}

/// A revocation waiting for its time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deferred {
    /// The serial, colon form.
    pub serial_number: String,
    /// When to revoke (Unix seconds).
    pub at: i64,
}

/// `tidy-status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TidyStatus {
    /// "Inactive", "Finished" or "Error".
    pub state: String,
    /// When the last tidy started and finished (RFC 3339).
    pub time_started: String,
    /// When it finished.
    pub time_finished: String,
    /// Certificates removed from the store.
    pub cert_store_deleted_count: u64,
    /// Revocations removed.
    pub revoked_cert_deleted_count: u64,
    /// Its parameters.
    pub tidy_cert_store: bool,
    /// Its parameters.
    pub tidy_revoked_certs: bool,
    /// Its parameters (seconds).
    pub safety_buffer: u64,
}

fn serial_bytes(serial: &str) -> Result<Vec<u8>> {
    hex::decode(serial.replace(':', "")).map_err(|_| Error::bad("invalid serial number"))
}

/// Builds and stores the CRL of `issuer` (an issuer without a key here has none).
pub async fn rebuild(ctx: &EngineCtx<'_>, issuer: &StoredIssuer) -> Result<BuiltCrl> {
    if issuer.key_id.is_empty() {
        return Ok(BuiltCrl::default());
    }
    let signer = issuers::signer(ctx, &issuer.issuer_id).await?;
    let key = format!("crl/{}", issuer.issuer_id);
    let previous: BuiltCrl = ctx.view.get_json(&key).await?.unwrap_or_default();
    let cfg = urls::crl_config(ctx).await?;
    let mut revoked = Vec::new();
    for r in store::revoked(ctx).await? {
        if r.issuer_id != issuer.issuer_id {
            continue;
        }
        revoked.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&serial_bytes(&r.serial_number)?),
            revocation_time: issue::at(r.revocation_time)?,
            reason_code: None,
            invalidity_date: None,
        });
    }
    let this = now().timestamp();
    let next = this + i64::try_from(cfg.expiry).unwrap_or(72 * 3600);
    let number = previous.number + 1;
    let params = CertificateRevocationListParams {
        this_update: issue::at(this)?,
        next_update: issue::at(next)?,
        crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs: revoked,
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    let crl = params
        .signed_by(&signer.rcgen()?)
        .map_err(|e| Error::crypto("signing the CRL", e))?;
    let built = BuiltCrl {
        number,
        pem: crl
            .pem()
            .map_err(|e| Error::crypto("encoding the CRL", e))?,
        next_update: next,
    };
    ctx.view.put_json(&key, &built).await?;
    Ok(built)
}

/// The current CRL of `issuer`, rebuilt when missing or past its nextUpdate.
pub async fn current(ctx: &EngineCtx<'_>, issuer: &StoredIssuer) -> Result<BuiltCrl> {
    let stored: Option<BuiltCrl> = ctx
        .view
        .get_json(&format!("crl/{}", issuer.issuer_id))
        .await?;
    match stored {
        Some(c) if c.next_update > now().timestamp() => Ok(c),
        _ => rebuild(ctx, issuer).await,
    }
}

/// Revokes the certificate with `serial` (colon form): records it and
/// rebuilds its issuer's CRL. Answers the revocation time. A serial not
/// in the store is revoked when `fallback` (issuer id, NotAfter) is given
/// (a leased `no_store` certificate).
pub async fn revoke_serial(
    ctx: &EngineCtx<'_>,
    serial: &str,
    fallback: Option<(String, i64)>,
) -> Result<(i64, Vec<String>)> {
    let mut warnings = Vec::new();
    let key = store::key_of(serial);
    if let Some(r) = ctx
        .view
        .get_json::<Revoked>(&format!("revoked/{key}"))
        .await?
    {
        return Ok((r.revocation_time, warnings));
    }
    for id in issuers::ids(ctx).await? {
        if let Some(i) = ctx
            .view
            .get_json::<StoredIssuer>(&format!("issuer/{id}"))
            .await?
        {
            if store::facts(&i.certificate).map(|f| f.0).ok().as_deref() == Some(serial) {
                return Err(Error::bad(format!(
                    "adding issuer (id: {id}) to its own CRL is not allowed"
                )));
            }
        }
    }
    let entry = store::get(ctx, serial).await?;
    let (issuer_id, not_after) = match (&entry, fallback) {
        (Some(e), _) => (e.issuer_id.clone(), e.not_after),
        (None, Some(f)) => f,
        (None, None) => {
            return Err(Error::bad(format!(
                "certificate with serial {serial} not found"
            )))
        }
    };
    let t = now().timestamp();
    if not_after <= t {
        warnings.push(format!(
            "certificate with serial {serial} has already expired; it is not added to the CRL"
        ));
        return Ok((0, warnings));
    }
    let rec = Revoked {
        serial_number: serial.to_string(),
        issuer_id: issuer_id.clone(),
        revocation_time: t,
        not_after,
    };
    ctx.view.put_json(&format!("revoked/{key}"), &rec).await?;
    if let Some(mut e) = entry {
        e.revocation_time = Some(t);
        ctx.view.put_json(&format!("certs/{key}"), &e).await?;
    }
    if let Some(i) = ctx
        .view
        .get_json::<StoredIssuer>(&format!("issuer/{issuer_id}"))
        .await?
    {
        if !urls::crl_config(ctx).await?.disable {
            rebuild(ctx, &i).await?;
        }
    }
    tracing::info!(serial = %serial, "certificate revoked");
    Ok((t, warnings))
}

/// `revoke`: by `serial_number` or `certificate`.
pub async fn revoke(ctx: &EngineCtx<'_>, req: &Request) -> Result<Response> {
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return Err(Error::UnsupportedOperation);
    }
    let p = Params(&req.data);
    let serial = match (p.str("serial_number")?, p.str("certificate")?) {
        (Some(s), None) if !s.is_empty() => store::normalize_serial(s)?,
        (None, Some(c)) if !c.is_empty() => {
            let (serial, _) = store::facts(c)?;
            let stored = store::get(ctx, &serial)
                .await?
                .ok_or_else(|| Error::bad("the certificate was not issued by this mount"))?;
            if stored.certificate.trim() != c.trim() {
                return Err(Error::bad("the certificate was not issued by this mount"));
            }
            serial
        }
        (Some(_), Some(_)) => {
            return Err(Error::bad(
                "must specify either 'certificate' or 'serial_number' to revoke; not both",
            ))
        }
        _ => return Err(Error::bad("the serial number must be provided")),
    };
    let (t, warnings) = revoke_serial(ctx, &serial, None).await?;
    let mut resp = Response::data(json!({
        "revocation_time": t,
        "revocation_time_rfc3339": if t > 0 {
            chrono::DateTime::from_timestamp(t, 0).map(|d| rfc3339(&d)).unwrap_or_default()
        } else { String::new() },
        "state": if t > 0 { "revoked" } else { "expired" },
    }));
    resp.warnings = warnings;
    Ok(resp)
}

/// `crl`, `crl/pem`, `cert/crl` of the default issuer.
pub async fn read(ctx: &EngineCtx<'_>, req: &Request, what: &str) -> Result<Response> {
    if req.operation != Operation::Read {
        return Err(Error::UnsupportedOperation);
    }
    let Some(issuer) = issuers::resolve(ctx, "default").await? else {
        return match what {
            "cert/crl" => Err(Error::bad("no default issuer currently configured")),
            _ => Ok(Response::empty().with_status(204)),
        };
    };
    let crl = current(ctx, &issuer).await?;
    match what {
        "crl" => {
            let (_, p) = x509_parser::pem::parse_x509_pem(crl.pem.as_bytes())
                .map_err(|_| Error::corrupt("stored CRL"))?;
            Ok(Response::bytes(DER_CRL, p.contents))
        }
        "crl/pem" => Ok(Response::text(PEM_FILE, crl.pem)),
        _ => Ok(Response::data(json!({
            "certificate": crl.pem,
            "revocation_time": 0,
            "revocation_time_rfc3339": "",
        }))),
    }
}

/// `crl/rotate`: rebuilds every issuer's CRL.
pub async fn rotate(ctx: &EngineCtx<'_>, req: &Request) -> Result<Response> {
    if req.operation != Operation::Read
        && !matches!(req.operation, Operation::Create | Operation::Update)
    {
        return Err(Error::UnsupportedOperation);
    }
    for id in issuers::ids(ctx).await? {
        if let Some(i) = ctx
            .view
            .get_json::<StoredIssuer>(&format!("issuer/{id}"))
            .await?
        {
            rebuild(ctx, &i).await?;
        }
    }
    Ok(Response::data(json!({ "success": true })))
}

/// `tidy`: removes certificates and revocations past NotAfter + `safety_buffer`.
/// Done before answering (202, as Vault answers its background tidy).
pub async fn tidy(ctx: &EngineCtx<'_>, req: &Request) -> Result<Response> {
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return Err(Error::UnsupportedOperation);
    }
    let p = Params(&req.data);
    let certs = p.bool("tidy_cert_store")?.unwrap_or(false);
    let revoked = p.bool("tidy_revoked_certs")?.unwrap_or(false);
    let buffer = p.duration("safety_buffer")?.unwrap_or(72 * 3600);
    if !certs && !revoked {
        return Err(Error::bad(
            "at least one of tidy_cert_store or tidy_revoked_certs must be set",
        ));
    }
    let started = now();
    let cutoff = started.timestamp() - i64::try_from(buffer).unwrap_or(i64::MAX / 2);
    let mut status = TidyStatus {
        state: "Finished".into(),
        time_started: rfc3339(&started),
        tidy_cert_store: certs,
        tidy_revoked_certs: revoked,
        safety_buffer: buffer,
        ..Default::default()
    };
    if certs {
        for serial in store::list(ctx).await? {
            if let Some(e) = store::get(ctx, &serial).await? {
                if e.not_after < cutoff {
                    ctx.view
                        .delete(&format!("certs/{}", store::key_of(&serial)))
                        .await?;
                    status.cert_store_deleted_count += 1;
                }
            }
        }
    }
    if revoked {
        let mut touched = false;
        for r in store::revoked(ctx).await? {
            if r.not_after < cutoff {
                ctx.view
                    .delete(&format!("revoked/{}", store::key_of(&r.serial_number)))
                    .await?;
                status.revoked_cert_deleted_count += 1;
                touched = true;
            }
        }
        if touched {
            for id in issuers::ids(ctx).await? {
                if let Some(i) = ctx
                    .view
                    .get_json::<StoredIssuer>(&format!("issuer/{id}"))
                    .await?
                {
                    rebuild(ctx, &i).await?;
                }
            }
        }
    }
    status.time_finished = rfc3339(&now());
    ctx.view.put_json("tidy-status", &status).await?;
    let mut resp = Response::empty().with_status(202);
    resp.warnings = vec![
        "Tidy operation successfully started. Any information from the operation will be printed to Coffer's server logs.".into(),
    ];
    Ok(resp)
}

/// `tidy-status`.
pub async fn tidy_status(ctx: &EngineCtx<'_>, req: &Request) -> Result<Response> {
    if req.operation != Operation::Read {
        return Err(Error::UnsupportedOperation);
    }
    let s: TidyStatus = ctx
        .view
        .get_json("tidy-status")
        .await?
        .unwrap_or(TidyStatus {
            state: "Inactive".into(),
            ..Default::default()
        });
    let mut v = serde_json::to_value(&s).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        m.insert("error".into(), Value::Null);
        m.insert("message".into(), Value::Null);
        m.insert("revoked_safety_buffer".into(), json!(s.safety_buffer));
        m.insert("missing_issuer_cert_count".into(), json!(0));
        m.insert("current_cert_store_count".into(), Value::Null);
        m.insert("current_revoked_cert_count".into(), Value::Null);
        m.insert("tidy_expired_issuers".into(), json!(false));
        m.insert("tidy_revoked_cert_issuer_associations".into(), json!(false));
        m.insert("pause_duration".into(), json!("0s"));
    }
    Ok(Response::data(v))
}

/// Records that `serial` is to be revoked at `at` (Unix seconds).
pub async fn defer(ctx: &EngineCtx<'_>, serial: &str, at: i64) -> Result<()> {
    let d = Deferred {
        serial_number: serial.to_string(),
        at,
    };
    ctx.view
        .put_json(&format!("deferred/{}", store::key_of(serial)), &d)
        .await
}

/// Revokes the deferred revocations whose time has come.
pub async fn run_deferred(ctx: &EngineCtx<'_>) -> Result<()> {
    let t = now().timestamp();
    for k in ctx.view.list("deferred/").await? {
        let key = format!("deferred/{k}");
        let Some(d) = ctx.view.get_json::<Deferred>(&key).await? else {
            continue;
        };
        if d.at > t {
            continue;
        }
        match revoke_serial(ctx, &d.serial_number, None).await {
            Ok(_) => {}
            Err(e) if e.status() == 400 => {
                tracing::warn!(serial = %d.serial_number, error = %e, "deferred revocation dropped");
            }
            Err(e) => return Err(e),
        }
        ctx.view.delete(&key).await?;
    }
    Ok(())
}

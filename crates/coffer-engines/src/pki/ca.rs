//! CA management: `root/generate/:type`, `intermediate/generate/:type`,
//! `root/sign-intermediate`, `intermediate/set-signed`, and the reads of
//! the CA (`ca`, `ca/pem`, `ca_chain`, `cert/ca`, `issuers`, `issuer/:ref`,
//! `config/issuers`).

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyUsagePurpose};
use serde_json::{json, Map, Value};
use x509_parser::prelude::*;

use super::issue::{self, Requested};
use super::issuers::{self, StoredIssuer};
use super::keys::{Key, KeyType};
use super::names::{self, Name};
use super::{store, urls};
use crate::engine::EngineCtx;
use crate::util::{now, Params};
use crate::{Error, Operation, Request, Response, Result};

/// Content type of a DER certificate.
const DER_CERT: &str = "application/pkix-cert";
/// Content type of a PEM chain.
const PEM_CHAIN: &str = "application/pem-certificate-chain";

fn export_type(kind: &str) -> Result<bool> {
    match kind {
        "internal" => Ok(false),
        "exported" => Ok(true),
        "existing" | "kms" => Err(Error::bad(format!(
            "key type {kind:?} is not supported by Coffer's pki engine (internal or exported)"
        ))),
        _ => Err(Error::UnsupportedPath(format!(
            "unsupported path: {kind:?}"
        ))),
    }
}

/// OpenBao's warning when a CA is made with no AIA URLs configured.
async fn aia_warning(
    ctx: &EngineCtx<'_>,
    warnings: &mut Vec<String>,
    intermediate: bool,
) -> Result<()> {
    let u = urls::load(ctx).await?;
    if u.issuing_certificates.is_empty()
        && u.crl_distribution_points.is_empty()
        && u.ocsp_servers.is_empty()
    {
        let mut w = "This mount hasn't configured any authority information access (AIA) fields; this may make it harder for systems to find missing certificates in the chain or to validate revocation status of certificates. Consider updating /config/urls or the newly generated issuer with this information.".to_string();
        if intermediate {
            w.push_str(" Since this certificate is an intermediate, it might be useful to regenerate this certificate after fixing this problem for the root mount.");
        }
        warnings.push(w);
    }
    Ok(())
}

/// The names of a CA's subject: any valid hostname (no role applies).
fn ca_names(req: &Requested) -> Result<Vec<Name>> {
    let role = super::roles::Role {
        allow_any_name: true,
        allow_localhost: true,
        enforce_hostnames: false,
        require_cn: false,
        ..super::roles::Role::default()
    };
    // A CA common name need not be a hostname ("Example Root CA"): only
    // SANs are judged.
    names::judge(&role, "", &req.alt_names, &req.ip_sans)
        .map_err(|e| Error::bad(format!("invalid subject alternative name: {e}")))
}

fn ca_params(
    ctx: &EngineCtx<'_>,
    p: &Params<'_>,
    warnings: &mut Vec<String>,
) -> Result<(CertificateParams, u64)> {
    // As OpenBao, a CA may have an empty subject.
    let req = Requested::from(p)?;
    let sans = ca_names(&req)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = issue::subject(&req.common_name, p, None)?;
    params.subject_alt_names = issue::sans(&sans)?;
    let max_path = p.i64("max_path_length")?.unwrap_or(-1);
    params.is_ca = IsCa::Ca(match max_path {
        n if n < 0 => BasicConstraints::Unconstrained,
        n => BasicConstraints::Constrained(u8::try_from(n).unwrap_or(u8::MAX)),
    });
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(issue::new_serial());
    let max = issue::mount_max(ctx);
    let ttl = issue::pick_ttl(ctx, p.duration("ttl")?, 0, max, warnings);
    if req.common_name.is_empty() && p.str_list("organization")?.unwrap_or_default().is_empty() {
        warnings.push("This issuer certificate was generated without a Subject; this makes it likely that issuing leaf certs with this certificate will cause TLS validation libraries to reject this certificate.".into());
    }
    Ok((params, ttl))
}

fn key_of_request(p: &Params<'_>) -> Result<KeyType> {
    let bits = p.u64("key_bits")?.map(|b| b as u32);
    KeyType::parse(p.str("key_type")?.unwrap_or("rsa"), bits)
}

fn names_of(p: &Params<'_>) -> Result<(String, String)> {
    let issuer_name = p.str("issuer_name")?.unwrap_or("").to_string();
    let key_name = p.str("key_name")?.unwrap_or("").to_string();
    if !issuer_name.is_empty() {
        issuers::check_name("issuer_name", &issuer_name)?;
    }
    if !key_name.is_empty() {
        issuers::check_name("key_name", &key_name)?;
    }
    Ok((issuer_name, key_name))
}

/// `root/generate/:type`.
pub async fn generate_root(ctx: &EngineCtx<'_>, req: &Request, kind: &str) -> Result<Response> {
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return Err(Error::UnsupportedOperation);
    }
    let exported = export_type(kind)?;
    let p = Params(&req.data);
    let (issuer_name, key_name) = names_of(&p)?;
    let mut warnings = Vec::new();
    let (mut params, ttl) = ca_params(ctx, &p, &mut warnings)?;
    let start = now().timestamp();
    params.not_before = issue::at(start - 30)?;
    params.not_after = issue::at(start + i64::try_from(ttl).unwrap_or(0))?;
    params.crl_distribution_points = urls::crl_points(ctx).await?;
    aia_warning(ctx, &mut warnings, false).await?;
    let key = Key::generate(key_of_request(&p)?)?;
    let cert = params
        .self_signed(key.pair())
        .map_err(|e| Error::bad(format!("cannot create the root certificate: {e}")))?;
    let pem = cert.pem();
    let key_id = issuers::put_key(ctx, &key, &key_name).await?;
    let issuer =
        issuers::put_issuer(ctx, &issuer_name, &key_id, pem.clone(), vec![pem.clone()]).await?;
    let (serial, not_after) = store::put(ctx, &pem, &issuer.issuer_id)
        .await
        .map(|s| (s, params.not_after.unix_timestamp()))?;
    let mut data = json!({
        "certificate": pem,
        "expiration": not_after,
        "issuer_id": issuer.issuer_id,
        "issuer_name": issuer.issuer_name,
        "issuing_ca": pem,
        "key_id": key_id,
        "key_name": key_name,
        "serial_number": serial,
    });
    if exported {
        data["private_key"] = Value::String(key.pem().to_string());
        data["private_key_type"] = json!(key.kind().name());
    }
    let mut resp = Response::data(data);
    resp.warnings = warnings;
    Ok(resp)
}

/// `intermediate/generate/:type`: a key and a CSR for it.
pub async fn generate_intermediate(
    ctx: &EngineCtx<'_>,
    req: &Request,
    kind: &str,
) -> Result<Response> {
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return Err(Error::UnsupportedOperation);
    }
    let exported = export_type(kind)?;
    let p = Params(&req.data);
    let (_, key_name) = names_of(&p)?;
    let req_names = Requested::from(&p)?;
    let sans = ca_names(&req_names)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = issue::subject(&req_names.common_name, &p, None)?;
    params.subject_alt_names = issue::sans(&sans)?;
    let key = Key::generate(key_of_request(&p)?)?;
    let csr = params
        .serialize_request(key.pair())
        .and_then(|c| c.pem())
        .map_err(|e| Error::bad(format!("cannot create the CSR: {e}")))?;
    let key_id = issuers::put_key(ctx, &key, &key_name).await?;
    let mut data = json!({ "csr": csr, "key_id": key_id });
    if exported {
        data["private_key"] = Value::String(key.pem().to_string());
        data["private_key_type"] = json!(key.kind().name());
    }
    let mut resp = Response::data(data);
    aia_warning(ctx, &mut resp.warnings, true).await?;
    Ok(resp)
}

/// `root/sign-intermediate`: signs a CA certificate for a CSR.
pub async fn sign_intermediate(ctx: &EngineCtx<'_>, req: &Request) -> Result<Response> {
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return Err(Error::UnsupportedOperation);
    }
    let p = Params(&req.data);
    let csr_pem = p
        .str("csr")?
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| Error::bad("the csr field is required"))?;
    let csr = issue::parse_csr(csr_pem)?;
    let use_csr = p.bool("use_csr_values")?.unwrap_or(false);
    let mut data = req.data.clone();
    if use_csr && p.str("common_name")?.unwrap_or("").is_empty() {
        data.insert("common_name".into(), json!(csr.common_name));
    }
    let p = Params(&data);
    let signer = issuers::signer(ctx, p.str("issuer_ref")?.unwrap_or("default")).await?;
    let mut warnings = Vec::new();
    let (mut params, ttl) = ca_params(ctx, &p, &mut warnings)?;
    let (nb, na) = issue::window(&signer, ttl, 30, Some(&mut warnings))?;
    params.not_before = nb;
    params.not_after = na;
    params.use_authority_key_identifier_extension = true;
    params.crl_distribution_points = urls::crl_points(ctx).await?;
    let spki = rcgen::SubjectPublicKeyInfo::from_der(&csr.spki)
        .map_err(|_| Error::bad("the CSR's public key is not supported"))?;
    let cert = params
        .signed_by(&spki, &signer.rcgen()?)
        .map_err(|e| Error::bad(format!("cannot sign the certificate: {e}")))?;
    let pem = cert.pem();
    aia_warning(ctx, &mut warnings, false).await?;
    let serial = store::put(ctx, &pem, &signer.issuer.issuer_id).await?;
    let mut chain = vec![pem.clone()];
    chain.extend(signer.issuer.ca_chain.iter().cloned());
    let mut resp = Response::data(json!({
        "certificate": pem,
        "expiration": na.unix_timestamp(),
        "issuing_ca": signer.issuer.certificate,
        "ca_chain": chain,
        "serial_number": serial,
    }));
    resp.warnings = warnings;
    Ok(resp)
}

/// `intermediate/set-signed`: imports the signed certificate of a key this
/// mount generated (and the chain given with it) as a new issuer.
pub async fn set_signed(ctx: &EngineCtx<'_>, req: &Request) -> Result<Response> {
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return Err(Error::UnsupportedOperation);
    }
    let p = Params(&req.data);
    let bundle = p
        .str("certificate")?
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| Error::bad("the certificate field is required"))?;
    let certs = issuers::split_pem(bundle);
    if certs.is_empty() {
        return Err(Error::bad("no certificate found in the certificate field"));
    }
    for c in &certs {
        store::facts(c)?;
    }
    // The first certificate whose public key is one of this mount's keys.
    let mut found: Option<(usize, String)> = None;
    'outer: for key_id in ctx.view.list("key/").await? {
        let Some(k) = ctx
            .view
            .get_json::<super::keys::StoredKey>(&format!("key/{key_id}"))
            .await?
        else {
            continue;
        };
        let public = k.load()?.public_der();
        for (i, c) in certs.iter().enumerate() {
            if issuers::spki_of(c).as_deref() == Some(public.as_slice()) {
                found = Some((i, key_id.clone()));
                break 'outer;
            }
        }
    }
    let Some((idx, key_id)) = found else {
        return Err(Error::bad(
            "none of the given certificates is for a key of this mount (generate one with intermediate/generate first)",
        ));
    };
    let own = certs[idx].clone();
    if !issuers::is_ca(&own) {
        return Err(Error::bad("the certificate is not a CA certificate"));
    }
    // Already imported: answer the existing issuer.
    for id in issuers::ids(ctx).await? {
        if let Some(i) = ctx
            .view
            .get_json::<StoredIssuer>(&format!("issuer/{id}"))
            .await?
        {
            if i.certificate.trim() == own.trim() {
                return Ok(Response::data(json!({
                    "existing_issuers": [i.issuer_id],
                    "existing_keys": [key_id],
                    "imported_issuers": null,
                    "imported_keys": null,
                    "mapping": {i.issuer_id.clone(): key_id},
                })));
            }
        }
    }
    let mut chain = vec![own.clone()];
    chain.extend(
        certs
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != idx)
            .map(|(_, c)| c.clone()),
    );
    let issuer = issuers::put_issuer(ctx, "", &key_id, own, chain.clone()).await?;
    let mut imported = vec![issuer.issuer_id.clone()];
    let mut mapping = Map::new();
    mapping.insert(issuer.issuer_id.clone(), json!(key_id));
    // The rest of the bundle's CA certificates become issuers without a key
    // (they cannot sign here), as OpenBao imports them.
    let known = known_certificates(ctx).await?;
    for (i, c) in chain.iter().enumerate().skip(1) {
        if !issuers::is_ca(c) || known.iter().any(|k| k.trim() == c.trim()) {
            continue;
        }
        let rest = chain[i..].to_vec();
        let other = issuers::put_issuer(ctx, "", "", c.clone(), rest).await?;
        mapping.insert(other.issuer_id.clone(), json!(""));
        imported.push(other.issuer_id);
    }
    let mut resp = Response::data(json!({
        "existing_issuers": null,
        "existing_keys": null,
        "imported_issuers": imported,
        "imported_keys": null,
        "mapping": mapping,
    }));
    aia_warning(ctx, &mut resp.warnings, false).await?;
    Ok(resp)
}

async fn known_certificates(ctx: &EngineCtx<'_>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for id in issuers::ids(ctx).await? {
        if let Some(i) = ctx
            .view
            .get_json::<StoredIssuer>(&format!("issuer/{id}"))
            .await?
        {
            out.push(i.certificate);
        }
    }
    Ok(out)
}

fn pem_to_der(pem: &str) -> Result<Vec<u8>> {
    let (_, p) =
        parse_x509_pem(pem.as_bytes()).map_err(|_| Error::corrupt("stored certificate"))?;
    Ok(p.contents)
}

/// `ca`, `ca/pem`, `ca_chain`, `cert/ca`, `cert/ca_chain` (of the default issuer).
pub async fn read_ca(ctx: &EngineCtx<'_>, req: &Request, what: &str) -> Result<Response> {
    if req.operation != Operation::Read {
        return Err(Error::UnsupportedOperation);
    }
    let issuer = issuers::resolve(ctx, "default").await?;
    match (what, issuer) {
        ("ca", Some(i)) => Ok(Response::bytes(DER_CERT, pem_to_der(&i.certificate)?)),
        ("ca/pem", Some(i)) => Ok(Response::text(PEM_CHAIN, i.certificate)),
        ("ca_chain", Some(i)) => Ok(Response::text(PEM_CHAIN, i.ca_chain.concat())),
        ("ca" | "ca/pem" | "ca_chain", None) => Ok(Response::empty().with_status(204)),
        ("cert/ca", Some(i)) => Ok(Response::data(json!({
            "certificate": i.certificate,
            "revocation_time": 0,
            "revocation_time_rfc3339": "",
        }))),
        ("cert/ca_chain", Some(i)) => Ok(Response::data(json!({
            "certificate": i.certificate,
            "ca_chain": i.ca_chain.concat(),
            "issuer_id": i.issuer_id,
            "revocation_time": 0,
            "revocation_time_rfc3339": "",
        }))),
        (_, None) => Err(Error::bad("no default issuer currently configured")),
        _ => Err(Error::NotFound),
    }
}

/// A `cert/:serial` answer (the issuer is named once revoked, as OpenBao does).
pub fn cert_json(pem: &str, issuer_id: &str, revoked: i64) -> Value {
    let mut v = json!({
        "certificate": pem,
        "revocation_time": revoked,
        "revocation_time_rfc3339": if revoked > 0 {
            chrono::DateTime::from_timestamp(revoked, 0).map(|t| crate::util::rfc3339(&t)).unwrap_or_default()
        } else {
            String::new()
        },
    });
    if revoked > 0 {
        v["issuer_id"] = json!(issuer_id);
    }
    v
}

/// LIST `issuers`.
pub async fn list_issuers(ctx: &EngineCtx<'_>, req: &Request) -> Result<Response> {
    if req.operation != Operation::List {
        return Err(Error::UnsupportedOperation);
    }
    let cfg = issuers::config(ctx).await?;
    let ids = issuers::ids(ctx).await?;
    if ids.is_empty() {
        return Err(Error::NotFound);
    }
    let mut info = Map::new();
    for id in &ids {
        if let Some(i) = ctx
            .view
            .get_json::<StoredIssuer>(&format!("issuer/{id}"))
            .await?
        {
            let serial = store::facts(&i.certificate)
                .map(|f| f.0)
                .unwrap_or_default();
            info.insert(
                id.clone(),
                json!({
                    "issuer_name": i.issuer_name,
                    "is_default": *id == cfg.default,
                    "serial_number": serial,
                    "key_id": i.key_id,
                }),
            );
        }
    }
    Ok(Response::data(json!({ "keys": ids, "key_info": info })))
}

/// `issuer/:ref` (read, or update of `issuer_name`), `issuer/:ref/pem`, `issuer/:ref/json`, `issuer/:ref/der`.
pub async fn issuer(ctx: &EngineCtx<'_>, req: &Request, rest: &str) -> Result<Response> {
    let (reference, sub) = match rest.split_once('/') {
        Some((r, s)) => (r, s),
        None => (rest, ""),
    };
    let i = issuers::resolve(ctx, reference).await?;
    match (req.operation, sub) {
        (Operation::Read, "") | (Operation::Read, "json") => {
            let i = i.ok_or_else(not_found_issuer)?;
            Ok(Response::data(if sub.is_empty() {
                issuers::to_json(&i)
            } else {
                json!({"certificate": i.certificate, "ca_chain": i.ca_chain, "issuer_id": i.issuer_id, "issuer_name": i.issuer_name})
            }))
        }
        (Operation::Read, "pem") => {
            let i = i.ok_or_else(not_found_issuer)?;
            Ok(Response::text(PEM_CHAIN, i.certificate))
        }
        (Operation::Read, "der") => {
            let i = i.ok_or_else(not_found_issuer)?;
            Ok(Response::bytes(DER_CERT, pem_to_der(&i.certificate)?))
        }
        (Operation::Create | Operation::Update | Operation::Patch, "") => {
            let mut i = i.ok_or_else(not_found_issuer)?;
            let p = Params(&req.data);
            if let Some(name) = p.str("issuer_name")? {
                if !name.is_empty() {
                    issuers::check_name("issuer_name", name)?;
                    if let Some(other) = issuers::resolve(ctx, name).await? {
                        if other.issuer_id != i.issuer_id {
                            return Err(Error::bad(format!(
                                "issuer name {name:?} is already in use"
                            )));
                        }
                    }
                }
                i.issuer_name = name.to_string();
            }
            ctx.view
                .put_json(&format!("issuer/{}", i.issuer_id), &i)
                .await?;
            Ok(Response::data(issuers::to_json(&i)))
        }
        _ => Err(Error::UnsupportedOperation),
    }
}

fn not_found_issuer() -> Error {
    Error::bad("unable to find PKI issuer for reference")
}

/// `config/issuers`: read or set the default issuer.
pub async fn config_issuers(ctx: &EngineCtx<'_>, req: &Request) -> Result<Response> {
    match req.operation {
        Operation::Read => {
            let cfg = issuers::config(ctx).await?;
            Ok(Response::data(json!({
                "default": cfg.default,
                "default_follows_latest_issuer": false,
            })))
        }
        Operation::Create | Operation::Update => {
            let p = Params(&req.data);
            let reference = p
                .str("default")?
                .filter(|s| !s.is_empty())
                .ok_or_else(|| Error::bad("the default field is required"))?;
            if reference == "default" {
                return Err(Error::bad(
                    "invalid issuer specification; must be a name or id, not 'default'",
                ));
            }
            let i = issuers::resolve(ctx, reference)
                .await?
                .ok_or_else(not_found_issuer)?;
            let cfg = issuers::IssuersConfig {
                default: i.issuer_id.clone(),
            };
            ctx.view.put_json("config/issuers", &cfg).await?;
            Ok(Response::data(json!({
                "default": cfg.default,
                "default_follows_latest_issuer": false,
            })))
        }
        _ => Err(Error::UnsupportedOperation),
    }
}

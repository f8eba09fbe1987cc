//! `issue/:role` and `sign/:role`: leaf certificates under a role's rules,
//! and the parameter building CA generation shares.

use ::time::OffsetDateTime;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    SanType, SerialNumber,
};
use serde_json::{json, Map, Value};
use x509_parser::prelude::*;

use super::issuers::{self, Signer};
use super::keys::{Key, KeyType};
use super::names::{self, Name};
use super::roles::{self, Role};
use super::{store, urls};
use crate::engine::EngineCtx;
use crate::util::{format_duration, now, Params};
use crate::{Error, LeaseRequest, Operation, Request, Response, Result};

use coffer_engine::mounts::SYSTEM_MAX_TTL as SYSTEM_TTL;

/// A key usage by Vault's name.
pub fn key_usage(name: &str) -> Option<KeyUsagePurpose> {
    let n = name.trim().to_ascii_lowercase();
    Some(match n.as_str() {
        "digitalsignature" => KeyUsagePurpose::DigitalSignature,
        "contentcommitment" | "nonrepudiation" => KeyUsagePurpose::ContentCommitment,
        "keyencipherment" => KeyUsagePurpose::KeyEncipherment,
        "dataencipherment" => KeyUsagePurpose::DataEncipherment,
        "keyagreement" => KeyUsagePurpose::KeyAgreement,
        "certsign" => KeyUsagePurpose::KeyCertSign,
        "crlsign" => KeyUsagePurpose::CrlSign,
        "encipheronly" => KeyUsagePurpose::EncipherOnly,
        "decipheronly" => KeyUsagePurpose::DecipherOnly,
        _ => return None,
    })
}

fn ext_usage(name: &str) -> Option<ExtendedKeyUsagePurpose> {
    Some(match name.to_ascii_lowercase().as_str() {
        "serverauth" => ExtendedKeyUsagePurpose::ServerAuth,
        "clientauth" => ExtendedKeyUsagePurpose::ClientAuth,
        "codesigning" => ExtendedKeyUsagePurpose::CodeSigning,
        "emailprotection" => ExtendedKeyUsagePurpose::EmailProtection,
        "timestamping" => ExtendedKeyUsagePurpose::TimeStamping,
        "ocspsigning" => ExtendedKeyUsagePurpose::OcspSigning,
        _ => return None,
    })
}

/// A fresh random serial: 20 octets, positive, no leading zero octet.
pub fn new_serial() -> SerialNumber {
    let mut b = coffer_crypto::random::bytes(20);
    b[0] = (b[0] & 0x7f).max(1);
    SerialNumber::from_slice(&b)
}

/// Unix seconds as the `time` crate's date.
pub fn at(secs: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(secs).map_err(|_| Error::bad("time out of range"))
}

/// The mount's maximum TTL (the system's when unset).
pub fn mount_max(ctx: &EngineCtx<'_>) -> u64 {
    match ctx.mount.config.max_lease_ttl {
        0 => SYSTEM_TTL,
        t => t,
    }
}

/// The TTL to use: the requested one, else `default`, else the mount's
/// default; capped at `max` with Vault's warning.
pub fn pick_ttl(
    ctx: &EngineCtx<'_>,
    requested: Option<u64>,
    default: u64,
    max: u64,
    warnings: &mut Vec<String>,
) -> u64 {
    let mount_default = match ctx.mount.config.default_lease_ttl {
        0 => SYSTEM_TTL,
        t => t,
    };
    let ttl = requested
        .filter(|t| *t > 0)
        .or((default > 0).then_some(default))
        .unwrap_or(mount_default);
    if ttl > max {
        warnings.push(format!(
            "TTL \"{}\" is longer than permitted maxTTL \"{}\", so maxTTL is being used",
            format_duration(ttl),
            format_duration(max)
        ));
        return max;
    }
    ttl
}

/// A subject: the common name plus the role's or request's organization fields.
pub fn subject(cn: &str, p: &Params<'_>, role: Option<&Role>) -> Result<DistinguishedName> {
    let mut dn = DistinguishedName::new();
    let field = |key: &str, from_role: Option<&Vec<String>>| -> Result<Vec<String>> {
        Ok(match p.str_list(key)? {
            Some(v) if !v.is_empty() => v,
            _ => from_role.cloned().unwrap_or_default(),
        })
    };
    for c in field("country", role.map(|r| &r.country))? {
        dn.push(DnType::CountryName, c);
    }
    for o in field("organization", role.map(|r| &r.organization))? {
        dn.push(DnType::OrganizationName, o);
    }
    for u in field("ou", role.map(|r| &r.ou))? {
        dn.push(DnType::OrganizationalUnitName, u);
    }
    if !cn.is_empty() {
        dn.push(DnType::CommonName, cn);
    }
    Ok(dn)
}

/// SAN entries for judged names.
pub fn sans(list: &[Name]) -> Result<Vec<SanType>> {
    list.iter()
        .map(|n| match n {
            Name::Dns(d) => d
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|_| Error::bad(format!("invalid DNS name {d:?}"))),
            Name::Ip(ip) => Ok(SanType::IpAddress(*ip)),
        })
        .collect()
}

/// What a request asks for: common name and SANs.
pub struct Requested {
    /// The common name.
    pub common_name: String,
    /// DNS (or address) alt names.
    pub alt_names: Vec<String>,
    /// IP SANs.
    pub ip_sans: Vec<String>,
}

impl Requested {
    /// From a request's parameters.
    pub fn from(p: &Params<'_>) -> Result<Self> {
        Ok(Requested {
            common_name: p.str("common_name")?.unwrap_or("").trim().to_string(),
            alt_names: p.str_list("alt_names")?.unwrap_or_default(),
            ip_sans: p.str_list("ip_sans")?.unwrap_or_default(),
        })
    }
}

/// The validity window for `ttl`, back-dated by `backdate`. Past the
/// issuer's NotAfter it is refused, or (`past_ca` given, for a CA being
/// signed, as OpenBao does) kept with a warning.
pub fn window(
    signer: &Signer,
    ttl: u64,
    backdate: u64,
    past_ca: Option<&mut Vec<String>>,
) -> Result<(OffsetDateTime, OffsetDateTime)> {
    let start = now().timestamp();
    let end = start.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX / 2));
    let ca_end = signer.not_after()?;
    if end > ca_end {
        if let Some(w) = past_ca {
            w.push("The expiration time for the signed certificate is after the CA's expiration time. If the new certificate is not treated as a root, validation paths with the certificate past the issuing CA's expiration time will fail.".into());
            let back = i64::try_from(backdate).unwrap_or(0).min(86_400);
            return Ok((at(start - back)?, at(end)?));
        }
        return Err(Error::bad(format!(
            "cannot satisfy request, as TTL would result in notAfter of {} that is beyond the expiration of the CA certificate at {}",
            crate::util::rfc3339(&chrono::DateTime::from_timestamp(end, 0).unwrap_or_default()),
            crate::util::rfc3339(&chrono::DateTime::from_timestamp(ca_end, 0).unwrap_or_default()),
        )));
    }
    let back = i64::try_from(backdate).unwrap_or(0).min(86_400);
    Ok((at(start - back)?, at(end)?))
}

/// A leaf certificate's parameters under `role`.
async fn leaf_params(
    ctx: &EngineCtx<'_>,
    role: &Role,
    p: &Params<'_>,
    req: &Requested,
    signer: &Signer,
    warnings: &mut Vec<String>,
) -> Result<(CertificateParams, u64)> {
    let names = names::judge(role, &req.common_name, &req.alt_names, &req.ip_sans)?;
    let exclude_cn = p.bool("exclude_cn_from_sans")?.unwrap_or(false);
    // The subject's CN is the common name as judged.
    let cn_name = if req.common_name.is_empty() {
        None
    } else {
        names.first().cloned()
    };
    let cn = match &cn_name {
        Some(Name::Dns(d)) => d.clone(),
        Some(Name::Ip(ip)) => ip.to_string(),
        None => String::new(),
    };
    let san_list: Vec<Name> = names
        .iter()
        .filter(|n| !(exclude_cn && Some(*n) == cn_name.as_ref()))
        .cloned()
        .collect();
    let max = match role.max_ttl {
        0 => mount_max(ctx),
        t => t.min(mount_max(ctx)),
    };
    let ttl = pick_ttl(ctx, p.duration("ttl")?, role.ttl, max, warnings);
    let (not_before, not_after) = window(signer, ttl, role.not_before_duration, None)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(&cn, p, Some(role))?;
    params.subject_alt_names = sans(&san_list)?;
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(new_serial());
    params.is_ca = IsCa::NoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = role.key_usage.iter().filter_map(|k| key_usage(k)).collect();
    let mut eku = Vec::new();
    for (flag, u) in [
        (role.server_flag, ExtendedKeyUsagePurpose::ServerAuth),
        (role.client_flag, ExtendedKeyUsagePurpose::ClientAuth),
        (role.code_signing_flag, ExtendedKeyUsagePurpose::CodeSigning),
        (
            role.email_protection_flag,
            ExtendedKeyUsagePurpose::EmailProtection,
        ),
    ] {
        if flag {
            eku.push(u);
        }
    }
    for u in role.ext_key_usage.iter().filter_map(|n| ext_usage(n)) {
        if !eku.contains(&u) {
            eku.push(u);
        }
    }
    params.extended_key_usages = eku;
    params.crl_distribution_points = urls::crl_points(ctx).await?;
    Ok((params, ttl))
}

/// Handles `issue/:role` (`sign == false`) and `sign/:role`.
pub async fn handle(
    ctx: &EngineCtx<'_>,
    req: &Request,
    name: &str,
    sign: bool,
) -> Result<Response> {
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return Err(Error::UnsupportedOperation);
    }
    roles::validate_name(name)?;
    let role = roles::load(ctx, name)
        .await?
        .ok_or_else(|| Error::bad(format!("unknown role: {name}")))?;
    let p = Params(&req.data);
    let data = issue_with(ctx, &role, &p, sign).await?;
    Ok(data)
}

/// Issues (or signs) under `role` with the parameters `p`; the answer
/// carries the lease when the role asks for one.
pub async fn issue_with(
    ctx: &EngineCtx<'_>,
    role: &Role,
    p: &Params<'_>,
    sign: bool,
) -> Result<Response> {
    match p.str("format")?.unwrap_or("pem") {
        "pem" | "" => {}
        other => {
            return Err(Error::bad(format!(
                "unsupported format {other:?}: Coffer answers format=pem"
            )))
        }
    }
    let mut warnings = Vec::new();
    let issuer_ref = p
        .str("issuer_ref")?
        .filter(|s| !s.is_empty())
        .unwrap_or(&role.issuer_ref)
        .to_string();
    let signer = issuers::signer(ctx, &issuer_ref).await?;
    let (cert_pem, key) = if sign {
        let csr_pem = p
            .str("csr")?
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| Error::bad("the csr field is required"))?;
        let csr = parse_csr(csr_pem)?;
        check_csr_key(role, &csr)?;
        let mut requested = Requested::from(p)?;
        if requested.common_name.is_empty() {
            requested.common_name = csr.common_name.clone();
        }
        requested.alt_names.extend(csr.dns.iter().cloned());
        requested.ip_sans.extend(csr.ips.iter().cloned());
        let (params, _) = leaf_params(ctx, role, p, &requested, &signer, &mut warnings).await?;
        let spki = rcgen::SubjectPublicKeyInfo::from_der(&csr.spki)
            .map_err(|_| Error::bad("the CSR's public key is not supported"))?;
        let cert = params
            .signed_by(&spki, &signer.rcgen()?)
            .map_err(|e| Error::bad(format!("cannot sign the certificate: {e}")))?;
        (cert.pem(), None)
    } else {
        if role.key_type == "any" {
            return Err(Error::bad(
                "role key type \"any\" not allowed for issuing certificates, only signing",
            ));
        }
        let kind = KeyType::parse(&role.key_type, Some(role.key_bits))?;
        let requested = Requested::from(p)?;
        let (params, _) = leaf_params(ctx, role, p, &requested, &signer, &mut warnings).await?;
        let key = Key::generate(kind)?;
        let cert = params
            .signed_by(key.pair(), &signer.rcgen()?)
            .map_err(|e| Error::crypto("signing the certificate", e))?;
        (cert.pem(), Some(key))
    };
    let (serial, not_after) = store::facts(&cert_pem)?;
    if !role.no_store {
        store::put(ctx, &cert_pem, &signer.issuer.issuer_id).await?;
    }
    let chain = signer.issuer.ca_chain.clone();
    let mut data = json!({
        "certificate": cert_pem,
        "issuing_ca": signer.issuer.certificate,
        "ca_chain": chain,
        "serial_number": serial,
        "expiration": not_after,
        "not_before": not_before_of(&cert_pem),
    });
    if let Some(key) = &key {
        data["private_key"] = Value::String(key.pem().to_string());
        data["private_key_type"] = json!(key.kind().name());
    }
    let mut resp = Response::data(data);
    resp.warnings = warnings;
    if role.generate_lease {
        let ttl = u64::try_from(not_after - now().timestamp()).unwrap_or(0);
        let mut internal = Map::new();
        internal.insert("serial_number".into(), json!(serial));
        internal.insert("issuer_id".into(), json!(signer.issuer.issuer_id));
        internal.insert("not_after".into(), json!(not_after));
        resp.lease = Some(LeaseRequest {
            ttl,
            max_ttl: ttl,
            renewable: false,
            internal: Value::Object(internal),
        });
    }
    Ok(resp)
}

fn not_before_of(pem: &str) -> i64 {
    parse_x509_pem(pem.as_bytes())
        .ok()
        .and_then(|(_, p)| {
            X509Certificate::from_der(&p.contents)
                .ok()
                .map(|(_, c)| c.validity().not_before.timestamp())
        })
        .unwrap_or(0)
}

/// What is read from a CSR.
pub struct Csr {
    /// The subject's common name.
    pub common_name: String,
    /// DNS SANs it asks for.
    pub dns: Vec<String>,
    /// IP SANs it asks for.
    pub ips: Vec<String>,
    /// Its SubjectPublicKeyInfo, DER.
    pub spki: Vec<u8>,
    /// Key type and size.
    pub key: KeyType,
}

/// Parses a PEM CSR and checks its signature.
pub fn parse_csr(pem: &str) -> Result<Csr> {
    let bad = || Error::bad("the csr field is not a valid PEM certificate request");
    let start = pem.find("-----BEGIN").ok_or_else(bad)?;
    let (_, p) = parse_x509_pem(&pem.as_bytes()[start..]).map_err(|_| bad())?;
    let (_, csr) = X509CertificationRequest::from_der(&p.contents).map_err(|_| bad())?;
    csr.verify_signature()
        .map_err(|_| Error::bad("the CSR's signature does not verify"))?;
    let info = &csr.certification_request_info;
    let common_name = info
        .subject
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap_or("")
        .to_string();
    let (mut dns, mut ips) = (Vec::new(), Vec::new());
    if let Some(exts) = csr.requested_extensions() {
        for ext in exts {
            if let ParsedExtension::SubjectAlternativeName(san) = ext {
                for n in &san.general_names {
                    match n {
                        GeneralName::DNSName(d) => dns.push(d.to_string()),
                        GeneralName::IPAddress(b) => {
                            let ip = match b.len() {
                                4 => <[u8; 4]>::try_from(*b).map(std::net::IpAddr::from).ok(),
                                16 => <[u8; 16]>::try_from(*b).map(std::net::IpAddr::from).ok(),
                                _ => None,
                            };
                            ips.push(ip.map(|i| i.to_string()).unwrap_or_else(|| "invalid".into()));
                        }
                        // Other SAN kinds (e-mail, URI, ...) are not issued: refuse.
                        _ => {
                            return Err(Error::bad(
                                "the CSR asks for a subject alternative name kind this role cannot issue",
                            ))
                        }
                    }
                }
            }
        }
    }
    let spki = &info.subject_pki;
    let key = match spki.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => KeyType::Rsa(rsa.key_size() as u32),
        Ok(x509_parser::public_key::PublicKey::EC(ec)) => KeyType::Ec(ec.key_size() as u32),
        _ if spki.algorithm.algorithm == x509_parser::oid_registry::OID_SIG_ED25519 => {
            KeyType::Ed25519
        }
        _ => return Err(Error::bad("the CSR's key type is not supported")),
    };
    Ok(Csr {
        common_name,
        dns,
        ips,
        spki: spki.raw.to_vec(),
        key,
    })
}

/// Refuses a CSR whose key the role does not allow.
fn check_csr_key(role: &Role, csr: &Csr) -> Result<()> {
    if role.key_type == "any" {
        if let KeyType::Rsa(b) = csr.key {
            if b < 2048 {
                return Err(Error::bad("RSA keys under 2048 bits are not allowed"));
            }
        }
        return Ok(());
    }
    let ok = match (role.key_type.as_str(), csr.key) {
        ("rsa", KeyType::Rsa(b)) => b >= role.key_bits.max(2048),
        ("ec", KeyType::Ec(b)) => b >= role.key_bits,
        ("ed25519", KeyType::Ed25519) => true,
        _ => false,
    };
    if !ok {
        return Err(Error::bad(format!(
            "role requires keys of type {} with at least {} bits; the CSR's key does not qualify",
            role.key_type, role.key_bits
        )));
    }
    Ok(())
}

//! `roles/:name`: what certificates a role issues (names, key type, TTLs,
//! usages), stored at `role/<name>`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::keys::KeyType;
use crate::engine::EngineCtx;
use crate::util::{format_duration_short, Params};
use crate::{Error, Operation, Request, Response, Result};

/// Extended key usages a role may name (Vault's spelling).
pub const EXT_KEY_USAGES: [&str; 6] = [
    "ServerAuth",
    "ClientAuth",
    "CodeSigning",
    "EmailProtection",
    "TimeStamping",
    "OCSPSigning",
];

/// A role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Role {
    /// The issuer that signs (`default`, an id or a name).
    pub issuer_ref: String,
    /// Domains names may fall under.
    pub allowed_domains: Vec<String>,
    /// Names below an allowed domain.
    pub allow_subdomains: bool,
    /// An allowed domain itself.
    pub allow_bare_domains: bool,
    /// `localhost` and `localdomain`.
    pub allow_localhost: bool,
    /// Any (valid) name.
    pub allow_any_name: bool,
    /// IP SANs.
    pub allow_ip_sans: bool,
    /// `*.` names.
    pub allow_wildcard_certificates: bool,
    /// Names must be valid hostnames.
    pub enforce_hostnames: bool,
    /// A common name is required.
    pub require_cn: bool,
    /// `rsa`, `ec`, `ed25519` (or `any` for `sign`).
    pub key_type: String,
    /// Key size (RSA bits or EC curve bits).
    pub key_bits: u32,
    /// Default certificate TTL in seconds (0: the mount's).
    pub ttl: u64,
    /// Maximum TTL in seconds (0: the mount's).
    pub max_ttl: u64,
    /// ServerAuth.
    pub server_flag: bool,
    /// ClientAuth.
    pub client_flag: bool,
    /// CodeSigning.
    pub code_signing_flag: bool,
    /// EmailProtection.
    pub email_protection_flag: bool,
    /// More extended key usages by name.
    pub ext_key_usage: Vec<String>,
    /// Key usages by name.
    pub key_usage: Vec<String>,
    /// Whether issued certificates carry a lease.
    pub generate_lease: bool,
    /// Whether issued certificates are kept out of storage.
    pub no_store: bool,
    /// Seconds NotBefore is back-dated.
    pub not_before_duration: u64,
    /// Organization of the subject.
    pub organization: Vec<String>,
    /// Organizational unit of the subject.
    pub ou: Vec<String>,
    /// Country of the subject.
    pub country: Vec<String>,
}

impl Default for Role {
    fn default() -> Self {
        Role {
            issuer_ref: "default".into(),
            allowed_domains: Vec::new(),
            allow_subdomains: false,
            allow_bare_domains: false,
            allow_localhost: true,
            allow_any_name: false,
            allow_ip_sans: true,
            allow_wildcard_certificates: true,
            enforce_hostnames: true,
            require_cn: true,
            key_type: "rsa".into(),
            key_bits: 2048,
            ttl: 0,
            max_ttl: 0,
            server_flag: true,
            client_flag: true,
            code_signing_flag: false,
            email_protection_flag: false,
            ext_key_usage: Vec::new(),
            key_usage: vec![
                "DigitalSignature".into(),
                "KeyAgreement".into(),
                "KeyEncipherment".into(),
            ],
            generate_lease: false,
            no_store: false,
            not_before_duration: 30,
            organization: Vec::new(),
            ou: Vec::new(),
            country: Vec::new(),
        }
    }
}

impl Role {
    /// The role as Vault's read shows it.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "issuer_ref": self.issuer_ref,
            "allowed_domains": self.allowed_domains,
            "allowed_domains_template": false,
            "allow_subdomains": self.allow_subdomains,
            "allow_bare_domains": self.allow_bare_domains,
            "allow_glob_domains": false,
            "allow_localhost": self.allow_localhost,
            "allow_any_name": self.allow_any_name,
            "allow_ip_sans": self.allow_ip_sans,
            "allow_wildcard_certificates": self.allow_wildcard_certificates,
            "enforce_hostnames": self.enforce_hostnames,
            "require_cn": self.require_cn,
            "key_type": self.key_type,
            "key_bits": self.key_bits,
            "ttl": self.ttl,
            "max_ttl": self.max_ttl,
            "server_flag": self.server_flag,
            "client_flag": self.client_flag,
            "code_signing_flag": self.code_signing_flag,
            "email_protection_flag": self.email_protection_flag,
            "ext_key_usage": self.ext_key_usage,
            "key_usage": self.key_usage,
            "generate_lease": self.generate_lease,
            "no_store": self.no_store,
            "not_before_duration": self.not_before_duration,
            "organization": self.organization,
            "ou": self.ou,
            "country": self.country,
        });
        // Vault fields Coffer does not support, shown at their defaults
        // (writes of them are ignored, which only ever restricts).
        let unsupported = json!({
            "allow_globs_in_identity_templates": false,
            "allow_token_displayname": false,
            "allowed_ip_sans_cidr": [],
            "allowed_other_sans": [],
            "allowed_serial_numbers": [],
            "allowed_uri_sans": [],
            "allowed_uri_sans_template": false,
            "allowed_user_ids": [],
            "basic_constraints_valid_for_non_ca": false,
            "cn_validations": ["email", "hostname"],
            "ext_key_usage_oids": [],
            "locality": [],
            "not_after": "",
            "not_after_bound": "permit",
            "not_before": "",
            "not_before_bound": "permit",
            "policy_identifiers": [],
            "postal_code": [],
            "province": [],
            "signature_bits": 0,
            "street_address": [],
            "use_csr_common_name": true,
            "use_csr_sans": true,
            "use_pss": false,
        });
        if let (Some(m), Value::Object(u)) = (v.as_object_mut(), unsupported) {
            m.extend(u);
        }
        v
    }
}

/// Checks a role name.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() || name.len() > 128 || !name.chars().all(ok) || name.starts_with('.') {
        return Err(Error::bad(format!("invalid role name {name:?}")));
    }
    Ok(())
}

/// Loads role `name`.
pub async fn load(ctx: &EngineCtx<'_>, name: &str) -> Result<Option<Role>> {
    ctx.view.get_json(&format!("role/{name}")).await
}

/// Handles `roles` (list) and `roles/:name`.
pub async fn handle(ctx: &EngineCtx<'_>, req: &Request, name: &str) -> Result<Response> {
    if name.is_empty() {
        return match req.operation {
            Operation::List => Response::list(ctx.view.list("role/").await?),
            _ => Err(Error::UnsupportedOperation),
        };
    }
    validate_name(name)?;
    match req.operation {
        Operation::Read => {
            let r = load(ctx, name).await?.ok_or(Error::NotFound)?;
            Ok(Response::data(r.to_json()))
        }
        Operation::Create | Operation::Update => write(ctx, req, name, false).await,
        Operation::Patch => write(ctx, req, name, true).await,
        Operation::Delete => {
            ctx.view.delete(&format!("role/{name}")).await?;
            Ok(Response::empty())
        }
        _ => Err(Error::UnsupportedOperation),
    }
}

fn set_bool(p: &Params<'_>, key: &str, field: &mut bool) -> Result<()> {
    if let Some(v) = p.bool(key)? {
        *field = v;
    }
    Ok(())
}

fn set_list(p: &Params<'_>, key: &str, field: &mut Vec<String>) -> Result<()> {
    if let Some(v) = p.str_list(key)? {
        *field = v
            .into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
    }
    Ok(())
}

async fn write(ctx: &EngineCtx<'_>, req: &Request, name: &str, patch: bool) -> Result<Response> {
    let p = Params(&req.data);
    let mut role = if patch {
        load(ctx, name).await?.ok_or(Error::NotFound)?
    } else {
        Role::default()
    };
    if p.bool("allow_glob_domains")?.unwrap_or(false) {
        return Err(Error::bad(
            "allow_glob_domains is not supported by Coffer's pki engine",
        ));
    }
    if p.bool("allowed_domains_template")?.unwrap_or(false) {
        return Err(Error::bad(
            "allowed_domains_template is not supported by Coffer's pki engine",
        ));
    }
    if let Some(v) = p.str("issuer_ref")? {
        role.issuer_ref = if v.is_empty() {
            "default".into()
        } else {
            v.into()
        };
    }
    set_list(&p, "allowed_domains", &mut role.allowed_domains)?;
    set_bool(&p, "allow_subdomains", &mut role.allow_subdomains)?;
    set_bool(&p, "allow_bare_domains", &mut role.allow_bare_domains)?;
    set_bool(&p, "allow_localhost", &mut role.allow_localhost)?;
    set_bool(&p, "allow_any_name", &mut role.allow_any_name)?;
    set_bool(&p, "allow_ip_sans", &mut role.allow_ip_sans)?;
    set_bool(
        &p,
        "allow_wildcard_certificates",
        &mut role.allow_wildcard_certificates,
    )?;
    set_bool(&p, "enforce_hostnames", &mut role.enforce_hostnames)?;
    set_bool(&p, "require_cn", &mut role.require_cn)?;
    set_bool(&p, "server_flag", &mut role.server_flag)?;
    set_bool(&p, "client_flag", &mut role.client_flag)?;
    set_bool(&p, "code_signing_flag", &mut role.code_signing_flag)?;
    set_bool(&p, "email_protection_flag", &mut role.email_protection_flag)?;
    set_bool(&p, "generate_lease", &mut role.generate_lease)?;
    set_bool(&p, "no_store", &mut role.no_store)?;
    set_list(&p, "ext_key_usage", &mut role.ext_key_usage)?;
    set_list(&p, "key_usage", &mut role.key_usage)?;
    set_list(&p, "organization", &mut role.organization)?;
    set_list(&p, "ou", &mut role.ou)?;
    set_list(&p, "country", &mut role.country)?;
    for d in &role.allowed_domains {
        if d.contains('*') {
            return Err(Error::bad(format!(
                "allowed_domains: {d:?}: wildcards in allowed domains need allow_glob_domains, which Coffer does not support"
            )));
        }
    }
    for e in &role.ext_key_usage {
        if !EXT_KEY_USAGES.iter().any(|k| k.eq_ignore_ascii_case(e)) {
            return Err(Error::bad(format!(
                "ext_key_usage: unknown usage {e:?} (one of {})",
                EXT_KEY_USAGES.join(", ")
            )));
        }
    }
    for k in &role.key_usage {
        if super::issue::key_usage(k).is_none() {
            return Err(Error::bad(format!("key_usage: unknown usage {k:?}")));
        }
    }
    if let Some(v) = p.str("key_type")? {
        role.key_type = v.to_string();
    }
    let bits = p.u64("key_bits")?;
    if role.key_type == "any" {
        role.key_bits = 0;
    } else {
        let kt = KeyType::parse(
            &role.key_type,
            bits.map(|b| b as u32)
                .or(if patch { Some(role.key_bits) } else { None }),
        )?;
        role.key_bits = kt.bits();
    }
    if let Some(t) = p.duration("ttl")? {
        role.ttl = t;
    }
    if let Some(t) = p.duration("max_ttl")? {
        role.max_ttl = t;
    }
    if let Some(t) = p.duration("not_before_duration")? {
        role.not_before_duration = t;
    }
    let mut warnings = Vec::new();
    if role.max_ttl > 0 && role.ttl > role.max_ttl {
        return Err(Error::bad(
            "\"ttl\" value must be less than \"max_ttl\" value",
        ));
    }
    let mount_max = ctx.mount.config.max_lease_ttl;
    if mount_max > 0 && role.max_ttl > mount_max {
        warnings.push(format!(
            "max_ttl is greater than the mount's maximum TTL of {}; issued certificates will be truncated",
            format_duration_short(mount_max)
        ));
    }
    ctx.view.put_json(&format!("role/{name}"), &role).await?;
    let mut resp = Response::data(role.to_json());
    resp.warnings = warnings;
    Ok(resp)
}

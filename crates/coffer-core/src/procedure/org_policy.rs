//! The org secrets policy: the procedure's required input, a TOML document
//! stored in Coffer with its history (`sys/coffer/org-policy`).
//!
//! Every field has a default; [`DEFAULT_TOML`] is the minimal policy
//! (store in a vault, rotate periodically, least privilege) with each
//! default's source. Parsing walks the document by hand so that an unknown
//! field, a wrong type, an unknown secret type or an unknown approver role
//! is refused with the field's full name (`rotation.max_age.api_kye`).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::dur as format_duration;
use crate::lifecycle::model::SECRET_TYPES;
use crate::util::parse_duration;
use crate::{Error, Result};

/// The roles that sign the plan.
pub const ROLES: [&str; 2] = ["security", "platform"];
/// Origins a lifecycle record may name.
pub const ORIGINS: [&str; 3] = ["internal", "third_party", "imported"];

/// The minimal org policy `coffer org-policy init` writes, each default
/// with its source.
pub const DEFAULT_TOML: &str = r#"# Coffer org secrets policy (minimal: store in a vault, rotate periodically,
# least privilege). Edit, then `coffer org-policy apply org-policy.toml`.

[scope]
organisation = ""
description = "Secrets of every production system, stored and served by Coffer."

[secrets]
# OWASP Secrets Management Cheat Sheet, "Metadata": every secret has an owner and a type.
require_owner = true
require_type = true
allowed_origins = ["internal", "third_party", "imported"]
# A third-party secret names its vendor (the link to the third-party procedure).
third_party_requires_vendor = true

[rotation]
# PCI DSS 4.0 8.3.9 / 8.6.3: change passwords and account credentials at least
# every 90 days; the same 90 days is common practice for API keys and DB credentials.
# NIST SP 800-57 Part 1, 5.3.6: cryptoperiods of one to two years for keys; 365d here.
certificate_lead_time = "30d"   # renew 30 days before NotAfter (Let's Encrypt's renewal advice)

[rotation.max_age]
api_key = "90d"
password = "90d"
db_credential = "90d"
token = "90d"
ssh_key = "365d"
other = "365d"

[tokens]
# Vault's own default maximum token TTL (32 days).
max_ttl = "768h"

[audit]
# PCI DSS 10.2: audit logs enabled; Coffer's hash chain must verify.
require_device = true
require_verified_chain = true

[access]
# Least privilege: no non-admin policy may read `*` or a whole mount.
forbid_broad_grants = true
admin_policies = ["root"]
# The initial root token is for setup only (Vault's production hardening guide).
root_token_max_age = "24h"
# PCI DSS 7.2.5.1 / SOC 2 CC6.2: periodic access review; quarterly.
review_cadence = "90d"
stale_after = "90d"
max_readers = 5

[storage]
require_durable = true
require_tls = true
# NIST SP 800-57: rotate the encryption key term at least yearly.
max_key_age = "365d"

[revocation]
# OWASP cheat sheet, "Break glass": exercise the emergency revocation; yearly drill.
drill_max_age = "365d"

[scan]
# Repositories (local paths, as `coffer check` is run) that must scan clean
# (PCI DSS 8.6.2: no hard-coded credentials). Each may carry a baseline.
repositories = []

[approvals]
required = ["security", "platform"]

[approvals.roles.security]
# A token holding any of these policies (or with one of these display names) signs as security.
policies = ["security-officer"]
display_names = []

[approvals.roles.platform]
policies = ["platform-owner"]
display_names = []
"#;

/// One repository that must scan clean.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repository {
    /// Its path where `coffer check` runs.
    pub path: String,
    /// Its baseline file, relative to the repository, if any.
    pub baseline: Option<String>,
}

/// Who signs as one role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// Policies whose holders sign as this role.
    pub policies: Vec<String>,
    /// Token display names (e.g. `userpass-ana`) that sign as this role.
    pub display_names: Vec<String>,
}

/// The parsed policy; durations in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrgPolicy {
    /// The organisation's name.
    pub organisation: String,
    /// Scope of the plan.
    pub description: String,
    /// Every secret needs an owner.
    pub require_owner: bool,
    /// Every secret needs a type.
    pub require_type: bool,
    /// Allowed origins.
    pub allowed_origins: Vec<String>,
    /// Third-party secrets need a vendor.
    pub third_party_requires_vendor: bool,
    /// Maximum rotation age per secret type (types not listed: no limit).
    pub max_age: std::collections::BTreeMap<String, u64>,
    /// Certificates fall due this long before NotAfter.
    pub certificate_lead_time: u64,
    /// Longest token TTL allowed.
    pub max_token_ttl: u64,
    /// At least one audit device.
    pub require_audit_device: bool,
    /// Its chain verifies.
    pub require_verified_chain: bool,
    /// Broad grants (read on `*` or a whole mount) are blockers.
    pub forbid_broad_grants: bool,
    /// Policies exempt from the broad-grant rule.
    pub admin_policies: Vec<String>,
    /// Root tokens older than this are blockers.
    pub root_token_max_age: u64,
    /// Access-review cadence.
    pub review_cadence: u64,
    /// A grant unused this long is stale.
    pub stale_after: u64,
    /// A secret with more readers is over-shared.
    pub max_readers: u64,
    /// Durable storage (not `--dev`, not in memory).
    pub require_durable: bool,
    /// TLS on the listener.
    pub require_tls: bool,
    /// The active key term must be younger than this.
    pub max_key_age: u64,
    /// The emergency revocation must have run or been drilled within this.
    pub drill_max_age: u64,
    /// Repositories that must scan clean.
    pub repositories: Vec<Repository>,
    /// Roles whose approval the plan needs.
    pub required_approvals: Vec<String>,
    /// How each role maps to Coffer identities.
    pub roles: std::collections::BTreeMap<String, Role>,
}

impl OrgPolicy {
    /// The policy as JSON, durations also as text.
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        let ages: serde_json::Map<String, Value> = self
            .max_age
            .iter()
            .map(|(k, s)| (k.clone(), json!(format_duration(*s))))
            .collect();
        v["max_age_text"] = Value::Object(ages);
        v
    }

    /// The role names `token_policies` and `display_name` sign as.
    pub fn roles_of(&self, policies: &[String], display_name: &str) -> Vec<String> {
        self.roles
            .iter()
            .filter(|(_, r)| {
                r.policies.iter().any(|p| policies.contains(p))
                    || r.display_names.iter().any(|d| d == display_name)
            })
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// A field error: `org policy: <field>: <message>` (400).
fn field_err(field: &str, msg: impl std::fmt::Display) -> Error {
    Error::bad(format!("org policy: {field}: {msg}"))
}

/// A table being read, with its dotted name.
struct Tbl<'a> {
    t: &'a toml::Table,
    name: String,
}

impl<'a> Tbl<'a> {
    fn field(&self, k: &str) -> String {
        if self.name.is_empty() {
            k.to_string()
        } else {
            format!("{}.{k}", self.name)
        }
    }

    fn known(&self, keys: &[&str]) -> Result<()> {
        for k in self.t.keys() {
            if !keys.contains(&k.as_str()) {
                return Err(field_err(
                    &self.field(k),
                    format!("unknown field (known: {})", keys.join(", ")),
                ));
            }
        }
        Ok(())
    }

    fn sub(&self, k: &str) -> Result<Option<Tbl<'a>>> {
        match self.t.get(k) {
            None => Ok(None),
            Some(toml::Value::Table(t)) => Ok(Some(Tbl {
                t,
                name: self.field(k),
            })),
            Some(_) => Err(field_err(&self.field(k), "expected a table")),
        }
    }

    fn bool(&self, k: &str, default: bool) -> Result<bool> {
        match self.t.get(k) {
            None => Ok(default),
            Some(toml::Value::Boolean(b)) => Ok(*b),
            Some(_) => Err(field_err(&self.field(k), "expected true or false")),
        }
    }

    fn string(&self, k: &str, default: &str) -> Result<String> {
        match self.t.get(k) {
            None => Ok(default.to_string()),
            Some(toml::Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(field_err(&self.field(k), "expected a string")),
        }
    }

    fn duration(&self, k: &str, default: u64) -> Result<u64> {
        match self.t.get(k) {
            None => Ok(default),
            Some(v) => duration_of(&self.field(k), v),
        }
    }

    fn u64(&self, k: &str, default: u64) -> Result<u64> {
        match self.t.get(k) {
            None => Ok(default),
            Some(toml::Value::Integer(n)) if *n >= 0 => Ok(*n as u64),
            Some(_) => Err(field_err(&self.field(k), "expected a non-negative integer")),
        }
    }

    fn strings(&self, k: &str, default: &[&str]) -> Result<Vec<String>> {
        match self.t.get(k) {
            None => Ok(default.iter().map(|s| s.to_string()).collect()),
            Some(toml::Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    toml::Value::String(s) => Ok(s.clone()),
                    _ => Err(field_err(
                        &format!("{}[{i}]", self.field(k)),
                        "expected a string",
                    )),
                })
                .collect(),
            Some(_) => Err(field_err(&self.field(k), "expected a list of strings")),
        }
    }
}

fn duration_of(field: &str, v: &toml::Value) -> Result<u64> {
    match v {
        toml::Value::String(s) => parse_duration(s)
            .filter(|d| *d > 0)
            .ok_or_else(|| field_err(field, "expected a positive duration such as 90d or 24h")),
        _ => Err(field_err(
            field,
            "expected a duration string such as \"90d\"",
        )),
    }
}

/// Parses and validates a policy document.
pub fn parse(text: &str) -> Result<OrgPolicy> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        // The message only (never the document's text around the error).
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let msg = e
            .message()
            .lines()
            .next()
            .unwrap_or("invalid TOML")
            .to_string();
        match line {
            Some(l) => Error::bad(format!("org policy: line {l}: {msg}")),
            None => Error::bad(format!("org policy: {msg}")),
        }
    })?;
    let root = Tbl {
        t: &table,
        name: String::new(),
    };
    root.known(&[
        "scope",
        "secrets",
        "rotation",
        "tokens",
        "audit",
        "access",
        "storage",
        "revocation",
        "scan",
        "approvals",
    ])?;
    let empty = toml::Table::new();
    fn or_empty<'b>(t: Option<Tbl<'b>>, empty: &'b toml::Table, name: &str) -> Tbl<'b> {
        t.unwrap_or(Tbl {
            t: empty,
            name: name.to_string(),
        })
    }
    // Borrow-friendly: read each section into an owned value.
    let scope = root.sub("scope")?;
    let scope = or_empty(scope, &empty, "scope");
    scope.known(&["organisation", "description"])?;

    let secrets = or_empty(root.sub("secrets")?, &empty, "secrets");
    secrets.known(&[
        "require_owner",
        "require_type",
        "allowed_origins",
        "third_party_requires_vendor",
    ])?;
    let allowed_origins = secrets.strings("allowed_origins", &ORIGINS)?;
    for (i, o) in allowed_origins.iter().enumerate() {
        if !ORIGINS.contains(&o.as_str()) {
            return Err(field_err(
                &format!("secrets.allowed_origins[{i}]"),
                format!("unknown origin {o:?} (known: {})", ORIGINS.join(", ")),
            ));
        }
    }

    let rotation = or_empty(root.sub("rotation")?, &empty, "rotation");
    rotation.known(&["max_age", "certificate_lead_time"])?;
    let mut max_age = std::collections::BTreeMap::new();
    match rotation.sub("max_age")? {
        None => {
            for (k, d) in [
                ("api_key", 90),
                ("password", 90),
                ("db_credential", 90),
                ("token", 90),
                ("ssh_key", 365),
                ("other", 365),
            ] {
                max_age.insert(k.to_string(), d * 86_400);
            }
        }
        Some(t) => {
            for (k, v) in t.t {
                let field = t.field(k);
                if !SECRET_TYPES.contains(&k.as_str()) {
                    return Err(field_err(
                        &field,
                        format!("unknown secret type (known: {})", SECRET_TYPES.join(", ")),
                    ));
                }
                max_age.insert(k.clone(), duration_of(&field, v)?);
            }
        }
    }
    let certificate_lead_time = rotation.duration(
        "certificate_lead_time",
        crate::lifecycle::model::DEFAULT_CERT_LEAD,
    )?;

    let tokens = or_empty(root.sub("tokens")?, &empty, "tokens");
    tokens.known(&["max_ttl"])?;
    let audit = or_empty(root.sub("audit")?, &empty, "audit");
    audit.known(&["require_device", "require_verified_chain"])?;
    let access = or_empty(root.sub("access")?, &empty, "access");
    access.known(&[
        "forbid_broad_grants",
        "admin_policies",
        "root_token_max_age",
        "review_cadence",
        "stale_after",
        "max_readers",
    ])?;
    let storage = or_empty(root.sub("storage")?, &empty, "storage");
    storage.known(&["require_durable", "require_tls", "max_key_age"])?;
    let revocation = or_empty(root.sub("revocation")?, &empty, "revocation");
    revocation.known(&["drill_max_age"])?;

    let scan = or_empty(root.sub("scan")?, &empty, "scan");
    scan.known(&["repositories"])?;
    let mut repositories = Vec::new();
    match scan.t.get("repositories") {
        None => {}
        Some(toml::Value::Array(a)) => {
            for (i, v) in a.iter().enumerate() {
                let field = format!("scan.repositories[{i}]");
                match v {
                    toml::Value::String(s) if !s.trim().is_empty() => {
                        repositories.push(Repository {
                            path: s.clone(),
                            baseline: None,
                        })
                    }
                    toml::Value::Table(t) => {
                        let r = Tbl {
                            t,
                            name: field.clone(),
                        };
                        r.known(&["path", "baseline"])?;
                        let path = r.string("path", "")?;
                        if path.trim().is_empty() {
                            return Err(field_err(&r.field("path"), "a path is required"));
                        }
                        let baseline = r.string("baseline", "")?;
                        repositories.push(Repository {
                            path,
                            baseline: (!baseline.is_empty()).then_some(baseline),
                        });
                    }
                    _ => {
                        return Err(field_err(
                            &field,
                            "expected a path or { path = \"...\", baseline = \"...\" }",
                        ))
                    }
                }
            }
        }
        Some(_) => return Err(field_err("scan.repositories", "expected a list")),
    }

    let approvals = or_empty(root.sub("approvals")?, &empty, "approvals");
    approvals.known(&["required", "roles"])?;
    let mut roles = std::collections::BTreeMap::new();
    let role_table = approvals.sub("roles")?;
    if role_table.is_none() {
        for (name, policy) in [
            ("security", "security-officer"),
            ("platform", "platform-owner"),
        ] {
            roles.insert(
                name.to_string(),
                Role {
                    policies: vec![policy.to_string()],
                    display_names: Vec::new(),
                },
            );
        }
    }
    if let Some(rt) = role_table {
        for (name, v) in rt.t {
            let field = rt.field(name);
            if !ROLES.contains(&name.as_str()) {
                return Err(field_err(
                    &field,
                    format!("unknown role (known: {})", ROLES.join(", ")),
                ));
            }
            let toml::Value::Table(t) = v else {
                return Err(field_err(&field, "expected a table"));
            };
            let r = Tbl { t, name: field };
            r.known(&["policies", "display_names"])?;
            let role = Role {
                policies: r.strings("policies", &[])?,
                display_names: r.strings("display_names", &[])?,
            };
            if role.policies.iter().any(|p| p == "root") {
                return Err(field_err(
                    &r.field("policies"),
                    "root cannot sign: name the policy of a person's identity",
                ));
            }
            roles.insert(name.clone(), role);
        }
    }
    let required_approvals = approvals.strings("required", &ROLES)?;
    for (i, r) in required_approvals.iter().enumerate() {
        let field = format!("approvals.required[{i}]");
        if !ROLES.contains(&r.as_str()) {
            return Err(field_err(
                &field,
                format!("unknown role {r:?} (known: {})", ROLES.join(", ")),
            ));
        }
        let mapped = roles
            .get(r)
            .is_some_and(|x: &Role| !x.policies.is_empty() || !x.display_names.is_empty());
        if !mapped {
            return Err(field_err(
                &field,
                format!("role {r:?} is not mapped: set approvals.roles.{r}.policies"),
            ));
        }
    }

    Ok(OrgPolicy {
        organisation: scope.string("organisation", "")?,
        description: scope.string("description", "")?,
        require_owner: secrets.bool("require_owner", true)?,
        require_type: secrets.bool("require_type", true)?,
        allowed_origins,
        third_party_requires_vendor: secrets.bool("third_party_requires_vendor", true)?,
        max_age,
        certificate_lead_time,
        max_token_ttl: tokens.duration("max_ttl", 768 * 3600)?,
        require_audit_device: audit.bool("require_device", true)?,
        require_verified_chain: audit.bool("require_verified_chain", true)?,
        forbid_broad_grants: access.bool("forbid_broad_grants", true)?,
        admin_policies: access.strings("admin_policies", &["root"])?,
        root_token_max_age: access.duration("root_token_max_age", 86_400)?,
        review_cadence: access.duration("review_cadence", 90 * 86_400)?,
        stale_after: access.duration("stale_after", 90 * 86_400)?,
        max_readers: access.u64("max_readers", 5)?,
        require_durable: storage.bool("require_durable", true)?,
        require_tls: storage.bool("require_tls", true)?,
        max_key_age: storage.duration("max_key_age", 365 * 86_400)?,
        drill_max_age: revocation.duration("drill_max_age", 365 * 86_400)?,
        repositories,
        required_approvals,
        roles,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_parses_with_its_documented_values() {
        let p = parse(DEFAULT_TOML).unwrap();
        assert_eq!(p.max_age["api_key"], 90 * 86_400);
        assert_eq!(p.max_token_ttl, 768 * 3600);
        assert_eq!(p.required_approvals, ["security", "platform"]);
        assert_eq!(p.roles["security"].policies, ["security-officer"]);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                "[rotation.max_age]\napi_kye = \"90d\"\n",
                "rotation.max_age.api_kye",
            ),
            (
                "[rotation.max_age]\napi_key = 90\n",
                "rotation.max_age.api_key",
            ),
            ("[tokens]\nmax_ttl = \"soon\"\n", "tokens.max_ttl"),
            ("[access]\nmax_readers = \"5\"\n", "access.max_readers"),
            (
                "[approvals]\nrequired = [\"ciso\"]\n",
                "approvals.required[0]",
            ),
            (
                "[approvals.roles.ciso]\npolicies = [\"x\"]\n",
                "approvals.roles.ciso",
            ),
            (
                "[secrets]\nallowed_origins = [\"mars\"]\n",
                "secrets.allowed_origins[0]",
            ),
            ("[bogus]\n", "bogus"),
            ("[scan]\nrepositories = [3]\n", "scan.repositories[0]"),
        ];
        for (text, field) in cases {
            let e = parse(text).unwrap_err();
            let msg = e.messages().join(" ");
            assert_eq!(e.status(), 400);
            assert!(msg.contains(&format!(" {field}:")), "{text} -> {msg}");
        }
        let e = parse("a = [").unwrap_err();
        assert!(e.messages()[0].contains("line 1"), "{:?}", e.messages());
    }
}

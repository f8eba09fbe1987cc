//! AppRole SecretIDs: what is stored for one (never the SecretID itself,
//! only its keyed hash names the entry), how a generate request is checked
//! against its role, and how a lookup shows it.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::role::Role;
use crate::util::{rfc3339, Params};
use crate::{Error, Result};

/// A SecretID's properties, stored under `secret_id/<role>/<hmac(secret_id)>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SecretId {
    /// The accessor naming this SecretID in lists, lookups and destroys.
    pub secret_id_accessor: String,
    /// Logins left (0: unlimited).
    pub secret_id_num_uses: u64,
    /// The requested TTL in seconds (0: no expiry).
    pub secret_id_ttl: u64,
    /// When it was created.
    pub creation_time: DateTime<Utc>,
    /// When it expires, if ever.
    pub expiration_time: Option<DateTime<Utc>>,
    /// When its use count last changed.
    pub last_updated_time: DateTime<Utc>,
    /// Copied to the tokens it logs in.
    pub metadata: BTreeMap<String, String>,
    /// Addresses it may log in from (empty: any).
    pub cidr_list: Vec<String>,
    /// Addresses its tokens may be used from (empty: the role's).
    pub token_bound_cidrs: Vec<String>,
}

/// The accessor index, stored under `accessor/<hmac(accessor)>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct AccessorEntry {
    /// The role the SecretID belongs to.
    pub role: String,
    /// The keyed hash naming the SecretID's entry.
    pub secret_id_hmac: String,
}

impl SecretId {
    /// Builds a SecretID for `role` from a generate request (`secret-id` or
    /// `custom-secret-id`), applying Vault's checks. `max_ttl` is the
    /// mount's maximum lease TTL, which caps the expiry.
    pub fn from_request(role: &Role, params: &Params<'_>, max_ttl: u64) -> Result<SecretId> {
        let cidr_list = cidr_param(params, "cidr_list", "failed to validate CIDR blocks")?;
        verify_subset(&cidr_list, &role.secret_id_bound_cidrs)?;
        let token_bound_cidrs = cidr_param(
            params,
            "token_bound_cidrs",
            "failed to validate token CIDR blocks",
        )?;
        verify_subset(&token_bound_cidrs, &role.token.bound_cidrs)?;
        let num_uses = match params.i64("num_uses")? {
            Some(n) if n < 0 => return Err(Error::bad("num_uses cannot be negative")),
            Some(n) => {
                let n = n.unsigned_abs();
                if role.secret_id_num_uses > 0 && (n == 0 || n > role.secret_id_num_uses) {
                    return Err(Error::bad(
                        "num_uses cannot be higher than the role's secret_id_num_uses",
                    ));
                }
                n
            }
            None => role.secret_id_num_uses,
        };
        let ttl = match params.duration("ttl")? {
            Some(t) => {
                if role.secret_id_ttl > 0 && (t == 0 || t > role.secret_id_ttl) {
                    return Err(Error::bad(
                        "ttl cannot be longer than the role's secret_id_ttl",
                    ));
                }
                t
            }
            None => role.secret_id_ttl,
        };
        let metadata = parse_metadata(params)?;
        let now = crate::util::now();
        let effective = effective_ttl(ttl, max_ttl);
        // A TTL too large to represent never expires in practice.
        let expiration_time = (effective > 0)
            .then(|| i64::try_from(effective).ok())
            .flatten()
            .and_then(Duration::try_seconds)
            .and_then(|d| now.checked_add_signed(d));
        Ok(SecretId {
            secret_id_accessor: coffer_crypto::random::uuid(),
            secret_id_num_uses: num_uses,
            secret_id_ttl: ttl,
            creation_time: now,
            expiration_time,
            last_updated_time: now,
            metadata,
            cidr_list,
            token_bound_cidrs,
        })
    }

    /// Whether the SecretID has expired at `at`.
    pub fn expired(&self, at: &DateTime<Utc>) -> bool {
        self.expiration_time.is_some_and(|t| t <= *at)
    }

    /// The answer to a generate request.
    pub fn generated(&self, secret_id: &str, max_ttl: u64) -> Value {
        json!({
            "secret_id": secret_id,
            "secret_id_accessor": self.secret_id_accessor,
            "secret_id_ttl": effective_ttl(self.secret_id_ttl, max_ttl),
            "secret_id_num_uses": self.secret_id_num_uses,
        })
    }

    /// The answer to a lookup, as Vault's `ToResponseData`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("cidr_list".into(), json!(self.cidr_list));
        m.insert("creation_time".into(), json!(rfc3339(&self.creation_time)));
        m.insert(
            "expiration_time".into(),
            json!(self
                .expiration_time
                .as_ref()
                .map(rfc3339)
                .unwrap_or_else(|| "0001-01-01T00:00:00Z".into())),
        );
        m.insert(
            "last_updated_time".into(),
            json!(rfc3339(&self.last_updated_time)),
        );
        m.insert("metadata".into(), json!(self.metadata));
        m.insert("secret_id_accessor".into(), json!(self.secret_id_accessor));
        m.insert("secret_id_num_uses".into(), json!(self.secret_id_num_uses));
        m.insert("secret_id_ttl".into(), json!(self.secret_id_ttl));
        m.insert("token_bound_cidrs".into(), json!(self.token_bound_cidrs));
        Value::Object(m)
    }
}

/// The TTL a SecretID really gets: capped by the mount's maximum lease TTL.
fn effective_ttl(ttl: u64, max_ttl: u64) -> u64 {
    if ttl > max_ttl {
        max_ttl
    } else {
        ttl
    }
}

fn cidr_param(params: &Params<'_>, name: &str, msg: &str) -> Result<Vec<String>> {
    let list: Vec<String> = params
        .str_list(name)?
        .unwrap_or_default()
        .iter()
        .map(|c| c.trim().to_lowercase())
        .filter(|c| !c.is_empty())
        .collect();
    crate::parse_cidrs(&list).map_err(|_| Error::bad(msg))?;
    Ok(list)
}

/// Refuses CIDR blocks of a SecretID that are not inside the role's blocks
/// (any block is allowed when the role sets none).
fn verify_subset(inner: &[String], outer: &[String]) -> Result<()> {
    if inner.is_empty() || outer.is_empty() {
        return Ok(());
    }
    let outer_nets = crate::parse_cidrs(outer)?;
    for (ip, len) in crate::parse_cidrs(inner)? {
        let inside = outer_nets.iter().zip(outer).any(|((o_ip, o_len), o_str)| {
            o_ip.is_ipv4() == ip.is_ipv4()
                && len >= *o_len
                && crate::ip_allowed(Some(ip), std::slice::from_ref(o_str))
        });
        if !inside {
            return Err(Error::bad(format!(
                "failed to verify subset relationship between CIDR blocks on the role {outer:?} \
                 and CIDR blocks on the secret ID {inner:?}"
            )));
        }
    }
    Ok(())
}

/// Parses `metadata`: a JSON object of strings, given as a JSON string (as
/// Vault documents) or as an object.
fn parse_metadata(params: &Params<'_>) -> Result<BTreeMap<String, String>> {
    let bad = |why: &str| Error::bad(format!("failed to parse metadata: {why}"));
    let value: Value = match params.0.get("metadata") {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(BTreeMap::new()),
        Some(Value::String(s)) => {
            serde_json::from_str(s).map_err(|_| bad("expected a JSON object of strings"))?
        }
        Some(v) => v.clone(),
    };
    let Value::Object(m) = value else {
        return Err(bad("expected a JSON object of strings"));
    };
    m.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            _ => Err(bad("values must be strings")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(v: Value) -> Role {
        let m = v.as_object().cloned().unwrap_or_default();
        Role::apply(None, "r", &Params(&m), 86400).unwrap().0
    }

    fn build(role: &Role, v: Value) -> Result<SecretId> {
        let m = v.as_object().cloned().unwrap_or_default();
        SecretId::from_request(role, &Params(&m), 3600)
    }

    #[test]
    fn inherits_and_overrides_role_defaults() {
        let r = role(json!({"secret_id_num_uses": 3, "secret_id_ttl": 600}));
        let s = build(&r, json!({})).unwrap();
        assert_eq!((s.secret_id_num_uses, s.secret_id_ttl), (3, 600));
        assert!(s.expiration_time.is_some());
        let s = build(&r, json!({"num_uses": 1, "ttl": "5m"})).unwrap();
        assert_eq!((s.secret_id_num_uses, s.secret_id_ttl), (1, 300));
        assert!(build(&r, json!({"num_uses": 0})).is_err());
        assert!(build(&r, json!({"num_uses": 4})).is_err());
        assert!(build(&r, json!({"ttl": 0})).is_err());
        assert!(build(&r, json!({"ttl": 601})).is_err());
        assert!(build(&r, json!({"num_uses": -1})).is_err());
    }

    #[test]
    fn ttl_is_capped_by_the_mount() {
        let r = role(json!({}));
        let s = build(&r, json!({"ttl": 7200})).unwrap();
        assert_eq!(s.generated("x", 3600)["secret_id_ttl"], json!(3600));
        let s = build(&r, json!({})).unwrap();
        assert!(s.expiration_time.is_none());
        assert_eq!(
            s.to_json()["expiration_time"],
            json!("0001-01-01T00:00:00Z")
        );
    }

    #[test]
    fn huge_ttls_do_not_panic() {
        let r = role(json!({}));
        let m = json!({"ttl": u64::MAX}).as_object().cloned().unwrap();
        let s = SecretId::from_request(&r, &Params(&m), u64::MAX).unwrap();
        assert!(s.expiration_time.is_none());
        let m = json!({"ttl": "2562047788015215h"})
            .as_object()
            .cloned()
            .unwrap();
        assert!(SecretId::from_request(&r, &Params(&m), u64::MAX).is_ok());
    }

    #[test]
    fn metadata_forms() {
        let r = role(json!({}));
        let s = build(&r, json!({"metadata": "{\"tag\": \"prod\"}"})).unwrap();
        assert_eq!(s.metadata["tag"], "prod");
        let s = build(&r, json!({"metadata": {"a": "b"}})).unwrap();
        assert_eq!(s.metadata["a"], "b");
        assert!(build(&r, json!({"metadata": "not json"})).is_err());
        assert!(build(&r, json!({"metadata": "{\"a\": 1}"})).is_err());
    }

    #[test]
    fn cidr_subsets() {
        let r = role(json!({"secret_id_bound_cidrs": ["10.0.0.0/8"]}));
        assert!(build(&r, json!({"cidr_list": "10.1.0.0/16,10.2.3.4"})).is_ok());
        assert!(build(&r, json!({"cidr_list": "11.0.0.0/16"})).is_err());
        assert!(build(&r, json!({"cidr_list": "0.0.0.0/0"})).is_err());
        assert!(build(&r, json!({"cidr_list": "nope"})).is_err());
        let open = role(json!({}));
        assert!(build(&open, json!({"cidr_list": "11.0.0.0/16"})).is_ok());
    }
}

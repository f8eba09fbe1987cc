//! An AppRole role: its settings, how a write changes them, and how a read
//! shows them.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::token_params::{Aliases, TokenParams};
use crate::util::{list_or_null, Params};
use crate::{Error, Result};

/// Longest role name Vault accepts.
pub(super) const MAX_NAME_LEN: usize = 4096;

/// A role as stored under `role/<name>`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct Role {
    /// The role's name (lower case).
    pub name: String,
    /// The RoleID presented at login.
    pub role_id: String,
    /// Whether a SecretID is required at login.
    pub bind_secret_id: bool,
    /// Addresses allowed to log in (empty: any).
    pub secret_id_bound_cidrs: Vec<String>,
    /// Default use count of new SecretIDs (0: unlimited).
    pub secret_id_num_uses: u64,
    /// Default TTL of new SecretIDs in seconds (0: no expiry).
    pub secret_id_ttl: u64,
    /// Vault's replication flag, kept for compatibility.
    pub local_secret_ids: bool,
    /// The token settings.
    pub token: TokenParams,
}

/// Leaves out the RoleID (half of a login credential).
impl std::fmt::Debug for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Role")
            .field("name", &self.name)
            .field("role_id", &crate::redact::Redacted)
            .field("bind_secret_id", &self.bind_secret_id)
            .field("secret_id_bound_cidrs", &self.secret_id_bound_cidrs)
            .field("secret_id_num_uses", &self.secret_id_num_uses)
            .field("secret_id_ttl", &self.secret_id_ttl)
            .field("local_secret_ids", &self.local_secret_ids)
            .field("token", &self.token)
            .finish()
    }
}

impl Default for Role {
    fn default() -> Self {
        Role {
            name: String::new(),
            role_id: String::new(),
            bind_secret_id: true,
            secret_id_bound_cidrs: Vec::new(),
            secret_id_num_uses: 0,
            secret_id_ttl: 0,
            local_secret_ids: false,
            token: TokenParams::default(),
        }
    }
}

/// Whether `name` is a valid role name (Vault's `GenericNameRegex`: word
/// characters, `-`, `.` and `@`, starting and ending with a word character).
pub(crate) fn valid_name(name: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    !name.is_empty()
        && name.len() < MAX_NAME_LEN
        && name
            .chars()
            .all(|c| word(c) || matches!(c, '-' | '.' | '@'))
        && name.starts_with(word)
        && name.ends_with(word)
}

impl Role {
    /// Applies a create (`existing` is `None`) or update request to a role.
    /// `max_ttl` is the mount's maximum lease TTL, for Vault's period check.
    pub fn apply(
        existing: Option<&Role>,
        name: &str,
        params: &Params<'_>,
        max_ttl: u64,
    ) -> Result<(Role, Vec<String>)> {
        let create = existing.is_none();
        let mut role = existing.cloned().unwrap_or_else(|| Role {
            name: name.to_string(),
            ..Role::default()
        });
        let mut warnings = Vec::new();
        role.token = TokenParams::parse_with(params, existing.map(|r| &r.token), Aliases::APPROLE)?;
        if let Some(local) = params.bool("local_secret_ids")? {
            if !create {
                return Err(Error::bad(
                    "local_secret_ids can only be modified during role creation",
                ));
            }
            role.local_secret_ids = local;
        }
        if let Some(id) = params.str("role_id")? {
            role.role_id = id.to_string();
        } else if create {
            role.role_id = coffer_crypto::random::uuid();
        }
        if role.role_id.trim().is_empty() {
            return Err(Error::bad(
                "invalid role_id supplied, or failed to generate a role_id",
            ));
        }
        if let Some(b) = params.bool("bind_secret_id")? {
            role.bind_secret_id = b;
        }
        let cidrs = match params.str_list("secret_id_bound_cidrs")? {
            Some(c) => Some(c),
            None => params.str_list("bound_cidr_list")?,
        };
        if let Some(cidrs) = cidrs {
            let cidrs: Vec<String> = cidrs.iter().map(|c| c.trim().to_string()).collect();
            crate::parse_cidrs(&cidrs).map_err(|_| Error::bad("invalid CIDR blocks"))?;
            role.secret_id_bound_cidrs = cidrs;
        }
        if let Some(n) = params.i64("secret_id_num_uses")? {
            if n < 0 {
                return Err(Error::bad("secret_id_num_uses cannot be negative"));
            }
            role.secret_id_num_uses = n.unsigned_abs();
        }
        if let Some(ttl) = params.duration("secret_id_ttl")? {
            role.secret_id_ttl = ttl;
        }
        if role.token.period > max_ttl {
            return Err(Error::bad(format!(
                "period of \"{}\" is greater than the backend's maximum lease TTL of \"{}\"",
                crate::util::format_duration(role.token.period),
                crate::util::format_duration(max_ttl)
            )));
        }
        if role.token.max_ttl > max_ttl {
            warnings.push(
                "token_max_ttl is greater than the backend mount's maximum TTL value; \
                 issued tokens' max TTL value will be truncated"
                    .to_string(),
            );
        }
        if !role.bind_secret_id
            && role.secret_id_bound_cidrs.is_empty()
            && role.token.bound_cidrs.is_empty()
        {
            return Err(Error::bad(
                "at least one constraint should be enabled on the role",
            ));
        }
        Ok((role, warnings))
    }

    /// The role as Vault's read shows it (no RoleID).
    pub fn to_json(&self) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("bind_secret_id".into(), json!(self.bind_secret_id));
        // An unset list reads as null, as in Vault and OpenBao.
        out.insert(
            "secret_id_bound_cidrs".into(),
            list_or_null(&self.secret_id_bound_cidrs),
        );
        out.insert("secret_id_num_uses".into(), json!(self.secret_id_num_uses));
        out.insert("secret_id_ttl".into(), json!(self.secret_id_ttl));
        out.insert("local_secret_ids".into(), json!(self.local_secret_ids));
        self.token.to_json_fields(&mut out);
        out
    }
}

/// One of the per-field endpoints (`role/:name/token-ttl`, ...): the fields
/// a read shows, the request fields a write accepts, and what a delete resets.
pub(super) struct FieldEndpoint {
    /// Response fields of a read.
    pub shows: &'static [&'static str],
    /// Request fields a write takes (the first is named when none is given).
    pub takes: &'static [&'static str],
    /// The request a delete applies, `None` when the field cannot be deleted.
    pub reset: Option<fn() -> Value>,
}

/// The per-field endpoint named `segment`, if any.
pub(super) fn field_endpoint(segment: &str) -> Option<FieldEndpoint> {
    let endpoint = |shows, takes, reset| FieldEndpoint {
        shows,
        takes,
        reset,
    };
    Some(match segment {
        "policies" => endpoint(
            &["token_policies", "policies"],
            &["token_policies", "policies"],
            Some(|| json!({"token_policies": []})),
        ),
        "secret-id-num-uses" => endpoint(
            &["secret_id_num_uses"],
            &["secret_id_num_uses"],
            Some(|| json!({"secret_id_num_uses": 0})),
        ),
        "secret-id-ttl" => endpoint(
            &["secret_id_ttl"],
            &["secret_id_ttl"],
            Some(|| json!({"secret_id_ttl": 0})),
        ),
        "token-ttl" => endpoint(
            &["token_ttl"],
            &["token_ttl"],
            Some(|| json!({"token_ttl": 0})),
        ),
        "token-max-ttl" => endpoint(
            &["token_max_ttl"],
            &["token_max_ttl"],
            Some(|| json!({"token_max_ttl": 0})),
        ),
        "token-num-uses" => endpoint(
            &["token_num_uses"],
            &["token_num_uses"],
            Some(|| json!({"token_num_uses": 0})),
        ),
        "bind-secret-id" => endpoint(
            &["bind_secret_id"],
            &["bind_secret_id"],
            Some(|| json!({"bind_secret_id": true})),
        ),
        "secret-id-bound-cidrs" => endpoint(
            &["secret_id_bound_cidrs"],
            &["secret_id_bound_cidrs", "bound_cidr_list"],
            Some(|| json!({"secret_id_bound_cidrs": []})),
        ),
        "token-bound-cidrs" => endpoint(
            &["token_bound_cidrs"],
            &["token_bound_cidrs"],
            Some(|| json!({"token_bound_cidrs": []})),
        ),
        "period" => endpoint(
            &["token_period", "period"],
            &["token_period", "period"],
            Some(|| json!({"token_period": 0})),
        ),
        "local-secret-ids" => endpoint(&["local_secret_ids"], &[], None),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(existing: Option<&Role>, v: Value) -> Result<Role> {
        let m = v.as_object().cloned().unwrap_or_default();
        Role::apply(existing, "web", &Params(&m), 86400).map(|(r, _)| r)
    }

    #[test]
    fn defaults_on_create() {
        let r = apply(None, json!({})).unwrap();
        assert!(r.bind_secret_id);
        assert_eq!(r.role_id.len(), 36);
        let j = r.to_json();
        assert_eq!(j["secret_id_ttl"], json!(0));
        assert_eq!(j["token_type"], json!("default"));
        assert!(!j.contains_key("role_id"));
    }

    #[test]
    fn update_keeps_role_id_and_fields() {
        let r = apply(
            None,
            json!({"secret_id_num_uses": 2, "token_policies": "a,b", "role_id": "custom"}),
        )
        .unwrap();
        assert_eq!(r.role_id, "custom");
        let u = apply(Some(&r), json!({"secret_id_ttl": "10m"})).unwrap();
        assert_eq!(u.role_id, "custom");
        assert_eq!(u.secret_id_num_uses, 2);
        assert_eq!(u.secret_id_ttl, 600);
        assert_eq!(u.token.policies, vec!["a", "b"]);
    }

    #[test]
    fn refusals() {
        assert!(apply(None, json!({"bind_secret_id": false})).is_err());
        assert!(apply(
            None,
            json!({"bind_secret_id": false, "secret_id_bound_cidrs": "10.0.0.0/8"})
        )
        .is_ok());
        assert!(apply(None, json!({"secret_id_num_uses": -1})).is_err());
        assert!(apply(None, json!({"secret_id_bound_cidrs": ["x"]})).is_err());
        assert!(apply(None, json!({"token_period": 90000})).is_err());
        let r = apply(None, json!({})).unwrap();
        assert!(apply(Some(&r), json!({"local_secret_ids": true})).is_err());
    }

    #[test]
    fn names() {
        assert!(valid_name("web-app.v2@x"));
        assert!(!valid_name(""));
        assert!(!valid_name("-x"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name("a b"));
        assert!(field_endpoint("token-ttl").is_some());
        assert!(field_endpoint("nope").is_none());
    }
}

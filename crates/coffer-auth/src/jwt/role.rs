//! JWT roles (`auth/<mount>/role/:name`): which tokens may log in and what
//! the resulting Coffer token carries. Fields, defaults and errors follow
//! Vault's JWT auth method; only `role_type` "jwt" exists here (Coffer has
//! no browser OIDC flow).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::claims;
use crate::token_params::TokenParams;
use crate::util::{parse_duration, Params};
use crate::{Error, Result};

/// A stored role.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Role {
    /// Always "jwt".
    pub role_type: String,
    /// Seconds; 0: Vault's default (150), negative: disabled.
    pub expiration_leeway: i64,
    /// Seconds; 0: Vault's default (150), negative: disabled.
    pub not_before_leeway: i64,
    /// Seconds; 0: Vault's default (60), negative: disabled.
    pub clock_skew_leeway: i64,
    /// `aud` values of which the token must carry one.
    pub bound_audiences: Vec<String>,
    /// Required `sub`.
    pub bound_subject: String,
    /// "string" or "glob".
    pub bound_claims_type: String,
    /// Claim (name or JSON pointer) → required value or list of values.
    pub bound_claims: Option<Map<String, Value>>,
    /// Claim (name or JSON pointer) → token metadata key.
    pub claim_mappings: Option<BTreeMap<String, String>>,
    /// The claim naming the user (display name and alias).
    pub user_claim: String,
    /// Whether `user_claim` is a JSON pointer.
    pub user_claim_json_pointer: bool,
    /// The claim listing the user's groups (copied to metadata `groups`).
    pub groups_claim: String,
    /// OIDC-only settings, kept so reads show what was written.
    pub oidc_scopes: Vec<String>,
    /// OIDC-only: redirect URIs.
    pub allowed_redirect_uris: Vec<String>,
    /// OIDC-only: verbose logging flag (nothing is ever logged here).
    pub verbose_oidc_logging: bool,
    /// OIDC-only: max_age in seconds.
    pub max_age: u64,
    /// The common token settings.
    pub token: TokenParams,
}

/// Whether `name` is a valid role name (Vault's `GenericNameRegex`:
/// word characters, `-` and `.`, starting and ending with a word character).
pub fn valid_name(name: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let (Some(first), Some(last)) = (name.chars().next(), name.chars().last()) else {
        return false;
    };
    word(first) && word(last) && name.chars().all(|c| word(c) || c == '-' || c == '.')
}

/// A signed duration in seconds (Vault's `TypeSignedDurationSecond`):
/// an integer, or a Go duration string, optionally negative.
fn signed_duration(p: &Params<'_>, name: &str) -> Result<Option<i64>> {
    let bad = || Error::bad(format!("{name}: invalid duration"));
    match p.0.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(bad),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => {
            let s = s.trim();
            let (neg, abs) = match s.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, s),
            };
            let secs = parse_duration(abs)
                .and_then(|v| i64::try_from(v).ok())
                .ok_or_else(bad)?;
            Ok(Some(if neg { -secs } else { secs }))
        }
        Some(_) => Err(bad()),
    }
}

fn string_map(p: &Params<'_>, name: &str) -> Result<Option<BTreeMap<String, String>>> {
    let Some(obj) = p.object(name)? else {
        return Ok(None);
    };
    obj.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            _ => Err(Error::bad(format!("{name}: values must be strings"))),
        })
        .collect::<Result<BTreeMap<_, _>>>()
        .map(Some)
}

impl Role {
    /// Applies a create/update request over `existing` (or the defaults),
    /// with Vault's checks.
    pub fn apply(existing: Option<Role>, data: &Map<String, Value>) -> Result<Role> {
        let p = Params(data);
        let mut role = existing.unwrap_or_default();
        match p.str("role_type")?.map(str::trim) {
            None | Some("") if !role.role_type.is_empty() => {}
            None | Some("") | Some("jwt") => role.role_type = "jwt".into(),
            Some("oidc") => {
                return Err(Error::bad(
                    "role_type \"oidc\" is not supported: Coffer has no browser OIDC flow; \
                     use role_type \"jwt\" and log in with a signed JWT",
                ))
            }
            Some(other) => return Err(Error::bad(format!("invalid 'role_type': {other}"))),
        }
        role.token = TokenParams::parse(&p, Some(&role.token))?;
        if let Some(v) = signed_duration(&p, "expiration_leeway")? {
            role.expiration_leeway = v;
        }
        if let Some(v) = signed_duration(&p, "not_before_leeway")? {
            role.not_before_leeway = v;
        }
        if let Some(v) = signed_duration(&p, "clock_skew_leeway")? {
            role.clock_skew_leeway = v;
        }
        if let Some(v) = p.str_list("bound_audiences")? {
            role.bound_audiences = v;
        }
        if let Some(v) = p.str("bound_subject")? {
            role.bound_subject = v.to_string();
        }
        if let Some(v) = p.bool("verbose_oidc_logging")? {
            role.verbose_oidc_logging = v;
        }
        if let Some(v) = p.duration("max_age")? {
            role.max_age = v;
        }
        match p.str("bound_claims_type")?.map(str::trim) {
            None | Some("") if !role.bound_claims_type.is_empty() => {}
            None | Some("") => role.bound_claims_type = "string".into(),
            Some(t @ ("string" | "glob")) => role.bound_claims_type = t.to_string(),
            Some(other) => return Err(Error::bad(format!("invalid 'bound_claims_type': {other}"))),
        }
        if let Some(v) = p.object("bound_claims")? {
            role.bound_claims = Some(v.clone());
        }
        if let Some(bound) = &role.bound_claims {
            claims::check_bound_claims(bound, role.bound_claims_type == "glob")
                .map_err(Error::bad)?;
        }
        if let Some(mappings) = string_map(&p, "claim_mappings")? {
            let mut targets = std::collections::BTreeSet::new();
            for target in mappings.values() {
                if target == "role" {
                    return Err(Error::bad(format!(
                        "metadata key {target:?} is reserved and may not be a mapping destination"
                    )));
                }
                if !targets.insert(target) {
                    return Err(Error::bad(format!(
                        "multiple keys are mapped to metadata key {target:?}"
                    )));
                }
            }
            role.claim_mappings = Some(mappings);
        }
        if let Some(v) = p.str("user_claim")? {
            role.user_claim = v.to_string();
        }
        if role.user_claim.is_empty() {
            return Err(Error::bad("a user claim must be defined on the role"));
        }
        if let Some(v) = p.bool("user_claim_json_pointer")? {
            role.user_claim_json_pointer = v;
        }
        if let Some(v) = p.str("groups_claim")? {
            role.groups_claim = v.to_string();
        }
        if let Some(v) = p.str_list("oidc_scopes")? {
            role.oidc_scopes = v;
        }
        if let Some(v) = p.str_list("allowed_redirect_uris")? {
            role.allowed_redirect_uris = v;
        }
        if role.bound_audiences.is_empty()
            && role.token.bound_cidrs.is_empty()
            && role.bound_subject.is_empty()
            && role.bound_claims.as_ref().is_none_or(Map::is_empty)
        {
            return Err(Error::bad(
                "must have at least one bound constraint when creating/updating a role",
            ));
        }
        Ok(role)
    }

    /// The role as Vault's read shows it.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("role_type".into(), json!(self.role_type));
        out.insert("expiration_leeway".into(), json!(self.expiration_leeway));
        out.insert("not_before_leeway".into(), json!(self.not_before_leeway));
        out.insert("clock_skew_leeway".into(), json!(self.clock_skew_leeway));
        out.insert("bound_audiences".into(), json!(self.bound_audiences));
        out.insert("bound_subject".into(), json!(self.bound_subject));
        out.insert("bound_claims_type".into(), json!(self.bound_claims_type));
        out.insert("bound_claims".into(), json!(self.bound_claims));
        out.insert("claim_mappings".into(), json!(self.claim_mappings));
        out.insert("user_claim".into(), json!(self.user_claim));
        out.insert(
            "user_claim_json_pointer".into(),
            json!(self.user_claim_json_pointer),
        );
        out.insert("groups_claim".into(), json!(self.groups_claim));
        // Unset lists read as null, as in Vault and OpenBao.
        out.insert(
            "allowed_redirect_uris".into(),
            crate::util::list_or_null(&self.allowed_redirect_uris),
        );
        out.insert(
            "oidc_scopes".into(),
            crate::util::list_or_null(&self.oidc_scopes),
        );
        out.insert(
            "verbose_oidc_logging".into(),
            json!(self.verbose_oidc_logging),
        );
        out.insert("max_age".into(), json!(self.max_age));
        // OIDC-only fields, at their defaults (Coffer has no OIDC flow).
        out.insert("callback_mode".into(), json!("client"));
        out.insert("oidc_disable_confirmation".into(), json!(false));
        out.insert("token_policies_template_claims".into(), json!(false));
        out.insert("oauth2_metadata".into(), Value::Null);
        self.token.to_json_fields(&mut out);
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(existing: Option<Role>, v: Value) -> Result<Role> {
        Role::apply(existing, v.as_object().unwrap())
    }

    #[test]
    fn names() {
        for ok in ["ci", "a", "ci-job.v2", "a_b"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a/b", "a b", ".a"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn defaults_and_read_shape() {
        let r = apply(
            None,
            json!({"user_claim": "sub", "bound_audiences": "coffer,vault",
                   "token_policies": ["ci"], "clock_skew_leeway": "-1", "expiration_leeway": "2m",
                   "name": "ignored", "allowed_redirect_uris": []}),
        )
        .unwrap();
        assert_eq!(r.role_type, "jwt");
        assert_eq!(r.bound_claims_type, "string");
        assert_eq!(r.bound_audiences, vec!["coffer", "vault"]);
        assert_eq!((r.clock_skew_leeway, r.expiration_leeway), (-1, 120));
        let j = r.to_json();
        assert_eq!(j["token_policies"], json!(["ci"]));
        assert_eq!(j["bound_claims"], Value::Null);
        assert_eq!(j["not_before_leeway"], json!(0));
        // An update keeps what it does not name.
        let u = apply(Some(r), json!({"bound_subject": "x"})).unwrap();
        assert_eq!(u.bound_audiences, vec!["coffer", "vault"]);
        assert_eq!(u.token.policies, vec!["ci"]);
    }

    #[test]
    fn refusals_with_vault_messages() {
        let msg = |v: Value| match apply(None, v) {
            Err(Error::BadRequest(m)) => m,
            other => panic!("expected a 400, got {other:?}"),
        };
        assert_eq!(
            msg(json!({"bound_subject": "x"})),
            "a user claim must be defined on the role"
        );
        assert_eq!(
            msg(json!({"user_claim": "sub"})),
            "must have at least one bound constraint when creating/updating a role"
        );
        assert!(
            msg(json!({"user_claim": "sub", "bound_subject": "x", "role_type": "oidc"}))
                .contains("not supported")
        );
        assert_eq!(
            msg(json!({"user_claim": "sub", "bound_subject": "x", "role_type": "x"})),
            "invalid 'role_type': x"
        );
        assert_eq!(
            msg(json!({"user_claim": "sub", "bound_subject": "x", "bound_claims_type": "regex"})),
            "invalid 'bound_claims_type': regex"
        );
        assert_eq!(
            msg(
                json!({"user_claim": "sub", "bound_claims_type": "glob", "bound_claims": {"a": [1]}})
            ),
            "claim is not a string"
        );
        assert_eq!(
            msg(
                json!({"user_claim": "sub", "bound_subject": "x", "claim_mappings": {"a": "m", "b": "m"}})
            ),
            "multiple keys are mapped to metadata key \"m\""
        );
        assert!(msg(
            json!({"user_claim": "sub", "bound_subject": "x", "claim_mappings": {"a": "role"}})
        )
        .contains("reserved"));
        assert!(msg(
            json!({"user_claim": "sub", "bound_subject": "x", "token_ttl": 10, "token_max_ttl": 5})
        )
        .contains("token_ttl"));
        assert!(msg(
            json!({"user_claim": "sub", "bound_subject": "x", "clock_skew_leeway": "soon"})
        )
        .contains("clock_skew_leeway"));
        // token_bound_cidrs alone is a bound constraint.
        assert!(apply(
            None,
            json!({"user_claim": "sub", "token_bound_cidrs": ["10.0.0.0/8"]})
        )
        .is_ok());
    }
}

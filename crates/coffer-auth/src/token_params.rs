//! Vault's common `token_*` fields of auth roles and users (its `tokenutil`):
//! parsed from a request, shown in reads, and turned into an [`AuthGrant`]
//! at login. Shared by AppRole, userpass and JWT.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::util::Params;
use crate::{AuthGrant, Error, Result};

/// Deprecated field names an auth method still accepts in place of the
/// `token_*` ones, as Vault's `tokenutil.UpgradeValue` does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Aliases {
    /// `policies` for `token_policies`.
    pub policies: bool,
    /// `ttl` for `token_ttl`.
    pub ttl: bool,
    /// `max_ttl` for `token_max_ttl`.
    pub max_ttl: bool,
    /// `period` for `token_period`.
    pub period: bool,
    /// `num_uses` for `token_num_uses`.
    pub num_uses: bool,
    /// `bound_cidrs` for `token_bound_cidrs`.
    pub bound_cidrs: bool,
}

impl Aliases {
    /// Every deprecated name (JWT roles accept all of them).
    pub const ALL: Aliases = Aliases {
        policies: true,
        ttl: true,
        max_ttl: true,
        period: true,
        num_uses: true,
        bound_cidrs: true,
    };
    /// AppRole roles: `policies` and `period`.
    pub const APPROLE: Aliases = Aliases {
        policies: true,
        ttl: false,
        max_ttl: false,
        period: true,
        num_uses: false,
        bound_cidrs: false,
    };
    /// userpass users: `policies`, `ttl`, `max_ttl` and `bound_cidrs`.
    pub const USERPASS: Aliases = Aliases {
        policies: true,
        ttl: true,
        max_ttl: true,
        period: false,
        num_uses: false,
        bound_cidrs: true,
    };
}

/// The token settings of a role or user, stored with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenParams {
    /// `token_policies`, sanitized (lower-cased, sorted, de-duplicated).
    pub policies: Vec<String>,
    /// `token_ttl` in seconds (0: the mount's default).
    pub ttl: u64,
    /// `token_max_ttl` in seconds (0: the mount's maximum).
    pub max_ttl: u64,
    /// `token_explicit_max_ttl` in seconds (0: none).
    pub explicit_max_ttl: u64,
    /// `token_period` in seconds (0: not periodic).
    pub period: u64,
    /// `token_num_uses` (0: unlimited).
    pub num_uses: u64,
    /// `token_bound_cidrs`.
    pub bound_cidrs: Vec<String>,
    /// `token_no_default_policy`.
    pub no_default_policy: bool,
    /// `token_strictly_bind_ip` (OpenBao): the token a login issues may be
    /// used only from the address that logged in.
    pub strictly_bind_ip: bool,
    /// `token_type`: "default", "service", "batch" or "default-batch".
    pub token_type: String,
    /// Deprecated names last used to set a value; reads echo them as Vault does.
    pub legacy: Vec<String>,
}

impl TokenParams {
    /// Parses the `token_*` fields of `params` (and the deprecated names in
    /// [`Aliases::ALL`]) over `existing` (an update keeps what the request
    /// does not name) or over the defaults (a create).
    pub fn parse(params: &Params<'_>, existing: Option<&TokenParams>) -> Result<TokenParams> {
        Self::parse_with(params, existing, Aliases::ALL)
    }

    /// As [`TokenParams::parse`], accepting only the deprecated names in `aliases`.
    pub fn parse_with(
        params: &Params<'_>,
        existing: Option<&TokenParams>,
        aliases: Aliases,
    ) -> Result<TokenParams> {
        let mut t = existing.cloned().unwrap_or_default();
        if t.token_type.is_empty() {
            t.token_type = "default".into();
        }
        if let Some((v, legacy)) = pick(
            params,
            "token_policies",
            "policies",
            aliases.policies,
            |p, n| p.str_list(n),
        )? {
            t.policies = coffer_policy::sanitize_policies(&v, false);
            t.set_legacy("policies", legacy);
        }
        if let Some((v, legacy)) = pick(params, "token_ttl", "ttl", aliases.ttl, |p, n| {
            p.duration(n)
        })? {
            t.ttl = v;
            t.set_legacy("ttl", legacy);
        }
        if let Some((v, legacy)) = pick(
            params,
            "token_max_ttl",
            "max_ttl",
            aliases.max_ttl,
            |p, n| p.duration(n),
        )? {
            t.max_ttl = v;
            t.set_legacy("max_ttl", legacy);
        }
        if let Some(v) = params.duration("token_explicit_max_ttl")? {
            t.explicit_max_ttl = v;
        }
        if let Some((v, legacy)) =
            pick(params, "token_period", "period", aliases.period, |p, n| {
                p.duration(n)
            })?
        {
            t.period = v;
            t.set_legacy("period", legacy);
        }
        if let Some((v, legacy)) = pick(
            params,
            "token_num_uses",
            "num_uses",
            aliases.num_uses,
            |p, n| match p.i64(n)? {
                Some(v) if v < 0 => Err(Error::bad(format!("'{n}' cannot be negative"))),
                Some(v) => Ok(Some(v.unsigned_abs())),
                None => Ok(None),
            },
        )? {
            t.num_uses = v;
            t.set_legacy("num_uses", legacy);
        }
        if let Some((v, legacy)) = pick(
            params,
            "token_bound_cidrs",
            "bound_cidrs",
            aliases.bound_cidrs,
            |p, n| p.str_list(n),
        )? {
            let v: Vec<String> = v.iter().map(|c| c.trim().to_string()).collect();
            crate::parse_cidrs(&v)?;
            t.bound_cidrs = v;
            t.set_legacy("bound_cidrs", legacy);
        }
        if let Some(v) = params.bool("token_no_default_policy")? {
            t.no_default_policy = v;
        }
        if let Some(v) = params.bool("token_strictly_bind_ip")? {
            t.strictly_bind_ip = v;
        }
        if let Some(v) = params.str("token_type")? {
            t.token_type = match v.trim() {
                "" | "default" | "default-service" => "default".into(),
                "service" => "service".into(),
                "batch" => "batch".into(),
                "default-batch" => "default-batch".into(),
                other => return Err(Error::bad(format!("invalid 'token_type' value {other:?}"))),
            };
        }
        if t.ttl > 0 && t.max_ttl > 0 && t.ttl > t.max_ttl {
            return Err(Error::bad(
                "'token_ttl' cannot be greater than 'token_max_ttl'",
            ));
        }
        if t.issues_batch() && t.period > 0 {
            return Err(Error::bad(
                "'token_type' cannot be 'batch' or 'default_batch' when set to generate periodic tokens",
            ));
        }
        if t.issues_batch() && t.num_uses > 0 {
            return Err(Error::bad(
                "'token_type' cannot be 'batch' or 'default_batch' when set to generate tokens with limited use count",
            ));
        }
        Ok(t)
    }

    /// Whether logins with these settings get batch tokens.
    pub fn issues_batch(&self) -> bool {
        matches!(self.token_type.as_str(), "batch" | "default-batch")
    }

    fn set_legacy(&mut self, name: &str, legacy: bool) {
        self.legacy.retain(|n| n != name);
        if legacy {
            self.legacy.push(name.to_string());
        }
    }

    /// Writes the fields as Vault's reads show them (`token_*`, plus a
    /// deprecated name when it was used to set the value).
    pub fn to_json_fields(&self, out: &mut Map<String, Value>) {
        out.insert("token_bound_cidrs".into(), json!(self.bound_cidrs));
        out.insert(
            "token_explicit_max_ttl".into(),
            json!(self.explicit_max_ttl),
        );
        out.insert("token_max_ttl".into(), json!(self.max_ttl));
        out.insert(
            "token_no_default_policy".into(),
            json!(self.no_default_policy),
        );
        out.insert("token_num_uses".into(), json!(self.num_uses));
        out.insert(
            "token_strictly_bind_ip".into(),
            json!(self.strictly_bind_ip),
        );
        out.insert("token_period".into(), json!(self.period));
        out.insert("token_policies".into(), json!(self.policies));
        let token_type = if self.token_type.is_empty() {
            "default"
        } else {
            self.token_type.as_str()
        };
        out.insert("token_type".into(), json!(token_type));
        out.insert("token_ttl".into(), json!(self.ttl));
        for name in &self.legacy {
            let value = match name.as_str() {
                "policies" if !self.policies.is_empty() => json!(self.policies),
                "ttl" if self.ttl > 0 => json!(self.ttl),
                "max_ttl" if self.max_ttl > 0 => json!(self.max_ttl),
                "period" if self.period > 0 => json!(self.period),
                "num_uses" if self.num_uses > 0 => json!(self.num_uses),
                "bound_cidrs" if !self.bound_cidrs.is_empty() => json!(self.bound_cidrs),
                _ => continue,
            };
            out.insert(name.clone(), value);
        }
    }

    /// What a login with these settings grants. `alias_name` is set to
    /// `display_name`; the caller may change it.
    pub fn grant(&self, display_name: &str, metadata: BTreeMap<String, String>) -> AuthGrant {
        let max_ttl = match (self.max_ttl, self.explicit_max_ttl) {
            (0, e) => e,
            (m, 0) => m,
            (m, e) => m.min(e),
        };
        AuthGrant {
            policies: self.policies.clone(),
            display_name: display_name.to_string(),
            metadata,
            ttl: self.ttl,
            max_ttl,
            period: self.period,
            num_uses: self.num_uses,
            renewable: true,
            bound_cidrs: self.bound_cidrs.clone(),
            strictly_bind_ip: self.strictly_bind_ip,
            no_default_policy: self.no_default_policy,
            alias_name: display_name.to_string(),
            batch: self.issues_batch(),
            ..Default::default()
        }
    }
}

/// Reads `new` or, when absent and allowed, the deprecated `old` name; the
/// flag says the value came from `old`.
fn pick<T>(
    params: &Params<'_>,
    new: &str,
    old: &str,
    allow_old: bool,
    get: impl Fn(&Params<'_>, &str) -> Result<Option<T>>,
) -> Result<Option<(T, bool)>> {
    if let Some(v) = get(params, new)? {
        return Ok(Some((v, false)));
    }
    if allow_old {
        if let Some(v) = get(params, old)? {
            return Ok(Some((v, true)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value, existing: Option<&TokenParams>) -> Result<TokenParams> {
        let m = v.as_object().cloned().unwrap_or_default();
        TokenParams::parse(&Params(&m), existing)
    }

    #[test]
    fn defaults_and_fields() {
        let t = parse(json!({}), None).unwrap();
        assert_eq!(t.token_type, "default");
        assert!(t.policies.is_empty());
        let t = parse(
            json!({"token_policies": "B,a, a", "token_ttl": "1h", "token_max_ttl": 7200,
                   "token_num_uses": "3", "token_bound_cidrs": ["10.0.0.0/8"],
                   "token_no_default_policy": true, "token_period": "0"}),
            None,
        )
        .unwrap();
        assert_eq!(t.policies, vec!["a", "b"]);
        assert_eq!((t.ttl, t.max_ttl, t.num_uses), (3600, 7200, 3));
        let mut m = Map::new();
        t.to_json_fields(&mut m);
        assert_eq!(m["token_ttl"], json!(3600));
        assert_eq!(m["token_bound_cidrs"], json!(["10.0.0.0/8"]));
        assert!(!m.contains_key("policies"));
        let g = t.grant("alice", BTreeMap::new());
        assert_eq!(g.max_ttl, 7200);
        assert!(g.renewable && g.no_default_policy);
    }

    #[test]
    fn update_keeps_unnamed_fields_and_legacy_names() {
        let t = parse(json!({"policies": ["x"], "token_ttl": 60}), None).unwrap();
        assert_eq!(t.legacy, vec!["policies"]);
        let mut m = Map::new();
        t.to_json_fields(&mut m);
        assert_eq!(m["policies"], json!(["x"]));
        let u = parse(json!({"token_policies": ["y"]}), Some(&t)).unwrap();
        assert_eq!(u.ttl, 60);
        assert_eq!(u.policies, vec!["y"]);
        assert!(u.legacy.is_empty());
    }

    #[test]
    fn refusals() {
        assert!(parse(json!({"token_ttl": 10, "token_max_ttl": 5}), None).is_err());
        assert!(parse(json!({"token_num_uses": -1}), None).is_err());
        assert!(parse(json!({"token_type": "nope"}), None).is_err());
        assert!(parse(json!({"token_type": "batch"}), None)
            .unwrap()
            .issues_batch());
        assert!(parse(json!({"token_type": "batch", "token_period": 60}), None).is_err());
        assert!(parse(
            json!({"token_type": "default-batch", "token_num_uses": 2}),
            None
        )
        .is_err());
        assert!(parse(json!({"token_bound_cidrs": ["300.0.0.1"]}), None).is_err());
        assert!(parse(json!({"token_ttl": "soon"}), None).is_err());
        let m = json!({"period": 5}).as_object().cloned().unwrap();
        let t = TokenParams::parse_with(&Params(&m), None, Aliases::USERPASS).unwrap();
        assert_eq!(t.period, 0);
    }
}

//! Checks on a verified token's claims, with Vault's semantics and wording:
//! the registered claims (`iss`, `sub`, `aud`, `exp`, `nbf`, `iat` with
//! leeways), the role's `bound_claims` (exact or glob), and the identity a
//! login yields (user claim, claim mappings, groups).
//!
//! Error texts are Vault's and never quote claim values, only claim names
//! from the role's own configuration.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Leeway Vault adds when `exp` or `nbf` must be derived (`expiration_leeway`,
/// `not_before_leeway` set to 0).
pub const DEFAULT_CLAIM_LEEWAY: i64 = 150;
/// Clock skew Vault allows on every time claim when `clock_skew_leeway` is 0.
pub const DEFAULT_CLOCK_SKEW: i64 = 60;

/// What the registered claims must satisfy.
#[derive(Debug, Clone, Default)]
pub struct Expected<'a> {
    /// `bound_issuer` (empty: any).
    pub issuer: &'a str,
    /// `bound_subject` (empty: any).
    pub subject: &'a str,
    /// `bound_audiences` (empty: the token must carry no `aud`).
    pub audiences: &'a [String],
    /// `clock_skew_leeway` (0: 60 s, negative: none).
    pub clock_skew_leeway: i64,
    /// `expiration_leeway` (0: 150 s, negative: none).
    pub expiration_leeway: i64,
    /// `not_before_leeway` (0: 150 s, negative: none).
    pub not_before_leeway: i64,
}

fn effective(leeway: i64, default: i64) -> i64 {
    match leeway {
        0 => default,
        l if l < 0 => 0,
        l => l,
    }
}

/// A NumericDate claim as whole seconds (0 when absent, as go-jose reads it).
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<i64, String> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .ok_or_else(|| format!("invalid {name} claim: not a NumericDate")),
        Some(_) => Err(format!("invalid {name} claim: not a NumericDate")),
    }
}

fn string_claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(""),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("invalid {name} claim: not a string")),
    }
}

/// The `aud` claim as a list (a single string counts as one audience).
pub fn audiences(claims: &Map<String, Value>) -> Result<Vec<&str>, String> {
    let bad = || "invalid audience (aud) claim: expected a string or a list of strings".to_string();
    match claims.get("aud") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.as_str()]),
        Some(Value::Array(items)) => items.iter().map(|v| v.as_str().ok_or_else(bad)).collect(),
        Some(_) => Err(bad()),
    }
}

/// Validates the registered claims at time `now` (Unix seconds), as Vault's
/// JWT validator does. The error follows "error validating token: ".
pub fn validate_registered(
    claims: &Map<String, Value>,
    expected: &Expected<'_>,
    now: i64,
) -> Result<(), String> {
    let iat = numeric_date(claims, "iat")?;
    let mut exp = numeric_date(claims, "exp")?;
    let mut nbf = numeric_date(claims, "nbf")?;
    if iat == 0 && exp == 0 && nbf == 0 {
        return Err(
            "no issued at (iat), not before (nbf), or expiration time (exp) claims in token".into(),
        );
    }
    // Without exp, the token lives `expiration_leeway` past its latest start.
    if exp == 0 {
        let start = iat.max(nbf);
        exp = start.saturating_add(effective(expected.expiration_leeway, DEFAULT_CLAIM_LEEWAY));
    }
    // Without nbf, the token starts at iat, or `not_before_leeway` before exp.
    if nbf == 0 {
        nbf = if iat != 0 {
            iat
        } else {
            exp.saturating_sub(effective(expected.not_before_leeway, DEFAULT_CLAIM_LEEWAY))
        };
    }
    let skew = effective(expected.clock_skew_leeway, DEFAULT_CLOCK_SKEW);

    if !expected.issuer.is_empty() && expected.issuer != string_claim(claims, "iss")? {
        return Err("invalid issuer (iss) claim".into());
    }
    if !expected.subject.is_empty() && expected.subject != string_claim(claims, "sub")? {
        return Err("invalid subject (sub) claim".into());
    }
    let aud = audiences(claims)?;
    if !expected.audiences.is_empty()
        && !expected.audiences.iter().any(|a| aud.contains(&a.as_str()))
    {
        return Err(
            "invalid audience (aud) claim: audience claim does not match any expected audience"
                .into(),
        );
    }
    if now.saturating_add(skew) < nbf {
        return Err("invalid not before (nbf) claim: token not yet valid".into());
    }
    if now.saturating_sub(skew) > exp {
        return Err("invalid expiration time (exp) claim: token is expired".into());
    }
    if iat != 0 && now.saturating_add(skew) < iat {
        return Err("invalid issued at (iat) claim: token issued in the future".into());
    }
    Ok(())
}

/// Looks a claim up: a name starting with `/` is a JSON pointer into the
/// claims (`/a/b` is claim `a`'s member `b`), anything else a top-level name.
pub fn get_claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    let v = if let Some(pointer) = name.strip_prefix('/') {
        let (first, rest) = match pointer.split_once('/') {
            Some((f, r)) => (f, Some(r)),
            None => (pointer, None),
        };
        let top = claims.get(&unescape(first))?;
        match rest {
            Some(r) => top.pointer(&format!("/{r}"))?,
            None => top,
        }
    } else {
        claims.get(name)?
    };
    (!v.is_null()).then_some(v)
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// A scalar claim value as bound claims compare them.
#[derive(Debug, PartialEq)]
enum Scalar<'a> {
    Str(&'a str),
    Bool(bool),
    /// A number in its canonical text (5 and 5.0 are the same).
    Num(String),
}

fn scalar(v: &Value) -> Option<Scalar<'_>> {
    match v {
        Value::String(s) => Some(Scalar::Str(s)),
        Value::Bool(b) => Some(Scalar::Bool(*b)),
        Value::Number(n) => Some(Scalar::Num(match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => (f as i64).to_string(),
            _ => n.to_string(),
        })),
        _ => None,
    }
}

/// A string, bool, number, or list of them, as a list (Vault's `normalizeList`).
fn normalize_list(v: &Value) -> Option<Vec<Scalar<'_>>> {
    match v {
        Value::Array(items) => items.iter().map(scalar).collect(),
        other => scalar(other).map(|s| vec![s]),
    }
}

/// Whether `value` matches `pattern`, where `*` matches any run of
/// characters (including none) and every other character itself.
pub use coffer_policy::glob::star as glob_match;

/// Checks every bound claim: the claim must exist and one of its values
/// equal (or, with `glob`, match) one of the bound values. The error follows
/// "error validating claims: ".
pub fn validate_bound_claims(
    bound: &Map<String, Value>,
    glob: bool,
    claims: &Map<String, Value>,
) -> Result<(), String> {
    for (name, want) in bound {
        let Some(have) = get_claim(claims, name) else {
            return Err(format!("claim {name:?} is missing"));
        };
        let have =
            normalize_list(have).ok_or("received claim is not a string, bool, int or list")?;
        let want = normalize_list(want).ok_or("bound claim is not a string, bool, int or list")?;
        let found = want.iter().any(|w| {
            have.iter().any(|h| match (glob, w, h) {
                (true, Scalar::Str(p), Scalar::Str(s)) => glob_match(p, s),
                (true, _, _) => false,
                (false, w, h) => w == h,
            })
        });
        if !found {
            return Err(format!(
                "claim {name:?} does not match any associated bound claim values"
            ));
        }
    }
    Ok(())
}

/// Checks that bound claim values suit their type: with `glob`, every value
/// must be a string (Vault refuses others when the role is written).
pub fn check_bound_claims(bound: &Map<String, Value>, glob: bool) -> Result<(), String> {
    for value in bound.values() {
        let list = normalize_list(value).ok_or("claim is not a string or list")?;
        if glob && list.iter().any(|s| !matches!(s, Scalar::Str(_))) {
            return Err("claim is not a string".into());
        }
    }
    Ok(())
}

/// What a login yields besides the policies: the alias name and metadata.
#[derive(Debug, Default, PartialEq)]
pub struct Identity {
    /// The user claim's value: the display name and alias.
    pub name: String,
    /// `claim_mappings` results (plus `groups` when the role names a groups claim).
    pub metadata: BTreeMap<String, String>,
    /// The groups claim's values, when the role names one.
    pub groups: Option<Vec<String>>,
}

/// How a role maps claims to an identity.
pub struct IdentityRules<'a> {
    /// `user_claim`.
    pub user_claim: &'a str,
    /// `user_claim_json_pointer`.
    pub user_claim_json_pointer: bool,
    /// `claim_mappings`: claim → metadata key.
    pub claim_mappings: &'a BTreeMap<String, String>,
    /// `groups_claim` (empty: none).
    pub groups_claim: &'a str,
}

/// Builds the identity from the claims (Vault's `createIdentity`); the error
/// is answered as is.
pub fn identity(
    claims: &Map<String, Value>,
    rules: &IdentityRules<'_>,
) -> Result<Identity, String> {
    let user = if rules.user_claim_json_pointer {
        get_claim(claims, rules.user_claim)
    } else {
        claims.get(rules.user_claim).filter(|v| !v.is_null())
    };
    let Some(user) = user else {
        return Err(format!("claim {:?} not found in token", rules.user_claim));
    };
    let Some(name) = user.as_str() else {
        return Err(format!(
            "claim {:?} could not be converted to string",
            rules.user_claim
        ));
    };
    let mut metadata = BTreeMap::new();
    let mut group_names = None;
    for (source, target) in rules.claim_mappings {
        if let Some(v) = get_claim(claims, source) {
            let s = v
                .as_str()
                .ok_or_else(|| format!("error converting claim '{source}' to string"))?;
            metadata.insert(target.clone(), s.to_string());
        }
    }
    if !rules.groups_claim.is_empty() {
        let raw = get_claim(claims, rules.groups_claim).ok_or_else(|| {
            format!(
                "failed to fetch groups: {:?} claim not found in token",
                rules.groups_claim
            )
        })?;
        let list = match raw {
            Value::Array(items) => items.iter().collect::<Vec<_>>(),
            Value::String(_) => vec![raw],
            _ => {
                return Err(format!(
                    "{:?} claim could not be converted to string list",
                    rules.groups_claim
                ))
            }
        };
        let mut groups = Vec::new();
        for g in list {
            let g = g
                .as_str()
                .ok_or("value in groups claim could not be parsed as string")?;
            if !g.is_empty() {
                groups.push(g);
            }
        }
        metadata
            .entry("groups".to_string())
            .or_insert_with(|| groups.join(","));
        group_names = Some(groups.iter().map(|g| g.to_string()).collect());
    }
    Ok(Identity {
        name: name.to_string(),
        metadata,
        groups: group_names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn time_claims_with_leeway() {
        let e = Expected::default();
        let ok = |c: Value| validate_registered(&claims(c), &e, NOW);
        assert!(ok(json!({"exp": NOW + 10})).is_ok());
        // Expired, but within the 60 s clock skew.
        assert!(ok(json!({"exp": NOW - 59})).is_ok());
        assert_eq!(
            ok(json!({"exp": NOW - 61})).unwrap_err(),
            "invalid expiration time (exp) claim: token is expired"
        );
        assert_eq!(
            ok(json!({"exp": NOW + 600, "nbf": NOW + 61})).unwrap_err(),
            "invalid not before (nbf) claim: token not yet valid"
        );
        assert_eq!(
            ok(json!({"exp": NOW + 600, "nbf": NOW - 1, "iat": NOW + 61})).unwrap_err(),
            "invalid issued at (iat) claim: token issued in the future"
        );
        assert!(ok(json!({"sub": "x"}))
            .unwrap_err()
            .starts_with("no issued at"));
        assert!(ok(json!({"exp": "tomorrow"})).is_err());
        // Only iat: valid for 150 s (+60 s skew) after it.
        assert!(ok(json!({"iat": NOW - 200})).is_ok());
        assert!(ok(json!({"iat": NOW - 211})).is_err());
        // Leeways from the role: skew disabled, custom expiration leeway.
        let strict = Expected {
            clock_skew_leeway: -1,
            expiration_leeway: 30,
            ..Default::default()
        };
        assert!(validate_registered(&claims(json!({"exp": NOW - 1})), &strict, NOW).is_err());
        assert!(validate_registered(&claims(json!({"iat": NOW - 30})), &strict, NOW).is_ok());
        assert!(validate_registered(&claims(json!({"iat": NOW - 31})), &strict, NOW).is_err());
        // Only nbf: exp derived from it, nbf leeway unused.
        assert!(validate_registered(&claims(json!({"nbf": NOW - 10})), &strict, NOW).is_ok());
    }

    #[test]
    fn issuer_subject_audience() {
        let aud = vec!["vault".to_string(), "coffer".to_string()];
        let e = Expected {
            issuer: "https://issuer",
            subject: "repo:acme/app",
            audiences: &aud,
            ..Default::default()
        };
        let base = json!({"exp": NOW + 60, "iss": "https://issuer", "sub": "repo:acme/app", "aud": ["x", "coffer"]});
        assert!(validate_registered(&claims(base.clone()), &e, NOW).is_ok());
        let mut c = base.clone();
        c["aud"] = json!("coffer");
        assert!(validate_registered(&claims(c), &e, NOW).is_ok());
        let mut c = base.clone();
        c["iss"] = json!("https://evil");
        assert_eq!(
            validate_registered(&claims(c), &e, NOW).unwrap_err(),
            "invalid issuer (iss) claim"
        );
        let mut c = base.clone();
        c["sub"] = json!("repo:acme/other");
        assert_eq!(
            validate_registered(&claims(c), &e, NOW).unwrap_err(),
            "invalid subject (sub) claim"
        );
        let mut c = base.clone();
        c["aud"] = json!(["other"]);
        assert!(validate_registered(&claims(c), &e, NOW)
            .unwrap_err()
            .starts_with("invalid audience (aud) claim"));
        let mut c = base.clone();
        c.as_object_mut().unwrap().remove("aud");
        assert!(validate_registered(&claims(c), &e, NOW).is_err());
        let mut c = base;
        c["aud"] = json!(5);
        assert!(validate_registered(&claims(c), &e, NOW).is_err());
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", ""));
        assert!(glob_match(
            "repo:acme/*:ref:refs/heads/main",
            "repo:acme/app:ref:refs/heads/main"
        ));
        assert!(!glob_match(
            "repo:acme/*:ref:refs/heads/main",
            "repo:acme/app:ref:refs/heads/dev"
        ));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("*main", "refs/heads/main"));
        assert!(!glob_match("main", "main2"));
        assert!(glob_match("ä*", "äöü"));
        assert!(!glob_match("a?c", "abc"));
    }

    #[test]
    fn bound_claims_exact_glob_and_pointer() {
        let c = claims(json!({
            "project_path": "acme/app", "ref": "main", "groups": ["dev", "ops"],
            "n": 5, "flag": true,
            "kubernetes.io": {"namespace": "ci", "serviceaccount": {"name": "runner"}}
        }));
        let ok = |b: Value, glob: bool| validate_bound_claims(&claims(b), glob, &c);
        assert!(ok(
            json!({"project_path": "acme/app", "ref": ["dev", "main"]}),
            false
        )
        .is_ok());
        assert!(ok(json!({"groups": "ops"}), false).is_ok());
        assert!(ok(json!({"n": 5, "flag": true}), false).is_ok());
        assert!(ok(json!({"n": "5"}), false).is_err());
        assert!(ok(json!({"/kubernetes.io/namespace": "ci"}), false).is_ok());
        assert!(ok(json!({"/kubernetes.io/serviceaccount/name": "run*"}), true).is_ok());
        assert!(ok(json!({"project_path": "acme/*"}), true).is_ok());
        assert!(ok(json!({"project_path": "acme/*"}), false).is_err());
        assert_eq!(
            ok(json!({"project_path": "other/*"}), true).unwrap_err(),
            "claim \"project_path\" does not match any associated bound claim values"
        );
        assert_eq!(
            ok(json!({"/kubernetes.io/nope": "x"}), false).unwrap_err(),
            "claim \"/kubernetes.io/nope\" is missing"
        );
        assert!(ok(json!({"missing": "x"}), false).is_err());
        assert!(ok(json!({"kubernetes.io": "x"}), false).is_err());
        assert!(check_bound_claims(&claims(json!({"a": ["x", 1]})), true).is_err());
        assert!(check_bound_claims(&claims(json!({"a": ["x", 1]})), false).is_ok());
        assert!(check_bound_claims(&claims(json!({"a": {"b": 1}})), false).is_err());
    }

    #[test]
    fn identity_from_claims() {
        let c = claims(
            json!({"sub": "system:serviceaccount:ci:runner", "email": "a@b", "n": 3,
            "groups": ["dev", ""], "k8s": {"ns": "ci"}}),
        );
        let mut mappings = BTreeMap::new();
        mappings.insert("email".to_string(), "mail".to_string());
        mappings.insert("/k8s/ns".to_string(), "namespace".to_string());
        mappings.insert("absent".to_string(), "x".to_string());
        let rules = IdentityRules {
            user_claim: "sub",
            user_claim_json_pointer: false,
            claim_mappings: &mappings,
            groups_claim: "groups",
        };
        let id = identity(&c, &rules).unwrap();
        assert_eq!(id.name, "system:serviceaccount:ci:runner");
        assert_eq!(id.metadata["mail"], "a@b");
        assert_eq!(id.metadata["namespace"], "ci");
        assert_eq!(id.metadata["groups"], "dev");
        assert!(!id.metadata.contains_key("x"));
        let none = BTreeMap::new();
        let r = |user_claim, ptr| IdentityRules {
            user_claim,
            user_claim_json_pointer: ptr,
            claim_mappings: &none,
            groups_claim: "",
        };
        assert_eq!(
            identity(&c, &r("email2", false)).unwrap_err(),
            "claim \"email2\" not found in token"
        );
        assert_eq!(
            identity(&c, &r("n", false)).unwrap_err(),
            "claim \"n\" could not be converted to string"
        );
        assert_eq!(identity(&c, &r("/k8s/ns", true)).unwrap().name, "ci");
        assert!(identity(&c, &r("/k8s/ns", false)).is_err());
        let mut m = BTreeMap::new();
        m.insert("n".to_string(), "num".to_string());
        let rules = IdentityRules {
            user_claim: "sub",
            user_claim_json_pointer: false,
            claim_mappings: &m,
            groups_claim: "",
        };
        assert!(identity(&c, &rules).is_err());
    }
}

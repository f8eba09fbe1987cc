//! The canonical form of a request path, decided once before authorization.
//!
//! Everything after this step (routing, the ACL, audit, the engine) sees the
//! same spelling, so the object an engine acts on is exactly the one the
//! policy was checked against. The rules:
//!
//! * a path has no leading `/`, no empty segment (`a//b`), no `.` or `..`
//!   segment and no control character: such a path is refused with 400;
//! * a LIST path ends in exactly one `/` (Vault's HTTP layer adds it), every
//!   other operation's path has none (`users/alice/` is `users/alice`);
//! * percent-encoding is undone once by the transport, before this step; a
//!   decoded `/` is a separator like any other;
//! * names an engine treats case-insensitively (userpass users, AppRole and
//!   JWT roles, policy names) are lower-cased here, by the engine's own
//!   [`crate::engine::Engine::canonical_path`], never after the ACL;
//! * parameters naming policies (`policies`, `token_policies`, ...) are
//!   turned into the list of names the engine will store (trimmed,
//!   lower-cased, de-duplicated) before `allowed_parameters` and
//!   `denied_parameters` judge them.

use serde_json::{Map, Value};

use crate::{Error, Operation, Result};

/// The shape checks and trailing-slash rule every path goes through.
pub fn shape(op: Operation, raw: &str) -> Result<String> {
    if raw.chars().any(char::is_control) {
        return Err(Error::bad("invalid request path: control character"));
    }
    let body = raw.strip_suffix('/').unwrap_or(raw);
    if !body.is_empty()
        && body
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(Error::bad(
            "invalid request path: empty, '.' or '..' segment",
        ));
    }
    if body.is_empty() && raw.len() > 1 {
        return Err(Error::bad("invalid request path: empty segment"));
    }
    let mut path = body.to_string();
    if op == Operation::List && !path.is_empty() {
        path.push('/');
    }
    Ok(path)
}

/// Parameters that name policies, in every engine that takes them.
pub const POLICY_FIELDS: [&str; 5] = [
    "policies",
    "token_policies",
    "allowed_policies",
    "disallowed_policies",
    "identity_policies",
];

/// Replaces each policy-naming parameter of `data` by the list of names the
/// engine will store: a comma-separated string or a list becomes a list of
/// trimmed, lower-cased, de-duplicated names. Other values are left for the
/// engine to refuse.
pub fn policy_fields(data: &mut Map<String, Value>) {
    for field in POLICY_FIELDS {
        let Some(value) = data.get(field) else {
            continue;
        };
        let items: Vec<String> = match value {
            Value::String(s) => s.split(',').map(str::to_string).collect(),
            Value::Array(a) if a.iter().all(Value::is_string) => a
                .iter()
                .filter_map(Value::as_str)
                .flat_map(|s| s.split(','))
                .map(str::to_string)
                .collect(),
            _ => continue,
        };
        let names = coffer_policy::sanitize_policies(&items, false);
        data.insert(
            field.to_string(),
            Value::Array(names.into_iter().map(Value::String).collect()),
        );
    }
}

/// On auth methods, `policies` is the deprecated alias of `token_policies`
/// (the engine stores either as the token policies). For the ACL's
/// parameter rules, both keys are made to hold the union of what was sent,
/// so a rule on either name judges every policy the engine will store.
pub fn merge_policy_alias(data: &mut Map<String, Value>) {
    let names = |v: Option<&Value>| -> Vec<Value> {
        match v {
            Some(Value::Array(a)) => a.clone(),
            _ => Vec::new(),
        }
    };
    if !data.contains_key("policies") && !data.contains_key("token_policies") {
        return;
    }
    let mut union = names(data.get("token_policies"));
    for n in names(data.get("policies")) {
        if !union.contains(&n) {
            union.push(n);
        }
    }
    for field in ["token_policies", "policies"] {
        if data.contains_key(field) || !union.is_empty() {
            data.insert(field.to_string(), Value::Array(union.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn trailing_slash_follows_the_operation() {
        assert_eq!(shape(Operation::Read, "a/b/").unwrap(), "a/b");
        assert_eq!(shape(Operation::Delete, "a/b").unwrap(), "a/b");
        assert_eq!(shape(Operation::List, "a/b").unwrap(), "a/b/");
        assert_eq!(shape(Operation::List, "a/b/").unwrap(), "a/b/");
        assert_eq!(shape(Operation::Read, "").unwrap(), "");
    }

    #[test]
    fn bad_shapes_are_refused() {
        for p in [
            "a//b", "/a", "a/./b", "a/../b", "..", "a/b//", "//", "a\u{0}b", "a\nb",
        ] {
            assert!(shape(Operation::Read, p).is_err(), "{p:?}");
            assert!(shape(Operation::List, p).is_err(), "{p:?}");
        }
    }

    #[test]
    fn the_policies_alias_is_judged_with_token_policies() {
        let mut data = json!({"policies": "Admin"});
        let map = data.as_object_mut().unwrap();
        policy_fields(map);
        merge_policy_alias(map);
        assert_eq!(map["token_policies"], json!(["admin"]));
        assert_eq!(map["policies"], json!(["admin"]));
    }

    #[test]
    fn policy_parameters_become_stored_names() {
        let mut data = json!({
            "token_policies": " Admin,default, admin",
            "policies": ["A", "b,C"],
            "ttl": "1h",
            "allowed_policies": 5,
        });
        let map = data.as_object_mut().unwrap();
        policy_fields(map);
        assert_eq!(map["token_policies"], json!(["admin", "default"]));
        assert_eq!(map["policies"], json!(["a", "b", "c"]));
        assert_eq!(map["ttl"], json!("1h"));
        assert_eq!(map["allowed_policies"], json!(5));
    }
}

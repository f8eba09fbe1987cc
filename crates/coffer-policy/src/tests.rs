//! Tests of the policy module: parsing, priority, evaluation, parameters,
//! formatting, built-ins, and property tests.

use std::time::Duration;

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::*;

fn policy(name: &str, text: &str) -> Policy {
    match Policy::parse(name, text) {
        Ok(p) => p,
        Err(e) => panic!("policy {name} failed to parse: {e}\n{text}"),
    }
}

fn acl(texts: &[&str]) -> Acl {
    let policies: Vec<Policy> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| policy(&format!("p{i}"), t))
        .collect();
    Acl::new(&policies)
}

fn allowed(acl: &Acl, op: Operation, path: &str) -> bool {
    acl.authorize(op, path, None).is_ok()
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

fn err(text: &str) -> PolicyError {
    match Policy::parse("t", text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------- priority

/// Each case: the lower-priority pattern grants `read`, the higher one grants
/// `update`; on `path`, update must be allowed and read refused.
#[test]
fn priority_table() {
    let cases: &[(&str, &str, &str, &str)] = &[
        // (low, high, path, which rule decides)
        // Vault docs: `secret/+/bar` beats `secret/*` (rule 2: ends in `*`).
        ("secret/*", "secret/+/bar", "secret/foo/bar", "2"),
        // Both prefixes: the longer prefix wins (rule 1: first `*` later).
        ("secret/foo*", "secret/foo/*", "secret/foo/x", "1"),
        // Docs: `secret/+/+/foo/*` is lower than `secret/*` (rule 3).
        ("secret/+/+/foo/*", "secret/*", "secret/a/b/foo/x", "3"),
        // `*` beats `+/*`: same first position, both globs, fewer `+`.
        ("+/*", "*", "foo/bar/bar/baz", "3"),
        // First wildcard later wins.
        ("+/*", "foo/+/*", "foo/bar/bar/baz", "1"),
        ("foo/+/(ar/baz", "foo/(ar/+/baz", "foo/(ar/(ar/baz", "1"),
        ("secret/*", "secret/foo/+", "secret/foo/bar", "1"),
        // More `+` segments is lower.
        ("foo/+/+/*", "foo/+/bar/baz", "foo/bar/bar/baz", "2"),
        ("foo/+/+/baz", "foo/+/bar/baz", "foo/bar/bar/baz", "3"),
        // A glob is lower than the same pattern without it.
        ("foo/bar/+/baz*", "foo/bar/+/baz", "foo/bar/bar/baz", "2"),
        // Shorter is lower.
        ("foo/bar/+/b*", "foo/bar/+/ba*", "foo/bar/bar/baz", "4"),
        // (5) sorts lower: same position, globness, `+` count and length.
        ("x/+/+/cd", "x/+/ab/+", "x/y/ab/cd", "5"),
        // An exact path beats every pattern.
        ("secret/*", "secret/foo", "secret/foo", "exact"),
        ("secret/+", "secret/foo", "secret/foo", "exact"),
    ];
    for (low, high, path, rule) in cases {
        for order in [[low, high], [high, low]] {
            let text = format!(
                "path \"{}\" {{ capabilities = [\"{}\"] }}\npath \"{}\" {{ capabilities = [\"{}\"] }}",
                order[0],
                if order[0] == low { "read" } else { "update" },
                order[1],
                if order[1] == low { "read" } else { "update" },
            );
            let a = acl(&[&text]);
            assert!(
                allowed(&a, Operation::Update, path),
                "rule {rule}: {high} should win over {low} on {path}"
            );
            assert!(
                !allowed(&a, Operation::Read, path),
                "rule {rule}: {low} should lose to {high} on {path}"
            );
        }
        // Same result when the patterns come from two policies.
        let a = acl(&[
            &format!("path \"{low}\" {{ capabilities = [\"read\"] }}"),
            &format!("path \"{high}\" {{ capabilities = [\"update\"] }}"),
        ]);
        assert!(allowed(&a, Operation::Update, path), "two policies, {path}");
        assert!(!allowed(&a, Operation::Read, path), "two policies, {path}");
    }
}

#[test]
fn higher_priority_rule_without_capability_still_hides_lower() {
    // Only the highest-priority pattern counts, even when it grants nothing
    // for this operation.
    let a = acl(&[r#"
        path "secret/*" { capabilities = ["read", "update"] }
        path "secret/locked/*" { capabilities = ["list"] }
    "#]);
    assert!(allowed(&a, Operation::Read, "secret/open"));
    assert!(!allowed(&a, Operation::Read, "secret/locked/x"));
    assert!(allowed(&a, Operation::List, "secret/locked/x"));
}

// ---------------------------------------------------------------- matching

#[test]
fn glob_and_segment_matching() {
    let a = acl(&[r#"
        path "secret/foo" { capabilities = ["read"] }
        path "secret/bar/*" { capabilities = ["read"] }
        path "secret/zip-*" { capabilities = ["read"] }
        path "secret/+/teamb" { capabilities = ["read"] }
        path "secret/+/+/teamc" { capabilities = ["read"] }
        path "+/segment/at/front" { capabilities = ["read"] }
        path "test/segment/at/end/+" { capabilities = ["read"] }
        path "test/+/wildcard/+/*" { capabilities = ["read"] }
        path "test/+/wildcardglob/+/end*" { capabilities = ["read"] }
        path "lit/a+b" { capabilities = ["read"] }
    "#]);
    let cases = [
        ("secret/foo", true),
        ("secret/food", false),
        ("secret/foo/bar", false),
        ("secret/bar/zip", true),
        ("secret/bar/zip/zap", true),
        ("secret/bar", false),
        ("secret/bars/zip", false),
        ("secret/zip-zap", true),
        ("secret/zip-zap/zong", true),
        ("secret/zip/zap", false),
        ("secret/x/teamb", true),
        ("secret/x/y/teamb", false),
        ("secret/teamb", false),
        ("secret/x/y/teamc", true),
        ("secret/x/teamc", false),
        ("any/segment/at/front", true),
        ("any/segment/at/frond", false),
        ("test/segment/at/end/foo", true),
        ("test/segment/at/end/foo/", false),
        ("test/segment/at/end/foo/bar", false),
        ("test/x/wildcard/y/", true),
        ("test/x/wildcard/y/z/w", true),
        ("test/x/wildcard/y", false),
        ("test/x/wildcardglob/y/end", true),
        ("test/x/wildcardglob/y/endless/more", true),
        ("test/x/wildcardglob/y/en", false),
        ("lit/a+b", true),
        ("lit/axb", false),
        ("/secret/foo", true),
        ("//secret/foo", true),
    ];
    for (path, want) in cases {
        assert_eq!(allowed(&a, Operation::Read, path), want, "{path}");
    }
}

#[test]
fn star_alone_matches_everything() {
    let a = acl(&[r#"path "*" { capabilities = ["read"] }"#]);
    assert!(allowed(&a, Operation::Read, ""));
    assert!(allowed(&a, Operation::Read, "anything/at/all"));
}

#[test]
fn list_finds_rules_without_trailing_slash() {
    let a = acl(&[r#"
        path "secret/metadata" { capabilities = ["list"] }
        path "kv/+/dir" { capabilities = ["list"] }
    "#]);
    assert!(allowed(&a, Operation::List, "secret/metadata/"));
    assert!(allowed(&a, Operation::List, "secret/metadata"));
    assert!(allowed(&a, Operation::List, "kv/a/dir/"));
    // Only list requests get the fallback.
    assert!(!allowed(&a, Operation::List, "secret/metadata/x"));
    assert_eq!(a.capability_names("secret/metadata/"), vec!["list"]);
}

/// One policy mixing legacy keys, capabilities, prefixes and `+`.
#[test]
fn mixed_policy_table() {
    let a = acl(&[MIXED_POLICY]);
    use Operation::*;
    // (operation, path, allowed, sudo)
    let cases: &[(Operation, &str, bool, bool)] = &[
        (Read, "elsewhere", false, false),
        (Read, "team/x", true, true),
        (Update, "team/x", true, true),
        (Delete, "staging/x", true, false),
        (List, "staging/cloud/x", true, true),
        (Update, "staging/cloud/x", true, true),
        (Delete, "staging/cloud/x", false, false),
        (Update, "staging/cloud/iam/x", true, true),
        (Delete, "live/x", false, false),
        (Update, "live/x", false, false),
        (Read, "live/x", true, false),
        (List, "live/x", true, false),
        (Read, "live/cloud/x", false, false),
        (Read, "sys/seal", false, false),
        (Read, "app/cfg", true, true),
        (List, "app/cfg", false, true),
        (Update, "app/cfg", false, true),
        (Create, "app/cfg", true, true),
        (Read, "app/log", true, false),
        (Create, "app/log", true, false),
        (Patch, "app/log", true, false),
        (List, "app/log", false, false),
        (Update, "app/log", false, false),
        (Read, "seg/x/y/one", false, false),
        (Read, "seg/x/one", true, false),
        (Read, "anything/front/of/path", true, false),
        (Read, "seg/end/x", true, false),
        (Read, "seg/end/x/", false, false),
        (Read, "seg/end/v2/x/", true, false),
        (Read, "n1/n2/a/b", false, false),
        (Read, "n1/n2/a", true, false),
        (Update, "n1/n2/a", false, false),
        (Update, "n1/n2/a/b", true, false),
        (Create, "n1/n2/a/b/c", true, false),
    ];
    for (op, path, want, sudo) in cases {
        let got = a.authorize(*op, path, None);
        assert_eq!(got.is_ok(), *want, "{op:?} {path}: {got:?}");
        if let Ok(r) = got {
            assert_eq!(r.sudo, *sudo, "{op:?} {path} sudo");
        }
    }
}

/// Two layered policies: the same patterns are unioned and `deny` in
/// either wins.
#[test]
fn layered_policies_table() {
    let a = acl(&[MIXED_POLICY, LAYER_POLICY]);
    use Operation::*;
    let cases: &[(Operation, &str, bool)] = &[
        (Read, "team/x", true),
        (Read, "team/hidden/x", false),
        (Update, "team/hidden/x", false),
        (Delete, "staging/x", true),
        (List, "staging/cloud/x", true),
        (Update, "staging/cloud/iam/x", false),
        (Delete, "live/x", true),
        (Update, "live/x", true),
        (Read, "live/cloud/x", false),
        (Read, "sys/health", false),
        (Update, "sys/seal", true),
        (Read, "app/cfg", false),
        (Create, "app/cfg", false),
        (Read, "app/log", false),
        (Patch, "app/log", false),
    ];
    for (op, path, want) in cases {
        assert_eq!(allowed(&a, *op, path), *want, "{op:?} {path}");
    }
    assert!(a.authorize(Update, "sys/seal", None).map(|r| r.sudo) == Ok(true));
}

#[test]
fn deny_beats_sudo_and_union_across_policies() {
    let a = acl(&[
        r#"path "secret/x" { capabilities = ["read", "sudo"] }"#,
        r#"path "secret/x" { capabilities = ["deny"] }"#,
        r#"path "secret/y" { capabilities = ["read"] }"#,
        r#"path "secret/y" { capabilities = ["update", "sudo"] }"#,
    ]);
    assert_eq!(
        a.authorize(Operation::Read, "secret/x", None),
        Err(Denied::ExplicitDeny)
    );
    assert_eq!(a.capability_names("secret/x"), vec!["deny"]);
    let r = a.authorize(Operation::Update, "secret/y", None).unwrap();
    assert!(r.sudo);
    assert!(allowed(&a, Operation::Read, "secret/y"));
    assert_eq!(
        a.capability_names("secret/y"),
        vec!["read", "sudo", "update"]
    );
    assert_eq!(a.capability_names("secret/none"), vec!["deny"]);
    assert_eq!(
        a.authorize(Operation::Read, "secret/none", None),
        Err(Denied::NoMatchingRule)
    );
    assert_eq!(
        a.authorize(Operation::Delete, "secret/y", None),
        Err(Denied::MissingCapability(Capability::Delete))
    );
}

#[test]
fn deny_in_one_block_drops_everything_else() {
    let p = policy(
        "t",
        r#"path "a" {
            capabilities = ["read", "deny", "sudo"]
            allowed_parameters = { "x" = [] }
        }"#,
    );
    let rule = &p.rules()[0];
    assert_eq!(rule.capabilities, CapabilitySet::from(Capability::Deny));
    assert!(rule.allowed_parameters.is_empty());
}

#[test]
fn root_allows_everything() {
    let a = Acl::new(&[Policy::root(), Policy::default_policy()]);
    assert!(a.is_root());
    let r = a.authorize(Operation::Delete, "sys/seal", None).unwrap();
    assert!(r.root && r.sudo);
    assert_eq!(a.capability_names("any/path"), vec!["root"]);
    assert_eq!(a.capabilities("x"), CapabilitySet::all_grants());
    assert!(Acl::root().is_root());
    // The name is reserved: a parsed policy can never become root.
    assert!(Policy::parse("root", r#"path "*" { capabilities = ["read"] }"#).is_err());
    assert!(!Acl::new(&[]).is_root());
}

#[test]
fn default_policy_grants_self_service_only() {
    let p = Policy::default_policy();
    assert_eq!(p.name(), "default");
    assert!(!p.rules().is_empty());
    assert!(Policy::parse("default", DEFAULT_POLICY_HCL).is_ok());
    let a = Acl::new(&[p]);
    use Operation::*;
    let cases: &[(Operation, &str, bool)] = &[
        (Read, "auth/token/lookup-self", true),
        (Update, "auth/token/lookup-self", false),
        (Update, "auth/token/renew-self", true),
        (Update, "auth/token/revoke-self", true),
        (Update, "sys/capabilities-self", true),
        (Read, "sys/internal/ui/resultant-acl", true),
        (Update, "sys/renew", true),
        (Update, "sys/leases/renew", true),
        (Update, "sys/leases/lookup", true),
        (Create, "cubbyhole/mine", true),
        (List, "cubbyhole/", true),
        (Update, "sys/wrapping/wrap", true),
        (Update, "sys/wrapping/unwrap", true),
        (Update, "sys/tools/hash/sha2-256", true),
        (Read, "identity/oidc/provider/p1/authorize", true),
        (Read, "secret/data/app", false),
        (List, "secret/", false),
        (Read, "sys/seal-status", false),
        (Update, "auth/token/create", false),
    ];
    for (op, path, want) in cases {
        assert_eq!(allowed(&a, *op, path), *want, "{op:?} {path}");
    }
    assert_eq!(a.capability_names("secret/foo"), vec!["deny"]);
}

// ---------------------------------------------------------------- parameters

const PARAMS_POLICY: &str = r#"
path "req/*" {
  capabilities = ["create", "update", "read", "delete", "list"]
  required_parameters = ["Name", "role"]
}
path "allow/some" {
  capabilities = ["create", "update"]
  allowed_parameters = {
    "color" = ["red", "blu*", "*een", "*ell*"]
    "Size"  = []
    "count" = [1, 2]
    "flag"  = [true]
  }
}
path "allow/star" {
  capabilities = ["create", "update"]
  allowed_parameters = {
    "*"     = []
    "color" = ["red"]
  }
  denied_parameters = {
    "bad" = []
  }
}
path "deny/values" {
  capabilities = ["create", "update"]
  denied_parameters = {
    "policies" = ["root", "admin*"]
  }
}
path "deny/all" {
  capabilities = ["create", "update", "read", "delete"]
  denied_parameters = { "*" = [] }
}
path "both/*" {
  capabilities = ["create", "update"]
  allowed_parameters = { "x" = ["a", "b"] }
  denied_parameters = { "x" = ["b"] }
}
"#;

#[test]
fn parameter_constraints() {
    let a = acl(&[PARAMS_POLICY]);
    use Operation::*;
    let cases: Vec<(Operation, &str, Value, bool)> = vec![
        // required_parameters (policy names lowercased for the lookup)
        (Create, "req/x", json!({"name": "n", "role": "r"}), true),
        (Create, "req/x", json!({"name": "n"}), false),
        (Create, "req/x", json!({}), false),
        (Read, "req/x", json!({"name": "n"}), false),
        (Delete, "req/x", json!({}), true),
        (List, "req/x", json!({}), true),
        // allowed_parameters: listed keys only, values from the list
        (Update, "allow/some", json!({}), true),
        (Update, "allow/some", json!({"color": "red"}), true),
        (Update, "allow/some", json!({"COLOR": "red"}), true),
        (Update, "allow/some", json!({"color": "green"}), true),
        (Update, "allow/some", json!({"color": "blue"}), true),
        (Update, "allow/some", json!({"color": "yellow"}), true),
        (Update, "allow/some", json!({"color": "pink"}), false),
        (Update, "allow/some", json!({"color": "Red"}), false),
        (Update, "allow/some", json!({"size": "anything"}), true),
        (Update, "allow/some", json!({"size": {"nested": 1}}), true),
        (Update, "allow/some", json!({"other": "x"}), false),
        (
            Update,
            "allow/some",
            json!({"color": "red", "other": "x"}),
            false,
        ),
        // lists: every element must be allowed
        (
            Update,
            "allow/some",
            json!({"color": ["red", "blue"]}),
            true,
        ),
        (
            Update,
            "allow/some",
            json!({"color": ["red", "pink"]}),
            false,
        ),
        (Update, "allow/some", json!({"color": []}), true),
        // comma-separated strings are read as lists
        (Update, "allow/some", json!({"color": "red, blue"}), true),
        (Update, "allow/some", json!({"color": "red,pink"}), false),
        // an empty string must itself be listed (Vault lets it through)
        (Update, "allow/some", json!({"color": ""}), false),
        // scalars are stringified on both sides
        (Update, "allow/some", json!({"count": 1}), true),
        (Update, "allow/some", json!({"count": "2"}), true),
        (Update, "allow/some", json!({"count": 3}), false),
        (Update, "allow/some", json!({"flag": true}), true),
        (Update, "allow/some", json!({"flag": "true"}), true),
        (Update, "allow/some", json!({"flag": false}), false),
        (Update, "allow/some", json!({"color": null}), false),
        (Update, "allow/some", json!({"color": {"a": "red"}}), false),
        // "*" key: unlisted keys pass, listed keys still checked
        (Update, "allow/star", json!({"anything": "x"}), true),
        (Update, "allow/star", json!({"color": "red"}), true),
        (Update, "allow/star", json!({"color": "blue"}), false),
        (Update, "allow/star", json!({"bad": "x"}), false),
        // denied_parameters
        (Update, "deny/values", json!({"policies": "dev"}), true),
        (Update, "deny/values", json!({"policies": "root"}), false),
        (Update, "deny/values", json!({"policies": "admins"}), false),
        (
            Update,
            "deny/values",
            json!({"policies": ["dev", "root"]}),
            false,
        ),
        (
            Update,
            "deny/values",
            json!({"policies": "dev,root"}),
            false,
        ),
        (Update, "deny/values", json!({"policies": null}), true),
        (Update, "deny/values", json!({"Policies": "root"}), false),
        (Update, "deny/all", json!({"a": 1}), false),
        (Update, "deny/all", json!({}), true),
        (Delete, "deny/all", json!({"a": 1}), true),
        // denied wins over allowed
        (Update, "both/x", json!({"x": "a"}), true),
        (Update, "both/x", json!({"x": "b"}), false),
    ];
    for (op, path, data, want) in cases {
        let data = obj(data);
        let got = a.authorize(op, path, Some(&data));
        assert_eq!(got.is_ok(), want, "{op:?} {path} {data:?}: {got:?}");
    }
    // No data at all behaves as empty data.
    assert!(a.authorize(Update, "allow/some", None).is_ok());
    assert!(a.authorize(Create, "req/x", None).is_err());
}

#[test]
fn parameter_denials_name_parameter_not_value() {
    let a = acl(&[PARAMS_POLICY]);
    let data = obj(json!({"policies": "root"}));
    let e = a
        .authorize(Operation::Update, "deny/values", Some(&data))
        .unwrap_err();
    assert_eq!(e, Denied::DeniedParameter("policies".into()));
    assert!(!e.to_string().contains("root"));
    let data = obj(json!({"other": "x"}));
    assert_eq!(
        a.authorize(Operation::Update, "allow/some", Some(&data)),
        Err(Denied::ParameterNotAllowed("other".into()))
    );
    assert_eq!(
        a.authorize(Operation::Create, "req/x", None),
        Err(Denied::MissingRequiredParameter("Name".into()))
    );
}

#[test]
fn kv2_skips_parameter_constraints() {
    let a = acl(&[PARAMS_POLICY]);
    assert!(a
        .authorize_without_parameters(Operation::Create, "req/x")
        .is_ok());
    assert!(a
        .authorize_without_parameters(Operation::Read, "nothing/here")
        .is_err());
}

#[test]
fn glob_values_follow_vault() {
    use crate::glob::param as glob_match;
    assert!(glob_match("*", "*"));
    assert!(!glob_match("*", "anything"));
    assert!(glob_match("**", "anything"));
    assert!(glob_match("a*", "abc"));
    assert!(glob_match("*c", "abc"));
    assert!(glob_match("*b*", "abc"));
    assert!(!glob_match("*x*", "abc"));
    assert!(glob_match("abc", "abc"));
    assert!(!glob_match("ab", "abc"));
}

/// Vault's merge table for the same pattern written several times.
#[test]
fn same_pattern_parameters_merge() {
    let a = acl(&[
        r#"
        path "foo/bar" {
          policy = "write"
          denied_parameters = { "baz" = [] }
          required_parameters = ["baz"]
        }
        path "hello/universe" {
          policy = "write"
          allowed_parameters = { "foo" = [] }
          required_parameters = ["foo"]
          max_wrapping_ttl = 300
          min_wrapping_ttl = 100
        }
        path "allow/all" {
          policy = "write"
          allowed_parameters = { "test" = [], "test1" = ["foo"] }
        }
        path "value/merge" {
          policy = "write"
          allowed_parameters = { "test" = [1, 2] }
        }
        "#,
        r#"
        path "foo/bar" {
          policy = "write"
          denied_parameters = { "zip" = [] }
        }
        path "hello/universe" {
          policy = "write"
          allowed_parameters = { "bar" = [] }
          required_parameters = ["bar"]
          max_wrapping_ttl = 200
          min_wrapping_ttl = "50s"
        }
        path "allow/all" {
          policy = "write"
          allowed_parameters = { "*" = [] }
        }
        path "value/merge" {
          policy = "write"
          allowed_parameters = { "test" = [3, 4] }
        }
        "#,
    ]);
    let ok = |path: &str, data: Value| {
        let data = obj(data);
        a.authorize(Operation::Update, path, Some(&data)).is_ok()
    };
    assert!(!ok("foo/bar", json!({"baz": 1})));
    assert!(!ok("foo/bar", json!({"zip": 1})));
    assert!(!ok("foo/bar", json!({})));
    assert!(!ok("hello/universe", json!({"foo": 1})));
    assert!(ok("hello/universe", json!({"foo": 1, "bar": 2})));
    assert!(!ok("hello/universe", json!({"foo": 1, "bar": 2, "x": 3})));
    assert!(ok("allow/all", json!({"anything": 1, "test1": "foo"})));
    assert!(ok("value/merge", json!({"test": 1})));
    assert!(ok("value/merge", json!({"test": 4})));
    assert!(!ok("value/merge", json!({"test": 5})));
    let r = a
        .authorize(
            Operation::Update,
            "hello/universe",
            Some(&obj(json!({"foo": 1, "bar": 2}))),
        )
        .unwrap();
    assert_eq!(r.max_wrapping_ttl, Some(Duration::from_secs(200)));
    assert_eq!(r.min_wrapping_ttl, Some(Duration::from_secs(50)));
    assert!(r.wrapping_ttl_allowed(Some(Duration::from_secs(100))));
    assert!(!r.wrapping_ttl_allowed(Some(Duration::from_secs(20))));
    assert!(!r.wrapping_ttl_allowed(Some(Duration::from_secs(250))));
    assert!(!r.wrapping_ttl_allowed(None));
}

// ---------------------------------------------------------------- parsing

#[test]
fn parse_errors_name_line_and_problem() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "path \"secret/*\" {\n  capabilities = [\n    \"raed\"\n  ]\n}",
            3,
            "unknown capability \"raed\"",
        ),
        (
            "# comment\npath \"a\" {\n  capabilites = [\"read\"]\n}",
            3,
            "unknown key \"capabilites\"",
        ),
        (
            "path \"a/+*\" { capabilities = [] }",
            1,
            "'+*' is forbidden",
        ),
        (
            "\n\npath \"a/*/b\" { capabilities = [] }",
            3,
            "last character",
        ),
        ("path \"\" { capabilities = [] }", 1, "empty path"),
        ("path \"/\" { capabilities = [] }", 1, "empty path"),
        (
            "path \"a\" {\n  policy = \"admin\"\n}",
            2,
            "invalid policy \"admin\"",
        ),
        (
            "path \"a\" {\n  capabilities = \"read\"\n}",
            2,
            "must be a list",
        ),
        (
            "path \"a\" {\n  capabilities = [\"read\"\n",
            2,
            "syntax error",
        ),
        ("foo = 1\n", 1, "unknown key \"foo\""),
        ("\nbackend \"x\" {}\n", 2, "unknown key \"backend\""),
        ("path {\n}\n", 1, "exactly one label"),
        (
            "path \"a\" {\n capabilities = []\n capabilities = [\"read\"]\n}",
            3,
            "redefined attribute",
        ),
        ("path \"a\" {\n control_group = {}\n}", 2, "not supported"),
        (
            "path \"a\" {\n mfa_methods = [\"x\"]\n}",
            2,
            "not supported",
        ),
        ("path \"a/${x}\" {\n}", 1, "syntax error"),
        (
            "path \"a\" {\n capabilities = [\"${x}\"]\n}",
            2,
            "not supported",
        ),
        (
            "path \"a\" {\n capabilities = [var.x]\n}",
            2,
            "not supported",
        ),
        (
            "path \"a\" {\n allowed_parameters = {\n  \"a*\" = []\n }\n}",
            3,
            "may only be \"*\"",
        ),
        (
            "path \"a\" {\n allowed_parameters = {\n  \"a\" = [[\"x\"]]\n }\n}",
            3,
            "strings, numbers or booleans",
        ),
        (
            "path \"a\" {\n required_parameters = [\"*\"]\n}",
            2,
            "wildcard",
        ),
        (
            "path \"a\" {\n max_wrapping_ttl = \"soon\"\n}",
            2,
            "duration",
        ),
        (
            "path \"a\" {\n min_wrapping_ttl = 300\n max_wrapping_ttl = 100\n}",
            1,
            "cannot be less",
        ),
    ];
    for (text, line, needle) in cases {
        let e = err(text);
        assert_eq!(e.line(), Some(*line), "{text:?} -> {e}");
        assert!(e.message().contains(needle), "{text:?} -> {e}");
        assert!(e.to_string().starts_with(&format!("line {line}: ")), "{e}");
    }
    assert_eq!(
        err("path \"secret/*\" {\n  capabilities = [\n    \"raed\"\n  ]\n}").to_string(),
        "line 3: unknown capability \"raed\""
    );
}

#[test]
fn parses_comments_legacy_and_full_rule() {
    let p = policy(
        "full",
        r#"
        # hash comment
        // slash comment
        /* block
           comment */
        name = "ignored"
        path "/secret/app/*" {
          comment      = "kept out of the rule"
          policy       = "read"
          capabilities = ["update", "patch"]
          allowed_parameters = {
            "Foo" = []
            "bar" = ["zip", 3, true]
          }
          denied_parameters {
            baz = ["x"]
          }
          required_parameters = ["foo", "foo"]
          min_wrapping_ttl = "1m"
          max_wrapping_ttl = 3600
        }
        path "auth/token/lookup-self" { capabilities = ["read"] }
        "#,
    );
    assert_eq!(p.rules().len(), 2);
    let r = &p.rules()[0];
    assert_eq!(r.pattern.as_str(), "secret/app/*");
    assert!(r.pattern.is_prefix());
    use Capability::*;
    assert_eq!(
        r.capabilities,
        [Read, List, Update, Patch].into_iter().collect()
    );
    assert_eq!(r.allowed_parameters.len(), 2);
    assert!(r.allowed_parameters["foo"].is_empty());
    assert_eq!(
        r.allowed_parameters["bar"],
        vec![
            ParamValue::String("zip".into()),
            ParamValue::Number(3.into()),
            ParamValue::Bool(true)
        ]
    );
    assert_eq!(
        r.denied_parameters["baz"],
        vec![ParamValue::String("x".into())]
    );
    assert_eq!(r.required_parameters, vec!["foo".to_string()]);
    assert_eq!(r.min_wrapping_ttl, Some(Duration::from_secs(60)));
    assert_eq!(r.max_wrapping_ttl, Some(Duration::from_secs(3600)));
    assert!(p.raw().contains("hash comment"));
}

#[test]
fn legacy_policy_mapping() {
    use Capability::*;
    let cases: &[(&str, &[Capability])] = &[
        ("read", &[Read, List]),
        ("write", &[Create, Read, Update, Delete, List]),
        ("sudo", &[Create, Read, Update, Delete, List, Sudo]),
        ("deny", &[Deny]),
    ];
    for (legacy, want) in cases {
        let p = policy("t", &format!("path \"a\" {{ policy = \"{legacy}\" }}"));
        assert_eq!(
            p.rules()[0].capabilities,
            want.iter().copied().collect(),
            "{legacy}"
        );
    }
}

#[test]
fn json_policies_parse_like_hcl() {
    let hcl = policy(
        "h",
        r#"
        path "secret/*" {
          capabilities = ["read", "list"]
          allowed_parameters = { "a" = ["x*"] }
          max_wrapping_ttl = "5m"
        }
        path "sys/+/x" { capabilities = ["deny"] }
        "#,
    );
    let json = policy(
        "j",
        r#"{
          "path": {
            "secret/*": {
              "capabilities": ["read", "list"],
              "allowed_parameters": {"a": ["x*"]},
              "max_wrapping_ttl": "5m"
            },
            "sys/+/x": {"capabilities": ["deny"]}
          }
        }"#,
    );
    assert_eq!(hcl.rules(), json.rules());
    // HCL1's list form of repeated blocks.
    let listed = policy(
        "l",
        r#"{"path": [{"secret/*": {"capabilities": ["read", "list"],
            "allowed_parameters": {"a": ["x*"]}, "max_wrapping_ttl": 300}},
            {"sys/+/x": {"capabilities": ["deny"]}}]}"#,
    );
    assert_eq!(hcl.rules(), listed.rules());

    let e = err("{\n \"path\": {\n  \"a\": {\"capabilities\": [\"raed\"]}\n }\n}");
    assert_eq!(e.line(), Some(3));
    assert!(e.message().contains("unknown capability \"raed\""), "{e}");
    let e = err("{\n \"path\": {\n  \"a\": {\"capabilities\": [\"read\"],}\n }\n}");
    assert_eq!(e.line(), Some(3), "{e}");
    assert!(e.message().contains("invalid JSON"), "{e}");
    let e = err("{\"paths\": {}}");
    assert!(e.message().contains("unknown key \"paths\""), "{e}");
}

#[test]
fn crlf_and_byte_order_mark_are_accepted() {
    let p = policy(
        "w",
        "\u{feff}# windows\r\npath \"a\" {\r\n  capabilities = [\"read\"]\r\n}\r\n",
    );
    assert_eq!(p.rules().len(), 1);
    let j = policy(
        "j",
        "\u{feff}{\"path\": {\"a\": {\"capabilities\": [\"read\"]}}}",
    );
    assert_eq!(j.rules(), p.rules());
}

#[test]
fn empty_policy_grants_nothing() {
    let p = policy("empty", "# nothing here\n");
    assert!(p.rules().is_empty());
    let a = Acl::new(&[p]);
    assert!(!allowed(&a, Operation::Read, "secret/x"));
}

#[test]
fn oversized_and_deeply_nested_inputs_are_refused() {
    let deep = format!(
        "path \"a\" {{ capabilities = {}{} }}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    assert!(err(&deep).message().contains("nesting"));
    let deep_json = format!("{}{}", "{\"a\":".repeat(5000), "}".repeat(5000));
    assert!(Policy::parse("j", &deep_json).is_err());
    let big = "#".repeat(2 << 20);
    assert!(err(&big).message().contains("larger"));
}

#[test]
fn brackets_in_comments_and_strings_do_not_count_as_nesting() {
    let sad = ":( ".repeat(100);
    let text = format!(
        "# {sad}\n// {sad}\n/* {sad}\n{sad} */\npath \"a/((((\" {{ capabilities = [\"read\"] }} # {sad}\n\
         path \"http://x/#\" {{ capabilities = [\"list\"] }}\n"
    );
    let p = policy("c", &text);
    assert_eq!(p.rules().len(), 2);
    assert_eq!(p.rules()[1].pattern.as_str(), "http://x/#");
}

#[test]
fn resultant_acl_lists_exact_and_glob_paths() {
    let a = acl(&[
        r#"
        path "secret/data/app" {
          capabilities = ["read", "update"]
          allowed_parameters = { "x" = ["a", 1, true] }
          required_parameters = ["x"]
          max_wrapping_ttl = "1h"
        }
        path "secret/metadata/*" { capabilities = ["list"] }
        path "secret/+/x" { capabilities = ["read"] }
        path "sys/*" { capabilities = [] }
        "#,
        r#"path "secret/data/app" { capabilities = ["deny"] }"#,
    ]);
    assert_eq!(
        a.resultant_acl(),
        json!({
            "root": false,
            "exact_paths": {
                "secret/data/app": {"capabilities": ["deny"]}
            },
            "glob_paths": {
                "secret/metadata/": {"capabilities": ["list"]},
                "sys/": {"capabilities": ["deny"]}
            }
        })
    );
    let b = acl(&[r#"path "a" {
          capabilities = ["read", "update"]
          allowed_parameters = { "x" = ["a", 1, true] }
          denied_parameters = { "y" = [] }
          required_parameters = ["x"]
          min_wrapping_ttl = 60
          max_wrapping_ttl = "1h"
        }"#]);
    assert_eq!(
        b.resultant_acl()["exact_paths"]["a"],
        json!({
            "capabilities": ["read", "update"],
            "min_wrapping_ttl": 60,
            "max_wrapping_ttl": 3600,
            "allowed_parameters": {"x": ["a", 1, true]},
            "denied_parameters": {"y": []},
            "required_parameters": ["x"]
        })
    );
    assert_eq!(Acl::root().resultant_acl(), json!({"root": true}));
}

#[test]
fn acl_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Acl>();
    assert_send_sync::<Policy>();
}

// ---------------------------------------------------------------- formatting

#[test]
fn format_is_canonical_and_round_trips() {
    let p = policy(
        "f",
        r#"
path "/secret/*" {
  policy = "read"
  capabilities = ["sudo"]
  denied_parameters = { "z" = [] }
  allowed_parameters = {
    "b" = ["x", 2, false]
    "A" = []
  }
  required_parameters = ["b"]
  max_wrapping_ttl = 5400
}
# second
path "weird/\"quoted\"/$${x}/%%{y}" { capabilities = [] }
"#,
    );
    let out = format_policy(&p);
    let want = r#"path "secret/*" {
  capabilities = ["read", "list", "sudo"]
  allowed_parameters = {
    "a" = []
    "b" = ["x", 2, false]
  }
  denied_parameters = {
    "z" = []
  }
  required_parameters = ["b"]
  max_wrapping_ttl = "1h30m"
}

path "weird/\"quoted\"/$${x}/%%{y}" {
  capabilities = []
}
"#;
    assert_eq!(out, want);
    assert_eq!(p.rules()[1].pattern.as_str(), "weird/\"quoted\"/${x}/%{y}");
    let again = policy("f", &out);
    assert_eq!(again.rules(), p.rules());
    assert_eq!(format_policy(&again), out);
    // The default policy formats and reparses to the same rules.
    let d = Policy::default_policy();
    assert_eq!(policy("d", &format_policy(&d)).rules(), d.rules());
}

// ---------------------------------------------------------------- properties

fn arb_pattern() -> impl Strategy<Value = String> {
    let seg = prop_oneof![Just("+".to_string()), "[a-c]{1,3}", Just("".to_string()),];
    (prop::collection::vec(seg, 1..5), any::<bool>()).prop_map(|(segs, glob)| {
        let mut s = segs.join("/");
        if glob && !s.ends_with('+') {
            s.push('*');
        }
        s
    })
}

fn arb_path() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-c]{0,3}", 1..6).prop_map(|segs| segs.join("/"))
}

fn arb_value() -> impl Strategy<Value = ParamValue> {
    prop_oneof![
        "\\PC{0,8}".prop_map(ParamValue::String),
        any::<i64>().prop_map(|n| ParamValue::Number(n.into())),
        any::<bool>().prop_map(ParamValue::Bool),
    ]
}

fn arb_rule() -> impl Strategy<Value = PathRule> {
    (
        arb_pattern(),
        prop::collection::vec(0usize..8, 0..4),
        prop::collection::btree_map(
            "[a-z*]{1,4}",
            prop::collection::vec(arb_value(), 0..3),
            0..3,
        ),
        prop::collection::vec("[a-z]{1,4}", 0..3),
        prop::option::of(0u64..100_000),
    )
        .prop_filter_map("valid pattern", |(pat, caps, allowed, required, ttl)| {
            let pattern = PathPattern::parse(&pat).ok()?;
            let caps: CapabilitySet = caps.into_iter().map(|i| Capability::ALL[i % 7]).collect();
            let mut rule = PathRule::new(pattern, caps);
            rule.allowed_parameters = allowed
                .into_iter()
                .filter(|(k, _)| k == "*" || !k.contains('*'))
                .collect();
            for r in required {
                if !rule.required_parameters.contains(&r) {
                    rule.required_parameters.push(r);
                }
            }
            rule.max_wrapping_ttl = ttl.map(Duration::from_secs);
            Some(rule)
        })
}

proptest! {
    #[test]
    fn parse_never_panics(text in "\\PC{0,200}") {
        let _ = Policy::parse("p", &text);
    }

    #[test]
    fn parse_never_panics_on_policy_like_text(
        parts in prop::collection::vec(prop_oneof![
            Just("path"), Just("\"secret/*\""), Just("\"a/+/b\""), Just("{"), Just("}"),
            Just("["), Just("]"), Just("="), Just(","), Just("capabilities"),
            Just("\"read\""), Just("\"deny\""), Just("allowed_parameters"), Just("\"*\""),
            Just("policy"), Just("\n"), Just("# c\n"), Just("/*"), Just("*/"), Just("300"),
            Just("max_wrapping_ttl"), Just("\"1h\""), Just("${"), Just("\""), Just(":"),
        ], 0..40)
    ) {
        let text = parts.join(" ");
        let _ = Policy::parse("p", &text);
        let _ = Policy::parse("p", &format!("{{{text}}}"));
    }

    #[test]
    fn format_round_trips(rules in prop::collection::vec(arb_rule(), 0..5)) {
        let p = Policy::from_rules("r", rules);
        let text = format_policy(&p);
        let back = Policy::parse("r", &text);
        prop_assert!(back.is_ok(), "{:?}\n{}", back.err(), text);
        let back = back.unwrap();
        let expected: Vec<PathRule> = p.rules().iter().map(|r| {
            let mut r = r.clone();
            r.allowed_parameters = r.allowed_parameters
                .into_iter()
                .map(|(k, v)| (k.to_lowercase(), v))
                .collect();
            r
        }).collect();
        prop_assert_eq!(back.rules(), expected.as_slice());
    }

    /// With a single pattern, the ACL grants exactly where the pattern
    /// matches (list requests aside).
    #[test]
    fn single_pattern_acl_agrees_with_matches(pat in arb_pattern(), path in arb_path()) {
        if let Ok(pattern) = PathPattern::parse(&pat) {
            let p = Policy::from_rules("p", vec![PathRule::new(pattern.clone(), Capability::Read.into())]);
            let a = Acl::new(&[p]);
            prop_assert_eq!(
                a.authorize(Operation::Read, &path, None).is_ok(),
                pattern.matches(&path)
            );
        }
    }

    /// The compiled ACL picks the same rule as a brute-force scan ranking
    /// every matching pattern by Vault's order.
    #[test]
    fn acl_agrees_with_brute_force(pats in prop::collection::vec(arb_pattern(), 1..8), path in arb_path()) {
        let patterns: Vec<PathPattern> = pats.iter().filter_map(|p| PathPattern::parse(p).ok()).collect();
        let rules: Vec<PathRule> = patterns.iter().enumerate().map(|(i, p)| {
            // Give each rule a distinct signature through its capabilities.
            let caps: CapabilitySet = Capability::ALL[..7].iter().enumerate()
                .filter(|(bit, _)| (i + 1) & (1 << bit) != 0)
                .map(|(_, c)| *c)
                .collect();
            PathRule::new(p.clone(), caps)
        }).collect();
        let a = Acl::new(&[Policy::from_rules("p", rules.clone())]);
        let best = rules.iter()
            .filter(|r| r.pattern.matches(&path))
            .max_by(|x, y| x.pattern.rank().cmp_priority(&y.pattern.rank()));
        let mut want = CapabilitySet::empty();
        if let Some(best) = best {
            for r in rules.iter().filter(|r| r.pattern == best.pattern) {
                want = want.union(r.capabilities);
            }
        }
        // `capabilities` looks up like a list request; paths without a
        // trailing slash make the two lookups identical.
        if !path.ends_with('/') {
            prop_assert_eq!(a.capabilities(&path), want);
        }
    }
}

// ---------------------------------------------------------------- timing

/// Rough cost of one authorization with a realistic ACL; run with
/// `cargo test -p coffer-core --release policy::tests::authorize_speed -- --ignored --nocapture`.
#[test]
#[ignore]
fn authorize_speed() {
    let mut text = String::from(DEFAULT_POLICY_HCL);
    for i in 0..200 {
        text.push_str(&format!(
            "path \"secret/data/team{i}/*\" {{ capabilities = [\"read\"] }}\n\
             path \"secret/metadata/team{i}\" {{ capabilities = [\"list\"] }}\n\
             path \"kv/+/team{i}/config\" {{ capabilities = [\"read\"] }}\n"
        ));
    }
    let a = Acl::new(&[policy("big", &text)]);
    let paths = [
        "secret/data/team150/app/db",
        "kv/prod/team7/config",
        "auth/token/lookup-self",
        "nothing/matches/here",
    ];
    let n = 200_000;
    let start = std::time::Instant::now();
    let mut ok = 0usize;
    for i in 0..n {
        if a.authorize(Operation::Read, paths[i % paths.len()], None)
            .is_ok()
        {
            ok += 1;
        }
    }
    let per = start.elapsed() / n as u32;
    println!("authorize: {per:?} per call over 600 rules ({ok} allowed)");
    assert_eq!(ok, n / 4 * 3);
}

// ---------------------------------------------------------------- fixtures

/// Legacy `policy = ...` keys mixed with capabilities, prefixes and `+`.
const MIXED_POLICY: &str = r#"
name = "mixed"
path "team/*" { policy = "sudo" }
path "staging/*" { policy = "write" }
path "staging/cloud/*" {
  policy       = "read"
  capabilities = ["update", "sudo"]
}
path "staging/cloud/iam/*" { policy = "sudo" }
path "live/*" { policy = "read" }
path "live/cloud/*" { policy = "deny" }
path "sys/*" { policy = "deny" }
path "app/cfg" { capabilities = ["read", "create", "sudo"] }
path "app/log" { capabilities = ["read", "create", "patch"] }
path "seg/+/one" { capabilities = ["read"] }
path "+/front/of/path" { capabilities = ["read"] }
path "seg/end/+" { capabilities = ["read"] }
path "seg/end/v2/+/" { capabilities = ["read"] }
path "n1/n2/*" { capabilities = ["create"] }
path "n1/n2/+" { capabilities = ["read"] }
path "n1/n2/+/+" { capabilities = ["update"] }
"#;

/// Layered over [`MIXED_POLICY`]: denies and extra grants on the same
/// patterns.
const LAYER_POLICY: &str = r#"
path "team/hidden/*" { policy = "deny" }
path "staging/cloud/iam/*" {
  policy       = "deny"
  # ignored: deny stands alone
  capabilities = ["read", "update", "sudo"]
}
path "live/*" { policy = "write" }
path "sys/seal" { policy = "sudo" }
path "app/cfg" { capabilities = ["deny"] }
path "app/log" { capabilities = ["deny"] }
"#;

// ------------------------------------------------- mount reach (ui/mounts)

#[test]
fn reaches_under_follows_vaults_mount_visibility_rule() {
    let a = acl(&[r#"path "secret/data/app/*" { capabilities = ["read"] }"#]);
    assert!(a.reaches_under("secret/"));
    assert!(!a.reaches_under("kv1/"));
    assert!(!a.reaches_under("secretx/"));
    // A deny on the whole mount does not hide a grant below it (Vault's walk).
    let a = acl(&[
        r#"path "secret/*" { capabilities = ["deny"] }"#,
        r#"path "secret/data/app/*" { capabilities = ["read"] }"#,
    ]);
    assert!(a.reaches_under("secret/"));
    // Deny alone, or a rule with no capability, reaches nothing.
    let a = acl(&[r#"path "secret/*" { capabilities = ["deny"] }"#]);
    assert!(!a.reaches_under("secret/"));
    // A prefix rule above the mount reaches it directly.
    let a = acl(&[r#"path "sec*" { capabilities = ["list"] }"#]);
    assert!(a.reaches_under("secret/"));
    assert!(!a.reaches_under("kv/"));
    // Exact rules below the mount.
    let a = acl(&[r#"path "kv/app/x" { capabilities = ["read"] }"#]);
    assert!(a.reaches_under("kv/"));
    // The mount path is looked up as a list is (Vault's Capabilities), so
    // an exact rule for the mount path without its slash reaches it.
    assert!(a.reaches_under("kv/app/x/"));
    assert!(!a.reaches_under("kv/other/"));
    // `+` rules that can match below the mount, and ones that cannot.
    let a = acl(&[r#"path "+/data/app" { capabilities = ["read"] }"#]);
    assert!(a.reaches_under("secret/"));
    assert!(a.reaches_under("secret/data/"));
    assert!(a.reaches_under("secret/data/app/"));
    assert!(!a.reaches_under("secret/data/app/x/"));
    assert!(!a.reaches_under("secret/meta/"));
    let a = acl(&[r#"path "team/+/ab*" { capabilities = ["read"] }"#]);
    assert!(a.reaches_under("team/x/abc/"));
    assert!(!a.reaches_under("team/x/zz/"));
    assert!(!a.reaches_under("other/"));
    assert!(Acl::root().reaches_under("anything/"));
}

mod granting_policies {
    use super::*;

    fn granting(acl: &Acl, op: Operation, path: &str) -> Vec<String> {
        match acl.authorize(op, path, None) {
            Ok(r) => r.granting_policies.iter().map(|n| n.to_string()).collect(),
            Err(e) => panic!("{path} was refused: {e}"),
        }
    }

    #[test]
    fn only_the_policies_granting_the_operations_capability_are_named() {
        let a = acl(&[
            r#"path "secret/data/a" { capabilities = ["read"] }"#,
            r#"path "secret/data/a" { capabilities = ["list"] }"#,
            r#"path "secret/data/a" { capabilities = ["read", "update"] }"#,
        ]);
        assert_eq!(granting(&a, Operation::Read, "secret/data/a"), ["p0", "p2"]);
        assert_eq!(granting(&a, Operation::Update, "secret/data/a"), ["p2"]);
    }

    #[test]
    fn the_winning_pattern_decides_not_every_pattern_that_matches() {
        let a = acl(&[
            r#"path "secret/data/*" { capabilities = ["read"] }"#,
            r#"path "secret/data/a/*" { capabilities = ["read"] }"#,
        ]);
        assert_eq!(granting(&a, Operation::Read, "secret/data/a/b"), ["p1"]);
        assert_eq!(granting(&a, Operation::Read, "secret/data/b"), ["p0"]);
    }

    #[test]
    fn two_rules_of_one_policy_name_it_once_and_deny_names_none() {
        let a = acl(&[r#"
            path "kv/x" { capabilities = ["read"] }
            path "kv/x" { capabilities = ["read", "create"] }
        "#]);
        assert_eq!(granting(&a, Operation::Read, "kv/x"), ["p0"]);
        let denied = acl(&[
            r#"path "kv/x" { capabilities = ["read"] }"#,
            r#"path "kv/x" { capabilities = ["deny"] }"#,
        ]);
        assert!(denied.authorize(Operation::Read, "kv/x", None).is_err());
    }

    #[test]
    fn root_is_granted_by_the_root_policy() {
        let r = Acl::root().authorize(Operation::Delete, "sys/seal", None);
        let names: Vec<String> = r
            .map(|r| r.granting_policies.iter().map(|n| n.to_string()).collect())
            .unwrap_or_default();
        assert_eq!(names, ["root"]);
    }
}

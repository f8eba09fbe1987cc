//! The authorization matrix: for every route of the server's route table
//! (`coffer_core::routes::CATALOG`), a token lacking the capability (or
//! `sudo`, where the path is root-protected) gets 403 and a token holding
//! exactly it gets past authorization. Routes added to the table later are
//! covered without touching this test.

mod cli_support;

use std::time::Duration;

use cli_support::{unique, Server};
use coffer_core::routes::{Route, CATALOG, MATRIX_MOUNTS};
use reqwest::blocking::Client;
use serde_json::{json, Value};

const ALL: [&str; 7] = [
    "create", "read", "update", "patch", "delete", "list", "sudo",
];

fn call(
    c: &Client,
    s: &Server,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = c
        .request(m, format!("{}/v1/{path}", s.addr))
        .header("X-Vault-Token", token);
    if method == "PATCH" {
        req = req
            .header("Content-Type", "application/merge-patch+json")
            .body(r#"{"data":{"k2":"v2"}}"#);
    } else if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

fn root(c: &Client, s: &Server, method: &str, path: &str, body: Value) {
    let (st, b) = call(c, s, &s.token, method, path, Some(body));
    assert!(st < 300, "setup {method} {path}: {st} {b}");
}

/// A token whose only policy grants `caps` on `path`.
fn token_with(c: &Client, s: &Server, path: &str, caps: &[&str]) -> String {
    let name = unique("matrix").to_lowercase();
    let caps: Vec<String> = caps.iter().map(|c| format!("\"{c}\"")).collect();
    let policy = format!("path \"{path}\" {{ capabilities = [{}] }}", caps.join(", "));
    root(
        c,
        s,
        "PUT",
        &format!("sys/policies/acl/{name}"),
        json!({ "policy": policy }),
    );
    let (st, b) = call(
        c,
        s,
        &s.token,
        "POST",
        "auth/token/create",
        Some(json!({"policies": [name], "no_default_policy": true, "ttl": "10m"})),
    );
    assert_eq!(st, 200, "{b}");
    b["auth"]["client_token"].as_str().unwrap().to_string()
}

fn setup(c: &Client, s: &Server, dir: &std::path::Path) {
    for (path, kind, version) in MATRIX_MOUNTS {
        if path == "secret" {
            continue;
        }
        let body = if version.is_empty() {
            json!({"type": kind})
        } else {
            json!({"type": kind, "options": {"version": version}})
        };
        match path.strip_prefix("auth/") {
            Some(p) => root(c, s, "POST", &format!("sys/auth/{p}"), body),
            None => root(c, s, "POST", &format!("sys/mounts/{path}"), body),
        }
    }
    root(
        c,
        s,
        "POST",
        "sys/mounts/secret-gone",
        json!({"type": "kv-v2"}),
    );
    root(
        c,
        s,
        "POST",
        "sys/auth/userpass-gone",
        json!({"type": "userpass"}),
    );
    let log = dir.join("audit.log");
    root(
        c,
        s,
        "PUT",
        "sys/audit/audit-gone",
        json!({"type": "file", "options": {"file_path": log.to_str().unwrap()}}),
    );
    for p in ["matrix", "matrix-del", "matrix-destroy", "matrix-gone"] {
        root(
            c,
            s,
            "POST",
            &format!("secret/data/{p}"),
            json!({"data": {"k": unique("v")}}),
        );
    }
    root(
        c,
        s,
        "POST",
        "secret/lifecycle/matrix",
        json!({"rotation": {"period": "90d", "rotator": "generate", "settings": {"field": "k"}}}),
    );
    for p in ["matrix", "matrix-del"] {
        root(c, s, "POST", &format!("kv1/{p}"), json!({"k": unique("v")}));
    }
    for p in ["matrix-fixed", "matrix-gone"] {
        root(
            c,
            s,
            "PUT",
            &format!("sys/policies/acl/{p}"),
            json!({"policy": "path \"x\" { capabilities = [\"read\"] }"}),
        );
    }
    for p in ["matrix", "matrix-gone"] {
        root(
            c,
            s,
            "POST",
            &format!("auth/token/roles/{p}"),
            json!({"allowed_policies": ["default"]}),
        );
        root(
            c,
            s,
            "POST",
            &format!("auth/userpass/users/{p}"),
            json!({"password": unique("pw")}),
        );
    }
    root(
        c,
        s,
        "POST",
        "auth/approle/role/matrix",
        json!({"token_policies": ["default"]}),
    );
}

fn concrete(route: &Route) -> String {
    route.path.replace("{new}", &unique("new").to_lowercase())
}

#[test]
fn every_route_refuses_a_missing_capability_and_admits_a_held_one() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(&["--dev-audit-dir", dir.path().to_str().unwrap()]);
    let c = Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    setup(&c, &s, dir.path());
    let mut failures = Vec::new();
    // Refusals first: they must change nothing the admissions rely on.
    for route in CATALOG {
        let path = concrete(route);
        let others: Vec<&str> = ALL
            .iter()
            .copied()
            .filter(|c| *c != route.capability)
            .collect();
        let t = token_with(&c, &s, &path, &others);
        let (st, b) = call(
            &c,
            &s,
            &t,
            route.method,
            &path,
            Some(json!({})).filter(|_| {
                route.method != "GET" && route.method != "LIST" && route.method != "DELETE"
            }),
        );
        if st != 403 {
            failures.push(format!(
                "{} {path} without {}: {st} {b}",
                route.method, route.capability
            ));
        }
        if route.sudo {
            let t = token_with(&c, &s, &path, &[route.capability]);
            let (st, b) = call(&c, &s, &t, route.method, &path, None);
            if st != 403 {
                failures.push(format!("{} {path} without sudo: {st} {b}", route.method));
            }
        }
    }
    for route in CATALOG {
        let path = concrete(route);
        let mut caps = vec![route.capability];
        if route.sudo {
            caps.push("sudo");
        }
        let t = token_with(&c, &s, &path, &caps);
        let body = match route.method {
            "GET" | "LIST" | "DELETE" => None,
            _ => Some(json!({})),
        };
        let (st, b) = call(&c, &s, &t, route.method, &path, body);
        if st == 403 || st >= 500 {
            failures.push(format!("{} {path} with {caps:?}: {st} {b}", route.method));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} routes failed:\n{}",
        failures.len(),
        CATALOG.len(),
        failures.join("\n")
    );
}

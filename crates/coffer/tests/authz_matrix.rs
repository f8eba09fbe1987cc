//! The authorization matrix: for every route of the server's route table
//! (`coffer_core::routes::CATALOG`), a token lacking the capability (or
//! `sudo`, where the path is root-protected) gets 403 and a token holding
//! exactly it gets past authorization. Routes added to the table later are
//! covered without touching this test.

mod cli_support;

use std::time::Duration;

use cli_support::{unique, Server};
use coffer_core::routes::{Route, CATALOG, MATRIX_MOUNTS, OPEN};
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
    let streamed = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/plain"));
    if streamed {
        // sys/monitor streams until the client leaves: dropping the
        // response leaves.
        return (status, Value::Null);
    }
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
    for p in ["matrix-pw", "matrix-pw-gone"] {
        root(
            c,
            s,
            "PUT",
            &format!("sys/policies/password/{p}"),
            json!({"policy": "length = 12\nrule \"charset\" {\n  charset = \"abc\"\n}\n"}),
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
    // An existing transit key: encrypt to it is an update, not a create.
    root(c, s, "POST", "transit/keys/matrix", json!({}));
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
        // Admitted means handled: a route no handler answers (404
        // "unsupported path", or 405) is a declared route that does not exist.
        let unhandled = st == 405 || (st == 404 && b.to_string().contains("unsupported path"));
        if st == 403 || st >= 500 || unhandled {
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

/// The routes marked "no token needed" answer without one: none of them is
/// guarded by accident (and a guarded route is no longer open by mistake:
/// the catalog test above proves those refuse).
#[test]
fn every_open_route_answers_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(&["--dev-audit-dir", dir.path().to_str().unwrap()]);
    let c = Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    setup(&c, &s, dir.path());
    let mut failures = Vec::new();
    for (method, path) in OPEN {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = c.request(m, format!("{}/v1/{path}", s.addr));
        if *method != "GET" {
            req = req.json(&json!({}));
        }
        let resp = req.send().unwrap();
        let st = resp.status().as_u16();
        if st == 403 || st >= 500 {
            let body = resp.text().unwrap_or_default();
            failures.push(format!("{method} {path} without a token: {st} {body}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Route prefixes whose next segment names an object case-insensitively.
const CASE_INSENSITIVE: [&str; 6] = [
    "auth/userpass/users/",
    "auth/userpass/login/",
    "auth/approle/role/",
    "auth/jwt/role/",
    "sys/policies/acl/",
    "sys/policy/",
];

/// One spelling of a route's path, and the statuses allowed for it when the
/// canonical path is denied: 403 when it names the same object, 400 when
/// its shape is refused.
struct Variant {
    method: &'static str,
    path: String,
    expect: &'static [u16],
}

fn variants(route: &Route, path: &str) -> Vec<Variant> {
    const DENIED: &[u16] = &[403];
    const MALFORMED: &[u16] = &[400];
    let trimmed = path.trim_end_matches('/');
    let mut out = vec![Variant {
        method: route.method,
        path: path.to_string(),
        expect: DENIED,
    }];
    let same = |p: String, out: &mut Vec<Variant>| {
        out.push(Variant {
            method: route.method,
            path: p,
            expect: DENIED,
        })
    };
    same(format!("{trimmed}/"), &mut out);
    same(trimmed.to_string(), &mut out);
    if route.method == "LIST" {
        for p in [
            format!("{trimmed}?list=true"),
            format!("{trimmed}/?list=true"),
        ] {
            out.push(Variant {
                method: "GET",
                path: p,
                expect: DENIED,
            });
        }
    }
    if let Some((head, last)) = trimmed.rsplit_once('/') {
        same(format!("{head}%2F{last}"), &mut out);
        same(format!("{head}%2f{last}/"), &mut out);
        for p in [
            format!("{head}//{last}"),
            format!("{head}/./{last}"),
            format!("{head}/x/../{last}"),
            format!("{trimmed}//"),
        ] {
            out.push(Variant {
                method: route.method,
                path: p,
                expect: MALFORMED,
            });
        }
    }
    for prefix in CASE_INSENSITIVE {
        if let Some(rest) = trimmed.strip_prefix(prefix) {
            if rest.is_empty() {
                continue;
            }
            let (name, tail) = rest.split_once('/').unwrap_or((rest, ""));
            let upper = name.to_uppercase();
            let mixed: String = name
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if i % 2 == 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            for n in [upper, mixed, format!("{}%20", name)] {
                let p = if tail.is_empty() {
                    format!("{prefix}{n}")
                } else {
                    format!("{prefix}{n}/{tail}")
                };
                same(p.clone(), &mut out);
                same(format!("{p}/"), &mut out);
            }
        }
    }
    out
}

/// Sends a request exactly as spelled (reqwest would normalise `.` segments).
fn raw_call(s: &Server, token: &str, method: &str, path: &str, body: &str) -> u16 {
    use std::io::{Read as _, Write as _};
    let host = s.addr.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(host).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let ctype = if method == "PATCH" {
        "application/merge-patch+json"
    } else {
        "application/json"
    };
    let req = format!(
        "{method} /v1/{path} HTTP/1.1\r\nHost: {host}\r\nX-Vault-Token: {token}\r\n\
         Content-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    conn.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn no_spelling_of_a_denied_route_gets_past_the_deny() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(&["--dev-audit-dir", dir.path().to_str().unwrap()]);
    let c = Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    setup(&c, &s, dir.path());
    let all = r#"["create", "read", "update", "patch", "delete", "list", "sudo"]"#;
    let mut failures = Vec::new();
    let mut sent = 0;
    for route in CATALOG {
        let path = concrete(route);
        let trimmed = path.trim_end_matches('/');
        // An exact deny and a glob deny of the canonical path, under a grant of everything.
        for deny in [
            format!("path \"{trimmed}\" {{ capabilities = [\"deny\"] }}\npath \"{trimmed}/\" {{ capabilities = [\"deny\"] }}"),
            format!("path \"{trimmed}*\" {{ capabilities = [\"deny\"] }}"),
        ] {
            let name = unique("variant").to_lowercase();
            let policy = format!("path \"*\" {{ capabilities = {all} }}\n{deny}");
            root(
                &c,
                &s,
                "PUT",
                &format!("sys/policies/acl/{name}"),
                json!({ "policy": policy }),
            );
            let (st, b) = call(
                &c,
                &s,
                &s.token,
                "POST",
                "auth/token/create",
                Some(json!({"policies": [name], "no_default_policy": true, "ttl": "10m"})),
            );
            assert_eq!(st, 200, "{b}");
            let t = b["auth"]["client_token"].as_str().unwrap().to_string();
            let body = match route.method {
                "PATCH" => r#"{"data":{"k2":"v2"}}"#,
                "GET" | "LIST" | "DELETE" => "",
                _ => "{}",
            };
            for v in variants(route, &path) {
                let st = raw_call(&s, &t, v.method, &v.path, body);
                sent += 1;
                if !v.expect.contains(&st) {
                    failures.push(format!(
                        "{} {} (denied {}): {st}, expected {:?}",
                        v.method, v.path, route.path, v.expect
                    ));
                }
            }
        }
    }
    eprintln!(
        "{sent} spellings of {} denied routes checked",
        CATALOG.len()
    );
    assert!(sent > CATALOG.len() * 10, "too few spellings: {sent}");
    assert!(
        failures.is_empty(),
        "{} of {sent} spellings got a wrong answer:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

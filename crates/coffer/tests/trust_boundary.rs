//! Attacks on the trust boundary, each reproduced against a real server:
//! a path spelled differently from the one the policy judged (case,
//! trailing slash, `//`, `.`, percent-encoding, LIST without its slash),
//! policy parameters dodged by case or commas, and limited-use tokens under
//! concurrency. Each must be refused, and the object behind it unchanged.

mod cli_support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use cli_support::{unique, Api, Server};
use serde_json::{json, Value};

/// Sends one request exactly as spelled (no URL normalisation, unlike
/// reqwest) and returns the status and the JSON body.
fn raw(s: &Server, method: &str, path: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
    let host = s.addr.trim_start_matches("http://");
    let mut conn = TcpStream::connect(host).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let req = format!(
        "{method} /v1/{path} HTTP/1.1\r\nHost: {host}\r\nX-Vault-Token: {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    conn.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out);
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let json = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .and_then(|b| {
            // Chunked bodies carry a size line first.
            let start = b.find('{')?;
            let end = b.rfind('}')?;
            serde_json::from_str(&b[start..=end]).ok()
        })
        .unwrap_or(Value::Null);
    (status, json)
}

/// A token whose only policy is `hcl`.
fn token_with_policy(api: &Api, hcl: &str, extra: Value) -> String {
    let name = unique("tb").to_lowercase();
    api.root(
        "PUT",
        &format!("sys/policies/acl/{name}"),
        Some(json!({ "policy": hcl })),
    );
    let mut body = json!({"policies": [name], "no_default_policy": true, "ttl": "10m"});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let out = api.root("POST", "auth/token/create", Some(body));
    out["auth"]["client_token"].as_str().unwrap().to_string()
}

fn userpass_login(api: &Api, mount: &str, user: &str, password: &str) -> u16 {
    api.call(
        "POST",
        &format!("auth/{mount}/login/{user}"),
        None,
        Some(json!({ "password": password })),
    )
    .0
}

#[test]
fn userpass_names_cannot_be_respelled_past_a_deny() {
    let s = Server::start();
    let api = Api::new(&s);
    api.root(
        "POST",
        "sys/auth/userpass",
        Some(json!({"type": "userpass"})),
    );
    let original = unique("pw");
    api.root(
        "POST",
        "auth/userpass/users/admin",
        Some(json!({"password": original})),
    );
    let t = token_with_policy(
        &api,
        r#"
        path "auth/userpass/users/*" { capabilities = ["create", "read", "update", "delete", "list"] }
        path "auth/userpass/users/admin*" { capabilities = ["deny"] }
        path "auth/userpass/users/admin" { capabilities = ["deny"] }
        "#,
        json!({}),
    );
    let stolen = unique("pw");
    let body = json!({ "password": stolen });
    for path in [
        "auth/userpass/users/ADMIN/password",
        "auth/userpass/users/Admin/password",
        "auth/userpass/users/admin/password/",
        "auth/userpass/users/%41dmin/password",
        "auth/userpass/users/ADMIN",
        "auth/userpass/users/admin/",
    ] {
        for method in ["POST", "PUT"] {
            let (st, b) = raw(&s, method, path, &t, Some(&body));
            assert!(
                st == 403 || st == 400,
                "{method} {path} got past the deny: {st} {b}"
            );
        }
    }
    for path in [
        "auth/userpass/users/admin/",
        "auth/userpass/users/ADMIN",
        "auth/userpass/users/ADMIN/",
        "auth/userpass/users//admin",
        "auth/userpass/users/./admin",
    ] {
        let (st, b) = raw(&s, "DELETE", path, &t, None);
        assert!(st == 403 || st == 400, "DELETE {path}: {st} {b}");
    }
    assert_eq!(userpass_login(&api, "userpass", "admin", &stolen), 400);
    assert_eq!(userpass_login(&api, "userpass", "admin", &original), 200);
    // Others stay manageable through the same policy.
    let (st, b) = raw(
        &s,
        "POST",
        "auth/userpass/users/Bob",
        &t,
        Some(&json!({"password": unique("pw")})),
    );
    assert!(st < 300, "{st} {b}");
    let (st, _) = api.call("GET", "auth/userpass/users/bob", Some(&s.token), None);
    assert_eq!(st, 200, "Bob is stored as bob");
}

#[test]
fn lockout_counts_every_spelling_of_a_user_as_one() {
    let s = Server::start();
    let api = Api::new(&s);
    api.root(
        "POST",
        "sys/auth/userpass",
        Some(json!({"type": "userpass"})),
    );
    let pw = unique("pw");
    api.root(
        "POST",
        "auth/userpass/users/alice",
        Some(json!({"password": pw})),
    );
    // Vault's default threshold is 5 failures.
    for path in [
        "auth/userpass/login/alice",
        "auth/userpass/login/alice/",
        "auth/userpass/login/ALICE",
        "auth/userpass/login/Alice/",
        "auth/userpass/login/aLiCe",
    ] {
        let (st, b) = raw(&s, "POST", path, "", Some(&json!({"password": "wrong"})));
        assert!(st == 400 || st == 403, "{path}: {st} {b}");
    }
    assert_ne!(
        userpass_login(&api, "userpass", "alice", &pw),
        200,
        "five failures under five spellings must lock alice out"
    );
}

#[test]
fn approle_and_jwt_roles_cannot_be_respelled_past_a_deny() {
    let s = Server::start();
    let api = Api::new(&s);
    api.root("POST", "sys/auth/approle", Some(json!({"type": "approle"})));
    api.root("POST", "sys/auth/jwt", Some(json!({"type": "jwt"})));
    api.root(
        "POST",
        "auth/approle/role/prod",
        Some(json!({"token_policies": ["default"]})),
    );
    let t = token_with_policy(
        &api,
        r#"
        path "auth/approle/role/*" { capabilities = ["create", "read", "update", "delete", "list"] }
        path "auth/approle/role/prod*" { capabilities = ["deny"] }
        path "auth/jwt/role/*" { capabilities = ["create", "read", "update", "delete", "list"] }
        path "auth/jwt/role/prod" { capabilities = ["deny"] }
        "#,
        json!({}),
    );
    for path in [
        "auth/approle/role/PROD/secret-id",
        "auth/approle/role/Prod/secret-id/",
        "auth/approle/role/PROD",
        "auth/approle/role/prod/",
    ] {
        let (st, b) = raw(&s, "POST", path, &t, Some(&json!({})));
        assert!(st == 403 || st == 400, "POST {path}: {st} {b}");
    }
    let (st, b) = raw(&s, "GET", "auth/approle/role/PROD/role-id", &t, None);
    assert_eq!(st, 403, "{b}");
    let (st, b) = raw(&s, "DELETE", "auth/approle/role/PROD", &t, None);
    assert_eq!(st, 403, "{b}");
    assert_eq!(
        api.call("GET", "auth/approle/role/prod", Some(&s.token), None)
            .0,
        200,
        "the denied role is still there"
    );
    let role = json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": ["x"],
                      "token_policies": ["admin"]});
    for path in [
        "auth/jwt/role/PROD",
        "auth/jwt/role/prod/",
        "auth/jwt/role/Prod",
    ] {
        let (st, b) = raw(&s, "POST", path, &t, Some(&role));
        assert!(st == 403 || st == 400, "POST {path}: {st} {b}");
    }
    assert_eq!(
        api.call("GET", "auth/jwt/role/prod", Some(&s.token), None)
            .0,
        404,
        "no role prod was written"
    );
}

#[test]
fn policy_names_cannot_be_respelled_past_a_deny() {
    let s = Server::start();
    let api = Api::new(&s);
    let admin = r#"path "*" { capabilities = ["sudo", "read"] }"#;
    api.root(
        "PUT",
        "sys/policies/acl/admin",
        Some(json!({"policy": admin})),
    );
    let t = token_with_policy(
        &api,
        r#"
        path "sys/policies/acl/*" { capabilities = ["create", "read", "update", "delete", "list"] }
        path "sys/policy/*" { capabilities = ["create", "read", "update", "delete", "list"] }
        path "sys/policies/acl/admin" { capabilities = ["deny"] }
        path "sys/policy/admin" { capabilities = ["deny"] }
        "#,
        json!({}),
    );
    let evil = json!({"policy": r#"path "*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }"#});
    for path in [
        "sys/policies/acl/ADMIN",
        "sys/policies/acl/Admin",
        "sys/policies/acl/admin/",
        "sys/policies/acl/%20admin",
        "sys/policy/ADMIN",
        "sys/policy/admin/",
    ] {
        let (st, b) = raw(&s, "PUT", path, &t, Some(&evil));
        assert!(st == 403 || st == 400, "PUT {path}: {st} {b}");
        let (st, b) = raw(&s, "DELETE", path, &t, None);
        assert!(st == 403 || st == 400, "DELETE {path}: {st} {b}");
    }
    let stored = api.root("GET", "sys/policies/acl/admin", None);
    assert_eq!(stored["data"]["policy"], admin);
}

#[test]
fn list_does_not_walk_past_a_deny() {
    let s = Server::start();
    let api = Api::new(&s);
    for p in ["private/a", "private/b", "public/c"] {
        api.root(
            "POST",
            &format!("secret/data/{p}"),
            Some(json!({"data": {"k": unique("v")}})),
        );
    }
    api.root(
        "POST",
        "sys/mounts/kv1",
        Some(json!({"type": "kv", "options": {"version": "1"}})),
    );
    api.root("POST", "kv1/private/a", Some(json!({"k": unique("v")})));
    let t = token_with_policy(
        &api,
        r#"
        path "secret/metadata/*" { capabilities = ["list"] }
        path "secret/metadata/private/*" { capabilities = ["deny"] }
        path "kv1/*" { capabilities = ["list"] }
        path "kv1/private/*" { capabilities = ["deny"] }
        "#,
        json!({"no_default_policy": false}),
    );
    for (method, path) in [
        ("LIST", "secret/metadata/private/"),
        ("LIST", "secret/metadata/private"),
        ("GET", "secret/metadata/private?list=true"),
        ("GET", "secret/metadata/private/?list=true"),
        ("LIST", "secret/metadata//private"),
        ("LIST", "secret/metadata/private%2F"),
        ("LIST", "kv1/private"),
        ("LIST", "kv1/private/"),
    ] {
        let (st, b) = raw(&s, method, path, &t, None);
        assert!(st == 403 || st == 400, "{method} {path} listed: {st} {b}");
        assert!(
            !b.to_string().contains("\"a\""),
            "{method} {path} leaked a name: {b}"
        );
    }
    let (st, b) = raw(&s, "LIST", "secret/metadata", &t, None);
    assert_eq!(st, 200, "{b}");
    let (st, b) = raw(&s, "LIST", "secret/metadata/public", &t, None);
    assert_eq!(
        st, 200,
        "a policy on secret/metadata/* covers LIST of a folder: {b}"
    );
    // capabilities-self agrees with the request path.
    let (st, b) = api.call(
        "POST",
        "sys/capabilities-self",
        Some(&t),
        Some(json!({"paths": ["secret/metadata/private/", "secret/metadata/public/"]})),
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["secret/metadata/private/"], json!(["deny"]), "{b}");
    assert_eq!(b["secret/metadata/public/"], json!(["list"]), "{b}");
}

#[test]
fn malformed_paths_are_refused_before_any_engine() {
    let s = Server::start();
    let api = Api::new(&s);
    api.root(
        "POST",
        "secret/data/x",
        Some(json!({"data": {"k": unique("v")}})),
    );
    for path in [
        "secret/data//x",
        "secret//data/x",
        "secret/data/./x",
        "secret/data/y/../x",
        "secret/data/%2E%2E/x",
        "secret/data/x%00",
    ] {
        let (st, b) = raw(&s, "GET", path, &s.token, None);
        assert_eq!(st, 400, "GET {path}: {st} {b}");
        let (st, b) = raw(&s, "DELETE", path, &s.token, None);
        assert_eq!(st, 400, "DELETE {path}: {st} {b}");
    }
    assert_eq!(
        api.call("GET", "secret/data/x", Some(&s.token), None).0,
        200
    );
}

#[test]
fn denied_parameters_see_the_values_the_engine_stores() {
    let s = Server::start();
    let api = Api::new(&s);
    api.root(
        "POST",
        "sys/auth/userpass",
        Some(json!({"type": "userpass"})),
    );
    let t = token_with_policy(
        &api,
        r#"
        path "auth/userpass/users/*" {
          capabilities = ["create", "update"]
          denied_parameters = { "token_policies" = ["admin"] }
        }
        path "auth/token/create" {
          capabilities = ["create", "update"]
          allowed_parameters = { "policies" = ["default", "dev"], "ttl" = [] }
        }
        "#,
        json!({"no_default_policy": false}),
    );
    for (field, value) in [
        ("token_policies", json!("Admin")),
        ("token_policies", json!(" admin")),
        ("token_policies", json!("default,Admin")),
        ("token_policies", json!("default, admin ")),
        ("token_policies", json!(["ADMIN"])),
        ("token_policies", json!(["default", " Admin"])),
        ("policies", json!("ADMIN")),
        ("policies", json!("admin")),
        ("policies", json!(["default", "admin"])),
        ("Token_Policies", json!("admin")),
    ] {
        let name = unique("u").to_lowercase();
        let (st, b) = api.call(
            "POST",
            &format!("auth/userpass/users/{name}"),
            Some(&t),
            Some(json!({"password": unique("pw"), field: value})),
        );
        assert_eq!(st, 403, "{field}={value} got past the denial: {b}");
        let (st, _) = api.call(
            "GET",
            &format!("auth/userpass/users/{name}"),
            Some(&s.token),
            None,
        );
        assert_eq!(st, 404, "{field}={value}: the user was not written");
    }
    let (st, b) = api.call(
        "POST",
        "auth/userpass/users/carol",
        Some(&t),
        Some(json!({"password": unique("pw"), "token_policies": "default, Dev"})),
    );
    assert!(st < 300, "{st} {b}");
    // allowed_parameters: a value the list does not hold, in any spelling, is refused.
    for value in [
        json!("default,ADMIN"),
        json!(["Dev", "admin"]),
        json!("root"),
    ] {
        let (st, b) = api.call(
            "POST",
            "auth/token/create",
            Some(&t),
            Some(json!({"policies": value, "ttl": "1m"})),
        );
        assert_eq!(st, 403, "policies={value}: {b}");
    }
    let (st, b) = api.call(
        "POST",
        "auth/token/create",
        Some(&t),
        Some(json!({"policies": " Default", "ttl": "1m"})),
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["auth"]["policies"], json!(["default"]), "{b}");
}

#[test]
fn a_limited_use_token_serves_at_most_its_uses_under_concurrency() {
    let s = Server::start();
    let api = Api::new(&s);
    api.root(
        "POST",
        "secret/data/uses",
        Some(json!({"data": {"k": unique("v")}})),
    );
    for (trial, uses) in (0..20).map(|i| (i, [1u64, 2, 5][i % 3])) {
        let t = token_with_policy(
            &api,
            r#"path "secret/data/uses" { capabilities = ["read"] }"#,
            json!({"num_uses": uses}),
        );
        let addr = s.addr.clone();
        let handles: Vec<_> = (0..32)
            .map(|_| {
                let (addr, t) = (addr.clone(), t.clone());
                std::thread::spawn(move || {
                    reqwest::blocking::Client::new()
                        .get(format!("{addr}/v1/secret/data/uses"))
                        .header("X-Vault-Token", t)
                        .send()
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0)
                })
            })
            .collect();
        let ok = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|st| *st == 200)
            .count();
        assert_eq!(
            ok as u64, uses,
            "trial {trial}: num_uses={uses} served {ok} requests"
        );
        let (st, _) = api.call("GET", "secret/data/uses", Some(&t), None);
        assert_eq!(st, 403, "trial {trial}: the used-up token still works");
    }
}

/// A config-file server on SQLite with file audit devices allowed under
/// `<dir>/audit`; returns it (sealed, uninitialised).
fn config_server(dir: &std::path::Path) -> Server {
    let addr = cli_support::free_addr();
    let cfg = dir.join("coffer.toml");
    std::fs::write(
        &cfg,
        format!(
            "[storage.sqlite]\npath = {:?}\n\n[listener.tcp]\naddress = \"{addr}\"\ntls_disable = true\n\n[audit]\nfile_dir = {:?}\n",
            dir.join("coffer.db").to_str().unwrap(),
            dir.join("audit").to_str().unwrap()
        ),
    )
    .unwrap();
    Server::start_config(&cfg, format!("http://{addr}"))
}

fn unseal_with(api: &Api, key: &str) -> (u16, Value) {
    api.call("PUT", "sys/unseal", None, Some(json!({ "key": key })))
}

#[test]
fn the_core_serves_nothing_unaudited_around_an_unseal() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = config_server(dir.path());
    let api = Api::new(&s);
    let init = api
        .call(
            "PUT",
            "sys/init",
            None,
            Some(json!({"secret_shares": 1, "secret_threshold": 1})),
        )
        .1;
    let key = init["keys"][0].as_str().unwrap().to_string();
    s.token = init["root_token"].as_str().unwrap().to_string();
    let api = Api::new(&s);
    assert_eq!(unseal_with(&api, &key).0, 200);
    let log = dir.path().join("audit").join("audit.log");
    api.root(
        "PUT",
        "sys/audit/file",
        Some(json!({"type": "file", "options": {"file_path": log.to_str().unwrap()}})),
    );
    api.root("POST", "sys/mounts/secret", Some(json!({"type": "kv-v2"})));
    api.root(
        "POST",
        "secret/data/x",
        Some(json!({"data": {"k": unique("v")}})),
    );

    // A device that cannot load fails the unseal; nothing is served meanwhile.
    api.root("PUT", "sys/seal", None);
    std::fs::remove_file(&log).unwrap();
    std::fs::create_dir(&log).unwrap();
    let (st, b) = unseal_with(&api, &key);
    assert!(st >= 400, "unseal with a broken audit device: {st} {b}");
    assert_eq!(
        api.call("GET", "sys/seal-status", None, None).1["sealed"],
        json!(true)
    );
    let (st, _) = api.call("GET", "secret/data/x", Some(&s.token), None);
    assert_eq!(st, 503);
    std::fs::remove_dir(&log).unwrap();

    // Requests racing the unseal: every one answered 200 is in the audit log.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let (addr, token, stop) = (s.addr.clone(), s.token.clone(), stop.clone());
            std::thread::spawn(move || {
                let c = reqwest::blocking::Client::new();
                let mut ids = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Ok(r) = c
                        .get(format!("{addr}/v1/secret/data/x"))
                        .header("X-Vault-Token", &token)
                        .send()
                    {
                        if r.status().as_u16() == 200 {
                            let v: Value = r.json().unwrap();
                            ids.push(v["request_id"].as_str().unwrap().to_string());
                        }
                    }
                }
                ids
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let (st, b) = unseal_with(&api, &key);
    assert_eq!(st, 200, "{b}");
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let ids: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert!(!ids.is_empty(), "no request was served after the unseal");
    let audit = std::fs::read_to_string(&log).unwrap();
    let missing: Vec<&String> = ids
        .iter()
        .filter(|id| !audit.contains(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered requests are not in the audit log",
        missing.len(),
        ids.len()
    );
}

#[test]
fn nothing_mounts_under_the_kernels_own_backends() {
    // The token store and the system backend are routed ahead of every
    // mount, so a mount below them could never answer: refused, as a mount
    // below any other mount is.
    let s = Server::start();
    let api = Api::new(&s);
    for (path, body) in [
        ("sys/auth/token/x", json!({"type": "userpass"})),
        ("sys/mounts/sys/x", json!({"type": "kv"})),
    ] {
        let (st, b) = api.call("POST", path, Some(&s.token), Some(body));
        assert_eq!(st, 400, "{path}: {b}");
    }
    let auth = api.root("GET", "sys/auth", None);
    assert!(auth["data"].get("token/x/").is_none(), "{auth}");
}

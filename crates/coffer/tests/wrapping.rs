//! Response wrapping and the cubbyhole against a real `coffer server --dev`:
//! `X-Vault-Wrap-TTL` on reads, writes and logins, `sys/wrapping/*`, single
//! use under 32 concurrent unwraps, policies' wrapping TTL bounds, the
//! audit trail, and the `coffer unwrap` / `--wrap-ttl` CLI.

mod cli_support;

use std::sync::{Arc, Barrier};

use cli_support::{http, random_hex, unique, Api, Server};
use serde_json::{json, Value};

const INVALID: &str = "wrapping token is not valid or does not exist";

/// `method path` with an optional token, body and `X-Vault-Wrap-TTL`.
fn call(
    s: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
    wrap_ttl: Option<&str>,
) -> (u16, Value, String) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = http().request(m, format!("{}/v1/{path}", s.addr));
    if let Some(t) = token {
        req = req.header("X-Vault-Token", t);
    }
    if let Some(w) = wrap_ttl {
        req = req.header("X-Vault-Wrap-TTL", w);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, v, text)
}

/// Wraps the answer of `method path` and returns its `wrap_info`.
fn wrapped(s: &Server, method: &str, path: &str, body: Option<Value>, ttl: &str) -> Value {
    let (st, v, _) = call(s, method, path, Some(&s.token), body, Some(ttl));
    assert_eq!(st, 200, "{method} {path}: {v}");
    assert!(v["data"].is_null() && v["auth"].is_null(), "leaked: {v}");
    v["wrap_info"].clone()
}

fn token_of(info: &Value) -> String {
    info["token"].as_str().unwrap().to_string()
}

fn put_secret(s: &Server, path: &str) -> String {
    let value = random_hex(16);
    Api::new(s).root(
        "POST",
        &format!("secret/data/{path}"),
        Some(json!({"data": {"pw": value}})),
    );
    value
}

#[test]
fn a_wrapped_read_hides_the_secret_and_unwraps_exactly_once() {
    let s = Server::start();
    let value = put_secret(&s, "app");
    let (st, v, text) = call(
        &s,
        "GET",
        "secret/data/app",
        Some(&s.token),
        None,
        Some("90s"),
    );
    assert_eq!(st, 200, "{v}");
    assert!(
        !text.contains(&value),
        "the wrapped answer carries the secret"
    );
    let info = &v["wrap_info"];
    assert_eq!(info["ttl"], 90);
    assert_eq!(info["creation_path"], "secret/data/app");
    assert!(info["accessor"].as_str().is_some_and(|a| !a.is_empty()));
    assert!(info.get("wrapped_accessor").is_none(), "{info}");
    assert_eq!(v["request_id"], "");
    let wt = token_of(info);

    // lookup needs no token and does not spend the single use
    for _ in 0..2 {
        let (st, v, _) = call(
            &s,
            "POST",
            "sys/wrapping/lookup",
            None,
            Some(json!({"token": wt})),
            None,
        );
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["data"]["creation_path"], "secret/data/app");
        assert_eq!(v["data"]["creation_ttl"], 90);
    }
    let (st, v, _) = call(&s, "POST", "sys/wrapping/lookup", None, None, None);
    assert_eq!(st, 403, "{v}");
    // Anyone holding a wrapping token may look it up, but not have that
    // answer wrapped: it would mint new wrapping tokens without a token.
    let (st, v, _) = call(
        &s,
        "POST",
        "sys/wrapping/lookup",
        None,
        Some(json!({"token": wt})),
        Some("60"),
    );
    assert_eq!(st, 400, "{v}");
    assert!(v.get("wrap_info").is_none_or(Value::is_null), "{v}");
    // A wrap TTL longer than any token's is refused before the request runs.
    let (st, v, _) = call(
        &s,
        "GET",
        "sys/mounts",
        Some(&s.token),
        None,
        Some("2764801"),
    );
    assert_eq!(st, 400, "{v}");

    // the wrapping token can do nothing but unwrap: reading its own
    // cubbyhole takes its single use and is refused
    let (st, v, _) = call(&s, "POST", "sys/wrapping/unwrap", Some(&wt), None, None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["data"]["pw"], value.as_str());
    assert!(v["wrap_info"].is_null());
    for (token, body) in [
        (wt.as_str(), None),
        (s.token.as_str(), Some(json!({"token": wt}))),
    ] {
        let (st, v, _) = call(&s, "POST", "sys/wrapping/unwrap", Some(token), body, None);
        assert_eq!(st, 400, "a second unwrap worked: {v}");
        assert_eq!(v["errors"][0], INVALID);
    }
    let (st, v, _) = call(
        &s,
        "POST",
        "sys/wrapping/lookup",
        None,
        Some(json!({"token": wt})),
        None,
    );
    assert_eq!((st, v["errors"][0].as_str()), (400, Some(INVALID)));
}

#[test]
fn wrapping_token_cannot_read_its_cubbyhole_or_anything_else() {
    let s = Server::start();
    put_secret(&s, "app");
    let wt = token_of(&wrapped(&s, "GET", "secret/data/app", None, "60"));
    let (st, _, _) = call(&s, "GET", "cubbyhole/response", Some(&wt), None, None);
    assert_eq!(st, 403);
    // that request took the single use: the token is gone
    let (st, v, _) = call(&s, "POST", "sys/wrapping/unwrap", Some(&wt), None, None);
    assert_eq!((st, v["errors"][0].as_str()), (400, Some(INVALID)), "{v}");
}

#[test]
fn thirty_two_concurrent_unwraps_give_the_answer_exactly_once() {
    let s = Server::start();
    let value = put_secret(&s, "race");
    for by_body in [false, true] {
        let wt = token_of(&wrapped(&s, "GET", "secret/data/race", None, "5m"));
        let barrier = Arc::new(Barrier::new(32));
        let results: Vec<(u16, Value)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..32)
                .map(|_| {
                    let barrier = barrier.clone();
                    let (s, wt) = (&s, wt.clone());
                    scope.spawn(move || {
                        barrier.wait();
                        let (token, body) = if by_body {
                            (s.token.as_str(), Some(json!({"token": wt})))
                        } else {
                            (wt.as_str(), None)
                        };
                        let (st, v, _) =
                            call(s, "POST", "sys/wrapping/unwrap", Some(token), body, None);
                        (st, v)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let won: Vec<_> = results.iter().filter(|(st, _)| *st == 200).collect();
        assert_eq!(won.len(), 1, "by_body={by_body}: {results:?}");
        assert_eq!(won[0].1["data"]["data"]["pw"], value.as_str());
        for (st, v) in results.iter().filter(|(st, _)| *st != 200) {
            assert_eq!((*st, v["errors"][0].as_str()), (400, Some(INVALID)));
        }
    }
}

#[test]
fn wrapped_logins_and_tokens_carry_the_wrapped_accessor_and_unwrap_to_auth() {
    let s = Server::start();
    let api = Api::new(&s);
    let info = wrapped(
        &s,
        "POST",
        "auth/token/create",
        Some(json!({"ttl": "1h", "policies": ["default"]})),
        "60",
    );
    let wt = token_of(&info);
    let (st, v, _) = call(&s, "POST", "sys/wrapping/unwrap", Some(&wt), None, None);
    assert_eq!(st, 200, "{v}");
    let minted = v["auth"]["client_token"].as_str().unwrap().to_string();
    assert_eq!(v["auth"]["accessor"], info["wrapped_accessor"]);
    let (st, who, _) = call(
        &s,
        "GET",
        "auth/token/lookup-self",
        Some(&minted),
        None,
        None,
    );
    assert_eq!(st, 200, "{who}");

    // a login through an auth method (no token of its own)
    api.root(
        "POST",
        "sys/auth/userpass",
        Some(json!({"type": "userpass"})),
    );
    let pw = random_hex(12);
    api.root(
        "POST",
        "auth/userpass/users/ana",
        Some(json!({"password": pw})),
    );
    let (st, v, text) = call(
        &s,
        "POST",
        "auth/userpass/login/ana",
        None,
        Some(json!({"password": pw})),
        Some("2m"),
    );
    assert_eq!(st, 200, "{v}");
    assert!(v["auth"].is_null(), "{v}");
    assert_eq!(v["wrap_info"]["creation_path"], "auth/userpass/login/ana");
    let wrapped_accessor = v["wrap_info"]["wrapped_accessor"].as_str().unwrap();
    assert!(!text.contains("client_token"));
    let (st, u, _) = call(
        &s,
        "POST",
        "sys/wrapping/unwrap",
        Some(&s.token),
        Some(json!({"token": token_of(&v["wrap_info"])})),
        None,
    );
    assert_eq!(st, 200, "{u}");
    assert_eq!(u["auth"]["accessor"], wrapped_accessor);

    // an AppRole secret ID: wrapped_accessor is the secret ID's accessor
    api.root("POST", "sys/auth/approle", Some(json!({"type": "approle"})));
    api.root(
        "POST",
        "auth/approle/role/x",
        Some(json!({"token_policies": "default"})),
    );
    let info = wrapped(
        &s,
        "POST",
        "auth/approle/role/x/secret-id",
        Some(json!({})),
        "60s",
    );
    let (st, u, _) = call(
        &s,
        "POST",
        "sys/wrapping/unwrap",
        Some(&token_of(&info)),
        None,
        None,
    );
    assert_eq!(st, 200, "{u}");
    assert_eq!(u["data"]["secret_id_accessor"], info["wrapped_accessor"]);
    let role_id = api.root("GET", "auth/approle/role/x/role-id", None)["data"]["role_id"].clone();
    let (st, login, _) = call(
        &s,
        "POST",
        "auth/approle/login",
        None,
        Some(json!({"role_id": role_id, "secret_id": u["data"]["secret_id"]})),
        None,
    );
    assert_eq!(st, 200, "{login}");
}

#[test]
fn wrap_rewrap_and_bad_ttls() {
    let s = Server::start();
    let (st, v, _) = call(
        &s,
        "POST",
        "sys/wrapping/wrap",
        Some(&s.token),
        Some(json!({"x": "y"})),
        None,
    );
    assert_eq!(st, 400, "{v}");
    assert_eq!(
        v["errors"][0],
        "endpoint requires response wrapping to be used"
    );
    let info = wrapped(
        &s,
        "POST",
        "sys/wrapping/wrap",
        Some(json!({"x": "y", "n": 3})),
        "5m",
    );
    assert_eq!(info["creation_path"], "sys/wrapping/wrap");
    assert_eq!(info["ttl"], 300);
    let old = token_of(&info);
    // rewrap: a fresh token, same creation path, the header's TTL; the old one is dead
    let (st, v, _) = call(
        &s,
        "POST",
        "sys/wrapping/rewrap",
        Some(&s.token),
        Some(json!({"token": old})),
        Some("30"),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["wrap_info"]["creation_path"], "sys/wrapping/wrap");
    assert_eq!(v["wrap_info"]["ttl"], 30);
    let fresh = token_of(&v["wrap_info"]);
    assert_ne!(fresh, old);
    let (st, _, _) = call(&s, "POST", "sys/wrapping/unwrap", Some(&old), None, None);
    assert_eq!(st, 400);
    let (st, v, _) = call(&s, "POST", "sys/wrapping/unwrap", Some(&fresh), None, None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"], json!({"x": "y", "n": 3}));

    for bad in ["abc", "-5", "1.5", "10000000000000", "5x"] {
        let (st, v, _) = call(&s, "GET", "sys/mounts", Some(&s.token), None, Some(bad));
        assert_eq!(st, 400, "{bad}: {v}");
        assert!(
            v["errors"][0]
                .as_str()
                .unwrap()
                .starts_with("error parsing X-Vault-Wrap-TTL header"),
            "{v}"
        );
    }
    // 0 means not wrapped; an empty answer (204) is not wrapped either
    let (st, v, _) = call(&s, "GET", "sys/mounts", Some(&s.token), None, Some("0"));
    assert_eq!(st, 200);
    assert!(v["wrap_info"].is_null() && v["data"].is_object(), "{v}");
    Api::new(&s).root("POST", "sys/mounts/kv1", Some(json!({"type": "kv"})));
    let (st, v, _) = call(
        &s,
        "POST",
        "kv1/x",
        Some(&s.token),
        Some(json!({"a": "b"})),
        Some("60"),
    );
    assert_eq!(st, 204, "{v}");
}

#[test]
fn policy_wrapping_ttl_bounds_are_enforced() {
    let s = Server::start();
    let api = Api::new(&s);
    put_secret(&s, "bounded");
    api.root(
        "PUT",
        "sys/policies/acl/bounded",
        Some(json!({"policy": "path \"secret/data/bounded\" {\n capabilities = [\"read\"]\n min_wrapping_ttl = \"10s\"\n max_wrapping_ttl = \"60s\"\n}"})),
    );
    let t = api.root(
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["bounded"], "ttl": "10m"})),
    )["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    for (ttl, want) in [
        (None, 403),
        (Some("5"), 403),
        (Some("120"), 403),
        (Some("30s"), 200),
    ] {
        let (st, v, _) = call(&s, "GET", "secret/data/bounded", Some(&t), None, ttl);
        assert_eq!(st, want, "{ttl:?}: {v}");
    }
}

#[test]
fn cubbyholes_are_private_per_token_and_mounted_like_vaults() {
    let s = Server::start();
    let api = Api::new(&s);
    let mounts = api.root("GET", "sys/mounts", None);
    assert_eq!(mounts["data"]["cubbyhole/"]["type"], "cubbyhole");
    let mk = || {
        api.root(
            "POST",
            "auth/token/create",
            Some(json!({"ttl": "10m", "policies": ["default"]})),
        )["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (a, b) = (mk(), mk());
    let value = random_hex(16);
    let (st, v, _) = call(
        &s,
        "POST",
        "cubbyhole/notes/one",
        Some(&a),
        Some(json!({"v": value})),
        None,
    );
    assert_eq!(st, 204, "{v}");
    let (st, v, _) = call(&s, "GET", "cubbyhole/notes/one", Some(&a), None, None);
    assert_eq!((st, v["data"]["v"].as_str()), (200, Some(value.as_str())));
    let (st, v, _) = call(&s, "LIST", "cubbyhole/", Some(&a), None, None);
    assert_eq!((st, v["data"]["keys"].clone()), (200, json!(["notes/"])));
    // another token (even root) sees nothing, whatever the spelling
    for t in [b.as_str(), s.token.as_str()] {
        for path in [
            "cubbyhole/notes/one",
            "cubbyhole/notes/one/",
            "cubbyhole//notes/one",
        ] {
            let (st, v, text) = call(&s, "GET", path, Some(t), None, None);
            assert!(st == 404 || st == 400, "{path}: {st} {v}");
            assert!(!text.contains(&value));
        }
        let (st, _, _) = call(&s, "LIST", "cubbyhole/", Some(t), None, None);
        assert_eq!(st, 404);
    }
    // the built-in mount stays
    for (method, path, body) in [
        ("DELETE", "sys/mounts/cubbyhole", None),
        (
            "POST",
            "sys/mounts/cubbyhole/tune",
            Some(json!({"default_lease_ttl": "1h"})),
        ),
        (
            "POST",
            "sys/mounts/cub2",
            Some(json!({"type": "cubbyhole"})),
        ),
    ] {
        let (st, v, _) = call(&s, method, path, Some(&s.token), body, None);
        assert_eq!(st, 400, "{method} {path}: {v}");
    }
    // revoking a token destroys its cubbyhole; a new token starts empty
    let (st, _, _) = call(&s, "POST", "auth/token/revoke-self", Some(&a), None, None);
    assert_eq!(st, 204);
    let (st, _, _) = call(&s, "GET", "cubbyhole/notes/one", Some(&a), None, None);
    assert_eq!(st, 403);
}

#[test]
fn the_audit_trail_records_wrap_info_hmaced() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(&["--dev-audit-dir", dir.path().to_str().unwrap()]);
    let api = Api::new(&s);
    let file = dir.path().join("audit.log");
    api.root(
        "PUT",
        "sys/audit/file",
        Some(json!({"type": "file", "options": {"file_path": file.display().to_string()}})),
    );
    let value = put_secret(&s, "audited");
    let info = wrapped(&s, "GET", "secret/data/audited", None, "60");
    let wt = token_of(&info);
    let (st, _, _) = call(&s, "POST", "sys/wrapping/unwrap", Some(&wt), None, None);
    assert_eq!(st, 200);
    let log = std::fs::read_to_string(&file).unwrap();
    assert!(!log.contains(&wt), "the wrapping token is in the audit log");
    assert!(!log.contains(&value), "the secret is in the audit log");
    let hashed = api.root("PUT", "sys/audit-hash/file", Some(json!({"input": wt})))["hash"]
        .as_str()
        .unwrap()
        .to_string();
    let entries: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let wrap = entries
        .iter()
        .find(|e| {
            e["type"] == "response"
                && e["request"]["path"] == "secret/data/audited"
                && !e["response"]["wrap_info"].is_null()
        })
        .expect("a response entry with wrap_info");
    let w = &wrap["response"]["wrap_info"];
    assert!(
        w["token"].as_str().unwrap().starts_with("hmac-sha256:"),
        "{w}"
    );
    assert!(
        w["accessor"].as_str().unwrap().starts_with("hmac-sha256:"),
        "{w}"
    );
    assert_eq!(w["creation_path"], "secret/data/audited");
    assert_eq!(w["token"], hashed.as_str());
    // the unwrap is audited under the wrapping token, HMAC'd
    let unwrap = entries
        .iter()
        .find(|e| e["type"] == "response" && e["request"]["path"] == "sys/wrapping/unwrap")
        .expect("the unwrap is audited");
    assert!(unwrap["auth"]["client_token"]
        .as_str()
        .unwrap()
        .starts_with("hmac-sha256:"));
    assert_eq!(unwrap["auth"]["policies"], json!(["response-wrapping"]));
}

#[test]
fn cli_unwrap_and_wrap_ttl() {
    let s = Server::start();
    let value = unique("v");
    s.run(&["kv", "put", "secret/cli", &format!("pw={value}")])
        .ok();
    let run = s
        .run(&["kv", "get", "-wrap-ttl=60s", "-format=json", "secret/cli"])
        .ok();
    assert!(!run.stdout.contains(&value), "{run:?}");
    let wt = run.json()["wrap_info"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let run = s.run(&["unwrap", "-format=json", &wt]).ok();
    assert_eq!(run.json()["data"]["data"]["pw"], value.as_str());
    let run = s.run(&["unwrap", &wt]).code(2);
    assert!(run.stderr.contains(INVALID), "{run:?}");

    // read and write take it too; -field=wrapping_token, then unwrap with
    // the wrapping token as the client's own token
    let wt = s
        .run(&[
            "read",
            "--wrap-ttl",
            "2m",
            "-field=wrapping_token",
            "secret/data/cli",
        ])
        .ok()
        .stdout;
    let run = s
        .cmd()
        .env("COFFER_TOKEN", wt.trim())
        .args(["unwrap", "-field=data"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    assert!(String::from_utf8_lossy(&run.stdout).contains(&value));
    let run = s
        .run(&[
            "write",
            "-wrap-ttl=1m",
            "-f",
            "-format=json",
            "auth/token/create",
        ])
        .ok();
    let v = run.json();
    assert!(v["auth"].is_null(), "{v}");
    assert!(v["wrap_info"]["wrapped_accessor"].is_string(), "{v}");
}

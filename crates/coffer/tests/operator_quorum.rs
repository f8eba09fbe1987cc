//! Rekey and root generation against real servers on SQLite storage:
//! through the `coffer` CLI, the HTTP API (32 concurrent submissions) and,
//! when it is installed, the real `bao` CLI (`COFFER_TEST_BAO` or `bao` on
//! PATH; those tests skip without it).

mod cli_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use cli_support::{bao, bao_at, cli, http, start_initialised, Run, Server};
use serde_json::{json, Value};

/// Calls the API; returns status and JSON (null when empty).
fn call(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut rb = http().request(m, format!("{addr}/v1/{path}"));
    if let Some(t) = token {
        rb = rb.header("X-Vault-Token", t);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let resp = rb.send().unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, v)
}

#[track_caller]
fn ok(addr: &str, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Value {
    let (s, v) = call(addr, method, path, token, body);
    assert!(s == 200 || s == 204, "{method} {path}: {s} {v}");
    v
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect()
}

/// A server on fresh SQLite storage, initialised and unsealed:
/// (server, config, keys, root token).
fn initialised(dir: &Path, shares: u32, threshold: u32) -> (Server, PathBuf, Vec<String>, String) {
    let (s, cfg, keys) = start_initialised(dir, shares, threshold);
    let root = s.token.clone();
    (s, cfg, keys, root)
}

#[track_caller]
fn unseal_with(addr: &str, keys: &[String]) -> Value {
    let mut last = Value::Null;
    for k in keys {
        last = ok(addr, "PUT", "sys/unseal", None, Some(json!({"key": k})));
    }
    last
}

fn sealed(addr: &str) -> bool {
    ok(addr, "GET", "sys/seal-status", None, None)["sealed"] == true
}

/// A `coffer` command at `addr` with no token (rekey and generate-root need none).
fn at(home: &Path, addr: &str) -> Command {
    let mut c = cli(home);
    c.env("COFFER_ADDR", addr);
    c
}

#[test]
fn rekey_through_the_cli_replaces_the_shares_even_across_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cfg, keys, root) = initialised(dir.path(), 1, 1);
    let addr = s.addr.clone();
    ok(
        &addr,
        "POST",
        "sys/mounts/secret",
        Some(&root),
        Some(json!({"type": "kv-v2"})),
    );
    ok(
        &addr,
        "POST",
        "secret/data/app",
        Some(&root),
        Some(json!({"data": {"pw": "kept"}})),
    );
    let home = s.home.path();

    let started = Run::of(at(home, &addr).args([
        "operator",
        "rekey",
        "-init",
        "-key-shares=3",
        "-key-threshold=2",
        "-format=json",
    ]))
    .ok()
    .json();
    assert_eq!(started["started"], true);
    assert_eq!(
        (started["n"].as_u64(), started["t"].as_u64()),
        (Some(3), Some(2))
    );
    // A second start is refused while one runs.
    Run::of(at(home, &addr).args(["operator", "rekey", "-init"])).code(2);
    // A wrong nonce is a 400 naming the right one.
    let (st, v) = call(
        &addr,
        "PUT",
        "sys/rekey/update",
        None,
        Some(json!({"key": keys[0], "nonce": "wrong"})),
    );
    assert_eq!(st, 400, "{v}");
    assert!(
        v["errors"][0].as_str().unwrap().contains("incorrect nonce"),
        "{v}"
    );

    let done = Run::of(at(home, &addr).args(["operator", "rekey", "-format=json", &keys[0]]))
        .ok()
        .json();
    assert_eq!(done["complete"], true);
    let new = strings(&done["keys_base64"]);
    assert_eq!(new.len(), 3);
    assert_eq!(strings(&done["keys"]).len(), 3);
    let status = ok(&addr, "GET", "sys/seal-status", None, None);
    assert_eq!(
        (status["n"].as_u64(), status["t"].as_u64()),
        (Some(3), Some(2))
    );

    // kill -9, restart on the same storage: the new shares open it, the old one does not.
    drop(s);
    let s = Server::start_config(&cfg, addr.clone());
    assert!(sealed(&addr));
    let (st, v) = call(
        &addr,
        "PUT",
        "sys/unseal",
        None,
        Some(json!({"key": keys[0]})),
    );
    assert!(st == 400 || (st == 200 && v["sealed"] == true), "{st} {v}");
    ok(
        &addr,
        "PUT",
        "sys/unseal",
        None,
        Some(json!({"reset": true})),
    );
    unseal_with(&addr, &[new[2].clone(), new[0].clone()]);
    assert!(!sealed(&addr));
    let read = ok(&addr, "GET", "secret/data/app", Some(&root), None);
    assert_eq!(read["data"]["data"]["pw"], "kept");
    drop(s);
}

#[test]
fn verification_holds_the_new_shares_until_a_quorum_of_them_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _cfg, keys, root) = initialised(dir.path(), 3, 2);
    let addr = s.addr.clone();
    let init = ok(
        &addr,
        "PUT",
        "sys/rekey/init",
        None,
        Some(json!({"secret_shares": 2, "secret_threshold": 2, "require_verification": true})),
    );
    let nonce = init["nonce"].as_str().unwrap().to_owned();
    assert_eq!(init["verification_required"], true);
    assert_eq!(init["required"], 2);
    let one = ok(
        &addr,
        "PUT",
        "sys/rekey/update",
        None,
        Some(json!({"key": keys[1], "nonce": nonce})),
    );
    assert_eq!(one["progress"], 1);
    let (st, v) = call(
        &addr,
        "PUT",
        "sys/rekey/update",
        None,
        Some(json!({"key": keys[1], "nonce": nonce})),
    );
    assert_eq!(st, 400, "the same share twice: {v}");
    let done = ok(
        &addr,
        "PUT",
        "sys/rekey/update",
        None,
        Some(json!({"key": keys[2], "nonce": nonce})),
    );
    assert_eq!(done["complete"], true);
    let vnonce = done["verification_nonce"].as_str().unwrap().to_owned();
    let new = strings(&done["keys"]);

    // Not in force yet: the old configuration stands.
    assert_eq!(ok(&addr, "GET", "sys/seal-status", None, None)["n"], 3);
    let vs = ok(&addr, "GET", "sys/rekey/verify", None, None);
    assert_eq!(
        (vs["nonce"].as_str(), vs["progress"].as_u64()),
        (Some(vnonce.as_str()), Some(0))
    );
    // An old share does not verify: progress starts over.
    ok(
        &addr,
        "PUT",
        "sys/rekey/verify",
        None,
        Some(json!({"key": new[0], "nonce": vnonce})),
    );
    let (st, v) = call(
        &addr,
        "PUT",
        "sys/rekey/verify",
        None,
        Some(json!({"key": keys[0], "nonce": vnonce})),
    );
    assert_eq!(st, 400, "{v}");
    assert_eq!(
        ok(&addr, "GET", "sys/rekey/verify", None, None)["progress"],
        0
    );
    // With the new ones, via the CLI.
    Run::of(at(s.home.path(), &addr).args(["operator", "rekey", "-verify", &new[1]])).ok();
    let out =
        Run::of(at(s.home.path(), &addr).args(["operator", "rekey", "-verify", &new[0]])).ok();
    assert!(out.stdout.contains("new keys are now active"), "{out:#?}");
    assert_eq!(ok(&addr, "GET", "sys/seal-status", None, None)["n"], 2);

    // A rekey in progress ends with a seal; the shares in force unseal.
    ok(
        &addr,
        "PUT",
        "sys/rekey/init",
        None,
        Some(json!({"secret_shares": 1, "secret_threshold": 1})),
    );
    ok(&addr, "PUT", "sys/seal", Some(&root), None);
    let (st, _) = call(&addr, "GET", "sys/rekey/init", None, None);
    assert_eq!(st, 503, "rekey status while sealed");
    unseal_with(&addr, &new);
    assert!(!sealed(&addr));
    assert_eq!(
        ok(&addr, "GET", "sys/rekey/init", None, None)["started"],
        false
    );
    // Bad configurations are 400s, nothing starts.
    for body in [
        json!({"secret_shares": 1, "secret_threshold": 2}),
        json!({"secret_shares": 300, "secret_threshold": 2}),
        json!({"secret_shares": 3, "secret_threshold": 1}),
        json!({}),
        json!({"secret_shares": 1, "secret_threshold": 1, "pgp_keys": ["x"]}),
    ] {
        let (st, v) = call(&addr, "PUT", "sys/rekey/init", None, Some(body.clone()));
        assert_eq!(st, 400, "{body}: {v}");
    }
    assert_eq!(
        ok(&addr, "GET", "sys/rekey/init", None, None)["started"],
        false
    );
}

#[test]
fn thirty_two_concurrent_submissions_count_each_share_once_and_complete_once() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _cfg, mut keys, root) = initialised(dir.path(), 5, 3);
    let addr = s.addr.clone();
    for round in 0..2 {
        let (path, start, body_of): (&str, &str, fn(&str, &str) -> Value) = if round == 0 {
            (
                "sys/rekey/update",
                "sys/rekey/init",
                |k, n| json!({"key": k, "nonce": n}),
            )
        } else {
            (
                "sys/generate-root/update",
                "sys/generate-root/attempt",
                |k, n| json!({"key": k, "nonce": n}),
            )
        };
        let init_body = if round == 0 {
            json!({"secret_shares": 5, "secret_threshold": 3})
        } else {
            json!({})
        };
        let nonce = ok(&addr, "PUT", start, None, Some(init_body))["nonce"]
            .as_str()
            .unwrap()
            .to_owned();
        let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..32)
                .map(|i| {
                    let (addr, key, nonce) = (addr.clone(), keys[i % 4].clone(), nonce.clone());
                    scope.spawn(move || call(&addr, "PUT", path, None, Some(body_of(&key, &nonce))))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let complete: Vec<&Value> = answers
            .iter()
            .filter(|(st, v)| *st == 200 && v["complete"] == true)
            .map(|(_, v)| v)
            .collect();
        assert_eq!(
            complete.len(),
            1,
            "exactly one completion in round {round}: {answers:?}"
        );
        for (st, v) in &answers {
            assert!(*st == 200 || *st == 400, "{st} {v}");
            assert!(v["progress"].as_u64().unwrap_or(0) <= 3, "{v}");
        }
        if round == 0 {
            // The one key set issued is the one in force.
            let new = strings(&complete[0]["keys_base64"]);
            ok(&addr, "PUT", "sys/seal", Some(&root), None);
            unseal_with(&addr, &new[2..5]);
            assert!(!sealed(&addr));
            keys = new;
        } else {
            assert!(complete[0]["encoded_token"]
                .as_str()
                .is_some_and(|t| !t.is_empty()));
        }
    }
}

#[test]
fn generate_root_through_the_cli_makes_a_working_root_token_and_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _cfg, keys, root) = initialised(dir.path(), 3, 2);
    let addr = s.addr.clone();
    ok(
        &addr,
        "PUT",
        "sys/audit/file",
        Some(&root),
        Some(json!({"type": "file", "options": {"file_path": "audit.log"}})),
    );
    let home = s.home.path();

    let init =
        Run::of(at(home, &addr).args(["operator", "generate-root", "-init", "-format=json"]))
            .ok()
            .json();
    let otp = init["otp"].as_str().unwrap().to_owned();
    assert_eq!(init["otp_length"].as_u64(), Some(otp.len() as u64));
    let nonce = init["nonce"].as_str().unwrap().to_owned();
    // The OTP is shown once: status does not repeat it.
    let status =
        Run::of(at(home, &addr).args(["operator", "generate-root", "-status", "-format=json"]))
            .ok()
            .json();
    assert_eq!(status["otp"], "");
    assert_eq!(status["required"], 2);
    let (st, v) = call(
        &addr,
        "PUT",
        "sys/generate-root/update",
        None,
        Some(json!({"key": keys[0], "nonce": "nope"})),
    );
    assert_eq!(st, 400, "{v}");
    Run::of(at(home, &addr).args(["operator", "generate-root", "-nonce", &nonce, &keys[0]])).ok();
    let done =
        Run::of(at(home, &addr).args(["operator", "generate-root", "-format=json", &keys[2]]))
            .ok()
            .json();
    assert_eq!(done["complete"], true);
    let encoded = done["encoded_token"].as_str().unwrap().to_owned();
    assert_eq!(done["encoded_root_token"], encoded.as_str());
    let decoded = Run::of(at(home, &addr).args([
        "operator",
        "generate-root",
        &format!("-decode={encoded}"),
        &format!("-otp={otp}"),
    ]))
    .ok();
    let token = decoded.stdout.trim().to_owned();
    assert!(token.starts_with("cfs."), "{decoded:#?}");
    let me = ok(&addr, "GET", "auth/token/lookup-self", Some(&token), None);
    assert_eq!(me["data"]["policies"], json!(["root"]));
    ok(
        &addr,
        "PUT",
        "sys/policies/acl/made-by-new-root",
        Some(&token),
        Some(json!({"policy": "path \"x\" { capabilities = [\"read\"] }"})),
    );

    // Cancel, a given OTP of the wrong length, sealed.
    ok(
        &addr,
        "PUT",
        "sys/generate-root/attempt",
        None,
        Some(json!({})),
    );
    let (st, _) = call(
        &addr,
        "PUT",
        "sys/generate-root/attempt",
        None,
        Some(json!({})),
    );
    assert_eq!(st, 400, "a second attempt while one runs");
    Run::of(at(home, &addr).args(["operator", "generate-root", "-cancel"])).ok();
    let (st, v) = call(
        &addr,
        "PUT",
        "sys/generate-root/attempt",
        None,
        Some(json!({"otp": "short"})),
    );
    assert_eq!(st, 400, "{v}");
    let (st, _) = call(
        &addr,
        "PUT",
        "sys/generate-root/attempt",
        None,
        Some(json!({"pgp_key": "abc"})),
    );
    assert_eq!(st, 400);
    ok(&addr, "PUT", "sys/seal", Some(&root), None);
    let (st, _) = call(&addr, "GET", "sys/generate-root/attempt", None, None);
    assert_eq!(st, 503);
    unseal_with(&addr, &keys[1..3]);

    // Audited, with shares, OTP and token hashed.
    let log = std::fs::read_to_string(dir.path().join("audit").join("audit.log")).unwrap();
    assert!(
        log.contains("sys/generate-root/update"),
        "root generation is audited"
    );
    assert!(log.contains("sys/generate-root/attempt"));
    for secret in [&keys[0], &keys[2], &otp, &encoded, &token] {
        assert!(
            !log.contains(secret.as_str()),
            "a secret reached the audit log"
        );
    }
}

#[test]
fn the_bao_cli_rekeys_and_generates_a_root_token() {
    let Some(bin) = bao() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (s, _cfg, keys, root) = initialised(dir.path(), 1, 1);
    let addr = s.addr.clone();
    let home = s.home.path();
    let b = || bao_at(&bin, home, &addr, &root);

    let init = Run::of(b().args([
        "operator",
        "rekey",
        "-init",
        "-key-shares=3",
        "-key-threshold=2",
        "-format=json",
    ]))
    .ok()
    .json();
    let nonce = init["nonce"].as_str().unwrap().to_owned();
    let status = Run::of(b().args(["operator", "rekey", "-status"])).ok();
    assert!(
        status.stdout.contains("New Shares") && status.stdout.contains('3'),
        "{status:#?}"
    );
    let done = Run::of(b().args([
        "operator",
        "rekey",
        "-format=json",
        &format!("-nonce={nonce}"),
        &keys[0],
    ]))
    .ok()
    .json();
    let new = strings(&done["keys_base64"]);
    assert_eq!(new.len(), 3);

    // bao's generate-root speaks OpenBao 2.x's authenticated sys/generate-root-token.
    let init = Run::of(b().args(["operator", "generate-root", "-init", "-format=json"]))
        .ok()
        .json();
    let (nonce, otp) = (
        init["nonce"].as_str().unwrap().to_owned(),
        init["otp"].as_str().unwrap().to_owned(),
    );
    Run::of(b().args([
        "operator",
        "generate-root",
        &format!("-nonce={nonce}"),
        &new[0],
    ]))
    .ok();
    let done = Run::of(b().args([
        "operator",
        "generate-root",
        "-format=json",
        &format!("-nonce={nonce}"),
        &new[1],
    ]))
    .ok()
    .json();
    let encoded = done["encoded_token"].as_str().unwrap().to_owned();
    let decoded = Run::of(b().args([
        "operator",
        "generate-root",
        &format!("-decode={encoded}"),
        &format!("-otp={otp}"),
    ]))
    .ok();
    let token = decoded.stdout.trim().to_owned();
    let me = ok(&addr, "GET", "auth/token/lookup-self", Some(&token), None);
    assert_eq!(me["data"]["policies"], json!(["root"]));
    // Without a token, OpenBao's endpoint refuses; Vault's takes none.
    let (st, _) = call(&addr, "GET", "sys/generate-root-token/attempt", None, None);
    assert_eq!(st, 403);
    Run::of(b().args(["operator", "generate-root", "-cancel"])).ok();
    Run::of(b().args(["operator", "rekey", "-cancel"])).ok();
}

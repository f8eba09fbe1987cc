//! The seal and the keyring against concurrency, on a real server process:
//!
//! * a `sys/seal` that was acknowledged stays sealed even while `sys/rotate`
//!   requests race it (a rotation that lost the race must not re-open the
//!   barrier);
//! * concurrent rotations each add exactly one term (no lost update);
//! * a second server on the same SQLite file refuses to start;
//! * `sys/key-status` counts encryptions of the active term.

mod cli_support;

use cli_support::{free_addr, http, Api, Server, BIN};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{json, Value};

/// Seal-against-rotate rounds.
const SEAL_ROUNDS: usize = 100;
/// Rotations fired at the server in the lost-update check.
const ROTATIONS: usize = 160;
/// How many of them run at once.
const ROTATION_PARALLELISM: usize = 32;

fn write_config(dir: &Path, addr: &str) -> (PathBuf, PathBuf) {
    let db = dir.join("coffer.db");
    let cfg = dir.join("coffer.toml");
    let text = format!(
        "[storage.sqlite]\npath = {}\n\n[listener.tcp]\naddress = \"{addr}\"\ntls_disable = true\n",
        serde_json::to_string(db.to_str().unwrap()).unwrap()
    );
    std::fs::write(&cfg, text).unwrap();
    (cfg, db)
}

fn call(
    c: &Client,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = c.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
    if let Some(t) = token {
        req = req.header("X-Vault-Token", t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A production server on a fresh SQLite file, initialised with one share
/// and unsealed; returns it with its unseal key and root token.
fn production_server(dir: &Path) -> (Server, String, String) {
    let addr = free_addr();
    let (cfg, _) = write_config(dir, &addr);
    let srv = Server::start_config(&cfg, format!("http://{addr}"));
    let c = http();
    let (s, init) = call(
        &c,
        "PUT",
        &format!("{}/v1/sys/init", srv.addr),
        None,
        Some(json!({"secret_shares": 1, "secret_threshold": 1})),
    );
    assert_eq!(s, 200, "init: {init}");
    let key = init["keys"][0].as_str().unwrap().to_string();
    let token = init["root_token"].as_str().unwrap().to_string();
    unseal(&c, &srv.addr, &key);
    (srv, key, token)
}

fn unseal(c: &Client, addr: &str, key: &str) {
    let (s, st) = call(
        c,
        "PUT",
        &format!("{addr}/v1/sys/unseal"),
        None,
        Some(json!({ "key": key })),
    );
    assert_eq!(s, 200, "unseal: {st}");
    assert_eq!(st["sealed"], json!(false), "unseal: {st}");
}

fn sealed(c: &Client, addr: &str) -> bool {
    let (s, st) = call(c, "GET", &format!("{addr}/v1/sys/seal-status"), None, None);
    assert_eq!(s, 200, "seal-status: {st}");
    st["sealed"].as_bool().unwrap()
}

fn key_status(c: &Client, addr: &str, token: &str) -> Value {
    let (s, st) = call(
        c,
        "GET",
        &format!("{addr}/v1/sys/key-status"),
        Some(token),
        None,
    );
    assert_eq!(s, 200, "key-status: {st}");
    st["data"].clone()
}

#[test]
fn acknowledged_seal_survives_racing_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, key, token) = production_server(dir.path());
    let c = http();
    let mut reopened = 0;
    for round in 0..SEAL_ROUNDS {
        if sealed(&c, &srv.addr) {
            unseal(&c, &srv.addr, &key);
        }
        let rotators: Vec<_> = (0..3)
            .map(|_| {
                let (addr, token) = (srv.addr.clone(), token.clone());
                thread::spawn(move || {
                    let c = http();
                    for _ in 0..2 {
                        let (s, body) = call(
                            &c,
                            "PUT",
                            &format!("{addr}/v1/sys/rotate"),
                            Some(&token),
                            None,
                        );
                        assert!(s == 204 || s == 200 || s == 503, "rotate: {s} {body}");
                    }
                })
            })
            .collect();
        thread::sleep(Duration::from_micros(200 * (round as u64 % 10)));
        let (s, body) = call(
            &c,
            "PUT",
            &format!("{}/v1/sys/seal", srv.addr),
            Some(&token),
            None,
        );
        assert!(s == 204 || s == 200, "seal: {s} {body}");
        assert!(
            sealed(&c, &srv.addr),
            "round {round}: sealed right after the acknowledged seal"
        );
        for r in rotators {
            r.join().unwrap();
        }
        if !sealed(&c, &srv.addr) {
            reopened += 1;
        }
    }
    assert_eq!(
        reopened, 0,
        "rotations re-opened an acknowledged seal in {reopened} of {SEAL_ROUNDS} rounds"
    );
}

#[test]
fn concurrent_rotations_each_add_one_term() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, _key, token) = production_server(dir.path());
    let c = http();
    assert_eq!(key_status(&c, &srv.addr, &token)["term"], json!(1));
    for _ in 0..ROTATIONS / ROTATION_PARALLELISM {
        let batch: Vec<_> = (0..ROTATION_PARALLELISM)
            .map(|_| {
                let (addr, token) = (srv.addr.clone(), token.clone());
                thread::spawn(move || {
                    let (s, body) = call(
                        &http(),
                        "PUT",
                        &format!("{addr}/v1/sys/rotate"),
                        Some(&token),
                        None,
                    );
                    assert!(s == 204 || s == 200, "rotate: {s} {body}");
                })
            })
            .collect();
        for t in batch {
            t.join().unwrap();
        }
    }
    assert_eq!(
        key_status(&c, &srv.addr, &token)["term"],
        json!(1 + ROTATIONS),
        "every acknowledged rotation adds exactly one term"
    );
}

#[test]
fn second_server_on_the_same_file_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, _key, _token) = production_server(dir.path());
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let cfg2 = other.join("coffer.toml");
    let db = dir.path().join("coffer.db");
    std::fs::write(
        &cfg2,
        format!(
            "[storage.sqlite]\npath = {}\n\n[listener.tcp]\naddress = \"{}\"\ntls_disable = true\n",
            serde_json::to_string(db.to_str().unwrap()).unwrap(),
            free_addr()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["server", "--config", cfg2.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("a second server on the same SQLite file kept running");
        }
        thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "second server exited with success");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is in use by another Coffer process"),
        "unclear error: {stderr}"
    );
    // The pid of the first server is named when it can be read.
    assert!(stderr.contains("(pid "), "no pid in: {stderr}");
    // The first server still serves.
    assert!(!sealed(&http(), &srv.addr));
}

#[test]
fn key_status_counts_encryptions() {
    let srv = Server::start();
    let api = Api::new(&srv);
    let first = api.root("GET", "sys/key-status", None)["data"].clone();
    let before = first["encryptions"]
        .as_u64()
        .unwrap_or_else(|| panic!("encryptions is not a count: {first}"));
    for i in 0..10 {
        api.root(
            "POST",
            &format!("secret/data/enc{i}"),
            Some(json!({"data": {"v": i}})),
        );
    }
    let after = api.root("GET", "sys/key-status", None)["data"].clone();
    let after_n = after["encryptions"].as_u64().unwrap();
    assert!(after_n >= before + 10, "encryptions {before} -> {after_n}");
    assert!(after["install_time"].is_string(), "{after}");
}

/// On Linux the server keeps its keys in a locked, undumped arena: a 64 KiB
/// mapping flagged `lo` (locked) and `dd` (do not dump) in smaps.
#[cfg(target_os = "linux")]
#[test]
fn server_keeps_keys_in_locked_undumped_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (_srv, _key, _token) = production_server(dir.path());
    let pid = std::fs::read_to_string(dir.path().join("coffer.db.lock")).unwrap();
    let pid = pid.trim();
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let arena = smaps.split("VmFlags:").skip(1).any(|flags| {
        let flags = flags.lines().next().unwrap_or_default();
        flags.split_whitespace().any(|f| f == "lo") && flags.split_whitespace().any(|f| f == "dd")
    });
    assert!(arena, "no locked, undumped mapping in the server");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let locked_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert!(locked_kb >= 64, "VmLck {locked_kb} kB");
}

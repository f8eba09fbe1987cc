//! Durability under `kill -9`: every write the server acknowledged must read
//! back, with its value, after the process is killed mid-load and restarted
//! on the same SQLite file.
//!
//! The server is a production (config-file) server on a temporary SQLite
//! file, initialised and unsealed over HTTP, so the test does not depend on
//! any console output format.

mod cli_support;

use cli_support::{free_addr, http, random_hex};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{json, Value};

/// Writer threads in the load loop.
const WRITERS: usize = 8;
/// Acknowledged writes to wait for before the kill.
const MIN_ACKED_BEFORE_KILL: usize = 300;
/// Upper bound on the whole write phase.
const WRITE_PHASE_LIMIT: Duration = Duration::from_secs(60);
/// Kill/restart cycles (each checks every write acknowledged so far).
const ROUNDS: usize = 3;
/// Upper bound on writes per thread (the loop stops by itself).
const MAX_WRITES_PER_THREAD: usize = 20_000;

/// A config-file Coffer server process on a given SQLite file.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    /// Starts `coffer server --config <cfg>` and waits until sys/health answers.
    fn start(cfg: &Path, log: &Path, addr: &str) -> Server {
        let log_file = File::options().create(true).append(true).open(log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_coffer"))
            .arg("server")
            .arg("--config")
            .arg(cfg)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap();
        let mut srv = Server {
            child,
            addr: format!("http://{addr}"),
        };
        srv.wait_ready(log);
        srv
    }

    fn wait_ready(&mut self, log: &Path) {
        let client = http();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "server exited at startup ({status}): {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            if client
                .get(format!("{}/v1/sys/health", self.addr))
                .send()
                .is_ok()
            {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!("server did not answer within 30s");
    }

    /// SIGKILL, no chance to flush anything.
    fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(dir: &Path, addr: &str) -> (PathBuf, PathBuf) {
    let db = dir.join("coffer.db");
    let cfg = dir.join("coffer.toml");
    let text = format!(
        "[storage.sqlite]\npath = {}\n\n[listener.tcp]\naddress = \"{addr}\"\ntls_disable = true\n",
        toml_string(&db)
    );
    std::fs::write(&cfg, text).unwrap();
    (cfg, db)
}

fn toml_string(p: &Path) -> String {
    serde_json::to_string(p.to_str().unwrap()).unwrap()
}

/// PUT/POST JSON and return (status, body).
fn call(
    c: &Client,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut req = c.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
    if let Some(t) = token {
        req = req.header("X-Vault-Token", t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn init_and_unseal(c: &Client, addr: &str) -> (String, String) {
    let (s, init) = call(
        c,
        "PUT",
        &format!("{addr}/v1/sys/init"),
        None,
        Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
    );
    assert_eq!(s, 200, "init: {init}");
    let key = init["keys"][0].as_str().unwrap().to_string();
    let token = init["root_token"].as_str().unwrap().to_string();
    unseal(c, addr, &key);
    (key, token)
}

fn unseal(c: &Client, addr: &str, key: &str) {
    let (s, st) = call(
        c,
        "PUT",
        &format!("{addr}/v1/sys/unseal"),
        None,
        Some(&json!({ "key": key })),
    );
    assert_eq!(s, 200, "unseal: {st}");
    assert_eq!(st["sealed"], json!(false), "unseal: {st}");
}

/// Runs the write loop until `stop`; returns the acknowledged path -> value map.
fn writer(
    addr: String,
    token: String,
    prefix: String,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
) -> HashMap<String, String> {
    let c = http();
    let mut done = HashMap::new();
    for i in 0..MAX_WRITES_PER_THREAD {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let path = format!("{prefix}/k{i}");
        let value = format!("{prefix}-{i}-{}", random_hex(8));
        let resp = c
            .post(format!("{addr}/v1/kv/data/{path}"))
            .header("X-Vault-Token", &token)
            .json(&json!({"data": {"value": value}}))
            .send();
        match resp {
            Ok(r) if r.status().as_u16() == 200 || r.status().as_u16() == 204 => {
                done.insert(path, value);
                acked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) => {
                // A refusal (not a crash) is a bug in its own right.
                if !stop.load(Ordering::Relaxed) {
                    panic!("write {path} refused with {}", r.status());
                }
                break;
            }
            Err(_) => break, // the server is gone
        }
    }
    done
}

/// Runs the writers against `srv` and SIGKILLs it mid-load; returns what was acknowledged.
fn write_then_kill(srv: &mut Server, token: &str, round: usize) -> HashMap<String, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..WRITERS)
        .map(|id| {
            let (a, t, st, ac) = (
                srv.addr.clone(),
                token.to_string(),
                stop.clone(),
                acked.clone(),
            );
            let prefix = format!("r{round}/w{id}");
            thread::spawn(move || writer(a, t, prefix, st, ac))
        })
        .collect();
    let start = Instant::now();
    while acked.load(Ordering::Relaxed) < MIN_ACKED_BEFORE_KILL
        && start.elapsed() < WRITE_PHASE_LIMIT
    {
        thread::sleep(Duration::from_millis(20));
    }
    // Kill while writes are in flight.
    srv.kill9();
    stop.store(true, Ordering::Relaxed);
    let mut all = HashMap::new();
    for h in handles {
        all.extend(h.join().unwrap());
    }
    assert!(
        all.len() >= MIN_ACKED_BEFORE_KILL,
        "round {round}: only {} writes acknowledged in {WRITE_PHASE_LIMIT:?}",
        all.len()
    );
    all
}

/// Reads every acknowledged write back; returns the ones missing or wrong.
fn lost_writes(
    c: &Client,
    addr: &str,
    token: &str,
    acked: &HashMap<String, String>,
) -> Vec<String> {
    let mut lost = Vec::new();
    for (path, value) in acked {
        let (s, body) = call(
            c,
            "GET",
            &format!("{addr}/v1/kv/data/{path}"),
            Some(token),
            None,
        );
        if s != 200 || body["data"]["data"]["value"].as_str() != Some(value.as_str()) {
            lost.push(format!("{path}: {s}"));
        }
    }
    lost
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let (cfg, _db) = write_config(dir.path(), &addr);
    let log = dir.path().join("server.log");
    let c = http();

    let mut srv = Server::start(&cfg, &log, &addr);
    let (key, token) = init_and_unseal(&c, &srv.addr);
    let (s, body) = call(
        &c,
        "POST",
        &format!("{}/v1/sys/mounts/kv", srv.addr),
        Some(&token),
        Some(&json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert!(s == 200 || s == 204, "mount: {s} {body}");

    let mut acked = HashMap::new();
    for round in 0..ROUNDS {
        acked.extend(write_then_kill(&mut srv, &token, round));
        srv = Server::start(&cfg, &log, &addr);
        let (s, st) = call(
            &c,
            "GET",
            &format!("{}/v1/sys/seal-status", srv.addr),
            None,
            None,
        );
        assert_eq!(s, 200);
        assert_eq!(
            st["sealed"],
            json!(true),
            "restarted server must come up sealed"
        );
        unseal(&c, &srv.addr, &key);
        let lost = lost_writes(&c, &srv.addr, &token, &acked);
        assert!(
            lost.is_empty(),
            "round {round}: {} of {} acknowledged writes lost after kill -9: {:?}",
            lost.len(),
            acked.len(),
            &lost[..lost.len().min(10)]
        );
    }

    // The store still takes writes after recovery.
    let (s, _) = call(
        &c,
        "POST",
        &format!("{}/v1/kv/data/after-crash", srv.addr),
        Some(&token),
        Some(&json!({"data": {"ok": "yes"}})),
    );
    assert_eq!(s, 200);
}

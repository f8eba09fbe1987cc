//! Secrets at rest: after writing distinctive random values through the API,
//! none of them (nor the root token or the unseal key) may appear in clear in
//! the SQLite file, its WAL/SHM files, or the server's stdout/stderr.
//!
//! Two servers are checked: a production (config-file) server initialised
//! over HTTP, where neither the root token nor the unseal key is ever printed,
//! and a dev server with `--dev-storage`, whose startup banner is meant to
//! print both: there they may appear only in the output captured before the
//! first request, never afterwards.

mod cli_support;

use cli_support::{free_addr, http, random_hex};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::blocking::Client;
use serde_json::{json, Value};

/// Secrets written per server.
const SECRETS: usize = 40;

/// A running server whose stdout and stderr go to one log file.
struct Server {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Server {
    fn start(args: &[&str], dir: &Path, addr: &str) -> Server {
        let log = dir.join("server.log");
        let f = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_coffer"))
            .args(args)
            .current_dir(dir)
            .env("COFFER_LOG_LEVEL", "debug")
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        let mut srv = Server {
            child,
            addr: format!("http://{addr}"),
            log,
        };
        let c = http();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = srv.child.try_wait().unwrap() {
                panic!("server exited at startup ({st}): {}", srv.output());
            }
            if c.get(format!("{}/v1/sys/health", srv.addr)).send().is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "server did not answer within 30s"
            );
            thread::sleep(Duration::from_millis(100));
        }
        srv
    }

    fn output(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Graceful stop (SIGTERM), then SIGKILL if it lingers.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn call(
    c: &Client,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
    ctype: Option<&str>,
) -> (u16, Value) {
    let mut req = c.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
    if let Some(t) = token {
        req = req.header("X-Vault-Token", t);
    }
    if let Some(b) = body {
        req = req
            .header("Content-Type", ctype.unwrap_or("application/json"))
            .body(serde_json::to_vec(b).unwrap());
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_str(&resp.text().unwrap_or_default()).unwrap_or(Value::Null),
    )
}

/// Writes secrets of several shapes through the API; returns every distinctive value written.
fn write_secrets(c: &Client, addr: &str, mount: &str, token: &str) -> Vec<String> {
    let mut needles = Vec::new();
    for i in 0..SECRETS {
        let a = format!("atrest-{}", random_hex(16));
        let b = format!("nested-{}", random_hex(16));
        let body = json!({"data": {"password": a, "deep": {"api_key": b}, "n": i}});
        let (s, r) = call(
            c,
            "POST",
            &format!("{addr}/v1/{mount}/data/app/s{i}"),
            Some(token),
            Some(&body),
            None,
        );
        assert_eq!(s, 200, "write: {r}");
        needles.push(a);
        needles.push(b);
    }
    // A second version, a merge patch, custom metadata, then a key rotation and one more write.
    let v2 = format!("version2-{}", random_hex(16));
    let (s, _) = call(
        c,
        "POST",
        &format!("{addr}/v1/{mount}/data/app/s0"),
        Some(token),
        Some(&json!({"data": {"password": v2}})),
        None,
    );
    assert_eq!(s, 200);
    needles.push(v2);
    let p = format!("patched-{}", random_hex(16));
    let (s, _) = call(
        c,
        "PATCH",
        &format!("{addr}/v1/{mount}/data/app/s1"),
        Some(token),
        Some(&json!({"data": {"extra": p}})),
        Some("application/merge-patch+json"),
    );
    assert_eq!(s, 200, "patch");
    needles.push(p);
    let m = format!("custom-{}", random_hex(16));
    let (s, _) = call(
        c,
        "POST",
        &format!("{addr}/v1/{mount}/metadata/app/s2"),
        Some(token),
        Some(&json!({"custom_metadata": {"note": m}})),
        None,
    );
    assert!(s == 200 || s == 204, "metadata {s}");
    needles.push(m);
    let (s, _) = call(
        c,
        "PUT",
        &format!("{addr}/v1/sys/rotate"),
        Some(token),
        None,
        None,
    );
    assert!(s == 200 || s == 204, "rotate {s}");
    let r = format!("rotated-{}", random_hex(16));
    let (s, _) = call(
        c,
        "POST",
        &format!("{addr}/v1/{mount}/data/app/after"),
        Some(token),
        Some(&json!({"data": {"v": r}})),
        None,
    );
    assert_eq!(s, 200);
    needles.push(r);
    // Reads go through logging paths too.
    for i in 0..3 {
        let (s, _) = call(
            c,
            "GET",
            &format!("{addr}/v1/{mount}/data/app/s{i}"),
            Some(token),
            None,
            None,
        );
        assert_eq!(s, 200);
    }
    needles
}

/// Every file under `dir` except the server log, as (name, bytes).
fn storage_files(dir: &Path, log: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p != log && p.extension().is_none_or(|x| x != "toml") {
                out.push((
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    !n.is_empty() && hay.windows(n.len()).any(|w| w == n)
}

/// The forms a secret could take in clear: as written, and base64 of it.
fn forms(s: &str) -> Vec<String> {
    vec![
        s.to_string(),
        base64::engine::general_purpose::STANDARD.encode(s),
    ]
}

fn assert_absent(what: &str, files: &[(String, Vec<u8>)], needles: &[String]) {
    let mut found = Vec::new();
    for (name, bytes) in files {
        for n in needles {
            for f in forms(n) {
                if contains(bytes, &f) {
                    found.push(format!(
                        "{what} value #{} in {name}",
                        needles.iter().position(|x| x == n).unwrap()
                    ));
                }
            }
        }
    }
    assert!(found.is_empty(), "found in clear: {found:?}");
}

#[test]
fn production_server_keeps_secrets_out_of_files_and_output() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let db = dir.path().join("data").join("coffer.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let cfg = dir.path().join("coffer.toml");
    std::fs::write(
        &cfg,
        format!(
            "[storage.sqlite]\npath = {}\n\n[listener.tcp]\naddress = \"{addr}\"\ntls_disable = true\n",
            serde_json::to_string(db.to_str().unwrap()).unwrap()
        ),
    )
    .unwrap();
    let mut srv = Server::start(
        &["server", "--config", cfg.to_str().unwrap()],
        dir.path(),
        &addr,
    );
    let c = http();
    let (s, init) = call(
        &c,
        "PUT",
        &format!("{}/v1/sys/init", srv.addr),
        None,
        Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
        None,
    );
    assert_eq!(s, 200, "init {init}");
    let key = init["keys"][0].as_str().unwrap().to_string();
    let key_b64 = init["keys_base64"][0].as_str().unwrap().to_string();
    let token = init["root_token"].as_str().unwrap().to_string();
    let (s, _) = call(
        &c,
        "PUT",
        &format!("{}/v1/sys/unseal", srv.addr),
        None,
        Some(&json!({"key": key})),
        None,
    );
    assert_eq!(s, 200);
    let (s, _) = call(
        &c,
        "POST",
        &format!("{}/v1/sys/mounts/kv", srv.addr),
        Some(&token),
        Some(&json!({"type": "kv-v2"})),
        None,
    );
    assert!(s == 200 || s == 204, "mount {s}");

    let needles = write_secrets(&c, &srv.addr, "kv", &token);
    let credentials = vec![token.clone(), key.clone(), key_b64.clone()];

    // While running (WAL not yet checkpointed), then after a clean stop.
    let files = storage_files(dir.path(), &srv.log);
    assert!(
        files
            .iter()
            .any(|(n, b)| n.starts_with("coffer.db") && !b.is_empty()),
        "no SQLite file written"
    );
    assert_absent("secret", &files, &needles);
    assert_absent("credential", &files, &credentials);
    srv.stop();
    let files = storage_files(dir.path(), &srv.log);
    assert_absent("secret", &files, &needles);
    assert_absent("credential", &files, &credentials);

    let out = vec![("server output".to_string(), srv.output().into_bytes())];
    assert_absent("secret", &out, &needles);
    assert_absent("credential", &out, &credentials);
}

#[test]
fn dev_server_prints_credentials_only_in_its_banner() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let db = dir.path().join("dev.db");
    let token = format!("dev-{}", random_hex(12));
    let mut srv = Server::start(
        &[
            "server",
            "--dev",
            "--dev-listen-address",
            &addr,
            "--dev-root-token-id",
            &token,
            "--dev-storage",
            db.to_str().unwrap(),
        ],
        dir.path(),
        &addr,
    );
    let banner = srv.output();
    assert!(
        banner.contains(&token),
        "the dev banner should print the root token:\n{banner}"
    );
    // The banner also prints the unseal key (base64); it must not reach storage either.
    let unseal_b64 = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("Unseal Key:"))
        .map(|k| k.trim().to_string())
        .unwrap_or_else(|| panic!("no `Unseal Key:` line in the dev banner:\n{banner}"));
    let unseal_hex = hex::encode(
        base64::engine::general_purpose::STANDARD
            .decode(&unseal_b64)
            .unwrap(),
    );
    let credentials = vec![token.clone(), unseal_b64, unseal_hex];
    let c = http();
    let needles = write_secrets(&c, &srv.addr, "secret", &token);

    let files = storage_files(dir.path(), &srv.log);
    assert!(
        files
            .iter()
            .any(|(n, b)| n.starts_with("dev.db") && !b.is_empty()),
        "no SQLite file written"
    );
    assert_absent("secret", &files, &needles);
    assert_absent("credential", &files, &credentials);
    srv.stop();
    let files = storage_files(dir.path(), &srv.log);
    assert_absent("secret", &files, &needles);
    assert_absent("credential", &files, &credentials);

    let all = srv.output();
    let after_banner = all.get(banner.len()..).unwrap_or("").as_bytes().to_vec();
    let out = vec![("server output".to_string(), all.into_bytes())];
    assert_absent("secret", &out, &needles);
    let later = vec![("output after the banner".to_string(), after_banner)];
    assert_absent("credential", &later, &credentials);
}

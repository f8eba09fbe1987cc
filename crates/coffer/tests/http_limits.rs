//! The HTTP layer's defences, against a real `coffer server --config` on
//! loopback: body limits by path (checked against the server's RSS), JSON
//! element and depth limits, header and body read timeouts, the connection
//! cap, trusted proxies for `X-Forwarded-For`, 500 bodies without storage
//! detail, and `Cache-Control: no-store` on every answer.

mod cli_support;

use cli_support::{free_addr, random_hex};
use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use coffer_storage::Backend;
use reqwest::blocking::Client;
use serde_json::{json, Value};

/// A config-file server on a SQLite file, initialised and unsealed.
struct Server {
    child: Child,
    dir: tempfile::TempDir,
    /// `127.0.0.1:<port>`.
    hostport: String,
    /// `http://127.0.0.1:<port>`.
    addr: String,
    log: PathBuf,
    token: String,
    unseal_key: String,
}

impl Server {
    /// Starts a server whose `[listener.tcp]` section also holds `extra`.
    fn start(extra: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let hostport = free_addr();
        let db = dir.path().join("coffer.db");
        std::fs::write(
            dir.path().join("coffer.toml"),
            format!(
                "[storage.sqlite]\npath = {}\n\n[listener.tcp]\naddress = \"{hostport}\"\n\
                 tls_disable = true\n{extra}\n\n[audit]\nfile_dir = {}\n",
                serde_json::to_string(db.to_str().unwrap()).unwrap(),
                serde_json::to_string(dir.path().join("audit").to_str().unwrap()).unwrap()
            ),
        )
        .unwrap();
        let log = dir.path().join("server.log");
        let mut srv = Server {
            child: spawn(dir.path(), &log),
            addr: format!("http://{hostport}"),
            hostport,
            dir,
            log,
            token: String::new(),
            unseal_key: String::new(),
        };
        srv.wait_healthy();
        let c = client();
        let (s, init) = call(
            &c,
            "PUT",
            &srv.url("sys/init"),
            None,
            Some(json!({"secret_shares": 1, "secret_threshold": 1})),
        );
        assert_eq!(s, 200, "init {init}");
        srv.token = init["root_token"].as_str().unwrap().to_string();
        srv.unseal_key = init["keys"][0].as_str().unwrap().to_string();
        srv.unseal();
        let (s, body) = call(
            &c,
            "POST",
            &srv.url("sys/mounts/secret"),
            Some(&srv.token),
            Some(json!({"type": "kv-v2"})),
        );
        assert!(s == 200 || s == 204, "mount: {s} {body}");
        srv
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/{path}", self.addr)
    }

    fn unseal(&self) {
        let (s, body) = call(
            &client(),
            "PUT",
            &self.url("sys/unseal"),
            None,
            Some(json!({"key": self.unseal_key})),
        );
        assert_eq!(s, 200, "unseal {body}");
    }

    fn wait_healthy(&mut self) {
        let c = client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!("server exited at startup ({st}): {}", self.output());
            }
            if c.get(self.url("sys/health")).send().is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "server did not answer in 30 s");
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn output(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Resident memory of the server process, in bytes.
    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .expect("VmRSS line");
        let kb: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .expect("VmRSS value");
        kb * 1024
    }

    /// Graceful stop (SIGTERM), then SIGKILL if it lingers.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the stopped server again on the same files and unseals it.
    fn restart(&mut self) {
        self.child = spawn(self.dir.path(), &self.log);
        self.wait_healthy();
        self.unseal();
    }
}

fn spawn(dir: &Path, log: &Path) -> Child {
    let f = File::options().create(true).append(true).open(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["server", "--config", "coffer.toml"])
        .current_dir(dir)
        .env_remove("VAULT_TOKEN")
        .env_remove("VAULT_ADDR")
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap()
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
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

/// Sends `head` and then `body` over a raw connection while reading the
/// answer on another thread; returns the answer's status line and headers
/// (empty if the server closed without answering).
fn raw_request(hostport: &str, head: &str, body: &[u8]) -> String {
    let mut s = TcpStream::connect(hostport).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut reader = s.try_clone().unwrap();
    let read = thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    if out.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    });
    if s.write_all(head.as_bytes()).is_ok() {
        for chunk in body.chunks(64 * 1024) {
            if s.write_all(chunk).is_err() {
                break;
            }
        }
    }
    read.join().unwrap()
}

/// A JSON array of `n` small numbers, as bytes.
fn json_array(n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n * 2 + 2);
    v.push(b'[');
    for i in 0..n {
        if i > 0 {
            v.push(b',');
        }
        v.push(b'1');
    }
    v.push(b']');
    v
}

#[test]
fn unauthenticated_huge_bodies_are_refused_before_they_cost_memory() {
    let srv = Server::start("");
    thread::sleep(Duration::from_millis(500));
    let baseline = srv.rss();
    // Just under the general 32 MiB limit: only a path-specific limit refuses it.
    let body = json_array(16 * 1024 * 1024 - 8);
    assert!(body.len() > 31 * 1024 * 1024 && body.len() < 32 * 1024 * 1024);
    let body = std::sync::Arc::new(body);
    let started = Instant::now();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        let status = format!("/proc/{}/status", srv.child.id());
        thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(s) = std::fs::read_to_string(&status) {
                    if let Some(kb) = s
                        .lines()
                        .find(|l| l.starts_with("VmRSS:"))
                        .and_then(|l| l.split_whitespace().nth(1))
                        .and_then(|n| n.parse::<u64>().ok())
                    {
                        peak.fetch_max(kb * 1024, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let workers: Vec<_> = (0..3)
        .map(|i| {
            let body = body.clone();
            let hostport = srv.hostport.clone();
            thread::spawn(move || {
                // One announces its length, one is chunked (no length known upfront).
                let head = if i == 1 {
                    "POST /v1/sys/unseal HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                     Transfer-Encoding: chunked\r\n\r\n"
                        .to_string()
                } else {
                    format!(
                        "PUT /v1/sys/unseal HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\n\r\n",
                        body.len()
                    )
                };
                let payload = if i == 1 {
                    let mut p = Vec::with_capacity(body.len() + 64);
                    for c in body.chunks(1 << 20) {
                        p.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                        p.extend_from_slice(c);
                        p.extend_from_slice(b"\r\n");
                    }
                    p.extend_from_slice(b"0\r\n\r\n");
                    p
                } else {
                    body.to_vec()
                };
                raw_request(&hostport, &head, &payload)
            })
        })
        .collect();
    let answers: Vec<String> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let elapsed = started.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    thread::sleep(Duration::from_millis(500));
    let after = srv.rss();
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "baseline {} MB, peak {} MB, after {} MB, {elapsed:?}",
        baseline >> 20,
        peak >> 20,
        after >> 20
    );
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    assert!(
        peak < baseline + 100 * 1024 * 1024,
        "peak RSS {} MB over baseline {} MB",
        peak >> 20,
        baseline >> 20
    );
    assert!(after < baseline + 100 * 1024 * 1024);
    for answer in answers {
        assert!(
            answer.starts_with("HTTP/1.1 413"),
            "expected 413, got {answer:?}"
        );
        assert!(answer
            .to_ascii_lowercase()
            .contains("cache-control: no-store"));
    }
    // The server still answers.
    let (s, _) = call(&client(), "GET", &srv.url("sys/health"), None, None);
    assert_eq!(s, 200);
}

#[test]
fn json_bodies_with_too_many_elements_or_levels_are_refused() {
    let srv = Server::start("");
    let c = client();
    // 200k elements in about 2 MiB, to an ordinary authenticated path.
    let mut wide = b"{\"data\":{\"a\":".to_vec();
    let arr: Vec<u8> = {
        let mut v = b"[".to_vec();
        for i in 0..200_000 {
            if i > 0 {
                v.push(b',');
            }
            v.extend_from_slice(b"1234567890");
        }
        v.push(b']');
        v
    };
    wide.extend_from_slice(&arr);
    wide.extend_from_slice(b"}}");
    assert!(wide.len() > 2_000_000);
    let resp = c
        .post(srv.url("secret/data/wide"))
        .header("X-Vault-Token", &srv.token)
        .header("Content-Type", "application/json")
        .body(wide)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let v: Value = resp.json().unwrap();
    assert!(v["errors"][0].as_str().unwrap().contains("elements"), "{v}");

    let deep = format!(
        "{{\"data\":{{\"a\":{}{}}}}}",
        "[".repeat(100),
        "]".repeat(100)
    );
    let resp = c
        .post(srv.url("secret/data/deep"))
        .header("X-Vault-Token", &srv.token)
        .body(deep)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);

    // An ordinary body still works.
    let (s, body) = call(
        &c,
        "POST",
        &srv.url("secret/data/ok"),
        Some(&srv.token),
        Some(json!({"data": {"a": [1, 2, 3], "b": {"c": "d"}}})),
    );
    assert_eq!(s, 200, "{body}");
}

#[test]
fn slow_clients_are_cut_off() {
    let srv = Server::start("header_read_timeout = \"1s\"\nbody_read_timeout = \"1s\"");
    // Headers that stop halfway.
    let mut s = TcpStream::connect(&srv.hostport).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let r = s.read_to_end(&mut buf);
    let elapsed = started.elapsed();
    assert!(
        r.is_ok() || elapsed < Duration::from_secs(5),
        "connection held open: {r:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "closed after {elapsed:?}");

    // A connection that sends nothing at all.
    let mut s = TcpStream::connect(&srv.hostport).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let _ = s.read_to_end(&mut Vec::new());
    assert!(started.elapsed() < Duration::from_secs(5));

    // One byte a second.
    let mut s = TcpStream::connect(&srv.hostport).unwrap();
    let started = Instant::now();
    let mut closed = false;
    for b in b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n" {
        if s.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        thread::sleep(Duration::from_millis(400));
        if started.elapsed() > Duration::from_secs(8) {
            break;
        }
    }
    let mut buf = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = s.read_to_end(&mut buf);
    assert!(
        closed || !String::from_utf8_lossy(&buf).contains("200 OK"),
        "a one-byte-a-second client was served"
    );

    // A body that stops halfway: 408 after the body timeout.
    let answer = {
        let mut s = TcpStream::connect(&srv.hostport).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(
            format!(
                "PUT /v1/secret/data/x HTTP/1.1\r\nHost: x\r\nX-Vault-Token: {}\r\n\
                 Content-Length: 100\r\n\r\n{{\"data\":",
                srv.token
            )
            .as_bytes(),
        )
        .unwrap();
        let started = Instant::now();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        assert!(started.elapsed() < Duration::from_secs(5));
        String::from_utf8_lossy(&buf).into_owned()
    };
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");

    // A prompt client is served.
    let (s, _) = call(&client(), "GET", &srv.url("sys/health"), None, None);
    assert_eq!(s, 200);
}

#[test]
fn connections_beyond_the_cap_are_closed() {
    let srv = Server::start("max_connections = 2");
    let get = b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n";
    let served = |s: &mut TcpStream| -> bool {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        if s.write_all(get).is_err() {
            return false;
        }
        let mut buf = [0u8; 1024];
        matches!(s.read(&mut buf), Ok(n) if n > 0 && buf.starts_with(b"HTTP/1.1 200"))
    };
    let mut a = TcpStream::connect(&srv.hostport).unwrap();
    let mut b = TcpStream::connect(&srv.hostport).unwrap();
    assert!(served(&mut a));
    assert!(served(&mut b));
    let mut c = TcpStream::connect(&srv.hostport).unwrap();
    assert!(!served(&mut c), "a third connection was served");
    drop(a);
    thread::sleep(Duration::from_millis(200));
    let mut d = TcpStream::connect(&srv.hostport).unwrap();
    assert!(served(&mut d), "a freed slot was not reused");
}

/// The `remote_address` of the audit entries of requests to `path`.
fn audited_addresses(audit: &Path, path: &str) -> Vec<String> {
    let text = std::fs::read_to_string(audit).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["type"] == "request" && e["request"]["path"] == path)
        .map(|e| {
            e["request"]["remote_address"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[test]
fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let srv = Server::start("trusted_proxies = [\"127.0.0.1/32\"]");
    let audit = srv.dir.path().join("audit").join("audit.log");
    let c = client();
    let (s, body) = call(
        &c,
        "PUT",
        &srv.url("sys/audit/file"),
        Some(&srv.token),
        Some(json!({"type": "file", "options": {"file_path": audit.display().to_string()}})),
    );
    assert!(s == 200 || s == 204, "{s} {body}");
    let (s, body) = call(
        &c,
        "POST",
        &srv.url("sys/auth/approle"),
        Some(&srv.token),
        Some(json!({"type": "approle"})),
    );
    assert!(s == 200 || s == 204, "{s} {body}");

    // From the trusted proxy (127.0.0.1): the right-most untrusted entry.
    let resp = c
        .get(srv.url("secret/data/probe-trusted"))
        .header("X-Vault-Token", &srv.token)
        .header("X-Forwarded-For", "198.51.100.9, 203.0.113.7")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    // From an untrusted peer (127.0.0.2): the header is ignored.
    let other = Client::builder()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let resp = other
        .get(srv.url("secret/data/probe-untrusted"))
        .header("X-Vault-Token", &srv.token)
        .header("X-Forwarded-For", "203.0.113.8")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    thread::sleep(Duration::from_millis(300));
    assert_eq!(
        audited_addresses(&audit, "secret/data/probe-trusted"),
        vec!["203.0.113.7"]
    );
    assert_eq!(
        audited_addresses(&audit, "secret/data/probe-untrusted"),
        vec!["127.0.0.2"]
    );

    // Junk logins from one client behind the proxy do not lock out another.
    // (Failures count per address, mount and identity; one client guessing
    // secret IDs for one role ID is throttled after 20.)
    // A locked-out identity answers 403 (Vault's user lockout), a
    // throttled address 429.
    let junk_role = random_hex(8);
    let login_as = |xff: &str, role: &str| -> u16 {
        c.post(srv.url("auth/approle/login"))
            .header("X-Forwarded-For", xff)
            .json(&json!({"role_id": role, "secret_id": random_hex(8)}))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    let mut limited = false;
    for _ in 0..30 {
        if matches!(login_as("203.0.113.50", &junk_role), 403 | 429) {
            limited = true;
            break;
        }
    }
    assert!(limited, "the junk logins were never rate limited");
    assert_eq!(
        login_as("203.0.113.51", &random_hex(8)),
        400,
        "another client was locked out"
    );
    // Nor does a spray of made-up role IDs from one client, below the spray limit.
    for _ in 0..25 {
        assert_eq!(login_as("203.0.113.52", &random_hex(8)), 400);
    }
    assert_eq!(login_as("203.0.113.53", &random_hex(8)), 400);
}

#[test]
fn internal_errors_keep_storage_detail_out_of_the_body() {
    let mut srv = Server::start("");
    let c = client();
    let (s, body) = call(
        &c,
        "POST",
        &srv.url("secret/data/victim"),
        Some(&srv.token),
        Some(json!({"data": {"v": random_hex(8)}})),
    );
    assert_eq!(s, 200, "{body}");
    srv.stop();
    // Corrupt every entry of the KV mount, under the barrier, in the file.
    let db = srv.dir.path().join("coffer.db");
    let keys = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let backend = coffer_storage::SqliteBackend::open(&db).unwrap();
        let keys = backend.keys_with_prefix("logical/").await.unwrap();
        for k in &keys {
            backend
                .put(k, b"not a sealed entry".to_vec())
                .await
                .unwrap();
        }
        keys
    });
    assert!(!keys.is_empty());
    srv.restart();
    let resp = c
        .get(srv.url("secret/data/victim"))
        .header("X-Vault-Token", &srv.token)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 500);
    let cache_control = resp
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = resp.text().unwrap();
    for k in &keys {
        assert!(
            !text.contains(k.as_str()),
            "storage key in the body: {text}"
        );
    }
    assert!(
        !text.contains("logical/"),
        "storage detail in the body: {text}"
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    let msg = v["errors"][0].as_str().unwrap();
    let id = msg
        .strip_prefix("internal error; request id ")
        .unwrap_or_else(|| panic!("unexpected 500 body: {text}"));
    // The detail is in the server log, under the same request id.
    thread::sleep(Duration::from_millis(300));
    let log = srv.output();
    let line = log
        .lines()
        .find(|l| l.contains(id) && l.contains("request failed"))
        .unwrap_or_else(|| panic!("no log line for request {id}"));
    assert!(line.contains("logical/"), "no detail in the log: {line}");
    assert_eq!(cache_control.as_deref(), Some("no-store"));
}

#[test]
fn every_v1_answer_says_no_store() {
    let srv = Server::start("");
    let c = client();
    let cases: Vec<(&str, String, Option<&str>, Option<&str>)> = vec![
        ("GET", srv.url("sys/health"), None, None),
        (
            "GET",
            srv.url("secret/data/missing"),
            Some(&srv.token),
            None,
        ),
        ("GET", srv.url("secret/data/x"), None, None),
        ("GET", srv.url("secret//x"), Some(&srv.token), None),
        (
            "PUT",
            srv.url("secret/data/x"),
            Some(&srv.token),
            Some("{bad"),
        ),
        (
            "PUT",
            srv.url("secret/data/x"),
            Some(&srv.token),
            Some("{\"data\":{\"a\":\"b\"}}"),
        ),
        ("DELETE", srv.url("secret/data/x"), Some(&srv.token), None),
        ("GET", format!("{}/v2/x", srv.addr), None, None),
    ];
    for (method, url, token, body) in cases {
        let mut req = c.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            &url,
        );
        if let Some(t) = token {
            req = req.header("X-Vault-Token", t);
        }
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let resp = req.send().unwrap();
        assert_eq!(
            resp.headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
            Some("no-store"),
            "{method} {url}: {}",
            resp.status()
        );
    }
}

#[test]
fn memory_returns_after_large_authenticated_bodies() {
    let srv = Server::start("");
    thread::sleep(Duration::from_millis(500));
    let baseline = srv.rss();
    let c = client();
    // 30 MiB bodies are read (the token allows it) and then refused for
    // their element count: the memory of their buffers must be given back.
    for i in 0..4 {
        let resp = c
            .post(srv.url(&format!("secret/data/wide{i}")))
            .header("X-Vault-Token", &srv.token)
            .header("Content-Type", "application/json")
            .body(json_array(15 * 1024 * 1024))
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400);
    }
    thread::sleep(Duration::from_millis(500));
    let after = srv.rss();
    eprintln!(
        "baseline {} MB, after four 30 MiB bodies {} MB",
        baseline >> 20,
        after >> 20
    );
    assert!(
        after < baseline + 25 * 1024 * 1024,
        "RSS {} MB stayed above baseline {} MB",
        after >> 20,
        baseline >> 20
    );
}

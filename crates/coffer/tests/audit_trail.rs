//! The audit trail against a real `coffer server --dev`: values only as
//! HMACs on every device type, `coffer audit verify` on untouched and
//! tampered logs, fail-closed on an unwritable file, SIGHUP rotation,
//! lifecycle events and access records.

mod cli_support;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cli_support::{cli, free_port, unique, Run, BIN};
use serde_json::{json, Value};

/// A dev server whose output goes to files in its own directory.
struct Dev {
    child: Child,
    addr: String,
    token: String,
    dir: tempfile::TempDir,
    http: reqwest::blocking::Client,
}

impl Dev {
    fn start() -> Dev {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let token = unique("root");
        let child = Command::new(BIN)
            .args(["server", "--dev", "--dev-listen-address"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["--dev-root-token-id", &token])
            .arg("--dev-audit-dir")
            .arg(dir.path())
            .stdout(fs::File::create(dir.path().join("stdout")).unwrap())
            .stderr(fs::File::create(dir.path().join("stderr")).unwrap())
            .spawn()
            .unwrap();
        let dev = Dev {
            child,
            addr: format!("http://127.0.0.1:{port}"),
            token,
            dir,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while dev
            .http
            .get(format!("{}/v1/sys/health", dev.addr))
            .send()
            .is_err()
        {
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        dev
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Sends a request with `token`; returns the status and the JSON body.
    fn call_as(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self
            .http
            .request(m, format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Token", token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(&self.token, method, path, body)
    }

    #[track_caller]
    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self.call(method, path, body);
        assert!(s < 300, "{method} {path}: {s} {v}");
        v
    }

    fn enable_file(&self, name: &str, file: &Path) {
        self.ok(
            "PUT",
            &format!("sys/audit/{name}"),
            Some(json!({"type": "file", "options": {"file_path": file.display().to_string()}})),
        );
    }

    fn verify_key(&self, name: &str) -> String {
        let v = self.ok("GET", &format!("sys/audit/{name}/verify-key"), None);
        v["data"]["public_key"].as_str().unwrap().to_string()
    }

    fn hash(&self, device: &str, input: &str) -> String {
        let v = self.ok(
            "PUT",
            &format!("sys/audit-hash/{device}"),
            Some(json!({"input": input})),
        );
        v["hash"].as_str().unwrap().to_string()
    }

    fn hup(&self) {
        let st = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        std::thread::sleep(Duration::from_millis(500));
    }

    fn output(&self) -> String {
        fs::read_to_string(self.path("stdout")).unwrap_or_default()
            + &fs::read_to_string(self.path("stderr")).unwrap_or_default()
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads what one device has logged so far.
type Output<'a> = Box<dyn Fn() -> String + 'a>;

fn verify(files: &[&Path], key: &str, extra: &[&str]) -> Run {
    let home = tempfile::tempdir().unwrap();
    let mut c = cli(home.path());
    c.args(["audit", "verify", "--public-key", key]).args(extra);
    for f in files {
        c.arg(f);
    }
    Run::of(&mut c)
}

fn lines(p: &Path) -> Vec<String> {
    fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(p: &Path, l: &[String]) {
    fs::write(p, l.join("\n") + "\n").unwrap();
}

/// Waits until `f` holds, for up to 5 s.
fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn secret_values_appear_only_as_hmacs_on_every_device() {
    let dev = Dev::start();
    // file
    let file = dev.path("audit.log");
    dev.enable_file("file", &file);
    // socket (TCP collector)
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_addr = tcp.local_addr().unwrap().to_string();
    let tcp_seen = Arc::new(Mutex::new(String::new()));
    let sink = tcp_seen.clone();
    std::thread::spawn(move || {
        for conn in tcp.incoming().flatten() {
            for line in BufReader::new(conn).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        }
    });
    dev.ok(
        "PUT",
        "sys/audit/net",
        Some(json!({"type": "socket", "options": {"address": tcp_addr, "socket_type": "tcp"}})),
    );
    // socket (UDP collector)
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_addr = udp.local_addr().unwrap().to_string();
    let udp_seen = Arc::new(Mutex::new(String::new()));
    let sink = udp_seen.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = udp.recv(&mut buf) {
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
            sink.lock().unwrap().push('\n');
        }
    });
    dev.ok(
        "PUT",
        "sys/audit/udp",
        Some(json!({"type": "socket", "options": {"address": udp_addr, "socket_type": "udp"}})),
    );
    // syslog, on a datagram socket standing in for /dev/log
    let sock_path = dev.path("log.sock");
    let syslog = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    let syslog_seen = Arc::new(Mutex::new(String::new()));
    let sink = syslog_seen.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 262_144];
        while let Ok(n) = syslog.recv(&mut buf) {
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
            sink.lock().unwrap().push('\n');
        }
    });
    dev.ok(
        "PUT",
        "sys/audit/sys",
        Some(json!({"type": "syslog", "options": {"socket_path": sock_path.display().to_string(), "tag": "coffer-test"}})),
    );
    // stdout
    dev.ok(
        "PUT",
        "sys/audit/out",
        Some(json!({"type": "stdout", "options": {"prefix": "AUDIT "}})),
    );

    let value = unique("sv");
    dev.ok(
        "PUT",
        "secret/data/billing/stripe",
        Some(json!({"data": {"api_key": value, "n": 7}})),
    );
    let read = dev.ok("GET", "secret/data/billing/stripe", None);
    assert_eq!(read["data"]["data"]["api_key"], json!(value));

    let outputs: Vec<(&str, Output<'_>)> = vec![
        ("file", Box::new(|| fs::read_to_string(&file).unwrap())),
        ("net", Box::new(|| tcp_seen.lock().unwrap().clone())),
        ("udp", Box::new(|| udp_seen.lock().unwrap().clone())),
        ("sys", Box::new(|| syslog_seen.lock().unwrap().clone())),
        (
            "out",
            // Only the audit lines: the dev banner prints the root token.
            Box::new(|| {
                fs::read_to_string(dev.path("stdout"))
                    .unwrap()
                    .lines()
                    .filter(|l| l.starts_with("AUDIT {"))
                    .map(|l| format!("{l}\n"))
                    .collect()
            }),
        ),
    ];
    for (device, read) in &outputs {
        let h = dev.hash(device, &value);
        assert!(h.starts_with("hmac-sha256:") && h.len() == 12 + 64, "{h}");
        // Request (write) and response (read) both carry the HMAC.
        eventually(&format!("{device} to log the value's HMAC twice"), || {
            read().matches(&h).count() >= 2
        });
        let text = read();
        assert!(!text.contains(&value), "{device} logged the value in clear");
        assert!(
            !text.contains(&dev.token),
            "{device} logged the root token in clear"
        );
        assert!(
            text.contains("\"n\":7"),
            "{device}: numbers are logged as they are"
        );
    }
    // Each device has its own salt.
    assert_ne!(dev.hash("file", &value), dev.hash("net", &value));
    assert!(syslog_seen.lock().unwrap().contains("<38>coffer-test["));
    assert!(fs::read_to_string(dev.path("stdout"))
        .unwrap()
        .contains("\nAUDIT {"));
    // The secret is in no file, line or server message anywhere.
    assert!(!dev.output().contains(&value));
    // Listing shows the five devices; health shows them writing.
    let list = dev.ok("GET", "sys/audit", None);
    for p in ["file/", "net/", "udp/", "sys/", "out/"] {
        assert!(list["data"][p]["type"].is_string(), "{list}");
    }
    let (_, health) = dev.call("GET", "sys/health", None);
    assert_eq!(
        health["audit_devices"]["file/"]["ok"],
        json!(true),
        "{health}"
    );
}

#[test]
fn verify_passes_untouched_and_names_the_first_tampered_line() {
    let dev = Dev::start();
    let file = dev.path("audit.log");
    dev.enable_file("file", &file);
    for i in 0..5 {
        dev.ok(
            "PUT",
            &format!("secret/data/v{i}"),
            Some(json!({"data": {"k": unique("v")}})),
        );
        dev.ok("GET", &format!("secret/data/v{i}"), None);
    }
    let key = dev.verify_key("file");
    // A live log has no closing checkpoint: it verifies only with --open;
    // its tail is only hash-chained, so --open --strict refuses it.
    let live = verify(&[&file], &key, &[]).code(1);
    assert!(
        live.stdout
            .contains("does not end with a closing checkpoint"),
        "{live:#?}"
    );
    verify(&[&file], &key, &["--open"]).ok();
    let live = verify(&[&file], &key, &["--open", "--strict"]).code(1);
    assert!(
        live.stdout.contains("covered by the hash chain only"),
        "{live:#?}"
    );
    dev.ok("PUT", "sys/seal", None);
    let ok = verify(&[&file], &key, &["--strict"]).ok();
    assert!(ok.stdout.starts_with("OK: "), "{ok:#?}");
    let orig = lines(&file);
    assert!(orig.len() > 20);
    let copy = dev.path("copy.log");
    let shown = copy.display().to_string();

    // One byte changed in line 10: line 10 is named.
    let mut l = orig.clone();
    let i = l[9].find("\"time\":\"").unwrap() + 9;
    let mut bytes = l[9].clone().into_bytes();
    bytes[i] = if bytes[i] == b'1' { b'2' } else { b'1' };
    l[9] = String::from_utf8(bytes).unwrap();
    write_lines(&copy, &l);
    let r = verify(&[&copy], &key, &[]).code(1);
    assert!(r.stdout.contains(&format!("{shown}:10 (seq 10)")), "{r:#?}");
    assert!(r.stdout.contains("edited"), "{r:#?}");

    // Line 12 deleted: reported at the line now in its place.
    let mut l = orig.clone();
    l.remove(11);
    write_lines(&copy, &l);
    let r = verify(&[&copy], &key, &[]).code(1);
    assert!(r.stdout.contains(&format!("{shown}:12 (seq 13)")), "{r:#?}");
    assert!(r.stdout.contains("missing"), "{r:#?}");

    // Lines 7 and 8 swapped.
    let mut l = orig.clone();
    l.swap(6, 7);
    write_lines(&copy, &l);
    let r = verify(&[&copy], &key, &[]).code(1);
    assert!(r.stdout.contains(&format!("{shown}:7 (seq 8)")), "{r:#?}");
    assert!(r.stdout.contains("out of order"), "{r:#?}");

    // A line appended by hand, well-formed and correctly linked.
    let mut l = orig.clone();
    let last: Value = serde_json::from_str(l.last().unwrap()).unwrap();
    let forged = json!({"time": "2026-01-01T00:00:00Z", "type": "request", "seq": last["seq"].as_u64().unwrap() + 1,
        "prev": coffer_crypto::hash::sha256_hex(l.last().unwrap().as_bytes())});
    l.push(forged.to_string());
    write_lines(&copy, &l);
    let r = verify(&[&copy], &key, &[]).code(1);
    assert!(
        r.stdout.contains(&format!("{shown}:{}", orig.len() + 1)),
        "{r:#?}"
    );
    let j: Value =
        serde_json::from_str(&verify(&[&copy], &key, &["--format", "json"]).code(1).stdout)
            .unwrap();
    assert_eq!(j["report"]["problem"]["kind"], json!("appended"), "{j}");

    // Another key: the checkpoints do not verify.
    let other = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let r = verify(&[&file], other, &[]).code(1);
    assert!(r.stdout.contains("another key"), "{r:#?}");
}

#[test]
fn unwritable_audit_file_refuses_requests_and_sighup_keeps_the_chain() {
    let dev = Dev::start();
    let file = dev.path("audit.log");
    dev.enable_file("file", &file);
    let key = dev.verify_key("file");
    let value = unique("sv");
    dev.ok(
        "PUT",
        "secret/data/app/db",
        Some(json!({"data": {"password": value}})),
    );

    // A device that cannot write its first entry is not enabled (here a
    // directory stands where its file would be).
    fs::create_dir(dev.path("full")).unwrap();
    let (s, v) = dev.call(
        "PUT",
        "sys/audit/full",
        Some(json!({"type": "file", "options": {"file_path": "full"}})),
    );
    assert_eq!(s, 400, "{v}");
    assert!(
        v["errors"][0].as_str().unwrap().contains("cannot write"),
        "{v}"
    );

    // Rotate: move the file away, and put a directory where it was.
    let rotated = dev.path("audit.log.1");
    fs::rename(&file, &rotated).unwrap();
    fs::create_dir(&file).unwrap();
    dev.hup();
    let (s, v) = dev.call("GET", "secret/data/app/db", None);
    assert_eq!(s, 500, "{v}");
    assert_eq!(v, json!({"errors": ["failed to audit request"]}));
    assert!(!v.to_string().contains(&value));
    let (s, _) = dev.call(
        "PUT",
        "secret/data/app/db",
        Some(json!({"data": {"password": "x"}})),
    );
    assert_eq!(s, 500);
    let (_, health) = dev.call("GET", "sys/health", None);
    assert_eq!(
        health["audit_devices"]["file/"]["ok"],
        json!(false),
        "{health}"
    );
    assert!(
        health["audit_devices"]["file/"]["failures"]
            .as_u64()
            .unwrap()
            >= 2,
        "{health}"
    );
    assert!(!dev.output().contains(&value));

    // The file can be written again: requests are served, the device recovers.
    fs::remove_dir(&file).unwrap();
    let read = dev.ok("GET", "secret/data/app/db", None);
    assert_eq!(read["data"]["data"]["password"], json!(value));
    let (_, health) = dev.call("GET", "sys/health", None);
    assert_eq!(
        health["audit_devices"]["file/"]["ok"],
        json!(true),
        "{health}"
    );

    // A second, regular rotation.
    let rotated2 = dev.path("audit.log.2");
    fs::rename(&file, &rotated2).unwrap();
    dev.hup();
    dev.ok("GET", "secret/data/app/db", None);
    dev.ok("PUT", "sys/seal", None);

    // The chain runs unbroken across the three files, oldest first.
    let r = verify(&[&rotated, &rotated2, &file], &key, &["--strict"]).ok();
    assert!(r.stdout.starts_with("OK: "), "{r:#?}");
    // Each rotated file ends with a signed checkpoint.
    for f in [&rotated, &rotated2] {
        assert!(lines(f).last().unwrap().contains("\"reason\":\"rotate\""));
    }
    // In the wrong order, or with the middle file missing: refused.
    verify(&[&rotated2, &rotated, &file], &key, &[]).code(1);
    let r = verify(&[&rotated, &file], &key, &[]).code(1);
    assert!(r.stdout.contains("missing"), "{r:#?}");
}

#[test]
fn lifecycle_events_and_access_records() {
    let dev = Dev::start();
    let file = dev.path("audit.log");
    dev.enable_file("file", &file);
    dev.ok(
        "PUT",
        "secret/data/a",
        Some(json!({"data": {"k": unique("v")}})),
    );
    dev.ok(
        "PUT",
        "secret/data/a",
        Some(json!({"data": {"k": unique("v")}})),
    );
    dev.ok(
        "PUT",
        "secret/data/b",
        Some(json!({"data": {"k": unique("v")}})),
    );
    dev.ok("POST", "secret/destroy/b", Some(json!({"versions": [1]})));
    dev.ok(
        "PUT",
        "sys/policies/acl/reader",
        Some(json!({"policy": "path \"secret/data/a\" { capabilities = [\"read\"] }"})),
    );
    let created = dev.ok(
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["reader"], "display_name": "billing-app"})),
    );
    let token = created["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let accessor = created["auth"]["accessor"].as_str().unwrap().to_string();
    let (s, _) = dev.call_as(&token, "GET", "secret/data/a", None);
    assert_eq!(s, 200);
    dev.ok("PUT", "sys/auth/approle", Some(json!({"type": "approle"})));
    let (s, _) = dev.call_as(
        "",
        "PUT",
        "auth/approle/login",
        Some(json!({"role_id": unique("r"), "secret_id": unique("s")})),
    );
    assert!(s == 400 || s == 403, "{s}");

    // who-read, through the CLI.
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut c = cli(home.path());
        c.env("COFFER_ADDR", &dev.addr)
            .env("COFFER_TOKEN", &dev.token)
            .args(args);
        Run::of(&mut c)
    };
    let who = run(&["audit", "who-read", "secret/data/a", "--format", "json"])
        .ok()
        .json();
    let readers = who["readers"].as_array().unwrap();
    assert_eq!(readers.len(), 1, "{who}");
    assert_eq!(readers[0]["accessor"], json!(accessor));
    assert_eq!(readers[0]["display_name"], json!("token-billing-app"));
    assert_eq!(readers[0]["policies"], json!(["default", "reader"]));
    let table = run(&["audit", "who-read", "secret/a"]).ok();
    assert!(table.stdout.contains("token-billing-app"), "{table:#?}");
    let later = run(&[
        "audit",
        "who-read",
        "secret/data/a",
        "--since",
        "2099-01-01T00:00:00Z",
        "--format",
        "json",
    ])
    .ok()
    .json();
    assert_eq!(later["readers"], json!([]));
    let unused = run(&["audit", "unused", "--since", "1h", "--format", "json"])
        .ok()
        .json();
    let paths: Vec<&str> = unused["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, vec!["secret/data/b"], "{unused}");
    // The endpoint is policy-controlled: the reader token may not ask.
    let (s, _) = dev.call_as(&token, "GET", "sys/coffer/access/secret/data/a", None);
    assert_eq!(s, 403);

    dev.call_as(&token, "PUT", "auth/token/revoke-self", None);
    dev.ok("PUT", "sys/seal", None);
    let log = fs::read_to_string(&file).unwrap();
    let events: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] == "event")
        .collect();
    let named = |n: &str| {
        events
            .iter()
            .filter(|e| e["event"] == n)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(named("secret_created").len(), 2, "{events:#?}");
    assert_eq!(
        named("secret_updated")[0]["details"],
        json!({"path": "secret/data/a", "version": 2})
    );
    assert_eq!(
        named("secret_destroyed")[0]["details"]["versions"],
        json!([1])
    );
    assert_eq!(
        named("policy_changed")[0]["details"]["path"],
        json!("reader")
    );
    assert_eq!(named("token_created").len(), 1);
    assert_eq!(named("token_revoked").len(), 1);
    assert_eq!(
        named("auth_method_changed")[0]["details"]["path"],
        json!("approle")
    );
    assert_eq!(
        named("login_failed")[0]["details"]["path"],
        json!("auth/approle/login")
    );
    assert_eq!(named("sealed").len(), 1);
    // The actor is named (accessor HMAC'd, display name and policies as they are).
    let upd = &named("secret_updated")[0];
    // The dev root token is made as Vault's is, through auth/token/create.
    assert_eq!(upd["auth"]["display_name"], json!("token"));
    assert!(upd["auth"]["accessor"]
        .as_str()
        .unwrap()
        .starts_with("hmac-sha256:"));
}

/// A config-file server on SQLite that unseals itself from a key file.
struct Prod {
    child: Option<Child>,
    dir: tempfile::TempDir,
    addr: String,
    http: reqwest::blocking::Client,
}

impl Prod {
    fn new() -> Prod {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        fs::write(
            dir.path().join("coffer.toml"),
            format!(
                "[storage.sqlite]\npath = \"data.db\"\n\n[listener.tcp]\naddress = \"127.0.0.1:{port}\"\n\
                 tls_disable = true\n\n[seal]\nunseal_keys_file = \"keys\"\n\n[audit]\nfile_dir = \"audit\"\n"
            ),
        )
        .unwrap();
        // The keys file must exist (0600) from the start; it is filled after init.
        let keys = dir.path().join("keys");
        fs::write(&keys, "").unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&keys, fs::Permissions::from_mode(0o600)).unwrap();
        }
        Prod {
            child: None,
            dir,
            addr: format!("http://127.0.0.1:{port}"),
            http: reqwest::blocking::Client::new(),
        }
    }

    fn start(&mut self) {
        let child = Command::new(BIN)
            .args(["server", "--config"])
            .arg(self.dir.path().join("coffer.toml"))
            .stdout(fs::File::create(self.dir.path().join("out")).unwrap())
            .stderr(fs::File::create(self.dir.path().join("err")).unwrap())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while self
            .http
            .get(format!("{}/v1/sys/health", self.addr))
            .send()
            .is_err()
        {
            let exited = self.child.as_mut().and_then(|c| c.try_wait().unwrap());
            let err = fs::read_to_string(self.dir.path().join("err")).unwrap_or_default();
            assert!(exited.is_none(), "server exited: {err}");
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server: SIGTERM (clean) or SIGKILL (crash).
    fn stop(&mut self, signal: &str) {
        if let Some(mut c) = self.child.take() {
            Command::new("kill")
                .args([signal, &c.id().to_string()])
                .status()
                .unwrap();
            c.wait().unwrap();
        }
    }

    fn call(&self, token: &str, method: &str, path: &str, body: Value) -> Value {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = self
            .http
            .request(m, format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Token", token)
            .json(&body)
            .send()
            .unwrap();
        assert!(
            resp.status().is_success(),
            "{method} {path}: {}",
            resp.status()
        );
        resp.json().unwrap_or(Value::Null)
    }
}

impl Drop for Prod {
    fn drop(&mut self) {
        self.stop("-KILL");
    }
}

#[test]
fn the_chain_survives_clean_restarts_and_crashes() {
    let mut p = Prod::new();
    p.start();
    let init = p.call(
        "",
        "PUT",
        "sys/init",
        json!({"secret_shares": 1, "secret_threshold": 1}),
    );
    let root = init["root_token"].as_str().unwrap().to_string();
    let key = init["keys"][0].as_str().unwrap().to_string();
    p.call("", "PUT", "sys/unseal", json!({"key": key}));
    fs::write(p.dir.path().join("keys"), format!("{key}\n")).unwrap();
    p.call(&root, "PUT", "sys/mounts/kv", json!({"type": "kv-v2"}));
    let log = p.dir.path().join("audit").join("audit.log");
    p.call(
        &root,
        "PUT",
        "sys/audit/file",
        json!({"type": "file", "options": {"file_path": log.display().to_string()}}),
    );
    let pk = p.call(&root, "GET", "sys/audit/file/verify-key", Value::Null)["data"]["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    p.call(
        &root,
        "PUT",
        "kv/data/a",
        json!({"data": {"k": unique("v")}}),
    );

    p.stop("-KILL"); // crash: no closing checkpoint
    p.start();
    p.call(&root, "GET", "kv/data/a", Value::Null);
    p.stop("-TERM"); // clean: sealed with a closing checkpoint
    p.start();
    p.call(&root, "GET", "kv/data/a", Value::Null);
    p.call(&root, "PUT", "sys/seal", Value::Null);

    let r = verify(&[&log], &pk, &["--strict"]).ok();
    assert!(r.stdout.starts_with("OK: "), "{r:#?}");
    let reasons: Vec<String> = lines(&log)
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] == "checkpoint")
        .map(|v| v["checkpoint"]["reason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        reasons,
        ["start", "resume", "seal", "resume", "seal"],
        "{r:#?}"
    );
}

/// `sys/config/auditing/request-headers`: a named header is recorded in
/// the request and response entries of every request that carries it, in
/// clear or as the device's HMAC as configured; credential headers cannot
/// be named; a removed header is recorded no more.
#[test]
fn audited_request_headers_are_recorded_as_configured() {
    let dev = Dev::start();
    let log = dev.path("headers.log");
    dev.enable_file("hdr", &log);
    dev.ok(
        "POST",
        "sys/config/auditing/request-headers/X-Request-Id",
        Some(json!({"hmac": false})),
    );
    dev.ok(
        "POST",
        "sys/config/auditing/request-headers/x-tenant",
        Some(json!({"hmac": true})),
    );
    let (st, v) = dev.call(
        "POST",
        "sys/config/auditing/request-headers/X-Vault-Token",
        Some(json!({"hmac": true})),
    );
    assert_eq!(st, 400, "{v}");
    let listed = dev.ok("GET", "sys/config/auditing/request-headers", None);
    assert_eq!(
        listed["data"]["headers"],
        json!({"x-request-id": {"hmac": false}, "x-tenant": {"hmac": true}})
    );
    let one = dev.ok("GET", "sys/config/auditing/request-headers/x-tenant", None);
    assert_eq!(one["data"], json!({"x-tenant": {"hmac": true}}));

    let request_id = unique("req");
    let tenant = unique("tenant");
    let marker = unique("hdr-path");
    let resp = dev
        .http
        .get(format!("{}/v1/sys/policies/acl/{marker}", dev.addr))
        .header("X-Vault-Token", &dev.token)
        .header("X-Request-Id", &request_id)
        .header("X-Tenant", &tenant)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let tenant_hmac = dev.hash("hdr", &tenant);
    let entries: Vec<Value> = lines(&log)
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            e["request"]["path"]
                .as_str()
                .is_some_and(|p| p.ends_with(&marker))
        })
        .collect();
    assert_eq!(entries.len(), 2, "a request and a response entry");
    for e in &entries {
        assert_eq!(
            e["request"]["headers"],
            json!({"x-request-id": [request_id], "x-tenant": [tenant_hmac]}),
            "{e}"
        );
    }
    let text = fs::read_to_string(&log).unwrap();
    assert!(!text.contains(&tenant), "an hmac header's value in clear");

    // A header no longer audited is not recorded.
    dev.ok(
        "DELETE",
        "sys/config/auditing/request-headers/x-tenant",
        None,
    );
    let later = unique("later");
    dev.http
        .get(format!("{}/v1/sys/policies/acl/{later}", dev.addr))
        .header("X-Vault-Token", &dev.token)
        .header("X-Tenant", &tenant)
        .send()
        .unwrap();
    let text = fs::read_to_string(&log).unwrap();
    let last = text.lines().rev().find(|l| l.contains(&later)).unwrap();
    assert!(!last.contains("x-tenant"), "{last}");
}

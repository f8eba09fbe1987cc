//! Audit devices at the trust boundary, against real `coffer server --dev`
//! processes: file devices write only inside the configured directory, a
//! UDP device never satisfies fail-closed on its own, a TCP collector that
//! stops accepting does not hold requests up beyond its timeout, and
//! emergency revocation reaches every token that read a secret.

mod cli_support;

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cli_support::{unique, Api, Server};
use serde_json::{json, Value};

/// A dev server whose file devices may write under a fresh directory.
fn audit_server() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(&["--dev-audit-dir", dir.path().to_str().unwrap()]);
    (s, dir)
}

fn enable(api: &Api, name: &str, body: Value) -> (u16, Value) {
    api.call(
        "PUT",
        &format!("sys/audit/{name}"),
        Some(&api.server.token),
        Some(body),
    )
}

fn file_device(path: &str, mode: Option<&str>) -> Value {
    let mut options = json!({"file_path": path});
    if let Some(m) = mode {
        options["mode"] = json!(m);
    }
    json!({"type": "file", "options": options})
}

fn error_of(v: &Value) -> String {
    v["errors"][0].as_str().unwrap_or_default().to_string()
}

fn read_secret(api: &Api, token: &str, path: &str) -> (u16, Value) {
    api.call("GET", &format!("secret/data/{path}"), Some(token), None)
}

#[test]
fn file_devices_are_refused_without_a_configured_directory() {
    let s = Server::start();
    let api = Api::new(&s);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    let (st, v) = enable(&api, "f", file_device(log.to_str().unwrap(), None));
    assert_eq!(st, 400, "{v}");
    assert!(
        error_of(&v).contains("file_dir"),
        "the error names the setting: {v}"
    );
    assert!(!log.exists());
    // Standard output needs no directory.
    let (st, v) = enable(&api, "out", file_device("stdout", None));
    assert_eq!(st, 204, "{v}");
}

#[test]
fn file_devices_stay_inside_the_configured_directory() {
    let (s, dir) = audit_server();
    let api = Api::new(&s);
    let outside = tempfile::tempdir().unwrap();
    let d = dir.path();

    // Outside the directory, or escaping it with "..": refused.
    let escapes = [
        outside.path().join("x.log").display().to_string(),
        "/etc/cron.d/coffer-audit".to_string(),
        "../x.log".to_string(),
        "sub/../../x.log".to_string(),
        format!("{}/../x.log", d.display()),
    ];
    for p in &escapes {
        let (st, v) = enable(&api, "esc", file_device(p, None));
        assert_eq!(st, 400, "{p}: {v}");
    }
    assert!(!outside.path().join("x.log").exists());
    assert!(!d.parent().unwrap().join("x.log").exists());

    // Executable or group-writable modes: refused.
    for m in ["0755", "0777", "0700", "0660", "0641", "1640"] {
        let (st, v) = enable(&api, "mode", file_device("m.log", Some(m)));
        assert_eq!(st, 400, "mode {m}: {v}");
    }
    assert!(!d.join("m.log").exists());

    // A symbolic link in the directory pointing out: refused, target untouched.
    let target = outside.path().join("target.log");
    std::fs::write(&target, "untouched\n").unwrap();
    std::os::unix::fs::symlink(&target, d.join("link.log")).unwrap();
    let (st, v) = enable(&api, "link", file_device("link.log", None));
    assert_eq!(st, 400, "{v}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched\n");
    // A symlinked directory: refused, nothing created outside.
    std::os::unix::fs::symlink(outside.path(), d.join("sub")).unwrap();
    let (st, v) = enable(&api, "subdir", file_device("sub/x.log", None));
    assert_eq!(st, 400, "{v}");
    assert!(!outside.path().join("x.log").exists());

    // Inside, relative or absolute, mode up to 0640: accepted.
    let (st, v) = enable(&api, "rel", file_device("rel.log", Some("0640")));
    assert_eq!(st, 204, "{v}");
    let abs = d.join("abs.log");
    let (st, v) = enable(&api, "abs", file_device(abs.to_str().unwrap(), None));
    assert_eq!(st, 204, "{v}");
    std::fs::create_dir(d.join("nested")).unwrap();
    let (st, v) = enable(&api, "nested", file_device("nested/n.log", Some("0600")));
    assert_eq!(st, 204, "{v}");
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&d.join("rel.log")), 0o640);
    assert_eq!(mode(&abs), 0o600);
    let value = unique("v");
    api.root(
        "PUT",
        "secret/data/inside",
        Some(json!({"data": {"k": value}})),
    );
    for f in ["rel.log", "abs.log", "nested/n.log"] {
        let text = std::fs::read_to_string(d.join(f)).unwrap();
        assert!(text.contains("secret/data/inside"), "{f}");
        assert!(!text.contains(&value), "{f}");
    }
}

/// A TCP collector on loopback that reads JSON lines until stopped.
struct Collector {
    addr: String,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (st, cs) = (stop.clone(), conns.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((c, _)) => {
                        c.set_nonblocking(false).unwrap();
                        cs.lock().unwrap().push(c.try_clone().unwrap());
                        std::thread::spawn(move || {
                            for line in BufReader::new(c).lines() {
                                if line.is_err() {
                                    return;
                                }
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Collector {
            addr,
            stop,
            conns,
            thread: Some(thread),
        }
    }

    /// Closes the listening socket and every connection.
    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[test]
fn udp_never_satisfies_fail_closed_on_its_own() {
    let (s, _dir) = audit_server();
    let api = Api::new(&s);
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let udp_dev = json!({"type": "socket", "options": {
        "address": udp.local_addr().unwrap().to_string(), "socket_type": "udp"}});

    // UDP alone cannot record requests: refused at enable.
    let (st, v) = enable(&api, "udp", udp_dev.clone());
    assert_eq!(st, 400, "{v}");
    assert!(error_of(&v).contains("UDP"), "{v}");

    // A file device and UDP: requests pass, the datagrams arrive.
    let (st, v) = enable(&api, "file", file_device("a.log", None));
    assert_eq!(st, 204, "{v}");
    let (st, v) = enable(&api, "udp", udp_dev);
    assert_eq!(st, 204, "{v}");
    api.root(
        "PUT",
        "secret/data/u",
        Some(json!({"data": {"k": unique("v")}})),
    );
    let (st, _) = read_secret(&api, &s.token, "u");
    assert_eq!(st, 200);
    let mut buf = vec![0u8; 65536];
    let n = udp.recv(&mut buf).unwrap();
    assert!(std::str::from_utf8(&buf[..n]).unwrap().contains("\"seq\""));

    // Disabling the file device would leave UDP alone: refused.
    let (st, v) = api.call("DELETE", "sys/audit/file", Some(&s.token), None);
    assert_eq!(st, 400, "{v}");
    assert!(error_of(&v).contains("UDP"), "{v}");

    // Replace the file device by a TCP collector, then stop the collector:
    // only the UDP device still "succeeds", and requests fail closed.
    let mut collector = Collector::start();
    let tcp_dev = json!({"type": "socket", "options": {
        "address": collector.addr, "socket_type": "tcp", "write_timeout": "1s"}});
    let (st, v) = enable(&api, "tcp", tcp_dev);
    assert_eq!(st, 204, "{v}");
    let (st, v) = api.call("DELETE", "sys/audit/file", Some(&s.token), None);
    assert_eq!(st, 204, "{v}");
    let (st, _) = read_secret(&api, &s.token, "u");
    assert_eq!(st, 200);
    collector.stop();
    // The first line after the collector went away may still be accepted
    // by the kernel: keep asking until the device notices.
    let mut refused = None;
    for _ in 0..20 {
        let (st, v) = read_secret(&api, &s.token, "u");
        if st == 500 {
            refused = Some(v);
            break;
        }
        assert_eq!(st, 200);
        std::thread::sleep(Duration::from_millis(200));
    }
    let v = refused.expect("requests kept passing with only a UDP device writing");
    assert_eq!(v, json!({"errors": ["failed to audit request"]}));
    let (st, _) = read_secret(&api, &s.token, "u");
    assert_eq!(st, 500, "still fails closed");
}

/// A listener whose accept queue holds one connection, and which accepts
/// only when told.
fn tiny_backlog_listener() -> TcpListener {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let listener = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        sock.listen(0).unwrap().into_std().unwrap()
    });
    listener.set_nonblocking(false).unwrap();
    listener
}

#[test]
fn a_tcp_collector_that_stops_accepting_does_not_hold_requests_up() {
    let (s, _dir) = audit_server();
    let api = Api::new(&s);
    let listener = tiny_backlog_listener();
    let addr = listener.local_addr().unwrap();
    let (st, v) = enable(&api, "file", file_device("a.log", None));
    assert_eq!(st, 204, "{v}");
    let (st, v) = enable(
        &api,
        "tcp",
        json!({"type": "socket", "options": {
            "address": addr.to_string(), "socket_type": "tcp", "write_timeout": "1s"}}),
    );
    assert_eq!(st, 204, "{v}");
    api.root(
        "PUT",
        "secret/data/t",
        Some(json!({"data": {"k": unique("v")}})),
    );
    // The collector takes the device's connection, then stops accepting:
    // its accept queue is filled, and the device's connection is closed,
    // so the device's reconnects hang until their timeout.
    let (conn, _) = listener.accept().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(c) => fillers.push(c),
            Err(_) => break,
        }
    }
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_err(),
        "the accept queue should be full"
    );
    drop(conn);

    // Concurrent requests: each finishes within about the device timeout
    // per entry (two entries per request), not queued behind one another.
    let start = Instant::now();
    let worst = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    let mut worst = Duration::ZERO;
                    for _ in 0..3 {
                        let t = Instant::now();
                        let (st, v) = read_secret(&api, &s.token, "t");
                        assert_eq!(st, 200, "the file device records it: {v}");
                        worst = worst.max(t.elapsed());
                    }
                    worst
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .max()
            .unwrap()
    });
    let total = start.elapsed();
    assert!(
        worst < Duration::from_secs(4),
        "a request took {worst:?} (24 requests in {total:?})"
    );
    let (_, health) = api.call("GET", "sys/health", None, None);
    assert_eq!(
        health["audit_devices"]["tcp/"]["ok"],
        json!(false),
        "{health}"
    );
    assert_eq!(
        health["audit_devices"]["file/"]["ok"],
        json!(true),
        "{health}"
    );
    drop(fillers);
}

#[test]
fn compromise_revocation_reaches_every_reader() {
    let s = Server::start();
    let api = Api::new(&s);
    let path = unique("shared/db");
    api.root(
        "PUT",
        &format!("secret/data/{path}"),
        Some(json!({"data": {"password": unique("pw")}})),
    );
    let policy = format!("path \"secret/data/{path}\" {{ capabilities = [\"read\"] }}");
    api.root(
        "PUT",
        "sys/policies/acl/db-reader",
        Some(json!({"policy": policy})),
    );
    let mut tokens = Vec::new();
    for _ in 0..60 {
        let created = api.root(
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["db-reader"]})),
        );
        let t = created["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_string();
        let (st, _) = read_secret(&api, &t, &path);
        assert_eq!(st, 200);
        tokens.push(t);
    }
    // The who-read view keeps the most recent 50.
    let who = api.root(
        "GET",
        &format!("sys/coffer/access/secret/data/{path}"),
        None,
    );
    assert_eq!(who["data"]["readers"].as_array().unwrap().len(), 50);

    let (st, body) = api.call(
        "POST",
        "sys/coffer/revoke-compromised",
        Some(&s.token),
        Some(json!({"path": format!("secret/{path}"), "reason": "leaked", "since": "1h"})),
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        body["data"]["tokens_revoked"].as_array().unwrap().len(),
        60,
        "{body}"
    );
    for t in &tokens {
        let (st, _) = api.call("GET", "auth/token/lookup-self", Some(t), None);
        assert_eq!(st, 403, "every reader's token is revoked");
    }
}

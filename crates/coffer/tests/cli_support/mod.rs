//! Shared helpers of the CLI integration tests: a real `coffer server --dev`
//! on a free port, and a runner for the `coffer` binary pointed at it.

#![allow(dead_code)]

use std::io::Write as _;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

pub mod pg;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Path of the binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_coffer");

/// A unique, run-time generated string (for tokens and secret values).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{:x}{nanos:x}{n:x}", std::process::id())
}

/// A port nobody listens on right now; from the range `lo-hi` in
/// `COFFER_TEST_PORTS` when that is set (machines that share loopback ports
/// between test runs), otherwise any the kernel gives.
pub fn free_port() -> u16 {
    if let Some((lo, hi)) = std::env::var("COFFER_TEST_PORTS").ok().and_then(|r| {
        let (lo, hi) = r.split_once('-')?;
        Some((
            lo.trim().parse::<u16>().ok()?,
            hi.trim().parse::<u16>().ok()?,
        ))
    }) {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let span = u32::from(hi.saturating_sub(lo)) + 1;
        let offset = std::process::id() % span;
        for _ in 0..span {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let port = lo + ((offset + n) % span) as u16;
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
        panic!("no free port in COFFER_TEST_PORTS={lo}-{hi}");
    }
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running dev server, killed on drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub addr: String,
    /// The root token the server was started with.
    pub token: String,
    /// Empty home directory for the CLI (so no stray token file is read).
    pub home: tempfile::TempDir,
}

impl Server {
    /// Starts `coffer server --dev` and waits until `sys/health` answers.
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Starts `coffer server --dev` with `extra` arguments (such as
    /// `--dev-audit-dir DIR`) and waits until `sys/health` answers.
    pub fn start_with(extra: &[&str]) -> Server {
        let port = free_port();
        let token = unique("root");
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec![
            "server",
            "--dev",
            "--dev-listen-address",
            &listen,
            "--dev-root-token-id",
            &token,
        ];
        args.extend_from_slice(extra);
        Server::spawn(&args, format!("http://{listen}"), token.clone())
    }

    /// Starts `coffer server --dev --config <file>`: a dev server with the
    /// rotators the file declares (`[rotator.NAME]` sections only).
    pub fn start_dev_config(config: &Path) -> Server {
        let port = free_port();
        let token = unique("root");
        let listen = format!("127.0.0.1:{port}");
        Server::spawn(
            &[
                "server",
                "--dev",
                "--dev-listen-address",
                &listen,
                "--dev-root-token-id",
                &token,
                "--config",
                config.to_str().unwrap(),
            ],
            format!("http://{listen}"),
            token.clone(),
        )
    }

    /// Starts `coffer server --config <file>` (listening at `addr`) and waits
    /// until it answers; `token` is empty until someone initialises it.
    pub fn start_config(config: &Path, addr: String) -> Server {
        let config = config.to_str().unwrap().to_owned();
        Server::spawn(&["server", "--config", &config], addr, String::new())
    }

    fn spawn(args: &[&str], addr: String, token: String) -> Server {
        let child = Command::new(BIN)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start coffer server");
        let mut server = Server {
            child,
            addr,
            token,
            home: tempfile::tempdir().unwrap(),
        };
        server.wait_healthy();
        server
    }

    fn wait_healthy(&mut self) {
        // Only "does it answer" matters here, so any certificate will do.
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .tls_danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!("{}/v1/sys/health", self.addr);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("coffer server exited early: {status}");
            }
            if http.get(&url).send().is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("coffer server did not answer {url} within 60 s");
    }

    /// A `coffer` command aimed at this server with the root token.
    pub fn cmd(&self) -> Command {
        let mut c = cli(self.home.path());
        c.env("COFFER_ADDR", &self.addr)
            .env("COFFER_TOKEN", &self.token);
        c
    }

    /// Runs `coffer <args>` against this server.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::of(self.cmd().args(args))
    }

    /// Runs `coffer <args>` with `stdin` fed to it.
    pub fn run_stdin(&self, args: &[&str], stdin: &str) -> Run {
        Run::with_stdin(self.cmd().args(args), stdin)
    }
}

impl Server {
    /// Kills the server process with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `coffer` command with a clean environment: no inherited address,
/// token, TLS or format settings, and `HOME` set to `home`.
pub fn cli(home: &Path) -> Command {
    let mut c = Command::new(BIN);
    for var in [
        "COFFER_ADDR",
        "VAULT_ADDR",
        "COFFER_TOKEN",
        "VAULT_TOKEN",
        "COFFER_CACERT",
        "VAULT_CACERT",
        "COFFER_SKIP_VERIFY",
        "VAULT_SKIP_VERIFY",
        "COFFER_FORMAT",
    ] {
        c.env_remove(var);
    }
    c.env("HOME", home);
    c
}

/// The outcome of one CLI run.
#[derive(Debug)]
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Runs a prepared command with empty stdin.
    pub fn of(cmd: &mut Command) -> Run {
        Run::from(cmd.stdin(Stdio::null()).output().unwrap())
    }

    /// Runs a prepared command with `stdin` as its input.
    pub fn with_stdin(cmd: &mut Command, stdin: &str) -> Run {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        Run::from(child.wait_with_output().unwrap())
    }

    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts exit code 0 and returns self.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        self
    }

    /// Asserts the exit code and returns self.
    #[track_caller]
    pub fn code(self, code: i32) -> Run {
        assert_eq!(self.code, code, "unexpected exit code: {self:#?}");
        self
    }

    /// Standard output parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
}

/// A minimal Vault HTTP client for tests that drive the API directly.
pub struct Api<'a> {
    /// The server it talks to.
    pub server: &'a Server,
    http: reqwest::blocking::Client,
}

impl<'a> Api<'a> {
    /// A client for `server`.
    pub fn new(server: &'a Server) -> Self {
        Api {
            server,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    /// Calls `method path` with an optional token and JSON body; returns the
    /// status and the JSON answer (null when empty, a string when not JSON).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let url = format!("{}/v1/{path}", self.server.addr);
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, url);
        if let Some(t) = token {
            req = req.header("X-Vault-Token", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        let body = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
        };
        (status, body)
    }

    /// Calls with the root token and asserts success.
    pub fn root(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let (status, body) = self.call(method, path, Some(&self.server.token), body);
        assert!(status < 300, "{method} {path}: {status} {body}");
        body
    }
}

/// A blocking HTTP client with a 30 s timeout.
pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A loopback `HOST:PORT` nobody listens on right now.
pub fn free_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// `n` random bytes from the OS, hex encoded (for run-time test values).
pub fn random_hex(n: usize) -> String {
    use std::io::Read as _;
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut buf)
        .unwrap();
    hex::encode(buf)
}

/// Writes a config for SQLite storage in `dir`, listening on a free
/// loopback port, with `[audit] file_dir` at `dir/audit`; returns (config
/// path, address). For servers that must survive a restart.
pub fn sqlite_config(dir: &Path) -> (std::path::PathBuf, String) {
    let port = free_port();
    let audit = dir.join("audit");
    std::fs::create_dir_all(&audit).unwrap();
    let text = format!(
        "[storage.sqlite]\npath = {:?}\n\n[listener.tcp]\naddress = \"127.0.0.1:{port}\"\ntls_disable = true\n\n[audit]\nfile_dir = {:?}\n",
        dir.join("coffer.db").to_str().unwrap(),
        audit.to_str().unwrap()
    );
    let path = dir.join("coffer.toml");
    std::fs::write(&path, text).unwrap();
    (path, format!("http://127.0.0.1:{port}"))
}

/// Starts a server on fresh SQLite storage in `dir`, initialises it with
/// `shares`/`threshold` and unseals it; returns (server with the root token
/// set, config path, the unseal keys in base64).
pub fn start_initialised(
    dir: &Path,
    shares: u32,
    threshold: u32,
) -> (Server, std::path::PathBuf, Vec<String>) {
    let (cfg, addr) = sqlite_config(dir);
    let mut s = Server::start_config(&cfg, addr);
    let api = Api::new(&s);
    let (st, init) = api.call(
        "PUT",
        "sys/init",
        None,
        Some(serde_json::json!({"secret_shares": shares, "secret_threshold": threshold})),
    );
    assert_eq!(st, 200, "{init}");
    let keys: Vec<String> = init["keys_base64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    for k in &keys[..threshold as usize] {
        let (st, v) = api.call(
            "PUT",
            "sys/unseal",
            None,
            Some(serde_json::json!({"key": k})),
        );
        assert_eq!(st, 200, "{v}");
    }
    s.token = init["root_token"].as_str().unwrap().to_owned();
    (s, cfg, keys)
}

/// The `bao` CLI, or `None` (with a notice) to skip.
pub fn bao() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("COFFER_TEST_BAO").filter(|p| !p.is_empty()) {
        return Some(std::path::PathBuf::from(p));
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("bao"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        eprintln!("bao not found (COFFER_TEST_BAO or PATH): skipping the bao CLI test");
    }
    found
}

/// A `bao` command at `addr` with `token`, its home in `home`.
pub fn bao_at(bin: &Path, home: &Path, addr: &str, token: &str) -> Command {
    let mut c = Command::new(bin);
    for v in ["VAULT_TOKEN", "BAO_TOKEN", "VAULT_FORMAT", "BAO_FORMAT"] {
        c.env_remove(v);
    }
    c.env("HOME", home)
        .env("BAO_ADDR", addr)
        .env("VAULT_ADDR", addr)
        .env("BAO_TOKEN", token);
    c
}

/// A token holding `policy` (a fresh ACL policy made for it), with the
/// default policy too when `default`, for 10 minutes.
pub fn token_with(api: &Api<'_>, policy: &str, default: bool) -> String {
    let name = unique("p").to_lowercase();
    api.root(
        "PUT",
        &format!("sys/policies/acl/{name}"),
        Some(serde_json::json!({ "policy": policy })),
    );
    let b = api.root(
        "POST",
        "auth/token/create",
        Some(serde_json::json!({"policies": [name], "no_default_policy": !default, "ttl": "10m"})),
    );
    b["auth"]["client_token"].as_str().unwrap().to_string()
}

/// A token holding only `policy` (no default policy), for 10 minutes.
pub fn token_for(api: &Api<'_>, policy: &str) -> String {
    token_with(api, policy, false)
}

/// Opens a monitor stream; its lines arrive on the receiver (and the
/// receiver disconnects when the server ends the stream).
pub fn monitor(
    s: &Server,
    token: &str,
    query: &str,
) -> (u16, String, std::sync::mpsc::Receiver<String>) {
    let client = reqwest::blocking::Client::builder()
        .timeout(None::<Duration>)
        .build()
        .unwrap();
    let resp = client
        .get(format!("{}/v1/sys/monitor?{query}", s.addr))
        .header("X-Vault-Token", token)
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(resp)) {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (status, content_type, rx)
}

/// Waits up to 15 s for a line matching `want`; the lines seen meanwhile.
pub fn wait_line(
    rx: &std::sync::mpsc::Receiver<String>,
    want: impl Fn(&str) -> bool,
) -> Result<String, Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if want(&line) => return Ok(line),
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    Err(seen)
}

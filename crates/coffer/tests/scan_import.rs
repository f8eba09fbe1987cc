//! `coffer scan --import` against a real dev server: values land in KV v2
//! with lifecycle metadata, and `--rewrite` replaces literals with
//! `coffer://` references only after the store write succeeded.

use coffer_scan::template::{expand, Rng};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    addr: String,
    token: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Server {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let token = expand("root-<<alnum:20>>", &mut Rng::new(u64::from(port)), 1.0);
    let child = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["server", "--dev", "--dev-listen-address"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["--dev-root-token-id", &token])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("http://127.0.0.1:{port}");
    let server = Server { child, addr, token };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if reqwest::blocking::get(format!("{}/v1/sys/health", server.addr)).is_ok() {
            return server;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("dev server did not start");
}

fn scan(dir: &Path, server: &Server, token: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["scan", "--no-progress"])
        .args(args)
        .current_dir(dir)
        .env("COFFER_ADDR", &server.addr)
        .env("COFFER_TOKEN", token)
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .output()
        .unwrap()
}

fn get(server: &Server, path: &str) -> serde_json::Value {
    reqwest::blocking::Client::new()
        .get(format!("{}/v1/{path}", server.addr))
        .header("X-Vault-Token", &server.token)
        .send()
        .unwrap()
        .json()
        .unwrap()
}

#[test]
fn import_stores_values_then_rewrites_references() {
    let server = start_server();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(77);
    let key = expand("sk_live_<<alnum:24>>", &mut rng, 1.0);
    let pw = expand("<<pw:18>>", &mut rng, 1.0);
    let src = format!("STRIPE_KEY = \"{key}\"\nDB = \"postgres://app:{pw}@db.internal/app\"\n");
    std::fs::write(dir.path().join("settings.py"), &src).unwrap();

    // A bad token: nothing is stored, nothing is rewritten, exit 2.
    let o = scan(
        dir.path(),
        &server,
        "not-a-token",
        &["--import", "secret/app", "--rewrite", "."],
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("settings.py")).unwrap(),
        src
    );

    // Without --rewrite: stored, edits printed, file untouched.
    let o = scan(
        dir.path(),
        &server,
        &server.token,
        &["--import", "secret/app", "."],
    );
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(
            "edit settings.py:1:15: replace sk_l***** with coffer://secret/app/stripe-secret-key-"
        ),
        "{out}"
    );
    assert!(!out.contains(&key) && !out.contains(&pw), "secret printed");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("settings.py")).unwrap(),
        src
    );

    // With --rewrite: the literals become references to stored values.
    let o = scan(
        dir.path(),
        &server,
        &server.token,
        &["--import", "secret/app", "--rewrite", "."],
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let rewritten = std::fs::read_to_string(dir.path().join("settings.py")).unwrap();
    assert!(
        !rewritten.contains(&key) && !rewritten.contains(&pw),
        "{rewritten}"
    );
    assert!(
        rewritten.contains("STRIPE_KEY = \"coffer://secret/app/stripe-secret-key-"),
        "{rewritten}"
    );
    assert!(
        rewritten.contains("postgres://app:coffer://secret/app/database-url-password-"),
        "{rewritten}"
    );
    for (rule, want) in [
        ("stripe-secret-key", key.as_str()),
        ("database-url-password", pw.as_str()),
    ] {
        let start = rewritten
            .find(&format!("coffer://secret/app/{rule}-"))
            .unwrap();
        let reference = &rewritten[start..];
        let end = reference.find(['"', '@']).unwrap();
        let reference = &reference[..end];
        let (path, field) = reference
            .trim_start_matches("coffer://secret/")
            .split_once('#')
            .unwrap();
        assert_eq!(field, "value");
        let data = get(&server, &format!("secret/data/{path}"));
        assert_eq!(data["data"]["data"]["value"], want);
        let meta = get(&server, &format!("secret/metadata/{path}"));
        let cm = &meta["data"]["custom_metadata"];
        assert_eq!(cm["rule"], rule);
        if rule == "stripe-secret-key" {
            assert_eq!(cm["secret_type"], "api_key");
            assert_eq!(cm["origin"], "third_party");
            assert_eq!(cm["vendor"], "Stripe");
        } else {
            assert_eq!(cm["secret_type"], "db_credential");
            assert_eq!(cm["origin"], "internal");
        }
    }
    // The rewritten tree is clean.
    let o = scan(dir.path(), &server, &server.token, &["."]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

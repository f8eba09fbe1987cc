//! `coffer operator init|unseal` against a real server started from a
//! config file (uninitialised SQLite storage), and TLS verification.

mod cli_support;

use std::process::Command;

use cli_support::{cli, free_port, Run, Server};
use serde_json::{json, Value};

/// Writes a config for SQLite storage in `dir`, listening on a free port.
/// Returns (config path, address).
fn config(dir: &std::path::Path, tls: Option<(&str, &str)>) -> (std::path::PathBuf, String) {
    let port = free_port();
    let db = dir.join("coffer.db");
    let listener = match tls {
        None => "tls_disable = true".to_owned(),
        Some((cert, key)) => format!("tls_cert_file = {cert:?}\ntls_key_file = {key:?}"),
    };
    let text = format!(
        "[storage.sqlite]\npath = {:?}\n\n[listener.tcp]\naddress = \"127.0.0.1:{port}\"\n{listener}\n",
        db.to_str().unwrap()
    );
    let path = dir.join("coffer.toml");
    std::fs::write(&path, text).unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    (path, format!("{scheme}://127.0.0.1:{port}"))
}

/// A `coffer` command aimed at `addr` with no token.
fn at(home: &std::path::Path, addr: &str) -> Command {
    let mut c = cli(home);
    c.env("COFFER_ADDR", addr);
    c
}

#[test]
fn init_then_unseal_share_by_share() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, addr) = config(dir.path(), None);
    let s = Server::start_config(&cfg, addr.clone());
    let home = s.home.path();

    Run::of(at(home, &addr).args(["operator", "init", "-status"])).code(2);

    let init = Run::of(at(home, &addr).args([
        "operator",
        "init",
        "-key-shares=3",
        "-key-threshold=2",
        "-format=json",
    ]))
    .ok()
    .json();
    let keys: Vec<String> = init["unseal_keys_b64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 3);
    assert_eq!(init["unseal_keys_hex"].as_array().unwrap().len(), 3);
    assert_eq!(init["unseal_threshold"], json!(2));
    let root = init["root_token"].as_str().unwrap().to_owned();
    assert!(!root.is_empty());

    Run::of(at(home, &addr).args(["operator", "init", "-status"])).ok();
    // Initialised but sealed: status exits 2.
    let st = Run::of(at(home, &addr).args(["status", "-format=json"]))
        .code(2)
        .json();
    assert_eq!(st["sealed"], json!(true));
    assert_eq!(st["t"], json!(2));

    // One share: still sealed, progress 1/2; -reset discards it.
    let one = Run::of(at(home, &addr).args(["operator", "unseal", &keys[0]])).ok();
    assert!(one.stdout.contains("Unseal Progress    1/2\n"), "{one:#?}");
    let reset = Run::of(at(home, &addr).args(["operator", "unseal", "-reset", "-format=json"]))
        .ok()
        .json();
    assert_eq!(reset["progress"], json!(0));

    // A share on stdin (not a terminal), then a second as an argument.
    Run::with_stdin(
        at(home, &addr).args(["operator", "unseal"]),
        &format!("{}\n", keys[1]),
    )
    .ok();
    let done = Run::of(at(home, &addr).args(["operator", "unseal", "-format=json", &keys[2]]))
        .ok()
        .json();
    assert_eq!(done["sealed"], json!(false));
    Run::of(at(home, &addr).arg("status")).ok();

    // The root token works; sealing needs it.
    Run::of(at(home, &addr).args(["operator", "seal"])).code(2);
    Run::of(
        at(home, &addr)
            .env("COFFER_TOKEN", &root)
            .args(["operator", "seal"]),
    )
    .ok();
    Run::of(at(home, &addr).arg("status")).code(2);
}

#[test]
fn table_init_prints_shares_and_root_token() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, addr) = config(dir.path(), None);
    let s = Server::start_config(&cfg, addr.clone());
    let home = s.home.path();
    let out =
        Run::of(at(home, &addr).args(["operator", "init", "-key-shares=2", "-key-threshold=2"]))
            .ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    let keys: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("Unseal Key "))
        .collect();
    assert_eq!(keys.len(), 2, "{out:#?}");
    assert!(lines[0].starts_with("Unseal Key 1: "), "{out:#?}");
    assert!(lines[1].starts_with("Unseal Key 2: "), "{out:#?}");
    let root = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Initial Root Token: "))
        .unwrap();
    assert!(!root.is_empty());
    for (i, line) in lines[..2].iter().enumerate() {
        let key = line.split_once(": ").unwrap().1;
        let st: Value = Run::of(at(home, &addr).args(["operator", "unseal", "-format=json", key]))
            .ok()
            .json();
        assert_eq!(st["sealed"], json!(i == 0), "after share {}", i + 1);
    }
    // The printed root token is a working token.
    Run::of(
        at(home, &addr)
            .env("COFFER_TOKEN", root)
            .args(["operator", "key-status"]),
    )
    .ok();
}

#[test]
fn tls_is_verified_against_the_given_ca() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let gen = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args([
            "-days",
            "1",
            "-subj",
            "/CN=coffer-test",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ])
        .output()
        .expect("openssl is needed to make a test certificate");
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );
    let (cfg, addr) = config(
        dir.path(),
        Some((cert.to_str().unwrap(), key.to_str().unwrap())),
    );
    let s = Server::start_config(&cfg, addr.clone());
    let home = s.home.path();

    // Unknown CA: the connection fails (exit 1 for status).
    Run::of(at(home, &addr).arg("status")).code(1);
    // Trusted through the environment, the flag, or skipped verification.
    Run::of(at(home, &addr).env("COFFER_CACERT", &cert).arg("status")).code(2);
    Run::of(at(home, &addr).env("VAULT_CACERT", &cert).arg("status")).code(2);
    Run::of(at(home, &addr).arg("status").arg("-ca-cert").arg(&cert)).code(2);
    Run::of(
        at(home, &addr)
            .env("COFFER_SKIP_VERIFY", "true")
            .arg("status"),
    )
    .code(2);
    // A CA file that is not PEM is a configuration error, not a silent pass.
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    Run::of(at(home, &addr).env("COFFER_CACERT", &junk).arg("status")).code(1);
}

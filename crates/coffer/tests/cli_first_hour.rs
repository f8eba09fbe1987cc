//! The first hour of a new user: server start failures that must stop the
//! server at once with a reason, a self-signed `openssl req -x509`
//! certificate pinned with `COFFER_CACERT`, and CLI errors that say what
//! went wrong and what to do.

mod cli_support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cli_support::{cli, free_addr, unique, Run, Server};

/// Runs `coffer server ARGS` and waits at most `limit` for it to exit;
/// returns its exit code and stderr (killing it and failing if it hangs).
fn server_exit(args: &[&str], limit: Duration) -> (i32, String, String) {
    let child = Command::new(cli_support::BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, out, err) = wait_exit(child, limit);
    (
        code.unwrap_or_else(|| panic!("server {args:?} still running after {limit:?}: {err}")),
        out,
        err,
    )
}

/// Waits for `child` to exit within `limit` (killing it otherwise: `None`).
fn wait_exit(mut child: Child, limit: Duration) -> (Option<i32>, String, String) {
    let deadline = Instant::now() + limit;
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |r: Option<&mut dyn std::io::Read>| {
        let mut s = String::new();
        if let Some(r) = r {
            let _ = r.read_to_string(&mut s);
        }
        s
    };
    let out = read(child.stdout.as_mut().map(|o| o as &mut dyn std::io::Read));
    let err = read(child.stderr.as_mut().map(|e| e as &mut dyn std::io::Read));
    (code, out, err)
}

/// A configuration file for a TLS listener on `addr` with `cert` and `key`.
fn tls_config(dir: &Path, addr: &str, cert: &Path, key: &Path) -> std::path::PathBuf {
    let path = dir.join(format!("{}.toml", unique("config")));
    std::fs::write(
        &path,
        format!(
            "[storage.inmem]\n[listener.tcp]\naddress = \"{addr}\"\n\
             tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    path
}

/// A self-signed certificate and key made by `openssl req -x509` (CA:TRUE,
/// as OpenSSL makes them) for `san`, or `None` when openssl is missing.
fn openssl_cert(
    dir: &Path,
    name: &str,
    san: &str,
) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=coffer-test", "-addext"])
        .arg(format!("subjectAltName={san}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => Some((cert, key)),
        Ok(o) => panic!("openssl req failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            eprintln!("openssl not runnable ({e}): skipping");
            None
        }
    }
}

#[test]
fn bad_tls_files_stop_the_server_at_once_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &str| {
        let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let cert = dir.path().join(format!("{name}.crt"));
        let key = dir.path().join(format!("{name}.key"));
        std::fs::write(&cert, c.cert.pem()).unwrap();
        std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
        (cert, key)
    };
    let (cert, _) = make("good");
    let (_, other_key) = make("other");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "this is not PEM\n").unwrap();
    let missing = dir.path().join("missing.crt");
    for (what, cert, key, named, reason) in [
        (
            "missing cert",
            &missing,
            &other_key,
            "missing.crt",
            "No such file",
        ),
        (
            "non-PEM cert",
            &junk,
            &other_key,
            "junk.pem",
            "no PEM certificate",
        ),
        (
            "non-PEM key",
            &cert,
            &junk,
            "junk.pem",
            "no PEM private key",
        ),
        (
            "mismatched key",
            &cert,
            &other_key,
            "other.key",
            "does not fit",
        ),
    ] {
        let config = tls_config(dir.path(), &free_addr(), cert, key);
        let started = Instant::now();
        let (code, out, err) = server_exit(
            &["server", "--config", config.to_str().unwrap()],
            Duration::from_secs(2),
        );
        assert_ne!(code, 0, "{what}: {err}");
        assert!(err.contains(named) && err.contains(reason), "{what}: {err}");
        assert!(!out.contains("server started"), "{what}: {out}");
        assert!(started.elapsed() < Duration::from_secs(2), "{what}");
    }
}

#[test]
fn other_start_failures_exit_at_once_and_sigterm_never_hangs() {
    let dir = tempfile::tempdir().unwrap();
    // The port is taken: dev and configured servers say so and exit,
    // and the dev server prints no "started" banner first.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, out, err) = server_exit(
        &["server", "--dev", "--dev-listen-address", &addr],
        Duration::from_secs(5),
    );
    assert_ne!(code, 0, "{err}");
    assert!(err.contains(&addr) && err.contains("in use"), "{err}");
    assert!(!out.contains("server started"), "{out}");
    let config = dir.path().join("plain.toml");
    std::fs::write(
        &config,
        format!("[storage.inmem]\n[listener.tcp]\naddress = \"{addr}\"\ntls_disable = true\n"),
    )
    .unwrap();
    let (code, _, err) = server_exit(
        &["server", "--config", config.to_str().unwrap()],
        Duration::from_secs(5),
    );
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("in use"), "{err}");
    drop(taken);

    // Storage in a directory the server cannot create.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let db = blocker.join("sub").join("coffer.db");
    let (code, _, err) = server_exit(
        &[
            "server",
            "--dev",
            "--dev-listen-address",
            &free_addr(),
            "--dev-storage",
            db.to_str().unwrap(),
        ],
        Duration::from_secs(5),
    );
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("storage"), "{err}");

    // A running server ends promptly on SIGTERM.
    let addr = free_addr();
    let child = Command::new(cli_support::BIN)
        .args(["server", "--dev", "--dev-listen-address", &addr])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "dev server never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (code, _, err) = wait_exit(child, Duration::from_secs(5));
    assert_eq!(code, Some(0), "SIGTERM: {err}");
    // The log is plain text when it is not a terminal.
    assert!(
        !err.contains('\u{1b}'),
        "ANSI codes in a piped log: {err:?}"
    );
}

#[test]
fn a_pinned_openssl_self_signed_certificate_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let Some((cert, key)) = openssl_cert(dir.path(), "server", "IP:127.0.0.1") else {
        return;
    };
    let addr = free_addr();
    let config = tls_config(dir.path(), &addr, &cert, &key);
    let server = Server::start_config(&config, format!("https://{addr}"));
    let status = |setup: &dyn Fn(&mut Command)| {
        let mut c = cli(server.home.path());
        c.env("COFFER_ADDR", &server.addr);
        c.args(["status", "-format=json"]);
        setup(&mut c);
        Run::of(&mut c)
    };
    // Sealed and uninitialised: exit 2 with the status, so TLS worked.
    for setup in [
        &(|c: &mut Command| {
            c.env("COFFER_CACERT", &cert);
        }) as &dyn Fn(&mut Command),
        &|c: &mut Command| {
            c.env("VAULT_CACERT", &cert);
        },
        &|c: &mut Command| {
            c.arg("-ca-cert").arg(&cert);
        },
    ] {
        let run = status(setup).code(2);
        assert_eq!(run.json()["initialized"], false, "{run:#?}");
    }
    // Not pinned: refused, with a hint to pin it.
    let run = status(&|_| {}).code(1);
    assert!(run.stderr.contains("COFFER_CACERT"), "{run:#?}");
    // Pinned, but the address names a host the certificate does not.
    let port = addr.rsplit(':').next().unwrap();
    let run = status(&|c: &mut Command| {
        c.env("COFFER_CACERT", &cert)
            .env("COFFER_ADDR", format!("https://localhost:{port}"));
    })
    .code(1);
    assert!(run.stderr.contains("not valid for name"), "{run:#?}");
    assert!(run.stderr.contains("does not name the host"), "{run:#?}");
    // Another self-signed certificate pinned instead: refused.
    let (other, _) = openssl_cert(dir.path(), "other", "IP:127.0.0.1").unwrap();
    status(&|c: &mut Command| {
        c.env("COFFER_CACERT", &other);
    })
    .code(1);
}

/// A dev server holding `secret/app` with versions 1 and 2 (`a=1`, `a=2`).
fn server_with_app() -> Server {
    let s = Server::start();
    s.run(&["kv", "put", "secret/app", "a=1"]).ok();
    s.run(&["kv", "put", "secret/app", "a=2"]).ok();
    s
}

#[test]
fn rotate_without_a_rotator_says_why_and_how() {
    let s = server_with_app();
    let r = s.run(&["rotate", "secret/app"]).code(2);
    assert!(
        r.stderr.contains("no lifecycle record") && r.stderr.contains("secret set -rotator"),
        "{r:#?}"
    );
    assert!(!r.stderr.contains("No error messages"), "{r:#?}");
}

#[test]
fn destroyed_and_deleted_versions_are_explained() {
    // Metadata and exit 0, as `bao kv get` does, plus a note on stderr.
    let s = server_with_app();
    s.run(&["kv", "destroy", "-versions=1", "secret/app"]).ok();
    let r = s.run(&["kv", "get", "-version=1", "secret/app"]).ok();
    assert!(r.stdout.contains("destroyed          true"), "{r:#?}");
    assert!(
        r.stderr.contains("Version 1 of secret/app is destroyed"),
        "{r:#?}"
    );
    s.run(&["kv", "delete", "secret/app"]).ok();
    let r = s.run(&["kv", "get", "secret/app"]).ok();
    assert!(
        r.stderr.contains("is deleted") && r.stderr.contains("kv undelete -versions=2"),
        "{r:#?}"
    );
}

#[test]
fn kv_get_takes_a_stage() {
    let s = server_with_app();
    let r = s
        .run(&["kv", "get", "-stage=previous", "secret/app"])
        .code(2);
    assert!(r.stderr.contains("stage \"previous\""), "{r:#?}");
    let r = s
        .run(&["kv", "get", "-stage=current", "-field=a", "secret/app"])
        .ok();
    assert_eq!(r.stdout, "2");
}

#[test]
fn a_compromised_secret_not_rotated_is_a_failure() {
    let s = server_with_app();
    let r = s
        .run(&["revoke", "--compromised", "secret/app", "--reason", "leak"])
        .code(2);
    assert!(r.stdout.contains("Rotated           NO"), "{r:#?}");
    assert!(
        r.stderr.contains("was NOT rotated") && r.stderr.contains("leaked value"),
        "{r:#?}"
    );
}

#[test]
fn secret_set_refuses_a_path_without_a_secret() {
    let s = server_with_app();
    let r = s
        .run(&["secret", "set", "-owner=ana", "secret/typo"])
        .code(2);
    assert!(
        r.stderr.contains("no secret at secret/typo") && r.stderr.contains("kv put"),
        "{r:#?}"
    );
    s.run(&["secret", "show", "secret/typo"]).code(2);
    s.run(&["secret", "set", "-owner=ana", "secret/app"]).ok();
}

#[test]
fn flags_read_as_vault_writes_them() {
    let s = Server::start();
    let r = s.run(&["kv", "get", "-bogus", "secret/app"]).code(1);
    assert!(r.stderr.contains("'-bogus'"), "{r:#?}");
    s.run(&["write", "-f", "sys/rotate"]).ok();
}

#[test]
fn missing_token_and_wrong_scheme_are_named() {
    let s = Server::start();
    let r =
        Run::of(
            cli(s.home.path())
                .env("COFFER_ADDR", &s.addr)
                .args(["kv", "get", "secret/app"]),
        )
        .code(2);
    assert!(
        r.stderr.contains("permission denied")
            && r.stderr.contains("COFFER_TOKEN")
            && r.stderr.contains("coffer login"),
        "{r:#?}"
    );
    // https:// against the http:// dev server: name the likely cause.
    let https = s.addr.replacen("http://", "https://", 1);
    let r = Run::of(
        s.cmd()
            .env("COFFER_ADDR", &https)
            .args(["kv", "get", "secret/app"]),
    )
    .code(2);
    assert!(
        r.stderr.contains(&format!("COFFER_ADDR={}", s.addr)),
        "{r:#?}"
    );
    let r = Run::of(s.cmd().env("COFFER_ADDR", &https).arg("status")).code(1);
    assert!(r.stderr.contains("plain http://"), "{r:#?}");
}

#[test]
fn errors_use_coffers_name() {
    let s = Server::start();
    let r = s.run(&["operator", "init"]).code(2);
    assert!(r.stderr.contains("Coffer is already initialized"), "{r:#?}");
}

#[test]
fn certificate_ip_sans_show_as_addresses() {
    let s = Server::start();
    let c =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "db.example".into()]).unwrap();
    let pem = c.cert.pem();
    s.run(&["kv", "put", "secret/tls", &format!("cert={pem}")])
        .ok();
    s.run(&["secret", "set", "-type=certificate", "secret/tls"])
        .ok();
    let show = s
        .run(&["secret", "show", "-format=json", "secret/tls"])
        .ok()
        .json();
    let sans = &show["data"]["certificate"]["sans"];
    assert_eq!(
        sans,
        &serde_json::json!(["127.0.0.1", "db.example"]),
        "{show}"
    );
}

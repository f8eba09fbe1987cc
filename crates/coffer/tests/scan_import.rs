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
    // A URL's password: the whole URL is stored and replaced by one reference.
    assert!(
        rewritten.contains("DB = \"coffer://secret/app/database-url-password-"),
        "{rewritten}"
    );
    let url = format!("postgres://app:{pw}@db.internal/app");
    for (rule, want) in [
        ("stripe-secret-key", key.as_str()),
        ("database-url-password", url.as_str()),
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
        assert_eq!(cm["origin"], "imported");
        if rule == "stripe-secret-key" {
            assert_eq!(cm["secret_type"], "api_key");
            assert_eq!(cm["vendor"], "Stripe");
        } else {
            assert_eq!(cm["secret_type"], "db_credential");
            assert_eq!(cm["value_format"], "url");
            assert_eq!(cm["secret_part"], "password");
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

fn put(server: &Server, path: &str, body: serde_json::Value) {
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/v1/{path}", server.addr))
        .header("X-Vault-Token", &server.token)
        .json(&body)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// A tree planting symlinks where `--rewrite` writes: neither the file a
/// symlink points to outside the tree nor its mode may change.
#[cfg(unix)]
#[test]
fn rewrite_never_writes_through_symlinks() {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let server = start_server();
    let tree = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(91);
    let key = expand("sk_live_<<alnum:24>>", &mut rng, 1.0);
    let key2 = expand("sk_live_<<alnum:24>>", &mut rng, 1.0);

    // The victim: a file outside the tree, mode 0644.
    let victim = outside.path().join("bashrc");
    let victim_text = "export PATH=$PATH:/opt/bin\n";
    std::fs::write(&victim, victim_text).unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    // The scanned file, mode 0777, and links named like a temporary file
    // of the rewrite (both spellings: with and without its extension).
    let src = format!("STRIPE_KEY = \"{key}\"\n");
    let settings = tree.path().join("settings.py");
    std::fs::write(&settings, &src).unwrap();
    std::fs::set_permissions(&settings, std::fs::Permissions::from_mode(0o777)).unwrap();
    for name in [
        "settings.coffer-rewrite.tmp",
        "settings.py.coffer-rewrite.tmp",
    ] {
        symlink(&victim, tree.path().join(name)).unwrap();
    }
    // A scanned file that is itself a symlink to a file outside the tree.
    let linked_target = outside.path().join("secrets.py");
    let linked_text = format!("STRIPE_KEY = \"{key2}\"\n");
    std::fs::write(&linked_target, &linked_text).unwrap();
    std::fs::set_permissions(&linked_target, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = tree.path().join("link.py");
    symlink(&linked_target, &link).unwrap();

    let o = scan(
        tree.path(),
        &server,
        &server.token,
        &["--import", "secret/app", "--rewrite", ".", "link.py"],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        !out.contains(&key) && !out.contains(&key2),
        "secret printed"
    );
    // Outside the tree: nothing changed.
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), victim_text);
    assert_eq!(mode(&victim), 0o644);
    assert_eq!(
        std::fs::read_to_string(&linked_target).unwrap(),
        linked_text
    );
    assert_eq!(mode(&linked_target), 0o600);
    // The link is still a link, and the CLI says why it was skipped.
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(
        out.contains("not rewritten link.py") && out.contains("symbolic link"),
        "{out}"
    );
    // The regular file was rewritten in place and kept its mode.
    let rewritten = std::fs::read_to_string(&settings).unwrap();
    assert!(
        rewritten.starts_with("STRIPE_KEY = \"coffer://secret/app/stripe-secret-key-"),
        "{rewritten}"
    );
    assert_eq!(mode(&settings), 0o777);
    for name in [
        "settings.coffer-rewrite.tmp",
        "settings.py.coffer-rewrite.tmp",
    ] {
        let p = tree.path().join(name);
        assert!(std::fs::symlink_metadata(&p)
            .unwrap()
            .file_type()
            .is_symlink());
    }
    // No temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(tree.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    // Some literal was left in place (the link's): the run reports failure.
    assert_eq!(o.status.code(), Some(2), "{out}");
}

const CORP_RULE: &str = r#"regex = '''corp_live_[a-z0-9]{24}'''
keywords = ["corp_live_"]
description = "corp token"
"#;

/// A scanned repository's own `.coffer-scan.toml` cannot steer `--import`
/// to another secret: an id with `/` or `?` is refused, an id in gitleaks'
/// looser style is normalised, and the destination printed is the one
/// written.
#[test]
fn hostile_rule_ids_cannot_choose_the_destination() {
    let server = start_server();
    let dir = tempfile::tempdir().unwrap();
    let token = expand("corp_live_<<lalnum:24>>", &mut Rng::new(5), 1.0);
    std::fs::write(dir.path().join("app.py"), format!("TOKEN = \"{token}\"\n")).unwrap();
    // The secret the attacker aims at.
    let original = expand("<<alnum:30>>", &mut Rng::new(6), 1.0);
    put(
        &server,
        "secret/data/leaked/prod/payments/stripe",
        serde_json::json!({"data": {"value": original}}),
    );
    let config = dir.path().join(".coffer-scan.toml");
    for id in [
        "prod/payments/stripe?",
        "prod/payments/stripe#",
        "../stripe",
        "a b",
    ] {
        std::fs::write(&config, format!("[[rules]]\nid = {id:?}\n{CORP_RULE}")).unwrap();
        let o = scan(
            dir.path(),
            &server,
            &server.token,
            &["--import", "secret/leaked", "."],
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{id}: {err}");
        assert!(err.contains(&format!("{id:?}")), "{id}: {err}");
        let meta = get(&server, "secret/metadata/leaked/prod/payments/stripe");
        assert_eq!(meta["data"]["current_version"], 1, "{id}: {meta}");
        let data = get(&server, "secret/data/leaked/prod/payments/stripe");
        assert_eq!(data["data"]["data"]["value"], original.as_str());
    }

    // Upper case and underscores (common in gitleaks configs): normalised.
    std::fs::write(
        &config,
        format!("[[rules]]\nid = \"Corp_Live\"\n{CORP_RULE}"),
    )
    .unwrap();
    let o = scan(
        dir.path(),
        &server,
        &server.token,
        &["--import", "secret/leaked", "."],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("stored app.py:1 (Corp_Live) at "))
        .unwrap_or_else(|| panic!("{out}"));
    let dest = line.rsplit(" at ").next().unwrap();
    assert!(dest.starts_with("secret/leaked/corp-live-"), "{dest}");
    let path = dest.strip_prefix("secret/").unwrap();
    let data = get(&server, &format!("secret/data/{path}"));
    assert_eq!(data["data"]["data"]["value"], token.as_str(), "{dest}");
    assert!(
        out.contains(&format!("with coffer://{dest}#value")),
        "{out}"
    );

    // Run again: the same value is already there; it is not written again.
    let o = scan(
        dir.path(),
        &server,
        &server.token,
        &["--import", "secret/leaked", "."],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!("unchanged app.py:1 (Corp_Live) at {dest}")),
        "{out}"
    );
    let meta = get(&server, &format!("secret/metadata/{path}"));
    assert_eq!(meta["data"]["current_version"], 1, "{meta}");

    // Another value at the destination: never overwritten, nothing rewritten.
    let other = expand("<<alnum:30>>", &mut Rng::new(8), 1.0);
    put(
        &server,
        &format!("secret/data/{path}"),
        serde_json::json!({"data": {"value": other}}),
    );
    let o = scan(
        dir.path(),
        &server,
        &server.token,
        &["--import", "secret/leaked", "--rewrite", "."],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(
        out.contains(&format!(
            "not stored app.py:1 (Corp_Live): {dest} already exists"
        )),
        "{out}"
    );
    assert!(!out.contains(&other) && !out.contains(&token), "{out}");
    let data = get(&server, &format!("secret/data/{path}"));
    assert_eq!(data["data"]["data"]["value"], other.as_str());
    assert_eq!(data["data"]["metadata"]["version"], 2);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("app.py")).unwrap(),
        format!("TOKEN = \"{token}\"\n")
    );

    // The import target itself is checked too.
    for target in [
        "secret/a/../b",
        "secret/a?b",
        "secret//a",
        "secret/a#b",
        "secret/a%2fb",
    ] {
        let o = scan(
            dir.path(),
            &server,
            &server.token,
            &["--import", target, "."],
        );
        assert_eq!(o.status.code(), Some(2), "{target}");
    }
}

/// The first hour of a new user (issue 17, item 1): a URL's password is
/// moved as the whole URL, one value found twice becomes one secret with
/// both sites rewritten to it, re-running changes nothing, references are
/// never findings, and the imported secrets are in the lifecycle inventory.
#[test]
fn import_moves_whole_urls_dedupes_is_idempotent_and_fills_the_inventory() {
    let server = start_server();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(1717);
    let key = expand("sk_live_<<alnum:24>>", &mut rng, 1.0);
    let pw = expand("<<alnum:10>>7<<alnum:8>>", &mut rng, 1.0);
    let url = format!("postgres://billing:{pw}@db.internal:5432/billing?sslmode=require");
    std::fs::create_dir(dir.path().join("config")).unwrap();
    let env = format!("DATABASE_URL={url}\nSTRIPE_KEY={key}\n");
    std::fs::write(dir.path().join(".env"), &env).unwrap();
    let py = format!("import os\nstripe.api_key = \"{key}\"\n");
    std::fs::write(dir.path().join("config/pay.py"), &py).unwrap();
    let import = |extra: &[&str]| {
        let mut a = vec!["--import", "secret/app"];
        a.extend_from_slice(extra);
        a.push(".");
        let o = scan(dir.path(), &server, &server.token, &a);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            !out.contains(&key) && !out.contains(&pw),
            "secret printed: {out}"
        );
        (o.status.code(), out)
    };

    let (code, out) = import(&[]);
    assert_eq!(code, Some(1), "{out}");
    let stripe_line = out
        .lines()
        .find(|l| l.contains("(stripe-secret-key)"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        stripe_line.starts_with(
            "stored .env:2, config/pay.py:2 (stripe-secret-key) at secret/app/stripe-secret-key-"
        ),
        "{out}"
    );
    assert_eq!(out.matches("(stripe-secret-key)").count(), 1, "{out}");
    assert!(
        out.contains("(database-url-password) at secret/app/database-url-password-")
            && out.contains("(the whole URL: its password is part of it)"),
        "{out}"
    );
    let dest = |rule: &str| {
        let line = out
            .lines()
            .find(|l| l.contains(&format!("({rule})")))
            .unwrap();
        let d = line.split(" at ").nth(1).unwrap();
        d.split(' ').next().unwrap().to_string()
    };
    let (stripe, db) = (dest("stripe-secret-key"), dest("database-url-password"));
    let data = |d: &str| get(&server, &d.replacen("secret/", "secret/data/", 1));
    assert_eq!(data(&stripe)["data"]["data"]["value"], key.as_str());
    assert_eq!(data(&db)["data"]["data"]["value"], url.as_str());

    // Again: nothing written, said so.
    let (code, out) = import(&[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "unchanged .env:2, config/pay.py:2 (stripe-secret-key) at {stripe}"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("unchanged .env:1 (database-url-password) at {db}")),
        "{out}"
    );
    for d in [&stripe, &db] {
        assert_eq!(data(d)["data"]["metadata"]["version"], 1, "{d}");
    }

    // Rewrite: the URL becomes one reference; both Stripe sites the same one.
    let (code, out) = import(&["--rewrite"]);
    assert_eq!(code, Some(1), "{out}");
    let env_now = std::fs::read_to_string(dir.path().join(".env")).unwrap();
    assert_eq!(
        env_now,
        format!("DATABASE_URL=coffer://{db}#value\nSTRIPE_KEY=coffer://{stripe}#value\n")
    );
    let py_now = std::fs::read_to_string(dir.path().join("config/pay.py")).unwrap();
    assert_eq!(
        py_now,
        format!("import os\nstripe.api_key = \"coffer://{stripe}#value\"\n")
    );
    for d in [&stripe, &db] {
        assert_eq!(data(d)["data"]["metadata"]["version"], 1, "{d}");
    }
    // References are never findings.
    let o = scan(dir.path(), &server, &server.token, &["."]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // Both are in the lifecycle inventory: owner unknown, type, vendor, origin.
    let inv = get(&server, "sys/coffer/inventory");
    let rows = inv["data"]["secrets"].as_array().unwrap();
    let row = |d: &str| {
        rows.iter()
            .find(|r| r["path"] == d)
            .unwrap_or_else(|| panic!("{d} not in {inv}"))
    };
    assert_eq!(row(&stripe)["owner"], "");
    assert_eq!(row(&stripe)["secret_type"], "api_key");
    assert_eq!(row(&stripe)["origin"], "imported");
    assert_eq!(row(&stripe)["vendor"], "Stripe");
    assert_eq!(row(&db)["secret_type"], "db_credential");
    let home = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["secret", "list"])
        .env("HOME", home.path())
        .env("COFFER_ADDR", &server.addr)
        .env("COFFER_TOKEN", &server.token)
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&o.stdout);
    let line = table
        .lines()
        .find(|l| l.starts_with(stripe.as_str()))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        line.contains("(unknown)") && line.contains("imported (Stripe)"),
        "{table}"
    );
}

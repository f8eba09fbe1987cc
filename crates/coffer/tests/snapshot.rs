//! Snapshots (backups) on real server processes: `coffer operator snapshot
//! save/restore` and `bao operator raft snapshot save/restore` against
//! `sys/storage/raft/snapshot[-force]`, on SQLite and on PostgreSQL.
//!
//! Save, change and delete, restore, unseal, read the old values back; a
//! snapshot of another store refused without `-force` and installed with
//! it; corrupt and truncated files refused with nothing lost; a token
//! without `sudo` refused; no plaintext value in a snapshot; the audit trail
//! holding each save and restore; other PostgreSQL nodes sealed by a
//! restore. The PostgreSQL test needs `COFFER_TEST_PG_URL` (tables of its
//! own) and skips without it.

mod cli_support;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use cli_support::{bao, bao_at, free_port, random_hex, start_initialised, unique, Api, Server};
use serde_json::{json, Value};

/// A store with a KV v2 mount at `secret/` and a file audit device.
fn prepare(api: &Api) {
    api.root(
        "POST",
        "sys/mounts/secret",
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    );
    api.root(
        "PUT",
        "sys/audit/file",
        Some(json!({"type": "file", "options": {"file_path": "audit.log"}})),
    );
}

fn write(api: &Api, path: &str, value: &str) {
    api.root(
        "POST",
        &format!("secret/data/{path}"),
        Some(json!({"data": {"value": value}})),
    );
}

/// The current value of `secret/<path>` (None when absent).
fn read(api: &Api, token: &str, path: &str) -> Option<String> {
    let (st, v) = api.call("GET", &format!("secret/data/{path}"), Some(token), None);
    match st {
        200 => Some(v["data"]["data"]["value"].as_str().unwrap().to_owned()),
        404 => None,
        other => panic!("read {path}: {other} {v}"),
    }
}

fn sealed(api: &Api) -> bool {
    let (st, v) = api.call("GET", "sys/seal-status", None, None);
    assert_eq!(st, 200, "{v}");
    v["sealed"].as_bool().unwrap()
}

fn unseal(api: &Api, keys: &[String]) {
    for k in keys {
        let (st, v) = api.call("PUT", "sys/unseal", None, Some(json!({ "key": k })));
        assert_eq!(st, 200, "{v}");
        if v["sealed"] == json!(false) {
            return;
        }
    }
    panic!("still sealed after every key");
}

/// The bytes of a snapshot file and of everything inside it, uncompressed.
fn snapshot_bytes(file: &Path) -> (Vec<u8>, Vec<u8>) {
    let raw = std::fs::read(file).unwrap();
    let mut inner = Vec::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_end(&mut inner)
        .unwrap();
    (raw, inner)
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The audit log's lines (JSON objects).
fn audit_lines(dir: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("audit").join("audit.log")).unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn has_event(lines: &[Value], name: &str) -> bool {
    lines.iter().any(|l| l["event"] == json!(name))
}

#[test]
fn sqlite_snapshot_save_change_restore_unseal_reads_the_old_values() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _cfg, keys) = start_initialised(dir.path(), 3, 2);
    let api = Api::new(&s);
    prepare(&api);
    let kept = format!("value-{}", random_hex(16));
    let doomed = format!("value-{}", random_hex(16));
    write(&api, "kept", &kept);
    write(&api, "doomed", &doomed);
    // A token and a policy from before the snapshot.
    api.root(
        "PUT",
        "sys/policies/acl/reader",
        Some(json!({"policy": "path \"secret/data/*\" { capabilities = [\"read\"] }"})),
    );
    let (st, t) = api.call(
        "POST",
        "auth/token/create",
        Some(&s.token),
        Some(json!({"policies": ["reader"], "ttl": "1h"})),
    );
    assert_eq!(st, 200, "{t}");
    let old_token = t["auth"]["client_token"].as_str().unwrap().to_owned();

    let file = dir.path().join("backup.snap");
    let out = s.run(&["operator", "snapshot", "save", file.to_str().unwrap()]);
    let out = out.ok();
    assert!(out.stdout.contains("Success! Saved a snapshot"), "{out:?}");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the snapshot file is private");
    // Ciphertext only: no value, compressed or not.
    let (raw, inner) = snapshot_bytes(&file);
    for v in [&kept, &doomed] {
        assert!(!contains(&raw, v), "a plaintext value in the snapshot file");
        assert!(
            !contains(&inner, v),
            "a plaintext value inside the snapshot"
        );
    }
    assert!(
        !contains(&inner, &s.token),
        "the root token inside the snapshot"
    );
    assert!(contains(&inner, "core/keyring") && contains(&inner, "core/seal-config"));

    // Everything changes after the snapshot.
    let newer = format!("value-{}", random_hex(16));
    write(&api, "kept", &newer);
    api.root("DELETE", "secret/metadata/doomed", None);
    write(&api, "born-later", &newer);
    api.root(
        "PUT",
        "sys/policies/acl/reader",
        Some(json!({"policy": "path \"nothing/*\" { capabilities = [\"read\"] }"})),
    );
    let (st, t) = api.call(
        "POST",
        "auth/token/create",
        Some(&s.token),
        Some(json!({"policies": ["default"], "ttl": "1h"})),
    );
    assert_eq!(st, 200, "{t}");
    let later_token = t["auth"]["client_token"].as_str().unwrap().to_owned();
    assert_eq!(
        read(&api, &s.token, "kept").as_deref(),
        Some(newer.as_str())
    );
    let (st, _) = api.call("GET", "secret/data/kept", Some(&old_token), None);
    assert_eq!(st, 403, "the tightened policy refuses it now");

    let out = s
        .run(&["operator", "snapshot", "restore", file.to_str().unwrap()])
        .ok();
    assert!(out.stdout.contains("The server is sealed"), "{out:?}");
    assert!(sealed(&api), "a restore leaves the server sealed");
    let (st, _) = api.call("GET", "secret/data/kept", Some(&s.token), None);
    assert_eq!(st, 503);
    unseal(&api, &keys[1..3]);

    // The old state, every cache included: values, the deleted secret,
    // the policy, the tokens.
    assert_eq!(read(&api, &s.token, "kept").as_deref(), Some(kept.as_str()));
    assert_eq!(
        read(&api, &s.token, "doomed").as_deref(),
        Some(doomed.as_str())
    );
    assert_eq!(read(&api, &s.token, "born-later"), None);
    assert_eq!(
        read(&api, &old_token, "kept").as_deref(),
        Some(kept.as_str()),
        "the policy is back as it was"
    );
    let (st, v) = api.call("GET", "auth/token/lookup-self", Some(&later_token), None);
    assert_eq!(st, 403, "a token made after the snapshot is gone: {v}");
    // The store goes on.
    write(&api, "after-restore", "x");

    // Both are in the audit trail, through the ordinary request path.
    let lines = audit_lines(dir.path());
    assert!(
        has_event(&lines, "snapshot_saved"),
        "no snapshot_saved event"
    );
    assert!(
        has_event(&lines, "snapshot_restored"),
        "no snapshot_restored event"
    );
    let requests = lines
        .iter()
        .filter(|l| {
            l["type"] == json!("request")
                && l["request"]["path"] == json!("sys/storage/raft/snapshot")
        })
        .count();
    assert!(
        requests >= 2,
        "save and restore requests audited: {requests}"
    );
    let audit_text = std::fs::read_to_string(dir.path().join("audit").join("audit.log")).unwrap();
    assert!(!audit_text.contains(&kept), "a value in the audit log");
}

#[test]
fn a_snapshot_of_another_store_needs_force_and_then_opens_with_its_keys() {
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let (a, _, a_keys) = start_initialised(a_dir.path(), 1, 1);
    let (b, _, _b_keys) = start_initialised(b_dir.path(), 1, 1);
    let (a_api, b_api) = (Api::new(&a), Api::new(&b));
    prepare(&a_api);
    prepare(&b_api);
    let a_value = format!("value-{}", random_hex(16));
    let b_value = format!("value-{}", random_hex(16));
    write(&a_api, "app", &a_value);
    write(&b_api, "app", &b_value);
    let file = a_dir.path().join("a.snap");
    a.run(&["operator", "snapshot", "save", file.to_str().unwrap()])
        .ok();

    // Without force: refused, B untouched and still unsealed.
    let out = b.run(&["operator", "snapshot", "restore", file.to_str().unwrap()]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("Code: 400"), "{out:?}");
    assert!(out.stderr.contains("another store"), "{out:?}");
    assert!(out.stderr.contains("snapshot-force"), "{out:?}");
    assert!(!sealed(&b_api));
    assert_eq!(
        read(&b_api, &b.token, "app").as_deref(),
        Some(b_value.as_str())
    );

    // With force: B becomes A's store, and opens with A's keys only.
    b.run(&[
        "operator",
        "snapshot",
        "restore",
        "-force",
        file.to_str().unwrap(),
    ])
    .ok();
    assert!(sealed(&b_api));
    unseal(&b_api, &a_keys);
    assert_eq!(
        read(&b_api, &a.token, "app").as_deref(),
        Some(a_value.as_str())
    );
    let (st, _) = b_api.call("GET", "secret/data/app", Some(&b.token), None);
    assert_eq!(st, 403, "B's own root token belonged to the replaced store");
    // A snapshot taken from B now is A's again: it restores on A unforced.
    let again = b_dir.path().join("b-now.snap");
    let mut save = cli_support::cli(b.home.path());
    save.args(["operator", "snapshot", "save", again.to_str().unwrap()])
        .env("COFFER_ADDR", &b.addr)
        .env("COFFER_TOKEN", &a.token);
    cli_support::Run::of(&mut save).ok();
    a.run(&["operator", "snapshot", "restore", again.to_str().unwrap()])
        .ok();
    assert!(sealed(&a_api));
}

#[test]
fn corrupt_and_truncated_snapshots_are_refused_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _, _keys) = start_initialised(dir.path(), 1, 1);
    let api = Api::new(&s);
    prepare(&api);
    let value = format!("value-{}", random_hex(16));
    write(&api, "app", &value);
    let file = dir.path().join("good.snap");
    s.run(&["operator", "snapshot", "save", file.to_str().unwrap()])
        .ok();
    let good = std::fs::read(&file).unwrap();
    write(&api, "app", "changed-after");

    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..good.len() * 2 / 3].to_vec()),
        ("cut short of its trailer", good[..good.len() - 4].to_vec()),
        ("flipped", flipped),
        ("not a snapshot", b"{\"data\": {}}".to_vec()),
        ("empty", Vec::new()),
    ];
    for (what, bytes) in cases {
        let bad = dir.path().join("bad.snap");
        std::fs::write(&bad, &bytes).unwrap();
        let out = s.run(&["operator", "snapshot", "restore", bad.to_str().unwrap()]);
        assert_ne!(out.code, 0, "{what}: {out:?}");
        assert!(out.stderr.contains("Code: 400"), "{what}: {out:?}");
        assert!(out.stderr.contains("invalid snapshot"), "{what}: {out:?}");
        // Nothing happened: unsealed, the newest value, writes go on.
        assert!(!sealed(&api), "{what}: the server sealed");
        assert_eq!(
            read(&api, &s.token, "app").as_deref(),
            Some("changed-after")
        );
        write(&api, "app", "changed-after");
    }
    // A save into a file is never left half written on failure either: a
    // sealed server refuses, and no file appears.
    api.root("PUT", "sys/seal", None);
    let missing = dir.path().join("never.snap");
    let out = s.run(&["operator", "snapshot", "save", missing.to_str().unwrap()]);
    assert_ne!(out.code, 0);
    assert!(!missing.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".partial-"))
        .collect();
    assert!(leftovers.is_empty(), "partial files left behind");
}

#[test]
fn a_token_without_sudo_is_refused_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(&["--dev-audit-dir", dir.path().to_str().unwrap()]);
    let api = Api::new(&s);
    api.root(
        "PUT",
        "sys/policies/acl/almost",
        Some(json!({"policy": "path \"sys/storage/raft/*\" { capabilities = [\"read\", \"create\", \"update\"] }"})),
    );
    let (st, t) = api.call(
        "POST",
        "auth/token/create",
        Some(&s.token),
        Some(json!({"policies": ["almost"], "ttl": "10m"})),
    );
    assert_eq!(st, 200, "{t}");
    let token = t["auth"]["client_token"].as_str().unwrap().to_owned();
    let file = dir.path().join("s.snap");
    let mut save = cli_support::cli(s.home.path());
    save.args(["operator", "snapshot", "save", file.to_str().unwrap()])
        .env("COFFER_ADDR", &s.addr)
        .env("COFFER_TOKEN", &token);
    let out = cli_support::Run::of(&mut save);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("Code: 403"), "{out:?}");
    assert!(!file.exists());
    // A real snapshot, then its restore with the token lacking sudo.
    s.run(&["operator", "snapshot", "save", file.to_str().unwrap()])
        .ok();
    for path in [
        "sys/storage/raft/snapshot",
        "sys/storage/raft/snapshot-force",
    ] {
        let resp = cli_support::http()
            .post(format!("{}/v1/{path}", s.addr))
            .header("X-Vault-Token", &token)
            .body(std::fs::read(&file).unwrap())
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 403, "{path}");
    }
    assert!(!sealed(&api));
}

#[test]
fn the_bao_cli_saves_and_restores_a_coffer_snapshot() {
    let Some(bin) = bao() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (s, _, keys) = start_initialised(dir.path(), 1, 1);
    let api = Api::new(&s);
    prepare(&api);
    let value = format!("value-{}", random_hex(16));
    write(&api, "app", &value);
    let home = tempfile::tempdir().unwrap();
    let file = dir.path().join("bao.snap");
    let out = bao_at(&bin, home.path(), &s.addr, &s.token)
        .args([
            "operator",
            "raft",
            "snapshot",
            "save",
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (raw, inner) = snapshot_bytes(&file);
    assert!(!contains(&raw, &value) && !contains(&inner, &value));
    write(&api, "app", "changed");
    let out = bao_at(&bin, home.path(), &s.addr, &s.token)
        .args([
            "operator",
            "raft",
            "snapshot",
            "restore",
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(sealed(&api));
    unseal(&api, &keys);
    assert_eq!(read(&api, &s.token, "app").as_deref(), Some(value.as_str()));
    // bao's -force reaches snapshot-force; a damaged file is refused with
    // the server's message.
    let bad = dir.path().join("bad.snap");
    std::fs::write(&bad, &raw[..raw.len() / 2]).unwrap();
    let out = bao_at(&bin, home.path(), &s.addr, &s.token)
        .args([
            "operator",
            "raft",
            "snapshot",
            "restore",
            "-force",
            bad.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("snapshot-force") && err.contains("invalid snapshot"),
        "{err}"
    );
    assert!(!sealed(&api));
}

// ------------------------------------------------------------- PostgreSQL

fn pg_url() -> Option<String> {
    match std::env::var("COFFER_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!("COFFER_TEST_PG_URL is not set: skipping the PostgreSQL snapshot test");
            None
        }
    }
}

/// Drops a test's tables when dropped.
struct Tables {
    url: String,
    base: String,
}

impl Drop for Tables {
    fn drop(&mut self) {
        let sql = ["", "_meta", "_log", "_leader"]
            .map(|s| format!("DROP TABLE IF EXISTS \"{}{s}\";", self.base))
            .concat();
        let _ = Command::new("psql")
            .args([&self.url, "-Atc", &sql])
            .output();
    }
}

/// A node on the PostgreSQL table `table`, with an audit directory.
fn pg_node(url: &str, table: &str) -> (Server, tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let audit = dir.path().join("audit");
    std::fs::create_dir_all(&audit).unwrap();
    let text = format!(
        "[storage.postgresql]\nconnection_url = {url:?}\ntable = {table:?}\n\n\
         [listener.tcp]\naddress = \"127.0.0.1:{port}\"\ntls_disable = true\n\n\
         [audit]\nfile_dir = {:?}\n",
        audit.to_str().unwrap()
    );
    let cfg = dir.path().join("coffer.toml");
    std::fs::write(&cfg, text).unwrap();
    let server = Server::start_config(&cfg, format!("http://127.0.0.1:{port}"));
    let path = dir.path().to_path_buf();
    (server, dir, path)
}

#[test]
fn postgresql_snapshot_restore_replaces_the_store_for_every_node() {
    let Some(url) = pg_url() else {
        return;
    };
    let tables = Tables {
        url: url.clone(),
        base: unique("pgsnap").replace('-', "_"),
    };
    let (mut one, _d1, one_dir) = pg_node(&url, &tables.base);
    let (mut two, _d2, _) = pg_node(&url, &tables.base);
    let api1 = Api::new(&one);
    let (st, init) = api1.call(
        "PUT",
        "sys/init",
        None,
        Some(json!({"secret_shares": 3, "secret_threshold": 2})),
    );
    assert_eq!(st, 200, "{init}");
    let keys: Vec<String> = init["keys_base64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    let root = init["root_token"].as_str().unwrap().to_owned();
    one.token = root.clone();
    two.token = root.clone();
    let (api1, api2) = (Api::new(&one), Api::new(&two));
    unseal(&api1, &keys[..2]);
    unseal(&api2, &keys[..2]);
    prepare(&api1);
    let value = format!("value-{}", random_hex(16));
    write(&api1, "app", &value);
    write(&api1, "gone-later", &value);
    // Node two has the secret in its caches before the snapshot.
    assert_eq!(read(&api2, &root, "app").as_deref(), Some(value.as_str()));

    let file = one_dir.join("pg.snap");
    let out = one
        .run(&["operator", "snapshot", "save", file.to_str().unwrap()])
        .ok();
    assert!(out.stdout.contains("Success!"), "{out:?}");
    let (raw, inner) = snapshot_bytes(&file);
    assert!(!contains(&raw, &value) && !contains(&inner, &value));
    let meta_at = String::from_utf8_lossy(&inner).into_owned();
    assert!(
        meta_at.contains("\"storage\": \"postgresql\""),
        "the header names the backend"
    );

    // Changes through node two after the snapshot.
    write(&api2, "app", "changed-on-two");
    api2.root("DELETE", "secret/metadata/gone-later", None);
    write(&api2, "born-later", "x");
    assert_eq!(read(&api2, &root, "app").as_deref(), Some("changed-on-two"));

    // Restore through node one: both nodes end up sealed (node two at its
    // next request), nothing stale is served.
    one.run(&["operator", "snapshot", "restore", file.to_str().unwrap()])
        .ok();
    assert!(sealed(&api1));
    let (st, v) = api2.call("GET", "secret/data/app", Some(&root), None);
    assert_eq!(st, 503, "node two must not serve the replaced store: {v}");
    assert!(sealed(&api2), "node two sealed itself");

    unseal(&api1, &keys[1..3]);
    unseal(&api2, &keys[..2]);
    for api in [&api1, &api2] {
        assert_eq!(read(api, &root, "app").as_deref(), Some(value.as_str()));
        assert_eq!(
            read(api, &root, "gone-later").as_deref(),
            Some(value.as_str())
        );
        assert_eq!(read(api, &root, "born-later"), None);
    }
    // Both write again, and see each other's writes.
    write(&api2, "after", "from-two");
    assert_eq!(read(&api1, &root, "after").as_deref(), Some("from-two"));
    write(&api1, "after", "from-one");
    assert_eq!(read(&api2, &root, "after").as_deref(), Some("from-one"));
    let lines = audit_lines(&one_dir);
    assert!(has_event(&lines, "snapshot_saved") && has_event(&lines, "snapshot_restored"));
}

/// Two restores sent at once: exactly one installs its snapshot, the other
/// finds the server sealed and is refused, and the audit trail holds one
/// `snapshot_restored` event, for the snapshot that was installed.
#[test]
fn overlapping_restores_install_one_snapshot_and_audit_it() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _cfg, keys) = start_initialised(dir.path(), 3, 2);
    let api = Api::new(&s);
    prepare(&api);
    let mut files = Vec::new();
    for name in ["x", "y"] {
        write(&api, "which", name);
        let file = dir.path().join(format!("{name}.snap"));
        s.run(&["operator", "snapshot", "save", file.to_str().unwrap()])
            .ok();
        files.push(file);
    }
    let bodies: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let url = format!("{}/v1/sys/storage/raft/snapshot", s.addr);
    let handles: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let (url, token) = (url.clone(), s.token.clone());
            std::thread::spawn(move || {
                reqwest::blocking::Client::new()
                    .post(&url)
                    .header("X-Vault-Token", token)
                    .body(body)
                    .send()
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            })
        })
        .collect();
    let codes: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        codes.iter().filter(|c| **c == 200).count(),
        1,
        "one restore installs, the other is refused: {codes:?}"
    );
    unseal(&api, &keys[..2]);
    let installed = read(&api, &s.token, "which").unwrap();
    let restored: Vec<Value> = audit_lines(dir.path())
        .into_iter()
        .filter(|l| l["event"] == json!("snapshot_restored"))
        .collect();
    assert_eq!(restored.len(), 1, "{restored:?}");
    assert!(installed == "x" || installed == "y", "{installed}");
}

//! The secret lifecycle against a real server: metadata and inventory,
//! scheduled and on-demand staged rotation, failing rotators, in-flight
//! refusal, rollback after a crash, certificates, compromise revocation.

mod cli_support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cli_support::{free_port, unique, Server, BIN};
use reqwest::blocking::Client;
use serde_json::{json, Value};

fn http() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Calls the API; returns status and JSON body (null when empty).
fn call(addr: &str, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = http()
        .request(m, format!("{addr}/v1/{path}"))
        .header("X-Vault-Token", token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn put_secret(s: &Server, path: &str, data: Value) {
    let (st, body) = call(
        &s.addr,
        &s.token,
        "POST",
        &format!("secret/data/{path}"),
        Some(json!({ "data": data })),
    );
    assert_eq!(st, 200, "{body}");
}

fn read_secret(s: &Server, path: &str, query: &str) -> (u16, Value) {
    call(
        &s.addr,
        &s.token,
        "GET",
        &format!("secret/data/{path}{query}"),
        None,
    )
}

fn set_lifecycle(s: &Server, path: &str, body: Value) -> (u16, Value) {
    call(
        &s.addr,
        &s.token,
        "POST",
        &format!("secret/lifecycle/{path}"),
        Some(body),
    )
}

fn lifecycle(s: &Server, path: &str) -> Value {
    let (st, body) = call(
        &s.addr,
        &s.token,
        "GET",
        &format!("secret/lifecycle/{path}"),
        None,
    );
    assert_eq!(st, 200, "{body}");
    body["data"].clone()
}

/// Whether the inventory filtered by `query` lists `secret/<path>`.
fn inventory_lists(s: &Server, query: &str, path: &str) -> bool {
    let (st, inv) = call(
        &s.addr,
        &s.token,
        "GET",
        &format!("sys/coffer/inventory?{query}"),
        None,
    );
    assert_eq!(st, 200, "{inv}");
    inv["data"]["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["path"] == format!("secret/{path}"))
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("timed out waiting for {what}");
}

/// A TOML string literal.
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A `[rotator.NAME]` running `/bin/sh -c script` (the step is `$0`) with
/// a `PATH` for the tools the script uses.
fn sh_rotator(name: &str, script: &str, timeout: &str) -> String {
    format!(
        "[rotator.{name}]\ntype = \"command\"\nprogram = \"/bin/sh\"\nargs = [\"-c\", {}]\n\
         env = {{ PATH = \"/usr/bin:/bin\" }}\ntimeout = {}\n",
        q(script),
        q(timeout)
    )
}

/// A dev server whose `--config` declares `rotators`; the directory holds the file.
fn server_with(rotators: &str) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("rotators.toml");
    std::fs::write(&cfg, rotators).unwrap();
    (Server::start_dev_config(&cfg), dir)
}

/// A token with `policy` (HCL), written under a fresh name.
fn token_with_policy(s: &Server, policy: &str) -> String {
    let name = unique("pol");
    let (st, body) = call(
        &s.addr,
        &s.token,
        "PUT",
        &format!("sys/policies/acl/{name}"),
        Some(json!({ "policy": policy })),
    );
    assert_eq!(st, 204, "{body}");
    let (st, body) = call(
        &s.addr,
        &s.token,
        "POST",
        "auth/token/create",
        Some(json!({"policies": [name]})),
    );
    assert_eq!(st, 200, "{body}");
    body["auth"]["client_token"].as_str().unwrap().to_string()
}

#[test]
fn metadata_is_validated_and_listed_in_the_inventory() {
    let (s, _dir) = server_with(&sh_rotator("noop", "true", "10s"));
    let path = unique("billing/stripe");
    put_secret(&s, &path, json!({"api_key": unique("k")}));
    let (st, body) = set_lifecycle(&s, &path, json!({"secret_type": "api_kee"}));
    assert_eq!(st, 400, "{body}");
    assert!(body["errors"][0].as_str().unwrap().contains("secret_type"));
    let (st, body) = set_lifecycle(
        &s,
        &path,
        json!({"rotation": {"period": "90d", "rotator": "teleport"}}),
    );
    assert_eq!(st, 400, "{body}");
    let (st, body) = set_lifecycle(
        &s,
        &path,
        json!({"rotation": {"cron": "not a cron", "rotator": "manual"}}),
    );
    assert_eq!(st, 400, "{body}");
    let (st, _) = set_lifecycle(
        &s,
        &path,
        json!({
            "owner": "team-billing", "secret_type": "api_key", "origin": "third_party", "vendor": "stripe",
            "rotation": {"period": "90d", "rotator": "command", "settings": {"name": "noop"}}
        }),
    );
    assert_eq!(st, 204);
    let lc = lifecycle(&s, &path);
    assert_eq!(lc["owner"], "team-billing");
    assert_eq!(lc["vendor"], "stripe");
    assert_eq!(lc["status"], "ok");
    assert_eq!(lc["rotation"]["period"], "2160h0m0s");
    let (st, inv) = call(
        &s.addr,
        &s.token,
        "GET",
        "sys/coffer/inventory?owner=team-billing",
        None,
    );
    assert_eq!(st, 200);
    let rows = inv["data"]["secrets"].as_array().unwrap();
    assert!(rows
        .iter()
        .any(|r| r["path"] == format!("secret/{path}") && r["origin"] == "third_party"));
    let (_, inv) = call(
        &s.addr,
        &s.token,
        "GET",
        "sys/coffer/inventory?owner=nobody",
        None,
    );
    assert!(inv["data"]["secrets"].as_array().unwrap().is_empty());
    let (_, inv) = call(
        &s.addr,
        &s.token,
        "GET",
        "sys/coffer/inventory?due=true",
        None,
    );
    assert!(inv["data"]["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["path"] != format!("secret/{path}")));
}

/// Due rotations are taken most-overdue first: with three times more due
/// secrets than rotation slots, on a period shorter than the scheduler's
/// pass, every secret still rotates (path order starved all but the first
/// four).
#[test]
fn the_scheduler_takes_the_most_overdue_first_and_starves_none() {
    let s = Server::start();
    let dir = unique("fair");
    let paths: Vec<String> = (0..12).map(|i| format!("{dir}/s{i:02}")).collect();
    for path in &paths {
        put_secret(&s, path, json!({"password": unique("pw")}));
        let (st, body) = set_lifecycle(
            &s,
            path,
            json!({
                "owner": "team-app", "secret_type": "password",
                "rotation": {"period": "2s", "rotator": "generate", "settings": {"field": "password"}}
            }),
        );
        assert_eq!(st, 204, "{body}");
    }
    wait_until("every secret rotated at least once", 60, || {
        paths
            .iter()
            .all(|p| !lifecycle(&s, p)["state"]["last_rotated"].is_null())
    });
}

/// Deleting a secret's metadata deletes the secret, its lifecycle record
/// and its consumers: the scheduler must not bring it back with a
/// generated value, and a new secret at the path starts without the old
/// owner, cadence or consumers.
#[test]
fn deleting_a_secret_ends_its_lifecycle_and_the_scheduler_does_not_recreate_it() {
    let s = Server::start();
    let path = unique("gone/db");
    put_secret(&s, &path, json!({"password": unique("pw")}));
    let (st, body) = set_lifecycle(
        &s,
        &path,
        json!({
            "owner": "team-app", "secret_type": "password",
            "rotation": {"period": "2s", "rotator": "generate", "settings": {"field": "password"}}
        }),
    );
    assert_eq!(st, 204, "{body}");
    let (st, body) = call(
        &s.addr,
        &s.token,
        "DELETE",
        &format!("secret/metadata/{path}"),
        None,
    );
    assert_eq!(st, 204, "{body}");
    // Two scheduler passes (every 5 s) with the rotation long overdue.
    std::thread::sleep(Duration::from_secs(11));
    let (st, body) = read_secret(&s, &path, "");
    assert_eq!(st, 404, "the deleted secret came back: {body}");
    let (st, body) = call(
        &s.addr,
        &s.token,
        "GET",
        &format!("secret/lifecycle/{path}"),
        None,
    );
    assert_eq!(st, 404, "the lifecycle record outlived its secret: {body}");
}

#[test]
fn the_scheduler_rotates_a_secret_with_a_short_period() {
    let s = Server::start();
    let path = unique("app/db");
    let old = unique("pw");
    put_secret(&s, &path, json!({"username": "app", "password": old}));
    let (st, body) = set_lifecycle(
        &s,
        &path,
        json!({
            "owner": "team-app", "secret_type": "password",
            "rotation": {"period": "2s", "rotator": "generate", "settings": {"field": "password", "length": 24}}
        }),
    );
    assert_eq!(st, 204, "{body}");
    wait_until("a scheduled rotation", 30, || {
        !lifecycle(&s, &path)["state"]["last_rotated"].is_null()
    });
    let (st, body) = read_secret(&s, &path, "");
    assert_eq!(st, 200);
    let new = body["data"]["data"]["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new, old);
    assert_eq!(new.len(), 24);
    assert_eq!(
        body["data"]["data"]["username"], "app",
        "other fields are kept"
    );
    let (_, prev) = read_secret(&s, &path, "?stage=previous");
    assert_eq!(prev["data"]["data"]["password"], old.as_str());
    let (_, meta) = call(
        &s.addr,
        &s.token,
        "GET",
        &format!("secret/metadata/{path}"),
        None,
    );
    assert!(
        meta["data"]["stages"]["current"].as_u64().unwrap()
            > meta["data"]["stages"]["previous"].as_u64().unwrap()
    );
}

/// The scheduler reads a due index, not every record: these prove the
/// index follows every change of a due time. A new certificate with an
/// earlier expiry makes its secret due at once (the KV write moves the
/// entry), and a rotated secret falls due again one period later (the
/// rotation moves it).
#[test]
fn the_due_index_follows_new_certificates_and_finished_rotations() {
    let s = Server::start();
    let cert_pem = |days: i64| {
        use chrono::Datelike;
        let mut params =
            rcgen::CertificateParams::new(vec!["api.example.test".to_string()]).unwrap();
        let d = chrono::Utc::now() + chrono::Duration::days(days);
        params.not_after = rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem()
    };
    let tls = unique("tls/edge");
    put_secret(
        &s,
        &tls,
        json!({"certificate": cert_pem(400), "password": unique("pw")}),
    );
    let (st, body) = set_lifecycle(
        &s,
        &tls,
        json!({
            "owner": "team-edge", "secret_type": "certificate", "certificate_lead_time": "30d",
            "rotation": {"period": "365d", "rotator": "generate", "settings": {"field": "password"}}
        }),
    );
    assert_eq!(st, 204, "{body}");
    let lc = lifecycle(&s, &tls);
    assert_eq!(lc["status"], "ok", "{lc}");
    assert!(lc["state"].get("due_index").is_none(), "internal: {lc}");
    put_secret(
        &s,
        &tls,
        json!({"certificate": cert_pem(10), "password": unique("pw")}),
    );
    wait_until(
        "the rotation of a secret whose new certificate is due",
        30,
        || !lifecycle(&s, &tls)["state"]["last_rotated"].is_null(),
    );

    let db = unique("app/db");
    put_secret(&s, &db, json!({"password": unique("pw")}));
    let (st, body) = set_lifecycle(
        &s,
        &db,
        json!({"rotation": {"period": "2s", "rotator": "generate", "settings": {"field": "password"}}}),
    );
    assert_eq!(st, 204, "{body}");
    wait_until("two scheduled rotations", 60, || {
        lifecycle(&s, &db)["state"]["history"]
            .as_array()
            .is_some_and(|h| h.iter().filter(|r| r["result"] == "success").count() >= 2)
    });
}

#[test]
fn a_failing_rotator_leaves_current_untouched_and_marks_the_secret_failing() {
    // The command produces a pending value, then fails its test step.
    let script = "if [ \"$0\" = create ]; then echo '{\"key\":\"pending-value\"}'; fi; [ \"$0\" != test ] || exit 7";
    let (s, _dir) = server_with(&sh_rotator("fails-test", script, "30s"));
    let path = unique("vendor/key");
    let old = unique("v");
    put_secret(&s, &path, json!({"key": old}));
    let (st, _) = set_lifecycle(
        &s,
        &path,
        json!({
            "rotation": {"period": "90d", "rotator": "command", "settings": {"name": "fails-test"}}
        }),
    );
    assert_eq!(st, 204);
    let (st, body) = call(
        &s.addr,
        &s.token,
        "POST",
        &format!("secret/rotate/{path}"),
        Some(json!({})),
    );
    assert_eq!(st, 400, "{body}");
    let msg = body["errors"][0].as_str().unwrap();
    assert!(
        msg.contains("step test") && msg.contains("status 7"),
        "{msg}"
    );
    assert!(!msg.contains("pending-value"));
    let (_, cur) = read_secret(&s, &path, "");
    assert_eq!(cur["data"]["data"]["key"], old.as_str());
    let lc = lifecycle(&s, &path);
    assert_eq!(lc["status"], "failing");
    assert_eq!(lc["state"]["failures"], 1);
    assert!(
        lc["state"]["next_attempt"].is_string(),
        "a retry is scheduled"
    );
    let (_, meta) = call(
        &s.addr,
        &s.token,
        "GET",
        &format!("secret/metadata/{path}"),
        None,
    );
    assert!(
        meta["data"]["stages"].get("pending").is_none(),
        "pending rolled back: {meta}"
    );
    let (_, pending) = read_secret(&s, &path, "?stage=pending");
    assert!(pending["data"].is_null() || pending["errors"].is_array());
    assert!(inventory_lists(&s, "failing=true", &path));
}

#[test]
fn a_command_rotation_stages_versions_and_refuses_a_second_one_in_flight() {
    let script =
        "case \"$0\" in create) echo '{\"data\":{\"token\":\"rotated\"}}';; set) sleep 3;; esac";
    let (s, _dir) = server_with(&sh_rotator("slow-set", script, "20s"));
    let path = unique("vendor/token");
    let old = unique("v");
    put_secret(&s, &path, json!({"token": old}));
    let (st, _) = set_lifecycle(
        &s,
        &path,
        json!({
            "rotation": {"period": "90d", "rotator": "command", "settings": {"name": "slow-set"}}
        }),
    );
    assert_eq!(st, 204);
    let (addr, token, p2) = (s.addr.clone(), s.token.clone(), path.clone());
    let first = std::thread::spawn(move || {
        call(
            &addr,
            &token,
            "POST",
            &format!("secret/rotate/{p2}"),
            Some(json!({})),
        )
    });
    std::thread::sleep(Duration::from_millis(1200));
    // While set runs, readers still get the current value.
    let (_, cur) = read_secret(&s, &path, "");
    assert_eq!(cur["data"]["data"]["token"], old.as_str());
    let (st, body) = call(
        &s.addr,
        &s.token,
        "POST",
        &format!("secret/rotate/{path}"),
        Some(json!({})),
    );
    assert_eq!(st, 409, "{body}");
    let (st, body) = first.join().unwrap();
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"]["old_version"], 1);
    assert_eq!(body["data"]["new_version"], 2);
    let (_, cur) = read_secret(&s, &path, "");
    assert_eq!(cur["data"]["data"]["token"], "rotated");
    assert_eq!(cur["data"]["metadata"]["stages"][0], "current");
    let lc = lifecycle(&s, &path);
    assert_eq!(lc["state"]["history"][0]["result"], "success");
}

#[test]
fn a_certificate_falls_due_before_it_expires() {
    let s = Server::start();
    let path = unique("tls/api");
    let mut params = rcgen::CertificateParams::new(vec!["api.example.test".to_string()]).unwrap();
    params.not_after = {
        use chrono::Datelike;
        let d = chrono::Utc::now() + chrono::Duration::days(10);
        rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
    };
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    put_secret(&s, &path, json!({"certificate": cert.pem()}));
    let (st, _) = set_lifecycle(
        &s,
        &path,
        json!({"owner": "team-edge", "secret_type": "certificate", "certificate_lead_time": "30d"}),
    );
    assert_eq!(st, 204);
    let lc = lifecycle(&s, &path);
    assert_eq!(lc["status"], "due", "{lc}");
    assert!(lc["certificate"]["sans"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == "api.example.test"));
    assert!(inventory_lists(&s, "due=true&type=certificate", &path));
}

#[test]
fn compromise_revocation_rotates_and_revokes_readers() {
    let s = Server::start();
    let path = unique("billing/stripe");
    let old = unique("sk");
    put_secret(&s, &path, json!({"api_key": old}));
    let (st, _) = set_lifecycle(
        &s,
        &path,
        json!({
            "rotation": {"period": "90d", "rotator": "generate", "settings": {"field": "api_key"}}
        }),
    );
    assert_eq!(st, 204);
    let policy = format!("path \"secret/data/{path}\" {{ capabilities = [\"read\"] }}");
    let (st, _) = call(
        &s.addr,
        &s.token,
        "PUT",
        "sys/policies/acl/reader",
        Some(json!({"policy": policy})),
    );
    assert_eq!(st, 204);
    let (_, created) = call(
        &s.addr,
        &s.token,
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["reader"]})),
    );
    let reader = created["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, _) = call(
        &s.addr,
        &reader,
        "GET",
        &format!("secret/data/{path}"),
        None,
    );
    assert_eq!(st, 200);
    let (st, body) = call(
        &s.addr,
        &s.token,
        "POST",
        "sys/coffer/revoke-compromised",
        Some(json!({"path": format!("secret/{path}")})),
    );
    assert_eq!(st, 400, "a reason is required: {body}");
    let (st, body) = call(
        &s.addr,
        &s.token,
        "POST",
        "sys/coffer/revoke-compromised",
        Some(
            json!({"path": format!("secret/{path}"), "reason": "key pasted in a public channel", "since": "1h"}),
        ),
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"]["tokens_revoked"].as_array().unwrap().len(), 1);
    assert_eq!(body["data"]["rotated"]["new_version"], 2);
    let (st, _) = call(&s.addr, &reader, "GET", "auth/token/lookup-self", None);
    assert_eq!(st, 403, "the reader's token is revoked");
    let (_, cur) = read_secret(&s, &path, "");
    assert_ne!(cur["data"]["data"]["api_key"], old.as_str());
}

/// A config-file server on SQLite, for restarts.
struct Durable {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
    config: std::path::PathBuf,
}

impl Durable {
    /// Starts a server on SQLite in `dir`; `extra` is appended to its config.
    fn start(dir: tempfile::TempDir, extra: &str) -> Durable {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("coffer.toml");
        std::fs::write(&config, format!(
            "[storage.sqlite]\npath = \"coffer.db\"\n[listener.tcp]\naddress = \"{addr}\"\ntls_disable = true\n{extra}"
        )).unwrap();
        let child = spawn(&config);
        let d = Durable {
            child,
            addr: format!("http://{addr}"),
            _dir: dir,
            config,
        };
        d.wait();
        d
    }

    fn wait(&self) {
        wait_until("the server", 60, || {
            http()
                .get(format!("{}/v1/sys/health", self.addr))
                .send()
                .is_ok()
        });
    }

    fn restart_after_kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(&self.config);
        self.wait();
    }
}

fn spawn(config: &Path) -> Child {
    Command::new(BIN)
        .args(["server", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

impl Drop for Durable {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_rotation_interrupted_by_a_crash_is_rolled_back_at_restart() {
    let script = "case \"$0\" in create) echo '{\"key\":\"half-rotated\"}';; test) sleep 60;; esac";
    let mut d = Durable::start(
        tempfile::tempdir().unwrap(),
        &sh_rotator("hangs-in-test", script, "120s"),
    );
    let (st, init) = call(
        &d.addr,
        "",
        "PUT",
        "sys/init",
        Some(json!({"secret_shares": 1, "secret_threshold": 1})),
    );
    assert_eq!(st, 200);
    let key = init["keys"][0].as_str().unwrap().to_string();
    let root = init["root_token"].as_str().unwrap().to_string();
    let unseal = |addr: &str| {
        let (st, _) = call(addr, "", "PUT", "sys/unseal", Some(json!({"key": key})));
        assert_eq!(st, 200);
    };
    unseal(&d.addr);
    let (st, _) = call(
        &d.addr,
        &root,
        "POST",
        "sys/mounts/secret",
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert_eq!(st, 204);
    let old = unique("v");
    let (st, _) = call(
        &d.addr,
        &root,
        "POST",
        "secret/data/app/key",
        Some(json!({"data": {"key": old}})),
    );
    assert_eq!(st, 200);
    let (st, _) = call(
        &d.addr,
        &root,
        "POST",
        "secret/lifecycle/app/key",
        Some(json!({
            "rotation": {"period": "90d", "rotator": "command", "settings": {"name": "hangs-in-test"}}
        })),
    );
    assert_eq!(st, 204);
    let (addr, tok) = (d.addr.clone(), root.clone());
    let _inflight = std::thread::spawn(move || {
        let _ = http()
            .post(format!("{addr}/v1/secret/rotate/app/key"))
            .header("X-Vault-Token", tok)
            .json(&json!({}))
            .send();
    });
    wait_until("the test step", 30, || {
        let (_, lc) = call(&d.addr, &root, "GET", "secret/lifecycle/app/key", None);
        lc["data"]["state"]["in_flight"]["step"] == "test"
    });
    d.restart_after_kill9();
    unseal(&d.addr);
    wait_until("the rollback", 30, || {
        let (_, lc) = call(&d.addr, &root, "GET", "secret/lifecycle/app/key", None);
        lc["data"]["state"]["in_flight"].is_null() && lc["data"]["state"]["failures"] == 1
    });
    let (_, lc) = call(&d.addr, &root, "GET", "secret/lifecycle/app/key", None);
    assert!(lc["data"]["state"]["last_error"]
        .as_str()
        .unwrap()
        .contains("interrupted"));
    let (_, cur) = call(&d.addr, &root, "GET", "secret/data/app/key", None);
    assert_eq!(cur["data"]["data"]["key"], old.as_str());
    let (_, meta) = call(&d.addr, &root, "GET", "secret/metadata/app/key", None);
    assert!(meta["data"]["stages"].get("pending").is_none(), "{meta}");
}

#[test]
fn every_rotation_step_and_result_is_an_audit_event() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(&["--dev-audit-dir", dir.path().to_str().unwrap()]);
    let log = dir.path().join("audit.log");
    let (st, body) = call(
        &s.addr,
        &s.token,
        "PUT",
        "sys/audit/file",
        Some(json!({"type": "file", "options": {"file_path": log.to_str().unwrap()}})),
    );
    assert_eq!(st, 204, "{body}");
    let path = unique("app/key");
    let old = unique("v");
    put_secret(&s, &path, json!({"value": old}));
    let (st, _) = set_lifecycle(
        &s,
        &path,
        json!({"rotation": {"period": "30d", "rotator": "generate"}}),
    );
    assert_eq!(st, 204);
    let (st, body) = call(
        &s.addr,
        &s.token,
        "POST",
        &format!("secret/rotate/{path}"),
        Some(json!({"reason": "drill"})),
    );
    assert_eq!(st, 200, "{body}");
    let (_, cur) = read_secret(&s, &path, "");
    let new = cur["data"]["data"]["value"].as_str().unwrap().to_string();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains(&old) && !text.contains(&new),
        "no value in clear in the audit log"
    );
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| {
            serde_json::from_str::<Value>(
                l.split_once('{')
                    .map(|(_, r)| format!("{{{r}"))
                    .unwrap_or_default()
                    .as_str(),
            )
            .ok()
        })
        .filter(|e| e["type"] == "event")
        .collect();
    let steps: Vec<&Value> = events
        .iter()
        .filter(|e| e.to_string().contains("secret_rotation_step"))
        .collect();
    assert_eq!(steps.len(), 4, "create, set, test and finish: {events:?}");
    let done = events
        .iter()
        .find(|e| e.to_string().contains("secret_rotated"))
        .expect("a rotated event");
    let d = done.to_string();
    assert!(
        d.contains("\"old_version\":1") && d.contains("\"new_version\":2"),
        "{d}"
    );
}

/// A one-shot HTTP endpoint on loopback that answers each POST with the
/// given status and body, and records the steps it saw.
fn webhook(
    listener: std::net::TcpListener,
    answers: Vec<(u16, String)>,
) -> std::thread::JoinHandle<Vec<Value>> {
    use std::io::{BufRead, BufReader, Read, Write};
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        for (status, body) in answers {
            let (mut stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut buf = vec![0u8; len];
            reader.read_exact(&mut buf).unwrap();
            seen.push(serde_json::from_slice::<Value>(&buf).unwrap());
            let resp = format!("HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            stream.write_all(resp.as_bytes()).unwrap();
        }
        seen
    })
}

/// A loopback listener for [`webhook`] and the `[rotator.NAME]` declaring it.
fn hook_listener(name: &str, needs_current_value: bool) -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/rotate", listener.local_addr().unwrap());
    let decl = format!(
        "[rotator.{name}]\ntype = \"webhook\"\nurl = {}\nallowed_hosts = [\"127.0.0.1\"]\n\
         needs_current_value = {needs_current_value}\ntimeout = \"10s\"\n",
        q(&url)
    );
    (listener, decl)
}

#[test]
fn a_webhook_rotator_gets_every_step_and_its_failure_rolls_back() {
    let (l1, d1) = hook_listener("hook-with-current", true);
    let (l2, d2) = hook_listener("hook-without-current", false);
    let (s, _dir) = server_with(&format!("{d1}{d2}"));
    let path = unique("vendor/hook");
    let old = unique("v");
    put_secret(&s, &path, json!({"key": old}));
    let hook = webhook(
        l1,
        vec![
            (200, r#"{"data":{"key":"from-webhook"}}"#.into()),
            (200, "{}".into()),
            (200, "{}".into()),
            (200, "{}".into()),
        ],
    );
    let (st, body) = set_lifecycle(
        &s,
        &path,
        json!({"rotation": {"period": "90d", "rotator": "webhook", "settings": {"name": "hook-with-current"}}}),
    );
    assert_eq!(st, 204, "{body}");
    let (st, body) = call(
        &s.addr,
        &s.token,
        "POST",
        &format!("secret/rotate/{path}"),
        Some(json!({})),
    );
    assert_eq!(st, 200, "{body}");
    let seen = hook.join().unwrap();
    let steps: Vec<&str> = seen.iter().map(|d| d["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["create", "set", "test", "finish"]);
    assert_eq!(seen[1]["pending"]["key"], "from-webhook");
    assert_eq!(seen[1]["current"]["key"], old.as_str());
    let (_, cur) = read_secret(&s, &path, "");
    assert_eq!(cur["data"]["data"]["key"], "from-webhook");
    // A webhook refusing the test step rolls back: current stays.
    let hook = webhook(
        l2,
        vec![
            (200, r#"{"key":"second"}"#.into()),
            (200, "{}".into()),
            (500, "{}".into()),
            (200, "{}".into()),
        ],
    );
    let (st, _) = set_lifecycle(
        &s,
        &path,
        json!({"rotation": {"settings": {"name": "hook-without-current"}}}),
    );
    assert_eq!(st, 204);
    let (st, body) = call(
        &s.addr,
        &s.token,
        "POST",
        &format!("secret/rotate/{path}"),
        Some(json!({})),
    );
    assert_eq!(st, 400, "{body}");
    assert!(body["errors"][0]
        .as_str()
        .unwrap()
        .contains("failed in step test: webhook answered 500"));
    let seen = hook.join().unwrap();
    assert_eq!(
        seen.last().unwrap()["step"],
        "rollback",
        "the rotator is told to roll back"
    );
    assert!(
        seen.iter().all(|d| d.get("current").is_none()),
        "no current value unless declared: {seen:?}"
    );
    let (_, cur) = read_secret(&s, &path, "");
    assert_eq!(cur["data"]["data"]["key"], "from-webhook");
}

/// Writes an executable `/bin/sh` script into `dir`.
fn script_file(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// The names and values a child's `env` printed.
fn env_of(file: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The hole: a token allowed only `secret/lifecycle/*` and `secret/rotate/*`
/// set a `command` rotator to `/bin/sh -c id` and the server ran it with
/// its environment and the current value. Now programs and URLs come only
/// from the server's configuration, choosing one needs sudo, and the child
/// sees a cleared environment and no current value unless declared.
#[test]
fn rotators_are_declared_by_the_operator_and_choosing_one_needs_sudo() {
    let work = tempfile::tempdir().unwrap();
    let d = work.path().to_str().unwrap();
    let program = script_file(
        work.path(),
        "rotate.sh",
        &format!(
            "/usr/bin/env > \"{d}/env-$1\"\n/bin/cat > \"{d}/stdin-$1\"\n\
             if [ \"$1\" = create ]; then echo '{{\"data\":{{\"token\":\"rotated-by-program\"}}}}'; fi\n"
        ),
    );
    let program = q(program.to_str().unwrap());
    let marker = unique("mode");
    let (s, _cfg) = server_with(&format!(
        "[rotator.probe]\ntype = \"command\"\nprogram = {program}\nenv = {{ ROTATOR_MODE = {} }}\n\n\
         [rotator.probe-with-current]\ntype = \"command\"\nprogram = {program}\nneeds_current_value = true\n",
        q(&marker)
    ));
    let path = unique("vendor/api");
    let old = unique("v");
    put_secret(&s, &path, json!({ "token": old }));
    let writer = token_with_policy(
        &s,
        "path \"secret/lifecycle/*\" { capabilities = [\"create\", \"read\", \"update\"] }\n\
         path \"secret/rotate/*\" { capabilities = [\"update\"] }\n",
    );
    let admin = token_with_policy(
        &s,
        "path \"secret/lifecycle/*\" { capabilities = [\"create\", \"read\", \"update\", \"sudo\"] }\n",
    );
    let lc_path = format!("secret/lifecycle/{path}");
    let write = |token: &str, body: Value| call(&s.addr, token, "POST", &lc_path, Some(body));
    let (st, _) = call(
        &s.addr,
        &writer,
        "GET",
        &format!("secret/data/{path}"),
        None,
    );
    assert_eq!(st, 403, "the writer cannot read the value");

    // Inline programs, URLs and connection strings: 400, whoever asks.
    for (rotator, settings) in [
        ("command", json!({"command": ["/bin/sh", "-c", "id"]})),
        ("command", json!({"name": "probe", "args": ["-c", "id"]})),
        ("webhook", json!({"url": "http://127.0.0.1:9/collect"})),
        (
            "postgres",
            json!({"connection_url": "postgres://x@127.0.0.1:9/x", "role": "app"}),
        ),
    ] {
        for token in [&writer, &admin, &s.token] {
            let (st, body) = write(
                token,
                json!({"rotation": {"period": "90d", "rotator": rotator, "settings": settings}}),
            );
            assert_eq!(st, 400, "{rotator} {settings}: {body}");
            let msg = body["errors"][0].as_str().unwrap();
            assert!(msg.contains("rotation.settings."), "{msg}");
        }
    }
    let (st, body) = write(
        &admin,
        json!({"rotation": {"rotator": "command", "settings": {"name": "nope"}}}),
    );
    assert_eq!(st, 400, "{body}");
    assert!(body["errors"][0]
        .as_str()
        .unwrap()
        .contains("no command rotator named \"nope\""));

    // A declared rotator: without sudo 403, with sudo accepted.
    let named =
        json!({"rotation": {"period": "90d", "rotator": "command", "settings": {"name": "probe"}}});
    let (st, body) = write(&writer, named.clone());
    assert_eq!(st, 403, "{body}");
    assert!(
        body["errors"][0].as_str().unwrap().contains("sudo"),
        "{body}"
    );
    let (st, body) = write(&admin, named.clone());
    assert_eq!(st, 204, "{body}");
    // Other fields, and the schedule, need no sudo.
    let (st, body) = write(
        &writer,
        json!({"owner": "team-x", "rotation": {"period": "30d"}}),
    );
    assert_eq!(st, 204, "{body}");

    // The rotation runs the declared program in a cleared environment.
    let (st, body) = call(
        &s.addr,
        &writer,
        "POST",
        &format!("secret/rotate/{path}"),
        Some(json!({})),
    );
    assert_eq!(st, 200, "{body}");
    let (_, cur) = read_secret(&s, &path, "");
    assert_eq!(cur["data"]["data"]["token"], "rotated-by-program");
    assert!(std::env::var_os("PATH").is_some());
    for step in ["create", "set", "test", "finish"] {
        let env = env_of(&work.path().join(format!("env-{step}")));
        assert!(
            env.contains(&("ROTATOR_MODE".to_string(), marker.clone())),
            "{step}: {env:?}"
        );
        // PWD is the shell's own; nothing of the server's environment is there.
        assert!(
            env.iter().all(|(k, _)| k == "ROTATOR_MODE" || k == "PWD"),
            "{step}: {env:?}"
        );
        let stdin = std::fs::read_to_string(work.path().join(format!("stdin-{step}"))).unwrap();
        assert!(
            !stdin.contains(&old),
            "{step}: the current value reached the child"
        );
        let doc: Value = serde_json::from_str(&stdin).unwrap();
        assert!(doc.get("current").is_none(), "{step}: {doc}");
    }
    let set: Value =
        serde_json::from_str(&std::fs::read_to_string(work.path().join("stdin-set")).unwrap())
            .unwrap();
    assert_eq!(set["pending"]["token"], "rotated-by-program");

    // A rotator declared with needs_current_value gets it.
    let with_current = json!({"rotation": {"settings": {"name": "probe-with-current"}}});
    let (st, _) = write(&writer, with_current.clone());
    assert_eq!(st, 403);
    let (st, body) = write(&admin, with_current);
    assert_eq!(st, 204, "{body}");
    let (st, body) = call(
        &s.addr,
        &s.token,
        "POST",
        &format!("secret/rotate/{path}"),
        Some(json!({})),
    );
    assert_eq!(st, 200, "{body}");
    let create: Value =
        serde_json::from_str(&std::fs::read_to_string(work.path().join("stdin-create")).unwrap())
            .unwrap();
    assert_eq!(create["current"]["token"], "rotated-by-program");
    let env = env_of(&work.path().join("env-create"));
    assert!(env.iter().all(|(k, _)| k == "PWD"), "{env:?}");
}

/// Runs `coffer <args>` that must exit on its own; returns (code, stderr).
fn run_to_exit(args: &[&str]) -> (i32, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read as _;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code().unwrap_or(-1), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("coffer {args:?} kept running");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_bad_rotator_declaration_stops_the_server_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let base = format!(
        "[storage.inmem]\n[listener.tcp]\naddress = \"127.0.0.1:{}\"\ntls_disable = true\n",
        free_port()
    );
    let cases = [
        (
            "[rotator.hook]\ntype = \"webhook\"\nurl = \"https://collector.elsewhere.test/x\"\nallowed_hosts = [\"hooks.example.test\"]\n",
            "rotator.hook: the url's host \"collector.elsewhere.test\" is not in allowed_hosts",
        ),
        (
            "[rotator.hook]\ntype = \"webhook\"\nurl = \"http://hooks.example.test/x\"\nallowed_hosts = [\"hooks.example.test\"]\n",
            "rotator.hook: url must be https",
        ),
        (
            "[rotator.run]\ntype = \"command\"\nprogram = \"sh\"\n",
            "rotator.run: program must be an absolute path",
        ),
    ];
    for (decl, want) in cases {
        let cfg = dir.path().join("coffer.toml");
        std::fs::write(&cfg, format!("{base}{decl}")).unwrap();
        let (code, err) = run_to_exit(&["server", "--config", cfg.to_str().unwrap()]);
        assert_ne!(code, 0, "{decl}");
        assert!(err.contains(want), "{decl}: {err}");
        // The dev server reads the same declarations from --config.
        let dev = dir.path().join("dev.toml");
        std::fs::write(&dev, decl).unwrap();
        let listen = format!("127.0.0.1:{}", free_port());
        let (code, err) = run_to_exit(&[
            "server",
            "--dev",
            "--dev-listen-address",
            &listen,
            "--config",
            dev.to_str().unwrap(),
        ]);
        assert_ne!(code, 0, "{decl}");
        assert!(err.contains(want), "dev {decl}: {err}");
    }
}

/// Rotation used to write its pending version without check-and-set: a
/// KV write landing while the rotator ran was silently replaced by a value
/// computed from the older version, and a secret with `cas_required` could
/// not be rotated at all (the rotation stuck in flight).
#[test]
fn a_rotation_racing_a_kv_write_rolls_back_and_loses_no_write() {
    let work = tempfile::tempdir().unwrap();
    let d = work.path().to_str().unwrap();
    let script = format!(
        "case \"$0\" in create) : > \"{d}/started\"; while [ ! -f \"{d}/go\" ]; do sleep 0.1; done; \
         echo '{{\"data\":{{\"k\":\"rotated\"}}}}';; esac"
    );
    let (s, _cfg) = server_with(&sh_rotator("gated", &script, "60s"));
    let rotate = |path: &str| {
        let (addr, token, p) = (s.addr.clone(), s.token.clone(), path.to_string());
        std::thread::spawn(move || {
            call(
                &addr,
                &token,
                "POST",
                &format!("secret/rotate/{p}"),
                Some(json!({})),
            )
        })
    };
    for cas_required in [false, true] {
        let path = unique("race/key");
        put_secret(&s, &path, json!({"k": "v1"}));
        if cas_required {
            let (st, body) = call(
                &s.addr,
                &s.token,
                "POST",
                &format!("secret/metadata/{path}"),
                Some(json!({"cas_required": true})),
            );
            assert_eq!(st, 204, "{body}");
        }
        let (st, body) = set_lifecycle(
            &s,
            &path,
            json!({"rotation": {"period": "90d", "rotator": "command", "settings": {"name": "gated"}}}),
        );
        assert_eq!(st, 204, "{body}");
        let _ = std::fs::remove_file(work.path().join("started"));
        let _ = std::fs::remove_file(work.path().join("go"));
        let rotation = rotate(&path);
        wait_until("the create step", 30, || {
            work.path().join("started").exists()
        });
        // A writer changes the secret while the rotator runs.
        let (st, body) = call(
            &s.addr,
            &s.token,
            "POST",
            &format!("secret/data/{path}"),
            Some(json!({"data": {"k": "writer"}, "options": {"cas": 1}})),
        );
        assert_eq!(st, 200, "{body}");
        std::fs::write(work.path().join("go"), "").unwrap();
        let (st, body) = rotation.join().unwrap();
        assert_eq!(st, 400, "cas_required={cas_required}: {body}");
        assert!(
            body["errors"][0]
                .as_str()
                .unwrap()
                .contains("written during the rotation"),
            "{body}"
        );
        let (_, cur) = read_secret(&s, &path, "");
        assert_eq!(cur["data"]["data"]["k"], "writer", "the write is kept");
        let lc = lifecycle(&s, &path);
        assert!(lc["state"]["in_flight"].is_null(), "{lc}");
        assert_eq!(lc["status"], "failing");
        // Unraced, the rotation goes through, check-and-set satisfied.
        let (st, body) = rotate(&path).join().unwrap();
        assert_eq!(st, 200, "cas_required={cas_required}: {body}");
        let (_, cur) = read_secret(&s, &path, "");
        assert_eq!(cur["data"]["data"]["k"], "rotated");
        let (_, prev) = read_secret(&s, &path, "?stage=previous");
        assert_eq!(prev["data"]["data"]["k"], "writer");
    }
}

/// A command rotator's standard error (issue 17, item 5): its last words
/// reach `last_error` and the server's log, the step is named once, and
/// the old and new values never appear though the program echoes its whole
/// input (current and pending values) to standard error.
#[test]
fn a_failing_command_rotator_reports_its_stderr_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let new = unique("new-value");
    let script = "if [ \"$0\" = create ]; then cat >/dev/null; echo \"{\\\"key\\\":\\\"$NEWV\\\"}\"; exit 0; fi; \
                  if [ \"$0\" = test ]; then cat >&2; echo >&2; echo 'vendor said no' >&2; exit 9; fi; cat >/dev/null";
    let cfg = dir.path().join("rotators.toml");
    std::fs::write(
        &cfg,
        format!(
            "[rotator.says-no]\ntype = \"command\"\nprogram = \"/bin/sh\"\nargs = [\"-c\", {}]\n\
             needs_current_value = true\nenv = {{ PATH = \"/usr/bin:/bin\", NEWV = {} }}\n",
            q(script),
            q(&new)
        ),
    )
    .unwrap();
    let log = dir.path().join("server.log");
    let port = free_port();
    let token = unique("root");
    let addr = format!("http://127.0.0.1:{port}");
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _child = Kill(
        Command::new(BIN)
            .args(["server", "--dev", "--dev-listen-address"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["--dev-root-token-id", &token, "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_until("the server", 60, || {
        http().get(format!("{addr}/v1/sys/health")).send().is_ok()
    });
    let old = unique("old-value");
    let (st, _) = call(
        &addr,
        &token,
        "POST",
        "secret/data/app/key",
        Some(json!({"data": {"key": old}})),
    );
    assert_eq!(st, 200);
    let (st, b) = call(
        &addr,
        &token,
        "POST",
        "secret/lifecycle/app/key",
        Some(json!({"rotation": {"period": "90d", "rotator": "command",
                                 "settings": {"name": "says-no"}}})),
    );
    assert_eq!(st, 204, "{b}");
    let (st, body) = call(
        &addr,
        &token,
        "POST",
        "secret/rotate/app/key",
        Some(json!({})),
    );
    assert_eq!(st, 400, "{body}");
    let msg = body["errors"][0].as_str().unwrap();
    assert!(msg.contains("vendor said no"), "{msg}");
    let (_, lc) = call(&addr, &token, "GET", "secret/lifecycle/app/key", None);
    let last = lc["data"]["state"]["last_error"].as_str().unwrap();
    assert!(
        last.starts_with(
            "step test: rotation command exited with status 9; its standard error ends with: {"
        ),
        "{last}"
    );
    assert!(last.ends_with("vendor said no"), "{last}");
    assert!(last.contains("\"key\":\"<redacted>\""), "{last}");
    assert_eq!(last.matches("step test").count(), 1, "{last}");
    for text in [msg, last] {
        assert!(!text.contains(&old) && !text.contains(&new), "{text}");
    }
    wait_until("the log line", 10, || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("vendor said no"))
    });
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains(&old) && !text.contains(&new),
        "a value in the log"
    );
}

/// A client that gives up on a rotation (its timeout, or a disconnect)
/// while a slow step runs does not cancel the rotation between two steps
/// (issue 10, item 5): the server handles the request in a task of its
/// own, so the rotation finishes, its history says success, and the audit
/// log holds the rotated event.
#[test]
fn a_client_disconnect_mid_rotation_does_not_cancel_it() {
    let script =
        "case \"$0\" in create) echo '{\"data\":{\"token\":\"rotated\"}}';; set) sleep 2;; esac";
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("rotators.toml");
    std::fs::write(&cfg, sh_rotator("slow-set", script, "20s")).unwrap();
    let s = Server::start_with(&[
        "--config",
        cfg.to_str().unwrap(),
        "--dev-audit-dir",
        dir.path().to_str().unwrap(),
    ]);
    let log = dir.path().join("audit.log");
    let (st, body) = call(
        &s.addr,
        &s.token,
        "PUT",
        "sys/audit/file",
        Some(json!({"type": "file", "options": {"file_path": log.to_str().unwrap()}})),
    );
    assert_eq!(st, 204, "{body}");
    let path = unique("vendor/token");
    put_secret(&s, &path, json!({"token": unique("v")}));
    let (st, _) = set_lifecycle(
        &s,
        &path,
        json!({
            "rotation": {"period": "90d", "rotator": "command", "settings": {"name": "slow-set"}}
        }),
    );
    assert_eq!(st, 204);
    // The client hangs up half a second in, while `set` sleeps.
    let impatient = Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let sent = impatient
        .post(format!("{}/v1/secret/rotate/{path}", s.addr))
        .header("X-Vault-Token", &s.token)
        .json(&json!({}))
        .send();
    assert!(sent.is_err(), "the client gave up before the answer");
    wait_until("the rotation finishes after the disconnect", 20, || {
        lifecycle(&s, &path)["state"]["history"][0]["result"] == "success"
    });
    let (_, cur) = read_secret(&s, &path, "");
    assert_eq!(cur["data"]["data"]["token"], "rotated");
    wait_until("the rotation is audited", 10, || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("secret_rotated"))
    });
}

//! Vault's operational `sys/` endpoints against real servers: rate-limit
//! quotas (`sys/quotas/*`: precedence, exempt paths, headers, blocks,
//! role quotas, audit of refusals, unauthenticated floods, two nodes on one
//! PostgreSQL), `sys/in-flight-req`, `sys/config/state/sanitized` (sudo, no
//! secret) and `sys/loggers` (levels changed at run time, seen in the log).

mod cli_support;

use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cli_support::{free_port, random_hex, token_for, unique, Api, Server};
use serde_json::{json, Value};

/// GET `path` with `token` (or none): status and the rate-limit headers.
fn get(s: &Server, token: Option<&str>, path: &str) -> (u16, Vec<(String, String)>, Value) {
    let c = cli_support::http();
    let mut req = c.get(format!("{}/v1/{path}", s.addr));
    if let Some(t) = token {
        req = req.header("X-Vault-Token", t);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .filter(|(n, _)| n.as_str().starts_with("x-ratelimit") || n.as_str() == "retry-after")
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    (status, headers, resp.json().unwrap_or(Value::Null))
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

#[test]
fn rate_limit_quotas_follow_vaults_precedence_and_refusals() {
    let audit = tempfile::tempdir().unwrap();
    let s = Server::start_with(&["--dev-audit-dir", audit.path().to_str().unwrap()]);
    let api = Api::new(&s);
    // The default configuration: Vault's exempt list, no headers, no audit.
    let cfg = api.root("GET", "sys/quotas/config", None);
    assert_eq!(
        cfg["data"]["rate_limit_exempt_paths"],
        json!(coffer_core_default_exempt())
    );
    assert_eq!(cfg["data"]["enable_rate_limit_response_headers"], false);
    assert_eq!(
        api.call("LIST", "sys/quotas/rate-limit", Some(&s.token), None)
            .0,
        404
    );

    // Bad input: Vault's messages, 400; a bad name is no route.
    for (body, msg) in [
        (json!({}), "'rate' is invalid"),
        (json!({"rate": -1}), "'rate' is invalid"),
        (json!({"rate": "many"}), "rate"),
        (
            json!({"rate": 1, "path": "nowhere/"}),
            "invalid mount path \"nowhere/\"",
        ),
        (json!({"rate": 1, "interval": "-5s"}), "negative"),
        (json!({"rate": 1, "block_interval": -1}), "negative"),
        (
            json!({"rate": 1, "path": "secret/", "role": "web"}),
            "is not a valid auth method",
        ),
    ] {
        let (st, b) = api.call(
            "POST",
            "sys/quotas/rate-limit/bad",
            Some(&s.token),
            Some(body.clone()),
        );
        assert_eq!(st, 400, "{body}: {b}");
        assert!(
            b["errors"][0].as_str().unwrap().contains(msg),
            "{body}: {b}"
        );
    }
    let (st, _) = api.call(
        "POST",
        "sys/quotas/rate-limit/-bad",
        Some(&s.token),
        Some(json!({"rate": 1})),
    );
    assert_eq!(st, 404);

    // A quota on one path, a prefix quota, a mount quota; headers on.
    api.root(
        "POST",
        "sys/quotas/config",
        Some(json!({"enable_rate_limit_response_headers": true, "enable_rate_limit_audit_logging": true,
                    "rate_limit_exempt_paths": ["sys/quotas/", "sys/health"]})),
    );
    api.root(
        "PUT",
        "sys/audit/file",
        Some(json!({"type": "file", "options": {
            "file_path": audit.path().join("audit.log").to_str().unwrap()
        }})),
    );
    api.root(
        "POST",
        "sys/quotas/rate-limit/exact",
        Some(json!({"rate": 2, "interval": "1m", "path": "secret/data/limited"})),
    );
    api.root(
        "POST",
        "sys/quotas/rate-limit/prefix",
        Some(json!({"rate": 3.4, "interval": "1m", "path": "secret/data/app*"})),
    );
    api.root(
        "POST",
        "sys/quotas/rate-limit/mount",
        Some(json!({"rate": 1000, "path": "secret"})),
    );
    let (st, b) = api.call(
        "POST",
        "sys/quotas/rate-limit/twin",
        Some(&s.token),
        Some(json!({"rate": 5, "path": "secret/"})),
    );
    assert_eq!(st, 400);
    assert!(b["errors"][0]
        .as_str()
        .unwrap()
        .contains("similar properties exists under the name \"mount\""));
    let read = api.root("GET", "sys/quotas/rate-limit/exact", None);
    assert_eq!(
        read["data"],
        json!({"type": "rate-limit", "name": "exact", "path": "secret/data/limited", "role": "",
               "rate": 2.0, "interval": 60, "block_interval": 0, "inheritable": false})
    );
    let list = api.root("LIST", "sys/quotas/rate-limit", None);
    assert_eq!(list["data"]["keys"], json!(["exact", "mount", "prefix"]));

    // Two requests pass (a 404 counts: the quota runs before the engine),
    // the third is refused with Vault's text and headers, without a token too.
    for remaining in ["1", "0"] {
        let (st, h, _) = get(&s, Some(&s.token), "secret/data/limited");
        assert_eq!(st, 404);
        assert_eq!(header(&h, "x-ratelimit-limit"), Some("2"));
        assert_eq!(header(&h, "x-ratelimit-remaining"), Some(remaining));
        assert!(header(&h, "retry-after").is_none());
    }
    let (st, h, b) = get(&s, Some(&s.token), "secret/data/limited");
    assert_eq!(st, 429, "{b}");
    assert_eq!(
        b,
        json!({"errors": ["request path \"secret/data/limited\": rate limit quota exceeded"]})
    );
    let retry: u64 = header(&h, "retry-after").unwrap().parse().unwrap();
    assert!((50..=60).contains(&retry), "{retry}");
    let (st, _, _) = get(&s, None, "secret/data/limited");
    assert_eq!(
        st, 429,
        "an anonymous request is counted before authentication"
    );
    // The prefix quota: 3 (3.4 rounded) for everything under `app`.
    for path in ["secret/data/app", "secret/data/app/x", "secret/data/apple"] {
        assert_eq!(get(&s, Some(&s.token), path).0, 404, "{path}");
    }
    assert_eq!(get(&s, Some(&s.token), "secret/data/app/y").0, 429);
    // The mount quota for the rest of the mount, nothing elsewhere.
    let (st, h, _) = get(&s, Some(&s.token), "secret/data/other");
    assert_eq!(st, 404);
    assert_eq!(header(&h, "x-ratelimit-limit"), Some("1000"));
    let (st, h, _) = get(&s, Some(&s.token), "sys/mounts");
    assert_eq!(st, 200);
    assert!(h.is_empty(), "{h:?}");
    // The refusal was audited (the configuration asks for it), without a token.
    let log = std::fs::read_to_string(audit.path().join("audit.log")).unwrap();
    let refused: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            e["request"]["path"] == "secret/data/limited"
                && e["error"]
                    .as_str()
                    .is_some_and(|x| x.contains("rate limit quota exceeded"))
        })
        .collect();
    assert_eq!(refused.len(), 2, "{log}");

    // Exempt paths: a listed one is never counted.
    api.root(
        "POST",
        "sys/quotas/config",
        Some(json!({"rate_limit_exempt_paths": ["sys/quotas/", "secret/data/limited"]})),
    );
    let (st, h, _) = get(&s, Some(&s.token), "secret/data/limited");
    assert_eq!(st, 404);
    assert!(h.is_empty(), "headers are off again: {h:?}");

    // A block outlasts the interval.
    api.root(
        "POST",
        "sys/quotas/rate-limit/blocky",
        Some(json!({"rate": 1, "interval": "1s", "block_interval": "1h", "path": "secret/data/blocky"})),
    );
    assert_eq!(get(&s, Some(&s.token), "secret/data/blocky").0, 404);
    assert_eq!(get(&s, Some(&s.token), "secret/data/blocky").0, 429);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get(&s, Some(&s.token), "secret/data/blocky").0, 429);

    // Deleting a quota lifts it; deleting a missing one is a 204.
    api.root("DELETE", "sys/quotas/rate-limit/blocky", None);
    assert_eq!(get(&s, Some(&s.token), "secret/data/blocky").0, 404);
    assert_eq!(
        api.call(
            "DELETE",
            "sys/quotas/rate-limit/blocky",
            Some(&s.token),
            None
        )
        .0,
        204
    );
    assert_eq!(
        api.call("GET", "sys/quotas/rate-limit/blocky", Some(&s.token), None)
            .0,
        404
    );

    // A disabled mount takes its quotas along.
    api.root("POST", "sys/mounts/gone", Some(json!({"type": "kv-v2"})));
    api.root(
        "POST",
        "sys/quotas/rate-limit/gone",
        Some(json!({"rate": 1, "path": "gone/"})),
    );
    api.root("DELETE", "sys/mounts/gone", None);
    assert_eq!(
        api.call("GET", "sys/quotas/rate-limit/gone", Some(&s.token), None)
            .0,
        404
    );
}

/// OpenBao's default exempt list (as `coffer_core` declares it).
fn coffer_core_default_exempt() -> Vec<&'static str> {
    vec![
        "sys/generate-recovery-token/attempt",
        "sys/generate-recovery-token/update",
        "sys/generate-root/attempt",
        "sys/generate-root/update",
        "sys/health",
        "sys/seal-status",
        "sys/unseal",
    ]
}

#[test]
fn a_role_quota_limits_the_logins_of_that_role_only() {
    let s = Server::start();
    let api = Api::new(&s);
    api.root("POST", "sys/auth/approle", Some(json!({"type": "approle"})));
    api.root(
        "POST",
        "sys/auth/userpass",
        Some(json!({"type": "userpass"})),
    );
    let mut ids = Vec::new();
    for role in ["web", "db"] {
        api.root(
            "POST",
            &format!("auth/approle/role/{role}"),
            Some(
                json!({"bind_secret_id": false, "token_bound_cidrs": ["127.0.0.1/32"],
                        "token_policies": ["default"]}),
            ),
        );
        let b = api.root("GET", &format!("auth/approle/role/{role}/role-id"), None);
        ids.push(b["data"]["role_id"].as_str().unwrap().to_string());
    }
    let (st, b) = api.call(
        "POST",
        "sys/quotas/rate-limit/users",
        Some(&s.token),
        Some(json!({"rate": 1, "path": "auth/userpass/", "role": "x"})),
    );
    assert_eq!(st, 400, "userpass has no roles: {b}");
    assert!(b["errors"][0]
        .as_str()
        .unwrap()
        .contains("does not support"));
    let (st, b) = api.call(
        "POST",
        "sys/quotas/rate-limit/suffix",
        Some(&s.token),
        Some(json!({"rate": 1, "path": "auth/approle/login", "role": "web"})),
    );
    assert_eq!(st, 400, "{b}");
    api.root(
        "POST",
        "sys/quotas/rate-limit/web",
        Some(json!({"rate": 1, "interval": "1m", "path": "auth/approle/", "role": "web"})),
    );
    assert_eq!(
        api.root("GET", "sys/quotas/rate-limit/web", None)["data"]["role"],
        "web"
    );
    let login = |id: &str| {
        api.call(
            "POST",
            "auth/approle/login",
            None,
            Some(json!({"role_id": id})),
        )
        .0
    };
    assert_eq!(login(&ids[0]), 200);
    assert_eq!(login(&ids[0]), 429);
    for _ in 0..3 {
        assert_eq!(login(&ids[1]), 200, "another role is not limited");
    }
}

/// Sends a request whose body never finishes; the connection stays open.
fn stalled_upload(s: &Server, path: &str) -> std::net::TcpStream {
    let host = s.addr.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(host).unwrap();
    let head = format!(
        "POST /v1/{path} HTTP/1.1\r\nHost: {host}\r\nX-Vault-Token: {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"data\":",
        s.token
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn
}

#[test]
fn in_flight_requests_show_what_the_node_is_handling() {
    let s = Server::start();
    let api = Api::new(&s);
    let path = format!("secret/data/{}", unique("inflight"));
    let conn = stalled_upload(&s, &path);
    let local = conn.local_addr().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (entry, own) = loop {
        let (st, b) = api.call("GET", "sys/in-flight-req", Some(&s.token), None);
        assert_eq!(st, 200, "{b}");
        let entries = b.as_object().unwrap().clone();
        let stalled = entries
            .values()
            .find(|e| e["request_path"] == format!("/v1/{path}"))
            .cloned();
        let own = entries
            .values()
            .find(|e| e["request_path"] == "/v1/sys/in-flight-req")
            .cloned();
        if let (Some(e), Some(o)) = (stalled, own) {
            break (e, o);
        }
        assert!(
            Instant::now() < deadline,
            "the stalled request never showed: {b}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(entry["request_method"], "POST");
    assert_eq!(entry["client_remote_address"], local.as_str());
    // Not authenticated yet: its body is still arriving.
    assert_eq!(entry["client_id"], "");
    assert!(entry["start_time"].as_str().unwrap().ends_with('Z'));
    // The reading request itself, authenticated: its client id is known.
    assert!(!own["client_id"].as_str().unwrap().is_empty(), "{own}");
    assert_eq!(own["request_method"], "GET");
    // Once the client goes away, so does the entry.
    drop(conn);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, b) = api.call("GET", "sys/in-flight-req", Some(&s.token), None);
        if !b
            .as_object()
            .unwrap()
            .values()
            .any(|e| e["request_path"] == format!("/v1/{path}"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the entry outlived its request: {b}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Policy applies: no token, or a token without read, is refused.
    assert_eq!(api.call("GET", "sys/in-flight-req", None, None).0, 403);
    let t = token_for(&api, "path \"sys/mounts\" { capabilities = [\"read\"] }");
    assert_eq!(api.call("GET", "sys/in-flight-req", Some(&t), None).0, 403);
    let t = token_for(
        &api,
        "path \"sys/in-flight-req\" { capabilities = [\"read\"] }",
    );
    assert_eq!(api.call("GET", "sys/in-flight-req", Some(&t), None).0, 200);
}

/// A `coffer server --dev` whose log goes to a file, at `--log-level info`.
struct LoggedServer {
    child: std::process::Child,
    addr: String,
    token: String,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for LoggedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn logged_server() -> LoggedServer {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let port = free_port();
    let token = unique("root");
    let child = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args([
            "server",
            "--dev",
            "--dev-listen-address",
            &format!("127.0.0.1:{port}"),
            "--dev-root-token-id",
            &token,
            "--log-level",
            "info",
        ])
        .env_remove("COFFER_LOG_LEVEL")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let addr = format!("http://127.0.0.1:{port}");
    let c = cli_support::http();
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.get(format!("{addr}/v1/sys/health")).send().is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    LoggedServer {
        child,
        addr,
        token,
        log,
        _dir: dir,
    }
}

fn call(s: &LoggedServer, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let c = cli_support::http();
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = c
        .request(m, format!("{}/v1/{path}", s.addr))
        .header("X-Vault-Token", &s.token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().unwrap();
    let st = resp.status().as_u16();
    (st, resp.json().unwrap_or(Value::Null))
}

fn log_text(s: &LoggedServer) -> String {
    let mut text = String::new();
    std::fs::File::open(&s.log)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    text
}

#[test]
fn log_levels_change_at_run_time() {
    let s = logged_server();
    let (st, b) = call(&s, "GET", "sys/loggers", None);
    assert_eq!(st, 200);
    for name in [
        "core",
        "audit",
        "expiration",
        "token",
        "policy",
        "http",
        "quotas",
    ] {
        assert_eq!(b["data"][name], "info", "{name}: {b}");
    }
    let marker = unique("marker");
    let debug_line = |text: &str| {
        text.lines()
            .any(|l| l.contains("DEBUG") && l.contains("coffer_http") && l.contains(&marker))
    };
    // At info, the HTTP layer's per-request debug line is not written.
    call(&s, "GET", &format!("secret/data/{marker}"), None);
    assert!(!debug_line(&log_text(&s)));
    // Vault's level names, case and spelling as its parser takes them.
    let (st, _) = call(
        &s,
        "POST",
        "sys/loggers/http",
        Some(json!({"level": " DEBUG "})),
    );
    assert_eq!(st, 204);
    assert_eq!(
        call(&s, "GET", "sys/loggers/http", None).1["data"],
        json!({"http": "debug"})
    );
    assert_eq!(
        call(&s, "GET", "sys/loggers/core", None).1["data"],
        json!({"core": "info"})
    );
    call(&s, "GET", &format!("secret/data/{marker}"), None);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !debug_line(&log_text(&s)) {
        assert!(Instant::now() < deadline, "no debug line: {}", log_text(&s));
        std::thread::sleep(Duration::from_millis(50));
    }
    // Reverting goes back to the configured level.
    assert_eq!(call(&s, "DELETE", "sys/loggers/http", None).0, 204);
    assert_eq!(
        call(&s, "GET", "sys/loggers/http", None).1["data"]["http"],
        "info"
    );
    assert_eq!(
        call(&s, "POST", "sys/loggers", Some(json!({"level": "warning"}))).0,
        204
    );
    let all = call(&s, "GET", "sys/loggers", None).1;
    assert!(
        all["data"]
            .as_object()
            .unwrap()
            .values()
            .all(|v| v == "warn"),
        "{all}"
    );
    assert_eq!(call(&s, "DELETE", "sys/loggers", None).0, 204);
    assert_eq!(
        call(&s, "GET", "sys/loggers/core", None).1["data"]["core"],
        "info"
    );
    // Bad input: 400 with Vault's messages; an unknown name reads empty.
    for (path, body, msg) in [
        (
            "sys/loggers",
            json!({"level": "loud"}),
            "invalid level provided: unknown log level: loud",
        ),
        ("sys/loggers", json!({}), "level is required"),
        ("sys/loggers/core", json!({"level": ""}), "level is empty"),
        (
            "sys/loggers/nope",
            json!({"level": "info"}),
            "logger \"nope\" not found",
        ),
    ] {
        let (st, b) = call(&s, "POST", path, Some(body));
        assert_eq!(st, 400, "{path}: {b}");
        assert_eq!(b["errors"][0], msg);
    }
    assert_eq!(call(&s, "DELETE", "sys/loggers/nope", None).0, 400);
    assert_eq!(
        call(&s, "GET", "sys/loggers/nope", None).1["data"],
        json!({})
    );
}

fn pg_url() -> Option<String> {
    match std::env::var("COFFER_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!("COFFER_TEST_PG_URL is not set: skipping the PostgreSQL part");
            None
        }
    }
}

/// A node on PostgreSQL table `table` whose connection URL carries `password`.
fn pg_node(url: &str, table: &str, dir: &std::path::Path) -> Server {
    let port = free_port();
    let text = format!(
        "cluster_name = \"quota-test\"\n\n[storage.postgresql]\nconnection_url = {url:?}\ntable = {table:?}\n\n\
         [listener.tcp]\naddress = \"127.0.0.1:{port}\"\ntls_disable = true\n"
    );
    let path = dir.join("coffer.toml");
    std::fs::write(&path, text).unwrap();
    Server::start_config(&path, format!("http://127.0.0.1:{port}"))
}

#[test]
fn two_nodes_share_quotas_and_the_sanitized_config_hides_the_password() {
    let Some(base) = pg_url() else { return };
    // Trust authentication ignores the password; it must not show anyway.
    let password = random_hex(12);
    let url = match base.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((user, host)) if !user.contains(':') => {
                format!("{scheme}://{user}:{password}@{host}")
            }
            _ => base.clone(),
        },
        None => base.clone(),
    };
    let table = format!("quota_{}", random_hex(6));
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = pg_node(&url, &table, da.path());
    let mut b = pg_node(&url, &table, db.path());
    let (st, init) = Api::new(&a).call(
        "PUT",
        "sys/init",
        None,
        Some(json!({"secret_shares": 1, "secret_threshold": 1})),
    );
    assert_eq!(st, 200, "{init}");
    let key = init["keys_base64"][0].as_str().unwrap().to_string();
    let root = init["root_token"].as_str().unwrap().to_string();
    for n in [&mut a, &mut b] {
        let (st, v) = Api::new(n).call("PUT", "sys/unseal", None, Some(json!({"key": key})));
        assert_eq!(st, 200, "{v}");
        n.token = root.clone();
    }
    let (api_a, api_b) = (Api::new(&a), Api::new(&b));
    api_a.root("POST", "sys/mounts/secret", Some(json!({"type": "kv-v2"})));
    api_a.root(
        "POST",
        "sys/quotas/rate-limit/shared",
        Some(json!({"rate": 1, "interval": "1m", "path": "secret/data/shared"})),
    );
    // The other node reads and applies it; each node counts its own clients.
    let read = api_b.root("GET", "sys/quotas/rate-limit/shared", None);
    assert_eq!(read["data"]["path"], "secret/data/shared");
    for s in [&a, &b] {
        assert_eq!(get(s, Some(&root), "secret/data/shared").0, 404);
        assert_eq!(get(s, Some(&root), "secret/data/shared").0, 429);
    }
    api_b.root("DELETE", "sys/quotas/rate-limit/shared", None);
    assert_eq!(get(&a, Some(&root), "secret/data/shared").0, 404);

    // sys/config/state/sanitized: sudo, Vault's keys, no password.
    let t = token_for(
        &api_a,
        "path \"sys/config/state/sanitized\" { capabilities = [\"read\"] }",
    );
    assert_eq!(
        api_a
            .call("GET", "sys/config/state/sanitized", Some(&t), None)
            .0,
        403
    );
    let t = token_for(
        &api_a,
        "path \"sys/config/state/sanitized\" { capabilities = [\"read\", \"sudo\"] }",
    );
    let (st, body) = api_a.call("GET", "sys/config/state/sanitized", Some(&t), None);
    assert_eq!(st, 200, "{body}");
    let text = body.to_string();
    assert!(!text.contains(&password), "{text}");
    assert!(
        !text.contains(&table),
        "no storage setting is shown: {text}"
    );
    let data = &body["data"];
    assert_eq!(data["storage"]["type"], "postgresql");
    assert_eq!(data["cluster_name"], "quota-test");
    assert_eq!(data["listeners"][0]["type"], "tcp");
    assert_eq!(data["listeners"][0]["config"]["tls_disable"], true);
    assert_eq!(data["seals"][0]["type"], "shamir");
    drop((api_a, api_b));
    a.kill();
    b.kill();
}

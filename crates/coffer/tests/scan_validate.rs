//! `coffer scan --validate` end to end, against real parts: a Coffer dev
//! server for tokens, the local PostgreSQL for database URLs, stand-in
//! HTTP servers on 127.0.0.1 for the providers' APIs, real keys and
//! certificates. Every credential is generated at run time. Hosts outside
//! the allow-list are watched by listeners nobody accepts on: after the
//! scan their backlog is empty, so nothing connected.

mod cli_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use cli_support::{cli, free_port, random_hex, Api, Run, Server};
use coffer_scan::template::{expand, Rng};
use serde_json::{json, Value};

/// A seed that differs from run to run.
fn seed() -> u64 {
    u64::from_str_radix(&random_hex(8), 16).unwrap()
}

/// `coffer scan --no-progress ARGS .` in `dir` (JSON unless ARGS name a
/// format with `-f`), with the
/// environment a user may well have: a token of their own (which
/// validation must never use) and, when `server` is given, its address.
fn scan(dir: &Path, server: Option<&Server>, args: &[&str]) -> Run {
    let home = tempfile::tempdir().unwrap();
    // A token file of the user's own, as `vault login` leaves it.
    std::fs::write(home.path().join(".vault-token"), random_hex(16)).unwrap();
    let mut c = cli(home.path());
    c.current_dir(dir).args(["scan", "--no-progress"]);
    if !args.contains(&"-f") {
        c.args(["--format", "json"]);
    }
    c.args(args).arg(".");
    if let Some(s) = server {
        c.env("VAULT_ADDR", &s.addr)
            .env("VAULT_TOKEN", &s.token)
            .env("COFFER_TOKEN", &s.token);
    }
    Run::of(&mut c)
}

/// The findings of a JSON report, by path.
fn by_path(run: &Run) -> Vec<(String, Value)> {
    let v = run.json();
    v.as_array()
        .unwrap_or_else(|| panic!("{run:#?}"))
        .iter()
        .map(|f| {
            (
                f["path"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("./")
                    .to_string(),
                f.clone(),
            )
        })
        .collect()
}

/// The finding at `path` (exactly one).
#[track_caller]
fn at<'a>(found: &'a [(String, Value)], path: &str) -> &'a Value {
    let hits: Vec<_> = found.iter().filter(|(p, _)| p == path).collect();
    assert_eq!(hits.len(), 1, "{path}: {found:#?}");
    &hits[0].1
}

/// Asserts a finding's validation and the validator that gave it.
#[track_caller]
fn assert_validation(f: &Value, status: &str, validator: &str) {
    assert_eq!(f["validation"], status, "{f:#}");
    assert_eq!(f["validator"], validator, "{f:#}");
    assert!(
        f["validationDetail"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{f:#}"
    );
}

/// Asserts that none of `secrets` appears in the run's output.
#[track_caller]
fn assert_hidden(run: &Run, secrets: &[&str]) {
    for s in secrets {
        assert!(
            !run.stdout.contains(s) && !run.stderr.contains(s),
            "a secret was printed: {run:#?}"
        );
    }
}

fn write(dir: &Path, path: &str, text: &str) {
    let p = dir.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A listener nobody accepts on; [`assert_untouched`] checks its backlog.
fn watcher() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// Asserts that no connection reached `l` (a connection completes in the
/// kernel's backlog whether or not anyone accepts it).
#[track_caller]
fn assert_untouched(l: &TcpListener) {
    l.set_nonblocking(true).unwrap();
    match l.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("a host outside the allow-list was contacted: {other:?}"),
    }
}

#[test]
fn coffer_tokens_are_live_or_revoked_at_the_configured_server() {
    let server = Server::start();
    let api = Api::new(&server);
    let create = |body: Value| -> String {
        let v = api.root("POST", "auth/token/create", Some(body));
        v["auth"]["client_token"].as_str().unwrap().to_string()
    };
    let live = create(json!({"policies": ["default"]}));
    let revoked = create(json!({"policies": ["default"]}));
    // One use only: a second lookup would find it used up, so "live" in
    // both files proves it was checked once.
    let once = create(json!({"policies": ["default"], "num_uses": 1}));
    api.root("POST", "auth/token/revoke", Some(json!({"token": revoked})));
    assert!(live.starts_with("cfs."), "Coffer's token format changed");

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "deploy.env", &format!("VAULT_TOKEN={live}\n"));
    write(d, "old/ci.env", &format!("VAULT_TOKEN={revoked}\n"));
    write(d, "a/app.env", &format!("export VAULT_TOKEN=\"{once}\"\n"));
    write(d, "b/app.env", &format!("X-Vault-Token: {once}\n"));
    let secrets = [
        live.as_str(),
        revoked.as_str(),
        once.as_str(),
        server.token.as_str(),
    ];

    // Not asked: no validation at all, the tokens untouched.
    let run = scan(d, Some(&server), &[]).code(1);
    for (_, f) in by_path(&run) {
        assert!(f.get("validation").is_none(), "{f:#}");
    }

    let run = scan(d, Some(&server), &["--validate"]).code(1);
    assert_hidden(&run, &secrets);
    let found = by_path(&run);
    assert_eq!(found.len(), 4, "{found:#?}");
    assert_validation(at(&found, "deploy.env"), "live", "coffer-token");
    assert_validation(at(&found, "old/ci.env"), "revoked", "coffer-token");
    assert_validation(at(&found, "a/app.env"), "live", "coffer-token");
    assert_validation(at(&found, "b/app.env"), "live", "coffer-token");
    // It was used once: now it is gone.
    let (st, _) = api.call("GET", "auth/token/lookup-self", Some(&once), None);
    assert_eq!(st, 403);

    // The human report shows it too.
    let home = tempfile::tempdir().unwrap();
    let run = Run::of(
        cli(home.path())
            .current_dir(d)
            .env("COFFER_ADDR", &server.addr)
            .args(["scan", "--no-progress", "--validate", "deploy.env", "old"]),
    )
    .code(1);
    assert!(
        run.stdout
            .contains("    validation: live (coffer-token: the server at http://127.0.0.1:"),
        "{run:#?}"
    );
    assert!(
        run.stdout
            .contains("    validation: revoked (coffer-token: "),
        "{run:#?}"
    );
    assert_hidden(&run, &secrets);

    // No server named: nothing is sent anywhere.
    let run = scan(d, None, &["--validate"]).code(1);
    for (_, f) in by_path(&run) {
        assert_validation(&f, "unknown", "coffer-token");
        assert!(f["validationDetail"]
            .as_str()
            .unwrap()
            .contains("no server configured"));
    }
    let (st, _) = api.call("GET", "auth/token/lookup-self", Some(&live), None);
    assert_eq!(st, 200, "the live token still works");
}

/// `COFFER_TEST_PG_URL`, or `None` (with a notice) to skip.
fn pg_url() -> Option<reqwest::Url> {
    match std::env::var("COFFER_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => Some(reqwest::Url::parse(&u).unwrap()),
        _ => {
            eprintln!("COFFER_TEST_PG_URL is not set: skipping the PostgreSQL validation test");
            None
        }
    }
}

#[test]
fn database_urls_are_checked_only_on_allowed_hosts() {
    let Some(base) = pg_url() else { return };
    let host = base.host_str().unwrap().to_string();
    let url = |user: &str, host: &str, port: u16| {
        let mut u = base.clone();
        u.set_username(user).unwrap();
        u.set_password(Some(&random_hex(12))).unwrap();
        u.set_host(Some(host)).unwrap();
        u.set_port(Some(port)).unwrap();
        u.to_string()
    };
    let pg_port = base.port().unwrap_or(5432);
    let user = if base.username().is_empty() {
        "postgres"
    } else {
        base.username()
    };
    // Trust authentication: an existing role gets in whatever the
    // password; a role that does not exist is refused (SQLSTATE 28000).
    let live = url(user, &host, pg_port);
    let revoked = url(&format!("gone_{}", random_hex(6)), &host, pg_port);
    let refused = url(user, &host, free_port());
    let (watch, watch_port) = watcher();
    let outside = url(user, "localhost", watch_port);

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "live.env", &format!("DATABASE_URL={live}\n"));
    write(d, "revoked.env", &format!("DATABASE_URL=\"{revoked}\"\n"));
    write(d, "refused.env", &format!("DATABASE_URL={refused}\n"));
    write(d, "outside.env", &format!("DATABASE_URL={outside}\n"));
    let secrets = [
        live.as_str(),
        revoked.as_str(),
        refused.as_str(),
        outside.as_str(),
    ];

    // No --validate-host: no database is contacted at all.
    let run = scan(d, None, &["--validate"]).code(1);
    let found = by_path(&run);
    assert_eq!(found.len(), 4, "{found:#?}");
    for (_, f) in &found {
        assert_validation(f, "unknown", "postgres");
        assert!(f["validationDetail"]
            .as_str()
            .unwrap()
            .contains("not in --validate-host"));
    }
    assert_untouched(&watch);

    let run = scan(
        d,
        None,
        &[
            "--validate",
            "--validate-host",
            &host,
            "--validate-timeout",
            "10",
        ],
    )
    .code(1);
    assert_hidden(&run, &secrets);
    let found = by_path(&run);
    assert_validation(at(&found, "live.env"), "live", "postgres");
    assert_validation(at(&found, "revoked.env"), "revoked", "postgres");
    let f = at(&found, "refused.env");
    assert_validation(f, "unknown", "postgres");
    assert!(
        f["validationDetail"]
            .as_str()
            .unwrap()
            .contains("could not connect"),
        "{f:#}"
    );
    let f = at(&found, "outside.env");
    assert_validation(f, "unknown", "postgres");
    assert!(
        f["validationDetail"]
            .as_str()
            .unwrap()
            .contains(&format!("localhost:{watch_port}")),
        "{f:#}"
    );
    assert_untouched(&watch);
}

/// One request a stand-in received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authorization: String,
}

/// A stand-in for GitHub's and Slack's APIs on 127.0.0.1: `GET /user`
/// answers 200 for `live` tokens and 401 otherwise; `POST
/// /api/auth.test` answers `ok: true` or `token_revoked`. Records every
/// request.
fn stand_in(live: Vec<String>) -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { continue };
            if let Some(req) = serve(conn, &live) {
                log.lock().unwrap().push(req);
            }
        }
    });
    (port, seen)
}

/// Answers one request (one per connection).
fn serve(mut conn: TcpStream, live: &[String]) -> Option<Seen> {
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let (mut authorization, mut length) = (String::new(), 0usize);
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        match name.to_ascii_lowercase().as_str() {
            "authorization" => authorization = value.trim().to_string(),
            "content-length" => length = value.trim().parse().ok()?,
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let is_live = live.iter().any(|t| authorization == format!("Bearer {t}"));
    let (status, text) = match (method.as_str(), path.as_str(), is_live) {
        ("GET", "/user", true) => (200, json!({"login": "someone"})),
        ("GET", "/user", false) => (401, json!({"message": "Bad credentials"})),
        ("POST", "/api/auth.test", true) => (200, json!({"ok": true})),
        ("POST", "/api/auth.test", false) => (200, json!({"ok": false, "error": "token_revoked"})),
        _ => (404, json!({})),
    };
    let text = text.to_string();
    let _ = write!(
        conn,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    Some(Seen {
        method,
        path,
        authorization,
    })
}

#[test]
fn provider_tokens_need_online_mode_and_an_allowed_host() {
    let mut rng = Rng::new(seed());
    let gh_live = expand("ghp_<<crc62:30>>", &mut rng, 1.0);
    let gh_revoked = expand("ghp_<<crc62:30>>", &mut rng, 1.0);
    let slack_live = expand("xoxb-<<digit:12>>-<<digit:13>>-<<alnum:24>>", &mut rng, 1.0);
    let slack_revoked = expand("xoxb-<<digit:12>>-<<digit:13>>-<<alnum:24>>", &mut rng, 1.0);
    let (port, seen) = stand_in(vec![gh_live.clone(), slack_live.clone()]);

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "ci/one.env", &format!("GITHUB_TOKEN={gh_live}\n"));
    write(d, "ci/two.env", &format!("GITHUB_TOKEN={gh_live}\n"));
    write(d, "ci/old.env", &format!("GITHUB_TOKEN={gh_revoked}\n"));
    write(
        d,
        "bot/live.env",
        &format!("SLACK_BOT_TOKEN={slack_live}\n"),
    );
    write(
        d,
        "bot/old.env",
        &format!("SLACK_BOT_TOKEN={slack_revoked}\n"),
    );
    let secrets = [
        gh_live.as_str(),
        gh_revoked.as_str(),
        slack_live.as_str(),
        slack_revoked.as_str(),
    ];
    let github = format!("github=http://127.0.0.1:{port}");
    let slack = format!("slack=http://127.0.0.1:{port}/api");
    let endpoints = [
        "--validate-endpoint",
        &github,
        "--validate-endpoint",
        &slack,
    ];

    // Local mode: the stand-in is allowed, but providers are not asked.
    let mut args = vec!["--validate", "--validate-host", "127.0.0.1"];
    args.extend(endpoints);
    let run = scan(d, None, &args).code(1);
    for (_, f) in by_path(&run) {
        assert_eq!(f["validation"], "unknown", "{f:#}");
        assert!(
            f["validationDetail"]
                .as_str()
                .unwrap()
                .contains("--validate=online"),
            "{f:#}"
        );
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "local mode called a provider"
    );

    // Online, host not allowed: still nobody asked.
    let mut args = vec!["--validate=online", "--validate-host", "db.internal"];
    args.extend(endpoints);
    let run = scan(d, None, &args).code(1);
    for (_, f) in by_path(&run) {
        assert_eq!(f["validation"], "unknown", "{f:#}");
        assert!(f["validationDetail"]
            .as_str()
            .unwrap()
            .contains("not in --validate-host"));
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "a host outside the allow-list was called"
    );

    // Online and allowed, SARIF: each distinct token asked once.
    let mut args = vec![
        "--validate=online",
        "--validate-host",
        "127.0.0.1",
        "-f",
        "sarif",
    ];
    args.extend(endpoints);
    let run = scan(d, None, &args).code(1);
    assert_hidden(&run, &secrets);
    let sarif = run.json();
    let mut got: Vec<(String, String, String)> = sarif["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let p = &r["properties"];
            (
                r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("./")
                    .to_string(),
                p["validation"].as_str().unwrap_or("-").to_string(),
                p["validator"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    got.sort();
    let want = [
        ("bot/live.env", "live", "slack"),
        ("bot/old.env", "revoked", "slack"),
        ("ci/old.env", "revoked", "github"),
        ("ci/one.env", "live", "github"),
        ("ci/two.env", "live", "github"),
    ]
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()));
    assert_eq!(got, want);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(
        seen.iter()
            .filter(|s| s.authorization == format!("Bearer {gh_live}"))
            .count(),
        1,
        "the same token was checked twice"
    );
    assert!(seen.iter().all(|s| (s.method == "GET" && s.path == "/user")
        || (s.method == "POST" && s.path == "/api/auth.test")));

    // The overridden endpoint on a host not in the list is never contacted.
    let (watch, watch_port) = watcher();
    let elsewhere = format!("github=http://localhost:{watch_port}");
    let run = scan(
        d,
        None,
        &[
            "--validate=online",
            "--validate-host",
            "127.0.0.1",
            "--validate-endpoint",
            &elsewhere,
        ],
    )
    .code(1);
    let found = by_path(&run);
    let f = at(&found, "ci/old.env");
    assert_eq!(f["validation"], "unknown", "{f:#}");
    assert!(
        f["validationDetail"]
            .as_str()
            .unwrap()
            .contains("host localhost"),
        "{f:#}"
    );
    assert_untouched(&watch);
}

#[test]
fn a_provider_that_never_answers_is_unknown_after_the_timeout() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    // Accepts and reads, never answers.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming().flatten() {
            held.push(c);
        }
    });
    let mut rng = Rng::new(seed());
    let token = expand("ghp_<<crc62:30>>", &mut rng, 1.0);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "ci.env", &format!("GITHUB_TOKEN={token}\n"));
    let github = format!("github=http://127.0.0.1:{port}");
    let run = scan(
        dir.path(),
        None,
        &[
            "--validate=online",
            "--validate-host",
            "127.0.0.1",
            "--validate-endpoint",
            &github,
            "--validate-timeout",
            "1",
        ],
    )
    .code(1);
    let found = by_path(&run);
    let f = at(&found, "ci.env");
    assert_validation(f, "unknown", "github");
    assert!(
        f["validationDetail"].as_str().unwrap().contains("in time"),
        "{f:#}"
    );
}

/// A self-signed certificate for `key`, valid from `from` to `to`.
fn certificate(key: &rcgen::KeyPair, from: (i32, u8, u8), to: (i32, u8, u8)) -> String {
    let mut params = rcgen::CertificateParams::new(vec!["svc.internal".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
    params.not_after = rcgen::date_time_ymd(to.0, to.1, to.2);
    params.self_signed(key).unwrap().pem()
}

/// A JWT with `claims` and a random signature.
fn jwt(claims: Value) -> String {
    let e = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    format!(
        "{}.{}.{}",
        e(br#"{"alg":"HS256","typ":"JWT"}"#),
        e(claims.to_string().as_bytes()),
        e(random_hex(32).as_bytes())
    )
}

#[test]
fn keys_pair_with_certificates_and_jwts_expire_offline() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // In force, key and certificate in two files.
    let k1 = rcgen::KeyPair::generate().unwrap();
    write(d, "a/tls.key", &k1.serialize_pem());
    write(
        d,
        "a/tls.crt",
        &certificate(&k1, (2020, 1, 1), (2090, 1, 1)),
    );
    // Expired (Ed25519).
    let k2 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    write(d, "b/old.key", &k2.serialize_pem());
    write(
        d,
        "b/old.pem",
        &certificate(&k2, (2019, 1, 1), (2020, 1, 1)),
    );
    // In force, RSA, key and certificate in one file.
    let k3 = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    write(
        d,
        "c/bundle.pem",
        &format!(
            "{}{}",
            certificate(&k3, (2020, 1, 1), (2090, 1, 1)),
            k3.serialize_pem()
        ),
    );
    // A certificate beside it, but not its own.
    let k4 = rcgen::KeyPair::generate().unwrap();
    write(d, "d/lonely.key", &k4.serialize_pem());
    write(
        d,
        "d/other.crt",
        &certificate(&k1, (2020, 1, 1), (2090, 1, 1)),
    );
    let sub = random_hex(8);
    let expired = jwt(json!({"sub": sub, "exp": 1_600_000_000, "iss": "https://id.internal/"}));
    let current = jwt(json!({"sub": sub, "exp": 4_000_000_000u64, "iss": "https://id.internal/"}));
    write(
        d,
        "web/old.txt",
        &format!("Authorization: Bearer {expired}\n"),
    );
    write(
        d,
        "web/new.txt",
        &format!("Authorization: Bearer {current}\n"),
    );

    let run = scan(d, None, &["--validate"]).code(1);
    assert_hidden(&run, &[expired.as_str(), current.as_str()]);
    let found = by_path(&run);
    let key = |path: &str| at(&found, path);
    assert_validation(key("a/tls.key"), "live", "key-pair");
    assert!(key("a/tls.key")["validationDetail"]
        .as_str()
        .unwrap()
        .contains("a/tls.crt, valid until 2090-01-01T00:00:00Z"));
    assert_validation(key("b/old.key"), "revoked", "key-pair");
    assert!(key("b/old.key")["validationDetail"]
        .as_str()
        .unwrap()
        .contains("expired at 2020-01-01T00:00:00Z"));
    assert_validation(key("c/bundle.pem"), "live", "key-pair");
    assert_validation(key("d/lonely.key"), "unknown", "key-pair");
    assert_validation(key("web/old.txt"), "revoked", "jwt");
    assert_eq!(
        key("web/old.txt")["validationDetail"],
        "expired at 2020-09-13T12:26:40Z (issuer on host id.internal)"
    );
    assert_validation(key("web/new.txt"), "unknown", "jwt");
}

#[test]
fn validation_flags_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--validate=sometimes"][..],
        &["--validate-host", "h"][..],
        &[
            "--validate=online",
            "--validate-endpoint",
            "github=http://ghe.internal",
        ][..],
        &[
            "--validate=online",
            "--validate-endpoint",
            "gitlab=https://gl.internal",
        ][..],
        &["--validate", "--validate-host", "a/b"][..],
        &["--validate", "--validate-timeout", "0"][..],
    ] {
        let run = scan(dir.path(), None, args);
        assert_ne!(run.code, 0, "{args:?}: {run:#?}");
        assert_ne!(run.code, 1, "{args:?} taken for findings: {run:#?}");
    }
}

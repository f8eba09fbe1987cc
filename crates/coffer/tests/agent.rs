//! `coffer agent` against real server processes: AppRole and JWT auto-auth,
//! a consul-template file with a KV secret and a dynamic PostgreSQL
//! credential (lease renewed on its lease), re-rendering on change through
//! the fallback poll and through the server's change events, a new
//! login after the token is revoked, a server restart, exec mode, the API
//! proxy, refused configs, and the real `bao agent` rendering the same bytes.

mod cli_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cli_support::{bao, cli, free_port, random_hex, start_initialised, Api, Server};
use serde_json::{json, Value};

/// A running agent, killed on drop; its log is kept in a file.
struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    fn start(config: &Path, home: &Path) -> Agent {
        let log = config.with_extension("log");
        let out = std::fs::File::create(&log).unwrap();
        let child = cli(home)
            .args([
                "agent",
                "-config",
                config.to_str().unwrap(),
                "-log-level",
                "debug",
            ])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Agent { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` every 100 ms until it holds or `limit` passes.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn pg_url() -> Option<String> {
    match std::env::var("COFFER_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!("COFFER_TEST_PG_URL is not set: skipping the agent's PostgreSQL test");
            None
        }
    }
}

/// `psql -tAc sql` as the URL's user; the trimmed output.
fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .arg(url)
        .args(["-tAc", sql])
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn role_exists(url: &str, role: &str) -> bool {
    psql(
        url,
        &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{role}'"),
    ) == "1"
}

/// Sets up AppRole `agent` with `policy`; returns (role_id, secret_id).
fn approle(api: &Api, policy: &str, ttl: &str) -> (String, String) {
    api.root("POST", "sys/auth/approle", Some(json!({"type": "approle"})));
    api.root(
        "PUT",
        "sys/policies/acl/agent",
        Some(json!({"policy": policy})),
    );
    api.root(
        "POST",
        "auth/approle/role/agent",
        Some(json!({"token_policies": "agent", "token_ttl": ttl, "token_max_ttl": "1h"})),
    );
    let role_id = api.root("GET", "auth/approle/role/agent/role-id", None)["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let secret_id = api.root("POST", "auth/approle/role/agent/secret-id", Some(json!({})))["data"]
        ["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    (role_id, secret_id)
}

/// The line `prefix...` of `text`, without the prefix.
fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix(prefix))
}

const POLICY: &str = r#"
path "secret/data/app/*" { capabilities = ["read"] }
path "database/creds/app" { capabilities = ["read"] }
path "sys/leases/renew" { capabilities = ["update"] }
"#;

#[test]
fn approle_agent_renders_kv_and_postgres_renews_follows_changes_and_survives() {
    let Some(pg) = pg_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (server, cfg, keys) = start_initialised(dir.path(), 1, 1);
    let api = Api::new(&server);
    api.root(
        "POST",
        "sys/mounts/secret",
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    );
    let pw1 = random_hex(12);
    api.root(
        "POST",
        "secret/data/app/db",
        Some(json!({"data": {"password": pw1, "note": "aGVsbG8gYWdlbnQ="}})),
    );
    api.root(
        "POST",
        "sys/mounts/database",
        Some(json!({"type": "database"})),
    );
    api.root(
        "POST",
        "database/config/pg",
        Some(
            json!({"plugin_name": "postgresql-database-plugin", "connection_url": pg,
                    "allowed_roles": ["app"]}),
        ),
    );
    api.root(
        "POST",
        "database/roles/app",
        Some(json!({"db_name": "pg", "default_ttl": "6s", "max_ttl": "1h",
            "creation_statements": ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"]})),
    );
    let (role_id, secret_id) = approle(&api, POLICY, "6s");
    let d = dir.path();
    std::fs::write(d.join("role_id"), &role_id).unwrap();
    std::fs::write(d.join("secret_id"), &secret_id).unwrap();
    let template = concat!(
        "{{ with secret \"secret/data/app/db\" }}password={{ .Data.data.password }}\n",
        "note={{ .Data.data.note | base64Decode }}\n",
        "version={{ .Data.metadata.version }}\n{{ end }}",
        "{{ with secret \"database/creds/app\" }}user={{ .Data.username }}\n",
        "pass={{ .Data.password }}\nlease={{ .LeaseDuration }}\n{{ end }}",
    );
    std::fs::write(d.join("app.tpl"), template).unwrap();
    let out = d.join("app.conf");
    let sink = d.join("token");
    let config = d.join("agent.hcl");
    std::fs::write(
        &config,
        format!(
            r#"
vault {{ address = "{addr}" }}
auto_auth {{
  method "approle" {{
    min_backoff = "1s"
    max_backoff = "2s"
    config = {{
      role_id_file_path = "{d}/role_id"
      secret_id_file_path = "{d}/secret_id"
      remove_secret_id_file_after_reading = true
    }}
  }}
  sink "file" {{ config = {{ path = "{sink}" }} }}
}}
template_config {{ static_secret_render_interval = "1s" }}
template {{
  source = "app.tpl"
  destination = "{out}"
  perms = "0640"
  command = "echo rendered >> {d}/commands.log"
}}
"#,
            addr = server.addr,
            d = d.display(),
            sink = sink.display(),
            out = out.display(),
        ),
    )
    .unwrap();
    let agent = Agent::start(&config, d);
    assert!(
        wait_for(Duration::from_secs(20), || read(&out).contains("user=")),
        "no render: {}",
        agent.log()
    );
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o640
    );
    assert_eq!(
        std::fs::metadata(&sink).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !d.join("secret_id").exists(),
        "secret_id file removed after reading"
    );
    let first = read(&out);
    assert_eq!(line(&first, "password="), Some(pw1.as_str()));
    assert_eq!(line(&first, "note="), Some("hello agent"));
    assert_eq!(line(&first, "lease="), Some("6"));
    let user1 = line(&first, "user=").unwrap().to_string();
    assert!(role_exists(&pg, &user1));
    assert!(wait_for(Duration::from_secs(5), || read(
        &d.join("commands.log")
    )
    .contains("rendered")));
    let token1 = read(&sink);

    // Both the 6 s token and the 6 s lease outlive their TTL: they are renewed.
    std::thread::sleep(Duration::from_secs(10));
    let now = read(&out);
    assert_eq!(
        line(&now, "user="),
        Some(user1.as_str()),
        "creds not replaced by renewal"
    );
    assert!(
        role_exists(&pg, &user1),
        "the lease was renewed, so the role lives"
    );
    assert_eq!(read(&sink), token1, "the token was renewed, not replaced");
    let (st, look) = api.call(
        "POST",
        "auth/token/lookup",
        Some(&server.token),
        Some(json!({"token": token1})),
    );
    assert_eq!(st, 200, "{look}");
    assert!(agent.log().contains("renewed for"), "{}", agent.log());

    // A KV change re-renders (fallback poll), keeping the same database user.
    let pw2 = random_hex(12);
    api.root(
        "POST",
        "secret/data/app/db",
        Some(json!({"data": {"password": pw2, "note": "eA=="}})),
    );
    let t = Instant::now();
    assert!(
        wait_for(Duration::from_secs(10), || line(&read(&out), "password=")
            == Some(pw2.as_str())),
        "{}",
        agent.log()
    );
    eprintln!(
        "measured: KV write to re-render (1 s poll): {:?}",
        t.elapsed()
    );
    assert_eq!(line(&read(&out), "user="), Some(user1.as_str()));
    assert_eq!(line(&read(&out), "version="), Some("2"));

    // Revoking the token (and with it the lease): a new login, new credentials.
    api.root("POST", "auth/token/revoke", Some(json!({"token": token1})));
    let t = Instant::now();
    assert!(
        wait_for(Duration::from_secs(20), || read(&sink) != token1
            && line(&read(&out), "user=").is_some_and(|u| u != user1)),
        "{}",
        agent.log()
    );
    eprintln!(
        "measured: token revoked to new login and new credentials rendered: {:?}",
        t.elapsed()
    );
    assert!(!role_exists(&pg, &user1), "revoked with the token");
    let user2 = line(&read(&out), "user=").unwrap().to_string();
    assert!(role_exists(&pg, &user2));

    // A server restart: the agent keeps its token and follows changes after it.
    let token2 = read(&sink);
    let root = server.token.clone();
    let addr = server.addr.clone();
    drop(server);
    std::thread::sleep(Duration::from_secs(2));
    let mut server = Server::start_config(&cfg, addr);
    server.token = root;
    let api = Api::new(&server);
    let (st, v) = api.call("PUT", "sys/unseal", None, Some(json!({"key": keys[0]})));
    assert_eq!(st, 200, "{v}");
    let pw3 = random_hex(12);
    api.root(
        "POST",
        "secret/data/app/db",
        Some(json!({"data": {"password": pw3, "note": "eA=="}})),
    );
    assert!(
        wait_for(Duration::from_secs(20), || line(&read(&out), "password=")
            == Some(pw3.as_str())),
        "{}",
        agent.log()
    );
    eprintln!(
        "measured: after the restart, KV write to re-render: {:?}",
        t.elapsed()
    );
    assert_eq!(read(&sink), token2, "the token outlived the restart");
    assert!(
        agent.log().contains("events: cannot subscribe"),
        "the poll ran because the event endpoint is absent"
    );
    assert_eq!(line(&read(&out), "user="), Some(user2.as_str()));
    // No secret value in the agent's log.
    let log = agent.log();
    for v in [&pw1, &pw2, &pw3, &secret_id, &token1, &token2] {
        assert!(!log.contains(v.as_str()), "a secret in the agent log");
    }
}

/// A JWT signed with an Ed25519 key made at run time.
struct Issuer {
    key: aws_lc_rs::signature::Ed25519KeyPair,
}

impl Issuer {
    fn new() -> Issuer {
        Issuer {
            key: aws_lc_rs::signature::Ed25519KeyPair::generate().unwrap(),
        }
    }

    fn jwks(&self) -> Value {
        use aws_lc_rs::signature::KeyPair as _;
        use base64::Engine as _;
        let x =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.key.public_key().as_ref());
        json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": x}]})
    }

    fn sign(&self, claims: &Value) -> String {
        use base64::Engine as _;
        let b = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let signed = format!(
            "{}.{}",
            b(&json!({"alg": "EdDSA", "kid": "k1", "typ": "JWT"})),
            b(claims)
        );
        let sig = self.key.sign(signed.as_bytes());
        format!(
            "{signed}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig.as_ref())
        )
    }
}

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sa_token(issuer: &Issuer, name: &str) -> String {
    let now = now();
    issuer.sign(&json!({"iss": ISSUER, "aud": ["coffer"],
        "sub": format!("system:serviceaccount:apps:{name}"),
        "iat": now, "nbf": now, "exp": now + 600,
        "kubernetes.io": {"namespace": "apps", "serviceaccount": {"name": name}}}))
}

#[test]
fn jwt_agent_rereads_its_file_runs_exec_and_serves_the_proxy() {
    let server = Server::start();
    let api = Api::new(&server);
    let issuer = Issuer::new();
    api.root("POST", "sys/auth/jwt", Some(json!({"type": "jwt"})));
    api.root(
        "POST",
        "auth/jwt/config",
        Some(json!({"jwks": issuer.jwks(), "bound_issuer": ISSUER})),
    );
    api.root(
        "PUT",
        "sys/policies/acl/app",
        Some(json!({"policy": "path \"secret/data/app/*\" { capabilities = [\"read\"] }"})),
    );
    api.root(
        "POST",
        "auth/jwt/role/app",
        Some(
            json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": ["coffer"],
                    "token_policies": ["app"], "token_ttl": "1h"}),
        ),
    );
    let v1 = random_hex(8);
    api.root(
        "POST",
        "secret/data/app/exec",
        Some(json!({"data": {"v": v1}})),
    );
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let jwt_file = d.join("sa-token");
    std::fs::write(&jwt_file, sa_token(&issuer, "first")).unwrap();
    let sink = d.join("token");
    let child_log = d.join("child.log");
    let proxy_port = free_port();
    let config = d.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[vault]
address = "{addr}"

[auto_auth.method]
type = "jwt"
min_backoff = "1s"
max_backoff = "2s"
config = {{ path = "{jwt}", role = "app", remove_jwt_after_reading = false }}

[[auto_auth.sink]]
type = "file"
config = {{ path = "{sink}" }}

[template_config]
static_secret_render_interval = "1s"

[[env_template]]
name = "APP_SECRET"
contents = '{{{{ with secret "secret/data/app/exec" }}}}{{{{ .Data.data.v }}}}{{{{ end }}}}'

[exec]
command = ["/bin/sh", "-c", "echo \"start $APP_SECRET\" >> {log}; trap 'echo stop >> {log}; exit 0' TERM; while true; do sleep 0.1; done"]
restart_on_secret_changes = "always"
restart_kill_timeout = "5s"

[api_proxy]
use_auto_auth_token = true

[[listener]]
type = "tcp"
address = "127.0.0.1:{proxy_port}"
tls_disable = true
"#,
            addr = server.addr,
            jwt = jwt_file.display(),
            sink = sink.display(),
            log = child_log.display(),
        ),
    )
    .unwrap();
    let agent = Agent::start(&config, d);
    assert!(
        wait_for(Duration::from_secs(20), || read(&child_log)
            .contains(&format!("start {v1}"))),
        "child not started: {}",
        agent.log()
    );
    let token1 = read(&sink);
    let (st, v) = api.call("GET", "auth/token/lookup-self", Some(&token1), None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["meta"]["role"], "app", "{v}");

    // A changed secret restarts the child with the new value.
    let v2 = random_hex(8);
    api.root(
        "POST",
        "secret/data/app/exec",
        Some(json!({"data": {"v": v2}})),
    );
    let t = Instant::now();
    assert!(
        wait_for(Duration::from_secs(10), || read(&child_log)
            .contains(&format!("start {v2}"))),
        "child not restarted: {}\n{}",
        read(&child_log),
        agent.log()
    );
    eprintln!(
        "measured: KV write to child restarted (1 s poll): {:?}",
        t.elapsed()
    );
    let log = read(&child_log);
    assert_eq!(log.matches("start ").count(), 2, "{log}");
    assert!(log.contains("stop"), "stopped with SIGTERM first: {log}");

    // The file is read again at the next login: the platform rotated it.
    std::fs::write(&jwt_file, sa_token(&issuer, "second")).unwrap();
    api.root("POST", "auth/token/revoke", Some(json!({"token": token1})));
    assert!(
        wait_for(Duration::from_secs(20), || {
            let t = read(&sink);
            t != token1 && !t.is_empty()
        }),
        "{}",
        agent.log()
    );
    let (st, v) = api.call("GET", "auth/token/lookup-self", Some(&read(&sink)), None);
    assert_eq!(st, 200, "{v}");
    assert!(
        v["data"]["display_name"]
            .as_str()
            .unwrap_or("")
            .contains("second"),
        "logged in with the rotated file: {v}"
    );

    // The proxy: an unmodified client without a token reads through the agent.
    let proxy = format!("http://127.0.0.1:{proxy_port}");
    let http = cli_support::http();
    let r: Value = http
        .get(format!("{proxy}/v1/secret/data/app/exec"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["data"]["data"]["v"], v2.as_str(), "{r}");
    // A caller's own token is kept, not replaced by the agent's.
    let st = http
        .get(format!("{proxy}/v1/secret/data/app/exec"))
        .header("X-Vault-Token", "s.not-a-token")
        .send()
        .unwrap()
        .status();
    assert_eq!(st, 403);
    // An absolute-form request naming another host still goes to the
    // configured server: the agent's token never reaches the other host.
    let decoy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    decoy.set_nonblocking(true).unwrap();
    let decoy_addr = decoy.local_addr().unwrap();
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", proxy_port)).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    use std::io::{Read as _, Write as _};
    write!(
        raw,
        "GET http://{decoy_addr}/v1/secret/data/app/exec HTTP/1.1\r\nHost: {decoy_addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = raw.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(&v2), "answered by the configured server");
    assert!(decoy.accept().is_err(), "the decoy host was contacted");
    // A path outside /v1/ is not forwarded.
    let st = http.get(format!("{proxy}/ui/")).send().unwrap().status();
    assert_eq!(st, 404);
    // The real bao CLI, given no token, through the proxy.
    if let Some(bao) = bao() {
        let out = Command::new(bao)
            .args(["kv", "get", "-format=json", "-mount=secret", "app/exec"])
            .env("VAULT_ADDR", &proxy)
            .env_remove("VAULT_TOKEN")
            .env("HOME", d)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["data"]["data"]["v"], v2.as_str());
    }
}

#[test]
fn malformed_agent_configs_are_refused_with_the_field_named() {
    let d = tempfile::tempdir().unwrap();
    let tf =
        "auto_auth {\n method \"token_file\" {\n config = { token_file_path = \"/t\" }\n }\n}\n";
    let cases = [
        (
            "a.hcl",
            "auto_auth {\n method \"approle\" {\n config = { role_id_file_path = \"/r\" }\n }\n}\n"
                .to_string(),
            "auto_auth.method.config.secret_id_file_path: required",
        ),
        (
            "b.toml",
            "[auto_auth.method]\ntype = \"jwt\"\nconfig = { path = \"/t\", role = \"r\", colour = \"red\" }\n".to_string(),
            "auto_auth.method.config.colour: unknown field",
        ),
        (
            "c.hcl",
            format!("{tf}template {{\n contents = \"{{{{ with secret \\\"a\\\" }}}}\"\n destination = \"/x\"\n}}"),
            "template[0]",
        ),
        (
            "d.hcl",
            format!("{tf}exec {{\n command = [\"/bin/true\"]\n restart_on_secret_changes = \"sometimes\"\n}}\nenv_template \"A\" {{\n contents = \"x\"\n}}"),
            "exec.restart_on_secret_changes: expected \"always\" or \"never\"",
        ),
    ];
    for (name, text, want) in cases {
        let p = d.path().join(name);
        std::fs::write(&p, text).unwrap();
        let out = cli(d.path())
            .args(["agent", "-config", p.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(want), "{name}: {err}");
    }
}

/// The real OpenBao agent and Coffer's render the same template, against
/// the same Coffer server, to the same bytes.
#[test]
fn bao_agent_renders_the_same_bytes_as_coffer_agent() {
    let Some(bao) = bao() else { return };
    let server = Server::start();
    let api = Api::new(&server);
    let policy = r#"path "secret/data/shared/*" { capabilities = ["read"] }"#;
    let (role_id, secret_id) = approle(&api, policy, "1h");
    api.root(
        "POST",
        "secret/data/shared/cfg",
        Some(
            json!({"data": {"password": random_hex(8), "b64": "c2VjcmV0IHRleHQ=",
                             "url": "https://x/?a=1&b=<2>", "port": 5432}}),
        ),
    );
    let template = concat!(
        "{{ with secret \"secret/data/shared/cfg\" }}pw={{ .Data.data.password }}\n",
        "decoded={{ .Data.data.b64 | base64Decode }}\n",
        "json={{ .Data.data | toJSON }}\n",
        "port={{ .Data.data.port }}\n",
        "version={{ .Data.metadata.version }}\n",
        "{{ if .Data.data.missing }}yes{{ else }}no{{ end }}\n",
        "{{ range $k, $v := .Data.data }}{{ if eq $k \"url\" }}{{ $k }}={{ $v }}{{ end }}{{ end }}\n",
        "{{ end }}",
    );
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("role_id"), &role_id).unwrap();
    std::fs::write(d.join("secret_id"), &secret_id).unwrap();
    std::fs::write(d.join("t.tpl"), template).unwrap();
    let config = |dest: &Path, sink: &Path| {
        format!(
            r#"
vault {{ address = "{addr}" }}
auto_auth {{
  method "approle" {{
    config = {{
      role_id_file_path = "{d}/role_id"
      secret_id_file_path = "{d}/secret_id"
      remove_secret_id_file_after_reading = false
    }}
  }}
  sink "file" {{ config = {{ path = "{sink}" }} }}
}}
template {{
  source = "{d}/t.tpl"
  destination = "{dest}"
}}
"#,
            addr = server.addr,
            d = d.display(),
            dest = dest.display(),
            sink = sink.display(),
        )
    };
    let ours = d.join("coffer.out");
    let theirs = d.join("bao.out");
    std::fs::write(d.join("coffer.hcl"), config(&ours, &d.join("t1"))).unwrap();
    std::fs::write(d.join("bao.hcl"), config(&theirs, &d.join("t2"))).unwrap();
    let coffer = Agent::start(&d.join("coffer.hcl"), d);
    let bao_log = std::fs::File::create(d.join("bao.log")).unwrap();
    let mut bao_agent = Command::new(bao)
        .args(["agent", &format!("-config={}", d.join("bao.hcl").display())])
        .env("HOME", d)
        .env_remove("VAULT_TOKEN")
        .env_remove("VAULT_ADDR")
        .stdout(bao_log.try_clone().unwrap())
        .stderr(bao_log)
        .spawn()
        .unwrap();
    let both = wait_for(Duration::from_secs(30), || {
        !read(&ours).is_empty() && !read(&theirs).is_empty()
    });
    let _ = bao_agent.kill();
    let _ = bao_agent.wait();
    assert!(
        both,
        "bao: {}\ncoffer: {}",
        read(&d.join("bao.log")),
        coffer.log()
    );
    eprintln!("rendered by both:\n{}", read(&theirs));
    assert_eq!(
        read(&ours),
        read(&theirs),
        "coffer agent and bao agent rendered different bytes"
    );
}

/// The push path against the real event endpoint: with the fallback poll
/// set to an hour, a KV write still reaches the rendered file within
/// seconds (only the change event can have caused it), and a write to a
/// path the agent's token may not read sends it nothing.
#[test]
fn a_kv_change_reaches_the_rendered_file_by_event_not_by_poll() {
    let server = Server::start();
    let api = Api::new(&server);
    let policy = r#"path "secret/data/push/*" { capabilities = ["read"] }
path "sys/events/subscribe/*" { capabilities = ["read"] }"#;
    let (role_id, secret_id) = approle(&api, policy, "1h");
    let first = random_hex(8);
    api.root(
        "POST",
        "secret/data/push/db",
        Some(json!({"data": {"password": first}})),
    );
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("role_id"), &role_id).unwrap();
    std::fs::write(d.join("secret_id"), &secret_id).unwrap();
    let out = d.join("out.txt");
    let config = d.join("agent.hcl");
    std::fs::write(
        &config,
        format!(
            r#"
vault {{ address = "{addr}" }}
auto_auth {{
  method "approle" {{
    config = {{
      role_id_file_path = "{d}/role_id"
      secret_id_file_path = "{d}/secret_id"
      remove_secret_id_file_after_reading = false
    }}
  }}
}}
template_config {{ static_secret_render_interval = "1h" }}
template {{
  contents = "{{{{ with secret \"secret/data/push/db\" }}}}{{{{ .Data.data.password }}}}{{{{ end }}}}"
  destination = "{out}"
}}
"#,
            addr = server.addr,
            d = d.display(),
            out = out.display(),
        ),
    )
    .unwrap();
    let agent = Agent::start(&config, server.home.path());
    assert!(
        wait_for(Duration::from_secs(15), || read(&out) == first),
        "first render: {}",
        agent.log()
    );
    assert!(
        wait_for(Duration::from_secs(10), || agent
            .log()
            .contains("events: subscribed")),
        "no event subscription: {}",
        agent.log()
    );
    let second = random_hex(8);
    let written = Instant::now();
    api.root(
        "POST",
        "secret/data/push/db",
        Some(json!({"data": {"password": second}})),
    );
    assert!(
        wait_for(Duration::from_secs(5), || read(&out) == second),
        "no re-render by event within 5 s: {}",
        agent.log()
    );
    println!(
        "kv write to re-render by event: {} ms",
        written.elapsed().as_millis()
    );
}

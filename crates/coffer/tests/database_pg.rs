//! The database secrets engine against real PostgreSQL.
//!
//! Dynamic credentials use the shared server at `COFFER_TEST_PG_URL` (trust
//! authentication, so "can log in" means the role exists with LOGIN). Static
//! and root rotation must prove a password changed, which trust cannot show:
//! those tests start a private cluster (initdb/pg_ctl, scram-sha-256 over
//! TCP) on a free port, stopped by a guard even when the test fails.
//!
//! Without `COFFER_TEST_PG_URL` every test prints a notice and skips; with it
//! set but unreachable they fail.

mod cli_support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use cli_support::pg::{pg_bin_dir, Cluster, TestPki};
use cli_support::{free_port, unique, Server};
use serde_json::{json, Value};

/// The shared PostgreSQL URL, or `None` (with a notice) to skip.
fn pg_url() -> Option<String> {
    match std::env::var("COFFER_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!(
                "COFFER_TEST_PG_URL is not set: skipping the PostgreSQL database engine test"
            );
            None
        }
    }
}

/// HTTP calls to a server with a token.
struct Api {
    addr: String,
    token: String,
    http: reqwest::blocking::Client,
}

impl Api {
    fn new(server: &Server) -> Api {
        Api {
            addr: server.addr.clone(),
            token: server.token.clone(),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    fn with_token(&self, token: &str) -> Api {
        Api {
            addr: self.addr.clone(),
            token: token.to_string(),
            http: self.http.clone(),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}/v1/{path}", self.addr);
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self
            .http
            .request(m, url)
            .header("X-Vault-Token", &self.token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }

    #[track_caller]
    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self.call(method, path, body);
        assert!(s == 200 || s == 204, "{method} {path}: {s} {v}");
        v
    }
}

fn psql() -> PathBuf {
    let p = pg_bin_dir().join("psql");
    if p.exists() {
        p
    } else {
        PathBuf::from("psql")
    }
}

/// Parts of a `postgres://user@host:port/db` URL.
struct PgAddr {
    host: String,
    port: u16,
    user: String,
    db: String,
}

fn parse_pg_url(url: &str) -> PgAddr {
    let rest = url
        .split_once("://")
        .map(|(_, r)| r)
        .expect("a postgres:// URL");
    let (auth, hostpart) = rest.rsplit_once('@').unwrap_or(("postgres", rest));
    let user = auth.split(':').next().unwrap().to_string();
    let (hostport, db) = hostpart.split_once('/').unwrap_or((hostpart, "postgres"));
    let db = db.split('?').next().unwrap().to_string();
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "5432"));
    PgAddr {
        host: host.to_string(),
        port: port.parse().unwrap(),
        user,
        db,
    }
}

/// Runs one query with psql as `user` (password through PGPASSWORD);
/// returns the output, or `Err(stderr)` when the login or query fails.
fn query_as(a: &PgAddr, user: &str, password: &str, sql: &str) -> Result<String, String> {
    let out = Command::new(psql())
        .args(["-X", "-w", "-tA", "-v", "ON_ERROR_STOP=1"])
        .args([
            "-h",
            &a.host,
            "-p",
            &a.port.to_string(),
            "-U",
            user,
            "-d",
            &a.db,
        ])
        .args(["-c", sql])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn role_exists(a: &PgAddr, admin_pw: &str, role: &str) -> bool {
    let sql = format!("SELECT count(*) FROM pg_roles WHERE rolname = '{role}'");
    query_as(a, &a.user, admin_pw, &sql).expect("query pg_roles") == "1"
}

fn can_login(a: &PgAddr, user: &str, password: &str) -> bool {
    query_as(a, user, password, "SELECT current_user").is_ok_and(|u| u == user)
}

/// Mounts the engine and configures connection `pg` on the shared server.
fn setup_shared(api: &Api, url: &str) -> PgAddr {
    let a = parse_pg_url(url);
    api.ok(
        "POST",
        "sys/mounts/database",
        Some(json!({"type": "database"})),
    );
    // Templated URL: trust ignores the password, but the templating is exercised.
    let templated = format!(
        "postgresql://{{{{username}}}}:{{{{password}}}}@{}:{}/{}?sslmode=disable",
        a.host, a.port, a.db
    );
    api.ok(
        "POST",
        "database/config/pg",
        Some(json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": templated,
            "username": a.user,
            "password": unique("unused"),
            "allowed_roles": ["*"],
        })),
    );
    a
}

fn create_dynamic_role(api: &Api, db: &str, name: &str, ttl: &str) {
    api.ok(
        "POST",
        &format!("database/roles/{name}"),
        Some(json!({
            "db_name": "pg",
            "creation_statements": [
                "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
                format!("GRANT CONNECT ON DATABASE \"{db}\" TO \"{{{{name}}}}\";")
            ],
            "default_ttl": ttl,
            "max_ttl": "1h",
        })),
    );
}

/// Polls `cond` every 200 ms until it holds or `limit` passes.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    cond()
}

#[test]
fn dynamic_credentials_log_in_and_stop_after_revocation() {
    let Some(url) = pg_url() else { return };
    let server = Server::start();
    let api = Api::new(&server);
    let a = setup_shared(&api, &url);
    let cfg = api.ok("GET", "database/config/pg", None);
    let shown = cfg.to_string();
    assert_eq!(cfg["data"]["plugin_name"], "postgresql-database-plugin");
    assert!(
        !shown.contains("\"password\""),
        "config read shows a password: {shown}"
    );
    create_dynamic_role(&api, &a.db, "app", "1h");

    let creds = api.ok("GET", "database/creds/app", None);
    let user = creds["data"]["username"].as_str().unwrap().to_string();
    let pw = creds["data"]["password"].as_str().unwrap().to_string();
    let lease = creds["lease_id"].as_str().unwrap().to_string();
    assert!(user.starts_with("v-") && user.len() <= 63, "{user}");
    assert!(pw.len() >= 20);
    assert!(lease.starts_with("database/creds/app/"), "{lease}");
    assert_eq!(creds["lease_duration"], 3600);
    assert_eq!(creds["renewable"], true);
    assert!(role_exists(&a, "", &user));
    assert!(can_login(&a, &user, &pw));

    // Lookup and renew go through the core's lease endpoints.
    let look = api.ok("PUT", "sys/leases/lookup", Some(json!({"lease_id": lease})));
    assert_eq!(look["data"]["id"], lease.as_str());
    // `coffer list` names the lease, with or without the trailing slash.
    let id = lease.rsplit('/').next().unwrap();
    for dir in [
        "sys/leases/lookup/database/creds/app",
        "sys/leases/lookup/database/creds/app/",
    ] {
        let out = server.run(&["list", dir]).ok();
        assert_eq!(out.stdout, format!("Keys\n----\n{id}\n"), "{dir}: {out:#?}");
    }
    let renewed = api.ok(
        "PUT",
        "sys/leases/renew",
        Some(json!({"lease_id": lease, "increment": 600})),
    );
    assert_eq!(renewed["lease_duration"], 600);
    let until = query_as(
        &a,
        &a.user,
        "",
        &format!("SELECT rolvaliduntil > now() + interval '500 seconds' AND rolvaliduntil < now() + interval '700 seconds' FROM pg_roles WHERE rolname = '{user}'"),
    )
    .unwrap();
    assert_eq!(until, "t", "renewal moved VALID UNTIL to about 10 minutes");

    api.ok("PUT", "sys/leases/revoke", Some(json!({"lease_id": lease})));
    assert!(!role_exists(&a, "", &user), "role dropped on revocation");
    assert!(!can_login(&a, &user, &pw));
    let (s, _) = api.call("PUT", "sys/leases/lookup", Some(json!({"lease_id": lease})));
    assert_eq!(s, 400);

    // A role not in allowed_roles is refused.
    api.ok(
        "POST",
        "database/config/narrow",
        Some(json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": url,
            "allowed_roles": ["other"],
        })),
    );
    api.ok(
        "POST",
        "database/roles/denied",
        Some(json!({"db_name": "narrow", "creation_statements": "CREATE ROLE \"{{name}}\";"})),
    );
    let (s, v) = api.call("GET", "database/creds/denied", None);
    assert_eq!(s, 400, "{v}");
}

#[test]
fn dynamic_credentials_end_with_their_ttl() {
    let Some(url) = pg_url() else { return };
    let server = Server::start();
    let api = Api::new(&server);
    let a = setup_shared(&api, &url);
    create_dynamic_role(&api, &a.db, "short", "3s");
    let creds = api.ok("GET", "database/creds/short", None);
    assert_eq!(creds["lease_duration"], 3);
    let user = creds["data"]["username"].as_str().unwrap().to_string();
    let pw = creds["data"]["password"].as_str().unwrap().to_string();
    let t0 = Instant::now();
    assert!(role_exists(&a, "", &user));
    assert!(can_login(&a, &user, &pw));
    assert!(
        wait_for(Duration::from_secs(15), || !role_exists(&a, "", &user)),
        "role still present 15 s after a 3 s lease"
    );
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "revoked too early: {took:?}"
    );
    eprintln!("3 s lease: role dropped after {took:?}");
    assert!(!can_login(&a, &user, &pw));
}

#[test]
fn revoking_the_token_revokes_its_credentials() {
    let Some(url) = pg_url() else { return };
    let server = Server::start();
    let api = Api::new(&server);
    let a = setup_shared(&api, &url);
    create_dynamic_role(&api, &a.db, "viatoken", "1h");
    let child = api.ok("POST", "auth/token/create", Some(json!({"ttl": "1h"})));
    let child_token = child["auth"]["client_token"].as_str().unwrap().to_string();
    let as_child = api.with_token(&child_token);
    let creds = as_child.ok("GET", "database/creds/viatoken", None);
    let user = creds["data"]["username"].as_str().unwrap().to_string();
    assert!(role_exists(&a, "", &user));
    api.ok(
        "POST",
        "auth/token/revoke",
        Some(json!({"token": child_token})),
    );
    assert!(
        wait_for(Duration::from_secs(5), || !role_exists(&a, "", &user)),
        "token revocation left the role in place"
    );
}

#[test]
fn revocation_ends_sessions_and_handles_owned_objects() {
    let Some(url) = pg_url() else { return };
    let server = Server::start();
    let api = Api::new(&server);
    let a = setup_shared(&api, &url);
    api.ok(
        "POST",
        "database/roles/owner",
        Some(json!({
            "db_name": "pg",
            "creation_statements": [
                "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}';",
                "GRANT CREATE ON SCHEMA public TO \"{{name}}\";"
            ],
            "default_ttl": "1h",
        })),
    );
    let creds = api.ok("GET", "database/creds/owner", None);
    let user = creds["data"]["username"].as_str().unwrap().to_string();
    let pw = creds["data"]["password"].as_str().unwrap().to_string();
    let lease = creds["lease_id"].as_str().unwrap().to_string();
    let table = unique("owned").replace('-', "_");
    query_as(&a, &user, &pw, &format!("CREATE TABLE {table} (id int)")).unwrap();
    // An open session of the user, still running when the lease is revoked.
    let mut session = Command::new(psql())
        .args(["-X", "-w", "-tA", "-h", &a.host, "-p", &a.port.to_string()])
        .args(["-U", &user, "-d", &a.db, "-c", "SELECT pg_sleep(60)"])
        .env("PGPASSWORD", &pw)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let active = format!("SELECT count(*) FROM pg_stat_activity WHERE usename = '{user}'");
    assert!(
        wait_for(Duration::from_secs(10), || query_as(
            &a, &a.user, "", &active
        )
        .unwrap()
            == "1"),
        "the user's session did not start"
    );
    let t0 = Instant::now();
    api.ok("PUT", "sys/leases/revoke", Some(json!({"lease_id": lease})));
    assert!(
        !role_exists(&a, "", &user),
        "role owning a table was not dropped"
    );
    assert!(
        wait_for(Duration::from_secs(10), || session
            .try_wait()
            .unwrap()
            .is_some()),
        "the user's open session survived revocation"
    );
    assert!(t0.elapsed() < Duration::from_secs(30));
    let _ = session.kill();
    let owner = query_as(
        &a,
        &a.user,
        "",
        &format!("SELECT tableowner FROM pg_tables WHERE tablename = '{table}'"),
    )
    .unwrap();
    assert_eq!(
        owner, a.user,
        "the user's table goes to the connecting user"
    );
    query_as(&a, &a.user, "", &format!("DROP TABLE {table}")).unwrap();
}

#[test]
fn unreachable_database_is_refused_without_leaking_the_password() {
    let Some(_url) = pg_url() else { return };
    let server = Server::start();
    let api = Api::new(&server);
    api.ok(
        "POST",
        "sys/mounts/database",
        Some(json!({"type": "database"})),
    );
    let secret = unique("Pw");
    let port = free_port();
    let (s, v) = api.call(
        "POST",
        "database/config/down",
        Some(json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": format!("postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{port}/x"),
            "username": "someone",
            "password": secret,
        })),
    );
    assert_eq!(s, 400, "{v}");
    let text = v.to_string();
    assert!(text.contains("error verifying connection"), "{text}");
    assert!(!text.contains(&secret), "the password leaked: {text}");
    let (s, _) = api.call("GET", "database/config/down", None);
    assert_eq!(s, 404, "a failed verification stores nothing");
    let (s, v) = api.call(
        "POST",
        "database/config/other",
        Some(json!({"plugin_name": "mysql-database-plugin", "connection_url": "x"})),
    );
    assert_eq!(s, 400, "{v}");
}

impl PgAddrOf for Cluster {
    fn addr(&self) -> PgAddr {
        PgAddr {
            host: "127.0.0.1".into(),
            port: self.port,
            user: "postgres".into(),
            db: "postgres".into(),
        }
    }
}

/// The address of a private cluster, as this file's helpers take it.
trait PgAddrOf {
    fn addr(&self) -> PgAddr;
}

#[test]
fn static_roles_and_root_rotation_change_real_passwords() {
    let Some(_url) = pg_url() else { return };
    let cluster = Cluster::start();
    let a = cluster.addr();
    let su = cluster.superuser_pw.clone();
    // The scram cluster really checks passwords.
    assert!(can_login(&a, "postgres", &su));
    assert!(!can_login(&a, "postgres", &unique("wrong")));
    let initial = unique("Init");
    for user in ["app_static", "app_fast"] {
        query_as(
            &a,
            "postgres",
            &su,
            &format!("CREATE ROLE {user} LOGIN PASSWORD '{initial}'"),
        )
        .unwrap();
        assert!(can_login(&a, user, &initial));
    }

    let server = Server::start();
    let api = Api::new(&server);
    api.ok(
        "POST",
        "sys/mounts/database",
        Some(json!({"type": "database"})),
    );
    let templated = format!(
        "postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres",
        cluster.port
    );
    // A wrong root password fails verification without echoing it.
    let wrong = unique("Wrong");
    let (s, v) = api.call(
        "POST",
        "database/config/priv",
        Some(json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": templated,
            "username": "postgres",
            "password": wrong,
            "allowed_roles": "*",
        })),
    );
    assert_eq!(s, 400, "{v}");
    assert!(!v.to_string().contains(&wrong));
    api.ok(
        "POST",
        "database/config/priv",
        Some(json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": templated,
            "username": "postgres",
            "password": su,
            "allowed_roles": "*",
            "password_authentication": "scram-sha-256",
        })),
    );

    // A static role for a user that does not exist fails its first rotation and is not kept.
    let (s, v) = api.call(
        "POST",
        "database/static-roles/ghost",
        Some(json!({"db_name": "priv", "username": "no_such_user", "rotation_period": "1h"})),
    );
    assert_eq!(s, 400, "{v}");
    let (s, _) = api.call("GET", "database/static-roles/ghost", None);
    assert_eq!(s, 404);

    // Creating a static role rotates at once.
    api.ok(
        "POST",
        "database/static-roles/st",
        Some(json!({"db_name": "priv", "username": "app_static", "rotation_period": "1h"})),
    );
    let c1 = api.ok("GET", "database/static-creds/st", None)["data"].clone();
    let p1 = c1["password"].as_str().unwrap().to_string();
    assert_eq!(c1["username"], "app_static");
    assert_eq!(c1["rotation_period"], 3600);
    assert!(c1["ttl"].as_i64().unwrap() > 3500);
    assert_ne!(p1, initial);
    assert!(
        !can_login(&a, "app_static", &initial),
        "old password still works"
    );
    assert!(
        can_login(&a, "app_static", &p1),
        "new password does not work"
    );

    // rotate-role: a new password; the previous one stops working.
    api.ok("POST", "database/rotate-role/st", None);
    let c2 = api.ok("GET", "database/static-creds/st", None)["data"].clone();
    let p2 = c2["password"].as_str().unwrap().to_string();
    assert_ne!(p1, p2);
    assert!(!can_login(&a, "app_static", &p1));
    assert!(can_login(&a, "app_static", &p2));
    let role = api.ok("GET", "database/static-roles/st", None);
    assert_eq!(role["data"]["username"], "app_static");
    assert!(
        !role.to_string().contains(&p2),
        "static role read shows the password"
    );

    // The background pass rotates a role whose period is short.
    api.ok(
        "POST",
        "database/static-roles/fast",
        Some(json!({"db_name": "priv", "username": "app_fast", "rotation_period": 5})),
    );
    let f1 = api.ok("GET", "database/static-creds/fast", None)["data"]["password"]
        .as_str()
        .unwrap()
        .to_string();
    let t0 = Instant::now();
    let mut f2 = f1.clone();
    assert!(
        wait_for(Duration::from_secs(20), || {
            f2 = api.ok("GET", "database/static-creds/fast", None)["data"]["password"]
                .as_str()
                .unwrap()
                .to_string();
            f2 != f1
        }),
        "no background rotation within 20 s of a 5 s period"
    );
    eprintln!(
        "5 s period: rotated by the background pass after {:?}",
        t0.elapsed()
    );
    assert!(!can_login(&a, "app_fast", &f1));
    assert!(can_login(&a, "app_fast", &f2));
    let (s, v) = api.call(
        "POST",
        "database/static-roles/tooshort",
        Some(json!({"db_name": "priv", "username": "app_fast", "rotation_period": 2})),
    );
    assert_eq!(s, 400, "{v}");

    // rotate-root: the configured superuser password changes; Coffer keeps working.
    api.ok("POST", "database/rotate-root/priv", None);
    assert!(
        !can_login(&a, "postgres", &su),
        "old root password still works"
    );
    api.ok("POST", "database/rotate-role/st", None);
    let p3 = api.ok("GET", "database/static-creds/st", None)["data"]["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(can_login(&a, "app_static", &p3));
    let cfg = api.ok("GET", "database/config/priv", None);
    assert!(!cfg.to_string().contains(&su));
    drop(server);
    drop(cluster);
}

/// The lifecycle's `postgres` rotator (a KV secret holding a real role's
/// login) against a private scram cluster: single-user and alternating
/// strategies change real passwords; a failing rotation keeps the old one.
#[test]
fn lifecycle_postgres_rotator_changes_real_passwords() {
    let Some(_url) = pg_url() else { return };
    let cluster = Cluster::start();
    let a = cluster.addr();
    let su = cluster.superuser_pw.clone();
    let initial = unique("Init");
    for user in ["life_single", "life_blue", "life_green"] {
        query_as(
            &a,
            "postgres",
            &su,
            &format!("CREATE ROLE {user} LOGIN PASSWORD '{initial}'"),
        )
        .unwrap();
    }
    let admin_url = format!(
        "postgres://postgres:{su}@127.0.0.1:{}/postgres",
        cluster.port
    );
    // The admin connection is the operator's: declared in the server's
    // configuration (written at run time), named by the lifecycle record.
    let wrong_url = format!(
        "postgres://postgres:{}@127.0.0.1:{}/postgres",
        unique("wrong"),
        cluster.port
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("rotators.toml");
    let decl = |name: &str, url: &str| {
        format!(
            "[rotator.{name}]\ntype = \"postgres\"\nconnection_url = {}\n\
             allowed_roles = [\"life_single\", \"life_blue\", \"life_green\"]\n",
            toml::Value::String(url.to_string())
        )
    };
    std::fs::write(
        &cfg,
        format!(
            "{}{}",
            decl("life-db", &admin_url),
            decl("life-db-wrong", &wrong_url)
        ),
    )
    .unwrap();
    let server = Server::start_dev_config(&cfg);
    let api = Api::new(&server);
    // Single user.
    let (s, v) = api.call(
        "POST",
        "secret/data/app/pg",
        Some(json!({"data": {"username": "life_single", "password": initial}})),
    );
    assert_eq!(s, 200, "{v}");
    // A caller can neither give a connection nor pick a role the operator did not allow.
    for settings in [
        json!({"connection_url": admin_url, "role": "life_single"}),
        json!({"name": "life-db", "role": "postgres"}),
    ] {
        let (s, v) = api.call(
            "POST",
            "secret/lifecycle/app/pg",
            Some(json!({
                "rotation": {"period": "30d", "rotator": "postgres", "settings": settings}
            })),
        );
        assert_eq!(s, 400, "{v}");
        assert!(!v.to_string().contains(&su));
    }
    let (s, v) = api.call("POST", "secret/lifecycle/app/pg", Some(json!({
        "owner": "team-app", "secret_type": "db_credential",
        "rotation": {"period": "30d", "rotator": "postgres", "settings": {"name": "life-db", "role": "life_single"}}
    })));
    assert_eq!(s, 204, "{v}");
    let (s, v) = api.call("GET", "secret/lifecycle/app/pg", None);
    assert_eq!(s, 200);
    assert!(
        !v.to_string().contains(&su),
        "the admin password is redacted: {v}"
    );
    let (s, v) = api.call("POST", "secret/rotate/app/pg", Some(json!({})));
    assert_eq!(s, 200, "{v}");
    let (_, cur) = api.call("GET", "secret/data/app/pg", None);
    let new = cur["data"]["data"]["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new, initial);
    assert!(can_login(&a, "life_single", &new), "the new password works");
    assert!(
        !can_login(&a, "life_single", &initial),
        "the old password fails"
    );
    // Alternating users: each rotation moves to the other role; the previous stays valid.
    let (s, _) = api.call(
        "POST",
        "secret/data/app/pg2",
        Some(json!({"data": {"username": "life_blue", "password": initial}})),
    );
    assert_eq!(s, 200);
    let (s, v) = api.call("POST", "secret/lifecycle/app/pg2", Some(json!({
        "rotation": {"period": "30d", "rotator": "postgres", "settings": {"name": "life-db", "strategy": "alternating", "roles": ["life_blue", "life_green"]}}
    })));
    assert_eq!(s, 204, "{v}");
    let (s, v) = api.call("POST", "secret/rotate/app/pg2", Some(json!({})));
    assert_eq!(s, 200, "{v}");
    let (_, cur) = api.call("GET", "secret/data/app/pg2", None);
    assert_eq!(cur["data"]["data"]["username"], "life_green");
    let green = cur["data"]["data"]["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(can_login(&a, "life_green", &green));
    assert!(
        can_login(&a, "life_blue", &initial),
        "the previous user keeps working until the next rotation"
    );
    // A rotation whose admin login fails leaves the current version and password alone.
    let (s, _) = api.call(
        "POST",
        "secret/lifecycle/app/pg",
        Some(json!({
            "rotation": {"settings": {"name": "life-db-wrong", "role": "life_single"}}
        })),
    );
    assert_eq!(s, 204);
    let (s, v) = api.call("POST", "secret/rotate/app/pg", Some(json!({})));
    assert_eq!(s, 400, "{v}");
    assert!(!v.to_string().contains(&su));
    let (_, cur) = api.call("GET", "secret/data/app/pg", None);
    assert_eq!(cur["data"]["data"]["password"], new.as_str());
    assert!(can_login(&a, "life_single", &new));
}

/// Connections go over TLS and check the server's certificate as `sslmode`
/// says, against a cluster that refuses plain-text TCP: verify-full with the
/// right CA issues credentials that log in and rotates the root password; a
/// wrong CA, a host name the certificate does not carry, plain text and
/// server-side files are refused with clear errors that hold no password;
/// the lifecycle `postgres` rotator changes a password over verify-full.
#[test]
fn tls_connections_check_the_server_certificate() {
    let Some(_url) = pg_url() else { return };
    // The certificate names `localhost` only, so 127.0.0.1 fails the host name check.
    let pki = TestPki::new(&["localhost"]);
    let other_ca = TestPki::new(&["localhost"]).ca_pem;
    let cluster = Cluster::start_tls(&pki);
    let a = cluster.addr();
    let su = cluster.superuser_pw.clone();
    assert!(can_login(&a, "postgres", &su), "psql logs in over TLS");

    // The lifecycle rotator's admin connections are the operator's: declared
    // in the server's config with their CA files (one right, one wrong).
    let dir = tempfile::tempdir().unwrap();
    let (good_ca, bad_ca) = (dir.path().join("ca.pem"), dir.path().join("other-ca.pem"));
    std::fs::write(&good_ca, &pki.ca_pem).unwrap();
    std::fs::write(&bad_ca, &other_ca).unwrap();
    let admin_url = format!(
        "postgres://postgres:{su}@localhost:{}/postgres?sslmode=verify-full",
        cluster.port
    );
    let decl = |name: &str, ca: &std::path::Path| {
        format!(
            "[rotator.{name}]\ntype = \"postgres\"\nconnection_url = {}\n\
             tls_ca_file = {}\nallowed_roles = [\"life_tls\"]\n",
            toml::Value::String(admin_url.clone()),
            toml::Value::String(ca.to_str().unwrap().to_string())
        )
    };
    let cfg = dir.path().join("rotators.toml");
    std::fs::write(
        &cfg,
        format!("{}{}", decl("tls-good", &good_ca), decl("tls-bad", &bad_ca)),
    )
    .unwrap();
    let server = Server::start_dev_config(&cfg);
    let api = Api::new(&server);
    api.ok(
        "POST",
        "sys/mounts/database",
        Some(json!({"type": "database"})),
    );
    let url = |host: &str, query: &str| {
        format!(
            "postgresql://{{{{username}}}}:{{{{password}}}}@{host}:{}/postgres?{query}",
            cluster.port
        )
    };
    let write = |name: &str, connection_url: String, ca: &str| {
        let mut body = json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": connection_url,
            "username": "postgres",
            "password": su,
            "allowed_roles": "*",
        });
        if !ca.is_empty() {
            body["tls_ca"] = json!(ca);
        }
        api.call("POST", &format!("database/config/{name}"), Some(body))
    };
    #[track_caller]
    fn refused(r: (u16, Value), su: &str, want: &str) {
        let (s, v) = r;
        assert_eq!(s, 400, "{v}");
        let text = v.to_string();
        eprintln!("refused: {text}");
        assert!(!text.contains(su), "the password leaked: {text}");
        assert!(
            text.to_lowercase().contains(&want.to_lowercase()),
            "want {want:?} in {text}"
        );
    }

    // verify-full with the right CA and the certificate's host name.
    let (s, v) = write("tls", url("localhost", "sslmode=verify-full"), &pki.ca_pem);
    assert_eq!(s, 204, "verify-full with the right CA: {v}");
    let cfg = api.ok("GET", "database/config/tls", None);
    assert_eq!(
        cfg["data"]["connection_details"]["tls_ca"],
        pki.ca_pem.as_str()
    );
    // Dynamic credentials made over that connection log in.
    api.ok(
        "POST",
        "database/roles/dyn",
        Some(json!({
            "db_name": "tls",
            "creation_statements": [
                "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
                "GRANT CONNECT ON DATABASE \"postgres\" TO \"{{name}}\";"
            ],
            "default_ttl": "10m",
            "max_ttl": "1h",
        })),
    );
    let creds = api.ok("GET", "database/creds/dyn", None);
    let user = creds["data"]["username"].as_str().unwrap().to_string();
    let pass = creds["data"]["password"].as_str().unwrap().to_string();
    assert!(can_login(&a, &user, &pass), "issued credentials log in");

    // A CA that did not sign the server's certificate.
    refused(
        write(
            "wrongca",
            url("localhost", "sslmode=verify-full"),
            &other_ca,
        ),
        &su,
        "certificate",
    );
    // verify-ca checks only the chain; verify-full also the host name.
    let (s, v) = write("byip", url("127.0.0.1", "sslmode=verify-ca"), &pki.ca_pem);
    assert_eq!(
        s, 204,
        "verify-ca to an address the certificate does not name: {v}"
    );
    refused(
        write("byip", url("127.0.0.1", "sslmode=verify-full"), &pki.ca_pem),
        &su,
        "certificate",
    );
    // A CA makes require check the chain (libpq's rule).
    refused(
        write("req", url("localhost", "sslmode=require"), &other_ca),
        &su,
        "certificate",
    );
    // require without a CA encrypts; channel binding (SCRAM-SHA-256-PLUS) works.
    let (s, v) = write(
        "req",
        url("127.0.0.1", "sslmode=require&channel_binding=require"),
        "",
    );
    assert_eq!(s, 204, "require with channel binding: {v}");
    // Plain text is refused by the hostssl-only cluster.
    refused(
        write("plain", url("127.0.0.1", "sslmode=disable"), ""),
        &su,
        "no encryption",
    );
    // verify-full needs a CA; files on the server are never read.
    refused(
        write("noca", url("localhost", "sslmode=verify-full"), ""),
        &su,
        "tls_ca",
    );
    refused(
        write(
            "file",
            url("localhost", "sslmode=verify-full&sslrootcert=/etc/shadow"),
            "",
        ),
        &su,
        "sslrootcert is not supported",
    );
    refused(
        write("junk", url("localhost", "sslmode=verify-full"), "not a pem"),
        &su,
        "tls_ca",
    );
    refused(
        write("mode", url("localhost", "sslmode=sometimes"), ""),
        &su,
        "invalid sslmode",
    );
    // The key=value form takes sslmode too.
    let dsn = format!(
        "host=localhost port={} dbname=postgres user={{{{username}}}} password={{{{password}}}} sslmode=verify-full",
        cluster.port
    );
    let (s, v) = write("dsn", dsn, &pki.ca_pem);
    assert_eq!(s, 204, "key=value form with verify-full: {v}");

    // The lifecycle rotator over verify-full.
    let initial = unique("Init");
    query_as(
        &a,
        "postgres",
        &su,
        &format!("CREATE ROLE life_tls LOGIN PASSWORD '{initial}'"),
    )
    .unwrap();
    let (s, v) = api.call(
        "POST",
        "secret/data/app/tlspg",
        Some(json!({"data": {"username": "life_tls", "password": initial}})),
    );
    assert_eq!(s, 200, "{v}");
    let lifecycle = |name: &str| {
        json!({
            "owner": "team-app", "secret_type": "db_credential",
            "rotation": {"period": "30d", "rotator": "postgres", "settings": {
                "name": name, "role": "life_tls"}}
        })
    };
    let (s, v) = api.call(
        "POST",
        "secret/lifecycle/app/tlspg",
        Some(lifecycle("tls-bad")),
    );
    assert_eq!(s, 204, "{v}");
    let (s, v) = api.call("POST", "secret/rotate/app/tlspg", Some(json!({})));
    assert_eq!(s, 400, "a wrong CA fails the rotation: {v}");
    assert!(!v.to_string().contains(&su), "the password leaked: {v}");
    assert!(can_login(&a, "life_tls", &initial));
    let (s, v) = api.call(
        "POST",
        "secret/lifecycle/app/tlspg",
        Some(lifecycle("tls-good")),
    );
    assert_eq!(s, 204, "{v}");
    let (s, v) = api.call("POST", "secret/rotate/app/tlspg", Some(json!({})));
    assert_eq!(s, 200, "{v}");
    let (_, cur) = api.call("GET", "secret/data/app/tlspg", None);
    let new = cur["data"]["data"]["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new, initial);
    assert!(can_login(&a, "life_tls", &new), "the new password works");
    assert!(
        !can_login(&a, "life_tls", &initial),
        "the old password fails"
    );

    // rotate-root over verify-full: ALTER ROLE ... PASSWORD never in clear.
    api.ok("POST", "database/rotate-root/tls", None);
    assert!(
        !can_login(&a, "postgres", &su),
        "old root password still works"
    );
    let creds = api.ok("GET", "database/creds/dyn", None);
    assert!(can_login(
        &a,
        creds["data"]["username"].as_str().unwrap(),
        creds["data"]["password"].as_str().unwrap()
    ));
    drop(server);
    drop(cluster);
}

/// A dynamic role whose users only log in (no `GRANT ... ON DATABASE`,
/// which fails with "tuple concurrently updated" when tests run in parallel).
fn create_login_role(api: &Api, name: &str) {
    api.ok(
        "POST",
        &format!("database/roles/{name}"),
        Some(json!({
            "db_name": "pg",
            "creation_statements": [
                "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"
            ],
            "default_ttl": "1h",
            "max_ttl": "1h",
        })),
    );
}

/// A token with `policies`, created by root with `ttl`.
fn token_with(api: &Api, policies: &[&str], ttl: &str) -> String {
    let t = api.ok(
        "POST",
        "auth/token/create",
        Some(json!({"policies": policies, "ttl": ttl})),
    );
    t["auth"]["client_token"].as_str().unwrap().to_string()
}

#[test]
fn credentials_do_not_outlive_their_token() {
    let Some(url) = pg_url() else { return };
    let server = Server::start();
    let api = Api::new(&server);
    let a = setup_shared(&api, &url);
    create_login_role(&api, "app");
    api.ok(
        "PUT",
        "sys/policies/acl/creds",
        Some(json!({"policy": "path \"database/creds/app\" { capabilities = [\"read\"] }"})),
    );
    let short = token_with(&api, &["creds"], "5s");
    let issued = Instant::now();
    let creds = api.with_token(&short).ok("GET", "database/creds/app", None);
    let lease_duration = creds["lease_duration"].as_u64().unwrap();
    assert!(
        lease_duration <= 5,
        "a 5 s token got a {lease_duration} s lease"
    );
    let user = creds["data"]["username"].as_str().unwrap().to_string();
    let pw = creds["data"]["password"].as_str().unwrap().to_string();
    let lease = creds["lease_id"].as_str().unwrap().to_string();
    assert!(can_login(&a, &user, &pw));

    // A renewal cannot push the lease past the token either.
    let renewed = api.ok(
        "PUT",
        "sys/leases/renew",
        Some(json!({"lease_id": lease, "increment": 3600})),
    );
    assert!(
        renewed["lease_duration"].as_u64().unwrap() <= 5,
        "renewal went past the token: {renewed}"
    );

    // Within 2 s of the token's expiry the user is gone and so is the lease.
    let expiry = issued + Duration::from_secs(5);
    std::thread::sleep(expiry.saturating_duration_since(Instant::now()));
    assert!(
        wait_for(Duration::from_secs(2), || !role_exists(&a, "", &user)),
        "the role outlived its expired token by more than 2 s"
    );
    assert!(!can_login(&a, &user, &pw));
    let (s, v) = api.call("PUT", "sys/leases/lookup", Some(json!({"lease_id": lease})));
    assert_eq!(s, 400, "lease of an expired token still there: {v}");
    eprintln!(
        "token expiry: role dropped {:?} after expiry",
        Instant::now().saturating_duration_since(expiry)
    );
}

#[test]
fn expiry_revokes_the_leases_of_a_token_and_its_children() {
    let Some(url) = pg_url() else { return };
    let server = Server::start();
    let api = Api::new(&server);
    let a = setup_shared(&api, &url);
    create_login_role(&api, "tree");
    api.ok(
        "PUT",
        "sys/policies/acl/tree",
        Some(json!({"policy": "path \"database/creds/tree\" { capabilities = [\"read\"] }\npath \"auth/token/create\" { capabilities = [\"update\"] }"})),
    );
    let parent = token_with(&api, &["tree"], "4s");
    let issued = Instant::now();
    let child = api.with_token(&parent).ok(
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["tree"], "ttl": "1h"})),
    );
    let child = child["auth"]["client_token"].as_str().unwrap().to_string();
    let creds = api
        .with_token(&child)
        .ok("GET", "database/creds/tree", None);
    let user = creds["data"]["username"].as_str().unwrap().to_string();
    assert!(role_exists(&a, "", &user));
    let expiry = issued + Duration::from_secs(4);
    std::thread::sleep(expiry.saturating_duration_since(Instant::now()));
    assert!(
        wait_for(Duration::from_secs(2), || !role_exists(&a, "", &user)),
        "a child's credentials outlived its expired parent by more than 2 s"
    );
    let (s, _) = api
        .with_token(&child)
        .call("GET", "auth/token/lookup-self", None);
    assert_eq!(s, 403);
}

#[test]
fn disabling_a_database_mount_revokes_its_users_first() {
    let Some(url) = pg_url() else { return };
    let server = Server::start();
    let api = Api::new(&server);
    let a = setup_shared(&api, &url);
    create_login_role(&api, "gone");
    let users: Vec<String> = (0..2)
        .map(|_| {
            let c = api.ok("GET", "database/creds/gone", None);
            c["data"]["username"].as_str().unwrap().to_string()
        })
        .collect();
    for u in &users {
        assert!(role_exists(&a, "", u));
    }
    let child = token_with(&api, &["root"], "1h");
    let via_child = api
        .with_token(&child)
        .ok("GET", "database/creds/gone", None);
    let child_user = via_child["data"]["username"].as_str().unwrap().to_string();
    let child_lease = via_child["lease_id"].as_str().unwrap().to_string();

    // While the database is unreachable the users cannot be dropped: the
    // mount stays, with its leases.
    let dead = format!("postgresql://{}@127.0.0.1:{}/{}", a.user, free_port(), a.db);
    api.ok(
        "POST",
        "database/config/pg",
        Some(json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": dead,
            "verify_connection": false,
            "allowed_roles": ["*"],
        })),
    );
    let (s, v) = api.call("DELETE", "sys/mounts/database", None);
    assert!(s >= 400, "unmount with unrevocable leases answered {s} {v}");
    let mounts = api.ok("GET", "sys/mounts", None);
    assert!(
        mounts["data"]["database/"].is_object(),
        "the mount went away"
    );
    for u in &users {
        assert!(role_exists(&a, "", u));
    }
    // Revoking a token whose credential cannot be dropped now keeps the
    // lease (retried later) instead of forgetting a live database user.
    api.ok("POST", "auth/token/revoke", Some(json!({"token": child})));
    let (s, v) = api.call(
        "PUT",
        "sys/leases/lookup",
        Some(json!({"lease_id": child_lease})),
    );
    assert_eq!(s, 200, "the lease of a live user was forgotten: {v}");

    // Once the database answers again, disabling drops every user.
    let live = format!(
        "postgresql://{}@{}:{}/{}?sslmode=disable",
        a.user, a.host, a.port, a.db
    );
    api.ok(
        "POST",
        "database/config/pg",
        Some(json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": live,
            "allowed_roles": ["*"],
        })),
    );
    api.ok("DELETE", "sys/mounts/database", None);
    for u in users.iter().chain([&child_user]) {
        assert!(!role_exists(&a, "", u), "{u} survived its mount");
    }
    let mounts = api.ok("GET", "sys/mounts", None);
    assert!(mounts["data"]["database/"].is_null());
}

#[test]
fn lease_commands_and_moving_the_mount_revoke_real_credentials() {
    let Some(url) = pg_url() else { return };
    let server = Server::start();
    let api = Api::new(&server);
    let a = setup_shared(&api, &url);
    create_dynamic_role(&api, &a.db, "app", "1h");
    let creds = |api: &Api, mount: &str| {
        let c = api.ok("GET", &format!("{mount}/creds/app"), None);
        (
            c["data"]["username"].as_str().unwrap().to_string(),
            c["lease_id"].as_str().unwrap().to_string(),
        )
    };

    // lookup and renew through `coffer lease`.
    let (user, lease) = creds(&api, "database");
    let look = server
        .run(&["lease", "lookup", "-format=json", &lease])
        .ok()
        .json();
    assert_eq!(look["data"]["id"], lease.as_str());
    assert_eq!(look["data"]["renewable"], true);
    let renewed = server
        .run(&["lease", "renew", "-increment=10m", "-format=json", &lease])
        .ok()
        .json();
    assert_eq!(renewed["lease_id"], lease.as_str());
    assert_eq!(renewed["lease_duration"], 600);
    let table = server.run(&["lease", "renew", &lease]).ok();
    assert!(table.stdout.contains("lease_renewable"), "{table:#?}");

    // revoke one lease: the role is dropped.
    let out = server.run(&["lease", "revoke", &lease]).ok();
    assert!(out.stdout.contains("Success! Revoked lease"), "{out:#?}");
    assert!(!role_exists(&a, "", &user));
    server.run(&["lease", "lookup", &lease]).code(2);

    // revoke -prefix: every lease below it.
    let (u1, _) = creds(&api, "database");
    let (u2, _) = creds(&api, "database");
    server
        .run(&["lease", "revoke", "-force", "database/creds/app"])
        .code(1);
    let out = server
        .run(&["lease", "revoke", "-prefix", "database/creds/app"])
        .ok();
    assert!(
        out.stdout.contains("Revoked any leases with prefix"),
        "{out:#?}"
    );
    assert!(!role_exists(&a, "", &u1) && !role_exists(&a, "", &u2));

    // Moving the mount revokes its leases (their ids carry the old path) and
    // keeps its connections and roles.
    let (u3, l3) = creds(&api, "database");
    server.run(&["secrets", "move", "database", "db2"]).ok();
    assert!(
        !role_exists(&a, "", &u3),
        "the moved mount's credentials are revoked"
    );
    let (s, _) = api.call("PUT", "sys/leases/lookup", Some(json!({"lease_id": l3})));
    assert_eq!(s, 400);
    let (u4, l4) = creds(&api, "db2");
    assert!(l4.starts_with("db2/creds/app/"), "{l4}");
    assert!(role_exists(&a, "", &u4));
    server
        .run(&["lease", "revoke", "-prefix", "-force", "db2/"])
        .ok();
    assert!(!role_exists(&a, "", &u4));
}

/// The PostgreSQL driver logs each statement it runs at debug, and a
/// creation statement holds the new password: a monitor at trace (or a
/// server at `--log-level trace`) must never see those lines.
#[test]
fn no_log_line_carries_a_generated_password() {
    let Some(url) = pg_url() else { return };
    let server = Server::start_with(&["--log-level", "trace"]);
    let api = Api::new(&server);
    let (status, _, lines) = cli_support::monitor(&server, &server.token, "log_level=trace");
    assert_eq!(status, 200);
    let a = setup_shared(&api, &url);
    create_dynamic_role(&api, &a.db, "logged", "1h");
    let creds = api.ok("GET", "database/creds/logged", None);
    let pw = creds["data"]["password"].as_str().unwrap().to_string();
    let lease = creds["lease_id"].as_str().unwrap().to_string();
    api.ok(
        "PUT",
        "sys/leases/revoke",
        Some(json!({ "lease_id": lease })),
    );
    // A marker after the credential's creation and revocation: every line
    // logged before it has arrived once it has.
    let marker = unique("marker").to_lowercase();
    api.ok(
        "POST",
        &format!("sys/mounts/{marker}"),
        Some(json!({"type": "kv"})),
    );
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok(line) = lines.recv_timeout(left) else {
            break;
        };
        let done = line.contains(&marker);
        seen.push(line);
        if done {
            break;
        }
    }
    assert!(seen.iter().any(|l| l.contains(&marker)), "no marker line");
    let leaked: Vec<_> = seen.iter().filter(|l| l.contains(&pw)).collect();
    assert!(
        leaked.is_empty(),
        "log lines carry the password: {leaked:?}"
    );
}

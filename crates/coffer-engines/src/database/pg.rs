//! Talking to PostgreSQL: connecting from a templated connection URL,
//! rendering statements, running them in a transaction, and turning driver
//! errors into messages that never carry a password.
//!
//! One short-lived connection is opened per operation (no pool): the engine's
//! operations are infrequent and this keeps state out of the engine. TLS
//! follows the URL's `sslmode` (see `pg_tls` for what each mode checks).

use std::time::Duration;

use base64::Engine as _;
use tokio_postgres::{Client, NoTls};
use zeroize::Zeroizing;

use super::pg_tls::{self, MakeRustls};
pub use super::pg_tls::{SslMode, TlsMaterial};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Stand-in substituted for `{{username}}`/`{{password}}` before parsing a
/// connection URL; the real values are then set on the parsed config, so no
/// escaping of URL or key=value syntax is needed.
const PLACEHOLDER: &str = "coffer-placeholder";

/// A failure talking to PostgreSQL; the message is already scrubbed of secrets.
#[derive(Debug)]
pub struct PgError {
    /// What went wrong, without any secret value.
    pub message: String,
    /// The SQLSTATE code when the server answered with an error.
    pub code: Option<String>,
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl PgError {
    /// Whether the server refused the credentials (SQLSTATE 28P01 or 28000).
    pub fn is_auth_failure(&self) -> bool {
        matches!(self.code.as_deref(), Some("28P01") | Some("28000"))
    }

    fn from_driver(e: &tokio_postgres::Error, secrets: &[&str]) -> Self {
        let (message, code) = match e.as_db_error() {
            Some(db) => {
                let mut m = format!("{}: {}", db.severity(), db.message());
                if let Some(d) = db.detail() {
                    m.push_str(&format!(" ({d})"));
                }
                (m, Some(db.code().code().to_string()))
            }
            None => {
                // The driver's Display names only the kind; the cause says
                // why (refused, timed out, which certificate check failed).
                let mut m = e.to_string();
                let mut source = std::error::Error::source(e);
                while let Some(cause) = source {
                    m.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                (m, None)
            }
        };
        PgError {
            message: scrub(&message, secrets),
            code,
        }
    }
}

/// Replaces every occurrence of each secret in `msg` with `[redacted]`.
pub fn scrub(msg: &str, secrets: &[&str]) -> String {
    let mut out = msg.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 3) {
        out = out.replace(*s, "[redacted]");
    }
    out
}

/// Replaces `{{key}}` with its value for each pair, as Vault's query helper does.
pub fn render(template: &str, vars: &[(&str, &str)]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(template.to_string());
    for (k, v) in vars {
        let pat = format!("{{{{{k}}}}}");
        if out.contains(&pat) {
            out = Zeroizing::new(out.replace(&pat, v));
        }
    }
    out
}

/// Expands one configured statement the way Vault does: a base64 value is
/// decoded first; a JSON array of strings becomes several statements.
pub fn expand_statement(stmt: &str) -> Vec<String> {
    let trimmed = stmt.trim();
    if trimmed.is_empty() {
        return Vec::new();
    }
    let text = base64::engine::general_purpose::STANDARD
        .decode(trimmed)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| trimmed.to_string());
    match serde_json::from_str::<Vec<String>>(&text) {
        Ok(list) => list,
        Err(_) => vec![text],
    }
}

/// A parsed connection string: the driver's settings and the TLS mode.
pub struct Target {
    /// The driver's settings (`sslmode` already set to what it negotiates).
    pub config: tokio_postgres::Config,
    /// The TLS mode asked for (libpq's default, `prefer`, when none is).
    pub mode: SslMode,
}

fn invalid_url() -> PgError {
    PgError {
        message: pg_tls::INVALID_URL.into(),
        code: None,
    }
}

/// Parses a connection URL (URL or key=value form) whose
/// `{{username}}`/`{{password}}` placeholders take `username`/`password`.
/// `sslmode` may be any of libpq's values; file-naming keys are refused.
/// Errors never quote the URL.
pub fn target(url: &str, username: &str, password: &str) -> Result<Target, PgError> {
    let templated_user = url.contains("{{username}}");
    let templated_pass = url.contains("{{password}}");
    let plain = Zeroizing::new(
        url.replace("{{username}}", PLACEHOLDER)
            .replace("{{password}}", PLACEHOLDER),
    );
    let (rest, sslmode) = take_ssl_params(&plain)?;
    let mode = match sslmode {
        None => SslMode::Prefer,
        Some(v) => SslMode::parse(&v).ok_or_else(|| PgError {
            message: "invalid sslmode in connection_url: expected disable, allow, prefer, \
                      require, verify-ca or verify-full"
                .into(),
            code: None,
        })?,
    };
    let mut config: tokio_postgres::Config = rest.parse().map_err(|_| invalid_url())?;
    if templated_user {
        config.user(username);
    }
    if templated_pass {
        config.password(password);
    }
    config.ssl_mode(mode.driver());
    Ok(Target { config, mode })
}

/// Removes `sslmode` from a connection string (see
/// [`pg_tls::split_sslmode`]); refuses file-naming keys.
fn take_ssl_params(s: &str) -> Result<(Zeroizing<String>, Option<String>), PgError> {
    pg_tls::split_sslmode(s).map_err(|message| PgError {
        message,
        code: None,
    })
}

/// Opens a connection from a connection URL (see [`target`]) with the TLS
/// material of the configuration.
pub async fn connect(
    url: &str,
    username: &str,
    password: &str,
    tls: &TlsMaterial<'_>,
) -> Result<Client, PgError> {
    connect_target(target(url, username, password)?, tls, &[password]).await
}

/// Opens a connection to a parsed target: no TLS for `disable`, else
/// rustls as its mode says. `secrets` are scrubbed from errors. This is the
/// one place Coffer connects to PostgreSQL (the engine and the lifecycle's
/// `postgres` rotator).
pub async fn connect_target(
    target: Target,
    tls: &TlsMaterial<'_>,
    secrets: &[&str],
) -> Result<Client, PgError> {
    let Target { mut config, mode } = target;
    config.connect_timeout(CONNECT_TIMEOUT);
    if config.get_application_name().is_none() {
        config.application_name("coffer");
    }
    let driver_err = |e: tokio_postgres::Error| PgError::from_driver(&e, secrets);
    if mode == SslMode::Disable {
        let (client, connection) = config.connect(NoTls).await.map_err(driver_err)?;
        drive(connection);
        return Ok(client);
    }
    let rustls = pg_tls::client_config(mode, tls).map_err(|message| PgError {
        message,
        code: None,
    })?;
    let (client, connection) = config
        .connect(MakeRustls::new(rustls))
        .await
        .map_err(driver_err)?;
    drive(connection);
    Ok(client)
}

/// Checks the TLS material for `mode` (PEM parses, pairs fit, a CA is
/// there when the mode needs one) without connecting.
pub fn check_tls(mode: SslMode, tls: &TlsMaterial<'_>) -> Result<(), PgError> {
    pg_tls::client_config(mode, tls)
        .map(|_| ())
        .map_err(|message| PgError {
            message,
            code: None,
        })
}

/// Runs a connection's I/O in the background until it closes.
fn drive<C>(connection: C)
where
    C: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %PgError::from_driver(&e, &[]), "postgres connection ended");
        }
    });
}

/// Checks that the connection answers.
pub async fn ping(client: &Client) -> Result<(), PgError> {
    client
        .simple_query("SELECT 1")
        .await
        .map(|_| ())
        .map_err(|e| PgError::from_driver(&e, &[]))
}

/// Runs `statements`, rendered with `vars`, in one transaction; commits only
/// if every statement succeeds. Values in `vars` are scrubbed from errors.
pub async fn exec_in_txn(
    client: &mut Client,
    statements: &[String],
    vars: &[(&str, &str)],
) -> Result<(), PgError> {
    let secrets: Vec<&str> = vars.iter().map(|(_, v)| *v).collect();
    let tx = client
        .transaction()
        .await
        .map_err(|e| PgError::from_driver(&e, &secrets))?;
    for stmt in statements {
        for query in expand_statement(stmt) {
            let sql = render(&query, vars);
            tx.batch_execute(&sql)
                .await
                .map_err(|e| PgError::from_driver(&e, &secrets))?;
        }
    }
    tx.commit()
        .await
        .map_err(|e| PgError::from_driver(&e, &secrets))
}

/// Runs `statements` one by one outside a transaction, ignoring failures
/// (used for best-effort rollback statements).
pub async fn exec_best_effort(client: &Client, statements: &[String], vars: &[(&str, &str)]) {
    let secrets: Vec<&str> = vars.iter().map(|(_, v)| *v).collect();
    for stmt in statements {
        for query in expand_statement(stmt) {
            if let Err(e) = client.batch_execute(&render(&query, vars)).await {
                tracing::warn!(error = %PgError::from_driver(&e, &secrets), "rollback statement failed");
            }
        }
    }
}

/// Whether a role named `name` exists.
pub async fn role_exists(client: &Client, name: &str) -> Result<bool, PgError> {
    client
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1",
            &[&name],
        )
        .await
        .map(|r| r.is_some())
        .map_err(|e| PgError::from_driver(&e, &[]))
}

/// Quotes an identifier for SQL (`"` doubled).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Stops `name` from logging in again and ends its open sessions, so a
/// revoked credential is cut off at once. Best effort: needs superuser or
/// `pg_signal_backend`; failures are logged, not returned.
pub async fn lock_out(client: &Client, name: &str) {
    let nologin = format!("ALTER ROLE {} NOLOGIN", quote_ident(name));
    if let Err(e) = client.batch_execute(&nologin).await {
        tracing::warn!(error = %PgError::from_driver(&e, &[]), "could not disable login before revocation");
    }
    let kill = "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity \
                WHERE usename = $1 AND pid <> pg_catalog.pg_backend_pid()";
    if let Err(e) = client.query(kill, &[&name]).await {
        tracing::warn!(error = %PgError::from_driver(&e, &[]), "could not end sessions before revocation");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_replaces_every_placeholder() {
        let out = render(
            "CREATE ROLE \"{{name}}\" PASSWORD '{{password}}'; GRANT x TO \"{{name}}\"",
            &[("name", "v-a"), ("password", "pw")],
        );
        assert_eq!(
            out.as_str(),
            "CREATE ROLE \"v-a\" PASSWORD 'pw'; GRANT x TO \"v-a\""
        );
        assert_eq!(render("{{other}}", &[("name", "x")]).as_str(), "{{other}}");
    }

    #[test]
    fn statements_expand_like_vault() {
        assert_eq!(expand_statement("  "), Vec::<String>::new());
        assert_eq!(expand_statement("SELECT 1;"), vec!["SELECT 1;"]);
        let b64 = base64::engine::general_purpose::STANDARD.encode("SELECT 2;");
        assert_eq!(expand_statement(&b64), vec!["SELECT 2;"]);
        assert_eq!(
            expand_statement(r#"["SELECT 3", "SELECT 4"]"#),
            vec!["SELECT 3", "SELECT 4"]
        );
    }

    #[test]
    fn scrub_hides_secrets() {
        let pw = "abc".to_string() + "XYZ123";
        let msg = format!("syntax error at or near \"{pw}\"");
        let out = scrub(&msg, &[&pw]);
        assert!(!out.contains(&pw));
        assert!(out.contains("[redacted]"));
    }

    #[test]
    fn quote_ident_doubles_quotes() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[tokio::test]
    async fn bad_url_is_rejected_without_echo() {
        let pw = "s3cret".to_string() + "Value";
        let err = connect("host=x port=notaport", "u", &pw, &TlsMaterial::default())
            .await
            .unwrap_err();
        assert!(!err.message.contains(&pw));
        assert!(err.message.contains("invalid connection_url"));
    }

    #[test]
    fn sslmode_is_taken_from_both_forms() {
        let t = target(
            "postgres://u@h:5432/db?sslmode=verify-full&application_name=x",
            "",
            "",
        )
        .unwrap();
        assert_eq!(t.mode, SslMode::VerifyFull);
        assert_eq!(t.config.get_application_name(), Some("x"));
        assert_eq!(
            t.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        let t = target("postgresql://h/db", "", "").unwrap();
        assert_eq!(t.mode, SslMode::Prefer, "libpq's default");
        let t = target("postgresql://h/db?sslmode=disable", "", "").unwrap();
        assert_eq!(
            t.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Disable
        );
        let pw = "it's a".to_string() + " pass";
        let dsn = "host=h  sslmode = verify-ca password='it\\'s a pass' dbname=d";
        let t = target(dsn, "", "").unwrap();
        assert_eq!(t.mode, SslMode::VerifyCa);
        assert_eq!(t.config.get_password(), Some(pw.as_bytes()));
        assert_eq!(t.config.get_dbname(), Some("d"));
        let t = target("host=h user={{username}} password={{password}}", "u", &pw).unwrap();
        assert_eq!(t.mode, SslMode::Prefer);
        assert_eq!(t.config.get_user(), Some("u"));
        assert_eq!(t.config.get_password(), Some(pw.as_bytes()));
    }

    #[test]
    fn server_files_and_unknown_modes_are_refused() {
        for url in [
            "postgres://h/db?sslmode=verify-full&sslrootcert=/etc/shadow",
            "postgres://h/db?sslkey=/root/key",
            "host=h sslcert=/x sslmode=require",
            "host=h sslrootcert='/a b'",
        ] {
            let e = target(url, "", "").err().unwrap();
            assert!(
                e.message.contains("is not supported"),
                "{url}: {}",
                e.message
            );
            assert!(
                !e.message.contains('/'),
                "the path is not echoed: {}",
                e.message
            );
        }
        let e = target("postgres://h/db?sslmode=maybe", "", "")
            .err()
            .unwrap();
        assert!(e.message.contains("invalid sslmode"));
        assert!(target("host=h password='unterminated", "", "").is_err());
    }

    #[test]
    fn tls_material_is_checked_without_echo() {
        let none = TlsMaterial::default();
        assert!(check_tls(SslMode::Prefer, &none).is_ok());
        assert!(check_tls(SslMode::Require, &none).is_ok());
        for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
            let e = check_tls(mode, &none).unwrap_err();
            assert!(e.message.contains("tls_ca"), "{}", e.message);
        }
        let junk = "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n";
        let e = check_tls(SslMode::VerifyFull, &TlsMaterial { ca: junk, ..none }).unwrap_err();
        assert!(!e.message.contains("base64"), "{}", e.message);
        let e = check_tls(
            SslMode::VerifyFull,
            &TlsMaterial {
                ca: "hello",
                ..none
            },
        )
        .unwrap_err();
        assert!(e.message.contains("tls_ca"), "{}", e.message);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["db.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let ca = cert.pem();
        assert!(check_tls(SslMode::VerifyFull, &TlsMaterial { ca: &ca, ..none }).is_ok());
        let key_pem = key.serialize_pem();
        let both = TlsMaterial {
            ca: &ca,
            client_cert: &ca,
            client_key: &key_pem,
        };
        assert!(check_tls(SslMode::VerifyFull, &both).is_ok());
        let half = TlsMaterial {
            client_key: "",
            ..both
        };
        let e = check_tls(SslMode::Require, &half).unwrap_err();
        assert!(e.message.contains("together"));
        let bad_key = TlsMaterial {
            client_key: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            ..both
        };
        let e = check_tls(SslMode::Require, &bad_key).unwrap_err();
        assert!(!e.message.contains("AAAA"), "{}", e.message);
    }
}

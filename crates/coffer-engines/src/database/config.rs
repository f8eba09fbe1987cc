//! Connections: `config/:name` (write, read, list, delete), `reset/:name`
//! and `rotate-root/:name`.
//!
//! Stored at `config/<name>` in the mount's view (behind the barrier), the
//! root password included; reads never return it.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio_postgres::Client;

use super::secret::SecretString;
use super::{credgen, pg, validate_name};
use crate::engine::EngineCtx;
use crate::password::PasswordPolicies;
use crate::util::Params;
use crate::{Error, Operation, Request, Response, Result};

/// The only plugin Coffer implements.
pub const PLUGIN: &str = "postgresql-database-plugin";
/// Vault's default root rotation statement for PostgreSQL.
const DEFAULT_ROOT_ROTATION: &str = "ALTER ROLE \"{{username}}\" WITH PASSWORD '{{password}}';";
/// Plugin-specific settings accepted and echoed back under `connection_details`.
const DETAIL_KEYS: &[&str] = &[
    "max_open_connections",
    "max_idle_connections",
    "max_connection_lifetime",
    "username_template",
    "disable_escaping",
    "password_authentication",
];

/// A configured database connection.
#[derive(Clone, Serialize, Deserialize)]
pub struct DbConfig {
    /// Always [`PLUGIN`].
    pub plugin_name: String,
    /// Connection URL, optionally templated with `{{username}}`/`{{password}}`.
    pub connection_url: String,
    /// Root user name for the template.
    #[serde(default)]
    pub username: String,
    /// Root password for the template.
    #[serde(default)]
    pub password: SecretString,
    /// A new root password being set by rotate-root; kept until it is known
    /// to be in effect, so a crash mid-rotation cannot lock Coffer out.
    #[serde(default)]
    pub pending_password: Option<SecretString>,
    /// Roles (dynamic or static) allowed to use this connection; `*` for all.
    #[serde(default)]
    pub allowed_roles: Vec<String>,
    /// Statements for rotate-root.
    #[serde(default)]
    pub root_rotation_statements: Vec<String>,
    /// Whether the connection was verified at write time.
    #[serde(default = "yes")]
    pub verify_connection: bool,
    /// The stored password policy (`sys/policies/password/<name>`) new
    /// passwords follow; empty: Vault's default policy.
    #[serde(default)]
    pub password_policy: String,
    /// Plugin settings echoed under `connection_details`.
    #[serde(default)]
    pub details: Map<String, Value>,
    /// CA certificate(s), PEM, the server's certificate must chain to
    /// (Vault's `tls_ca`); used by every sslmode but `disable`.
    #[serde(default)]
    pub tls_ca: String,
    /// Client certificate chain, PEM (Vault's `tls_certificate`).
    #[serde(default)]
    pub tls_certificate: String,
    /// The client certificate's private key, PEM (Vault's `private_key`);
    /// never returned by a read.
    #[serde(default)]
    pub private_key: SecretString,
}

/// Leaves out the connection URL (it may hold a password) and the passwords.
impl std::fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbConfig")
            .field("plugin_name", &self.plugin_name)
            .field("connection_url", &crate::redact::Redacted)
            .field("username", &self.username)
            .field("password", &crate::redact::Redacted)
            .field(
                "pending_password",
                &crate::redact::opt(&self.pending_password),
            )
            .field("allowed_roles", &self.allowed_roles)
            .field("root_rotation_statements", &self.root_rotation_statements)
            .field("verify_connection", &self.verify_connection)
            .field("password_policy", &self.password_policy)
            .field("details", &crate::redact::Keys(&self.details))
            .finish()
    }
}

fn yes() -> bool {
    true
}

impl DbConfig {
    /// Whether `role` may use this connection.
    pub fn allows(&self, role: &str) -> bool {
        self.allowed_roles.iter().any(|r| r == "*" || r == role)
    }

    /// The answer to a read: no password anywhere.
    fn to_json(&self) -> Value {
        let mut details = self.details.clone();
        details.insert(
            "connection_url".into(),
            json!(redact_url(&self.connection_url)),
        );
        details.insert("username".into(), json!(self.username));
        if !self.tls_ca.is_empty() {
            details.insert("tls_ca".into(), json!(self.tls_ca));
        }
        if !self.tls_certificate.is_empty() {
            details.insert("tls_certificate".into(), json!(self.tls_certificate));
        }
        json!({
            "plugin_name": self.plugin_name,
            "plugin_version": "",
            "connection_details": details,
            "allowed_roles": self.allowed_roles,
            "root_credentials_rotate_statements": self.root_rotation_statements,
            "password_policy": self.password_policy,
        })
    }

    /// The TLS material of this connection.
    pub fn tls(&self) -> pg::TlsMaterial<'_> {
        pg::TlsMaterial {
            ca: &self.tls_ca,
            client_cert: &self.tls_certificate,
            client_key: self.private_key.expose(),
        }
    }

    /// Connects as the root user.
    pub async fn connect(&self) -> std::result::Result<Client, pg::PgError> {
        pg::connect(
            &self.connection_url,
            &self.username,
            self.password.expose(),
            &self.tls(),
        )
        .await
    }
}

/// Hides a literal password in a connection URL (`user:pass@` or
/// `password=...`); the `{{password}}` placeholder is left as is.
pub fn redact_url(url: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if let Some(at) = authority.rfind('@') {
            let userinfo = &authority[..at];
            if let Some(colon) = userinfo.find(':') {
                let pass = &userinfo[colon + 1..];
                if pass != "{{password}}" {
                    return format!(
                        "{}{}:*****{}",
                        &url[..scheme_end + 3],
                        &userinfo[..colon],
                        &rest[at..]
                    );
                }
            }
        }
        return url.to_string();
    }
    url.split(' ')
        .map(|part| match part.strip_prefix("password=") {
            Some(v) if v != "{{password}}" => "password=*****".to_string(),
            _ => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Loads a connection's configuration.
pub async fn load(ctx: &EngineCtx<'_>, name: &str) -> Result<Option<DbConfig>> {
    ctx.view.get_json(&format!("config/{name}")).await
}

/// Statement lists: a JSON array of strings, or one string as one statement
/// (Vault's string-slice coercion; SQL is never split on commas).
pub fn statements(p: &Params<'_>, name: &str) -> Result<Option<Vec<String>>> {
    match p.0.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Some(Vec::new())),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(Value::Array(_)) => Ok(p
            .str_list(name)?
            .map(|v| v.into_iter().filter(|s| !s.trim().is_empty()).collect())),
        Some(_) => Err(Error::bad(format!("{name}: expected a list of statements"))),
    }
}

/// Handles `config` (list) and `config/:name`.
pub async fn handle(ctx: &EngineCtx<'_>, req: &Request, name: &str) -> Result<Response> {
    if name.is_empty() {
        return match req.operation {
            Operation::List | Operation::Read => Response::list(ctx.view.list("config/").await?),
            _ => Err(Error::UnsupportedOperation),
        };
    }
    validate_name(name)?;
    match req.operation {
        Operation::Read => {
            let cfg = load(ctx, name).await?.ok_or(Error::NotFound)?;
            Ok(Response::data(cfg.to_json()))
        }
        Operation::Create | Operation::Update => write(ctx, req, name).await,
        Operation::Delete => {
            ctx.view.delete(&format!("config/{name}")).await?;
            Ok(Response::empty())
        }
        _ => Err(Error::UnsupportedOperation),
    }
}

async fn write(ctx: &EngineCtx<'_>, req: &Request, name: &str) -> Result<Response> {
    let p = Params(&req.data);
    let existing = load(ctx, name).await?;
    let plugin = match (p.str("plugin_name")?, &existing) {
        (Some(pl), _) => pl.to_string(),
        (None, Some(e)) => e.plugin_name.clone(),
        (None, None) => return Err(Error::bad("plugin_name must be set")),
    };
    if plugin != PLUGIN {
        return Err(Error::bad(format!(
            "unsupported plugin_name {plugin:?}: Coffer supports {PLUGIN}"
        )));
    }
    let mut cfg = existing.unwrap_or(DbConfig {
        plugin_name: PLUGIN.into(),
        connection_url: String::new(),
        username: String::new(),
        password: SecretString::default(),
        pending_password: None,
        allowed_roles: Vec::new(),
        root_rotation_statements: Vec::new(),
        verify_connection: true,
        password_policy: String::new(),
        details: Map::new(),
        tls_ca: String::new(),
        tls_certificate: String::new(),
        private_key: SecretString::default(),
    });
    cfg.plugin_name = plugin;
    if let Some(url) = p.str("connection_url")? {
        cfg.connection_url = url.to_string();
    }
    if cfg.connection_url.trim().is_empty() {
        return Err(Error::bad("connection_url cannot be empty"));
    }
    if let Some(u) = p.str("username")? {
        cfg.username = u.to_string();
    }
    if let Some(pw) = p.str("password")? {
        cfg.password = SecretString::new(pw.to_string());
        cfg.pending_password = None;
    }
    if let Some(roles) = p.str_list("allowed_roles")? {
        cfg.allowed_roles = roles;
    }
    if let Some(s) = statements(&p, "root_rotation_statements")? {
        cfg.root_rotation_statements = s;
    }
    if let Some(pp) = p.str("password_policy")? {
        cfg.password_policy = pp.to_string();
    }
    cfg.verify_connection = p.bool("verify_connection")?.unwrap_or(true);
    if let Some(ca) = p.str("tls_ca")? {
        cfg.tls_ca = ca.to_string();
    }
    if let Some(cert) = p.str("tls_certificate")? {
        cfg.tls_certificate = cert.to_string();
    }
    if let Some(key) = p.str("private_key")? {
        cfg.private_key = SecretString::new(key.to_string());
    }
    // Parse the URL (sslmode, refused keys) and the PEM now, even unverified.
    let target = pg::target(&cfg.connection_url, "", "").map_err(|e| Error::bad(e.message))?;
    if target.mode != pg::SslMode::Disable {
        pg::check_tls(target.mode, &cfg.tls()).map_err(|e| Error::bad(e.message))?;
    }
    for key in DETAIL_KEYS {
        if let Some(v) = req.data.get(*key).filter(|v| !v.is_null()) {
            cfg.details.insert((*key).to_string(), v.clone());
        }
    }
    if let Some(auth) = p.str("password_authentication")? {
        if !matches!(auth, "password" | "scram-sha-256") {
            return Err(Error::bad(
                "password_authentication must be \"password\" or \"scram-sha-256\"",
            ));
        }
    }
    if cfg.verify_connection {
        let client = cfg
            .connect()
            .await
            .map_err(|e| Error::bad(format!("error verifying connection: {e}")))?;
        pg::ping(&client)
            .await
            .map_err(|e| Error::bad(format!("error verifying connection: {e}")))?;
    }
    ctx.view.put_json(&format!("config/{name}"), &cfg).await?;
    Ok(Response::empty())
}

/// `reset/:name`: Coffer keeps no open connections, so there is nothing to
/// close; answers 204 for a configured connection.
pub async fn reset(ctx: &EngineCtx<'_>, req: &Request, name: &str) -> Result<Response> {
    if !req.operation.is_write() {
        return Err(Error::UnsupportedOperation);
    }
    validate_name(name)?;
    load(ctx, name).await?.ok_or_else(|| {
        Error::bad(format!(
            "unable to reset connection: no connection named {name:?}"
        ))
    })?;
    Ok(Response::empty())
}

/// Connects as root; when the stored password is refused but a rotate-root
/// was interrupted after the database took the new one, adopts the pending
/// password.
pub async fn connect_root(ctx: &EngineCtx<'_>, name: &str, cfg: &mut DbConfig) -> Result<Client> {
    match cfg.connect().await {
        Ok(c) => Ok(c),
        Err(e) if e.is_auth_failure() && cfg.pending_password.is_some() => {
            let pending = cfg.pending_password.clone().unwrap_or_default();
            let client = pg::connect(
                &cfg.connection_url,
                &cfg.username,
                pending.expose(),
                &cfg.tls(),
            )
            .await
            .map_err(|_| Error::bad(format!("unable to connect to database {name:?}: {e}")))?;
            cfg.password = pending;
            cfg.pending_password = None;
            ctx.view.put_json(&format!("config/{name}"), &*cfg).await?;
            tracing::info!(db = %name, "adopted the root password of an interrupted rotation");
            Ok(client)
        }
        Err(e) => Err(Error::bad(format!(
            "unable to connect to database {name:?}: {e}"
        ))),
    }
}

/// `rotate-root/:name`: sets a new random password for the root user in the
/// database and stores it. The new password is recorded as pending before
/// the change so an interruption cannot lose it.
pub async fn rotate_root(
    ctx: &EngineCtx<'_>,
    passwords: &PasswordPolicies,
    req: &Request,
    name: &str,
) -> Result<Response> {
    if !req.operation.is_write() {
        return Err(Error::UnsupportedOperation);
    }
    validate_name(name)?;
    let mut cfg = load(ctx, name)
        .await?
        .ok_or_else(|| Error::bad(format!("no configuration found for {name:?}")))?;
    if cfg.username.is_empty() {
        return Err(Error::bad(
            "unable to rotate root credentials: no username in configuration",
        ));
    }
    if !cfg.connection_url.contains("{{password}}") {
        return Err(Error::bad(
            "unable to rotate root credentials: connection_url must be templated with {{password}}",
        ));
    }
    let mut client = connect_root(ctx, name, &mut cfg).await?;
    let new = credgen::password(passwords, &cfg.password_policy).await?;
    cfg.pending_password = Some(new.clone());
    ctx.view.put_json(&format!("config/{name}"), &cfg).await?;
    let stmts = if cfg.root_rotation_statements.is_empty() {
        vec![DEFAULT_ROOT_ROTATION.to_string()]
    } else {
        cfg.root_rotation_statements.clone()
    };
    let username = cfg.username.clone();
    let vars = [
        ("username", username.as_str()),
        ("name", username.as_str()),
        ("password", new.expose()),
    ];
    let result = pg::exec_in_txn(&mut client, &stmts, &vars).await;
    match result {
        Ok(()) => {
            cfg.password = new;
            cfg.pending_password = None;
            ctx.view.put_json(&format!("config/{name}"), &cfg).await?;
            tracing::info!(db = %name, "root credentials rotated");
            Ok(Response::empty())
        }
        Err(e) => {
            cfg.pending_password = None;
            ctx.view.put_json(&format!("config/{name}"), &cfg).await?;
            Err(Error::bad(format!(
                "failed to rotate root credentials: {e}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgresql://{{username}}:{{password}}@h:5432/db"),
            "postgresql://{{username}}:{{password}}@h:5432/db"
        );
        let lit = "postgres://u:".to_string() + "pw0rd" + "@h/db?sslmode=disable";
        assert_eq!(redact_url(&lit), "postgres://u:*****@h/db?sslmode=disable");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        let kv = "host=h user=u password=".to_string() + "pw0rd";
        assert_eq!(redact_url(&kv), "host=h user=u password=*****");
    }

    #[test]
    fn allowed_roles() {
        let mut c: DbConfig = serde_json::from_value(json!({
            "plugin_name": PLUGIN, "connection_url": "x", "allowed_roles": ["a"]
        }))
        .unwrap();
        assert!(c.allows("a"));
        assert!(!c.allows("b"));
        c.allowed_roles = vec!["*".into()];
        assert!(c.allows("b"));
    }
}

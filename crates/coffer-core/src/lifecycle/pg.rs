//! The `postgres` rotator: rotates a real PostgreSQL role's password.
//!
//! Settings: `connection_url` (an admin connection; `{{username}}` and
//! `{{password}}` are filled from `username`/`password`), `strategy`
//! (`single`: one role, `role`; `alternating`: two roles, `roles`, the
//! previous one stays valid until the next rotation), `username_field` and
//! `password_field` (the secret's keys, default `username` and `password`),
//! `tls_ca` (PEM CA for the URL's `sslmode`, as the database engine's
//! `tls_ca`), and the password policy of the `generate` rotator.

use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::rotators::StepInput;
use crate::engines::database::pg::{self as dbpg, Target, TlsMaterial};
use crate::util::Params;
use crate::{Error, Result};

fn field<'a>(settings: &'a Map<String, Value>, name: &str, default: &'a str) -> &'a str {
    settings
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or(default)
}

/// The admin connection: `connection_url` (with its `sslmode`) and
/// `tls_ca`, parsed by the database engine's connection code.
fn admin_config(settings: &Map<String, Value>) -> Result<Target> {
    let p = Params(settings);
    let url = p.str("connection_url")?.unwrap_or_default();
    dbpg::target(
        url,
        p.str("username")?.unwrap_or(""),
        p.str("password")?.unwrap_or(""),
    )
    .map_err(|e| {
        Error::bad(format!(
            "rotation.settings.connection_url is not a valid PostgreSQL URL: {e}"
        ))
    })
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Connects through the database engine's one connect function (TLS as
/// `sslmode` says, the CA from `tls_ca`); the reason names no secret.
async fn connect(settings: &Map<String, Value>, target: Target) -> Result<tokio_postgres::Client> {
    let p = Params(settings);
    let tls = TlsMaterial {
        ca: p.str("tls_ca")?.unwrap_or(""),
        ..TlsMaterial::default()
    };
    let password = Zeroizing::new(
        target
            .config
            .get_password()
            .and_then(|p| std::str::from_utf8(p).ok())
            .unwrap_or("")
            .to_string(),
    );
    dbpg::connect_target(target, &tls, &[password.as_str()])
        .await
        .map_err(|e| match &e.code {
            Some(code) => Error::bad(format!("cannot connect to PostgreSQL: {e} ({code})")),
            None => Error::bad(format!("cannot connect to PostgreSQL: {e}")),
        })
}

/// A PostgreSQL error's reason, without the statement (which may hold a password).
fn pg_reason(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => "connection failed".into(),
    }
}

fn target_role(input: &StepInput<'_>) -> Result<String> {
    let p = Params(input.settings);
    let user_field = field(input.settings, "username_field", "username");
    match p.str("strategy")?.unwrap_or("single") {
        "alternating" => {
            let roles = p.str_list("roles")?.unwrap_or_default();
            if roles.len() != 2 {
                return Err(Error::bad("rotation.settings.roles must name two roles"));
            }
            if input.step == "create" {
                let current = input.current.get(user_field).and_then(Value::as_str);
                Ok(if current == Some(roles[0].as_str()) {
                    roles[1].clone()
                } else {
                    roles[0].clone()
                })
            } else {
                input
                    .pending
                    .get(user_field)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| Error::bad("pending version has no username"))
            }
        }
        _ => p
            .str("role")?
            .map(str::to_string)
            .ok_or_else(|| Error::bad("rotation.settings.role is required")),
    }
}

async fn set_password(settings: &Map<String, Value>, role: &str, password: &str) -> Result<()> {
    let client = connect(settings, admin_config(settings)?).await?;
    let stmt = Zeroizing::new(format!(
        "ALTER ROLE {} WITH PASSWORD {}",
        quote_ident(role),
        quote_literal(password)
    ));
    client
        .batch_execute(&stmt)
        .await
        .map_err(|e| Error::bad(format!("ALTER ROLE failed: {}", pg_reason(&e))))
}

/// Runs one step; `create` returns the pending value.
pub async fn step(input: &StepInput<'_>) -> Result<Option<Value>> {
    let user_field = field(input.settings, "username_field", "username").to_string();
    let pass_field = field(input.settings, "password_field", "password").to_string();
    match input.step {
        "create" => {
            let role = target_role(input)?;
            let policy = super::rotators::policy_for(input.settings)?;
            let mut data = match input.current {
                Value::Object(m) => m.clone(),
                _ => Map::new(),
            };
            data.insert(user_field, Value::String(role));
            data.insert(
                pass_field,
                Value::String(super::rotators::generate(&policy).to_string()),
            );
            Ok(Some(Value::Object(data)))
        }
        "set" => {
            let role = target_role(input)?;
            let pw = input
                .pending
                .get(&pass_field)
                .and_then(Value::as_str)
                .ok_or_else(|| Error::bad("pending version has no password"))?;
            set_password(input.settings, &role, pw).await?;
            Ok(None)
        }
        "test" => {
            let role = target_role(input)?;
            let pw = input
                .pending
                .get(&pass_field)
                .and_then(Value::as_str)
                .ok_or_else(|| Error::bad("pending version has no password"))?;
            let mut target = admin_config(input.settings)?;
            target.config.user(&role).password(pw);
            let client = connect(input.settings, target)
                .await
                .map_err(|_| Error::bad(format!("login as {role} with the new password failed")))?;
            client
                .simple_query("SELECT 1")
                .await
                .map_err(|e| Error::bad(format!("test query failed: {}", pg_reason(&e))))?;
            Ok(None)
        }
        "rollback" => {
            // Single user: put the old password back so the current version works again.
            if Params(input.settings).str("strategy")?.unwrap_or("single") == "single" {
                if let Some(old) = input.current.get(&pass_field).and_then(Value::as_str) {
                    let role = target_role(input)?;
                    set_password(input.settings, &role, old).await?;
                }
            }
            Ok(None)
        }
        _ => Ok(None),
    }
}

//! The `postgres` rotator: rotates a real PostgreSQL role's password.
//!
//! The admin connection is declared by the operator (`[rotator.NAME]` with
//! `type = "postgres"`, see [`super::registry`]); a lifecycle record names
//! it (`name`) and never gives a connection string. Settings: `strategy`
//! (`single`: one role, `role`; `alternating`: two roles, `roles`, the
//! previous one stays valid until the next rotation), `username_field` and
//! `password_field` (the secret's keys, default `username` and `password`),
//! and the password policy of the `generate` rotator. Only roles in the
//! declaration's `allowed_roles` are rotated.

use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::registry::PostgresRotator;
use super::rotators::StepInput;
use crate::engines::database::pg::{self as dbpg, TlsMaterial};
use crate::util::Params;
use crate::{Error, Result};

fn field<'a>(settings: &'a Map<String, Value>, name: &str, default: &'a str) -> &'a str {
    settings
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or(default)
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Connects through the database engine's one connect function: TLS as the
/// declaration's `sslmode` says, its CA from `tls_ca_file`; `as_user`
/// replaces the declared login (the test step logs in as the rotated role).
/// The reason names no secret.
async fn connect(
    pg: &PostgresRotator,
    as_user: Option<(&str, &str)>,
) -> Result<tokio_postgres::Client> {
    let mut target = pg.target();
    if let Some((user, password)) = as_user {
        target.config.user(user).password(password);
    }
    let password = Zeroizing::new(
        target
            .config
            .get_password()
            .and_then(|p| std::str::from_utf8(p).ok())
            .unwrap_or("")
            .to_string(),
    );
    let tls = TlsMaterial {
        ca: pg.tls_ca.as_deref().unwrap_or(""),
        ..TlsMaterial::default()
    };
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

async fn set_password(pg: &PostgresRotator, role: &str, password: &str) -> Result<()> {
    if !pg.allows(role) {
        return Err(Error::bad(format!(
            "role {role:?} is not in the allowed_roles of this postgres rotator"
        )));
    }
    let client = connect(pg, None).await?;
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
pub async fn step(pg: &PostgresRotator, input: &StepInput<'_>) -> Result<Option<Value>> {
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
                Value::String(
                    super::rotators::generate(&policy, input.passwords)
                        .await?
                        .to_string(),
                ),
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
            set_password(pg, &role, pw).await?;
            Ok(None)
        }
        "test" => {
            let role = target_role(input)?;
            let pw = input
                .pending
                .get(&pass_field)
                .and_then(Value::as_str)
                .ok_or_else(|| Error::bad("pending version has no password"))?;
            let client = connect(pg, Some((&role, pw)))
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
                    set_password(pg, &role, old).await?;
                }
            }
            Ok(None)
        }
        _ => Ok(None),
    }
}

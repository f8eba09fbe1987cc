//! Dynamic roles: `roles/:name`, `creds/:name`, and the revocation and
//! renewal of the leases they hand out.
//!
//! Stored at `role/<name>`. A lease's internal data names the connection,
//! the role and the user (never the password), plus the revocation
//! statements in force when it was issued, so it can be revoked even after
//! its role is deleted.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::config::{self, statements};
use super::{credgen, pg, schedule, static_roles, validate_name};
use crate::engine::EngineCtx;
use crate::password::PasswordPolicies;
use crate::util::{now, Params};
use crate::{Error, LeaseRequest, Operation, Request, Response, Result};

use coffer_engine::mounts::SYSTEM_MAX_TTL as SYSTEM_TTL;
/// Vault's default renewal for PostgreSQL.
const DEFAULT_RENEW: &str = "ALTER ROLE \"{{name}}\" VALID UNTIL '{{expiration}}';";
/// Display name used in generated user names (Vault uses the token's).
const DISPLAY_NAME: &str = "token";

/// A dynamic role.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Role {
    /// The connection it uses.
    pub db_name: String,
    /// Statements that create the user.
    pub creation_statements: Vec<String>,
    /// Statements that drop the user (empty: Coffer's robust default).
    #[serde(default)]
    pub revocation_statements: Vec<String>,
    /// Statements run when creation fails.
    #[serde(default)]
    pub rollback_statements: Vec<String>,
    /// Statements run on renewal (empty: `ALTER ROLE ... VALID UNTIL`).
    #[serde(default)]
    pub renew_statements: Vec<String>,
    /// Default lease TTL in seconds (0: the mount's).
    #[serde(default)]
    pub default_ttl: u64,
    /// Maximum lease TTL in seconds (0: the mount's).
    #[serde(default)]
    pub max_ttl: u64,
}

/// What a lease remembers to revoke or renew its user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseInternal {
    /// The connection.
    pub db_name: String,
    /// The role that issued it.
    pub role: String,
    /// The database user.
    pub username: String,
    /// The role's revocation statements when the lease was issued.
    #[serde(default)]
    pub revocation_statements: Vec<String>,
}

/// Loads a dynamic role.
pub async fn load(ctx: &EngineCtx<'_>, name: &str) -> Result<Option<Role>> {
    ctx.view.get_json(&format!("role/{name}")).await
}

/// Handles `roles` (list) and `roles/:name`.
pub async fn handle(ctx: &EngineCtx<'_>, req: &Request, name: &str) -> Result<Response> {
    if name.is_empty() {
        return match req.operation {
            Operation::List | Operation::Read => Response::list(ctx.view.list("role/").await?),
            _ => Err(Error::UnsupportedOperation),
        };
    }
    validate_name(name)?;
    match req.operation {
        Operation::Read => {
            let r = load(ctx, name).await?.ok_or(Error::NotFound)?;
            Ok(Response::data(json!({
                "db_name": r.db_name,
                "creation_statements": r.creation_statements,
                "revocation_statements": r.revocation_statements,
                "rollback_statements": r.rollback_statements,
                "renew_statements": r.renew_statements,
                "default_ttl": r.default_ttl,
                "max_ttl": r.max_ttl,
                "credential_type": "password",
            })))
        }
        Operation::Create | Operation::Update => write(ctx, req, name).await,
        Operation::Delete => {
            ctx.view.delete(&format!("role/{name}")).await?;
            Ok(Response::empty())
        }
        _ => Err(Error::UnsupportedOperation),
    }
}

async fn write(ctx: &EngineCtx<'_>, req: &Request, name: &str) -> Result<Response> {
    if static_roles::load(ctx, name).await?.is_some() {
        return Err(Error::bad("Role and Static Role names must be unique"));
    }
    let p = Params(&req.data);
    let mut role = load(ctx, name).await?.unwrap_or_default();
    if let Some(db) = p.str("db_name")? {
        role.db_name = db.to_string();
    }
    if role.db_name.is_empty() {
        return Err(Error::bad("empty database name attribute"));
    }
    validate_name(&role.db_name)?;
    if let Some(s) = statements(&p, "creation_statements")? {
        role.creation_statements = s;
    }
    if role.creation_statements.is_empty() {
        return Err(Error::bad("creation_statements cannot be empty"));
    }
    if let Some(s) = statements(&p, "revocation_statements")? {
        role.revocation_statements = s;
    }
    if let Some(s) = statements(&p, "rollback_statements")? {
        role.rollback_statements = s;
    }
    if let Some(s) = statements(&p, "renew_statements")? {
        role.renew_statements = s;
    }
    if let Some(t) = p.duration("default_ttl")? {
        role.default_ttl = t;
    }
    if let Some(t) = p.duration("max_ttl")? {
        role.max_ttl = t;
    }
    if role.max_ttl > 0 && role.default_ttl > role.max_ttl {
        return Err(Error::bad("ttl cannot be greater than max_ttl"));
    }
    if let Some(ct) = p.str("credential_type")? {
        if ct != "password" {
            return Err(Error::bad(format!(
                "unsupported credential_type {ct:?}: Coffer supports password"
            )));
        }
    }
    ctx.view.put_json(&format!("role/{name}"), &role).await?;
    Ok(Response::empty())
}

/// The lease TTL and maximum for `role` under the mount's limits, as the
/// core will compute them.
fn lease_ttls(ctx: &EngineCtx<'_>, role: &Role) -> (u64, u64) {
    let cfg = &ctx.mount.config;
    let mount_max = if cfg.max_lease_ttl > 0 {
        cfg.max_lease_ttl
    } else {
        SYSTEM_TTL
    };
    let max = if role.max_ttl > 0 {
        role.max_ttl.min(mount_max)
    } else {
        mount_max
    };
    let default = if role.default_ttl > 0 {
        role.default_ttl
    } else if cfg.default_lease_ttl > 0 {
        cfg.default_lease_ttl
    } else {
        SYSTEM_TTL
    };
    (default.min(max), max)
}

/// Vault's `{{expiration}}` format.
fn expiration(ttl: u64) -> String {
    schedule::add_secs(now(), ttl)
        .format("%Y-%m-%d %H:%M:%S%z")
        .to_string()
}

/// `creds/:name`: creates a database user and answers it with a lease.
pub async fn creds(
    ctx: &EngineCtx<'_>,
    passwords: &PasswordPolicies,
    req: &Request,
    name: &str,
) -> Result<Response> {
    if req.operation != Operation::Read {
        return Err(Error::UnsupportedOperation);
    }
    validate_name(name)?;
    let role = load(ctx, name)
        .await?
        .ok_or_else(|| Error::bad(format!("unknown role: {name}")))?;
    let mut cfg = config::load(ctx, &role.db_name)
        .await?
        .ok_or_else(|| Error::bad(format!("unknown database {:?}", role.db_name)))?;
    if !cfg.allows(name) {
        return Err(Error::bad(format!("{name:?} is not an allowed role")));
    }
    let (ttl, max_ttl) = lease_ttls(ctx, &role);
    let username = credgen::username(DISPLAY_NAME, name, now().timestamp());
    let password = credgen::password(passwords, &cfg.password_policy).await?;
    let exp = expiration(ttl);
    let vars = [
        ("name", username.as_str()),
        ("username", username.as_str()),
        ("password", password.expose()),
        ("expiration", exp.as_str()),
    ];
    let mut client = config::connect_root(ctx, &role.db_name, &mut cfg).await?;
    if let Err(e) = pg::exec_in_txn(&mut client, &role.creation_statements, &vars).await {
        pg::exec_best_effort(&client, &role.rollback_statements, &vars).await;
        return Err(Error::bad(format!(
            "failed to create the database user: {e}"
        )));
    }
    tracing::info!(role = %name, user = %username, "database user created");
    let internal = LeaseInternal {
        db_name: role.db_name.clone(),
        role: name.to_string(),
        username: username.clone(),
        revocation_statements: role.revocation_statements.clone(),
    };
    let mut resp = Response::data(json!({
        "username": username,
        "password": password.expose(),
    }));
    resp.lease = Some(LeaseRequest {
        ttl,
        max_ttl,
        renewable: true,
        internal: serde_json::to_value(&internal)
            .map_err(|e| Error::encode("the lease data", e))?,
    });
    Ok(resp)
}

fn parse_internal(internal: &Value) -> Result<LeaseInternal> {
    serde_json::from_value(internal.clone()).map_err(|_| Error::corrupt("database lease data"))
}

/// Drops the user of a lease. Already-gone users count as revoked. With no
/// revocation statements: disable login, end the user's sessions, hand its
/// objects to the connecting user, drop what remains owned and drop the role.
pub async fn revoke(ctx: &EngineCtx<'_>, internal: &Value) -> Result<()> {
    let lease = parse_internal(internal)?;
    let mut cfg = config::load(ctx, &lease.db_name).await?.ok_or_else(|| {
        Error::bad(format!(
            "cannot revoke: database {:?} is not configured",
            lease.db_name
        ))
    })?;
    let mut client = config::connect_root(ctx, &lease.db_name, &mut cfg).await?;
    let gone = |e: pg::PgError| Error::bad(format!("failed to revoke the database user: {e}"));
    if !pg::role_exists(&client, &lease.username)
        .await
        .map_err(gone)?
    {
        return Ok(());
    }
    pg::lock_out(&client, &lease.username).await;
    // Statements of the role as it is now, else as they were at issue time.
    let current = load(ctx, &lease.role)
        .await?
        .filter(|r| r.db_name == lease.db_name)
        .map(|r| r.revocation_statements);
    let stmts = current.unwrap_or(lease.revocation_statements);
    let stmts = if stmts.is_empty() {
        let q = pg::quote_ident(&lease.username);
        vec![format!(
            "REASSIGN OWNED BY {q} TO CURRENT_USER; DROP OWNED BY {q}; DROP ROLE IF EXISTS {q};"
        )]
    } else {
        stmts
    };
    let vars = [
        ("name", lease.username.as_str()),
        ("username", lease.username.as_str()),
    ];
    pg::exec_in_txn(&mut client, &stmts, &vars)
        .await
        .map_err(gone)?;
    tracing::info!(user = %lease.username, "database user revoked");
    Ok(())
}

/// Extends a lease's user to `ttl` seconds from now (its renew statements,
/// or `ALTER ROLE ... VALID UNTIL`).
pub async fn renew(ctx: &EngineCtx<'_>, internal: &Value, ttl: u64) -> Result<()> {
    let lease = parse_internal(internal)?;
    let mut cfg = config::load(ctx, &lease.db_name).await?.ok_or_else(|| {
        Error::bad(format!(
            "cannot renew: database {:?} is not configured",
            lease.db_name
        ))
    })?;
    let stmts = load(ctx, &lease.role)
        .await?
        .map(|r| r.renew_statements)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| vec![DEFAULT_RENEW.to_string()]);
    let exp = expiration(ttl);
    let vars = [
        ("name", lease.username.as_str()),
        ("username", lease.username.as_str()),
        ("expiration", exp.as_str()),
    ];
    let mut client = config::connect_root(ctx, &lease.db_name, &mut cfg).await?;
    pg::exec_in_txn(&mut client, &stmts, &vars)
        .await
        .map_err(|e| Error::bad(format!("failed to renew the database user: {e}")))
}

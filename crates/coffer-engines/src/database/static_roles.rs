//! Static roles: an existing database user whose password Coffer owns and
//! rotates. `static-roles/:name`, `static-creds/:name`, `rotate-role/:name`,
//! and the background pass that rotates due roles.
//!
//! Stored at `static-role/<name>`, password included (behind the barrier).
//! A rotation first records the new password as pending, then changes it in
//! the database, then promotes it; a role left with a pending password (an
//! interrupted rotation) is due at once, so the stored password heals itself.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::config::{self, statements};
use super::schedule::{add_secs, Cadence};
use super::secret::SecretString;
use super::{credgen, pg, roles, validate_name};
use crate::engine::EngineCtx;
use crate::password::PasswordPolicies;
use crate::util::{now, rfc3339, Params};
use crate::{Error, Operation, Request, Response, Result};

/// Vault's default rotation statement for PostgreSQL.
const DEFAULT_ROTATION: &str = "ALTER USER \"{{name}}\" WITH PASSWORD '{{password}}';";
/// Seconds before retrying a failed background rotation (doubled per failure).
const RETRY_BASE: i64 = 10;
/// Longest wait between retries.
const RETRY_MAX: i64 = 600;

/// A static role.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StaticRole {
    /// The connection it uses.
    pub db_name: String,
    /// The existing database user.
    pub username: String,
    /// Statements that set the password.
    #[serde(default)]
    pub rotation_statements: Vec<String>,
    /// When it is rotated.
    pub cadence: Cadence,
    /// The current password.
    pub password: SecretString,
    /// A password being set by a rotation not yet known to be complete.
    #[serde(default)]
    pub pending_password: Option<SecretString>,
    /// When Coffer last rotated it.
    pub last_vault_rotation: DateTime<Utc>,
    /// When the next rotation falls due.
    pub next_rotation: DateTime<Utc>,
    /// Consecutive failed rotations (for backoff).
    #[serde(default)]
    pub failures: u32,
    /// The last failure's reason, if the last rotation failed.
    #[serde(default)]
    pub last_error: Option<String>,
}

impl StaticRole {
    /// Whether a rotation is due at `at`.
    pub fn is_due(&self, at: DateTime<Utc>) -> bool {
        self.pending_password.is_some() || at >= self.next_rotation
    }

    fn ttl(&self, at: DateTime<Utc>) -> i64 {
        (self.next_rotation - at).num_seconds().max(0)
    }

    fn schedule_fields(&self, v: &mut Value) {
        if let Cadence::Schedule { cron, window } = &self.cadence {
            v["rotation_schedule"] = json!(cron);
            v["rotation_window"] = json!(window);
        }
    }
}

fn key(name: &str) -> String {
    format!("static-role/{name}")
}

/// Loads a static role.
pub async fn load(ctx: &EngineCtx<'_>, name: &str) -> Result<Option<StaticRole>> {
    ctx.view.get_json(&key(name)).await
}

/// Handles `static-roles` (list) and `static-roles/:name`. Writes rotate a
/// new role at once; the caller holds the engine's rotation lock.
pub async fn handle(
    ctx: &EngineCtx<'_>,
    passwords: &PasswordPolicies,
    req: &Request,
    name: &str,
) -> Result<Response> {
    if name.is_empty() {
        return match req.operation {
            Operation::List | Operation::Read => {
                Response::list(ctx.view.list("static-role/").await?)
            }
            _ => Err(Error::UnsupportedOperation),
        };
    }
    validate_name(name)?;
    match req.operation {
        Operation::Read => {
            let r = load(ctx, name).await?.ok_or(Error::NotFound)?;
            let mut v = json!({
                "db_name": r.db_name,
                "username": r.username,
                "rotation_statements": r.rotation_statements,
                "rotation_period": r.cadence.period(),
                "last_vault_rotation": rfc3339(&r.last_vault_rotation),
                "credential_type": "password",
                "credential_config": {},
            });
            r.schedule_fields(&mut v);
            Ok(Response::data(v))
        }
        Operation::Create | Operation::Update => write(ctx, passwords, req, name).await,
        Operation::Delete => {
            ctx.view.delete(&key(name)).await?;
            Ok(Response::empty())
        }
        _ => Err(Error::UnsupportedOperation),
    }
}

/// Checks a database user name: it is substituted into SQL as `"{{name}}"`.
fn validate_username(u: &str) -> Result<()> {
    if u.is_empty() {
        return Err(Error::bad(
            "username is a required field to create a static account",
        ));
    }
    if u.len() > credgen::MAX_IDENTIFIER_LEN
        || u.chars().any(|c| matches!(c, '"' | '\'' | '\\' | '\0'))
    {
        return Err(Error::bad(
            "username: at most 63 bytes, without quotes, backslashes or NUL",
        ));
    }
    Ok(())
}

fn cadence(p: &Params<'_>, old: Option<&Cadence>) -> Result<Cadence> {
    let period = p.duration("rotation_period")?;
    let schedule = p.str("rotation_schedule")?.filter(|s| !s.trim().is_empty());
    let window = p.duration("rotation_window")?;
    let c = match (period, schedule, old) {
        (Some(_), Some(_), _) => {
            return Err(Error::bad(
                "mutually exclusive fields rotation_period and rotation_schedule were both specified; only one of them can be provided",
            ))
        }
        (Some(_), None, _) if window.is_some_and(|w| w > 0) => {
            return Err(Error::bad(
                "rotation_window is invalid with use of rotation_period",
            ))
        }
        (Some(period), None, _) => Cadence::Period(period),
        (None, Some(cron), _) => Cadence::Schedule {
            cron: cron.to_string(),
            window: window.unwrap_or(0),
        },
        (None, None, Some(Cadence::Schedule { cron, window: w })) => Cadence::Schedule {
            cron: cron.clone(),
            window: window.unwrap_or(*w),
        },
        (None, None, Some(old)) => old.clone(),
        (None, None, None) => {
            return Err(Error::bad(
                "one of rotation_schedule or rotation_period must be provided to create a static account",
            ))
        }
    };
    c.validate()?;
    Ok(c)
}

async fn write(
    ctx: &EngineCtx<'_>,
    passwords: &PasswordPolicies,
    req: &Request,
    name: &str,
) -> Result<Response> {
    if roles::load(ctx, name).await?.is_some() {
        return Err(Error::bad("Role and Static Role names must be unique"));
    }
    let p = Params(&req.data);
    let existing = load(ctx, name).await?;
    let db_name = match (p.str("db_name")?, &existing) {
        (Some(d), _) => d.to_string(),
        (None, Some(e)) => e.db_name.clone(),
        (None, None) => return Err(Error::bad("database name is required")),
    };
    let username = match (p.str("username")?, &existing) {
        (Some(u), Some(e)) if u != e.username => {
            return Err(Error::bad("cannot update static account username"))
        }
        (Some(u), _) => u.to_string(),
        (None, Some(e)) => e.username.clone(),
        (None, None) => String::new(),
    };
    validate_name(&db_name)?;
    validate_username(&username)?;
    let cfg = config::load(ctx, &db_name)
        .await?
        .ok_or_else(|| Error::bad(format!("unknown database {db_name:?}")))?;
    if !cfg.allows(name) {
        return Err(Error::bad(format!("{name:?} is not an allowed role")));
    }
    let cadence = cadence(&p, existing.as_ref().map(|e| &e.cadence))?;
    let rotation_statements = statements(&p, "rotation_statements")?
        .or_else(|| existing.as_ref().map(|e| e.rotation_statements.clone()))
        .unwrap_or_default();
    match existing {
        Some(mut role) => {
            let cadence_changed = role.cadence != cadence;
            role.db_name = db_name;
            role.rotation_statements = rotation_statements;
            role.cadence = cadence;
            if cadence_changed {
                role.next_rotation = role.cadence.next_after(role.last_vault_rotation);
            }
            ctx.view.put_json(&key(name), &role).await?;
        }
        None => {
            let at = now();
            let role = StaticRole {
                db_name,
                username,
                rotation_statements,
                next_rotation: cadence.next_after(at),
                cadence,
                password: SecretString::default(),
                pending_password: None,
                last_vault_rotation: at,
                failures: 0,
                last_error: None,
            };
            // Vault rotates a new static role at once; the role is kept only if that works.
            rotate(ctx, passwords, name, role, false).await?;
        }
    }
    Ok(Response::empty())
}

/// Sets a fresh password on `role`'s user and stores it. On failure the
/// stored password is untouched; with `keep_on_failure` the failure and a
/// retry time are recorded, otherwise nothing is stored.
async fn rotate(
    ctx: &EngineCtx<'_>,
    passwords: &PasswordPolicies,
    name: &str,
    mut role: StaticRole,
    keep_on_failure: bool,
) -> Result<()> {
    let mut cfg = config::load(ctx, &role.db_name)
        .await?
        .ok_or_else(|| Error::bad(format!("unknown database {:?}", role.db_name)))?;
    let new = credgen::password(passwords, &cfg.password_policy).await?;
    let outcome = async {
        let mut client = config::connect_root(ctx, &role.db_name, &mut cfg).await?;
        role.pending_password = Some(new.clone());
        if keep_on_failure {
            ctx.view.put_json(&key(name), &role).await?;
        }
        let stmts = if role.rotation_statements.is_empty() {
            vec![DEFAULT_ROTATION.to_string()]
        } else {
            role.rotation_statements.clone()
        };
        let vars = [
            ("name", role.username.as_str()),
            ("username", role.username.as_str()),
            ("password", new.expose()),
        ];
        pg::exec_in_txn(&mut client, &stmts, &vars)
            .await
            .map_err(|e| {
                Error::bad(format!(
                    "failed to rotate the password of static role {name:?}: {e}"
                ))
            })
    }
    .await;
    let at = now();
    role.pending_password = None;
    match outcome {
        Ok(()) => {
            role.password = new;
            role.last_vault_rotation = at;
            role.next_rotation = role.cadence.next_after(at);
            role.failures = 0;
            role.last_error = None;
            ctx.view.put_json(&key(name), &role).await?;
            tracing::info!(role = %name, "static role rotated");
            Ok(())
        }
        Err(e) => {
            if keep_on_failure {
                role.failures = role.failures.saturating_add(1);
                let backoff = RETRY_BASE
                    .saturating_mul(1_i64 << role.failures.min(10).saturating_sub(1))
                    .min(RETRY_MAX);
                role.next_rotation = add_secs(at, backoff.unsigned_abs());
                role.last_error = Some(e.to_string());
                ctx.view.put_json(&key(name), &role).await?;
            }
            Err(e)
        }
    }
}

/// `static-creds/:name`.
pub async fn creds(ctx: &EngineCtx<'_>, req: &Request, name: &str) -> Result<Response> {
    if req.operation != Operation::Read {
        return Err(Error::UnsupportedOperation);
    }
    validate_name(name)?;
    let r = load(ctx, name)
        .await?
        .ok_or_else(|| Error::bad(format!("unknown role: {name}")))?;
    let at = now();
    let mut v = json!({
        "username": r.username,
        "password": r.password.expose(),
        "last_vault_rotation": rfc3339(&r.last_vault_rotation),
        "rotation_period": r.cadence.period(),
        "ttl": r.ttl(at),
    });
    r.schedule_fields(&mut v);
    Ok(Response::data(v))
}

/// `rotate-role/:name`: rotates at once.
pub async fn rotate_role(
    ctx: &EngineCtx<'_>,
    passwords: &PasswordPolicies,
    req: &Request,
    name: &str,
) -> Result<Response> {
    if !req.operation.is_write() {
        return Err(Error::UnsupportedOperation);
    }
    validate_name(name)?;
    let role = load(ctx, name)
        .await?
        .ok_or_else(|| Error::bad(format!("unable to find static role {name:?}")))?;
    rotate(ctx, passwords, name, role, true).await?;
    Ok(Response::empty())
}

/// Rotates every static role that is due; returns how many were rotated.
/// A scheduled rotation whose window has passed moves to the next time
/// instead. Failures are recorded on the role and retried with backoff.
pub async fn rotate_due(ctx: &EngineCtx<'_>, passwords: &PasswordPolicies) -> Result<usize> {
    let mut rotated = 0;
    for name in ctx.view.list("static-role/").await? {
        let Some(mut role) = load(ctx, &name).await? else {
            continue;
        };
        let at = now();
        if !role.is_due(at) {
            continue;
        }
        if role.pending_password.is_none()
            && role.failures == 0
            && !role.cadence.in_window(role.next_rotation, at)
        {
            role.next_rotation = role.cadence.next_after(at);
            ctx.view.put_json(&key(&name), &role).await?;
            tracing::info!(role = %name, "rotation window missed; waiting for the next scheduled time");
            continue;
        }
        match rotate(ctx, passwords, &name, role, true).await {
            Ok(()) => rotated += 1,
            Err(e) => {
                tracing::warn!(role = %name, error = %e, "static role rotation failed; will retry")
            }
        }
    }
    Ok(rotated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_rotation_is_due_at_once() {
        let at = now();
        let mut r = StaticRole {
            db_name: "db".into(),
            username: "u".into(),
            rotation_statements: Vec::new(),
            cadence: Cadence::Period(3600),
            password: SecretString::default(),
            pending_password: None,
            last_vault_rotation: at,
            next_rotation: at + chrono::Duration::seconds(3600),
            failures: 0,
            last_error: None,
        };
        assert!(!r.is_due(at));
        assert_eq!(r.ttl(at), 3600);
        assert!(r.is_due(at + chrono::Duration::seconds(3600)));
        r.pending_password = Some(SecretString::new("pending".into()));
        assert!(r.is_due(at));
        let stored = serde_json::to_string(&r).unwrap();
        let back: StaticRole = serde_json::from_str(&stored).unwrap();
        assert!(back.is_due(at), "the pending password survives storage");
    }

    #[test]
    fn usernames_are_checked() {
        assert!(validate_username("app_user").is_ok());
        assert!(validate_username("").is_err());
        assert!(validate_username("a\"; DROP ROLE x; --").is_err());
        assert!(validate_username(&"x".repeat(64)).is_err());
    }

    #[test]
    fn cadence_rules() {
        let m = |v: Value| v.as_object().unwrap().clone();
        let d = m(json!({"rotation_period": "1h"}));
        assert_eq!(cadence(&Params(&d), None).unwrap(), Cadence::Period(3600));
        let d = m(json!({"rotation_period": 2}));
        assert!(cadence(&Params(&d), None).is_err());
        let d = m(json!({"rotation_period": 60, "rotation_schedule": "* * * * *"}));
        assert!(cadence(&Params(&d), None).is_err());
        let d = m(json!({"rotation_period": 60, "rotation_window": 3600}));
        assert!(cadence(&Params(&d), None).is_err());
        let d = m(json!({}));
        assert!(cadence(&Params(&d), None).is_err());
        assert_eq!(
            cadence(&Params(&d), Some(&Cadence::Period(30))).unwrap(),
            Cadence::Period(30)
        );
        let d = m(json!({"rotation_schedule": "0 * * * *", "rotation_window": "2h"}));
        assert_eq!(
            cadence(&Params(&d), None).unwrap(),
            Cadence::Schedule {
                cron: "0 * * * *".into(),
                window: 7200
            }
        );
    }
}

//! The database secrets engine for PostgreSQL, as Vault's
//! `postgresql-database-plugin`: connections (`config/:name`), dynamic roles
//! whose credentials are real database users under a lease (`roles/:name`,
//! `creds/:name`), static roles whose password Coffer rotates
//! (`static-roles/:name`, `static-creds/:name`, `rotate-role/:name`), and
//! root rotation (`rotate-root/:name`).
//!
//! Storage in the mount's view (behind the barrier): `config/<name>`,
//! `role/<name>`, `static-role/<name>`. Leases are the core's; their internal
//! data names the user, never its password.

mod config;
mod credgen;
#[cfg(test)]
mod debug_tests;
pub mod pg;
/// TLS for PostgreSQL lives with the storage backend, which uses it too.
use coffer_storage::pg_tls;
mod roles;
mod schedule;
mod secret;
mod static_roles;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::engine::{Engine, EngineCtx};
use crate::password::PasswordPolicies;
use crate::{Error, Request, Response, Result};

/// The database engine of one mount.
pub struct Database {
    /// The stored password policies a connection's `password_policy` names.
    passwords: PasswordPolicies,
    /// Serializes password changes (static rotations, root rotation, config
    /// writes) so two never race on one user.
    rotation: Arc<Mutex<()>>,
}

impl Database {
    /// A new engine generating passwords from `passwords`.
    pub fn new(passwords: PasswordPolicies) -> Self {
        Database {
            passwords,
            rotation: Arc::default(),
        }
    }
}

/// Checks a role or connection name (Vault's generic name pattern: word
/// characters, `-` and `.`, not starting or ending with `-` or `.`).
fn validate_name(name: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if name.len() > 128
        || !name.chars().all(ok_char)
        || !edge(name.chars().next())
        || !edge(name.chars().last())
    {
        return Err(Error::bad(format!("invalid name {name:?}")));
    }
    Ok(())
}

/// Splits `path` into its first segment and the rest (`roles/x` → ("roles", "x")).
fn split(path: &str) -> (&str, &str) {
    let path = path.trim_end_matches('/');
    match path.split_once('/') {
        Some((head, rest)) => (head, rest),
        None => (path, ""),
    }
}

#[async_trait]
impl Engine for Database {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    async fn exists(
        &self,
        ctx: &EngineCtx<'_>,
        _req: &Request,
        path: &str,
    ) -> Result<Option<bool>> {
        let key = match split(path) {
            ("config", n) if !n.is_empty() => format!("config/{n}"),
            ("roles", n) if !n.is_empty() => format!("role/{n}"),
            ("static-roles", n) if !n.is_empty() => format!("static-role/{n}"),
            _ => return Ok(None),
        };
        Ok(Some(ctx.view.get(&key).await?.is_some()))
    }

    async fn handle(&self, ctx: &EngineCtx<'_>, req: &Request, path: &str) -> Result<Response> {
        let (head, name) = split(path);
        match head {
            "config" => {
                let _g = self.rotation.lock().await;
                config::handle(ctx, req, name).await
            }
            "reset" => config::reset(ctx, req, name).await,
            "rotate-root" => {
                let _g = self.rotation.lock().await;
                config::rotate_root(ctx, &self.passwords, req, name).await
            }
            "roles" => roles::handle(ctx, req, name).await,
            "creds" => roles::creds(ctx, &self.passwords, req, name).await,
            "static-roles" => {
                let _g = self.rotation.lock().await;
                static_roles::handle(ctx, &self.passwords, req, name).await
            }
            "static-creds" => static_roles::creds(ctx, req, name).await,
            "rotate-role" => {
                let _g = self.rotation.lock().await;
                static_roles::rotate_role(ctx, &self.passwords, req, name).await
            }
            _ => Err(Error::UnsupportedPath(format!(
                "unsupported path: {path:?}"
            ))),
        }
    }

    async fn revoke_lease(&self, ctx: &EngineCtx<'_>, internal: &Value) -> Result<()> {
        roles::revoke(ctx, internal).await
    }

    async fn renew_lease(&self, ctx: &EngineCtx<'_>, internal: &Value, ttl: u64) -> Result<()> {
        roles::renew(ctx, internal, ttl).await
    }

    async fn periodic(&self, ctx: &EngineCtx<'_>) -> Result<()> {
        // Skip this pass while a request or an earlier pass is rotating.
        let Ok(guard) = Arc::clone(&self.rotation).try_lock_owned() else {
            return Ok(());
        };
        // Run the pass on its own task: an unreachable database must not
        // hold up the core's background loop (lease expiry) for its timeout.
        let view = ctx.view.clone();
        let mount = ctx.mount.clone();
        let passwords = self.passwords.clone();
        // The pass keeps the leader's fence (shared storage).
        tokio::spawn(coffer_storage::fence::inherit(async move {
            let _guard = guard;
            let ctx = EngineCtx {
                view: &view,
                mount: &mount,
                token: None,
            };
            if let Err(e) = static_roles::rotate_due(&ctx, &passwords).await {
                tracing::warn!(mount = %mount.path, error = %e, "static role rotation pass failed");
            }
        }));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "my-role", "r.1", "x_y", "_a"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "a/b", "a b", "a\"b", ".a"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        assert_eq!(split("roles/x"), ("roles", "x"));
        assert_eq!(split("roles/"), ("roles", ""));
        assert_eq!(split("config"), ("config", ""));
    }
}

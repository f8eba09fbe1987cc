//! Lifecycle events derived from successful requests: a stable `event`
//! name and details (paths, names, versions; never values), written as
//! entries of their own beside the request and response lines.

use serde_json::{json, Value};

use super::AuditContext;
use crate::{Operation, Response, Result};

/// Event names, stable for consumers of the log.
pub mod names {
    /// A secret got its first version (or a KV v1 key was written anew).
    pub const SECRET_CREATED: &str = "secret_created";
    /// A secret got a new version.
    pub const SECRET_UPDATED: &str = "secret_updated";
    /// Versions were soft-deleted.
    pub const SECRET_DELETED: &str = "secret_deleted";
    /// Versions were undeleted.
    pub const SECRET_UNDELETED: &str = "secret_undeleted";
    /// Versions (or a whole secret) were destroyed.
    pub const SECRET_DESTROYED: &str = "secret_destroyed";
    /// A secret was rotated (emitted by rotators through `AuditBroker::event`).
    pub const SECRET_ROTATED: &str = "secret_rotated";
    /// A token was created.
    pub const TOKEN_CREATED: &str = "token_created";
    /// A token carrying the root policy was created.
    pub const ROOT_TOKEN_GENERATED: &str = "root_token_generated";
    /// Tokens were revoked.
    pub const TOKEN_REVOKED: &str = "token_revoked";
    /// Leases were revoked.
    pub const LEASE_REVOKED: &str = "lease_revoked";
    /// An ACL policy was written or deleted.
    pub const POLICY_CHANGED: &str = "policy_changed";
    /// An auth method was enabled, disabled or tuned.
    pub const AUTH_METHOD_CHANGED: &str = "auth_method_changed";
    /// A secrets engine was mounted, unmounted or tuned.
    pub const MOUNT_CHANGED: &str = "mount_changed";
    /// An audit device was enabled or disabled.
    pub const AUDIT_DEVICE_CHANGED: &str = "audit_device_changed";
    /// The barrier's encryption key was rotated.
    pub const ENCRYPTION_KEY_ROTATED: &str = "encryption_key_rotated";
    /// A login failed.
    pub const LOGIN_FAILED: &str = "login_failed";
    /// The core was sealed.
    pub const SEALED: &str = "sealed";
    /// The core was unsealed.
    pub const UNSEALED: &str = "unsealed";
    /// A snapshot of the whole store was taken (`sys/storage/raft/snapshot`).
    pub const SNAPSHOT_SAVED: &str = "snapshot_saved";
    /// A verified snapshot is about to replace the whole store (written
    /// before the core seals for the replacement).
    pub const SNAPSHOT_RESTORED: &str = "snapshot_restored";
}

/// The event a request's result amounts to, if any.
pub fn derive(ctx: &AuditContext<'_>, result: &Result<Response>) -> Option<(&'static str, Value)> {
    use names::*;
    use Operation::*;
    let req = ctx.request;
    let op = req.operation;
    let path = req.path.as_str();
    let resp = match result {
        Ok(r) => r,
        Err(e) => {
            // A login path (auth/<mount>/login[/<name>]) answered without a token.
            let login = ctx.token.is_none()
                && path.starts_with("auth/")
                && path.split('/').any(|s| s == "login");
            return (login && matches!(e.status(), 400 | 403 | 429)).then(|| {
                (LOGIN_FAILED, json!({"path": path, "mount": ctx.mount.map(|m| m.path.clone()), "status": e.status()}))
            });
        }
    };
    let action = match op {
        Delete => "deleted",
        _ => "written",
    };
    if let Some(m) = ctx.mount.filter(|m| m.kind == "kv") {
        let rel = path.strip_prefix(m.path.as_str()).unwrap_or(path);
        let v2 = m.options.get("version").map(String::as_str) == Some("2");
        if !v2 {
            return match op {
                Create => Some((SECRET_CREATED, json!({"path": path}))),
                Update => Some((SECRET_UPDATED, json!({"path": path}))),
                Delete => Some((SECRET_DESTROYED, json!({"path": path}))),
                _ => None,
            };
        }
        let versions = req.data.get("versions").cloned().unwrap_or(Value::Null);
        let secret = |prefix: &str| {
            rel.strip_prefix(prefix)
                .map(|p| format!("{}data/{p}", m.path))
        };
        if let Some(p) = secret("data/") {
            return match op {
                Create | Update | Patch => {
                    let version = resp
                        .data
                        .as_ref()
                        .and_then(|d| d.get("version"))
                        .and_then(Value::as_u64);
                    let name = if version == Some(1) {
                        SECRET_CREATED
                    } else {
                        SECRET_UPDATED
                    };
                    Some((name, json!({"path": p, "version": version})))
                }
                Delete => Some((SECRET_DELETED, json!({"path": p, "versions": "latest"}))),
                _ => None,
            };
        }
        if op.is_write() {
            for (prefix, name) in [
                ("delete/", SECRET_DELETED),
                ("undelete/", SECRET_UNDELETED),
                ("destroy/", SECRET_DESTROYED),
            ] {
                if let Some(p) = secret(prefix) {
                    return Some((name, json!({"path": p, "versions": versions})));
                }
            }
        }
        if op == Delete {
            if let Some(p) = secret("metadata/") {
                return Some((SECRET_DESTROYED, json!({"path": p, "versions": "all"})));
            }
        }
        return None;
    }
    if !(op.is_write() || op == Delete) {
        return None;
    }
    if let Some(rest) = path.strip_prefix("auth/token/") {
        if rest.starts_with("revoke") {
            return Some((TOKEN_REVOKED, json!({"path": path})));
        }
        if rest.starts_with("create") {
            let auth = resp.auth.as_ref();
            let root = auth
                .and_then(|a| a.get("policies"))
                .and_then(Value::as_array)
                .is_some_and(|p| p.iter().any(|x| x == "root"));
            let policies = auth
                .and_then(|a| a.get("policies"))
                .cloned()
                .unwrap_or(Value::Null);
            let name = if root {
                ROOT_TOKEN_GENERATED
            } else {
                TOKEN_CREATED
            };
            return Some((name, json!({"path": path, "policies": policies})));
        }
        return None;
    }
    let rest = path.strip_prefix("sys/")?;
    let detail =
        |name: &'static str, what: &str| Some((name, json!({"path": what, "action": action})));
    if let Some(p) = rest
        .strip_prefix("policies/acl/")
        .or(rest.strip_prefix("policy/"))
    {
        return detail(POLICY_CHANGED, p);
    }
    if let Some(p) = rest.strip_prefix("auth/") {
        return detail(AUTH_METHOD_CHANGED, p);
    }
    if let Some(p) = rest.strip_prefix("mounts/") {
        return detail(MOUNT_CHANGED, p);
    }
    if let Some(p) = rest.strip_prefix("audit/") {
        let action = if op == Delete { "disabled" } else { "enabled" };
        return Some((AUDIT_DEVICE_CHANGED, json!({"path": p, "action": action})));
    }
    if rest == "rotate" {
        return Some((ENCRYPTION_KEY_ROTATED, json!({})));
    }
    if rest.starts_with("leases/revoke") || rest.starts_with("revoke") {
        return Some((LEASE_REVOKED, json!({"path": path})));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mounts::MountEntry;
    use crate::{Error, Request};

    fn derive_for(
        op: Operation,
        path: &str,
        mount: Option<&MountEntry>,
        result: Result<Response>,
    ) -> Option<&'static str> {
        let req = Request::new(op, path);
        let ctx = AuditContext {
            request: &req,
            token: None,
            mount,
            identity_policies: Vec::new(),
            policy: Default::default(),
        };
        derive(&ctx, &result).map(|(name, _)| name)
    }

    #[test]
    fn events_follow_paths_and_results() {
        let mut kv = MountEntry::new("secret/", "kv");
        kv.options.insert("version".into(), "2".into());
        let v = |n: u64| Ok(Response::data(serde_json::json!({"version": n})));
        use Operation::*;
        assert_eq!(
            derive_for(Create, "secret/data/a", Some(&kv), v(1)),
            Some(names::SECRET_CREATED)
        );
        assert_eq!(
            derive_for(Update, "secret/data/a", Some(&kv), v(2)),
            Some(names::SECRET_UPDATED)
        );
        assert_eq!(derive_for(Read, "secret/data/a", Some(&kv), v(2)), None);
        assert_eq!(
            derive_for(Update, "secret/destroy/a", Some(&kv), Ok(Response::empty())),
            Some(names::SECRET_DESTROYED)
        );
        assert_eq!(
            derive_for(
                Delete,
                "secret/metadata/a",
                Some(&kv),
                Ok(Response::empty())
            ),
            Some(names::SECRET_DESTROYED)
        );
        assert_eq!(
            derive_for(
                Update,
                "secret/data/a",
                Some(&kv),
                Err(Error::PermissionDenied)
            ),
            None
        );
        assert_eq!(
            derive_for(Update, "sys/policies/acl/p", None, Ok(Response::empty())),
            Some(names::POLICY_CHANGED)
        );
        assert_eq!(
            derive_for(Read, "sys/policies/acl/p", None, Ok(Response::empty())),
            None
        );
        let approle = MountEntry::new("auth/approle/", "approle");
        assert_eq!(
            derive_for(
                Update,
                "auth/approle/login",
                Some(&approle),
                Err(Error::bad("invalid role ID"))
            ),
            Some(names::LOGIN_FAILED)
        );
        // A bad token on a non-login path is not a failed login.
        assert_eq!(
            derive_for(
                Update,
                "auth/approle/role/r",
                Some(&approle),
                Err(Error::PermissionDenied)
            ),
            None
        );
    }
}

//! The interface every mounted secrets engine implements.

use async_trait::async_trait;

use crate::barrier::View;
use crate::caller::TokenEntry;
use crate::mounts::MountEntry;
use crate::{Request, Response, Result};

/// What an engine sees of its mount when it handles a request.
pub struct EngineCtx<'a> {
    /// The engine's own storage, below its mount's private prefix.
    pub view: &'a View,
    /// The mount's entry (path, type, options, config).
    pub mount: &'a MountEntry,
    /// The caller's token, authenticated and authorized by the pipeline;
    /// `None` on routes answered without one ([`Access::Anonymous`],
    /// [`Access::Open`]) and on background work.
    pub token: Option<&'a TokenEntry>,
}

/// What the request pipeline demands of a request before the engine sees
/// it: a property of the route, declared by the engine that owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A valid token whose policies allow the operation (every route but
    /// the few below).
    Token,
    /// No token: login endpoints, `sys/wrapping/lookup`, and the rekey and
    /// root generation endpoints a quorum of key shares authorizes.
    /// Audited like any request; refused while sealed.
    Anonymous,
    /// No token and not audited: the status endpoints Vault serves outside
    /// its request path (health, seal status, init, unseal, leader).
    Open {
        /// Whether it answers while the core is sealed.
        while_sealed: bool,
    },
}

/// A secrets engine mounted at a path. It sees only its own storage view and
/// the path relative to its mount; routing, authentication, authorization and
/// audit happen before it is called.
#[async_trait]
pub trait Engine: Send + Sync {
    /// Whether `path` already exists, to tell a create from an update.
    /// `None` means the engine makes no such distinction (writes are updates).
    async fn exists(
        &self,
        _ctx: &EngineCtx<'_>,
        _req: &Request,
        _path: &str,
    ) -> Result<Option<bool>> {
        Ok(None)
    }

    /// The canonical spelling of a mount-relative `path` (already shaped by
    /// coffer-core's `canonical::shape`): names this engine treats
    /// case-insensitively are lower-cased here, before the ACL judges the
    /// path, so the engine never "repairs" a path after authorization.
    fn canonical_path<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, str> {
        std::borrow::Cow::Borrowed(path)
    }

    /// Whether `path` (relative to the mount) is answered without a token,
    /// as the login endpoints of auth methods are.
    fn is_unauthenticated(&self, _path: &str) -> bool {
        false
    }

    /// What the pipeline demands of `req` on `path` (relative to the mount)
    /// before this engine handles it. By default a token, except on the
    /// paths [`Engine::is_unauthenticated`] names.
    fn access(&self, _req: &Request, path: &str) -> Access {
        if self.is_unauthenticated(path) {
            Access::Anonymous
        } else {
            Access::Token
        }
    }

    /// The operation and mount-relative path the ACL judges for `req` on
    /// `path`, when a route is authorized by another object than its own
    /// path (a consumer's report on a secret needs `read` on the secret's
    /// data). `None`, the default: the request's own operation and path.
    fn acl_object(&self, _req: &Request, _path: &str) -> Option<(crate::Operation, String)> {
        None
    }

    /// Whether this engine answers `path` when it is mounted as another
    /// mount's sub-router (see [`crate::mounts::Mounted::sub_router`]).
    fn claims(&self, _path: &str) -> bool {
        false
    }

    /// The identity a login request names (a user name, a role id), for
    /// per-identity rate limiting and lockout. `None` for other paths.
    fn login_identity(&self, _req: &Request, _path: &str) -> Option<String> {
        None
    }

    /// Whether this auth method names a role in its login requests, so a
    /// rate-limit quota may be set on one of its roles (Vault's
    /// `ResolveRoleOperation`: AppRole and JWT, not userpass).
    fn has_login_roles(&self) -> bool {
        false
    }

    /// The role a login request on `path` is made with (AppRole: the role
    /// whose RoleID it gives; JWT: `role`, else the default role), for
    /// role-based rate-limit quotas. `None` for other paths, or when no role
    /// can be told.
    async fn login_role(
        &self,
        _ctx: &EngineCtx<'_>,
        _req: &Request,
        _path: &str,
    ) -> Result<Option<String>> {
        Ok(None)
    }

    /// Before a token minted by this auth method's login is renewed: checks
    /// that the identity behind it still exists and, where the method says
    /// so, still holds the same policies (Vault's login-renew handlers).
    /// `metadata` and `policies` are the token's.
    async fn check_renewal(
        &self,
        _ctx: &EngineCtx<'_>,
        _metadata: &std::collections::BTreeMap<String, String>,
        _policies: &[String],
    ) -> Result<()> {
        Ok(())
    }

    /// Revokes a lease this engine issued (drops the credential). `internal`
    /// is what the engine put in its [`crate::request::LeaseRequest`].
    async fn revoke_lease(
        &self,
        _ctx: &EngineCtx<'_>,
        _internal: &serde_json::Value,
    ) -> Result<()> {
        Ok(())
    }

    /// Extends a lease this engine issued to `ttl` seconds from now.
    async fn renew_lease(
        &self,
        _ctx: &EngineCtx<'_>,
        _internal: &serde_json::Value,
        _ttl: u64,
    ) -> Result<()> {
        Ok(())
    }

    /// Background work of the engine (e.g. rotating due static database
    /// roles), called about once a second by the node running background
    /// work, never while sealed. Should return quickly when idle.
    async fn periodic(&self, _ctx: &EngineCtx<'_>) -> Result<()> {
        Ok(())
    }

    /// On storage several nodes share: another node wrote `key` (relative
    /// to this mount's view). The barrier has already dropped its copy; an
    /// engine that keeps parsed entries of its own drops that one too.
    fn changed_elsewhere(&self, _key: &str) {}

    /// The engine as [`std::any::Any`], so a caller that needs one concrete
    /// engine's own API (the lifecycle works through KV v2's and pki's) can
    /// downcast to it; this contract names no concrete engine.
    fn as_any(&self) -> &dyn std::any::Any;

    /// Handles `req` for `path`, relative to the mount.
    async fn handle(&self, ctx: &EngineCtx<'_>, req: &Request, path: &str) -> Result<Response>;
}

//! The kernel's own mounted backends: the system backend at `sys/`, the
//! token store at `auth/token/`, the identity API at `identity/`, and the
//! lifecycle API mounted as a sub-router of every KV v2 mount.
//!
//! They are engines like `kv`: the router routes to them, the pipeline in
//! [`crate::core`] authenticates, authorizes and audits their requests with
//! the same code as every other engine's, and the routes they declare
//! ([`Engine::access`]) decide which of those stages apply. Unlike the
//! engines below the router they hold the core (weakly, as Vault's system
//! backend does): they are its API. Nothing below the router may.

use std::sync::{Arc, Weak};

use async_trait::async_trait;

use crate::core::Core;
use crate::engine::{Access, Engine, EngineCtx};
use crate::mounts::{MountEntry, Mounted};
use crate::{Error, Request, Response, Result};

/// The core behind a kernel backend; a 503 once the core is gone (a
/// request racing the process's shutdown).
fn upgrade(core: &Weak<Core>) -> Result<Arc<Core>> {
    core.upgrade().ok_or(Error::Sealed)
}

/// The system backend (`sys/`): seal, mounts, policies, leases, audit
/// devices, keys, tools and Coffer's own cross-mount views.
pub(crate) struct SystemBackend {
    pub(crate) core: Weak<Core>,
}

#[async_trait]
impl Engine for SystemBackend {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn canonical_path<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, str> {
        match crate::sys_policy::canonical_path(path) {
            Some(c) => std::borrow::Cow::Owned(c),
            None => std::borrow::Cow::Borrowed(path),
        }
    }

    fn access(&self, req: &Request, path: &str) -> Access {
        match self.core.upgrade() {
            Some(core) => crate::sys::access(&core, req, path),
            None => Access::Token,
        }
    }

    async fn handle(&self, ctx: &EngineCtx<'_>, req: &Request, path: &str) -> Result<Response> {
        let core = upgrade(&self.core)?;
        match ctx.token {
            Some(token) => crate::sys::handle(&core, req, path, token).await,
            None => crate::sys::handle_without_token(&core, req, path).await,
        }
    }
}

/// The token store's API (`auth/token/`).
pub(crate) struct TokenBackend {
    pub(crate) core: Weak<Core>,
}

#[async_trait]
impl Engine for TokenBackend {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    async fn handle(&self, ctx: &EngineCtx<'_>, req: &Request, path: &str) -> Result<Response> {
        let core = upgrade(&self.core)?;
        let token = ctx.token.ok_or(Error::PermissionDenied)?;
        crate::token_api::handle(&core, req, path, token).await
    }
}

/// The lifecycle API of one KV v2 mount (`<mount>lifecycle/...`,
/// `<mount>rotate/<path>`), answering in the KV engine's place on the
/// paths it claims.
pub(crate) struct LifecycleBackend {
    pub(crate) core: Weak<Core>,
    /// The KV v2 mount it serves (without a sub-router of its own).
    pub(crate) kv: Mounted,
}

#[async_trait]
impl Engine for LifecycleBackend {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn claims(&self, path: &str) -> bool {
        crate::lifecycle::is_lifecycle_path(path)
    }

    fn acl_object(&self, req: &Request, path: &str) -> Option<(crate::Operation, String)> {
        crate::lifecycle::acl_object(req, path)
    }

    async fn handle(&self, ctx: &EngineCtx<'_>, req: &Request, path: &str) -> Result<Response> {
        let core = upgrade(&self.core)?;
        crate::lifecycle::handle(&*core, ctx.token, &self.kv, req, path).await
    }
}

/// The identity API (`identity/`): entities, aliases and groups, kept in
/// the core's identity store because every ACL reads it, and the identity
/// tokens (`oidc/...`), kept in the mount's own view.
pub(crate) struct IdentityBackend {
    pub(crate) core: Weak<Core>,
    /// The identity tokens' write lock and background schedule.
    pub(crate) oidc: crate::identity::oidc::Oidc,
}

#[async_trait]
impl Engine for IdentityBackend {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    /// The OIDC discovery document and key set answer without a token (and
    /// are audited), as Vault's unauthenticated identity paths.
    fn is_unauthenticated(&self, path: &str) -> bool {
        crate::identity::oidc::is_unauthenticated(path)
    }

    async fn exists(
        &self,
        ctx: &EngineCtx<'_>,
        _req: &Request,
        path: &str,
    ) -> Result<Option<bool>> {
        crate::identity::oidc::exists(ctx.view, path).await
    }

    async fn periodic(&self, ctx: &EngineCtx<'_>) -> Result<()> {
        let now = crate::util::now().timestamp();
        self.oidc.periodic(ctx.view, now).await
    }

    async fn handle(&self, ctx: &EngineCtx<'_>, req: &Request, path: &str) -> Result<Response> {
        let core = upgrade(&self.core)?;
        if path.starts_with("oidc/") {
            let api_addr = core.api_addr();
            let env = crate::identity::oidc::Env {
                view: ctx.view,
                identity: &core.identity,
                api_addr: &api_addr,
                entity_id: ctx.token.map(|t| t.entity_id.as_str()),
                now: crate::util::now().timestamp(),
            };
            return self.oidc.handle(&env, req, path).await;
        }
        let mounts = |accessor: &str| core.auth_mount_by_accessor(accessor);
        crate::identity::api::handle(&core.identity, &mounts, req, path).await
    }
}

/// The kernel backends' mounts, as the router holds them from the start.
pub(crate) fn kernel_mounts(
    core: &Weak<Core>,
    barrier: &Arc<crate::barrier::Barrier>,
) -> Vec<Mounted> {
    let mount = |entry: MountEntry, engine: Arc<dyn Engine>| Mounted {
        view: crate::barrier::View::new(barrier.clone(), entry.storage_prefix()),
        entry: Arc::new(entry),
        engine,
        sub_router: None,
    };
    vec![
        mount(
            crate::sys::system_mount_entry(),
            Arc::new(SystemBackend { core: core.clone() }),
        ),
        mount(
            crate::sys::token_mount_entry(),
            Arc::new(TokenBackend { core: core.clone() }),
        ),
    ]
}

/// The kernel services the procedure (`sys/coffer/...`) calls beyond its
/// stores.
#[async_trait]
impl crate::procedure::Actions for Core {
    async fn seal_status(&self) -> Result<serde_json::Value> {
        Core::seal_status(self).await
    }

    async fn rotate(
        &self,
        actor: Option<&crate::token::TokenEntry>,
        m: &Mounted,
        rel: &str,
        reason: &str,
    ) -> Result<u64> {
        let out = crate::lifecycle::rotate::rotate(self, actor, m, rel, reason).await?;
        Ok(out.new_version)
    }
}

impl Core {
    /// The procedure's view of the kernel for one request.
    pub(crate) fn procedure_ctx(&self) -> crate::procedure::Ctx<'_> {
        crate::procedure::Ctx {
            barrier: &self.barrier,
            deployment: crate::procedure::Deployment {
                storage_type: &self.config.storage_type,
                dev_mode: self.config.dev_mode,
                listener_tls: self.config.listener_tls,
            },
            tokens: &self.tokens,
            policies: &self.policies,
            router: &self.router,
            identity: &self.identity,
            audit: &self.audit,
            leases: &self.leases,
            actions: self,
        }
    }
}

/// What the lifecycle (`crate::lifecycle`) needs of the kernel.
#[async_trait]
impl crate::lifecycle::Kernel for Core {
    fn rotators(&self) -> &crate::lifecycle::registry::RotatorRegistry {
        &self.config.rotators
    }
    fn passwords(&self) -> &crate::password::PasswordPolicies {
        &self.passwords
    }
    fn router(&self) -> &parking_lot::RwLock<crate::mounts::Router> {
        &self.router
    }
    fn barrier(&self) -> &Arc<crate::barrier::Barrier> {
        &self.barrier
    }
    fn tokens(&self) -> &crate::token::TokenStore {
        &self.tokens
    }
    fn leases(&self) -> &crate::expiration::Expiration {
        &self.leases
    }
    fn audit(&self) -> &crate::audit::AuditBroker {
        &self.audit
    }
    fn events(&self) -> &crate::events::EventBus {
        &self.events
    }
    fn is_sealed(&self) -> bool {
        Core::is_sealed(self)
    }
    async fn token_acl(&self, token: &crate::token::TokenEntry) -> Result<Arc<crate::policy::Acl>> {
        Core::token_acl(self, token).await
    }
    async fn revoke_token_tree(&self, hash: &str) -> Result<()> {
        Core::revoke_token_tree(self, hash).await
    }
    async fn revoke_leases_under(&self, prefix: &str) -> Result<usize> {
        self.leases.revoke_prefix(self, prefix, true).await
    }
}

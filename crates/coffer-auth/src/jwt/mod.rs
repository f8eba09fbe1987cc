//! Vault's JWT/OIDC auth method, JWT login only: workloads (Kubernetes
//! service accounts, CI jobs) log in with a JWT signed by their platform.
//!
//! Paths, relative to the mount:
//! - `config` (read, write): keys (`jwt_validation_pubkeys` or an inline
//!   `jwks`), `bound_issuer`, `jwt_supported_algs`, `default_role`;
//! - `role/` (list) and `role/:name` (read, write, delete);
//! - `login` (write, no token): `role` and `jwt`.
//!
//! Both mount types `jwt` and `oidc` use this engine. There is no browser
//! OIDC flow, and no key is fetched over the network (see [`config`]).

pub mod claims;
pub mod config;
pub mod keys;
pub mod login;
pub mod remote;
pub mod role;
#[cfg(test)]
mod testkeys;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::RwLock;
use serde_json::Value;

use self::config::Config;
use self::keys::KeySet;
use self::role::Role;
use crate::engine::{Engine, EngineCtx};
use crate::{Error, Operation, Request, Response, Result};

const CONFIG_KEY: &str = "config";
const ROLE_PREFIX: &str = "role/";
/// Longest lockout identity kept (role name, `:`, user claim value).
const MAX_IDENTITY_LEN: usize = 256;

/// What [`Engine::login_identity`] needs without reading storage: the
/// default role, the trusted keys and each role's user claim, refreshed
/// whenever this node reads or writes them.
#[derive(Default)]
struct Hints {
    default_role: String,
    keys: Option<Arc<KeySet>>,
    algorithms: Vec<jsonwebtoken::Algorithm>,
    user_claims: HashMap<String, (String, bool)>,
}

impl Hints {
    /// `fetched`: the keys of a remote source, when cached.
    fn set_config(&mut self, config: Option<&Config>, fetched: Option<Arc<KeySet>>) {
        self.default_role = config
            .map(|c| c.default_role.to_lowercase())
            .unwrap_or_default();
        self.keys = match config {
            Some(c) if c.remote_source().is_some() => fetched,
            Some(c) => c.key_set().ok().map(Arc::new),
            None => None,
        };
        self.algorithms = config.map(Config::algorithms).unwrap_or_default();
    }
}

/// The JWT auth engine of one mount.
#[derive(Default)]
pub struct JwtAuth {
    hints: RwLock<Hints>,
    /// Serialises role and config writes (read-modify-write).
    writes: tokio::sync::Mutex<()>,
    /// Keys fetched from `jwks_url` or `oidc_discovery_url`.
    remote: remote::Remote,
}

impl JwtAuth {
    /// A new engine that fetches no key (no URL is allowed).
    pub fn new() -> Self {
        Self::default()
    }

    /// A new engine that may fetch keys under `allowed`.
    pub fn with_allowed_urls(allowed: remote::AllowedUrls) -> Self {
        JwtAuth {
            remote: remote::Remote::new(allowed),
            ..Default::default()
        }
    }

    fn set_hints(&self, config: Option<&Config>) {
        let fetched = config.and_then(|c| self.remote.cached(c));
        self.hints.write().set_config(config, fetched);
    }

    /// The keys a login is checked against: inline, or fetched (cached).
    async fn login_keys(&self, config: &Config) -> Result<Arc<KeySet>> {
        if config.remote_source().is_none() {
            return config
                .key_set()
                .map(Arc::new)
                .map_err(|e| Error::bad(format!("error configuring token validator: {e}")));
        }
        let keys = self
            .remote
            .keys(config)
            .await
            .map_err(|e| Error::bad(format!("error fetching the key set: {e}")))?;
        self.set_hints(Some(config));
        Ok(keys)
    }

    fn remember_role(&self, name: &str, role: Option<&Role>) {
        let mut hints = self.hints.write();
        match role {
            Some(r) => {
                hints.user_claims.insert(
                    name.to_string(),
                    (r.user_claim.clone(), r.user_claim_json_pointer),
                );
            }
            None => {
                hints.user_claims.remove(name);
            }
        }
    }

    async fn load_config(&self, ctx: &EngineCtx<'_>) -> Result<Option<Config>> {
        let config: Option<Config> = ctx.view.get_json(CONFIG_KEY).await?;
        self.set_hints(config.as_ref());
        Ok(config)
    }

    async fn load_role(&self, ctx: &EngineCtx<'_>, name: &str) -> Result<Option<Role>> {
        let role: Option<Role> = ctx.view.get_json(&format!("{ROLE_PREFIX}{name}")).await?;
        self.remember_role(name, role.as_ref());
        Ok(role)
    }

    async fn config(&self, ctx: &EngineCtx<'_>, req: &Request) -> Result<Response> {
        match req.operation {
            Operation::Read => match self.load_config(ctx).await? {
                Some(c) => Ok(Response::data(c.to_json())),
                None => Err(Error::NotFound),
            },
            Operation::Create | Operation::Update => {
                let _guard = self.writes.lock().await;
                let existing = self.load_config(ctx).await?;
                let config = Config::parse(&req.data, existing.as_ref())?;
                if config.remote_source().is_some() {
                    let (field, url) = if config.jwks_url.is_empty() {
                        ("oidc_discovery_url", &config.oidc_discovery_url)
                    } else {
                        ("jwks_url", &config.jwks_url)
                    };
                    self.remote.check_allowed(field, url).map_err(Error::bad)?;
                    // As Vault does: a URL that serves no usable key set is refused.
                    self.remote
                        .fetch_into_cache(&config)
                        .await
                        .map_err(|e| Error::bad(format!("error checking {field}: {e}")))?;
                }
                ctx.view.put_json(CONFIG_KEY, &config).await?;
                self.set_hints(Some(&config));
                Ok(Response::empty())
            }
            _ => Err(Error::UnsupportedOperation),
        }
    }

    async fn role(&self, ctx: &EngineCtx<'_>, req: &Request, name: &str) -> Result<Response> {
        let key = format!("{ROLE_PREFIX}{name}");
        match req.operation {
            Operation::Read => match self.load_role(ctx, name).await? {
                Some(r) => Ok(Response::data(r.to_json())),
                None => Err(Error::NotFound),
            },
            Operation::Create | Operation::Update => {
                let _guard = self.writes.lock().await;
                let existing = self.load_role(ctx, name).await?;
                let role = Role::apply(existing, &req.data)?;
                ctx.view.put_json(&key, &role).await?;
                self.remember_role(name, Some(&role));
                Ok(Response::empty())
            }
            Operation::Delete => {
                let _guard = self.writes.lock().await;
                ctx.view.delete(&key).await?;
                self.remember_role(name, None);
                Ok(Response::empty())
            }
            _ => Err(Error::UnsupportedOperation),
        }
    }

    async fn login(&self, ctx: &EngineCtx<'_>, req: &Request) -> Result<Response> {
        if !matches!(req.operation, Operation::Create | Operation::Update) {
            return Err(Error::UnsupportedOperation);
        }
        let Some(config) = self.load_config(ctx).await? else {
            return Err(Error::bad("could not load configuration"));
        };
        let p = crate::util::Params(&req.data);
        let mut role_name = p.str("role")?.unwrap_or_default().trim().to_lowercase();
        if role_name.is_empty() {
            role_name = config.default_role.to_lowercase();
        }
        if role_name.is_empty() {
            return Err(Error::bad("missing role"));
        }
        let role = if role::valid_name(&role_name) {
            self.load_role(ctx, &role_name).await?
        } else {
            None
        };
        let Some(role) = role else {
            return Err(Error::bad(format!("role {role_name:?} could not be found")));
        };
        let jwt = p.str("jwt")?.unwrap_or_default();
        let now = crate::util::now().timestamp();
        let keys = self.login_keys(&config).await?;
        let first =
            login::authenticate_with(&config, &keys, &role_name, &role, jwt, req.client_addr, now);
        let grant = match first {
            // A key id the cached set lacks: the issuer may have rotated its
            // keys. One re-fetch, rate-limited per mount.
            Err(e)
                if config.remote_source().is_some()
                    && keys::token_kid(jwt).is_some_and(|k| !keys.has_kid(&k)) =>
            {
                match self.remote.refetch_for_unknown_kid(&config).await {
                    Some(fresh) => {
                        self.set_hints(Some(&config));
                        login::authenticate_with(
                            &config,
                            &fresh,
                            &role_name,
                            &role,
                            jwt,
                            req.client_addr,
                            now,
                        )?
                    }
                    None => return Err(e),
                }
            }
            other => other?,
        };
        Ok(Response::login(grant))
    }
}

/// A role name from a `role/:name` path, lower-cased as Vault does.
fn role_name(path: &str) -> Result<String> {
    let name = path.to_lowercase();
    if role::valid_name(&name) {
        Ok(name)
    } else {
        Err(Error::UnsupportedPath("unsupported path".into()))
    }
}

#[async_trait]
impl Engine for JwtAuth {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    async fn check_renewal(
        &self,
        ctx: &EngineCtx<'_>,
        metadata: &std::collections::BTreeMap<String, String>,
        _policies: &[String],
    ) -> Result<()> {
        let name = metadata.get("role").map(String::as_str).unwrap_or("");
        match self.load_role(ctx, name).await? {
            Some(_) => Ok(()),
            None => Err(Error::bad(format!(
                "role {name:?} does not exist during renewal"
            ))),
        }
    }

    async fn exists(
        &self,
        ctx: &EngineCtx<'_>,
        _req: &Request,
        path: &str,
    ) -> Result<Option<bool>> {
        match path.strip_prefix(ROLE_PREFIX) {
            Some(rest) if !rest.is_empty() => {
                let Ok(name) = role_name(rest) else {
                    return Ok(None);
                };
                let key = format!("{ROLE_PREFIX}{name}");
                Ok(Some(ctx.view.get(&key).await?.is_some()))
            }
            _ => Ok(None),
        }
    }

    /// Role names are case-insensitive: `role/<name>` is lower-cased.
    fn canonical_path<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, str> {
        coffer_engine::names::lowercase_name(path, &["role"])
    }

    fn is_unauthenticated(&self, path: &str) -> bool {
        path == "login"
    }

    fn has_login_roles(&self) -> bool {
        true
    }

    /// The login's `role`, else the mount's default role.
    async fn login_role(
        &self,
        _ctx: &EngineCtx<'_>,
        req: &Request,
        path: &str,
    ) -> Result<Option<String>> {
        if path != "login" {
            return Ok(None);
        }
        let role = match req.data.get("role").and_then(Value::as_str) {
            Some(r) if !r.trim().is_empty() => r.trim().to_lowercase(),
            _ => self.hints.read().default_role.clone(),
        };
        Ok(Some(role).filter(|r| !r.is_empty()))
    }

    /// `role:user`, where `user` is the role's user claim, but only for a
    /// token whose signature verifies against the mount's keys. A forged or
    /// unparsable token yields no identity, so nobody can lock a workload
    /// (or a whole role) out by sending junk in its name; such failures
    /// still count against the client's address.
    fn login_identity(&self, req: &Request, path: &str) -> Option<String> {
        if path != "login" {
            return None;
        }
        let jwt = req.data.get("jwt").and_then(Value::as_str)?;
        let hints = self.hints.read();
        let role = match req.data.get("role").and_then(Value::as_str) {
            Some(r) if !r.trim().is_empty() => r.trim().to_lowercase(),
            _ => hints.default_role.clone(),
        };
        if role.is_empty() {
            return None;
        }
        let (claim, pointer) = hints.user_claims.get(&role)?.clone();
        let keys = hints.keys.clone()?;
        let algorithms = hints.algorithms.clone();
        drop(hints);
        let verified = keys.verify(jwt, &algorithms).ok()?;
        let user = if pointer {
            claims::get_claim(&verified.claims, &claim)
        } else {
            verified.claims.get(&claim)
        }?
        .as_str()?;
        let mut id = format!("{role}:{user}");
        if id.len() > MAX_IDENTITY_LEN {
            let mut cut = MAX_IDENTITY_LEN;
            while !id.is_char_boundary(cut) {
                cut -= 1;
            }
            id.truncate(cut);
        }
        Some(id)
    }

    async fn handle(&self, ctx: &EngineCtx<'_>, req: &Request, path: &str) -> Result<Response> {
        match path {
            "config" => self.config(ctx, req).await,
            "login" => self.login(ctx, req).await,
            "role" | "role/" => match req.operation {
                Operation::List => {
                    let mut keys = ctx.view.list(ROLE_PREFIX).await?;
                    keys.sort();
                    Response::list(keys)
                }
                _ => Err(Error::UnsupportedOperation),
            },
            p if p.starts_with(ROLE_PREFIX) => {
                let name = role_name(&p[ROLE_PREFIX.len()..])?;
                self.role(ctx, req, &name).await
            }
            p if p == "oidc" || p.starts_with("oidc/") => Err(Error::bad(
                "the OIDC browser flow is not supported by Coffer; use a \"jwt\" role and log in at login",
            )),
            _ => Err(Error::UnsupportedPath("unsupported path".into())),
        }
    }
}

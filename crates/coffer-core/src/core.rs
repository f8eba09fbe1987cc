//! The core: one request's path from token to engine.
//!
//! [`Core::handle`] runs every request through one pipeline, the same for
//! every engine: the system backend (`sys/`), the token store
//! (`auth/token/`) and the identity API are mounted backends like `kv`
//! ([`crate::backends`]). Its stages, in order:
//!
//! 1. canonicalise the path ([`crate::canonical`]): bad segments are
//!    refused, the trailing slash follows the operation;
//! 2. route it: a kernel backend or the longest mount prefix, a KV v2
//!    mount's lifecycle paths to its lifecycle sub-router; the engine's case
//!    rules complete the canonical path, which everything after sees
//!    unchanged; the engine declares what the route demands
//!    ([`crate::engine::Access`]);
//! 3. sealed? Open status routes (health, seal status, init, unseal) answer
//!    here, unaudited, as Vault serves them outside its request path; all
//!    else needs an unsealed core that has applied other nodes' writes;
//!    then the rate-limit quotas count the request ([`crate::quotas`]: a
//!    429 past its quota, before authentication, as Vault's HTTP layer
//!    refuses it; open routes are counted before they answer);
//! 4. authenticate (routes that need a token): the token by hash
//!    (unknown, expired, used up or used from outside its bound CIDRs:
//!    403); a use of a limited-use token is taken here, atomically;
//! 5. existence check: a write to a path the engine says is new is a
//!    `create`;
//! 6. authorize: the token's policies must allow the operation on the
//!    canonical path (deny by default, `deny` wins, `sudo` on root-protected
//!    paths);
//! 7. login throttling on auth methods' anonymous routes;
//! 8. audit the request; if no enabled device records it, it is refused;
//! 9. the engine;
//! 10. mint: a login's grant becomes a token, a lease request a lease;
//! 11. wrap a response asked to be wrapped (`X-Vault-Wrap-TTL`,
//!     [`crate::wrapping`]);
//! 12. audit the response, then publish the change event;
//! 13. revoke a token whose last use this was.
//!
//! A request refused at any stage is audited (with its token,
//! when it names a live one), except while sealed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use coffer_storage::Backend;
use parking_lot::RwLock;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::abuse::LoginGuard;
use crate::audit::{AuditBroker, AuditContext, PolicyResults};
use crate::barrier::{Barrier, View};
use crate::engine::{Access, EngineCtx};
use crate::engines::EngineExt;
use crate::expiration::Expiration;
use crate::mounts::{MountEntry, Mounted, Router, MOUNT_TABLE_KEY};
use crate::policy_store::PolicyStore;
use crate::seal::{Seal, UnsealProgress};
use crate::token::{TokenEntry, TokenStore};
use crate::token_api::{self, TokenSpec};
use crate::{engines, Error, Operation, Request, Response, Result};

/// The version Coffer reports in seal status and health.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Settings of a core that do not live in storage.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Name shown in health and seal status.
    pub cluster_name: String,
    /// Storage type shown in seal status (`sqlite`, `inmem`, ...).
    pub storage_type: String,
    /// Command, webhook and postgres rotators declared by the operator.
    pub rotators: crate::lifecycle::registry::RotatorRegistry,
    /// Encryptions with one key term after which it is rotated automatically.
    pub key_rotation_threshold: u64,
    /// Whether `sys/metrics` answers without a token (Vault's listener
    /// `telemetry.unauthenticated_metrics_access`); off by default.
    pub unauthenticated_metrics_access: bool,
    /// URL prefixes JWT auth mounts may fetch keys from (`jwks_url`,
    /// `oidc_discovery_url`); empty: none.
    pub jwt_key_urls: crate::auth::jwt::remote::AllowedUrls,
    /// Whether this is a `--dev` server (in-memory or throwaway storage,
    /// auto-unsealed): `coffer check` refuses it as the store of record.
    pub dev_mode: bool,
    /// Whether the listener serves TLS (`coffer check` requires it).
    pub listener_tls: bool,
    /// The address clients reach this node at (`api_addr`; `sys/leader`
    /// shows the leader's).
    pub api_addr: String,
    /// Length of the leader lease on shared storage: the failover bound.
    pub leader_lease_ttl: std::time::Duration,
    /// The server's configuration as `sys/config/state/sanitized` shows it
    /// (Vault's keys; built by the binary, holding no secret).
    pub sanitized_config: serde_json::Value,
    /// The node's log levels (`sys/loggers`), changed through the binary's
    /// log filter.
    pub loggers: Arc<crate::sys_loggers::Loggers>,
    /// The node's log fan-out for `sys/monitor`, fed by the binary's
    /// tracing layer.
    pub log_monitor: Arc<crate::sys_monitor::LogMonitor>,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            cluster_name: format!("coffer-cluster-{}", &coffer_crypto::random::uuid()[..8]),
            storage_type: "inmem".into(),
            rotators: Default::default(),
            key_rotation_threshold: crate::barrier::DEFAULT_ROTATION_THRESHOLD,
            unauthenticated_metrics_access: false,
            jwt_key_urls: Default::default(),
            dev_mode: false,
            listener_tls: false,
            api_addr: String::new(),
            leader_lease_ttl: crate::leader::DEFAULT_LEASE_TTL,
            sanitized_config: serde_json::json!({}),
            loggers: Arc::default(),
            log_monitor: Arc::default(),
        }
    }
}

/// What initialisation hands back, once, to the operator.
pub struct InitResult {
    /// The unseal key shares.
    pub keys: Vec<Zeroizing<Vec<u8>>>,
    /// The initial root token.
    pub root_token: Zeroizing<String>,
}

/// The sealed store and everything mounted on it.
pub struct Core {
    pub(crate) barrier: Arc<Barrier>,
    pub(crate) seal: Seal,
    pub(crate) router: RwLock<Router>,
    pub(crate) tokens: TokenStore,
    pub(crate) policies: PolicyStore,
    /// Entities, aliases and groups (`identity/`), read by every ACL.
    pub(crate) identity: crate::identity::store::IdentityStore,
    /// Password policies (`sys/policies/password`), shared with the engines.
    pub(crate) passwords: crate::password::PasswordPolicies,
    pub(crate) audit: AuditBroker,
    pub(crate) leases: Expiration,
    pub(crate) logins: LoginGuard,
    /// Rate-limit quotas (`sys/quotas/*`), loaded at unseal.
    pub(crate) quotas: crate::quotas::Quotas,
    pub(crate) config: CoreConfig,
    pub(crate) cluster_id: String,
    /// Serialises init, unseal completion, seal, keyring and mount-table changes.
    pub(crate) admin: crate::seal::AdminLock,
    /// The rekey attempt in progress (`sys/rekey/*`).
    pub(crate) rekey: crate::sys_rekey::RekeyState,
    /// The root generation attempt in progress (`sys/generate-root/*`).
    pub(crate) generate_root: crate::sys_generate_root::GenerateRootState,
    /// Recent mount moves (`sys/remount/status`).
    pub(crate) migrations: crate::sys_remount::Migrations,
    /// The CORS configuration (`sys/config/cors`), loaded at unseal.
    pub(crate) cors: crate::sys_cors::CorsState,
    /// Change events for `sys/events/subscribe` ([`crate::events`]).
    pub(crate) events: Arc<crate::events::EventBus>,
    /// The requests the HTTP layer is handling now (`sys/in-flight-req`).
    pub(crate) in_flight: Arc<crate::in_flight::InFlight>,
    /// Set once an unseal has loaded mounts, policies, leases and every
    /// audit device; cleared first thing on seal. Requests wait for it.
    ready: AtomicBool,
    /// The change-log position applied to the caches (shared storage).
    pub(crate) coherence: crate::coherence::Coherence,
    /// This node's hold on the leader lease of background work.
    pub(crate) leadership: crate::leader::Leadership,
    /// The kernel's own mounted backends (`sys/`, `auth/token/`), routed
    /// sealed or not ([`crate::backends`]).
    kernel: Vec<Mounted>,
    /// This core, for the lifecycle sub-routers mounted after construction
    /// and the change-log reads that run as tasks of their own.
    pub(crate) this: std::sync::Weak<Core>,
}

impl Core {
    /// A sealed core over `backend`.
    pub fn new(backend: Arc<dyn Backend>, config: CoreConfig) -> Arc<Core> {
        crate::telemetry::install();
        let barrier = Arc::new(Barrier::new(backend));
        barrier.set_rotation_threshold(config.key_rotation_threshold);
        let admin = crate::seal::AdminLock::default();
        let events = Arc::new(crate::events::EventBus::default());
        let leadership = crate::leader::Leadership::new(&config.api_addr);
        Arc::new_cyclic(|this| {
            let kernel = crate::backends::kernel_mounts(this, &barrier);
            Core {
                seal: Seal::new(barrier.clone(), admin.clone()),
                tokens: TokenStore::new(View::new(barrier.clone(), "sys/token/")),
                policies: PolicyStore::new(View::new(barrier.clone(), "sys/policy/")),
                identity: crate::identity::store::IdentityStore::new(View::new(
                    barrier.clone(),
                    "sys/identity/",
                )),
                passwords: crate::password::PasswordPolicies::new(View::new(
                    barrier.clone(),
                    "sys/password_policy/",
                )),
                audit: AuditBroker::new(View::new(barrier.clone(), "sys/audit/")),
                leases: Expiration::new(View::new(barrier.clone(), "sys/expire/"), events.clone()),
                logins: LoginGuard::new(View::new(barrier.clone(), "sys/lockout/")),
                quotas: crate::quotas::Quotas::new(View::new(
                    barrier.clone(),
                    crate::quotas::STORAGE_PREFIX,
                )),
                router: RwLock::new(Router::with_kernel(kernel.clone())),
                kernel,
                this: this.clone(),
                barrier,
                config,
                cluster_id: coffer_crypto::random::uuid(),
                admin,
                rekey: Default::default(),
                generate_root: Default::default(),
                migrations: Default::default(),
                cors: Default::default(),
                events,
                in_flight: Arc::default(),
                ready: AtomicBool::new(false),
                coherence: Default::default(),
                leadership,
            }
        })
    }

    /// Whether the core is sealed, or unsealed but still loading its
    /// mounts, policies, leases and audit devices: either way it serves
    /// nothing but the unauthenticated sys endpoints.
    pub fn is_sealed(&self) -> bool {
        !self.ready.load(Ordering::Acquire) || self.barrier.is_sealed()
    }

    /// Whether the storage holds an initialised store.
    pub async fn is_initialized(&self) -> Result<bool> {
        Ok(self.seal.config().await?.is_some())
    }

    /// Initialises the store into `shares` key shares, `threshold` of which
    /// unseal it, and creates the root token (`root_token_id` if given).
    /// The core stays sealed afterwards, as Vault's does.
    pub async fn initialize(
        &self,
        shares: u32,
        threshold: u32,
        root_token_id: Option<&str>,
    ) -> Result<InitResult> {
        let _admin = self.admin.lock().await;
        let (keys, _root, keyring) = self.seal.initialize(shares, threshold).await?;
        self.barrier.unseal(keyring);
        let created = async {
            self.barrier
                .put(
                    MOUNT_TABLE_KEY,
                    &serde_json::to_vec(&Vec::<MountEntry>::new()).unwrap_or_default(),
                )
                .await?;
            let root = self.tokens.create_root(root_token_id).await?;
            // Nothing more is encrypted before the first unseal: store the
            // exact count, so that unseal adds no crash margin.
            self.barrier.persist_encryptions().await?;
            Ok::<_, Error>(root)
        }
        .await;
        self.seal.seal();
        Ok(InitResult {
            keys,
            root_token: created?,
        })
    }

    /// Submits one unseal key share; returns whether the core is now unsealed.
    /// The core serves requests only once everything is loaded; if any part
    /// (an audit device included) fails to load, it seals again and the
    /// unseal fails.
    pub async fn unseal(&self, key: Zeroizing<Vec<u8>>) -> Result<bool> {
        if !self.is_sealed() {
            return Ok(true);
        }
        // `submit` opens the barrier under the admin lock itself.
        match self.seal.submit(key).await? {
            UnsealProgress::Pending { .. } => Ok(false),
            UnsealProgress::Unsealed => {
                let _admin = self.admin.lock().await;
                if self.barrier.is_sealed() {
                    // A seal won the race after the barrier opened.
                    return Err(Error::Sealed);
                }
                if self.ready.load(Ordering::Acquire) {
                    // A concurrent unseal finished loading first.
                    return Ok(true);
                }
                let loaded = async {
                    // Follow other nodes' writes from before anything is loaded.
                    self.coherence_start().await?;
                    self.load_mounts().await?;
                    self.identity.load().await?;
                    self.policies.ensure_default().await?;
                    crate::sys_version::record(&self.barrier).await?;
                    crate::sys_cors::load(self).await?;
                    self.quotas.load().await?;
                    self.leases.load().await?;
                    self.audit.load().await
                }
                .await;
                if let Err(e) = loaded {
                    self.audit.clear().await;
                    self.quotas.clear();
                    self.seal.seal();
                    *self.router.write() = self.empty_router();
                    return Err(e);
                }
                self.ready.store(true, Ordering::Release);
                tracing::info!("core unsealed");
                Ok(true)
            }
        }
    }

    /// Discards unseal progress.
    pub fn reset_unseal(&self) {
        self.seal.reset();
    }

    /// Seals the core: keys are dropped, mounts unloaded.
    pub async fn seal(&self) {
        let _admin = self.admin.lock().await;
        self.seal_locked(false).await;
    }

    /// Seals under the admin lock (held by the caller). With `quiesce`,
    /// the keyring is dropped only once every barrier write in flight has
    /// reached storage, and none can start meanwhile.
    async fn seal_locked(&self, quiesce: bool) {
        self.ready.store(false, Ordering::Release);
        self.rekey.cancel();
        self.generate_root.cancel();
        self.audit.clear().await; // closing checkpoints while the barrier is open
        if let Err(e) = self.barrier.persist_encryptions().await {
            tracing::warn!(error = %e, "failed to persist the encryption count at seal");
        }
        if quiesce {
            let _no_writes = self.barrier.quiesce().await;
            self.seal.seal();
        } else {
            self.seal.seal();
        }
        *self.router.write() = self.empty_router();
        self.policies.clear_caches();
        self.identity.clear();
        self.quotas.clear();
        self.tokens.clear_cache();
        self.leases.clear();
        if self.barrier.backend().is_shared() {
            self.release_leadership().await;
        }
        tracing::info!("core sealed");
    }

    /// Replaces the whole store with what `items` sends (a verified
    /// snapshot): seals first, under the admin lock (closing checkpoints
    /// and the encryption count go into the store being replaced; the
    /// keyring is dropped once no barrier write is in flight, so nothing
    /// this node encrypted with it lands in the new store), then imports in
    /// one transaction and forgets everything read from the old store. The
    /// core stays sealed: it opens with the snapshot's unseal keys. On
    /// shared storage the other nodes seal at their next log read.
    pub(crate) async fn replace_store(
        &self,
        items: tokio::sync::mpsc::Receiver<coffer_storage::ImportItem>,
        actor: &TokenEntry,
        event: serde_json::Value,
    ) -> Result<u64> {
        let _admin = self.admin.lock().await;
        // Under the lock: a restore that waited behind another finds the
        // server sealed, and is refused rather than run unaudited (the
        // devices close with the seal).
        if self.is_sealed() {
            return Err(Error::Sealed);
        }
        self.audit
            .event(
                crate::audit::events::names::SNAPSHOT_RESTORED,
                Some(actor),
                event,
            )
            .await
            .map_err(|_| Error::Audit("the snapshot restore could not be audited".into()))?;
        self.seal_locked(true).await;
        let outcome = self.barrier.backend().import(items).await;
        self.seal.forget_config();
        self.barrier.invalidate_all();
        Ok(outcome?)
    }

    pub(crate) async fn load_mounts(&self) -> Result<()> {
        let entries: Vec<MountEntry> = match self.barrier.get(MOUNT_TABLE_KEY).await? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::corrupt_json("mount table", &e))?,
            None => Vec::new(),
        };
        let mut router = self.empty_router();
        for entry in entries {
            if let Some(cfg) = entry.config.user_lockout_config {
                self.logins.configure(&entry.accessor, cfg);
            }
            router.insert(self.mounted(entry)?);
        }
        let mut added = false;
        if router.get(engines::cubbyhole::MOUNT_PATH).is_none() {
            // Mounted on every store, as Vault's; added at the first unseal.
            router.insert(self.mounted(engines::cubbyhole::mount_entry())?);
            added = true;
        }
        if router.get(crate::identity::MOUNT_PATH).is_none() {
            // Likewise the identity API.
            router.insert(self.mounted(crate::identity::mount_entry())?);
            added = true;
        }
        if added {
            self.save_mounts(&router).await?;
        }
        *self.router.write() = router;
        Ok(())
    }

    pub(crate) fn mounted(&self, entry: MountEntry) -> Result<Mounted> {
        let engine: Arc<dyn crate::engine::Engine> = if entry.kind == crate::identity::KIND {
            Arc::new(crate::backends::IdentityBackend {
                core: self.this.clone(),
                oidc: Default::default(),
            })
        } else if entry.path.starts_with("auth/") {
            crate::auth::for_mount(&entry, &self.config.jwt_key_urls)?
        } else {
            engines::for_mount(&entry, &self.passwords)?
        };
        let view = View::new(self.barrier.clone(), entry.storage_prefix());
        let mut mounted = Mounted {
            entry: Arc::new(entry),
            engine,
            view,
            sub_router: None,
        };
        if mounted.engine.as_kv2().is_some() {
            mounted.sub_router = Some(Arc::new(crate::backends::LifecycleBackend {
                core: self.this.clone(),
                kv: mounted.clone(),
            }));
        }
        Ok(mounted)
    }

    /// A router holding only the kernel's own backends: what a sealed core
    /// routes.
    fn empty_router(&self) -> Router {
        Router::with_kernel(self.kernel.clone())
    }

    /// Persists the router's mount table.
    pub(crate) async fn save_mounts(&self, router: &Router) -> Result<()> {
        let entries: Vec<&MountEntry> = router.entries().map(|m| m.entry.as_ref()).collect();
        let bytes = crate::barrier::to_json(&entries)?;
        self.barrier.put(MOUNT_TABLE_KEY, &bytes).await
    }

    /// Sets up a dev server: initialises with one share if needed, unseals,
    /// and mounts KV v2 at `secret/`. Returns the unseal key and root token,
    /// or `None` when the storage was already initialised (it stays sealed).
    pub async fn dev_setup(
        &self,
        root_token_id: Option<&str>,
    ) -> Result<Option<(Zeroizing<Vec<u8>>, Zeroizing<String>)>> {
        if self.is_initialized().await? {
            return Ok(None);
        }
        let mut init = self.initialize(1, 1, root_token_id).await?;
        let key = init.keys.remove(0);
        self.unseal(key.clone()).await?;
        let mut entry = MountEntry::new("secret/", "kv");
        entry.description = "key/value secret storage".into();
        entry.options.insert("version".into(), "2".into());
        self.mount(entry).await?;
        Ok(Some((key, init.root_token)))
    }

    /// Adds a mount and persists the table.
    pub async fn mount(&self, entry: MountEntry) -> Result<()> {
        let _admin = self.admin.lock().await;
        let mounted = self.mounted(entry)?;
        let mut router = self.router.read().clone();
        // The kernel's backends (`sys/`, `auth/token/`) count too: they are
        // routed ahead of every mount, so one below them would never answer.
        for m in self.kernel.iter().chain(router.entries()) {
            let (a, b) = (m.entry.path.as_str(), mounted.entry.path.as_str());
            if a == b {
                return Err(Error::bad(format!("path is already in use at {b}")));
            }
            if a.starts_with(b) || b.starts_with(a) {
                return Err(Error::bad(format!("existing mount at {a}")));
            }
        }
        router.insert(mounted);
        self.save_mounts(&router).await?;
        *self.router.write() = router;
        Ok(())
    }

    /// Handles one request along the path described in the module docs,
    /// recording its time and status class ([`crate::telemetry`]).
    pub async fn handle(&self, req: Request) -> Result<Response> {
        let start = std::time::Instant::now();
        let mut login = false;
        let result = self.handle_untimed(req, &mut login).await;
        let status = match &result {
            Ok(r) => r.status.unwrap_or(200),
            Err(e) => e.status(),
        };
        crate::telemetry::request_done(start, login, status);
        result
    }

    /// The request pipeline: every request, to every engine (the system
    /// backend, the token store and the identity API included), passes
    /// these stages in this order, and the engine's declared
    /// [`Access`] of the route alone decides which apply. A request refused
    /// at any stage after canonicalisation is audited, as in Vault, except
    /// while sealed and on the open status routes, which Vault serves
    /// outside its request path.
    async fn handle_untimed(&self, mut req: Request, is_login: &mut bool) -> Result<Response> {
        // 1. Canonicalise: bad segments refused, the trailing slash follows the operation.
        req.path = match crate::canonical::shape(req.operation, &req.path) {
            Ok(path) => path,
            Err(e) if self.is_sealed() => return Err(e),
            Err(e) => return self.refuse_unrouted(&req, e).await,
        };
        // 2. Route: a kernel backend or the longest mount prefix; the
        //    engine's case rules complete the canonical path. A sealed core
        //    routes only its kernel backends.
        let mut routed = self.route(&mut req);
        let access = routed.as_ref().map(|(m, rel)| m.engine.access(&req, rel));
        // 3. Sealed? Open status routes answer here, unaudited (after the
        //    rate-limit quotas, stage 3b); everything else waits for an
        //    unsealed core that has applied what other nodes wrote before
        //    this request arrived (shared storage).
        if let (Ok((m, rel)), Ok(Access::Open { while_sealed })) = (&routed, access) {
            if !while_sealed && self.is_sealed() {
                return Err(Error::Sealed);
            }
            self.apply_quotas(&req, routed.as_ref().ok()).await?;
            return self.call_engine(m, &req, rel, None).await;
        }
        if self.is_sealed() {
            return Err(Error::Sealed);
        }
        if self.barrier.backend().is_shared() {
            self.sync_storage().await?;
            if self.is_sealed() {
                return Err(Error::Sealed);
            }
            routed = self.route(&mut req); // the mount table may have changed
                                           // The HTTP layer chose the audited headers before this sync: a
                                           // header another node dropped, or made HMAC'd, follows the table
                                           // now (one newly added there is recorded from the next request).
            let table = self.audited_headers();
            req.audited_headers
                .retain_mut(|h| match table.get(&h.name) {
                    Some(setting) => {
                        h.hmac = setting.hmac;
                        true
                    }
                    None => false,
                });
        }
        // 3b. Rate-limit quotas, before authentication (as Vault's HTTP layer
        //     applies them) and after the change-log read, so a quota
        //     written on another node applies here from the next request; a
        //     refusal is audited only when the quota configuration says so.
        self.apply_quotas(&req, routed.as_ref().ok()).await?;
        let (m, rel) = match routed {
            Ok(r) => r,
            Err(e) => return self.refuse_unrouted(&req, e).await,
        };
        // A wrapping JWT stands for its token on the wrapping endpoints.
        if m.entry.kind == "system" {
            if let Err(e) = crate::wrapping::open_jwt_token(self, &mut req, &rel).await {
                let mount = Some(&*m.entry);
                return self
                    .refuse(&req, None, mount, PolicyResults::NotJudged, e)
                    .await;
            }
        }
        let access = m.engine.access(&req, &rel);
        let anonymous = access == Access::Anonymous;
        *is_login = anonymous;
        let mount = Some(&*m.entry);
        // 4. Authenticate: the token by hash, where it is used from; one use
        //    of a limited-use token is taken here, atomically.
        let token = match access {
            Access::Token => match self.authenticate(&req).await {
                Ok(t) => Some(t),
                Err(e) => {
                    let e = crate::wrapping::authentication_error(&req, e);
                    return self
                        .refuse(&req, None, mount, PolicyResults::NotJudged, e)
                        .await;
                }
            },
            _ => None,
        };
        let token = token.as_ref();
        if let Some(t) = token {
            // For `sys/in-flight-req`: who this request is for, once known.
            let _ = req
                .sideband
                .client_id
                .set(crate::audit::entry::client_id(t));
        }
        let spent = token
            .filter(|t| t.uses_exhausted)
            .map(|t| t.id_hash.clone());
        let result = async {
            // 5. Existence check: a write to a path the engine says is new is a create.
            if req.operation == Operation::Update {
                match self.exists(&m, &req, &rel, token).await {
                    Ok(Some(false)) => req.operation = Operation::Create,
                    Ok(_) => {}
                    Err(e) => {
                        return self
                            .refuse(&req, token, mount, PolicyResults::NotJudged, e)
                            .await
                    }
                }
            }
            // 6. Authorize: deny by default, `deny` wins, `sudo` on root-protected paths.
            let policy = match token {
                Some(t) => match self.authorize(t, &req, &m, &rel).await {
                    Ok(granting) => PolicyResults::Allowed(granting),
                    Err(e) => {
                        let policy = match e {
                            Error::PermissionDenied => PolicyResults::Denied,
                            _ => PolicyResults::NotJudged,
                        };
                        return self.refuse(&req, Some(t), mount, policy, e).await;
                    }
                },
                None => PolicyResults::Allowed(Vec::new()),
            };
            // 7. Login throttling: refused early while the address or identity is locked out.
            let login = (anonymous && m.entry.path.starts_with("auth/")).then(|| {
                (
                    m.entry.accessor.clone(),
                    m.engine.login_identity(&req, &rel),
                )
            });
            if let Some((accessor, identity)) = &login {
                if let Err(e) = self
                    .logins
                    .check(req.client_addr, accessor, identity.as_deref())
                    .await
                {
                    return self.refuse(&req, None, mount, policy, e).await;
                }
            }
            // 8. Audit the request: if no enabled device records it, it is refused.
            let mut audit = self.audit_context(&req, token, mount);
            audit.policy = policy;
            self.audit
                .log_request(&audit, None)
                .await
                .map_err(|_| audit_failure(true))?;
            // 9. The engine.
            let mut result = self.call_engine(&m, &req, &rel, token).await;
            if let Some((accessor, identity)) = &login {
                if let Err(e) = self
                    .logins
                    .record(req.client_addr, accessor, identity.as_deref(), &result)
                    .await
                {
                    // The login's own answer stands; the count is best effort
                    // only when the store itself is failing.
                    tracing::warn!(error = %e, "a login's outcome could not be recorded");
                }
            }
            // 10. Mint: a login's grant becomes a token, a lease request a lease.
            if let Ok(resp) = &mut result {
                if let Err(e) = self.mint(&req, &m.entry, token, resp).await {
                    result = Err(e);
                }
            }
            // 11. Wrap, last, so that the answer wrapped is the complete one.
            if let Ok(resp) = &mut result {
                if let Err(e) =
                    crate::wrapping::wrap_if_asked(self, &req, token.is_some(), resp).await
                {
                    result = Err(e);
                }
            }
            // 12. Audit the response, then tell subscribers what changed.
            self.audit
                .log_response(&audit, &result)
                .await
                .map_err(|_| audit_failure(false))?;
            if let Ok(resp) = &result {
                self.publish(&m.entry, &rel, req.operation, resp);
            }
            result
        }
        .await;
        // 13. The request that took a token's last use revokes it, as in Vault.
        if let Some(hash) = spent {
            self.revoke_token_tree(&hash).await?;
        }
        result
    }

    /// Stage 3b: counts the request against the quota that decides it
    /// ([`crate::quotas`]); the rate-limit headers go to the transport
    /// through the request's sideband. A refusal is a 429.
    async fn apply_quotas(&self, req: &Request, routed: Option<&(Mounted, String)>) -> Result<()> {
        let mount = routed.map_or("", |(m, _)| m.entry.path.as_str());
        let role = match routed {
            Some((m, rel)) if self.quotas.has_role_quota(mount) => {
                let ctx = EngineCtx {
                    view: &m.view,
                    mount: &m.entry,
                    token: None,
                };
                // A role that cannot be told (a bad RoleID) names no quota.
                m.engine.login_role(&ctx, req, rel).await.unwrap_or(None)
            }
            _ => None,
        };
        let Some(verdict) = self
            .quotas
            .check(&req.path, mount, role.as_deref(), req.client_addr)
        else {
            return Ok(());
        };
        if let Some(headers) = verdict.headers {
            let _ = req.sideband.headers.set(headers);
        }
        if verdict.allowed {
            return Ok(());
        }
        let e = crate::quotas::exceeded(&req.path);
        if verdict.audit {
            let ctx = self.audit_context(req, None, routed.map(|(m, _)| &*m.entry));
            if let Err(err) = self.audit.log_request(&ctx, Some(&e)).await {
                // As Vault: the refusal stands; only its record failed.
                tracing::warn!(error = %err, "a rate-limited request could not be audited");
            }
        }
        Err(e)
    }

    /// Routes a shaped request and completes its canonical path with the
    /// engine's case rules (and its policy-naming parameters), so that the
    /// ACL, the audit trail and the engine all see the same object.
    fn route(&self, req: &mut Request) -> Result<(Mounted, String)> {
        let (m, rel) = self.resolve(&req.path)?;
        if m.entry.path.starts_with("auth/") {
            crate::canonical::policy_fields(&mut req.data);
        }
        match m.engine.canonical_path(&rel) {
            std::borrow::Cow::Borrowed(_) => Ok((m, rel)),
            std::borrow::Cow::Owned(c) => {
                req.path = format!("{}{c}", m.entry.path);
                self.resolve(&req.path)
            }
        }
    }

    /// The mount answering `path` and the path relative to it.
    fn resolve(&self, path: &str) -> Result<(Mounted, String)> {
        match self.router.read().route(path) {
            Some((m, rel)) => Ok((m, rel.to_string())),
            None => Err(Error::UnsupportedPath(format!(
                "no handler for route \"{path}\". route entry not found."
            ))),
        }
    }

    /// Audits a request refused before it was routed (a bad path, no
    /// mount), with its token if it names a live one (no use is taken).
    async fn refuse_unrouted(&self, req: &Request, e: Error) -> Result<Response> {
        let token = match &req.token {
            Some(t) => self.tokens.lookup(t).await.ok().flatten(),
            None => None,
        };
        self.refuse(req, token.as_ref(), None, PolicyResults::NotJudged, e)
            .await
    }

    /// The engine's existence check of `rel` (stage 5).
    async fn exists(
        &self,
        m: &Mounted,
        req: &Request,
        rel: &str,
        token: Option<&TokenEntry>,
    ) -> Result<Option<bool>> {
        let view = engine_view(m, token)?;
        let ctx = EngineCtx {
            view: &view,
            mount: &m.entry,
            token,
        };
        m.engine.exists(&ctx, req, rel).await
    }

    /// Calls the engine (stage 9); help requests get the route's help.
    async fn call_engine(
        &self,
        m: &Mounted,
        req: &Request,
        rel: &str,
        token: Option<&TokenEntry>,
    ) -> Result<Response> {
        if crate::path_help::is_help(req) {
            return crate::path_help::answer(m, rel);
        }
        let view = engine_view(m, token)?;
        let ctx = EngineCtx {
            view: &view,
            mount: &m.entry,
            token,
        };
        let mut resp = m.engine.handle(&ctx, req, rel).await?;
        resp.mount_type = m.entry.kind.clone();
        if m.engine.as_kv2().is_some() {
            crate::lifecycle::after_kv_write(self, m, req.operation, rel).await?;
        }
        Ok(resp)
    }

    /// Stage 10: a login's grant becomes a token and its `auth` block; a
    /// lease request becomes a registered lease.
    async fn mint(
        &self,
        req: &Request,
        mount: &MountEntry,
        token: Option<&TokenEntry>,
        resp: &mut Response,
    ) -> Result<()> {
        if let Some(grant) = resp.grant.take() {
            resp.auth = Some(self.mint_login(req, mount, grant).await?);
        }
        if let Some(lease) = resp.lease.take() {
            let entry = self
                .leases
                .register(&req.path, mount, token, &lease)
                .await?;
            resp.lease_id = entry.lease_id;
            resp.lease_duration = u64::try_from(entry.expire_time - entry.issue_time).unwrap_or(0);
            resp.renewable = entry.renewable;
        }
        Ok(())
    }

    /// Publishes the change event of a successful KV request, if it made one.
    fn publish(&self, mount: &Arc<MountEntry>, rel: &str, op: Operation, resp: &Response) {
        if let Some((kind, data_path, meta)) =
            crate::events::kv_event(mount, rel, op, resp.data.as_ref())
        {
            self.events.publish(&kind, Some(&**mount), &data_path, meta);
        }
    }

    /// What the audit trail records of a request's caller.
    fn audit_context<'a>(
        &self,
        req: &'a Request,
        token: Option<&'a TokenEntry>,
        mount: Option<&'a MountEntry>,
    ) -> AuditContext<'a> {
        AuditContext {
            request: req,
            token,
            mount,
            identity_policies: token.map(|t| self.identity_policies(t)).unwrap_or_default(),
            policy: PolicyResults::NotJudged,
        }
    }

    /// Sets the server's audit settings (where file devices may write).
    /// Call before unsealing: devices are built when the core unseals.
    pub fn configure_audit(&self, settings: crate::audit::config::AuditSettings) {
        self.audit.configure(settings);
    }

    /// The request headers audit entries record now, for the HTTP layer
    /// to copy into each request.
    pub fn audited_headers(&self) -> Arc<crate::audit::headers::HeaderTable> {
        self.audit.headers.current()
    }

    /// Reopens the audit files (on SIGHUP, for log rotation).
    pub fn reopen_audit(&self) {
        self.audit.reopen();
    }

    /// Records a lifecycle event in the audit trail (see
    /// [`crate::audit::events::names`]); rotators and revocation call this.
    pub async fn audit_event(
        &self,
        name: &str,
        actor: Option<&TokenEntry>,
        details: Value,
    ) -> Result<()> {
        self.audit.event(name, actor, details).await
    }

    /// The table of requests in flight, which the transport fills.
    pub fn in_flight(&self) -> &Arc<crate::in_flight::InFlight> {
        &self.in_flight
    }

    /// The node's log fan-out (`sys/monitor` streams it).
    pub fn log_monitor(&self) -> &Arc<crate::sys_monitor::LogMonitor> {
        &self.config.log_monitor
    }

    /// The change-event channel (`sys/events/subscribe` streams it).
    pub fn events(&self) -> &crate::events::EventBus {
        &self.events
    }

    /// Whether the holder of `token` (connected from `client_addr`) may see
    /// `event`: its policies (identity policies included) must grant
    /// `read` on the event's `data_path` now. An error when the token is no longer valid (revoked, expired,
    /// used up, or its batch issuer gone): the stream must then close.
    pub async fn event_visible(
        &self,
        token: &str,
        client_addr: Option<std::net::IpAddr>,
        event: &crate::events::Event,
    ) -> Result<bool> {
        let entry = self.live_token(token, client_addr).await?;
        if event.event_type == crate::events::RESYNC {
            return Ok(true);
        }
        if event.data_path.is_empty() {
            return Ok(false);
        }
        // The same ACL as a request's: the token's own policies and, for an
        // entity, its and its groups' policies as the identity store holds
        // them now (a disabled entity gets nothing: the stream closes).
        let acl = self.token_acl(&entry).await?;
        Ok(acl
            .authorize_without_parameters(crate::policy::Operation::Read, &event.data_path)
            .is_ok())
    }

    /// The entry of `token` if it is still valid from `client_addr`
    /// (without taking a use); [`Error::PermissionDenied`] otherwise.
    pub async fn live_token(
        &self,
        token: &str,
        client_addr: Option<std::net::IpAddr>,
    ) -> Result<TokenEntry> {
        if self.is_sealed() {
            return Err(Error::Sealed);
        }
        let entry = self
            .tokens
            .lookup(token)
            .await?
            .ok_or(Error::PermissionDenied)?;
        if !crate::auth::ip_allowed(client_addr, &entry.bound_cidrs)
            || (entry.is_batch() && !self.login_mount_routes(&entry.path))
        {
            return Err(Error::PermissionDenied);
        }
        Ok(entry)
    }

    /// Audits a refused request, then returns its error.
    async fn refuse(
        &self,
        req: &Request,
        token: Option<&TokenEntry>,
        mount: Option<&MountEntry>,
        policy: PolicyResults,
        e: Error,
    ) -> Result<Response> {
        let mut ctx = self.audit_context(req, token, mount);
        ctx.policy = policy;
        let result = Err(e);
        if self
            .audit
            .log_request(&ctx, result.as_ref().err())
            .await
            .is_err()
        {
            return Err(audit_failure(true));
        }
        if self.audit.log_response(&ctx, &result).await.is_err() {
            return Err(audit_failure(false));
        }
        result
    }

    /// Turns a login's grant into an orphan token and its `auth` block.
    async fn mint_login(
        &self,
        req: &Request,
        mount: &MountEntry,
        grant: crate::AuthGrant,
    ) -> Result<serde_json::Value> {
        let name = mount
            .path
            .trim_start_matches("auth/")
            .trim_end_matches('/')
            .replace('/', "-");
        let display_name = if grant.display_name.is_empty() {
            name
        } else {
            format!("{name}-{}", grant.display_name)
        };
        let entity_id = match &grant.entity_alias {
            Some(alias) => {
                self.identity
                    .login(
                        &mount.accessor,
                        alias,
                        &grant.alias_metadata,
                        grant.group_aliases.as_deref(),
                    )
                    .await?
            }
            None => String::new(),
        };
        let spec = TokenSpec {
            entity_id,
            policies: grant.policies,
            no_default_policy: grant.no_default_policy,
            meta: grant.metadata,
            display_name,
            ttl: grant.ttl,
            // A role's max TTL caps renewals; unlike explicit_max_ttl it is not shown in lookups.
            explicit_max_ttl: 0,
            period: grant.period,
            num_uses: grant.num_uses,
            renewable: grant.renewable,
            parent: None,
            path: req.path.clone(),
            bound_cidrs: crate::auth::strict_bind(
                grant.strictly_bind_ip,
                req.client_addr,
                grant.bound_cidrs,
            )?,
            mount_default_ttl: mount.config.default_lease_ttl,
            mount_max_ttl: match (grant.max_ttl, mount.config.max_lease_ttl) {
                (0, m) => m,
                (g, 0) => g,
                (g, m) => g.min(m),
            },
            ..Default::default()
        };
        let (token, entry) = if grant.batch {
            token_api::mint_batch(self, spec).await?
        } else {
            token_api::mint(self, spec).await?
        };
        let mut auth = token_api::auth_block(Some(&token), &entry);
        let identity = self.identity_policies(&entry);
        if !identity.is_empty() {
            // As Vault: `policies` is the union, `token_policies` the
            // token's own, `identity_policies` the entity's and groups'.
            let mut all = entry.policies.clone();
            all.extend(identity.iter().cloned());
            all.sort();
            all.dedup();
            auth["policies"] = serde_json::json!(all);
            auth["identity_policies"] = serde_json::json!(identity);
        }
        Ok(auth)
    }

    /// Looks up the request's token and checks where it is used from; for a
    /// limited-use token, takes one use atomically (an exhausted token is
    /// refused), so `num_uses = N` serves at most N requests at any
    /// concurrency.
    async fn authenticate(&self, req: &Request) -> Result<TokenEntry> {
        let token = req.token.as_ref().ok_or(Error::PermissionDenied)?;
        let entry = self
            .tokens
            .lookup(token)
            .await?
            .ok_or(Error::PermissionDenied)?;
        if !crate::auth::ip_allowed(req.client_addr, &entry.bound_cidrs) {
            return Err(Error::PermissionDenied);
        }
        if !entry.entity_id.is_empty() && self.identity.is_disabled(&entry.entity_id) {
            // A disabled entity's tokens are refused, not revoked (Vault).
            return Err(Error::PermissionDenied);
        }
        if entry.is_batch() && !self.login_mount_routes(&entry.path) {
            // A batch token is never stored, so disabling or moving the auth
            // method that issued it cannot revoke it: it dies here instead.
            return Err(Error::PermissionDenied);
        }
        if entry.num_uses == 0 {
            return Ok(entry);
        }
        self.tokens
            .take_use(&entry.id_hash)
            .await?
            .ok_or(Error::PermissionDenied)
    }

    /// Whether a token created at `path` still has its issuer: the token
    /// store, or an auth method still mounted where the login happened.
    fn login_mount_routes(&self, path: &str) -> bool {
        if !path.starts_with("auth/") || path.starts_with("auth/token/") {
            return true;
        }
        self.router.read().route(path).is_some()
    }

    /// Revokes a token and its descendants.
    pub async fn revoke_token_tree(&self, hash: &str) -> Result<()> {
        let revoked = self.tokens.revoke_tree(hash).await?;
        let hashes: Vec<String> = revoked.into_iter().map(|e| e.id_hash).collect();
        self.after_token_revoked(&hashes).await
    }

    /// Revokes every token created through paths below `prefix` (an auth mount).
    pub(crate) async fn revoke_tokens_with_path_prefix(&self, prefix: &str) -> Result<()> {
        for accessor in self.tokens.accessors().await? {
            if let Some(e) = self.tokens.lookup_accessor(&accessor).await? {
                if e.path.starts_with(prefix) {
                    self.revoke_token_tree(&e.id_hash).await?;
                }
            }
        }
        Ok(())
    }

    /// Hook run after tokens are revoked (their leases go with them).
    /// Their cubbyholes are destroyed too.
    pub(crate) async fn after_token_revoked(&self, hashes: &[String]) -> Result<()> {
        let cubbyholes = self
            .router
            .read()
            .get(engines::cubbyhole::MOUNT_PATH)
            .map(|m| m.view.clone());
        for h in hashes {
            self.leases.revoke_token(self, h).await?;
            if let Some(view) = &cubbyholes {
                engines::cubbyhole::destroy(view, h).await?;
            }
        }
        if !hashes.is_empty() {
            tracing::info!(count = hashes.len(), "tokens revoked");
        }
        Ok(())
    }

    /// Decides whether `token` may perform `req`, per its policies; on
    /// success, the policies that granted it (none for the routes judged
    /// by their own handler).
    async fn authorize(
        &self,
        token: &TokenEntry,
        req: &Request,
        m: &Mounted,
        rel: &str,
    ) -> Result<Vec<Arc<str>>> {
        if crate::sys_ui::judged_here(&req.path, req.operation)
            || crate::path_help::is_help(req)
            || (req.path == "sys/internal/specs/openapi" && req.operation == Operation::Read)
        {
            // Vault's own rules: the UI mount table and the OpenAPI document
            // show what the token's policies reach (judged by their
            // handlers); help reveals no data and is open to any token.
            return Ok(Vec::new());
        }
        let acl = self.token_acl(token).await?;
        // A route may be judged on another object than its own path (the
        // engine declares it): the ACL then sees that path and operation.
        let object = m.engine.acl_object(req, rel);
        let (operation, acl_path) = match &object {
            Some((op, path)) => (*op, format!("{}{path}", m.entry.path)),
            None => (req.operation, req.path.clone()),
        };
        let op = match operation {
            Operation::Read => crate::policy::Operation::Read,
            Operation::List => crate::policy::Operation::List,
            Operation::Create => crate::policy::Operation::Create,
            Operation::Update => crate::policy::Operation::Update,
            Operation::Patch => crate::policy::Operation::Patch,
            Operation::Delete => crate::policy::Operation::Delete,
        };
        let kv2 =
            m.entry.kind == "kv" && m.entry.options.get("version").map(String::as_str) == Some("2");
        let result = if kv2 {
            acl.authorize_without_parameters(op, &acl_path)
        } else if m.entry.path.starts_with("auth/") && m.entry.kind != "token" {
            // Auth methods' parameter rules judge `policies` and `token_policies` together
            // (the engine stores either); the engine gets the data as sent.
            let mut judged = req.data.clone();
            crate::canonical::merge_policy_alias(&mut judged);
            acl.authorize(op, &acl_path, Some(&judged))
        } else {
            acl.authorize(op, &acl_path, Some(&req.data))
        };
        let granted = result.map_err(|d| {
            tracing::debug!(path = %req.path, reason = %d, "request denied");
            Error::PermissionDenied
        })?;
        if crate::sys::requires_sudo(&req.path, req.operation) && !granted.sudo {
            return Err(Error::PermissionDenied);
        }
        // A rule's min/max_wrapping_ttl: the answer must be wrapped within them.
        let wrap_ttl = req
            .wrap_ttl
            .filter(|t| *t > 0)
            .map(std::time::Duration::from_secs);
        if !granted.wrapping_ttl_allowed(wrap_ttl) {
            return Err(Error::PermissionDenied);
        }
        Ok(granted.granting_policies)
    }

    /// The ACL of `token` at this moment: its own policies plus, when it
    /// acts for an entity, the entity's and its groups' policies as the
    /// identity store holds them now, with identity templates resolved
    /// against that same state. A disabled entity gets nothing (403).
    pub(crate) async fn token_acl(&self, token: &TokenEntry) -> Result<Arc<crate::policy::Acl>> {
        let (names, identity) = self.effective_policies(token)?;
        self.policies
            .acl_for(&names, identity.as_ref().map(|r| (&*r.template, r.epoch)))
            .await
    }

    /// A token's policy names (its own, then the identity ones) and what
    /// the identity store says about its entity; refused (403) when the
    /// entity is disabled.
    pub(crate) fn effective_policies(
        &self,
        token: &TokenEntry,
    ) -> Result<(Vec<String>, Option<crate::identity::store::Resolved>)> {
        if token.entity_id.is_empty() {
            return Ok((token.policies.clone(), None));
        }
        let Some(resolved) = self.identity.resolve(&token.entity_id) else {
            return Ok((token.policies.clone(), None));
        };
        if resolved.disabled {
            return Err(Error::PermissionDenied);
        }
        let mut names = token.policies.clone();
        // Identity never grants root, whatever the store holds (writes
        // refuse it; this guards data stored before that check).
        names.extend(resolved.policies.iter().filter(|p| *p != "root").cloned());
        Ok((names, Some(resolved)))
    }

    /// The identity policies of a token (entity and groups), for lookups.
    pub(crate) fn identity_policies(&self, token: &TokenEntry) -> Vec<String> {
        if token.entity_id.is_empty() {
            return Vec::new();
        }
        self.identity
            .resolve(&token.entity_id)
            .map(|r| r.policies.into_iter().filter(|p| p != "root").collect())
            .unwrap_or_default()
    }

    /// The (path, type) of the auth mount whose accessor is `accessor`.
    pub(crate) fn auth_mount_by_accessor(&self, accessor: &str) -> Option<(String, String)> {
        self.router
            .read()
            .entries()
            .find(|m| m.entry.accessor == accessor && m.entry.path.starts_with("auth/"))
            .map(|m| (m.entry.path.clone(), m.entry.kind.clone()))
    }

    /// Starts the background work of this node: expired leases and expired
    /// tokens (with their trees and leases) are revoked every second, the
    /// token store tidied every five minutes. Runs while the
    /// process lives; does nothing while sealed. On shared storage only the
    /// holder of the leader lease runs it, fenced by its term
    /// ([`crate::leader`]); a second task renews the lease.
    pub fn spawn_background(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let shared = self.barrier.backend().is_shared();
        if shared {
            crate::cluster_events::spawn_outbox(self);
            let renewer = Arc::clone(self);
            tokio::spawn(async move {
                let period = (renewer.config.leader_lease_ttl / 5)
                    .max(std::time::Duration::from_millis(100));
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut n: u64 = 0;
                loop {
                    tick.tick().await;
                    if renewer.is_sealed() {
                        if renewer.leadership.current_term().is_some() {
                            renewer.release_leadership().await;
                        }
                        continue;
                    }
                    renewer.renew_leadership().await;
                    if n.is_multiple_of(5) {
                        if let Err(e) = renewer.echo_node().await {
                            tracing::debug!(error = %e, "node registry not updated");
                        }
                    }
                    n += 1;
                }
            });
        }
        let core = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n: u64 = 0;
            let rotations = Arc::new(tokio::sync::Semaphore::new(
                crate::lifecycle::MAX_CONCURRENT_ROTATIONS,
            ));
            let mut first_unsealed_pass = true;
            loop {
                tick.tick().await;
                n += 1;
                if core.is_sealed() {
                    first_unsealed_pass = true;
                    continue;
                }
                if !shared {
                    core.background_pass(n, first_unsealed_pass, &rotations)
                        .await;
                    first_unsealed_pass = false;
                    continue;
                }
                // Every node follows the change log at least once a second,
                // requests or not: other nodes' events reach its subscribers,
                // and its caches never fall far behind.
                if let Err(e) = core.sync_storage().await {
                    tracing::warn!(error = %e, "background pass skipped: storage unavailable");
                    continue;
                }
                let Some(term) = core.leadership.current_term() else {
                    // Not the leader: a node that takes over later recovers
                    // interrupted rotations first, as after an unseal.
                    first_unsealed_pass = true;
                    continue;
                };
                coffer_storage::fence::fenced(
                    term,
                    core.background_pass(n, first_unsealed_pass, &rotations),
                )
                .await;
                first_unsealed_pass = false;
                if n.is_multiple_of(600) {
                    if let Err(e) = core.forget_old_nodes().await {
                        tracing::debug!(error = %e, "node registry not tidied");
                    }
                }
                if n.is_multiple_of(60) {
                    if let Err(e) =
                        coffer_storage::fence::fenced(term, crate::cluster_events::tidy(&core))
                            .await
                    {
                        tracing::debug!(error = %e, "shared events not tidied");
                    }
                }
            }
        })
    }

    /// One second's background work (pass `n`): the rotation scheduler
    /// every 5 s (and on the `first` pass), lease and token expiry, the
    /// engines' periodic work, tidy every 5 minutes.
    async fn background_pass(
        self: &Arc<Self>,
        n: u64,
        first: bool,
        rotations: &Arc<tokio::sync::Semaphore>,
    ) {
        if first || n.is_multiple_of(5) {
            let kernel: Arc<dyn crate::lifecycle::Kernel> = self.clone();
            if let Err(e) = crate::lifecycle::schedule_pass(&kernel, rotations, first).await {
                tracing::warn!(error = %e, "rotation scheduler pass failed");
            }
        }
        if let Err(e) = self.leases.revoke_due(self).await {
            tracing::warn!(error = %e, "lease expiry pass failed");
        }
        if let Err(e) = self.tokens.revoke_expired(self).await {
            tracing::warn!(error = %e, "token expiry pass failed");
        }
        let mounts: Vec<_> = self.router.read().entries().cloned().collect();
        for m in mounts {
            let ctx = EngineCtx {
                view: &m.view,
                mount: &m.entry,
                token: None,
            };
            if let Err(e) = m.engine.periodic(&ctx).await {
                tracing::warn!(mount = %m.entry.path, error = %e, "engine background pass failed");
            }
        }
        if n.is_multiple_of(300) {
            match self.tokens.tidy().await {
                Ok(removed) if removed.is_empty() => {}
                Ok(removed) => {
                    tracing::info!(removed = removed.len(), "expired tokens tidied");
                    if let Err(e) = self.after_token_revoked(&removed).await {
                        tracing::warn!(error = %e, "revoking the leases of tidied tokens failed");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "token tidy failed"),
            }
            let cubbyholes = self
                .router
                .read()
                .get(engines::cubbyhole::MOUNT_PATH)
                .map(|m| m.view.clone());
            if let Some(view) = cubbyholes {
                if let Err(e) = engines::cubbyhole::sweep(&view, &self.tokens).await {
                    tracing::warn!(error = %e, "cubbyhole sweep failed");
                }
            }
        }
        if n.is_multiple_of(crate::audit::readers::PRUNE_EVERY_SECS) {
            let tokens = &self.tokens;
            let alive = move |accessor: String| async move {
                Ok(tokens.lookup_accessor(&accessor).await?.is_some())
            };
            if let Err(e) = self.audit.prune_readers(alive).await {
                tracing::warn!(error = %e, "reader index prune failed");
            }
        }
    }

    /// The seal status as `sys/seal-status` answers it.
    pub async fn seal_status(&self) -> Result<Value> {
        let config = self.seal.config().await?;
        let sealed = self.is_sealed();
        let (progress, nonce) = self.seal.progress();
        let (t, n) = config
            .as_ref()
            .map(|c| (c.secret_threshold, c.secret_shares))
            .unwrap_or((0, 0));
        let mut status = json!({
            "type": "shamir",
            "initialized": config.is_some(),
            "sealed": sealed,
            "t": t,
            "n": n,
            "progress": progress,
            "nonce": nonce,
            "version": VERSION,
            "build_date": "",
            "migration": false,
            "recovery_seal": false,
            "storage_type": self.config.storage_type,
        });
        if !sealed {
            status["cluster_name"] = json!(self.config.cluster_name);
            status["cluster_id"] = json!(self.cluster_id);
        }
        Ok(status)
    }
}

/// The storage an engine sees for a request: its mount's view, or for the
/// cubbyhole only the requesting token's part of it (no token, no cubbyhole).
fn engine_view<'a>(
    m: &'a Mounted,
    token: Option<&TokenEntry>,
) -> Result<std::borrow::Cow<'a, View>> {
    if m.entry.kind != engines::cubbyhole::KIND {
        return Ok(std::borrow::Cow::Borrowed(&m.view));
    }
    let token = token.ok_or(Error::PermissionDenied)?;
    if token.is_batch() {
        // As Vault: a batch token has no storage of its own to tie a
        // cubbyhole to (its data would be swept as an orphan).
        return Err(Error::bad(
            "cubbyhole operations are only supported by \"service\" type tokens",
        ));
    }
    Ok(std::borrow::Cow::Owned(engines::cubbyhole::token_view(
        &m.view, token,
    )))
}

/// The error Vault answers when no audit device could record a request
/// (`request`) or its response; counted as Vault's
/// `vault.audit.log_request_failure` / `log_response_failure`.
pub(crate) fn audit_failure(request: bool) -> Error {
    if request {
        crate::telemetry::C_AUDIT_REQUEST_FAILURE.incr();
    } else {
        crate::telemetry::C_AUDIT_RESPONSE_FAILURE.incr();
    }
    Error::Status {
        code: 500,
        errors: vec!["failed to audit request".into()],
    }
}

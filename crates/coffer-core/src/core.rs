//! The core: one request's path from token to engine.
//!
//! 1. unauthenticated sys endpoints (health, seal status, init, unseal) answer first;
//! 2. a sealed core refuses everything else (503);
//! 3. the token is looked up by hash (unknown or expired: 403);
//! 4. the path is routed: `sys/`, `auth/token/`, or the longest mount prefix;
//! 5. a write to a path the engine says is new becomes a `create`;
//! 6. the token's policies must allow the operation;
//! 7. the handler answers; the mount type is stamped on the response.

use std::sync::Arc;

use coffer_storage::Backend;
use parking_lot::RwLock;
use serde_json::{json, Value};
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use crate::barrier::{Barrier, View};
use crate::engine::EngineCtx;
use crate::mounts::{MountEntry, Mounted, Router, MOUNT_TABLE_KEY};
use crate::seal::{Seal, UnsealProgress};
use crate::token::{TokenEntry, TokenStore};
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
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            cluster_name: format!("coffer-cluster-{}", &coffer_crypto::random::uuid()[..8]),
            storage_type: "inmem".into(),
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

/// Where a request goes once authenticated.
pub(crate) enum Target<'a> {
    /// The system backend, with the path below `sys/`.
    Sys(&'a str),
    /// The token store, with the path below `auth/token/`.
    Token(&'a str),
    /// A mounted engine, with the path relative to its mount.
    Mount(Mounted, &'a str),
}

/// The sealed store and everything mounted on it.
pub struct Core {
    pub(crate) barrier: Arc<Barrier>,
    pub(crate) seal: Seal,
    pub(crate) router: RwLock<Router>,
    pub(crate) tokens: TokenStore,
    pub(crate) config: CoreConfig,
    pub(crate) cluster_id: String,
    /// Serialises init, unseal completion, seal and mount-table changes.
    pub(crate) admin: Mutex<()>,
}

impl Core {
    /// A sealed core over `backend`.
    pub fn new(backend: Arc<dyn Backend>, config: CoreConfig) -> Arc<Core> {
        let barrier = Arc::new(Barrier::new(backend));
        Arc::new(Core {
            seal: Seal::new(barrier.clone()),
            tokens: TokenStore::new(View::new(barrier.clone(), "sys/token/")),
            router: RwLock::new(Router::default()),
            barrier,
            config,
            cluster_id: coffer_crypto::random::uuid(),
            admin: Mutex::new(()),
        })
    }

    /// Whether the core is sealed.
    pub fn is_sealed(&self) -> bool {
        self.barrier.is_sealed()
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
            self.tokens.create_root(root_token_id).await
        }
        .await;
        self.seal.seal();
        Ok(InitResult {
            keys,
            root_token: created?,
        })
    }

    /// Submits one unseal key share; returns whether the core is now unsealed.
    pub async fn unseal(&self, key: Zeroizing<Vec<u8>>) -> Result<bool> {
        match self.seal.submit(key).await? {
            UnsealProgress::Pending { .. } => Ok(false),
            UnsealProgress::Unsealed => {
                let _admin = self.admin.lock().await;
                if let Err(e) = self.load_mounts().await {
                    self.seal.seal();
                    return Err(e);
                }
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
        self.seal.seal();
        *self.router.write() = Router::default();
        tracing::info!("core sealed");
    }

    async fn load_mounts(&self) -> Result<()> {
        let entries: Vec<MountEntry> = match self.barrier.get(MOUNT_TABLE_KEY).await? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::Internal(format!("corrupt mount table: {e}")))?,
            None => Vec::new(),
        };
        let mut router = Router::default();
        for entry in entries {
            router.insert(self.mounted(entry)?);
        }
        *self.router.write() = router;
        Ok(())
    }

    pub(crate) fn mounted(&self, entry: MountEntry) -> Result<Mounted> {
        let engine = engines::for_mount(&entry)?;
        let view = View::new(self.barrier.clone(), entry.storage_prefix());
        Ok(Mounted {
            entry: Arc::new(entry),
            engine,
            view,
        })
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
        for m in router.entries() {
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

    /// Handles one request along the path described in the module docs.
    pub async fn handle(&self, mut req: Request) -> Result<Response> {
        if let Some(resp) = crate::sys::handle_unauthenticated(self, &req).await? {
            return Ok(resp);
        }
        if self.barrier.is_sealed() {
            return Err(Error::Sealed);
        }
        let token = self.authenticate(&req).await?;
        let path = req.path.clone();
        let target = self.resolve(&path)?;
        if req.operation == Operation::Update {
            if let Target::Mount(m, rel) = &target {
                let ctx = EngineCtx {
                    view: &m.view,
                    mount: &m.entry,
                };
                if m.engine.exists(&ctx, &req, rel).await? == Some(false) {
                    req.operation = Operation::Create;
                }
            }
        }
        self.authorize(&token, &req)?;
        match target {
            Target::Sys(rest) => crate::sys::handle(self, &req, rest, &token).await,
            Target::Token(rest) => self.handle_token(&req, rest, &token).await,
            Target::Mount(m, rel) => {
                let ctx = EngineCtx {
                    view: &m.view,
                    mount: &m.entry,
                };
                let mut resp = m.engine.handle(&ctx, &req, rel).await?;
                resp.mount_type = m.entry.kind.clone();
                Ok(resp)
            }
        }
    }

    async fn authenticate(&self, req: &Request) -> Result<TokenEntry> {
        let token = req.token.as_ref().ok_or(Error::PermissionDenied)?;
        self.tokens
            .lookup(token)
            .await?
            .ok_or(Error::PermissionDenied)
    }

    /// Decides whether `token` may perform `req`. Root may do everything; the
    /// built-in default rules let any token look itself up.
    fn authorize(&self, token: &TokenEntry, req: &Request) -> Result<()> {
        if token.is_root() {
            return Ok(());
        }
        if req.path == "auth/token/lookup-self" && req.operation == Operation::Read {
            return Ok(());
        }
        Err(Error::PermissionDenied)
    }

    fn resolve<'a>(&self, path: &'a str) -> Result<Target<'a>> {
        if let Some(rest) = path.strip_prefix("sys/") {
            return Ok(Target::Sys(rest));
        }
        if let Some(rest) = path.strip_prefix("auth/token/") {
            return Ok(Target::Token(rest));
        }
        match self.router.read().route(path) {
            Some((m, rel)) => Ok(Target::Mount(m, rel)),
            None => Err(Error::UnsupportedPath(format!(
                "no handler for route \"{path}\". route entry not found."
            ))),
        }
    }

    async fn handle_token(
        &self,
        req: &Request,
        rest: &str,
        token: &TokenEntry,
    ) -> Result<Response> {
        match (rest, req.operation) {
            ("lookup-self", Operation::Read) => Ok(Response::data(
                token.to_lookup_json(req.token.as_ref().map(|t| t.as_str())),
            )),
            _ => Err(Error::UnsupportedPath("unsupported path".into())),
        }
    }

    /// The seal status as `sys/seal-status` answers it.
    pub async fn seal_status(&self) -> Result<Value> {
        let config = self.seal.config().await?;
        let sealed = self.barrier.is_sealed();
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

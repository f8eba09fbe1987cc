//! Coffer's audit trail: the broker that every request and its response
//! go through before the client sees an answer, its devices, the hash
//! chain and signed checkpoints that make a log tamper-evident, and the
//! offline verifier.
//!
//! **Architecture Invariant**: this crate knows nothing of the router or
//! the core, and does not depend on `coffer-core` (checked by Cargo: it
//! cannot name `Core`). It is handed the request, the caller's token
//! record (coffer-engine's plain [`TokenEntry`]), the mount that answers
//! and the ACL's verdict ([`AuditContext`]), and its own barrier view
//! (`sys/audit/`); whatever else it needs (whether a token still exists,
//! for pruning the reader index) the caller passes in. That nothing
//! reaches an engine or a client unaudited is enforced by the caller, the
//! request pipeline in `coffer-core`, which refuses a request the broker
//! could not record. The `sys/audit*` and access-record endpoints are the
//! system backend's (coffer-core); they act through the broker's methods.
//!
//! * Devices (`sys/audit/:path`): file, stdout, socket (TCP/UDP) and syslog,
//!   with Vault's options (`hmac_accessor`, `log_raw`, `elide_list_responses`,
//!   `prefix`). Entries are Vault's JSON lines with every string value
//!   HMAC'd under a per-device salt ([`hashing`], [`entry`]).
//! * Tamper evidence ([`chain`]): each line carries `seq` and the hash of
//!   the line before; a checkpoint signed with the broker's Ed25519 key is
//!   written when a device starts, every `checkpoint_interval` entries, on
//!   SIGHUP before the file is reopened, and on seal. [`verify`] checks a
//!   log offline.
//! * Fail closed: with devices enabled, a request is refused unless at
//!   least one device that confirms delivery (not UDP) wrote its entry.
//! * Off the runtime ([`writer`]): each device writes on a thread of its
//!   own, fed by a bounded queue; a request waits for each device at most
//!   that device's deadline.
//! * File devices only under the server's `[audit] file_dir` ([`sink`]).
//! * Lifecycle events ([`events`]), access records ([`access`]) and the
//!   reader index ([`readers`]).
//!
//! Storage (all behind the barrier, view `sys/audit/`): `config` (the
//! device table with salts), `request-headers` (the audited headers, [`headers`]), `signing-key` (PKCS#8), `state/<sha256(path)>`
//! (chain state saved at checkpoints), `access/<sha256(secret path)>`,
//! `readers/<sha256(secret path)>/<sha256(accessor)>`.

pub mod access;
pub mod chain;
pub mod config;
pub mod device;
pub mod entry;
pub mod events;
pub mod hashing;
pub mod headers;
pub mod readers;
pub mod signer;
pub mod sink;
pub mod verify;
pub mod writer;

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde_json::{json, Map, Value};

use barrier::View;
use chain::ChainState;
use coffer_engine::caller::TokenEntry;
use config::{AuditSettings, DeviceConfig};
use device::Device;
use mounts::MountEntry;
use signer::Signer;
use writer::Writer;

// The moved sources name the contract as `crate::barrier`, `crate::Error`
// and so on, the paths they had inside coffer-core; these private imports
// keep those paths valid so the files stay as they were.
use coffer_engine::{barrier, mounts, redact};
use coffer_engine::{AuditedHeader, Error, Operation, Request, Response, Result};

/// Vault's parameter and time helpers under their former module name.
mod util {
    pub use coffer_engine::params::Params;
    pub use coffer_engine::time::{now, parse_duration, rfc3339};
}

/// What the request path knows about one request when it audits it.
pub struct AuditContext<'a> {
    /// The request as the core sees it (operation, path, data, client address).
    pub request: &'a Request,
    /// The authenticated token, when authentication succeeded.
    pub token: Option<&'a TokenEntry>,
    /// The mount that handles the path, if any.
    pub mount: Option<&'a MountEntry>,
    /// The policies the token's entity and its groups add (identity), as
    /// resolved for this request; empty without an entity.
    pub identity_policies: Vec<String>,
    /// What the ACL decided (Vault's `auth.policy_results`).
    pub policy: PolicyResults,
}

/// What the ACL decided for a request, as Vault's audit entries show it in
/// `auth.policy_results`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PolicyResults {
    /// The request never reached the ACL (no valid token, an unroutable
    /// path): the entry carries no `policy_results`.
    #[default]
    NotJudged,
    /// Allowed, by the policies named (none for a route that needs no
    /// token, or one its handler judges, such as a login).
    Allowed(Vec<Arc<str>>),
    /// Refused by the ACL.
    Denied,
}

impl PolicyResults {
    /// The `policy_results` object, or `None` when the ACL never judged.
    pub fn to_json(&self) -> Option<Value> {
        match self {
            PolicyResults::NotJudged => None,
            PolicyResults::Denied => Some(json!({"allowed": false})),
            PolicyResults::Allowed(names) if names.is_empty() => Some(json!({"allowed": true})),
            PolicyResults::Allowed(names) => {
                let granting: Vec<Value> = names
                    .iter()
                    .map(|n| json!({"name": &**n, "namespace_id": "root", "type": "acl"}))
                    .collect();
                Some(json!({"allowed": true, "granting_policies": granting}))
            }
        }
    }
}

/// The device table, in the broker's view.
const CONFIG_KEY: &str = "config";
/// Its storage key (the broker's view is `sys/audit/`), which the change
/// log names when another node enables or disables a device.
pub const CONFIG_STORAGE_KEY: &str = "sys/audit/config";
const SIGNING_KEY: &str = "signing-key";

/// A device to enable, as `sys/audit/:path` describes it.
#[derive(Debug, Clone)]
pub struct NewDevice {
    /// One of [`config::TYPES`].
    pub kind: String,
    /// Free text.
    pub description: String,
    /// Options as given (strings); see [`config::Options`] and the sink's.
    pub options: BTreeMap<String, String>,
    /// Vault's `local` flag.
    pub local: bool,
}

/// Why a UDP device cannot be the only one.
const UDP_ALONE: &str = "a UDP socket device is best effort (a datagram goes out whether or not \
     anyone receives it) and cannot be the only audit device: enable a file, TCP socket or \
     syslog device first";

/// Dispatches audit entries to the enabled devices.
pub struct AuditBroker {
    view: View,
    devices: RwLock<Vec<Arc<Writer>>>,
    signer: RwLock<Option<Arc<Signer>>>,
    settings: RwLock<AuditSettings>,
    access: access::Recorder,
    readers: readers::ReaderIndex,
    flusher: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Serialises enabling and disabling devices, and header changes.
    admin: tokio::sync::Mutex<()>,
    /// The request headers entries record.
    pub headers: headers::AuditedHeaders,
}

impl AuditBroker {
    /// A broker keeping its configuration in `view`.
    pub fn new(view: View) -> Self {
        AuditBroker {
            view,
            devices: RwLock::new(Vec::new()),
            signer: RwLock::new(None),
            settings: RwLock::new(AuditSettings::default()),
            access: access::Recorder::default(),
            readers: readers::ReaderIndex::default(),
            flusher: Mutex::new(None),
            admin: tokio::sync::Mutex::new(()),
            headers: headers::AuditedHeaders::default(),
        }
    }

    /// Sets the server's audit settings (where file devices may write).
    /// Call before unsealing: devices are built when the core unseals.
    pub fn configure(&self, settings: AuditSettings) {
        *self.settings.write() = settings;
    }

    /// Loads the signing key and the enabled devices after unseal, resumes
    /// each device's chain with a signed checkpoint and records `unsealed`.
    /// A device that cannot write stays enabled and shows as failing; one
    /// the settings no longer allow (a file outside `file_dir`) stays
    /// enabled and refuses every entry, so requests fail closed.
    pub async fn load(&self) -> Result<()> {
        let signer = Arc::new(self.load_signer().await?);
        *self.signer.write() = Some(signer.clone());
        self.headers.load(&self.view).await?;
        let mut devices = Vec::new();
        for cfg in self.stored_configs().await? {
            devices.push(self.open_device(cfg, &signer).await?);
        }
        *self.devices.write() = devices;
        let _ = self.event(events::names::UNSEALED, None, json!({})).await;
        let recorder = self.access.clone();
        let readers = self.readers.clone();
        let view = self.view.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(access::FLUSH_INTERVAL).await;
                if let Err(e) = recorder.flush(&view).await {
                    tracing::warn!(error = %e, "access records not saved; retrying");
                }
                if let Err(e) = readers.flush(&view).await {
                    tracing::warn!(error = %e, "reader index not saved; retrying");
                }
            }
        });
        if let Some(old) = self.flusher.lock().replace(task) {
            old.abort();
        }
        Ok(())
    }

    /// Builds and starts the stored device `cfg` on this node, its chain
    /// resumed with a signed checkpoint. A device that cannot load or write
    /// is an error: the caller refuses to serve rather than serve unaudited.
    async fn open_device(&self, cfg: DeviceConfig, signer: &Arc<Signer>) -> Result<Arc<Writer>> {
        let path = cfg.path.clone();
        let settings = self.settings.read().clone();
        let stored: Option<ChainState> = self.view.get_json(&state_key(&path)).await?;
        // Opening the file and reading its last line block: off the runtime.
        let built = tokio::task::spawn_blocking(move || build_device(cfg, stored, &settings))
            .await
            .map_err(|_| Error::Stopped("the audit device loader"))?;
        // A configured device that cannot load fails the unseal: the core
        // never serves requests its operator meant to be audited unaudited.
        let dev = built.map_err(|e| {
            tracing::error!(device = %path, error = %e, "audit device not loaded");
            Error::Status {
                code: 500,
                errors: vec![format!(
                    "audit device {path} could not be loaded; the unseal is refused until it can: {e}"
                )],
            }
        })?;
        let reason = if dev.chain().seq == 0 {
            "start"
        } else {
            "resume"
        };
        let writer = Arc::new(Writer::start(dev)?);
        // The first line proves the device can write; if it cannot, the
        // unseal fails (as Vault's does) rather than serve unaudited.
        let state = writer.checkpoint(reason, signer).await.map_err(|e| {
            tracing::error!(device = %path, error = %e, "audit device cannot write");
            Error::Status {
                code: 500,
                errors: vec![format!(
                    "audit device {path} cannot write; the unseal is refused until it can"
                )],
            }
        })?;
        self.save_state(&path, &state).await;
        Ok(writer)
    }

    /// Reloads the audited request headers another node changed.
    pub async fn follow_headers(&self) -> Result<()> {
        self.headers.load(&self.view).await
    }

    /// Answers `sys/config/auditing/request-headers[/<name>]`.
    pub async fn handle_headers(&self, req: &Request, name: &str) -> Result<Response> {
        self.headers
            .handle(&self.view, &self.admin, req, name)
            .await
    }

    /// Follows the device table another node changed (shared storage):
    /// starts the devices enabled there and closes, with a `disable`
    /// checkpoint, those disabled there, so every node audits to every
    /// enabled device. A device this node cannot open is an error, and the
    /// request that found the change is refused (fail closed) until it can.
    pub async fn follow_config(&self) -> Result<()> {
        let _admin = self.admin.lock().await;
        let Ok(signer) = self.signer() else {
            return Ok(());
        };
        let stored = self.stored_configs().await?;
        let removed: Vec<Arc<Writer>> = {
            let mut devices = self.devices.write();
            let (keep, gone) = std::mem::take(&mut *devices)
                .into_iter()
                .partition(|d| stored.iter().any(|c| c.path == d.config.path));
            *devices = keep;
            gone
        };
        for d in removed {
            let _ = d.checkpoint("disable", &signer).await;
            tracing::info!(device = %d.config.path, "audit device disabled on another node");
        }
        for cfg in stored {
            if self.device(&cfg.path).is_some() {
                continue;
            }
            let path = cfg.path.clone();
            let writer = self.open_device(cfg, &signer).await?;
            self.devices.write().push(writer);
            tracing::info!(device = %path, "audit device enabled on another node");
        }
        Ok(())
    }

    /// On seal (before the barrier closes): records `sealed`, writes a
    /// closing checkpoint on every device, saves chain states, access
    /// records and the reader index, and drops the devices and the key.
    pub async fn clear(&self) {
        if let Some(task) = self.flusher.lock().take() {
            task.abort();
        }
        let _ = self.event(events::names::SEALED, None, json!({})).await;
        let signer = self.signer.read().clone();
        let devices = std::mem::take(&mut *self.devices.write());
        if let Some(signer) = signer {
            for d in &devices {
                if let Ok(state) = d.checkpoint("seal", &signer).await {
                    self.save_state(&d.config.path, &state).await;
                }
            }
        }
        if let Err(e) = self.access.flush(&self.view).await {
            tracing::warn!(error = %e, "access records not saved at seal");
        }
        if let Err(e) = self.readers.flush(&self.view).await {
            tracing::warn!(error = %e, "reader index not saved at seal");
        }
        *self.signer.write() = None;
        self.headers.clear();
    }

    /// Queues a `rotate` checkpoint on every file device and a reopen of
    /// its file: send SIGHUP after moving the log away (log rotation).
    pub fn reopen(&self) {
        let Some(signer) = self.signer.read().clone() else {
            return;
        };
        for d in self.devices.read().iter() {
            d.reopen(&signer);
        }
        tracing::info!("audit files reopened");
    }

    /// The enabled devices as `GET sys/audit` lists them: path → config.
    pub fn device_table(&self) -> Map<String, Value> {
        let mut m = Map::new();
        for d in self.devices.read().iter() {
            m.insert(d.config.path.clone(), d.config.to_json());
        }
        m
    }

    /// Whether a device is enabled at `path` (with its trailing slash).
    pub fn has_device(&self, path: &str) -> bool {
        self.device(path).is_some()
    }

    /// `hmac-sha256:<hex>` of `input` under the salt of the device at
    /// `path` (`sys/audit-hash`), or `None` when no device is there.
    pub fn hmac(&self, path: &str, input: &str) -> Option<String> {
        self.device(path).map(|d| d.hmac(input))
    }

    /// The public key checkpoints are signed with (base64) and its id;
    /// refused while sealed.
    pub fn verify_key(&self) -> Result<(String, String)> {
        let signer = self.signer()?;
        Ok((signer.public_key().to_string(), signer.key_id().to_string()))
    }

    /// Enables `new` at `path` (with its trailing slash): refused when the
    /// path is in use, when the device would be the only one and is best
    /// effort (UDP), or when it cannot write its first line, a `start`
    /// checkpoint. Then stores the device table and starts the device.
    pub async fn enable(&self, path: &str, new: NewDevice) -> Result<()> {
        let _admin = self.admin.lock().await;
        let mut table = self.stored_configs().await?;
        if table.iter().any(|d| d.path == path) {
            return Err(Error::bad(format!("path already in use: {path}")));
        }
        let salt = coffer_crypto::random::bytes(32);
        let cfg = DeviceConfig {
            path: path.to_string(),
            kind: new.kind,
            description: new.description,
            options: new.options,
            local: new.local,
            salt: hex::encode(&salt),
        };
        let settings = self.settings.read().clone();
        let dev = Device::for_server(cfg.clone(), ChainState::default(), &settings)?;
        if dev.best_effort() && !self.devices.read().iter().any(|d| !d.best_effort()) {
            return Err(Error::bad(UDP_ALONE));
        }
        let dev = Writer::start(dev)?;
        // The test entry: a device that cannot write its first line is refused.
        let signer = self.signer()?;
        let state = dev
            .checkpoint("start", &signer)
            .await
            .map_err(|e| Error::bad(format!("audit device {path} cannot write: {}", e)))?;
        let kind = cfg.kind.clone();
        table.push(cfg);
        self.view.put_json(CONFIG_KEY, &table).await?;
        self.save_state(path, &state).await;
        self.devices.write().push(Arc::new(dev));
        tracing::info!(device = %path, kind, "audit device enabled");
        Ok(())
    }

    /// Disables the device at `path` (with its trailing slash) after a
    /// `disable` checkpoint; a path with no device is not an error. Refused
    /// when it would leave only best-effort (UDP) devices.
    pub async fn disable(&self, path: &str) -> Result<()> {
        let _admin = self.admin.lock().await;
        {
            let devices = self.devices.read();
            let leaves_udp_alone = devices
                .iter()
                .find(|d| d.config.path == path)
                .is_some_and(|d| !d.best_effort())
                && devices
                    .iter()
                    .filter(|d| d.config.path != path)
                    .all(|d| d.best_effort())
                && devices.iter().any(|d| d.best_effort());
            if leaves_udp_alone {
                return Err(Error::bad(format!(
                    "disabling {path} would leave only UDP devices, which cannot record requests on \
                     their own: enable another device first, or disable the UDP devices"
                )));
            }
        }
        let mut table = self.stored_configs().await?;
        let before = table.len();
        table.retain(|d| d.path != path);
        if table.len() == before {
            return Ok(());
        }
        self.view.put_json(CONFIG_KEY, &table).await?;
        let removed = {
            let mut devices = self.devices.write();
            let i = devices.iter().position(|d| d.config.path == path);
            i.map(|i| devices.remove(i))
        };
        if let (Some(dev), Ok(signer)) = (removed, self.signer()) {
            let _ = dev.checkpoint("disable", &signer).await;
        }
        self.view.delete(&state_key(path)).await?;
        tracing::info!(device = %path, "audit device disabled");
        Ok(())
    }

    /// Records a request before it is handled. An error refuses the request.
    pub async fn log_request(&self, ctx: &AuditContext<'_>, error: Option<&Error>) -> Result<()> {
        self.write_all(|d| d.renderer().request_entry(ctx, error))
            .await
    }

    /// Records the response (or error) before it is returned, then the
    /// lifecycle event it amounts to, and notes secret reads. An error
    /// replaces the answer: nothing unrecorded reaches the client.
    pub async fn log_response(
        &self,
        ctx: &AuditContext<'_>,
        result: &Result<Response>,
    ) -> Result<()> {
        self.write_all(|d| d.renderer().response_entry(ctx, result))
            .await?;
        if let Some((name, details)) = events::derive(ctx, result) {
            self.write_all(|d| {
                d.renderer()
                    .event_entry(name, ctx.token, Some(ctx), &details)
            })
            .await?;
        }
        if let (Ok(_), Some(token), Some(path)) = (result, ctx.token, secret_read(ctx)) {
            self.access.note(&path, token);
            self.readers
                .note(&path, token, crate::util::now().timestamp());
        }
        Ok(())
    }

    /// Records a lifecycle event (`events::names`) by `actor` with
    /// `details` (names, paths, versions: never secret values). Fails when
    /// devices are enabled and none recorded it.
    pub async fn event(
        &self,
        name: &str,
        actor: Option<&TokenEntry>,
        details: Value,
    ) -> Result<()> {
        self.write_all(|d| d.renderer().event_entry(name, actor, None, &details))
            .await
    }

    /// Writes the entry `build` makes for each device to each device, all
    /// at once, each bounded by its deadline; succeeds when no device is
    /// enabled or at least one device that confirms delivery wrote it. A
    /// UDP device's success does not count: a datagram is sent whether or
    /// not anyone receives it.
    async fn write_all(&self, build: impl Fn(&Device) -> Map<String, Value>) -> Result<()> {
        let devices = self.devices.read().clone();
        if devices.is_empty() {
            return Ok(());
        }
        let Some(signer) = self.signer.read().clone() else {
            return Err(Error::Internal("the audit broker is not loaded".into()));
        };
        let writes = devices.iter().map(|d| {
            let entry = build(d.device());
            let signer = &signer;
            async move { (d, d.write(entry, signer).await) }
        });
        let mut confirmed = 0;
        for (d, result) in futures_util::future::join_all(writes).await {
            let Ok(state) = result else { continue };
            if let Some(state) = state {
                self.save_state(&d.config.path, &state).await;
            }
            if !d.best_effort() {
                confirmed += 1;
            }
        }
        if confirmed == 0 {
            tracing::error!(
                "no audit device that confirms delivery recorded an entry: refusing the request"
            );
            return Err(Error::Audit("no audit device recorded the entry".into()));
        }
        Ok(())
    }

    /// Every enabled device with what it logs and whether its chain
    /// verifies now, for `coffer check` and the plan: a file device's log is
    /// verified as a live log against the broker's signing key (`coffer
    /// audit verify --open`); other devices cannot be read back here and
    /// say so. Sorted by path. Never reads or returns entry contents.
    pub async fn verify_devices(&self) -> Vec<Value> {
        let devices = self.devices.read().clone();
        let public = self.signer.read().clone().and_then(|s| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(s.public_key())
                .ok()
        });
        let mut out = Vec::new();
        for d in devices {
            let dev = d.device();
            let file = dev.file_path();
            let (verified, detail) = match &file {
                Some(path) => verify_live(path.clone(), public.clone()).await,
                None => (
                    Value::Null,
                    format!(
                        "a {} device cannot be read back by the server: verify its copy with `coffer audit verify`",
                        dev.config.kind
                    ),
                ),
            };
            out.push(serde_json::json!({
                "path": dev.config.path,
                "type": dev.config.kind,
                "description": dev.config.description,
                "hmac_accessor": dev.options.hmac_accessor,
                "log_raw": dev.options.log_raw,
                "checkpoint_interval": dev.options.checkpoint_interval,
                "best_effort": dev.best_effort(),
                "verified": verified,
                "verification": detail,
            }));
        }
        out.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
        out
    }

    /// Who read the secret at API path `path` (the access record).
    pub async fn access_record(&self, path: &str) -> Result<Option<access::AccessRecord>> {
        self.access.get(&self.view, path).await
    }

    /// Health of every device, for `sys/health`: `{"<path>": {...}}`.
    pub fn health_json(&self) -> Value {
        let devices = self.devices.read();
        let mut m = Map::new();
        for d in devices.iter() {
            m.insert(d.config.path.clone(), d.health_json());
        }
        Value::Object(m)
    }

    async fn load_signer(&self) -> Result<Signer> {
        if let Some(pkcs8) = self.view.get(SIGNING_KEY).await? {
            return Signer::from_pkcs8(&pkcs8);
        }
        let (signer, pkcs8) = Signer::generate()?;
        self.view.put(SIGNING_KEY, &pkcs8).await?;
        Ok(signer)
    }

    async fn stored_configs(&self) -> Result<Vec<DeviceConfig>> {
        Ok(self.view.get_json(CONFIG_KEY).await?.unwrap_or_default())
    }

    async fn save_state(&self, path: &str, state: &ChainState) {
        if let Err(e) = self.view.put_json(&state_key(path), state).await {
            tracing::warn!(device = %path, error = %e, "audit chain state not saved");
        }
    }

    fn device(&self, path: &str) -> Option<Arc<Writer>> {
        self.devices
            .read()
            .iter()
            .find(|d| d.config.path == path)
            .cloned()
    }

    fn signer(&self) -> Result<Arc<Signer>> {
        self.signer.read().clone().ok_or(Error::Sealed)
    }
}

/// A stored device as the server runs it, its chain resumed where its log
/// ends (the file's last line, else the saved state). A device the
/// settings refuse becomes one that fails every write.
fn build_device(
    cfg: DeviceConfig,
    stored: Option<ChainState>,
    settings: &AuditSettings,
) -> Result<Device> {
    let dev = Device::for_server(cfg, ChainState::default(), settings)?;
    dev.set_chain(dev.chain_from_file().or(stored).unwrap_or_default());
    Ok(dev)
}

/// The storage key of a device's chain state.
fn state_key(path: &str) -> String {
    format!("state/{}", coffer_crypto::hash::sha256_hex(path.as_bytes()))
}

/// The secret a request reads, if it is a KV read (`data/` of KV v2, any
/// key of KV v1): its API path.
fn secret_read(ctx: &AuditContext<'_>) -> Option<String> {
    let m = ctx.mount.filter(|m| m.kind == "kv")?;
    if ctx.request.operation != Operation::Read {
        return None;
    }
    let path = ctx.request.path.as_str();
    let rel = path.strip_prefix(m.path.as_str())?;
    if rel.is_empty() || rel.ends_with('/') {
        return None;
    }
    let v2 = m.options.get("version").map(String::as_str) == Some("2");
    if v2 && !rel.starts_with("data/") {
        return None;
    }
    Some(path.to_string())
}

/// Verifies a live log file off the async runtime; a failure is retried
/// once after a short pause, so a line being written at that moment is not
/// taken for tampering. Returns (verified, a sentence).
async fn verify_live(path: std::path::PathBuf, public: Option<Vec<u8>>) -> (Value, String) {
    let opts = verify::VerifyOptions {
        public_key: public,
        strict: false,
        open: true,
    };
    let mut last = String::new();
    for attempt in 0..2 {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        let (p, o) = (path.clone(), opts.clone());
        let report = tokio::task::spawn_blocking(move || verify::verify_files(&[p], &o)).await;
        match report {
            Ok(Ok(r)) if r.ok() => {
                return (
                    Value::Bool(true),
                    format!(
                        "chain verifies: {} entries, {} signed checkpoints",
                        r.entries, r.checkpoints
                    ),
                )
            }
            Ok(Ok(r)) => {
                last = r
                    .problem
                    .map(|p| format!("chain does not verify: line {}: {}", p.line, p.message))
                    .unwrap_or_else(|| "chain does not verify".into());
            }
            Ok(Err(e)) => last = format!("log cannot be read: {}", e.kind()),
            Err(_) => last = "verification did not finish".into(),
        }
    }
    (Value::Bool(false), last)
}

//! KV version 2: versioned secrets with Vault's semantics.
//!
//! Storage layout inside the mount's view:
//! - `config`: the mount-wide defaults (max_versions, cas_required, delete_version_after);
//! - `metadata/<path>`: a [`KeyMetadata`] per secret (listing walks these);
//! - `versions/<sha256(path)>/<n>`: the data of version `n`.
//!
//! A version's data and its metadata are written in one atomic batch, under a
//! per-path lock, so readers never see one without the other.
//!
//! Every change of a secret is a read-modify-write of its metadata, made
//! conditional on the metadata being as read ([`View::write_batch_if`]): on
//! storage several nodes share, two writers on different nodes that read
//! the same metadata cannot both write (one `cas=N` wins, two plain writes
//! become two versions). The loser reads again and redoes its decision, at
//! most [`coffer_engine::barrier::CONFLICT_ATTEMPTS`] times. The per-path
//! lock keeps writers on one node from conflicting with each other.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::sync::Mutex;

use crate::barrier::{to_json, BarrierOp, EntryVersion, Retry};
use crate::cache::{ParsedCache, WriteGuard};
use crate::engine::{Engine, EngineCtx};
use crate::util::{format_duration, merge_patch, now, rfc3339, Params};
use crate::{Error, Operation, Request, Response, Result};

/// Versions kept when neither the key nor the mount sets a limit.
const DEFAULT_MAX_VERSIONS: u64 = 10;
/// Vault's limits on custom metadata.
const MAX_CUSTOM_KEYS: usize = 64;
const MAX_CUSTOM_KEY_LEN: usize = 128;
const MAX_CUSTOM_VALUE_LEN: usize = 512;
const LOCK_STRIPES: usize = 256;
/// What a write that lost too many races names in its error.
const SECRET: &str = "the secret's metadata";

/// Mount-wide defaults (`config` endpoint).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KvConfig {
    /// Versions kept per key (0: 10).
    #[serde(default)]
    pub max_versions: u64,
    /// Whether every write must carry `cas`.
    #[serde(default)]
    pub cas_required: bool,
    /// Seconds after which new versions are soft-deleted (0: never).
    #[serde(default)]
    pub delete_version_after: u64,
    /// Whether every metadata write must carry `cas` (OpenBao's metadata
    /// check-and-set).
    #[serde(default)]
    pub metadata_cas_required: bool,
}

/// Metadata of one version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionMeta {
    /// When the version was written.
    pub created_time: DateTime<Utc>,
    /// When it was (or will be) soft-deleted.
    #[serde(default)]
    pub deletion_time: Option<DateTime<Utc>>,
    /// Whether its data was destroyed.
    #[serde(default)]
    pub destroyed: bool,
}

impl VersionMeta {
    /// Whether the version reads as deleted at `at`.
    fn is_deleted(&self, at: &DateTime<Utc>) -> bool {
        self.deletion_time.is_some_and(|t| t <= *at)
    }

    fn to_json(&self, version: u64, custom: &Value) -> Value {
        json!({
            "created_time": rfc3339(&self.created_time),
            "custom_metadata": custom,
            "deletion_time": self.deletion_time.as_ref().map(rfc3339).unwrap_or_default(),
            "destroyed": self.destroyed,
            "version": version,
        })
    }
}

/// Metadata of one secret: its versions and settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyMetadata {
    /// Versions still known, by number.
    pub versions: BTreeMap<u64, VersionMeta>,
    /// The latest version number (0 before the first write).
    pub current_version: u64,
    /// The oldest version kept, once pruning has happened (0 before).
    pub oldest_version: u64,
    /// When the metadata was created.
    pub created_time: DateTime<Utc>,
    /// When it last changed.
    pub updated_time: DateTime<Utc>,
    /// Versions kept for this key (0: mount default).
    pub max_versions: u64,
    /// Whether writes to this key must carry `cas`.
    pub cas_required: bool,
    /// Seconds after which new versions are soft-deleted (0: mount default).
    pub delete_version_after: u64,
    /// Metadata writes so far (data writes do not count): what a metadata
    /// write's `cas` must name.
    #[serde(default)]
    pub current_metadata_version: u64,
    /// Whether metadata writes to this key must carry `cas`.
    #[serde(default)]
    pub metadata_cas_required: bool,
    /// User-supplied string pairs.
    #[serde(default)]
    pub custom_metadata: Option<BTreeMap<String, String>>,
    /// Rotation stage labels (`current`, `previous`, `pending`) and the
    /// versions they sit on. Empty until a staged rotation first runs; then a
    /// plain read returns the `current` version, not the latest.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stages: BTreeMap<String, u64>,
}

impl KeyMetadata {
    fn new(at: DateTime<Utc>) -> Self {
        KeyMetadata {
            versions: BTreeMap::new(),
            current_version: 0,
            oldest_version: 0,
            created_time: at,
            updated_time: at,
            max_versions: 0,
            cas_required: false,
            delete_version_after: 0,
            current_metadata_version: 0,
            metadata_cas_required: false,
            custom_metadata: None,
            stages: BTreeMap::new(),
        }
    }

    /// The version a plain read returns: the `current` stage if staged
    /// rotation has labelled one, else the latest.
    pub fn effective_current(&self) -> u64 {
        self.stages
            .get("current")
            .copied()
            .unwrap_or(self.current_version)
    }

    fn labels_of(&self, version: u64) -> Vec<&str> {
        self.stages
            .iter()
            .filter(|(_, v)| **v == version)
            .map(|(k, _)| k.as_str())
            .collect()
    }

    fn custom_json(&self) -> Value {
        match &self.custom_metadata {
            Some(m) => json!(m),
            None => Value::Null,
        }
    }

    fn to_json(&self) -> Value {
        let custom = self.custom_json();
        let versions: Map<String, Value> = self
            .versions
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    json!({
                        "created_time": rfc3339(&v.created_time),
                        "deletion_time": v.deletion_time.as_ref().map(rfc3339).unwrap_or_default(),
                        "destroyed": v.destroyed,
                    }),
                )
            })
            .collect();
        let mut out = json!({
            "cas_required": self.cas_required,
            "created_time": rfc3339(&self.created_time),
            "current_metadata_version": self.current_metadata_version,
            "current_version": self.current_version,
            "custom_metadata": custom,
            "delete_version_after": format_duration(self.delete_version_after),
            "max_versions": self.max_versions,
            "metadata_cas_required": self.metadata_cas_required,
            "oldest_version": self.oldest_version,
            "updated_time": rfc3339(&self.updated_time),
            "versions": versions,
        });
        if !self.stages.is_empty() {
            out["stages"] = json!(self.stages);
            if let Value::Object(vs) = &mut out["versions"] {
                for (n, v) in vs.iter_mut() {
                    if let Ok(n) = n.parse::<u64>() {
                        let labels = self.labels_of(n);
                        if !labels.is_empty() {
                            v["stages"] = json!(labels);
                        }
                    }
                }
            }
        }
        out
    }
}

/// The answer to a path that is no KV v2 endpoint (`<mount>/nonsense/x`),
/// as Vault and OpenBao give it: 404 with a warning and no `errors`.
fn invalid_path() -> Response {
    let mut r = bare_status(404);
    r.warnings.push(
        "Invalid path for a versioned K/V secrets engine. See the API docs for the \
         appropriate API endpoints to use. If using the Vault CLI, use 'vault kv get' \
         for this operation."
            .into(),
    );
    r
}

/// An answer of only a status code (no body unless warnings are added).
fn bare_status(code: u16) -> Response {
    let mut r = Response::empty();
    r.status = Some(code);
    r
}

/// OpenBao's metadata check-and-set: only with `metadata_cas_required` (on
/// the mount or the key) must a metadata write carry `cas`, equal to the
/// key's `current_metadata_version` (0 for a new key); otherwise, as in
/// OpenBao, a `cas` on a metadata write is not checked.
fn check_metadata_cas(config: &KvConfig, meta: &KeyMetadata, cas: Option<u64>) -> Result<()> {
    if !(config.metadata_cas_required || meta.metadata_cas_required) {
        return Ok(());
    }
    match cas {
        None => Err(Error::bad(
            "check-and-set parameter required for this metadata write",
        )),
        Some(c) if c != meta.current_metadata_version => Err(Error::bad(
            "check-and-set parameter did not match the current metadata version",
        )),
        Some(_) => Ok(()),
    }
}

/// The KV v2 engine of one mount.
pub struct KvV2 {
    locks: Vec<Mutex<()>>,
    /// Parsed metadata by path (no secret values: versions, times, settings).
    meta_cache: ParsedCache<KeyMetadata>,
}

impl Default for KvV2 {
    fn default() -> Self {
        Self::new()
    }
}

fn meta_key(path: &str) -> String {
    format!("metadata/{path}")
}

fn version_key(path: &str, version: u64) -> String {
    format!("{}{version}", version_prefix(path))
}

fn version_prefix(path: &str) -> String {
    format!(
        "versions/{}/",
        coffer_crypto::hash::sha256_hex(path.as_bytes())
    )
}

/// The sub-endpoints of a KV v2 mount.
enum Endpoint<'a> {
    Config,
    Data(&'a str),
    Metadata(&'a str),
    Delete(&'a str),
    Undelete(&'a str),
    Destroy(&'a str),
    Subkeys(&'a str),
}

fn parse_endpoint(path: &str) -> Result<Endpoint<'_>> {
    if path == "config" {
        return Ok(Endpoint::Config);
    }
    let (head, rest) = path.split_once('/').unwrap_or((path, ""));
    let ep = match head {
        "data" => Endpoint::Data(rest),
        "metadata" => return Ok(Endpoint::Metadata(rest)),
        "delete" => Endpoint::Delete(rest),
        "undelete" => Endpoint::Undelete(rest),
        "destroy" => Endpoint::Destroy(rest),
        "subkeys" => Endpoint::Subkeys(rest),
        _ => return Err(Error::NotFound),
    };
    if rest.is_empty() || rest.ends_with('/') {
        return Err(Error::UnsupportedOperation);
    }
    Ok(ep)
}

impl KvV2 {
    /// A new engine instance.
    pub fn new() -> Self {
        KvV2 {
            locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            meta_cache: ParsedCache::default(),
        }
    }

    fn lock_for(&self, path: &str) -> &Mutex<()> {
        let h = coffer_crypto::hash::sha256(path.as_bytes());
        &self.locks[usize::from(h[0]) % LOCK_STRIPES]
    }

    async fn config(ctx: &EngineCtx<'_>) -> Result<KvConfig> {
        Ok(ctx.view.get_json("config").await?.unwrap_or_default())
    }

    /// The metadata of `path`, parsed once and cached until the next write.
    async fn metadata(&self, ctx: &EngineCtx<'_>, path: &str) -> Result<Option<KeyMetadata>> {
        if let Some(m) = self.meta_cache.get(path) {
            return Ok(Some((*m).clone()));
        }
        let epoch = self.meta_cache.epoch();
        let meta: Option<KeyMetadata> = ctx.view.get_json(&meta_key(path)).await?;
        if let Some(m) = &meta {
            self.meta_cache
                .fill(path, std::sync::Arc::new(m.clone()), epoch);
        }
        Ok(meta)
    }

    /// The metadata of `path` with the state it was in, for a conditional
    /// write of it (never from the parsed cache; the barrier's cache may
    /// answer, and a stale answer only costs one failed attempt).
    async fn metadata_for_write(
        &self,
        ctx: &EngineCtx<'_>,
        path: &str,
    ) -> Result<(Option<KeyMetadata>, EntryVersion)> {
        ctx.view.get_json_versioned(&meta_key(path)).await
    }

    /// Writes `meta` (and `ops`) if the metadata of `path` is still in the
    /// state `read`.
    async fn commit_meta(
        ctx: &EngineCtx<'_>,
        path: &str,
        read: EntryVersion,
        meta: &KeyMetadata,
        mut ops: Vec<BarrierOp>,
    ) -> Result<bool> {
        ops.push(BarrierOp::Put(meta_key(path), to_json(meta)?));
        ctx.view
            .write_batch_if(vec![(meta_key(path), read)], ops)
            .await
    }

    /// Serialises writers of `path` and keeps readers off the cached
    /// metadata until the write is done.
    async fn write_lock(
        &self,
        path: &str,
    ) -> (tokio::sync::MutexGuard<'_, ()>, WriteGuard<'_, KeyMetadata>) {
        let lock = self.lock_for(path).lock().await;
        (lock, self.meta_cache.begin_write(path))
    }

    async fn read_data(&self, ctx: &EngineCtx<'_>, req: &Request, path: &str) -> Result<Response> {
        let p = Params(&req.data);
        let meta = self.metadata(ctx, path).await?.ok_or(Error::NotFound)?;
        let version = match (p.u64("version")?, p.str("stage")?) {
            (Some(v), _) if v > 0 => v,
            (_, Some(stage)) if !stage.is_empty() => match stage {
                "current" => meta.effective_current(),
                other => *meta.stages.get(other).ok_or(Error::NotFound)?,
            },
            _ => meta.effective_current(),
        };
        let vmeta = meta.versions.get(&version).ok_or(Error::NotFound)?;
        let mut meta_json = vmeta.to_json(version, &meta.custom_json());
        let labels = meta.labels_of(version);
        if !labels.is_empty() {
            meta_json["stages"] = json!(labels);
        }
        if vmeta.destroyed || vmeta.is_deleted(&now()) {
            return Ok(
                Response::data(json!({"data": null, "metadata": meta_json})).with_status(404)
            );
        }
        let data: Value = ctx
            .view
            .get_json(&version_key(path, version))
            .await?
            .ok_or(Error::NotFound)?;
        Ok(Response::data(json!({"data": data, "metadata": meta_json})))
    }

    /// Writes `data` as a new version, after the check-and-set rules,
    /// if the metadata (`meta`, read in state `read`) is unchanged; `None`
    /// when another writer changed it first.
    #[allow(clippy::too_many_arguments)]
    async fn write_version(
        &self,
        ctx: &EngineCtx<'_>,
        path: &str,
        meta: Option<KeyMetadata>,
        read: EntryVersion,
        data: &Value,
        cas: Option<u64>,
        pending: bool,
    ) -> Result<Option<Response>> {
        let config = Self::config(ctx).await?;
        let at = now();
        let mut meta = meta.unwrap_or_else(|| KeyMetadata::new(at));
        if (config.cas_required || meta.cas_required) && cas.is_none() {
            return Err(Error::bad("check-and-set parameter required for this call"));
        }
        if let Some(cas) = cas {
            if cas != meta.current_version {
                return Err(Error::bad(
                    "check-and-set parameter did not match the current version",
                ));
            }
        }
        let version = meta.current_version + 1;
        let dva = if meta.delete_version_after > 0 {
            meta.delete_version_after
        } else {
            config.delete_version_after
        };
        let vmeta = VersionMeta {
            created_time: at,
            deletion_time: (dva > 0)
                .then(|| at + Duration::seconds(i64::try_from(dva).unwrap_or(i64::MAX / 2))),
            destroyed: false,
        };
        meta.versions.insert(version, vmeta.clone());
        if pending {
            let current = meta.effective_current();
            if current > 0 {
                meta.stages.insert("current".into(), current);
            }
            meta.stages.insert("pending".into(), version);
        } else if !meta.stages.is_empty() {
            let previous = meta.effective_current();
            meta.stages.insert("previous".into(), previous);
            meta.stages.insert("current".into(), version);
        }
        meta.current_version = version;
        meta.updated_time = at;
        let mut ops = vec![BarrierOp::Put(version_key(path, version), to_json(data)?)];
        let max = [meta.max_versions, config.max_versions, DEFAULT_MAX_VERSIONS]
            .into_iter()
            .find(|m| *m > 0)
            .unwrap_or(DEFAULT_MAX_VERSIONS);
        while meta.versions.len() as u64 > max {
            // The oldest version without a stage label goes; labelled ones stay.
            let labelled: Vec<u64> = meta.stages.values().copied().collect();
            let Some(old) = meta
                .versions
                .keys()
                .copied()
                .find(|v| !labelled.contains(v))
            else {
                break;
            };
            meta.versions.remove(&old);
            ops.push(BarrierOp::Delete(version_key(path, old)));
            meta.oldest_version = meta.versions.keys().next().copied().unwrap_or(0);
        }
        if !Self::commit_meta(ctx, path, read, &meta, ops).await? {
            return Ok(None);
        }
        Ok(Some(Response::data(
            vmeta.to_json(version, &meta.custom_json()),
        )))
    }

    async fn put_data(&self, ctx: &EngineCtx<'_>, req: &Request, path: &str) -> Result<Response> {
        let (data, cas) = data_and_cas(req)?;
        let mut retry = Retry::new(SECRET);
        loop {
            retry.attempt().await?;
            // Per attempt: the pause after a conflict holds no lock.
            let _guard = self.write_lock(path).await;
            let (meta, read) = self.metadata_for_write(ctx, path).await?;
            if let Some(r) = self
                .write_version(ctx, path, meta, read, data, cas, false)
                .await?
            {
                return Ok(r);
            }
        }
    }

    async fn patch_data(&self, ctx: &EngineCtx<'_>, req: &Request, path: &str) -> Result<Response> {
        let (patch, cas) = data_and_cas(req)?;
        let mut retry = Retry::new(SECRET);
        loop {
            retry.attempt().await?;
            // Per attempt: the pause after a conflict holds no lock.
            let _guard = self.write_lock(path).await;
            // A key never written: a bare 404, as Vault and OpenBao answer (a
            // deleted or destroyed latest version is a 404 with `errors`).
            let (Some(meta), read) = self.metadata_for_write(ctx, path).await? else {
                return Ok(bare_status(404));
            };
            let base = meta.effective_current();
            let current = meta.versions.get(&base).ok_or(Error::NotFound)?;
            if current.destroyed || current.is_deleted(&now()) {
                // 404 carrying the version's metadata, as Vault and OpenBao answer.
                let mut r = bare_status(404);
                r.data = Some(current.to_json(base, &meta.custom_json()));
                return Ok(r);
            }
            let mut data: Value = ctx
                .view
                .get_json(&version_key(path, base))
                .await?
                .ok_or(Error::NotFound)?;
            merge_patch(&mut data, patch);
            let result = self
                .write_version(ctx, path, Some(meta), read, &data, cas, false)
                .await;
            zeroize_value(&mut data);
            if let Some(r) = result? {
                return Ok(r);
            }
        }
    }

    async fn delete_latest(&self, ctx: &EngineCtx<'_>, path: &str) -> Result<Response> {
        let mut retry = Retry::new(SECRET);
        loop {
            retry.attempt().await?;
            // Per attempt: the pause after a conflict holds no lock.
            let _guard = self.write_lock(path).await;
            let (Some(mut meta), read) = self.metadata_for_write(ctx, path).await? else {
                return Ok(Response::empty());
            };
            let at = now();
            let current = meta.current_version;
            let Some(v) = meta.versions.get_mut(&current) else {
                return Ok(Response::empty());
            };
            if v.destroyed || v.is_deleted(&at) {
                return Ok(Response::empty());
            }
            v.deletion_time = Some(at);
            meta.updated_time = at;
            if Self::commit_meta(ctx, path, read, &meta, Vec::new()).await? {
                return Ok(Response::empty());
            }
        }
    }

    /// delete/, undelete/ and destroy/ with a `versions` list.
    async fn change_versions(
        &self,
        ctx: &EngineCtx<'_>,
        req: &Request,
        path: &str,
        action: VersionAction,
    ) -> Result<Response> {
        let versions = Params(&req.data)
            .u64_list("versions")?
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Error::bad("no version number provided"))?;
        let mut retry = Retry::new(SECRET);
        loop {
            retry.attempt().await?;
            // Per attempt: the pause after a conflict holds no lock.
            let _guard = self.write_lock(path).await;
            let (Some(meta), read) = self.metadata_for_write(ctx, path).await? else {
                return Ok(Response::empty());
            };
            if Self::apply_version_action(ctx, path, meta, read, &versions, action).await? {
                return Ok(Response::empty());
            }
        }
    }

    /// One attempt of [`KvV2::change_versions`]: whether it was written.
    async fn apply_version_action(
        ctx: &EngineCtx<'_>,
        path: &str,
        mut meta: KeyMetadata,
        read: EntryVersion,
        versions: &[u64],
        action: VersionAction,
    ) -> Result<bool> {
        let at = now();
        let mut ops = Vec::new();
        for &n in versions {
            let Some(v) = meta.versions.get_mut(&n) else {
                continue;
            };
            match action {
                VersionAction::Delete => {
                    if !v.destroyed && !v.is_deleted(&at) {
                        v.deletion_time = Some(at);
                    }
                }
                VersionAction::Undelete => {
                    if !v.destroyed {
                        v.deletion_time = None;
                    }
                }
                VersionAction::Destroy => {
                    if !v.destroyed {
                        v.destroyed = true;
                        ops.push(BarrierOp::Delete(version_key(path, n)));
                    }
                }
            }
        }
        meta.updated_time = at;
        Self::commit_meta(ctx, path, read, &meta, ops).await
    }

    async fn read_subkeys(
        &self,
        ctx: &EngineCtx<'_>,
        req: &Request,
        path: &str,
    ) -> Result<Response> {
        let depth = Params(&req.data).u64("depth")?.unwrap_or(0);
        let resp = self.read_data(ctx, req, path).await?;
        if resp.status == Some(404) {
            return Ok(resp);
        }
        let mut body = resp.data.unwrap_or(Value::Null);
        let subkeys = subkeys_of(&body["data"], depth, 1);
        zeroize_value(&mut body["data"]);
        Ok(Response::data(json!({
            "subkeys": subkeys,
            "metadata": body["metadata"].take(),
        })))
    }

    async fn write_metadata(
        &self,
        ctx: &EngineCtx<'_>,
        req: &Request,
        path: &str,
        patch: bool,
    ) -> Result<Response> {
        let p = Params(&req.data);
        let max_versions = p.u64("max_versions")?;
        let cas_required = p.bool("cas_required")?;
        let metadata_cas_required = p.bool("metadata_cas_required")?;
        let cas = p.u64("cas")?;
        let dva = p.duration("delete_version_after")?;
        let custom = match req.data.get("custom_metadata") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::Object(m)) => Some(Some(m)),
            Some(_) => return Err(Error::bad("custom_metadata: expected an object")),
        };
        let mut retry = Retry::new(SECRET);
        loop {
            retry.attempt().await?;
            // Per attempt: the pause after a conflict holds no lock.
            let _guard = self.write_lock(path).await;
            let (existing, read) = self.metadata_for_write(ctx, path).await?;
            if patch && existing.is_none() {
                return Err(Error::NotFound);
            }
            let at = now();
            let mut meta = existing.unwrap_or_else(|| KeyMetadata::new(at));
            let config = Self::config(ctx).await?;
            check_metadata_cas(&config, &meta, cas)?;
            if let Some(m) = max_versions {
                meta.max_versions = m;
            }
            if let Some(c) = cas_required {
                meta.cas_required = c;
            }
            if let Some(c) = metadata_cas_required {
                meta.metadata_cas_required = c;
            }
            if let Some(d) = dva {
                meta.delete_version_after = d;
            }
            match custom {
                None => {}
                Some(None) => meta.custom_metadata = None,
                Some(Some(m)) => {
                    let mut merged = if patch {
                        meta.custom_metadata.clone().unwrap_or_default()
                    } else {
                        BTreeMap::new()
                    };
                    for (k, v) in m {
                        match v {
                            Value::String(s) => {
                                merged.insert(k.clone(), s.clone());
                            }
                            // Vault's weak decoding: numbers keep their text,
                            // booleans become "1" and "0" (as OpenBao stores them).
                            Value::Number(n) => {
                                merged.insert(k.clone(), n.to_string());
                            }
                            Value::Bool(b) => {
                                merged.insert(k.clone(), if *b { "1" } else { "0" }.to_string());
                            }
                            Value::Null if patch => {
                                merged.remove(k);
                            }
                            _ => {
                                return Err(Error::bad(format!(
                                    "custom_metadata: value of key {k:?} must be a string"
                                )))
                            }
                        }
                    }
                    validate_custom(&merged)?;
                    meta.custom_metadata = Some(merged);
                }
            }
            meta.updated_time = at;
            meta.current_metadata_version += 1;
            if Self::commit_meta(ctx, path, read, &meta, Vec::new()).await? {
                return Ok(Response::empty());
            }
        }
    }

    async fn delete_metadata(&self, ctx: &EngineCtx<'_>, path: &str) -> Result<Response> {
        let mut retry = Retry::new(SECRET);
        loop {
            retry.attempt().await?;
            // Per attempt: the pause after a conflict holds no lock.
            let _guard = self.write_lock(path).await;
            // Conditional too: a version written meanwhile on another node
            // is deleted with the rest, never left behind.
            let (_, read) = self.metadata_for_write(ctx, path).await?;
            let mut ops: Vec<BarrierOp> = ctx
                .view
                .keys_with_prefix(&version_prefix(path))
                .await?
                .into_iter()
                .map(BarrierOp::Delete)
                .collect();
            ops.push(BarrierOp::Delete(meta_key(path)));
            if ctx
                .view
                .write_batch_if(vec![(meta_key(path), read)], ops)
                .await?
            {
                return Ok(Response::empty());
            }
        }
    }

    async fn config_endpoint(&self, ctx: &EngineCtx<'_>, req: &Request) -> Result<Response> {
        match req.operation {
            Operation::Read => {
                let c = Self::config(ctx).await?;
                Ok(Response::data(json!({
                    "cas_required": c.cas_required,
                    "delete_version_after": format_duration(c.delete_version_after),
                    "max_versions": c.max_versions,
                    "metadata_cas_required": c.metadata_cas_required,
                })))
            }
            Operation::Create | Operation::Update => {
                let p = Params(&req.data);
                let max_versions = p.u64("max_versions")?;
                let cas_required = p.bool("cas_required")?;
                let metadata_cas_required = p.bool("metadata_cas_required")?;
                let dva = p.duration("delete_version_after")?;
                let mut retry = Retry::new("the mount's configuration");
                loop {
                    retry.attempt().await?;
                    let (c, read) = ctx.view.get_json_versioned::<KvConfig>("config").await?;
                    let mut c = c.unwrap_or_default();
                    if let Some(m) = max_versions {
                        c.max_versions = m;
                    }
                    if let Some(b) = cas_required {
                        c.cas_required = b;
                    }
                    if let Some(b) = metadata_cas_required {
                        c.metadata_cas_required = b;
                    }
                    if let Some(d) = dva {
                        c.delete_version_after = d;
                    }
                    let op = BarrierOp::Put("config".into(), to_json(&c)?);
                    if ctx
                        .view
                        .write_batch_if(vec![("config".into(), read)], vec![op])
                        .await?
                    {
                        return Ok(Response::empty());
                    }
                }
            }
            _ => Err(Error::UnsupportedOperation),
        }
    }
}

/// Staged writes for rotation: a pending version beside the current one,
/// then promotion or discard. Each takes the same per-path lock as writes.
impl KvV2 {
    /// Reads the version carrying `stage` (`None`: what a plain read returns).
    pub async fn read_stage(
        &self,
        ctx: &EngineCtx<'_>,
        path: &str,
        stage: Option<&str>,
    ) -> Result<Option<(u64, Value)>> {
        let Some(meta) = self.metadata(ctx, path).await? else {
            return Ok(None);
        };
        let version = match stage {
            None | Some("current") => meta.effective_current(),
            Some(s) => match meta.stages.get(s) {
                Some(v) => *v,
                None => return Ok(None),
            },
        };
        let Some(vm) = meta.versions.get(&version) else {
            return Ok(None);
        };
        if vm.destroyed || vm.is_deleted(&now()) {
            return Ok(None);
        }
        let data: Option<Value> = ctx.view.get_json(&version_key(path, version)).await?;
        Ok(data.map(|d| (version, d)))
    }

    /// For a rotation's start: the latest version number (the check-and-set
    /// value of its pending write; 0 when the key is new) and what a plain
    /// read returns, from one metadata read.
    pub async fn read_for_rotation(
        &self,
        ctx: &EngineCtx<'_>,
        path: &str,
    ) -> Result<(u64, Option<(u64, Value)>)> {
        let Some(meta) = self.metadata(ctx, path).await? else {
            return Ok((0, None));
        };
        let version = meta.effective_current();
        let live = meta
            .versions
            .get(&version)
            .is_some_and(|vm| !vm.destroyed && !vm.is_deleted(&now()));
        let data: Option<Value> = if live {
            ctx.view.get_json(&version_key(path, version)).await?
        } else {
            None
        };
        Ok((meta.current_version, data.map(|d| (version, d))))
    }

    /// The latest version written to `path` (a pending one included);
    /// `None` when there is no such secret.
    pub async fn latest_version(&self, ctx: &EngineCtx<'_>, path: &str) -> Result<Option<u64>> {
        Ok(self.metadata(ctx, path).await?.map(|m| m.current_version))
    }

    /// The stage labels of `path`.
    pub async fn stages(&self, ctx: &EngineCtx<'_>, path: &str) -> Result<BTreeMap<String, u64>> {
        Ok(self
            .metadata(ctx, path)
            .await?
            .map(|m| m.stages)
            .unwrap_or_default())
    }

    /// Writes `data` as a new version labelled `pending`; the current label
    /// stays where it was, so readers keep getting the current value. The
    /// write is a check-and-set against `cas` (the latest version when the
    /// rotation started), so it satisfies `cas_required` and never lands on
    /// top of a write it did not see.
    pub async fn write_pending(
        &self,
        ctx: &EngineCtx<'_>,
        path: &str,
        data: &Value,
        cas: u64,
    ) -> Result<u64> {
        let mut retry = Retry::new(SECRET);
        let resp = loop {
            retry.attempt().await?;
            // Per attempt: the pause after a conflict holds no lock.
            let _guard = self.write_lock(path).await;
            let (meta, read) = self.metadata_for_write(ctx, path).await?;
            if meta
                .as_ref()
                .is_some_and(|m| m.stages.contains_key("pending"))
            {
                return Err(Error::Status {
                    code: 409,
                    errors: vec![format!("a rotation of {path} is already in flight")],
                });
            }
            if meta.as_ref().map_or(0, |m| m.current_version) != cas {
                return Err(Error::bad(
                    "the secret was written during the rotation (check-and-set failed); \
                     the rotation was rolled back",
                ));
            }
            if let Some(r) = self
                .write_version(ctx, path, meta, read, data, Some(cas), true)
                .await?
            {
                break r;
            }
        };
        resp.data
            .as_ref()
            .and_then(|d| d["version"].as_u64())
            .ok_or_else(|| Error::Internal("pending version missing".into()))
    }

    /// Moves `current` to the pending version and `previous` to the old
    /// current. Fails if the pending version is not `expected`.
    pub async fn promote_pending(
        &self,
        ctx: &EngineCtx<'_>,
        path: &str,
        expected: u64,
    ) -> Result<(u64, u64)> {
        let mut retry = Retry::new(SECRET);
        loop {
            retry.attempt().await?;
            // Per attempt: the pause after a conflict holds no lock.
            let _guard = self.write_lock(path).await;
            let (meta, read) = self.metadata_for_write(ctx, path).await?;
            let mut meta = meta.ok_or(Error::NotFound)?;
            if meta.stages.get("pending") != Some(&expected) {
                return Err(Error::bad("the pending version changed during rotation"));
            }
            if meta.current_version != expected {
                return Err(Error::bad(
                    "the secret was written during the rotation; the rotation was rolled back",
                ));
            }
            let old = meta.effective_current();
            meta.stages.remove("pending");
            meta.stages.insert("previous".into(), old);
            meta.stages.insert("current".into(), expected);
            meta.updated_time = now();
            if Self::commit_meta(ctx, path, read, &meta, Vec::new()).await? {
                return Ok((old, expected));
            }
        }
    }

    /// Destroys the pending version and removes its label (rollback).
    pub async fn discard_pending(&self, ctx: &EngineCtx<'_>, path: &str) -> Result<Option<u64>> {
        let mut retry = Retry::new(SECRET);
        loop {
            retry.attempt().await?;
            // Per attempt: the pause after a conflict holds no lock.
            let _guard = self.write_lock(path).await;
            let (Some(mut meta), read) = self.metadata_for_write(ctx, path).await? else {
                return Ok(None);
            };
            let Some(pending) = meta.stages.remove("pending") else {
                return Ok(None);
            };
            if let Some(v) = meta.versions.get_mut(&pending) {
                v.destroyed = true;
            }
            meta.updated_time = now();
            let ops = vec![BarrierOp::Delete(version_key(path, pending))];
            if Self::commit_meta(ctx, path, read, &meta, ops).await? {
                return Ok(Some(pending));
            }
        }
    }
}

/// The `data` object and the `options.cas` of a write or patch.
fn data_and_cas(req: &Request) -> Result<(&Value, Option<u64>)> {
    let data = match req.data.get("data") {
        Some(v @ Value::Object(_)) => v,
        None | Some(Value::Null) => return Err(Error::bad("no data provided")),
        Some(_) => return Err(Error::bad("data: expected a JSON object")),
    };
    let cas = match Params(&req.data).object("options")? {
        Some(o) => Params(o).u64("cas")?,
        None => None,
    };
    Ok((data, cas))
}

#[derive(Clone, Copy)]
enum VersionAction {
    Delete,
    Undelete,
    Destroy,
}

fn validate_custom(m: &BTreeMap<String, String>) -> Result<()> {
    if m.len() > MAX_CUSTOM_KEYS {
        return Err(Error::bad(format!(
            "custom_metadata: at most {MAX_CUSTOM_KEYS} keys are allowed"
        )));
    }
    for (k, v) in m {
        if k.is_empty() || k.len() > MAX_CUSTOM_KEY_LEN {
            return Err(Error::bad(format!(
                "custom_metadata: keys must be 1 to {MAX_CUSTOM_KEY_LEN} bytes"
            )));
        }
        if v.len() > MAX_CUSTOM_VALUE_LEN {
            return Err(Error::bad(format!(
                "custom_metadata: the value of key {k:?} exceeds {MAX_CUSTOM_VALUE_LEN} bytes"
            )));
        }
    }
    Ok(())
}

/// The structure of `data` with every leaf replaced by null, to `depth` levels (0: all).
fn subkeys_of(data: &Value, depth: u64, level: u64) -> Value {
    match data {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let inner = if v.is_object() && (depth == 0 || level < depth) {
                        subkeys_of(v, depth, level + 1)
                    } else {
                        Value::Null
                    };
                    (k.clone(), inner)
                })
                .collect(),
        ),
        _ => Value::Null,
    }
}

/// Overwrites the strings of a JSON value before it is dropped.
fn zeroize_value(v: &mut Value) {
    match v {
        Value::String(s) => zeroize::Zeroize::zeroize(s),
        Value::Array(a) => a.iter_mut().for_each(zeroize_value),
        Value::Object(m) => m.values_mut().for_each(zeroize_value),
        _ => {}
    }
}

#[async_trait]
impl Engine for KvV2 {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn changed_elsewhere(&self, key: &str) {
        if let Some(path) = key.strip_prefix("metadata/") {
            self.meta_cache.invalidate(path);
        }
    }

    async fn exists(
        &self,
        ctx: &EngineCtx<'_>,
        _req: &Request,
        path: &str,
    ) -> Result<Option<bool>> {
        match parse_endpoint(path) {
            Ok(Endpoint::Data(p)) | Ok(Endpoint::Metadata(p)) if !p.is_empty() => {
                Ok(Some(self.metadata(ctx, p).await?.is_some()))
            }
            Ok(Endpoint::Config) => Ok(Some(true)),
            _ => Ok(None),
        }
    }

    async fn handle(&self, ctx: &EngineCtx<'_>, req: &Request, path: &str) -> Result<Response> {
        use Operation::*;
        let ep = match parse_endpoint(path) {
            Err(Error::NotFound) => return Ok(invalid_path()),
            other => other?,
        };
        match (ep, req.operation) {
            (Endpoint::Config, _) => self.config_endpoint(ctx, req).await,
            (Endpoint::Data(p), Read) => self.read_data(ctx, req, p).await,
            (Endpoint::Data(p), Create | Update) => self.put_data(ctx, req, p).await,
            (Endpoint::Data(p), Patch) => self.patch_data(ctx, req, p).await,
            (Endpoint::Data(p), Delete) => self.delete_latest(ctx, p).await,
            (Endpoint::Metadata(p), List) => {
                let dir = if p.is_empty() || p.ends_with('/') {
                    p.to_string()
                } else {
                    format!("{p}/")
                };
                let (after, limit) = Params(&req.data).page()?;
                Response::list(ctx.view.list_page(&meta_key(&dir), &after, limit).await?)
            }
            (Endpoint::Metadata(p), _) if p.is_empty() || p.ends_with('/') => {
                Err(Error::UnsupportedOperation)
            }
            (Endpoint::Metadata(p), Read) => {
                let meta = self.metadata(ctx, p).await?.ok_or(Error::NotFound)?;
                Ok(Response::data(meta.to_json()))
            }
            (Endpoint::Metadata(p), Create | Update) => {
                self.write_metadata(ctx, req, p, false).await
            }
            (Endpoint::Metadata(p), Patch) => self.write_metadata(ctx, req, p, true).await,
            (Endpoint::Metadata(p), Delete) => self.delete_metadata(ctx, p).await,
            (Endpoint::Delete(p), Create | Update) => {
                self.change_versions(ctx, req, p, VersionAction::Delete)
                    .await
            }
            (Endpoint::Undelete(p), Create | Update) => {
                self.change_versions(ctx, req, p, VersionAction::Undelete)
                    .await
            }
            (Endpoint::Destroy(p), Create | Update) => {
                self.change_versions(ctx, req, p, VersionAction::Destroy)
                    .await
            }
            (Endpoint::Subkeys(p), Read) => self.read_subkeys(ctx, req, p).await,
            _ => Err(Error::UnsupportedOperation),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subkeys_depth() {
        let d = json!({"a": 1, "b": {"c": {"d": 2}}, "e": [1]});
        assert_eq!(
            subkeys_of(&d, 0, 1),
            json!({"a": null, "b": {"c": {"d": null}}, "e": null})
        );
        assert_eq!(
            subkeys_of(&d, 1, 1),
            json!({"a": null, "b": null, "e": null})
        );
    }

    #[test]
    fn metadata_cas() {
        let mut meta = KeyMetadata::new(now());
        let open = KvConfig::default();
        let strict = KvConfig {
            metadata_cas_required: true,
            ..KvConfig::default()
        };
        assert!(check_metadata_cas(&open, &meta, None).is_ok());
        assert!(check_metadata_cas(&open, &meta, Some(0)).is_ok());
        assert!(check_metadata_cas(&open, &meta, Some(1)).is_ok());
        assert!(check_metadata_cas(&strict, &meta, None).is_err());
        assert!(check_metadata_cas(&strict, &meta, Some(0)).is_ok());
        meta.current_metadata_version = 2;
        assert!(check_metadata_cas(&strict, &meta, Some(2)).is_ok());
        assert!(check_metadata_cas(&strict, &meta, Some(1)).is_err());
        meta.metadata_cas_required = true;
        assert!(check_metadata_cas(&open, &meta, None).is_err());
    }

    #[test]
    fn endpoints() {
        assert!(matches!(
            parse_endpoint("data/a/b"),
            Ok(Endpoint::Data("a/b"))
        ));
        assert!(matches!(
            parse_endpoint("metadata/"),
            Ok(Endpoint::Metadata(""))
        ));
        assert!(matches!(parse_endpoint("config"), Ok(Endpoint::Config)));
        assert!(matches!(parse_endpoint("nope/x"), Err(Error::NotFound)));
        assert!(matches!(
            parse_endpoint("data/"),
            Err(Error::UnsupportedOperation)
        ));
    }
}

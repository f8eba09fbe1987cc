//! The AppRole auth method, as Vault's `approle`: roles carry token
//! settings and a RoleID; SecretIDs are issued against a role; a login with
//! a RoleID and a SecretID yields a token.
//!
//! Storage layout inside the mount's view:
//! - `hmac_key`: 32 random bytes, the mount's key for keyed hashes;
//! - `role/<name>`: a [`role::Role`];
//! - `role_id/<hmac(role_id)>`: the name of the role with that RoleID;
//! - `secret_id/<name>/<hmac(secret_id)>`: a [`secret_id::SecretId`];
//! - `accessor/<hmac(accessor)>`: where the SecretID with that accessor lives.
//!
//! SecretIDs exist only in the answer that issues them: storage holds their
//! HMAC under the mount's key, so a login looks its SecretID up by hash and
//! no stored value can be replayed.

#[cfg(test)]
mod debug_tests;
mod role;
mod secret_id;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::sync::Mutex;
use zeroize::Zeroizing;

pub(crate) use self::role::valid_name;
use self::role::{field_endpoint, Role};
use self::secret_id::{AccessorEntry, SecretId};
use crate::barrier::{to_json, BarrierOp, EntryVersion, Retry, View};
use crate::engine::{Engine, EngineCtx};
use crate::util::{now, Params};
use crate::{Error, Operation, Request, Response, Result};

/// Vault's answer to an unknown RoleID or SecretID.
const INVALID: &str = "invalid role or secret ID";
/// Vault refuses longer SecretIDs and RoleIDs (its HMAC input limit).
const MAX_INPUT_LEN: usize = 4096;
/// How often expired SecretIDs are tidied in the background (Vault: a minute).
const TIDY_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// The warning of Vault's tidy endpoint.
const TIDY_WARNING: &str = "Tidy operation successfully started. Any information from the \
                            operation will be printed to Vault's server logs.";

/// The RoleID index entry.
#[derive(Serialize, Deserialize)]
struct RoleIdEntry {
    name: String,
}

/// The AppRole engine of one mount.
#[derive(Default)]
pub struct AppRole {
    /// Serializes changes to roles and SecretIDs (use counts above all), so
    /// a SecretID with one use left logs in once.
    lock: Mutex<()>,
    /// When expired SecretIDs were last tidied in the background.
    last_tidy: parking_lot::Mutex<Option<std::time::Instant>>,
}

impl AppRole {
    /// A new engine.
    pub fn new() -> Self {
        AppRole::default()
    }
}

/// The mount's maximum lease TTL (the system's when unset).
fn max_ttl(ctx: &EngineCtx<'_>) -> u64 {
    match ctx.mount.config.max_lease_ttl {
        0 => coffer_engine::mounts::SYSTEM_MAX_TTL,
        n => n,
    }
}

/// The mount's HMAC key, created on first use. Callers hold the engine
/// lock; the creation is conditional on there being none yet, so two nodes
/// creating it at once agree on one (the loser reads the winner's).
async fn hmac_key(view: &View) -> Result<Zeroizing<Vec<u8>>> {
    let mut retry = Retry::new("the mount's HMAC key");
    loop {
        retry.attempt().await?;
        let (stored, read) = view.get_versioned("hmac_key").await?;
        if let Some(k) = stored {
            return Ok(k);
        }
        let key = Zeroizing::new(coffer_crypto::random::bytes(32));
        let op = BarrierOp::Put("hmac_key".into(), key.clone());
        if view
            .write_batch_if(vec![("hmac_key".into(), read)], vec![op])
            .await?
        {
            return Ok(key);
        }
    }
}

fn hmac(key: &[u8], value: &str) -> String {
    coffer_crypto::hash::hmac_sha256_hex(key, value.as_bytes())
}

/// Applies `ops` in batches of a bounded size.
async fn write_all(view: &View, ops: Vec<BarrierOp>) -> Result<()> {
    let mut ops = ops.into_iter().peekable();
    while ops.peek().is_some() {
        view.write_batch(ops.by_ref().take(500).collect()).await?;
    }
    Ok(())
}

fn secret_key(role: &str, secret_hmac: &str) -> String {
    format!("secret_id/{role}/{secret_hmac}")
}

fn no_role(name: &str) -> String {
    format!("role {name:?} does not exist")
}

/// Vault answers some requests on a missing role with a 500.
fn no_role_500(name: &str) -> Error {
    Error::Status {
        code: 500,
        errors: vec![no_role(name)],
    }
}

async fn load_role(view: &View, name: &str) -> Result<Option<Role>> {
    view.get_json(&format!("role/{name}")).await
}

/// A required string parameter, trimmed.
fn required<'a>(p: &'a Params<'_>, name: &str) -> Result<&'a str> {
    match p.str(name)?.map(str::trim) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(Error::bad(format!("missing {name}"))),
    }
}

impl AppRole {
    async fn list_roles(&self, ctx: &EngineCtx<'_>) -> Result<Response> {
        Response::list(ctx.view.list("role/").await?)
    }

    async fn read_role(&self, ctx: &EngineCtx<'_>, name: &str) -> Result<Response> {
        let role = load_role(ctx.view, name).await?.ok_or(Error::NotFound)?;
        Ok(Response::data(Value::Object(role.to_json())))
    }

    /// Creates or updates a role from `data`; `must_exist` refuses a create.
    async fn write_role(
        &self,
        ctx: &EngineCtx<'_>,
        name: &str,
        data: &Map<String, Value>,
        must_exist: bool,
    ) -> Result<Response> {
        if name.len() >= role::MAX_NAME_LEN {
            return Err(Error::bad(format!(
                "role_name is longer than maximum of {} bytes",
                role::MAX_NAME_LEN
            )));
        }
        let _guard = self.lock.lock().await;
        let existing = load_role(ctx.view, name).await?;
        if must_exist && existing.is_none() {
            return Err(Error::UnsupportedPath(format!(
                "role name {name:?} doesn't exist"
            )));
        }
        let (role, warnings) = Role::apply(existing.as_ref(), name, &Params(data), max_ttl(ctx))?;
        let key = hmac_key(ctx.view).await?;
        let index = format!("role_id/{}", hmac(&key, &role.role_id));
        if let Some(owner) = ctx.view.get_json::<RoleIdEntry>(&index).await? {
            if owner.name != name {
                return Err(Error::bad("role_id already in use"));
            }
        }
        let mut ops = vec![
            BarrierOp::Put(format!("role/{name}"), to_json(&role)?),
            BarrierOp::Put(
                index,
                to_json(&RoleIdEntry {
                    name: name.to_string(),
                })?,
            ),
        ];
        if let Some(old) = existing.filter(|old| old.role_id != role.role_id) {
            ops.push(BarrierOp::Delete(format!(
                "role_id/{}",
                hmac(&key, &old.role_id)
            )));
        }
        ctx.view.write_batch(ops).await?;
        let mut resp = Response::empty();
        resp.warnings = warnings;
        Ok(resp)
    }

    async fn delete_role(&self, ctx: &EngineCtx<'_>, name: &str) -> Result<Response> {
        let _guard = self.lock.lock().await;
        let Some(role) = load_role(ctx.view, name).await? else {
            return Ok(Response::empty());
        };
        let key = hmac_key(ctx.view).await?;
        let mut ops = Vec::new();
        for h in ctx.view.list(&format!("secret_id/{name}/")).await? {
            let k = secret_key(name, &h);
            if let Some(s) = ctx.view.get_json::<SecretId>(&k).await? {
                ops.push(BarrierOp::Delete(format!(
                    "accessor/{}",
                    hmac(&key, &s.secret_id_accessor)
                )));
            }
            ops.push(BarrierOp::Delete(k));
        }
        ops.push(BarrierOp::Delete(format!(
            "role_id/{}",
            hmac(&key, &role.role_id)
        )));
        ops.push(BarrierOp::Delete(format!("role/{name}")));
        write_all(ctx.view, ops).await?;
        Ok(Response::empty())
    }

    /// `role/:name/<field>` endpoints: read, write or reset one setting.
    async fn role_field(
        &self,
        ctx: &EngineCtx<'_>,
        req: &Request,
        name: &str,
        segment: &str,
    ) -> Result<Response> {
        let field = field_endpoint(segment).ok_or_else(unsupported)?;
        match req.operation {
            Operation::Read => {
                let role = load_role(ctx.view, name).await?.ok_or(Error::NotFound)?;
                let all = role.to_json();
                let data: Map<String, Value> = field
                    .shows
                    .iter()
                    .filter_map(|k| all.get(*k).map(|v| (k.to_string(), v.clone())))
                    .collect();
                Ok(Response::data(Value::Object(data)))
            }
            Operation::Create | Operation::Update if !field.takes.is_empty() => {
                let data: Map<String, Value> = field
                    .takes
                    .iter()
                    .filter_map(|k| {
                        req.data
                            .get(*k)
                            .filter(|v| !v.is_null())
                            .map(|v| (k.to_string(), v.clone()))
                    })
                    .collect();
                if data.is_empty() {
                    return Err(Error::bad(format!("missing {}", field.takes[0])));
                }
                self.write_role(ctx, name, &data, true).await
            }
            Operation::Delete => {
                let reset = field.reset.ok_or(Error::UnsupportedOperation)?;
                let Value::Object(data) = reset() else {
                    return Err(Error::Internal("bad reset value".into()));
                };
                self.write_role(ctx, name, &data, true).await
            }
            _ => Err(Error::UnsupportedOperation),
        }
    }

    async fn read_role_id(&self, ctx: &EngineCtx<'_>, name: &str) -> Result<Response> {
        let role = load_role(ctx.view, name).await?.ok_or(Error::NotFound)?;
        Ok(Response::data(json!({ "role_id": role.role_id })))
    }

    async fn write_role_id(
        &self,
        ctx: &EngineCtx<'_>,
        req: &Request,
        name: &str,
    ) -> Result<Response> {
        let p = Params(&req.data);
        let id = required(&p, "role_id")?;
        let mut data = Map::new();
        data.insert("role_id".into(), json!(id));
        self.write_role(ctx, name, &data, true).await
    }

    /// Issues a SecretID: a fresh one, or the caller's (`custom-secret-id`).
    async fn issue_secret_id(
        &self,
        ctx: &EngineCtx<'_>,
        req: &Request,
        name: &str,
        custom: bool,
    ) -> Result<Response> {
        let p = Params(&req.data);
        let secret: Zeroizing<String> = if custom {
            let s = required(&p, "secret_id")?;
            if s.len() > MAX_INPUT_LEN {
                return Err(Error::bad(format!(
                    "secret_id is longer than maximum of {MAX_INPUT_LEN} bytes"
                )));
            }
            Zeroizing::new(s.to_string())
        } else {
            Zeroizing::new(coffer_crypto::random::uuid())
        };
        let _guard = self.lock.lock().await;
        let role = load_role(ctx.view, name)
            .await?
            .ok_or_else(|| Error::UnsupportedPath(no_role(name)))?;
        if !role.bind_secret_id {
            return Err(Error::bad("bind_secret_id is not set on the role"));
        }
        let entry = SecretId::from_request(&role, &p, max_ttl(ctx))?;
        let key = hmac_key(ctx.view).await?;
        let secret_hmac = hmac(&key, &secret);
        let skey = secret_key(name, &secret_hmac);
        if ctx.view.get(&skey).await?.is_some() {
            return Err(Error::bad("SecretID is already registered"));
        }
        let accessor = AccessorEntry {
            role: name.to_string(),
            secret_id_hmac: secret_hmac,
        };
        ctx.view
            .write_batch(vec![
                BarrierOp::Put(
                    format!("accessor/{}", hmac(&key, &entry.secret_id_accessor)),
                    to_json(&accessor)?,
                ),
                BarrierOp::Put(skey, to_json(&entry)?),
            ])
            .await?;
        Ok(Response::data(entry.generated(&secret, max_ttl(ctx))))
    }

    async fn list_secret_ids(&self, ctx: &EngineCtx<'_>, name: &str) -> Result<Response> {
        if load_role(ctx.view, name).await?.is_none() {
            return Err(Error::bad(no_role(name)));
        }
        let at = now();
        let mut keys = Vec::new();
        for h in ctx.view.list(&format!("secret_id/{name}/")).await? {
            if let Some(s) = ctx.view.get_json::<SecretId>(&secret_key(name, &h)).await? {
                if !s.expired(&at) {
                    keys.push(s.secret_id_accessor);
                }
            }
        }
        Response::list(keys)
    }

    /// Finds the live SecretID entry of `name` named by the request's
    /// `secret_id` (`by_accessor` false) or `secret_id_accessor`; returns its
    /// storage key, its accessor index key and the entry.
    async fn find_secret(
        &self,
        ctx: &EngineCtx<'_>,
        req: &Request,
        name: &str,
        by_accessor: bool,
    ) -> Result<Option<(String, String, SecretId)>> {
        let p = Params(&req.data);
        let field = if by_accessor {
            "secret_id_accessor"
        } else {
            "secret_id"
        };
        let given = required(&p, field)?;
        if load_role(ctx.view, name).await?.is_none() {
            return Err(no_role_500(name));
        }
        let key = hmac_key(ctx.view).await?;
        let skey = if by_accessor {
            let akey = format!("accessor/{}", hmac(&key, given));
            match ctx.view.get_json::<AccessorEntry>(&akey).await? {
                Some(a) if a.role == name => secret_key(name, &a.secret_id_hmac),
                _ => return Ok(None),
            }
        } else {
            secret_key(name, &hmac(&key, given))
        };
        let Some(entry) = ctx.view.get_json::<SecretId>(&skey).await? else {
            return Ok(None);
        };
        let akey = format!("accessor/{}", hmac(&key, &entry.secret_id_accessor));
        if entry.expired(&now()) {
            ctx.view
                .write_batch(vec![BarrierOp::Delete(skey), BarrierOp::Delete(akey)])
                .await?;
            return Ok(None);
        }
        Ok(Some((skey, akey, entry)))
    }

    async fn lookup_secret(
        &self,
        ctx: &EngineCtx<'_>,
        req: &Request,
        name: &str,
        by_accessor: bool,
    ) -> Result<Response> {
        let _guard = self.lock.lock().await;
        match self.find_secret(ctx, req, name, by_accessor).await? {
            Some((_, _, entry)) => Ok(Response::data(entry.to_json())),
            None if by_accessor => Err(Error::Status {
                code: 404,
                errors: vec![no_accessor(req)],
            }),
            None => Ok(Response::empty()),
        }
    }

    async fn destroy_secret(
        &self,
        ctx: &EngineCtx<'_>,
        req: &Request,
        name: &str,
        by_accessor: bool,
    ) -> Result<Response> {
        let _guard = self.lock.lock().await;
        match self.find_secret(ctx, req, name, by_accessor).await? {
            Some((skey, akey, _)) => {
                ctx.view
                    .write_batch(vec![BarrierOp::Delete(akey), BarrierOp::Delete(skey)])
                    .await?;
                Ok(Response::empty())
            }
            None if by_accessor => Err(Error::Status {
                code: 500,
                errors: vec![no_accessor(req)],
            }),
            None => Ok(Response::empty()),
        }
    }

    /// Logs in with a RoleID and, when the role binds one, a SecretID.
    async fn login(&self, ctx: &EngineCtx<'_>, req: &Request) -> Result<Response> {
        let p = Params(&req.data);
        let role_id = required(&p, "role_id")?;
        if role_id.len() > MAX_INPUT_LEN {
            return Err(Error::bad(INVALID));
        }
        let key = hmac_key(ctx.view).await?;
        let index = format!("role_id/{}", hmac(&key, role_id));
        let Some(RoleIdEntry { name }) = ctx.view.get_json(&index).await? else {
            return Err(Error::bad(INVALID));
        };
        let Some(role) = load_role(ctx.view, &name).await? else {
            return Err(Error::bad(INVALID));
        };
        if !coffer_crypto::hash::constant_time_eq(role.role_id.as_bytes(), role_id.as_bytes()) {
            return Err(Error::bad(INVALID));
        }
        let addr = req.client_addr.map(|a| a.to_string()).unwrap_or_default();
        let secret = if role.bind_secret_id {
            let secret = required(&p, "secret_id")?;
            if secret.len() > MAX_INPUT_LEN {
                return Err(Error::bad(INVALID));
            }
            Some(secret)
        } else {
            None
        };
        // Taking a use of the SecretID is conditional on its entry as read:
        // when several nodes share the store, a SecretID with one use left
        // logs in once (the losers read it again: gone, or one use fewer).
        // The mount's lock is taken per attempt, so this node's other
        // logins need not wait out the pause after a lost race.
        let mut retry = Retry::new("the secret ID");
        let (mut metadata, token_cidrs) = loop {
            retry.attempt().await?;
            let _guard = self.lock.lock().await;
            let mut metadata = BTreeMap::new();
            let mut token_cidrs = role.token.bound_cidrs.clone();
            let mut consume: Option<(String, String, SecretId, EntryVersion)> = None;
            if let Some(secret) = secret {
                let skey = secret_key(&name, &hmac(&key, secret));
                let (entry, read) = ctx.view.get_json_versioned::<SecretId>(&skey).await?;
                let Some(entry) = entry else {
                    return Err(Error::bad(INVALID));
                };
                let akey = format!("accessor/{}", hmac(&key, &entry.secret_id_accessor));
                if entry.expired(&now()) || ctx.view.get(&akey).await?.is_none() {
                    ctx.view
                        .write_batch(vec![BarrierOp::Delete(skey), BarrierOp::Delete(akey)])
                        .await?;
                    return Err(Error::bad(INVALID));
                }
                if !crate::ip_allowed(req.client_addr, &entry.cidr_list) {
                    return Err(Error::bad(format!(
                        "source address {addr:?} unauthorized by CIDR restrictions on the secret ID"
                    )));
                }
                metadata = entry.metadata.clone();
                if !entry.token_bound_cidrs.is_empty() {
                    token_cidrs = entry.token_bound_cidrs.clone();
                }
                consume = Some((skey, akey, entry, read));
            }
            if !crate::ip_allowed(req.client_addr, &role.secret_id_bound_cidrs) {
                return Err(Error::bad(format!(
                    "source address {addr:?} unauthorized by CIDR restrictions on the role"
                )));
            }
            let taken = match consume {
                None => true,
                Some((skey, akey, mut entry, read)) => {
                    let ops = match entry.secret_id_num_uses {
                        0 => Vec::new(),
                        1 => vec![BarrierOp::Delete(akey), BarrierOp::Delete(skey.clone())],
                        n => {
                            entry.secret_id_num_uses = n - 1;
                            entry.last_updated_time = now();
                            vec![BarrierOp::Put(skey.clone(), to_json(&entry)?)]
                        }
                    };
                    ops.is_empty() || ctx.view.write_batch_if(vec![(skey, read)], ops).await?
                }
            };
            if taken {
                break (metadata, token_cidrs);
            }
        };
        metadata.insert("role_name".into(), name.clone());
        let mut grant = role.token.grant("", metadata);
        grant.bound_cidrs = token_cidrs;
        // As Vault: the entity alias is the role id, with the role's name.
        grant.entity_alias = Some(role.role_id.clone());
        grant.alias_metadata = BTreeMap::from([("role_name".to_string(), name.clone())]);
        grant.alias_name = name;
        Ok(Response::login(grant))
    }

    /// Removes expired SecretIDs, SecretIDs of deleted roles and accessor
    /// entries that point nowhere.
    async fn tidy(&self, ctx: &EngineCtx<'_>) -> Result<Response> {
        let _guard = self.lock.lock().await;
        let key = hmac_key(ctx.view).await?;
        let at = now();
        let mut ops = Vec::new();
        let mut live = std::collections::HashSet::new();
        let mut roles = std::collections::HashMap::new();
        for k in ctx.view.keys_with_prefix("secret_id/").await? {
            let role = k.split('/').nth(1).unwrap_or_default();
            let entry = ctx.view.get_json::<SecretId>(&k).await.ok().flatten();
            let role_exists = match roles.get(role) {
                Some(known) => *known,
                None => {
                    let known = load_role(ctx.view, role).await?.is_some();
                    roles.insert(role.to_string(), known);
                    known
                }
            };
            match entry {
                Some(e) if role_exists && !e.expired(&at) => {
                    live.insert(format!("accessor/{}", hmac(&key, &e.secret_id_accessor)));
                }
                _ => ops.push(BarrierOp::Delete(k)),
            }
        }
        for k in ctx.view.keys_with_prefix("accessor/").await? {
            if !live.contains(&k) {
                ops.push(BarrierOp::Delete(k));
            }
        }
        let removed = ops.len();
        write_all(ctx.view, ops).await?;
        tracing::info!(mount = %ctx.mount.path, removed, "approle: tidied secret IDs");
        let mut resp = Response::empty().with_status(202);
        resp.warnings = vec![TIDY_WARNING.to_string()];
        Ok(resp)
    }
}

/// Vault's message for an unknown accessor (accessors are not secret).
fn no_accessor(req: &Request) -> String {
    let given = req
        .data
        .get("secret_id_accessor")
        .and_then(Value::as_str)
        .unwrap_or_default();
    format!("failed to find accessor entry for secret_id_accessor: {given:?}")
}

fn unsupported() -> Error {
    Error::UnsupportedPath("unsupported path".into())
}

/// The lower-cased role name of a path segment, or 404 for an invalid one.
fn role_name(segment: &str) -> Result<String> {
    let name = segment.to_lowercase();
    if valid_name(&name) {
        Ok(name)
    } else {
        Err(unsupported())
    }
}

#[async_trait]
impl Engine for AppRole {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    async fn check_renewal(
        &self,
        ctx: &EngineCtx<'_>,
        metadata: &std::collections::BTreeMap<String, String>,
        _policies: &[String],
    ) -> Result<()> {
        let name = metadata.get("role_name").map(String::as_str).unwrap_or("");
        match load_role(ctx.view, name).await? {
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
        let parts: Vec<&str> = path.split('/').collect();
        match parts.as_slice() {
            ["role", name] if !name.is_empty() => match role_name(name) {
                Ok(n) => Ok(Some(load_role(ctx.view, &n).await?.is_some())),
                Err(_) => Ok(None),
            },
            _ => Ok(None),
        }
    }

    /// Role names are case-insensitive: `role/<name>...` is lower-cased.
    fn canonical_path<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, str> {
        coffer_engine::names::lowercase_name(path, &["role"])
    }

    fn is_unauthenticated(&self, path: &str) -> bool {
        path == "login"
    }

    async fn periodic(&self, ctx: &EngineCtx<'_>) -> Result<()> {
        {
            let mut last = self.last_tidy.lock();
            if last.is_some_and(|t| t.elapsed() < TIDY_EVERY) {
                return Ok(());
            }
            *last = Some(std::time::Instant::now());
        }
        self.tidy(ctx).await.map(|_| ())
    }

    fn has_login_roles(&self) -> bool {
        true
    }

    /// The role whose RoleID a login gives (looked up by the RoleID's
    /// HMAC, as the login itself does); `None` for an unknown RoleID.
    async fn login_role(
        &self,
        ctx: &EngineCtx<'_>,
        req: &Request,
        path: &str,
    ) -> Result<Option<String>> {
        if path != "login" {
            return Ok(None);
        }
        let Some(role_id) = req
            .data
            .get("role_id")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty() && r.len() <= MAX_INPUT_LEN)
        else {
            return Ok(None);
        };
        let key = hmac_key(ctx.view).await?;
        let index = format!("role_id/{}", hmac(&key, role_id));
        let entry: Option<RoleIdEntry> = ctx.view.get_json(&index).await?;
        Ok(entry.map(|e| e.name))
    }

    fn login_identity(&self, req: &Request, path: &str) -> Option<String> {
        if path != "login" {
            return None;
        }
        match req.data.get("role_id") {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            _ => None,
        }
    }

    async fn handle(&self, ctx: &EngineCtx<'_>, req: &Request, path: &str) -> Result<Response> {
        use Operation::*;
        let op = req.operation;
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        match (parts.as_slice(), op) {
            (["login"], Create | Update) => self.login(ctx, req).await,
            (["tidy", "secret-id"], Create | Update) => self.tidy(ctx).await,
            (["role"], List) => self.list_roles(ctx).await,
            (["role", seg], _) => {
                let name = role_name(seg)?;
                match op {
                    Read => self.read_role(ctx, &name).await,
                    Create | Update => self.write_role(ctx, &name, &req.data, false).await,
                    Delete => self.delete_role(ctx, &name).await,
                    _ => Err(Error::UnsupportedOperation),
                }
            }
            (["role", seg, rest @ ..], _) => {
                let name = role_name(seg)?;
                match (rest, op) {
                    (["role-id"], Read) => self.read_role_id(ctx, &name).await,
                    (["role-id"], Create | Update) => self.write_role_id(ctx, req, &name).await,
                    (["secret-id"], Create | Update) => {
                        self.issue_secret_id(ctx, req, &name, false).await
                    }
                    (["secret-id"], List) => self.list_secret_ids(ctx, &name).await,
                    (["custom-secret-id"], Create | Update) => {
                        self.issue_secret_id(ctx, req, &name, true).await
                    }
                    (["secret-id", "lookup"], Create | Update) => {
                        self.lookup_secret(ctx, req, &name, false).await
                    }
                    (["secret-id", "destroy"], Create | Update | Delete) => {
                        self.destroy_secret(ctx, req, &name, false).await
                    }
                    (["secret-id-accessor", "lookup"], Create | Update) => {
                        self.lookup_secret(ctx, req, &name, true).await
                    }
                    (["secret-id-accessor", "destroy"], Create | Update | Delete) => {
                        self.destroy_secret(ctx, req, &name, true).await
                    }
                    ([segment], _) if field_endpoint(segment).is_some() => {
                        self.role_field(ctx, req, &name, segment).await
                    }
                    (
                        ["role-id" | "secret-id" | "custom-secret-id"]
                        | ["secret-id" | "secret-id-accessor", "lookup" | "destroy"],
                        _,
                    ) => Err(Error::UnsupportedOperation),
                    _ => Err(unsupported()),
                }
            }
            (["login"] | ["tidy", "secret-id"] | ["role"], _) => Err(Error::UnsupportedOperation),
            _ => Err(unsupported()),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;

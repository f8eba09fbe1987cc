//! Vault's identity tokens (`identity/oidc/*`): signed OIDC ID tokens (JWTs)
//! describing the caller's entity, minted against a role and signed by a
//! named key the server generates; the public keys are published at
//! `.well-known/keys` with an OIDC discovery document beside them, and
//! `introspect` checks a token (signature, claims, and that its entity
//! still exists and is enabled).
//!
//! Everything is kept in the identity mount's own barrier view:
//! `oidc/config`, `oidc/key/<name>` (configuration, the current and next
//! private keys, and the public keys published with their expiry),
//! `oidc/role/<name>`. Every write is computed from entries read from
//! storage (never the cache) and committed as one batch conditional on
//! `oidc/seq`, which each commit rewrites: on storage several nodes share, a
//! node whose reads another node's commit made stale writes nothing and
//! computes again, so a key is never deleted while a role another node just
//! wrote refers to it, and two rotations never lose a key.
//!
//! As in Vault, a key holds a current signing key and the next one (both
//! published, so verifiers that cache the key set know the next key before
//! it signs); a rotation makes the next key current, gives the old one an
//! expiry `verification_ttl` ahead (it stays published until then) and makes
//! a new next key. Keys rotate by themselves every `rotation_period` in the
//! leader's background pass ([`Oidc::periodic`]), which also drops expired
//! public keys. The key set lists only keys some role uses, as Vault's.

pub mod signing;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use self::signing::{Algorithm, Jwk, PrivateKey};
use super::store::IdentityStore;
use super::template::{render_json, TemplateData};
use crate::barrier::{to_json, BarrierOp, EntryVersion, Retry, View};
use crate::util::Params;
use crate::{Error, Operation, Request, Response, Result};

/// The configuration entry.
const CONFIG: &str = "oidc/config";
/// Named keys, by name.
const KEYS: &str = "oidc/key/";
/// Roles, by name.
const ROLES: &str = "oidc/role/";
/// The record every commit rewrites (see the module docs).
const SEQ: &str = "oidc/seq";
/// The key Vault keeps on every store: listed, readable and usable by
/// roles before anyone wrote it (its keys are made when a role first
/// names it), and never deleted.
pub const DEFAULT_KEY: &str = "default";
/// Where the issuer lives below the server's address.
const ISSUER_PATH: &str = "/v1/identity/oidc";
/// Claims a template may not set.
const RESERVED_CLAIMS: [&str; 10] = [
    "iat",
    "aud",
    "exp",
    "iss",
    "sub",
    "namespace",
    "nonce",
    "auth_time",
    "at_hash",
    "c_hash",
];
/// Leeway of introspection's time checks (go-jose's, which Vault uses).
const LEEWAY: i64 = 60;
/// Seconds between two looks of the background pass at the keys.
const PASS_EVERY: i64 = 10;
/// A day, the default of `rotation_period`, `verification_ttl` and `ttl`.
const DAY: u64 = 86_400;

/// The identity token state of one identity mount: the node's write lock
/// and the background pass's schedule. Its records live in the mount's view.
pub struct Oidc {
    write: tokio::sync::Mutex<()>,
    /// Unix second before which the background pass skips the keys.
    next_pass: AtomicI64,
}

impl Default for Oidc {
    fn default() -> Self {
        Oidc {
            write: tokio::sync::Mutex::new(()),
            next_pass: AtomicI64::new(0),
        }
    }
}

/// What one request sees beyond its own parameters.
pub struct Env<'a> {
    /// The identity mount's storage view.
    pub view: &'a View,
    /// The identity store (entities for claims and introspection).
    pub identity: &'a IdentityStore,
    /// This node's `api_addr`, the issuer when none is configured.
    pub api_addr: &'a str,
    /// The entity of the caller's token, if it has one.
    pub entity_id: Option<&'a str>,
    /// The time, in Unix seconds.
    pub now: i64,
}

/// `identity/oidc/config`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Config {
    #[serde(default)]
    issuer: String,
}

/// A public key as published, with the time it stops being valid (none
/// for the current and next keys).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Published {
    jwk: Jwk,
    #[serde(default)]
    expire_at: Option<i64>,
}

/// A named key (`identity/oidc/key/<name>`).
#[derive(Debug, Serialize, Deserialize)]
pub struct NamedKey {
    algorithm: Algorithm,
    rotation_period: u64,
    verification_ttl: u64,
    #[serde(default)]
    allowed_client_ids: Vec<String>,
    /// Unix second of the next automatic rotation.
    next_rotation: i64,
    #[serde(default)]
    current: Option<PrivateKey>,
    #[serde(default)]
    next: Option<PrivateKey>,
    #[serde(default)]
    published: Vec<Published>,
}

/// The public part of a named key's entry: what the key set and
/// introspection read, leaving the private keys unparsed.
#[derive(Deserialize)]
struct PublicPart {
    #[serde(default)]
    published: Vec<Published>,
}

/// A role (`identity/oidc/role/<name>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Role {
    key: String,
    #[serde(default)]
    template: String,
    client_id: String,
    ttl: u64,
}

impl NamedKey {
    /// A key with Vault's defaults and no key material yet.
    fn new(allowed: Vec<String>, now: i64) -> NamedKey {
        NamedKey {
            algorithm: Algorithm::RS256,
            rotation_period: DAY,
            verification_ttl: DAY,
            allowed_client_ids: allowed,
            next_rotation: now + DAY as i64,
            current: None,
            next: None,
            published: Vec::new(),
        }
    }

    /// The built-in `default` key as it is before anything was written to it.
    fn builtin(now: i64) -> NamedKey {
        NamedKey::new(vec!["*".into()], now)
    }

    /// Whether a role with `client_id` may sign with this key.
    fn allows(&self, client_id: &str) -> bool {
        self.allowed_client_ids
            .iter()
            .any(|c| c == "*" || c == client_id)
    }

    /// Gives the published key `kid` (if it has no expiry yet) one.
    fn expire(&mut self, kid: &str, at: i64) {
        for p in &mut self.published {
            if p.jwk.kid == kid && p.expire_at.is_none() {
                p.expire_at = Some(at);
            }
        }
    }

    async fn make(&mut self) -> Result<PrivateKey> {
        let (key, jwk) = signing::generate(self.algorithm).await?;
        self.published.push(Published {
            jwk,
            expire_at: None,
        });
        Ok(key)
    }

    /// New current and next keys (a new key, or a new algorithm): the keys
    /// they replace stay published for `verification_ttl`, so tokens they
    /// signed still verify.
    async fn renew(&mut self, now: i64) -> Result<()> {
        let until = now.saturating_add(self.verification_ttl as i64);
        for old in [self.current.take(), self.next.take()]
            .into_iter()
            .flatten()
        {
            self.expire(&old.kid, until);
        }
        self.current = Some(self.make().await?);
        self.next = Some(self.make().await?);
        Ok(())
    }

    /// One rotation: the next key signs from now on, the current one stays
    /// published for `verification_ttl` seconds, a new next key is made.
    async fn rotate(&mut self, now: i64, verification_ttl: u64) -> Result<()> {
        if let Some(old) = self.current.take() {
            self.expire(&old.kid, now.saturating_add(verification_ttl as i64));
        }
        let next = match self.next.take() {
            Some(k) if k.alg == self.algorithm => k,
            other => {
                if let Some(k) = other {
                    self.expire(&k.kid, now);
                }
                self.make().await?
            }
        };
        self.current = Some(next);
        self.next = Some(self.make().await?);
        self.next_rotation = now.saturating_add(self.rotation_period as i64);
        Ok(())
    }

    /// Drops published keys whose verification time is over; whether any was.
    fn prune(&mut self, now: i64) -> bool {
        let before = self.published.len();
        self.published
            .retain(|p| p.expire_at.is_none_or(|t| t > now));
        self.published.len() != before
    }
}

/// One write: entries read from storage, the batch to commit, and the
/// state of `oidc/seq` it is conditional on.
struct Tx {
    view: View,
    seq: EntryVersion,
    ops: Vec<BarrierOp>,
}

impl Tx {
    async fn begin(view: &View) -> Result<Tx> {
        view.forget(&[SEQ]);
        let (_, seq) = view.get_versioned(SEQ).await?;
        Ok(Tx {
            view: view.clone(),
            seq,
            ops: Vec::new(),
        })
    }

    /// `key` as storage holds it (never the cache, which may lag).
    async fn get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.view.forget(&[key]);
        self.view.get_json(key).await
    }

    async fn key(&self, name: &str, now: i64) -> Result<Option<NamedKey>> {
        let stored = self.get(&format!("{KEYS}{name}")).await?;
        Ok(stored.or_else(|| (name == DEFAULT_KEY).then(|| NamedKey::builtin(now))))
    }

    /// Every role, by name.
    async fn roles(&self) -> Result<BTreeMap<String, Role>> {
        let mut out = BTreeMap::new();
        for name in self.view.list(ROLES).await? {
            if let Some(r) = self.get::<Role>(&format!("{ROLES}{name}")).await? {
                out.insert(name, r);
            }
        }
        Ok(out)
    }

    fn put<T: Serialize>(&mut self, key: String, value: &T) -> Result<()> {
        self.ops.push(BarrierOp::Put(key, to_json(value)?));
        Ok(())
    }

    fn delete(&mut self, key: String) {
        self.ops.push(BarrierOp::Delete(key));
    }

    /// Writes the batch if nothing changed since [`Tx::begin`]; `false`
    /// (nothing written) if another writer committed first.
    async fn commit(mut self) -> Result<bool> {
        if self.ops.is_empty() {
            return Ok(true);
        }
        let mark = coffer_crypto::random::uuid();
        self.ops.push(BarrierOp::Put(SEQ.into(), to_json(&mark)?));
        self.view
            .write_batch_if(vec![(SEQ.into(), self.seq)], self.ops)
            .await
    }
}

/// A name Vault's `GenericNameRegex` accepts: word characters, `-` and `.`
/// inside, a word character at each end.
fn valid_name(name: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    !name.is_empty()
        && name.chars().all(|c| word(c) || c == '-' || c == '.')
        && name.chars().next().is_some_and(word)
        && name.chars().last().is_some_and(word)
}

/// Whether `path` (below the identity mount) is answered without a token:
/// the discovery document and the key set, as in Vault.
pub fn is_unauthenticated(path: &str) -> bool {
    matches!(
        path,
        "oidc/.well-known/openid-configuration" | "oidc/.well-known/keys"
    )
}

/// The existence check of a write: named keys and roles tell a create from
/// an update (so creating one needs `create`, as in Vault); other paths make
/// no distinction.
pub async fn exists(view: &View, path: &str) -> Result<Option<bool>> {
    let seg: Vec<&str> = path.split('/').collect();
    Ok(match seg.as_slice() {
        ["oidc", "key", name] if valid_name(name) => {
            Some(*name == DEFAULT_KEY || view.get(&format!("{KEYS}{name}")).await?.is_some())
        }
        ["oidc", "role", name] if valid_name(name) => {
            Some(view.get(&format!("{ROLES}{name}")).await?.is_some())
        }
        _ => None,
    })
}

/// The issuer: the configured one, else this node's address, below which
/// the identity mount's OIDC paths are.
fn issuer(config: &Config, api_addr: &str) -> String {
    let base = if config.issuer.is_empty() {
        api_addr
    } else {
        config.issuer.as_str()
    };
    format!("{}{ISSUER_PATH}", base.trim_end_matches('/'))
}

/// Vault's rule for a configured issuer: `http(s)://host[:port]`, nothing more.
fn valid_issuer(issuer: &str) -> bool {
    let lower = issuer.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
    else {
        return false;
    };
    !rest.is_empty()
        && !rest.contains(['/', '?', '#', '@', '\\', ' '])
        && reqwest::Url::parse(issuer).is_ok_and(|u| u.host_str().is_some_and(|h| !h.is_empty()))
}

/// A random client id: 26 characters of base62, as Vault makes them.
fn client_id() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..26)
        .map(|_| ALPHABET[coffer_crypto::random::uniform_index(ALPHABET.len())] as char)
        .collect()
}

fn no_entity() -> Error {
    Error::bad("no entity associated with the request's token")
}

impl Oidc {
    /// Runs the write `op` computes (reads in its [`Tx`], then the batch),
    /// again while another writer committed first, a bounded number of times.
    async fn write<T, F, Fut>(&self, view: &View, mut op: F) -> Result<T>
    where
        F: FnMut(Tx) -> Fut,
        Fut: std::future::Future<Output = Result<(Tx, T)>>,
    {
        let _w = self.write.lock().await;
        let mut retry = Retry::new("the identity token configuration");
        loop {
            retry.attempt().await?;
            let tx = Tx::begin(view).await?;
            let (tx, out) = op(tx).await?;
            if tx.commit().await? {
                return Ok(out);
            }
        }
    }

    /// Handles `identity/<path>` for a `path` below `oidc/`.
    pub async fn handle(&self, env: &Env<'_>, req: &Request, path: &str) -> Result<Response> {
        use Operation::*;
        let op = req.operation;
        let write = matches!(op, Create | Update);
        let data = &req.data;
        let now = env.now;
        let seg: Vec<&str> = path.split('/').collect();
        let named = |n: &str| valid_name(n);
        match (seg.as_slice(), op) {
            (["oidc", "config"], Read) => read_config(env).await,
            (["oidc", "config"], _) if write => {
                self.write(env.view, move |tx| write_config(tx, data)).await
            }
            (["oidc", "key", ""], List) => list_keys(env.view).await,
            (["oidc", "key", name], Read) if named(name) => read_key(env.view, name, now).await,
            (["oidc", "key", name], _) if write && named(name) => {
                self.write(env.view, move |tx| write_key(tx, name, data, now))
                    .await
            }
            (["oidc", "key", name], Delete) if named(name) => {
                self.write(env.view, move |tx| delete_key(tx, name)).await
            }
            (["oidc", "key", name, "rotate"], _) if write && named(name) => {
                self.write(env.view, move |tx| rotate_key(tx, name, data, now))
                    .await
            }
            (["oidc", "role", ""], List) => Response::list(env.view.list(ROLES).await?),
            (["oidc", "role", name], Read) if named(name) => read_role(env.view, name).await,
            (["oidc", "role", name], _) if write && named(name) => {
                self.write(env.view, move |tx| write_role(tx, name, data, now))
                    .await
            }
            (["oidc", "role", name], Delete) if named(name) => {
                self.write(env.view, move |mut tx| async move {
                    tx.delete(format!("{ROLES}{name}"));
                    Ok((tx, Response::empty()))
                })
                .await
            }
            (["oidc", "token", name], Read) if named(name) => mint(env, name).await,
            (["oidc", "introspect"], _) if write => introspect(env, &Params(data)).await,
            (["oidc", ".well-known", "openid-configuration"], Read) => discovery(env).await,
            (["oidc", ".well-known", "keys"], Read) => {
                let keys = jwks(env.view, now).await?;
                Ok(Response::raw(json!({ "keys": keys })))
            }
            (["oidc", "config" | "introspect"], _)
            | (["oidc", "key" | "role", _], _)
            | (["oidc", "key", _, "rotate"], _)
            | (["oidc", "token", _], _)
            | (["oidc", ".well-known", "openid-configuration" | "keys"], _) => {
                Err(Error::UnsupportedOperation)
            }
            _ => Err(Error::UnsupportedPath(format!(
                "unsupported path: identity/{path}"
            ))),
        }
    }

    /// The background pass (the leader's, about once a second): at most
    /// every few seconds, rotates the keys whose `rotation_period` is up
    /// and drops public keys whose verification time is over. Each change
    /// is a conditional write like any other.
    pub async fn periodic(&self, view: &View, now: i64) -> Result<()> {
        if now < self.next_pass.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.next_pass.store(now + PASS_EVERY, Ordering::SeqCst);
        for name in view.list(KEYS).await? {
            let Some(key) = view.get_json::<NamedKey>(&format!("{KEYS}{name}")).await? else {
                continue;
            };
            let expired = key
                .published
                .iter()
                .any(|p| p.expire_at.is_some_and(|t| t <= now));
            if now < key.next_rotation && !expired {
                continue;
            }
            let name = name.as_str();
            // One key failing (storage, a corrupt entry) leaves the others
            // rotating; it is tried again at the next look.
            match self
                .write(view, move |tx| rotate_if_due(tx, name, now))
                .await
            {
                Ok(()) => tracing::debug!(key = name, "identity token key rotated or tidied"),
                Err(e) => tracing::warn!(key = name, error = %e, "identity token key not rotated"),
            }
        }
        Ok(())
    }
}

async fn load_config(view: &View) -> Result<Config> {
    Ok(view.get_json::<Config>(CONFIG).await?.unwrap_or_default())
}

async fn read_config(env: &Env<'_>) -> Result<Response> {
    let config = load_config(env.view).await?;
    let mut resp = Response::data(json!({ "issuer": config.issuer }));
    if config.issuer.is_empty() && env.api_addr.is_empty() {
        resp.warnings.push(
            "Both \"issuer\" and the server's \"api_addr\" are empty. The issuer claim in \
             generated tokens will not be network reachable."
                .into(),
        );
    }
    Ok(resp)
}

async fn write_config(mut tx: Tx, data: &Map<String, Value>) -> Result<(Tx, Response)> {
    let p = Params(data);
    let Some(issuer) = p.str("issuer")? else {
        return Ok((tx, Response::empty()));
    };
    let mut resp = Response::empty();
    if !issuer.is_empty() {
        if !valid_issuer(issuer) {
            return Err(Error::bad(
                "invalid issuer, which must include only a scheme, host, and optional port \
                 (e.g. https://example.com:8200)",
            ));
        }
        resp.warnings.push(
            "If \"issuer\" is set explicitly, all tokens must be validated against that \
             address, including those issued by secondary clusters. Setting issuer to \"\" \
             will restore the default behavior of using the cluster's api_addr as the issuer."
                .into(),
        );
    }
    tx.put(
        CONFIG.into(),
        &Config {
            issuer: issuer.to_string(),
        },
    )?;
    Ok((tx, resp))
}

/// A key as the cache holds it (reads), the built-in `default` included.
async fn load_key(view: &View, name: &str, now: i64) -> Result<Option<NamedKey>> {
    let stored = view.get_json(&format!("{KEYS}{name}")).await?;
    Ok(stored.or_else(|| (name == DEFAULT_KEY).then(|| NamedKey::builtin(now))))
}

async fn list_keys(view: &View) -> Result<Response> {
    let mut names: BTreeSet<String> = view.list(KEYS).await?.into_iter().collect();
    names.insert(DEFAULT_KEY.into());
    Response::list(names.into_iter().collect())
}

async fn read_key(view: &View, name: &str, now: i64) -> Result<Response> {
    let key = load_key(view, name, now).await?.ok_or(Error::NotFound)?;
    Ok(Response::data(json!({
        "algorithm": key.algorithm.as_str(),
        "allowed_client_ids": key.allowed_client_ids,
        "rotation_period": key.rotation_period,
        "verification_ttl": key.verification_ttl,
    })))
}

async fn write_key(
    mut tx: Tx,
    name: &str,
    data: &Map<String, Value>,
    now: i64,
) -> Result<(Tx, Response)> {
    let p = Params(data);
    let existing = tx.key(name, now).await?;
    let created = existing.is_none();
    let mut key = existing.unwrap_or_else(|| NamedKey::new(Vec::new(), now));
    if let Some(d) = p.duration("rotation_period")? {
        key.rotation_period = d;
    }
    if key.rotation_period < 60 {
        return Err(Error::bad("rotation_period must be at least one minute"));
    }
    if let Some(d) = p.duration("verification_ttl")? {
        key.verification_ttl = d;
    }
    if key.verification_ttl > key.rotation_period.saturating_mul(10) {
        return Err(Error::bad(
            "verification_ttl cannot be longer than 10x rotation_period",
        ));
    }
    if !created {
        let too_long = tx
            .roles()
            .await?
            .values()
            .any(|r| r.key == name && r.ttl > key.verification_ttl);
        if too_long {
            return Err(Error::bad(format!(
                "unable to update key {name:?} because it is currently referenced by one or \
                 more roles with a token ttl greater than {} seconds",
                key.verification_ttl
            )));
        }
    }
    if let Some(ids) = p.str_list("allowed_client_ids")? {
        key.allowed_client_ids = ids;
    }
    let before = key.algorithm;
    if let Some(a) = p.str("algorithm")? {
        key.algorithm = Algorithm::parse(a)
            .ok_or_else(|| Error::bad(format!("unknown signing algorithm {a:?}")))?;
    }
    let next = now.saturating_add(key.rotation_period as i64);
    if next < key.next_rotation {
        key.next_rotation = next;
    }
    // New key material for a new key or a new algorithm; the built-in
    // default gets its own when a role first names it.
    if created || key.algorithm != before {
        key.renew(now).await?;
    }
    tx.put(format!("{KEYS}{name}"), &key)?;
    Ok((tx, Response::empty()))
}

async fn delete_key(mut tx: Tx, name: &str) -> Result<(Tx, Response)> {
    if name == DEFAULT_KEY {
        return Err(Error::bad(format!(
            "deletion of key {DEFAULT_KEY:?} not allowed"
        )));
    }
    let users: Vec<String> = tx
        .roles()
        .await?
        .into_iter()
        .filter(|(_, r)| r.key == name)
        .map(|(n, _)| n)
        .collect();
    if !users.is_empty() {
        return Err(Error::bad(format!(
            "unable to delete key {name:?} because it is currently referenced by these roles: {}",
            users.join(", ")
        )));
    }
    tx.delete(format!("{KEYS}{name}"));
    Ok((tx, Response::empty()))
}

async fn rotate_key(
    mut tx: Tx,
    name: &str,
    data: &Map<String, Value>,
    now: i64,
) -> Result<(Tx, Response)> {
    let ttl = Params(data).duration("verification_ttl")?;
    let mut key = tx
        .key(name, now)
        .await?
        .ok_or_else(|| Error::bad(format!("no named key found at {name:?}")))?;
    let ttl = ttl.unwrap_or(key.verification_ttl);
    key.rotate(now, ttl).await?;
    key.prune(now);
    tx.put(format!("{KEYS}{name}"), &key)?;
    Ok((tx, Response::empty()))
}

/// The background pass's change of one key, decided again on what storage
/// holds now (another node may have rotated it).
async fn rotate_if_due(mut tx: Tx, name: &str, now: i64) -> Result<(Tx, ())> {
    let Some(mut key) = tx.get::<NamedKey>(&format!("{KEYS}{name}")).await? else {
        return Ok((tx, ()));
    };
    let mut changed = key.prune(now);
    if now >= key.next_rotation {
        let ttl = key.verification_ttl;
        key.rotate(now, ttl).await?;
        changed = true;
    }
    if changed {
        tx.put(format!("{KEYS}{name}"), &key)?;
    }
    Ok((tx, ()))
}

async fn read_role(view: &View, name: &str) -> Result<Response> {
    let role: Role = view
        .get_json(&format!("{ROLES}{name}"))
        .await?
        .ok_or(Error::NotFound)?;
    Ok(Response::data(json!({
        "client_id": role.client_id,
        "key": role.key,
        "template": role.template,
        "ttl": role.ttl,
    })))
}

/// A role's template as given: JSON, or base64 of it.
fn decode_template(t: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| t.to_string())
}

/// Checks a template as Vault does when a role is written: it renders for
/// an empty entity, is a JSON object, and sets no reserved claim.
fn check_template(template: &str) -> Result<()> {
    let text = render_json(template, &TemplateData::default(), 0)
        .map_err(|e| Error::bad(format!("error parsing template: {e}")))?;
    // The error names where, never what (the input is not quoted back).
    let parsed: Map<String, Value> = serde_json::from_str(&text).map_err(|e| {
        let kind = match e.classify() {
            serde_json::error::Category::Data => "not a JSON object",
            serde_json::error::Category::Eof => "unexpected end of JSON input",
            _ => "invalid JSON",
        };
        Error::bad(format!(
            "error parsing template JSON: {kind} at line {} column {}",
            e.line(),
            e.column()
        ))
    })?;
    if let Some(k) = parsed
        .keys()
        .find(|k| RESERVED_CLAIMS.contains(&k.as_str()))
    {
        return Err(Error::bad(format!(
            "top level key {k:?} not allowed. Restricted keys: {}",
            RESERVED_CLAIMS.join(", ")
        )));
    }
    Ok(())
}

async fn write_role(
    mut tx: Tx,
    name: &str,
    data: &Map<String, Value>,
    now: i64,
) -> Result<(Tx, Response)> {
    let p = Params(data);
    let mut role = tx
        .get::<Role>(&format!("{ROLES}{name}"))
        .await?
        .unwrap_or(Role {
            key: String::new(),
            template: String::new(),
            client_id: String::new(),
            ttl: DAY,
        });
    if let Some(k) = p.str("key")? {
        role.key = k.to_string();
    }
    if role.key.is_empty() {
        return Err(Error::bad("the key parameter is required"));
    }
    if let Some(t) = p.str("template")? {
        role.template = decode_template(t);
    }
    if !role.template.is_empty() {
        check_template(&role.template)?;
    }
    if let Some(ttl) = p.duration("ttl")? {
        role.ttl = ttl;
    }
    let mut key = tx
        .key(&role.key, now)
        .await?
        .ok_or_else(|| Error::bad(format!("cannot find key {:?}", role.key)))?;
    if role.ttl > key.verification_ttl {
        return Err(Error::bad(
            "a role's token ttl cannot be longer than the verification_ttl of the key it references",
        ));
    }
    if let Some(id) = p.str("client_id")?.filter(|s| !s.is_empty()) {
        role.client_id = id.to_string();
    }
    if role.client_id.is_empty() {
        role.client_id = client_id();
    }
    if role.key == DEFAULT_KEY && key.current.is_none() {
        key.renew(now).await?;
        tx.put(format!("{KEYS}{DEFAULT_KEY}"), &key)?;
    }
    tx.put(format!("{ROLES}{name}"), &role)?;
    Ok((tx, Response::empty()))
}

/// `identity/oidc/token/<role>`: an ID token for the caller's entity.
async fn mint(env: &Env<'_>, name: &str) -> Result<Response> {
    let role: Role = env
        .view
        .get_json(&format!("{ROLES}{name}"))
        .await?
        .ok_or_else(|| Error::bad(format!("role {name:?} not found")))?;
    let key = load_key(env.view, &role.key, env.now)
        .await?
        .ok_or_else(|| Error::bad(format!("key {:?} not found", role.key)))?;
    if !key.allows(&role.client_id) {
        return Err(Error::bad(format!(
            "the key {:?} does not list the client ID of the role {name:?} as an allowed client ID",
            role.key
        )));
    }
    let entity_id = env
        .entity_id
        .filter(|e| !e.is_empty())
        .ok_or_else(no_entity)?;
    let signer = key
        .current
        .as_ref()
        .ok_or_else(|| Error::bad("signing key is nil; rotate the key and try again"))?;
    let resolved = env
        .identity
        .resolve(entity_id)
        .ok_or_else(|| Error::bad("the entity of the request's token no longer exists"))?;
    let mut resp = Response::default();
    let mut ttl = role.ttl;
    if ttl > key.verification_ttl {
        ttl = key.verification_ttl;
        resp.warnings.push(format!(
            "a role's token ttl cannot be longer than the verification_ttl of the key it \
             references, setting token ttl to {ttl}"
        ));
    }
    let config = load_config(env.view).await?;
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(issuer(&config, env.api_addr)));
    claims.insert("namespace".into(), json!("root"));
    claims.insert("sub".into(), json!(entity_id));
    claims.insert("aud".into(), json!(role.client_id));
    claims.insert("exp".into(), json!(env.now.saturating_add(ttl as i64)));
    claims.insert("iat".into(), json!(env.now));
    if !role.template.is_empty() {
        // As Vault: a template that does not render (or not to an object)
        // leaves the token with its standard claims; the role name goes to
        // the log, never the entity's values.
        match render_json(&role.template, &resolved.template, env.now)
            .map_err(|e| e.to_string())
            .and_then(|t| {
                serde_json::from_str::<Map<String, Value>>(&t)
                    .map_err(|_| "not a JSON object".into())
            }) {
            Ok(extra) => {
                for (k, v) in extra {
                    if !RESERVED_CLAIMS.contains(&k.as_str()) {
                        claims.insert(k, v);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(role = name, error = %e, "identity token template not applied")
            }
        }
    }
    let token = signer.sign_jwt(&Value::Object(claims))?;
    resp.data = Some(json!({
        "client_id": role.client_id,
        "token": token,
        "ttl": role.ttl,
    }));
    Ok(resp)
}

/// The public keys of every key a role uses, valid at `now`.
async fn jwks(view: &View, now: i64) -> Result<Vec<Jwk>> {
    let mut used = BTreeSet::new();
    for name in view.list(ROLES).await? {
        if let Some(r) = view.get_json::<Role>(&format!("{ROLES}{name}")).await? {
            used.insert(r.key);
        }
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for name in used {
        // The built-in default key publishes nothing before it has keys.
        let Some(key) = view
            .get_json::<PublicPart>(&format!("{KEYS}{name}"))
            .await?
        else {
            continue;
        };
        for p in key.published {
            if p.expire_at.is_none_or(|t| t > now) && seen.insert(p.jwk.kid.clone()) {
                out.push(p.jwk);
            }
        }
    }
    Ok(out)
}

async fn discovery(env: &Env<'_>) -> Result<Response> {
    let iss = issuer(&load_config(env.view).await?, env.api_addr);
    let algs: Vec<&str> = Algorithm::ALL.iter().map(|a| a.as_str()).collect();
    Ok(Response::raw(json!({
        "issuer": iss,
        "jwks_uri": format!("{iss}/.well-known/keys"),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
    })))
}

/// A claim that is a number of seconds (JSON numbers; fractions truncated).
fn seconds(claims: &Map<String, Value>, name: &str) -> Option<i64> {
    claims
        .get(name)
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
}

/// Why `token` is not an active identity token of this server, or `None`.
async fn inactive(env: &Env<'_>, token: &str, client_id: &str) -> Result<Option<String>> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let parse = |m: &str| Ok(Some(format!("error parsing token: {m}")));
    let parts: Vec<&str> = token.split('.').collect();
    let [h, c, s] = parts.as_slice() else {
        return parse("compact JWS format must have three parts");
    };
    let header: Option<Map<String, Value>> = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let Some(header) = header else {
        return parse("the token header is not base64url-encoded JSON");
    };
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if Algorithm::parse(alg).is_none() {
        return parse(&format!("unexpected signature algorithm {alg:?}"));
    }
    let kid = header.get("kid").and_then(Value::as_str);
    let Ok(sig) = URL_SAFE_NO_PAD.decode(s) else {
        return parse("the signature is not base64url-encoded");
    };
    let signed = &token[..h.len() + 1 + c.len()];
    let keys = jwks(env.view, env.now).await?;
    let verified = keys
        .iter()
        .filter(|k| kid.is_none_or(|kid| k.kid == kid))
        .any(|k| signing::verify(k, alg, signed.as_bytes(), &sig));
    let claims: Option<Map<String, Value>> = URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let (true, Some(claims)) = (verified, claims) else {
        return Ok(Some("unable to validate the token signature".into()));
    };
    let invalid = |m: &str| {
        Ok(Some(format!(
            "error validating claims: validation failed, {m}"
        )))
    };
    let expected = issuer(&load_config(env.view).await?, env.api_addr);
    if claims.get("iss").and_then(Value::as_str) != Some(expected.as_str()) {
        return invalid("invalid issuer claim (iss)");
    }
    if !client_id.is_empty() {
        let aud = match claims.get("aud") {
            Some(Value::String(a)) => a == client_id,
            Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(client_id)),
            _ => false,
        };
        if !aud {
            return invalid("invalid audience claim (aud)");
        }
    }
    let now = env.now;
    if seconds(&claims, "nbf").is_some_and(|nbf| now + LEEWAY < nbf) {
        return invalid("token not valid yet (nbf)");
    }
    if seconds(&claims, "exp").is_some_and(|exp| now - LEEWAY > exp) {
        return invalid("token is expired (exp)");
    }
    if seconds(&claims, "iat").is_some_and(|iat| now + LEEWAY < iat) {
        return invalid("token issued in the future (iat)");
    }
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let disabled = env
        .identity
        .read(|s| s.entities.get(sub).map(|e| e.disabled));
    Ok(match disabled {
        None => Some("entity was not found".into()),
        Some(true) => Some("entity is disabled".into()),
        Some(false) => None,
    })
}

/// `identity/oidc/introspect`: `{"active": true}`, or `false` with the reason.
async fn introspect(env: &Env<'_>, p: &Params<'_>) -> Result<Response> {
    let token = p.str("token")?.unwrap_or_default();
    let client_id = p.str("client_id")?.unwrap_or_default();
    Ok(Response::raw(
        match inactive(env, token, client_id).await? {
            None => json!({"active": true}),
            Some(error) => json!({"active": false, "error": error}),
        },
    ))
}

#[cfg(test)]
mod tests;

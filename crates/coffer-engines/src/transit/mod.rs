//! Vault's `transit` secrets engine: encryption as a service. Named keys
//! (`policy/<name>` in the mount's storage, behind the barrier) with
//! numbered versions; `encrypt`, `decrypt`, `rewrap`, `datakey`, `sign`,
//! `verify`, `hmac`, `hash`, `random`, key rotation (by request and on the
//! key's `auto_rotate_period`) and export of exportable keys.
//!
//! Concurrency: every change of a key (create, config, rotate, trim,
//! delete, the automatic rotation) runs under one write lock of the mount,
//! builds a new [`Policy`], persists it, and only then publishes it to the
//! in-memory cache. Operations read the cache's published snapshot, so a
//! ciphertext or signature always names a version that is stored.
//!
//! On storage several nodes share, a key is persisted only if its entry is
//! still the one the change was built from (a conditional write): two
//! nodes rotating one key at once cannot both store a version N+1, one of
//! whose key material would be lost with everything encrypted under it.
//! The loser gets a 409 and drops its copy; the change log makes every
//! node drop a key another node changed ([`Engine::changed_elsewhere`]).

mod crypt;
mod keys;
mod material;
mod policy;
mod signing;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::barrier::EntryVersion;
use crate::engine::{Engine, EngineCtx};
use crate::{Error, Operation, Request, Response, Result};
use policy::Policy;

/// The mount type.
pub const KIND: &str = "transit";

/// Storage prefix of the keys.
const POLICY_PREFIX: &str = "policy/";

/// How often the background pass looks for keys due for rotation.
const ROTATE_SCAN: Duration = Duration::from_secs(10);

/// The transit engine of one mount.
#[derive(Default)]
pub struct Transit {
    /// Published keys, with the state of their stored entry they came from.
    cache: parking_lot::RwLock<HashMap<String, (Arc<Policy>, EntryVersion)>>,
    write: tokio::sync::Mutex<()>,
    last_scan: parking_lot::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Transit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transit")
            .field("cached_keys", &self.cache.read().len())
            .finish()
    }
}

/// Whether `name` is a key name Vault accepts (`\w([\w.-]*\w)?`).
fn valid_name(name: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = name.chars();
    match (chars.next(), name.chars().last()) {
        (Some(first), Some(last)) => {
            word(first) && word(last) && name.chars().all(|c| word(c) || c == '-' || c == '.')
        }
        _ => false,
    }
}

impl Transit {
    /// A transit engine with nothing cached.
    pub fn new() -> Self {
        Transit::default()
    }

    /// The published snapshot of key `name`, loading it on first use.
    async fn get(&self, ctx: &EngineCtx<'_>, name: &str) -> Result<Option<Arc<Policy>>> {
        if let Some((p, _)) = self.cache.read().get(name) {
            return Ok(Some(p.clone()));
        }
        // A miss loads under the write lock, so it cannot publish a copy
        // older than one a concurrent writer has just stored.
        let _g = self.write.lock().await;
        self.load_locked(ctx, name).await
    }

    /// The key as stored; the caller holds the write lock.
    async fn load_locked(&self, ctx: &EngineCtx<'_>, name: &str) -> Result<Option<Arc<Policy>>> {
        if let Some((p, _)) = self.cache.read().get(name) {
            return Ok(Some(p.clone()));
        }
        let (bytes, read) = ctx
            .view
            .get_versioned(&format!("{POLICY_PREFIX}{name}"))
            .await?;
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let p = Arc::new(Policy::from_bytes(&bytes)?);
        self.cache
            .write()
            .insert(name.to_string(), (p.clone(), read));
        Ok(Some(p))
    }

    /// Persists `p` if its stored entry is still the one the caller loaded
    /// (absent when it loaded none), then publishes it; the caller holds the
    /// write lock. Another node's change in between is a 409, and the stale
    /// copy is dropped so that a retry starts from the stored key.
    async fn store_locked(&self, ctx: &EngineCtx<'_>, p: Policy) -> Result<Arc<Policy>> {
        let key = format!("{POLICY_PREFIX}{}", p.name);
        let read = self
            .cache
            .read()
            .get(&p.name)
            .map_or(EntryVersion::ABSENT, |(_, v)| *v);
        let op = crate::barrier::BarrierOp::Put(key.clone(), p.to_bytes()?);
        if !ctx
            .view
            .write_batch_if(vec![(key.clone(), read)], vec![op])
            .await?
        {
            self.cache.write().remove(&p.name);
            return Err(Error::Status {
                code: 409,
                errors: vec![format!(
                    "key {} was changed concurrently (on another node); try again",
                    p.name
                )],
            });
        }
        // Published as read back, so the copy and its state always agree.
        self.cache.write().remove(&p.name);
        self.load_locked(ctx, &p.name)
            .await?
            .ok_or_else(|| Error::Internal(format!("key {} vanished after its write", p.name)))
    }

    /// Deletes key `name` from storage and the cache; the caller holds the
    /// write lock.
    async fn remove_locked(&self, ctx: &EngineCtx<'_>, name: &str) -> Result<()> {
        ctx.view.delete(&format!("{POLICY_PREFIX}{name}")).await?;
        self.cache.write().remove(name);
        Ok(())
    }

    /// Rotates every key whose `auto_rotate_period` has passed since its
    /// latest version was made.
    async fn rotate_due(&self, ctx: &EngineCtx<'_>) -> Result<()> {
        let names = ctx.view.list(POLICY_PREFIX).await?;
        let now = crate::util::now();
        for name in names {
            let Some(p) = self.get(ctx, &name).await? else {
                continue;
            };
            if !p.rotation_due(now) {
                continue;
            }
            let _g = self.write.lock().await;
            let Some(cur) = self.load_locked(ctx, &name).await? else {
                continue;
            };
            if !cur.rotation_due(now) {
                continue;
            }
            let mut next = (*cur).clone();
            let next = blocking(move || next.rotate().map(|()| next)).await?;
            let version = next.latest_version;
            self.store_locked(ctx, next).await?;
            tracing::info!(mount = %ctx.mount.path, key = %name, version, "transit key rotated on its schedule");
        }
        Ok(())
    }
}

/// Runs `f` on a blocking thread: key generation takes seconds for
/// RSA-4096 and must not hold up the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| Error::Stopped("the transit worker"))?
}

/// Splits `rest` into a key name and an optional last segment.
fn name_and_tail(rest: &str) -> Result<(&str, Option<&str>)> {
    let (name, tail) = match rest.split_once('/') {
        Some((n, t)) => (n, Some(t)),
        None => (rest, None),
    };
    if !valid_name(name) || tail.is_some_and(|t| t.is_empty() || t.contains('/')) {
        return Err(unsupported(rest));
    }
    Ok((name, tail))
}

fn unsupported(path: &str) -> Error {
    Error::UnsupportedPath(format!("unsupported path: {path:?}"))
}

fn writes_only(req: &Request) -> Result<()> {
    if matches!(req.operation, Operation::Create | Operation::Update) {
        Ok(())
    } else {
        Err(Error::UnsupportedOperation)
    }
}

#[async_trait]
impl Engine for Transit {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn changed_elsewhere(&self, key: &str) {
        if let Some(name) = key.strip_prefix(POLICY_PREFIX) {
            self.cache.write().remove(name);
        }
    }

    async fn exists(
        &self,
        ctx: &EngineCtx<'_>,
        _req: &Request,
        path: &str,
    ) -> Result<Option<bool>> {
        // Vault's existence check on encrypt: writing to a key that does not
        // exist is a `create`, which makes the key (create-on-encrypt).
        match path.strip_prefix("encrypt/") {
            Some(name) if valid_name(name) => Ok(Some(self.get(ctx, name).await?.is_some())),
            _ => Ok(None),
        }
    }

    async fn periodic(&self, ctx: &EngineCtx<'_>) -> Result<()> {
        {
            let mut last = self.last_scan.lock();
            if last.is_some_and(|t| t.elapsed() < ROTATE_SCAN) {
                return Ok(());
            }
            *last = Some(Instant::now());
        }
        self.rotate_due(ctx).await
    }

    async fn handle(&self, ctx: &EngineCtx<'_>, req: &Request, path: &str) -> Result<Response> {
        let (head, rest) = match path.split_once('/') {
            Some((h, r)) => (h, r),
            None => (path, ""),
        };
        match head {
            "keys" => keys::handle(self, ctx, req, rest).await,
            "export" => keys::export(self, ctx, req, rest).await,
            "encrypt" | "decrypt" | "rewrap" => {
                writes_only(req)?;
                let (name, tail) = name_and_tail(rest)?;
                if tail.is_some() {
                    return Err(unsupported(path));
                }
                match head {
                    "encrypt" => crypt::encrypt(self, ctx, req, name).await,
                    "decrypt" => crypt::decrypt(self, ctx, req, name).await,
                    _ => crypt::rewrap(self, ctx, req, name).await,
                }
            }
            "datakey" => {
                writes_only(req)?;
                let Some((kind, name)) = rest.split_once('/') else {
                    return Err(unsupported(path));
                };
                let (name, tail) = name_and_tail(name)?;
                if tail.is_some() {
                    return Err(unsupported(path));
                }
                crypt::datakey(self, ctx, req, kind, name).await
            }
            "sign" | "verify" | "hmac" => {
                writes_only(req)?;
                let (name, tail) = name_and_tail(rest)?;
                match head {
                    "sign" => signing::sign(self, ctx, req, name, tail).await,
                    "verify" => signing::verify(self, ctx, req, name, tail).await,
                    _ => signing::hmac(self, ctx, req, name, tail).await,
                }
            }
            "hash" => {
                writes_only(req)?;
                crate::tools::hash(req, rest)
            }
            "random" => {
                writes_only(req)?;
                crate::tools::random_bytes(req, rest)
            }
            _ => Err(unsupported(path)),
        }
    }
}

#[cfg(test)]
mod name_tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "my-key", "k.1", "x_y", "Abc"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a/b", "a b", ".", "é"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}

//! The cubbyhole engine: private storage of one token, mounted at
//! `cubbyhole/` on every core, as Vault's.
//!
//! The engine never sees whose cubbyhole it serves: the core hands it a
//! storage view already scoped to the request's token
//! ([`token_view`], keyed by the token's hash, never by anything in the
//! path), so no path spelling reaches another token's data. The data of a
//! token goes when the token is revoked or expires
//! ([`destroy`], called from [`crate::core::Core::after_token_revoked`]).
//! A response-wrapping token's cubbyhole holds the wrapped response under
//! `response` ([`crate::wrapping`]).

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::barrier::View;
use crate::engine::{Engine, EngineCtx};
use crate::mounts::MountEntry;
use crate::token::TokenEntry;
use crate::{Error, Operation, Request, Response, Result};

/// Where the cubbyhole engine is mounted; it cannot be moved or removed.
pub const MOUNT_PATH: &str = "cubbyhole/";

/// The mount type.
pub const KIND: &str = "cubbyhole";

/// The mount table entry of the built-in cubbyhole mount.
pub fn mount_entry() -> MountEntry {
    let mut entry = MountEntry::new(MOUNT_PATH, KIND);
    entry.description = "per-token private secret storage".into();
    entry.local = true;
    entry
}

/// The part of the cubbyhole mount's storage that belongs to `token`.
pub fn token_view(mount_view: &View, token: &TokenEntry) -> View {
    mount_view.sub(&format!("{}/", token.id_hash))
}

/// Deletes the cubbyhole of the token stored under `hash`.
pub async fn destroy(mount_view: &View, hash: &str) -> Result<()> {
    mount_view.delete_prefix(&format!("{hash}/")).await
}

/// The cubbyhole engine. Its view is one token's cubbyhole (see the module docs).
pub struct Cubbyhole;

#[async_trait]
impl Engine for Cubbyhole {
    async fn exists(
        &self,
        ctx: &EngineCtx<'_>,
        _req: &Request,
        path: &str,
    ) -> Result<Option<bool>> {
        if path.is_empty() || path.ends_with('/') {
            return Ok(None);
        }
        Ok(Some(ctx.view.get(path).await?.is_some()))
    }

    async fn handle(&self, ctx: &EngineCtx<'_>, req: &Request, path: &str) -> Result<Response> {
        match req.operation {
            Operation::List => {
                let dir = if path.is_empty() || path.ends_with('/') {
                    path.to_string()
                } else {
                    format!("{path}/")
                };
                Response::list(ctx.view.list(&dir).await?)
            }
            _ if path.is_empty() || path.ends_with('/') => Err(Error::UnsupportedOperation),
            Operation::Read => {
                let data: Map<String, Value> =
                    ctx.view.get_json(path).await?.ok_or(Error::NotFound)?;
                Ok(Response::data(Value::Object(data)))
            }
            Operation::Create | Operation::Update => {
                if req.data.is_empty() {
                    return Err(Error::bad("missing data fields"));
                }
                ctx.view.put_json(path, &req.data).await?;
                Ok(Response::empty())
            }
            Operation::Delete => {
                ctx.view.delete(path).await?;
                Ok(Response::empty())
            }
            Operation::Patch => Err(Error::UnsupportedOperation),
        }
    }
}

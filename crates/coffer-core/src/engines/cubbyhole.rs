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
use crate::token::{TokenEntry, TokenStore};
use crate::{Error, Operation, Request, Response, Result};

/// Where the cubbyhole engine is mounted; it cannot be moved or removed.
pub const MOUNT_PATH: &str = "cubbyhole/";

/// The mount type.
pub const KIND: &str = crate::mounts::CUBBYHOLE_KIND;

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

/// Deletes the cubbyholes whose token is gone or dead: those left by a
/// crash between a token's revocation and its cubbyhole's, or by tokens
/// that tidy removed. Run with the token store's tidy. Returns how many.
pub async fn sweep(mount_view: &View, tokens: &TokenStore) -> Result<usize> {
    let mut removed = 0;
    for key in mount_view.list("").await? {
        let Some(hash) = key.strip_suffix('/') else {
            continue;
        };
        if tokens.lookup_hash(hash).await?.is_none() {
            destroy(mount_view, hash).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The cubbyhole engine. Its view is one token's cubbyhole (see the module docs).
pub struct Cubbyhole;

#[async_trait]
impl Engine for Cubbyhole {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use crate::core::Core;
    use crate::{Operation, Request};

    async fn core() -> (Arc<Core>, String) {
        let core = Core::new(
            Arc::new(coffer_storage::MemoryBackend::new()),
            Default::default(),
        );
        let (_key, root) = core.dev_setup(None).await.unwrap().unwrap();
        (core, root.to_string())
    }

    async fn stored_keys(core: &Core) -> Vec<String> {
        let view = core
            .router
            .read()
            .get(super::MOUNT_PATH)
            .unwrap()
            .view
            .clone();
        view.keys_with_prefix("").await.unwrap()
    }

    async fn child(core: &Core, root: &str, ttl: &str) -> String {
        let req = Request::new(Operation::Update, "auth/token/create")
            .with_token(root)
            .with_data(json!({"ttl": ttl, "policies": ["default"]}));
        let resp = core.handle(req).await.unwrap();
        resp.auth.unwrap()["client_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[tokio::test]
    async fn a_cubbyhole_goes_with_its_token_revoked_or_expired() {
        let (core, root) = core().await;
        for (ttl, revoke) in [("1h", true), ("1s", false)] {
            let t = child(&core, &root, ttl).await;
            let put = Request::new(Operation::Update, "cubbyhole/k")
                .with_token(&t)
                .with_data(json!({"v": "x"}));
            core.handle(put).await.unwrap();
            assert_eq!(stored_keys(&core).await.len(), 1);
            if revoke {
                let req = Request::new(Operation::Update, "auth/token/revoke-self").with_token(&t);
                core.handle(req).await.unwrap();
            } else {
                tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
                core.tokens.revoke_expired(&core).await.unwrap();
            }
            assert!(stored_keys(&core).await.is_empty(), "ttl {ttl}");
        }
    }

    #[tokio::test]
    async fn the_sweep_removes_only_cubbyholes_without_a_live_token() {
        let (core, root) = core().await;
        let t = child(&core, &root, "1h").await;
        let put = Request::new(Operation::Update, "cubbyhole/k")
            .with_token(&t)
            .with_data(json!({"v": "x"}));
        core.handle(put).await.unwrap();
        let view = core
            .router
            .read()
            .get(super::MOUNT_PATH)
            .unwrap()
            .view
            .clone();
        view.put_json("0123abcd/left-over", &json!({"v": "y"}))
            .await
            .unwrap();
        assert_eq!(super::sweep(&view, &core.tokens).await.unwrap(), 1);
        let left = stored_keys(&core).await;
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(!left[0].contains("0123abcd"));
    }

    #[tokio::test]
    async fn an_unwrapped_or_expired_answer_leaves_nothing_behind() {
        let (core, root) = core().await;
        let mut req = Request::new(Operation::Read, "sys/mounts").with_token(&root);
        req.wrap_ttl = Some(60);
        let info = core.handle(req).await.unwrap().wrap_info.unwrap();
        assert_eq!(stored_keys(&core).await.len(), 1);
        let unwrap =
            Request::new(Operation::Update, "sys/wrapping/unwrap").with_token(&*info.token);
        assert!(core.handle(unwrap).await.unwrap().data.is_some());
        assert!(stored_keys(&core).await.is_empty());
        assert!(core.tokens.lookup(&info.token).await.unwrap().is_none());

        let mut req = Request::new(Operation::Read, "sys/mounts").with_token(&root);
        req.wrap_ttl = Some(1);
        core.handle(req).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        core.tokens.revoke_expired(&core).await.unwrap();
        assert!(stored_keys(&core).await.is_empty());
    }
}

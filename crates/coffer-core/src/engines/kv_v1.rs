//! KV version 1: one unversioned JSON object per path.

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::engine::{Engine, EngineCtx};
use crate::{Error, Operation, Request, Response, Result};

/// Vault's advisory TTL for KV v1 reads: 32 days.
const KV_V1_TTL: u64 = 2_764_800;

/// The KV v1 engine.
pub struct KvV1;

#[async_trait]
impl Engine for KvV1 {
    async fn exists(
        &self,
        ctx: &EngineCtx<'_>,
        _req: &Request,
        path: &str,
    ) -> Result<Option<bool>> {
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
                let mut resp = Response::data(Value::Object(data));
                resp.lease_duration = KV_V1_TTL;
                Ok(resp)
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

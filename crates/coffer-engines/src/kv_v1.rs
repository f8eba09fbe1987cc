//! KV version 1: one unversioned JSON object per path.

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::engine::{Engine, EngineCtx};
use crate::{Error, Operation, Request, Response, Result};

/// Vault's advisory TTL for KV v1 reads: 32 days.
const KV_V1_TTL: u64 = 2_764_800;

/// The advisory TTL of a KV v1 entry, as Vault's kv v1 reads it: the
/// entry's own `ttl` field (else `lease`), seconds or a Go duration; the
/// default when absent or unreadable.
fn advisory_ttl(data: &Map<String, Value>) -> u64 {
    let field = data.get("ttl").or_else(|| data.get("lease"));
    let parsed = match field {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => crate::util::parse_duration(s),
        _ => None,
    };
    parsed.unwrap_or(KV_V1_TTL)
}

/// The KV v1 engine.
pub struct KvV1;

#[async_trait]
impl Engine for KvV1 {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

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
                let ttl = advisory_ttl(&data);
                let mut resp = Response::data(Value::Object(data));
                resp.lease_duration = ttl;
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_entrys_ttl_is_the_lease_duration() {
        let m = |v: Value| v.as_object().cloned().unwrap();
        assert_eq!(advisory_ttl(&m(json!({"ttl": "1h", "v": "x"}))), 3600);
        assert_eq!(advisory_ttl(&m(json!({"ttl": 90}))), 90);
        assert_eq!(advisory_ttl(&m(json!({"lease": "30m"}))), 1800);
        assert_eq!(advisory_ttl(&m(json!({"ttl": "bogus"}))), KV_V1_TTL);
        assert_eq!(advisory_ttl(&m(json!({"v": "x"}))), KV_V1_TTL);
    }
}

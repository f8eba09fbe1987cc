//! The system backend's audit endpoints, acting through the broker
//! (coffer-audit's [`AuditBroker`]):
//!
//! * `GET sys/audit`, `PUT sys/audit/:path`, `DELETE sys/audit/:path`,
//!   `PUT sys/audit-hash/:path` (Vault's; `update` on the path, no sudo, as in OpenBao);
//! * `GET sys/audit/:path/verify-key`: the Ed25519 public key checkpoints
//!   are signed with (Coffer's);
//! * `GET sys/coffer/access/<secret path>[?since=T]`: who read a secret;
//! * `GET sys/coffer/access-unused?since=90d`: secrets nobody read since.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::audit::access::AccessRecord;
use crate::audit::config::{Options, TYPES};
use crate::audit::{AuditBroker, NewDevice};
use crate::core::Core;
use crate::token::TokenEntry;
use crate::util::{now, parse_duration, rfc3339, Params};
use crate::{Error, Operation, Request, Response, Result};

/// Handles `sys/audit`, `sys/audit/:path`, `sys/audit-hash/:path` and
/// `sys/coffer/access*`; `rest` is the path below `sys/`.
pub(crate) async fn handle_sys(
    core: &Core,
    req: &Request,
    rest: &str,
    _token: &TokenEntry,
) -> Result<Response> {
    let broker = &core.audit;
    let op = req.operation;
    let write = matches!(op, Operation::Create | Operation::Update);
    if rest == "audit" || rest == "audit/" {
        return match op {
            Operation::Read | Operation::List => Ok(list(broker)),
            _ => Err(Error::UnsupportedOperation),
        };
    }
    if let Some(path) = rest.strip_prefix("audit-hash/") {
        if !write {
            return Err(Error::UnsupportedOperation);
        }
        let params = Params(&req.data);
        let input = params.str("input")?.unwrap_or_default();
        let hash = broker
            .hmac(&normalize(path)?, input)
            .ok_or_else(|| Error::bad(format!("unknown audit backend {path}")))?;
        return Ok(Response::with_top_level(json!({ "hash": hash })));
    }
    if let Some(rest) = rest.strip_prefix("coffer/") {
        return access(core, req, rest).await;
    }
    let path = rest.strip_prefix("audit/").unwrap_or(rest);
    if let Some(dev) = path.strip_suffix("/verify-key") {
        if op != Operation::Read {
            return Err(Error::UnsupportedOperation);
        }
        let dev = normalize(dev)?;
        if !broker.has_device(&dev) {
            return Err(Error::bad(format!("unknown audit backend {dev}")));
        }
        let (public_key, key_id) = broker.verify_key()?;
        return Ok(Response::data(json!({
            "algorithm": "ed25519",
            "public_key": public_key,
            "key_id": key_id,
        })));
    }
    match op {
        Operation::Create | Operation::Update => enable(broker, req, &normalize(path)?).await,
        Operation::Delete => disable(broker, &normalize(path)?).await,
        _ => Err(Error::UnsupportedOperation),
    }
}

/// A device path with one trailing slash; empty or dotted paths refused.
fn normalize(path: &str) -> Result<String> {
    let p = path.trim_matches('/');
    if p.is_empty() || p.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(Error::bad("invalid audit device path"));
    }
    Ok(format!("{p}/"))
}

fn list(broker: &AuditBroker) -> Response {
    Response::with_top_level(Value::Object(broker.device_table()))
}

async fn enable(broker: &AuditBroker, req: &Request, path: &str) -> Result<Response> {
    let p = Params(&req.data);
    let kind = p
        .str("type")?
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::bad("type is required"))?;
    if !TYPES.contains(&kind) {
        return Err(Error::bad(format!("unknown backend type: {kind:?}")));
    }
    let mut options = BTreeMap::new();
    if let Some(o) = p.object("options")? {
        for (k, v) in o {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                _ => return Err(Error::bad(format!("options.{k}: expected a string"))),
            };
            options.insert(k.clone(), v);
        }
    }
    Options::parse(&options)?;
    let new = NewDevice {
        kind: kind.to_string(),
        description: p.str("description")?.unwrap_or_default().to_string(),
        options,
        local: p.bool("local")?.unwrap_or(false),
    };
    broker.enable(path, new).await?;
    Ok(Response::empty())
}

async fn disable(broker: &AuditBroker, path: &str) -> Result<Response> {
    broker.disable(path).await?;
    Ok(Response::empty())
}

/// A time bound: a duration back from now ("90d") or an RFC 3339 time.
fn parse_since(s: &str) -> Result<i64> {
    if let Some(secs) = parse_duration(s) {
        let secs = i64::try_from(secs).map_err(|_| Error::bad("since: too long"))?;
        return Ok(now().timestamp().saturating_sub(secs));
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp())
        .map_err(|_| Error::bad("since: a duration (90d) or an RFC 3339 time"))
}

fn time_json(secs: i64) -> Value {
    if secs <= 0 {
        return Value::Null;
    }
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| json!(rfc3339(&t)))
        .unwrap_or(Value::Null)
}

async fn access(core: &Core, req: &Request, rest: &str) -> Result<Response> {
    if req.operation != Operation::Read {
        return Err(Error::UnsupportedOperation);
    }
    let p = Params(&req.data);
    let since = p
        .str("since")?
        .filter(|s| !s.is_empty())
        .map(parse_since)
        .transpose()?;
    let broker = &core.audit;
    if let Some(path) = rest.strip_prefix("access/") {
        let path = secret_path(core, path.trim_start_matches('/'));
        let rec = broker.access_record(&path).await?.unwrap_or(AccessRecord {
            path: path.clone(),
            ..Default::default()
        });
        let cutoff = since.unwrap_or(i64::MIN);
        let readers: Vec<Value> = rec
            .readers
            .iter()
            .filter(|r| r.last_read >= cutoff)
            .map(|r| {
                json!({
                    "accessor": r.accessor,
                    "display_name": r.display_name,
                    "policies": r.policies,
                    "last_read": time_json(r.last_read),
                    "reads": r.reads,
                })
            })
            .collect();
        return Ok(Response::data(json!({
            "path": path,
            "last_read": time_json(rec.last_read),
            "reads": rec.reads,
            "readers": readers,
        })));
    }
    if rest == "access-unused" {
        let cutoff = since.unwrap_or_else(|| now().timestamp() - 90 * 86_400);
        let mut unused = Vec::new();
        for path in all_secrets(core).await? {
            let rec: Option<AccessRecord> = broker.access_record(&path).await?;
            let last = rec.map(|r| r.last_read).unwrap_or(0);
            if last < cutoff {
                unused.push(json!({"path": path, "last_read": time_json(last)}));
            }
        }
        return Ok(Response::data(json!({
            "since": time_json(cutoff),
            "secrets": unused,
        })));
    }
    Err(Error::UnsupportedPath(format!(
        "unsupported path sys/coffer/{rest}"
    )))
}

/// The API path reads of `path` are recorded under: a KV v2 path given
/// without `data/` gets it.
fn secret_path(core: &Core, path: &str) -> String {
    let router = core.router.read();
    if let Some((m, rel)) = router.route(path) {
        let v2 =
            m.entry.kind == "kv" && m.entry.options.get("version").map(String::as_str) == Some("2");
        if v2 && !rel.starts_with("data/") {
            let rel = rel.strip_prefix("metadata/").unwrap_or(rel);
            return format!("{}data/{rel}", m.entry.path);
        }
    }
    path.to_string()
}

/// Every secret of every KV mount, as the API path its reads are recorded under.
async fn all_secrets(core: &Core) -> Result<Vec<String>> {
    let mounts: Vec<_> = core
        .router
        .read()
        .entries()
        .filter(|m| m.entry.kind == "kv")
        .map(|m| (m.entry.clone(), m.view.clone()))
        .collect();
    let mut out = Vec::new();
    for (entry, view) in mounts {
        let v2 = entry.options.get("version").map(String::as_str) == Some("2");
        if v2 {
            for k in view.keys_with_prefix("metadata/").await? {
                if let Some(p) = k.strip_prefix("metadata/") {
                    out.push(format!("{}data/{p}", entry.path));
                }
            }
        } else {
            for k in view.keys_with_prefix("").await? {
                out.push(format!("{}{k}", entry.path));
            }
        }
    }
    out.sort();
    Ok(out)
}

//! The HTTP-facing endpoints of the audit subsystem:
//!
//! * `GET sys/audit`, `PUT sys/audit/:path`, `DELETE sys/audit/:path`,
//!   `PUT sys/audit-hash/:path` (Vault's; `update` on the path, no sudo, as in OpenBao);
//! * `GET sys/audit/:path/verify-key`: the Ed25519 public key checkpoints
//!   are signed with (Coffer's);
//! * `GET sys/coffer/access/<secret path>[?since=T]`: who read a secret;
//! * `GET sys/coffer/access-unused?since=90d`: secrets nobody read since.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::access::AccessRecord;
use super::chain::ChainState;
use super::config::{DeviceConfig, Options, TYPES};
use super::device::Device;
use super::writer::Writer;
use super::{AuditBroker, CONFIG_KEY};
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
        let dev = broker
            .device(&normalize(path)?)
            .ok_or_else(|| Error::bad(format!("unknown audit backend {path}")))?;
        return Ok(with_top_level(json!({"hash": dev.hmac(input)})));
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
        broker
            .device(&dev)
            .ok_or_else(|| Error::bad(format!("unknown audit backend {dev}")))?;
        let signer = broker.signer()?;
        return Ok(Response::data(json!({
            "algorithm": "ed25519",
            "public_key": signer.public_key(),
            "key_id": signer.key_id(),
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

/// Vault answers some sys reads both at the top level and under `data`.
pub(super) fn with_top_level(data: Value) -> Response {
    let mut body = data.clone();
    if let Value::Object(top) = &mut body {
        top.insert("data".into(), data);
        top.insert("request_id".into(), json!(coffer_crypto::random::uuid()));
        top.insert("lease_id".into(), json!(""));
        top.insert("renewable".into(), json!(false));
        top.insert("lease_duration".into(), json!(0));
        top.insert("wrap_info".into(), Value::Null);
        top.insert("warnings".into(), Value::Null);
        top.insert("auth".into(), Value::Null);
    }
    Response::raw(body)
}

fn list(broker: &AuditBroker) -> Response {
    let mut m = Map::new();
    for d in broker.devices.read().iter() {
        m.insert(d.config.path.clone(), d.config.to_json());
    }
    with_top_level(Value::Object(m))
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
    let _admin = broker.admin.lock().await;
    let mut table = broker.stored_configs().await?;
    if table.iter().any(|d| d.path == path) {
        return Err(Error::bad(format!("path already in use: {path}")));
    }
    let salt = coffer_crypto::random::bytes(32);
    let cfg = DeviceConfig {
        path: path.to_string(),
        kind: kind.to_string(),
        description: p.str("description")?.unwrap_or_default().to_string(),
        options,
        local: p.bool("local")?.unwrap_or(false),
        salt: hex::encode(&salt),
    };
    let settings = broker.settings.read().clone();
    let dev = Device::for_server(cfg.clone(), ChainState::default(), &settings)?;
    if dev.best_effort() && !broker.devices.read().iter().any(|d| !d.best_effort()) {
        return Err(Error::bad(UDP_ALONE));
    }
    let dev = Writer::start(dev)?;
    // The test entry: a device that cannot write its first line is refused.
    let signer = broker.signer()?;
    let state = dev
        .checkpoint("start", &signer)
        .await
        .map_err(|e| Error::bad(format!("audit device {path} cannot write: {}", e)))?;
    table.push(cfg);
    broker.view.put_json(CONFIG_KEY, &table).await?;
    broker.save_state(path, &state).await;
    broker.devices.write().push(Arc::new(dev));
    tracing::info!(device = %path, kind, "audit device enabled");
    Ok(Response::empty())
}

/// Why a UDP device cannot be the only one.
const UDP_ALONE: &str = "a UDP socket device is best effort (a datagram goes out whether or not \
     anyone receives it) and cannot be the only audit device: enable a file, TCP socket or \
     syslog device first";

async fn disable(broker: &AuditBroker, path: &str) -> Result<Response> {
    let _admin = broker.admin.lock().await;
    {
        let devices = broker.devices.read();
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
    let mut table = broker.stored_configs().await?;
    let before = table.len();
    table.retain(|d| d.path != path);
    if table.len() == before {
        return Ok(Response::empty());
    }
    broker.view.put_json(CONFIG_KEY, &table).await?;
    let removed = {
        let mut devices = broker.devices.write();
        let i = devices.iter().position(|d| d.config.path == path);
        i.map(|i| devices.remove(i))
    };
    if let (Some(dev), Ok(signer)) = (removed, broker.signer()) {
        let _ = dev.checkpoint("disable", &signer).await;
    }
    broker.view.delete(&super::state_key(path)).await?;
    tracing::info!(device = %path, "audit device disabled");
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
        let rec = broker
            .access
            .get(&broker.view, &path)
            .await?
            .unwrap_or(AccessRecord {
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
            let rec: Option<AccessRecord> = broker.access.get(&broker.view, &path).await?;
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

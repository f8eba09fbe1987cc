//! The system backend: `sys/` endpoints for seal, health, mounts and keys.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use crate::core::{Core, VERSION};
use crate::engine::Access;
use crate::mounts::{normalize_mount_path, MountEntry};
use crate::token::TokenEntry;
use crate::util::{now, rfc3339, Params};
use crate::{Error, Operation, Request, Response, Result};

/// Mount paths no engine may take.
const RESERVED: [&str; 4] = ["sys/", "auth/", "cubbyhole/", "identity/"];
use coffer_engine::mounts::SYSTEM_MAX_TTL as SYSTEM_TTL;

/// What the pipeline demands of a `sys/` request (`rest` is the path below
/// `sys/`): Vault's status endpoints are open (health, seal status and init
/// even while sealed), the quorum and wrapping-lookup endpoints anonymous,
/// everything else needs a token.
pub(crate) fn access(core: &Core, req: &Request, rest: &str) -> Access {
    const OPEN_SEALED: Access = Access::Open { while_sealed: true };
    const OPEN: Access = Access::Open {
        while_sealed: false,
    };
    match (rest, req.operation) {
        ("health" | "seal-status" | "init" | "unseal", _) => OPEN_SEALED,
        ("leader", _) => OPEN,
        ("metrics", Operation::Read) if core.config.unauthenticated_metrics_access => OPEN_SEALED,
        _ if crate::sys_ui::is_anonymous_list(req) => OPEN,
        (r, _) if crate::wrapping::is_unauthenticated(r) => Access::Anonymous,
        _ if crate::sys_rekey::is_path(&req.path)
            || crate::sys_generate_root::is_path(&req.path) =>
        {
            // A quorum of unseal key shares authorizes these, as in Vault;
            // the shares, the OTP and the new keys are HMAC'd in the trail.
            Access::Anonymous
        }
        _ => Access::Token,
    }
}

/// Answers the `sys/` routes [`access`] marks open or anonymous.
pub(crate) async fn handle_without_token(
    core: &Core,
    req: &Request,
    rest: &str,
) -> Result<Response> {
    match (rest, req.operation) {
        ("health", Operation::Read) => health(core, req).await,
        ("seal-status", Operation::Read) => Ok(Response::raw(core.seal_status().await?)),
        ("init", Operation::Read) => Ok(Response::raw(
            json!({"initialized": core.is_initialized().await?}),
        )),
        ("init", Operation::Create | Operation::Update) => init(core, req).await,
        ("unseal", Operation::Create | Operation::Update) => unseal(core, req).await,
        ("leader", Operation::Read) => Ok(Response::raw(core.leader_status().await?)),
        ("metrics", Operation::Read) => crate::sys_metrics::handle(core, req).await,
        _ if crate::sys_ui::is_anonymous_list(req) => Ok(crate::sys_ui::anonymous_list()),
        ("health" | "seal-status" | "init" | "unseal" | "leader", _) => {
            Err(Error::UnsupportedOperation)
        }
        (r, _) if crate::wrapping::is_unauthenticated(r) => {
            crate::wrapping::lookup(core, req).await
        }
        (r, _) => match r.strip_prefix("generate-root/") {
            Some(rest) => crate::sys_generate_root::handle(core, req, rest).await,
            None if crate::sys_rekey::is_path(&req.path) => {
                crate::sys_rekey::handle(core, req).await
            }
            None => Err(Error::PermissionDenied),
        },
    }
}

async fn health(core: &Core, req: &Request) -> Result<Response> {
    let p = Params(&req.data);
    let code = |name: &str, default: u16| -> Result<u16> {
        match p.u64(name)? {
            None => Ok(default),
            Some(c) if (100..=599).contains(&c) => Ok(c as u16),
            Some(_) => Err(Error::bad(format!("{name}: invalid status code"))),
        }
    };
    let initialized = core.is_initialized().await?;
    let sealed = core.is_sealed();
    let status = if !initialized {
        code("uninitcode", 501)?
    } else if sealed {
        code("sealedcode", 503)?
    } else {
        code("activecode", 200)?
    };
    let body = json!({
        "initialized": initialized,
        "sealed": sealed,
        "standby": false,
        "performance_standby": false,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": now().timestamp(),
        "version": VERSION,
        "cluster_name": core.config.cluster_name,
        "cluster_id": core.cluster_id,
        "audit_devices": core.audit.health_json(),
    });
    Ok(Response::raw(body).with_status(status))
}

async fn init(core: &Core, req: &Request) -> Result<Response> {
    let p = Params(&req.data);
    for unsupported in ["pgp_keys", "root_token_pgp_key"] {
        if p.has(unsupported)
            && !matches!(req.data.get(unsupported), Some(Value::Array(a)) if a.is_empty())
            && req.data.get(unsupported) != Some(&json!(""))
        {
            return Err(Error::bad(format!("{unsupported} is not supported")));
        }
    }
    let shares = p
        .u64("secret_shares")?
        .ok_or_else(|| Error::bad("secret_shares must be provided"))?;
    let threshold = p
        .u64("secret_threshold")?
        .ok_or_else(|| Error::bad("secret_threshold must be provided"))?;
    let shares = u32::try_from(shares).map_err(|_| Error::bad("shares must be less than 256"))?;
    let threshold = u32::try_from(threshold).map_err(|_| Error::bad("invalid secret_threshold"))?;
    let result = core.initialize(shares, threshold, None).await?;
    let keys: Vec<String> = result
        .keys
        .iter()
        .map(|k| hex::encode(k.as_slice()))
        .collect();
    let keys_b64: Vec<String> = result
        .keys
        .iter()
        .map(|k| STANDARD.encode(k.as_slice()))
        .collect();
    tracing::info!(shares, threshold, "store initialised");
    Ok(Response::raw(json!({
        "keys": keys,
        "keys_base64": keys_b64,
        "root_token": result.root_token.as_str(),
    })))
}

/// Decodes an unseal key given as hex or base64.
pub fn decode_key(s: &str) -> Option<Zeroizing<Vec<u8>>> {
    let s = s.trim();
    if let Ok(b) = hex::decode(s) {
        return Some(Zeroizing::new(b));
    }
    STANDARD.decode(s).ok().map(Zeroizing::new)
}

async fn unseal(core: &Core, req: &Request) -> Result<Response> {
    let p = Params(&req.data);
    if p.bool("reset")?.unwrap_or(false) {
        core.reset_unseal();
        return Ok(Response::raw(core.seal_status().await?));
    }
    let key = p.str("key")?.filter(|k| !k.is_empty()).ok_or_else(|| {
        Error::bad("'key' must be specified in request body as JSON, or 'reset' set to true")
    })?;
    if !core.is_initialized().await? {
        return Err(Error::bad("Coffer is not initialized"));
    }
    let key =
        decode_key(key).ok_or_else(|| Error::bad("'key' must be a valid hex or base64 string"))?;
    core.unseal(key).await?;
    Ok(Response::raw(core.seal_status().await?))
}

/// Handles authenticated `sys/` requests; `rest` is the path below `sys/`.
pub(crate) async fn handle(
    core: &Core,
    req: &Request,
    rest: &str,
    token: &TokenEntry,
) -> Result<Response> {
    use Operation::*;
    match (rest, req.operation) {
        ("seal", Create | Update) => {
            core.seal().await;
            Ok(Response::empty())
        }
        ("rotate" | "rotate/keyring", Create | Update) => {
            let term = core.seal.rotate().await?;
            tracing::info!(term, "encryption key rotated");
            Ok(Response::empty())
        }
        ("key-status", Read) => {
            let keyring = core.barrier.keyring()?;
            let active = keyring.active();
            let installed = chrono::DateTime::from_timestamp(active.install_time, 0)
                .map(|t| rfc3339(&t))
                .unwrap_or_default();
            Ok(enveloped(
                req,
                json!({
                    "term": active.term,
                    "install_time": installed,
                    "encryptions": core.barrier.encryptions()?,
                }),
            ))
        }
        ("metrics", Read) => crate::sys_metrics::handle(core, req).await,
        (r, Read) if r.starts_with("events/subscribe/") => {
            // Authorized and audited like any read; the HTTP layer then
            // upgrades the connection and streams (`coffer-http/src/events.rs`).
            let pattern = &r["events/subscribe/".len()..];
            if !crate::events::valid_pattern(pattern) {
                return Err(Error::bad(format!(
                    "invalid event type {pattern:?}: letters, digits, - _ . / and * only"
                )));
            }
            Ok(Response::data(json!({ "event_type": pattern })))
        }
        ("monitor", Read) => crate::sys_monitor::handle(core, req),
        ("monitor", _) => Err(Error::UnsupportedOperation),
        ("host-info", Read) => crate::sys_host::handle(),
        // Vault's raw map, no envelope: request id to what is known of it.
        ("in-flight-req", Read) => Ok(Response::raw(core.in_flight.snapshot())),
        ("config/state/sanitized", Read) => {
            Ok(Response::data(core.config.sanitized_config.clone()))
        }
        (r, _) if crate::sys_loggers::is_path(r) => crate::sys_loggers::handle(core, req, r).await,
        ("ha-status", Read) => Ok(enveloped(req, core.ha_status().await?)),
        // `sys/rotate/config` is Vault's older name of the same endpoint.
        ("rotate/keyring/config" | "rotate/config", Read) => Ok(Response::data(json!({
            // Coffer rotates by operation count only (`key_rotation_threshold`
            // in the server configuration); there is no time interval.
            "enabled": core.barrier.rotation_threshold() > 0,
            "max_operations": core.barrier.rotation_threshold(),
            "interval": 0,
        }))),
        ("rotate/keyring/config" | "rotate/config", Create | Update) => Err(Error::bad(
            "automatic key rotation is configured with key_rotation_threshold in the server configuration",
        )),
        ("config/cors", _) => crate::sys_cors::handle(core, req).await,
        (r, _) if r == "config/auditing/request-headers"
            || r.starts_with("config/auditing/request-headers/") =>
        {
            let name = &r["config/auditing/request-headers".len()..];
            core.audit.handle_headers(req, name).await
        }
        ("internal/specs/openapi", Read) => crate::path_help::openapi(core, token).await,
        ("version-history" | "version-history/", List) => {
            crate::sys_version::handle(&core.barrier, req).await
        }
        ("mounts", Read) => list_mounts(core, req, false),
        ("auth", Read) => list_mounts(core, req, true),
        ("internal/ui/mounts", Read) => crate::sys_ui::handle(core, None, token).await,
        _ => {
            if let Some(answer) = coffer_engines::tools::handle(req, rest) {
                return answer;
            }
            if let Some(path) = rest.strip_prefix("internal/ui/mounts/") {
                if req.operation == Read {
                    return crate::sys_ui::handle(core, Some(path), token).await;
                }
            }
            for (prefix, auth) in [("mounts/", false), ("auth/", true)] {
                let Some(path) = rest.strip_prefix(prefix) else {
                    continue;
                };
                if !auth {
                    refuse_reserved(path, req.operation)?;
                }
                if let Some(m) = path.strip_suffix("/tune") {
                    return tune(core, req, m, auth).await;
                }
                return match req.operation {
                    Create | Update => mount(core, req, path, auth).await,
                    Delete => unmount(core, path, auth).await,
                    Read => {
                        let p = normalize_mount_path(path)?;
                        let full = if auth { format!("auth/{p}") } else { p.clone() };
                        let router = core.router.read();
                        let m = router
                            .get(&full)
                            .ok_or_else(|| Error::bad(format!("No mount at {p}")))?;
                        Ok(enveloped(req, m.entry.to_json()))
                    }
                    _ => Err(Error::UnsupportedOperation),
                };
            }
            if crate::quotas::is_path(rest) {
                return crate::quotas::handle(core, req, rest).await;
            }
            if crate::sys_plugins::is_path(rest) {
                return crate::sys_plugins::handle(req, rest);
            }
            if crate::sys_internal::is_path(rest) {
                if let Some(resp) = crate::sys_internal::handle(core, req, rest, token).await? {
                    return Ok(resp);
                }
            }
            if crate::sys_remount::is_path(rest) {
                return crate::sys_remount::handle(core, req, rest).await;
            }
            if crate::sys_snapshot::is_path(rest) {
                return crate::sys_snapshot::handle(core, req, rest, token).await;
            }
            if let Some(op) = rest.strip_prefix("generate-root-token/") {
                // OpenBao 2.x: the same protocol for an authenticated caller.
                let mut resp = crate::sys_generate_root::handle(core, req, op).await?;
                resp.data = resp.raw.take();
                return Ok(resp);
            }
            match (rest, req.operation) {
                ("coffer/inventory" | "coffer/inventory/", Read | List) => {
                    return crate::lifecycle::inventory(core, req).await
                }
                (p, _) if crate::procedure::is_path(p) => {
                    return crate::procedure::handle(&core.procedure_ctx(), req, rest, token).await
                }
                ("coffer/revoke-compromised", Create | Update) => {
                    return crate::lifecycle::revoke_compromised(core, req, token).await
                }
                _ => {}
            }
            if let Some(op) = rest.strip_prefix("wrapping/") {
                return crate::wrapping::handle(core, req, op, token).await;
            }
            if crate::sys_password::is_password_path(rest) {
                return crate::sys_password::handle(core, req, rest).await;
            }
            if crate::sys_leases::is_lease_path(rest) {
                if let Some(resp) = crate::sys_leases::handle(core, req, rest).await? {
                    return Ok(resp);
                }
            }
            if rest == "audit"
                || rest.starts_with("audit/")
                || rest.starts_with("audit-hash/")
                || rest.starts_with("coffer/access")
            {
                return crate::sys_audit::handle_sys(core, req, rest, token).await;
            }
            crate::sys_policy::handle(core, req, rest, token).await
        }
    }
}

/// The kernel's `sys/` mount (the system backend's entry in the router).
pub(crate) fn system_mount_entry() -> MountEntry {
    MountEntry {
        description: "system endpoints used for control, policy and debugging".into(),
        accessor: "system_00000000".into(),
        uuid: "00000000-0000-0000-0000-000000000000".into(),
        seal_wrap: true,
        ..MountEntry::new("sys/", "system")
    }
}

/// The kernel's `auth/token/` mount (the token store's entry in the router).
pub(crate) fn token_mount_entry() -> MountEntry {
    MountEntry {
        description: "token based credentials".into(),
        accessor: "auth_token_00000000".into(),
        uuid: "00000000-0000-0000-0000-000000000001".into(),
        ..MountEntry::new("auth/token/", "token")
    }
}

/// The built-in `sys/` mount as the mount tables show it.
pub(crate) fn system_mount_json() -> Value {
    json!({
        "accessor": "system_00000000",
        "config": {"default_lease_ttl": 0, "force_no_cache": false, "max_lease_ttl": 0},
        "description": "system endpoints used for control, policy and debugging",
        "external_entropy_access": false,
        "local": false,
        "options": null,
        "plugin_version": "",
        "running_plugin_version": crate::mounts::BUILTIN_VERSION,
        "running_sha256": "",
        "seal_wrap": true,
        "type": "system",
        "uuid": "00000000-0000-0000-0000-000000000000",
    })
}

/// The built-in `auth/token/` mount as the mount tables show it.
pub(crate) fn token_mount_json() -> Value {
    json!({
        "accessor": "auth_token_00000000",
        "config": {"default_lease_ttl": 0, "force_no_cache": false, "max_lease_ttl": 0, "token_type": "default-service"},
        "description": "token based credentials",
        "external_entropy_access": false,
        "local": false,
        "options": null,
        "plugin_version": "",
        "running_plugin_version": crate::mounts::BUILTIN_VERSION,
        "running_sha256": "",
        "seal_wrap": false,
        "type": "token",
        "uuid": "00000000-0000-0000-0000-000000000001",
    })
}

fn list_mounts(core: &Core, req: &Request, auth: bool) -> Result<Response> {
    let mut all = Map::new();
    for m in core.router.read().entries() {
        match m.entry.path.strip_prefix("auth/") {
            Some(p) if auth => {
                all.insert(p.to_string(), m.entry.to_json());
            }
            None if !auth => {
                all.insert(m.entry.path.clone(), m.entry.to_json());
            }
            _ => {}
        }
    }
    if auth {
        all.insert("token/".into(), token_mount_json());
    } else {
        all.insert("sys/".into(), system_mount_json());
    }
    Ok(enveloped(req, Value::Object(all)))
}

/// Vault's envelope with `data`'s fields also copied to the top level, as
/// its mount, tune and key-status reads answer (the CLI reads either).
pub(crate) fn enveloped(req: &Request, data: Value) -> Response {
    let mut body = match &data {
        Value::Object(fields) => fields.clone(),
        _ => Map::new(),
    };
    for (k, v) in [
        ("request_id", json!(req.id)),
        ("lease_id", json!("")),
        ("renewable", json!(false)),
        ("lease_duration", json!(0)),
        ("data", data),
        ("wrap_info", Value::Null),
        ("warnings", Value::Null),
        ("auth", Value::Null),
    ] {
        body.insert(k.into(), v);
    }
    Response::raw(Value::Object(body))
}

async fn mount(core: &Core, req: &Request, path: &str, auth: bool) -> Result<Response> {
    let path = normalize_mount_path(path)?;
    if auth {
        if path == "token/" {
            return Err(Error::bad(
                "token credential backend cannot be instantiated",
            ));
        }
    } else if RESERVED.iter().any(|r| path.starts_with(r)) {
        return Err(Error::bad(format!(
            "cannot mount under reserved path {path:?}"
        )));
    }
    let path = if auth { format!("auth/{path}") } else { path };
    let p = Params(&req.data);
    let kind = p
        .str("type")?
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::bad("type must be provided"))?;
    let (kind, mut options) = match kind {
        "kv-v2" => ("kv", [("version".to_string(), "2".to_string())].into()),
        "kv-v1" => ("kv", [("version".to_string(), "1".to_string())].into()),
        other => (other, std::collections::BTreeMap::new()),
    };
    if kind == crate::engines::cubbyhole::KIND || kind == crate::identity::KIND {
        // The one cubbyhole mount is built in (Vault's message).
        return Err(Error::bad(format!(
            "mount type of {kind:?} is not mountable"
        )));
    }
    if let Some(o) = p.object("options")? {
        for (k, v) in o {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return Err(Error::bad(format!("options.{k}: expected a string"))),
            };
            if !(kind == "kv" && k == "version" && options.contains_key("version")) {
                options.insert(k.clone(), v);
            }
        }
    }
    let mut entry = MountEntry::new(&path, kind);
    entry.options = options;
    entry.description = p.str("description")?.unwrap_or_default().to_string();
    entry.local = p.bool("local")?.unwrap_or(false);
    entry.seal_wrap = p.bool("seal_wrap")?.unwrap_or(false);
    if let Some(c) = p.object("config")? {
        let cp = Params(c);
        entry.config.default_lease_ttl = cp.duration("default_lease_ttl")?.unwrap_or(0);
        entry.config.max_lease_ttl = cp.duration("max_lease_ttl")?.unwrap_or(0);
        entry.config.force_no_cache = cp.bool("force_no_cache")?.unwrap_or(false);
    }
    core.mount(entry).await?;
    tracing::info!(path = %path, kind, "mounted");
    Ok(Response::empty())
}

/// Refuses what `sys/mounts/<path>` must not do (`path` is below
/// `sys/mounts/`): anything at all to an auth method, whatever the spelling
/// (auth methods are managed through `sys/auth`, whose writes need sudo),
/// and unmounting or tuning the built-in mounts. Messages as OpenBao's.
fn refuse_reserved(path: &str, op: Operation) -> Result<()> {
    let (target, tune) = match path.strip_suffix("/tune") {
        Some(m) => (m, true),
        None => (path, false),
    };
    let p = normalize_mount_path(target)?;
    let write = !matches!(op, Operation::Read | Operation::List);
    if p.starts_with("auth/") {
        let method = p.trim_start_matches("auth/");
        let msg = match (tune, op) {
            (false, Operation::Delete) => format!("cannot unmount {p:?}"),
            (false, Operation::Create | Operation::Update) => format!("cannot mount {p:?}"),
            (true, _) => format!("cannot tune {p:?} through sys/mounts; use sys/auth/{method}tune"),
            _ => format!("cannot read {p:?} through sys/mounts; use sys/auth"),
        };
        return Err(Error::bad(msg));
    }
    if matches!(p.as_str(), "sys/" | "cubbyhole/" | "identity/") {
        if tune && write {
            return Err(Error::bad(format!("cannot tune {p:?}")));
        }
        if !tune && op == Operation::Delete {
            return Err(Error::bad(format!("cannot unmount {p:?}")));
        }
    }
    Ok(())
}

/// How long an unmount waits for requests already inside the mount.
const UNMOUNT_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Disables a mount. Its credentials go first: the mount leaves the router
/// (no new request reaches it), requests already inside finish (bounded
/// wait), then every lease it issued is revoked through its engine (a
/// database user is dropped) and, for an auth method, every token it issued
/// is revoked with its tree and leases. If any of that fails the mount is
/// put back and the request fails; only then is the mount removed for good.
async fn unmount(core: &Core, path: &str, auth: bool) -> Result<Response> {
    let path = normalize_mount_path(path)?;
    if auth && path == "token/" {
        return Err(Error::bad("token credential backend cannot be disabled"));
    }
    let path = if auth { format!("auth/{path}") } else { path };
    let _admin = core.admin.lock().await;
    let mut router = core.router.read().clone();
    let Some(removed) = router.remove(&path) else {
        return Ok(Response::empty());
    };
    *core.router.write() = router.clone();
    let deadline = std::time::Instant::now() + UNMOUNT_DRAIN;
    while std::sync::Arc::strong_count(&removed.entry) > 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let revoked = async {
        let n = core.leases.revoke_mount(&removed).await?;
        if auth {
            // Tokens issued through a disabled auth method stop working at once.
            core.revoke_tokens_with_path_prefix(&path).await?;
        }
        core.save_mounts(&router).await?;
        Ok::<usize, Error>(n)
    }
    .await;
    let leases = match revoked {
        Ok(n) => n,
        Err(e) => {
            core.router.write().insert(removed);
            tracing::warn!(path = %path, error = %e, "unmount failed; the mount stays");
            return Err(Error::bad(format!(
                "failed to revoke what {path:?} issued; the mount stays: {e}"
            )));
        }
    };
    removed.view.delete_prefix("").await?;
    // As Vault: a disabled mount's rate-limit quotas go with it.
    core.quotas.forget_mount(&path).await?;
    tracing::info!(path = %path, leases, "unmounted");
    Ok(Response::empty())
}

async fn tune(core: &Core, req: &Request, path: &str, auth: bool) -> Result<Response> {
    let path = normalize_mount_path(path)?;
    if auth && path == "token/" {
        return match req.operation {
            Operation::Read => Ok(enveloped(
                req,
                json!({
                    "default_lease_ttl": SYSTEM_TTL, "max_lease_ttl": SYSTEM_TTL,
                    "force_no_cache": false, "description": "token based credentials",
                    "token_type": "default-service",
                }),
            )),
            _ => Err(Error::bad("the token store cannot be tuned")),
        };
    }
    let path = if auth { format!("auth/{path}") } else { path };
    match req.operation {
        Operation::Read => {
            if path == "sys/" {
                return Ok(enveloped(
                    req,
                    json!({
                        "default_lease_ttl": SYSTEM_TTL, "max_lease_ttl": SYSTEM_TTL,
                        "force_no_cache": false, "description": "system endpoints used for control, policy and debugging",
                    }),
                ));
            }
            let router = core.router.read();
            let m = router
                .get(&path)
                .ok_or_else(|| Error::bad(format!("cannot fetch sysview for path {path:?}")))?;
            let c = &m.entry.config;
            let or_default = |v: u64| if v == 0 { SYSTEM_TTL } else { v };
            let mut out = json!({
                "default_lease_ttl": or_default(c.default_lease_ttl),
                "max_lease_ttl": or_default(c.max_lease_ttl),
                "force_no_cache": c.force_no_cache,
                "description": m.entry.description,
            });
            // As Vault: options only when set; an auth method's token type
            // and, once tuned, its lockout settings.
            if !m.entry.options.is_empty() {
                out["options"] = json!(m.entry.options);
            }
            if m.entry.path.starts_with("auth/") {
                out["token_type"] = json!("default-service");
                if let Some(lockout) = c.user_lockout_config {
                    out["user_lockout_config"] = json!({
                        "lockout_threshold": lockout.lockout_threshold,
                        "lockout_duration": lockout.lockout_duration,
                        "lockout_counter_reset": lockout.lockout_counter_reset,
                        "disable_lockout": lockout.disable_lockout,
                    });
                }
            }
            Ok(enveloped(req, out))
        }
        Operation::Create | Operation::Update => {
            let p = Params(&req.data);
            let _admin = core.admin.lock().await;
            let mut router = core.router.read().clone();
            let current = router
                .get(&path)
                .ok_or_else(|| Error::bad(format!("cannot tune {path:?}: no mount there")))?;
            let mut entry = (*current.entry).clone();
            if let Some(d) = p.duration("default_lease_ttl")? {
                entry.config.default_lease_ttl = d;
            }
            if let Some(d) = p.duration("max_lease_ttl")? {
                entry.config.max_lease_ttl = d;
            }
            if entry.config.max_lease_ttl > 0
                && entry.config.default_lease_ttl > entry.config.max_lease_ttl
            {
                return Err(Error::bad("default_lease_ttl cannot exceed max_lease_ttl"));
            }
            if let Some(d) = p.str("description")? {
                entry.description = d.to_string();
            }
            if let Some(l) = p.object("user_lockout_config")? {
                let lp = Params(l);
                let mut cfg = entry.config.user_lockout_config.unwrap_or_default();
                if let Some(t) = lp.u64("lockout_threshold")? {
                    cfg.lockout_threshold =
                        u32::try_from(t).map_err(|_| Error::bad("lockout_threshold too large"))?;
                }
                if let Some(d) = lp.duration("lockout_duration")? {
                    cfg.lockout_duration = d;
                }
                if let Some(d) = lp.duration("lockout_counter_reset")? {
                    cfg.lockout_counter_reset = d;
                }
                if let Some(b) = lp.bool("disable_lockout")? {
                    cfg.disable_lockout = b;
                }
                entry.config.user_lockout_config = Some(cfg);
                core.logins.configure(&entry.accessor, cfg);
            }
            if let Some(o) = p.object("options")? {
                for (k, v) in o {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        _ => return Err(Error::bad(format!("options.{k}: expected a string"))),
                    };
                    if k == "version" && entry.kind == "kv" {
                        let old = entry
                            .options
                            .get("version")
                            .map(String::as_str)
                            .unwrap_or("1");
                        if v != old && !(old == "1" && v == "2") {
                            return Err(Error::bad("cannot downgrade a kv mount's version"));
                        }
                    }
                    entry.options.insert(k.clone(), v);
                }
            }
            let mounted = core.mounted(entry)?;
            router.insert(mounted);
            core.save_mounts(&router).await?;
            *core.router.write() = router;
            Ok(Response::empty())
        }
        _ => Err(Error::UnsupportedOperation),
    }
}

/// Whether Vault requires `sudo` for `op` on `path` (root-protected paths).
pub(crate) fn requires_sudo(path: &str, op: Operation) -> bool {
    let Some(rest) = path.strip_prefix("sys/") else {
        return match path.strip_prefix("auth/token/") {
            Some(t) => {
                t == "accessors"
                    || t == "accessors/"
                    || t.starts_with("revoke-orphan")
                    || t.starts_with("create-orphan")
            }
            None => false,
        };
    };
    let rest = rest.trim_end_matches('/');
    let write = op != Operation::Read && op != Operation::List;
    matches!(
        rest,
        "seal"
            | "rotate"
            | "rotate/keyring"
            | "config/cors"
            | "audit"
            | "raw"
            | "step-down"
            | "leases"
            | "remount"
            | "storage/raft/snapshot"
            | "storage/raft/snapshot-force"
            | "config/state/sanitized"
    ) || rest.starts_with("audit/")
        || rest.starts_with("config/auditing/")
        || rest.starts_with("plugins/catalog/")
        || rest.starts_with("raw/")
        || (rest.starts_with("auth/") && write)
        || rest.starts_with("leases/revoke-prefix/")
        || rest.starts_with("leases/revoke-force/")
        || rest.starts_with("leases/lookup/")
        || rest.starts_with("revoke-prefix/")
        || rest.starts_with("revoke-force/")
        || crate::procedure::requires_sudo(rest, op)
}

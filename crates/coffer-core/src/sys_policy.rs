//! `sys/` endpoints for policies and capabilities: `policies/acl`, the legacy
//! `policy`, `capabilities`, `capabilities-self`, `capabilities-accessor`,
//! and `locked-users` unlocks.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use serde_json::{json, Map, Value};

use crate::core::Core;
use crate::token::TokenEntry;
use crate::util::Params;
use crate::{Error, Operation, Request, Response, Result};

/// Handles the policy and capability endpoints; `rest` is below `sys/`.
pub(crate) async fn handle(
    core: &Core,
    req: &Request,
    rest: &str,
    token: &TokenEntry,
) -> Result<Response> {
    use Operation::*;
    let op = req.operation;
    match rest {
        "policies/acl" | "policies/acl/" if op == List || op == Read => {
            Response::list(core.policies.list().await?)
        }
        "policy" | "policy/" if op == Read || op == List => {
            let names = core.policies.list().await?;
            Ok(Response::with_top_level(
                json!({"policies": names, "keys": names}),
            ))
        }
        "capabilities-self" if matches!(op, Create | Update) => {
            capabilities(core, req, token).await
        }
        "capabilities" if matches!(op, Create | Update) => {
            let params = Params(&req.data);
            let t = params
                .str("token")?
                .filter(|t| !t.is_empty())
                .ok_or_else(|| Error::bad("missing token"))?;
            let entry = core
                .tokens
                .lookup(t)
                .await?
                .ok_or_else(|| Error::bad("invalid token"))?;
            capabilities(core, req, &entry).await
        }
        "capabilities-accessor" if matches!(op, Create | Update) => {
            let params = Params(&req.data);
            let a = params
                .str("accessor")?
                .filter(|a| !a.is_empty())
                .ok_or_else(|| Error::bad("missing accessor"))?;
            let entry = core
                .tokens
                .lookup_accessor(a)
                .await?
                .ok_or_else(|| Error::bad("invalid accessor"))?;
            capabilities(core, req, &entry).await
        }
        _ => {
            if let Some(name) = rest.strip_prefix("policies/acl/") {
                return acl_policy(core, req, name, false).await;
            }
            if let Some(name) = rest.strip_prefix("policy/") {
                return acl_policy(core, req, name, true).await;
            }
            if let Some(tail) = rest.strip_prefix("locked-users/") {
                // locked-users/:mount_accessor/unlock/:alias_identifier
                let parts: Vec<&str> = tail.splitn(3, '/').collect();
                if let [accessor, "unlock", alias] = parts.as_slice() {
                    if matches!(op, Create | Update) {
                        core.logins.unlock(accessor, alias).await?;
                        return Ok(Response::empty());
                    }
                }
            }
            if KNOWN.contains(&rest.trim_end_matches('/')) {
                return Err(Error::UnsupportedOperation);
            }
            Err(Error::UnsupportedPath("unsupported path".into()))
        }
    }
}

/// Exact `sys/` paths that exist: another method on them answers 405, not 404.
const KNOWN: [&str; 13] = [
    "seal",
    "rotate",
    "key-status",
    "mounts",
    "auth",
    "audit",
    "internal/ui/mounts",
    "policy",
    "policies/acl",
    "capabilities",
    "capabilities-self",
    "capabilities-accessor",
    "leases/lookup",
];

async fn acl_policy(core: &Core, req: &Request, name: &str, legacy: bool) -> Result<Response> {
    let name = crate::policy_store::normalize_name(name)?;
    match req.operation {
        Operation::Read => {
            let rec = core.policies.read(&name).await?.ok_or(Error::NotFound)?;
            let text_key = if legacy { "rules" } else { "policy" };
            let mut out = json!({
                "name": name,
                "version": rec.version,
                "cas_required": rec.cas_required,
                "allow_slashes_in_identity_templates": rec.allow.slashes,
                "allow_wildcards_in_identity_templates": rec.allow.wildcards,
            });
            out[text_key] = json!(rec.raw);
            // OpenBao's versioning fields; `root` was never written.
            if let Some(t) = &rec.modified {
                out["modified"] = json!(crate::util::rfc3339(t));
            }
            if legacy {
                Ok(Response::with_top_level(out))
            } else {
                Ok(Response::data(out))
            }
        }
        Operation::Create | Operation::Update => {
            let p = Params(&req.data);
            let nonempty = |t: &&str| !t.trim().is_empty();
            let (text, deprecated) = match p.str("policy")?.filter(nonempty) {
                Some(t) => (t, false),
                // Only the legacy sys/policy takes `rules`, with Vault's warning.
                None if legacy => match p.str("rules")?.filter(nonempty) {
                    Some(t) => (t, true),
                    None => return Err(Error::bad("'policy' parameter not supplied or empty")),
                },
                None => return Err(Error::bad("'policy' parameter not supplied or empty")),
            };
            // Vault accepts the policy base64-encoded too.
            let decoded = match STANDARD.decode(text.trim()) {
                Ok(bytes) if !text.contains('"') => String::from_utf8(bytes).ok(),
                _ => None,
            };
            let opts = crate::policy_store::WriteOptions {
                cas: p.u64("cas")?,
                cas_required: p.bool("cas_required")?.unwrap_or(false),
                allow: crate::identity::template::Allow {
                    slashes: p
                        .bool("allow_slashes_in_identity_templates")?
                        .unwrap_or(false),
                    wildcards: p
                        .bool("allow_wildcards_in_identity_templates")?
                        .unwrap_or(false),
                },
            };
            core.policies
                .write_with(&name, decoded.as_deref().unwrap_or(text), opts)
                .await?;
            tracing::info!(policy = %name, "policy written");
            let mut resp = Response::empty();
            if deprecated {
                resp.warnings
                    .push("'rules' is deprecated, please use 'policy' instead".into());
            }
            Ok(resp)
        }
        Operation::Delete => {
            core.policies.delete(&name).await?;
            tracing::info!(policy = %name, "policy deleted");
            Ok(Response::empty())
        }
        _ => Err(Error::UnsupportedOperation),
    }
}

async fn capabilities(core: &Core, req: &Request, token: &TokenEntry) -> Result<Response> {
    let p = Params(&req.data);
    let mut paths = p.str_list("paths")?.unwrap_or_default();
    if paths.is_empty() {
        if let Some(path) = p.str("path")?.filter(|s| !s.is_empty()) {
            paths.push(path.to_string());
        }
    }
    if paths.is_empty() {
        return Err(Error::bad("missing paths"));
    }
    let acl = core.token_acl(token).await?;
    let mut out = Map::new();
    let mut all: Vec<&'static str> = Vec::new();
    for path in &paths {
        let path = path.trim_start_matches('/');
        let caps = acl.capability_names(path);
        for c in &caps {
            if !all.contains(c) {
                all.push(c);
            }
        }
        out.insert(path.to_string(), json!(caps));
    }
    // Like Vault and OpenBao, the legacy `capabilities` key (the union) is
    // answered only when one path was asked about.
    if paths.len() == 1 {
        all.sort_unstable();
        out.insert("capabilities".into(), json!(all));
    }
    Ok(Response::with_top_level(Value::Object(out)))
}

/// The canonical spelling of a `sys/` path below `sys/`, when it differs:
/// policy names (`policy/<name>`, `policies/acl/<name>`) are trimmed and
/// lower-cased, as the policy store keeps them, so the ACL judges the
/// policy the write will change.
pub(crate) fn canonical_path(rest: &str) -> Option<String> {
    for head in ["policies/acl/", "policy/"] {
        if let Some(name) = rest.strip_prefix(head) {
            let canonical = name.trim().to_lowercase();
            return (canonical != name).then(|| format!("{head}{canonical}"));
        }
    }
    None
}

//! Vault's small introspection endpoints below `sys/`:
//! `internal/ui/resultant-acl` (the caller's merged policies, as the web
//! UIs read them), `internal/counters/tokens` and `internal/counters/entities`
//! (how many exist), and `locked-users` (the login identities locked out
//! now, by auth mount).

use serde_json::{json, Value};

use crate::core::Core;
use crate::token::TokenEntry;
use crate::{Operation, Request, Response, Result};

/// Whether `rest` (below `sys/`) is one of these endpoints.
pub(crate) fn is_path(rest: &str) -> bool {
    matches!(
        rest.trim_end_matches('/'),
        "internal/ui/resultant-acl"
            | "internal/counters/tokens"
            | "internal/counters/entities"
            | "locked-users"
    )
}

/// Answers a read of one of these endpoints; `None` for another operation.
pub(crate) async fn handle(
    core: &Core,
    req: &Request,
    rest: &str,
    token: &TokenEntry,
) -> Result<Option<Response>> {
    if req.operation != Operation::Read {
        return Ok(None);
    }
    let data = match rest.trim_end_matches('/') {
        "internal/ui/resultant-acl" => core.token_acl(token).await?.resultant_acl(),
        "internal/counters/tokens" => {
            let total = core.tokens.accessors().await?.len();
            json!({"counters": {"service_tokens": {"total": total}}})
        }
        "internal/counters/entities" => {
            let total = core.identity.read(|s| s.entities.len());
            json!({"counters": {"entities": {"total": total}}})
        }
        "locked-users" => locked_users(core).await?,
        _ => return Ok(None),
    };
    Ok(Some(Response::data(data)))
}

/// `sys/locked-users` in Vault's shape: one namespace (`root`), each auth
/// mount with its locked identities (user names, role ids), sorted.
async fn locked_users(core: &Core) -> Result<Value> {
    let mut by_mount: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (accessor, identity) in core.logins.locked().await? {
        by_mount.entry(accessor).or_default().push(identity);
    }
    let total: usize = by_mount.values().map(Vec::len).sum();
    let mounts: Vec<Value> = by_mount
        .into_iter()
        .map(|(accessor, mut ids)| {
            ids.sort();
            json!({"mount_accessor": accessor, "counts": ids.len(), "alias_identifiers": ids})
        })
        .collect();
    Ok(json!({
        "by_namespace": [{
            "namespace_id": "root",
            "namespace_path": "",
            "counts": total,
            "mount_accessors": mounts,
        }],
        "total": total,
    }))
}

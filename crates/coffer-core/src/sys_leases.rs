//! `sys/leases/*` (and the legacy `sys/renew`, `sys/revoke*`): lookup,
//! renew, revoke, revoke-prefix, revoke-force and tidy of leases.
//!
//! Two kinds of lease answer here: dynamic credentials' (the expiration
//! manager's) and tokens' (ids below `auth/`, kept by the token store; see
//! [`crate::token`]). A token lease is looked up, listed and revoked like
//! any other (revoking it revokes the token's whole tree and the trees'
//! leases), but, as in Vault and OpenBao, not renewed here: tokens renew
//! through `auth/token/renew*`, which moves their lease with them.

use serde_json::json;

use crate::core::Core;
use crate::util::Params;
use crate::{Error, Operation, Request, Response, Result};

/// Handles lease endpoints; `rest` is the path below `sys/`. Returns `None`
/// for paths that are not lease endpoints.
pub(crate) async fn handle(core: &Core, req: &Request, rest: &str) -> Result<Option<Response>> {
    use Operation::*;
    let op = req.operation;
    let write = matches!(op, Create | Update);
    let p = Params(&req.data);
    let lease_id = |suffix: &str| -> Result<String> {
        let from_body = p.str("lease_id")?.unwrap_or("").to_string();
        let id = if suffix.is_empty() {
            from_body
        } else {
            suffix.to_string()
        };
        if id.is_empty() {
            return Err(Error::bad("lease_id must be specified"));
        }
        Ok(id)
    };
    let rest = rest
        .strip_prefix("leases/")
        .map(|r| r.to_string())
        .unwrap_or_else(|| rest.to_string());
    let resp = if rest == "lookup" && write {
        let id = lease_id("")?;
        if let Some((token, record)) = core.tokens.lease(&id).await? {
            return Ok(Some(Response::data(token_lease_json(&id, &token, &record))));
        }
        let entry = core
            .leases
            .lookup(&id)
            .await?
            .ok_or_else(|| Error::bad("invalid lease"))?;
        Response::data(entry.to_json())
    } else if let Some(prefix) = rest.strip_prefix("lookup/").filter(|_| op == List) {
        let mut keys = core.leases.list(prefix).await?;
        keys.extend(core.tokens.lease_list(prefix).await?);
        keys.sort();
        keys.dedup();
        Response::list(keys)?
    } else if (rest == "renew" || rest.starts_with("renew/")) && write {
        let id = lease_id(rest.strip_prefix("renew/").unwrap_or(""))?;
        if core.tokens.lease(&id).await?.is_some() {
            return Err(Error::bad("tokens cannot be renewed through this endpoint"));
        }
        let increment = p.duration("increment")?.unwrap_or(0);
        let entry = core.leases.renew(core, &id, increment).await?;
        let mut r = Response::empty();
        r.lease_id = entry.lease_id.clone();
        r.renewable = entry.renewable;
        r.lease_duration =
            u64::try_from(entry.expire_time - crate::util::now().timestamp()).unwrap_or(0);
        r.data = Some(json!(null));
        r
    } else if (rest == "revoke" || rest.starts_with("revoke/")) && write {
        let id = lease_id(rest.strip_prefix("revoke/").unwrap_or(""))?;
        if let Some((token, _)) = core.tokens.lease(&id).await? {
            core.revoke_token_tree(&token.id_hash).await?;
        } else {
            core.leases.revoke(core, &id, false).await?;
        }
        Response::empty()
    } else if let Some(prefix) = rest.strip_prefix("revoke-prefix/").filter(|_| write) {
        revoke_prefix(core, prefix, false).await?;
        Response::empty()
    } else if let Some(prefix) = rest.strip_prefix("revoke-force/").filter(|_| write) {
        revoke_prefix(core, prefix, true).await?;
        Response::empty()
    } else if rest == "tidy" && write {
        core.leases.revoke_due(core).await?;
        crate::token_api::tidy_accepted()
    } else {
        return Ok(None);
    };
    Ok(Some(resp))
}

/// The lookup answer for a token's lease, as OpenBao's: the token's times.
fn token_lease_json(
    id: &str,
    token: &crate::token::TokenEntry,
    record: &crate::token::TokenLease,
) -> serde_json::Value {
    let fmt = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .map(|d| crate::util::rfc3339(&d))
            .unwrap_or_default()
    };
    let expire = token.expire_time.unwrap_or(0);
    json!({
        "id": id,
        "issue_time": fmt(token.creation_time),
        "expire_time": fmt(expire),
        "last_renewal": record.last_renewal.map(fmt),
        "path": token.path,
        "renewable": token.renewable,
        "ttl": (expire - crate::util::now().timestamp()).max(0),
    })
}

/// Revokes the leases below `prefix`: token leases (each token with its
/// tree and their leases) and dynamic ones. As Vault's, a prefix that is
/// itself a lease id revokes that lease; any other prefix is taken as a
/// directory (`a/b` reaches `a/b/...`, never `a/bc/...`).
async fn revoke_prefix(core: &Core, prefix: &str, force: bool) -> Result<()> {
    let prefix = prefix.trim_start_matches('/');
    if prefix.is_empty() {
        return Err(Error::bad("prefix is required"));
    }
    if !prefix.ends_with('/') {
        if let Some((token, _)) = core.tokens.lease(prefix).await? {
            return core.revoke_token_tree(&token.id_hash).await;
        }
        if core.leases.lookup(prefix).await?.is_some() {
            return core.leases.revoke(core, prefix, force).await;
        }
    }
    let dir = if prefix.ends_with('/') {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    };
    for (_, token) in core.tokens.leases_with_prefix(&dir).await? {
        core.revoke_token_tree(&token).await?;
    }
    core.leases.revoke_prefix(core, &dir, force).await?;
    Ok(())
}

/// Whether `rest` (below `sys/`) is a lease endpoint.
pub(crate) fn is_lease_path(rest: &str) -> bool {
    rest.starts_with("leases/")
        || rest == "renew"
        || rest.starts_with("renew/")
        || rest == "revoke"
        || rest.starts_with("revoke/")
        || rest.starts_with("revoke-prefix/")
        || rest.starts_with("revoke-force/")
}

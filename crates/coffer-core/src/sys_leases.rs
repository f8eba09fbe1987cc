//! `sys/leases/*` (and the legacy `sys/renew`, `sys/revoke*`): lookup,
//! renew, revoke, revoke-prefix, revoke-force and tidy of leases.

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
        let entry = core
            .leases
            .lookup(&id)
            .await?
            .ok_or_else(|| Error::bad("invalid lease"))?;
        Response::data(entry.to_json())
    } else if let Some(prefix) = rest.strip_prefix("lookup/").filter(|_| op == List) {
        Response::list(core.leases.list(prefix).await?)?
    } else if (rest == "renew" || rest.starts_with("renew/")) && write {
        let id = lease_id(rest.strip_prefix("renew/").unwrap_or(""))?;
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
        core.leases.revoke(core, &id, false).await?;
        Response::empty()
    } else if let Some(prefix) = rest.strip_prefix("revoke-prefix/").filter(|_| write) {
        core.leases.revoke_prefix(core, prefix, false).await?;
        Response::empty()
    } else if let Some(prefix) = rest.strip_prefix("revoke-force/").filter(|_| write) {
        core.leases.revoke_prefix(core, prefix, true).await?;
        Response::empty()
    } else if rest == "tidy" && write {
        core.leases.revoke_due(core).await?;
        Response::empty()
    } else {
        return Ok(None);
    };
    Ok(Some(resp))
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

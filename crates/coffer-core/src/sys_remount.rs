//! `sys/remount`: moves a secrets engine or an auth method to a new path
//! with its data, as Vault's (≥ 1.10) and OpenBao's do.
//!
//! A mount's storage is keyed by its uuid (`logical/<uuid>/`), not its
//! path, so its data, configuration and lifecycle records move by changing
//! the mount table alone. Leases carry the mount path in their ids: like
//! Vault, a move revokes every lease the mount issued (through its engine,
//! so a database user is dropped) and, for an auth method, every token
//! issued through it. The mount leaves the router first (no new request
//! reaches it), requests already inside finish, the leases go, then the
//! table is written once with the new path: a crash before that write
//! leaves the mount where it was (its leases possibly revoked), after it
//! at the new path; never neither. If a lease cannot be revoked, the mount
//! stays where it was and the move fails. Policies are not rewritten.
//!
//! The move runs to its end before the answer, which carries Vault's
//! `migration_id`; `sys/remount/status/<id>` reports the outcome (kept in
//! memory, the last [`KEPT`] moves, as Vault keeps them).

use std::collections::VecDeque;

use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::core::Core;
use crate::mounts::normalize_mount_path;
use crate::util::{now, rfc3339, Params};
use crate::{Error, Operation, Request, Response, Result};

/// How many finished moves `sys/remount/status` remembers.
pub(crate) const KEPT: usize = 1000;

/// How long a move waits for requests already inside the mount.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Mounts that never move.
const FIXED: [&str; 4] = ["sys/", "cubbyhole/", "identity/", "auth/token/"];
/// Prefixes a secrets engine may not move below.
const RESERVED: [&str; 4] = ["sys/", "auth/", "cubbyhole/", "identity/"];

/// Recent moves and their outcome.
#[derive(Default)]
pub(crate) struct Migrations {
    recent: Mutex<VecDeque<(String, Value)>>,
}

impl Migrations {
    fn record(&self, id: &str, info: Value) {
        let mut recent = self.recent.lock();
        if let Some(slot) = recent.iter_mut().find(|(i, _)| i == id) {
            slot.1 = info;
            return;
        }
        if recent.len() >= KEPT {
            recent.pop_front();
        }
        recent.push_back((id.to_string(), info));
    }

    fn get(&self, id: &str) -> Option<Value> {
        self.recent
            .lock()
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, v)| v.clone())
    }
}

/// Whether `rest` (below `sys/`) is a remount endpoint.
pub(crate) fn is_path(rest: &str) -> bool {
    rest == "remount" || rest.starts_with("remount/status/")
}

/// Answers `sys/remount` and `sys/remount/status/<id>`; `rest` is below `sys/`.
pub(crate) async fn handle(core: &Core, req: &Request, rest: &str) -> Result<Response> {
    match (rest, req.operation) {
        ("remount", Operation::Create | Operation::Update) => remount(core, req).await,
        ("remount", _) => Err(Error::UnsupportedOperation),
        (_, Operation::Read) => {
            let id = rest.trim_start_matches("remount/status/");
            let info = core.migrations.get(id).ok_or(Error::NotFound)?;
            Ok(Response::data(
                json!({"migration_id": id, "migration_info": info}),
            ))
        }
        _ => Err(Error::UnsupportedOperation),
    }
}

/// Checks the move `from` → `to` (both normalised) before anything changes.
fn check_paths(from: &str, to: &str) -> Result<()> {
    if FIXED.contains(&from) {
        return Err(Error::bad(format!("cannot remount {from:?}")));
    }
    let from_auth = from.starts_with("auth/");
    let to_auth = to.starts_with("auth/");
    if from_auth && !to_auth {
        return Err(Error::bad(format!(
            "cannot remount auth mount to non-auth mount {to:?}"
        )));
    }
    let reserved = if from_auth {
        to == "auth/" || FIXED.iter().any(|f| to.starts_with(f))
    } else {
        RESERVED.iter().any(|r| to.starts_with(r))
    };
    if reserved {
        return Err(Error::bad(format!("cannot remount to destination {to}")));
    }
    if !from_auth && to_auth {
        return Err(Error::bad(format!(
            "cannot remount non-auth mount to auth mount {to:?}"
        )));
    }
    Ok(())
}

async fn remount(core: &Core, req: &Request) -> Result<Response> {
    let p = Params(&req.data);
    let (from, to) = match (p.str("from"), p.str("to")) {
        (Ok(Some(f)), Ok(Some(t))) if !f.is_empty() && !t.is_empty() => (f, t),
        _ => {
            return Err(Error::bad(
                "both 'from' and 'to' path must be specified as a string",
            ))
        }
    };
    let from = normalize_mount_path(from)?;
    let to = normalize_mount_path(to)?;
    check_paths(&from, &to)?;
    let id = coffer_crypto::random::uuid();
    let started = rfc3339(&now());
    let info = |status: &str| {
        json!({
            "source_mount": from, "target_mount": to, "status": status,
            "start_time": started, "end_time": if status == "in-progress" { String::new() } else { rfc3339(&now()) },
        })
    };
    let moved = {
        let _admin = core.admin.lock().await;
        {
            let router = core.router.read();
            if router.get(&from).is_none() {
                return Err(Error::bad(format!("no matching mount at {from:?}")));
            }
            for m in router.entries() {
                let a = m.entry.path.as_str();
                if a == to || to.starts_with(a) || a.starts_with(to.as_str()) {
                    return Err(Error::bad(format!("path already in use at {a:?}")));
                }
            }
        }
        core.migrations.record(&id, info("in-progress"));
        move_locked(core, &from, &to).await
    };
    match moved {
        Ok(leases) => {
            core.migrations.record(&id, info("success"));
            tracing::info!(migration_id = %id, from = %from, to = %to, leases, "mount moved");
        }
        Err(e) => {
            core.migrations.record(&id, info("failure"));
            tracing::warn!(migration_id = %id, from = %from, to = %to, error = %e, "mount move failed");
            return Err(e);
        }
    }
    let mut body = json!({
        "request_id": coffer_crypto::random::uuid(),
        "lease_id": "", "renewable": false, "lease_duration": 0,
        "migration_id": id,
        "data": {"migration_id": id},
        "wrap_info": null,
        "warnings": ["Mount move has been queued. Progress will be reported in Coffer's server log, tagged with the returned migration_id"],
        "auth": null,
    });
    if from.starts_with("auth/") {
        body["warnings"] = json!([
            "Mount move has been queued. Progress will be reported in Coffer's server log, tagged with the returned migration_id",
            "the tokens issued through the auth method were revoked",
        ]);
    }
    Ok(Response::raw(body))
}

/// The move itself, under the admin lock: out of the router, drain, revoke
/// what it issued, then one write of the table with the new path. Returns
/// how many leases were revoked.
async fn move_locked(core: &Core, from: &str, to: &str) -> Result<usize> {
    let mut router = core.router.read().clone();
    let removed = router
        .remove(from)
        .ok_or_else(|| Error::bad(format!("no matching mount at {from:?}")))?;
    *core.router.write() = router.clone();
    let deadline = std::time::Instant::now() + DRAIN;
    while std::sync::Arc::strong_count(&removed.entry) > 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let done = async {
        let n = core.leases.revoke_mount(&removed).await?;
        if from.starts_with("auth/") {
            core.revoke_tokens_with_path_prefix(from).await?;
        }
        let mut entry = (*removed.entry).clone();
        entry.path = to.to_string();
        let moved = core.mounted(entry)?;
        router.insert(moved);
        core.save_mounts(&router).await?;
        Ok::<usize, Error>(n)
    }
    .await;
    match done {
        Ok(n) => {
            *core.router.write() = router;
            // As Vault: the mount's rate-limit quotas follow it.
            core.quotas.move_mount(from, to).await?;
            Ok(n)
        }
        Err(e) => {
            core.router.write().insert(removed);
            Err(Error::bad(format!(
                "failed to move {from:?}; the mount stays where it was: {e}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_never_move_or_receive() {
        for from in FIXED {
            assert!(check_paths(from, "elsewhere/").is_err(), "{from}");
        }
        assert!(check_paths("kv/", "auth/kv/").is_err());
        assert!(check_paths("kv/", "sys/kv/").is_err());
        assert!(check_paths("kv/", "cubbyhole/x/").is_err());
        assert!(check_paths("kv/", "identity/").is_err());
        assert!(check_paths("auth/up/", "up/").is_err());
        assert!(check_paths("auth/up/", "auth/token/up/").is_err());
        assert!(check_paths("auth/up/", "auth/").is_err());
        assert!(check_paths("kv/", "kv2/").is_ok());
        assert!(check_paths("auth/up/", "auth/up2/").is_ok());
    }
}

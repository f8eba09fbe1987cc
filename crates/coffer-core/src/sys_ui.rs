//! `sys/internal/ui/mounts` and `sys/internal/ui/mounts/<path>`: the mount
//! table as the UI and the CLI (`bao kv get` asks it first, to learn a KV
//! mount's version) see it, under Vault's permission rule rather than a
//! plain ACL check on the `sys/` path.
//!
//! A token sees a mount when its policies grant some capability (not
//! `deny`) at or below the mount's path ([`Acl::reaches_under`]): a token
//! that may only read `secret/data/app/*` learns about `secret/` and nothing
//! else. The list form keeps only such mounts; the single form answers 403
//! for a mount the token cannot reach and for a path under no mount alike,
//! so it cannot be used to probe which mounts exist. The core skips its own
//! ACL check for these two reads ([`judged_here`]); the token is still
//! authenticated and the request audited as any other.

use serde_json::{json, Map, Value};

use crate::core::Core;
use crate::policy::Acl;
use crate::token::TokenEntry;
use crate::{Error, Operation, Request, Response, Result};

/// The list form's path.
const LIST_PATH: &str = "sys/internal/ui/mounts";

/// Whether the handler, not the core's ACL check, decides this request
/// (`path` is the canonical full path).
pub(crate) fn judged_here(path: &str, op: Operation) -> bool {
    op == Operation::Read
        && (path == LIST_PATH
            || path
                .strip_prefix(LIST_PATH)
                .is_some_and(|rest| rest.starts_with('/')))
}

/// The list form for a request without a token: Vault shows only mounts
/// tuned to `listing_visibility = "unauth"`, which Coffer has none of.
pub(crate) fn anonymous_list() -> Response {
    Response::data(json!({"secret": {}, "auth": {}}))
}

/// Answers `sys/internal/ui/mounts` (`rest` is `None`) or
/// `sys/internal/ui/mounts/<rest>` for `token`.
pub(crate) async fn handle(
    core: &Core,
    rest: Option<&str>,
    token: &TokenEntry,
) -> Result<Response> {
    let acl = core.token_acl(token).await?;
    match rest {
        None => Ok(list(core, &acl)),
        Some(path) => one(core, &acl, path),
    }
}

/// Every mount (with the built-in `sys/` and `token/`) as `(API path,
/// whether it is an auth method, its JSON)`.
fn mounts(core: &Core) -> Vec<(String, bool, Value)> {
    let mut all = vec![
        ("sys/".to_string(), false, crate::sys::system_mount_json()),
        (
            "auth/token/".to_string(),
            true,
            crate::sys::token_mount_json(),
        ),
    ];
    for m in core.router.read().entries() {
        let auth = m.entry.path.starts_with("auth/");
        all.push((m.entry.path.clone(), auth, m.entry.to_json()));
    }
    all
}

fn list(core: &Core, acl: &Acl) -> Response {
    let mut secret = Map::new();
    let mut auth = Map::new();
    for (path, is_auth, json) in mounts(core) {
        if !acl.reaches_under(&path) {
            continue;
        }
        match path.strip_prefix("auth/").filter(|_| is_auth) {
            Some(name) => auth.insert(name.to_string(), json),
            None => secret.insert(path, json),
        };
    }
    Response::data(json!({"secret": secret, "auth": auth}))
}

fn one(core: &Core, acl: &Acl, path: &str) -> Result<Response> {
    let full = if path.ends_with('/') {
        path.to_string()
    } else {
        format!("{path}/")
    };
    let refused = || {
        Error::Status {
        code: 403,
        errors: vec![format!(
            "preflight capability check returned 403, please ensure client's policies grant access to path {full:?}"
        )],
    }
    };
    // The longest mount path that `full` lies in (built-ins included).
    let found = mounts(core)
        .into_iter()
        .filter(|(mount, _, _)| full.starts_with(mount.as_str()))
        .max_by_key(|(mount, _, _)| mount.len());
    let Some((mount, is_auth, mut json)) = found else {
        return Err(refused());
    };
    if !acl.reaches_under(&mount) {
        return Err(refused());
    }
    let shown = if is_auth {
        mount.trim_start_matches("auth/").to_string()
    } else {
        mount
    };
    json["path"] = json!(shown);
    Ok(Response::data(json))
}

/// Whether `req` is the list form sent without a token.
pub(crate) fn is_anonymous_list(req: &Request) -> bool {
    req.token.is_none() && req.operation == Operation::Read && req.path == LIST_PATH
}

//! `sys/plugins/catalog`: Vault's plugin catalog, holding Coffer's built-in
//! engines and auth methods only. Coffer runs no external plugin process:
//! registering one is refused, and deregistering a built-in changes nothing
//! (as in OpenBao).

use serde_json::{json, Value};

use crate::{Error, Operation, Request, Response, Result};

/// The built-in secrets engines a mount may name.
const SECRET: &[&str] = &["database", "kv", "pki", "transit"];
/// The built-in auth methods.
const AUTH: &[&str] = &["approle", "jwt", "oidc", "userpass"];
/// The database engine's built-in plugins.
const DATABASE: &[&str] = &["postgresql-database-plugin"];

/// Whether `rest` (below `sys/`) is the catalog.
pub(crate) fn is_path(rest: &str) -> bool {
    rest.trim_end_matches('/') == "plugins/catalog" || rest.starts_with("plugins/catalog/")
}

fn version() -> String {
    format!("v{}+builtin.coffer", env!("CARGO_PKG_VERSION"))
}

fn names(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "secret" => Some(SECRET),
        "auth" => Some(AUTH),
        "database" => Some(DATABASE),
        _ => None,
    }
}

/// One built-in plugin as the catalog shows it.
fn entry(kind: &str, name: &str) -> Value {
    json!({
        "builtin": true,
        "deprecation_status": "supported",
        "name": name,
        "type": kind,
        "version": version(),
    })
}

/// Answers the catalog; `rest` is below `sys/`.
pub(crate) fn handle(req: &Request, rest: &str) -> Result<Response> {
    let tail = rest.trim_start_matches("plugins/catalog").trim_matches('/');
    let op = req.operation;
    if tail.is_empty() {
        if !matches!(op, Operation::Read | Operation::List) {
            return Err(Error::UnsupportedOperation);
        }
        let mut detailed = Vec::new();
        for kind in ["auth", "database", "secret"] {
            for name in names(kind).unwrap_or_default() {
                detailed.push(entry(kind, name));
            }
        }
        return Ok(Response::data(json!({
            "auth": AUTH,
            "database": DATABASE,
            "secret": SECRET,
            "detailed": detailed,
        })));
    }
    let (kind, name) = match tail.split_once('/') {
        Some((k, n)) => (k, Some(n)),
        None => (tail, None),
    };
    let Some(list) = names(kind) else {
        return Err(Error::bad(format!("unknown plugin type {kind:?}")));
    };
    match (name, op) {
        (None, Operation::List | Operation::Read) => {
            Response::list(list.iter().map(|n| n.to_string()).collect())
        }
        (Some(name), Operation::Read) => {
            if !list.contains(&name) {
                return Err(Error::NotFound);
            }
            let mut e = entry(kind, name);
            if let Some(m) = e.as_object_mut() {
                m.remove("type");
            }
            e["args"] = Value::Null;
            e["command"] = json!("");
            e["sha256"] = json!("");
            Ok(Response::data(e))
        }
        (Some(_), Operation::Create | Operation::Update) => Err(Error::bad(
            "Coffer runs no external plugins: the catalog holds its built-in engines and auth methods only",
        )),
        (Some(_), Operation::Delete) => Ok(Response::empty()),
        _ => Err(Error::UnsupportedOperation),
    }
}

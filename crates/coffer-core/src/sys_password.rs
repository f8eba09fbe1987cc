//! `sys/policies/password`: Vault's password policies. `PUT/GET/DELETE
//! sys/policies/password/:name`, `LIST sys/policies/password` and
//! `GET sys/policies/password/:name/generate`. Names are case-sensitive and
//! may hold `/`, as Vault's; the text is kept as written.

use serde_json::json;

use crate::core::Core;
use crate::util::Params;
use crate::{Error, Operation, Request, Response, Result};

/// Whether `rest` (below `sys/`) is a password-policy path.
pub(crate) fn is_password_path(rest: &str) -> bool {
    rest == "policies/password" || rest.starts_with("policies/password/")
}

fn not_found() -> Error {
    Error::Status {
        code: 404,
        errors: vec!["policy does not exist".into()],
    }
}

/// Handles a password-policy request; `rest` is below `sys/`.
pub(crate) async fn handle(core: &Core, req: &Request, rest: &str) -> Result<Response> {
    use Operation::*;
    let name = rest
        .strip_prefix("policies/password")
        .unwrap_or_default()
        .trim_start_matches('/');
    let store = &core.passwords;
    if name.is_empty() || name.ends_with('/') {
        return match req.operation {
            List | Read if name.is_empty() => Response::list(store.list().await?),
            List | Read => Err(Error::bad("missing policy name")),
            _ => Err(Error::UnsupportedOperation),
        };
    }
    if let Some(policy_name) = name.strip_suffix("/generate") {
        if req.operation != Read {
            return Err(Error::UnsupportedOperation);
        }
        let policy = store.get(policy_name).await?.ok_or_else(not_found)?;
        let password = policy.generate()?;
        return Ok(Response::data(json!({ "password": password.as_str() })));
    }
    match req.operation {
        Read => {
            let text = store.read_text(name).await?.ok_or_else(not_found)?;
            Ok(Response::data(json!({ "policy": text })))
        }
        Create | Update => {
            let params = Params(&req.data);
            let text = params
                .str("policy")?
                .filter(|t| !t.is_empty())
                .ok_or_else(|| Error::bad("missing policy"))?;
            store.write(name, text).await?;
            Ok(Response::empty())
        }
        Delete => {
            store.delete(name).await?;
            Ok(Response::empty())
        }
        _ => Err(Error::UnsupportedOperation),
    }
}

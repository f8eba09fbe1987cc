//! The request headers the audit trail records: Vault's
//! `sys/config/auditing/request-headers`.
//!
//! An operator names headers (case-insensitively; stored lower-case) and
//! whether devices record each one's HMAC rather than its value. The HTTP
//! layer copies only those headers into a request ([`AuditedHeaders::current`]),
//! and every request and response entry lists them under `request.headers`
//! (name → values). Headers that carry credentials (`X-Vault-Token`,
//! `Authorization`, `Cookie`, `Proxy-Authorization`) cannot be named: the
//! trail never holds a token, hashed or not, outside `client_token`.
//!
//! Stored at `request-headers` in the broker's view (`sys/audit/`); every
//! node reloads it when the change log names it.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::barrier::View;
use crate::util::Params;
use crate::{Error, Operation, Request, Response, Result};

/// Key of the configuration in the broker's view.
const KEY: &str = "request-headers";
/// Its full storage key, as the change log names it.
pub const STORAGE_KEY: &str = "sys/audit/request-headers";

/// Headers that carry credentials and may not be audited.
const REFUSED: [&str; 4] = [
    "x-vault-token",
    "authorization",
    "cookie",
    "proxy-authorization",
];

/// Most headers an operator may name.
const MAX_HEADERS: usize = 64;

/// One audited header's setting.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct HeaderSetting {
    /// Whether devices record the value's HMAC instead of the value.
    pub hmac: bool,
}

/// The audited headers: lower-case name → setting.
pub type HeaderTable = BTreeMap<String, HeaderSetting>;

/// The configuration, held in memory for the HTTP layer.
#[derive(Default)]
pub struct AuditedHeaders {
    table: RwLock<Arc<HeaderTable>>,
}

impl AuditedHeaders {
    /// The headers to copy into requests now.
    pub fn current(&self) -> Arc<HeaderTable> {
        self.table.read().clone()
    }

    /// Loads the stored configuration (at unseal, and when another node changed it).
    pub(crate) async fn load(&self, view: &View) -> Result<()> {
        let table: HeaderTable = view.get_json(KEY).await?.unwrap_or_default();
        *self.table.write() = Arc::new(table);
        Ok(())
    }

    /// Forgets the configuration (on seal).
    pub(crate) fn clear(&self) {
        *self.table.write() = Arc::default();
    }

    /// Answers `sys/config/auditing/request-headers[/<name>]`; `name` is
    /// empty for the whole table.
    pub(crate) async fn handle(
        &self,
        view: &View,
        admin: &tokio::sync::Mutex<()>,
        req: &Request,
        name: &str,
    ) -> Result<Response> {
        let asked = name.trim_matches('/');
        let name = asked.to_ascii_lowercase();
        if name.is_empty() {
            return match req.operation {
                Operation::Read | Operation::List => {
                    Ok(Response::data(json!({ "headers": *self.current() })))
                }
                _ => Err(Error::UnsupportedOperation),
            };
        }
        match req.operation {
            Operation::Read => {
                let table = self.current();
                let setting = table
                    .get(&name)
                    .ok_or_else(|| Error::bad("Could not find header in config"))?;
                // Keyed by the name as asked, at the top level too (as Vault answers).
                let mut m = Map::new();
                m.insert(asked.to_string(), json!(setting));
                Ok(Response::with_top_level(Value::Object(m)))
            }
            Operation::Create | Operation::Update => {
                valid_name(&name)?;
                let hmac = Params(&req.data).bool("hmac")?.unwrap_or(false);
                let _admin = admin.lock().await;
                let mut table: HeaderTable = view.get_json(KEY).await?.unwrap_or_default();
                if !table.contains_key(&name) && table.len() >= MAX_HEADERS {
                    return Err(Error::bad(format!(
                        "at most {MAX_HEADERS} request headers can be audited"
                    )));
                }
                table.insert(name, HeaderSetting { hmac });
                view.put_json(KEY, &table).await?;
                *self.table.write() = Arc::new(table);
                Ok(Response::empty())
            }
            Operation::Delete => {
                let _admin = admin.lock().await;
                let mut table: HeaderTable = view.get_json(KEY).await?.unwrap_or_default();
                if table.remove(&name).is_some() {
                    view.put_json(KEY, &table).await?;
                }
                *self.table.write() = Arc::new(table);
                Ok(Response::empty())
            }
            _ => Err(Error::UnsupportedOperation),
        }
    }
}

/// A header name as HTTP allows it (RFC 9110 token), and not one that
/// carries credentials.
fn valid_name(name: &str) -> Result<()> {
    let token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || name.len() > 128 || !name.chars().all(token_char) {
        return Err(Error::bad(format!("invalid header name {name:?}")));
    }
    if REFUSED.contains(&name) {
        return Err(Error::bad(format!(
            "{name} carries credentials and cannot be audited"
        )));
    }
    Ok(())
}

/// The `request.headers` block of an entry: name → values, each value
/// passed through `hash` (the device's HMAC, unless `log_raw`) when the
/// header's setting says so.
pub fn render(headers: &[crate::AuditedHeader], hash: impl Fn(&str) -> Value) -> Option<Value> {
    if headers.is_empty() {
        return None;
    }
    let mut out: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for h in headers {
        let v = if h.hmac {
            hash(&h.value)
        } else {
            Value::String(h.value.clone())
        };
        out.entry(h.name.as_str()).or_default().push(v);
    }
    Some(json!(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_tokens_and_never_credentials() {
        assert!(valid_name("x-request-id").is_ok());
        for bad in ["x-vault-token", "authorization", "cookie", "a b", "a:b", ""] {
            assert!(valid_name(bad).is_err(), "{bad:?}");
        }
    }
}

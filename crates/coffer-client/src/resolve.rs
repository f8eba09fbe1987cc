//! Resolving `coffer://` references through the normal API: a KV read
//! with the client's token, so policy and audit apply as to any read.
//!
//! Errors name the reference and say what is wrong (malformed, unknown
//! mount, no such secret or version, missing field, permission denied);
//! they never carry a value.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};

use reqwest::Method;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::reference::{Reference, ReferenceError, Selector};
use crate::{Client, Error};

/// Why a reference could not be resolved. Every message names the
/// reference (it holds no secret) and none holds a value.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The text is not a valid reference.
    #[error(transparent)]
    Malformed(#[from] ReferenceError),
    /// No mount serves the reference's path.
    #[error("{reference}: no secrets engine is mounted at {mount:?}")]
    UnknownMount {
        /// The reference.
        reference: String,
        /// Its mount.
        mount: String,
    },
    /// The token may not read the secret.
    #[error("{reference}: permission denied (the token's policies do not allow reading {secret})")]
    Forbidden {
        /// The reference.
        reference: String,
        /// The secret's path.
        secret: String,
    },
    /// No such secret, version or stage (or it is deleted).
    #[error("{reference}: no secret at {secret} (or that version is deleted or destroyed)")]
    NotFound {
        /// The reference.
        reference: String,
        /// The secret's path.
        secret: String,
    },
    /// The secret has no such field.
    #[error("{reference}: the secret has no field {field:?} (its fields: {available})")]
    MissingField {
        /// The reference.
        reference: String,
        /// The field asked for.
        field: String,
        /// The names of the fields it has (names only), comma-separated.
        available: String,
    },
    /// The mount is not one references can read, or the selector does not apply.
    #[error("{reference}: {reason}")]
    Unsupported {
        /// The reference.
        reference: String,
        /// Why.
        reason: String,
    },
    /// The server could not be reached or answered an unexpected error.
    #[error("{reference}: {source}")]
    Server {
        /// The reference.
        reference: String,
        /// The client error (its message has no request or response data).
        #[source]
        source: Error,
    },
}

/// The KV flavour of a mount and its path, as the server describes it.
#[derive(Debug, Clone)]
struct MountInfo {
    /// The mount's path with its trailing slash (`secret/`).
    path: String,
    /// Whether it is KV version 2.
    v2: bool,
}

/// Resolves references with one client; caches mount lookups and secret
/// reads, so a secret read for several fields is read once.
pub struct Resolver<'a> {
    client: &'a Client,
    mounts: RefCell<HashMap<String, MountInfo>>,
    reads: RefCell<HashMap<(String, String), Zeroizing<String>>>,
    /// KV v2 data paths whose current-version references read the
    /// `pending` stage instead (a rotation waiting for its consumers).
    pending: RefCell<HashSet<String>>,
    /// The version each KV v2 secret read for a current (or pending)
    /// reference returned, by data path, with its mount: what this
    /// consumer holds.
    held: RefCell<BTreeMap<String, Held>>,
    /// The version each cached KV v2 read returned.
    versions: RefCell<HashMap<(String, String), u64>>,
}

/// A version of a secret a consumer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The KV v2 mount's path (`secret/`).
    pub mount: String,
    /// The secret's path inside it (`app/db`).
    pub path: String,
    /// The version read.
    pub version: u64,
}

/// Prints the number of cached reads, never their data.
impl std::fmt::Debug for Resolver<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("mounts", &self.mounts.borrow().len())
            .field("reads", &self.reads.borrow().len())
            .finish()
    }
}

impl<'a> Resolver<'a> {
    /// A resolver reading through `client` (and its token).
    pub fn new(client: &'a Client) -> Resolver<'a> {
        Resolver {
            client,
            mounts: RefCell::new(HashMap::new()),
            reads: RefCell::new(HashMap::new()),
            pending: RefCell::new(HashSet::new()),
            held: RefCell::new(BTreeMap::new()),
            versions: RefCell::new(HashMap::new()),
        }
    }

    /// Makes current-version references to the KV v2 secret at `data_path`
    /// (`secret/data/app/db`) read its `pending` stage (`on`), or the
    /// current version again (`!on`). Takes effect at the next read.
    pub fn read_pending(&self, data_path: &str, on: bool) {
        let p = data_path.trim_matches('/').to_string();
        if on {
            self.pending.borrow_mut().insert(p);
        } else {
            self.pending.borrow_mut().remove(&p);
        }
    }

    /// Reads the current versions of every secret again (after a resync).
    pub fn read_current_everywhere(&self) {
        self.pending.borrow_mut().clear();
    }

    /// The versions of KV v2 secrets the references read since the last
    /// [`Resolver::forget_reads`], by data path.
    pub fn held(&self) -> BTreeMap<String, Held> {
        self.held.borrow().clone()
    }

    /// Forgets cached reads (mount lookups are kept), so the next
    /// resolution reads the secrets again: after a change event.
    pub fn forget_reads(&self) {
        self.reads.borrow_mut().clear();
        self.held.borrow_mut().clear();
        self.versions.borrow_mut().clear();
    }

    /// Parses and resolves `text`.
    pub fn resolve_str(&self, text: &str) -> Result<Zeroizing<String>, ResolveError> {
        self.resolve(&Reference::parse(text)?)
    }

    /// The value the reference names: a string field as it is, any other
    /// JSON value as its JSON text.
    pub fn resolve(&self, r: &Reference) -> Result<Zeroizing<String>, ResolveError> {
        let mount = self.mount(r)?;
        let secret = r.secret();
        let rel = &secret[mount.path.len().min(secret.len())..];
        let (api, query) = if mount.v2 {
            let data_path = format!("{}data/{rel}", mount.path);
            let q = match &r.selector {
                Selector::Current if self.pending.borrow().contains(&data_path) => {
                    "?stage=pending".to_string()
                }
                Selector::Current => String::new(),
                Selector::Version(n) => format!("?version={n}"),
                Selector::Stage(s) => format!("?stage={s}"),
            };
            (format!("{}data/{rel}", mount.path), q)
        } else {
            if r.selector != Selector::Current {
                return Err(ResolveError::Unsupported {
                    reference: r.to_string(),
                    reason: format!(
                        "{} is a KV version 1 mount: it keeps no versions or stages",
                        mount.path
                    ),
                });
            }
            (format!("{}{rel}", mount.path), String::new())
        };
        let data = self.read_data(r, &api, &query, mount.v2)?;
        let tracked = mount.v2 && matches!(r.selector, Selector::Current);
        if let (true, Some(version)) = (tracked, self.version_of(&api, &query)) {
            self.held.borrow_mut().insert(
                api.clone(),
                Held {
                    mount: mount.path.clone(),
                    path: rel.to_string(),
                    version,
                },
            );
        }
        let value = match data.get(&r.field) {
            Some(Value::String(s)) => Zeroizing::new(s.clone()),
            Some(Value::Null) | None => {
                let mut names: Vec<&str> = data.keys().map(String::as_str).collect();
                names.sort_unstable();
                return Err(ResolveError::MissingField {
                    reference: r.to_string(),
                    field: r.field.clone(),
                    available: if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    },
                });
            }
            Some(other) => Zeroizing::new(other.to_string()),
        };
        Ok(value)
    }

    /// The path a change event for this reference's secret carries as
    /// `data_path` (`secret/data/app/db` for KV v2, `kv/app` for v1).
    pub fn event_path(&self, r: &Reference) -> Result<String, ResolveError> {
        let mount = self.mount(r)?;
        let secret = r.secret();
        let rel = &secret[mount.path.len().min(secret.len())..];
        Ok(if mount.v2 {
            format!("{}data/{rel}", mount.path)
        } else {
            format!("{}{rel}", mount.path)
        })
    }

    /// The version a cached KV v2 read returned.
    fn version_of(&self, api: &str, query: &str) -> Option<u64> {
        self.versions
            .borrow()
            .get(&(api.to_string(), query.to_string()))
            .copied()
    }

    /// The secret's data object (cached per path and query).
    fn read_data(
        &self,
        r: &Reference,
        api: &str,
        query: &str,
        v2: bool,
    ) -> Result<serde_json::Map<String, Value>, ResolveError> {
        let key = (api.to_string(), query.to_string());
        if let Some(text) = self.reads.borrow().get(&key) {
            if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(text) {
                return Ok(m);
            }
        }
        let resp = self
            .client
            .request(Method::GET, &format!("{api}{query}"), None)
            .map_err(|source| ResolveError::Server {
                reference: r.to_string(),
                source,
            })?;
        match resp.status {
            403 => {
                return Err(ResolveError::Forbidden {
                    reference: r.to_string(),
                    secret: r.secret(),
                })
            }
            404 => {
                return Err(ResolveError::NotFound {
                    reference: r.to_string(),
                    secret: r.secret(),
                })
            }
            s if s >= 400 => {
                return Err(ResolveError::Server {
                    reference: r.to_string(),
                    source: Error::Api(resp.into_api_error()),
                })
            }
            _ => {}
        }
        let data = resp.data().cloned().unwrap_or(Value::Null);
        if let Some(v) = data
            .get("metadata")
            .and_then(|m| m.get("version"))
            .and_then(Value::as_u64)
        {
            self.versions.borrow_mut().insert(key.clone(), v);
        }
        let data = if v2 {
            data.get("data").cloned().unwrap_or(Value::Null)
        } else {
            data
        };
        let Value::Object(map) = data else {
            return Err(ResolveError::NotFound {
                reference: r.to_string(),
                secret: r.secret(),
            });
        };
        self.reads
            .borrow_mut()
            .insert(key, Zeroizing::new(Value::Object(map.clone()).to_string()));
        Ok(map)
    }

    /// The mount serving the reference, asked of the server once per
    /// secret (`sys/internal/ui/mounts/<path>`, which any token reaching
    /// the path may read, as `vault kv` does).
    fn mount(&self, r: &Reference) -> Result<MountInfo, ResolveError> {
        let secret = r.secret();
        if let Some(m) = self.mounts.borrow().get(&secret) {
            return Ok(m.clone());
        }
        let server = |source| ResolveError::Server {
            reference: r.to_string(),
            source,
        };
        let resp = self
            .client
            .request(
                Method::GET,
                &format!("sys/internal/ui/mounts/{secret}"),
                None,
            )
            .map_err(server)?;
        if resp.status == 403 || resp.status == 404 {
            // Either nothing is mounted there or the token reaches nothing
            // below it; a plain read tells them apart (an unknown mount is
            // refused before any policy is consulted, as in Vault).
            let probe = self
                .client
                .request(Method::GET, &secret, None)
                .map_err(server)?;
            let unrouted = probe.status == 404
                && probe
                    .errors()
                    .iter()
                    .any(|e| e.contains("no handler for route"));
            return Err(if unrouted {
                ResolveError::UnknownMount {
                    reference: r.to_string(),
                    mount: r.mount.clone(),
                }
            } else {
                ResolveError::Forbidden {
                    reference: r.to_string(),
                    secret,
                }
            });
        }
        let resp = resp.error_for_status().map_err(server)?;
        let data = resp.data().cloned().unwrap_or(Value::Null);
        let kind = data.get("type").and_then(Value::as_str).unwrap_or("");
        let path = data
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if !matches!(kind, "kv" | "generic") || path.is_empty() || !secret.starts_with(&path) {
            return Err(ResolveError::Unsupported {
                reference: r.to_string(),
                reason: format!(
                    "the mount {:?} is of type {kind:?}: references read KV mounts only",
                    path.trim_end_matches('/')
                ),
            });
        }
        let v2 = data
            .get("options")
            .and_then(|o| o.get("version"))
            .and_then(Value::as_str)
            == Some("2");
        let info = MountInfo { path, v2 };
        self.mounts.borrow_mut().insert(secret, info.clone());
        Ok(info)
    }
}

//! Reporting, as a consumer of secrets, which versions this process holds:
//! `POST <mount>/consumers/<path>` with `{consumer_id, version, kind}`.
//! The server binds the record to the token's entity (or accessor), so a
//! consumer id only has to be unique for one token. No value is sent.
//!
//! `coffer run --watch` and `coffer agent` report after each (re)render
//! and again every [`REPORT_INTERVAL`], so a rotation configured with
//! `consumer_wait` counts them as live and waits for them.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::resolve::Held;
use crate::{Client, Error};

/// How often a consumer repeats its report while nothing changes (well
/// inside the server's default freshness window of five minutes).
pub const REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// A consumer id for this process: `<kind>:<host>:<pid>`.
pub fn consumer_id(kind: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .take(64)
        .collect();
    let host = if host.is_empty() { "host".into() } else { host };
    format!("{kind}:{host}:{}", std::process::id())
}

/// Reports `held` (by data path) for consumer `id` of kind `kind`; the
/// first failure is returned after every report was tried.
pub fn report(
    client: &Client,
    id: &str,
    kind: &str,
    held: &BTreeMap<String, Held>,
) -> Result<(), Error> {
    let mut first = None;
    for h in held.values() {
        let body = json!({"consumer_id": id, "version": h.version, "kind": kind});
        let path = format!("{}consumers/{}", h.mount, h.path);
        let outcome = client
            .request(Method::POST, &path, Some(&body))
            .and_then(|r| r.error_for_status().map(|_| ()));
        if let Err(e) = outcome {
            first.get_or_insert(e);
        }
    }
    match first {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

/// The KV v2 mounts of data paths, asked of the server once per path
/// (`sys/internal/ui/mounts/<path>`, as the resolver does), for consumers
/// that know only the paths they read (`coffer agent`'s templates).
#[derive(Debug, Default)]
pub struct Mounts {
    known: std::sync::Mutex<std::collections::HashMap<String, Option<String>>>,
}

impl Mounts {
    /// What a consumer holds when it read `version` at `data_path`
    /// (`secret/data/app/db`); `None` when the path is not a KV v2
    /// secret's data (a dynamic credential, a KV v1 secret).
    pub fn held(
        &self,
        client: &Client,
        data_path: &str,
        version: u64,
    ) -> Result<Option<Held>, Error> {
        let data_path = data_path.trim_matches('/');
        let cached = self
            .known
            .lock()
            .ok()
            .and_then(|k| k.get(data_path).cloned());
        let mount = match cached {
            Some(m) => m,
            None => {
                let resp = client
                    .request(
                        Method::GET,
                        &format!("sys/internal/ui/mounts/{data_path}"),
                        None,
                    )?
                    .error_for_status()?;
                let d = resp.data().cloned().unwrap_or_default();
                let v2 = d.get("type").and_then(|t| t.as_str()) == Some("kv")
                    && d.get("options")
                        .and_then(|o| o.get("version"))
                        .and_then(|v| v.as_str())
                        == Some("2");
                let m = d
                    .get("path")
                    .and_then(|p| p.as_str())
                    .filter(|_| v2)
                    .map(str::to_string);
                if let Ok(mut k) = self.known.lock() {
                    k.insert(data_path.to_string(), m.clone());
                }
                m
            }
        };
        Ok(mount.and_then(|mount| {
            let rel = data_path
                .strip_prefix(mount.as_str())?
                .strip_prefix("data/")?;
            Some(Held {
                mount: mount.clone(),
                path: rel.to_string(),
                version,
            })
        }))
    }
}

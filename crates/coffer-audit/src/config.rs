//! An audit device's configuration as `sys/audit/:path` takes it, and the
//! options common to every device type.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{Error, Result};

/// Entries between two signed checkpoints unless `checkpoint_interval` says otherwise.
pub const DEFAULT_CHECKPOINT_INTERVAL: u64 = 1000;

/// Device types Coffer knows.
pub const TYPES: [&str; 4] = ["file", "stdout", "socket", "syslog"];

/// The server's audit settings (the `[audit]` section of its configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditSettings {
    /// The only directory file devices may write in (absolute). `None`:
    /// file devices are refused, except `file_path=stdout`.
    pub file_dir: Option<PathBuf>,
}

/// A device as stored behind the barrier (`sys/audit/config`).
#[derive(Clone, Serialize, Deserialize)]
pub struct DeviceConfig {
    /// Path with a trailing slash, e.g. `file/`.
    pub path: String,
    /// `file`, `stdout`, `socket` or `syslog`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Options as given (strings).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Vault's `local` flag (kept and shown; there is no replication).
    #[serde(default)]
    pub local: bool,
    /// The HMAC salt, hex. Never shown.
    pub salt: String,
}

/// Leaves out the salt.
impl std::fmt::Debug for DeviceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceConfig")
            .field("path", &self.path)
            .field("kind", &self.kind)
            .field("description", &self.description)
            .field("options", &self.options)
            .field("local", &self.local)
            .field("salt", &crate::redact::Redacted)
            .finish()
    }
}

impl DeviceConfig {
    /// The entry as `GET sys/audit` shows it.
    pub fn to_json(&self) -> Value {
        json!({
            "type": self.kind,
            "description": self.description,
            "options": self.options,
            "local": self.local,
            "path": self.path,
        })
    }
}

/// Options common to every device type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// HMAC the token accessor (default true).
    pub hmac_accessor: bool,
    /// Log values in clear (default false; enabling needs sudo).
    pub log_raw: bool,
    /// Replace the keys of list responses by their count.
    pub elide_list_responses: bool,
    /// Text written before each entry.
    pub prefix: String,
    /// Entries between signed checkpoints.
    pub checkpoint_interval: u64,
}

impl Options {
    /// Parses the common options out of `options`.
    pub fn parse(options: &BTreeMap<String, String>) -> Result<Options> {
        let flag = |name: &str, default: bool| -> Result<bool> {
            match options.get(name) {
                None => Ok(default),
                Some(v) => parse_bool(v)
                    .ok_or_else(|| Error::bad(format!("unable to parse '{name}': {v:?}"))),
            }
        };
        let prefix = options.get("prefix").cloned().unwrap_or_default();
        if prefix.contains('{') || prefix.contains('\n') || prefix.contains('\r') {
            return Err(Error::bad("prefix may not contain '{' or a line break"));
        }
        if let Some(f) = options.get("format") {
            if f != "json" {
                return Err(Error::bad(format!("unsupported format {f:?}: only json")));
            }
        }
        let checkpoint_interval = match options.get("checkpoint_interval") {
            None => DEFAULT_CHECKPOINT_INTERVAL,
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=1_000_000).contains(n))
                .ok_or_else(|| Error::bad("checkpoint_interval: a number from 1 to 1000000"))?,
        };
        Ok(Options {
            hmac_accessor: flag("hmac_accessor", true)?,
            log_raw: flag("log_raw", false)?,
            elide_list_responses: flag("elide_list_responses", false)?,
            prefix,
            checkpoint_interval,
        })
    }
}

/// Go's `strconv.ParseBool`, which Vault uses for option strings.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors() {
        let o = Options::parse(&BTreeMap::new()).unwrap();
        assert!(o.hmac_accessor && !o.log_raw && !o.elide_list_responses);
        assert_eq!(o.checkpoint_interval, DEFAULT_CHECKPOINT_INTERVAL);
        let bad = BTreeMap::from([("log_raw".to_string(), "maybe".to_string())]);
        assert!(Options::parse(&bad).is_err());
        let brace = BTreeMap::from([("prefix".to_string(), "{x".to_string())]);
        assert!(Options::parse(&brace).is_err());
    }
}

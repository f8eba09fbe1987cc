//! Secrets engines that can be mounted.

pub mod cubbyhole;
pub mod database;
pub mod kv_v1;
pub mod kv_v2;
pub mod pki;
pub mod transit;

use std::sync::Arc;

use crate::engine::Engine;
use crate::mounts::MountEntry;
use crate::{Error, Result};

/// Creates the engine for a mount entry, or refuses an unknown type.
/// `passwords` are the stored password policies the database engine
/// generates credentials from.
pub fn for_mount(
    entry: &MountEntry,
    passwords: &crate::password::PasswordPolicies,
) -> Result<Arc<dyn Engine>> {
    match entry.kind.as_str() {
        "kv" => match entry.options.get("version").map(String::as_str) {
            Some("2") => Ok(Arc::new(kv_v2::KvV2::new())),
            None | Some("1") | Some("") => Ok(Arc::new(kv_v1::KvV1)),
            Some(v) => Err(Error::bad(format!("unsupported kv version {v:?}"))),
        },
        "database" => Ok(Arc::new(database::Database::new(passwords.clone()))),
        pki::KIND => Ok(Arc::new(pki::Pki::new())),
        cubbyhole::KIND => Ok(Arc::new(cubbyhole::Cubbyhole)),
        transit::KIND => Ok(Arc::new(transit::Transit::new())),
        other => Err(Error::bad(format!(
            "plugin not found in the catalog: {other}"
        ))),
    }
}

/// The concrete engines the core's own subsystems work through (the
/// lifecycle's staged rotation through KV v2, its `pki` rotator through
/// pki), found by downcasting: the engine contract names no concrete engine.
pub trait EngineExt {
    /// The KV v2 engine behind this mount, if it is one.
    fn as_kv2(&self) -> Option<&kv_v2::KvV2>;
    /// The pki engine behind this mount, if it is one.
    fn as_pki(&self) -> Option<&pki::Pki>;
}

impl EngineExt for dyn Engine {
    fn as_kv2(&self) -> Option<&kv_v2::KvV2> {
        self.as_any().downcast_ref()
    }

    fn as_pki(&self) -> Option<&pki::Pki> {
        self.as_any().downcast_ref()
    }
}

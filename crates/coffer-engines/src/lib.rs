//! Coffer's mountable secrets engines: KV v1 and v2, database (PostgreSQL),
//! pki and transit, with the password policies and the hash and random
//! tools they share with the system backend.
//!
//! **Architecture Invariant**: an engine here is written against the
//! contract in `coffer-engine` and nothing above it. It sees its request
//! (path relative to its mount), its [`coffer_engine::EngineCtx`] (its own barrier `View`,
//! its mount entry, the caller's token entry) and what the core hands it at
//! construction ([`password::PasswordPolicies`] for the database engine);
//! it never names the core, the token store, leases or audit. The crate
//! does not depend on `coffer-core` (checked by Cargo: it cannot name
//! `Core`; `coffer-core/tests/architecture.rs` also keeps the name out of
//! its text). Leases and events an engine wants are asked for in its
//! [`Response`], which the core's pipeline acts on. Everything an engine
//! stores passes through its `View`, so it is encrypted at rest.
//!
//! * [`for_mount`]: the engine for a mount entry's type; [`EngineExt`]:
//!   the concrete engines the core's subsystems work through;
//! * [`kv_v1`], [`kv_v2`], [`database`], [`pki`], [`transit`]: the engines;
//! * [`password`]: password policies and the one password generator;
//! * [`tools`]: `hash` and `random`, answered under `sys/tools/` and by
//!   transit.
//!
//! The per-token cubbyhole is not here: it lives with the token store in
//! `coffer-core`, whose revocation destroys it.

pub mod database;
pub mod kv_v1;
pub mod kv_v2;
pub mod password;
pub mod pki;
pub mod tools;
pub mod transit;

use std::sync::Arc;

use coffer_engine::engine::Engine;
use coffer_engine::{Error, Result};

// The engines' sources name the contract as `crate::engine`, `crate::Error`
// and so on, the paths they had inside coffer-core; these private imports
// keep those paths valid so the moved files stay as they were.
use coffer_engine::{barrier, cache, engine, mounts, redact};
use coffer_engine::{LeaseRequest, Operation, Request, Response};
use mounts::MountEntry;

/// Vault's parameter, time and JSON helpers under their former module name.
mod util {
    pub use coffer_engine::json::merge_patch;
    pub use coffer_engine::params::Params;
    pub use coffer_engine::time::{
        format_duration, format_duration_short, now, parse_duration, rfc3339,
    };
}

/// Creates the engine for a mount entry, or refuses an unknown type.
/// `passwords` are the stored password policies the database engine
/// generates credentials from. The cubbyhole is the core's to create.
pub fn for_mount(
    entry: &MountEntry,
    passwords: &password::PasswordPolicies,
) -> Result<Arc<dyn Engine>> {
    match entry.kind.as_str() {
        "kv" => match entry.options.get("version").map(String::as_str) {
            Some("2") => Ok(Arc::new(kv_v2::KvV2::new())),
            None | Some("1") | Some("") => Ok(Arc::new(kv_v1::KvV1)),
            Some(v) => Err(Error::bad(format!("unsupported kv version {v:?}"))),
        },
        "database" => Ok(Arc::new(database::Database::new(passwords.clone()))),
        pki::KIND => Ok(Arc::new(pki::Pki::new())),
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

//! Secrets engines that can be mounted: the per-token cubbyhole, which is
//! tied to the token store and stays here, and the others, which live in
//! the `coffer-engines` crate and are re-exported under their former paths.

pub mod cubbyhole;

pub use coffer_engines::{database, kv_v1, kv_v2, pki, transit, EngineExt};

use std::sync::Arc;

use crate::engine::Engine;
use crate::mounts::MountEntry;
use crate::Result;

/// Creates the engine for a mount entry, or refuses an unknown type: the
/// cubbyhole here, every other engine through [`coffer_engines::for_mount`].
/// `passwords` are the stored password policies the database engine
/// generates credentials from.
pub fn for_mount(
    entry: &MountEntry,
    passwords: &crate::password::PasswordPolicies,
) -> Result<Arc<dyn Engine>> {
    if entry.kind == cubbyhole::KIND {
        return Ok(Arc::new(cubbyhole::Cubbyhole));
    }
    coffer_engines::for_mount(entry, passwords)
}

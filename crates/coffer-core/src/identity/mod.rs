//! Identity, as Vault's `identity/` engine: entities (a person or service)
//! with aliases (the names auth methods know them by), internal groups
//! (members listed) and external groups (members from an auth method's
//! group names at login, through a group alias), and policy templating.
//!
//! The store ([`store::IdentityStore`]) is part of the core, because every
//! request's ACL reads it: a token carries its entity id, and the policies
//! of the entity and of its groups are added at each request from what the
//! store holds then ([`crate::core::Core::token_acl`]), so a group change
//! applies at once to existing tokens. The API ([`api`]) is mounted at
//! `identity/` on every store (it cannot be disabled, moved or mounted
//! again) and reached through the one request path, ACL and audit
//! included.

pub mod api;
pub mod model;
pub mod store;
pub mod template;

use async_trait::async_trait;

use crate::engine::{Engine, EngineCtx};
use crate::mounts::MountEntry;
use crate::{Error, Request, Response, Result};

/// Where the identity API is mounted.
pub const MOUNT_PATH: &str = "identity/";

/// The mount type.
pub const KIND: &str = crate::mounts::IDENTITY_KIND;

/// The mount table entry of the built-in identity mount.
pub fn mount_entry() -> MountEntry {
    let mut entry = MountEntry::new(MOUNT_PATH, KIND);
    entry.description = "identity store".into();
    entry
}

/// The mount's engine object. The core answers identity requests itself
/// (the API needs the store and the auth mount table), after the same
/// authentication, ACL and audit as any engine; this is never reached.
pub struct IdentityMount;

#[async_trait]
impl Engine for IdentityMount {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    async fn handle(&self, _ctx: &EngineCtx<'_>, _req: &Request, _path: &str) -> Result<Response> {
        Err(Error::UnsupportedOperation)
    }
}

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
//! included. Vault's identity tokens (signed OIDC ID tokens of an entity,
//! their keys, roles and public key set) are [`oidc`].

pub mod api;
pub mod model;
pub mod oidc;
pub mod store;
pub mod template;

use crate::mounts::MountEntry;

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

//! ACL policies in Vault HCL: parsing, formatting and evaluation.
//!
//! **Architecture Invariant**: pure functions of their inputs. No I/O, no
//! async runtime, no storage, no clock: the core hands this crate policy
//! text and request paths and gets decisions back. It depends on no other
//! Coffer crate, so it can be fuzzed and tested alone. The two value
//! grammars policies share with the rest of Coffer live here too, written
//! once: Vault's durations ([`duration`]) and globs ([`glob`]).
//!
//! * [`Policy::parse`] reads a policy in Vault's HCL (or JSON) syntax;
//!   [`format_policy`] writes it back in canonical HCL.
//! * [`Acl::new`] compiles a token's policies; [`Acl::authorize`] decides a
//!   request and [`Acl::capabilities`] answers `sys/capabilities*`.
//!
//! Matching follows Vault: an exact pattern wins; otherwise, among the
//! matching `*` prefix and `+` segment patterns, only the highest-priority one
//! counts (see [`PathPattern`]), and `deny` in it beats everything.
//!
//! ```
//! use coffer_policy::{Acl, Operation, Policy};
//!
//! let p = Policy::parse("app", r#"path "secret/*" { capabilities = ["read"] }"#).unwrap();
//! let acl = Acl::new(&[p]);
//! assert!(acl.authorize(Operation::Read, "secret/db", None).is_ok());
//! assert!(acl.authorize(Operation::Update, "secret/db", None).is_err());
//! ```

mod acl;
mod capability;
mod defaults;
pub mod duration;
mod format;
pub mod glob;
mod hcl_syntax;
mod json_syntax;
mod names;
mod params;
mod parse;
mod pattern;
mod radix;

#[cfg(test)]
mod tests;

pub use acl::{Acl, AuthzResult, Denied};
pub use capability::{Capability, CapabilitySet, Operation, UnknownCapability};
pub use defaults::{DEFAULT_POLICY_HCL, DEFAULT_POLICY_NAME};
pub use format::format_policy;
pub use names::sanitize_policies;
pub use params::{ParamMap, ParamValue};
pub use parse::{PathRule, Policy, PolicyError, ROOT_POLICY_NAME};
pub use pattern::PathPattern;

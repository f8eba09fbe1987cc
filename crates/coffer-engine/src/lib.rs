//! The contract a Coffer secrets engine or auth method is written against.
//!
//! **Architecture Invariant**: this crate names no concrete engine, auth
//! method or core service, and does not depend on `coffer-core`: an engine
//! sees a [`Request`] with the path relative to its mount, its own storage
//! [`barrier::View`] and its [`mounts::MountEntry`] ([`engine::EngineCtx`]),
//! and answers a [`Response`] or an [`Error`]. Everything at rest passes
//! through the [`barrier::Barrier`], which encrypts it: no code here or
//! above writes a plaintext entry to the storage backend.
//!
//! * [`request`]: `Request`, `Response`, `Operation`, `AuthGrant`,
//!   `LeaseRequest`; [`error`]: the error answered to a request and its
//!   status code;
//! * [`engine`]: the `Engine` trait; [`mounts`]: the mount table's entries
//!   and the longest-prefix router;
//! * [`barrier`]: encryption of every entry, storage views, the keyring;
//! * [`params`], [`time`], [`json`], [`names`]: request parameters, Vault's
//!   times and durations, Vault's JSON shapes, case-insensitive object names; [`redact`]: `Debug` without secrets;
//!   [`telemetry`]: the process-wide metrics handles; [`cache`]: the
//!   parsed-entry cache and its write protocol (engines and core stores).

pub mod barrier;
pub mod cache;
pub mod caller;
pub mod engine;
pub mod error;
pub mod json;
pub mod mounts;
pub mod names;
pub mod params;
pub mod redact;
pub mod request;
pub mod telemetry;
pub mod time;

pub use engine::{Engine, EngineCtx};
pub use error::{Error, Result};
pub use request::{
    AuditedHeader, AuthGrant, ByteStream, LeaseRequest, Operation, Request, Response, Sideband,
    WrapFormat,
};

//! Coffer's core: barrier, seal, router and mounts, tokens, engines.
//!
//! The core knows nothing of HTTP: it takes a [`Request`] and answers a
//! [`Response`] or an [`Error`]; the HTTP layer translates Vault's wire
//! format. Start reading at [`core::Core::handle`].

pub mod abuse;
mod backends;
pub mod batch_token;
pub mod canonical;
mod cluster_events;
mod coherence;
pub mod core;
pub mod engines;
pub mod events;
pub mod expiration;
pub mod identity;
pub mod in_flight;
pub mod leader;
pub mod lifecycle;
pub mod path_help;
pub mod policy_store;
pub mod procedure;
mod quotas;
pub mod routes;
pub mod seal;
mod shares;
pub mod snapshot;
mod sys;
mod sys_audit;
pub mod sys_cors;
mod sys_generate_root;
mod sys_host;
mod sys_internal;
mod sys_leases;
pub mod sys_loggers;
mod sys_metrics;
pub mod sys_monitor;
mod sys_password;
mod sys_plugins;
mod sys_policy;
mod sys_rekey;
mod sys_remount;
mod sys_snapshot;
mod sys_ui;
mod sys_version;
mod time_index;
pub mod token;
pub mod token_api;
pub mod wrapping;
pub mod wrapping_jwt;

#[cfg(test)]
mod redact_tests;

// The engine contract and the policy language live in crates of their own
// (coffer-engine, coffer-policy); they are re-exported under their former
// module names so `crate::request::Request` and the like resolve as before.
pub use coffer_engine::{
    barrier, cache, engine, error, json, mounts, params, redact, request, telemetry,
};
// The password policies moved with the engines (the database engine
// generates from them); the system backend and the rotators use them here.
pub use coffer_engines::password;
pub use coffer_policy as policy;
// The auth methods are a crate of their own (coffer-auth), under their
// former module name.
pub use coffer_auth as auth;
// So is the audit trail (coffer-audit); the system backend's audit
// endpoints stay here (sys_audit.rs), as does the pipeline that calls it.
pub use coffer_audit as audit;

/// Former home of small helpers, now each in its own module of
/// coffer-engine ([`time`], [`params`], [`json`]); these paths stay valid.
pub mod util {
    pub use coffer_engine::json::{list_or_null, merge_patch};
    pub use coffer_engine::params::Params;
    pub use coffer_engine::time::{
        format_duration, format_duration_short, now, parse_duration, rfc3339,
    };
}

pub use crate::core::{Core, CoreConfig, InitResult};
pub use error::{Error, Result};
pub use request::{
    AuditedHeader, AuthGrant, ByteStream, LeaseRequest, Operation, Request, Response, Sideband,
    WrapFormat,
};
pub use sys::decode_key;

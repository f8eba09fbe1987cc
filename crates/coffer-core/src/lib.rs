//! Coffer's core: barrier, seal, router and mounts, tokens, engines.
//!
//! The core knows nothing of HTTP: it takes a [`Request`] and answers a
//! [`Response`] or an [`Error`]; the HTTP layer translates Vault's wire
//! format. Start reading at [`core::Core::handle`].

pub mod abuse;
pub mod audit;
pub mod auth;
mod backends;
pub mod barrier;
pub mod batch_token;
pub mod cache;
pub mod canonical;
mod coherence;
pub mod core;
pub mod engine;
pub mod engines;
pub mod error;
pub mod events;
pub mod expiration;
pub mod identity;
pub mod leader;
pub mod lifecycle;
pub mod mounts;
pub mod password;
pub mod path_help;
pub mod policy;
pub mod policy_store;
pub mod procedure;
pub mod redact;
pub mod request;
pub mod routes;
pub mod seal;
mod shares;
mod sys;
pub mod sys_cors;
mod sys_generate_root;
mod sys_host;
mod sys_leases;
mod sys_metrics;
mod sys_password;
mod sys_policy;
mod sys_rekey;
mod sys_remount;
mod sys_tools;
mod sys_ui;
mod sys_version;
pub mod telemetry;
pub mod token;
pub mod token_api;
pub mod util;
pub mod wrapping;

pub use crate::core::{Core, CoreConfig, InitResult};
pub use error::{Error, Result};
pub use request::{AuthGrant, LeaseRequest, Operation, Request, Response};
pub use sys::decode_key;

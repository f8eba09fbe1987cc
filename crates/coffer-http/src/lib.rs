//! Coffer's HTTP layer: Vault's wire format over axum.
//!
//! Every `/v1/...` request becomes a core [`coffer_core::Request`]; the core's
//! answer becomes Vault's JSON envelope or `{"errors": [...]}`. This crate
//! owns transport concerns only: parsing and limits, TLS, graceful shutdown.
//! The listener also serves the web UI (`coffer-ui`) under `/ui/`, a client
//! of the same core.

pub mod body;
mod events;
pub mod listener;
pub mod proxy;
pub mod tls;
pub mod wire;

pub use listener::{serve, ListenerConfig, ServeError};
pub use proxy::TrustedProxies;
pub use wire::{app, app_with_proxies, HttpLimits};

//! Coffer's client library, shared by the `coffer` CLI and `coffer agent`,
//! and the Rust SDK for applications:
//!
//! - [`Client`]: a blocking client for the (Vault-compatible) HTTP API,
//!   configured like the `vault` CLI ([`Config::from_env`]);
//! - [`Reference`]: the `coffer://<mount>/<path>#<field>` form that
//!   `coffer scan --rewrite` leaves in code and config;
//! - [`Resolver`]: reads references through the normal API (so policy and
//!   audit apply), with errors that name the reference, never the value;
//! - [`consumers`]: reporting which versions of secrets this process holds;
//! - [`events::Subscriber`]: the change-event stream
//!   (`sys/events/subscribe/<type>`, a WebSocket in Vault's shape).
//!
//! ```ignore
//! let client = coffer_client::Client::from_env()?;
//! let r = coffer_client::Reference::parse("coffer://secret/app/db#password")?;
//! let password = coffer_client::Resolver::new(&client).resolve(&r)?;
//! ```

pub mod consumers;
pub mod events;
mod http;
pub mod reference;
pub mod resolve;
pub mod tls;

#[cfg(test)]
pub(crate) use http::DEFAULT_TIMEOUT;
pub use http::{
    load_ca, read_token_file, token_file_path, write_token_file, ApiError, Client, Config, Error,
    Response, Result, DEFAULT_ADDRESS, TOKEN_FILE_NAME,
};
pub use reference::{Reference, ReferenceError, Selector};
pub use resolve::{Held, ResolveError, Resolver};

#[cfg(test)]
mod debug_tests;

//! One module per top-level command.

pub mod audit;
pub mod auth;
pub mod generic;
pub mod kv;
pub mod lease;
pub mod login;
pub mod migrate;
pub mod operator;
pub mod policy;
pub mod quorum;
pub mod revoke;
pub mod rotate;
pub mod scan;
pub mod secret;
pub mod secrets;
pub mod server;
pub mod status;
pub mod token;
pub mod unwrap;

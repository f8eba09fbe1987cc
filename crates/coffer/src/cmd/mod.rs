//! One module per top-level command.

pub mod audit;
pub mod auth;
pub mod generic;
pub mod kv;
pub mod login;
pub mod operator;
pub mod policy;
pub mod scan;
pub mod server;
pub mod status;
pub mod token;

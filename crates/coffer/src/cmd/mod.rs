//! One module per top-level command.

pub mod audit;
pub mod kv;
pub mod login;
pub mod operator;
pub mod scan;
pub mod server;
pub mod status;

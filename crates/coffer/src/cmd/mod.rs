//! One module per top-level command.

pub mod kv;
pub mod login;
pub mod operator;
pub mod scan;
pub mod server;
pub mod status;

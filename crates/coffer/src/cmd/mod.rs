//! One module per top-level command.

pub mod apply;
pub mod audit;
pub mod auth;
pub mod events;
pub mod check;
pub mod generic;
pub mod inject;
pub mod kv;
pub mod lease;
pub mod login;
pub mod operator;
pub mod org_policy;
pub mod plan;
pub mod policy;
pub mod quorum;
pub mod review;
pub mod revoke;
pub mod rotate;
pub mod run;
pub mod scan;
pub mod secret;
pub mod secrets;
pub mod server;
pub mod status;
pub mod token;
pub mod unwrap;

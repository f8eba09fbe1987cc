//! `coffer unwrap [TOKEN]`: the answer a wrapping token holds, once, as
//! `vault unwrap` gets it.
//!
//! With a TOKEN different from the client's own token, the client's token
//! authenticates and TOKEN goes in the body; otherwise (no TOKEN, or no
//! client token) the wrapping token itself is the request's token.

use anyhow::Context as _;
use reqwest::Method;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::client::ConnectArgs;
use crate::cmd::generic::print_answer;
use crate::output::FormatArgs;

/// Arguments of `coffer unwrap`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    coffer unwrap cfs.3kD...\n  \
    COFFER_TOKEN=cfs.3kD... coffer unwrap\n  \
    coffer unwrap -field=secret_id cfs.3kD...")]
pub struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    output: FormatArgs,
    /// Print only this field of the unwrapped data (or auth).
    #[arg(long)]
    field: Option<String>,
    /// The wrapping token [default: the client's token].
    token: Option<String>,
}

/// Runs `coffer unwrap`.
pub fn run(a: Args) -> anyhow::Result<i32> {
    let mut client = a.connect.client()?;
    let wrapping = a
        .token
        .map(|t| Zeroizing::new(t.trim().to_owned()))
        .filter(|t| !t.is_empty());
    let body = match wrapping {
        Some(t) if client.has_token() && !client.token_is(&t) => {
            Some(json!({ "token": t.as_str() }))
        }
        Some(t) => {
            client = client.with_token(t);
            None
        }
        None if client.has_token() => None,
        None => return crate::cmd::generic::usage("Not enough arguments (expected 1, got 0)"),
    };
    let resp = client
        .request(Method::POST, "sys/wrapping/unwrap", body.as_ref())?
        .error_for_status()
        .context("unwrapping")?;
    let answer = resp.body.unwrap_or(Value::Null);
    if answer.is_null() {
        eprintln!("Successfully unwrapped. There was no data in the wrapped secret.");
        return Ok(0);
    }
    Ok(print_answer(&answer, a.field.as_deref(), a.output.format))
}

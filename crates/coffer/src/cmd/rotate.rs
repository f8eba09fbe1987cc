//! `coffer rotate PATH`: rotate a managed secret now through its rotator
//! (`POST <mount>/rotate/<path>`), staged and rolled back on failure.

use reqwest::Method;
use serde_json::{json, Value};

use super::generic::{call, usage};
use super::secret::split;
use crate::client::ConnectArgs;
use crate::output::{self, Format, FormatArgs};

/// Arguments of `coffer rotate`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    coffer rotate secret/app/db\n  \
    coffer rotate -reason=\"employee left\" secret/billing/stripe\n\n\
    The secret needs a rotator (see `coffer secret set -rotator=...`).")]
pub struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    output: FormatArgs,
    /// KV v2 mount; when given, PATH is relative to it.
    #[arg(long, value_name = "MOUNT")]
    mount: Option<String>,
    /// Why (recorded in the rotation history and the audit log).
    #[arg(long)]
    reason: Option<String>,
    /// The secret: `<mount>/<path>`.
    path: String,
}

/// Rotates the secret, returning the exit code.
pub fn run(a: Args) -> anyhow::Result<i32> {
    let (mount, rel) = match split(a.mount.as_deref(), &a.path) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let client = a.connect.client()?;
    let full = format!("{mount}/{rel}");
    let mut body = json!({});
    if let Some(r) = a.reason.as_deref().filter(|r| !r.trim().is_empty()) {
        body["reason"] = json!(r);
    }
    let answer = call(
        &client,
        Method::POST,
        &format!("{mount}/rotate/{rel}"),
        Some(&body),
        &format!("rotating {full}"),
    )?
    .unwrap_or(Value::Null);
    if a.output.format == Format::Json {
        print!("{}", output::json(&answer));
        return Ok(0);
    }
    let data = answer.get("data").unwrap_or(&Value::Null);
    let text = |k: &str| {
        data.get(k)
            .map(output::value_text)
            .unwrap_or_else(|| "?".into())
    };
    println!(
        "Success! Rotated {full}: version {} -> {} (rotator {})",
        text("old_version"),
        text("new_version"),
        text("rotator")
    );
    Ok(0)
}

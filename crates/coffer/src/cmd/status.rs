//! `coffer status`: the server's seal status, with `vault status` exit codes
//! (0 unsealed, 2 sealed, 1 error).

use anyhow::Context as _;
use reqwest::Method;
use serde_json::Value;

use crate::client::ConnectArgs;
use crate::output::{self, Format, FormatArgs};

/// Arguments of `coffer status`.
#[derive(clap::Args)]
#[command(
    after_help = "Exit code 0: unsealed; 2: sealed; 1: the server could not be asked.\n\
    Needs no token."
)]
pub struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    output: FormatArgs,
}

/// Prints the seal status; exits 0 when unsealed, 2 when sealed, 1 on error.
pub fn run(args: Args) -> anyhow::Result<i32> {
    match fetch(&args.connect) {
        Ok(status) => {
            print!("{}", render_seal_status(&status, args.output.format));
            let sealed = status
                .get("sealed")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            Ok(if sealed { 2 } else { 0 })
        }
        Err(e) => {
            eprintln!("Error checking seal status: {e:#}");
            // sys/seal-status needs no token: only transport hints apply.
            if let Some(hint) = crate::client::hint(&e, true) {
                eprintln!("\n{hint}");
            }
            Ok(1)
        }
    }
}

/// GETs `sys/seal-status` (needs no token).
fn fetch(connect: &ConnectArgs) -> anyhow::Result<Value> {
    let client = connect.client()?;
    let resp = client
        .request(Method::GET, "sys/seal-status", None)?
        .error_for_status()?;
    resp.body.context("empty answer from sys/seal-status")
}

/// A seal status (from `sys/seal-status` or `sys/unseal`) as `vault` prints it.
pub(crate) fn render_seal_status(status: &Value, format: Format) -> String {
    if format == Format::Json {
        return output::json(status);
    }
    let get = |k: &str| status.get(k).filter(|v| !v.is_null());
    let text = |k: &str| get(k).map(output::value_text);
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut push = |label: &str, value: Option<String>| {
        if let Some(v) = value {
            rows.push((
                label.to_owned(),
                if v.is_empty() { "n/a".into() } else { v },
            ));
        }
    };
    push("Seal Type", text("type"));
    push("Initialized", text("initialized"));
    push("Sealed", text("sealed"));
    push("Total Shares", text("n"));
    push("Threshold", text("t"));
    if get("sealed").and_then(Value::as_bool) == Some(true) {
        let progress = match (text("progress"), text("t")) {
            (Some(p), Some(t)) => Some(format!("{p}/{t}")),
            _ => None,
        };
        push("Unseal Progress", progress);
        push("Unseal Nonce", text("nonce"));
    }
    push("Version", text("version"));
    push("Build Date", text("build_date"));
    push("Storage Type", text("storage_type"));
    push("Cluster Name", text("cluster_name"));
    push("Cluster ID", text("cluster_id"));
    output::table(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sealed_status_shows_progress() {
        let s = json!({"type": "shamir", "initialized": true, "sealed": true, "t": 3, "n": 5,
                       "progress": 1, "nonce": "", "version": "0.1.0"});
        let text = render_seal_status(&s, Format::Table);
        assert!(text.contains("Sealed             true\n"), "{text}");
        assert!(text.contains("Unseal Progress    1/3\n"), "{text}");
        assert!(text.contains("Unseal Nonce       n/a\n"), "{text}");
    }

    #[test]
    fn unsealed_status_hides_progress() {
        let s = json!({"type": "shamir", "initialized": true, "sealed": false, "t": 1, "n": 1,
                       "progress": 0, "cluster_name": "c"});
        let text = render_seal_status(&s, Format::Table);
        assert!(!text.contains("Unseal Progress"), "{text}");
        assert!(text.contains("Cluster Name    c\n"), "{text}");
    }
}

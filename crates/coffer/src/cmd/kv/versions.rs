//! `kv list`, `kv delete`, `kv undelete` and `kv destroy`.

use anyhow::Context as _;
use reqwest::Method;
use serde_json::{json, Value};

use super::{usage, Target};
use crate::client::Client;
use crate::output::{self, Format};

/// Arguments of `kv delete`, `kv undelete` and `kv destroy`.
#[derive(clap::Args)]
pub struct VersionsArgs {
    #[command(flatten)]
    target: Target,
    /// Versions to act on, comma-separated or repeated.
    #[arg(long, value_name = "N,...", value_delimiter = ',')]
    versions: Vec<u64>,
}

/// Arguments of `kv list`.
#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    target: Target,
    /// Start after this entry (as a listing prints it: `name` or `dir/`),
    /// to page through a large folder.
    #[arg(long, value_name = "KEY")]
    after: Option<String>,
    /// Print at most this many entries.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,
}

/// `kv list`: LIST `<mount>/metadata/<path>`, optionally one page of it.
pub fn list(client: &Client, a: &ListArgs, format: Format) -> anyhow::Result<i32> {
    let kv = match a.target.resolve() {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let full = kv.api("metadata");
    let keys = client
        .list_page(
            &format!("{full}/"),
            a.after.as_deref().unwrap_or(""),
            a.limit,
        )
        .with_context(|| format!("listing {full}"))?;
    if keys.is_empty() {
        eprintln!("No value found at {full}");
        return Ok(2);
    }
    match format {
        // `vault kv list -format=json` prints the bare list of keys.
        Format::Json => print!("{}", output::json(&json!(keys))),
        Format::Table => print!("{}", output::key_list(&keys)),
    }
    Ok(0)
}

/// `kv delete`: DELETE `data/<path>` (latest version) or POST `delete/<path>`.
pub fn delete(client: &Client, a: &VersionsArgs) -> anyhow::Result<i32> {
    let kv = match a.target.resolve().and_then(|p| p.require_path()) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let full = if a.versions.is_empty() {
        let full = kv.api("data");
        client
            .delete(&full)
            .with_context(|| format!("deleting {full}"))?;
        full
    } else {
        let full = kv.api("delete");
        client
            .write(&full, &json!({"versions": a.versions}))
            .with_context(|| format!("deleting {full}"))?;
        full
    };
    println!("Success! Data deleted (if it existed) at: {full}");
    Ok(0)
}

/// `kv undelete` / `kv destroy`: POST `<endpoint>/<path>` with the versions.
pub fn change(client: &Client, a: &VersionsArgs, endpoint: &str) -> anyhow::Result<i32> {
    let kv = match a.target.resolve().and_then(|p| p.require_path()) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    if a.versions.is_empty() {
        return usage(format!(
            "No versions provided, use the \"-versions\" flag to specify the version to {endpoint}."
        ));
    }
    let full = kv.api(endpoint);
    let body: Value = json!({"versions": a.versions});
    client
        .request(Method::POST, &full, Some(&body))?
        .error_for_status()
        .with_context(|| format!("writing to {full}"))?;
    println!("Success! Data written to: {full}");
    Ok(0)
}

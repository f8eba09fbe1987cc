//! `kv metadata get|put|delete`: the `metadata/` endpoint.

use anyhow::Context as _;
use serde_json::{Map, Value};

use super::{usage, Target};
use crate::client::Client;
use crate::output::{self, Format};

/// The metadata subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Show a secret's metadata and the state of each version.
    Get(Target),
    /// Set max versions, check-and-set, automatic deletion, custom metadata.
    Put(PutArgs),
    /// Delete the secret: its metadata and every version.
    Delete(Target),
}

/// Arguments of `kv metadata put`.
#[derive(clap::Args)]
pub struct PutArgs {
    #[command(flatten)]
    target: Target,
    /// Versions to keep (0: the mount's default).
    #[arg(long, value_name = "N")]
    max_versions: Option<u64>,
    /// Require check-and-set on every write (`-cas-required` or `-cas-required=false`).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    cas_required: Option<bool>,
    /// Delete versions this long after they are written (e.g. 720h; 0 disables).
    #[arg(long, value_name = "DURATION")]
    delete_version_after: Option<String>,
    /// A key=value pair of custom metadata (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    custom_metadata: Vec<String>,
}

/// Runs a metadata subcommand, returning the exit code.
pub fn run(client: &Client, cmd: Command, format: Format) -> anyhow::Result<i32> {
    match cmd {
        Command::Get(t) => get(client, &t, format),
        Command::Put(a) => put(client, &a),
        Command::Delete(t) => {
            let kv = match t.resolve().and_then(|p| p.require_path()) {
                Ok(p) => p,
                Err(e) => return usage(e),
            };
            let full = kv.api("metadata");
            client
                .delete(&full)
                .with_context(|| format!("deleting {full}"))?;
            println!("Success! Data deleted (if it existed) at: {full}");
            Ok(0)
        }
    }
}

/// `kv metadata get`: GET `<mount>/metadata/<path>`.
fn get(client: &Client, t: &Target, format: Format) -> anyhow::Result<i32> {
    let kv = match t.resolve().and_then(|p| p.require_path()) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let full = kv.api("metadata");
    let Some(body) = client
        .read(&full)
        .with_context(|| format!("reading {full}"))?
    else {
        eprintln!("No value found at {full}");
        return Ok(2);
    };
    if format == Format::Json {
        print!("{}", output::json(&body));
        return Ok(0);
    }
    print!(
        "{}",
        render(&full, body.get("data").unwrap_or(&Value::Null))
    );
    Ok(0)
}

/// Metadata as `vault kv metadata get` prints it: the fields, then one
/// table per version in numeric order.
fn render(full: &str, data: &Value) -> String {
    let mut meta = data.as_object().cloned().unwrap_or_default();
    let versions = meta.remove("versions");
    let mut out = output::path_block("Metadata Path", full);
    out.push_str(&output::header_for_map("Metadata", Some(&meta)));
    out.push('\n');
    out.push_str(&output::map_table(&meta));
    let mut numbered: Vec<(u64, &Map<String, Value>)> = versions
        .as_ref()
        .and_then(Value::as_object)
        .map(|vs| {
            vs.iter()
                .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_object()?)))
                .collect()
        })
        .unwrap_or_default();
    numbered.sort_by_key(|(n, _)| *n);
    for (n, v) in numbered {
        out.push('\n');
        out.push_str(&output::header_for_map(&format!("Version {n}"), Some(v)));
        out.push('\n');
        out.push_str(&output::map_table(v));
    }
    out
}

/// `kv metadata put`: POST `<mount>/metadata/<path>` with the given settings.
fn put(client: &Client, a: &PutArgs) -> anyhow::Result<i32> {
    let kv = match a.target.resolve().and_then(|p| p.require_path()) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let body = match body(a) {
        Ok(b) => b,
        Err(e) => return usage(e),
    };
    let full = kv.api("metadata");
    client
        .write(&full, &body)
        .with_context(|| format!("writing to {full}"))?;
    println!("Success! Data written to: {full}");
    Ok(0)
}

/// The request body holding only the settings given on the command line.
fn body(a: &PutArgs) -> Result<Value, String> {
    let mut body = Map::new();
    if let Some(n) = a.max_versions {
        body.insert("max_versions".into(), n.into());
    }
    if let Some(b) = a.cas_required {
        body.insert("cas_required".into(), b.into());
    }
    if let Some(d) = &a.delete_version_after {
        body.insert("delete_version_after".into(), d.clone().into());
    }
    if !a.custom_metadata.is_empty() {
        let mut custom = Map::new();
        for pair in &a.custom_metadata {
            let Some((k, v)) = pair.split_once('=').filter(|(k, _)| !k.is_empty()) else {
                return Err("-custom-metadata takes key=value".into());
            };
            custom.insert(k.to_owned(), v.to_owned().into());
        }
        body.insert("custom_metadata".into(), custom.into());
    }
    Ok(body.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_are_listed_in_numeric_order() {
        let data = json!({
            "current_version": 10,
            "versions": {
                "10": {"created_time": "b", "deletion_time": "", "destroyed": false},
                "9": {"created_time": "a", "deletion_time": "", "destroyed": true}
            }
        });
        let text = render("secret/metadata/app", &data);
        let v9 = text.find("Version 9").unwrap();
        let v10 = text.find("Version 10").unwrap();
        assert!(v9 < v10, "{text}");
        assert!(
            text.starts_with("== Metadata Path ==\nsecret/metadata/app\n\n"),
            "{text}"
        );
        assert!(text.contains("current_version    10\n"), "{text}");
    }
}

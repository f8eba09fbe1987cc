//! `kv put`, `kv get`, `kv patch` and `kv rollback`: the `data/` endpoint.

use anyhow::Context as _;
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::{print_field, print_write, usage, Target};
use crate::client::Client;
use crate::output::{self, Format};

/// Content type of a KV v2 patch.
const MERGE_PATCH: &str = "application/merge-patch+json";

/// Arguments of `kv put`.
#[derive(clap::Args)]
pub struct PutArgs {
    #[command(flatten)]
    target: Target,
    /// Write only if the current version is N (0: only if the secret is absent).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    cas: Option<i64>,
    /// Print only this field of the answer.
    #[arg(long)]
    field: Option<String>,
    /// The data: key=value, key=@file, key=- (stdin), @file.json, or - (JSON on stdin).
    #[arg(allow_hyphen_values = true)]
    data: Vec<String>,
}

/// Arguments of `kv get`.
#[derive(clap::Args)]
pub struct GetArgs {
    #[command(flatten)]
    target: Target,
    /// The version to read (default: the latest).
    #[arg(long, value_name = "N")]
    version: Option<u64>,
    /// The version with this rotation stage label: current, previous or pending.
    #[arg(long, value_name = "STAGE", conflicts_with = "version")]
    stage: Option<String>,
    /// Print only this field of the secret's data.
    #[arg(long)]
    field: Option<String>,
}

/// How `kv patch` changes a secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PatchMethod {
    /// One HTTP PATCH (JSON merge patch); needs the `patch` capability.
    Patch,
    /// Read, merge locally, write back with check-and-set.
    Rw,
}

/// Arguments of `kv patch`.
#[derive(clap::Args)]
pub struct PatchArgs {
    #[command(flatten)]
    target: Target,
    /// Patch only if the current version is N.
    #[arg(long, value_name = "N")]
    cas: Option<i64>,
    /// How to apply the change.
    #[arg(long, value_enum, default_value_t = PatchMethod::Patch)]
    method: PatchMethod,
    /// Remove this key (repeatable).
    #[arg(long, value_name = "KEY")]
    remove_data: Vec<String>,
    /// Print only this field of the answer.
    #[arg(long)]
    field: Option<String>,
    /// The keys to set, as for `kv put`.
    #[arg(allow_hyphen_values = true)]
    data: Vec<String>,
}

/// Arguments of `kv rollback`.
#[derive(clap::Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    target: Target,
    /// The version whose data becomes the newest version.
    #[arg(long, value_name = "N")]
    version: Option<u64>,
}

/// `kv put`: POST `<mount>/data/<path>`.
pub fn put(client: &Client, a: PutArgs, format: Format) -> anyhow::Result<i32> {
    let kv = match a.target.resolve().and_then(|p| p.require_path()) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    if a.data.is_empty() {
        return usage("Must supply data");
    }
    let data = match crate::input::parse(&a.data, &mut crate::input::Real) {
        Ok(d) => d,
        Err(e) => return usage(format!("Failed to parse data: {e}")),
    };
    let full = kv.api("data");
    let body = write_body(data, a.cas);
    let resp = client
        .request(Method::POST, &full, Some(&body))?
        .error_for_status()
        .with_context(|| format!("writing data to {full}"))?;
    if let Some(field) = &a.field {
        return Ok(print_field(resp.data(), field, format));
    }
    print_write(&full, resp.body.as_ref(), format);
    Ok(0)
}

/// The body of a KV v2 write.
fn write_body(data: Map<String, Value>, cas: Option<i64>) -> Value {
    let mut options = Map::new();
    if let Some(cas) = cas.filter(|c| *c >= 0) {
        options.insert("cas".into(), json!(cas));
    }
    json!({"data": data, "options": options})
}

/// `kv get`: GET `<mount>/data/<path>[?version=N]`.
pub fn get(client: &Client, a: GetArgs, format: Format) -> anyhow::Result<i32> {
    let kv = match a.target.resolve().and_then(|p| p.require_path()) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let full = kv.api("data");
    let body = match a.stage.as_deref().map(str::trim) {
        Some(stage) => {
            let query = format!("{full}?stage={}", crate::cmd::generic::encode(stage));
            read_query(client, &full, &query)?
        }
        None => read_version(client, &full, a.version)?,
    };
    let Some(body) = body else {
        match &a.stage {
            Some(stage) => eprintln!("No version of {full} has the stage {stage:?}"),
            None => eprintln!("No value found at {full}"),
        }
        return Ok(2);
    };
    if crate::cmd::generic::wrap_rows(&body).is_some() {
        // `--wrap-ttl`: the answer is the wrapping token's envelope.
        return Ok(crate::cmd::generic::print_answer(
            &body,
            a.field.as_deref(),
            format,
        ));
    }
    let secret = body.get("data").filter(|d| !d.is_null());
    explain_missing_data(secret, &kv);
    if let Some(field) = &a.field {
        let Some(data) = secret.and_then(|s| s.get("data")).filter(|d| !d.is_null()) else {
            eprintln!("No data found at {full}");
            return Ok(2);
        };
        return Ok(print_field(Some(data), field, format));
    }
    if format == Format::Json {
        print!("{}", output::json(&body));
        return Ok(0);
    }
    print!("{}", output::path_block("Secret Path", &full));
    let section = |name: &str| secret.and_then(|s| s.get(name)).and_then(Value::as_object);
    if let Some(meta) = section("metadata") {
        println!("{}", output::header_for_map("Metadata", Some(meta)));
        println!("{}", output::map_table(meta));
    }
    if let Some(data) = section("data") {
        println!("{}", output::header_for_map("Data", Some(data)));
        print!("{}", output::map_table(data));
    }
    Ok(0)
}

/// Says on stderr why a version read shows metadata but no data (as
/// `vault` it still exits 0): the version is destroyed or deleted.
fn explain_missing_data(secret: Option<&Value>, kv: &super::KvPath) {
    let Some(secret) = secret.filter(|s| s.get("data").is_none_or(Value::is_null)) else {
        return;
    };
    let Some(meta) = secret.get("metadata") else {
        return;
    };
    let version = meta
        .get("version")
        .map(output::value_text)
        .unwrap_or_default();
    let at = format!("{}/{}", kv.mount, kv.path);
    if meta.get("destroyed").and_then(Value::as_bool) == Some(true) {
        eprintln!("Version {version} of {at} is destroyed: its data is gone for good.");
    } else if meta
        .get("deletion_time")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty())
    {
        eprintln!(
            "Version {version} of {at} is deleted: `coffer kv undelete -versions={version} {at}` \
             brings it back."
        );
    }
}

/// Reads one version. A 404 that still carries data (a deleted or destroyed
/// version's metadata) is returned like a 200; a bare 404 is `None`.
fn read_version(
    client: &Client,
    full: &str,
    version: Option<u64>,
) -> anyhow::Result<Option<Value>> {
    let path = match version {
        Some(v) if v > 0 => format!("{full}?version={v}"),
        _ => full.to_owned(),
    };
    read_query(client, full, &path)
}

/// GETs `path` (`full` with a query); as [`read_version`].
fn read_query(client: &Client, full: &str, path: &str) -> anyhow::Result<Option<Value>> {
    let resp = client
        .request(Method::GET, path, None)
        .with_context(|| format!("reading {full}"))?;
    if resp.status == 404 {
        return Ok(resp.data().is_some().then_some(resp.body).flatten());
    }
    Ok(resp
        .error_for_status()
        .with_context(|| format!("reading {full}"))?
        .body)
}

/// `kv patch`: PATCH with a JSON merge patch, or read-merge-write.
pub fn patch(client: &Client, a: PatchArgs, format: Format) -> anyhow::Result<i32> {
    let kv = match a.target.resolve().and_then(|p| p.require_path()) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    if a.data.is_empty() && a.remove_data.is_empty() {
        return usage("Must supply data");
    }
    let mut changes = match crate::input::parse(&a.data, &mut crate::input::Real) {
        Ok(d) => d,
        Err(e) => return usage(format!("Failed to parse data: {e}")),
    };
    for key in &a.remove_data {
        // null in a merge patch removes the key.
        changes.insert(key.clone(), Value::Null);
    }
    let full = kv.api("data");
    let resp = match a.method {
        PatchMethod::Patch => client
            .send(
                Method::PATCH,
                &full,
                Some(&write_body(changes, a.cas)),
                Some(MERGE_PATCH),
            )?
            .error_for_status()
            .with_context(|| format!("patching {full}"))?,
        PatchMethod::Rw => {
            let Some(current) = read_version(client, &full, None)? else {
                eprintln!("No value found at {full}");
                return Ok(2);
            };
            let secret = current.get("data");
            let Some(mut data) = secret
                .and_then(|s| s.get("data"))
                .and_then(Value::as_object)
                .cloned()
            else {
                eprintln!("No data found at {full}; patch only works on existing data");
                return Ok(2);
            };
            let version = secret
                .and_then(|s| s.pointer("/metadata/version"))
                .and_then(Value::as_i64);
            for (k, v) in changes {
                if v.is_null() {
                    data.remove(&k);
                } else {
                    data.insert(k, v);
                }
            }
            client
                .request(
                    Method::POST,
                    &full,
                    Some(&write_body(data, a.cas.or(version))),
                )?
                .error_for_status()
                .with_context(|| format!("writing data to {full}"))?
        }
    };
    if let Some(field) = &a.field {
        return Ok(print_field(resp.data(), field, format));
    }
    print_write(&full, resp.body.as_ref(), format);
    Ok(0)
}

/// `kv rollback`: write version N's data as a new version, with
/// check-and-set on the current version so a concurrent write is not lost.
pub fn rollback(client: &Client, a: RollbackArgs, format: Format) -> anyhow::Result<i32> {
    let kv = match a.target.resolve().and_then(|p| p.require_path()) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let Some(version) = a.version.filter(|v| *v > 0) else {
        return usage("Must specify a version to roll back to with -version");
    };
    let meta_path = kv.api("metadata");
    let Some(meta) = client
        .read(&meta_path)
        .with_context(|| format!("reading {meta_path}"))?
    else {
        eprintln!("No value found at {meta_path}");
        return Ok(2);
    };
    let meta = meta.get("data").unwrap_or(&Value::Null);
    let Some(current) = meta.get("current_version").and_then(Value::as_i64) else {
        eprintln!("No current version found at {meta_path}");
        return Ok(2);
    };
    let Some(info) = meta.pointer(&format!("/versions/{version}")) else {
        eprintln!("Version {version} not found at {meta_path}");
        return Ok(2);
    };
    if info.get("destroyed").and_then(Value::as_bool) == Some(true) {
        eprintln!("Cannot roll back to a version that has been destroyed");
        return Ok(2);
    }
    if info
        .get("deletion_time")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty())
    {
        eprintln!("Cannot roll back to a version that has been deleted");
        return Ok(2);
    }
    let full = kv.api("data");
    let old = read_version(client, &full, Some(version))?;
    let Some(data) = old
        .as_ref()
        .and_then(|b| b.pointer("/data/data"))
        .and_then(Value::as_object)
        .cloned()
    else {
        eprintln!("No data found at {full} version {version}");
        return Ok(2);
    };
    let resp = client
        .request(Method::POST, &full, Some(&write_body(data, Some(current))))?
        .error_for_status()
        .with_context(|| format!("writing data to {full}"))?;
    print_write(&full, resp.body.as_ref(), format);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_bodies_carry_cas_only_when_set() {
        let mut d = Map::new();
        d.insert("k".into(), json!("v"));
        assert_eq!(
            write_body(d.clone(), None),
            json!({"data": {"k": "v"}, "options": {}})
        );
        assert_eq!(
            write_body(d.clone(), Some(-1)),
            json!({"data": {"k": "v"}, "options": {}})
        );
        assert_eq!(
            write_body(d, Some(0)),
            json!({"data": {"k": "v"}, "options": {"cas": 0}})
        );
    }
}

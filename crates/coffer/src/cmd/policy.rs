//! `coffer policy write|read|list|delete|fmt`: ACL policies over
//! `sys/policies/acl/*`, and offline formatting of a policy file.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use coffer_core::policy::{format_policy, Policy};
use reqwest::Method;
use serde_json::{json, Value};

use super::generic::{call, usage};
use crate::client::{Client, ConnectArgs};
use crate::output::{self, Format, FormatArgs};

/// Arguments of `coffer policy`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    output: FormatArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Upload a policy from a file or stdin (-), replacing any of that name.
    #[command(after_help = "Examples:\n  \
        coffer policy write app app.hcl\n  \
        cat app.hcl | coffer policy write app -")]
    Write {
        /// The policy's name.
        name: String,
        /// HCL or JSON policy file; - reads stdin.
        #[arg(allow_hyphen_values = true)]
        file: String,
    },
    /// Print a policy's text.
    #[command(
        after_help = "Examples:\n  coffer policy read app\n  coffer policy read -format=json default"
    )]
    Read {
        /// The policy's name.
        name: String,
    },
    /// List the policies' names.
    #[command(after_help = "Example:\n  coffer policy list")]
    List,
    /// Delete a policy (tokens keep its name, which then grants nothing).
    #[command(after_help = "Example:\n  coffer policy delete app")]
    Delete {
        /// The policy's name.
        name: String,
    },
    /// Rewrite a policy file in canonical HCL, in place (offline).
    #[command(after_help = "Example:\n  coffer policy fmt app.hcl")]
    Fmt {
        /// The policy file.
        file: PathBuf,
    },
}

/// Runs a policy subcommand, returning the exit code.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let format = args.output.format;
    match args.command {
        Command::Fmt { file } => fmt(&file),
        Command::Write { name, file } => write(&args.connect.client()?, &name, &file),
        Command::Read { name } => read(&args.connect.client()?, &name, format),
        Command::List => list(&args.connect.client()?, format),
        Command::Delete { name } => {
            let client = args.connect.client()?;
            let path = policy_path(&name)?;
            call(&client, Method::DELETE, &path, None, "deleting the policy")?;
            println!("Success! Deleted policy: {name}");
            Ok(0)
        }
    }
}

/// The API path of a policy, refusing names that would escape it.
fn policy_path(name: &str) -> anyhow::Result<String> {
    let name = name.trim();
    if name.is_empty() || name.contains('/') || name.contains('?') || name.contains('#') {
        anyhow::bail!("invalid policy name {name:?}");
    }
    Ok(format!("sys/policies/acl/{name}"))
}

fn write(client: &Client, name: &str, file: &str) -> anyhow::Result<i32> {
    let text = if file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the policy from stdin")?;
        s
    } else {
        match std::fs::read_to_string(file) {
            Ok(s) => s,
            Err(e) => return usage(format!("Error opening policy file {file}: {e}")),
        }
    };
    if text.trim().is_empty() {
        return usage("The policy is empty");
    }
    let path = match policy_path(name) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    call(
        client,
        Method::POST,
        &path,
        Some(&json!({ "policy": text })),
        "uploading the policy",
    )?;
    println!("Success! Uploaded policy: {}", name.trim());
    Ok(0)
}

fn read(client: &Client, name: &str, format: Format) -> anyhow::Result<i32> {
    let path = match policy_path(name) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let Some(body) = client
        .read(&path)
        .with_context(|| format!("reading policy {name}"))?
    else {
        eprintln!("No policy named: {name}");
        return Ok(2);
    };
    if format == Format::Json {
        print!("{}", output::json(&body));
        return Ok(0);
    }
    let text = body
        .pointer("/data/policy")
        .or_else(|| body.pointer("/data/rules"))
        .and_then(Value::as_str)
        .unwrap_or("");
    println!("{}", text.trim_end());
    Ok(0)
}

fn list(client: &Client, format: Format) -> anyhow::Result<i32> {
    let names = client
        .list("sys/policies/acl")
        .context("listing policies")?;
    if format == Format::Json {
        print!("{}", output::json(&json!(names)));
    } else {
        for n in names {
            println!("{n}");
        }
    }
    Ok(0)
}

/// Formats `file` in place; exit 1 (naming the line) when it does not parse.
fn fmt(file: &Path) -> anyhow::Result<i32> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => return usage(format!("Error reading {}: {e}", file.display())),
    };
    let name = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("policy");
    let policy = match Policy::parse(name, &text) {
        Ok(p) => p,
        Err(e) => return usage(format!("Failed to parse policy {}: {e}", file.display())),
    };
    let formatted = format_policy(&policy);
    if formatted != text {
        write_in_place(file, &formatted).with_context(|| format!("writing {}", file.display()))?;
    }
    println!("Success! Formatted policy: {}", file.display());
    Ok(0)
}

/// Replaces a file's contents through a temporary file and a rename, so a
/// failure never leaves it half written; the permissions are kept.
fn write_in_place(file: &Path, text: &str) -> std::io::Result<()> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "policy".into());
    let tmp = dir.join(format!(".{base}.{}.fmt", std::process::id()));
    let result = (|| {
        std::fs::write(&tmp, text)?;
        let perms = std::fs::metadata(file)?.permissions();
        std::fs::set_permissions(&tmp, perms)?;
        std::fs::rename(&tmp, file)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

//! `coffer kv`: versioned secrets in a KV v2 mount, as `vault kv` reads and
//! writes them over `<mount>/data|metadata|delete|undelete|destroy/<path>`.

mod data;
mod metadata;
mod path;
mod versions;

use serde_json::Value;

use crate::client::ConnectArgs;
use crate::output::{self, Format, FormatArgs};
use path::KvPath;

/// Arguments of `coffer kv`.
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
    /// Write a new version: key=value pairs, key=@file, @file.json, or - (JSON on stdin).
    Put(data::PutArgs),
    /// Read the latest (or a given) version.
    #[command(disable_version_flag = true)]
    Get(data::GetArgs),
    /// Change some keys, keeping the others (a new version).
    Patch(data::PatchArgs),
    /// List the keys under a path.
    List(versions::ListArgs),
    /// Soft-delete the latest version, or the given versions.
    Delete(versions::VersionsArgs),
    /// Restore soft-deleted versions.
    Undelete(versions::VersionsArgs),
    /// Permanently remove the data of the given versions.
    Destroy(versions::VersionsArgs),
    /// Write an older version's data as the newest version.
    #[command(disable_version_flag = true)]
    Rollback(data::RollbackArgs),
    /// Read, write or delete a secret's metadata (and all its versions).
    #[command(subcommand)]
    Metadata(metadata::Command),
}

/// A secret's location on the command line.
#[derive(clap::Args)]
struct Target {
    /// KV v2 mount; when given, PATH is relative to it.
    #[arg(long, value_name = "MOUNT")]
    mount: Option<String>,
    /// The secret: `<mount>/<path>`, or `<path>` with -mount.
    path: String,
}

impl Target {
    /// The mount and path, or a usage message.
    fn resolve(&self) -> Result<KvPath, String> {
        KvPath::resolve(self.mount.as_deref(), &self.path)
    }
}

/// Runs a kv subcommand, returning the exit code.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let client = args.connect.client()?;
    let format = args.output.format;
    match args.command {
        Command::Put(a) => data::put(&client, a, format),
        Command::Get(a) => data::get(&client, a, format),
        Command::Patch(a) => data::patch(&client, a, format),
        Command::List(a) => versions::list(&client, &a, format),
        Command::Delete(a) => versions::delete(&client, &a),
        Command::Undelete(a) => versions::change(&client, &a, "undelete"),
        Command::Destroy(a) => versions::change(&client, &a, "destroy"),
        Command::Rollback(a) => data::rollback(&client, a, format),
        Command::Metadata(c) => metadata::run(&client, c, format),
    }
}

/// Reports a usage error and returns `vault`'s exit code for it (1).
fn usage(message: impl std::fmt::Display) -> anyhow::Result<i32> {
    eprintln!("{message}");
    Ok(1)
}

/// Prints `value[field]` alone (no newline when stdout is not a terminal,
/// as `vault` does), or reports that it is missing.
fn print_field(value: Option<&Value>, field: &str, format: Format) -> i32 {
    use std::io::{IsTerminal as _, Write as _};
    match value.and_then(|v| v.get(field)) {
        Some(v) => {
            let text = output::raw_field(v, format);
            let mut out = std::io::stdout();
            let newline = if out.is_terminal() { "\n" } else { "" };
            // A closed stdout (e.g. `| head`) is not an error worth reporting.
            let _ = write!(out, "{text}{newline}");
            let _ = out.flush();
            0
        }
        None => {
            eprintln!("Field {field:?} not present in secret");
            1
        }
    }
}

/// Prints the answer to a write: the new version's metadata under a
/// `Secret Path` header, the JSON body, or a plain success line.
fn print_write(full: &str, body: Option<&Value>, format: Format) {
    let Some(body) = body else {
        if format == Format::Table {
            println!("Success! Data written to: {full}");
        }
        return;
    };
    if format == Format::Json {
        print!("{}", output::json(body));
        return;
    }
    let data = body.get("data").and_then(Value::as_object);
    print!("{}", output::path_block("Secret Path", full));
    println!("{}", output::header_for_map("Metadata", data));
    match data {
        Some(map) => print!("{}", output::map_table(map)),
        None => print!("{}", output::value_table(&Value::Null)),
    }
}

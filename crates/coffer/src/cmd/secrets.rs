//! `coffer secrets enable|disable|list|tune|move` over `sys/mounts/*` and
//! `sys/remount`, with `vault secrets`' flags.

use anyhow::Context as _;
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::generic::{self, call, usage};
use crate::client::{Client, ConnectArgs};
use crate::output::{self, Format, FormatArgs};

/// Arguments of `coffer secrets`.
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
    /// Enable a secrets engine (at TYPE/ unless -path says otherwise).
    #[command(after_help = "Examples:\n  \
        coffer secrets enable -path=secret -version=2 kv\n  \
        coffer secrets enable kv-v2\n  \
        coffer secrets enable -path=db -default-lease-ttl=1h -max-lease-ttl=24h database")]
    Enable(EnableArgs),
    /// Disable the secrets engine at PATH: its leases are revoked, its data deleted.
    #[command(after_help = "Example:\n  coffer secrets disable kv/")]
    Disable {
        /// The engine's path.
        path: String,
    },
    /// List the enabled secrets engines.
    #[command(after_help = "Examples:\n  coffer secrets list\n  coffer secrets list -format=json")]
    List,
    /// Change a secrets engine's lease TTLs, description or options.
    #[command(after_help = "Examples:\n  \
        coffer secrets tune -default-lease-ttl=1h -max-lease-ttl=24h database/\n  \
        coffer secrets tune -options=version=2 kv/")]
    Tune(TuneArgs),
    /// Move a secrets engine to a new path with its data (its leases are revoked).
    #[command(after_help = "Example:\n  coffer secrets move secret/ generic/")]
    Move {
        /// The engine's current path.
        source: String,
        /// Its new path.
        destination: String,
    },
}

/// Arguments of `secrets enable` (`-version` is the KV version here, as in
/// `vault secrets enable`, not the program's version).
#[derive(clap::Args)]
#[command(disable_version_flag = true)]
struct EnableArgs {
    /// Where to mount it (default: the type's name).
    #[arg(long, value_name = "PATH")]
    path: Option<String>,
    /// Human-readable description.
    #[arg(long)]
    description: Option<String>,
    /// KV version (1 or 2); the same as -options=version=N.
    #[arg(long, value_name = "N")]
    version: Option<u8>,
    /// Default lease TTL of the leases it issues, e.g. 1h.
    #[arg(long, value_name = "DURATION")]
    default_lease_ttl: Option<String>,
    /// Largest lease TTL of the leases it issues.
    #[arg(long, value_name = "DURATION")]
    max_lease_ttl: Option<String>,
    /// Mount option key=value (repeatable).
    #[arg(long = "options", value_name = "K=V")]
    options: Vec<String>,
    /// Mark the mount local (Vault's replication flag, recorded only).
    #[arg(long)]
    local: bool,
    /// Engine type: kv, kv-v2, database.
    r#type: String,
}

/// Arguments of `secrets tune`.
#[derive(clap::Args)]
struct TuneArgs {
    /// Default lease TTL, e.g. 1h.
    #[arg(long, value_name = "DURATION")]
    default_lease_ttl: Option<String>,
    /// Largest lease TTL.
    #[arg(long, value_name = "DURATION")]
    max_lease_ttl: Option<String>,
    /// New description.
    #[arg(long)]
    description: Option<String>,
    /// Mount option key=value (repeatable), e.g. version=2 to upgrade a KV mount.
    #[arg(long = "options", value_name = "K=V")]
    options: Vec<String>,
    /// The engine's path.
    path: String,
}

/// Runs a secrets subcommand, returning the exit code.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let client = args.connect.client()?;
    match args.command {
        Command::Enable(a) => enable(&client, a),
        Command::Disable { path } => {
            let p = mount_path(&path);
            if p.is_empty() {
                return usage("Missing the path of the secrets engine to disable");
            }
            call(
                &client,
                Method::DELETE,
                &format!("sys/mounts/{p}"),
                None,
                "disabling the secrets engine",
            )?;
            println!("Success! Disabled the secrets engine (if it existed) at: {p}/");
            Ok(0)
        }
        Command::List => list(&client, args.output.format),
        Command::Tune(a) => tune(&client, a),
        Command::Move {
            source,
            destination,
        } => move_mount(&client, &source, &destination, "secrets engine"),
    }
}

/// A mount path without surrounding slashes.
fn mount_path(path: &str) -> String {
    path.trim().trim_matches('/').to_owned()
}

/// `-options` pairs as a JSON object.
pub(crate) fn options_object(pairs: &[String]) -> Result<Map<String, Value>, String> {
    let mut options = Map::new();
    for o in pairs {
        let Some((k, v)) = o.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(format!("Invalid -options {o:?}: expected key=value"));
        };
        options.insert(k.to_owned(), json!(v));
    }
    Ok(options)
}

fn enable(client: &Client, a: EnableArgs) -> anyhow::Result<i32> {
    let kind = a.r#type.trim();
    if kind.is_empty() {
        return usage("Missing the secrets engine type");
    }
    let path = mount_path(a.path.as_deref().unwrap_or(kind));
    if path.is_empty() {
        return usage("Invalid -path");
    }
    let mut body = Map::new();
    body.insert("type".into(), json!(kind));
    if let Some(d) = &a.description {
        body.insert("description".into(), json!(d));
    }
    if a.local {
        body.insert("local".into(), json!(true));
    }
    let mut config = Map::new();
    if let Some(t) = &a.default_lease_ttl {
        config.insert("default_lease_ttl".into(), json!(t));
    }
    if let Some(t) = &a.max_lease_ttl {
        config.insert("max_lease_ttl".into(), json!(t));
    }
    if !config.is_empty() {
        body.insert("config".into(), Value::Object(config));
    }
    let mut options = match options_object(&a.options) {
        Ok(o) => o,
        Err(e) => return usage(e),
    };
    if let Some(v) = a.version {
        if !matches!(v, 1 | 2) {
            return usage(format!("Invalid -version={v}: KV versions are 1 and 2"));
        }
        options.insert("version".into(), json!(v.to_string()));
    }
    if !options.is_empty() {
        body.insert("options".into(), Value::Object(options));
    }
    call(
        client,
        Method::POST,
        &format!("sys/mounts/{path}"),
        Some(&Value::Object(body)),
        "enabling the secrets engine",
    )?;
    println!("Success! Enabled the {kind} secrets engine at: {path}/");
    Ok(0)
}

fn list(client: &Client, format: Format) -> anyhow::Result<i32> {
    list_mount_table(client, format, "sys/mounts", "secrets engines")
}

/// Prints a mount table (`sys/mounts` or `sys/auth`) as a grid or JSON;
/// `what` names its entries in messages ("secrets engines", "auth methods").
pub(crate) fn list_mount_table(
    client: &Client,
    format: Format,
    api_path: &str,
    what: &str,
) -> anyhow::Result<i32> {
    let body = call(
        client,
        Method::GET,
        api_path,
        None,
        &format!("listing {what}"),
    )?
    .unwrap_or(Value::Null);
    let mounts = body.get("data").filter(|d| d.is_object()).unwrap_or(&body);
    if format == Format::Json {
        print!("{}", output::json(mounts));
        return Ok(0);
    }
    let Some(map) = mounts.as_object() else {
        eprintln!("No {what} found");
        return Ok(2);
    };
    let mut paths: Vec<&String> = map.keys().filter(|k| map[*k].is_object()).collect();
    paths.sort();
    let rows: Vec<Vec<String>> = paths
        .into_iter()
        .map(|p| {
            let m = &map[p];
            let field = |k: &str| m.get(k).map(generic::cell).unwrap_or_else(|| "n/a".into());
            vec![
                p.clone(),
                field("type"),
                field("accessor"),
                field("description"),
            ]
        })
        .collect();
    print!(
        "{}",
        generic::grid(&["Path", "Type", "Accessor", "Description"], &rows)
    );
    Ok(0)
}

fn tune(client: &Client, a: TuneArgs) -> anyhow::Result<i32> {
    let path = mount_path(&a.path);
    if path.is_empty() {
        return usage("Missing the path of the secrets engine to tune");
    }
    let mut body = Map::new();
    for (k, v) in [
        ("default_lease_ttl", &a.default_lease_ttl),
        ("max_lease_ttl", &a.max_lease_ttl),
        ("description", &a.description),
    ] {
        if let Some(v) = v {
            body.insert(k.into(), json!(v));
        }
    }
    match options_object(&a.options) {
        Ok(o) if !o.is_empty() => {
            body.insert("options".into(), Value::Object(o));
        }
        Ok(_) => {}
        Err(e) => return usage(e),
    }
    if body.is_empty() {
        return usage(
            "Nothing to tune: give -default-lease-ttl, -max-lease-ttl, -description or -options",
        );
    }
    call(
        client,
        Method::POST,
        &format!("sys/mounts/{path}/tune"),
        Some(&Value::Object(body)),
        "tuning the secrets engine",
    )?;
    println!("Success! Tuned the secrets engine at: {path}/");
    Ok(0)
}

/// How long `move` waits for the server to report the move's end.
const MOVE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// `secrets move` and `auth move`: POST sys/remount, then follow
/// `sys/remount/status/<id>` until the move succeeds or fails. `what` names
/// the mount kind in messages ("secrets engine", "auth method").
pub(crate) fn move_mount(
    client: &Client,
    source: &str,
    destination: &str,
    what: &str,
) -> anyhow::Result<i32> {
    let (from, to) = (mount_path(source), mount_path(destination));
    if from.is_empty() || to.is_empty() {
        return usage("Give both the source and the destination path");
    }
    let answer = call(
        client,
        Method::POST,
        "sys/remount",
        Some(&json!({"from": from, "to": to})),
        &format!("moving the {what}"),
    )?
    .unwrap_or(Value::Null);
    let id = answer
        .pointer("/data/migration_id")
        .or_else(|| answer.get("migration_id"))
        .and_then(Value::as_str)
        .context("the server answered the move without a migration id")?
        .to_owned();
    let (shown_from, shown_to) = (
        from.trim_start_matches("auth/"),
        to.trim_start_matches("auth/"),
    );
    println!("Started moving {what} {shown_from}/ to {shown_to}/, with migration ID {id}");
    let deadline = std::time::Instant::now() + MOVE_WAIT;
    loop {
        let status = call(
            client,
            Method::GET,
            &format!("sys/remount/status/{id}"),
            None,
            "reading the move's status",
        )?
        .unwrap_or(Value::Null);
        match status
            .pointer("/data/migration_info/status")
            .and_then(Value::as_str)
        {
            Some("success") => {
                println!(
                    "Success! Finished moving {what} {shown_from}/ to {shown_to}/, with migration ID {id}"
                );
                return Ok(0);
            }
            Some("failure") => {
                eprintln!(
                    "Failure! Moving {what} {shown_from}/ to {shown_to}/ failed (migration ID {id}); see the server log"
                );
                return Ok(2);
            }
            _ if std::time::Instant::now() > deadline => {
                eprintln!(
                    "The move (migration ID {id}) has not finished; check sys/remount/status/{id}"
                );
                return Ok(2);
            }
            _ => std::thread::sleep(std::time::Duration::from_millis(200)),
        }
    }
}

//! `coffer token create|lookup|renew|revoke|capabilities`, as `vault token`
//! drives `auth/token/*` and `sys/capabilities*`.

use reqwest::Method;
use serde_json::{json, Map, Value};

use super::generic::{call, print_answer, usage};
use crate::client::{Client, ConnectArgs};
use crate::output::{self, Format, FormatArgs};

/// Arguments of `coffer token`.
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
    /// Create a token (a child of the current one unless -orphan).
    Create(CreateArgs),
    /// Show a token's properties (the current token by default).
    Lookup(LookupArgs),
    /// Extend a token's lease (the current token by default).
    Renew(RenewArgs),
    /// Revoke a token and, unless -mode=orphan, all its children.
    Revoke(RevokeArgs),
    /// Show a token's capabilities on a path.
    Capabilities(CapabilitiesArgs),
}

/// Arguments of `token create`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    coffer token create -policy=app -ttl=1h\n  \
    coffer token create -policy=ci -period=24h -orphan -metadata team=payments\n  \
    coffer token create -role=deploy -format=json\n  \
    coffer token create -type=batch -policy=app -ttl=10m")]
struct CreateArgs {
    /// Policy to attach (repeatable; comma-separated lists work too).
    #[arg(long = "policy", value_name = "NAME", value_delimiter = ',')]
    policies: Vec<String>,
    /// Initial time to live, e.g. 30m or 24h.
    #[arg(long, value_name = "DURATION")]
    ttl: Option<String>,
    /// Hard limit on the lifetime, renewals included.
    #[arg(long, value_name = "DURATION")]
    explicit_max_ttl: Option<String>,
    /// Make a periodic token renewed by this much each time.
    #[arg(long, value_name = "DURATION")]
    period: Option<String>,
    /// Number of uses before the token is revoked (0: unlimited).
    #[arg(long, value_name = "N")]
    use_limit: Option<u64>,
    /// Whether the token may be renewed.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    renewable: Option<bool>,
    /// Create a token with no parent (needs root or sudo).
    #[arg(long)]
    orphan: bool,
    /// Display name shown in audit logs.
    #[arg(long, value_name = "NAME")]
    display_name: Option<String>,
    /// Metadata key=value (repeatable).
    #[arg(long, value_name = "K=V")]
    metadata: Vec<String>,
    /// Create the token from this token role.
    #[arg(long, value_name = "ROLE")]
    role: Option<String>,
    /// Do not attach the "default" policy.
    #[arg(long)]
    no_default_policy: bool,
    /// Print only this field (e.g. token, token_accessor).
    #[arg(long)]
    field: Option<String>,
    /// Token type: service (stored, renewable) or batch (unstored, ends at its TTL).
    #[arg(long = "type", value_name = "TYPE", value_parser = ["service", "batch", "default"])]
    token_type: Option<String>,
}

/// Arguments of `token lookup`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    coffer token lookup\n  \
    coffer token lookup -accessor 8609694a-cdbc-db9b-d345-e782dbb562ed\n  \
    coffer token lookup -format=json hvs.EXAMPLE")]
struct LookupArgs {
    /// Treat the argument as an accessor, not a token.
    #[arg(long)]
    accessor: bool,
    /// The token (or accessor); the current token when omitted.
    token: Option<String>,
}

/// Arguments of `token renew`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    coffer token renew\n  \
    coffer token renew -increment=1h hvs.EXAMPLE\n  \
    coffer token renew -accessor 8609694a-cdbc-db9b-d345-e782dbb562ed")]
struct RenewArgs {
    /// Requested extension, e.g. 1h (the server may grant less).
    #[arg(long, value_name = "DURATION")]
    increment: Option<String>,
    /// Treat the argument as an accessor, not a token.
    #[arg(long)]
    accessor: bool,
    /// The token (or accessor); the current token when omitted.
    token: Option<String>,
}

/// How `token revoke` treats the token's children.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum RevokeMode {
    /// Keep the children as orphans (needs root or sudo).
    Orphan,
    /// Revoke every token created under the given auth path prefix.
    Path,
}

/// Arguments of `token revoke`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    coffer token revoke hvs.EXAMPLE\n  \
    coffer token revoke -self\n  \
    coffer token revoke -accessor 8609694a-cdbc-db9b-d345-e782dbb562ed\n  \
    coffer token revoke -mode=path auth/userpass/")]
struct RevokeArgs {
    /// Revoke the current token.
    #[arg(long = "self")]
    self_: bool,
    /// Treat the argument as an accessor, not a token.
    #[arg(long)]
    accessor: bool,
    /// orphan: keep the children; path: revoke by auth path prefix.
    #[arg(long, value_enum)]
    mode: Option<RevokeMode>,
    /// The token, accessor or (with -mode=path) path prefix.
    token: Option<String>,
}

/// Arguments of `token capabilities`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    coffer token capabilities secret/data/app\n  \
    coffer token capabilities hvs.EXAMPLE secret/data/app\n  \
    coffer token capabilities -accessor 8609694a-cdbc-db9b-d345-e782dbb562ed secret/data/app")]
struct CapabilitiesArgs {
    /// Treat the first argument as an accessor, not a token.
    #[arg(long)]
    accessor: bool,
    /// [TOKEN] PATH: the token (current one when omitted) and the path.
    #[arg(num_args = 1..=2, required = true, value_name = "ARGS")]
    args: Vec<String>,
}

/// Runs a token subcommand, returning the exit code.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let client = args.connect.client()?;
    let format = args.output.format;
    match args.command {
        Command::Create(a) => create(&client, a, format),
        Command::Lookup(a) => lookup(&client, a, format),
        Command::Renew(a) => renew(&client, a, format),
        Command::Revoke(a) => revoke(&client, a),
        Command::Capabilities(a) => capabilities(&client, a, format),
    }
}

fn create(client: &Client, a: CreateArgs, format: Format) -> anyhow::Result<i32> {
    let mut body = Map::new();
    let policies: Vec<String> = a
        .policies
        .iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    if !policies.is_empty() {
        body.insert("policies".into(), json!(policies));
    }
    for (key, v) in [
        ("ttl", &a.ttl),
        ("explicit_max_ttl", &a.explicit_max_ttl),
        ("period", &a.period),
        ("display_name", &a.display_name),
    ] {
        if let Some(v) = v {
            body.insert(key.into(), json!(v));
        }
    }
    if let Some(n) = a.use_limit {
        body.insert("num_uses".into(), json!(n));
    }
    if let Some(r) = a.renewable {
        body.insert("renewable".into(), json!(r));
    }
    if a.no_default_policy {
        body.insert("no_default_policy".into(), json!(true));
    }
    if let Some(t) = &a.token_type {
        body.insert("type".into(), json!(t));
    }
    if !a.metadata.is_empty() {
        let mut meta = Map::new();
        for (i, kv) in a.metadata.iter().enumerate() {
            let Some((k, v)) = kv.split_once('=').filter(|(k, _)| !k.is_empty()) else {
                return usage(format!(
                    "Invalid -metadata number {}: expected key=value",
                    i + 1
                ));
            };
            meta.insert(k.to_owned(), json!(v));
        }
        body.insert("meta".into(), Value::Object(meta));
    }
    let path = match (&a.role, a.orphan) {
        (Some(_), true) => return usage("-role and -orphan cannot be used together"),
        (Some(role), false) => format!("auth/token/create/{role}"),
        (None, true) => "auth/token/create-orphan".into(),
        (None, false) => "auth/token/create".into(),
    };
    let answer = call(
        client,
        Method::POST,
        &path,
        Some(&Value::Object(body)),
        "creating the token",
    )?
    .unwrap_or(Value::Null);
    Ok(print_answer(&answer, a.field.as_deref(), format))
}

fn lookup(client: &Client, a: LookupArgs, format: Format) -> anyhow::Result<i32> {
    let (method, path, body) = match (&a.token, a.accessor) {
        (None, true) => return usage("-accessor needs an accessor argument"),
        (None, false) => (Method::GET, "auth/token/lookup-self", None),
        (Some(t), false) => (Method::POST, "auth/token/lookup", Some(json!({"token": t}))),
        (Some(acc), true) => (
            Method::POST,
            "auth/token/lookup-accessor",
            Some(json!({"accessor": acc})),
        ),
    };
    let answer =
        call(client, method, path, body.as_ref(), "looking up the token")?.unwrap_or(Value::Null);
    Ok(print_answer(&answer, None, format))
}

fn renew(client: &Client, a: RenewArgs, format: Format) -> anyhow::Result<i32> {
    let mut body = Map::new();
    if let Some(inc) = &a.increment {
        body.insert("increment".into(), json!(inc));
    }
    let path = match (&a.token, a.accessor) {
        (None, true) => return usage("-accessor needs an accessor argument"),
        (None, false) => "auth/token/renew-self",
        (Some(t), false) => {
            body.insert("token".into(), json!(t));
            "auth/token/renew"
        }
        (Some(acc), true) => {
            body.insert("accessor".into(), json!(acc));
            "auth/token/renew-accessor"
        }
    };
    let answer = call(
        client,
        Method::POST,
        path,
        Some(&Value::Object(body)),
        "renewing the token",
    )?
    .unwrap_or(Value::Null);
    Ok(print_answer(&answer, None, format))
}

fn revoke(client: &Client, a: RevokeArgs) -> anyhow::Result<i32> {
    let (path, body) = match (&a.token, a.self_, a.accessor, a.mode) {
        (Some(_), true, _, _) => return usage("-self takes no token argument"),
        (None, true, false, None) => ("auth/token/revoke-self".to_owned(), json!({})),
        (None, true, _, _) => return usage("-self cannot be combined with -accessor or -mode"),
        (None, false, _, _) => return usage("Not enough arguments: a token, or -self"),
        (Some(_), false, true, Some(_)) => return usage("-accessor cannot be combined with -mode"),
        (Some(acc), false, true, None) => (
            "auth/token/revoke-accessor".to_owned(),
            json!({"accessor": acc}),
        ),
        (Some(t), false, false, None) => ("auth/token/revoke".to_owned(), json!({"token": t})),
        (Some(t), false, false, Some(RevokeMode::Orphan)) => {
            ("auth/token/revoke-orphan".to_owned(), json!({"token": t}))
        }
        (Some(prefix), false, false, Some(RevokeMode::Path)) => (
            format!(
                "sys/leases/revoke-prefix/{}",
                prefix.trim_start_matches('/')
            ),
            json!({}),
        ),
    };
    call(
        client,
        Method::POST,
        &path,
        Some(&body),
        "revoking the token",
    )?;
    println!("Success! Revoked token (if it existed)");
    Ok(0)
}

fn capabilities(client: &Client, a: CapabilitiesArgs, format: Format) -> anyhow::Result<i32> {
    let (who, path) = match a.args.as_slice() {
        [path] => (None, path.as_str()),
        [who, path] => (Some(who.as_str()), path.as_str()),
        _ => return usage("Expected [TOKEN] PATH"),
    };
    let path = super::generic::clean_path(path);
    let (endpoint, body) = match (who, a.accessor) {
        (None, true) => return usage("-accessor needs an accessor and a path"),
        (None, false) => ("sys/capabilities-self", json!({"paths": [path]})),
        (Some(t), false) => ("sys/capabilities", json!({"token": t, "paths": [path]})),
        (Some(acc), true) => (
            "sys/capabilities-accessor",
            json!({"accessor": acc, "paths": [path]}),
        ),
    };
    let answer = call(
        client,
        Method::POST,
        endpoint,
        Some(&body),
        "checking capabilities",
    )?
    .unwrap_or(Value::Null);
    let caps: Vec<String> = answer
        .pointer("/data/capabilities")
        .or_else(|| answer.get("capabilities"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if format == Format::Json {
        print!("{}", output::json(&json!(caps)));
    } else {
        let mut sorted = caps;
        sorted.sort();
        println!("{}", sorted.join(", "));
    }
    Ok(0)
}

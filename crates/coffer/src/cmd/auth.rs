//! `coffer auth enable|disable|list|tune` over `sys/auth/*`, and
//! [`method_login`]: logging in through an auth method (userpass, approle,
//! jwt, token), for `coffer login -method=...`.

use std::io::IsTerminal as _;

use anyhow::Context as _;
use reqwest::Method;
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use super::generic::{self, call, usage};
use crate::client::{self, Client, ConnectArgs};
use crate::output::{self, Format, FormatArgs};

/// Arguments of `coffer auth`.
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
    /// Enable an auth method (at TYPE/ unless -path says otherwise).
    #[command(after_help = "Examples:\n  \
        coffer auth enable userpass\n  \
        coffer auth enable -path=ci -description=\"CI machines\" approle")]
    Enable(EnableArgs),
    /// Disable the auth method at PATH, revoking the tokens it issued.
    #[command(after_help = "Example:\n  coffer auth disable userpass/")]
    Disable {
        /// The method's path.
        path: String,
    },
    /// List the enabled auth methods.
    #[command(after_help = "Examples:\n  coffer auth list\n  coffer auth list -format=json")]
    List,
    /// Change an auth method's lease TTLs or description.
    #[command(
        after_help = "Example:\n  coffer auth tune -default-lease-ttl=1h -max-lease-ttl=24h userpass/"
    )]
    Tune(TuneArgs),
    /// Move an auth method to a new path with its roles and users (the
    /// tokens it issued are revoked).
    #[command(after_help = "Example:\n  coffer auth move userpass/ people/")]
    Move {
        /// The method's current path.
        source: String,
        /// Its new path.
        destination: String,
    },
}

/// Arguments of `auth enable`.
#[derive(clap::Args)]
struct EnableArgs {
    /// Where to mount it (default: the type's name).
    #[arg(long, value_name = "PATH")]
    path: Option<String>,
    /// Human-readable description.
    #[arg(long)]
    description: Option<String>,
    /// Default lease TTL of the tokens it issues, e.g. 1h.
    #[arg(long, value_name = "DURATION")]
    default_lease_ttl: Option<String>,
    /// Largest lease TTL of the tokens it issues.
    #[arg(long, value_name = "DURATION")]
    max_lease_ttl: Option<String>,
    /// Mount option key=value (repeatable).
    #[arg(long = "options", value_name = "K=V")]
    options: Vec<String>,
    /// Method type: userpass, approle, jwt.
    r#type: String,
}

/// Arguments of `auth tune`.
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
    /// The method's path.
    path: String,
}

/// Runs an auth subcommand, returning the exit code.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let client = args.connect.client()?;
    match args.command {
        Command::Enable(a) => enable(&client, a),
        Command::Disable { path } => {
            let p = mount_path(&path);
            call(
                &client,
                Method::DELETE,
                &format!("sys/auth/{p}"),
                None,
                "disabling the auth method",
            )?;
            println!("Success! Disabled the auth method (if it existed) at: {p}/");
            Ok(0)
        }
        Command::List => list(&client, args.output.format),
        Command::Tune(a) => tune(&client, a),
        Command::Move {
            source,
            destination,
        } => super::secrets::move_mount(
            &client,
            &format!("auth/{}", mount_path(&source)),
            &format!("auth/{}", mount_path(&destination)),
            "auth method",
        ),
    }
}

/// A mount path without surrounding slashes or an `auth/` prefix.
fn mount_path(path: &str) -> String {
    let p = path.trim().trim_matches('/');
    p.strip_prefix("auth/").unwrap_or(p).to_owned()
}

fn enable(client: &Client, a: EnableArgs) -> anyhow::Result<i32> {
    let kind = a.r#type.trim();
    if kind.is_empty() {
        return usage("Missing the auth method type");
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
    if !a.options.is_empty() {
        let mut options = Map::new();
        for o in &a.options {
            let Some((k, v)) = o.split_once('=').filter(|(k, _)| !k.is_empty()) else {
                return usage(format!("Invalid -options {o:?}: expected key=value"));
            };
            options.insert(k.to_owned(), json!(v));
        }
        body.insert("options".into(), Value::Object(options));
    }
    call(
        client,
        Method::POST,
        &format!("sys/auth/{path}"),
        Some(&Value::Object(body)),
        "enabling the auth method",
    )?;
    println!("Success! Enabled {kind} auth method at: {path}/");
    Ok(0)
}

fn list(client: &Client, format: Format) -> anyhow::Result<i32> {
    super::secrets::list_mount_table(client, format, "sys/auth", "auth methods")
}

fn tune(client: &Client, a: TuneArgs) -> anyhow::Result<i32> {
    let path = mount_path(&a.path);
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
    if body.is_empty() {
        return usage("Nothing to tune: give -default-lease-ttl, -max-lease-ttl or -description");
    }
    call(
        client,
        Method::POST,
        &format!("sys/auth/{path}/tune"),
        Some(&Value::Object(body)),
        "tuning the auth method",
    )?;
    println!("Success! Tuned the auth method at: {path}/");
    Ok(0)
}

/// The flags of a method login, for `coffer login` to flatten into its own.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct MethodArgs {
    /// Auth method: token, userpass, approle or jwt.
    #[arg(long, value_name = "METHOD")]
    pub method: Option<String>,
    /// Where the method is mounted (default: the method's name).
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
    /// Do not store the token in the token file.
    #[arg(long)]
    pub no_store: bool,
    /// Print only the token (and do not store it).
    #[arg(long)]
    pub token_only: bool,
}

/// Logs in through an auth method and stores the token like `coffer login`.
///
/// `kvs` are the method's `key=value` arguments: userpass `username=U
/// [password=P]` (the password is prompted for without echo when absent and
/// stdin is a terminal); approle `role_id=R secret_id=S`; jwt `role=R
/// jwt=J` (or `jwt=@file`); token `token=T`. Any value may be `@file`.
/// Usage errors return exit code 1; a refused login is an error (exit 2).
pub fn method_login(
    connect: &ConnectArgs,
    format: Format,
    args: &MethodArgs,
    kvs: &[String],
) -> anyhow::Result<i32> {
    let method = args.method.as_deref().unwrap_or("token").trim().to_owned();
    let mut fields = match login_fields(kvs) {
        Ok(f) => f,
        Err(e) => return usage(e),
    };
    let mount = mount_path(args.path.as_deref().unwrap_or(&method));
    let client = connect.client()?;
    let (path, body) = match method.as_str() {
        "token" => {
            let Some(t) = fields.remove("token") else {
                return usage("Missing token=... for -method=token");
            };
            let token = Zeroizing::new(t.to_string());
            return store_checked_token(&client, token, format, args);
        }
        "userpass" | "ldap" => {
            let Some(user) = fields.remove("username") else {
                return usage(format!("Missing username=... for -method={method}"));
            };
            if !fields.contains_key("password") {
                if !std::io::stdin().is_terminal() {
                    return usage("Missing password=... (and stdin is not a terminal to ask)");
                }
                let pw = crate::prompt::secret("Password (will be hidden): ")
                    .context("reading the password")?;
                fields.insert("password".into(), Zeroizing::new(pw.to_string()));
            }
            // The client escapes each path segment; a '/' or '?' would change the path.
            if user.is_empty() || user.contains(['/', '?', '#']) {
                return usage("Invalid username: it must not be empty or contain '/', '?' or '#'");
            }
            (format!("auth/{mount}/login/{}", user.as_str()), fields)
        }
        "approle" => {
            if !fields.contains_key("role_id") {
                return usage("Missing role_id=... for -method=approle");
            }
            (format!("auth/{mount}/login"), fields)
        }
        "jwt" | "oidc" => {
            if !fields.contains_key("jwt") {
                return usage("Missing jwt=... (or jwt=@file) for -method=jwt");
            }
            (format!("auth/{mount}/login"), fields)
        }
        other => return usage(format!("Unknown auth method: {other}")),
    };
    let body: Map<String, Value> = body
        .iter()
        .map(|(k, v)| (k.clone(), json!(v.as_str())))
        .collect();
    // serde_json values cannot be zeroized; this copy lives only for the request.
    let body = Value::Object(body);
    let resp = client
        .request(Method::POST, &path, Some(&body))?
        .error_for_status()
        .with_context(|| format!("logging in at auth/{mount}"))?;
    let answer = resp.body.unwrap_or(Value::Null);
    let Some(token) = answer
        .pointer("/auth/client_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    else {
        anyhow::bail!("the server answered the login without a token");
    };
    let token = Zeroizing::new(token.to_owned());
    finish_login(&answer, &token, format, args)
}

/// Checks a token with `lookup-self`, then stores and reports it.
fn store_checked_token(
    client: &Client,
    token: Zeroizing<String>,
    format: Format,
    args: &MethodArgs,
) -> anyhow::Result<i32> {
    let client = client.clone().with_token(token.clone());
    let resp = client
        .request(Method::GET, "auth/token/lookup-self", None)?
        .error_for_status()
        .context("authenticating")?;
    let data = resp.data().cloned().unwrap_or(Value::Null);
    // Shape the lookup like a login answer so both print the same way.
    let answer = json!({"auth": {
        "client_token": token.as_str(),
        "accessor": data.get("accessor"),
        "lease_duration": data.get("ttl"),
        "renewable": data.get("renewable"),
        "policies": data.get("policies"),
        "token_policies": data.get("policies"),
        "metadata": data.get("meta"),
    }});
    finish_login(&answer, &token, format, args)
}

/// Stores the token (unless told not to) and prints the login's outcome.
fn finish_login(
    answer: &Value,
    token: &Zeroizing<String>,
    format: Format,
    args: &MethodArgs,
) -> anyhow::Result<i32> {
    if args.token_only {
        println!("{}", token.as_str());
        return Ok(0);
    }
    let stored = if args.no_store {
        None
    } else {
        Some(client::write_token_file(token).context("storing the token")?)
    };
    if format == Format::Json {
        print!("{}", output::json(answer));
        return Ok(0);
    }
    match &stored {
        Some(path) => println!(
            "Success! You are now authenticated. The token is stored in {} and\n\
             future requests will use it automatically.\n",
            path.display()
        ),
        None => println!("Success! You are now authenticated (the token was not stored).\n"),
    }
    let mut rows = answer
        .get("auth")
        .map(generic::auth_rows)
        .unwrap_or_default();
    // The token sits in the file; print it only when it was not stored.
    if stored.is_some() {
        rows.retain(|(k, _)| k != "token");
    }
    print!("{}", output::table(&rows));
    Ok(0)
}

/// Parses `key=value` login arguments (values may be `@file`, read and
/// trimmed). Errors name the key, never the value.
fn login_fields(
    kvs: &[String],
) -> Result<std::collections::BTreeMap<String, Zeroizing<String>>, String> {
    let mut out = std::collections::BTreeMap::new();
    for (i, kv) in kvs.iter().enumerate() {
        let Some((k, v)) = kv.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(format!(
                "login argument {} is not of the form key=value",
                i + 1
            ));
        };
        let value = match v.strip_prefix('@') {
            Some(file) => {
                let text = Zeroizing::new(
                    std::fs::read_to_string(file)
                        .map_err(|e| format!("cannot read {file} for {k:?}: {e}"))?,
                );
                Zeroizing::new(text.trim().to_owned())
            }
            None => Zeroizing::new(v.to_owned()),
        };
        out.insert(k.to_owned(), value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_normalised() {
        assert_eq!(mount_path("/auth/userpass/"), "userpass");
        assert_eq!(mount_path("ci"), "ci");
    }

    #[test]
    fn login_fields_read_files_and_hide_values() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("jwt.txt");
        std::fs::write(&f, "a.b.c\n").unwrap();
        let fields = login_fields(&["role=r".into(), format!("jwt=@{}", f.display())]).unwrap();
        assert_eq!(fields["jwt"].as_str(), "a.b.c");
        assert_eq!(fields["role"].as_str(), "r");
        let err = login_fields(&["s3cr3t-lookalike".into()]).unwrap_err();
        assert!(!err.contains("s3cr3t"), "{err}");
    }
}

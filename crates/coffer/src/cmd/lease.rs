//! `coffer lease lookup|renew|revoke` over `sys/leases/*`, with `vault
//! lease`'s flags.

use reqwest::Method;
use serde_json::{json, Value};

use super::generic::{self, call, usage};
use crate::client::ConnectArgs;
use crate::output::FormatArgs;

/// Arguments of `coffer lease`.
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
    /// Show a lease's issue and expiry times, TTL and renewability.
    #[command(after_help = "Example:\n  coffer lease lookup database/creds/readonly/2f6a614c...")]
    Lookup {
        /// The lease id.
        id: String,
    },
    /// Extend a lease (by -increment, or its original TTL), within its maximum.
    #[command(after_help = "Examples:\n  \
        coffer lease renew database/creds/readonly/2f6a614c...\n  \
        coffer lease renew -increment=1h database/creds/readonly/2f6a614c...")]
    Renew {
        /// Requested extension, e.g. 30m or 3600 (default: the lease's original TTL).
        #[arg(long, value_name = "DURATION")]
        increment: Option<String>,
        /// The lease id.
        id: String,
    },
    /// Revoke a lease, or with -prefix every lease below a path; the credentials are
    /// revoked through their engine (a database user is dropped).
    #[command(after_help = "Examples:\n  \
        coffer lease revoke database/creds/readonly/2f6a614c...\n  \
        coffer lease revoke -prefix database/creds/readonly\n  \
        coffer lease revoke -prefix -force database/creds/readonly  (drops the leases even if the engine fails)")]
    Revoke {
        /// Treat ID as a prefix and revoke every lease below it (needs sudo).
        #[arg(long)]
        prefix: bool,
        /// With -prefix: forget the leases even when their engine cannot revoke
        /// the credentials (they may keep working). Needs sudo.
        #[arg(long)]
        force: bool,
        /// Accepted for `vault` compatibility: Coffer always revokes before answering.
        #[arg(long)]
        sync: bool,
        /// The lease id (or prefix).
        id: String,
    },
}

/// Runs a lease subcommand, returning the exit code.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let client = args.connect.client()?;
    let format = args.output.format;
    match args.command {
        Command::Lookup { id } => {
            let id = id.trim();
            if id.is_empty() {
                return usage("Missing the lease id");
            }
            let body = call(
                &client,
                Method::PUT,
                "sys/leases/lookup",
                Some(&json!({"lease_id": id})),
                "looking up the lease",
            )?
            .unwrap_or(Value::Null);
            Ok(generic::print_answer(&body, None, format))
        }
        Command::Renew { increment, id } => {
            let id = id.trim();
            if id.is_empty() {
                return usage("Missing the lease id");
            }
            let mut body = json!({"lease_id": id});
            if let Some(i) = increment {
                body["increment"] = json!(i);
            }
            let answer = call(
                &client,
                Method::PUT,
                "sys/leases/renew",
                Some(&body),
                "renewing the lease",
            )?
            .unwrap_or(Value::Null);
            Ok(generic::print_answer(&answer, None, format))
        }
        Command::Revoke {
            prefix,
            force,
            sync: _,
            id,
        } => {
            let id = id.trim().trim_start_matches('/');
            if id.is_empty() {
                return usage("Missing the lease id");
            }
            if force && !prefix {
                return usage("Specifying -force requires also specifying -prefix");
            }
            let (path, body, done) = if prefix {
                let kind = if force {
                    "revoke-force"
                } else {
                    "revoke-prefix"
                };
                let what = if force {
                    "Force revoked any leases with prefix"
                } else {
                    "Revoked any leases with prefix"
                };
                // The client escapes each segment; a '?' or '#' would change the path.
                if id.contains(['?', '#']) {
                    return usage("Invalid prefix: it must not contain '?' or '#'");
                }
                (format!("sys/leases/{kind}/{id}"), None, what)
            } else {
                (
                    "sys/leases/revoke".to_owned(),
                    Some(json!({"lease_id": id})),
                    "Revoked lease",
                )
            };
            call(
                &client,
                Method::PUT,
                &path,
                body.as_ref(),
                "revoking the lease",
            )?;
            println!("Success! {done}: {id}");
            Ok(0)
        }
    }
}

//! `coffer audit`: verify audit logs offline, and ask the server who read a
//! secret or which secrets nobody read.

use std::path::PathBuf;

use anyhow::Context as _;
use base64::Engine as _;
use coffer_core::audit::verify::{verify_files, Report, VerifyOptions};
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::ConnectArgs;
use crate::output::{self, Format, FormatArgs};

/// Arguments of `coffer audit`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    output: FormatArgs,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Check that audit log files are complete and unedited (offline).
    #[command(after_help = "Give rotated files oldest first, e.g.\n  \
        coffer audit verify audit.log.2 audit.log.1 audit.log --public-key \"$(cat audit.pub)\"\n\n\
        The public key is at GET sys/audit/<path>/verify-key.\n\
        A closed log (its device disabled, the server sealed, or a rotated file) must end\n\
        with its closing checkpoint; a live log needs --open, and the report then names\n\
        the last signed sequence number and the entries after it.\n\
        Exit codes: 0 whole, 1 tampering found, 2 the files could not be read.")]
    Verify {
        /// Log files, oldest first.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// The Ed25519 verify key (base64), or a file holding it.
        #[arg(long, value_name = "KEY")]
        public_key: Option<String>,
        /// The log is live (its device is enabled): accept a log that does
        /// not end with a closing checkpoint, and report where its signed
        /// part ends.
        #[arg(long)]
        open: bool,
        /// With --open: also fail when the log does not end with a signed
        /// checkpoint.
        #[arg(long)]
        strict: bool,
    },
    /// Enable an audit device, like `vault audit enable file file_path=...`.
    #[command(after_help = "Examples:\n  \
        coffer audit enable file file_path=/var/log/coffer/audit.log\n  \
        coffer audit enable -path=siem socket address=127.0.0.1:9090 socket_type=tcp")]
    Enable {
        /// Device type: file, socket or syslog.
        kind: String,
        /// Options as key=value (file_path, mode, hmac_accessor, log_raw, ...).
        options: Vec<String>,
        /// Where to enable it (default: the type's name).
        #[arg(long, value_name = "PATH")]
        path: Option<String>,
        /// A description.
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Disable the audit device at PATH.
    Disable {
        /// The device's path.
        path: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// List the enabled audit devices.
    List {
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// List who read a secret and when (from the server's access records).
    WhoRead {
        /// The secret's path, e.g. secret/data/billing/stripe.
        path: String,
        /// Only readers since then: a duration back from now (30d) or an RFC 3339 time.
        #[arg(long, value_name = "T")]
        since: Option<String>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// List secrets nobody read since a time.
    Unused {
        /// A duration back from now (90d) or an RFC 3339 time.
        #[arg(long, value_name = "T", default_value = "90d")]
        since: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

/// Runs `coffer audit ...`.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let format = args.output.format;
    match args.command {
        Command::Verify {
            files,
            public_key,
            open,
            strict,
        } => verify(&files, public_key.as_deref(), open, strict, format),
        Command::WhoRead {
            path,
            since,
            connect,
        } => {
            let mut api = format!("sys/coffer/access/{}", path.trim_start_matches('/'));
            if let Some(s) = &since {
                api.push_str(&format!("?since={}", encode(s)));
            }
            let data = get(&connect, &api)?;
            print!("{}", render_who_read(&data, format));
            Ok(0)
        }
        Command::Enable {
            kind,
            options,
            path,
            description,
            connect,
        } => {
            let mut opts = serde_json::Map::new();
            for kv in &options {
                let Some((k, v)) = kv.split_once('=') else {
                    eprintln!("Error: options are key=value, got {kv:?}");
                    return Ok(1);
                };
                opts.insert(k.to_string(), Value::String(v.to_string()));
            }
            let path = path.unwrap_or_else(|| kind.clone());
            let path = path.trim_matches('/');
            let body = json!({"type": kind, "description": description.unwrap_or_default(), "options": opts});
            connect
                .client()?
                .request(Method::PUT, &format!("sys/audit/{path}"), Some(&body))?
                .error_for_status()
                .with_context(|| format!("enabling the audit device at {path}/"))?;
            println!("Success! Enabled the {kind} audit device at: {path}/");
            Ok(0)
        }
        Command::Disable { path, connect } => {
            let path = path.trim_matches('/');
            connect
                .client()?
                .request(Method::DELETE, &format!("sys/audit/{path}"), None)?
                .error_for_status()
                .with_context(|| format!("disabling the audit device at {path}/"))?;
            println!("Success! Disabled the audit device (if it was enabled) at: {path}/");
            Ok(0)
        }
        Command::List { connect } => {
            let resp = connect
                .client()?
                .request(Method::GET, "sys/audit", None)?
                .error_for_status()?;
            let data = resp.data().cloned().unwrap_or(Value::Null);
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&data)?),
                Format::Table => {
                    let rows: Vec<Vec<String>> = data
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(p, d)| {
                                    vec![
                                        p.clone(),
                                        d["type"].as_str().unwrap_or("").to_string(),
                                        d["description"].as_str().unwrap_or("").to_string(),
                                    ]
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    print!("{}", self::rows(&["Path", "Type", "Description"], &rows));
                }
            }
            Ok(0)
        }
        Command::Unused { since, connect } => {
            let data = get(
                &connect,
                &format!("sys/coffer/access-unused?since={}", encode(&since)),
            )?;
            print!("{}", render_unused(&data, format));
            Ok(0)
        }
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn get(connect: &ConnectArgs, path: &str) -> anyhow::Result<Value> {
    let client = connect.client()?;
    let resp = client
        .request(Method::GET, path, None)?
        .error_for_status()?;
    resp.data().cloned().with_context(|| {
        format!(
            "empty answer from {}",
            path.split('?').next().unwrap_or(path)
        )
    })
}

/// Reads a public key given inline (base64) or as a file holding it.
fn public_key(arg: &str) -> anyhow::Result<Vec<u8>> {
    let text = match std::fs::read_to_string(arg) {
        Ok(t) => t,
        Err(_) => arg.to_string(),
    };
    let text = text.trim();
    // Accept the JSON of GET sys/audit/<path>/verify-key as well.
    let b64 = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| {
            v.pointer("/data/public_key")
                .or(v.get("public_key"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| text.to_owned());
    let key = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .context("--public-key: not base64 (or a file holding it)")?;
    anyhow::ensure!(key.len() == 32, "--public-key: an Ed25519 key is 32 bytes");
    Ok(key)
}

fn verify(
    files: &[PathBuf],
    key: Option<&str>,
    open: bool,
    strict: bool,
    format: Format,
) -> anyhow::Result<i32> {
    let opts = VerifyOptions {
        public_key: key.map(public_key).transpose()?,
        strict,
        open,
    };
    let report = verify_files(files, &opts).context("reading the audit log")?;
    print!("{}", render_report(&report, format));
    Ok(if report.ok() { 0 } else { 1 })
}

fn render_report(r: &Report, format: Format) -> String {
    if format == Format::Json {
        return output::json(&json!({"ok": r.ok(), "report": r}));
    }
    let mut out = String::new();
    match &r.problem {
        None => {
            out.push_str(&format!(
                "OK: {} entries verified (seq {}..{}), {} signed checkpoints",
                r.entries,
                r.first_seq.unwrap_or(0),
                r.last_seq.unwrap_or(0),
                r.checkpoints
            ));
            match (&r.last_checkpoint, r.closed) {
                (Some(reason), true) => out.push_str(&format!(", closed ({reason})")),
                _ => out.push_str(", open"),
            }
            if let Some(k) = &r.key_id {
                let pinned = if r.key_pinned {
                    "pinned"
                } else {
                    "from the log"
                };
                out.push_str(&format!(", key {k} ({pinned})"));
            }
            out.push('\n');
        }
        Some(p) => {
            let seq = p.seq.map(|s| format!(" (seq {s})")).unwrap_or_default();
            out.push_str(&format!(
                "FAILED: {}:{}{seq}: {}\n",
                p.file, p.line, p.message
            ));
            out.push_str(&format!("{} entries verified before it\n", r.entries));
        }
    }
    for n in &r.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}

fn rows(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = widths.get(i).copied().unwrap_or(0)
                - c.chars().count().min(widths.get(i).copied().unwrap_or(0));
            s.push_str(c);
            s.push_str(&" ".repeat(pad));
            s.push_str("    ");
        }
        format!("{}\n", s.trim_end())
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    out.push_str(&line(
        header
            .iter()
            .map(|h| "-".repeat(h.chars().count()))
            .collect(),
    ));
    for r in rows {
        out.push_str(&line(r.clone()));
    }
    out
}

fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "never".into(),
        Some(v) => output::value_text(v),
    }
}

fn render_who_read(data: &Value, format: Format) -> String {
    if format == Format::Json {
        return output::json(data);
    }
    let readers = data
        .get("readers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = format!(
        "{}: last read {}, {} reads\n\n",
        text(data.get("path")),
        text(data.get("last_read")),
        text(data.get("reads"))
    );
    if readers.is_empty() {
        out.push_str("No readers recorded.\n");
        return out;
    }
    let table: Vec<Vec<String>> = readers
        .iter()
        .map(|r| {
            vec![
                text(r.get("last_read")),
                text(r.get("display_name")),
                text(r.get("accessor")),
                r.get("policies")
                    .and_then(Value::as_array)
                    .map(|p| {
                        p.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default(),
                text(r.get("reads")),
            ]
        })
        .collect();
    out.push_str(&rows(
        &["Last Read", "Display Name", "Accessor", "Policies", "Reads"],
        &table,
    ));
    out
}

fn render_unused(data: &Value, format: Format) -> String {
    if format == Format::Json {
        return output::json(data);
    }
    let secrets = data
        .get("secrets")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if secrets.is_empty() {
        return format!("Every secret was read since {}.\n", text(data.get("since")));
    }
    let table: Vec<Vec<String>> = secrets
        .iter()
        .map(|s| vec![text(s.get("path")), text(s.get("last_read"))])
        .collect();
    format!(
        "Secrets not read since {}:\n\n{}",
        text(data.get("since")),
        rows(&["Path", "Last Read"], &table)
    )
}

/// Reopens the audit files on every SIGHUP (log rotation), for the server.
pub(crate) async fn reopen_on_sighup(core: std::sync::Arc<coffer_core::Core>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: audit files will not be reopened");
            return;
        };
        while hup.recv().await.is_some() {
            core.reopen_audit();
        }
    }
    #[cfg(not(unix))]
    let _ = core;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_render() {
        let d = json!({"path": "secret/data/a", "last_read": "2026-01-01T00:00:00Z", "reads": 2,
            "readers": [{"accessor": "acc", "display_name": "token", "policies": ["default", "p"], "last_read": "2026-01-01T00:00:00Z", "reads": 2}]});
        let t = render_who_read(&d, Format::Table);
        assert!(t.contains("token"), "{t}");
        assert!(t.contains("default,p"), "{t}");
        let u = render_unused(
            &json!({"since": "x", "secrets": [{"path": "secret/data/b", "last_read": null}]}),
            Format::Table,
        );
        assert!(u.contains("secret/data/b    never"), "{u}");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}

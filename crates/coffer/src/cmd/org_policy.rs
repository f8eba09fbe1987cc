//! `coffer org-policy init|show|apply|diff|history`: the org secrets policy
//! (`sys/coffer/org-policy`), a TOML document stored in Coffer with history.

use std::path::PathBuf;

use anyhow::Context as _;
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::generic::call;
use crate::client::ConnectArgs;
use crate::output::{self, Format, FormatArgs};

/// Arguments of `coffer org-policy`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    coffer org-policy init              # writes org-policy.toml (the minimal policy)\n  \
    coffer org-policy diff org-policy.toml\n  \
    coffer org-policy apply org-policy.toml\n  \
    coffer org-policy show -format=json")]
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
    /// Write the minimal org policy to a file (the server's, if one is applied).
    Init {
        /// Where to write it.
        #[arg(long, short = 'o', default_value = "org-policy.toml")]
        output: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Show the applied policy.
    Show {
        /// An older version.
        #[arg(long = "policy-version", value_name = "N")]
        policy_version: Option<u64>,
    },
    /// Apply a policy file (needs sudo on sys/coffer/org-policy).
    Apply {
        /// The TOML file.
        file: PathBuf,
    },
    /// Compare a policy file with the applied policy, field by field.
    Diff {
        /// The TOML file.
        file: PathBuf,
    },
    /// List the applied versions.
    History,
}

/// Runs the command.
pub fn run(a: Args) -> anyhow::Result<i32> {
    let client = a.connect.client()?;
    let json_out = a.output.format == Format::Json;
    match a.command {
        Command::Init { output, force } => {
            let current = client.read("sys/coffer/org-policy")?;
            let (text, from) = match &current {
                Some(c) => (
                    c["data"]["policy"].as_str().unwrap_or("").to_string(),
                    format!("the applied policy (version {})", c["data"]["version"]),
                ),
                None => (
                    coffer_core::procedure::org_policy::DEFAULT_TOML.to_string(),
                    "the minimal policy".to_string(),
                ),
            };
            if output.exists() && !force {
                eprintln!("{} exists: pass --force to overwrite it", output.display());
                return Ok(1);
            }
            std::fs::write(&output, &text)
                .with_context(|| format!("writing {}", output.display()))?;
            if json_out {
                print!(
                    "{}",
                    output::json(&json!({"file": output.display().to_string(), "source": from}))
                );
            } else {
                println!(
                    "Wrote {} ({from}). Edit it, then: coffer org-policy apply {}",
                    output.display(),
                    output.display()
                );
            }
            Ok(0)
        }
        Command::Show { policy_version } => {
            let path = match policy_version {
                Some(v) => format!("sys/coffer/org-policy?version={v}"),
                None => "sys/coffer/org-policy".into(),
            };
            let Some(body) = client.read(&path)? else {
                eprintln!("No org policy is applied. Write one with `coffer org-policy init`.");
                return Ok(2);
            };
            if json_out {
                print!("{}", output::json(&body));
            } else {
                let d = &body["data"];
                println!(
                    "# version {} (sha256 {}), applied {} by {}",
                    d["version"],
                    d["sha256"].as_str().unwrap_or(""),
                    d["applied_at"].as_str().unwrap_or(""),
                    d["applied_by"].as_str().unwrap_or("")
                );
                print!("{}", d["policy"].as_str().unwrap_or(""));
            }
            Ok(0)
        }
        Command::Apply { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let answer = call(
                &client,
                Method::POST,
                "sys/coffer/org-policy",
                Some(&json!({"policy": text})),
                &format!("applying {}", file.display()),
            )?
            .unwrap_or(Value::Null);
            super::generic::print_warnings(&answer);
            if json_out {
                print!("{}", output::json(&answer));
            } else if answer["data"]["changed"] == json!(true) {
                println!(
                    "Success! Applied org policy version {}.",
                    answer["data"]["version"]
                );
            } else {
                println!(
                    "Unchanged: version {} is this policy.",
                    answer["data"]["version"]
                );
            }
            Ok(0)
        }
        Command::Diff { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let new = coffer_core::procedure::org_policy::parse(&text)
                .map_err(|e| anyhow::anyhow!("{}: {}", file.display(), e.messages().join("; ")))?;
            let old = client
                .read("sys/coffer/org-policy")?
                .map(|b| b["data"]["parsed"].clone())
                .unwrap_or(Value::Null);
            let mut a = Map::new();
            flatten("", &old, &mut a);
            let mut b = Map::new();
            flatten("", &new.to_json(), &mut b);
            let mut changes = Vec::new();
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let (x, y) = (a.get(k), b.get(k));
                if x != y {
                    changes.push(json!({"field": k, "applied": x, "file": y}));
                }
            }
            if json_out {
                print!("{}", output::json(&json!({"changes": changes})));
            } else if changes.is_empty() {
                println!("No changes.");
            } else {
                for c in &changes {
                    println!(
                        "~ {}: {} -> {}",
                        c["field"].as_str().unwrap_or(""),
                        c["applied"],
                        c["file"]
                    );
                }
            }
            Ok(if changes.is_empty() { 0 } else { 1 })
        }
        Command::History => {
            let body = call(
                &client,
                Method::GET,
                "sys/coffer/org-policy/history?list=true",
                None,
                "listing versions",
            )?
            .unwrap_or(Value::Null);
            if json_out {
                print!("{}", output::json(&body));
            } else {
                let rows: Vec<Vec<String>> = body["data"]["versions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|v| {
                        vec![
                            v["version"].to_string(),
                            v["applied_at"].as_str().unwrap_or("").into(),
                            v["applied_by"].as_str().unwrap_or("").into(),
                            v["sha256"]
                                .as_str()
                                .unwrap_or("")
                                .chars()
                                .take(16)
                                .collect(),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    super::generic::grid(&["VERSION", "APPLIED", "BY", "SHA256"], &rows)
                );
            }
            Ok(0)
        }
    }
}

/// Flattens JSON into dotted keys.
fn flatten(prefix: &str, v: &Value, out: &mut Map<String, Value>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                if k == "max_age_text" {
                    continue;
                }
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, x, out);
            }
        }
        Value::Null if prefix.is_empty() => {}
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

//! `coffer review start|list|show|decide|apply|export`: access reviews
//! (`sys/coffer/review`): grants against their use, a decision with a
//! rationale per grant, applying them, and the evidence export.

use std::path::PathBuf;

use anyhow::Context as _;
use reqwest::Method;
use serde_json::{json, Value};

use super::generic::{call, grid};
use crate::client::ConnectArgs;
use crate::output;

/// Arguments of `coffer review`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    coffer review start --scope secret/billing\n  \
    coffer review decide REVIEW g3 --decision revoke --rationale \"left the team\"\n  \
    coffer review apply REVIEW\n  \
    coffer review export REVIEW --format csv -o review.csv")]
pub struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Start a review: grants per identity against their use.
    Start {
        /// Only secrets under this path (`secret/billing`).
        #[arg(long)]
        scope: Option<String>,
        /// A grant unused this long is stale (default: the org policy's).
        #[arg(long, value_name = "DURATION")]
        stale_after: Option<String>,
        /// A secret readable by more identities is over-shared.
        #[arg(long)]
        max_readers: Option<u64>,
        /// text or json.
        #[arg(long, default_value = "text")]
        format: String,
    },
    /// List reviews.
    List,
    /// Show a review.
    Show {
        /// The review id.
        id: String,
        /// text or json.
        #[arg(long, default_value = "text")]
        format: String,
    },
    /// Record a decision on one item (keep, revoke, narrow) with its rationale.
    Decide {
        /// The review id.
        id: String,
        /// The item (g1, i7, ...).
        item: String,
        /// keep, revoke or narrow.
        #[arg(long)]
        decision: String,
        /// Why (required).
        #[arg(long)]
        rationale: String,
    },
    /// Revoke or narrow what was decided (needs sudo).
    Apply {
        /// The review id.
        id: String,
    },
    /// The evidence bundle: every item, decision and rationale.
    Export {
        /// The review id.
        id: String,
        /// csv or json.
        #[arg(long, default_value = "json")]
        format: String,
        /// Write to FILE.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// Runs the command.
pub fn run(a: Args) -> anyhow::Result<i32> {
    let client = a.connect.client()?;
    match a.command {
        Command::Start {
            scope,
            stale_after,
            max_readers,
            format,
        } => {
            let mut body = json!({});
            if let Some(s) = scope {
                body["scope"] = json!(s);
            }
            if let Some(s) = stale_after {
                body["stale_after"] = json!(s);
            }
            if let Some(n) = max_readers {
                body["max_readers"] = json!(n);
            }
            let r = call(
                &client,
                Method::POST,
                "sys/coffer/review",
                Some(&body),
                "starting the review",
            )?
            .unwrap_or(Value::Null);
            print_review(&r["data"], &format);
            Ok(0)
        }
        Command::List => {
            let keys = client.list("sys/coffer/review")?;
            for k in keys {
                println!("{k}");
            }
            Ok(0)
        }
        Command::Show { id, format } => {
            let r = call(
                &client,
                Method::GET,
                &format!("sys/coffer/review/{id}"),
                None,
                "reading the review",
            )?
            .unwrap_or(Value::Null);
            print_review(&r["data"], &format);
            Ok(0)
        }
        Command::Decide {
            id,
            item,
            decision,
            rationale,
        } => {
            if rationale.trim().is_empty() {
                eprintln!("--rationale is required: say why");
                return Ok(1);
            }
            call(
                &client,
                Method::POST,
                &format!("sys/coffer/review/{id}/decide"),
                Some(&json!({"item": item, "decision": decision, "rationale": rationale})),
                "recording the decision",
            )?;
            println!("Recorded: {item} {decision}.");
            Ok(0)
        }
        Command::Apply { id } => {
            let r = call(
                &client,
                Method::POST,
                &format!("sys/coffer/review/{id}/apply"),
                Some(&json!({})),
                "applying the review",
            )?
            .unwrap_or(Value::Null);
            let applied = &r["data"]["applied"];
            for c in applied["changes"].as_array().into_iter().flatten() {
                println!(
                    "{}: policy {} denies {}",
                    c["identity"].as_str().unwrap_or(""),
                    c["policy"].as_str().unwrap_or(""),
                    c["denied"].as_array().map(|d| d.len()).unwrap_or(0)
                );
            }
            for c in applied["skipped"].as_array().into_iter().flatten() {
                println!(
                    "{}: skipped: {}",
                    c["identity"].as_str().unwrap_or(""),
                    c["why"].as_str().unwrap_or("")
                );
            }
            println!("{}", applied["note"].as_str().unwrap_or(""));
            Ok(0)
        }
        Command::Export { id, format, output } => {
            let r = call(
                &client,
                Method::GET,
                &format!("sys/coffer/review/{id}"),
                None,
                "reading the review",
            )?
            .unwrap_or(Value::Null);
            let text = match format.as_str() {
                "json" => output::json(&r["data"]),
                "csv" => csv(&r["data"]),
                other => {
                    eprintln!("--format: {other:?} is not one of csv, json");
                    return Ok(1);
                }
            };
            match output {
                Some(p) => {
                    std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?
                }
                None => print!("{text}"),
            }
            Ok(0)
        }
    }
}

fn txt(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(a) => a.iter().map(txt).collect::<Vec<_>>().join(";"),
        other => other.to_string(),
    }
}

fn print_review(d: &Value, format: &str) {
    if format == "json" {
        print!("{}", output::json(d));
        return;
    }
    println!(
        "Review {} ({} stale after {}, max readers {})",
        txt(&d["id"]),
        if txt(&d["scope"]).is_empty() {
            "all secrets,".into()
        } else {
            format!("scope {},", txt(&d["scope"]))
        },
        txt(&d["stale_after"]),
        txt(&d["max_readers"])
    );
    let rows: Vec<Vec<String>> = d["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            vec![
                txt(&i["item"]),
                txt(&i["identity"]),
                if i["kind"] == "identity" {
                    format!(
                        "{} of {} used",
                        i["used"].as_array().map(|u| u.len()).unwrap_or(0),
                        i["granted"].as_array().map(|u| u.len()).unwrap_or(0)
                    )
                } else {
                    txt(&i["secret"])
                },
                txt(&i["flags"]),
                if i["last_used"].is_null() {
                    "never".into()
                } else {
                    txt(&i["last_used"])
                },
                txt(&i["decision"]["decision"]),
            ]
        })
        .collect();
    print!(
        "{}",
        grid(
            &[
                "ITEM",
                "IDENTITY",
                "SECRET",
                "FLAGS",
                "LAST USED",
                "DECISION"
            ],
            &rows
        )
    );
}

fn csv_field(s: &str) -> String {
    // Cells starting with a formula character are prefixed, so a
    // spreadsheet does not run them.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// One line per item with its decision and rationale.
fn csv(d: &Value) -> String {
    let mut out = String::from("review,item,kind,identity,secret,capabilities,flags,last_used,decision,rationale,decided_by,decided_at\n");
    for i in d["items"].as_array().into_iter().flatten() {
        let dec = &i["decision"];
        let secret = if i["kind"] == "identity" {
            txt(&i["granted"])
        } else {
            txt(&i["secret"])
        };
        let cells = [
            txt(&d["id"]),
            txt(&i["item"]),
            txt(&i["kind"]),
            txt(&i["identity"]),
            secret,
            txt(&i["capabilities"]),
            txt(&i["flags"]),
            txt(&i["last_used"]),
            txt(&dec["decision"]),
            txt(&dec["rationale"]),
            txt(&dec["by"]),
            txt(&dec["at"]),
        ];
        out.push_str(
            &cells
                .iter()
                .map(|c| csv_field(c))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push('\n');
    }
    out
}

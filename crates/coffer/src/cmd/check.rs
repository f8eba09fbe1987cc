//! `coffer check`: the procedure's acceptance check. Every criterion with
//! its evidence, then `Completed` (exit 0; "Secrets management defined" is
//! recorded in the audit trail), `Blocked: N blockers` each with the
//! command that fixes it (exit 1) or, after `coffer check abort`,
//! `Aborted` (exit 3). Usage errors exit 2.
//!
//! The scanner runs here, on `--scan` paths and on the repositories the org
//! policy lists; only rule, file and line of each finding go to the server.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use reqwest::Method;
use serde_json::{json, Value};

use super::generic::call;
use crate::client::ConnectArgs;

/// Arguments of `coffer check`.
#[derive(clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  \
    coffer check --scan ./repo\n  \
    coffer check --scan . --format junit > check.xml\n  \
    coffer check abort --reason \"project cancelled\" --secure\n\n\
    Exit codes: 0 Completed, 1 Blocked, 2 usage or other errors, 3 Aborted."
)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    connect: ConnectArgs,
    /// Scan these paths for secrets (repeatable); the org policy's
    /// repositories are scanned too.
    #[arg(long, value_name = "PATH")]
    scan: Vec<PathBuf>,
    /// Baseline of known findings for the --scan paths.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Output: text, json, junit or sarif.
    #[arg(long, default_value = "text")]
    format: String,
    /// Evaluate only: record nothing in the audit trail (GET instead of POST).
    #[arg(long)]
    no_record: bool,
}

/// Subcommands of `coffer check`.
#[derive(clap::Subcommand)]
enum Action {
    /// Record that the work was cancelled, with the credentials to secure.
    Abort(AbortArgs),
}

/// Arguments of `coffer check abort`.
#[derive(clap::Args)]
struct AbortArgs {
    /// Why the work is cancelled (required; recorded).
    #[arg(long)]
    reason: Option<String>,
    /// Rotate the listed credentials that have a rotator.
    #[arg(long)]
    secure: bool,
    /// Also write the note (Markdown) to FILE.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Output: text or json.
    #[arg(long, default_value = "text")]
    format: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Out {
    Text,
    Json,
    Junit,
    Sarif,
}

fn usage(msg: impl std::fmt::Display) -> anyhow::Result<i32> {
    eprintln!("{msg}");
    Ok(2)
}

/// Runs the check, returning the exit code.
pub fn run(a: Args) -> anyhow::Result<i32> {
    if let Some(Action::Abort(b)) = a.action {
        return abort(b, &a.connect);
    }
    let out = match a.format.as_str() {
        "text" | "table" => Out::Text,
        "json" => Out::Json,
        "junit" => Out::Junit,
        "sarif" => Out::Sarif,
        other => {
            return usage(format!(
                "--format: {other:?} is not one of text, json, junit, sarif"
            ))
        }
    };
    for p in &a.scan {
        if !p.exists() {
            return usage(format!("--scan: {} does not exist", p.display()));
        }
    }
    let client = a.connect.client()?;
    // The org policy's repositories, as its text names them.
    let policy = client
        .read("sys/coffer/org-policy")
        .context("reading the org policy")?;
    let mut targets: Vec<(String, PathBuf, Option<PathBuf>)> = a
        .scan
        .iter()
        .map(|p| (p.display().to_string(), p.clone(), a.baseline.clone()))
        .collect();
    if let Some(repos) = policy
        .as_ref()
        .and_then(|p| p["data"]["parsed"]["repositories"].as_array())
    {
        for r in repos {
            let Some(path) = r["path"].as_str() else {
                continue;
            };
            if targets.iter().any(|(n, _, _)| n == path) {
                continue;
            }
            let base = r["baseline"].as_str().map(|b| Path::new(path).join(b));
            targets.push((path.to_string(), PathBuf::from(path), base));
        }
    }
    let scanned: Vec<Value> = targets
        .iter()
        .map(|(name, path, baseline)| scan_one(name, path, baseline.as_deref()))
        .collect();
    let body = json!({"scan": scanned, "record": !a.no_record});
    let answer = call(
        &client,
        Method::POST,
        "sys/coffer/check",
        Some(&body),
        "running the check",
    )?
    .unwrap_or(Value::Null);
    let data = answer.get("data").cloned().unwrap_or(Value::Null);
    match out {
        Out::Json => print!("{}", crate::output::json(&data)),
        Out::Text => print!("{}", text(&data)),
        Out::Junit => print!("{}", junit(&data)),
        Out::Sarif => print!("{}", crate::output::json(&sarif(&data))),
    }
    Ok(if data["result"] == "completed" { 0 } else { 1 })
}

/// Scans one path; findings as rule, file (relative to the path) and line.
fn scan_one(name: &str, path: &Path, baseline: Option<&Path>) -> Value {
    let result = (|| -> anyhow::Result<Vec<Value>> {
        let root = if path.is_dir() {
            path.to_path_buf()
        } else {
            path.parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."))
        };
        let config = super::scan::load_config(None, &root)?;
        let scanner = coffer_scan::Scanner::new(&config)?;
        let progress = coffer_scan::walk::Progress::default();
        let mut findings = coffer_scan::walk::scan_paths(
            &scanner,
            &[path.to_path_buf()],
            &coffer_scan::walk::ScanOptions::default(),
            &progress,
        )?;
        if let Some(b) = baseline {
            let key_root = super::scan::baseline_root(&root);
            coffer_scan::baseline::Baseline::load(b)?.filter_keyed(&mut findings, |f| {
                super::scan::baseline_path(key_root.as_deref(), f)
            });
        }
        findings.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
        Ok(findings
            .iter()
            .map(|f| json!({"rule": f.rule_id, "file": f.path, "line": f.line}))
            .collect())
    })();
    match result {
        Ok(findings) => json!({
            "path": name,
            "baseline": baseline.map(|b| b.display().to_string()),
            "findings": findings,
        }),
        Err(e) => json!({"path": name, "error": format!("{e:#}"), "findings": []}),
    }
}

/// The human report.
pub fn text(d: &Value) -> String {
    let mut s = String::new();
    for c in d["criteria"].as_array().into_iter().flatten() {
        let ok = c["passed"].as_bool().unwrap_or(false);
        s.push_str(&format!(
            "[{}] {}\n",
            if ok { "PASS" } else { "FAIL" },
            c["title"].as_str().unwrap_or("")
        ));
        for e in c["evidence"].as_array().into_iter().flatten() {
            s.push_str(&format!("      evidence: {}\n", e.as_str().unwrap_or("")));
        }
        for b in c["blockers"].as_array().into_iter().flatten() {
            s.push_str(&format!(
                "      BLOCKER {}: {}\n        fix: {}\n",
                b["item"].as_str().unwrap_or(""),
                b["problem"].as_str().unwrap_or(""),
                b["remediation"].as_str().unwrap_or("")
            ));
        }
    }
    s.push('\n');
    if d["result"] == "completed" {
        s.push_str("Completed: Secrets management defined\n");
    } else {
        let n = d["blockers"].as_u64().unwrap_or(0);
        s.push_str(&format!(
            "Blocked: {n} blocker{}\n",
            if n == 1 { "" } else { "s" }
        ));
    }
    s
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// JUnit XML: one test case per criterion, a failure per blocker.
fn junit(d: &Value) -> String {
    let criteria: Vec<Value> = d["criteria"].as_array().cloned().unwrap_or_default();
    let failures = criteria
        .iter()
        .filter(|c| c["passed"] != json!(true))
        .count();
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"coffer check\" tests=\"{}\" failures=\"{failures}\">\n",
        criteria.len()
    );
    for c in &criteria {
        s.push_str(&format!(
            "  <testcase classname=\"coffer.check\" name=\"{}\">\n",
            xml(c["title"].as_str().unwrap_or(""))
        ));
        for b in c["blockers"].as_array().into_iter().flatten() {
            s.push_str(&format!(
                "    <failure message=\"{}: {}\">fix: {}</failure>\n",
                xml(b["item"].as_str().unwrap_or("")),
                xml(b["problem"].as_str().unwrap_or("")),
                xml(b["remediation"].as_str().unwrap_or(""))
            ));
        }
        s.push_str("  </testcase>\n");
    }
    s.push_str("</testsuite>\n</testsuites>\n");
    s
}

/// SARIF 2.1.0: one rule per criterion, one result per blocker; scan
/// findings carry their file and line.
fn sarif(d: &Value) -> Value {
    let mut rules = Vec::new();
    let mut results = Vec::new();
    for c in d["criteria"].as_array().into_iter().flatten() {
        let id = c["id"].as_str().unwrap_or("");
        rules.push(json!({"id": id, "name": c["title"], "shortDescription": {"text": c["title"]}}));
        for b in c["blockers"].as_array().into_iter().flatten() {
            let item = b["item"].as_str().unwrap_or("");
            let mut r = json!({
                "ruleId": id,
                "level": "error",
                "message": {"text": format!("{item}: {} (fix: {})", b["problem"].as_str().unwrap_or(""), b["remediation"].as_str().unwrap_or(""))},
            });
            if id == "no_secrets_in_code" {
                if let Some((file, line)) = item.rsplit_once(':') {
                    if let Ok(line) = line.parse::<u64>() {
                        r["locations"] = json!([{"physicalLocation": {
                            "artifactLocation": {"uri": file},
                            "region": {"startLine": line.max(1)},
                        }}]);
                    }
                }
            }
            results.push(r);
        }
    }
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "coffer check", "version": env!("CARGO_PKG_VERSION"), "rules": rules}},
            "results": results,
        }],
    })
}

fn abort(a: AbortArgs, connect: &ConnectArgs) -> anyhow::Result<i32> {
    let json_out = match a.format.as_str() {
        "text" | "table" => false,
        "json" => true,
        other => return usage(format!("--format: {other:?} is not one of text, json")),
    };
    let Some(reason) = a.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()) else {
        return usage("--reason is required: say why the work is cancelled");
    };
    let client = connect.client()?;
    let answer = call(
        &client,
        Method::POST,
        "sys/coffer/check/abort",
        Some(&json!({"reason": reason, "secure": a.secure})),
        "recording the abort",
    )?
    .unwrap_or(Value::Null);
    let data = answer.get("data").cloned().unwrap_or(Value::Null);
    let note = note(&data);
    if let Some(p) = &a.output {
        std::fs::write(p, &note).with_context(|| format!("writing {}", p.display()))?;
    }
    if json_out {
        print!("{}", crate::output::json(&data));
    } else {
        print!("{note}");
    }
    Ok(3)
}

/// The abort note in Markdown.
fn note(d: &Value) -> String {
    let mut s = format!(
        "# Secrets management: Aborted\n\n- Aborted at: {}\n- By: {}\n- Reason: {}\n- Secured now: {}\n\n## Credentials to secure\n\n",
        d["aborted_at"].as_str().unwrap_or(""),
        d["by"].as_str().unwrap_or(""),
        d["reason"].as_str().unwrap_or(""),
        if d["secured"] == json!(true) { "yes" } else { "no (run with --secure to rotate those with a rotator)" },
    );
    let creds = d["credentials"].as_array().cloned().unwrap_or_default();
    if creds.is_empty() {
        s.push_str("None: no secret was read recently, is third-party or overdue.\n");
    }
    for c in creds {
        let why: Vec<&str> = c["why"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        s.push_str(&format!(
            "- `{}` ({}): {}\n",
            c["secret"].as_str().unwrap_or(""),
            why.join(", "),
            c["action"].as_str().unwrap_or("")
        ));
    }
    s.push_str("\nAborted\n");
    s
}

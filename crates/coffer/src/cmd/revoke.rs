//! `coffer revoke --compromised PATH --reason "..."`: respond to a leaked
//! secret at once: rotate it, revoke the leases issued from it and the tokens
//! that read it (`POST sys/coffer/revoke-compromised`), and say what was done.

use reqwest::Method;
use serde_json::{json, Value};

use super::generic::{self, call, usage};
use crate::client::ConnectArgs;
use crate::output::{self, Format, FormatArgs};

/// Arguments of `coffer revoke`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    coffer revoke --compromised secret/billing/stripe --reason \"key posted in a public issue\"\n  \
    coffer revoke --compromised secret/app/db --reason \"laptop stolen\" --since 30d\n\n\
    Tokens that read the secret since --since (default: as far as the audit log goes),\n\
    other than your own, are revoked with their children; so are the leases under the\n\
    secret's lease prefixes. Revoke single tokens with `coffer token revoke`.\n\n\
    Exit code 2 when the secret could not be rotated (no rotator, or the rotation\n\
    failed): readers are cut off, but the leaked value is still current.")]
pub struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    output: FormatArgs,
    /// The secret has leaked: rotate it and cut off everyone who read it.
    #[arg(long)]
    compromised: bool,
    /// Rehearse: work out what would be rotated and revoked, change
    /// nothing, and record the drill (`coffer check` looks for one).
    #[arg(long)]
    drill: bool,
    /// Why (required; recorded in the rotation history and the audit log).
    #[arg(long)]
    reason: Option<String>,
    /// Revoke tokens that read it since this time: a duration back (30d) or RFC 3339.
    #[arg(long, value_name = "DURATION|RFC3339")]
    since: Option<String>,
    /// The secret: `<mount>/<path>`, e.g. secret/billing/stripe.
    path: String,
}

/// Runs the revocation, returning the exit code.
pub fn run(a: Args) -> anyhow::Result<i32> {
    if !a.compromised {
        return usage(
            "coffer revoke needs --compromised (to revoke a token use `coffer token revoke`)",
        );
    }
    let Some(reason) = a.reason.as_deref().filter(|r| !r.trim().is_empty()) else {
        return usage("--reason is required: say why the secret is compromised");
    };
    let path = generic::clean_path(a.path.trim()).trim_end_matches('/');
    if !path.contains('/') {
        return usage(format!(
            "{path:?} names no secret: use <mount>/<path>, e.g. secret/billing/stripe"
        ));
    }
    let mut body = json!({"path": path, "reason": reason, "drill": a.drill});
    if let Some(since) = a.since.as_deref().filter(|s| !s.trim().is_empty()) {
        body["since"] = json!(since.trim());
    }
    let client = a.connect.client()?;
    let answer = call(
        &client,
        Method::POST,
        "sys/coffer/revoke-compromised",
        Some(&body),
        &format!("revoking compromised secret {path}"),
    )?
    .unwrap_or(Value::Null);
    generic::print_warnings(&answer);
    let data = answer.get("data").unwrap_or(&Value::Null);
    if a.drill {
        if a.output.format == Format::Json {
            print!("{}", output::json(&answer));
        } else {
            print!("{}", render_drill(data));
        }
        return Ok(0);
    }
    if a.output.format == Format::Json {
        print!("{}", output::json(&answer));
    } else {
        print!("{}", render(data));
    }
    if data.get("rotated").is_some_and(Value::is_object) {
        return Ok(0);
    }
    // Half done: readers are cut off but the leaked value still works.
    eprintln!(
        "\nError: {path} was NOT rotated: its leaked value is still the current one.\n\
         The tokens and leases listed were revoked. Change the secret where it is issued\n\
         (e.g. at the vendor), then store the new value with `coffer kv put {path} ...`;\n\
         or give it a rotator (`coffer secret set -rotator=NAME {path}`) and run\n\
         `coffer rotate {path}`."
    );
    Ok(2)
}

/// What a drill found, as a Key/Value table.
fn render_drill(d: &Value) -> String {
    let text = |k: &str| d.get(k).map(generic::cell).unwrap_or_else(|| "-".into());
    let rotation = match d.get("rotation") {
        Some(r) if r.is_object() => format!(
            "{} ({})",
            r.get("rotator").map(output::value_text).unwrap_or_default(),
            if r.get("ready") == Some(&Value::Bool(true)) {
                "ready"
            } else {
                "would FAIL"
            }
        ),
        _ => "none: rotate by hand".into(),
    };
    let rows = vec![
        (
            "Drill".to_owned(),
            "nothing was changed; the drill is recorded".to_owned(),
        ),
        ("Secret".to_owned(), text("path")),
        ("Reason".to_owned(), text("reason")),
        ("Would rotate with".to_owned(), rotation),
        ("Leases to revoke".to_owned(), text("leases_would_revoke")),
        ("Tokens to revoke".to_owned(), text("tokens_would_revoke")),
    ];
    output::table(&rows)
}

/// What was rotated and revoked, as a Key/Value table.
fn render(d: &Value) -> String {
    let text = |k: &str| d.get(k).map(generic::cell).unwrap_or_else(|| "-".into());
    let rotated = match d.get("rotated") {
        Some(r) if r.is_object() => format!(
            "yes: version {} -> {}",
            r.get("old_version")
                .map(output::value_text)
                .unwrap_or_default(),
            r.get("new_version")
                .map(output::value_text)
                .unwrap_or_default()
        ),
        _ => "NO (see below)".into(),
    };
    let tokens: Vec<String> = d
        .get("tokens_revoked")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(output::value_text).collect())
        .unwrap_or_default();
    let mut rows = vec![
        ("Secret".to_owned(), text("path")),
        ("Reason".to_owned(), text("reason")),
        ("Rotated".to_owned(), rotated),
        ("Leases revoked".to_owned(), text("leases_revoked")),
        ("Tokens revoked".to_owned(), tokens.len().to_string()),
    ];
    for acc in tokens {
        rows.push(("  token accessor".to_owned(), acc));
    }
    if let Some(since) = d.get("since").filter(|s| !s.is_null()) {
        rows.push(("Readers since".to_owned(), output::value_text(since)));
    }
    output::table(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_names_rotation_and_tokens() {
        let d = json!({"path": "secret/data/a", "reason": "leak", "leases_revoked": 2,
                       "rotated": {"old_version": 1, "new_version": 2},
                       "tokens_revoked": ["acc1"], "since": null});
        let text = render(&d);
        assert!(
            text.contains("\nRotated             yes: version 1 -> 2\n"),
            "{text}"
        );
        assert!(text.contains("\nTokens revoked      1\n"), "{text}");
        assert!(text.contains("\n  token accessor    acc1\n"), "{text}");
        let text = render(&json!({"rotated": null, "tokens_revoked": []}));
        assert!(text.contains("NO"), "{text}");
    }
}

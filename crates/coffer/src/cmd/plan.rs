//! `coffer plan`: the Secrets Management Plan from live state
//! (`sys/coffer/plan`) as Markdown, self-contained HTML or JSON, and
//! `coffer plan approve --as security|platform`, the sign-off.
//!
//! Deterministic: the same state gives the same bytes but for the
//! `Generated at` line, so the plan can live in git and be diffed.

use std::path::PathBuf;

use anyhow::Context as _;
use reqwest::Method;
use serde_json::{json, Value};

use super::generic::call;
use crate::client::ConnectArgs;

/// Arguments of `coffer plan`.
#[derive(clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  \
    coffer plan -o plan.md\n  \
    coffer plan --format html -o plan.html\n  \
    coffer plan approve --as security --comment \"reviewed with the platform team\"\n\n\
    A token signs as a role when it holds one of the policies the org policy maps\n\
    the role to ([approvals.roles.<role>] policies = [...]); root cannot sign.\n\
    A changed plan (another sha256) needs new approvals."
)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    connect: ConnectArgs,
    /// md, html or json.
    #[arg(long, default_value = "md")]
    format: String,
    /// Write to FILE instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Sign the current plan as a role.
    Approve {
        /// security or platform.
        #[arg(long = "as", value_name = "ROLE")]
        role: String,
        /// A comment recorded with the approval.
        #[arg(long)]
        comment: Option<String>,
        /// Refuse unless the current plan has this sha256 (the one you reviewed).
        #[arg(long, value_name = "HEX")]
        sha256: Option<String>,
        /// Output: text or json.
        #[arg(long, default_value = "text")]
        format: String,
    },
}

/// Runs the command.
pub fn run(a: Args) -> anyhow::Result<i32> {
    let client = a.connect.client()?;
    if let Some(Action::Approve {
        role,
        comment,
        sha256,
        format,
    }) = a.action
    {
        let mut body = json!({"role": role, "comment": comment.unwrap_or_default()});
        if let Some(h) = sha256 {
            body["plan_sha256"] = json!(h.trim_start_matches("sha256:"));
        }
        let answer = call(
            &client,
            Method::POST,
            "sys/coffer/plan/approve",
            Some(&body),
            "approving the plan",
        )?
        .unwrap_or(Value::Null);
        let d = &answer["data"];
        if format == "json" {
            print!("{}", crate::output::json(d));
        } else {
            println!(
                "Approved plan sha256:{} as {} ({}); recorded in the audit trail.",
                d["plan_sha256"].as_str().unwrap_or(""),
                d["role"].as_str().unwrap_or(""),
                d["display_name"].as_str().unwrap_or("")
            );
        }
        return Ok(0);
    }
    let render: fn(&Value) -> String = match a.format.as_str() {
        "md" | "markdown" => markdown,
        "html" => html,
        "json" => |p| crate::output::json(p),
        other => {
            eprintln!("--format: {other:?} is not one of md, html, json");
            return Ok(1);
        }
    };
    let answer = call(
        &client,
        Method::GET,
        "sys/coffer/plan",
        None,
        "reading the plan",
    )?
    .unwrap_or(Value::Null);
    let text = render(&answer["data"]);
    match &a.output {
        Some(p) => std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?,
        None => print!("{text}"),
    }
    Ok(0)
}

fn s(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Null => "-".into(),
        Value::Array(a) => a.iter().map(s).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

fn cell(v: &Value) -> String {
    let t = s(v);
    let t = if t.is_empty() { "-".into() } else { t };
    t.replace('|', "\\|").replace('\n', " ")
}

fn arr(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

/// A Markdown table.
fn table(out: &mut String, headers: &[&str], rows: Vec<Vec<String>>) {
    if rows.is_empty() {
        out.push_str("_None._\n\n");
        return;
    }
    out.push_str(&format!("| {} |\n", headers.join(" | ")));
    out.push_str(&format!("|{}\n", " --- |".repeat(headers.len())));
    for r in rows {
        out.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    out.push('\n');
}

/// The plan as Markdown.
pub fn markdown(p: &Value) -> String {
    let mut o = String::new();
    let org = p["purpose"]["organisation"].as_str().unwrap_or("");
    o.push_str(&format!(
        "# Secrets Management Plan{}\n\n",
        if org.is_empty() {
            String::new()
        } else {
            format!(": {org}")
        }
    ));
    o.push_str(&format!("Generated at: {}\n\n", s(&p["generated_at"])));
    o.push_str(&format!(
        "Plan sha256: `{}`\n\n",
        s(&p["sign_off"]["plan_sha256"])
    ));

    o.push_str("## 1. Purpose and scope\n\n");
    o.push_str(&format!("{}\n\n", s(&p["purpose"]["scope"])));
    o.push_str("The procedure:\n\n");
    for (i, step) in arr(&p["purpose"]["procedure"]).iter().enumerate() {
        o.push_str(&format!("{}. {}\n", i + 1, s(step)));
    }
    let pol = &p["purpose"]["org_policy"];
    o.push_str(&format!(
        "\nOrg secrets policy: {}\n\n",
        if pol.is_null() {
            "none applied (defaults evaluated)".to_string()
        } else {
            format!(
                "version {} (sha256 `{}`), applied {} by {}",
                s(&pol["version"]),
                s(&pol["sha256"]),
                s(&pol["applied_at"]),
                s(&pol["applied_by"])
            )
        }
    ));

    o.push_str("## 2. Owners and roles\n\n");
    o.push_str(&format!(
        "Secret owners: {}\n\n",
        cell(&p["roles"]["owners"])
    ));
    let approvers = p["roles"]["approvers"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    table(
        &mut o,
        &["Role", "Policies", "Display names", "Required"],
        approvers
            .iter()
            .map(|(k, v)| {
                vec![
                    k.clone(),
                    cell(&v["policies"]),
                    cell(&v["display_names"]),
                    if arr(&p["roles"]["required_approvals"]).contains(&json!(k)) {
                        "yes".into()
                    } else {
                        "no".into()
                    },
                ]
            })
            .collect(),
    );

    o.push_str("## 3. Secret inventory\n\n");
    let inv = &p["inventory"];
    o.push_str(&format!("{} secrets.\n\n", s(&inv["count"])));
    for (title, key) in [
        ("By type", "by_type"),
        ("By owner", "by_owner"),
        ("By origin", "by_origin"),
    ] {
        let m = inv[key].as_object().cloned().unwrap_or_default();
        let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        o.push_str(&format!(
            "- {title}: {}\n",
            if parts.is_empty() {
                "-".into()
            } else {
                parts.join(", ")
            }
        ));
    }
    o.push('\n');
    table(
        &mut o,
        &["Secret", "Type", "Owner", "Origin", "Vendor"],
        arr(&inv["secrets"])
            .iter()
            .map(|x| {
                vec![
                    format!("`{}`", s(&x["secret"])),
                    cell(&x["type"]),
                    cell(&x["owner"]),
                    cell(&x["origin"]),
                    cell(&x["vendor"]),
                ]
            })
            .collect(),
    );
    o.push_str("Third-party secrets (the link to the third-party secrets procedure):\n\n");
    table(
        &mut o,
        &["Secret", "Vendor", "Owner"],
        arr(&inv["third_party"])
            .iter()
            .map(|x| {
                vec![
                    format!("`{}`", s(&x["secret"])),
                    cell(&x["vendor"]),
                    cell(&x["owner"]),
                ]
            })
            .collect(),
    );

    o.push_str("## 4. Storage\n\n");
    let st = &p["storage"];
    o.push_str(&format!(
        "- Backend: {}{}\n- Listener TLS: {}\n- Seal: {} with {} shares, threshold {}. {}\n- Key term {} installed {} (policy: rotate within {})\n- Automatic key rotation after {} encryptions ({}% used)\n- Backups: {}\n\n",
        s(&st["backend"]),
        if st["dev_mode"] == json!(true) { " (dev server)" } else { "" },
        if st["listener_tls"] == json!(true) { "on" } else { "off" },
        s(&st["seal"]["type"]), s(&st["seal"]["shares"]), s(&st["seal"]["threshold"]), s(&st["seal"]["trade_off"]),
        s(&st["key_term"]["term"]), s(&st["key_term"]["installed_at"]), s(&st["key_term"]["policy_max_age"]),
        s(&st["rotation_threshold"]), s(&st["encryptions_percent_of_threshold"]),
        s(&st["backups"]),
    ));

    o.push_str("## 5. Access\n\n");
    let ac = &p["access"];
    o.push_str("Auth methods:\n\n");
    table(
        &mut o,
        &["Path", "Type", "Description"],
        arr(&ac["auth_methods"])
            .iter()
            .map(|m| vec![cell(&m["path"]), cell(&m["type"]), cell(&m["description"])])
            .collect(),
    );
    o.push_str("Identities:\n\n");
    table(
        &mut o,
        &["Identity", "Kind", "Policies"],
        arr(&ac["identities"])
            .iter()
            .map(|i| {
                vec![
                    format!("`{}`", s(&i["id"])),
                    cell(&i["kind"]),
                    cell(&i["policies"]),
                ]
            })
            .collect(),
    );
    o.push_str("Effective access matrix (computed from the ACLs; root excluded):\n\n");
    table(
        &mut o,
        &["Secret", "Read", "Write", "Rotate"],
        arr(&ac["matrix"])
            .iter()
            .map(|m| {
                vec![
                    format!("`{}`", s(&m["secret"])),
                    cell(&m["read"]),
                    cell(&m["write"]),
                    cell(&m["rotate"]),
                ]
            })
            .collect(),
    );
    o.push_str("Broad grants (read on `*` or a whole mount):\n\n");
    table(
        &mut o,
        &["Policy", "Pattern", "Mounts", "Held by", "Exempt"],
        arr(&ac["broad_grants"])
            .iter()
            .map(|g| {
                vec![
                    cell(&g["policy"]),
                    format!("`{}`", s(&g["pattern"])),
                    cell(&g["mounts"]),
                    cell(&g["holders"]),
                    s(&g["exempt"]),
                ]
            })
            .collect(),
    );
    o.push_str(&format!(
        "Access review cadence: {}. Last review applied: {}.\n\n",
        s(&ac["review_cadence"]),
        if ac["last_review"].is_null() {
            "never".into()
        } else {
            s(&ac["last_review"]["applied_at"])
        }
    ));

    o.push_str("## 6. Runtime delivery\n\n");
    let mut rows = Vec::new();
    for d in arr(&p["runtime_delivery"]) {
        for r in arr(&d["readers"]) {
            rows.push(vec![
                format!("`{}`", s(&d["secret"])),
                cell(&r["display_name"]),
                cell(&r["identities"]),
                cell(&r["last_read"]),
                cell(&r["reads"]),
            ]);
        }
    }
    table(
        &mut o,
        &["Secret", "Read by", "Identity", "Last read", "Reads"],
        rows,
    );

    o.push_str("## 7. Rotation\n\n");
    let rot = &p["rotation"];
    let ages = rot["policy_max_age"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let parts: Vec<String> = ages.iter().map(|(k, v)| format!("{k} {}", s(v))).collect();
    o.push_str(&format!(
        "Policy maximum age: {}; certificates {} before NotAfter.\n\n",
        parts.join(", "),
        s(&rot["certificate_lead_time"])
    ));
    table(
        &mut o,
        &[
            "Secret",
            "Type",
            "Cadence",
            "Max",
            "Within policy",
            "Rotator",
            "Last rotated",
            "Last result",
            "Next due",
            "Status",
        ],
        arr(&rot["secrets"])
            .iter()
            .map(|r| {
                vec![
                    format!("`{}`", s(&r["secret"])),
                    cell(&r["type"]),
                    cell(&r["cadence"]),
                    cell(&r["policy_max_age"]),
                    s(&r["within_policy"]),
                    cell(&r["rotator"]),
                    cell(&r["last_rotated"]),
                    cell(&r["last_result"]),
                    cell(&r["next_due"]),
                    cell(&r["status"]),
                ]
            })
            .collect(),
    );
    o.push_str("Calendar of next due dates:\n\n");
    for c in arr(&rot["calendar"]) {
        o.push_str(&format!("- {}: {}\n", s(&c["date"]), s(&c["secrets"])));
    }
    if arr(&rot["calendar"]).is_empty() {
        o.push_str("_None._\n");
    }
    o.push_str(&format!(
        "\nOverdue: {}. Failing: {}.\n\n",
        if arr(&rot["overdue"]).is_empty() {
            "none".into()
        } else {
            s(&rot["overdue"])
        },
        if arr(&rot["failing"]).is_empty() {
            "none".into()
        } else {
            s(&rot["failing"])
        }
    ));

    o.push_str("## 8. Revocation\n\n");
    let rv = &p["revocation"];
    o.push_str(&format!(
        "- Maximum token TTL (policy): {}\n- Token trees: {}\n- Dynamic credential leases: {}\n- Emergency procedure: {}\n- Drill: {} (at least every {})\n- Last drill: {}\n- Last used: {}\n\n",
        s(&rv["token_max_ttl"]), s(&rv["token_trees"]), s(&rv["leases"]), s(&rv["emergency_procedure"]), s(&rv["drill"]), s(&rv["drill_max_age"]),
        if rv["last_drill"].is_null() { "never".into() } else { format!("{} on `{}` by {}", s(&rv["last_drill"]["at"]), s(&rv["last_drill"]["path"]), s(&rv["last_drill"]["by"])) },
        if rv["last_used"].is_null() { "never".into() } else { format!("{} on `{}` by {}", s(&rv["last_used"]["at"]), s(&rv["last_used"]["path"]), s(&rv["last_used"]["by"])) },
    ));
    table(
        &mut o,
        &["Mount", "Type", "Default lease TTL", "Max lease TTL"],
        arr(&rv["mount_ttls"])
            .iter()
            .map(|m| {
                vec![
                    cell(&m["path"]),
                    cell(&m["type"]),
                    cell(&m["default_lease_ttl"]),
                    cell(&m["max_lease_ttl"]),
                ]
            })
            .collect(),
    );

    o.push_str("## 9. Security logging\n\n");
    let sl = &p["security_logging"];
    table(
        &mut o,
        &["Device", "Type", "HMAC accessor", "Raw values", "Chain"],
        arr(&sl["devices"])
            .iter()
            .map(|d| {
                vec![
                    cell(&d["path"]),
                    cell(&d["type"]),
                    s(&d["hmac_accessor"]),
                    s(&d["log_raw"]),
                    cell(&d["verification"]),
                ]
            })
            .collect(),
    );
    o.push_str(&format!(
        "- Logged: {}\n- HMAC: {}\n- Chain: {}\n\n",
        s(&sl["logged"]),
        s(&sl["hmac"]),
        s(&sl["chain"])
    ));

    o.push_str("## 10. Onboarded systems\n\n");
    table(
        &mut o,
        &["System", "Source", "Identity", "Secrets"],
        arr(&p["onboarded_systems"])
            .iter()
            .map(|a| {
                vec![
                    cell(&a["name"]),
                    cell(&a["source"]),
                    cell(&a["identity"]),
                    cell(&a["secrets"]),
                ]
            })
            .collect(),
    );

    o.push_str("## 11. Links and compliance mapping\n\n");
    table(
        &mut o,
        &["Framework", "Item", "Requirement", "Evidence (section)"],
        arr(&p["compliance"])
            .iter()
            .map(|c| {
                vec![
                    cell(&c["framework"]),
                    cell(&c["item"]),
                    cell(&c["requirement"]),
                    cell(&c["evidence"]),
                ]
            })
            .collect(),
    );

    o.push_str("## 12. Exceptions\n\n");
    for e in arr(&p["exceptions"]) {
        o.push_str(&format!("- {}\n", s(&e)));
    }
    if arr(&p["exceptions"]).is_empty() {
        o.push_str("_None._\n");
    }
    o.push('\n');

    o.push_str("## 13. Sign-off\n\n");
    let so = &p["sign_off"];
    o.push_str(&format!(
        "Required: {}. {}.\n\n",
        s(&so["required"]),
        s(&so["role_mapping"])
    ));
    table(
        &mut o,
        &["Role", "By", "At", "Comment"],
        arr(&so["approvals"])
            .iter()
            .map(|a| {
                vec![
                    cell(&a["role"]),
                    cell(&a["display_name"]),
                    cell(&a["at"]),
                    cell(&a["comment"]),
                ]
            })
            .collect(),
    );
    o
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The plan as one self-contained, printable HTML page: the Markdown
/// rendered by a small converter (headings, lists, tables, code), and an
/// inline SVG chart of the rotation calendar. No external assets.
pub fn html(p: &Value) -> String {
    let md = markdown(p);
    let mut body = String::new();
    let mut in_table = false;
    let mut in_list = false;
    for line in md.lines() {
        let is_row = line.starts_with('|');
        if in_table && !is_row {
            body.push_str("</table>\n");
            in_table = false;
        }
        if in_list && !line.starts_with("- ") {
            body.push_str("</ul>\n");
            in_list = false;
        }
        if let Some(h) = line.strip_prefix("## ") {
            body.push_str(&format!("<h2>{}</h2>\n", inline(h)));
            if h.starts_with("7.") {
                body.push_str(&calendar_svg(p));
            }
        } else if let Some(h) = line.strip_prefix("# ") {
            body.push_str(&format!("<h1>{}</h1>\n", inline(h)));
        } else if is_row {
            if line.starts_with("| ---")
                || line.starts_with("| --- ")
                || line.trim_start_matches('|').trim_start().starts_with("---")
            {
                continue;
            }
            let cells: Vec<String> = split_row(line);
            if !in_table {
                body.push_str("<table>\n<tr>");
                for c in &cells {
                    body.push_str(&format!("<th>{}</th>", inline(c)));
                }
                body.push_str("</tr>\n");
                in_table = true;
            } else {
                body.push_str("<tr>");
                for c in &cells {
                    body.push_str(&format!("<td>{}</td>", inline(c)));
                }
                body.push_str("</tr>\n");
            }
        } else if let Some(item) = line.strip_prefix("- ") {
            if !in_list {
                body.push_str("<ul>\n");
                in_list = true;
            }
            body.push_str(&format!("<li>{}</li>\n", inline(item)));
        } else if !line.trim().is_empty() {
            body.push_str(&format!("<p>{}</p>\n", inline(line)));
        }
    }
    if in_table {
        body.push_str("</table>\n");
    }
    if in_list {
        body.push_str("</ul>\n");
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Secrets Management Plan</title>\n<style>\n\
body{{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;color:#111;line-height:1.4}}\n\
table{{border-collapse:collapse;margin:0.5em 0 1em}}th,td{{border:1px solid #999;padding:0.2em 0.5em;text-align:left;vertical-align:top}}\n\
th{{background:#eee}}code{{font-family:monospace;font-size:0.95em}}h2{{border-bottom:1px solid #ccc;page-break-after:avoid}}\n\
@media print{{body{{margin:0;max-width:none}}table{{page-break-inside:avoid}}}}\n</style>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )
}

fn split_row(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut cells = Vec::new();
    let mut cur = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek() == Some(&'|') {
            cur.push('|');
            chars.next();
        } else if c == '|' {
            cells.push(cur.trim().to_string());
            cur.clear();
        } else {
            cur.push(c);
        }
    }
    cells.push(cur.trim().to_string());
    cells
}

/// Escapes text and renders `code` spans and _emphasis_ lines.
fn inline(t: &str) -> String {
    let mut out = String::new();
    for (i, part) in t.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str(&format!("<code>{}</code>", esc(part)));
        } else {
            out.push_str(&esc(part));
        }
    }
    if let Some(x) = out.strip_prefix('_').and_then(|x| x.strip_suffix('_')) {
        return format!("<em>{x}</em>");
    }
    out
}

/// The rotation calendar as an inline SVG: one column per due date, its
/// height the number of secrets due that day, from the first due date to
/// the last (state only, so the chart is as deterministic as the plan).
fn calendar_svg(p: &Value) -> String {
    let days: Vec<(String, usize, String)> = arr(&p["rotation"]["calendar"])
        .iter()
        .map(|c| (s(&c["date"]), arr(&c["secrets"]).len(), s(&c["secrets"])))
        .collect();
    let parse = day_number;
    let (Some(first), Some(last)) = (
        days.first().and_then(|d| parse(&d.0)),
        days.last().and_then(|d| parse(&d.0)),
    ) else {
        return "<p><em>No rotation is scheduled.</em></p>\n".into();
    };
    let span = (last - first).max(1) as f64;
    let max = days.iter().map(|d| d.1).max().unwrap_or(1).max(1) as f64;
    let (w, h, pad) = (800.0, 160.0, 30.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{}\" viewBox=\"0 0 {w} {}\" role=\"img\" aria-label=\"Rotation calendar\">\n<title>Rotation calendar: secrets due per day</title>\n<line x1=\"{pad}\" y1=\"{h}\" x2=\"{}\" y2=\"{h}\" stroke=\"#333\"/>\n",
        h + 40.0, h + 40.0, w - pad
    );
    for (d, n, names) in &days {
        let Some(date) = parse(d) else { continue };
        let x = pad + (date - first) as f64 / span * (w - 2.0 * pad);
        let bh = (*n as f64 / max) * (h - pad);
        svg.push_str(&format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"6\" height=\"{bh:.1}\" fill=\"#2a6fdb\"><title>{}: {}</title></rect>\n",
            x - 3.0,
            h - bh,
            esc(d),
            esc(names)
        ));
    }
    svg.push_str(&format!(
        "<text x=\"{pad}\" y=\"{}\" font-size=\"12\">{}</text>\n<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"end\">{}</text>\n</svg>\n",
        h + 20.0,
        esc(&days[0].0),
        w - pad,
        h + 20.0,
        esc(&days[days.len() - 1].0)
    ));
    svg
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (proleptic Gregorian).
fn day_number(d: &str) -> Option<i64> {
    let mut it = d.split('-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let day: i64 = it.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_numbers_and_tables() {
        assert_eq!(day_number("1970-01-01"), Some(0));
        assert_eq!(
            day_number("2026-03-01")
                .zip(day_number("2026-02-28"))
                .map(|(a, b)| a - b),
            Some(1)
        );
        assert_eq!(split_row("| a | b\\|c |"), ["a", "b|c"]);
        let svg = calendar_svg(&json!({"rotation": {"calendar": [
            {"date": "2026-01-01", "secrets": ["secret/a"]},
            {"date": "2026-02-01", "secrets": ["secret/b", "secret/c"]}]}}));
        assert!(
            svg.starts_with("<svg") && svg.matches("<rect").count() == 2,
            "{svg}"
        );
    }
}

//! The plan (`sys/coffer/plan`) and check (`sys/coffer/check`) pages.

use coffer_core::Operation;
use maud::html;
use serde_json::{Map, Value};

use crate::call::{Ctx, Page};
use crate::layout::{empty, page, text};

/// `GET /ui/plan`: the secrets management plan, section by section.
pub(crate) async fn plan(ctx: Ctx) -> Page {
    let p = ctx
        .call(Operation::Read, "sys/coffer/plan", Map::new())
        .await?;
    let inv = &p["inventory"];
    let rot = &p["rotation"];
    let count = |v: &Value| -> Vec<(String, String)> {
        v.as_object()
            .map(|o| o.iter().map(|(k, v)| (k.clone(), text(v))).collect())
            .unwrap_or_default()
    };
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        if x.is_string() {
                            text(x)
                        } else {
                            text(&x["secret"]).to_string() + &text(&x["path"])
                        }
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let content = html! {
        p { (text(&p["purpose"]["scope"])) }
        div.cards {
            section.card { h2 { "Inventory" } p { (text(&inv["count"])) " managed secrets." }
                @for (label, key) in [("By type", "by_type"), ("By owner", "by_owner"), ("By origin", "by_origin")] {
                    h3 { (label) } @let c = count(&inv[key]);
                    @if c.is_empty() { (empty("none")) } @else { ul { @for (k, v) in &c { li { (k) ": " (v) } } } }
                }
            }
            section.card { h2 { "Storage" }
                p { "Backend " strong { (text(&p["storage"]["backend"])) } @if p["storage"]["dev_mode"] == true { " (dev server)" } }
                p { "Listener TLS: " (if p["storage"]["listener_tls"] == true { "on" } else { "off" }) }
                p { "Seal " (text(&p["storage"]["seal"]["type"])) ", " (text(&p["storage"]["seal"]["threshold"])) " of " (text(&p["storage"]["seal"]["shares"])) }
            }
            section.card { h2 { "Rotation" }
                h3 { "Overdue" } @let o = names(&rot["overdue"]); @if o.is_empty() { (empty("none")) } @else { ul { @for n in &o { li { code { (n) } } } } }
                h3 { "Failing" } @let f = names(&rot["failing"]); @if f.is_empty() { (empty("none")) } @else { ul { @for n in &f { li { code { (n) } } } } }
            }
            section.card { h2 { "Access" }
                p { (p["access"]["auth_methods"].as_array().map(Vec::len).unwrap_or(0)) " auth methods, "
                    (p["access"]["identities"].as_array().map(Vec::len).unwrap_or(0)) " identities." }
                p { a href="/ui/access/matrix" { "Open the access matrix" } }
            }
        }
        p { a href="/ui/check" { "Check the plan's criteria and blockers" } }
    };
    Ok(page(Some(&ctx.chrome()), &text(&p["title"]), content))
}

/// `GET /ui/check`: whether the plan's criteria pass, with the blockers.
pub(crate) async fn check(ctx: Ctx) -> Page {
    let c = ctx
        .call(Operation::Read, "sys/coffer/check", Map::new())
        .await?;
    let criteria = c["criteria"].as_array().cloned().unwrap_or_default();
    let content = html! {
        p role="status" { "Result: " strong class=(if c["result"] == "passed" || c["result"] == "pass" { "status-ok" } else { "status-failing" }) { (text(&c["result"])) }
          ", " (text(&c["blockers"])) " blockers." }
        @if criteria.is_empty() { (empty("No criterion was evaluated.")) }
        @for k in &criteria {
            section.card {
                h2 { (text(&k["title"])) " " @if k["passed"] == true { span.badge.status-ok { "passed" } } @else { span.badge.status-failing { "blocked" } } }
                @let ev = k["evidence"].as_array().cloned().unwrap_or_default();
                @if !ev.is_empty() { ul { @for e in &ev { li { (text(e)) } } } }
                @let bl = k["blockers"].as_array().cloned().unwrap_or_default();
                @if !bl.is_empty() {
                    h3 { "Blockers" }
                    div.scroll { table.stack {
                        thead { tr { th { "Item" } th { "Problem" } th { "Remediation" } } }
                        tbody { @for b in &bl { tr {
                            td data-label="Item" { code { (text(&b["item"])) } }
                            td data-label="Problem" { (text(&b["problem"])) }
                            td data-label="Remediation" { (text(&b["remediation"])) }
                        } } }
                    } }
                }
            }
        }
    };
    Ok(page(Some(&ctx.chrome()), "Check", content))
}

//! The status page: seal state, storage, HA nodes and leader, audit devices.

use axum::response::{IntoResponse, Redirect, Response};
use coffer_core::Operation;
use maud::{html, Markup};
use serde_json::{Map, Value};

use crate::call::{Ctx, Page, UiError};
use crate::layout::{empty, page, text};

/// `GET /ui/`: the status page, or the login page without a session.
pub(crate) async fn home() -> Response {
    Redirect::to("/ui/status").into_response()
}

/// One section's data, or why the token may not see it (in words).
async fn section(ctx: &Ctx, path: &str) -> Result<Value, String> {
    match ctx.call(Operation::Read, path, Map::new()).await {
        Ok(v) => Ok(v),
        Err(UiError::Page(_, _, msgs)) => Err(msgs.join(" ")),
        Err(UiError::Login(_)) => Err("Your session has ended.".into()),
    }
}

fn refused(msg: &str) -> Markup {
    html! { p.error role="alert" { (msg) } }
}

/// `GET /ui/status`.
pub(crate) async fn page_handler(ctx: Ctx) -> Page {
    let seal = section(&ctx, "sys/seal-status").await;
    if !ctx.token_alive().await {
        ctx.ui.sessions.drop_session(&ctx.auth.id);
        return Err(UiError::Login("revoked"));
    }
    let ha = section(&ctx, "sys/ha-status").await;
    let leader = section(&ctx, "sys/leader").await;
    let audit = section(&ctx, "sys/audit").await;
    // Device health (the hash chain verified) is reported by the plan.
    let health: std::collections::BTreeMap<String, (Option<bool>, String)> = match ctx
        .try_call(Operation::Read, "sys/coffer/plan", Map::new())
        .await
    {
        Ok(r) => crate::call::body(&r)["security_logging"]["devices"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|d| {
                (
                    text(&d["path"]),
                    (d["verified"].as_bool(), text(&d["verification"])),
                )
            })
            .collect(),
        Err(_) => Default::default(),
    };
    let content = html! {
        div.cards {
            section.card aria-labelledby="seal-h" {
                h2 id="seal-h" { "Seal" }
                @match &seal {
                    Ok(s) => {
                        p { @if s["sealed"].as_bool() == Some(false) { strong.status-ok { "Unsealed" } } @else { strong.status-failing { "Sealed" } } }
                        p { "Seal type " (text(&s["type"])) ", threshold " (text(&s["t"])) " of " (text(&s["n"])) " key shares." }
                        p { "Version " (text(&s["version"])) ", cluster " code { (text(&s["cluster_name"])) } }
                    }
                    Err(m) => (refused(m)),
                }
            }
            section.card aria-labelledby="storage-h" {
                h2 id="storage-h" { "Storage" }
                @match &seal {
                    Ok(s) => p { "Backend: " strong { (text(&s["storage_type"])) } },
                    Err(m) => (refused(m)),
                }
            }
            section.card aria-labelledby="ha-h" {
                h2 id="ha-h" { "Nodes and leader" }
                @match &leader {
                    Ok(l) => p {
                        "HA " @if l["ha_enabled"].as_bool() == Some(true) { "enabled" } @else { "disabled (a single node)" }
                        @let addr = text(&l["leader_address"]);
                        @if !addr.is_empty() { ". Leader: " code { (addr) } }
                    },
                    Err(m) => (refused(m)),
                }
                @match &ha {
                    Ok(h) => {
                        @let nodes = h["nodes"].as_array().cloned().unwrap_or_default();
                        @if nodes.is_empty() { (empty("No node has reported yet.")) } @else {
                            ul { @for n in &nodes {
                                li { code { (text(&n["hostname"])) } " " (text(&n["api_address"]))
                                     @if n["active_node"].as_bool() == Some(true) { " " span.badge { "active" } }
                                     " version " (text(&n["version"])) }
                            } }
                        }
                    }
                    Err(m) => (refused(m)),
                }
            }
            section.card aria-labelledby="audit-h" {
                h2 id="audit-h" { "Audit devices" }
                @match &audit {
                    Ok(a) => {
                        @let table = if a["data"].is_object() { &a["data"] } else { a };
                        @let devices: Vec<(String, Value)> = table.as_object().map(|m| m.iter().filter(|(_, v)| v["type"].is_string()).map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
                        @if devices.is_empty() {
                            p.error role="alert" { "No audit device is enabled: reads and writes are not recorded anywhere." }
                        } @else {
                            ul { @for (path, d) in &devices {
                                li { code { (path) } " " (text(&d["type"])) " "
                                     @if d["type"] == "file" { span.muted { (text(&d["options"]["file_path"])) } }
                                     " " span.badge.status-ok { "enabled" }
                                     @match health.get(path.as_str()).or_else(|| health.get(path.trim_end_matches('/'))) {
                                         Some((Some(true), v)) => { br; span.status-ok { "Healthy: " (v) } }
                                         Some((_, v)) => { br; span.status-failing { "Not verified: " (v) } }
                                         None => { br; span.muted { "Health unknown: your token may not read the plan, which reports it." } }
                                     } }
                            } }
                        }
                    }
                    Err(m) => (refused(m)),
                }
            }
        }
    };
    Ok(page(Some(&ctx.chrome()), "Status", content))
}

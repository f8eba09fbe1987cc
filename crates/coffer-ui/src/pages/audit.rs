//! Audit pages: who read a secret, secrets nobody read, recent events for a
//! path (from the server's access records, the KV versions and the
//! lifecycle history).

use std::collections::BTreeMap;

use axum::extract::Query;
use coffer_core::Operation;
use maud::html;
use serde_json::Map;

use crate::call::{enc, Ctx, Page};
use crate::layout::{empty, page, text, when};

type Q = Query<BTreeMap<String, String>>;

/// `GET /ui/audit`: the audit pages' forms.
pub(crate) async fn index(ctx: Ctx) -> Page {
    let content = html! {
        div.cards {
            form.card method="get" action="/ui/audit/who-read" {
                h2 { "Who read a secret" }
                label for="wr-path" { "Secret path (for example secret/data/app/db)" }
                input type="text" id="wr-path" name="path" required;
                label for="wr-since" { "Since (a duration such as 30d, or a date; empty: all records)" }
                input type="text" id="wr-since" name="since";
                div.actions { button type="submit" { "Show readers" } }
            }
            form.card method="get" action="/ui/audit/unused" {
                h2 { "Unused secrets" }
                label for="un-since" { "Not read since (for example 90d)" }
                input type="text" id="un-since" name="since" value="90d" required;
                div.actions { button type="submit" { "Show unused secrets" } }
            }
            form.card method="get" action="/ui/audit/events" {
                h2 { "Recent events for a secret" }
                label for="ev-mount" { "KV mount" }
                input type="text" id="ev-mount" name="mount" value="secret" required;
                label for="ev-path" { "Path inside the mount" }
                input type="text" id="ev-path" name="path" required;
                div.actions { button type="submit" { "Show events" } }
            }
        }
    };
    Ok(page(Some(&ctx.chrome()), "Audit", content))
}

/// `GET /ui/audit/who-read?path=&since=`.
pub(crate) async fn who_read(ctx: Ctx, Query(q): Q) -> Page {
    let path = q
        .get("path")
        .map(|p| p.trim().trim_matches('/').to_owned())
        .unwrap_or_default();
    if path.is_empty() {
        return index(ctx).await;
    }
    let mut data = Map::new();
    if let Some(s) = q.get("since").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        data.insert("since".into(), s.into());
    }
    let r = ctx
        .call(Operation::Read, &format!("sys/coffer/access/{path}"), data)
        .await?;
    let readers = r["readers"].as_array().cloned().unwrap_or_default();
    let content = html! {
        p { code { (path) } ": " (text(&r["reads"])) " reads recorded; last " (when(&r["last_read"])) "." }
        @if readers.is_empty() { (empty("Nobody has read this secret in the recorded period.")) } @else {
            div.scroll { table.stack {
                thead { tr { th { "Reader" } th { "Policies" } th { "Accessor" } th { "Reads" } th { "Last read" } } }
                tbody { @for x in &readers { tr {
                    td data-label="Reader" { (text(&x["display_name"])) }
                    td data-label="Policies" { (x["policies"].as_array().map(|a| a.iter().map(text).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                    td data-label="Accessor" { code { (text(&x["accessor"])) } }
                    td data-label="Reads" { (text(&x["reads"])) }
                    td data-label="Last read" { (when(&x["last_read"])) }
                } } }
            } }
        }
    };
    Ok(page(Some(&ctx.chrome()), "Who read it", content))
}

/// `GET /ui/audit/unused?since=`.
pub(crate) async fn unused(ctx: Ctx, Query(q): Q) -> Page {
    let since = q
        .get("since")
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "90d".into());
    let mut data = Map::new();
    data.insert("since".into(), since.clone().into());
    let r = ctx
        .call(Operation::Read, "sys/coffer/access-unused", data)
        .await?;
    let secrets = r["secrets"].as_array().cloned().unwrap_or_default();
    let content = html! {
        p { "Secrets nobody read since " (when(&r["since"])) " (" (since) ")." }
        @if secrets.is_empty() { (empty("Every managed secret was read in this period.")) } @else {
            div.scroll { table.stack {
                thead { tr { th { "Secret" } th { "Last read" } } }
                tbody { @for s in &secrets { tr {
                    @let p = if s.is_string() { text(s) } else { text(&s["path"]) };
                    td data-label="Secret" { code { (p) } }
                    td data-label="Last read" { @let l = when(&s["last_read"]); @if l.is_empty() { "never" } @else { (l) } }
                } } }
            } }
        }
    };
    Ok(page(Some(&ctx.chrome()), "Unused secrets", content))
}

/// `GET /ui/audit/events?mount=&path=`: writes (KV versions), reads (access
/// records) and rotations (lifecycle history) of one secret, newest first.
pub(crate) async fn events(ctx: Ctx, Query(q): Q) -> Page {
    let mount = q
        .get("mount")
        .map(|s| s.trim().trim_matches('/').to_owned())
        .unwrap_or_default();
    let path = q
        .get("path")
        .map(|s| s.trim().trim_matches('/').to_owned())
        .unwrap_or_default();
    if mount.is_empty() || path.is_empty() {
        return index(ctx).await;
    }
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    match ctx
        .call_opt(
            Operation::Read,
            &format!("{mount}/metadata/{path}"),
            Map::new(),
        )
        .await
    {
        Ok(Some(meta)) => {
            if let Some(vs) = meta["versions"].as_object() {
                for (n, v) in vs {
                    rows.push((
                        text(&v["created_time"]),
                        "written".into(),
                        format!("version {n} created"),
                    ));
                    let d = text(&v["deletion_time"]);
                    if !d.is_empty() {
                        rows.push((d, "deleted".into(), format!("version {n} deleted")));
                    }
                }
            }
        }
        Ok(None) => notes.push(format!("No secret exists at {mount}/{path}.")),
        Err(_) => notes.push("Your token may not read this secret's versions.".into()),
    }
    match ctx
        .call(
            Operation::Read,
            &format!("sys/coffer/access/{mount}/data/{path}"),
            Map::new(),
        )
        .await
    {
        Ok(r) => {
            for x in r["readers"].as_array().cloned().unwrap_or_default() {
                rows.push((
                    text(&x["last_read"]),
                    "read".into(),
                    format!(
                        "last of {} reads by {} ({})",
                        text(&x["reads"]),
                        text(&x["display_name"]),
                        text(&x["accessor"])
                    ),
                ));
            }
        }
        Err(_) => notes.push("Your token may not read who read this secret.".into()),
    }
    if let Ok(Some(lc)) = ctx
        .call_opt(
            Operation::Read,
            &format!("{mount}/lifecycle/{path}"),
            Map::new(),
        )
        .await
    {
        for h in lc["state"]["history"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            rows.push((
                text(&h["at"]),
                format!("rotation {}", text(&h["result"])),
                format!(
                    "{} → {} ({}): {}",
                    text(&h["old_version"]),
                    text(&h["new_version"]),
                    text(&h["rotator"]),
                    text(&h["reason"])
                ),
            ));
        }
    }
    rows.sort_by(|a, b| b.0.cmp(&a.0));
    let content = html! {
        p { a href=(crate::pages::kv::secret_href(&mount, &path)) { "Open the secret" } " · "
            a href=(format!("/ui/audit/who-read?path={}", enc(&format!("{mount}/data/{path}")))) { "Who read it" } }
        @for n in &notes { p.muted { (n) } }
        @if rows.is_empty() { (empty("No event is recorded for this secret.")) } @else {
            div.scroll { table.stack {
                thead { tr { th { "When" } th { "Event" } th { "Detail" } } }
                tbody { @for (t, e, d) in &rows { tr { td data-label="When" { (when(&serde_json::Value::String(t.clone()))) } td data-label="Event" { (e) } td data-label="Detail" { (d) } } } }
            } }
        }
    };
    Ok(page(
        Some(&ctx.chrome()),
        &format!("Events of {mount}/{path}"),
        content,
    ))
}

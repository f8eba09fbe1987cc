//! The lifecycle inventory (filters, 90-day timeline) and a secret's
//! rotation detail with "rotate now" and live step progress.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use coffer_core::Operation;
use maud::{html, Markup};
use parking_lot::Mutex;
use serde_json::{Map, Value};

use crate::call::{allows, body, enc, form, handle, request, Ctx, Page, UiError};
use crate::layout::{csrf_field, empty, page, page_with, text, when};
use crate::pages::kv::secret_href;
use crate::session::{random_id, Job};
use crate::timeline;

type Q = Query<BTreeMap<String, String>>;

/// The steps of a staged rotation, in order.
const STEPS: [&str; 4] = ["create", "set", "test", "finish"];

/// `GET /ui/inventory?owner=&type=&origin=&status=`.
pub(crate) async fn inventory(ctx: Ctx, Query(q): Q) -> Page {
    let pick = |k: &str| {
        q.get(k)
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let (owner, kind, origin, status) =
        (pick("owner"), pick("type"), pick("origin"), pick("status"));
    let mut params = Vec::new();
    for (k, v) in [("owner", &owner), ("type", &kind), ("origin", &origin)] {
        if let Some(v) = v {
            params.push((k, v.clone()));
        }
    }
    if let Some(s) = &status {
        if matches!(s.as_str(), "due" | "overdue" | "failing") {
            params.push((s.as_str(), "true".to_owned()));
        }
    }
    let data: Map<String, Value> = params
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
        .collect();
    let inv = ctx
        .call(Operation::Read, "sys/coffer/inventory", data)
        .await?;
    let secrets = inv["secrets"].as_array().cloned().unwrap_or_default();
    let now = chrono::Utc::now();
    let points: Vec<timeline::Point> = secrets
        .iter()
        .filter_map(|s| {
            let due = chrono::DateTime::parse_from_rfc3339(s["next_due"].as_str()?).ok()?;
            Some(timeline::Point {
                path: text(&s["path"]),
                due: due.with_timezone(&chrono::Utc),
                status: text(&s["status"]),
            })
        })
        .collect();
    let sel = |name: &str, label: &str, cur: &Option<String>, options: &[&str]| -> Markup {
        html! { div {
            label for=(name) { (label) }
            select id=(name) name=(name) {
                option value="" { "any" }
                @for o in options { option value=(o) selected[cur.as_deref() == Some(*o)] { (o) } }
            }
        } }
    };
    let content = html! {
        form.filters method="get" action="/ui/inventory" {
            div { label for="owner" { "Owner" } input type="text" id="owner" name="owner" value=(owner.clone().unwrap_or_default()); }
            (sel("type", "Type", &kind, &coffer_core::lifecycle::model::SECRET_TYPES))
            (sel("origin", "Origin", &origin, &["internal", "third_party", "imported"]))
            (sel("status", "Rotation", &status, &["due", "overdue", "failing"]))
            div { button type="submit" { "Filter" } }
        }
        h2 { "Rotation timeline" }
        (timeline::svg(&points, now))
        h2 { "Secrets (" (secrets.len()) ")" }
        @if secrets.is_empty() {
            (empty("No managed secret matches. Secrets appear here once they have a lifecycle record (owner, type, rotation)."))
        } @else {
            div.scroll { table.stack {
                thead { tr { th { "Secret" } th { "Owner" } th { "Type" } th { "Origin" } th { "Status" } th { "Next due" } th { "Last rotated" } } }
                tbody { @for s in &secrets {
                    @let path = text(&s["path"]);
                    @let (m, p) = path.split_once('/').unwrap_or((path.as_str(), ""));
                    tr {
                        td data-label="Secret" { a href=(format!("/ui/rotation?mount={}&path={}", enc(m), enc(p))) { (path) } }
                        td data-label="Owner" { (text(&s["owner"])) }
                        td data-label="Type" { (text(&s["secret_type"])) }
                        td data-label="Origin" { (text(&s["origin"])) }
                        td data-label="Status" { span class=(format!("status-{}", text(&s["status"]))) { (text(&s["status"])) }
                            @let e = text(&s["last_error"]); @if !e.is_empty() { br; span.muted { (e) } } }
                        td data-label="Next due" { (when(&s["next_due"])) }
                        td data-label="Last rotated" { (when(&s["last_rotated"])) }
                    }
                } }
            } }
        }
    };
    Ok(page(Some(&ctx.chrome()), "Inventory", content))
}

/// Which step is in which state: running at `running`, failed at `failed`,
/// or all done.
fn steps(running: Option<&str>, failed: Option<&str>, all_done: bool) -> Markup {
    let at = |s: Option<&str>| s.and_then(|s| STEPS.iter().position(|x| *x == s));
    let (run, fail) = (at(running), at(failed));
    html! {
        ol.steps aria-label="Rotation steps" {
            @for (i, s) in STEPS.iter().enumerate() {
                @let (class, word) = if all_done { ("done", "done") }
                    else if fail == Some(i) { ("failed", "failed") }
                    else if fail.is_some_and(|f| i < f) || run.is_some_and(|r| i < r) { ("done", "done") }
                    else if run == Some(i) { ("running", "running") }
                    else { ("pending", "pending") };
                li class=(class) data-step=(s) { (s) ": " (word) }
            }
        }
    }
}

/// `GET /ui/rotation?mount=&path=[&job=]`.
pub(crate) async fn detail(ctx: Ctx, Query(q): Q) -> Page {
    let mount = q
        .get("mount")
        .map(|s| s.trim_matches('/').to_owned())
        .unwrap_or_default();
    let path = q
        .get("path")
        .map(|s| s.trim_matches('/').to_owned())
        .unwrap_or_default();
    if mount.is_empty() || path.is_empty() {
        return Err(UiError::Page(
            400,
            "Missing secret".into(),
            vec!["Name the secret's mount and path.".into()],
        ));
    }
    let lc = ctx
        .call_opt(
            Operation::Read,
            &format!("{mount}/lifecycle/{path}"),
            Map::new(),
        )
        .await?
        .ok_or_else(|| {
            UiError::Page(
                404,
                "No lifecycle record".into(),
                vec![format!(
                    "{mount}/{path} has no lifecycle record: it is not managed."
                )],
            )
        })?;
    let job = q
        .get("job")
        .and_then(|j| ctx.ui.sessions.job(&ctx.auth.id, j))
        .filter(|j| j.lock().secret == format!("{mount}/{path}"));
    let rotate_path = format!("{mount}/rotate/{path}");
    let caps = ctx.capabilities(std::slice::from_ref(&rotate_path)).await;
    let can_rotate = lc["rotation"].is_object()
        && (allows(&caps, &rotate_path, "update") || allows(&caps, &rotate_path, "create"));
    let in_flight = lc["state"]["in_flight"]["step"].as_str().map(str::to_owned);
    let history = lc["state"]["history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let last = history.last().cloned().unwrap_or(Value::Null);
    let outcome = job.as_ref().map(|j| {
        let j = j.lock();
        (j.outcome.clone(), j.started)
    });
    let running = match &outcome {
        Some((None, _)) => true,
        Some(_) => false,
        None => in_flight.is_some(),
    };
    let progress = html! {
        @match &outcome {
            Some((None, _)) => {
                p role="status" { "Rotation running: step " strong { (in_flight.clone().unwrap_or_else(|| "create".into())) } ". This page refreshes every second." }
                (steps(Some(in_flight.as_deref().unwrap_or("create")), None, false))
            }
            Some((Some(Ok(v)), _)) => {
                p role="status" class="status-ok" { "Rotation finished: version " (text(&v["old_version"])) " was replaced by version " (text(&v["new_version"])) " (rotator " (text(&v["rotator"])) ")." }
                (steps(None, None, true))
            }
            Some((Some(Err((403, _))), _)) => {
                div.error role="alert" { p { "Not allowed: your token's policies do not allow rotating this secret. Nothing was changed." } }
            }
            Some((Some(Err((_, msgs))), _)) => {
                div.error role="alert" { p { "The rotation failed and was rolled back: " (msgs.join("; ")) } }
                (steps(None, last["step"].as_str().or(Some("create")), false))
            }
            None => @if let Some(s) = &in_flight {
                p role="status" { "A rotation is running: step " strong { (s) } "." }
                (steps(Some(s), None, false))
            } @else if last.is_object() {
                p { "Last rotation " (when(&last["at"])) ": " strong { (text(&last["result"])) } }
                @if last["result"] == "success" { (steps(None, None, true)) } @else { (steps(None, last["step"].as_str(), false)) }
            },
        }
    };
    let content = html! {
        p { a href=(secret_href(&mount, &path)) { "Open the secret" } }
        table { tbody {
            tr { th { "Owner" } td { (text(&lc["owner"])) } }
            tr { th { "Type" } td { (text(&lc["secret_type"])) } }
            tr { th { "Status" } td { span class=(format!("status-{}", text(&lc["status"]))) { (text(&lc["status"])) } } }
            tr { th { "Rotator" } td { (text(&lc["rotation"]["rotator"])) } }
            tr { th { "Every" } td { (text(&lc["rotation"]["period"])) (text(&lc["rotation"]["cron"])) } }
            tr { th { "Window" } td { (text(&lc["rotation"]["window"])) } }
            tr { th { "Next due" } td { (when(&lc["next_due"])) } }
            tr { th { "Failures in a row" } td { (text(&lc["state"]["failures"])) } }
            tr { th { "Last error" } td { (text(&lc["state"]["last_error"])) } }
        } }
        h2 { "Progress" }
        (progress)
        @if can_rotate && !running {
            form method="post" action="/ui/rotate" {
                (csrf_field(&ctx.auth.csrf))
                input type="hidden" name="mount" value=(mount);
                input type="hidden" name="path" value=(path);
                label for="reason" { "Reason (recorded in the audit trail)" }
                input type="text" id="reason" name="reason" value="rotated from the web UI";
                div.actions { button type="submit" { "Rotate now" } }
            }
        } @else if !lc["rotation"].is_object() {
            p.muted { "This secret has no rotation policy." }
        }
        h2 { "History" }
        @if history.is_empty() { (empty("No rotation has run yet.")) } @else {
            div.scroll { table.stack {
                thead { tr { th { "When" } th { "Result" } th { "Step" } th { "Versions" } th { "Reason" } } }
                tbody { @for h in history.iter().rev() { tr {
                    td data-label="When" { (when(&h["at"])) }
                    td data-label="Result" { (text(&h["result"])) }
                    td data-label="Step" { (text(&h["step"])) }
                    td data-label="Versions" { (text(&h["old_version"])) " → " (text(&h["new_version"])) }
                    td data-label="Reason" { (text(&h["reason"])) }
                } } }
            } }
        }
    };
    Ok(page_with(
        Some(&ctx.chrome()),
        StatusCode::OK,
        &format!("Rotation of {mount}/{path}"),
        content,
        running.then_some(1),
    ))
}

/// `POST /ui/rotate`: starts a rotation through the core in a task of its
/// own and sends the browser to its progress page.
pub(crate) async fn rotate(ctx: Ctx, raw: Bytes) -> Page {
    let f = form(&ctx, &raw)?;
    let mount = f
        .get("mount")
        .map(|s| s.trim().trim_matches('/').to_owned())
        .unwrap_or_default();
    let path = f
        .get("path")
        .map(|s| s.trim().trim_matches('/').to_owned())
        .unwrap_or_default();
    if mount.is_empty() || path.is_empty() {
        return Err(UiError::Page(
            400,
            "Missing secret".into(),
            vec!["Name the secret's mount and path.".into()],
        ));
    }
    let mut data = Map::new();
    if let Some(r) = f.get("reason").map(|r| r.trim()).filter(|r| !r.is_empty()) {
        data.insert("reason".into(), Value::String(r.to_owned()));
    }
    let job = Arc::new(Mutex::new(Job {
        secret: format!("{mount}/{path}"),
        started: chrono::Utc::now(),
        outcome: None,
    }));
    let job_id = random_id();
    ctx.ui
        .sessions
        .add_job(&ctx.auth.id, job_id.clone(), job.clone());
    let req = request(
        Operation::Update,
        &format!("{mount}/rotate/{path}"),
        data,
        Some(&ctx.auth.token),
        ctx.peer,
    );
    let core = ctx.ui.core.clone();
    tokio::spawn(async move {
        let outcome = match handle(&core, req).await {
            Ok(r) => Ok(body(&r)),
            Err(e) => Err((e.status(), e.messages())),
        };
        job.lock().outcome = Some(outcome);
    });
    Ok(Redirect::to(&format!(
        "/ui/rotation?mount={}&path={}&job={job_id}",
        enc(&mount),
        enc(&path)
    ))
    .into_response())
}

//! Access pages: ACL policies (view, and edit with the parse error shown at
//! its line), auth methods and their roles, the effective access matrix.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use coffer_core::{Error, Operation};
use maud::html;
use serde_json::{Map, Value};

use crate::call::{allows, enc, field, form, Ctx, Page, UiError};
use crate::layout::{csrf_field, empty, page, page_with, text};

type Q = Query<BTreeMap<String, String>>;

/// `GET /ui/access`: the ACL policies.
pub(crate) async fn policies(ctx: Ctx) -> Page {
    let r = ctx
        .call(Operation::List, "sys/policies/acl/", Map::new())
        .await?;
    let names: Vec<String> = r["keys"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(text)
        .collect();
    let content = html! {
        p { a href="/ui/access/auth" { "Auth methods and roles" } " · " a href="/ui/access/matrix" { "Access matrix" } }
        h2 { "ACL policies" }
        @if names.is_empty() { (empty("No policy is defined.")) } @else {
            ul { @for n in &names { li { a href=(format!("/ui/access/policy?name={}", enc(n))) { (n) } } } }
        }
    };
    Ok(page(Some(&ctx.chrome()), "Access", content))
}

/// The line a policy parse error names (`line N`), if any.
fn error_line(msgs: &[String]) -> Option<usize> {
    msgs.iter().find_map(|m| {
        let i = m.find("line ")?;
        let digits: String = m[i + 5..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    })
}

/// The policy page: its text with line numbers, and the editor when the
/// token may write it.
fn policy_page(
    ctx: &Ctx,
    name: &str,
    policy: &str,
    can_edit: bool,
    error: Option<Vec<String>>,
) -> axum::response::Response {
    let bad = error.as_deref().and_then(error_line);
    let content = html! {
        @if let Some(errs) = &error {
            div.error role="alert" {
                p { "The policy was not saved." }
                @for e in errs { p { (e) } }
                @if let Some(l) = bad { p { "See line " (l) " below." } }
            }
        }
        h2 { "Text" }
        div.policy-lines.scroll role="region" aria-label="Policy text with line numbers" tabindex="0" {
            @for (i, line) in policy.lines().enumerate() {
                @let n = i + 1;
                div class=(if bad == Some(n) { "bad-line" } else { "" }) id=(format!("line-{n}")) {
                    span.muted { (format!("{n:>3}  ")) } (line)
                    @if bad == Some(n) { "   ← error here" }
                }
            }
        }
        @if can_edit {
            h2 { "Edit" }
            form method="post" action="/ui/access/policy" {
                (csrf_field(&ctx.auth.csrf))
                input type="hidden" name="name" value=(name);
                label for="policy" { "Policy (HCL or JSON)" }
                textarea.policy id="policy" name="policy" spellcheck="false" { (policy) }
                div.actions { button type="submit" { "Save policy" } }
            }
        }
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    page_with(
        Some(&ctx.chrome()),
        status,
        &format!("Policy {name}"),
        content,
        None,
    )
}

/// `GET /ui/access/policy?name=`.
pub(crate) async fn policy(ctx: Ctx, Query(q): Q) -> Page {
    let name = q
        .get("name")
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| UiError::Page(400, "Missing name".into(), vec!["Name a policy.".into()]))?;
    let path = format!("sys/policies/acl/{name}");
    let r = ctx
        .call_opt(Operation::Read, &path, Map::new())
        .await?
        .ok_or_else(|| {
            UiError::Page(
                404,
                "Not found".into(),
                vec![format!("No policy is named {name}.")],
            )
        })?;
    let caps = ctx.capabilities(std::slice::from_ref(&path)).await;
    let can_edit = allows(&caps, &path, "update") && name != "root";
    Ok(policy_page(
        &ctx,
        &name,
        &text(&r["policy"]),
        can_edit,
        None,
    ))
}

/// `POST /ui/access/policy`: saves a policy; a parse error is shown at its line.
pub(crate) async fn save_policy(ctx: Ctx, raw: Bytes) -> Page {
    let f = form(&ctx, &raw)?;
    let name = field(&f, "name")?.to_owned();
    let text_in = f.get("policy").map(|s| s.to_string()).unwrap_or_default();
    let path = format!("sys/policies/acl/{name}");
    let mut data = Map::new();
    data.insert("policy".into(), Value::String(text_in.clone()));
    match ctx.try_call(Operation::Update, &path, data).await {
        Ok(_) => {
            Ok(Redirect::to(&format!("/ui/access/policy?name={}", enc(&name))).into_response())
        }
        Err(Error::PermissionDenied) => Err(ctx
            .explain(Error::PermissionDenied, Operation::Update, &path)
            .await),
        Err(e) => Ok(policy_page(&ctx, &name, &text_in, true, Some(e.messages()))),
    }
}

/// Where an auth method type keeps its roles (or users).
fn roles_path(kind: &str) -> Option<(&'static str, &'static str)> {
    match kind {
        "userpass" => Some(("users/", "Users")),
        "approle" | "jwt" | "oidc" => Some(("role/", "Roles")),
        "token" => Some(("roles/", "Token roles")),
        _ => None,
    }
}

/// `GET /ui/access/auth`: auth methods and their roles.
pub(crate) async fn auth_methods(ctx: Ctx) -> Page {
    let r = ctx.call(Operation::Read, "sys/auth", Map::new()).await?;
    let mounts: Vec<(String, Value)> = r
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let mut sections = Vec::new();
    for (p, m) in &mounts {
        let kind = text(&m["type"]);
        let roles = match roles_path(&kind) {
            Some((sub, label)) => {
                let list = ctx
                    .try_call(Operation::List, &format!("auth/{p}{sub}"), Map::new())
                    .await;
                let names: Result<Vec<String>, String> = match list {
                    Ok(r) => Ok(crate::call::body(&r)["keys"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .iter()
                        .map(text)
                        .collect()),
                    Err(Error::NotFound) => Ok(Vec::new()),
                    Err(Error::PermissionDenied) => Err("Your token may not list them.".into()),
                    Err(e) => Err(e.messages().join("; ")),
                };
                Some((label, names))
            }
            None => None,
        };
        sections.push((p.clone(), kind, text(&m["description"]), roles));
    }
    let content = html! {
        @if sections.is_empty() { (empty("No auth method is enabled.")) }
        @for (p, kind, desc, roles) in &sections {
            section.card {
                h2 { code { "auth/" (p) } " " span.badge { (kind) } }
                @if !desc.is_empty() { p { (desc) } }
                @match roles {
                    Some((label, Ok(names))) => {
                        h3 { (label) }
                        @if names.is_empty() { (empty("None defined.")) } @else { ul { @for n in names { li { code { (n) } } } } }
                    }
                    Some((label, Err(m))) => { h3 { (label) } p.muted { (m) } }
                    None => {}
                }
            }
        }
    };
    Ok(page(Some(&ctx.chrome()), "Auth methods", content))
}

/// `GET /ui/access/matrix`: who may read, write and rotate each managed
/// secret, from the plan's access section (`sys/coffer/plan`).
pub(crate) async fn matrix(ctx: Ctx) -> Page {
    let plan = ctx
        .call(Operation::Read, "sys/coffer/plan", Map::new())
        .await?;
    let rows = plan["access"]["matrix"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let list = |v: &Value| -> String {
        match v.as_array() {
            Some(a) if !a.is_empty() => a
                .iter()
                .map(|x| {
                    if x.is_string() {
                        text(x)
                    } else {
                        x.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(", "),
            Some(_) => "nobody but root".into(),
            None => text(v),
        }
    };
    let content = html! {
        p { "Who may read, write and rotate each managed secret, from the identities and policies the server knows." }
        @if rows.is_empty() { (empty("No managed secret yet: the matrix lists secrets with a lifecycle record.")) } @else {
            div.scroll { table.stack {
                thead { tr { th { "Secret" } th { "Read" } th { "Write" } th { "Rotate" } } }
                tbody { @for r in &rows { tr {
                    td data-label="Secret" { code { (text(&r["secret"])) } }
                    td data-label="Read" { (list(&r["read"])) }
                    td data-label="Write" { (list(&r["write"])) }
                    td data-label="Rotate" { (list(&r["rotate"])) }
                } } }
            } }
        }
    };
    Ok(page(Some(&ctx.chrome()), "Access matrix", content))
}

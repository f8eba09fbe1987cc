//! The KV v2 browser: mounts, folders, a secret's versions, stage labels and
//! metadata; reveal and copy; create and edit with check-and-set; delete,
//! undelete and destroy after a confirmation step.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use coffer_core::{Error, Operation};
use maud::{html, Markup};
use serde_json::{json, Map, Value};

use crate::call::{allows, body, enc, field, form, Ctx, Fields, Page, UiError};
use crate::layout::{csrf_field, empty, page, page_with, text, when};

type Q = Query<BTreeMap<String, String>>;

/// The mount (no slashes around it) and the path inside it of a query or form.
fn target(get: impl Fn(&str) -> Option<String>) -> Result<(String, String), UiError> {
    let mount = get("mount").unwrap_or_default();
    let mount = mount.trim().trim_matches('/').to_owned();
    let path = get("path")
        .unwrap_or_default()
        .trim()
        .trim_matches('/')
        .to_owned();
    if mount.is_empty() {
        return Err(UiError::Page(
            400,
            "Missing mount".into(),
            vec!["Name a KV mount (for example secret).".into()],
        ));
    }
    Ok((mount, path))
}

fn qt(q: &BTreeMap<String, String>) -> Result<(String, String), UiError> {
    target(|k| q.get(k).cloned())
}

fn ft(f: &Fields) -> Result<(String, String), UiError> {
    target(|k| f.get(k).map(|v| v.to_string()))
}

/// Link to a secret's page.
pub(crate) fn secret_href(mount: &str, path: &str) -> String {
    format!("/ui/kv/secret?mount={}&path={}", enc(mount), enc(path))
}

/// Link to a folder.
fn folder_href(mount: &str, path: &str) -> String {
    format!("/ui/kv/browse?mount={}&path={}", enc(mount), enc(path))
}

/// `GET /ui/kv`: the KV v2 mounts the token can reach.
pub(crate) async fn mounts(ctx: Ctx) -> Page {
    let m = ctx.read("sys/internal/ui/mounts").await?;
    let mut kv: Vec<(String, String)> = m["secret"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(_, e)| e["type"] == "kv" && e["options"]["version"] == "2")
                .map(|(p, e)| (p.trim_end_matches('/').to_owned(), text(&e["description"])))
                .collect()
        })
        .unwrap_or_default();
    kv.sort();
    let content = html! {
        @if kv.is_empty() { (empty("Your token reaches no KV version 2 mount.")) } @else {
            table { thead { tr { th { "Mount" } th { "Description" } } }
                tbody { @for (p, d) in &kv { tr { td { a href=(folder_href(p, "")) { (p) "/" } } td { (d) } } } } }
        }
    };
    Ok(page(Some(&ctx.chrome()), "Secrets", content))
}

/// Breadcrumbs of a folder or secret path.
fn crumbs(mount: &str, path: &str) -> Markup {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    html! {
        nav aria-label="Breadcrumb" { p {
            a href=(folder_href(mount, "")) { (mount) } " / "
            @for (i, p) in parts.iter().enumerate() {
                @if i + 1 < parts.len() {
                    a href=(folder_href(mount, &format!("{}/", parts[..=i].join("/")))) { (p) } " / "
                } @else { (p) }
            }
        } }
    }
}

/// `GET /ui/kv/browse?mount=&path=`: a folder's keys.
pub(crate) async fn browse(ctx: Ctx, Query(q): Q) -> Page {
    let (mount, path) = qt(&q)?;
    let folder = if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    };
    let list = ctx
        .call_opt(
            Operation::List,
            &format!("{mount}/metadata/{folder}"),
            Map::new(),
        )
        .await?;
    let keys: Vec<String> = list
        .as_ref()
        .and_then(|v| v["keys"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect();
    let caps = ctx
        .capabilities(&[format!("{mount}/data/{folder}new")])
        .await;
    let can_create = allows(&caps, &format!("{mount}/data/{folder}new"), "create")
        || allows(&caps, &format!("{mount}/data/{folder}new"), "update");
    let content = html! {
        (crumbs(&mount, &folder))
        @if can_create {
            div.actions { a.button href=(format!("/ui/kv/new?mount={}&folder={}", enc(&mount), enc(&folder))) { "Create a secret here" } }
        }
        @if keys.is_empty() { (empty("This folder is empty: no secret is stored under it yet.")) } @else {
            table { thead { tr { th { "Name" } th { "Kind" } } }
                tbody { @for k in &keys { tr {
                    @if k.ends_with('/') {
                        td { a href=(folder_href(&mount, &format!("{folder}{k}"))) { (k) } } td { "folder" }
                    } @else {
                        td { a href=(secret_href(&mount, &format!("{folder}{k}"))) { (k) } } td { "secret" }
                    }
                } } }
            }
        }
    };
    Ok(page(
        Some(&ctx.chrome()),
        &format!("{mount}/{folder}"),
        content,
    ))
}

/// The paths whose capabilities decide which buttons a secret page shows.
fn cap_paths(mount: &str, path: &str) -> [String; 7] {
    [
        format!("{mount}/data/{path}"),
        format!("{mount}/metadata/{path}"),
        format!("{mount}/delete/{path}"),
        format!("{mount}/undelete/{path}"),
        format!("{mount}/destroy/{path}"),
        format!("{mount}/rotate/{path}"),
        format!("{mount}/lifecycle/{path}"),
    ]
}

/// A revealed version: its number and its key/value pairs.
type Revealed = (u64, Vec<(String, Value)>);

/// The secret page; `revealed` holds values only after an explicit reveal.
async fn secret_page(ctx: &Ctx, mount: &str, path: &str, revealed: Option<Revealed>) -> Page {
    if path.is_empty() {
        return Ok(Redirect::to(&folder_href(mount, "")).into_response());
    }
    let meta = ctx
        .call_opt(
            Operation::Read,
            &format!("{mount}/metadata/{path}"),
            Map::new(),
        )
        .await?
        .ok_or_else(|| {
            UiError::Page(
                404,
                "Not found".into(),
                vec![format!("No secret exists at {mount}/{path}.")],
            )
        })?;
    let lifecycle = ctx
        .try_call(
            Operation::Read,
            &format!("{mount}/lifecycle/{path}"),
            Map::new(),
        )
        .await;
    let cp = cap_paths(mount, path);
    let caps = ctx.capabilities(&cp).await;
    let can_read = allows(&caps, &cp[0], "read");
    let can_write = allows(&caps, &cp[0], "update") || allows(&caps, &cp[0], "create");
    let can_delete = allows(&caps, &cp[2], "update");
    let can_undelete = allows(&caps, &cp[3], "update");
    let can_destroy = allows(&caps, &cp[4], "update");
    let can_rotate = allows(&caps, &cp[5], "update") || allows(&caps, &cp[5], "create");
    let current = meta["current_version"].as_u64().unwrap_or(0);
    let mut versions: Vec<(u64, Value)> = meta["versions"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.parse().ok()?, v.clone())))
                .collect()
        })
        .unwrap_or_default();
    versions.sort_by_key(|v| std::cmp::Reverse(v.0));
    let m = enc(mount);
    let p = enc(path);
    let content = html! {
        (crumbs(mount, path))
        p { "Current version " strong { (current) } ". "
            @if meta["cas_required"].as_bool() == Some(true) { "Writes must use check-and-set." } }
        @if let Some((v, pairs)) = &revealed {
            section aria-labelledby="val-h" {
                h2 id="val-h" { "Values of version " (v) }
                p.muted { "This reveal was recorded in the audit trail as a read by you." }
                @if pairs.is_empty() { (empty("This version holds no keys.")) } @else {
                    table.stack { thead { tr { th { "Key" } th { "Value" } th { "Copy" } } }
                        tbody { @for (i, (k, val)) in pairs.iter().enumerate() { tr {
                            td data-label="Key" { code { (k) } }
                            td data-label="Value" { span.value id=(format!("value-{i}")) { (text(val)) } }
                            td data-label="Copy" { button.secondary type="button" data-copy=(format!("value-{i}")) aria-label=(format!("Copy the value of {k}")) { "Copy" } }
                        } } }
                    }
                }
                div.actions { a.button.secondary href=(secret_href(mount, path)) { "Hide values" } }
            }
        }
        div.actions {
            @if can_read && revealed.is_none() {
                form method="post" action="/ui/kv/reveal" {
                    (csrf_field(&ctx.auth.csrf))
                    input type="hidden" name="mount" value=(mount);
                    input type="hidden" name="path" value=(path);
                    label for="reveal-version" { "Version to reveal" }
                    select id="reveal-version" name="version" {
                        @for (n, v) in &versions {
                            @if v["destroyed"].as_bool() != Some(true) && text(&v["deletion_time"]).is_empty() {
                                option value=(n) selected[*n == current] { "version " (n) }
                            }
                        }
                    }
                    " " button type="submit" { "Reveal values" }
                }
            }
            @if can_write { a.button href=(format!("/ui/kv/edit?mount={m}&path={p}")) { "Edit" } }
            @if lifecycle.is_ok() { a.button.secondary href=(format!("/ui/rotation?mount={m}&path={p}")) { "Rotation" } }
            a.button.secondary href=(format!("/ui/audit/who-read?path={}", enc(&format!("{mount}/data/{path}")))) { "Who read it" }
            a.button.secondary href=(format!("/ui/audit/events?mount={m}&path={p}")) { "Recent events" }
        }
        @if !can_read && !can_write { p.muted { "Your token may see this secret's metadata only." } }
        h2 { "Versions" }
        div.scroll { table.stack {
            thead { tr { th { "Version" } th { "Created" } th { "State" } th { "Stage labels" } th { "Actions" } } }
            tbody { @for (n, v) in &versions {
                @let deleted = !text(&v["deletion_time"]).is_empty();
                @let destroyed = v["destroyed"].as_bool() == Some(true);
                tr {
                    td data-label="Version" { (n) @if *n == current { " " span.badge { "current" } } }
                    td data-label="Created" { (when(&v["created_time"])) }
                    td data-label="State" { @if destroyed { "destroyed" } @else if deleted { "deleted " (when(&v["deletion_time"])) } @else { "live" } }
                    td data-label="Stage labels" { @for s in v["stages"].as_array().cloned().unwrap_or_default() { span.badge { (text(&s)) } " " } }
                    td data-label="Actions" { div.actions {
                        @if !destroyed && !deleted && can_delete { a.button.secondary href=(format!("/ui/kv/confirm?action=delete&mount={m}&path={p}&version={n}")) { "Delete" } }
                        @if !destroyed && deleted && can_undelete { a.button.secondary href=(format!("/ui/kv/confirm?action=undelete&mount={m}&path={p}&version={n}")) { "Undelete" } }
                        @if !destroyed && can_destroy { a.button.secondary href=(format!("/ui/kv/confirm?action=destroy&mount={m}&path={p}&version={n}")) { "Destroy" } }
                    } }
                }
            } }
        } }
        h2 { "Metadata" }
        table { tbody {
            tr { th { "Created" } td { (when(&meta["created_time"])) } }
            tr { th { "Updated" } td { (when(&meta["updated_time"])) } }
            tr { th { "Maximum versions" } td { (text(&meta["max_versions"])) } }
            tr { th { "Delete versions after" } td { (text(&meta["delete_version_after"])) } }
            @if let Some(cm) = meta["custom_metadata"].as_object() { @for (k, v) in cm { tr { th { (k) } td { (text(v)) } } } }
        } }
        h2 { "Lifecycle" }
        @match &lifecycle {
            Ok(r) => {
                @let lc = body(r);
                table { tbody {
                    tr { th { "Owner" } td { (text(&lc["owner"])) } }
                    tr { th { "Type" } td { (text(&lc["secret_type"])) } }
                    tr { th { "Origin" } td { (text(&lc["origin"])) @let v = text(&lc["vendor"]); @if !v.is_empty() { " (" (v) ")" } } }
                    tr { th { "Status" } td { span class=(format!("status-{}", text(&lc["status"]))) { (text(&lc["status"])) } } }
                    tr { th { "Rotator" } td { (text(&lc["rotation"]["rotator"])) } }
                    tr { th { "Next due" } td { (when(&lc["next_due"])) } }
                    tr { th { "Last rotated" } td { (when(&lc["state"]["last_rotated"])) } }
                } }
                @if can_rotate { p { a href=(format!("/ui/rotation?mount={m}&path={p}")) { "Rotation detail and rotate now" } } }
                h2 { "Consumers" }
                @match lc["consumers"].as_array().filter(|c| !c.is_empty()) {
                    Some(consumers) => {
                        table {
                            thead { tr { th { "Consumer" } th { "Kind" } th { "Holds version" } th { "Reported" } th { "Live" } } }
                            tbody {
                                @for c in consumers {
                                    tr {
                                        td data-label="Consumer" { (text(&c["consumer_id"])) }
                                        td data-label="Kind" { (text(&c["kind"])) }
                                        td data-label="Holds version" { (text(&c["version"])) }
                                        td data-label="Reported" { (when(&c["reported_at"])) }
                                        td data-label="Live" { @if c["live"].as_bool() == Some(true) { "yes" } @else { "no (stale)" } }
                                    }
                                }
                            }
                        }
                    }
                    None => (empty("No app has reported holding this secret (coffer run --watch and coffer agent report the version they hold).")),
                }
            }
            Err(Error::NotFound) => (empty("This secret has no lifecycle record (owner, type, rotation).")),
            Err(Error::PermissionDenied) => p.muted { "Your token may not read this secret's lifecycle record." },
            Err(e) => p.error { (e.messages().join("; ")) },
        }
    };
    Ok(page(
        Some(&ctx.chrome()),
        &format!("{mount}/{path}"),
        content,
    ))
}

/// `GET /ui/kv/secret?mount=&path=`.
pub(crate) async fn secret(ctx: Ctx, Query(q): Q) -> Page {
    let (mount, path) = qt(&q)?;
    secret_page(&ctx, &mount, &path, None).await
}

/// Reads version `version` (0: current) of a secret through the core: an
/// audited read.
async fn read_values(
    ctx: &Ctx,
    mount: &str,
    path: &str,
    version: u64,
) -> Result<Revealed, UiError> {
    let mut data = Map::new();
    if version > 0 {
        data.insert("version".into(), json!(version.to_string()));
    }
    let v = ctx
        .call_opt(Operation::Read, &format!("{mount}/data/{path}"), data)
        .await?
        .ok_or_else(|| UiError::Page(404, "Not found".into(), vec![format!("Version {version} of {mount}/{path} does not exist, or was deleted or destroyed.")]))?;
    let n = v["metadata"]["version"].as_u64().unwrap_or(version);
    let pairs = v["data"]
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    Ok((n, pairs))
}

/// `POST /ui/kv/reveal`: the explicit, audited reveal of a version's values.
pub(crate) async fn reveal(ctx: Ctx, raw: Bytes) -> Page {
    let f = form(&ctx, &raw)?;
    let (mount, path) = ft(&f)?;
    let version = f
        .get("version")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let revealed = read_values(&ctx, &mount, &path, version).await?;
    secret_page(&ctx, &mount, &path, Some(revealed)).await
}

/// Key/value pairs as editable text, one `key=value` a line (JSON when a
/// value has a line break).
fn as_lines(pairs: &[(String, Value)]) -> String {
    let plain = pairs
        .iter()
        .all(|(k, v)| v.as_str().is_some_and(|s| !s.contains('\n')) && !k.contains('='));
    if !plain {
        // JSON keeps numbers, objects and line breaks as they are.
        let m: Map<String, Value> = pairs.iter().cloned().collect();
        return serde_json::to_string_pretty(&Value::Object(m)).unwrap_or_default();
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}\n", text(v)))
        .collect()
}

/// Parses the data field: a JSON object, or `key=value` lines.
fn parse_data(s: &str) -> Result<Map<String, Value>, String> {
    let t = s.trim();
    if t.starts_with('{') {
        return match serde_json::from_str::<Value>(t) {
            Ok(Value::Object(m)) if !m.is_empty() => Ok(m),
            Ok(_) => Err("The JSON must be an object with at least one key.".into()),
            Err(e) => Err(format!(
                "The JSON does not parse (line {}, column {}).",
                e.line(),
                e.column()
            )),
        };
    }
    let mut m = Map::new();
    for (i, line) in t.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(format!("Line {} is not of the form key=value.", i + 1));
        };
        let k = k.trim();
        if k.is_empty() {
            return Err(format!("Line {} has no key before '='.", i + 1));
        }
        m.insert(k.to_owned(), Value::String(v.to_owned()));
    }
    if m.is_empty() {
        return Err("Enter at least one key=value line.".into());
    }
    Ok(m)
}

/// What the create/edit form shows.
struct EditForm<'a> {
    mount: &'a str,
    /// The secret edited; `None` for a new one.
    path: Option<&'a str>,
    /// The folder a new secret goes into.
    folder: &'a str,
    /// The version the edit starts from (0: create only).
    cas: u64,
    /// The values' text.
    data: &'a str,
}

/// The create/edit form, with `error` shown above it.
fn edit_form_page(
    ctx: &Ctx,
    form: EditForm<'_>,
    error: Option<Vec<String>>,
    status: StatusCode,
) -> axum::response::Response {
    let EditForm {
        mount,
        path,
        folder,
        cas,
        data,
    } = form;
    let title = match path {
        Some(p) => format!("Edit {mount}/{p}"),
        None => format!("New secret in {mount}/{folder}"),
    };
    let content = html! {
        @if let Some(errs) = &error { div.error role="alert" { @for e in errs { p { (e) } } } }
        @if let Some(p) = path {
            form method="post" action="/ui/kv/edit-load" {
                (csrf_field(&ctx.auth.csrf))
                input type="hidden" name="mount" value=(mount);
                input type="hidden" name="path" value=(p);
                p.muted { "The form starts empty: values are shown only when you ask (an audited read). The new version replaces every key." }
                button.secondary type="submit" { "Load the current values into the form" }
            }
        }
        form method="post" action="/ui/kv/write" {
            (csrf_field(&ctx.auth.csrf))
            input type="hidden" name="mount" value=(mount);
            input type="hidden" name="cas" value=(cas);
            @match path {
                Some(p) => { input type="hidden" name="path" value=(p); p { "Editing on top of version " strong { (cas) } "; if someone writes a newer version first, this save is refused." } }
                None => {
                    label for="path" { "Path inside " (mount) "/" }
                    input type="text" id="path" name="path" value=(folder) required;
                }
            }
            label for="data" { "Values: one key=value a line, or a JSON object" }
            textarea id="data" name="data" autocomplete="off" spellcheck="false" { (data) }
            div.actions {
                button type="submit" { "Save new version" }
                @if let Some(p) = path { a.button.secondary href=(secret_href(mount, p)) { "Cancel" } }
            }
        }
    };
    page_with(Some(&ctx.chrome()), status, &title, content, None)
}

/// The current version of a secret (0 if it has none).
async fn current_version(ctx: &Ctx, mount: &str, path: &str) -> Result<u64, UiError> {
    let meta = ctx
        .call_opt(
            Operation::Read,
            &format!("{mount}/metadata/{path}"),
            Map::new(),
        )
        .await?;
    Ok(meta
        .and_then(|m| m["current_version"].as_u64())
        .unwrap_or(0))
}

/// `GET /ui/kv/edit?mount=&path=`: an empty edit form on the current version.
pub(crate) async fn edit_form(ctx: Ctx, Query(q): Q) -> Page {
    let (mount, path) = qt(&q)?;
    let cas = current_version(&ctx, &mount, &path).await?;
    Ok(edit_form_page(
        &ctx,
        EditForm {
            mount: &mount,
            path: Some(&path),
            folder: "",
            cas,
            data: "",
        },
        None,
        StatusCode::OK,
    ))
}

/// `POST /ui/kv/edit-load`: the edit form filled with the current values
/// (an audited read).
pub(crate) async fn edit_load(ctx: Ctx, raw: Bytes) -> Page {
    let f = form(&ctx, &raw)?;
    let (mount, path) = ft(&f)?;
    let (v, pairs) = read_values(&ctx, &mount, &path, 0).await?;
    let text = zeroize::Zeroizing::new(as_lines(&pairs));
    Ok(edit_form_page(
        &ctx,
        EditForm {
            mount: &mount,
            path: Some(&path),
            folder: "",
            cas: v,
            data: &text,
        },
        None,
        StatusCode::OK,
    ))
}

/// `GET /ui/kv/new?mount=&folder=`: the create form (`cas=0`: it never
/// overwrites an existing secret).
pub(crate) async fn new_form(ctx: Ctx, Query(q): Q) -> Page {
    let (mount, _) = qt(&q)?;
    let folder = q
        .get("folder")
        .map(|s| s.trim_start_matches('/').to_owned())
        .unwrap_or_default();
    Ok(edit_form_page(
        &ctx,
        EditForm {
            mount: &mount,
            path: None,
            folder: &folder,
            cas: 0,
            data: "",
        },
        None,
        StatusCode::OK,
    ))
}

/// `POST /ui/kv/write`: writes a new version with check-and-set.
pub(crate) async fn write(ctx: Ctx, raw: Bytes) -> Page {
    let f = form(&ctx, &raw)?;
    let (mount, path) = ft(&f)?;
    let creating = f.get("cas").map(|c| c.trim() == "0").unwrap_or(false);
    let cas: u64 = f
        .get("cas")
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or(0);
    let data_text = field(&f, "data").unwrap_or("");
    let shown_path = if creating { None } else { Some(path.as_str()) };
    let retry = |errs: Vec<String>, status: StatusCode| {
        edit_form_page(
            &ctx,
            EditForm {
                mount: &mount,
                path: shown_path,
                folder: &path,
                cas,
                data: data_text,
            },
            Some(errs),
            status,
        )
    };
    if path.is_empty() || path.ends_with('/') {
        return Ok(retry(
            vec!["Name the secret's path.".into()],
            StatusCode::BAD_REQUEST,
        ));
    }
    let data = match parse_data(data_text) {
        Ok(d) => d,
        Err(e) => return Ok(retry(vec![e], StatusCode::BAD_REQUEST)),
    };
    let mut body_map = Map::new();
    body_map.insert("data".into(), Value::Object(data));
    body_map.insert("options".into(), json!({"cas": cas}));
    match ctx
        .try_call(Operation::Update, &format!("{mount}/data/{path}"), body_map)
        .await
    {
        Ok(_) => Ok(Redirect::to(&secret_href(&mount, &path)).into_response()),
        Err(Error::PermissionDenied) => Err(ctx
            .explain(
                Error::PermissionDenied,
                Operation::Update,
                &format!("{mount}/data/{path}"),
            )
            .await),
        Err(e) if e.status() == 400 && e.messages().iter().any(|m| m.contains("check-and-set")) => {
            let now = current_version(&ctx, &mount, &path).await.unwrap_or(0);
            let msg = if creating {
                format!("A secret already exists at {mount}/{path} (version {now}); open it and edit it instead.")
            } else {
                format!("This secret changed while you were editing: you started from version {cas}, but version {now} is now current. Nothing was saved. Open the secret again to see the newest version, then re-apply your change.")
            };
            Ok(retry(
                vec![msg, format!("Server: {}", e.messages().join("; "))],
                StatusCode::CONFLICT,
            ))
        }
        Err(e) => Ok(retry(
            e.messages(),
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
        )),
    }
}

/// What a delete, undelete or destroy does, in words.
fn action_words(action: &str) -> Option<(&'static str, &'static str)> {
    match action {
        "delete" => Some(("Delete", "The version is marked deleted: it can no longer be read, and it can be undeleted later.")),
        "undelete" => Some(("Undelete", "The version becomes readable again.")),
        "destroy" => Some(("Destroy", "The version's data is erased for ever. This cannot be undone.")),
        _ => None,
    }
}

fn bad_action() -> UiError {
    UiError::Page(
        400,
        "Unknown action".into(),
        vec!["The action must be delete, undelete or destroy.".into()],
    )
}

/// `GET /ui/kv/confirm?action=&mount=&path=&version=`: the confirmation step.
pub(crate) async fn confirm(ctx: Ctx, Query(q): Q) -> Page {
    let (mount, path) = qt(&q)?;
    let action = q.get("action").map(String::as_str).unwrap_or("");
    let (label, words) = action_words(action).ok_or_else(bad_action)?;
    let version: u64 = q.get("version").and_then(|v| v.parse().ok()).unwrap_or(0);
    let content = html! {
        p { (label) " version " strong { (version) } " of " code { (mount) "/" (path) } "?" }
        p { (words) }
        form method="post" action="/ui/kv/act" {
            (csrf_field(&ctx.auth.csrf))
            input type="hidden" name="mount" value=(mount);
            input type="hidden" name="path" value=(path);
            input type="hidden" name="action" value=(action);
            input type="hidden" name="version" value=(version);
            div.actions {
                button.danger type="submit" { "Yes, " (label.to_lowercase()) " version " (version) }
                a.button.secondary href=(secret_href(&mount, &path)) { "No, go back" }
            }
        }
    };
    Ok(page(
        Some(&ctx.chrome()),
        &format!("{label} a version"),
        content,
    ))
}

/// `POST /ui/kv/act`: delete, undelete or destroy one version.
pub(crate) async fn act(ctx: Ctx, raw: Bytes) -> Page {
    let f = form(&ctx, &raw)?;
    let (mount, path) = ft(&f)?;
    let action = f.get("action").map(|s| s.to_string()).unwrap_or_default();
    action_words(&action).ok_or_else(bad_action)?;
    let version: u64 = f
        .get("version")
        .and_then(|v| v.trim().parse().ok())
        .filter(|v| *v > 0)
        .ok_or_else(|| {
            UiError::Page(
                400,
                "Missing version".into(),
                vec!["Name the version to act on.".into()],
            )
        })?;
    let mut data = Map::new();
    data.insert("versions".into(), json!([version]));
    ctx.call(Operation::Update, &format!("{mount}/{action}/{path}"), data)
        .await?;
    Ok(Redirect::to(&secret_href(&mount, &path)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_parses_lines_and_json() {
        let m = parse_data("a=1\nb = two=2\n").unwrap();
        assert_eq!(m["a"], "1");
        assert_eq!(m["b"], " two=2");
        assert!(parse_data("{\"x\": \"y\"}").is_ok());
        assert!(parse_data("novalue").unwrap_err().contains("Line 1"));
        assert!(parse_data("{bad").unwrap_err().contains("does not parse"));
        assert!(parse_data("  ").is_err());
    }

    #[test]
    fn loaded_values_round_trip_through_the_form() {
        let plain = vec![("a".to_string(), json!("x=y"))];
        assert_eq!(as_lines(&plain), "a=x=y\n");
        assert_eq!(parse_data(&as_lines(&plain)).unwrap()["a"], "x=y");
        let typed = vec![
            ("n".to_string(), json!(3)),
            ("m".to_string(), json!("l1\nl2")),
        ];
        let back = parse_data(&as_lines(&typed)).unwrap();
        assert_eq!(back["n"], 3);
        assert_eq!(back["m"], "l1\nl2");
    }
}

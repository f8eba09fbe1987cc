//! The page shell: head, navigation, main landmark, error pages.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

/// What the shell shows of the session.
pub(crate) struct Chrome {
    /// Who is logged in.
    pub(crate) name: String,
    /// The session's CSRF token (for the logout form).
    pub(crate) csrf: String,
}

const NAV: [(&str, &str); 8] = [
    ("/ui/status", "Status"),
    ("/ui/kv", "Secrets"),
    ("/ui/inventory", "Inventory"),
    ("/ui/audit", "Audit"),
    ("/ui/access", "Access"),
    ("/ui/plan", "Plan"),
    ("/ui/check", "Check"),
    ("/ui/access/matrix", "Matrix"),
];

/// The hidden CSRF field of a POST form.
pub(crate) fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

/// A whole page with status 200.
pub(crate) fn page(chrome: Option<&Chrome>, title: &str, content: Markup) -> Response {
    page_with(chrome, StatusCode::OK, title, content, None)
}

/// A whole page; `refresh` adds `<meta http-equiv="refresh">` (seconds).
pub(crate) fn page_with(
    chrome: Option<&Chrome>,
    status: StatusCode,
    title: &str,
    content: Markup,
    refresh: Option<u32>,
) -> Response {
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(s) = refresh { meta http-equiv="refresh" content=(s); }
                title { (title) " · Coffer" }
                link rel="stylesheet" href="/ui/assets/style.css";
                script src="/ui/assets/copy.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui/" { "Coffer" }
                    @if let Some(c) = chrome {
                        nav aria-label="Main" {
                            ul { @for (href, label) in NAV { li { a href=(href) { (label) } } } }
                        }
                        form.logout method="post" action="/ui/logout" {
                            (csrf_field(&c.csrf))
                            span.who { "Signed in as " strong { (c.name) } }
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (content)
                }
            }
        }
    };
    (status, Html(doc.into_string())).into_response()
}

/// An error page: the status, a title and the reasons in words.
pub(crate) fn error_page(
    chrome: Option<&Chrome>,
    status: u16,
    title: &str,
    msgs: &[String],
) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content = html! {
        div.error role="alert" {
            p { strong { (status) " " (code.canonical_reason().unwrap_or("")) } }
            @for m in msgs { p { (m) } }
        }
        p { a href="/ui/" { "Back to the start page" } }
    };
    page_with(chrome, code, title, content, None)
}

/// An empty state in words.
pub(crate) fn empty(msg: &str) -> Markup {
    html! { p.empty { (msg) } }
}

/// A value of a JSON object as text ("" for null, strings unquoted).
pub(crate) fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A server timestamp (RFC 3339) for people: `2026-12-02 19:40 UTC`; other
/// text as it is, "" for null.
pub(crate) fn when(v: &serde_json::Value) -> String {
    let t = text(v);
    match chrono::DateTime::parse_from_rfc3339(&t) {
        Ok(d) => d
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        Err(_) => t,
    }
}

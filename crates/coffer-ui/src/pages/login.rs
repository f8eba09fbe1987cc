//! Logging in (token or userpass) and out.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use coffer_core::Operation;
use maud::html;
use serde_json::{Map, Value};
use std::sync::Arc;
use zeroize::Zeroizing;

use crate::call::{self, body, handle, parse_form, peer_of, request, Ctx, UiError};
use crate::layout::{csrf_field, page_with};
use crate::session::{cookie_header, cookie_of};
use crate::Ui;

/// The login page (`?reason=` says why the user is here).
pub(crate) async fn form_page(
    ui: &Ui,
    reason: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let (id, csrf) = ui.sessions.new_login_form();
    let note = match reason {
        Some("expired") => Some("Your session has ended (the token's time to live ran out, or you were away too long). Please log in again."),
        Some("revoked") => Some("Your token is no longer valid: it was revoked or it expired. Please log in again."),
        Some("logout") => Some("You are logged out."),
        Some("login") => Some("Please log in to continue."),
        _ => None,
    };
    let content = html! {
        div.login {
            @if let Some(n) = note { p.notice role="status" { (n) } }
            @if let Some(e) = error { div.error role="alert" { p { (e) } } }
            form method="post" action="/ui/login" {
                (csrf_field(&csrf))
                input type="hidden" name="method" value="token";
                fieldset {
                    legend { "Log in with a token" }
                    label for="token" { "Token" }
                    input type="password" id="token" name="token" autocomplete="off" required;
                    div.actions { button type="submit" { "Log in with token" } }
                }
            }
            form method="post" action="/ui/login" {
                (csrf_field(&csrf))
                input type="hidden" name="method" value="userpass";
                fieldset {
                    legend { "Log in with user name and password" }
                    label for="username" { "User name" }
                    input type="text" id="username" name="username" autocomplete="username" required;
                    label for="password" { "Password" }
                    input type="password" id="password" name="password" autocomplete="current-password" required;
                    label for="mount" { "Auth method path" }
                    input type="text" id="mount" name="mount" value="userpass";
                    div.actions { button type="submit" { "Log in with password" } }
                }
            }
        }
    };
    let mut resp = page_with(None, status, "Log in", content, None);
    if let Ok(v) = cookie_header(ui.config.tls, &id, Some(15 * 60)).parse() {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// `GET /ui/login`.
pub(crate) async fn form(
    State(ui): State<Arc<Ui>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    form_page(
        &ui,
        q.get("reason").map(String::as_str),
        None,
        StatusCode::OK,
    )
    .await
}

/// `POST /ui/login`: checks the login form's CSRF token, logs in through
/// the core, and starts a session under a fresh id.
pub(crate) async fn submit(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    req_parts: axum::http::Extensions,
    raw: Bytes,
) -> Response {
    let f = parse_form(&raw);
    let pre = cookie_of(&headers, ui.config.tls).unwrap_or_default();
    let csrf = f.get("csrf").map(|s| s.as_str()).unwrap_or("");
    if csrf.is_empty() || !ui.sessions.check_login_csrf(&pre, csrf) {
        return UiError::csrf().into_response();
    }
    let peer = peer_of(&ui, &req_parts, &headers);
    let token: Zeroizing<String> = match f.get("method").map(|s| s.as_str()) {
        Some("token") => match f.get("token").map(|t| t.trim()) {
            Some(t) if !t.is_empty() => Zeroizing::new(t.to_owned()),
            _ => {
                return form_page(&ui, None, Some("Enter a token."), StatusCode::BAD_REQUEST).await
            }
        },
        Some("userpass") => {
            let user = f.get("username").map(|s| s.trim()).unwrap_or("");
            let pass = f.get("password").map(|s| s.as_str()).unwrap_or("");
            let mount = f
                .get("mount")
                .map(|s| s.trim().trim_matches('/'))
                .filter(|s| !s.is_empty())
                .unwrap_or("userpass");
            if user.is_empty() || pass.is_empty() || user.contains('/') || mount.contains("..") {
                return form_page(
                    &ui,
                    None,
                    Some("Enter a user name (without '/') and a password."),
                    StatusCode::BAD_REQUEST,
                )
                .await;
            }
            let mut data = Map::new();
            data.insert("password".into(), Value::String(pass.to_owned()));
            let path = format!("auth/{mount}/login/{user}");
            match handle(
                &ui.core,
                request(Operation::Update, &path, data, None, peer),
            )
            .await
            {
                Ok(r) => match r.auth.as_ref().and_then(|a| a["client_token"].as_str()) {
                    Some(t) => Zeroizing::new(t.to_owned()),
                    None => {
                        return form_page(
                            &ui,
                            None,
                            Some("The login gave no token."),
                            StatusCode::BAD_GATEWAY,
                        )
                        .await
                    }
                },
                Err(e) => {
                    let msg = match e.status() {
                        400 | 403 => "The user name or password is wrong, or this auth method does not exist.".to_string(),
                        429 => "Too many failed logins: wait a while and try again.".to_string(),
                        _ => e.messages().join("; "),
                    };
                    return form_page(
                        &ui,
                        None,
                        Some(&msg),
                        StatusCode::from_u16(e.status()).unwrap_or(StatusCode::FORBIDDEN),
                    )
                    .await;
                }
            }
        }
        _ => {
            return form_page(
                &ui,
                None,
                Some("Choose a login method."),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
    };
    drop(f);
    // The token's own view of itself: its name and how long it lives.
    let lookup = request(
        Operation::Read,
        "auth/token/lookup-self",
        Map::new(),
        Some(&token),
        peer,
    );
    let info = match handle(&ui.core, lookup).await {
        Ok(r) => body(&r),
        Err(_) => {
            return form_page(&ui, None, Some("This token is not valid (unknown, revoked or expired), or it may not look itself up."), StatusCode::FORBIDDEN).await
        }
    };
    let ttl = Duration::from_secs(info["ttl"].as_u64().unwrap_or(0));
    let name = info["display_name"].as_str().unwrap_or("token").to_owned();
    let id = ui.sessions.start(token, ttl, name);
    let max_age = if ttl.is_zero() {
        crate::session::MAX_SESSION
    } else {
        ttl.min(crate::session::MAX_SESSION)
    };
    let mut resp = Redirect::to("/ui/status").into_response();
    if let Ok(v) = cookie_header(ui.config.tls, &id, Some(max_age.as_secs())).parse() {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// `POST /ui/logout`: drops the session (the token itself is not revoked).
pub(crate) async fn logout(ctx: Ctx, raw: Bytes) -> call::Page {
    call::form(&ctx, &raw)?;
    ctx.ui.sessions.drop_session(&ctx.auth.id);
    let mut resp = Redirect::to("/ui/login?reason=logout").into_response();
    if let Ok(v) = cookie_header(ctx.ui.config.tls, "", None).parse() {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

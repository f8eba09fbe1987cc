//! Coffer's web UI for the people who own secrets, served under `/ui/`.
//!
//! **Architecture Invariant**: this crate is a client of the core's request
//! path and holds no policy logic. Every page is built from core
//! [`coffer_core::Request`]s answered by [`coffer_core::Core::handle`], the
//! same call the HTTP API makes, so the token's policies decide what a page
//! shows and every read (a reveal above all) lands in the audit trail. The
//! UI only hides buttons its token's capabilities would refuse anyway (asked
//! of the core through `sys/capabilities-self`); a forged POST is still
//! judged by the core. Core knows nothing of this crate.
//!
//! Security of the UI itself: the session cookie holds a random 256-bit id
//! (`HttpOnly; SameSite=Strict; Path=/ui`, `Secure` and `__Host-` under
//! TLS), the token stays in server memory (zeroizing) and the session ends
//! with the token's TTL; every POST carries a per-session CSRF token
//! compared in constant time; every answer carries a strict CSP, no-store
//! and no-referrer (see [`headers`]). Pages are rendered with maud, which
//! escapes every interpolated value.

mod call;
pub mod headers;
mod layout;
mod pages;
mod session;
mod timeline;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use coffer_core::Core;

pub use session::SESSION_COOKIE_PLAIN;

/// Finds the client's address from the connection's peer and the request
/// headers, as the API listener does with its trusted proxies; `None` when
/// a trusted proxy sent a header that names no address.
pub type ClientAddr =
    Arc<dyn Fn(std::net::IpAddr, &axum::http::HeaderMap) -> Option<std::net::IpAddr> + Send + Sync>;

/// How the UI is served.
#[derive(Clone, Default)]
pub struct UiConfig {
    /// The listener serves TLS: cookies get `Secure` and the `__Host-` prefix.
    pub tls: bool,
    /// The listener's client-address rule (its trusted proxies); without
    /// one, the connection's peer is the client.
    pub client_addr: Option<ClientAddr>,
}

impl std::fmt::Debug for UiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UiConfig")
            .field("tls", &self.tls)
            .field("client_addr", &self.client_addr.is_some())
            .finish()
    }
}

/// Shared state of the UI: the core it is a client of, and its sessions.
pub(crate) struct Ui {
    pub(crate) core: Arc<Core>,
    pub(crate) sessions: session::Sessions,
    pub(crate) config: UiConfig,
}

/// The UI's routes, all under `/ui/`, for the listener to merge into its
/// application.
pub fn router(core: Arc<Core>, config: UiConfig) -> Router {
    routes(Arc::new(Ui {
        core,
        sessions: session::Sessions::default(),
        config,
    }))
}

/// The routes over `ui`.
pub(crate) fn routes(ui: Arc<Ui>) -> Router {
    let routes = Router::new()
        .route("/ui/", get(pages::status::home))
        .route("/ui/assets/style.css", get(pages::assets::style))
        .route("/ui/assets/copy.js", get(pages::assets::copy_js))
        .route(
            "/ui/login",
            get(pages::login::form).post(pages::login::submit),
        )
        .route("/ui/logout", post(pages::login::logout))
        .route("/ui/status", get(pages::status::page_handler))
        .route("/ui/kv", get(pages::kv::mounts))
        .route("/ui/kv/browse", get(pages::kv::browse))
        .route("/ui/kv/secret", get(pages::kv::secret))
        .route("/ui/kv/reveal", post(pages::kv::reveal))
        .route("/ui/kv/edit", get(pages::kv::edit_form))
        .route("/ui/kv/edit-load", post(pages::kv::edit_load))
        .route("/ui/kv/new", get(pages::kv::new_form))
        .route("/ui/kv/write", post(pages::kv::write))
        .route("/ui/kv/confirm", get(pages::kv::confirm))
        .route("/ui/kv/act", post(pages::kv::act))
        .route("/ui/inventory", get(pages::lifecycle::inventory))
        .route("/ui/rotation", get(pages::lifecycle::detail))
        .route("/ui/rotate", post(pages::lifecycle::rotate))
        .route("/ui/audit", get(pages::audit::index))
        .route("/ui/audit/who-read", get(pages::audit::who_read))
        .route("/ui/audit/unused", get(pages::audit::unused))
        .route("/ui/audit/events", get(pages::audit::events))
        .route("/ui/access", get(pages::access::policies))
        .route(
            "/ui/access/policy",
            get(pages::access::policy).post(pages::access::save_policy),
        )
        .route("/ui/access/auth", get(pages::access::auth_methods))
        .route("/ui/access/matrix", get(pages::access::matrix))
        .route("/ui/plan", get(pages::plan::plan))
        .route("/ui/check", get(pages::plan::check))
        .route("/ui/{*rest}", axum::routing::any(pages::not_found))
        .layer(axum::middleware::from_fn_with_state(
            ui.clone(),
            call::with_chrome,
        ))
        .with_state(ui);
    Router::new()
        .route(
            "/ui",
            get(|| async { axum::response::Redirect::to("/ui/") }),
        )
        .merge(routes)
        .layer(axum::middleware::map_response(headers::secure))
}

/// What answers `/ui/` when the UI is switched off in the server
/// configuration: a plain 404, in Vault's error shape.
pub fn disabled() -> Router {
    let off = || async {
        (
            axum::http::StatusCode::NOT_FOUND,
            axum::Json(
                serde_json::json!({"errors": ["the web UI is disabled in the server configuration"]}),
            ),
        )
    };
    Router::new()
        .route("/ui", axum::routing::any(off))
        .route("/ui/", axum::routing::any(off))
        .route("/ui/{*rest}", axum::routing::any(off))
}

#[cfg(test)]
mod tests;

//! The UI's pages, one module per area.

pub(crate) mod access;
pub(crate) mod assets;
pub(crate) mod audit;
pub(crate) mod kv;
pub(crate) mod lifecycle;
pub(crate) mod login;
pub(crate) mod plan;
pub(crate) mod status;

use axum::response::Response;

/// A page that does not exist under `/ui/`.
pub(crate) async fn not_found() -> Response {
    crate::layout::error_page(
        None,
        404,
        "Page not found",
        &["There is no such page in the web UI.".into()],
    )
}

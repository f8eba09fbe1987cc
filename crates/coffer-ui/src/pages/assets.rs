//! The UI's own static files: one stylesheet, one small script.

use axum::http::header;
use axum::response::IntoResponse;

/// The stylesheet.
pub(crate) async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../assets/style.css"),
    )
}

/// The copy-to-clipboard script (the only script of the UI).
pub(crate) async fn copy_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../assets/copy.js"),
    )
}

//! The API proxy (`api_proxy` + `listener "tcp"`): a loopback listener that
//! forwards Vault API requests to the agent's one server, adding the
//! agent's token to requests that carry none when `use_auto_auth_token`
//! is set. A request's own token is always kept. Only the path and query
//! come from the caller, so nothing the caller sends can point the agent's
//! token at another host.

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use zeroize::Zeroizing;

use super::api::Api;
use super::auth::TokenRx;

#[derive(Clone)]
struct Proxy {
    api: Api,
    token: TokenRx,
    use_auto_auth_token: bool,
}

/// Largest request body forwarded (Vault's default `max_request_size`).
const MAX_BODY: usize = 32 * 1024 * 1024;

/// Binds the listener now (so a taken port stops the agent at start) and
/// returns the task serving it.
pub async fn bind(
    address: SocketAddr,
    api: Api,
    token: TokenRx,
    use_auto_auth_token: bool,
) -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("api_proxy: cannot listen on {address}: {e}"))?;
    tracing::info!("api_proxy: listening on http://{}", listener.local_addr()?);
    let app = axum::Router::new()
        .fallback(forward)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Proxy {
            api,
            token,
            use_auto_auth_token,
        });
    Ok(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("api_proxy: {e}");
        }
    })
}

fn error(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(serde_json::json!({"errors": [msg]}))).into_response()
}

async fn forward(
    State(p): State<Proxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(rest) = uri.path().strip_prefix("/v1/") else {
        return error(StatusCode::NOT_FOUND, "the agent proxies /v1/ paths only");
    };
    let Ok(path) = percent_encoding::percent_decode_str(rest).decode_utf8() else {
        return error(StatusCode::BAD_REQUEST, "invalid path encoding");
    };
    let path_and_query = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.into_owned(),
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let own = header("x-vault-token")
        .or_else(|| {
            header("authorization").and_then(|a| a.strip_prefix("Bearer ").map(str::to_owned))
        })
        .filter(|t| !t.is_empty())
        .map(Zeroizing::new);
    let token = match own {
        Some(t) => Some(t),
        None if p.use_auto_auth_token => p.token.borrow().as_ref().map(|c| c.token.clone()),
        None => None,
    };
    let m = match reqwest::Method::from_bytes(method.as_str().as_bytes()) {
        Ok(m) => m,
        Err(_) => return error(StatusCode::METHOD_NOT_ALLOWED, "unsupported method"),
    };
    match p
        .api
        .forward(
            token,
            m,
            path_and_query,
            header("x-vault-wrap-ttl"),
            header("content-type"),
            body.to_vec(),
        )
        .await
    {
        Ok(answer) => {
            let mut resp = Response::new(Body::from(answer.body));
            *resp.status_mut() =
                StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
            if let Some(ct) = answer.content_type.and_then(|c| c.parse().ok()) {
                resp.headers_mut()
                    .insert(axum::http::header::CONTENT_TYPE, ct);
            }
            resp.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            resp
        }
        Err(e) => error(StatusCode::BAD_GATEWAY, &format!("agent: {e}")),
    }
}

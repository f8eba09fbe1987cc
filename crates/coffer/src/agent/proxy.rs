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

/// Whether `host` (a `Host` header) names this machine's loopback: a
/// page on another site that rebinds its name to 127.0.0.1 still sends
/// its own name here.
fn loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // `[v6]` or `[v6]:port`
        match rest.split_once(']') {
            Some((v6, tail)) if tail.is_empty() || tail.starts_with(':') => v6,
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((n, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => host,
        }
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The refusal of a request a web browser could have sent on a page's
/// behalf: one with an `Origin` header, or addressed to a non-loopback
/// host name (DNS rebinding). Unmodified Vault clients send neither.
fn browser_refusal(headers: &HeaderMap) -> Option<Response> {
    if headers.contains_key(axum::http::header::ORIGIN) {
        return Some(error(
            StatusCode::FORBIDDEN,
            "the agent's API proxy refuses requests from web pages (Origin header)",
        ));
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !loopback_host(host) {
        return Some(error(
            StatusCode::FORBIDDEN,
            "the agent's API proxy answers only requests addressed to a loopback host",
        ));
    }
    None
}

async fn forward(
    State(p): State<Proxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = browser_refusal(&headers) {
        return refused;
    }
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

#[cfg(test)]
mod browser_tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_and_no_origin() {
        for ok in [
            "127.0.0.1:8100",
            "localhost:8100",
            "LOCALHOST",
            "[::1]:8100",
            "127.0.0.2",
        ] {
            assert!(loopback_host(ok), "{ok}");
        }
        for bad in [
            "attacker.example:8100",
            "attacker.example",
            "",
            "10.0.0.1:8100",
            "127.0.0.1.nip.io",
        ] {
            assert!(!loopback_host(bad), "{bad}");
        }
        let mut h = HeaderMap::new();
        h.insert(axum::http::header::HOST, "127.0.0.1:8100".parse().unwrap());
        assert!(browser_refusal(&h).is_none());
        h.insert(
            axum::http::header::ORIGIN,
            "http://attacker.example".parse().unwrap(),
        );
        assert!(browser_refusal(&h).is_some());
    }
}

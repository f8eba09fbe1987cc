//! Translation between HTTP and the core: Vault's paths, methods, tokens,
//! envelope and error bodies.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::Router;
use coffer_core::{Core, Error, Operation, Request, Response};
use serde_json::{json, Map, Value};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::body::{self, BodyError};
use crate::proxy::TrustedProxies;

/// Limits applied to every request.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Largest request body accepted, in bytes (Vault's default: 32 MiB).
    /// Unauthenticated and `sys/` endpoints accept less (see [`body::limit_for`]).
    pub max_request_bytes: usize,
    /// Longest time the core may take to answer one request.
    pub request_timeout: Duration,
    /// Longest time the whole body may take to arrive.
    pub body_read_timeout: Duration,
    /// Most bodies over 1 MiB read or handled at once.
    pub max_large_bodies: usize,
    /// Called after a request with a body over 1 MiB has been answered, to
    /// give the memory it used back to the OS (the binary sets this to its
    /// allocator's collect function).
    pub after_large_body: Option<fn()>,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_request_bytes: 32 * 1024 * 1024,
            request_timeout: Duration::from_secs(90),
            body_read_timeout: Duration::from_secs(30),
            max_large_bodies: 4,
            after_large_body: None,
        }
    }
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) core: Arc<Core>,
    pub(crate) limits: HttpLimits,
    pub(crate) proxies: Arc<TrustedProxies>,
    large_bodies: Arc<Semaphore>,
}

/// The axum application answering Vault's API for `core`, trusting no proxy.
pub fn app(core: Arc<Core>, limits: HttpLimits) -> Router {
    app_with_proxies(core, limits, TrustedProxies::default())
}

/// The axum application answering Vault's API for `core`; `X-Forwarded-For`
/// is believed from the peers in `proxies`.
pub fn app_with_proxies(core: Arc<Core>, limits: HttpLimits, proxies: TrustedProxies) -> Router {
    let large_bodies = Arc::new(Semaphore::new(limits.max_large_bodies.max(1)));
    Router::new()
        .route(
            "/v1/sys/events/subscribe/{*event_type}",
            axum::routing::get(crate::events::subscribe),
        )
        .fallback(handle)
        .with_state(AppState {
            core,
            limits,
            proxies: Arc::new(proxies),
            large_bodies,
        })
}

/// An error answer in Vault's shape.
pub(crate) fn error_response(status: u16, errors: Vec<String>) -> HttpResponse {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, axum::Json(json!({ "errors": errors }))).into_response()
}

/// The body of a 500 caused by an internal failure: the detail (storage
/// keys, SQLite messages) goes to the server log only, under the request id.
fn internal_error_message(request_id: &str) -> String {
    format!("internal error; request id {request_id}")
}

pub(crate) fn core_error(e: Error, request_id: &str) -> HttpResponse {
    let status = e.status();
    if status >= 500 && status != 503 {
        tracing::error!(request_id = %request_id, error = %e, "request failed");
    }
    let retry = match &e {
        Error::RateLimited { retry_after, .. } => Some(*retry_after),
        _ => None,
    };
    let messages = if e.is_internal() {
        vec![internal_error_message(request_id)]
    } else {
        e.messages()
    };
    let mut resp = error_response(status, messages);
    if let Some(secs) = retry {
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    resp
}

/// The answer to a request naming a namespace other than the root one.
/// Coffer has no namespaces, so such a request is refused here, before the
/// core: it must never be answered silently from the root namespace. Like
/// a malformed path it reaches no mount and no policy, so it leaves no
/// audit entry. Status and first words as OpenBao's for a namespace that
/// does not exist.
pub(crate) fn namespace_refusal(headers: &HeaderMap) -> Option<HttpResponse> {
    // Every copy of the header counts: a second one must not slip past.
    let foreign = headers.get_all("x-vault-namespace").iter().any(|value| {
        let name = value.to_str().map(str::trim).unwrap_or("\u{fffd}");
        !matches!(name.trim_matches('/'), "" | "root")
    });
    if !foreign {
        return None;
    }
    Some(error_response(
        404,
        vec![
            "namespace not found: namespaces are not supported by Coffer; only the root namespace exists"
                .into(),
        ],
    ))
}

fn bad(msg: impl Into<String>) -> HttpResponse {
    error_response(400, vec![msg.into()])
}

/// Decodes and checks the path below `/v1/`: valid UTF-8 after percent
/// decoding, no `.` or `..` segments, no empty segments (a single trailing
/// slash is kept: it matters for LIST).
pub fn parse_path(raw: &str) -> Result<String, String> {
    let rest = raw
        .strip_prefix("/v1/")
        .ok_or_else(|| "unsupported path: the API lives under /v1/".to_string())?;
    let decoded = percent_encoding::percent_decode_str(rest)
        .decode_utf8()
        .map_err(|_| "invalid path: not valid UTF-8".to_string())?;
    let body = decoded.strip_suffix('/').unwrap_or(&decoded);
    if body.is_empty() {
        return Err("missing path after /v1/".into());
    }
    for seg in body.split('/') {
        if seg.is_empty() {
            return Err("invalid path: empty path segment".into());
        }
        if seg == "." || seg == ".." {
            return Err(format!("invalid path: {seg:?} segment"));
        }
        if seg.chars().any(|c| c.is_control()) {
            return Err("invalid path: control character".into());
        }
    }
    Ok(decoded.into_owned())
}

/// The query string as request data: each parameter a JSON string (a
/// repeated name keeps its last value). Public for the fuzz targets.
pub fn query_map(uri: &Uri) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(q) = uri.query() {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            out.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    }
    out
}

/// The request headers the operator chose to audit, copied from `headers`
/// (each value the client sent; values that are not visible ASCII are
/// recorded lossily).
pub fn audited_headers(
    core: &coffer_core::Core,
    headers: &HeaderMap,
) -> Vec<coffer_core::AuditedHeader> {
    let table = core.audited_headers();
    let mut out = Vec::new();
    let mut budget = AUDITED_HEADER_BYTES;
    for (name, setting) in table.iter() {
        for value in headers
            .get_all(name.as_str())
            .iter()
            .take(AUDITED_HEADER_VALUES)
        {
            let bytes = value.as_bytes();
            // Each value recorded costs its bytes twice per device (request
            // and response entries): the whole is bounded.
            let Some(left) = budget.checked_sub(bytes.len()) else {
                return out;
            };
            budget = left;
            out.push(coffer_core::AuditedHeader {
                name: name.clone(),
                value: String::from_utf8_lossy(bytes).into_owned(),
                hmac: setting.hmac,
            });
        }
    }
    out
}

/// Most values of one audited header recorded per request.
const AUDITED_HEADER_VALUES: usize = 8;
/// Most bytes of audited header values recorded per request.
const AUDITED_HEADER_BYTES: usize = 8 * 1024;

/// The client token: `X-Vault-Token`, else `Authorization: Bearer`.
/// Public for the fuzz targets.
pub fn token_of(headers: &HeaderMap) -> Option<Zeroizing<String>> {
    if let Some(v) = headers.get("x-vault-token").and_then(|v| v.to_str().ok()) {
        if !v.is_empty() {
            return Some(Zeroizing::new(v.to_string()));
        }
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = auth.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") && !rest.trim().is_empty() {
        return Some(Zeroizing::new(rest.trim().to_string()));
    }
    None
}

/// The `X-Vault-Wrap-TTL` header in seconds (`None` when absent), or
/// Vault's 400 message for a value that is not a duration.
pub fn wrap_ttl_of(headers: &HeaderMap) -> Result<Option<u64>, String> {
    let Some(v) = headers.get("x-vault-wrap-ttl") else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| "error parsing X-Vault-Wrap-TTL header: not ASCII".to_string())?;
    coffer_core::wrapping::parse_wrap_ttl(v).map(Some)
}

/// The refusal of a PATCH request's content type, as Vault's: none or an
/// unparseable one is a 400, any type but `application/merge-patch+json` a
/// 415 naming the type given. `None` when the type is right.
fn merge_patch_refusal(headers: &HeaderMap) -> Option<HttpResponse> {
    let given = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or(""))
        .unwrap_or("")
        .trim();
    if given.is_empty() {
        return Some(error_response(
            400,
            vec![
                "PATCH requires Content-Type application/merge-patch+json; the request has none"
                    .into(),
            ],
        ));
    }
    let Ok(parsed) = given.parse::<mime::Mime>() else {
        return Some(error_response(
            400,
            vec!["the Content-Type header is not a valid media type".into()],
        ));
    };
    if parsed.essence_str() == "application/merge-patch+json" {
        return None;
    }
    let essence = parsed.essence_str().chars().take(100).collect::<String>();
    Some(error_response(
        415,
        vec![format!(
            "PATCH requires Content-Type of application/merge-patch+json, provided {essence}"
        )],
    ))
}

/// A write's body as request data: empty or `null` is no data, otherwise
/// it must be a JSON object; the error answer never quotes the input.
/// Public for the fuzz targets.
pub fn parse_body(bytes: &[u8]) -> Result<Map<String, Value>, Box<HttpResponse>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    if let Err(msg) = body::check_json_shape(bytes) {
        return Err(Box::new(bad(msg)));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err(Box::new(bad(
            "failed to parse JSON input: the body must be a JSON object",
        ))),
        Err(e) => Err(Box::new(bad(format!(
            "failed to parse JSON input: {}",
            e.classify_message()
        )))),
    }
}

/// A short description of a JSON error that never quotes the input.
trait Classify {
    fn classify_message(&self) -> String;
}

impl Classify for serde_json::Error {
    fn classify_message(&self) -> String {
        let what = match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "invalid data",
            serde_json::error::Category::Eof => "unexpected end of input",
        };
        format!("{what} at line {} column {}", self.line(), self.column())
    }
}

async fn handle(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> HttpResponse {
    let cors = state.core.cors();
    let origin = headers
        .get(header::ORIGIN)
        .filter(|_| cors.enabled)
        .map(|v| v.to_str().unwrap_or("\u{fffd}").to_string());
    if let Some(origin) = &origin {
        if let Some(early) = cors_early_answer(&cors, origin, &method, &headers) {
            return early;
        }
    }
    let mut resp = handle_v1(state, peer, method, uri, headers, body).await;
    if let Some(v) = origin.and_then(|o| HeaderValue::from_str(&o).ok()) {
        resp.headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        resp.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    // Secrets must not sit in shared or browser caches; errors included.
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// While CORS is enabled, a request carrying `Origin`: refused (403) when
/// the origin is not allowed; a preflight (`OPTIONS`) from an allowed one
/// is answered here with the allowed methods and headers, as Vault does.
/// Anything else goes on to the API (`None`).
fn cors_early_answer(
    cors: &coffer_core::sys_cors::CorsConfig,
    origin: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Option<HttpResponse> {
    if !cors.allows(origin) {
        let mut resp = error_response(403, vec!["origin not allowed".into()]);
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Some(resp);
    }
    if method != Method::OPTIONS {
        return None;
    }
    let asked = headers
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let methods = coffer_core::sys_cors::ALLOWED_METHODS;
    if !methods.split(',').any(|m| m == asked) {
        return Some(error_response(405, vec!["unsupported operation".into()]));
    }
    let mut resp = StatusCode::OK.into_response();
    let h = resp.headers_mut();
    let pairs = [
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.to_string()),
        (header::ACCESS_CONTROL_ALLOW_METHODS, methods.to_string()),
        (
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            cors.allowed_headers.join(","),
        ),
        (header::ACCESS_CONTROL_MAX_AGE, "300".to_string()),
        (header::VARY, "Origin".to_string()),
        (header::CACHE_CONTROL, "no-store".to_string()),
    ];
    for (name, value) in pairs {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    Some(resp)
}

async fn handle_v1(
    state: AppState,
    peer: SocketAddr,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> HttpResponse {
    // In the in-flight table (`sys/in-flight-req`) from arrival until the
    // answer is returned, under the id the core and the audit trail use.
    let request_id = coffer_crypto::random::uuid();
    let sideband = Arc::new(coffer_core::Sideband::default());
    let core = state.core.clone();
    let _in_flight = core.in_flight().enter(coffer_core::in_flight::Arrival {
        id: &request_id,
        client_remote_address: match state.proxies.client_addr(peer.ip(), &headers) {
            Ok(ip) if ip != peer.ip() => ip.to_string(),
            _ => peer.to_string(),
        },
        request_path: uri.path(),
        request_method: method.as_str(),
        sideband: sideband.clone(),
    });
    let mut resp = handle_request(
        state,
        peer,
        method,
        uri,
        headers,
        body,
        request_id,
        sideband.clone(),
    )
    .await;
    // The rate-limit quota's headers, on every answer it counted.
    if let Some(extra) = sideband.headers.get() {
        for (name, value) in extra {
            if let Ok(v) = HeaderValue::from_str(value) {
                resp.headers_mut()
                    .insert(header::HeaderName::from_static(name), v);
            }
        }
    }
    resp
}

#[allow(clippy::too_many_arguments)]
async fn handle_request(
    state: AppState,
    peer: SocketAddr,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
    request_id: String,
    sideband: Arc<coffer_core::Sideband>,
) -> HttpResponse {
    let parsed_path = parse_path(uri.path());
    let token = token_of(&headers);
    let limit = body::limit_for(
        parsed_path.as_deref().ok(),
        token.is_some(),
        state.limits.max_request_bytes,
    );
    let content_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // A snapshot upload (with a token) is streamed to the core as it
    // arrives, never held whole; a pause longer than the body read timeout
    // ends it. The core answers a refusal without reading it, and the
    // connection is then closed.
    let snapshot_route = parsed_path
        .as_deref()
        .is_ok_and(coffer_core::snapshot::is_route);
    let mut upload = None;
    let mut pump = None;
    let mut body = Some(body);
    if snapshot_route && token.is_some() && matches!(method, Method::POST | Method::PUT) {
        if let Some(body) = body.take() {
            let (tx, stream) = coffer_core::ByteStream::channel(UPLOAD_CHUNKS);
            upload = Some(stream);
            pump = Some(tokio::spawn(pump_body(
                body,
                tx,
                state.limits.body_read_timeout,
            )));
        }
    }
    // Any other body is read before anything else is checked: answering
    // while the client is still sending would break its keep-alive
    // connection. Its limit depends on the path only, so an unauthenticated
    // client cannot make the server hold more than a small body.
    let read = match body {
        None => Held {
            body: body::ReadBody {
                bytes: Zeroizing::new(Vec::new()),
                slot: None,
            },
            collect: None,
        },
        Some(body) => match body::read(
            body,
            content_length,
            limit,
            state.limits.body_read_timeout,
            &state.large_bodies,
        )
        .await
        {
            Ok(b) => Held {
                body: b,
                collect: state.limits.after_large_body,
            },
            Err(e) => return body_error(e),
        },
    };
    let bytes = &read.body.bytes;
    let path = match parsed_path {
        Ok(p) => p,
        Err(msg) if msg.starts_with("unsupported path") => return error_response(404, vec![msg]),
        Err(msg) => return bad(msg),
    };
    if let Some(refusal) = namespace_refusal(&headers) {
        return refusal;
    }
    let client_addr = match state.proxies.client_addr(peer.ip(), &headers) {
        Ok(ip) => ip,
        Err(msg) => return bad(msg),
    };
    let mut query = query_map(&uri);
    let head = method == Method::HEAD;
    let operation = match method.as_str() {
        "GET" | "HEAD" => {
            let list = query
                .get("list")
                .and_then(Value::as_str)
                .is_some_and(|v| matches!(v, "true" | "1" | "t"));
            if list {
                query.remove("list");
                Operation::List
            } else {
                Operation::Read
            }
        }
        "LIST" => Operation::List,
        "POST" | "PUT" => Operation::Update,
        "PATCH" => Operation::Patch,
        "DELETE" => Operation::Delete,
        _ => return error_response(405, vec!["unsupported operation".into()]),
    };
    if operation == Operation::Patch {
        if let Some(resp) = merge_patch_refusal(&headers) {
            return resp;
        }
    }
    let mut data = if operation.is_write() && upload.is_none() {
        match parse_body(bytes) {
            Ok(m) => m,
            Err(resp) => return *resp,
        }
    } else {
        Map::new()
    };
    if matches!(
        operation,
        Operation::Read | Operation::List | Operation::Delete
    ) {
        data.extend(query);
    }
    let wrap_ttl = match wrap_ttl_of(&headers) {
        Ok(t) => t,
        Err(msg) => return bad(msg),
    };
    let req = Request {
        id: request_id,
        operation,
        path: path.clone(),
        data,
        token,
        client_addr: Some(client_addr),
        client_port: (client_addr == peer.ip()).then(|| peer.port()),
        wrap_ttl,
        wrap_format: headers
            .get("x-vault-wrap-format")
            .and_then(|v| v.to_str().ok())
            .map(coffer_core::WrapFormat::from_header)
            .unwrap_or_default(),
        audited_headers: audited_headers(&state.core, &headers),
        body: upload,
        sideband,
    };
    let request_id = req.id.clone();
    // The core handles the request in a task of its own: a client that
    // disconnects, or the request timeout below, drops only this wait, never
    // the handling itself, so a multi-step operation (a rotation, a database
    // root rotation) is never cancelled between two steps and is audited.
    let core = state.core.clone();
    // The large-body slot (if any) goes with the task and is given back
    // once the request, whose data came from the body, has been handled,
    // even if the wait below times out first: `max_large_bodies` holds.
    let task = tokio::spawn(async move {
        let result = core.handle(req).await;
        drop(read);
        result
    });
    // A snapshot transfer may take longer than any request: its body's idle
    // time bounds it instead.
    let waited = if snapshot_route {
        Ok(task.await)
    } else {
        tokio::time::timeout(state.limits.request_timeout, task).await
    };
    let result = match waited {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::error!(request_id = %request_id, panicked = e.is_panic(), "request handling failed");
            return error_response(500, vec![internal_error_message(&request_id)]);
        }
        Err(_) => return error_response(503, vec!["request timed out".into()]),
    };
    let mut resp = match result {
        Ok(r) => render(r, request_id),
        Err(e) => core_error(e, &request_id),
    };
    if let Some(pump) = pump {
        if !pump.is_finished() {
            // The rest of the upload was not read: the connection cannot
            // carry another request.
            pump.abort();
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
    tracing::debug!(method = %method, path = %path, status = resp.status().as_u16(), "request");
    if head {
        let (parts, _) = resp.into_parts();
        return HttpResponse::from_parts(parts, Body::empty());
    }
    resp
}

/// Chunks of a streamed upload in flight between the connection and the core.
const UPLOAD_CHUNKS: usize = 8;

/// Feeds a streamed request body to the core, chunk by chunk, until it ends
/// or the core stops reading; a read failure or a pause longer than `idle`
/// is sent as an error, so the core sees the upload incomplete.
async fn pump_body(
    body: Body,
    tx: tokio::sync::mpsc::Sender<coffer_core::request::Chunk>,
    idle: Duration,
) {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    loop {
        let failure = match tokio::time::timeout(idle, stream.next()).await {
            Ok(Some(Ok(bytes))) => {
                if tx.send(Ok(bytes.to_vec())).await.is_err() {
                    return;
                }
                continue;
            }
            Ok(None) => return,
            Ok(Some(Err(_))) => std::io::Error::other("the request body could not be read"),
            Err(_) => std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request body stalled (body read timeout)",
            ),
        };
        let _ = tx.send(Err(failure)).await;
        return;
    }
}

/// A body read for a request; once dropped, a large one's slot is given
/// back and the allocator is asked to return the memory.
struct Held {
    body: body::ReadBody,
    collect: Option<fn()>,
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.body.slot.take().is_some() {
            self.body.bytes = Default::default();
            if let Some(collect) = self.collect {
                collect();
            }
        }
    }
}

/// The answer to a body that could not be read; the connection is closed
/// after it, since the rest of the body was not read.
fn body_error(e: BodyError) -> HttpResponse {
    let mut resp = match e {
        BodyError::TooLarge => error_response(413, vec!["http: request body too large".into()]),
        BodyError::Read => bad("failed to read the request body"),
        BodyError::Busy => error_response(
            503,
            vec!["too many large requests in flight; retry later".into()],
        ),
        BodyError::Timeout => {
            error_response(408, vec!["timed out reading the request body".into()])
        }
    };
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// Renders a core response in Vault's envelope.
fn render(r: Response, request_id: String) -> HttpResponse {
    let status = |default: StatusCode| {
        r.status
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(default)
    };
    if let Some(raw) = &r.raw {
        return (status(StatusCode::OK), axum::Json(raw)).into_response();
    }
    if let Some(info) = &r.wrap_info {
        // As Vault: the envelope of a wrapped answer has no request id.
        let body = json!({
            "request_id": "",
            "lease_id": "",
            "renewable": false,
            "lease_duration": 0,
            "data": null,
            "wrap_info": info.to_json(),
            "warnings": null,
            "auth": null,
            "mount_type": "",
        });
        return (StatusCode::OK, axum::Json(body)).into_response();
    }
    if let Some((content_type, stream)) = &r.stream {
        let Some(rx) = stream.take() else {
            return error_response(500, vec![internal_error_message(&request_id)]);
        };
        let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        });
        // A file (a snapshot) is an attachment; lines of text (sys/monitor)
        // are shown as they come.
        let disposition = if content_type.starts_with("text/") {
            "inline"
        } else {
            "attachment"
        };
        return (
            status(StatusCode::OK),
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            Body::from_stream(chunks),
        )
            .into_response();
    }
    if let Some((content_type, body)) = &r.bytes {
        return (
            status(StatusCode::OK),
            [(header::CONTENT_TYPE, *content_type)],
            body.clone(),
        )
            .into_response();
    }
    if let Some((content_type, text)) = &r.text {
        return (
            status(StatusCode::OK),
            [(header::CONTENT_TYPE, *content_type)],
            text.clone(),
        )
            .into_response();
    }
    if r.data.is_none() && r.auth.is_none() && r.warnings.is_empty() {
        return status(StatusCode::NO_CONTENT).into_response();
    }
    let code = status(StatusCode::OK);
    let warnings = if r.warnings.is_empty() {
        Value::Null
    } else {
        json!(r.warnings)
    };
    let body = json!({
        "request_id": request_id,
        "lease_id": r.lease_id,
        "renewable": r.renewable,
        "lease_duration": r.lease_duration,
        "data": r.data,
        "wrap_info": null,
        "warnings": warnings,
        "auth": r.auth,
        "mount_type": r.mount_type,
    });
    (code, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON body of an answer.
    async fn body_of(resp: HttpResponse) -> Value {
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        serde_json::from_slice(&bytes).expect("JSON body")
    }

    #[tokio::test]
    async fn an_internal_failure_never_shows_its_detail() {
        let detail = format!("planted-{}", coffer_crypto::random::uuid());
        let cases = [
            Error::Internal(format!("corrupt entry {detail}")),
            Error::from(coffer_storage::StorageError::Backend(detail.clone())),
            Error::corrupt(format!("entry {detail:?}")),
            Error::Audit(format!("audit device {detail} failed")),
        ];
        for e in cases {
            assert!(e.is_internal(), "{e:?}");
            let resp = core_error(e, "req-1");
            assert_eq!(resp.status().as_u16(), 500);
            let body = body_of(resp).await;
            assert_eq!(
                body,
                json!({"errors": ["internal error; request id req-1"]})
            );
        }
        // A storage failure keeps its cause as the error's source.
        let e = Error::from(coffer_storage::StorageError::Backend(detail));
        assert!(std::error::Error::source(&e).is_some());
        // Errors meant for the client keep their message.
        let e = Error::bad("missing 'name'");
        assert!(!e.is_internal());
        assert_eq!(
            body_of(core_error(e, "req-2")).await,
            json!({"errors": ["missing 'name'"]})
        );
    }

    #[test]
    fn request_ids_are_v4_uuids() {
        let id = coffer_crypto::random::uuid();
        let b = id.as_bytes();
        assert_eq!(id.len(), 36);
        assert_eq!(
            (b[8], b[13], b[14], b[18], b[23]),
            (b'-', b'-', b'4', b'-', b'-')
        );
    }

    #[test]
    fn patch_content_types_as_vault() {
        let status = |ct: Option<&str>| {
            let mut h = HeaderMap::new();
            if let Some(ct) = ct {
                h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
            }
            merge_patch_refusal(&h).map(|r| r.status().as_u16())
        };
        assert_eq!(status(None), Some(400));
        assert_eq!(status(Some("text/plain;;;")), Some(400));
        assert_eq!(status(Some("application/json")), Some(415));
        assert_eq!(status(Some("Application/Merge-Patch+JSON")), None);
        assert_eq!(
            status(Some("application/merge-patch+json; charset=utf-8")),
            None
        );
    }

    #[test]
    fn paths() {
        assert_eq!(parse_path("/v1/secret/data/a").unwrap(), "secret/data/a");
        assert_eq!(
            parse_path("/v1/secret/metadata/").unwrap(),
            "secret/metadata/"
        );
        assert_eq!(
            parse_path("/v1/secret/data/a%20b").unwrap(),
            "secret/data/a b"
        );
        assert!(parse_path("/v1/secret//a").is_err());
        assert!(parse_path("/v1/secret/../sys").is_err());
        assert!(parse_path("/v1/secret/%2E%2E/x").is_err());
        assert!(parse_path("/v1/a/%ff").is_err());
        assert!(parse_path("/v1/").is_err());
        assert!(parse_path("/v2/x").is_err());
    }

    #[test]
    fn bodies() {
        assert!(parse_body(b"").unwrap().is_empty());
        assert!(parse_body(b"{\"a\":1}").is_ok());
        assert!(parse_body(b"[1]").is_err());
        assert!(parse_body(b"{bad").is_err());
    }

    #[test]
    fn tokens() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(token_of(&h).unwrap().as_str(), "abc");
        h.insert("x-vault-token", HeaderValue::from_static("xyz"));
        assert_eq!(token_of(&h).unwrap().as_str(), "xyz");
    }
}

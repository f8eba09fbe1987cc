//! The blocking HTTP client for Coffer's (Vault-compatible) API.
//!
//! Configuration follows the `vault` CLI: the address comes from a flag, then
//! `COFFER_ADDR`, then `VAULT_ADDR`; the token from `COFFER_TOKEN`, then
//! `VAULT_TOKEN`, then the file written by `coffer login`; TLS settings from
//! `COFFER_CACERT`/`VAULT_CACERT` and `COFFER_SKIP_VERIFY`/`VAULT_SKIP_VERIFY`.
//!
//! ```ignore
//! let client = Client::from_env()?;
//! client.write("secret/data/app", &json!({"data": {"k": "v"}}))?;
//! let body = client.read("secret/data/app")?; // None when absent
//! ```

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::blocking::Client as HttpClient;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::{Method, Url};
use rustls::pki_types::CertificateDer;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::tls;

/// Address used when neither the flag nor the environment names one.
pub const DEFAULT_ADDRESS: &str = "https://127.0.0.1:8200";
/// Name of the token file in the home directory written by `coffer login`.
pub const TOKEN_FILE_NAME: &str = ".coffer-token";
/// Header carrying the client token, as in Vault.
const TOKEN_HEADER: &str = "X-Vault-Token";
/// Header asking for a wrapped answer, as in Vault.
const WRAP_TTL_HEADER: &str = "X-Vault-Wrap-TTL";
/// Whole-request timeout unless `COFFER_CLIENT_TIMEOUT`/`VAULT_CLIENT_TIMEOUT` says otherwise.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Whole-transfer timeout of a snapshot download or upload: the server ends
/// a stalled transfer on its own, and a large store takes long to move.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// Time allowed to establish a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this much of a non-JSON error body is shown to the user.
const MAX_RAW_ERROR_CHARS: usize = 200;

/// Errors from building a client or talking to the server.
///
/// Messages never contain the token or request/response data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad configuration: address, CA file, token characters, timeout.
    #[error("{0}")]
    Config(String),
    /// The request could not be sent or the answer not received.
    #[error("error sending {method} {url}")]
    Transport {
        /// HTTP method.
        method: Method,
        /// Request URL (without the token, which travels in a header).
        url: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// A successful answer whose body was not JSON.
    #[error("invalid JSON in the response to {method} {url}")]
    Decode {
        /// HTTP method.
        method: Method,
        /// Request URL.
        url: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The server answered with a status of 400 or more.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The event stream could not be opened or broke.
    #[error("{0}")]
    Stream(String),
}

/// Result type of this crate's client calls.
pub type Result<T> = std::result::Result<T, Error>;

/// An error answer from the server, with Vault's `{"errors": [...]}` messages.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP method of the failed request.
    pub method: Method,
    /// URL of the failed request.
    pub url: String,
    /// HTTP status code.
    pub status: u16,
    /// The server's error messages (may be empty).
    pub errors: Vec<String>,
}

impl fmt::Display for ApiError {
    /// Formats like the `vault` CLI's "Error making API request." block.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Error making API request.\n\nURL: {} {}\nCode: {}.",
            self.method, self.url, self.status
        )?;
        if self.errors.is_empty() {
            write!(f, " No error messages in the response.")?;
            if let Some(hint) = status_hint(self.status) {
                write!(f, "\n\n{hint}")?;
            }
            return Ok(());
        }
        writeln!(f, " Errors:")?;
        for e in &self.errors {
            write!(f, "\n* {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// What an error status without messages most likely means.
fn status_hint(status: u16) -> Option<&'static str> {
    Some(match status {
        400 => "The server refused the request as invalid; check the path and the data sent.",
        403 => "Permission denied: the token may not do this here (or it is invalid or expired).",
        404 => {
            "Nothing is at this path, or nothing serves it: check the mount and the path \
                (`coffer read sys/mounts` lists the mounts)."
        }
        405 => "This path does not support this operation.",
        429 => "Too many requests: try again later.",
        503 => "The server is sealed or not ready: see `coffer status`.",
        s if s >= 500 => "The server failed to handle the request; its log says why.",
        _ => return None,
    })
}

/// One answer from the server: status and parsed JSON body (if any).
#[derive(Clone)]
pub struct Response {
    /// HTTP method of the request.
    pub method: Method,
    /// URL of the request.
    pub url: String,
    /// HTTP status code.
    pub status: u16,
    /// The JSON body; `None` for an empty body (e.g. 204).
    pub body: Option<Value>,
}

/// Prints whether there is a body, never the body (it may hold secrets).
impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("status", &self.status)
            .field("body", &self.body.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Response {
    /// True for a 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The `data` member of the body, when present and not null.
    pub fn data(&self) -> Option<&Value> {
        self.body
            .as_ref()
            .and_then(|b| b.get("data"))
            .filter(|d| !d.is_null())
    }

    /// The messages of a Vault `{"errors": [...]}` body.
    pub fn errors(&self) -> Vec<String> {
        self.body
            .as_ref()
            .and_then(|b| b.get("errors"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|e| match e {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Turns a status of 400 or more into an [`ApiError`].
    pub fn error_for_status(self) -> Result<Response> {
        if self.status < 400 {
            return Ok(self);
        }
        Err(Error::Api(self.into_api_error()))
    }

    /// This response as an [`ApiError`] (whatever its status).
    pub fn into_api_error(self) -> ApiError {
        let errors = self.errors();
        ApiError {
            method: self.method,
            url: self.url,
            status: self.status,
            errors,
        }
    }
}

/// Everything needed to build a [`Client`].
#[derive(Clone)]
pub struct Config {
    /// Base address, e.g. `https://127.0.0.1:8200`.
    pub address: String,
    /// Client token, if any.
    pub token: Option<Zeroizing<String>>,
    /// PEM file with the CA certificate(s) to trust instead of the system roots.
    pub ca_cert: Option<PathBuf>,
    /// Accept any server certificate (testing only).
    pub skip_verify: bool,
    /// Whole-request timeout.
    pub timeout: Duration,
}

/// Prints whether a token is set, never the token.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_cert", &self.ca_cert)
            .field("skip_verify", &self.skip_verify)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Config {
    /// Reads the configuration from the environment; `address` (the
    /// `--address` flag) wins over `COFFER_ADDR`/`VAULT_ADDR`.
    pub fn from_env(address: Option<&str>) -> Result<Config> {
        let address = address
            .map(str::to_owned)
            .or_else(|| env_either("COFFER_ADDR", "VAULT_ADDR"))
            .unwrap_or_else(|| DEFAULT_ADDRESS.to_owned());
        let token = match env_either("COFFER_TOKEN", "VAULT_TOKEN") {
            Some(t) => Some(Zeroizing::new(t.trim().to_owned())),
            None => read_token_file()?,
        };
        let skip_verify = match env_either("COFFER_SKIP_VERIFY", "VAULT_SKIP_VERIFY") {
            Some(v) => parse_bool(&v)
                .ok_or_else(|| Error::Config(format!("invalid boolean in *_SKIP_VERIFY: {v:?}")))?,
            None => false,
        };
        let timeout = match env_either("COFFER_CLIENT_TIMEOUT", "VAULT_CLIENT_TIMEOUT") {
            Some(v) => parse_timeout(&v).ok_or_else(|| {
                Error::Config(format!("invalid duration in *_CLIENT_TIMEOUT: {v:?}"))
            })?,
            None => DEFAULT_TIMEOUT,
        };
        Ok(Config {
            address,
            token,
            ca_cert: env_either("COFFER_CACERT", "VAULT_CACERT").map(PathBuf::from),
            skip_verify,
            timeout,
        })
    }
}

/// A configured connection to one server.
#[derive(Clone)]
pub struct Client {
    http: HttpClient,
    base: Url,
    token: Option<Zeroizing<String>>,
    /// `X-Vault-Wrap-TTL` sent with every request (`--wrap-ttl`).
    wrap_ttl: Option<String>,
    /// How the server is verified, for connections made outside reqwest
    /// (the event stream's WebSocket).
    pub(crate) trust: Trust,
}

/// How a client verifies the server's certificate.
#[derive(Clone, Debug)]
pub(crate) enum Trust {
    /// The platform's roots.
    System,
    /// Only these certificates (`COFFER_CACERT`, `-ca-cert`).
    Pinned(Vec<CertificateDer<'static>>),
    /// Nothing is checked (`-tls-skip-verify`, testing only).
    Skip,
}

/// Prints the base URL and whether a token is set, never the token.
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("http", &self.http)
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Client {
    /// A client configured from the environment only (no flags).
    pub fn from_env() -> Result<Client> {
        Client::new(Config::from_env(None)?)
    }

    /// A client from an explicit configuration.
    pub fn new(config: Config) -> Result<Client> {
        let base = Url::parse(config.address.trim())
            .map_err(|e| Error::Config(format!("invalid address {:?}: {e}", config.address)))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(Error::Config(format!(
                "invalid address {:?}: expected http:// or https://",
                config.address
            )));
        }
        let mut headers = HeaderMap::new();
        headers.insert("X-Vault-Request", HeaderValue::from_static("true"));
        let mut builder = HttpClient::builder()
            .default_headers(headers)
            .user_agent(concat!("coffer/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout)
            .connect_timeout(CONNECT_TIMEOUT)
            // Never follow redirects: they could carry the token elsewhere.
            .redirect(reqwest::redirect::Policy::none());
        let mut trust = Trust::System;
        if config.skip_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
            trust = Trust::Skip;
        } else if let Some(path) = &config.ca_cert {
            let certs = load_ca(path)?;
            let tls = tls::pinned_client_config(certs.clone())
                .map_err(|e| Error::Config(format!("CA file {}: {e}", path.display())))?;
            builder = builder.tls_backend_preconfigured(tls);
            trust = Trust::Pinned(certs);
        }
        let http = builder
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        let client = Client {
            http,
            base,
            token: None,
            wrap_ttl: None,
            trust,
        };
        Ok(match config.token {
            Some(t) => client.with_token(t),
            None => client,
        })
    }

    /// The same client using `token` (an empty token means none).
    pub fn with_token(mut self, token: Zeroizing<String>) -> Client {
        self.token = if token.is_empty() { None } else { Some(token) };
        self
    }

    /// The same client asking for every answer wrapped for `ttl` (`60s`,
    /// `5m`; `None` or blank: not wrapped).
    pub fn with_wrap_ttl(mut self, ttl: Option<String>) -> Client {
        self.wrap_ttl = ttl.filter(|t| !t.trim().is_empty());
        self
    }

    /// The token, for connections made outside reqwest (the event stream).
    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_ref().map(|t| t.as_str())
    }

    /// Whether a token is set (the token itself stays private).
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether `token` is the client's own token (constant-time comparison).
    pub fn token_is(&self, token: &str) -> bool {
        self.token.as_ref().is_some_and(|t| {
            t.len() == token.len()
                && t.bytes()
                    .zip(token.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        })
    }

    /// The server's base address.
    pub fn address(&self) -> &Url {
        &self.base
    }

    /// A request to `url` carrying this client's token (a sensitive header,
    /// never logged), if it has one.
    fn authed(&self, method: Method, url: Url) -> Result<reqwest::blocking::RequestBuilder> {
        let req = self.http.request(method, url);
        let Some(token) = &self.token else {
            return Ok(req);
        };
        let mut value = HeaderValue::from_str(token.as_str()).map_err(|_| {
            Error::Config("the token contains characters not allowed in a header".into())
        })?;
        value.set_sensitive(true);
        Ok(req.header(TOKEN_HEADER, value))
    }

    /// Sends a body as given and returns the answer as received (status,
    /// Content-Type, bytes): for `coffer agent`'s API proxy. `path` is
    /// below `/v1/` and may carry a query; the host is always this client's.
    pub fn send_raw(
        &self,
        method: Method,
        path: &str,
        wrap_ttl: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<(u16, Option<String>, Vec<u8>)> {
        let url = self.url(path);
        let shown = url.to_string();
        let mut req = self.authed(method.clone(), url)?;
        if let Some(ttl) = wrap_ttl.and_then(|t| HeaderValue::from_str(t.trim()).ok()) {
            req = req.header(WRAP_TTL_HEADER, ttl);
        }
        if let Some(ct) = content_type.and_then(|c| HeaderValue::from_str(c).ok()) {
            req = req.header(CONTENT_TYPE, ct);
        }
        if !body.is_empty() {
            req = req.body(body);
        }
        let transport = |source| Error::Transport {
            method: method.clone(),
            url: shown.clone(),
            source,
        };
        let resp = req.send().map_err(transport)?;
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = resp.bytes().map_err(transport)?.to_vec();
        Ok((status, ct, bytes))
    }

    /// Sends one request to `/v1/<path>` and returns the answer whatever its
    /// status. `path` may carry a query string (`secret/data/a?version=2`).
    pub fn request(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Response> {
        self.send(method, path, body, None)
    }

    /// Like [`Client::request`], with an explicit request Content-Type.
    pub fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        content_type: Option<&'static str>,
    ) -> Result<Response> {
        let url = self.url(path);
        let shown = url.to_string();
        let mut req = self.authed(method.clone(), url)?;
        if let Some(ttl) = &self.wrap_ttl {
            let value = HeaderValue::from_str(ttl.trim())
                .map_err(|_| Error::Config(format!("invalid wrap TTL {ttl:?}")))?;
            req = req.header(WRAP_TTL_HEADER, value);
        }
        if let Some(body) = body {
            let bytes =
                Zeroizing::new(serde_json::to_vec(body).map_err(|source| Error::Decode {
                    method: method.clone(),
                    url: shown.clone(),
                    source,
                })?);
            req = req
                .header(CONTENT_TYPE, content_type.unwrap_or("application/json"))
                .body(bytes.to_vec());
        }
        let resp = req.send().map_err(|source| Error::Transport {
            method: method.clone(),
            url: shown.clone(),
            source,
        })?;
        answer(method, shown, resp)
    }

    /// Copies the answer to `GET /v1/<path>` into `out` as it arrives (a
    /// snapshot: never held whole) and returns the bytes copied. An error
    /// status is an [`Error::Api`]; a transfer cut short an [`Error::Stream`].
    pub fn download(&self, path: &str, out: &mut dyn std::io::Write) -> Result<u64> {
        let url = self.url(path);
        let shown = url.to_string();
        let mut resp = self
            .authed(Method::GET, url)?
            .timeout(TRANSFER_TIMEOUT)
            .send()
            .map_err(|source| Error::Transport {
                method: Method::GET,
                url: shown.clone(),
                source,
            })?;
        if resp.status().as_u16() >= 400 {
            return Err(Error::Api(
                answer(Method::GET, shown, resp)?.into_api_error(),
            ));
        }
        resp.copy_to(out)
            .map_err(|e| Error::Stream(format!("the transfer from {shown} failed: {e}")))
    }

    /// Sends `file` as the body of `POST /v1/<path>`, read as it goes out
    /// (a snapshot restore: never held whole), and returns the answer
    /// whatever its status.
    pub fn upload(&self, path: &str, file: std::fs::File) -> Result<Response> {
        let url = self.url(path);
        let shown = url.to_string();
        let resp = self
            .authed(Method::POST, url)?
            .timeout(TRANSFER_TIMEOUT)
            .header(CONTENT_TYPE, "application/gzip")
            .body(reqwest::blocking::Body::from(file))
            .send()
            .map_err(|source| Error::Transport {
                method: Method::POST,
                url: shown.clone(),
                source,
            })?;
        answer(Method::POST, shown, resp)
    }

    /// Reads a path. `Ok(None)` when the server answers 404 without data
    /// (a 404 carrying data, like a deleted KV version, is returned).
    pub fn read(&self, path: &str) -> Result<Option<Value>> {
        let resp = self.request(Method::GET, path, None)?;
        if resp.status == 404 {
            return Ok(resp.data().is_some().then_some(resp.body).flatten());
        }
        Ok(resp.error_for_status()?.body)
    }

    /// Writes (POSTs) `data` to a path; `Ok(None)` for an empty answer.
    pub fn write(&self, path: &str, data: &Value) -> Result<Option<Value>> {
        Ok(self
            .request(Method::POST, path, Some(data))?
            .error_for_status()?
            .body)
    }

    /// Lists the keys under a path (`GET ?list=true`); empty when absent.
    pub fn list(&self, path: &str) -> Result<Vec<String>> {
        self.list_page(path, "", None)
    }

    /// One page of [`Client::list`] (OpenBao's paginated LIST, which KV v2
    /// metadata answers): the keys after `after`, at most `limit`.
    pub fn list_page(&self, path: &str, after: &str, limit: Option<u64>) -> Result<Vec<String>> {
        let mut query = String::from("list=true");
        if !after.is_empty() {
            query.push_str("&after=");
            query.push_str(&crate::events::url_component(after));
        }
        if let Some(n) = limit {
            query.push_str(&format!("&limit={n}"));
        }
        let resp = self.request(Method::GET, &format!("{path}?{query}"), None)?;
        if resp.status == 404 {
            return Ok(Vec::new());
        }
        let resp = resp.error_for_status()?;
        Ok(resp
            .data()
            .and_then(|d| d.get("keys"))
            .and_then(Value::as_array)
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Deletes a path; `Ok(None)` for an empty answer.
    pub fn delete(&self, path: &str) -> Result<Option<Value>> {
        Ok(self
            .request(Method::DELETE, path, None)?
            .error_for_status()?
            .body)
    }

    /// The full URL of an API path (`/v1/` plus each segment, escaped).
    pub fn url(&self, path: &str) -> Url {
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push("v1");
            segments.extend(path.trim_start_matches('/').split('/'));
        }
        url.set_query(query);
        url
    }
}

/// Reads a whole answer (zeroized once parsed) into a [`Response`].
fn answer(method: Method, shown: String, resp: reqwest::blocking::Response) -> Result<Response> {
    let status = resp.status().as_u16();
    let bytes = Zeroizing::new(
        resp.bytes()
            .map_err(|source| Error::Transport {
                method: method.clone(),
                url: shown.clone(),
                source,
            })?
            .to_vec(),
    );
    let body = parse_body(&bytes, status).map_err(|source| Error::Decode {
        method: method.clone(),
        url: shown.clone(),
        source,
    })?;
    Ok(Response {
        method,
        url: shown,
        status,
        body,
    })
}

/// Parses a response body: empty means `None`; a non-JSON body on an error
/// status becomes a Vault-shaped error carrying (the start of) the text.
fn parse_body(bytes: &[u8], status: u16) -> serde_json::Result<Option<Value>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match serde_json::from_slice(bytes) {
        Ok(v) => Ok(Some(v)),
        Err(_) if status >= 400 => {
            let text: String = String::from_utf8_lossy(bytes)
                .trim()
                .chars()
                .take(MAX_RAW_ERROR_CHARS)
                .collect();
            Ok(Some(serde_json::json!({ "errors": [text] })))
        }
        Err(e) => Err(e),
    }
}

/// The first of two environment variables that is set and not empty.
fn env_either(primary: &str, fallback: &str) -> Option<String> {
    [primary, fallback]
        .into_iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.is_empty())
}

/// Go's `strconv.ParseBool`, as Vault uses for `VAULT_SKIP_VERIFY`.
fn parse_bool(v: &str) -> Option<bool> {
    match v.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// A timeout as plain seconds or with an `s`, `m` or `h` suffix.
fn parse_timeout(v: &str) -> Option<Duration> {
    let v = v.trim();
    let (num, unit) = match v.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => v.split_at(i),
        None => (v, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// Loads every certificate of a PEM file.
pub fn load_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject as _;
    let pem = std::fs::read(path)
        .map_err(|e| Error::Config(format!("cannot read CA file {}: {e}", path.display())))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Config(format!("invalid PEM in CA file {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "no certificate in CA file {} (expected a -----BEGIN CERTIFICATE----- block)",
            path.display()
        )));
    }
    Ok(certs)
}

/// Where `coffer login` stores the token: `$HOME/.coffer-token`.
pub fn token_file_path() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(TOKEN_FILE_NAME))
}

/// Reads the stored token, if the file exists and is not empty.
pub fn read_token_file() -> Result<Option<Zeroizing<String>>> {
    let Some(path) = token_file_path() else {
        return Ok(None);
    };
    match std::fs::read_to_string(&path) {
        Ok(s) => {
            let s = Zeroizing::new(s);
            let t = s.trim();
            Ok((!t.is_empty()).then(|| Zeroizing::new(t.to_owned())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Config(format!(
            "cannot read token file {}: {e}",
            path.display()
        ))),
    }
}

/// Stores `token` in the token file with mode 0600, replacing it atomically.
pub fn write_token_file(token: &str) -> std::io::Result<PathBuf> {
    let path = token_file_path()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "HOME is not set"))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{TOKEN_FILE_NAME}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = open_private(&tmp)?;
        file.write_all(token.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|()| path)
}

/// Creates a new file readable and writable by its owner only.
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(addr: &str) -> Client {
        Client::new(Config {
            address: addr.into(),
            token: None,
            ca_cert: None,
            skip_verify: false,
            timeout: DEFAULT_TIMEOUT,
        })
        .unwrap()
    }

    #[test]
    fn urls_are_built_under_v1_with_escaped_segments() {
        let c = client("http://127.0.0.1:8200");
        assert_eq!(
            c.url("secret/data/a b").as_str(),
            "http://127.0.0.1:8200/v1/secret/data/a%20b"
        );
        assert_eq!(
            c.url("secret/metadata/dir/?list=true").as_str(),
            "http://127.0.0.1:8200/v1/secret/metadata/dir/?list=true"
        );
        let c = client("https://vault.example:8200/prefix/");
        assert_eq!(
            c.url("/sys/health").as_str(),
            "https://vault.example:8200/prefix/v1/sys/health"
        );
    }

    #[test]
    fn bad_addresses_are_config_errors() {
        for addr in ["127.0.0.1:8200", "ftp://x", "not a url"] {
            let err = Client::new(Config {
                address: addr.into(),
                token: None,
                ca_cert: None,
                skip_verify: false,
                timeout: DEFAULT_TIMEOUT,
            })
            .unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{addr}: {err}");
        }
    }

    #[test]
    fn api_errors_read_like_vaults() {
        let resp = Response {
            method: Method::PUT,
            url: "http://h/v1/secret/data/a".into(),
            status: 400,
            body: Some(serde_json::json!({"errors": ["check-and-set parameter did not match"]})),
        };
        let text = resp.error_for_status().unwrap_err().to_string();
        assert_eq!(
            text,
            "Error making API request.\n\nURL: PUT http://h/v1/secret/data/a\nCode: 400. Errors:\n\n* check-and-set parameter did not match"
        );
    }

    #[test]
    fn an_error_without_messages_says_what_the_status_means() {
        let resp = Response {
            method: Method::POST,
            url: "http://h/v1/secret/rotate/a".into(),
            status: 404,
            body: None,
        };
        let text = resp.error_for_status().unwrap_err().to_string();
        assert!(
            text.contains("No error messages in the response.\n\nNothing is at this path"),
            "{text}"
        );
    }

    #[test]
    fn bodies_parse_leniently_only_for_errors() {
        assert_eq!(parse_body(b"", 204).unwrap(), None);
        assert_eq!(
            parse_body(b"<html>bad gateway</html>", 502).unwrap(),
            Some(serde_json::json!({"errors": ["<html>bad gateway</html>"]}))
        );
        assert!(parse_body(b"<html>", 200).is_err());
    }

    #[test]
    fn booleans_and_timeouts_parse_like_vault() {
        assert_eq!(parse_bool("true"), Some(true));
        assert_eq!(parse_bool("0"), Some(false));
        assert_eq!(parse_bool("yes"), None);
        assert_eq!(parse_timeout("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_timeout("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_timeout("0"), None);
        assert_eq!(parse_timeout("5x"), None);
        assert_eq!(parse_timeout(""), None);
    }
}

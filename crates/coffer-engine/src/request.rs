//! The core's request and response, free of HTTP.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// What a request does, as Vault's logical operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// GET.
    Read,
    /// LIST, or GET with `list=true`.
    List,
    /// POST/PUT on a path that does not exist yet.
    Create,
    /// POST/PUT on an existing path (the transport sends `Update`; the core
    /// turns it into `Create` when the engine says the path is new).
    Update,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
}

impl Operation {
    /// Vault's lower-case name of the operation.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::List => "list",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Patch => "patch",
            Operation::Delete => "delete",
        }
    }

    /// Whether the operation writes (create, update, patch).
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Operation::Create | Operation::Update | Operation::Patch
        )
    }
}

/// A request to the core.
#[derive(Clone)]
pub struct Request {
    /// Unique id, echoed as `request_id`.
    pub id: String,
    /// The operation.
    pub operation: Operation,
    /// The path below `/v1/`, without a leading slash. A trailing slash is kept.
    pub path: String,
    /// Request parameters: the JSON body, or for reads and lists the query string.
    pub data: Map<String, Value>,
    /// The client token, if one was sent.
    pub token: Option<Zeroizing<String>>,
    /// The client's address.
    pub client_addr: Option<IpAddr>,
    /// The client's TCP port, when the connection came from the client
    /// itself (not through a trusted proxy).
    pub client_port: Option<u16>,
    /// Seconds of Vault's `X-Vault-Wrap-TTL`: when set (and above zero)
    /// the response is wrapped in a single-use token (coffer-core's `wrapping`).
    pub wrap_ttl: Option<u64>,
    /// The form of that token (Vault's `X-Vault-Wrap-Format`).
    pub wrap_format: WrapFormat,
    /// The request headers the operator chose to audit
    /// (`sys/config/auditing/request-headers`), copied by the HTTP layer.
    pub audited_headers: Vec<AuditedHeader>,
    /// The raw body, streamed, for the routes that take one instead of
    /// JSON (a snapshot restore); `None` everywhere else.
    pub body: Option<ByteStream>,
    /// What the pipeline tells the transport about this request besides
    /// its answer (shared with the HTTP layer, which made it).
    pub sideband: Arc<Sideband>,
}

/// What the core records about a request while handling it, for the
/// transport that made the request: the client id once the token is known
/// (`sys/in-flight-req` shows it) and the headers a rate-limit quota adds to
/// the answer. Each is set at most once.
#[derive(Debug, Default)]
pub struct Sideband {
    /// Vault's `client_id` of the caller (the entity, or a hash of the
    /// token's policies), set after authentication.
    pub client_id: std::sync::OnceLock<String>,
    /// Response headers (name, value) the rate-limit quota asks for.
    pub headers: std::sync::OnceLock<Vec<(&'static str, String)>>,
}

/// One request header an audit device records.
#[derive(Clone, PartialEq, Eq)]
pub struct AuditedHeader {
    /// The header's name, lower-case.
    pub name: String,
    /// Its value (one entry per value the client sent).
    pub value: String,
    /// Whether devices record the value's HMAC instead of the value.
    pub hmac: bool,
}

/// Prints the name only: a value may be worth hashing.
impl fmt::Debug for AuditedHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditedHeader")
            .field("name", &self.name)
            .field("hmac", &self.hmac)
            .finish_non_exhaustive()
    }
}

/// One piece of a streamed body, or the error that ended the stream.
pub type Chunk = std::io::Result<Vec<u8>>;

/// Bytes streamed into the core (a request body) or out of it (a snapshot),
/// through a bounded channel, instead of being held whole. The receiving end
/// can be taken once; clones share it.
#[derive(Clone)]
pub struct ByteStream(Arc<parking_lot::Mutex<Option<tokio::sync::mpsc::Receiver<Chunk>>>>);

impl ByteStream {
    /// A stream holding at most `bound` chunks in flight, and the sender
    /// that feeds it (dropping the sender ends the stream).
    pub fn channel(bound: usize) -> (tokio::sync::mpsc::Sender<Chunk>, ByteStream) {
        let (tx, rx) = tokio::sync::mpsc::channel(bound.max(1));
        (tx, ByteStream(Arc::new(parking_lot::Mutex::new(Some(rx)))))
    }

    /// The receiving end, the first time it is asked for.
    pub fn take(&self) -> Option<tokio::sync::mpsc::Receiver<Chunk>> {
        self.0.lock().take()
    }
}

/// Shows nothing of the bytes.
impl std::fmt::Debug for ByteStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ByteStream")
    }
}

/// The form a wrapping token is handed out in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WrapFormat {
    /// The token itself.
    #[default]
    Token,
    /// A JWT signed by the server, standing for the token (`jwt`).
    Jwt,
}

impl WrapFormat {
    /// The format an `X-Vault-Wrap-Format` value names: `jwt`, or the plain
    /// token for anything else, as Vault reads it.
    pub fn from_header(value: &str) -> WrapFormat {
        if value == "jwt" {
            WrapFormat::Jwt
        } else {
            WrapFormat::Token
        }
    }
}

/// Prints the data's keys and whether a token was sent, never their values.
impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("id", &self.id)
            .field("operation", &self.operation)
            .field("path", &self.path)
            .field("data", &crate::redact::Keys(&self.data))
            .field("token", &crate::redact::opt(&self.token))
            .field("client_addr", &self.client_addr)
            .field("client_port", &self.client_port)
            .field("wrap_ttl", &self.wrap_ttl)
            .field("wrap_format", &self.wrap_format)
            .field("audited_headers", &self.audited_headers)
            .field("body", &self.body.is_some())
            .finish()
    }
}

impl Request {
    /// A request with a fresh id and no data or token.
    pub fn new(operation: Operation, path: impl Into<String>) -> Self {
        Request {
            id: coffer_crypto::random::uuid(),
            operation,
            path: path.into(),
            data: Map::new(),
            token: None,
            client_addr: None,
            client_port: None,
            wrap_ttl: None,
            wrap_format: WrapFormat::Token,
            audited_headers: Vec::new(),
            body: None,
            sideband: Arc::default(),
        }
    }

    /// Sets the token.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Zeroizing::new(token.into()));
        self
    }

    /// Sets the data.
    pub fn with_data(mut self, data: Value) -> Self {
        if let Value::Object(m) = data {
            self.data = m;
        }
        self
    }
}

/// What a successful login grants: the core turns it into a token and fills
/// the response's `auth` block. Auth methods return it in
/// [`Response::grant`]; they never mint tokens themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthGrant {
    /// Policies the token gets (`default` is added unless `no_default_policy`).
    pub policies: Vec<String>,
    /// Shown in lookups and audit logs; the core prefixes the mount type.
    pub display_name: String,
    /// Metadata copied to the token (and the `auth.metadata` answer).
    pub metadata: std::collections::BTreeMap<String, String>,
    /// TTL in seconds (0: the mount's default).
    pub ttl: u64,
    /// Maximum TTL in seconds (0: the mount's maximum).
    pub max_ttl: u64,
    /// Period in seconds for periodic tokens (0: none).
    pub period: u64,
    /// Uses allowed (0: unlimited).
    pub num_uses: u64,
    /// Whether the token may be renewed.
    pub renewable: bool,
    /// Client addresses (CIDR blocks) the token may be used from (empty: any).
    pub bound_cidrs: Vec<String>,
    /// Bind the token to the address of the login instead (OpenBao's
    /// `token_strictly_bind_ip`).
    pub strictly_bind_ip: bool,
    /// Leave out the `default` policy.
    pub no_default_policy: bool,
    /// The name of the authenticated identity (user name, role name, subject),
    /// for the audit trail and lockout.
    pub alias_name: String,
    /// Issue a batch token (never stored; see coffer-core's `batch_token`).
    pub batch: bool,
    /// The identity alias name this login maps to (user name, role id,
    /// user claim); the core finds or creates the entity holding it.
    /// `None`: the login has no entity.
    pub entity_alias: Option<String>,
    /// Metadata stored on a newly created alias.
    pub alias_metadata: std::collections::BTreeMap<String, String>,
    /// The auth method's group names (a JWT groups claim): external
    /// groups aliased to them on this mount get the entity as a member,
    /// the others on this mount lose it. `None`: memberships untouched.
    pub group_aliases: Option<Vec<String>>,
}

/// A lease an engine asks for when it hands out a credential that must end
/// (a dynamic database login). The core registers it, revokes it through the
/// engine when it expires or its token is revoked, and fills `lease_id`.
#[derive(Clone, Default, PartialEq)]
pub struct LeaseRequest {
    /// TTL in seconds (0: the mount's default).
    pub ttl: u64,
    /// Maximum TTL in seconds (0: the mount's maximum).
    pub max_ttl: u64,
    /// Whether the lease may be renewed.
    pub renewable: bool,
    /// Engine data needed to renew or revoke (never returned to clients).
    pub internal: Value,
}

/// Leaves out the engine's internal data.
impl std::fmt::Debug for LeaseRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseRequest")
            .field("ttl", &self.ttl)
            .field("max_ttl", &self.max_ttl)
            .field("renewable", &self.renewable)
            .field("internal", &crate::redact::Redacted)
            .finish()
    }
}

/// A response from the core, mapped by the transport to Vault's envelope.
#[derive(Clone, Default)]
pub struct Response {
    /// Status code override; by default 200 with a body, 204 without.
    pub status: Option<u16>,
    /// The `data` of the envelope.
    pub data: Option<Value>,
    /// A body sent as is, without the envelope (sys/health, sys/init, ...).
    pub raw: Option<Value>,
    /// A non-JSON body sent as is: (content type, text), e.g. the
    /// Prometheus exposition of `sys/metrics?format=prometheus`.
    pub text: Option<(&'static str, String)>,
    /// A binary body sent as is: (content type, bytes), e.g. a DER
    /// certificate or CRL of the `pki` engine.
    pub bytes: Option<(&'static str, Vec<u8>)>,
    /// A binary body streamed as it is produced: (content type, stream),
    /// e.g. a storage snapshot. An error chunk aborts the transfer, so the
    /// client sees it incomplete.
    pub stream: Option<(&'static str, ByteStream)>,
    /// The `auth` block of a login or token creation.
    pub auth: Option<Value>,
    /// Warnings.
    pub warnings: Vec<String>,
    /// Lease id of a leased secret.
    pub lease_id: String,
    /// Lease duration in seconds.
    pub lease_duration: u64,
    /// Whether the lease is renewable.
    pub renewable: bool,
    /// Type of the mount that answered.
    pub mount_type: String,
    /// Set by an auth method's login: the core mints the token.
    pub grant: Option<AuthGrant>,
    /// Set by an engine handing out a leased credential.
    pub lease: Option<LeaseRequest>,
    /// The envelope of a wrapped response: the response itself sits in the
    /// wrapping token's cubbyhole, and only this goes to the client.
    pub wrap_info: Option<WrapInfo>,
}

/// Prints whether `data`, `raw` and `auth` are set, never their contents.
impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("data", &crate::redact::opt(&self.data))
            .field("raw", &crate::redact::opt(&self.raw))
            .field("text", &self.text.as_ref().map(|(ct, _)| ct))
            .field("bytes", &self.bytes.as_ref().map(|(ct, _)| ct))
            .field("stream", &self.stream.as_ref().map(|(ct, _)| ct))
            .field("auth", &crate::redact::opt(&self.auth))
            .field("warnings", &self.warnings)
            .field("lease_id", &self.lease_id)
            .field("lease_duration", &self.lease_duration)
            .field("renewable", &self.renewable)
            .field("mount_type", &self.mount_type)
            .field("grant", &self.grant)
            .field("lease", &self.lease)
            .field("wrap_info", &self.wrap_info)
            .finish()
    }
}

impl Response {
    /// A response carrying `data`.
    pub fn data(data: Value) -> Self {
        Response {
            data: Some(data),
            ..Default::default()
        }
    }

    /// A raw body holding `data`'s fields both at the top level and under
    /// `data`, with the usual envelope, as Vault's legacy sys endpoints
    /// (`sys/audit`, `sys/policy`, `sys/config/auditing/...`) answer.
    pub fn with_top_level(data: Value) -> Self {
        let mut body = data.clone();
        if let Value::Object(top) = &mut body {
            top.insert("data".into(), data);
            top.insert(
                "request_id".into(),
                Value::String(coffer_crypto::random::uuid()),
            );
            top.insert("lease_id".into(), Value::String(String::new()));
            top.insert("renewable".into(), Value::Bool(false));
            top.insert("lease_duration".into(), Value::from(0));
            top.insert("wrap_info".into(), Value::Null);
            top.insert("warnings".into(), Value::Null);
            top.insert("auth".into(), Value::Null);
        }
        Response::raw(body)
    }

    /// An empty response (204).
    pub fn empty() -> Self {
        Response::default()
    }

    /// A body sent without the envelope.
    pub fn raw(body: Value) -> Self {
        Response {
            raw: Some(body),
            ..Default::default()
        }
    }

    /// A non-JSON body of `content_type`, sent without the envelope.
    pub fn text(content_type: &'static str, body: String) -> Self {
        Response {
            text: Some((content_type, body)),
            ..Default::default()
        }
    }

    /// A binary body of `content_type`, sent without the envelope.
    pub fn bytes(content_type: &'static str, body: Vec<u8>) -> Self {
        Response {
            bytes: Some((content_type, body)),
            ..Default::default()
        }
    }

    /// A body of `content_type` streamed from `body`, without the envelope.
    pub fn stream(content_type: &'static str, body: ByteStream) -> Self {
        Response {
            stream: Some((content_type, body)),
            ..Default::default()
        }
    }

    /// A successful login granting `grant`.
    pub fn login(grant: AuthGrant) -> Self {
        Response {
            grant: Some(grant),
            ..Default::default()
        }
    }

    /// Sets the status code.
    pub fn with_status(mut self, code: u16) -> Self {
        self.status = Some(code);
        self
    }

    /// The answer to a LIST: `{"keys": [...]}`, or 404 when there are none.
    pub fn list(keys: Vec<String>) -> crate::Result<Self> {
        if keys.is_empty() {
            return Err(crate::Error::NotFound);
        }
        Ok(Response::data(serde_json::json!({ "keys": keys })))
    }
}

/// The `wrap_info` block of a wrapped response.
#[derive(Clone)]
pub struct WrapInfo {
    /// The wrapping token.
    pub token: Zeroizing<String>,
    /// Its accessor.
    pub accessor: String,
    /// Its TTL in seconds.
    pub ttl: u64,
    /// When it was created (RFC 3339).
    pub creation_time: String,
    /// The path whose answer it wraps.
    pub creation_path: String,
    /// The accessor of the token (or AppRole secret ID) inside, if any.
    pub wrapped_accessor: String,
}

/// Leaves out the token.
impl std::fmt::Debug for WrapInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrapInfo")
            .field("token", &crate::redact::Redacted)
            .field("accessor", &self.accessor)
            .field("ttl", &self.ttl)
            .field("creation_time", &self.creation_time)
            .field("creation_path", &self.creation_path)
            .field("wrapped_accessor", &self.wrapped_accessor)
            .finish()
    }
}

impl WrapInfo {
    /// The block as Vault's envelope carries it (`wrapped_accessor` only when set).
    pub fn to_json(&self) -> Value {
        let mut out = serde_json::json!({
            "token": self.token.as_str(),
            "accessor": self.accessor,
            "ttl": self.ttl,
            "creation_time": self.creation_time,
            "creation_path": self.creation_path,
        });
        if !self.wrapped_accessor.is_empty() {
            out["wrapped_accessor"] = serde_json::json!(self.wrapped_accessor);
        }
        out
    }
}

//! The change-event stream: `GET /v1/sys/events/subscribe/<event_type>?json=true`
//! upgraded to a WebSocket, as Vault serves it. Each message is one
//! CloudEvents JSON object (see [`Event`]); events carry paths and
//! versions, never secret values.
//!
//! [`Subscriber`] is one connection; [`Watch`] reconnects by itself,
//! asking the server to replay what it missed (`since=<last event id>`).
//! When the server cannot (its ring of recent events no longer holds that
//! id, or it restarted), the first event is of type [`RESYNC`]: the
//! consumer should then read everything it watches again. A [`Watch`]
//! also hands out a [`RESYNC`] event of its own after every reconnect,
//! since events may have been missed in between (another server node, a
//! server that lost its ring).
//!
//! The server pings every 5 s. A subscriber that hears nothing at all for
//! its heartbeat ([`DEFAULT_HEARTBEAT`]) pings the server; when the next
//! heartbeat also passes in silence, the connection is taken as dead (a
//! half-open TCP connection, a frozen server) and a [`Watch`] reconnects.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Map, Value};
use tungstenite::client::IntoClientRequest as _;
use tungstenite::http::HeaderValue;
use tungstenite::{Message, WebSocket};

use crate::{ApiError, Client, Error};

/// The event type a server sends when it cannot replay from a cursor.
pub const RESYNC: &str = "coffer/resync";

/// Longest wait between two reconnection attempts of a [`Watch`].
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How long a subscriber waits in silence before it pings the server (and,
/// after twice that, gives the connection up).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);

/// How long connecting (TCP) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One change event, parsed from Vault's CloudEvents shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event's id (the cursor to resume after it).
    pub id: String,
    /// Its type (`kv-v2/data-write`, `coffer/rotation-finish`, ...).
    pub event_type: String,
    /// The API path the change was made on (`secret/data/app/db`).
    pub path: String,
    /// The path readers read (`secret/data/app/db`); the server shows an
    /// event only to tokens that may read it.
    pub data_path: String,
    /// The event's metadata (`current_version`, `operation`, ...).
    pub metadata: Map<String, Value>,
    /// When it happened (RFC 3339).
    pub time: String,
    /// The whole message as the server sent it.
    pub raw: Value,
}

impl Event {
    /// Parses one message; `None` when it is not an event.
    pub fn from_json(v: &Value) -> Option<Event> {
        let data = v.get("data")?;
        let meta = data
            .get("event")
            .and_then(|e| e.get("metadata"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let text = |m: &Map<String, Value>, k: &str| {
            m.get(k).and_then(Value::as_str).unwrap_or("").to_string()
        };
        let event_type = data
            .get("event_type")
            .and_then(Value::as_str)
            .or_else(|| v.get("type").and_then(Value::as_str))?
            .to_string();
        Some(Event {
            id: v.get("id").and_then(Value::as_str)?.to_string(),
            event_type,
            path: text(&meta, "path"),
            data_path: text(&meta, "data_path"),
            time: v
                .get("time")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            metadata: meta,
            raw: v.clone(),
        })
    }

    /// Whether this is the server's "replay impossible, read again" marker.
    pub fn is_resync(&self) -> bool {
        self.event_type == RESYNC
    }

    /// The marker a [`Watch`] hands out after reconnecting.
    fn local_resync() -> Event {
        Event {
            id: String::new(),
            event_type: RESYNC.to_string(),
            path: String::new(),
            data_path: String::new(),
            metadata: Map::new(),
            time: String::new(),
            raw: Value::Null,
        }
    }
}

/// A plain or TLS connection to the server.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// One open event stream.
pub struct Subscriber {
    socket: WebSocket<Stream>,
    last_id: Option<String>,
    /// A ping was sent after a silent heartbeat and nothing came since.
    ping_out: bool,
}

/// What one read of a [`Subscriber`] gave.
#[derive(Debug)]
pub enum Next {
    /// An event.
    Event(Box<Event>),
    /// Nothing to deliver: a heartbeat passed in silence (a ping was
    /// sent), or only a ping or pong came.
    Idle,
    /// The server closed the stream (its token died, or it is stopping).
    Closed,
}

/// Shows the cursor, never the connection's token.
impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("last_id", &self.last_id)
            .finish()
    }
}

fn stream_error(what: impl std::fmt::Display) -> Error {
    Error::Stream(what.to_string())
}

impl Client {
    /// Opens the event stream for `event_type` (`*`, `kv-v2/*`,
    /// `kv-v2/data-write`, ...), resuming after the event `since` when
    /// given. A refusal (403, 400) is an [`Error::Api`].
    pub fn subscribe(&self, event_type: &str, since: Option<&str>) -> Result<Subscriber, Error> {
        self.subscribe_with(event_type, since, DEFAULT_HEARTBEAT)
    }

    /// [`Client::subscribe`] with a heartbeat of `heartbeat`: silence that
    /// long brings a ping, twice that long ends the connection.
    pub fn subscribe_with(
        &self,
        event_type: &str,
        since: Option<&str>,
        heartbeat: Duration,
    ) -> Result<Subscriber, Error> {
        let mut path = format!("sys/events/subscribe/{event_type}?json=true");
        if let Some(id) = since {
            let enc: String = url_component(id);
            path.push_str(&format!("&since={enc}"));
        }
        let mut url = self.url(&path);
        let shown = url.to_string();
        let tls = url.scheme() == "https";
        let ws_scheme = if tls { "wss" } else { "ws" };
        url.set_scheme(ws_scheme)
            .map_err(|()| stream_error("cannot build the WebSocket URL"))?;
        let host = url
            .host_str()
            .ok_or_else(|| stream_error("the address has no host"))?
            .to_string();
        let port = url.port_or_known_default().unwrap_or(8200);
        let tcp = connect(host.trim_matches(['[', ']']), port)
            .map_err(|e| stream_error(format!("cannot connect to {shown}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        // Bounds the handshake too, and makes every later read return
        // after a heartbeat at most.
        tcp.set_read_timeout(Some(heartbeat.max(Duration::from_millis(10))))
            .map_err(|e| stream_error(format!("cannot set a read timeout: {e}")))?;
        let stream = if tls {
            let config = crate::tls::stream_config(&self.trust).map_err(stream_error)?;
            let name = rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']))
                .map_err(|e| stream_error(format!("invalid server name {host:?}: {e}")))?
                .to_owned();
            let conn = rustls::ClientConnection::new(Arc::new(config), name)
                .map_err(|e| stream_error(format!("TLS: {e}")))?;
            Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)))
        } else {
            Stream::Plain(tcp)
        };
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| stream_error(format!("invalid WebSocket request: {e}")))?;
        if let Some(token) = self.token() {
            let mut value = HeaderValue::from_str(token).map_err(|_| {
                Error::Config("the token contains characters not allowed in a header".into())
            })?;
            value.set_sensitive(true);
            request.headers_mut().insert("X-Vault-Token", value);
        }
        let (socket, _) = tungstenite::client(request, stream).map_err(|e| match e {
            tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp)) => {
                let status = resp.status().as_u16();
                let errors = resp
                    .body()
                    .as_deref()
                    .and_then(|b| serde_json::from_slice::<Value>(b).ok())
                    .and_then(|v| v.get("errors").cloned())
                    .and_then(|v| serde_json::from_value::<Vec<String>>(v).ok())
                    .unwrap_or_default();
                Error::Api(ApiError {
                    method: Method::GET,
                    url: shown.clone(),
                    status,
                    errors,
                })
            }
            tungstenite::HandshakeError::Failure(e) => {
                stream_error(format!("WebSocket handshake with {shown} failed: {e}"))
            }
            tungstenite::HandshakeError::Interrupted(_) => {
                stream_error(format!("WebSocket handshake with {shown} interrupted"))
            }
        })?;
        Ok(Subscriber {
            socket,
            last_id: since.map(str::to_string),
            ping_out: false,
        })
    }
}

/// Connects to the first address of `host` that answers, each within
/// [`CONNECT_TIMEOUT`].
fn connect(host: &str, port: u16) -> std::io::Result<TcpStream> {
    use std::net::ToSocketAddrs as _;
    let mut last = None;
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no address for the host")
    }))
}

/// Percent-encodes a query parameter value.
pub(crate) fn url_component(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl Subscriber {
    /// The next event; `Ok(None)` when the server closed the stream (its
    /// token died, or it is shutting down). A connection silent for two
    /// heartbeats is an error.
    pub fn next_event(&mut self) -> Result<Option<Event>, Error> {
        loop {
            match self.next_message()? {
                Next::Event(ev) => return Ok(Some(*ev)),
                Next::Idle => {}
                Next::Closed => return Ok(None),
            }
        }
    }

    /// Reads until an event arrives, the stream closes, a ping or pong
    /// comes, or a heartbeat passes in silence (then it pings the server);
    /// the last two are [`Next::Idle`]. A second silent heartbeat in a row
    /// is an error.
    pub fn next_message(&mut self) -> Result<Next, Error> {
        loop {
            let msg = match self.socket.read() {
                Ok(m) => m,
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return Ok(Next::Closed)
                }
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if self.ping_out {
                        return Err(stream_error(
                            "event stream: the server sent nothing for two heartbeats",
                        ));
                    }
                    self.ping_out = true;
                    match self.socket.send(Message::Ping(Vec::new().into())) {
                        Ok(()) => {}
                        Err(tungstenite::Error::Io(e))
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        Err(e) => return Err(stream_error(format!("event stream: {e}"))),
                    }
                    return Ok(Next::Idle);
                }
                Err(e) => return Err(stream_error(format!("event stream: {e}"))),
            };
            self.ping_out = false;
            let text = match msg {
                Message::Text(t) => t.as_str().to_string(),
                Message::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
                Message::Close(_) => return Ok(Next::Closed),
                Message::Ping(_) | Message::Pong(_) => return Ok(Next::Idle),
                Message::Frame(_) => continue,
            };
            let Ok(v) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if let Some(ev) = Event::from_json(&v) {
                self.last_id = Some(ev.id.clone());
                return Ok(Next::Event(Box::new(ev)));
            }
        }
    }

    /// The id of the last event received (the cursor to resume from).
    pub fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }
}

/// Told of a [`Watch`]'s connection: `Ok` when it (re)connected, `Err`
/// with the reason when an attempt failed or the stream dropped.
pub type StateHook = Box<dyn FnMut(Result<(), &Error>) + Send>;

/// An event stream that reconnects by itself, resuming from the last event
/// it delivered; retries with a capped, jittered backoff while the server
/// cannot be reached. After every reconnect its first event is a
/// [`RESYNC`] marker: read everything again.
pub struct Watch {
    client: Client,
    event_type: String,
    sub: Option<Subscriber>,
    last_id: Option<String>,
    failures: u32,
    heartbeat: Duration,
    connected_before: bool,
    resync_due: bool,
    hook: Option<StateHook>,
}

/// Shows the subscription, never the client's token.
impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("event_type", &self.event_type)
            .field("connected", &self.sub.is_some())
            .field("last_id", &self.last_id)
            .field("failures", &self.failures)
            .field("heartbeat", &self.heartbeat)
            .finish()
    }
}

impl Watch {
    /// A watch on `event_type` through `client` (connects on first use).
    pub fn new(client: Client, event_type: &str) -> Watch {
        Watch {
            client,
            event_type: event_type.to_string(),
            sub: None,
            last_id: None,
            failures: 0,
            heartbeat: DEFAULT_HEARTBEAT,
            connected_before: false,
            resync_due: false,
            hook: None,
        }
    }

    /// Sets the heartbeat (see [`Client::subscribe_with`]).
    pub fn heartbeat(mut self, heartbeat: Duration) -> Watch {
        self.heartbeat = heartbeat;
        self
    }

    /// Calls `hook` on every connection, failed attempt and drop.
    pub fn on_state(mut self, hook: StateHook) -> Watch {
        self.hook = Some(hook);
        self
    }

    /// Changes the token: the stream is opened again with it (and the next
    /// event is a [`RESYNC`] marker).
    pub fn set_client(&mut self, client: Client) {
        self.client = client;
        self.sub = None;
    }

    /// Whether the stream is open now.
    pub fn is_connected(&self) -> bool {
        self.sub.is_some()
    }

    fn tell(&mut self, state: Result<(), &Error>) {
        if let Some(hook) = self.hook.as_mut() {
            hook(state);
        }
    }

    /// Connects now (so that events after this call are not missed), or
    /// returns why it cannot.
    pub fn connect(&mut self) -> Result<(), Error> {
        if self.sub.is_none() {
            let sub = match self.client.subscribe_with(
                &self.event_type,
                self.last_id.as_deref(),
                self.heartbeat,
            ) {
                Ok(sub) => sub,
                Err(e) => {
                    self.tell(Err(&e));
                    return Err(e);
                }
            };
            self.sub = Some(sub);
            self.failures = 0;
            if self.connected_before {
                self.resync_due = true;
            }
            self.connected_before = true;
            self.tell(Ok(()));
        }
        Ok(())
    }

    /// Blocks until the next event. A dropped connection is reopened from
    /// the last event's id; a refusal by the server (a 4xx: the token is
    /// no longer valid or may not subscribe) is returned.
    pub fn next_event(&mut self) -> Result<Event, Error> {
        loop {
            if let Some(ev) = self.poll_event()? {
                return Ok(ev);
            }
        }
    }

    /// Like [`Watch::next_event`], but returns `Ok(None)` after a heartbeat
    /// without events, or after one failed reconnection attempt (and its
    /// backoff), so that the caller can look at other things.
    pub fn poll_event(&mut self) -> Result<Option<Event>, Error> {
        if let Err(e) = self.connect() {
            if matches!(&e, Error::Api(a) if (400..500).contains(&a.status)) {
                return Err(e);
            }
            self.failures = self.failures.saturating_add(1);
            std::thread::sleep(backoff(self.failures));
            return Ok(None);
        }
        if self.resync_due {
            self.resync_due = false;
            return Ok(Some(Event::local_resync()));
        }
        let Some(sub) = self.sub.as_mut() else {
            return Ok(None);
        };
        let why = match sub.next_message() {
            Ok(Next::Event(ev)) => {
                self.last_id = Some(ev.id.clone());
                return Ok(Some(*ev));
            }
            Ok(Next::Idle) => return Ok(None),
            Ok(Next::Closed) => stream_error("the server closed the event stream"),
            Err(e) => e,
        };
        self.sub = None;
        self.tell(Err(&why));
        self.failures = self.failures.saturating_add(1);
        std::thread::sleep(backoff(self.failures));
        Ok(None)
    }
}

/// 100 ms doubling to [`MAX_BACKOFF`], with up to 50 % jitter.
fn backoff(failures: u32) -> Duration {
    let base = Duration::from_millis(100)
        .saturating_mul(1u32 << failures.min(7))
        .min(MAX_BACKOFF);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    base + base.mul_f64(f64::from(nanos % 500) / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vault_shaped_event_parses() {
        let v = serde_json::json!({
            "id": "e1", "source": "coffer", "specversion": "1.0",
            "type": "kv-v2/data-write", "datacontenttype": "application/cloudevents",
            "time": "2026-01-01T00:00:00Z",
            "data": {"event": {"id": "e1", "metadata": {
                "path": "secret/data/app/db", "current_version": "3",
                "operation": "data-write", "data_path": "secret/data/app/db"}},
                "event_type": "kv-v2/data-write",
                "plugin_info": {"mount_path": "secret/", "plugin": "kv"}}
        });
        let e = Event::from_json(&v).unwrap();
        assert_eq!(e.event_type, "kv-v2/data-write");
        assert_eq!(e.data_path, "secret/data/app/db");
        assert_eq!(e.metadata["current_version"], "3");
        assert!(!e.is_resync());
        assert!(Event::from_json(&serde_json::json!({"hello": 1})).is_none());
    }

    fn event_json(id: &str) -> String {
        serde_json::json!({
            "id": id, "type": "kv-v2/data-write", "time": "2026-01-01T00:00:00Z",
            "data": {"event": {"id": id, "metadata": {"path": "secret/data/a",
                "data_path": "secret/data/a"}}, "event_type": "kv-v2/data-write"}
        })
        .to_string()
    }

    /// A WebSocket server on loopback: the first connection gets one event
    /// and then silence (its socket open, nothing read, no pong: a frozen
    /// peer); the second gets one event and stays. Returns the address and
    /// the request URIs it saw.
    fn frozen_then_live_server() -> (String, std::sync::mpsc::Receiver<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (seen_tx, seen_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut keep = Vec::new();
            for (n, id) in ["e1", "e2"].into_iter().enumerate() {
                let (tcp, _) = listener.accept().unwrap();
                let seen = seen_tx.clone();
                #[allow(clippy::result_large_err)] // tungstenite's callback signature
                let callback = move |req: &tungstenite::handshake::server::Request, resp| {
                    let _ = seen.send(req.uri().to_string());
                    Ok(resp)
                };
                let mut ws = tungstenite::accept_hdr(tcp, callback).unwrap();
                ws.send(Message::text(event_json(id))).unwrap();
                if n == 1 {
                    // Live: answer pings for a while.
                    for _ in 0..50 {
                        if ws.read().is_err() {
                            break;
                        }
                    }
                }
                keep.push(ws);
            }
            std::thread::sleep(Duration::from_secs(30));
        });
        (format!("http://{addr}"), seen_rx)
    }

    #[test]
    fn a_silent_stream_is_given_up_and_reopened_with_a_resync() {
        let (addr, seen) = frozen_then_live_server();
        let client = Client::new(crate::Config {
            address: addr,
            token: Some(zeroize::Zeroizing::new("t-test".into())),
            ca_cert: None,
            skip_verify: false,
            timeout: Duration::from_secs(5),
        })
        .unwrap();
        let states = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = states.clone();
        let mut watch = Watch::new(client, "*")
            .heartbeat(Duration::from_millis(200))
            .on_state(Box::new(move |s| log.lock().unwrap().push(s.is_ok())));
        let started = std::time::Instant::now();
        assert_eq!(watch.next_event().unwrap().id, "e1");
        // Silence: a ping after one heartbeat, given up after the second.
        let ev = watch.next_event().unwrap();
        assert!(ev.is_resync(), "a reconnect starts with a resync: {ev:?}");
        assert_eq!(watch.next_event().unwrap().id, "e2");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(*states.lock().unwrap(), vec![true, false, true]);
        assert_eq!(seen.recv().unwrap(), "/v1/sys/events/subscribe/*?json=true");
        assert_eq!(
            seen.recv().unwrap(),
            "/v1/sys/events/subscribe/*?json=true&since=e1",
            "the reconnect resumes after the last event"
        );
        // The live stream answers pings: it idles without being given up.
        for _ in 0..4 {
            assert!(watch.poll_event().unwrap().is_none());
        }
        assert!(watch.is_connected());
    }

    #[test]
    fn backoff_is_capped() {
        assert!(backoff(1) >= Duration::from_millis(200));
        assert!(backoff(50) <= MAX_BACKOFF + MAX_BACKOFF / 2);
    }
}

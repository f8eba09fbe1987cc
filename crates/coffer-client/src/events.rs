//! The change-event stream: `GET /v1/sys/events/subscribe/<event_type>?json=true`
//! upgraded to a WebSocket, as Vault serves it. Each message is one
//! CloudEvents JSON object (see [`Event`]); events carry paths and
//! versions, never secret values.
//!
//! [`Subscriber`] is one connection; [`Watch`] reconnects by itself,
//! asking the server to replay what it missed (`since=<last event id>`).
//! When the server cannot (its ring of recent events no longer holds that
//! id, or it restarted), the first event is of type [`RESYNC`]: the
//! consumer should then read everything it watches again.

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
        let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port))
            .map_err(|e| stream_error(format!("cannot connect to {shown}: {e}")))?;
        let _ = tcp.set_nodelay(true);
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
        })
    }
}

/// Percent-encodes a query parameter value.
fn url_component(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl Subscriber {
    /// The next event; `Ok(None)` when the server closed the stream (its
    /// token died, or it is shutting down).
    pub fn next_event(&mut self) -> Result<Option<Event>, Error> {
        loop {
            let msg = match self.socket.read() {
                Ok(m) => m,
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return Ok(None)
                }
                Err(e) => return Err(stream_error(format!("event stream: {e}"))),
            };
            let text = match msg {
                Message::Text(t) => t.as_str().to_string(),
                Message::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
                Message::Close(_) => return Ok(None),
                _ => continue,
            };
            let Ok(v) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if let Some(ev) = Event::from_json(&v) {
                self.last_id = Some(ev.id.clone());
                return Ok(Some(ev));
            }
        }
    }

    /// The id of the last event received (the cursor to resume from).
    pub fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }
}

/// An event stream that reconnects by itself, resuming from the last event
/// it delivered; retries with a capped, jittered backoff while the server
/// cannot be reached.
#[derive(Debug)]
pub struct Watch {
    client: Client,
    event_type: String,
    sub: Option<Subscriber>,
    last_id: Option<String>,
    failures: u32,
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
        }
    }

    /// Connects now (so that events after this call are not missed), or
    /// returns why it cannot.
    pub fn connect(&mut self) -> Result<(), Error> {
        if self.sub.is_none() {
            let sub = self
                .client
                .subscribe(&self.event_type, self.last_id.as_deref())?;
            self.sub = Some(sub);
            self.failures = 0;
        }
        Ok(())
    }

    /// Blocks until the next event. A dropped connection is reopened from
    /// the last event's id; a refusal by the server (a 4xx: the token is
    /// no longer valid or may not subscribe) is returned.
    pub fn next_event(&mut self) -> Result<Event, Error> {
        loop {
            if let Err(e) = self.connect() {
                if matches!(&e, Error::Api(a) if (400..500).contains(&a.status)) {
                    return Err(e);
                }
                self.failures = self.failures.saturating_add(1);
                std::thread::sleep(backoff(self.failures));
                continue;
            }
            let Some(sub) = self.sub.as_mut() else {
                continue;
            };
            match sub.next_event() {
                Ok(Some(ev)) => {
                    self.last_id = Some(ev.id.clone());
                    return Ok(ev);
                }
                Ok(None) | Err(_) => {
                    self.sub = None;
                    self.failures = self.failures.saturating_add(1);
                    std::thread::sleep(backoff(self.failures));
                }
            }
        }
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

    #[test]
    fn backoff_is_capped() {
        assert!(backoff(1) >= Duration::from_millis(200));
        assert!(backoff(50) <= MAX_BACKOFF + MAX_BACKOFF / 2);
    }
}

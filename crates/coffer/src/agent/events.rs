//! The change-event subscriber: `GET /v1/sys/events/subscribe/*?json=true`
//! as a WebSocket, Vault's CloudEvents JSON messages.
//!
//! Each message names a path (`data.event.metadata.path`) and a type
//! (`data.event_type`: `kv-v2/data-write`, `kv-v2/delete`, ...); a
//! `coffer/resync` event means "read everything again" (sent after a
//! reconnect that missed events). While the stream is up the runner does
//! not poll; when the server answers 404 (no event endpoint) or the stream
//! drops, `live` turns false and the runner falls back to polling every
//! `static_secret_render_interval` while this task keeps reconnecting.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use super::auth::{Backoff, TokenRx};

/// One change the runner must look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A secret at this path changed (written, deleted, destroyed,
    /// rotated, or its lease revoked).
    Changed(String),
    /// A rotation of the KV v2 secret at this data path waits for its
    /// consumers: read its `pending` stage until it finishes or rolls back.
    Pending(String),
    /// Everything may have changed: render again.
    Resync,
}

/// Where to connect, and how.
#[derive(Clone)]
pub struct Target {
    /// `ws://` or `wss://` URL of the subscription.
    pub url: String,
    /// TLS settings for `wss://` (None: plain TCP).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// Parses one message into an event; `None` for messages to ignore.
pub fn parse(text: &str) -> Option<Event> {
    let v: Value = serde_json::from_str(text).ok()?;
    let data = v.get("data")?;
    let kind = data
        .get("event_type")
        .or_else(|| v.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if kind == "coffer/resync" {
        return Some(Event::Resync);
    }
    let path = data
        .get("event")
        .and_then(|e| e.get("metadata"))
        .and_then(|m| m.get("path"))
        .and_then(Value::as_str)?;
    let path = path.trim_matches('/').to_string();
    Some(if kind == "coffer/rotation-pending" {
        Event::Pending(path)
    } else {
        Event::Changed(path)
    })
}

/// Keeps a subscription open for as long as the process runs.
pub async fn run(
    target: Option<Target>,
    mut token: TokenRx,
    tx: mpsc::Sender<Event>,
    live: watch::Sender<bool>,
) {
    let Some(target) = target else {
        // Keep the sender alive: the runner polls forever.
        std::future::pending::<()>().await;
        return;
    };
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    let mut connected_before = false;
    loop {
        let Some(current) = token.borrow().clone() else {
            if token.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
            continue;
        };
        match subscribe(&target, &current.token).await {
            Ok(mut stream) => {
                tracing::info!("events: subscribed; polling stops while the stream is up");
                live.send_replace(true);
                backoff.reset();
                if connected_before {
                    // Events may have been missed while disconnected.
                    let _ = tx.send(Event::Resync).await;
                }
                connected_before = true;
                loop {
                    tokio::select! {
                        msg = stream.next() => match msg {
                            Some(Ok(Message::Text(t))) => {
                                if let Some(ev) = parse(t.as_str()) {
                                    if tx.send(ev).await.is_err() {
                                        return;
                                    }
                                }
                            }
                            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                            Some(Ok(_)) => {}
                        },
                        changed = token.changed() => {
                            if changed.is_err() {
                                return;
                            }
                            // A new token: subscribe again with it.
                            break;
                        }
                    }
                }
                live.send_replace(false);
                tracing::warn!("events: stream closed; polling until it is back");
            }
            Err(e) => {
                live.send_replace(false);
                tracing::debug!("events: cannot subscribe ({e})");
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

type Stream = tokio_tungstenite::WebSocketStream<Box<dyn Io>>;

/// A byte stream the WebSocket runs over (TCP or TLS over TCP).
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

async fn subscribe(target: &Target, token: &str) -> anyhow::Result<Stream> {
    let mut request = target.url.as_str().into_client_request()?;
    let mut value = HeaderValue::from_str(token)?;
    value.set_sensitive(true);
    request.headers_mut().insert("X-Vault-Token", value);
    let uri = request.uri().clone();
    let host = uri
        .host()
        .ok_or_else(|| anyhow::anyhow!("no host"))?
        .to_string();
    let port = uri
        .port_u16()
        .unwrap_or(if target.tls.is_some() { 443 } else { 80 });
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port)),
    )
    .await??;
    let io: Box<dyn Io> = match &target.tls {
        None => Box::new(tcp),
        Some(config) => {
            let name =
                rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string())?;
            let tls = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name, tcp)
                .await?;
            Box::new(tls)
        }
    };
    let (stream, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::client_async(request, io),
    )
    .await??;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::SinkExt as _;
    use zeroize::Zeroizing;

    /// A WebSocket server on loopback in Vault's shape: the subscriber
    /// sends its token, gets an event, then the stream closes; on the
    /// reconnect it is told to resync.
    #[tokio::test]
    #[allow(clippy::result_large_err)] // tungstenite's callback signature
    async fn the_subscriber_follows_the_stream_and_reports_it_down() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            for _ in 0..2 {
                let (tcp, _) = listener.accept().await.unwrap();
                let seen = seen_tx.clone();
                let callback =
                    move |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                          resp| {
                        let token = req
                            .headers()
                            .get("x-vault-token")
                            .and_then(|v| v.to_str().ok());
                        let _ = seen.send((req.uri().to_string(), token.unwrap_or("").to_string()));
                        Ok(resp)
                    };
                let mut ws = tokio_tungstenite::accept_hdr_async(tcp, callback)
                    .await
                    .unwrap();
                let msg = r#"{"data":{"event":{"metadata":{"path":"secret/data/app/db"}},"event_type":"kv-v2/data-write"}}"#;
                ws.send(Message::text(msg)).await.unwrap();
                tokio::time::sleep(Duration::from_millis(200)).await;
                let _ = ws.close(None).await;
            }
        });
        let current = super::super::auth::Current {
            token: Zeroizing::new("t-test".into()),
            generation: 1,
        };
        let (_tok_tx, tok_rx) = watch::channel(Some(Arc::new(current)));
        let (tx, mut rx) = mpsc::channel(8);
        let (live_tx, mut live_rx) = watch::channel(false);
        let target = Target {
            url: format!("ws://{addr}/v1/sys/events/subscribe/*?json=true"),
            tls: None,
        };
        tokio::spawn(run(Some(target), tok_rx, tx, live_tx));
        let wait = Duration::from_secs(10);
        let ev = tokio::time::timeout(wait, rx.recv()).await.unwrap();
        assert_eq!(ev, Some(Event::Changed("secret/data/app/db".into())));
        let (uri, token) = seen_rx.recv().await.unwrap();
        assert_eq!(uri, "/v1/sys/events/subscribe/*?json=true");
        assert_eq!(token, "t-test");
        tokio::time::timeout(wait, live_rx.wait_for(|l| !*l))
            .await
            .unwrap()
            .unwrap();
        // Reconnected: a resync first (events may have been missed), then events.
        let ev = tokio::time::timeout(wait, rx.recv()).await.unwrap();
        assert_eq!(ev, Some(Event::Resync));
        let ev = tokio::time::timeout(wait, rx.recv()).await.unwrap();
        assert_eq!(ev, Some(Event::Changed("secret/data/app/db".into())));
    }

    #[test]
    fn cloud_events_parse() {
        let msg = r#"{"id":"1","source":"coffer","specversion":"1.0","type":"*",
            "data":{"event":{"id":"1","metadata":{"path":"secret/data/app/db","current_version":"2"}},
                    "event_type":"kv-v2/data-write","plugin_info":{"mount_path":"secret/"}}}"#;
        assert_eq!(
            parse(msg),
            Some(Event::Changed("secret/data/app/db".into()))
        );
        let resync = r#"{"data":{"event":{"metadata":{}},"event_type":"coffer/resync"}}"#;
        assert_eq!(parse(resync), Some(Event::Resync));
        assert_eq!(parse("not json"), None);
        assert_eq!(parse(r#"{"data":{"event_type":"kv-v2/data-write"}}"#), None);
    }
}

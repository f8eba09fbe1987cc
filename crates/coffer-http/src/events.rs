//! `GET /v1/sys/events/subscribe/<event_type>?json=true`, upgraded to a
//! WebSocket: the change-event stream in Vault's shape.
//!
//! The subscription request first goes through the core like any read
//! (authenticated, authorized with `read` on
//! `sys/events/subscribe/<event_type>`, audited); only then is the
//! connection upgraded. Each event is then sent only if the subscriber's
//! token is still valid and may `read` the event's `data_path` at that
//! moment ([`coffer_core::Core::event_visible`]); a token that dies closes
//! the stream (checked with every event and every 5 s). Messages are
//! CloudEvents JSON text frames. `since=<event id>` (or `cursor=`) resumes
//! after that event, or starts with a `coffer/resync` event when the
//! server no longer holds it; a subscriber that falls more than the
//! server's ring behind also gets `coffer/resync`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts as _, State};
use axum::response::Response as HttpResponse;
use coffer_core::events::Event;
use coffer_core::{Core, Operation, Request};
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use zeroize::Zeroizing;

use crate::wire::{self, AppState};

/// How often a quiet stream re-checks its token (and pings).
const TOKEN_CHECK: Duration = Duration::from_secs(5);
/// WebSocket close code for "policy violation" (RFC 6455).
const CLOSE_POLICY: u16 = 1008;

/// Largest message or frame a subscriber may send (control frames only are
/// expected; a ping's payload is at most 125 bytes).
const INBOUND_LIMIT: usize = 4096;

/// The subscription handler.
pub(crate) async fn subscribe(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: axum::extract::Request,
) -> HttpResponse {
    let (mut parts, _body) = req.into_parts();
    let path = match wire::parse_path(parts.uri.path()) {
        Ok(p) => p,
        Err(msg) => return wire::error_response(400, vec![msg]),
    };
    if let Some(refusal) = wire::namespace_refusal(&parts.headers) {
        return refusal;
    }
    let client_addr = match state.proxies.client_addr(peer.ip(), &parts.headers) {
        Ok(ip) => ip,
        Err(msg) => return wire::error_response(400, vec![msg]),
    };
    let token = wire::token_of(&parts.headers);
    let query = wire::query_map(&parts.uri);
    let since = ["since", "cursor"]
        .iter()
        .find_map(|k| query.get(*k).and_then(Value::as_str))
        .map(str::to_string);
    let request = Request {
        id: coffer_crypto::random::uuid(),
        operation: Operation::Read,
        path,
        data: query,
        token: token.clone(),
        client_addr: Some(client_addr),
        client_port: (client_addr == peer.ip()).then(|| peer.port()),
        wrap_ttl: None,
        wrap_format: Default::default(),
        audited_headers: wire::audited_headers(&state.core, &parts.headers),
        body: None,
        sideband: Default::default(),
    };
    let request_id = request.id.clone();
    let answer = match tokio::time::timeout(
        state.limits.request_timeout,
        state.core.handle(request),
    )
    .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return wire::core_error(e, &request_id),
        Err(_) => return wire::error_response(503, vec!["request timed out".into()]),
    };
    let pattern = answer
        .data
        .as_ref()
        .and_then(|d| d.get("event_type"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some(token) = token else {
        return wire::error_response(403, vec!["permission denied".into()]);
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(u) => u,
        Err(_) => {
            return wire::error_response(
                400,
                vec![
                    "sys/events/subscribe streams events over a WebSocket: send Upgrade: websocket"
                        .into(),
                ],
            )
        }
    };
    let Some(slot) = state
        .core
        .events()
        .reserve(&coffer_core::token::hash_token(&token))
    else {
        return wire::error_response(
            429,
            vec![
                "too many event subscriptions: close one (each token may hold 16, the server 1024)"
                    .into(),
            ],
        );
    };
    let core = state.core.clone();
    // Subscribers only listen: anything they send beyond control frames
    // is refused, and no inbound message may grow past a few KiB.
    upgrade
        .max_message_size(INBOUND_LIMIT)
        .max_frame_size(INBOUND_LIMIT)
        .on_upgrade(move |socket| async move {
            let _slot = slot;
            stream(core, socket, token, Some(client_addr), pattern, since).await
        })
}

/// What to do with one event for this subscriber.
enum Verdict {
    Send,
    Skip,
    Close,
}

async fn judge(
    core: &Core,
    token: &str,
    addr: Option<IpAddr>,
    pattern: &str,
    ev: &Event,
) -> Verdict {
    if !ev.matches(pattern) && ev.event_type != coffer_core::events::RESYNC {
        // Not asked for: skipped without a token lookup (the periodic
        // check still ends the stream of a dead token within seconds).
        return Verdict::Skip;
    }
    match core.event_visible(token, addr, ev).await {
        Ok(true) => Verdict::Send,
        Ok(false) => Verdict::Skip,
        Err(_) => Verdict::Close,
    }
}

async fn send(socket: &mut WebSocket, ev: &Event) -> bool {
    let text = ev.to_cloudevent().to_string();
    socket.send(Message::Text(text.into())).await.is_ok()
}

async fn close(socket: &mut WebSocket, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: CLOSE_POLICY,
            reason: reason.into(),
        })))
        .await;
}

/// Streams events to one subscriber until it leaves or its token dies.
async fn stream(
    core: Arc<Core>,
    mut socket: WebSocket,
    token: Zeroizing<String>,
    addr: Option<IpAddr>,
    pattern: String,
    since: Option<String>,
) {
    const DEAD: &str = "the token is no longer valid";
    let sub = core.events().subscribe(since.as_deref());
    let mut rx = sub.rx;
    let first = sub.resync.into_iter().chain(sub.replay);
    for ev in first {
        match judge(&core, &token, addr, &pattern, &ev).await {
            Verdict::Send => {
                if !send(&mut socket, &ev).await {
                    return;
                }
            }
            Verdict::Skip => {}
            Verdict::Close => return close(&mut socket, DEAD).await,
        }
    }
    let mut tick = tokio::time::interval(TOKEN_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            got = rx.recv() => {
                let ev = match got {
                    Ok(ev) => ev,
                    Err(RecvError::Lagged(_)) => core.events().resync_event(),
                    Err(RecvError::Closed) => return close(&mut socket, "the server is stopping").await,
                };
                match judge(&core, &token, addr, &pattern, &ev).await {
                    Verdict::Send => if !send(&mut socket, &ev).await { return },
                    Verdict::Skip => {}
                    Verdict::Close => return close(&mut socket, DEAD).await,
                }
            }
            _ = tick.tick() => {
                if core.live_token(&token, addr).await.is_err() {
                    return close(&mut socket, DEAD).await;
                }
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(Message::Text(_) | Message::Binary(_))) => {
                    return close(&mut socket, "subscribers send nothing but control frames").await
                }
                Some(Ok(_)) => {}
            },
        }
    }
}

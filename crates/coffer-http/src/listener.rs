//! The TCP listener: plain HTTP or TLS (rustls), with graceful shutdown,
//! a header read timeout and a cap on open connections.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use axum_server::accept::{Accept, DefaultAcceptor};
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use axum_server::Handle;
use coffer_core::Core;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::proxy::TrustedProxies;
use crate::wire::{app_with_proxies, HttpLimits};

/// How long a new connection waits for a free slot when `max_connections`
/// are open, before it is closed.
const CONNECTION_SLOT_WAIT: Duration = Duration::from_secs(1);

/// How to listen.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Address to bind.
    pub address: SocketAddr,
    /// PEM certificate chain and key; `None` serves plain HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Request limits.
    pub limits: HttpLimits,
    /// Longest time a client may take to send a request's headers (and, on
    /// a new connection, its first request line) before the connection is
    /// closed.
    pub header_read_timeout: Duration,
    /// Most connections open at once; further ones wait a second for a
    /// free slot, then are closed.
    pub max_connections: usize,
    /// Peers whose `X-Forwarded-For` header names the client.
    pub trusted_proxies: TrustedProxies,
    /// Serve the web UI under `/ui/` (the server configuration's `ui`,
    /// default true); when false `/ui/` answers 404.
    pub ui: bool,
}

impl ListenerConfig {
    /// Plain HTTP on `address` with the default limits and timeouts.
    pub fn new(address: SocketAddr) -> Self {
        ListenerConfig {
            address,
            tls: None,
            limits: HttpLimits::default(),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 4096,
            trusted_proxies: TrustedProxies::default(),
            ui: true,
        }
    }
}

/// An acceptor that holds one of a fixed number of slots per connection.
#[derive(Clone)]
struct SlotAcceptor<A> {
    inner: A,
    slots: Arc<Semaphore>,
}

impl<A, I, S> Accept<I, S> for SlotAcceptor<A>
where
    A: Accept<Slotted<I>, S> + Clone + Send + 'static,
    A::Future: Send,
    I: Send + 'static,
    S: Send + 'static,
{
    type Stream = A::Stream;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(A::Stream, A::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let inner = self.inner.clone();
        let slots = self.slots.clone();
        Box::pin(async move {
            let permit =
                match tokio::time::timeout(CONNECTION_SLOT_WAIT, slots.acquire_owned()).await {
                    Ok(Ok(p)) => p,
                    _ => {
                        tracing::warn!("connection limit reached: closing a new connection");
                        return Err(io::Error::other("connection limit reached"));
                    }
                };
            inner
                .accept(
                    Slotted {
                        inner: stream,
                        _slot: permit,
                    },
                    service,
                )
                .await
        })
    }
}

/// A connection's stream with the slot it holds until it is closed.
struct Slotted<I> {
    inner: I,
    _slot: OwnedSemaphorePermit,
}

impl<I: AsyncRead + Unpin> AsyncRead for Slotted<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Slotted<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Serves the API for `core` until `shutdown` resolves, then drains
/// in-flight requests for up to 10 seconds.
///
/// The TLS files are read before anything else: a missing or unusable
/// certificate or key is an error at once (naming the file), and `bound`
/// is dropped unsent whenever serving fails, so a caller awaiting the bound
/// address never waits forever.
pub async fn serve(
    core: Arc<Core>,
    config: ListenerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<(), ServeError> {
    let tls = match &config.tls {
        Some((cert, key)) => Some(RustlsConfig::from_config(crate::tls::server_config(
            cert, key,
        )?)),
        None => None,
    };
    let handle: Handle<SocketAddr> = Handle::new();
    let h = handle.clone();
    let on_shutdown = AbortOnDrop(tokio::spawn(async move {
        shutdown.await;
        h.graceful_shutdown(Some(Duration::from_secs(10)));
    }));
    let on_bound = bound.map(|tx| {
        let h = handle.clone();
        AbortOnDrop(tokio::spawn(async move {
            if let Some(addr) = h.listening().await {
                let _ = tx.send(addr);
            }
        }))
    });
    let ui = if config.ui {
        coffer_ui::router(
            core.clone(),
            coffer_ui::UiConfig {
                tls: config.tls.is_some(),
                client_addr: Some({
                    let proxies = config.trusted_proxies.clone();
                    std::sync::Arc::new(move |peer, headers: &axum::http::HeaderMap| {
                        proxies.client_addr(peer, headers).ok()
                    })
                }),
            },
        )
    } else {
        coffer_ui::disabled()
    };
    let service = app_with_proxies(core, config.limits, config.trusted_proxies)
        .merge(ui)
        .into_make_service_with_connect_info::<SocketAddr>();
    let slots = SlotAcceptor {
        inner: DefaultAcceptor::new(),
        slots: Arc::new(Semaphore::new(config.max_connections.max(1))),
    };
    let header_timeout = config.header_read_timeout;
    let result = match tls {
        Some(tls) => {
            let mut server = axum_server::bind(config.address)
                .acceptor(RustlsAcceptor::new(tls).acceptor(slots))
                .handle(handle)
                .first_request_timeout(header_timeout);
            server
                .http_builder()
                .http1()
                .header_read_timeout(header_timeout);
            server.serve(service).await
        }
        None => {
            let mut server = axum_server::bind(config.address)
                .acceptor(slots)
                .handle(handle)
                .first_request_timeout(header_timeout);
            server
                .http_builder()
                .http1()
                .header_read_timeout(header_timeout);
            server.serve(service).await
        }
    };
    drop((on_shutdown, on_bound));
    result.map_err(|source| ServeError::Listen {
        address: config.address,
        source,
    })
}

/// Why [`serve`] stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The TLS certificate or key could not be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The address could not be bound, or the server failed while serving.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The configured address.
        address: SocketAddr,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// Aborts a helper task when its owner is done with it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

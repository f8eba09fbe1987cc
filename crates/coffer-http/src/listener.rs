//! The TCP listener: plain HTTP or TLS (rustls), with graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum_server::tls_rustls::RustlsConfig;
use axum_server::Handle;
use coffer_core::Core;

use crate::wire::{app, HttpLimits};

/// How to listen.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Address to bind.
    pub address: SocketAddr,
    /// PEM certificate chain and key; `None` serves plain HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Request limits.
    pub limits: HttpLimits,
}

/// Serves the API for `core` until `shutdown` resolves, then drains
/// in-flight requests for up to 10 seconds.
pub async fn serve(
    core: Arc<Core>,
    config: ListenerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> anyhow::Result<()> {
    let handle: Handle<SocketAddr> = Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        h.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    if let Some(tx) = bound {
        let h = handle.clone();
        tokio::spawn(async move {
            if let Some(addr) = h.listening().await {
                let _ = tx.send(addr);
            }
        });
    }
    let service = app(core, config.limits).into_make_service_with_connect_info::<SocketAddr>();
    match config.tls {
        Some((cert, key)) => {
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let tls = RustlsConfig::from_pem_file(&cert, &key)
                .await
                .with_context(|| {
                    format!(
                        "loading TLS certificate {} and key {}",
                        cert.display(),
                        key.display()
                    )
                })?;
            axum_server::bind_rustls(config.address, tls)
                .handle(handle)
                .serve(service)
                .await
                .with_context(|| format!("serving on {}", config.address))?;
        }
        None => {
            axum_server::bind(config.address)
                .handle(handle)
                .serve(service)
                .await
                .with_context(|| format!("serving on {}", config.address))?;
        }
    }
    Ok(())
}

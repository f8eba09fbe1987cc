//! Opening connections: the connection URL's `sslmode` on rustls (the same
//! TLS code as the database engine's, [`crate::pg_tls`]).

use std::time::Duration;

use tokio_postgres::{Client, NoTls};
use zeroize::Zeroizing;

use crate::pg_tls::{self, MakeRustls, SslMode, TlsMaterial};
use crate::{Result, StorageError};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything needed to open one more connection.
pub(super) struct ConnectSpec {
    config: tokio_postgres::Config,
    mode: SslMode,
    /// Built once: the rustls configuration for every TLS connection.
    tls: Option<rustls::ClientConfig>,
}

impl ConnectSpec {
    /// Parses `url` (URL or key=value form; `sslmode` as libpq reads it;
    /// file-naming keys refused) with PEM TLS material. Errors never quote
    /// the URL, which may hold a password.
    pub(super) fn parse(url: &str, tls: &TlsMaterial<'_>) -> Result<Self> {
        let (rest, sslmode) = pg_tls::split_sslmode(url)
            .map_err(|m| StorageError::Backend(format!("postgresql: {m}")))?;
        let mode = match sslmode {
            None => SslMode::Prefer,
            Some(v) => SslMode::parse(&v).ok_or_else(|| {
                StorageError::Backend(
                    "postgresql: invalid sslmode in connection_url: expected disable, allow, \
                     prefer, require, verify-ca or verify-full"
                        .into(),
                )
            })?,
        };
        let rest: Zeroizing<String> = rest;
        let mut config: tokio_postgres::Config = rest
            .parse()
            .map_err(|_| StorageError::Backend(format!("postgresql: {}", pg_tls::INVALID_URL)))?;
        config.ssl_mode(mode.driver());
        config.connect_timeout(CONNECT_TIMEOUT);
        if config.get_application_name().is_none() {
            config.application_name("coffer-storage");
        }
        let tls = if mode == SslMode::Disable {
            None
        } else {
            Some(
                pg_tls::client_config(mode, tls)
                    .map_err(|m| StorageError::Backend(format!("postgresql: {m}")))?,
            )
        };
        Ok(ConnectSpec { config, mode, tls })
    }

    /// Opens a connection and drives its I/O on a task until it closes.
    pub(super) async fn connect(&self) -> Result<Client> {
        let password = self
            .config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .map(Zeroizing::new);
        let scrub = |e: tokio_postgres::Error| {
            let mut msg = e.to_string();
            if let Some(p) = password.as_ref().filter(|p| !p.is_empty()) {
                msg = msg.replace(p.as_str(), "<redacted>");
            }
            tracing::warn!(error = %msg, "postgresql storage: cannot connect");
            StorageError::Unavailable
        };
        match (&self.tls, self.mode) {
            (None, _) | (_, SslMode::Disable) => {
                let (client, connection) = self.config.connect(NoTls).await.map_err(scrub)?;
                drive(connection);
                Ok(client)
            }
            (Some(tls), _) => {
                let (client, connection) = self
                    .config
                    .connect(MakeRustls::new(tls.clone()))
                    .await
                    .map_err(scrub)?;
                drive(connection);
                Ok(client)
            }
        }
    }
}

/// Runs a connection's I/O in the background until it closes.
fn drive<C>(connection: C)
where
    C: std::future::Future<Output = std::result::Result<(), tokio_postgres::Error>>
        + Send
        + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgresql storage connection ended");
        }
    });
}

/// Maps a driver error of an established connection: a closed connection
/// means the database is unavailable (503 upstream); anything else is a
/// backend error. Driver errors carry no bound values.
pub(super) fn db_error(context: &str, e: &tokio_postgres::Error) -> StorageError {
    if e.is_closed() {
        return StorageError::Unavailable;
    }
    match e.as_db_error() {
        Some(db) => StorageError::Backend(format!(
            "postgresql {context}: {} ({})",
            db.message(),
            db.code().code()
        )),
        None => StorageError::Backend(format!("postgresql {context}: {e}")),
    }
}

//! Auto-auth: log in, write the sinks, keep the token alive.
//!
//! The token is renewed at about two thirds of its TTL. When renewal is
//! refused (the token was revoked, or reached its max TTL), or a consumer
//! reports that the server refused the token, the agent logs in again.
//! While the server cannot be reached it retries with exponential backoff
//! and jitter, between `min_backoff` and `max_backoff`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{mpsc, watch};
use zeroize::Zeroizing;

use super::api::{Api, ApiError, Issued};
use super::config::{AutoAuth, Method};
use super::fsutil;

/// The current token and its login generation (a new login, a new number).
#[derive(Clone)]
pub struct Current {
    /// The token.
    pub token: Zeroizing<String>,
    /// Increases with every login.
    pub generation: u64,
}

/// Receives the current token; `None` until the first login.
pub type TokenRx = watch::Receiver<Option<Arc<Current>>>;

/// Consumers send the generation of a token the server refused.
pub type InvalidTx = mpsc::UnboundedSender<u64>;

/// Exponential backoff with jitter.
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `min`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// The next delay: doubles up to `max`, with up to 25% taken off at random.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        let jitter: f64 = rand::random::<f64>() * 0.25;
        base.mul_f64(1.0 - jitter)
    }

    /// Back to `min` after a success.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Reads a file holding one credential, trimmed; the error names the file only.
fn read_credential(path: &Path) -> anyhow::Result<Zeroizing<String>> {
    let raw = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?,
    );
    let value = raw.trim();
    if value.is_empty() {
        anyhow::bail!("{} is empty", path.display());
    }
    Ok(Zeroizing::new(value.to_string()))
}

/// What one login attempt needs to remember between attempts.
struct Method_ {
    method: Method,
    /// The secret_id (or JWT) kept after its file was removed.
    kept: Option<Zeroizing<String>>,
}

impl Method_ {
    /// One login (or, for `token_file`, one read of the file).
    async fn login(&mut self, api: &Api) -> anyhow::Result<Issued> {
        match &self.method {
            Method::AppRole {
                mount_path,
                role_id_file_path,
                secret_id_file_path,
                remove_secret_id_file_after_reading,
            } => {
                let role_id = read_credential(role_id_file_path)?;
                let secret_id = match read_credential(secret_id_file_path) {
                    Ok(s) => {
                        if *remove_secret_id_file_after_reading {
                            if let Err(e) = std::fs::remove_file(secret_id_file_path) {
                                tracing::warn!(
                                    "cannot remove {}: {e}",
                                    secret_id_file_path.display()
                                );
                            }
                        }
                        self.kept = Some(s.clone());
                        s
                    }
                    Err(e) => match &self.kept {
                        Some(s) => s.clone(),
                        None => return Err(e),
                    },
                };
                let body = json!({"role_id": role_id.as_str(), "secret_id": secret_id.as_str()});
                Ok(api.login(mount_path, body).await?)
            }
            Method::Jwt {
                mount_path,
                path,
                role,
                remove_jwt_after_reading,
            } => {
                // Read at every login: the platform rotates the file.
                let jwt = match read_credential(path) {
                    Ok(j) => {
                        if *remove_jwt_after_reading {
                            let _ = std::fs::remove_file(path);
                        }
                        self.kept = Some(j.clone());
                        j
                    }
                    Err(e) => match &self.kept {
                        Some(j) => j.clone(),
                        None => return Err(e),
                    },
                };
                let body = json!({"role": role, "jwt": jwt.as_str()});
                Ok(api.login(mount_path, body).await?)
            }
            Method::TokenFile { token_file_path } => {
                let token = read_credential(token_file_path)?;
                Ok(api.lookup_self(&token).await?)
            }
        }
    }
}

/// Runs auto-auth until the process ends: publishes every new token on
/// `tx` and listens on `invalid` for tokens the server refused.
pub async fn run(
    api: Api,
    config: AutoAuth,
    tx: watch::Sender<Option<Arc<Current>>>,
    mut invalid: mpsc::UnboundedReceiver<u64>,
) {
    let mut method = Method_ {
        method: config.method.clone(),
        kept: None,
    };
    let mut backoff = Backoff::new(config.min_backoff, config.max_backoff);
    let mut generation = 0u64;
    loop {
        let issued = match method.login(&api).await {
            Ok(i) => i,
            Err(e) => {
                let wait = backoff.next_delay();
                tracing::warn!("auto-auth: login failed ({e:#}); retrying in {wait:?}");
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        backoff.reset();
        generation += 1;
        for sink in &config.sinks {
            match fsutil::write_atomic(&sink.path, issued.token.as_bytes(), sink.mode) {
                Ok(()) => tracing::info!("auto-auth: token written to {}", sink.path.display()),
                Err(e) => {
                    tracing::error!("auto-auth: cannot write sink {}: {e}", sink.path.display())
                }
            }
        }
        tracing::info!(
            "auto-auth: authenticated (ttl {}s, renewable {})",
            issued.ttl,
            issued.renewable
        );
        let current = Arc::new(Current {
            token: issued.token.clone(),
            generation,
        });
        tx.send_replace(Some(current));
        keep_alive(&api, issued, generation, &mut invalid, &mut backoff).await;
        tracing::info!("auto-auth: the token can no longer be used; logging in again");
    }
}

/// Renews the token until it can no longer be used.
async fn keep_alive(
    api: &Api,
    mut issued: Issued,
    generation: u64,
    invalid: &mut mpsc::UnboundedReceiver<u64>,
    backoff: &mut Backoff,
) {
    let mut wait = renew_after(issued.ttl);
    let mut expires = tokio::time::Instant::now() + Duration::from_secs(issued.ttl);
    loop {
        let renewable = issued.renewable && issued.ttl > 0;
        tokio::select! {
            _ = tokio::time::sleep(wait), if renewable || issued.ttl > 0 => {}
            reported = invalid.recv() => match reported {
                Some(g) if g == generation => {
                    // Make sure it really is gone before logging in again.
                    match api.lookup_self(&issued.token).await {
                        Err(ApiError::Denied(_)) => return,
                        _ => continue,
                    }
                }
                Some(_) => continue,
                None => std::future::pending::<()>().await,
            },
        }
        if !renewable {
            // Not renewable: log in again when its TTL is nearly spent.
            return;
        }
        match api.renew_self(&issued.token).await {
            Ok(renewed) => {
                backoff.reset();
                let asked = issued.ttl;
                issued.ttl = renewed.ttl;
                issued.renewable = renewed.renewable;
                expires = tokio::time::Instant::now() + Duration::from_secs(renewed.ttl);
                if renewed.ttl == 0 || (renewed.ttl < asked / 3 && renewed.ttl < 10) {
                    // Its max TTL is reached: log in before it ends.
                    return;
                }
                wait = renew_after(renewed.ttl);
                tracing::debug!("auto-auth: token renewed (ttl {}s)", renewed.ttl);
            }
            Err(ApiError::Unavailable(e)) => {
                if tokio::time::Instant::now() >= expires {
                    return;
                }
                wait = backoff.next_delay();
                tracing::warn!("auto-auth: renewal failed ({e}); retrying in {wait:?}");
            }
            Err(e) => {
                tracing::warn!("auto-auth: renewal refused ({e})");
                return;
            }
        }
    }
}

/// About two thirds of the TTL (at least one second).
fn renew_after(ttl: u64) -> Duration {
    Duration::from_millis((ttl * 2000 / 3).max(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let d: Vec<Duration> = (0..5).map(|_| b.next_delay()).collect();
        assert!(d[0] <= Duration::from_secs(1) && d[0] >= Duration::from_millis(750));
        assert!(d[1] <= Duration::from_secs(2) && d[1] >= Duration::from_millis(1500));
        assert!(d[4] <= Duration::from_secs(5) && d[4] >= Duration::from_millis(3750));
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
        assert_eq!(renew_after(30), Duration::from_secs(20));
        assert_eq!(renew_after(0), Duration::from_secs(1));
    }
}

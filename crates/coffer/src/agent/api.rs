//! Every HTTP call the agent makes, in one place, on the CLI's client.
//!
//! The rest of the agent never builds a URL or a request: it asks this
//! module to log in, renew, read a secret, renew a lease or forward a
//! proxied request. The client is blocking (reqwest's), so the async
//! functions run it on tokio's blocking pool; the template functions, which
//! run on a blocking thread already, use the `_blocking` forms.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::client::{self, Client};

/// What went wrong with a call, as the agent must react to it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 403: the token is invalid, expired or revoked (or lacks the policy).
    #[error("permission denied (403){0}")]
    Denied(String),
    /// The server could not be reached or is sealed (503), or failed (5xx).
    #[error("server unavailable: {0}")]
    Unavailable(String),
    /// Any other refusal (400, 404, ...), with the server's messages.
    #[error("{status}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The server's error messages, joined.
        message: String,
    },
}

/// A token the server issued, with its lifetime.
#[derive(Clone)]
pub struct Issued {
    /// The token.
    pub token: Zeroizing<String>,
    /// Seconds it lives (0: no TTL).
    pub ttl: u64,
    /// Whether it may be renewed.
    pub renewable: bool,
}

/// Shows the lifetime, never the token.
impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("token", &"<redacted>")
            .field("ttl", &self.ttl)
            .field("renewable", &self.renewable)
            .finish()
    }
}

/// A raw answer, for the API proxy.
pub struct RawAnswer {
    /// HTTP status.
    pub status: u16,
    /// Content-Type, when the server sent one.
    pub content_type: Option<String>,
    /// The body as received.
    pub body: Vec<u8>,
}

/// The agent's connection to its one server.
#[derive(Clone)]
pub struct Api {
    client: Client,
}

impl Api {
    /// A connection from the agent's `vault` block and the environment.
    pub fn new(
        address: Option<&str>,
        ca_cert: Option<&std::path::Path>,
        skip_verify: bool,
    ) -> anyhow::Result<Api> {
        let mut config = client::Config::from_env(address)?;
        // The agent's token comes from auto-auth only, never from the environment.
        config.token = None;
        if let Some(ca) = ca_cert {
            config.ca_cert = Some(ca.to_path_buf());
        }
        config.skip_verify |= skip_verify;
        config.timeout = Duration::from_secs(30);
        Ok(Api {
            client: Client::new(config)?,
        })
    }

    /// The server's base URL (for log lines and the events URL).
    pub fn address(&self) -> &reqwest::Url {
        self.client.address()
    }

    /// The client with `token`, for calls made through `coffer_client`
    /// (the consumer reports).
    pub fn client_with(&self, token: &str) -> Client {
        self.with(Some(token))
    }

    fn with(&self, token: Option<&str>) -> Client {
        match token {
            Some(t) => self
                .client
                .clone()
                .with_token(Zeroizing::new(t.to_string())),
            None => self.client.clone(),
        }
    }

    /// Sends one request and sorts its failure.
    fn call_blocking(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, ApiError> {
        let resp = self
            .with(token)
            .request(method, path, body)
            .map_err(|e| match e {
                client::Error::Transport { .. } => ApiError::Unavailable(e.to_string()),
                other => ApiError::Refused {
                    status: 0,
                    message: other.to_string(),
                },
            })?;
        match resp.status {
            s if s < 400 => Ok(resp.body),
            403 => Err(ApiError::Denied(
                resp.errors()
                    .first()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default(),
            )),
            s if s >= 500 => Err(ApiError::Unavailable(format!(
                "{s} {}",
                resp.errors().join("; ")
            ))),
            s => Err(ApiError::Refused {
                status: s,
                message: resp.errors().join("; "),
            }),
        }
    }

    async fn call(
        &self,
        token: Option<Zeroizing<String>>,
        method: Method,
        path: String,
        body: Option<Value>,
    ) -> Result<Option<Value>, ApiError> {
        let api = self.clone();
        tokio::task::spawn_blocking(move || {
            api.call_blocking(
                token.as_deref().map(String::as_str),
                method,
                &path,
                body.as_ref(),
            )
        })
        .await
        .map_err(|_| ApiError::Unavailable("the request task failed".into()))?
    }

    /// `POST <mount>/login` with `body`; the token from `auth`.
    pub async fn login(&self, mount_path: &str, body: Value) -> Result<Issued, ApiError> {
        let answer = self
            .call(
                None,
                Method::POST,
                format!("{mount_path}/login"),
                Some(body),
            )
            .await?;
        issued(answer.as_ref())
    }

    /// `GET auth/token/lookup-self`: the token's remaining TTL and renewability.
    pub async fn lookup_self(&self, token: &Zeroizing<String>) -> Result<Issued, ApiError> {
        let answer = self
            .call(
                Some(token.clone()),
                Method::GET,
                "auth/token/lookup-self".into(),
                None,
            )
            .await?;
        let data = answer.as_ref().and_then(|a| a.get("data"));
        Ok(Issued {
            token: token.clone(),
            ttl: data
                .and_then(|d| d.get("ttl"))
                .and_then(Value::as_u64)
                .unwrap_or(0),
            renewable: data
                .and_then(|d| d.get("renewable"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    /// `POST auth/token/renew-self`.
    pub async fn renew_self(&self, token: &Zeroizing<String>) -> Result<Issued, ApiError> {
        let answer = self
            .call(
                Some(token.clone()),
                Method::POST,
                "auth/token/renew-self".into(),
                Some(json!({})),
            )
            .await?;
        let mut out = issued(answer.as_ref())?;
        out.token = token.clone();
        Ok(out)
    }

    /// Reads (or, with `data`, writes) a secret path; the whole answer.
    pub fn secret_blocking(
        &self,
        token: &str,
        path: &str,
        data: Option<&Value>,
    ) -> Result<Option<Value>, ApiError> {
        match data {
            None => self.call_blocking(Some(token), Method::GET, path, None),
            Some(d) => self.call_blocking(Some(token), Method::POST, path, Some(d)),
        }
    }

    /// `PUT sys/leases/renew`: the lease's new duration in seconds.
    pub async fn renew_lease(
        &self,
        token: &Zeroizing<String>,
        lease_id: &str,
        increment: u64,
    ) -> Result<u64, ApiError> {
        let answer = self
            .call(
                Some(token.clone()),
                Method::PUT,
                "sys/leases/renew".into(),
                Some(json!({"lease_id": lease_id, "increment": increment})),
            )
            .await?;
        Ok(answer
            .as_ref()
            .and_then(|a| a.get("lease_duration"))
            .and_then(Value::as_u64)
            .unwrap_or(0))
    }

    /// Forwards a proxied request to the configured server (never elsewhere:
    /// only the path and query come from the caller).
    pub async fn forward(
        &self,
        token: Option<Zeroizing<String>>,
        method: Method,
        path_and_query: String,
        wrap_ttl: Option<String>,
        content_type: Option<String>,
        body: Vec<u8>,
    ) -> Result<RawAnswer, ApiError> {
        let api = self.clone();
        tokio::task::spawn_blocking(move || {
            let client = api.with(token.as_deref().map(String::as_str));
            client
                .send_raw(
                    method,
                    &path_and_query,
                    wrap_ttl.as_deref(),
                    content_type.as_deref(),
                    body,
                )
                .map(|(status, content_type, body)| RawAnswer {
                    status,
                    content_type,
                    body,
                })
                .map_err(|e| ApiError::Unavailable(e.to_string()))
        })
        .await
        .map_err(|_| ApiError::Unavailable("the request task failed".into()))?
    }
}

/// The token of a login or renewal answer.
fn issued(answer: Option<&Value>) -> Result<Issued, ApiError> {
    let auth = answer
        .and_then(|a| a.get("auth"))
        .filter(|a| a.is_object())
        .ok_or_else(|| ApiError::Refused {
            status: 200,
            message: "the answer carries no auth block".into(),
        })?;
    let token = auth
        .get("client_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::Refused {
            status: 200,
            message: "the answer carries no client_token".into(),
        })?;
    Ok(Issued {
        token: Zeroizing::new(token.to_string()),
        ttl: auth
            .get("lease_duration")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        renewable: auth
            .get("renewable")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

//! Coffer and Vault tokens, against the server the user configured
//! (`COFFER_ADDR`, else `VAULT_ADDR`; TLS settings as every client command
//! reads them): `GET /v1/auth/token/lookup-self` with the found token.
//! 200 is `live`, 403 `revoked` (unknown to that server, expired or
//! revoked), anything else `unknown`. Without a configured address nothing
//! is sent: the default address is no server the user named.

use std::time::Duration;

use coffer_scan::validate::{Claim, Validation, Validator};
use coffer_scan::Finding;
use reqwest::Method;
use zeroize::Zeroizing;

use crate::client::{Client, Config, Error};

/// The validator's name in reports.
const NAME: &str = "coffer-token";

/// Rules whose secret is a token a Coffer or Vault server looks up
/// (recovery tokens are not: lookup-self refuses them even when valid).
const RULES: &[&str] = &[
    "vault-service-token",
    "vault-batch-token",
    "vault-legacy-token",
];

/// Checks tokens against the configured server.
pub(super) struct CofferToken {
    /// The client (without a token), or why there is none.
    server: Result<Client, String>,
}

impl CofferToken {
    /// A validator for the server in the environment, each request bounded
    /// by `timeout`.
    pub(super) fn from_env(timeout: Duration) -> CofferToken {
        let named = ["COFFER_ADDR", "VAULT_ADDR"]
            .iter()
            .any(|v| std::env::var(v).is_ok_and(|a| !a.trim().is_empty()));
        let server = if !named {
            Err("no server configured (set COFFER_ADDR or VAULT_ADDR)".to_string())
        } else {
            Config::from_env(None)
                .and_then(|mut c| {
                    c.token = None;
                    c.timeout = timeout;
                    Client::new(c)
                })
                // Configuration errors name settings, never a token.
                .map_err(|e| format!("client configuration: {e}"))
        };
        CofferToken { server }
    }
}

impl Validator for CofferToken {
    fn name(&self) -> &'static str {
        NAME
    }

    fn claim(&self, f: &Finding) -> Option<Claim> {
        if !RULES.contains(&f.rule_id.as_str()) {
            return None;
        }
        Some(match &self.server {
            Ok(_) => Claim::Check(f.secret.clone()),
            Err(why) => Claim::Decided(Validation::unknown(NAME, why.clone())),
        })
    }

    fn check(&self, token: &str) -> Validation {
        let client = match &self.server {
            Ok(c) => c.clone().with_token(Zeroizing::new(token.to_string())),
            Err(why) => return Validation::unknown(NAME, why.clone()),
        };
        let at = client.address().as_str().trim_end_matches('/').to_string();
        match client.request(Method::GET, "auth/token/lookup-self", None) {
            Ok(r) if r.status == 200 => {
                Validation::live(NAME, format!("the server at {at} accepts it"))
            }
            Ok(r) if r.status == 403 => Validation::revoked(
                NAME,
                format!("the server at {at} refuses it (403: unknown, expired or revoked)"),
            ),
            Ok(r) => Validation::unknown(NAME, format!("the server at {at} answered {}", r.status)),
            Err(Error::Transport { source, .. }) if source.is_timeout() => {
                Validation::unknown(NAME, format!("no answer from the server at {at} in time"))
            }
            Err(Error::Config(_)) => {
                Validation::unknown(NAME, "the token holds characters no HTTP header may carry")
            }
            Err(_) => Validation::unknown(NAME, format!("could not reach the server at {at}")),
        }
    }
}

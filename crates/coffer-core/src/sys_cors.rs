//! `sys/config/cors`: which browser origins may call the API. The
//! configuration is stored in the barrier (`core/cors`), loaded at unseal,
//! and read by the HTTP layer through [`Core::cors`], which answers
//! preflight `OPTIONS` requests and adds the CORS headers for allowed
//! origins (and refuses requests from other origins, as Vault does, while
//! CORS is enabled). All three operations need `sudo`, as in Vault.

use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::core::Core;
use crate::util::Params;
use crate::{Error, Operation, Request, Response, Result};

/// Storage key of the configuration.
/// Storage key of the CORS configuration.
pub(crate) const KEY: &str = "core/cors";

/// Headers every enabled configuration allows (Vault's list).
pub const DEFAULT_ALLOWED_HEADERS: [&str; 10] = [
    "Content-Type",
    "Authorization",
    "X-Vault-Token",
    "X-Vault-MFA",
    "X-Vault-No-Request-Forwarding",
    "X-Vault-Wrap-Format",
    "X-Vault-Wrap-TTL",
    "X-Requested-With",
    "X-Vault-AWS-IAM-Server-ID",
    "X-Vault-Policy-Override",
];

/// Methods a preflight answer allows (Vault's list).
pub const ALLOWED_METHODS: &str = "DELETE,GET,OPTIONS,POST,PUT,LIST";

/// The CORS configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsConfig {
    /// Whether CORS is on.
    pub enabled: bool,
    /// Allowed origins (`*` alone allows any).
    pub allowed_origins: Vec<String>,
    /// Allowed request headers, the defaults first.
    pub allowed_headers: Vec<String>,
}

impl CorsConfig {
    /// Whether a request from `origin` is allowed.
    pub fn allows(&self, origin: &str) -> bool {
        self.enabled && self.allowed_origins.iter().any(|o| o == "*" || o == origin)
    }
}

/// The loaded configuration, shared with the HTTP layer.
#[derive(Debug, Default)]
pub struct CorsState(RwLock<Arc<CorsConfig>>);

impl CorsState {
    fn get(&self) -> Arc<CorsConfig> {
        self.0.read().clone()
    }

    fn set(&self, config: CorsConfig) {
        *self.0.write() = Arc::new(config);
    }
}

impl Core {
    /// The CORS configuration in force (disabled until loaded).
    pub fn cors(&self) -> Arc<CorsConfig> {
        self.cors.get()
    }
}

/// Loads the stored configuration (at unseal).
pub(crate) async fn load(core: &Core) -> Result<()> {
    let config = match core.barrier.get(KEY).await? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| Error::corrupt_json("CORS configuration", &e))?,
        None => CorsConfig::default(),
    };
    core.cors.set(config);
    Ok(())
}

async fn save(core: &Core, config: CorsConfig) -> Result<()> {
    let bytes =
        serde_json::to_vec(&config).map_err(|e| Error::encode("the CORS configuration", e))?;
    core.barrier.put(KEY, &bytes).await?;
    core.cors.set(config);
    Ok(())
}

/// Answers `sys/config/cors`.
pub(crate) async fn handle(core: &Core, req: &Request) -> Result<Response> {
    match req.operation {
        Operation::Read => {
            let c = core.cors();
            let mut data = json!({"enabled": c.enabled});
            if c.enabled {
                data["allowed_origins"] = json!(c.allowed_origins);
                data["allowed_headers"] = json!(c.allowed_headers);
                data["allow_credentials"] = json!(false);
            }
            Ok(crate::sys::enveloped(req, data))
        }
        Operation::Create | Operation::Update => {
            let p = Params(&req.data);
            let origins = p.str_list("allowed_origins")?.unwrap_or_default();
            let origins: Vec<String> = origins
                .into_iter()
                .map(|o| o.trim().to_string())
                .filter(|o| !o.is_empty())
                .collect();
            // Both lists end up in response headers: visible ASCII only.
            let printable = |v: &str| v.bytes().all(|b| b.is_ascii_graphic() && b != b',');
            if let Some(bad) = origins.iter().find(|o| !printable(o)) {
                return Err(Error::bad(format!("invalid origin {bad:?}")));
            }
            if origins.is_empty() {
                return Err(Error::bad(
                    "at least one origin or the wildcard must be provided",
                ));
            }
            if origins.len() > 1 && origins.iter().any(|o| o == "*") {
                return Err(Error::bad(
                    "to allow all origins the '*' must be the only value for allowed_origins",
                ));
            }
            let mut headers: Vec<String> = DEFAULT_ALLOWED_HEADERS
                .iter()
                .map(|h| h.to_string())
                .collect();
            for h in p.str_list("allowed_headers")?.unwrap_or_default() {
                let h = h.trim().to_string();
                if !printable(&h) && !h.is_empty() {
                    return Err(Error::bad(format!("invalid header name {h:?}")));
                }
                if !h.is_empty() && !headers.iter().any(|x| x.eq_ignore_ascii_case(&h)) {
                    headers.push(h);
                }
            }
            let _admin = core.admin.lock().await;
            save(
                core,
                CorsConfig {
                    enabled: true,
                    allowed_origins: origins,
                    allowed_headers: headers,
                },
            )
            .await?;
            Ok(Response::empty())
        }
        Operation::Delete => {
            let _admin = core.admin.lock().await;
            save(core, CorsConfig::default()).await?;
            Ok(Response::empty())
        }
        _ => Err(Error::UnsupportedOperation),
    }
}

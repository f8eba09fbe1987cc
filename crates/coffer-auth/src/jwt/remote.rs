//! Keys fetched over the network: `jwks_url`, or `oidc_discovery_url`
//! (its `/.well-known/openid-configuration`, then the `jwks_uri` it names),
//! as Kubernetes service-account issuers publish them.
//!
//! Only URLs the operator allowed in the server's configuration
//! (`[jwt_discovery] allowed_urls`, prefixes) are ever fetched: the
//! configured URL and the `jwks_uri` a discovery document names must both
//! fall under one. Fetches send no credentials, follow no redirect, time
//! out after 10 s and read at most 1 MiB. `jwks_ca_pem` (or
//! `oidc_discovery_ca_pem`) replaces the system roots.
//!
//! Keys are cached per mount for an hour. A token naming a `kid` the
//! cached set does not hold causes one re-fetch, at most once every
//! [`REFETCH_INTERVAL`] per mount, so a caller sending made-up key ids
//! cannot make the server fetch at will. Fetches of one mount are
//! serialised: concurrent logins wait for one fetch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use serde_json::Value;

use super::config::Config;
use super::keys::KeySet;

/// Longest time keys are served from the cache before a fetch.
pub const CACHE_TTL: Duration = Duration::from_secs(3600);
/// Shortest time between two fetches caused by unknown key ids.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(5);
/// Largest document read.
const MAX_DOCUMENT: usize = 1024 * 1024;
/// Time a fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// URL prefixes the operator allows key fetches from.
#[derive(Debug, Clone, Default)]
pub struct AllowedUrls(Vec<reqwest::Url>);

impl AllowedUrls {
    /// Parses the operator's list: absolute `https://` URLs (`http://` only
    /// for a loopback host), no user info, query or fragment.
    pub fn parse(list: &[String]) -> Result<AllowedUrls, String> {
        let mut out = Vec::new();
        for item in list {
            let url = reqwest::Url::parse(item.trim())
                .map_err(|_| format!("allowed_urls: {item:?} is not a URL"))?;
            check_shape(&url).map_err(|e| format!("allowed_urls: {item:?}: {e}"))?;
            out.push(url);
        }
        Ok(AllowedUrls(out))
    }

    /// Whether `url` is under one of the allowed prefixes: same scheme,
    /// host and port, and a path that starts with the prefix's path at a
    /// segment boundary.
    pub fn allows(&self, url: &reqwest::Url) -> bool {
        check_shape(url).is_ok()
            && self.0.iter().any(|p| {
                p.scheme() == url.scheme()
                    && p.host_str().map(str::to_ascii_lowercase)
                        == url.host_str().map(str::to_ascii_lowercase)
                    && p.port_or_known_default() == url.port_or_known_default()
                    && under(p.path(), url.path())
            })
    }

    /// Whether no URL is allowed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn under(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn check_shape(url: &reqwest::Url) -> Result<(), String> {
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("no host")?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback());
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err("https is required (http only to a loopback host)".into()),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("user info is not allowed".into());
    }
    if url.fragment().is_some() {
        return Err("a fragment is not allowed".into());
    }
    Ok(())
}

/// Where a mount's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A JWKS document at this URL.
    Jwks(String),
    /// An OIDC issuer: discovery document, then its `jwks_uri`.
    Discovery(String),
}

struct Cached {
    source: Source,
    ca: String,
    keys: Arc<KeySet>,
    fetched: Instant,
}

/// The fetched keys of one mount.
#[derive(Default)]
pub struct Remote {
    allowed: AllowedUrls,
    cached: RwLock<Option<Cached>>,
    /// When the last fetch started (successful or not).
    last_fetch: RwLock<Option<Instant>>,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
}

impl Remote {
    /// Fetches only under `allowed`.
    pub fn new(allowed: AllowedUrls) -> Remote {
        Remote {
            allowed,
            ..Default::default()
        }
    }

    /// Refuses a configured URL outside the allowed prefixes (400 message).
    pub fn check_allowed(&self, field: &str, url: &str) -> Result<(), String> {
        let parsed = reqwest::Url::parse(url).map_err(|_| format!("invalid {field}: not a URL"))?;
        if self.allowed.is_empty() {
            return Err(format!(
                "'{field}' is not allowed: the server's configuration allows no key URL \
                 ([jwt_discovery] allowed_urls); give the keys inline with \
                 'jwt_validation_pubkeys' or 'jwks', or ask the operator to allow the URL"
            ));
        }
        if !self.allowed.allows(&parsed) {
            return Err(format!(
                "'{field}' is not allowed: {url} is not under any of the server's \
                 [jwt_discovery] allowed_urls"
            ));
        }
        Ok(())
    }

    /// The cached keys for `config`, if they are fresh.
    pub fn cached(&self, config: &Config) -> Option<Arc<KeySet>> {
        let source = config.remote_source()?;
        let c = self.cached.read();
        let c = c.as_ref()?;
        (c.source == source && c.ca == config.remote_ca() && c.fetched.elapsed() < CACHE_TTL)
            .then(|| c.keys.clone())
    }

    /// The keys for `config`: cached, or fetched now. When a fetch fails,
    /// stale keys of the same source are kept in use.
    pub async fn keys(&self, config: &Config) -> Result<Arc<KeySet>, String> {
        if let Some(k) = self.cached(config) {
            return Ok(k);
        }
        let _one = self.fetching.lock().await;
        if let Some(k) = self.cached(config) {
            return Ok(k);
        }
        // A fetch ran moments ago and left no fresh keys (it failed): logins
        // must not each make the server fetch again.
        let e = if self
            .last_fetch
            .read()
            .is_some_and(|t| t.elapsed() < REFETCH_INTERVAL)
        {
            "the key URL gave no keys moments ago; try again shortly".to_string()
        } else {
            match self.fetch_into_cache(config).await {
                Ok(k) => return Ok(k),
                Err(e) => e,
            }
        };
        let c = self.cached.read();
        match c.as_ref() {
            Some(c) if Some(&c.source) == config.remote_source().as_ref() => {
                tracing::warn!("jwt: key refresh failed ({e}); using the keys fetched before");
                Ok(c.keys.clone())
            }
            _ => Err(e),
        }
    }

    /// Fetches again because a token named an unknown `kid`, unless a fetch
    /// ran less than [`REFETCH_INTERVAL`] ago. `None` when none was made.
    pub async fn refetch_for_unknown_kid(&self, config: &Config) -> Option<Arc<KeySet>> {
        let _one = self.fetching.lock().await;
        if self
            .last_fetch
            .read()
            .is_some_and(|t| t.elapsed() < REFETCH_INTERVAL)
        {
            return None;
        }
        match self.fetch_into_cache(config).await {
            Ok(k) => Some(k),
            Err(e) => {
                tracing::warn!("jwt: key re-fetch failed ({e})");
                None
            }
        }
    }

    /// Fetches now (used by a config write to check the URL); caches the keys.
    pub async fn fetch_into_cache(&self, config: &Config) -> Result<Arc<KeySet>, String> {
        let source = config
            .remote_source()
            .ok_or_else(|| "no key URL is configured".to_string())?;
        *self.last_fetch.write() = Some(Instant::now());
        let keys = Arc::new(self.fetch(&source, config.remote_ca()).await?);
        *self.cached.write() = Some(Cached {
            source,
            ca: config.remote_ca().to_string(),
            keys: keys.clone(),
            fetched: Instant::now(),
        });
        Ok(keys)
    }

    async fn fetch(&self, source: &Source, ca: &str) -> Result<KeySet, String> {
        let client = client(ca)?;
        let jwks_url = match source {
            Source::Jwks(u) => u.clone(),
            Source::Discovery(issuer) => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    issuer.trim_end_matches('/')
                );
                let doc = self.get_json(&client, &url).await?;
                let issuer_in_doc = doc.get("issuer").and_then(Value::as_str).unwrap_or("");
                if issuer_in_doc.trim_end_matches('/') != issuer.trim_end_matches('/') {
                    return Err(format!(
                        "the discovery document's issuer {issuer_in_doc:?} is not {issuer:?}"
                    ));
                }
                doc.get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or("the discovery document names no jwks_uri")?
                    .to_string()
            }
        };
        let doc = self.get_json(&client, &jwks_url).await?;
        KeySet::from_jwks(&doc).map_err(|e| format!("invalid key set at {jwks_url}: {e}"))
    }

    async fn get_json(&self, client: &reqwest::Client, url: &str) -> Result<Value, String> {
        let parsed = reqwest::Url::parse(url).map_err(|_| format!("{url:?} is not a URL"))?;
        if !self.allowed.allows(&parsed) {
            return Err(format!(
                "{url} is not under any of the server's [jwt_discovery] allowed_urls"
            ));
        }
        let mut resp = client
            .get(parsed)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("fetching {url}: {}", error_chain(&e)))?;
        if !resp.status().is_success() {
            return Err(format!("fetching {url}: status {}", resp.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("fetching {url}: {}", error_chain(&e)))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT {
                return Err(format!("fetching {url}: the document is larger than 1 MiB"));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|_| format!("fetching {url}: not a JSON document"))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// A client trusting `ca` (PEM) only, or the system roots when empty.
fn client(ca: &str) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none());
    if !ca.trim().is_empty() {
        let certs = reqwest::Certificate::from_pem_bundle(ca.as_bytes())
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or("jwks_ca_pem holds no PEM certificate")?;
        builder = builder.tls_certs_only(certs);
    }
    builder
        .build()
        .map_err(|_| "cannot build the HTTP client".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_urls_match_by_prefix_and_origin() {
        let a = AllowedUrls::parse(&[
            "https://kubernetes.default.svc/".into(),
            "http://127.0.0.1:8080/oidc".into(),
        ])
        .unwrap();
        let ok = |u: &str| a.allows(&reqwest::Url::parse(u).unwrap());
        assert!(ok("https://kubernetes.default.svc/openid/v1/jwks"));
        assert!(ok("https://KUBERNETES.default.svc:443/x"));
        assert!(ok(
            "http://127.0.0.1:8080/oidc/.well-known/openid-configuration"
        ));
        assert!(!ok("http://127.0.0.1:8080/oidcx/keys"));
        assert!(!ok("http://127.0.0.1:8081/oidc/keys"));
        assert!(!ok("http://kubernetes.default.svc/openid/v1/jwks"));
        assert!(!ok("https://kubernetes.default.svc.evil.test/x"));
        assert!(!ok("https://user:pw@kubernetes.default.svc/x"));
        assert!(AllowedUrls::parse(&["http://example.test/".into()]).is_err());
        assert!(AllowedUrls::parse(&["not a url".into()]).is_err());
        assert!(AllowedUrls::default().is_empty());
    }
}

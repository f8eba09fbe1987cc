//! `config/urls` (the URLs written into certificates; the server never
//! calls them) and `config/crl` (the CRL's lifetime).

use rcgen::CrlDistributionPoint;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::engine::EngineCtx;
use crate::util::{format_duration_short, Params};
use crate::{Error, Operation, Request, Response, Result};

/// `config/urls`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Urls {
    /// Where the issuing CA's certificate can be fetched.
    pub issuing_certificates: Vec<String>,
    /// Where the CRL can be fetched.
    pub crl_distribution_points: Vec<String>,
    /// OCSP responders.
    pub ocsp_servers: Vec<String>,
}

/// `config/crl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CrlConfig {
    /// Seconds a CRL is valid.
    pub expiry: u64,
    /// Whether CRL building is disabled.
    pub disable: bool,
}

impl Default for CrlConfig {
    fn default() -> Self {
        CrlConfig {
            expiry: 72 * 3600,
            disable: false,
        }
    }
}

/// The stored URLs.
pub async fn load(ctx: &EngineCtx<'_>) -> Result<Urls> {
    Ok(ctx.view.get_json("config/urls").await?.unwrap_or_default())
}

/// The stored CRL settings.
pub async fn crl_config(ctx: &EngineCtx<'_>) -> Result<CrlConfig> {
    Ok(ctx.view.get_json("config/crl").await?.unwrap_or_default())
}

/// The CRL distribution points to write into a certificate.
pub async fn crl_points(ctx: &EngineCtx<'_>) -> Result<Vec<CrlDistributionPoint>> {
    let u = load(ctx).await?;
    if u.crl_distribution_points.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![CrlDistributionPoint {
        uris: u.crl_distribution_points,
    }])
}

fn check_urls(field: &str, list: &[String]) -> Result<()> {
    for u in list {
        let ok = reqwest::Url::parse(u).ok().is_some_and(|p| {
            matches!(p.scheme(), "http" | "https" | "ldap") && p.host_str().is_some()
        });
        if !ok || !u.is_ascii() {
            return Err(Error::bad(format!("invalid URL found in {field}: {u}")));
        }
    }
    Ok(())
}

/// Handles `config/urls`.
pub async fn handle_urls(ctx: &EngineCtx<'_>, req: &Request) -> Result<Response> {
    match req.operation {
        Operation::Read => {
            let u = load(ctx).await?;
            Ok(Response::data(json!({
                "issuing_certificates": u.issuing_certificates,
                "crl_distribution_points": u.crl_distribution_points,
                "ocsp_servers": u.ocsp_servers,
                "delta_crl_distribution_points": [],
                "enable_templating": false,
            })))
        }
        Operation::Create | Operation::Update => {
            let p = Params(&req.data);
            let mut u = load(ctx).await?;
            if p.bool("enable_templating")?.unwrap_or(false) {
                return Err(Error::bad(
                    "enable_templating is not supported by Coffer's pki engine",
                ));
            }
            for (field, slot) in [
                ("issuing_certificates", &mut u.issuing_certificates),
                ("crl_distribution_points", &mut u.crl_distribution_points),
                ("ocsp_servers", &mut u.ocsp_servers),
            ] {
                if let Some(v) = p.str_list(field)? {
                    check_urls(field, &v)?;
                    *slot = v;
                }
            }
            ctx.view.put_json("config/urls", &u).await?;
            Ok(Response::data(json!({
                "issuing_certificates": u.issuing_certificates,
                "crl_distribution_points": u.crl_distribution_points,
                "ocsp_servers": u.ocsp_servers,
                "delta_crl_distribution_points": [],
                "enable_templating": false,
            })))
        }
        _ => Err(Error::UnsupportedOperation),
    }
}

/// Handles `config/crl`.
pub async fn handle_crl(ctx: &EngineCtx<'_>, req: &Request) -> Result<Response> {
    let show = |c: &CrlConfig| {
        Response::data(json!({
            "expiry": format_duration_short(c.expiry),
            "disable": c.disable,
            "auto_rebuild": false,
            "auto_rebuild_grace_period": "12h",
            "allow_expired_cert_revocation": false,
            "delta_rebuild_interval": "15m",
            "enable_delta": false,
            "ocsp_disable": false,
            "ocsp_expiry": "12h",
        }))
    };
    match req.operation {
        Operation::Read => Ok(show(&crl_config(ctx).await?)),
        Operation::Create | Operation::Update => {
            let p = Params(&req.data);
            let mut c = crl_config(ctx).await?;
            if let Some(e) = p.duration("expiry")? {
                if e == 0 {
                    return Err(Error::bad("expiry must be a positive duration"));
                }
                c.expiry = e;
            }
            if let Some(d) = p.bool("disable")? {
                c.disable = d;
            }
            ctx.view.put_json("config/crl", &c).await?;
            Ok(show(&c))
        }
        _ => Err(Error::UnsupportedOperation),
    }
}

//! The `pki` secrets engine, as Vault's for the common surface: a root or
//! intermediate CA (`root/generate/:type`, `intermediate/generate/:type`,
//! `root/sign-intermediate`, `intermediate/set-signed`), issuers in the
//! multi-issuer model (`issuers`, `issuer/:ref`, `config/issuers`), roles
//! (`roles/:name`), issuance (`issue/:role`, `sign/:role`), the certificate
//! store (`cert/:serial`, `certs`), revocation and CRLs (`revoke`, `crl`,
//! `crl/pem`, `crl/rotate`), `tidy`, and `config/urls` / `config/crl`.
//!
//! Certificates are built with rcgen and read with x509-parser. Keys are
//! stored behind the barrier (`key/<id>`), held in zeroizing types and
//! never printed. Certificates issued under a role with `generate_lease`
//! carry a lease whose revocation revokes the certificate. Revocations
//! may be deferred to a time (`deferred/<serial>`): the lifecycle's `pki`
//! rotator revokes a replaced certificate after its grace period that way,
//! and [`Engine::periodic`] carries them out.

mod ca;
mod crl;
mod issue;
mod issuers;
mod keys;
mod names;
mod roles;
mod store;
mod urls;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use crate::engine::{Engine, EngineCtx};
use crate::util::Params;
use crate::{Error, Operation, Request, Response, Result};

pub use issuers::split_pem;

/// The mount type.
pub const KIND: &str = "pki";

/// The pki engine of one mount.
#[derive(Default)]
pub struct Pki {
    /// Serializes changes to issuers, revocations and CRLs (CRL numbers
    /// and revocation records are read-modify-write).
    lock: Arc<Mutex<()>>,
}

impl Pki {
    /// A new engine.
    pub fn new() -> Self {
        Pki::default()
    }

    /// Issues a certificate under `role` with `data` (`common_name`,
    /// `alt_names`, `ip_sans`, `ttl`) for the lifecycle's `pki` rotator;
    /// the role's name rules apply as to any request. Answers the issue
    /// response's data.
    pub async fn issue_for(
        &self,
        ctx: &EngineCtx<'_>,
        role: &str,
        data: &Map<String, Value>,
    ) -> Result<Value> {
        roles::validate_name(role)?;
        let r = roles::load(ctx, role)
            .await?
            .ok_or_else(|| Error::bad(format!("unknown role: {role}")))?;
        let resp = issue::issue_with(ctx, &r, &Params(data), false).await?;
        resp.data
            .ok_or_else(|| Error::Internal("issue answered no data".into()))
    }

    /// Revokes the certificate with `serial` now.
    pub async fn revoke_now(&self, ctx: &EngineCtx<'_>, serial: &str) -> Result<()> {
        let serial = store::normalize_serial(serial)?;
        let _g = self.lock.lock().await;
        crl::revoke_serial(ctx, &serial, None).await.map(|_| ())
    }

    /// Revokes the certificate with `serial` at `at` (Unix seconds), from
    /// the background work.
    pub async fn revoke_at(&self, ctx: &EngineCtx<'_>, serial: &str, at: i64) -> Result<()> {
        let serial = store::normalize_serial(serial)?;
        crl::defer(ctx, &serial, at).await
    }

    /// Whether `serial` was issued by this mount (is in its store).
    pub async fn issued(&self, ctx: &EngineCtx<'_>, serial: &str) -> Result<bool> {
        let serial = store::normalize_serial(serial)?;
        Ok(store::get(ctx, &serial).await?.is_some())
    }

    /// The certificates of this mount's issuers (PEM): the anchors a
    /// certificate it issued must chain to.
    pub async fn issuer_certificates(&self, ctx: &EngineCtx<'_>) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for id in issuers::ids(ctx).await? {
            if let Some(i) = ctx
                .view
                .get_json::<issuers::StoredIssuer>(&format!("issuer/{id}"))
                .await?
            {
                out.push(i.certificate);
            }
        }
        Ok(out)
    }
}

/// Splits `path` into its first segment and the rest.
fn split(path: &str) -> (&str, &str) {
    let path = path.trim_end_matches('/');
    match path.split_once('/') {
        Some((head, rest)) => (head, rest),
        None => (path, ""),
    }
}

#[async_trait]
impl Engine for Pki {
    async fn exists(
        &self,
        ctx: &EngineCtx<'_>,
        _req: &Request,
        path: &str,
    ) -> Result<Option<bool>> {
        match split(path) {
            ("roles", n) if !n.is_empty() && roles::validate_name(n).is_ok() => {
                Ok(Some(ctx.view.get(&format!("role/{n}")).await?.is_some()))
            }
            _ => Ok(None),
        }
    }

    fn is_unauthenticated(&self, path: &str) -> bool {
        // Vault's unauthenticated PKI paths: the CA, its chain, CRLs and
        // certificates are public documents.
        let p = path.trim_end_matches('/');
        matches!(
            p,
            "ca" | "ca/pem" | "ca_chain" | "crl" | "crl/pem" | "issuers"
        ) || p
            .strip_prefix("cert/")
            .is_some_and(|s| !s.is_empty() && !s.contains('/'))
            || p.strip_prefix("issuer/").is_some_and(|s| {
                s.split_once('/')
                    .is_some_and(|(r, sub)| !r.is_empty() && matches!(sub, "pem" | "der" | "json"))
            })
    }

    async fn handle(&self, ctx: &EngineCtx<'_>, req: &Request, path: &str) -> Result<Response> {
        let trimmed = path.trim_end_matches('/');
        let (head, rest) = split(path);
        match (head, rest) {
            ("ca", "") | ("ca", "pem") | ("ca_chain", "") => ca::read_ca(ctx, req, trimmed).await,
            ("cert", "ca") | ("cert", "ca_chain") => ca::read_ca(ctx, req, trimmed).await,
            // A read may rebuild an expired CRL: serialized like revocations.
            ("cert", "crl") => {
                let _g = self.lock.lock().await;
                crl::read(ctx, req, "cert/crl").await
            }
            ("cert", serial) if !serial.is_empty() => read_cert(ctx, req, serial).await,
            ("certs", "") => {
                if req.operation != Operation::List {
                    return Err(Error::UnsupportedOperation);
                }
                Response::list(store::list(ctx).await?)
            }
            ("crl", "") | ("crl", "pem") => {
                let _g = self.lock.lock().await;
                crl::read(ctx, req, trimmed).await
            }
            ("crl", "rotate") => {
                let _g = self.lock.lock().await;
                crl::rotate(ctx, req).await
            }
            ("config", "urls") => urls::handle_urls(ctx, req).await,
            ("config", "crl") => urls::handle_crl(ctx, req).await,
            ("config", "issuers") => {
                let _g = self.lock.lock().await;
                ca::config_issuers(ctx, req).await
            }
            ("issuers", "") => ca::list_issuers(ctx, req).await,
            ("issuer", r) if !r.is_empty() => {
                let _g = self.lock.lock().await;
                ca::issuer(ctx, req, r).await
            }
            ("roles", name) => roles::handle(ctx, req, name).await,
            ("issue", name) if !name.is_empty() => issue::handle(ctx, req, name, false).await,
            ("sign", name) if !name.is_empty() => issue::handle(ctx, req, name, true).await,
            ("root", r) => {
                let _g = self.lock.lock().await;
                match r.split_once('/') {
                    Some(("generate", kind)) => ca::generate_root(ctx, req, kind).await,
                    None if r == "sign-intermediate" => ca::sign_intermediate(ctx, req).await,
                    _ => Err(unsupported(path)),
                }
            }
            ("intermediate", r) => {
                let _g = self.lock.lock().await;
                match r.split_once('/') {
                    Some(("generate", kind)) => ca::generate_intermediate(ctx, req, kind).await,
                    None if r == "set-signed" => ca::set_signed(ctx, req).await,
                    _ => Err(unsupported(path)),
                }
            }
            ("revoke", "") => {
                let _g = self.lock.lock().await;
                crl::revoke(ctx, req).await
            }
            ("tidy", "") => {
                let _g = self.lock.lock().await;
                crl::tidy(ctx, req).await
            }
            ("tidy-status", "") => crl::tidy_status(ctx, req).await,
            _ => Err(unsupported(path)),
        }
    }

    async fn revoke_lease(&self, ctx: &EngineCtx<'_>, internal: &Value) -> Result<()> {
        let serial = internal
            .get("serial_number")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::corrupt("pki lease data"))?;
        let serial = store::normalize_serial(serial)?;
        let fallback = match (
            internal.get("issuer_id").and_then(Value::as_str),
            internal.get("not_after").and_then(Value::as_i64),
        ) {
            (Some(i), Some(n)) => Some((i.to_string(), n)),
            _ => None,
        };
        let _g = self.lock.lock().await;
        crl::revoke_serial(ctx, &serial, fallback).await.map(|_| ())
    }

    async fn periodic(&self, ctx: &EngineCtx<'_>) -> Result<()> {
        let Ok(_g) = self.lock.try_lock() else {
            return Ok(());
        };
        crl::run_deferred(ctx).await
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

fn unsupported(path: &str) -> Error {
    Error::UnsupportedPath(format!("unsupported path: {path:?}"))
}

async fn read_cert(ctx: &EngineCtx<'_>, req: &Request, serial: &str) -> Result<Response> {
    if req.operation != Operation::Read {
        return Err(Error::UnsupportedOperation);
    }
    let serial = store::normalize_serial(serial)?;
    let e = store::get(ctx, &serial).await?.ok_or(Error::NotFound)?;
    Ok(Response::data(ca::cert_json(
        &e.certificate,
        &e.issuer_id,
        e.revocation_time.unwrap_or(0),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_paths() {
        let p = Pki::new();
        for yes in [
            "ca",
            "ca/pem",
            "ca_chain",
            "crl",
            "crl/pem",
            "cert/ab:cd",
            "cert/ca",
            "issuer/default/pem",
            "issuers/",
        ] {
            assert!(p.is_unauthenticated(yes), "{yes}");
        }
        for no in [
            "crl/rotate",
            "certs/",
            "issue/web",
            "roles/web",
            "revoke",
            "issuer/default",
            "cert/a/b",
            "tidy",
            "root/generate/internal",
        ] {
            assert!(!p.is_unauthenticated(no), "{no}");
        }
    }
}

//! Coffer's auth methods: AppRole, userpass and JWT/OIDC, engines mounted
//! under `auth/` whose login endpoints answer without a token and return an
//! [`AuthGrant`] that the core turns into a token.
//!
//! **Architecture Invariant**: an auth method is written against the
//! contract in `coffer-engine` and nothing above it, like a secrets engine:
//! it sees its request (path relative to its mount), its
//! [`coffer_engine::EngineCtx`] (its own barrier `View`, its mount entry)
//! and what the core hands it at construction (the operator's allowed JWKS
//! and discovery URLs). It never mints a token, registers a lease or
//! writes an audit entry: a login answers an [`AuthGrant`], and the core's
//! pipeline does the rest. The crate does not depend on `coffer-core`
//! (checked by Cargo: it cannot name `Core`).
//!
//! * [`for_mount`]: the engine for an auth mount's type;
//! * [`approle`], [`userpass`], [`jwt`]: the methods; [`token_params`]: the
//!   `token_*` role fields they share.

pub mod approle;
pub mod jwt;
pub mod token_params;
pub mod userpass;

use std::sync::Arc;

// The methods' sources name the contract as `crate::engine`, `crate::Error`
// and so on, the paths they had inside coffer-core; these private imports
// keep those paths valid so the moved files stay as they were.
use coffer_engine::engine::Engine;
use coffer_engine::mounts::MountEntry;
use coffer_engine::{barrier, engine, redact};
use coffer_engine::{AuthGrant, Error, Operation, Request, Response, Result};

/// Vault's parameter, time and JSON helpers under their former module name.
mod util {
    pub use coffer_engine::json::list_or_null;
    pub use coffer_engine::params::Params;
    pub use coffer_engine::time::{format_duration, now, parse_duration, rfc3339};
}

/// Creates the engine of an auth mount, or refuses an unknown type.
/// `jwt_urls`: where JWT mounts may fetch keys (the server's configuration).
pub fn for_mount(
    entry: &MountEntry,
    jwt_urls: &jwt::remote::AllowedUrls,
) -> Result<Arc<dyn Engine>> {
    match entry.kind.as_str() {
        "approle" => Ok(Arc::new(approle::AppRole::new())),
        "userpass" => Ok(Arc::new(userpass::UserPass::new())),
        "jwt" | "oidc" => Ok(Arc::new(jwt::JwtAuth::with_allowed_urls(jwt_urls.clone()))),
        other => Err(Error::bad(format!("unknown auth method type {other:?}"))),
    }
}

/// Whether two policy lists grant the same set, ignoring order, case and
/// the `default` policy (which the core adds to login tokens).
pub fn same_policies(a: &[String], b: &[String]) -> bool {
    let norm = |l: &[String]| -> std::collections::BTreeSet<String> {
        l.iter()
            .map(|p| p.trim().to_lowercase())
            .filter(|p| !p.is_empty() && p != "default")
            .collect()
    };
    norm(a) == norm(b)
}

/// Parses a list of CIDR blocks (or bare addresses) as Vault's
/// `token_bound_cidrs` / `secret_id_bound_cidrs` accept them.
pub fn parse_cidrs(items: &[String]) -> Result<Vec<(std::net::IpAddr, u8)>> {
    items.iter().map(|s| parse_cidr(s)).collect()
}

fn parse_cidr(s: &str) -> Result<(std::net::IpAddr, u8)> {
    let s = s.trim();
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let ip: std::net::IpAddr = addr
        .parse()
        .map_err(|_| Error::bad(format!("invalid CIDR block {s:?}")))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| Error::bad(format!("invalid CIDR block {s:?}")))?,
        None => max,
    };
    Ok((ip, len))
}

/// The CIDR blocks a login's token is bound to: with `strict`
/// (`token_strictly_bind_ip`), only the address that logged in (a login
/// without a known address is refused); otherwise the configured blocks.
pub fn strict_bind(
    strict: bool,
    ip: Option<std::net::IpAddr>,
    cidrs: Vec<String>,
) -> Result<Vec<String>> {
    if !strict {
        return Ok(cidrs);
    }
    let ip = ip.ok_or_else(|| {
        Error::bad("token_strictly_bind_ip is set but the client address is unknown")
    })?;
    // A bare address (one host), as OpenBao's lookups show it.
    Ok(vec![match ip {
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        std::net::IpAddr::V4(v4) => v4.to_string(),
    }])
}

/// Whether `ip` lies in one of `cidrs` (an empty list allows any address).
pub fn ip_allowed(ip: Option<std::net::IpAddr>, cidrs: &[String]) -> bool {
    if cidrs.is_empty() {
        return true;
    }
    let Some(ip) = ip else {
        return false;
    };
    let ip = match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    cidrs
        .iter()
        .filter_map(|c| parse_cidr(c).ok())
        .any(|(net, len)| match (net, ip) {
            (std::net::IpAddr::V4(n), std::net::IpAddr::V4(a)) => {
                let mask = if len == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(len))
                };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (std::net::IpAddr::V6(n), std::net::IpAddr::V6(a)) => {
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(len))
                };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_matching() {
        let ip = |s: &str| Some(s.parse().unwrap());
        let c = vec!["10.0.0.0/8".to_string(), "192.168.1.7".to_string()];
        assert!(ip_allowed(ip("10.1.2.3"), &c));
        assert!(ip_allowed(ip("192.168.1.7"), &c));
        assert!(!ip_allowed(ip("192.168.1.8"), &c));
        assert!(ip_allowed(ip("::ffff:10.0.0.1"), &c));
        assert!(ip_allowed(None, &[]));
        assert!(!ip_allowed(None, &c));
        assert!(parse_cidrs(&["10.0.0.0/33".into()]).is_err());
        assert!(parse_cidrs(&["nope".into()]).is_err());
    }

    #[test]
    fn strict_binding_replaces_the_blocks_with_the_login_address() {
        let ip = |s: &str| Some(s.parse().unwrap());
        let c = vec!["10.0.0.0/8".to_string()];
        assert_eq!(strict_bind(false, None, c.clone()).unwrap(), c);
        assert_eq!(
            strict_bind(true, ip("::ffff:10.1.2.3"), c.clone()).unwrap(),
            vec!["10.1.2.3".to_string()]
        );
        assert_eq!(
            strict_bind(true, ip("2001:db8::1"), c.clone()).unwrap(),
            vec!["2001:db8::1".to_string()]
        );
        assert!(strict_bind(true, None, c).is_err());
        let bound = strict_bind(true, ip("10.1.2.3"), vec![]).unwrap();
        assert!(ip_allowed(ip("10.1.2.3"), &bound));
        assert!(!ip_allowed(ip("10.1.2.4"), &bound));
    }
}

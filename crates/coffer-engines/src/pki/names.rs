//! A role's name rules: which DNS names and IP addresses a certificate
//! issued under it may carry. A name is judged exactly as it will be
//! written into the certificate: ASCII only, no trailing dot, no empty
//! label, a wildcard only as a whole leftmost `*` label, an address only as
//! an IP SAN. Domains match case-sensitively, as OpenBao matches them (a
//! name spelled in another case than the role's domain is refused).

use std::net::IpAddr;

use super::roles::Role;
use crate::{Error, Result};

/// A name a certificate will carry, as judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    /// A DNS name (possibly `*.`-prefixed), lower case.
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
}

fn refuse(name: &str) -> Error {
    Error::bad(format!(
        "subject alternate name {name} not allowed by this role"
    ))
}

/// Whether `label` is a DNS label: 1-63 letters, digits and `-`, not at either end.
fn label_ok(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// Whether `host` (lower case, no wildcard) is a hostname.
fn hostname_ok(host: &str) -> bool {
    host.len() <= 253 && host.split('.').all(label_ok)
}

/// A requested DNS name checked, or a refusal. Trailing dots, empty
/// labels, non-ASCII, `@`, spaces and wildcards other than a whole
/// leftmost `*` label are refused.
pub fn canonical_dns(raw: &str, enforce_hostnames: bool) -> Result<String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(Error::bad("an empty name is not allowed"));
    }
    if !name.is_ascii() || name.ends_with('.') || name.contains("..") || name.contains('@') {
        return Err(refuse(raw));
    }
    if name
        .bytes()
        .any(|b| b.is_ascii_control() || b == b' ' || b == b'/' || b == b'\\')
    {
        return Err(refuse(raw));
    }
    let (wild, base) = match name.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, name),
    };
    if base.contains('*') {
        return Err(refuse(raw));
    }
    if (enforce_hostnames || wild) && !hostname_ok(base) {
        return Err(refuse(raw));
    }
    Ok(name.to_string())
}

/// Whether the checked DNS name `name` is allowed by `role`.
fn dns_allowed(role: &Role, name: &str) -> bool {
    let (wild, base) = match name.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, name),
    };
    if wild && !role.allow_wildcard_certificates {
        return false;
    }
    if role.allow_any_name {
        return true;
    }
    if role.allow_localhost && !wild && (base == "localhost" || base == "localdomain") {
        return true;
    }
    role.allowed_domains.iter().any(|d| {
        let d = d.trim_end_matches('.');
        if d.is_empty() {
            return false;
        }
        if wild {
            // `*.d` is the set of d's children: subdomains must be allowed.
            // `*.x.d` needs subdomains too.
            return role.allow_subdomains && (base == d || base.ends_with(&format!(".{d}")));
        }
        (role.allow_bare_domains && base == d)
            || (role.allow_subdomains && base.ends_with(&format!(".{d}")))
    })
}

/// Judges every requested name against `role`: the common name (unless
/// empty), `alt_names` and `ip_sans`. Returns the names the certificate
/// will carry, in request order without duplicates.
pub fn judge(
    role: &Role,
    common_name: &str,
    alt_names: &[String],
    ip_sans: &[String],
) -> Result<Vec<Name>> {
    let mut out: Vec<Name> = Vec::new();
    let mut push = |n: Name| {
        if !out.contains(&n) {
            out.push(n);
        }
    };
    let mut dns = Vec::new();
    if !common_name.is_empty() {
        if role.require_cn && common_name.trim().is_empty() {
            return Err(Error::bad("the common_name field is required"));
        }
        dns.push(common_name.to_string());
    } else if role.require_cn {
        return Err(Error::bad(
            "the common_name field is required, or must be provided in a CSR with \"use_csr_common_name\" set to true, unless \"require_cn\" is set to false",
        ));
    }
    dns.extend(alt_names.iter().cloned());
    for raw in &dns {
        // An address in a name field is judged as an IP SAN.
        if let Ok(ip) = raw.trim().parse::<IpAddr>() {
            if !role.allow_ip_sans {
                return Err(Error::bad(format!(
                    "IP Subject Alternative Names are not allowed in this role, but was provided {raw}"
                )));
            }
            push(Name::Ip(ip));
            continue;
        }
        let name = canonical_dns(raw, role.enforce_hostnames)?;
        if !dns_allowed(role, &name) {
            return Err(refuse(raw));
        }
        push(Name::Dns(name));
    }
    for raw in ip_sans {
        let ip: IpAddr = raw
            .trim()
            .parse()
            .map_err(|_| Error::bad(format!("the value {raw:?} is not a valid IP address")))?;
        if !role.allow_ip_sans {
            return Err(Error::bad(format!(
                "IP Subject Alternative Names are not allowed in this role, but was provided {raw}"
            )));
        }
        push(Name::Ip(ip));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role() -> Role {
        Role {
            allowed_domains: vec!["example.com".into()],
            allow_subdomains: true,
            ..Role::default()
        }
    }

    fn ok(r: &Role, n: &str) -> bool {
        judge(r, n, &[], &[]).is_ok()
    }

    #[test]
    fn subdomains_and_bare_domains() {
        let mut r = role();
        assert!(ok(&r, "a.example.com"));
        assert!(ok(&r, "A.b.example.com"));
        // Another case than the role's domain is another name (as OpenBao).
        assert!(!ok(&r, "WWW.EXAMPLE.COM"));
        assert!(!ok(&r, "www.Example.com"));
        assert!(!ok(&r, "example.com"));
        r.allow_bare_domains = true;
        assert!(ok(&r, "example.com"));
    }

    #[test]
    fn spellings_that_must_not_pass() {
        let r = role();
        for bad in [
            "evilexample.com",
            "example.com.evil.com",
            "a.example.com.",
            "a..example.com",
            ".example.com",
            "a.example.com\0.evil",
            "a.example.com/x",
            "a b.example.com",
            "ａ.example.com",
            "a@example.com",
            "f*o.example.com",
            "*foo.example.com",
            "a.*.example.com",
            "**.example.com",
            "-a.example.com",
            "evil.com",
            "localhost.evil",
        ] {
            assert!(!ok(&r, bad), "{bad:?} was allowed");
        }
    }

    #[test]
    fn wildcards_need_subdomains_and_the_flag() {
        let mut r = role();
        assert!(ok(&r, "*.example.com"));
        assert!(ok(&r, "*.x.example.com"));
        assert!(!ok(&r, "*.com"));
        assert!(!ok(&r, "*.evilexample.com"));
        r.allow_wildcard_certificates = false;
        assert!(!ok(&r, "*.example.com"));
        r.allow_wildcard_certificates = true;
        r.allow_subdomains = false;
        r.allow_bare_domains = true;
        assert!(!ok(&r, "*.example.com"));
    }

    #[test]
    fn localhost_ips_and_any_name() {
        let mut r = role();
        assert!(ok(&r, "localhost"));
        r.allow_localhost = false;
        assert!(!ok(&r, "localhost"));
        assert!(judge(&r, "a.example.com", &[], &["10.0.0.1".into()]).is_ok());
        assert!(judge(&r, "a.example.com", &["127.0.0.1".into()], &[]).is_ok());
        assert!(judge(&r, "a.example.com", &[], &["not-an-ip".into()]).is_err());
        r.allow_ip_sans = false;
        assert!(judge(&r, "a.example.com", &[], &["10.0.0.1".into()]).is_err());
        assert!(judge(&r, "a.example.com", &["::1".into()], &[]).is_err());
        assert!(judge(
            &r,
            "a.example.com",
            &["b.example.com".into(), "evil.com".into()],
            &[]
        )
        .is_err());
        r.allow_any_name = true;
        assert!(ok(&r, "anything.test"));
        assert!(!ok(&r, "bad..name"));
        assert!(!ok(&r, "trailing.dot."));
    }
}

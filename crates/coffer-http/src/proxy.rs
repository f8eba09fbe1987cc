//! The client address of a request: the TCP peer, or, when the peer is a
//! trusted proxy, the right-most untrusted `X-Forwarded-For` entry (Vault's
//! `x_forwarded_for_authorized_addrs`).

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

/// An IP network in CIDR notation (`10.0.0.0/8`, `fd00::/8`, or a bare address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`, `x::y/n` or a bare address (a /32 or /128).
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("invalid network {s:?}: expected an address or CIDR"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("invalid network {s:?}: bad prefix length"))?,
        };
        Ok(Cidr { net, prefix })
    }

    /// Whether `ip` lies in this network (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The proxies whose `X-Forwarded-For` header is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<Cidr>,
}

impl TrustedProxies {
    /// Parses a list of networks; empty means "trust no proxy".
    pub fn parse<S: AsRef<str>>(list: &[S]) -> Result<TrustedProxies, String> {
        let nets = list
            .iter()
            .map(|s| Cidr::parse(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustedProxies { nets })
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }

    /// The client address of a request from `peer` with `headers`.
    ///
    /// From an untrusted peer, `X-Forwarded-For` is ignored. From a trusted
    /// one, the entries are walked from the right (the one the peer itself
    /// appended) and the first address not in the trusted list is the
    /// client; if every entry is trusted, the left-most one is. An entry that
    /// is not an address is an error: a trusted proxy wrote it.
    pub fn client_addr(&self, peer: IpAddr, headers: &HeaderMap) -> Result<IpAddr, String> {
        if !self.trusts(peer) {
            return Ok(peer);
        }
        let mut entries: Vec<&str> = Vec::new();
        for v in headers.get_all("x-forwarded-for") {
            let v = v
                .to_str()
                .map_err(|_| "invalid X-Forwarded-For header".to_string())?;
            entries.extend(v.split(',').map(str::trim).filter(|e| !e.is_empty()));
        }
        let mut client = peer;
        for entry in entries.iter().rev() {
            let ip = parse_forwarded(entry)
                .ok_or_else(|| "invalid X-Forwarded-For header: not an address".to_string())?;
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        Ok(canonical(client))
    }
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:5678`, `::1` or `[::1]:5678`.
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = entry.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|a| a.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs() {
        let n = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(n.contains(ip("10.1.2.3")));
        assert!(n.contains(ip("::ffff:10.1.2.3")));
        assert!(!n.contains(ip("11.0.0.1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        assert!(Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.1")));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nope").is_err());
    }

    #[test]
    fn forwarded_for() {
        let t = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_static("1.1.1.1, 2.2.2.2"),
        );
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.5"));
        // Untrusted peer: the header is ignored.
        assert_eq!(t.client_addr(ip("3.3.3.3"), &h).unwrap(), ip("3.3.3.3"));
        // Trusted peer: right-most untrusted entry (not the spoofable left-most).
        assert_eq!(t.client_addr(ip("10.9.9.9"), &h).unwrap(), ip("2.2.2.2"));
        // No header: the peer.
        let empty = HeaderMap::new();
        assert_eq!(
            t.client_addr(ip("10.9.9.9"), &empty).unwrap(),
            ip("10.9.9.9")
        );
        let mut bad = HeaderMap::new();
        bad.insert("x-forwarded-for", HeaderValue::from_static("junk"));
        assert!(t.client_addr(ip("10.9.9.9"), &bad).is_err());
        let mut port = HeaderMap::new();
        port.insert(
            "x-forwarded-for",
            HeaderValue::from_static("[2001:db8::1]:99"),
        );
        assert_eq!(
            t.client_addr(ip("10.9.9.9"), &port).unwrap(),
            ip("2001:db8::1")
        );
    }
}

//! `coffer scan --validate`: whether each found credential is live.
//!
//! The scanner library holds the outcome type, the `Validator` trait and
//! the bounded runner (`coffer_scan::validate`: each distinct credential
//! checked once, at most `--validate-concurrency` checks at a time); the
//! validators that contact anything are here, in the CLI, so the library
//! stays free of network and server code. Each bounds its own time with
//! `--validate-timeout` and never puts the credential in a detail.
//!
//! `local` (the default mode) sends a credential only to what the user
//! named: the Coffer/Vault server in `COFFER_ADDR`/`VAULT_ADDR` (tokens,
//! [`coffer`]), database hosts listed in `--validate-host` ([`postgres`]);
//! [`keypair`] and [`jwt`] contact nothing. `online` adds the providers'
//! APIs ([`online`]), each only when its host is in `--validate-host`.

mod coffer;
mod jwt;
mod keypair;
mod online;
mod postgres;

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use coffer_scan::validate::{self as v, Validator};
use coffer_scan::Finding;
use reqwest::Url;

/// How far `--validate` may reach.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only what the user named: the configured Coffer server, allowed
    /// database hosts; offline checks.
    Local,
    /// `local` and the providers' APIs whose hosts are allowed.
    Online,
}

/// Hosts a check may contact (`--validate-host`): a name or address, with
/// or without a port, compared case-insensitively and exactly.
#[derive(Debug, Clone, Default)]
pub struct Hosts(Vec<(String, Option<u16>)>);

impl Hosts {
    /// Parses `--validate-host` values.
    fn parse(entries: &[String]) -> anyhow::Result<Hosts> {
        let mut out = Vec::new();
        for raw in entries {
            let e = raw.trim();
            if e.is_empty() {
                continue;
            }
            let bad =
                || anyhow::anyhow!("invalid --validate-host {e:?}: expected HOST or HOST:PORT");
            let (host, port) = if let Some(rest) = e.strip_prefix('[') {
                let (h, tail) = rest.split_once(']').ok_or_else(bad)?;
                let port = match tail.strip_prefix(':') {
                    Some(p) => Some(p.parse::<u16>().map_err(|_| bad())?),
                    None if tail.is_empty() => None,
                    None => return Err(bad()),
                };
                (h.to_string(), port)
            } else {
                match e.split_once(':') {
                    Some((h, p)) if !p.contains(':') => {
                        (h.to_string(), Some(p.parse::<u16>().map_err(|_| bad())?))
                    }
                    // A bare IPv6 address.
                    Some(_) if e.parse::<IpAddr>().is_ok() => (e.to_string(), None),
                    Some(_) => return Err(bad()),
                    None => (e.to_string(), None),
                }
            };
            let host = normalize(&host);
            if host.is_empty()
                || host
                    .chars()
                    .any(|c| c.is_whitespace() || matches!(c, '/' | '@' | '?' | '#'))
            {
                return Err(bad());
            }
            out.push((host, port));
        }
        Ok(Hosts(out))
    }

    /// Whether `host:port` may be contacted.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = normalize(host);
        self.0
            .iter()
            .any(|(h, p)| *h == host && p.is_none_or(|p| p == port))
    }
}

/// A host as compared: lower case, no brackets, no trailing dot.
fn normalize(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// Whether `host` is this machine (where plain http:// is acceptable).
fn is_loopback(host: &str) -> bool {
    let h = normalize(host);
    h == "localhost" || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Everything the validators need.
pub struct Options {
    mode: Mode,
    hosts: Hosts,
    github: Url,
    slack: Url,
    timeout: Duration,
    concurrency: usize,
}

impl Options {
    /// Checks and collects the `--validate*` arguments.
    pub fn new(
        mode: Mode,
        hosts: &[String],
        endpoints: &[String],
        timeout: Duration,
        concurrency: usize,
    ) -> anyhow::Result<Options> {
        let mut github = Url::parse(online::GITHUB_API).context("default GitHub endpoint")?;
        let mut slack = Url::parse(online::SLACK_API).context("default Slack endpoint")?;
        for e in endpoints {
            let Some((name, url)) = e.split_once('=') else {
                bail!("invalid --validate-endpoint {e:?}: expected NAME=URL");
            };
            let url = endpoint_url(name, url.trim())?;
            match name.trim() {
                "github" => github = url,
                "slack" => slack = url,
                other => bail!("unknown --validate-endpoint {other:?} (github, slack)"),
            }
        }
        Ok(Options {
            mode,
            hosts: Hosts::parse(hosts)?,
            github,
            slack,
            timeout,
            concurrency: concurrency.max(1),
        })
    }
}

/// A provider endpoint: an http(s) base URL without credentials, query or
/// fragment; plain http only on loopback (a token must not cross a network
/// in clear).
fn endpoint_url(name: &str, raw: &str) -> anyhow::Result<Url> {
    let bad = |why: &str| anyhow::anyhow!("invalid --validate-endpoint {name}: {why}");
    let url = Url::parse(raw).map_err(|_| bad("not a URL"))?;
    let host = url.host_str().unwrap_or_default().to_string();
    if host.is_empty() || url.cannot_be_a_base() {
        return Err(bad("no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("credentials in the URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a query or fragment"));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&host) => {}
        "http" => return Err(bad("http:// is accepted only on loopback; use https://")),
        _ => return Err(bad("expected an http(s):// URL")),
    }
    Ok(url)
}

/// The current time in seconds since the epoch.
fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A time as RFC 3339 (UTC), or the raw number when out of range.
fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| coffer_core::util::rfc3339(&t))
        .unwrap_or_else(|| format!("{secs} (seconds since 1970)"))
}

/// Validates every finding (see the module documentation) and sets its
/// `validation`.
pub fn run(findings: &mut [Finding], opts: &Options) -> v::Stats {
    let now = now_secs();
    let coffer = coffer::CofferToken::from_env(opts.timeout);
    let postgres = postgres::Postgres::new(opts.hosts.clone(), opts.timeout);
    let keypair = keypair::KeyPair::new(now);
    let jwt = jwt::Jwt::new(now);
    let online = online::Providers::new(opts);
    let mut validators: Vec<&dyn Validator> = vec![&coffer, &postgres, &keypair, &jwt];
    validators.extend(online.validators());
    v::run(findings, &validators, opts.concurrency)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_allow_list() {
        let h = Hosts::parse(&[
            "DB.internal".into(),
            "127.0.0.1:5432".into(),
            "[::1]:8080".into(),
            " ".into(),
        ])
        .unwrap();
        assert!(h.allows("db.internal", 1));
        assert!(h.allows("db.internal.", 5432));
        assert!(h.allows("127.0.0.1", 5432));
        assert!(!h.allows("127.0.0.1", 5433));
        assert!(!h.allows("localhost", 5432));
        assert!(h.allows("[::1]", 8080));
        assert!(!h.allows("other.internal", 5432));
        assert!(!Hosts::default().allows("127.0.0.1", 5432));
        for bad in ["a:b", "a/b", "user@h", "[::1", "h:99999"] {
            assert!(Hosts::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints_need_https_off_loopback() {
        assert!(endpoint_url("github", "https://ghe.internal/api/v3").is_ok());
        assert!(endpoint_url("github", "http://127.0.0.1:9/x").is_ok());
        assert!(endpoint_url("github", "http://localhost:9").is_ok());
        assert!(endpoint_url("github", "http://ghe.internal").is_err());
        assert!(endpoint_url("github", "https://u:p@ghe.internal").is_err());
        assert!(endpoint_url("github", "https://ghe.internal/?a=b").is_err());
        assert!(endpoint_url("github", "ftp://ghe.internal").is_err());
        assert!(Options::new(
            Mode::Online,
            &[],
            &["gitlab=https://x".into()],
            Duration::from_secs(1),
            1
        )
        .is_err());
    }
}

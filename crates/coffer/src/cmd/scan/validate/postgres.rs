//! PostgreSQL connection URLs: connect, with a timeout, only when every
//! host the driver would contact is in `--validate-host`. A completed
//! startup (authentication included) is `live`; the server refusing the
//! credentials (SQLSTATE 28P01 or 28000) is `revoked`; anything else
//! (refused, timed out, another error) `unknown`.
//!
//! The finding is the URL's password; the whole URL is read back from the
//! working-tree file it was found in, so history and standard-input
//! findings stay `unknown`. `sslmode` is read as libpq reads it, on the
//! same TLS code as Coffer's storage and database engine
//! (`coffer_storage::pg_tls`); keys naming files are refused.

use std::time::Duration;

use coffer_scan::validate::{Claim, Validation, Validator};
use coffer_scan::Finding;
use coffer_storage::pg_tls::{self, MakeRustls, SslMode, TlsMaterial};
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;
use zeroize::Zeroizing;

use super::Hosts;
use crate::cmd::scan::{in_tree, url_around};

/// The validator's name in reports.
const NAME: &str = "postgres";

/// Rules whose secret is the password of a connection URL.
const RULES: &[&str] = &["database-url-password", "url-credentials"];

/// Checks postgres:// URLs on allowed hosts.
pub(super) struct Postgres {
    hosts: Hosts,
    timeout: Duration,
}

/// A parsed URL, ready to connect.
struct Spec {
    config: tokio_postgres::Config,
    mode: SslMode,
    /// The hosts and ports contacted, in the driver's order.
    targets: Vec<(String, u16)>,
}

impl Spec {
    /// Parses a URL; the error says why in words that never quote it.
    fn parse(url: &str, timeout: Duration) -> Result<Spec, String> {
        let (rest, sslmode) = pg_tls::split_sslmode(url)?;
        let mode = match sslmode {
            None => SslMode::Prefer,
            Some(m) => SslMode::parse(&m).ok_or("its sslmode is not one libpq knows")?,
        };
        let mut config: tokio_postgres::Config = rest
            .parse()
            .map_err(|_| "not a connection URL the driver can read".to_string())?;
        config.ssl_mode(mode.driver());
        config.connect_timeout(timeout);
        config.application_name("coffer-scan");
        let targets = targets(&config)?;
        Ok(Spec {
            config,
            mode,
            targets,
        })
    }

    /// `host:port, ...` for details.
    fn shown(&self) -> String {
        self.targets
            .iter()
            .map(|(h, p)| format!("{h}:{p}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Every (host, port) the driver may connect to: the `hostaddr` where one
/// is given (that is where it connects), else the host.
fn targets(c: &tokio_postgres::Config) -> Result<Vec<(String, u16)>, String> {
    let (hosts, addrs, ports) = (c.get_hosts(), c.get_hostaddrs(), c.get_ports());
    let n = hosts.len().max(addrs.len());
    if n == 0 {
        return Err("the URL names no host".into());
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        let host = match (addrs.get(i), hosts.get(i)) {
            (Some(ip), _) => ip.to_string(),
            (None, Some(Host::Tcp(h))) => h.clone(),
            (None, Some(_)) => return Err("the URL names a Unix socket".into()),
            (None, None) => return Err("the URL names no host".into()),
        };
        out.push((host, port));
    }
    Ok(out)
}

impl Postgres {
    /// A validator contacting only `hosts`, each connection bounded by
    /// `timeout`.
    pub(super) fn new(hosts: Hosts, timeout: Duration) -> Postgres {
        Postgres { hosts, timeout }
    }

    /// What to do with one URL (parsed, allow-list checked; nothing sent).
    fn claim_url(&self, url: Zeroizing<String>) -> Claim {
        let spec = match Spec::parse(&url, self.timeout) {
            Ok(s) => s,
            Err(why) => return Claim::Decided(Validation::unknown(NAME, why)),
        };
        if let Some((h, p)) = spec.targets.iter().find(|(h, p)| !self.hosts.allows(h, *p)) {
            return Claim::Decided(Validation::unknown(
                NAME,
                format!("host {h}:{p} is not in --validate-host: not contacted"),
            ));
        }
        Claim::Check(url)
    }
}

/// Whether `url` is a postgres:// or postgresql:// URL.
fn is_postgres(url: &str) -> bool {
    let lower = url.get(..13).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

impl Validator for Postgres {
    fn name(&self) -> &'static str {
        NAME
    }

    fn claim(&self, f: &Finding) -> Option<Claim> {
        if !RULES.contains(&f.rule_id.as_str()) {
            return None;
        }
        if !in_tree(f) {
            // url-credentials covers every scheme: only claim what is ours.
            return (f.rule_id == "database-url-password").then(|| {
                Claim::Decided(Validation::unknown(
                    NAME,
                    "the URL is read back only from working-tree files",
                ))
            });
        }
        let content = std::fs::read(&f.path).ok().map(Zeroizing::new);
        let url = content.as_ref().and_then(|c| url_around(c, f)).map(|u| u.2);
        match url {
            Some(u) if is_postgres(&u) => Some(self.claim_url(u)),
            _ if f.rule_id != "database-url-password" => None,
            Some(_) => Some(Claim::Decided(Validation::unknown(
                NAME,
                "only postgres:// URLs are checked",
            ))),
            None => Some(Claim::Decided(Validation::unknown(
                NAME,
                "the URL could not be read back (the file changed?)",
            ))),
        }
    }

    fn check(&self, url: &str) -> Validation {
        let spec = match Spec::parse(url, self.timeout) {
            Ok(s) => s,
            Err(why) => return Validation::unknown(NAME, why),
        };
        // Checked again here: a check is never made outside the list.
        if spec.targets.iter().any(|(h, p)| !self.hosts.allows(h, *p)) {
            return Validation::unknown(NAME, "a host is not in --validate-host: not contacted");
        }
        let at = spec.shown();
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(_) => return Validation::unknown(NAME, "could not start the connector"),
        };
        let outcome =
            rt.block_on(async { tokio::time::timeout(self.timeout, connect(&spec)).await });
        match outcome {
            Err(_) => Validation::unknown(NAME, format!("no answer from {at} in time")),
            Ok(Ok(())) => Validation::live(NAME, format!("{at} accepts these credentials")),
            Ok(Err(Failure::Tls(why))) => Validation::unknown(NAME, why),
            Ok(Err(Failure::Driver(e))) => match e.code() {
                Some(c)
                    if *c == SqlState::INVALID_PASSWORD
                        || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
                {
                    Validation::revoked(
                        NAME,
                        format!("{at} refuses these credentials (SQLSTATE {})", c.code()),
                    )
                }
                Some(c) => {
                    Validation::unknown(NAME, format!("{at} answered SQLSTATE {}", c.code()))
                }
                None => Validation::unknown(NAME, format!("could not connect to {at}")),
            },
        }
    }
}

/// Why a connection did not complete.
enum Failure {
    /// The TLS settings cannot be met (words without the URL).
    Tls(String),
    /// The driver's error (only its SQLSTATE is shown).
    Driver(tokio_postgres::Error),
}

/// Opens one connection (startup and authentication) and closes it.
async fn connect(spec: &Spec) -> Result<(), Failure> {
    if spec.mode == SslMode::Disable {
        let (client, connection) = spec.config.connect(NoTls).await.map_err(Failure::Driver)?;
        drop((client, connection));
        return Ok(());
    }
    let tls = pg_tls::client_config(spec.mode, &TlsMaterial::default()).map_err(Failure::Tls)?;
    let (client, connection) = spec
        .config
        .connect(MakeRustls::new(tls))
        .await
        .map_err(Failure::Driver)?;
    drop((client, connection));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str) -> Result<Spec, String> {
        Spec::parse(url, Duration::from_secs(1))
    }

    #[test]
    fn targets_follow_the_driver() {
        let s = spec("postgres://u:pw@db1:6000,db2/app").unwrap();
        assert_eq!(s.targets, [("db1".into(), 6000), ("db2".into(), 5432)]);
        let s = spec("postgres://u:pw@db:7000/app?hostaddr=127.0.0.1").unwrap();
        assert_eq!(s.targets, [("127.0.0.1".into(), 7000)]);
        assert!(spec("postgres://u:pw@db/app?sslrootcert=/etc/x").is_err());
        assert!(spec("postgres://u:pw@db/app?sslmode=sometimes").is_err());
        assert!(spec("postgres://u:pw@%2Ftmp/app").is_err());
    }

    #[test]
    fn a_disallowed_host_is_decided_without_contact() {
        let pg = Postgres::new(Hosts::default(), Duration::from_secs(1));
        let url = Zeroizing::new("postgres://u:pw@db.internal/app".to_string());
        match pg.claim_url(url) {
            Claim::Decided(v) => {
                assert_eq!(v.status, coffer_scan::validate::Status::Unknown);
                assert!(v.detail.contains("db.internal:5432"), "{}", v.detail);
                assert!(!v.detail.contains("pw"));
            }
            Claim::Check(_) => panic!("would contact a host not allowed"),
        }
        let v = pg.check("postgres://u:pw@db.internal/app");
        assert!(v.detail.contains("not contacted"), "{}", v.detail);
    }
}

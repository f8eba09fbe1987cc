//! Rotators the operator declares in the server configuration
//! (`[rotator.NAME]` sections). Programs to run, URLs to call and database
//! connections to use come only from here: the lifecycle API names a
//! declared rotator (`settings.name`) and can never give a program, an
//! argument, a URL or a connection string itself.
//!
//! ```toml
//! [rotator.stripe]
//! type = "command"
//! program = "/usr/local/bin/rotate-stripe"
//! args = ["--live"]
//! env = { STRIPE_ACCOUNT = "acct_1" }   # or a list of names to pass through
//! needs_current_value = false            # default: the child never sees it
//! timeout = "30s"
//!
//! [rotator.deploy-hook]
//! type = "webhook"
//! url = "https://hooks.internal/rotate"
//! allowed_hosts = ["hooks.internal"]
//! ca_file = "hooks-ca.pem"                # optional, the only CA trusted
//!
//! [rotator.app-db]
//! type = "postgres"
//! connection_url = "postgres://rotator:{{password}}@db.internal/app"
//! password_env = "APP_DB_ROTATOR_PASSWORD"
//! allowed_roles = ["app_blue", "app_green"]
//!
//! [rotator.web-cert]
//! type = "pki"
//! mount = "pki_int"          # a pki mount of this server
//! role = "web"               # its role: the role's name rules apply
//! lead_time = "30d"          # reissue this long before NotAfter
//! grace_period = "24h"       # revoke the replaced certificate after this
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::{Error, Result};

/// Default time a command or webhook step may take.
const DEFAULT_TIMEOUT: u64 = 30;
/// Longest time a command or webhook step may be given.
const MAX_TIMEOUT: u64 = 3600;

/// A timeout as written: seconds or a duration such as `"30s"`.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub enum TimeoutSpec {
    /// Seconds.
    Secs(u64),
    /// A duration string (`30s`, `2m`).
    Text(String),
}

/// The environment given to a command: fixed values, or names of the
/// server's variables to pass through.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub enum EnvSpec {
    /// `env = { K = "V" }`.
    Vars(BTreeMap<String, String>),
    /// `env = ["NAME", ...]`: passed through from the server's environment.
    PassThrough(Vec<String>),
}

impl Default for EnvSpec {
    fn default() -> Self {
        EnvSpec::Vars(BTreeMap::new())
    }
}

/// One `[rotator.NAME]` section as written in the configuration file.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum RotatorSpec {
    /// An external program run once per step.
    Command {
        /// Absolute path of the program (no shell, no `PATH` lookup).
        program: PathBuf,
        /// Arguments before the step name.
        #[serde(default)]
        args: Vec<String>,
        /// The child's whole environment.
        #[serde(default)]
        env: EnvSpec,
        /// Whether the child gets the current value on stdin.
        #[serde(default)]
        needs_current_value: bool,
        /// Time limit per step.
        #[serde(default)]
        timeout: Option<TimeoutSpec>,
    },
    /// A POST per step to a fixed URL.
    Webhook {
        /// The URL (https; http only to a loopback host).
        url: String,
        /// Hosts the URL may name; the URL's host must be one of them.
        allowed_hosts: Vec<String>,
        /// PEM file of the CA(s) trusted for this webhook, instead of the system roots.
        #[serde(default)]
        ca_file: Option<PathBuf>,
        /// Extra request headers (e.g. an authorization header).
        #[serde(default)]
        headers: BTreeMap<String, String>,
        /// Whether the body carries the current value.
        #[serde(default)]
        needs_current_value: bool,
        /// Time limit per step.
        #[serde(default)]
        timeout: Option<TimeoutSpec>,
    },
    /// An admin connection for the `postgres` rotator.
    Postgres {
        /// Connection URL or key=value string; `{{password}}` is filled from `password_env`.
        connection_url: String,
        /// A variable of the server's environment holding the admin password.
        #[serde(default)]
        password_env: Option<String>,
        /// Roles whose password this connection may change (`*`: any).
        allowed_roles: Vec<String>,
        /// A PEM file of the CA(s) the server's certificate must chain to
        /// (for `sslmode=verify-ca` / `verify-full` in `connection_url`).
        #[serde(default)]
        tls_ca_file: Option<String>,
    },
    /// Certificates reissued from a pki mount's role.
    Pki {
        /// The pki mount (`pki`, `pki_int/`).
        mount: String,
        /// The role certificates are issued under.
        role: String,
        /// How long before NotAfter the certificate is reissued (default 30d).
        #[serde(default)]
        lead_time: Option<TimeoutSpec>,
        /// How long the replaced certificate stays valid before it is
        /// revoked (default 24h).
        #[serde(default)]
        grace_period: Option<TimeoutSpec>,
        /// The TTL asked for (default: the role's).
        #[serde(default)]
        ttl: Option<TimeoutSpec>,
    },
}

impl fmt::Debug for RotatorSpec {
    // Headers, environment values and connection strings may hold secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            RotatorSpec::Command { .. } => "command",
            RotatorSpec::Webhook { .. } => "webhook",
            RotatorSpec::Postgres { .. } => "postgres",
            RotatorSpec::Pki { .. } => "pki",
        };
        write!(f, "RotatorSpec({kind})")
    }
}

/// A declared command rotator, checked at start.
pub struct CommandRotator {
    /// Absolute program path.
    pub program: PathBuf,
    /// Arguments before the step name.
    pub args: Vec<String>,
    /// Fixed environment variables.
    pub vars: Vec<(String, Zeroizing<String>)>,
    /// Names passed through from the server's environment at each run.
    pub pass_through: Vec<String>,
    /// Whether stdin carries the current value.
    pub needs_current_value: bool,
    /// Time limit per step.
    pub timeout: Duration,
}

/// A declared webhook rotator, checked at start.
pub struct WebhookRotator {
    /// The URL called for every step.
    pub url: reqwest::Url,
    /// The client (timeout, no redirects, the configured CA).
    pub client: reqwest::Client,
    /// Extra headers.
    pub headers: Vec<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>,
    /// Whether the body carries the current value.
    pub needs_current_value: bool,
}

/// A declared PostgreSQL admin connection.
pub struct PostgresRotator {
    /// The connection settings (password included).
    pub config: tokio_postgres::Config,
    /// The TLS mode of `connection_url`'s `sslmode` (libpq's `prefer` when none).
    pub mode: crate::engines::database::pg::SslMode,
    /// The CA PEM read from `tls_ca_file`.
    pub tls_ca: Option<String>,
    /// Roles it may rotate (`*`: any).
    pub allowed_roles: Vec<String>,
}

impl PostgresRotator {
    /// The connection target, for one connection.
    pub fn target(&self) -> crate::engines::database::pg::Target {
        crate::engines::database::pg::Target {
            config: self.config.clone(),
            mode: self.mode,
        }
    }

    /// Whether `role` may be rotated through this connection.
    pub fn allows(&self, role: &str) -> bool {
        self.allowed_roles.iter().any(|r| r == "*" || r == role)
    }
}

/// A declared `pki` rotator: where certificates come from.
#[derive(Debug, Clone)]
pub struct PkiRotator {
    /// The pki mount's path, with its trailing `/`.
    pub mount: String,
    /// The role.
    pub role: String,
    /// Seconds before NotAfter at which the certificate is reissued.
    pub lead_time: u64,
    /// Seconds the replaced certificate stays valid.
    pub grace_period: u64,
    /// The TTL asked for (None: the role's).
    pub ttl: Option<u64>,
}

/// A declared rotator.
pub enum Declared {
    /// `type = "command"`.
    Command(CommandRotator),
    /// `type = "webhook"`.
    Webhook(WebhookRotator),
    /// `type = "postgres"`.
    Postgres(PostgresRotator),
    /// `type = "pki"`.
    Pki(PkiRotator),
}

impl Declared {
    /// The rotator kind the lifecycle API names (`command`, `webhook`, `postgres`).
    pub fn kind(&self) -> &'static str {
        match self {
            Declared::Command(_) => "command",
            Declared::Webhook(_) => "webhook",
            Declared::Postgres(_) => "postgres",
            Declared::Pki(_) => "pki",
        }
    }
}

/// The operator's rotators by name. Empty by default (a dev server without
/// a configuration file has none).
#[derive(Clone, Default)]
pub struct RotatorRegistry {
    entries: Arc<BTreeMap<String, Declared>>,
}

impl fmt::Debug for RotatorRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.entries
                    .iter()
                    .map(|(n, d)| format!("{n} ({})", d.kind())),
            )
            .finish()
    }
}

fn bad(name: &str, msg: impl fmt::Display) -> Error {
    Error::bad(format!("rotator.{name}: {msg}"))
}

fn timeout_of(name: &str, t: &Option<TimeoutSpec>) -> Result<Duration> {
    let secs = match t {
        None => DEFAULT_TIMEOUT,
        Some(TimeoutSpec::Secs(s)) => *s,
        Some(TimeoutSpec::Text(s)) => crate::util::parse_duration(s)
            .ok_or_else(|| bad(name, format!("timeout: invalid duration {s:?}")))?,
    };
    if !(1..=MAX_TIMEOUT).contains(&secs) {
        return Err(bad(
            name,
            format!("timeout must be between 1s and {MAX_TIMEOUT}s"),
        ));
    }
    Ok(Duration::from_secs(secs))
}

fn env_name_ok(k: &str) -> bool {
    !k.is_empty() && !k.contains(['=', '\0'])
}

/// A URL host without IPv6 brackets, lower-cased.
fn bare_host(h: &str) -> String {
    h.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let h = bare_host(url.host_str().unwrap_or(""));
    h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
}

fn same_host(url: &reqwest::Url, allowed: &str) -> bool {
    !allowed.trim().is_empty() && bare_host(url.host_str().unwrap_or("")) == bare_host(allowed)
}

fn command(name: &str, spec: RotatorSpec) -> Result<Declared> {
    let RotatorSpec::Command {
        program,
        args,
        env,
        needs_current_value,
        timeout,
    } = spec
    else {
        return Err(bad(name, "not a command rotator"));
    };
    if !program.is_absolute() {
        return Err(bad(
            name,
            "program must be an absolute path (no shell, no PATH lookup)",
        ));
    }
    if !program.is_file() {
        return Err(bad(
            name,
            format!("program {} is not a file", program.display()),
        ));
    }
    let (mut vars, mut pass_through) = (Vec::new(), Vec::new());
    match env {
        EnvSpec::Vars(m) => {
            for (k, v) in m {
                if !env_name_ok(&k) || v.contains('\0') {
                    return Err(bad(name, format!("env: invalid variable {k:?}")));
                }
                vars.push((k, Zeroizing::new(v)));
            }
        }
        EnvSpec::PassThrough(names) => {
            for k in names {
                if !env_name_ok(&k) {
                    return Err(bad(name, format!("env: invalid variable name {k:?}")));
                }
                pass_through.push(k);
            }
        }
    }
    Ok(Declared::Command(CommandRotator {
        program,
        args,
        vars,
        pass_through,
        needs_current_value,
        timeout: timeout_of(name, &timeout)?,
    }))
}

fn webhook(name: &str, spec: RotatorSpec, base: &Path) -> Result<Declared> {
    let RotatorSpec::Webhook {
        url,
        allowed_hosts,
        ca_file,
        headers,
        needs_current_value,
        timeout,
    } = spec
    else {
        return Err(bad(name, "not a webhook rotator"));
    };
    let url = reqwest::Url::parse(&url).map_err(|_| bad(name, "url is not a valid URL"))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad(name, "url has no host"));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(bad(
                name,
                "url must be https (plain http is accepted only for a loopback host)",
            ))
        }
        _ => return Err(bad(name, "url must be an https URL")),
    }
    if !allowed_hosts.iter().any(|h| same_host(&url, h)) {
        return Err(bad(
            name,
            format!(
                "the url's host {:?} is not in allowed_hosts",
                url.host_str().unwrap_or("")
            ),
        ));
    }
    let timeout = timeout_of(name, &timeout)?;
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(ca) = ca_file {
        let path = base.join(ca);
        let pem = std::fs::read(&path)
            .map_err(|e| bad(name, format!("ca_file {}: {e}", path.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                bad(
                    name,
                    format!("ca_file {} holds no PEM certificate", path.display()),
                )
            })?;
        builder = builder.tls_certs_only(certs);
    }
    let client = builder
        .build()
        .map_err(|_| bad(name, "cannot build the HTTP client"))?;
    let mut hdrs = Vec::new();
    for (k, v) in headers {
        let k = reqwest::header::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| bad(name, format!("headers: invalid header name {k:?}")))?;
        let mut v = reqwest::header::HeaderValue::from_str(&v)
            .map_err(|_| bad(name, format!("headers: invalid value for {k}")))?;
        v.set_sensitive(true);
        hdrs.push((k, v));
    }
    Ok(Declared::Webhook(WebhookRotator {
        url,
        client,
        headers: hdrs,
        needs_current_value,
    }))
}

fn postgres(name: &str, spec: RotatorSpec) -> Result<Declared> {
    let RotatorSpec::Postgres {
        connection_url,
        password_env,
        allowed_roles,
        tls_ca_file,
    } = spec
    else {
        return Err(bad(name, "not a postgres rotator"));
    };
    let connection_url = Zeroizing::new(connection_url);
    let password = match &password_env {
        Some(var) => Zeroizing::new(std::env::var(var).map_err(|_| {
            bad(
                name,
                format!("password_env: {var} is not set in the server's environment"),
            )
        })?),
        None => Zeroizing::new(String::new()),
    };
    let target =
        crate::engines::database::pg::target(&connection_url, "", &password).map_err(|e| {
            bad(
                name,
                format!("connection_url is not a valid PostgreSQL connection string: {e}"),
            )
        })?;
    let tls_ca = match &tls_ca_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| bad(name, format!("tls_ca_file {path:?} cannot be read: {e}")))?,
        ),
        None => None,
    };
    if allowed_roles.is_empty() {
        return Err(bad(
            name,
            "allowed_roles must name the roles this connection may rotate (\"*\" for any)",
        ));
    }
    Ok(Declared::Postgres(PostgresRotator {
        config: target.config,
        mode: target.mode,
        tls_ca,
        allowed_roles,
    }))
}

fn duration_of(name: &str, field: &str, t: &Option<TimeoutSpec>, default: u64) -> Result<u64> {
    match t {
        None => Ok(default),
        Some(TimeoutSpec::Secs(s)) => Ok(*s),
        Some(TimeoutSpec::Text(s)) => crate::util::parse_duration(s)
            .ok_or_else(|| bad(name, format!("{field}: invalid duration {s:?}"))),
    }
}

fn pki(name: &str, spec: RotatorSpec) -> Result<Declared> {
    let RotatorSpec::Pki {
        mount,
        role,
        lead_time,
        grace_period,
        ttl,
    } = spec
    else {
        return Err(bad(name, "not a pki rotator"));
    };
    let m = mount.trim().trim_matches('/');
    let seg_ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    if m.is_empty() || !m.split('/').all(seg_ok) || m.starts_with("sys") || m.starts_with("auth") {
        return Err(bad(name, format!("mount {mount:?} is not a mount path")));
    }
    if role.is_empty()
        || !role
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(bad(name, format!("role {role:?} is not a role name")));
    }
    let lead_time = duration_of(name, "lead_time", &lead_time, 30 * 86_400)?;
    let grace_period = duration_of(name, "grace_period", &grace_period, 86_400)?;
    let ttl = match &ttl {
        None => None,
        t => Some(duration_of(name, "ttl", t, 0)?).filter(|t| *t > 0),
    };
    if lead_time == 0 {
        return Err(bad(name, "lead_time must be positive"));
    }
    if ttl.is_some_and(|t| t <= lead_time) {
        return Err(bad(
            name,
            "ttl must be longer than lead_time (else every certificate is due at once)",
        ));
    }
    Ok(Declared::Pki(PkiRotator {
        mount: format!("{m}/"),
        role,
        lead_time,
        grace_period,
        ttl,
    }))
}

fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

impl RotatorRegistry {
    /// Checks and builds the declared rotators; relative `ca_file` paths are
    /// taken from `base` (the configuration file's directory). Any problem
    /// is an error naming the section, so the server refuses to start.
    pub fn from_specs(specs: BTreeMap<String, RotatorSpec>, base: &Path) -> Result<Self> {
        let mut entries = BTreeMap::new();
        for (name, spec) in specs {
            if !name_ok(&name) {
                return Err(Error::bad(format!(
                    "rotator.{name:?}: a name is 1-64 letters, digits, '_', '-' or '.'"
                )));
            }
            let declared = match spec {
                s @ RotatorSpec::Command { .. } => command(&name, s)?,
                s @ RotatorSpec::Webhook { .. } => webhook(&name, s, base)?,
                s @ RotatorSpec::Postgres { .. } => postgres(&name, s)?,
                s @ RotatorSpec::Pki { .. } => pki(&name, s)?,
            };
            entries.insert(name, declared);
        }
        Ok(RotatorRegistry {
            entries: Arc::new(entries),
        })
    }

    /// The declared rotator `name` of kind `kind`, or a 400 saying why not.
    pub fn lookup(&self, kind: &str, name: &str) -> Result<&Declared> {
        match self.entries.get(name) {
            Some(d) if d.kind() == kind => Ok(d),
            Some(d) => Err(Error::bad(format!(
                "rotation.settings.name: rotator {name:?} is a {} rotator, not a {kind} one",
                d.kind()
            ))),
            None => Err(Error::bad(format!(
                "rotation.settings.name: no {kind} rotator named {name:?} is declared in the \
                 server configuration ([rotator.{name}] with type = \"{kind}\")"
            ))),
        }
    }

    /// Whether no rotator is declared.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RotatorRegistry> {
        #[derive(Deserialize)]
        struct F {
            rotator: BTreeMap<String, RotatorSpec>,
        }
        let f: F = serde_json::from_str(text).map_err(|e| Error::bad(e.to_string()))?;
        RotatorRegistry::from_specs(f.rotator, Path::new("."))
    }

    #[test]
    fn webhook_hosts_and_schemes_are_checked() {
        let e = parse(r#"{"rotator":{"h":{"type":"webhook","url":"https://evil.example/x","allowed_hosts":["hooks.example"]}}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not in allowed_hosts"), "{e}");
        let e = parse(r#"{"rotator":{"h":{"type":"webhook","url":"http://hooks.example/x","allowed_hosts":["hooks.example"]}}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("https"), "{e}");
        let r = parse(r#"{"rotator":{"h":{"type":"webhook","url":"http://127.0.0.1:9/x","allowed_hosts":["127.0.0.1"]}}}"#).unwrap();
        assert!(r.lookup("webhook", "h").is_ok());
        assert!(r.lookup("command", "h").is_err());
        assert!(r.lookup("webhook", "other").is_err());
    }

    #[test]
    fn commands_need_an_absolute_existing_program() {
        assert!(parse(r#"{"rotator":{"c":{"type":"command","program":"sh"}}}"#).is_err());
        assert!(
            parse(r#"{"rotator":{"c":{"type":"command","program":"/nonexistent/x"}}}"#).is_err()
        );
        assert!(
            parse(r#"{"rotator":{"c":{"type":"command","program":"/bin/sh","shell":true}}}"#)
                .is_err()
        );
        let r = parse(r#"{"rotator":{"c":{"type":"command","program":"/bin/sh","env":["HOME"],"timeout":"5s"}}}"#).unwrap();
        match r.lookup("command", "c").unwrap() {
            Declared::Command(c) => {
                assert_eq!(c.pass_through, vec!["HOME".to_string()]);
                assert_eq!(c.timeout, Duration::from_secs(5));
                assert!(!c.needs_current_value);
            }
            _ => panic!("not a command"),
        }
        assert!(format!("{r:?}").contains("c (command)"));
    }

    #[test]
    fn pki_rotators_name_a_mount_and_a_role() {
        let r = parse(r#"{"rotator":{"c":{"type":"pki","mount":"pki_int/","role":"web","lead_time":"20s","grace_period":5}}}"#).unwrap();
        match r.lookup("pki", "c").unwrap() {
            Declared::Pki(p) => {
                assert_eq!(p.mount, "pki_int/");
                assert_eq!((p.lead_time, p.grace_period), (20, 5));
            }
            _ => panic!("not pki"),
        }
        for bad in [
            r#"{"rotator":{"c":{"type":"pki","mount":"../x","role":"web"}}}"#,
            r#"{"rotator":{"c":{"type":"pki","mount":"sys","role":"web"}}}"#,
            r#"{"rotator":{"c":{"type":"pki","mount":"pki","role":"a/b"}}}"#,
            r#"{"rotator":{"c":{"type":"pki","mount":"pki","role":"web","ttl":"10s","lead_time":"20s"}}}"#,
            r#"{"rotator":{"c":{"type":"pki","mount":"pki","role":"web","url":"https://x"}}}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn postgres_needs_allowed_roles_and_a_valid_url() {
        assert!(parse(r#"{"rotator":{"p":{"type":"postgres","connection_url":"postgres://a@127.0.0.1/x","allowed_roles":[]}}}"#).is_err());
        assert!(parse(r#"{"rotator":{"p":{"type":"postgres","connection_url":"postgres://a@127.0.0.1/x","allowed_roles":["app"]}}}"#).is_ok());
    }
}

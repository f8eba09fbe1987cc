//! `coffer server`: a dev server (`--dev`) or a production one (`--config`).

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine as _;
use coffer_core::lifecycle::registry::{RotatorRegistry, RotatorSpec};
use coffer_core::sys_loggers::{Level, LogReload, Loggers};
use coffer_core::sys_monitor::LogMonitor;
use coffer_core::{Core, CoreConfig};
use coffer_http::ListenerConfig;
use coffer_storage::{Backend, MemoryBackend, PostgresBackend, PostgresConfig, SqliteBackend};
use serde::Deserialize;

/// Arguments of `coffer server`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  coffer server --dev\n  coffer server --config coffer.toml")]
pub struct Args {
    /// Start an unsealed dev server with KV v2 at secret/ (in memory unless --dev-storage).
    #[arg(long)]
    dev: bool,
    /// Root token id of the dev server (default: generated).
    #[arg(long, requires = "dev", value_name = "TOKEN")]
    dev_root_token_id: Option<String>,
    /// Address the dev server listens on.
    #[arg(
        long,
        requires = "dev",
        default_value = "127.0.0.1:8200",
        value_name = "HOST:PORT"
    )]
    dev_listen_address: String,
    /// Keep the dev server's data in this SQLite file instead of memory.
    #[arg(long, requires = "dev", value_name = "PATH")]
    dev_storage: Option<PathBuf>,
    /// The directory file audit devices of the dev server may write in
    /// (default: none, file devices are refused).
    #[arg(long, requires = "dev", value_name = "DIR")]
    dev_audit_dir: Option<PathBuf>,
    /// Server configuration file (TOML). With --dev, only its [rotator.NAME]
    /// sections are read (and nothing else may be in it).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log level (error, warn, info, debug, trace).
    #[arg(long, default_value = "info", env = "COFFER_LOG_LEVEL")]
    log_level: String,
}

/// The server configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    storage: StorageSection,
    listener: ListenerSection,
    #[serde(default)]
    seal: Option<SealSection>,
    #[serde(default)]
    cluster_name: Option<String>,
    /// The address clients reach this node at, shown by `sys/leader` and
    /// `sys/ha-status` (default: the listener's scheme and address).
    #[serde(default)]
    api_addr: Option<String>,
    /// Operator-declared rotators (`[rotator.NAME]`), the only programs,
    /// URLs and database connections lifecycle rotation may use.
    #[serde(default)]
    rotator: BTreeMap<String, RotatorSpec>,
    #[serde(default)]
    audit: Option<AuditSection>,
    #[serde(default)]
    telemetry: TelemetrySection,
    #[serde(default)]
    jwt_discovery: JwtDiscoverySection,
    /// Serve the web UI under `/ui/` (default true; false: `/ui/` is a 404).
    #[serde(default = "yes")]
    ui: bool,
}

/// The default of switches that are on unless turned off.
fn yes() -> bool {
    true
}

/// `[jwt_discovery]`: where JWT auth mounts may fetch keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct JwtDiscoverySection {
    /// URL prefixes `jwks_url`, `oidc_discovery_url` and a discovery
    /// document's `jwks_uri` must fall under (https, or http to loopback).
    /// Empty (the default): JWT mounts fetch nothing, keys are inline.
    #[serde(default)]
    allowed_urls: Vec<String>,
}

impl JwtDiscoverySection {
    fn allowed(&self) -> anyhow::Result<coffer_core::auth::jwt::remote::AllowedUrls> {
        coffer_core::auth::jwt::remote::AllowedUrls::parse(&self.allowed_urls)
            .map_err(|e| anyhow::anyhow!("jwt_discovery.{e}"))
    }
}

/// `[telemetry]`: who may read `sys/metrics`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TelemetrySection {
    /// Serve `sys/metrics` without a token (Vault's listener
    /// `telemetry.unauthenticated_metrics_access`). Default false: a token
    /// with `read` on `sys/metrics` is needed.
    #[serde(default)]
    unauthenticated_metrics_access: bool,
}

/// `[audit]`: where file audit devices may write.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditSection {
    /// The only directory file devices may write in (created 0700 if
    /// missing; relative to the configuration file). Unset: file devices
    /// are refused.
    file_dir: Option<PathBuf>,
}

/// What `--dev --config FILE` reads: rotator declarations, `[telemetry]`
/// and `[jwt_discovery]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DevConfigFile {
    #[serde(default)]
    rotator: BTreeMap<String, RotatorSpec>,
    /// Serve the web UI (default true).
    #[serde(default = "yes")]
    ui: bool,
    #[serde(default)]
    telemetry: TelemetrySection,
    #[serde(default)]
    jwt_discovery: JwtDiscoverySection,
}

/// Checks and builds the declared rotators; a bad one stops the server.
fn rotators(
    specs: BTreeMap<String, RotatorSpec>,
    config: &Path,
) -> anyhow::Result<RotatorRegistry> {
    let base = config.parent().unwrap_or(Path::new("."));
    RotatorRegistry::from_specs(specs, base)
        .map_err(|e| anyhow::anyhow!("invalid configuration {}: {e}", config.display()))
}

/// `[storage]`: exactly one backend section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StorageSection {
    pub(crate) sqlite: Option<SqliteSection>,
    pub(crate) postgresql: Option<PostgresqlSection>,
    pub(crate) inmem: Option<toml::Table>,
}

/// `[storage.postgresql]`: one database shared by every node.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PostgresqlSection {
    /// libpq URL or key=value string (`sslmode` honoured). Unset: the
    /// `COFFER_PG_CONNECTION_URL` environment variable.
    connection_url: Option<String>,
    /// Read connections per node (the writer has one more). Default 4.
    max_connections: Option<usize>,
    /// Base name of the tables. Default `coffer_kv`.
    table: Option<String>,
    /// Several nodes share the store. Default true; false locks it to one node.
    ha_enabled: Option<bool>,
    /// PEM CA file the server's certificate must chain to.
    tls_ca_file: Option<PathBuf>,
    /// PEM client certificate file (certificate authentication).
    tls_cert_file: Option<PathBuf>,
    /// PEM key file of the client certificate.
    tls_key_file: Option<PathBuf>,
    /// Length of the leader lease, the failover bound ("5s"; 1s to 60s).
    lease_ttl: Option<String>,
}

impl PostgresqlSection {
    /// The backend settings; files are read relative to `base`.
    pub(crate) fn backend_config(&self, base: &Path) -> anyhow::Result<PostgresConfig> {
        let url = match &self.connection_url {
            Some(u) => u.clone(),
            None => std::env::var("COFFER_PG_CONNECTION_URL").map_err(|_| {
                anyhow::anyhow!(
                    "storage.postgresql: set connection_url or the COFFER_PG_CONNECTION_URL \
                     environment variable"
                )
            })?,
        };
        let mut config = PostgresConfig::new(url);
        if let Some(n) = self.max_connections {
            if !(1..=256).contains(&n) {
                bail!("storage.postgresql.max_connections must be between 1 and 256");
            }
            config.max_connections = n;
        }
        if let Some(t) = &self.table {
            config.table = t.clone();
        }
        if let Some(ha) = self.ha_enabled {
            config.ha_enabled = ha;
        }
        let read = |name: &str, f: &Option<PathBuf>| -> anyhow::Result<String> {
            match f {
                None => Ok(String::new()),
                Some(p) => std::fs::read_to_string(base.join(p))
                    .with_context(|| format!("storage.postgresql.{name}: reading {}", p.display())),
            }
        };
        config.tls_ca = read("tls_ca_file", &self.tls_ca_file)?;
        config.tls_cert = read("tls_cert_file", &self.tls_cert_file)?;
        config.tls_key = zeroize::Zeroizing::new(read("tls_key_file", &self.tls_key_file)?);
        Ok(config)
    }

    /// The leader lease length.
    fn lease_ttl(&self) -> anyhow::Result<Duration> {
        let Some(v) = &self.lease_ttl else {
            return Ok(coffer_core::leader::DEFAULT_LEASE_TTL);
        };
        let secs = coffer_core::util::parse_duration(v)
            .with_context(|| format!("storage.postgresql.lease_ttl: invalid duration {v:?}"))?;
        if !(1..=60).contains(&secs) {
            bail!("storage.postgresql.lease_ttl must be between 1s and 60s");
        }
        Ok(Duration::from_secs(secs))
    }
}

/// Opens PostgreSQL storage from its section.
pub(crate) async fn open_postgresql(
    section: &PostgresqlSection,
    base: &Path,
) -> anyhow::Result<Arc<dyn Backend>> {
    let config = section.backend_config(base)?;
    let table = config.table.clone();
    let backend = PostgresBackend::open(config)
        .await
        .with_context(|| format!("opening PostgreSQL storage (table {table})"))?;
    Ok(Arc::new(backend))
}

/// `[storage.sqlite]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SqliteSection {
    pub(crate) path: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenerSection {
    tcp: TcpSection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TcpSection {
    address: String,
    #[serde(default)]
    tls_disable: bool,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    /// Largest request body in bytes.
    max_request_size: Option<usize>,
    /// Longest request handling time, as a duration ("90s").
    max_request_duration: Option<String>,
    /// Longest time to receive a request's headers ("10s").
    header_read_timeout: Option<String>,
    /// Longest time to receive a request's body ("30s").
    body_read_timeout: Option<String>,
    /// Most connections open at once (4096).
    max_connections: Option<usize>,
    /// Proxies (CIDRs) whose X-Forwarded-For names the client.
    #[serde(default, alias = "x_forwarded_for_authorized_addrs")]
    trusted_proxies: Vec<String>,
}

impl TcpSection {
    /// The listener settings of this section (everything but address and TLS).
    fn listener_config(&self, address: SocketAddr) -> anyhow::Result<ListenerConfig> {
        let duration = |name: &str, v: &Option<String>| -> anyhow::Result<Option<Duration>> {
            match v {
                None => Ok(None),
                Some(d) => {
                    let secs = coffer_core::util::parse_duration(d)
                        .with_context(|| format!("listener.tcp.{name}: invalid duration {d:?}"))?;
                    Ok(Some(Duration::from_secs(secs.max(1))))
                }
            }
        };
        let mut config = ListenerConfig::new(address);
        config.limits.after_large_body = Some(crate::return_freed_memory);
        if let Some(n) = self.max_request_size {
            config.limits.max_request_bytes = n;
        }
        if let Some(d) = duration("max_request_duration", &self.max_request_duration)? {
            config.limits.request_timeout = d;
        }
        if let Some(d) = duration("body_read_timeout", &self.body_read_timeout)? {
            config.limits.body_read_timeout = d;
        }
        if let Some(d) = duration("header_read_timeout", &self.header_read_timeout)? {
            config.header_read_timeout = d;
        }
        if let Some(n) = self.max_connections {
            if n == 0 {
                bail!("listener.tcp.max_connections must be at least 1");
            }
            config.max_connections = n;
        }
        config.trusted_proxies = coffer_http::TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|e| anyhow::anyhow!("listener.tcp.trusted_proxies: {e}"))?;
        Ok(config)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealSection {
    /// A file of unseal key shares (one per line) submitted at start.
    unseal_keys_file: Option<PathBuf>,
}

/// How long the runtime waits for leftover tasks once the server has
/// stopped (after draining requests) or failed to start.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs the server until SIGINT or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let monitor = Arc::new(LogMonitor::default());
    let reload = init_logging(&args.log_level, Some(monitor.clone()));
    let configured = Level::parse(&args.log_level).unwrap_or(Level::Info);
    let logs = Logs {
        loggers: Arc::new(Loggers::new(configured, reload)),
        monitor,
    };
    harden_memory();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(async move {
        if args.dev {
            run_dev(args, logs).await
        } else if let Some(path) = args.config.clone() {
            run_config(&path, logs, &args.log_level).await
        } else {
            bail!("either --dev or --config FILE is required (see coffer server --help)")
        }
    });
    // Whatever is still running (a background job in a blocking call) gets a
    // bounded time: a failed start or a shutdown never hangs on it.
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    result?;
    Ok(0)
}

/// Disables core dumps and locks key memory (best effort; see
/// `coffer_crypto::memory`), before any key exists.
fn harden_memory() {
    let report = coffer_crypto::memory::harden_process();
    tracing::info!(
        dumps_disabled = report.dumps_disabled,
        keys_locked = report.keys_locked,
        "key memory protection"
    );
    for note in &report.notes {
        tracing::warn!("{note}");
    }
}

/// Logs to stderr at `level`, coloured only on a terminal without `NO_COLOR`
/// (the server's and the agent's log). A plain level (`info`, `debug`, ...)
/// becomes one directive per logger of `sys/loggers`; anything else is
/// taken as an `EnvFilter` directive string, as before. Returns the handle
/// that replaces the filter at run time (`None` if a subscriber was already
/// installed). With `monitor`, a second layer with a filter of its own
/// feeds `sys/monitor` ([`super::log_monitor`]).
pub(crate) fn init_logging(
    level: &str,
    monitor: Option<Arc<LogMonitor>>,
) -> Option<Arc<dyn LogReload>> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::Layer as _;
    let directives = match Level::parse(level) {
        Ok(l) => Loggers::new(l, None).directives(),
        Err(_) => format!("{level},hyper=warn,h2=warn,rustls=warn"),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(log_colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ))
        .with_writer(std::io::stderr)
        .with_filter(filter);
    let monitor = monitor.map(|m| {
        super::log_monitor::MonitorLayer(m.clone())
            .with_filter(super::log_monitor::MonitorFilter(m))
    });
    let subscriber = tracing_subscriber::registry().with(fmt).with(monitor);
    tracing::subscriber::set_global_default(subscriber).ok()?;
    // Libraries that log through `log` reach the same layers, except the
    // SQL drivers: they log each statement they run, and a database
    // engine's creation statement holds the password it sets.
    let _ = tracing_log::LogTracer::builder()
        .ignore_all(NEVER_LOGGED)
        .init();
    Some(Arc::new(FilterReload(handle)) as Arc<dyn LogReload>)
}

/// Crates whose `log` records are dropped at any level: the PostgreSQL
/// driver writes statements (with inline passwords) and their parameters
/// at debug.
const NEVER_LOGGED: [&str; 2] = ["tokio_postgres", "postgres"];

/// The node's log levels (`sys/loggers`) and log fan-out (`sys/monitor`).
struct Logs {
    loggers: Arc<Loggers>,
    monitor: Arc<LogMonitor>,
}

/// The server's log filter, replaced by `sys/loggers`.
struct FilterReload(
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>,
);

impl LogReload for FilterReload {
    fn apply(&self, directives: &str) -> Result<(), String> {
        let filter =
            tracing_subscriber::EnvFilter::try_new(directives).map_err(|e| e.to_string())?;
        self.0.reload(filter).map_err(|e| e.to_string())
    }
}

/// The `storage` block of `sys/config/state/sanitized`: Vault's keys, and
/// none of the backend's settings (a connection URL may hold a password).
fn sanitized_storage(storage_type: &str, api_addr: &str) -> serde_json::Value {
    serde_json::json!({
        "type": storage_type,
        "redirect_addr": api_addr,
        "cluster_addr": "",
        "disable_clustering": false,
    })
}

/// What `sys/config/state/sanitized` shows of a configuration file: Vault's
/// keys where Coffer has the setting; no storage setting, no seal key.
fn sanitized_config(config: &ConfigFile, storage_type: &str, log_level: &str) -> serde_json::Value {
    let tcp = &config.listener.tcp;
    let mut listener = serde_json::json!({
        "address": tcp.address,
        "tls_disable": tcp.tls_disable,
        "x_forwarded_for_authorized_addrs": tcp.trusted_proxies,
        "telemetry": {
            "unauthenticated_metrics_access": config.telemetry.unauthenticated_metrics_access,
        },
    });
    let optional = [
        (
            "tls_cert_file",
            tcp.tls_cert_file
                .as_ref()
                .map(|p| p.display().to_string().into()),
        ),
        (
            "tls_key_file",
            tcp.tls_key_file
                .as_ref()
                .map(|p| p.display().to_string().into()),
        ),
        ("max_request_size", tcp.max_request_size.map(Into::into)),
        (
            "max_request_duration",
            tcp.max_request_duration.clone().map(Into::into),
        ),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            listener[k] = v;
        }
    }
    let api_addr = config.api_addr.clone().unwrap_or_default();
    serde_json::json!({
        "api_addr": api_addr,
        "cluster_name": config.cluster_name.clone().unwrap_or_default(),
        "enable_ui": config.ui,
        "log_level": log_level,
        "listeners": [{"type": "tcp", "config": listener}],
        "storage": sanitized_storage(storage_type, &api_addr),
        "seals": [{"type": "shamir", "disabled": false}],
        // Coffer has no raw storage endpoint.
        "raw_storage_endpoint": false,
    })
}

/// Whether the log is coloured: only on a terminal, and never when
/// `NO_COLOR` is set to anything but the empty string (no-color.org).
fn log_colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

fn parse_addr(s: &str) -> anyhow::Result<SocketAddr> {
    s.parse().with_context(|| {
        format!("invalid listen address {s:?}: expected HOST:PORT, e.g. 127.0.0.1:8200")
    })
}

async fn run_dev(args: Args, logs: Logs) -> anyhow::Result<()> {
    let address = parse_addr(&args.dev_listen_address)?;
    let (backend, storage_type): (Arc<dyn Backend>, &str) = match &args.dev_storage {
        Some(p) => (open_sqlite(p)?, "sqlite"),
        None => (Arc::new(MemoryBackend::new()), "inmem"),
    };
    let (registry, telemetry, jwt_urls, ui) = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading configuration {}", path.display()))?;
            let file: DevConfigFile = toml::from_str(&text).with_context(|| {
                format!(
                    "invalid configuration {} (with --dev it may hold only ui, [rotator.NAME], [telemetry] and [jwt_discovery])",
                    path.display()
                )
            })?;
            (
                rotators(file.rotator, path)?,
                file.telemetry,
                file.jwt_discovery.allowed()?,
                file.ui,
            )
        }
        None => (
            RotatorRegistry::default(),
            TelemetrySection::default(),
            Default::default(),
            true,
        ),
    };
    let core = Core::new(
        backend,
        CoreConfig {
            storage_type: storage_type.into(),
            rotators: registry,
            unauthenticated_metrics_access: telemetry.unauthenticated_metrics_access,
            jwt_key_urls: jwt_urls,
            dev_mode: true,
            sanitized_config: serde_json::json!({
                "api_addr": "",
                "cluster_name": "",
                "enable_ui": ui,
                "log_level": args.log_level,
                "listeners": [{"type": "tcp", "config": {
                    "address": args.dev_listen_address,
                    "tls_disable": true,
                    "telemetry": {
                        "unauthenticated_metrics_access": telemetry.unauthenticated_metrics_access,
                    },
                }}],
                "storage": sanitized_storage(storage_type, ""),
                "seals": [{"type": "shamir", "disabled": false}],
                "raw_storage_endpoint": false,
            }),
            loggers: logs.loggers,
            log_monitor: logs.monitor,
            ..Default::default()
        },
    );
    core.configure_audit(audit_settings(args.dev_audit_dir.as_deref())?);
    let setup = core
        .dev_setup(args.dev_root_token_id.as_deref())
        .await
        .map_err(|e| anyhow::anyhow!("dev setup failed: {e}"))?;
    core.spawn_background();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(coffer_http::serve(
        core.clone(),
        {
            let mut l = ListenerConfig::new(address);
            l.limits.after_large_body = Some(crate::return_freed_memory);
            l.ui = ui;
            l
        },
        shutdown_signal(),
        Some(tx),
    ));
    let Ok(bound) = rx.await else {
        // Never bound (e.g. the port is taken): report why, print no banner.
        server.await.context("server task failed")??;
        bail!("the server stopped before it listened on {address}");
    };
    // As Vault's dev server: the bound address is the api_addr (the
    // default issuer of identity tokens, `sys/ha-status`).
    core.set_api_addr(format!("http://{bound}"));
    println!("==> Coffer server started (dev mode)! Log data will stream in below:\n");
    println!("    Api Address: http://{bound}");
    println!("    Storage: {storage_type}");
    match &setup {
        Some((key, token)) => {
            println!(
                "    Unseal Key: {}",
                base64::engine::general_purpose::STANDARD.encode(key.as_slice())
            );
            println!("    Root Token: {}", token.as_str());
            println!(
                "\nWARNING! dev mode is enabled! The server is unsealed, its root token and\n\
                 unseal key are printed above, and (without --dev-storage) it keeps all data\n\
                 in memory. Do not run a dev server in production.\n"
            );
            println!("    export COFFER_ADDR='http://{bound}'");
        }
        None => println!(
            "    The dev storage was initialised before: the server is sealed.\n    \
             Unseal it with the key printed at its first start (coffer operator unseal)."
        ),
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    tokio::spawn(crate::cmd::audit::reopen_on_sighup(core.clone()));
    server.await.context("server task failed")??;
    core.seal().await; // closing audit checkpoints
    Ok(())
}

pub(crate) fn open_sqlite(path: &Path) -> anyhow::Result<Arc<dyn Backend>> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating storage directory {}", dir.display()))?;
    }
    let backend = SqliteBackend::open(path)
        .with_context(|| format!("opening SQLite storage {}", path.display()))?;
    Ok(Arc::new(backend))
}

async fn run_config(path: &Path, logs: Logs, log_level: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading configuration {}", path.display()))?;
    let config: ConfigFile = toml::from_str(&text)
        .with_context(|| format!("invalid configuration {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let tcp = &config.listener.tcp;
    let tls = match (tcp.tls_disable, &tcp.tls_cert_file, &tcp.tls_key_file) {
        (true, _, _) => None,
        (false, Some(c), Some(k)) => {
            let (cert, key) = (base.join(c), base.join(k));
            // Checked before anything starts: a bad file stops the server here.
            coffer_http::tls::server_config(&cert, &key)
                .with_context(|| format!("invalid configuration {}", path.display()))?;
            Some((cert, key))
        }
        (false, _, _) => {
            bail!("listener.tcp: set tls_cert_file and tls_key_file, or tls_disable = true")
        }
    };
    let storage = &config.storage;
    let mut lease_ttl = coffer_core::leader::DEFAULT_LEASE_TTL;
    let (backend, storage_type): (Arc<dyn Backend>, &str) =
        match (&storage.sqlite, &storage.postgresql, &storage.inmem) {
            (Some(s), None, None) => (open_sqlite(&base.join(&s.path))?, "sqlite"),
            (None, Some(p), None) => {
                lease_ttl = p.lease_ttl()?;
                (open_postgresql(p, base).await?, "postgresql")
            }
            (None, None, Some(_)) => (Arc::new(MemoryBackend::new()), "inmem"),
            _ => bail!(
                "configure exactly one storage backend: [storage.sqlite], \
                 [storage.postgresql] or [storage.inmem]"
            ),
        };
    let address = parse_addr(&tcp.address)?;
    let mut listener = tcp.listener_config(address)?;
    listener.tls = tls;
    listener.ui = config.ui;
    let scheme = if listener.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let sanitized = sanitized_config(&config, storage_type, log_level);
    let mut core_config = CoreConfig {
        sanitized_config: sanitized,
        loggers: logs.loggers,
        log_monitor: logs.monitor,
        storage_type: storage_type.into(),
        rotators: rotators(config.rotator, path)?,
        unauthenticated_metrics_access: config.telemetry.unauthenticated_metrics_access,
        jwt_key_urls: config.jwt_discovery.allowed()?,
        listener_tls: listener.tls.is_some(),
        api_addr: config.api_addr.clone().unwrap_or_default(),
        leader_lease_ttl: lease_ttl,
        ..Default::default()
    };
    if let Some(name) = config.cluster_name {
        core_config.cluster_name = name;
    }
    let core = Core::new(backend, core_config);
    let file_dir = config
        .audit
        .as_ref()
        .and_then(|a| a.file_dir.as_ref())
        .map(|d| base.join(d));
    core.configure_audit(audit_settings(file_dir.as_deref())?);
    if let Some(file) = config
        .seal
        .as_ref()
        .and_then(|s| s.unseal_keys_file.as_ref())
    {
        auto_unseal(&core, &base.join(file)).await?;
    }
    core.spawn_background();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(coffer_http::serve(
        core.clone(),
        listener,
        shutdown_signal(),
        Some(tx),
    ));
    if let Ok(bound) = rx.await {
        if config.api_addr.is_none() {
            core.set_api_addr(format!("{scheme}://{bound}"));
        }
        println!("==> Coffer server started! Log data will stream in below:\n");
        println!("    Api Address: {scheme}://{bound}");
        println!("    Storage: {storage_type}");
        println!(
            "    Initialized: {}",
            core.is_initialized().await.unwrap_or(false)
        );
        println!("    Sealed: {}", core.is_sealed());
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
    tokio::spawn(crate::cmd::audit::reopen_on_sighup(core.clone()));
    server.await.context("server task failed")??;
    core.seal().await;
    Ok(())
}

/// The audit settings for `file_dir`: the directory is created (0700) if
/// missing and kept as its canonical path.
fn audit_settings(
    file_dir: Option<&Path>,
) -> anyhow::Result<coffer_core::audit::config::AuditSettings> {
    let Some(dir) = file_dir else {
        return Ok(Default::default());
    };
    if !dir.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating the audit directory {}", dir.display()))?;
    }
    let dir =
        std::fs::canonicalize(dir).with_context(|| format!("audit directory {}", dir.display()))?;
    if !dir.is_dir() {
        bail!("audit file_dir {} is not a directory", dir.display());
    }
    Ok(coffer_core::audit::config::AuditSettings {
        file_dir: Some(dir),
    })
}

/// Submits the unseal key shares kept in `file` (one per line, hex or base64).
///
/// Trade-off: whoever can read this file and the storage can read every
/// secret. It buys unattended restarts; keep the file on a separate, root-only
/// volume, or leave it out and unseal by hand.
async fn auto_unseal(core: &Core, file: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(file)
            .with_context(|| format!("reading unseal keys file {}", file.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            bail!(
                "unseal keys file {} is readable by group or others; chmod 600 it",
                file.display()
            );
        }
    }
    if !core
        .is_initialized()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
    {
        tracing::warn!("storage not initialised: the unseal keys file is not used until init");
        return Ok(());
    }
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(file)
            .with_context(|| format!("reading unseal keys file {}", file.display()))?,
    );
    for (i, line) in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let key = coffer_core::decode_key(line)
            .with_context(|| format!("unseal keys file line {}: not hex or base64", i + 1))?;
        match core.unseal(key).await {
            Ok(true) => {
                tracing::info!("auto-unsealed from the unseal keys file");
                return Ok(());
            }
            Ok(false) => {}
            Err(e) => bail!("auto-unseal failed: {e}"),
        }
    }
    tracing::warn!("the unseal keys file holds fewer shares than the threshold; still sealed");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received, draining requests");
}

#[cfg(test)]
mod tests {
    use super::log_colour;

    #[test]
    fn log_is_coloured_only_on_a_terminal_without_no_color() {
        assert!(log_colour(true, None));
        assert!(log_colour(true, Some("".into())));
        assert!(!log_colour(true, Some("1".into())));
        assert!(!log_colour(false, None));
    }
}

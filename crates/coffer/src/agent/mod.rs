//! `coffer agent -config agent.hcl`: Vault Agent's job for Coffer.
//!
//! It logs in (auto-auth: AppRole, a JWT file, or a token file), writes the
//! token to its sinks and keeps it alive ([`auth`]); renders templates and
//! environment variables, renewing dynamic secrets' leases ([`runner`],
//! [`template`]); re-renders on change events ([`events`]) or, while they
//! are unavailable, on a long poll; supervises a child process ([`exec`]);
//! and serves a loopback API proxy ([`proxy`]). All HTTP goes through
//! [`api`].

pub mod api;
pub mod auth;
pub mod config;
pub mod events;
pub mod exec;
pub mod fsutil;
pub mod proxy;
pub mod runner;
pub mod template;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot, watch};

/// Arguments of `coffer agent`.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  coffer agent -config agent.hcl\n\n\
    The file is HCL as Vault Agent's (any extension but .toml and .json), TOML (.toml)\n\
    or JSON (.json); see the README's section on the agent.")]
pub struct Args {
    /// The agent's configuration file.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Log level (error, warn, info, debug, trace).
    #[arg(long, default_value = "info", env = "COFFER_LOG_LEVEL")]
    log_level: String,
}

/// Runs the agent; its exit code (the child's, in exec mode).
pub fn run(args: Args) -> anyhow::Result<i32> {
    let _ = crate::cmd::server::init_logging(&args.log_level, None);
    let config = Arc::new(config::load(&args.config)?);
    for (i, t) in config.templates.iter().enumerate() {
        template::check(&t.contents)
            .map_err(|e| anyhow::anyhow!("agent config: template[{i}] ({}): {e}", t.name))?;
    }
    for e in &config.env_templates {
        template::check(&e.contents)
            .map_err(|err| anyhow::anyhow!("agent config: env_template {:?}: {err}", e.name))?;
    }
    let v = &config.vault;
    // Built outside the runtime: the blocking client must not be dropped inside it.
    let api = api::Api::new(
        v.address.as_deref(),
        v.ca_cert.as_deref(),
        v.tls_skip_verify,
    )
    .context("agent config: vault")?;
    let target = event_target(&api, v.ca_cert.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let code = runtime.block_on(serve(api.clone(), config, target));
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    drop(api);
    code
}

/// The event subscription's URL and TLS settings; `None` when events cannot
/// be used (https without a configured CA: the poll then serves).
fn event_target(
    api: &api::Api,
    ca: Option<&std::path::Path>,
) -> anyhow::Result<Option<events::Target>> {
    let mut url = api.address().clone();
    let tls = match url.scheme() {
        "http" => None,
        "https" => match ca {
            Some(path) => {
                let certs = coffer_client::load_ca(path)?;
                let config = coffer_client::tls::pinned_client_config(certs)
                    .map_err(|e| anyhow::anyhow!("CA file {}: {e}", path.display()))?;
                Some(Arc::new(config))
            }
            None => {
                tracing::info!("events: https without vault.ca_cert; using the poll only");
                return Ok(None);
            }
        },
        _ => return Ok(None),
    };
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    if url.set_scheme(scheme).is_err() {
        return Ok(None);
    }
    let base = url.as_str().trim_end_matches('/');
    Ok(Some(events::Target {
        url: format!("{base}/v1/sys/events/subscribe/*?json=true"),
        tls,
    }))
}

async fn serve(
    api: api::Api,
    config: Arc<config::AgentConfig>,
    target: Option<events::Target>,
) -> anyhow::Result<i32> {
    let (token_tx, token_rx) = watch::channel(None);
    let (invalid_tx, invalid_rx) = mpsc::unbounded_channel();
    tokio::spawn(auth::run(
        api.clone(),
        config.auto_auth.clone(),
        token_tx,
        invalid_rx,
    ));
    let has_templates = !config.templates.is_empty() || !config.env_templates.is_empty();
    if config.exit_after_auth && !has_templates {
        let mut rx = token_rx.clone();
        rx.wait_for(Option::is_some).await?;
        return Ok(0);
    }
    if let Some(p) = &config.api_proxy {
        let task = proxy::bind(
            p.address,
            api.clone(),
            token_rx.clone(),
            p.use_auto_auth_token,
        )
        .await?;
        tokio::spawn(task);
    }
    let (env_tx, env_rx) = watch::channel(None);
    let (first_tx, first_rx) = oneshot::channel();
    if has_templates {
        let (ev_tx, ev_rx) = mpsc::channel(256);
        let (live_tx, live_rx) = watch::channel(false);
        tokio::spawn(events::run(target, token_rx.clone(), ev_tx, live_tx));
        tokio::spawn(runner::run(
            api.clone(),
            config.clone(),
            runner::Wiring {
                token: token_rx.clone(),
                invalid: invalid_tx,
                env: env_tx,
                events: ev_rx,
                live: live_rx,
                first: Some(first_tx),
            },
        ));
    } else {
        drop(first_tx);
    }
    if config.exit_after_auth {
        // Vault Agent's rule: authenticate, render every template once, exit.
        return match first_rx.await {
            Ok(Ok(())) => Ok(0),
            Ok(Err(reason)) => Err(anyhow::anyhow!("{reason}")),
            Err(_) => Ok(1),
        };
    }
    let failed = async move {
        match first_rx.await {
            Ok(Err(reason)) => reason,
            _ => std::future::pending().await,
        }
    };
    if let Some(exec) = config.exec.clone() {
        return tokio::select! {
            code = exec::run(exec, env_rx) => code,
            reason = failed => Err(anyhow::anyhow!("{reason}")),
        };
    }
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        reason = failed => anyhow::bail!("{reason}"),
    }
    tracing::info!("agent: stopping");
    Ok(0)
}

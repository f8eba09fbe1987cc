//! The template runner: renders every template, writes what changed, runs
//! commands, renews the leases of dynamic secrets on their own schedule and
//! renders again when something changed.
//!
//! It renders again when: a change event names a path a template read (or
//! a `coffer/resync` event arrives); a dynamic secret must be replaced
//! (its renewal was refused or no longer gives the full increment); a new
//! token was obtained; a render failed (retried with backoff); and, only
//! while the event stream is down, every `static_secret_render_interval`.
//! A lease is renewed at two thirds of its duration without rendering:
//! the credential in the file stays valid.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use coffer_client::consumers::REPORT_INTERVAL;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::api::{Api, ApiError};
use super::auth::{Backoff, InvalidTx, TokenRx};
use super::config::{AgentConfig, Command};
use super::events::Event;
use super::fsutil;
use super::template::{self, Failure, Store};

/// The rendered environment for the exec child.
pub type EnvMap = Arc<BTreeMap<String, Zeroizing<String>>>;

/// Channels the runner talks on.
pub struct Wiring {
    /// The current token.
    pub token: TokenRx,
    /// Where refused tokens are reported.
    pub invalid: InvalidTx,
    /// The rendered environment, for exec.
    pub env: watch::Sender<Option<EnvMap>>,
    /// Change events.
    pub events: mpsc::Receiver<Event>,
    /// Whether the event stream is up.
    pub live: watch::Receiver<bool>,
    /// Told once every template rendered at least once (or failed to, with
    /// `exit_on_retry_failure`): `Err` carries the reason to exit.
    pub first: Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
}

/// The agent as a consumer of the secrets it renders: reports, for each
/// KV v2 secret a template read, the version the outputs hold.
struct Reporter {
    id: String,
    mounts: coffer_client::consumers::Mounts,
}

impl Reporter {
    fn new() -> Reporter {
        Reporter {
            id: coffer_client::consumers::consumer_id("agent"),
            mounts: Default::default(),
        }
    }

    /// Reports `held`; failures are logged (the next report retries).
    fn report(&self, api: &Api, token: &Zeroizing<String>, held: &BTreeMap<String, u64>) {
        let client = api.client_with(token);
        let mut reports = BTreeMap::new();
        for (path, version) in held {
            match self.mounts.held(&client, path, *version) {
                Ok(Some(h)) => {
                    reports.insert(path.clone(), h);
                }
                Ok(None) => {}
                Err(e) => tracing::debug!("consumer report: cannot find the mount of {path}: {e}"),
            }
        }
        if let Err(e) = coffer_client::consumers::report(&client, &self.id, "agent", &reports) {
            tracing::warn!("consumer report failed: {e}");
        }
    }
}

/// Whether a change event's path is one a template read. KV v2 events may
/// name `data/`, `metadata/`, `delete/`, `undelete/` or `destroy/`: all
/// are the same secret.
fn same_secret(event_path: &str, dep: &str) -> bool {
    fn norm(p: &str) -> String {
        let mut parts: Vec<&str> = p.trim_matches('/').split('/').collect();
        if let Some(i) = parts
            .iter()
            .position(|s| matches!(*s, "data" | "metadata" | "delete" | "undelete" | "destroy"))
        {
            if i > 0 {
                parts[i] = "data";
            }
        }
        parts.join("/")
    }
    event_path.trim_matches('/') == dep || norm(event_path) == norm(dep)
}

/// Whether an event path names this lease: the lease id itself, or a
/// prefix of it ending at a segment (`database/creds/app` covers its leases).
fn lease_matches(lease_id: &str, path: &str) -> bool {
    let path = path.trim_matches('/');
    !path.is_empty()
        && (lease_id == path
            || lease_id
                .strip_prefix(path)
                .is_some_and(|rest| rest.starts_with('/')))
}

/// Runs until the process ends.
pub async fn run(api: Api, config: Arc<AgentConfig>, mut w: Wiring) {
    let texts: Vec<String> = config
        .templates
        .iter()
        .map(|t| t.contents.clone())
        .chain(config.env_templates.iter().map(|e| e.contents.clone()))
        .collect();
    let files = config.templates.len();
    let interval = config.template_config.static_secret_render_interval;
    let mut store = Store::default();
    let mut store_generation = 0u64;
    let mut last: Vec<Option<Zeroizing<String>>> = vec![None; files];
    let mut deps: Vec<BTreeSet<String>> = vec![BTreeSet::new(); texts.len()];
    let mut last_env: Option<EnvMap> = None;
    let mut retry = Backoff::new(
        Duration::from_secs(1),
        interval.min(Duration::from_secs(60)),
    );
    let mut need_render = true;
    let mut next_poll = Instant::now() + interval;
    let mut retry_at: Option<Instant> = None;
    let mut failures_in_a_row = 0u32;
    // Secrets whose rotation waits for its consumers: read at `pending`.
    let mut pending: BTreeSet<String> = BTreeSet::new();
    // The versions the rendered files and environment hold, and when they
    // are next confirmed to the server.
    let mut held: BTreeMap<String, u64> = BTreeMap::new();
    let mut next_report: Option<Instant> = None;
    let reporter = Arc::new(Reporter::new());
    loop {
        let Some(current) = w.token.borrow().clone() else {
            if w.token.changed().await.is_err() {
                return;
            }
            continue;
        };
        if current.generation != store_generation {
            // A new login: the old token's leases die with it.
            store = Store::default();
            store_generation = current.generation;
            need_render = true;
        }
        if need_render {
            need_render = false;
            let (api2, token, st, tx, pend) = (
                api.clone(),
                current.token.clone(),
                store.clone(),
                texts.clone(),
                pending.clone(),
            );
            let pass = tokio::task::spawn_blocking(move || {
                template::render_pass(&api2, &token, st, &tx, &pend)
            })
            .await;
            let Ok((results, new_store)) = pass else {
                tracing::error!("templates: the render task failed");
                continue;
            };
            store = new_store;
            let mut failed = None;
            for (i, r) in results.iter().enumerate() {
                deps[i] = r.deps.clone();
                if let Err(f) = &r.output {
                    let name = template_name(&config, i);
                    match f {
                        Failure::Denied => tracing::warn!("template {name}: permission denied"),
                        Failure::Unavailable => {
                            tracing::warn!("template {name}: server unavailable")
                        }
                        Failure::Other(m) => tracing::warn!("template {name}: {m}"),
                    }
                    if *f == Failure::Denied {
                        let _ = w.invalid.send(current.generation);
                    }
                    failed = Some(f.clone());
                }
            }
            for (i, r) in results.iter().enumerate().take(files) {
                let Ok(text) = &r.output else { continue };
                let spec = &config.templates[i];
                let unchanged = last[i]
                    .as_ref()
                    .is_some_and(|l| l.as_str() == text.as_str())
                    && spec.destination.exists();
                if unchanged {
                    continue;
                }
                match fsutil::write_atomic(&spec.destination, text.as_bytes(), spec.perms) {
                    Ok(()) => {
                        tracing::info!(
                            "template {}: rendered {}",
                            spec.name,
                            spec.destination.display()
                        );
                        last[i] = Some(text.clone());
                        if let Some(cmd) = &spec.command {
                            run_command(&spec.name, cmd, spec.command_timeout).await;
                        }
                    }
                    Err(e) => {
                        tracing::error!(
                            "template {}: cannot write {}: {e}",
                            spec.name,
                            spec.destination.display()
                        );
                        failed = Some(Failure::Other("write failed".into()));
                    }
                }
            }
            let env_results = &results[files..];
            if !env_results.is_empty() && env_results.iter().all(|r| r.output.is_ok()) {
                let map: BTreeMap<String, Zeroizing<String>> = config
                    .env_templates
                    .iter()
                    .zip(env_results)
                    .filter_map(|(e, r)| {
                        r.output.as_ref().ok().map(|v| (e.name.clone(), v.clone()))
                    })
                    .collect();
                let changed = last_env.as_ref().is_none_or(|l| **l != map);
                if changed {
                    let map = Arc::new(map);
                    last_env = Some(map.clone());
                    w.env.send_replace(Some(map));
                }
            }
            if failed.is_none() {
                // Every file is written and every command ran: what the
                // outputs hold is confirmed now.
                held = results.iter().flat_map(|r| r.versions.clone()).collect();
                next_report = Some(Instant::now());
            }
            match failed {
                None => {
                    retry.reset();
                    retry_at = None;
                    failures_in_a_row = 0;
                    if let Some(first) = w.first.take() {
                        let _ = first.send(Ok(()));
                    }
                }
                Some(f) => {
                    failures_in_a_row += 1;
                    if config.template_config.exit_on_retry_failure && failures_in_a_row >= 12 {
                        if let Some(first) = w.first.take() {
                            let _ = first.send(Err(format!(
                                "templates failed {failures_in_a_row} times in a row"
                            )));
                            return;
                        }
                    }
                    let wait = retry.next_delay();
                    tracing::info!("templates: retrying in {wait:?} ({f:?})");
                    retry_at = Some(Instant::now() + wait);
                }
            }
            next_poll = Instant::now() + interval;
        }
        // Sleep until the first thing due.
        let live = *w.live.borrow();
        let lease_due = store
            .leased
            .values()
            .map(|l| Instant::from_std(l.due()))
            .min();
        if next_report.is_some_and(|t| t <= Instant::now()) {
            let (reporter, api2, token, h) = (
                reporter.clone(),
                api.clone(),
                current.token.clone(),
                held.clone(),
            );
            let _ = tokio::task::spawn_blocking(move || reporter.report(&api2, &token, &h)).await;
            next_report = Some(Instant::now() + REPORT_INTERVAL);
        }
        let mut wake = [
            lease_due,
            retry_at,
            (!live).then_some(next_poll),
            next_report,
        ]
        .into_iter()
        .flatten()
        .min();
        if wake.is_none() {
            wake = Some(Instant::now() + Duration::from_secs(24 * 3600));
        }
        let wake = wake.unwrap_or_else(Instant::now);
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {
                let now = Instant::now();
                if retry_at.is_some_and(|r| r <= now) {
                    retry_at = None;
                    need_render = true;
                }
                if !live && next_poll <= now {
                    need_render = true;
                }
                if renew_due(&api, &current.token, &mut store).await {
                    need_render = true;
                }
            }
            changed = w.token.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            ev = w.events.recv() => match ev {
                Some(Event::Resync) => {
                    pending.clear();
                    need_render = true;
                }
                Some(Event::Pending(path)) => {
                    if deps.iter().any(|d| d.iter().any(|p| same_secret(&path, p))) {
                        tracing::info!("templates: {path} rotates; rendering its pending version");
                        pending.extend(
                            deps.iter()
                                .flatten()
                                .filter(|p| same_secret(&path, p))
                                .cloned(),
                        );
                        need_render = true;
                    }
                }
                Some(Event::Changed(path)) => {
                    pending.retain(|p| !same_secret(&path, p));
                    // A revoked lease of ours (`coffer/lease-revoke`): fetch anew.
                    let before = store.leased.len();
                    store.leased.retain(|_, l| !lease_matches(&l.lease_id, &path));
                    if store.leased.len() != before
                        || deps.iter().any(|d| d.iter().any(|p| same_secret(&path, p)))
                    {
                        tracing::info!("templates: {path} changed");
                        need_render = true;
                    }
                }
                None => std::future::pending::<()>().await,
            },
            _ = w.live.changed() => {}
        }
    }
}

fn template_name(config: &AgentConfig, i: usize) -> String {
    match config.templates.get(i) {
        Some(t) => t.name.clone(),
        None => config
            .env_templates
            .get(i - config.templates.len())
            .map(|e| format!("env {}", e.name))
            .unwrap_or_default(),
    }
}

/// Renews every lease that is due. Returns true when a secret must be
/// fetched anew (and so the templates rendered again).
async fn renew_due(api: &Api, token: &Zeroizing<String>, store: &mut Store) -> bool {
    let now = std::time::Instant::now();
    let due: Vec<String> = store
        .leased
        .iter()
        .filter(|(_, l)| l.due() <= now)
        .map(|(k, _)| k.clone())
        .collect();
    let mut refetch = false;
    for key in due {
        let Some(lease) = store.leased.get_mut(&key) else {
            continue;
        };
        if lease.replace || !lease.renewable {
            tracing::info!(
                "templates: lease {} is ending; fetching a new secret",
                lease.lease_id
            );
            store.leased.remove(&key);
            refetch = true;
            continue;
        }
        match api
            .renew_lease(token, &lease.lease_id, lease.increment)
            .await
        {
            Ok(duration) => {
                lease.since = std::time::Instant::now();
                lease.lease_duration = duration;
                if duration < lease.increment {
                    // Capped by its max TTL: replace it two thirds into what is left.
                    lease.replace = true;
                }
                tracing::info!(
                    "templates: lease {} renewed for {duration}s",
                    lease.lease_id
                );
            }
            Err(ApiError::Unavailable(e)) => {
                // Try again shortly; the credential stays valid meanwhile.
                tracing::warn!("templates: renewing lease {} failed ({e})", lease.lease_id);
                lease.since = std::time::Instant::now();
                lease.lease_duration = lease.lease_duration.clamp(2, 15);
            }
            Err(e) => {
                tracing::warn!(
                    "templates: lease {} cannot be renewed ({e}); fetching a new secret",
                    lease.lease_id
                );
                store.leased.remove(&key);
                refetch = true;
            }
        }
    }
    refetch
}

/// Runs a template's command from the operator's configuration.
async fn run_command(name: &str, cmd: &Command, timeout: Duration) {
    let mut c = match cmd {
        Command::Shell(s) => {
            let mut c = tokio::process::Command::new("/bin/sh");
            c.arg("-c").arg(s);
            c
        }
        Command::Argv(argv) => {
            let mut c = tokio::process::Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        }
    };
    c.stdin(std::process::Stdio::null()).kill_on_drop(true);
    match c.spawn() {
        Err(e) => tracing::error!("template {name}: cannot run its command: {e}"),
        Ok(mut child) => match tokio::time::timeout(timeout, child.wait()).await {
            Ok(Ok(status)) if status.success() => tracing::info!("template {name}: command ran"),
            Ok(Ok(status)) => tracing::warn!("template {name}: command exited with {status}"),
            Ok(Err(e)) => tracing::error!("template {name}: command failed: {e}"),
            Err(_) => {
                let _ = child.kill().await;
                tracing::error!("template {name}: command timed out after {timeout:?}");
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::{lease_matches, same_secret};

    #[test]
    fn lease_events_match_their_leases() {
        let id = "database/creds/app/Xyz123";
        assert!(lease_matches(id, id));
        assert!(lease_matches(id, "database/creds/app"));
        assert!(!lease_matches(id, "database/creds/ap"));
        assert!(!lease_matches(id, "database/creds/app/Xyz1234"));
        assert!(!lease_matches(id, ""));
    }

    #[test]
    fn kv_event_paths_match_the_secret() {
        assert!(same_secret("secret/data/app/db", "secret/data/app/db"));
        assert!(same_secret("secret/metadata/app/db", "secret/data/app/db"));
        assert!(same_secret("secret/destroy/app/db", "secret/data/app/db"));
        assert!(!same_secret("secret/data/app/db2", "secret/data/app/db"));
        assert!(!same_secret("other/data/app/db", "secret/data/app/db"));
        assert!(same_secret("kv1/app", "kv1/app"));
    }
}

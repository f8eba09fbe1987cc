//! `coffer run [--env-file F]... [--env NAME=REF]... [--no-masking]
//! [--watch [--on-change restart|signal:NAME|none]] -- CMD ARGS...`:
//! resolves every `coffer://` reference in the environment and the env
//! files, then runs CMD with the values in its environment (nothing is
//! written to disk).
//!
//! - The child runs in a process group of its own; `SIGTERM`, `SIGINT`,
//!   `SIGHUP`, `SIGQUIT`, `SIGUSR1` and `SIGUSR2` sent to `coffer run` are
//!   forwarded to that group, and the child's exit code is passed through
//!   (128 + N when it died of signal N; 127 when CMD is not found).
//! - Unless `--no-masking`, the child's stdout and stderr pass through a
//!   [`mask::Masker`] that replaces every resolved value.
//! - With `--watch` a change event ([`watch`]) for a referenced secret
//!   re-reads it; when a value changed, `--on-change` restarts the child
//!   with the new environment (default), sends it a signal, or does nothing.

mod confirm;
pub mod envfile;
pub mod mask;
mod supervise;
mod watch;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use coffer_client::{Reference, Resolver};
use parking_lot::RwLock;
use zeroize::Zeroizing;

use super::generic::usage;
use crate::client::ConnectArgs;

/// Arguments of `coffer run`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    coffer run --env-file app.env -- ./server\n  \
    coffer run --env DATABASE_PASSWORD=coffer://secret/app/db#password -- ./server\n  \
    coffer run --watch --on-change signal:HUP --env-file app.env -- ./server\n\n\
    An env file holds NAME=value lines; a value that is a reference\n\
    (coffer://<mount>/<path>#<field>, optionally ?version=N or ?stage=previous)\n\
    is read from Coffer with your token. So is every variable of the current\n\
    environment whose value is a reference.")]
pub struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    /// An env file of NAME=value lines (repeatable; later files win).
    #[arg(long = "env-file", value_name = "FILE")]
    env_files: Vec<PathBuf>,
    /// One variable set to a reference (repeatable; wins over env files).
    #[arg(long = "env", value_name = "NAME=REF")]
    envs: Vec<String>,
    /// Do not mask secret values in the child's stdout and stderr.
    #[arg(long)]
    no_masking: bool,
    /// Follow change events and apply --on-change when a value changes.
    #[arg(long)]
    watch: bool,
    /// With --watch: `restart` (default), `signal:NAME` (e.g. signal:HUP) or `none`.
    #[arg(long, value_name = "ACTION", default_value = "restart")]
    on_change: String,
    /// The command to run, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// What `--watch` does when a referenced value changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnChange {
    /// Stop the child (SIGTERM, then SIGKILL after 10 s) and start it again
    /// with the new values.
    Restart,
    /// Send the child's process group this signal.
    Signal(i32),
    /// Keep the child as it is (new values are still masked).
    Nothing,
}

impl OnChange {
    /// Parses `restart`, `none` or `signal:NAME` (`HUP`, `SIGHUP`, `USR1`, ...).
    pub fn parse(s: &str) -> Result<OnChange, String> {
        match s.trim() {
            "restart" => Ok(OnChange::Restart),
            "none" => Ok(OnChange::Nothing),
            other => {
                let name = other.strip_prefix("signal:").ok_or_else(|| {
                    format!("--on-change {other:?}: expected restart, signal:NAME or none")
                })?;
                signal_number(name)
                    .map(OnChange::Signal)
                    .ok_or_else(|| format!("--on-change: unknown signal {name:?}"))
            }
        }
    }
}

/// The number of a signal named `HUP`, `SIGHUP`, `usr1`, ...
fn signal_number(name: &str) -> Option<i32> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    Some(match bare {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "TERM" => libc::SIGTERM,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "WINCH" => libc::SIGWINCH,
        _ => return None,
    })
}

/// A variable to set from a reference.
#[derive(Debug, Clone)]
pub struct Wanted {
    /// The variable's name.
    pub name: String,
    /// Where its value comes from.
    pub reference: Reference,
}

/// Resolves every wanted variable; the first failure is returned (its
/// message names the variable and the reference, never a value).
pub fn resolve_all(
    resolver: &Resolver<'_>,
    wanted: &[Wanted],
) -> anyhow::Result<Vec<(String, Zeroizing<String>)>> {
    wanted
        .iter()
        .map(|w| {
            resolver
                .resolve(&w.reference)
                .map(|v| (w.name.clone(), v))
                .with_context(|| format!("cannot set {}", w.name))
        })
        .collect()
}

/// Variables set to literal values, in order.
type Literals = Vec<(OsString, OsString)>;

/// The environment of the child: literal variables and references, in the
/// order they win (process environment, env files in order, `--env`).
fn plan(a: &Args) -> Result<(Literals, Vec<Wanted>), String> {
    let mut literal: Vec<(OsString, OsString)> = Vec::new();
    let mut refs: Vec<Wanted> = Vec::new();
    let mut set = |name: OsString, value: Result<Reference, OsString>, refs: &mut Vec<Wanted>| {
        literal.retain(|(n, _)| *n != name);
        refs.retain(|w| OsString::from(&w.name) != name);
        match value {
            Ok(reference) => refs.push(Wanted {
                name: name.to_string_lossy().into_owned(),
                reference,
            }),
            Err(v) => literal.push((name, v)),
        }
    };
    for (name, value) in std::env::vars_os() {
        let as_ref = value
            .to_str()
            .map(str::trim)
            .filter(|v| Reference::is_reference(v))
            .map(|v| {
                Reference::parse(v)
                    .map_err(|e| format!("environment variable {}: {e}", name.to_string_lossy()))
            })
            .transpose()?;
        match as_ref {
            Some(r) if name.to_str().is_some() => set(name, Ok(r), &mut refs),
            _ => set(name, Err(value), &mut refs),
        }
    }
    for file in &a.env_files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read env file {}: {e}", file.display()))?;
        let entries = envfile::parse(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        for e in entries {
            let value = if Reference::is_reference(&e.value) {
                Ok(Reference::parse(&e.value)
                    .map_err(|err| format!("{}: line {}: {err}", file.display(), e.line))?)
            } else {
                Err(OsString::from(e.value))
            };
            set(OsString::from(e.name), value, &mut refs);
        }
    }
    for pair in &a.envs {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("--env {pair:?}: expected NAME=coffer://..."))?;
        if !envfile::valid_name(name) {
            return Err(format!("--env: {name:?} is not a valid variable name"));
        }
        if !Reference::is_reference(value) {
            return Err(format!(
                "--env {name}: the value must be a coffer:// reference (set literal values in the environment)"
            ));
        }
        let r = Reference::parse(value).map_err(|e| format!("--env {name}: {e}"))?;
        set(OsString::from(name), Ok(r), &mut refs);
    }
    Ok((literal, refs))
}

/// Runs the command, returning its exit code.
pub fn run(a: Args) -> anyhow::Result<i32> {
    let on_change = match OnChange::parse(&a.on_change) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    let (literal, wanted) = match plan(&a) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let client = a.connect.client()?;
    // Subscribe before reading, so that no change between the read and the
    // subscription is missed.
    let watcher = if a.watch {
        Some(watch::Watcher::start(client.clone(), &wanted)?)
    } else {
        None
    };
    let (values, held) = {
        let resolver = Resolver::new(&client);
        (resolve_all(&resolver, &wanted)?, resolver.held())
    };
    let masks = (!a.no_masking).then(|| {
        Arc::new(RwLock::new(Arc::new(mask::Patterns::new(
            values.iter().map(|(_, v)| v.as_str()),
        ))))
    });
    let (changes, applied, watch_thread) = match watcher {
        Some(w) => {
            let confirmer = confirm::Confirmer::start(client.clone(), held);
            let applied = confirmer.applied();
            let (rx, handle) = w.spawn(values.clone(), confirmer);
            (Some(rx), Some(applied), Some(handle))
        }
        None => (None, None, None),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let code = runtime.block_on(supervise::supervise(supervise::Plan {
        command: a.command,
        literal,
        values,
        masks,
        on_change,
        changes,
        applied,
    }))?;
    drop(runtime);
    // The watch thread blocks on the stream; the process exit ends it.
    drop(watch_thread);
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_change_actions_parse() {
        assert_eq!(OnChange::parse("restart"), Ok(OnChange::Restart));
        assert_eq!(OnChange::parse("none"), Ok(OnChange::Nothing));
        assert_eq!(
            OnChange::parse("signal:HUP"),
            Ok(OnChange::Signal(libc::SIGHUP))
        );
        assert_eq!(
            OnChange::parse("signal:sigusr1"),
            Ok(OnChange::Signal(libc::SIGUSR1))
        );
        assert!(OnChange::parse("signal:KILLALL").is_err());
        assert!(OnChange::parse("reload").is_err());
    }
}

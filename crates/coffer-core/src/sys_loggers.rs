//! `sys/loggers` and `sys/loggers/:name`: the log levels of this node, read
//! and changed at run time, as Vault's (levels are not stored: a restart
//! goes back to the configured level, as in Vault).
//!
//! Coffer's loggers are named as Vault's where one corresponds (`core`,
//! `audit`, `expiration`, `token`, `policy`, `identity`, `quotas`) and
//! after the component otherwise; each stands for the tracing targets
//! (module paths) of that component, and every name always has a directive
//! of its own, so changing one leaves the others as they are. The levels
//! become one `EnvFilter` directive string that the binary installs through
//! its reload handle ([`LogReload`]); the core depends on no subscriber.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{Map, Value};

use crate::core::Core;
use crate::util::Params;
use crate::{Error, Operation, Request, Response, Result};

/// Installs a log filter: implemented by the binary over tracing's reload
/// layer.
pub trait LogReload: Send + Sync {
    /// Replaces the filter with `directives` (`EnvFilter` syntax); an error
    /// names what was wrong.
    fn apply(&self, directives: &str) -> std::result::Result<(), String>;
}

/// A log level, as Vault names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// `trace`.
    Trace,
    /// `debug`.
    Debug,
    /// `info`.
    Info,
    /// `warn`.
    Warn,
    /// `error`.
    Error,
}

impl Level {
    /// Vault's name (and tracing's directive word).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    /// Vault's `ParseLogLevel`: case and surrounding space ignored,
    /// `notice` is `info`, `warning` `warn`, `err` `error`.
    pub fn parse(s: &str) -> std::result::Result<Level, String> {
        let s = s.trim().to_ascii_lowercase();
        Ok(match s.as_str() {
            "trace" => Level::Trace,
            "debug" => Level::Debug,
            "notice" | "info" | "" => Level::Info,
            "warn" | "warning" => Level::Warn,
            "err" | "error" => Level::Error,
            _ => return Err(format!("unknown log level: {s}")),
        })
    }
}

/// Coffer's loggers: Vault's name and the tracing targets it stands for.
pub const LOGGERS: &[(&str, &[&str])] = &[
    ("audit", &["coffer_core::audit"]),
    ("auth", &["coffer_auth"]),
    ("core", &["coffer_core"]),
    ("expiration", &["coffer_core::expiration"]),
    ("http", &["coffer_http"]),
    ("identity", &["coffer_core::identity"]),
    ("lifecycle", &["coffer_core::lifecycle"]),
    (
        "policy",
        &[
            "coffer_core::policy_store",
            "coffer_core::sys_policy",
            "coffer_policy",
        ],
    ),
    ("quotas", &["coffer_core::quotas"]),
    ("secrets", &["coffer_engines"]),
    ("storage", &["coffer_storage"]),
    (
        "token",
        &[
            "coffer_core::token",
            "coffer_core::token_api",
            "coffer_core::batch_token",
        ],
    ),
    ("ui", &["coffer_ui"]),
];

/// The logger (Vault's name) whose targets cover the tracing `target`:
/// the one with the longest matching target, if any.
pub fn logger_of(target: &str) -> Option<&'static str> {
    LOGGERS
        .iter()
        .flat_map(|(name, targets)| targets.iter().map(move |t| (*name, *t)))
        .filter(|(_, t)| {
            target
                .strip_prefix(t)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        })
        .max_by_key(|(_, t)| t.len())
        .map(|(name, _)| name)
}

/// Directives always appended: the HTTP and TLS libraries stay quiet below warn.
const LIBRARIES: &str = "hyper=warn,h2=warn,rustls=warn";

/// The node's log levels.
pub struct Loggers {
    configured: Level,
    state: Mutex<State>,
    reload: Option<Arc<dyn LogReload>>,
}

struct State {
    /// Everything no named logger covers (the binary, other libraries).
    base: Level,
    levels: BTreeMap<&'static str, Level>,
}

impl Default for Loggers {
    fn default() -> Self {
        Loggers::new(Level::Info, None)
    }
}

impl std::fmt::Debug for Loggers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loggers")
            .field("configured", &self.configured)
            .field("reload", &self.reload.is_some())
            .finish_non_exhaustive()
    }
}

impl Loggers {
    /// Every logger at `configured` (the server's `--log-level`); changes go
    /// through `reload` (none: the levels are kept but nothing is logged
    /// differently).
    pub fn new(configured: Level, reload: Option<Arc<dyn LogReload>>) -> Loggers {
        Loggers {
            configured,
            state: Mutex::new(State {
                base: configured,
                levels: LOGGERS.iter().map(|(n, _)| (*n, configured)).collect(),
            }),
            reload,
        }
    }

    /// The directive string of the levels now: the base level, the
    /// libraries' floor, then each logger's targets, the broadest first so
    /// a narrower target's directive is its own.
    pub fn directives(&self) -> String {
        let state = self.state.lock();
        directives(&state)
    }

    fn install(&self, state: &State) -> Result<()> {
        if let Some(r) = &self.reload {
            r.apply(&directives(state)).map_err(|e| {
                Error::Internal(format!("the log filter could not be replaced: {e}"))
            })?;
        }
        Ok(())
    }

    /// Sets every logger (`None`: back to the configured level).
    fn set_all(&self, level: Option<Level>) -> Result<()> {
        let level = level.unwrap_or(self.configured);
        let mut state = self.state.lock();
        let mut next = State {
            base: level,
            levels: state.levels.keys().map(|n| (*n, level)).collect(),
        };
        self.install(&next)?;
        std::mem::swap(&mut *state, &mut next);
        Ok(())
    }

    /// Sets one logger (`None`: back to the configured level); `false`
    /// when there is no logger of that name.
    fn set_one(&self, name: &str, level: Option<Level>) -> Result<bool> {
        let level = level.unwrap_or(self.configured);
        let mut state = self.state.lock();
        let Some((&key, _)) = state.levels.get_key_value(name) else {
            return Ok(false);
        };
        let mut levels = state.levels.clone();
        levels.insert(key, level);
        let mut next = State {
            base: state.base,
            levels,
        };
        self.install(&next)?;
        std::mem::swap(&mut *state, &mut next);
        Ok(true)
    }

    fn levels(&self) -> BTreeMap<&'static str, Level> {
        self.state.lock().levels.clone()
    }
}

fn directives(state: &State) -> String {
    let mut out = vec![state.base.as_str().to_string(), LIBRARIES.to_string()];
    let mut targets: Vec<(&str, Level)> = LOGGERS
        .iter()
        .flat_map(|(name, targets)| {
            let level = state.levels.get(name).copied().unwrap_or(state.base);
            targets.iter().map(move |t| (*t, level))
        })
        .collect();
    targets.sort_by_key(|(t, _)| t.len());
    out.extend(
        targets
            .into_iter()
            .map(|(t, l)| format!("{t}={}", l.as_str())),
    );
    out.join(",")
}

/// Whether `rest` (below `sys/`) is a loggers endpoint.
pub(crate) fn is_path(rest: &str) -> bool {
    rest == "loggers" || rest.starts_with("loggers/")
}

/// The level a write names, or Vault's 400.
fn level_of(req: &Request) -> Result<Level> {
    let p = Params(&req.data);
    let level = match req.data.get("level") {
        None | Some(Value::Null) => return Err(Error::bad("level is required")),
        Some(_) => p.str("level")?.unwrap_or_default(),
    };
    if level.is_empty() {
        return Err(Error::bad("level is empty"));
    }
    Level::parse(level).map_err(|e| Error::bad(format!("invalid level provided: {e}")))
}

/// Answers `sys/loggers[/:name]`.
pub(crate) async fn handle(core: &Core, req: &Request, rest: &str) -> Result<Response> {
    use Operation::*;
    let loggers = &core.config.loggers;
    let name = rest
        .strip_prefix("loggers")
        .unwrap_or("")
        .trim_start_matches('/');
    let show = |levels: BTreeMap<&'static str, Level>| {
        let data: Map<String, Value> = levels
            .into_iter()
            .map(|(n, l)| (n.to_string(), Value::from(l.as_str())))
            .collect();
        Response::data(Value::Object(data))
    };
    if name.is_empty() {
        return match req.operation {
            Read => Ok(show(loggers.levels())),
            Create | Update => {
                let level = level_of(req)?;
                loggers.set_all(Some(level))?;
                tracing::info!(level = level.as_str(), "log level of every logger set");
                Ok(Response::empty())
            }
            Delete => {
                loggers.set_all(None)?;
                tracing::info!("log levels reverted to the configured level");
                Ok(Response::empty())
            }
            _ => Err(Error::UnsupportedOperation),
        };
    }
    let not_found = || Error::bad(format!("logger {name:?} not found"));
    match req.operation {
        // As Vault: an unknown name reads as an empty map.
        Read => Ok(show(
            loggers
                .levels()
                .into_iter()
                .filter(|(n, _)| *n == name)
                .collect(),
        )),
        Create | Update => {
            let level = level_of(req)?;
            if !loggers.set_one(name, Some(level))? {
                return Err(not_found());
            }
            tracing::info!(logger = name, level = level.as_str(), "log level set");
            Ok(Response::empty())
        }
        Delete => {
            if !loggers.set_one(name, None)? {
                return Err(not_found());
            }
            Ok(Response::empty())
        }
        _ => Err(Error::UnsupportedOperation),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl LogReload for Recorder {
        fn apply(&self, directives: &str) -> std::result::Result<(), String> {
            self.0.lock().push(directives.to_string());
            Ok(())
        }
    }

    #[test]
    fn levels_parse_as_vaults() {
        assert_eq!(Level::parse(" WARNING "), Ok(Level::Warn));
        assert_eq!(Level::parse("err"), Ok(Level::Error));
        assert_eq!(Level::parse("notice"), Ok(Level::Info));
        assert!(Level::parse("off").is_err());
        assert!(Level::parse("bogus").is_err());
    }

    #[test]
    fn one_logger_changes_alone_and_reverts_to_the_configured_level() {
        let rec = Arc::new(Recorder::default());
        let l = Loggers::new(Level::Warn, Some(rec.clone()));
        assert!(l.set_one("audit", Some(Level::Trace)).unwrap());
        let d = rec.0.lock().last().cloned().unwrap();
        assert!(d.starts_with("warn,hyper=warn"), "{d}");
        assert!(d.contains("coffer_core=warn"), "{d}");
        assert!(d.contains("coffer_core::audit=trace"), "{d}");
        // The broader target comes first, so the narrower one wins for its module.
        assert!(d.find("coffer_core=").unwrap() < d.find("coffer_core::audit=").unwrap());
        assert!(!l.set_one("nope", Some(Level::Debug)).unwrap());
        l.set_all(Some(Level::Debug)).unwrap();
        assert!(l.levels().values().all(|v| *v == Level::Debug));
        assert!(l.directives().starts_with("debug,"));
        l.set_all(None).unwrap();
        assert!(l.levels().values().all(|v| *v == Level::Warn));
    }
}

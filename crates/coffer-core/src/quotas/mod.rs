//! Rate-limit quotas, Vault's `sys/quotas/config` and
//! `sys/quotas/rate-limit/:name`.
//!
//! A quota limits the requests each client address makes per interval, on
//! the whole API (empty `path`), one mount (`secret/`), a path under one
//! (`secret/data/app`, exact) or a prefix under one (`secret/data/app*`),
//! or the logins made with one role of an AppRole or JWT mount. The most
//! specific quota decides, as in OpenBao: role, exact path, the longest
//! prefix, mount, global. The check runs in the request pipeline right after
//! routing, before authentication (as Vault's HTTP layer runs it, so an
//! anonymous flood is refused before it costs a token lookup), for every
//! request but the exempt paths (`rate_limit_exempt_paths`, Vault's default
//! list until an operator sets one). A refusal is a 429 with Vault's text
//! (`request path "…": rate limit quota exceeded`), audited only when
//! `enable_rate_limit_audit_logging` is on; with
//! `enable_rate_limit_response_headers` every answer a quota counted carries
//! `X-Ratelimit-Limit`, `-Remaining`, `-Reset` (and a refusal `Retry-After`).
//!
//! The quotas live behind the barrier (`sys/quotas/config`,
//! `sys/quotas/rate-limit/<name>`), so every node sharing a PostgreSQL store
//! applies the same ones (a change made elsewhere arrives with this node's
//! next change-log read); counting is each node's own, in memory and bounded
//! ([`limiter`]). Writing a quota starts its counts afresh, as in OpenBao;
//! disabling a mount removes its quotas, moving one moves them.

pub(crate) mod limiter;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::barrier::View;
use crate::core::Core;
use crate::util::Params;
use crate::{Error, Operation, Request, Response, Result};

use self::limiter::{Limiter, Take};

/// Storage prefix of everything quotas keep (the view's).
pub(crate) const STORAGE_PREFIX: &str = "sys/quotas/";
/// Key of the configuration in the view.
const CONFIG_KEY: &str = "config";
/// Prefix of the rate-limit quotas in the view.
const RULE_PREFIX: &str = "rate-limit/";

/// The paths no rate-limit quota counts until an operator sets the list
/// (OpenBao's default set).
pub const DEFAULT_EXEMPT_PATHS: [&str; 7] = [
    "sys/generate-recovery-token/attempt",
    "sys/generate-recovery-token/update",
    "sys/generate-root/attempt",
    "sys/generate-root/update",
    "sys/health",
    "sys/seal-status",
    "sys/unseal",
];

/// Vault's word for the quota type, in reads.
const TYPE: &str = "rate-limit";

/// The configuration as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct StoredConfig {
    #[serde(default)]
    enable_rate_limit_audit_logging: bool,
    #[serde(default)]
    enable_rate_limit_response_headers: bool,
    /// `None` until an operator writes the configuration: the default list.
    #[serde(default)]
    rate_limit_exempt_paths: Option<Vec<String>>,
}

impl StoredConfig {
    fn exempt_paths(&self) -> Vec<String> {
        match &self.rate_limit_exempt_paths {
            Some(p) => p.clone(),
            None => DEFAULT_EXEMPT_PATHS.iter().map(|p| p.to_string()).collect(),
        }
    }
}

/// One quota as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RuleDef {
    name: String,
    /// The mount (`secret/`, `auth/approle/`); empty: the whole API.
    mount_path: String,
    /// The path below the mount (exact, or a prefix ending in `*`); empty:
    /// the whole mount.
    path_suffix: String,
    /// The login role (auth mounts with roles only); empty: none.
    role: String,
    rate: f64,
    /// Seconds, at least 1.
    interval: u64,
    /// Seconds; 0: no block.
    block_interval: u64,
    inheritable: bool,
}

impl RuleDef {
    fn path(&self) -> String {
        format!("{}{}", self.mount_path, self.path_suffix)
    }

    fn factors(&self) -> (&str, &str, &str) {
        (&self.mount_path, &self.path_suffix, &self.role)
    }

    fn to_json(&self) -> Value {
        json!({
            "type": TYPE,
            "name": self.name,
            "path": self.path(),
            "role": self.role,
            "rate": self.rate,
            "interval": self.interval,
            "block_interval": self.block_interval,
            "inheritable": self.inheritable,
        })
    }

    fn limiter(&self) -> Limiter {
        // As OpenBao: `rate` requests per interval, rounded to a whole number.
        let tokens = self.rate.round().max(0.0) as u64;
        Limiter::new(
            tokens,
            Duration::from_secs(self.interval.max(1)),
            Duration::from_secs(self.block_interval),
        )
    }
}

struct Rule {
    def: RuleDef,
    limiter: Limiter,
}

/// What the pipeline reads on every request: replaced whole on a change.
#[derive(Default)]
struct QuotaSet {
    config: StoredConfig,
    /// Exempt prefixes (a trailing `*` trimmed) and whether each is an
    /// exception (`!`), longest first.
    exempt: Vec<(String, bool)>,
    rules: BTreeMap<String, Arc<Rule>>,
    /// (mount, suffix, role) to the quota holding them.
    by_factors: HashMap<(String, String, String), Arc<Rule>>,
    /// Mounts that have a role quota.
    role_mounts: Vec<String>,
}

impl QuotaSet {
    fn build(config: StoredConfig, rules: BTreeMap<String, Arc<Rule>>) -> QuotaSet {
        let mut exempt: Vec<(String, bool)> = config
            .exempt_paths()
            .into_iter()
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (p, exception) = match p.strip_prefix('!') {
                    Some(rest) => (rest.to_string(), true),
                    None => (p, false),
                };
                (p.trim_end_matches('*').to_string(), exception)
            })
            .collect();
        exempt.sort_by_key(|e| std::cmp::Reverse(e.0.len()));
        let mut by_factors = HashMap::new();
        let mut role_mounts = Vec::new();
        for rule in rules.values() {
            let (m, s, r) = rule.def.factors();
            by_factors.insert((m.to_string(), s.to_string(), r.to_string()), rule.clone());
            if !r.is_empty() && !role_mounts.iter().any(|x| x == m) {
                role_mounts.push(m.to_string());
            }
        }
        QuotaSet {
            config,
            exempt,
            rules,
            by_factors,
            role_mounts,
        }
    }

    /// Whether `path` is exempt: the longest matching prefix decides.
    fn exempt(&self, path: &str) -> bool {
        self.exempt
            .iter()
            .find(|(p, _)| path.starts_with(p.as_str()))
            .is_some_and(|(_, exception)| !exception)
    }

    fn get(&self, mount: &str, suffix: &str, role: &str) -> Option<&Arc<Rule>> {
        if self.by_factors.is_empty() {
            return None;
        }
        self.by_factors
            .get(&(mount.to_string(), suffix.to_string(), role.to_string()))
    }

    /// The quota that decides a request to `path` on `mount` (with `role`
    /// for a login): role, exact path, longest prefix, mount, global.
    fn query(&self, path: &str, mount: &str, role: Option<&str>) -> Option<&Arc<Rule>> {
        if !mount.is_empty() {
            if let Some(role) = role.filter(|r| !r.is_empty()) {
                if let Some(q) = self.get(mount, "", role) {
                    return Some(q);
                }
            }
            let suffix = path.strip_prefix(mount).unwrap_or("").trim_end_matches('/');
            if !suffix.is_empty() {
                if let Some(q) = self.get(mount, suffix, "") {
                    return Some(q);
                }
            }
            let mut ends: Vec<usize> = suffix.char_indices().map(|(i, _)| i).collect();
            ends.push(suffix.len());
            for end in ends.into_iter().rev() {
                if let Some(q) = self.get(mount, &format!("{}*", &suffix[..end]), "") {
                    return Some(q);
                }
            }
            if let Some(q) = self.get(mount, "", "") {
                return Some(q);
            }
        }
        self.get("", "", "")
    }
}

/// The node's quotas: definitions loaded from the store, counts in memory.
pub(crate) struct Quotas {
    view: View,
    state: RwLock<Arc<QuotaSet>>,
    /// Serialises this node's quota writes (a write checks the others).
    writes: tokio::sync::Mutex<()>,
}

/// What a quota decided about one request.
pub(crate) struct Verdict {
    /// Whether the request may go on.
    pub allowed: bool,
    /// The headers for the answer, when the configuration asks for them.
    pub headers: Option<Vec<(&'static str, String)>>,
    /// Whether a refusal is audited.
    pub audit: bool,
}

impl Quotas {
    /// Quotas stored in `view` (the barrier's [`STORAGE_PREFIX`]).
    pub(crate) fn new(view: View) -> Quotas {
        Quotas {
            view,
            state: RwLock::new(Arc::default()),
            writes: tokio::sync::Mutex::new(()),
        }
    }

    /// Forgets every quota (at seal): a sealed node counts nothing.
    pub(crate) fn clear(&self) {
        *self.state.write() = Arc::default();
    }

    /// Loads the configuration and every quota (at unseal, and when another
    /// node changed them). Quotas whose definition did not change keep
    /// their counts.
    pub(crate) async fn load(&self) -> Result<()> {
        let config: StoredConfig = self.view.get_json(CONFIG_KEY).await?.unwrap_or_default();
        let names = self.view.list(RULE_PREFIX).await?;
        let mut defs = Vec::new();
        for name in names.iter().filter(|n| !n.ends_with('/')) {
            if let Some(def) = self
                .view
                .get_json::<RuleDef>(&format!("{RULE_PREFIX}{name}"))
                .await?
            {
                defs.push(def);
            }
        }
        let current = self.state.read().clone();
        let mut rules = BTreeMap::new();
        for def in defs {
            let rule = match current.rules.get(&def.name) {
                Some(r) if r.def == def => r.clone(),
                _ => Arc::new(Rule {
                    limiter: def.limiter(),
                    def,
                }),
            };
            rules.insert(rule.def.name.clone(), rule);
        }
        *self.state.write() = Arc::new(QuotaSet::build(config, rules));
        Ok(())
    }

    /// Whether any quota is set on a role of `mount` (the role of a login
    /// there must then be looked up).
    pub(crate) fn has_role_quota(&self, mount: &str) -> bool {
        self.state.read().role_mounts.iter().any(|m| m == mount)
    }

    /// Counts a request to `path` (routed to `mount`, `""` when it routes
    /// nowhere) from `client`, logging in with `role`. `None` when no quota
    /// applies (none set, the path exempt, no client address).
    pub(crate) fn check(
        &self,
        path: &str,
        mount: &str,
        role: Option<&str>,
        client: Option<IpAddr>,
    ) -> Option<Verdict> {
        let set = self.state.read().clone();
        if set.rules.is_empty() || set.exempt(path) {
            return None;
        }
        let rule = set.query(path, mount, role)?;
        let client = client?;
        let take = rule.limiter.take(client, Instant::now());
        if !take.allowed {
            crate::telemetry::C_QUOTA_RATE_LIMIT_VIOLATION.incr();
        }
        let headers = set
            .config
            .enable_rate_limit_response_headers
            .then(|| headers(&take));
        Some(Verdict {
            allowed: take.allowed,
            headers,
            audit: set.config.enable_rate_limit_audit_logging,
        })
    }

    /// Removes the quotas of a disabled mount (`mount` ends with `/`).
    pub(crate) async fn forget_mount(&self, mount: &str) -> Result<()> {
        let _w = self.writes.lock().await;
        let names: Vec<String> = self
            .state
            .read()
            .rules
            .values()
            .filter(|r| r.def.mount_path == mount)
            .map(|r| r.def.name.clone())
            .collect();
        for name in &names {
            self.view.delete(&format!("{RULE_PREFIX}{name}")).await?;
        }
        if !names.is_empty() {
            self.load().await?;
        }
        Ok(())
    }

    /// Moves the quotas of a mount moved from `from` to `to`.
    pub(crate) async fn move_mount(&self, from: &str, to: &str) -> Result<()> {
        let _w = self.writes.lock().await;
        let moved: Vec<RuleDef> = self
            .state
            .read()
            .rules
            .values()
            .filter(|r| r.def.mount_path == from)
            .map(|r| RuleDef {
                mount_path: to.to_string(),
                ..r.def.clone()
            })
            .collect();
        for def in &moved {
            self.view
                .put_json(&format!("{RULE_PREFIX}{}", def.name), def)
                .await?;
        }
        if !moved.is_empty() {
            self.load().await?;
        }
        Ok(())
    }
}

/// The rate-limit headers of a counted request.
fn headers(take: &Take) -> Vec<(&'static str, String)> {
    let mut h = vec![
        ("x-ratelimit-limit", take.limit.to_string()),
        ("x-ratelimit-remaining", take.remaining.to_string()),
        ("x-ratelimit-reset", take.reset_secs.to_string()),
    ];
    if !take.allowed {
        h.push(("retry-after", take.retry_after_secs.to_string()));
    }
    h
}

/// The refusal of a request a quota stopped (Vault's text).
pub(crate) fn exceeded(path: &str) -> Error {
    Error::Status {
        code: 429,
        errors: vec![format!("request path {path:?}: rate limit quota exceeded")],
    }
}

/// Whether `rest` (below `sys/`) is a quota endpoint.
pub(crate) fn is_path(rest: &str) -> bool {
    rest == "quotas/config" || rest == "quotas/rate-limit" || rest.starts_with("quotas/rate-limit/")
}

/// Answers `sys/quotas/config` and `sys/quotas/rate-limit[/:name]`.
pub(crate) async fn handle(core: &Core, req: &Request, rest: &str) -> Result<Response> {
    use Operation::*;
    let quotas = &core.quotas;
    if rest == "quotas/config" {
        return match req.operation {
            Read => {
                let set = quotas.state.read().clone();
                Ok(Response::data(json!({
                    "enable_rate_limit_audit_logging": set.config.enable_rate_limit_audit_logging,
                    "enable_rate_limit_response_headers": set.config.enable_rate_limit_response_headers,
                    "rate_limit_exempt_paths": set.config.exempt_paths(),
                })))
            }
            Create | Update => write_config(quotas, req).await,
            _ => Err(Error::UnsupportedOperation),
        };
    }
    let name = rest
        .strip_prefix("quotas/rate-limit")
        .unwrap_or("")
        .trim_start_matches('/');
    if name.is_empty() {
        return match req.operation {
            List => {
                let names: Vec<String> = quotas.state.read().rules.keys().cloned().collect();
                Response::list(names)
            }
            _ => Err(Error::UnsupportedOperation),
        };
    }
    if !valid_name(name) {
        return Err(Error::UnsupportedPath(format!(
            "unsupported path: {:?} is not a valid quota name",
            name
        )));
    }
    match req.operation {
        Read => {
            let set = quotas.state.read().clone();
            match set.rules.get(name) {
                Some(rule) => Ok(Response::data(rule.def.to_json())),
                None => Err(Error::NotFound),
            }
        }
        Create | Update => write_rule(core, req, name).await,
        Delete => {
            let _w = quotas.writes.lock().await;
            quotas.view.delete(&format!("{RULE_PREFIX}{name}")).await?;
            quotas.load().await?;
            Ok(Response::empty())
        }
        _ => Err(Error::UnsupportedOperation),
    }
}

/// Vault's `GenericNameRegex`: word characters, `-` and `.` inside.
fn valid_name(name: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let (Some(first), Some(last)) = (name.chars().next(), name.chars().last()) else {
        return false;
    };
    word(first) && word(last) && name.chars().all(|c| word(c) || c == '-' || c == '.')
}

/// Writes the configuration: every field at once, as OpenBao (a field
/// left out is reset, the exempt list to empty).
async fn write_config(quotas: &Quotas, req: &Request) -> Result<Response> {
    let p = Params(&req.data);
    let exempt = match req.data.get("rate_limit_exempt_paths") {
        None | Some(Value::Null) => Vec::new(),
        // One string is one path (OpenBao does not split it on commas).
        Some(Value::String(s)) if s.is_empty() => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(_) => p.str_list("rate_limit_exempt_paths")?.unwrap_or_default(),
    };
    let config = StoredConfig {
        enable_rate_limit_audit_logging: p
            .bool("enable_rate_limit_audit_logging")?
            .unwrap_or(false),
        enable_rate_limit_response_headers: p
            .bool("enable_rate_limit_response_headers")?
            .unwrap_or(false),
        rate_limit_exempt_paths: Some(exempt),
    };
    let _w = quotas.writes.lock().await;
    quotas.view.put_json(CONFIG_KEY, &config).await?;
    quotas.load().await?;
    Ok(Response::empty())
}

/// A float parameter (a number, or a string holding one).
fn float(req: &Request, name: &str) -> Result<Option<f64>> {
    match req.data.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .map(Some)
            .map_err(|_| Error::bad(format!("{name}: expected a number"))),
        Some(_) => Err(Error::bad(format!("{name}: expected a number"))),
    }
}

/// A duration in whole seconds; a negative one is refused.
fn seconds(req: &Request, name: &str) -> Result<Option<u64>> {
    if let Some(Value::Number(n)) = req.data.get(name) {
        if n.as_i64().is_some_and(|v| v < 0) || n.as_f64().is_some_and(|v| v < 0.0) {
            return Err(Error::bad(format!(
                "{name}: cannot provide a negative value"
            )));
        }
    }
    if let Some(Value::String(s)) = req.data.get(name) {
        if s.trim_start().starts_with('-') {
            return Err(Error::bad(format!(
                "{name}: cannot provide a negative value"
            )));
        }
    }
    Params(&req.data).duration(name)
}

/// Creates or replaces the quota `name` (OpenBao's checks and messages).
async fn write_rule(core: &Core, req: &Request, name: &str) -> Result<Response> {
    let rate = float(req, "rate")?.unwrap_or(0.0);
    if rate.is_nan() || rate <= 0.0 || !rate.is_finite() {
        return Err(Error::bad("'rate' is invalid"));
    }
    let interval = seconds(req, "interval")?.unwrap_or(0);
    let interval = if interval == 0 { 1 } else { interval };
    let block_interval = seconds(req, "block_interval")?.unwrap_or(0);
    let p = Params(&req.data);
    let raw_path = p.str("path")?.unwrap_or("");
    let role = p.str("role")?.unwrap_or("").to_string();
    let (mount_path, path_suffix) = resolve_path(core, raw_path)?;
    if !role.is_empty() {
        if !path_suffix.is_empty() {
            return Err(Error::bad(
                "Quotas cannot contain both a path suffix and a role. If a role is provided, path must be a valid auth mount with a concept of roles",
            ));
        }
        let routed = core.router.read().get(&mount_path).cloned();
        let auth = routed
            .as_ref()
            .filter(|m| m.entry.path.starts_with("auth/"));
        match auth {
            None => {
                return Err(Error::bad(format!(
                    "Mount path {mount_path:?} is not a valid auth method and therefore unsuitable for use with role-based quotas"
                )))
            }
            Some(m) if !m.engine.has_login_roles() => {
                return Err(Error::bad(format!(
                    "Mount path {mount_path:?} does not support use with role-based quotas"
                )))
            }
            Some(_) => {}
        }
    }
    let inheritable = match p.bool("inheritable")? {
        Some(b) => b,
        None => mount_path.is_empty(),
    };
    let def = RuleDef {
        name: name.to_string(),
        mount_path,
        path_suffix,
        role,
        rate,
        interval,
        block_interval,
        inheritable,
    };
    let quotas = &core.quotas;
    let _w = quotas.writes.lock().await;
    {
        let set = quotas.state.read().clone();
        let (m, s, r) = def.factors();
        let key = (m.to_string(), s.to_string(), r.to_string());
        if let Some(other) = set.by_factors.get(&key).filter(|o| o.def.name != name) {
            return Err(Error::bad(format!(
                "quota rule with similar properties exists under the name {:?}",
                other.def.name
            )));
        }
    }
    quotas
        .view
        .put_json(&format!("{RULE_PREFIX}{name}"), &def)
        .await?;
    // A written quota counts afresh, as OpenBao re-initialises it.
    {
        let mut state = quotas.state.write();
        let mut rules = state.rules.clone();
        rules.insert(
            name.to_string(),
            Arc::new(Rule {
                limiter: def.limiter(),
                def,
            }),
        );
        *state = Arc::new(QuotaSet::build(state.config.clone(), rules));
    }
    Ok(Response::empty())
}

/// The mount and path below it a quota's `path` names (OpenBao's
/// `sanitizePath`: a trailing `/` added, a leading one dropped); the
/// empty path is the whole API. An unmounted path is refused.
fn resolve_path(core: &Core, raw: &str) -> Result<(String, String)> {
    let mut path = raw.to_string();
    if !path.ends_with('/') {
        path.push('/');
    }
    let path = path.trim_start_matches('/');
    if path.is_empty() {
        return Ok((String::new(), String::new()));
    }
    let router = core.router.read();
    let Some((m, rel)) = router.route(path) else {
        return Err(Error::bad(format!("invalid mount path {path:?}")));
    };
    Ok((m.entry.path.clone(), rel.trim_end_matches('/').to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(name: &str, mount: &str, suffix: &str, role: &str) -> RuleDef {
        RuleDef {
            name: name.into(),
            mount_path: mount.into(),
            path_suffix: suffix.into(),
            role: role.into(),
            rate: 1.0,
            interval: 1,
            block_interval: 0,
            inheritable: false,
        }
    }

    fn set(defs: Vec<RuleDef>, config: StoredConfig) -> QuotaSet {
        let rules = defs
            .into_iter()
            .map(|d| {
                (
                    d.name.clone(),
                    Arc::new(Rule {
                        limiter: d.limiter(),
                        def: d,
                    }),
                )
            })
            .collect();
        QuotaSet::build(config, rules)
    }

    fn name<'a>(s: &'a QuotaSet, path: &str, mount: &str, role: Option<&str>) -> Option<&'a str> {
        s.query(path, mount, role).map(|r| r.def.name.as_str())
    }

    #[test]
    fn the_most_specific_quota_decides() {
        let s = set(
            vec![
                def("global", "", "", ""),
                def("mount", "secret/", "", ""),
                def("exact", "secret/", "data/app", ""),
                def("prefix", "secret/", "data/a*", ""),
                def("longer", "secret/", "data/ap*", ""),
                def("role", "auth/approle/", "", "web"),
            ],
            StoredConfig::default(),
        );
        assert_eq!(name(&s, "secret/data/app", "secret/", None), Some("exact"));
        assert_eq!(
            name(&s, "secret/data/apple", "secret/", None),
            Some("longer")
        );
        assert_eq!(name(&s, "secret/data/ab", "secret/", None), Some("prefix"));
        assert_eq!(name(&s, "secret/data/b", "secret/", None), Some("mount"));
        assert_eq!(name(&s, "secret/", "secret/", None), Some("mount"));
        assert_eq!(name(&s, "kv/x", "kv/", None), Some("global"));
        assert_eq!(name(&s, "nowhere", "", None), Some("global"));
        assert_eq!(
            name(&s, "auth/approle/login", "auth/approle/", Some("web")),
            Some("role")
        );
        assert_eq!(
            name(&s, "auth/approle/login", "auth/approle/", Some("db")),
            Some("global")
        );
        // A prefix quota of the whole mount (`secret/*`) is below an exact one.
        let s = set(
            vec![def("all", "secret/", "*", "")],
            StoredConfig::default(),
        );
        assert_eq!(name(&s, "secret/", "secret/", None), Some("all"));
        assert_eq!(name(&s, "secret/x/y", "secret/", None), Some("all"));
        assert_eq!(name(&s, "kv/x", "kv/", None), None);
    }

    #[test]
    fn exempt_paths_match_by_longest_prefix() {
        let s = set(vec![], StoredConfig::default());
        assert!(s.exempt("sys/health"));
        assert!(s.exempt("sys/seal-status"));
        assert!(!s.exempt("sys/mounts"));
        let s = set(
            vec![],
            StoredConfig {
                rate_limit_exempt_paths: Some(vec!["secret/*".into(), "!secret/data/x".into()]),
                ..Default::default()
            },
        );
        assert!(s.exempt("secret/data/y"));
        assert!(!s.exempt("secret/data/x"));
        assert!(!s.exempt("sys/health"));
    }

    #[test]
    fn names_follow_vaults_generic_name_rule() {
        for ok in ["a", "global-rate-limiter", "a.b_c", "x1"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a/b", "a b", ".a"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}

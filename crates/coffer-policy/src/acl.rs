//! The compiled ACL: a set of policies merged for fast evaluation.
//!
//! * Exact patterns live in a `HashMap` and win outright when they match.
//! * Prefix patterns (`foo/*`, no `+`) live in a radix tree that yields the
//!   longest matching prefix in one walk over the path.
//! * `+` patterns are sorted from highest to lowest priority and indexed by
//!   one literal segment each (the rarest among them), so a lookup only
//!   checks patterns sharing a segment with the path (plus the few made of
//!   `+` alone); the best hit is then ranked against the prefix hit.
//!
//! The same pattern in several policies (or twice in one) is merged as Vault
//! merges it: capabilities unioned (`deny` absorbs everything), parameter
//! lists merged, required parameters unioned, the smaller wrapping TTLs kept.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::capability::{Capability, CapabilitySet, Operation};
use super::params::{merge_param_map, ParamRules, ParamValue, ParamViolation};
use super::parse::{PathRule, Policy};
use super::pattern::{segment_count, Kind, Rank, SegmentShape};
use super::radix::RadixTree;

/// The merged permissions of one pattern.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Perms {
    caps: CapabilitySet,
    params: ParamRules,
    min_wrapping_ttl: Option<Duration>,
    max_wrapping_ttl: Option<Duration>,
    /// Each policy that contributed a rule, with the capabilities it
    /// granted here: the audit trail names those that granted a request.
    granting: Vec<(Arc<str>, CapabilitySet)>,
}

impl Perms {
    fn from_rule(rule: &PathRule, policy: &Arc<str>) -> Perms {
        let granting = if rule.capabilities.is_deny() {
            Vec::new()
        } else {
            vec![(policy.clone(), rule.capabilities)]
        };
        Perms {
            granting,
            caps: rule.capabilities,
            params: ParamRules {
                allowed: rule.allowed_parameters.clone(),
                denied: rule.denied_parameters.clone(),
                required: rule.required_parameters.clone(),
            },
            min_wrapping_ttl: rule.min_wrapping_ttl,
            max_wrapping_ttl: rule.max_wrapping_ttl,
        }
    }

    /// Merges another rule for the same pattern (from `policy`) into these
    /// permissions.
    fn merge(&mut self, rule: &PathRule, policy: &Arc<str>) {
        if self.caps.is_deny() {
            return;
        }
        if rule.capabilities.is_deny() {
            *self = Perms {
                caps: Capability::Deny.into(),
                ..Perms::default()
            };
            return;
        }
        self.caps = self.caps.union(rule.capabilities);
        match self.granting.iter_mut().find(|(name, _)| name == policy) {
            Some((_, caps)) => *caps = caps.union(rule.capabilities),
            None => self.granting.push((policy.clone(), rule.capabilities)),
        }
        self.min_wrapping_ttl = min_some(self.min_wrapping_ttl, rule.min_wrapping_ttl);
        self.max_wrapping_ttl = min_some(self.max_wrapping_ttl, rule.max_wrapping_ttl);
        merge_param_map(&mut self.params.allowed, &rule.allowed_parameters);
        merge_param_map(&mut self.params.denied, &rule.denied_parameters);
        for name in &rule.required_parameters {
            if !self.params.required.contains(name) {
                self.params.required.push(name.clone());
            }
        }
    }
}

impl Perms {
    /// This entry as `sys/internal/ui/resultant-acl` shows it.
    fn to_json(&self) -> Value {
        let mut out = Map::new();
        let caps = if self.caps.is_deny() || self.caps.is_empty() {
            vec![Capability::Deny.as_str()]
        } else {
            self.caps.names()
        };
        out.insert("capabilities".into(), Value::from(caps));
        if let Some(ttl) = self.min_wrapping_ttl {
            out.insert("min_wrapping_ttl".into(), Value::from(ttl.as_secs()));
        }
        if let Some(ttl) = self.max_wrapping_ttl {
            out.insert("max_wrapping_ttl".into(), Value::from(ttl.as_secs()));
        }
        for (key, params) in [
            ("allowed_parameters", &self.params.allowed),
            ("denied_parameters", &self.params.denied),
        ] {
            if !params.is_empty() {
                let map: Map<String, Value> = params
                    .iter()
                    .map(|(name, values)| {
                        let values = values.iter().map(ParamValue::to_json).collect();
                        (name.clone(), Value::Array(values))
                    })
                    .collect();
                out.insert(key.into(), Value::Object(map));
            }
        }
        if !self.params.required.is_empty() {
            out.insert(
                "required_parameters".into(),
                Value::from(self.params.required.clone()),
            );
        }
        Value::Object(out)
    }
}

/// A JSON object with its keys sorted (stable output).
fn sorted(map: Map<String, Value>) -> Map<String, Value> {
    let mut entries: Vec<(String, Value)> = map.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().collect()
}

/// The smaller of two optional durations, ignoring `None`s.
fn min_some(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `+` patterns indexed by one literal segment each.
#[derive(Debug, Clone, Default)]
struct SegmentIndex {
    /// Sorted from highest to lowest priority.
    rules: Vec<SegmentRule>,
    /// `by_literal[i]`: segment text at position `i` → rule indices, ascending.
    by_literal: Vec<HashMap<String, Vec<u32>>>,
    /// Rules without a usable literal segment, ascending.
    unindexed: Vec<u32>,
}

/// The literal segments of a `+` pattern usable as index keys: all but `+`
/// and a prefix-matched last segment.
fn index_keys(rule: &SegmentRule) -> Vec<(usize, &str)> {
    let last = rule.shape.parts.len() - 1;
    let prefix = rule.shape.prefix;
    rule.shape
        .parts
        .iter()
        .enumerate()
        .filter(|(i, part)| *part != "+" && !(prefix && *i == last))
        .map(|(i, part)| (i, part.as_str()))
        .collect()
}

impl SegmentIndex {
    fn new(rules: Vec<SegmentRule>) -> SegmentIndex {
        let mut counts: HashMap<(usize, &str), usize> = HashMap::new();
        for rule in &rules {
            for key in index_keys(rule) {
                *counts.entry(key).or_default() += 1;
            }
        }
        let mut by_literal: Vec<HashMap<String, Vec<u32>>> = Vec::new();
        let mut unindexed = Vec::new();
        for (idx, rule) in rules.iter().enumerate() {
            let rarest = index_keys(rule)
                .into_iter()
                .min_by_key(|key| (counts.get(key).copied().unwrap_or(0), usize::MAX - key.0));
            match rarest {
                Some((pos, text)) => {
                    if by_literal.len() <= pos {
                        by_literal.resize_with(pos + 1, HashMap::new);
                    }
                    by_literal[pos]
                        .entry(text.to_string())
                        .or_default()
                        .push(idx as u32);
                }
                None => unindexed.push(idx as u32),
            }
        }
        SegmentIndex {
            rules,
            by_literal,
            unindexed,
        }
    }

    /// The highest-priority rule matching `path`.
    fn best(&self, path: &str) -> Option<&SegmentRule> {
        if self.rules.is_empty() {
            return None;
        }
        let segs = segment_count(path);
        let matches = |i: u32| {
            self.rules
                .get(i as usize)
                .is_some_and(|r| r.shape.matches(path, segs))
        };
        let mut best = self.unindexed.iter().copied().find(|i| matches(*i));
        for (pos, seg) in path.split('/').enumerate().take(self.by_literal.len()) {
            if let Some(candidates) = self.by_literal[pos].get(seg) {
                let found = candidates
                    .iter()
                    .copied()
                    .take_while(|i| best.is_none_or(|b| *i < b))
                    .find(|i| matches(*i));
                if found.is_some() {
                    best = found;
                }
            }
        }
        best.and_then(|i| self.rules.get(i as usize))
    }
}

#[derive(Debug, Clone)]
struct SegmentRule {
    /// The pattern without its trailing `*`.
    stem: String,
    shape: SegmentShape,
    perms: Perms,
}

/// A token's effective permissions: its policies compiled together.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    root: bool,
    exact: HashMap<String, Perms>,
    /// Prefix stems and their permissions, indexed by `prefix_tree`.
    prefixes: Vec<(String, Perms)>,
    prefix_tree: RadixTree,
    segments: SegmentIndex,
}

/// What an allowed request is granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzResult {
    /// Whether the token holds the root policy.
    pub root: bool,
    /// Whether the matched rule grants `sudo` (always true for root). The
    /// caller requires it on root-protected paths.
    pub sudo: bool,
    /// The matched rule's `min_wrapping_ttl`.
    pub min_wrapping_ttl: Option<Duration>,
    /// The matched rule's `max_wrapping_ttl`.
    pub max_wrapping_ttl: Option<Duration>,
    /// The policies whose rules for the matched pattern grant the
    /// operation's capability (`root` for the root policy), in the order
    /// the token holds them: Vault's audit `policy_results`.
    pub granting_policies: Vec<Arc<str>>,
}

impl AuthzResult {
    /// Whether a request wrapped with `requested` TTL (or not wrapped, for
    /// `None`) satisfies the wrapping bounds, as Vault checks them: any bound
    /// requires the response to be wrapped within it.
    pub fn wrapping_ttl_allowed(&self, requested: Option<Duration>) -> bool {
        if let (Some(min), Some(max)) = (self.min_wrapping_ttl, self.max_wrapping_ttl) {
            if max < min {
                return false;
            }
        }
        let within_max = self
            .max_wrapping_ttl
            .is_none_or(|max| requested.is_some_and(|t| t <= max));
        let within_min = self
            .min_wrapping_ttl
            .is_none_or(|min| requested.is_some_and(|t| t >= min));
        within_max && within_min
    }
}

/// Why a request was refused. Every variant displays as "permission denied"
/// followed by a short reason; parameter names may appear, values never do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No rule matches the path.
    #[error("permission denied")]
    NoMatchingRule,
    /// The matching rule holds `deny`.
    #[error("permission denied")]
    ExplicitDeny,
    /// The matching rule lacks the capability the operation needs.
    #[error("permission denied: {0} capability required")]
    MissingCapability(Capability),
    /// A `required_parameters` entry is absent from the request.
    #[error("permission denied: missing required parameter {0:?}")]
    MissingRequiredParameter(String),
    /// A parameter (or its value) is in `denied_parameters`.
    #[error("permission denied: parameter {0:?} is denied")]
    DeniedParameter(String),
    /// A parameter (or its value) is not in `allowed_parameters`.
    #[error("permission denied: parameter {0:?} is not allowed")]
    ParameterNotAllowed(String),
}

/// Parameter names quoted in errors are cut to this many characters.
const MAX_NAME_IN_ERROR: usize = 64;

fn short(name: String) -> String {
    if name.chars().count() <= MAX_NAME_IN_ERROR {
        name
    } else {
        name.chars().take(MAX_NAME_IN_ERROR).collect()
    }
}

impl From<ParamViolation> for Denied {
    fn from(v: ParamViolation) -> Self {
        match v {
            ParamViolation::Missing(n) => Denied::MissingRequiredParameter(short(n)),
            ParamViolation::Denied(n) => Denied::DeniedParameter(short(n)),
            ParamViolation::NotAllowed(n) => Denied::ParameterNotAllowed(short(n)),
        }
    }
}

impl Acl {
    /// Compiles policies into an ACL. A root policy (see [`Policy::root`])
    /// makes the ACL allow everything.
    pub fn new(policies: &[Policy]) -> Acl {
        let mut acl = Acl::default();
        let mut prefix_perms: HashMap<&str, Perms> = HashMap::new();
        let mut prefix_order: Vec<&str> = Vec::new();
        let mut segment_perms: HashMap<&str, (&PathRule, Perms)> = HashMap::new();
        for policy in policies {
            acl.root |= policy.is_root();
            let name: Arc<str> = Arc::from(policy.name());
            for rule in policy.rules() {
                let pattern = &rule.pattern;
                match pattern.kind() {
                    Kind::Exact => match acl.exact.get_mut(pattern.as_str()) {
                        Some(p) => p.merge(rule, &name),
                        None => {
                            acl.exact.insert(
                                pattern.as_str().to_string(),
                                Perms::from_rule(rule, &name),
                            );
                        }
                    },
                    Kind::Prefix => match prefix_perms.get_mut(pattern.stem()) {
                        Some(p) => p.merge(rule, &name),
                        None => {
                            prefix_order.push(pattern.stem());
                            prefix_perms.insert(pattern.stem(), Perms::from_rule(rule, &name));
                        }
                    },
                    Kind::Segments(_) => match segment_perms.get_mut(pattern.as_str()) {
                        Some((_, p)) => p.merge(rule, &name),
                        None => {
                            segment_perms
                                .insert(pattern.as_str(), (rule, Perms::from_rule(rule, &name)));
                        }
                    },
                }
            }
        }
        for stem in prefix_order {
            if let Some(perms) = prefix_perms.remove(stem) {
                acl.prefix_tree
                    .insert(stem.as_bytes(), acl.prefixes.len() as u32);
                acl.prefixes.push((stem.to_string(), perms));
            }
        }
        let mut segments: Vec<(&PathRule, Perms)> = segment_perms.into_values().collect();
        segments.sort_by(|a, b| b.0.pattern.rank().cmp_priority(&a.0.pattern.rank()));
        acl.segments = SegmentIndex::new(
            segments
                .into_iter()
                .filter_map(|(rule, perms)| match rule.pattern.kind() {
                    Kind::Segments(shape) => Some(SegmentRule {
                        stem: rule.pattern.stem().to_string(),
                        shape: shape.clone(),
                        perms,
                    }),
                    _ => None,
                })
                .collect(),
        );
        acl
    }

    /// An ACL holding only the root policy.
    pub fn root() -> Acl {
        Acl {
            root: true,
            ..Acl::default()
        }
    }

    /// Whether the ACL holds the root policy.
    pub fn is_root(&self) -> bool {
        self.root
    }

    /// The capabilities granted on `path` (looked up as a list request is,
    /// so `foo/` also finds rules for `foo`). Root holds every granting
    /// capability; a denied or unmatched path yields a set holding `deny` or
    /// nothing.
    pub fn capabilities(&self, path: &str) -> CapabilitySet {
        if self.root {
            return CapabilitySet::all_grants();
        }
        self.lookup(path, true).map(|p| p.caps).unwrap_or_default()
    }

    /// The capability names for `sys/capabilities*`, as Vault answers:
    /// `["root"]` for root, `["deny"]` when denied or nothing is granted,
    /// otherwise the granted names sorted alphabetically.
    pub fn capability_names(&self, path: &str) -> Vec<&'static str> {
        if self.root {
            return vec!["root"];
        }
        let caps = self.capabilities(path);
        if caps.is_empty() || caps.is_deny() {
            return vec![Capability::Deny.as_str()];
        }
        caps.names()
    }

    /// The body of `sys/internal/ui/resultant-acl`, as Vault builds it:
    /// `root`, then `exact_paths` and `glob_paths` (prefix patterns keyed
    /// without their `*`) mapping to capabilities (`["deny"]` when denied or
    /// empty), wrapping TTLs in seconds and parameter constraints. Like
    /// Vault, `+` patterns are not listed.
    pub fn resultant_acl(&self) -> Value {
        let mut out = Map::new();
        out.insert("root".into(), Value::Bool(self.root));
        if self.root {
            return Value::Object(out);
        }
        let exact: Map<String, Value> = self
            .exact
            .iter()
            .map(|(path, perms)| (path.clone(), perms.to_json()))
            .collect();
        let glob: Map<String, Value> = self
            .prefixes
            .iter()
            .map(|(stem, perms)| (stem.clone(), perms.to_json()))
            .collect();
        out.insert("exact_paths".into(), Value::Object(sorted(exact)));
        out.insert("glob_paths".into(), Value::Object(sorted(glob)));
        Value::Object(out)
    }

    /// Authorizes an operation on `path` with the request's `data`,
    /// applying parameter constraints. For KV v2 paths, where Vault applies
    /// none, use [`Acl::authorize_without_parameters`].
    pub fn authorize(
        &self,
        op: Operation,
        path: &str,
        data: Option<&Map<String, Value>>,
    ) -> Result<AuthzResult, Denied> {
        self.check(op, path, data, true)
    }

    /// Authorizes an operation on `path` ignoring parameter constraints.
    pub fn authorize_without_parameters(
        &self,
        op: Operation,
        path: &str,
    ) -> Result<AuthzResult, Denied> {
        self.check(op, path, None, false)
    }

    fn check(
        &self,
        op: Operation,
        path: &str,
        data: Option<&Map<String, Value>>,
        apply_parameters: bool,
    ) -> Result<AuthzResult, Denied> {
        if self.root {
            return Ok(AuthzResult {
                root: true,
                sudo: true,
                min_wrapping_ttl: None,
                max_wrapping_ttl: None,
                granting_policies: vec![Arc::from(super::parse::ROOT_POLICY_NAME)],
            });
        }
        let perms = self
            .lookup(path, op == Operation::List)
            .ok_or(Denied::NoMatchingRule)?;
        if perms.caps.is_deny() {
            return Err(Denied::ExplicitDeny);
        }
        let needed = op.required_capability();
        if !perms.caps.contains(needed) {
            return Err(Denied::MissingCapability(needed));
        }
        if apply_parameters && op.checks_parameters() && !perms.params.is_empty() {
            perms.params.check(data)?;
        }
        Ok(AuthzResult {
            root: false,
            sudo: perms.caps.contains(Capability::Sudo),
            min_wrapping_ttl: perms.min_wrapping_ttl,
            max_wrapping_ttl: perms.max_wrapping_ttl,
            granting_policies: perms
                .granting
                .iter()
                .filter(|(_, caps)| caps.contains(needed))
                .map(|(name, _)| name.clone())
                .collect(),
        })
    }

    /// Finds the permissions of the highest-priority pattern matching
    /// `path`, in Vault's order: the exact rule for `path`; for a list, the
    /// exact rule for the path without its trailing `/`; the best wildcard
    /// rule for `path`; and only when nothing matched, for a list, the best
    /// wildcard rule for the trimmed path.
    fn lookup(&self, path: &str, list: bool) -> Option<&Perms> {
        let path = path.trim_start_matches('/');
        if let Some(p) = self.exact.get(path) {
            return Some(p);
        }
        let trimmed = if list { path.strip_suffix('/') } else { None };
        if let Some(p) = trimmed.and_then(|t| self.exact.get(t)) {
            return Some(p);
        }
        // The full path's rules (a deny under it included) win; the trimmed
        // path is only a fallback when the full one matches nothing.
        self.non_exact(path)
            .or_else(|| trimmed.and_then(|t| self.non_exact(t)))
    }

    /// Whether the ACL grants anything at all at or below `mount` (a mount
    /// path ending in `/`): Vault's rule for `sys/internal/ui/mounts`. True
    /// when the mount path itself is granted a capability, or when some
    /// exact or prefix rule below it, or some `+` rule that can match a path
    /// below it, holds a capability other than `deny`. A deny rule on the
    /// mount does not hide a grant further down (as in Vault).
    pub fn reaches_under(&self, mount: &str) -> bool {
        if self.root {
            return true;
        }
        let mount = mount.trim_start_matches('/');
        let grants = |p: &Perms| !p.caps.is_empty() && !p.caps.is_deny();
        let direct = self.capabilities(mount);
        if !direct.is_empty() && !direct.is_deny() {
            return true;
        }
        self.exact
            .iter()
            .any(|(path, p)| path.starts_with(mount) && grants(p))
            || self
                .prefixes
                .iter()
                .any(|(stem, p)| stem.starts_with(mount) && grants(p))
            || self
                .segments
                .rules
                .iter()
                .any(|r| grants(&r.perms) && r.shape.may_match_below(mount))
    }

    /// The best wildcard match: longest prefix vs. first matching `+` rule.
    fn non_exact(&self, path: &str) -> Option<&Perms> {
        let prefix = self
            .prefix_tree
            .longest_prefix(path.as_bytes())
            .and_then(|i| self.prefixes.get(i as usize));
        match (prefix, self.segments.best(path)) {
            (Some((stem, p)), Some(s)) => {
                let prefix_rank = Rank::prefix(stem);
                if s.shape.rank(&s.stem).cmp_priority(&prefix_rank).is_gt() {
                    Some(&s.perms)
                } else {
                    Some(p)
                }
            }
            (Some((_, p)), None) => Some(p),
            (None, Some(s)) => Some(&s.perms),
            (None, None) => None,
        }
    }
}

//! Policies and their parsing from Vault HCL or JSON.
//!
//! Both syntaxes are first turned into a small tree of [`Node`]s carrying line
//! numbers; [`build_rule`] then validates one `path` block, so both syntaxes
//! accept and refuse exactly the same things.

use std::fmt;
use std::time::Duration;

use super::capability::{Capability, CapabilitySet};
use super::duration;
use super::params::{ParamMap, ParamValue};
use super::pattern::PathPattern;
use super::{hcl_syntax, json_syntax};

/// Largest policy text accepted (Vault has no limit; 1 MiB is plenty).
const MAX_POLICY_BYTES: usize = 1 << 20;
/// Deepest bracket nesting accepted, so parsers never recurse unboundedly.
const MAX_NESTING: usize = 32;

/// A parse error, naming the line when it is known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    line: Option<usize>,
    message: String,
}

impl PolicyError {
    pub(crate) fn new(line: Option<usize>, message: impl Into<String>) -> Self {
        PolicyError {
            line,
            message: message.into(),
        }
    }

    /// The 1-based line of the problem, when known.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The problem, without the line prefix.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// One `path "..." { ... }` block of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRule {
    /// The path pattern.
    pub pattern: PathPattern,
    /// Granted capabilities (legacy `policy = ...` already expanded); when it
    /// holds `deny`, it holds nothing else.
    pub capabilities: CapabilitySet,
    /// `allowed_parameters`, keys lowercased.
    pub allowed_parameters: ParamMap,
    /// `denied_parameters`, keys lowercased.
    pub denied_parameters: ParamMap,
    /// `required_parameters`, as written.
    pub required_parameters: Vec<String>,
    /// `min_wrapping_ttl`.
    pub min_wrapping_ttl: Option<Duration>,
    /// `max_wrapping_ttl`.
    pub max_wrapping_ttl: Option<Duration>,
}

impl PathRule {
    /// A rule granting `capabilities` on `pattern`, with no other constraint.
    pub fn new(pattern: PathPattern, capabilities: CapabilitySet) -> Self {
        PathRule {
            pattern,
            capabilities,
            allowed_parameters: ParamMap::new(),
            denied_parameters: ParamMap::new(),
            required_parameters: Vec::new(),
            min_wrapping_ttl: None,
            max_wrapping_ttl: None,
        }
    }
}

/// A named ACL policy: an ordered list of path rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    name: String,
    rules: Vec<PathRule>,
    raw: String,
    root: bool,
}

/// The name reserved for the built-in root policy.
pub const ROOT_POLICY_NAME: &str = "root";

impl Policy {
    /// Parses a policy written in Vault's HCL, or in JSON (when the text
    /// starts with `{`).
    ///
    /// The name `root` is reserved (see [`Policy::root`]) and refused.
    pub fn parse(name: &str, text: &str) -> Result<Policy, PolicyError> {
        if name == ROOT_POLICY_NAME {
            return Err(PolicyError::new(
                None,
                "the \"root\" policy is built in and cannot be written",
            ));
        }
        if text.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::new(None, "policy is larger than 1 MiB"));
        }
        let body = text.strip_prefix('\u{feff}').unwrap_or(text);
        check_nesting(body)?;
        let blocks = if body.trim_start().starts_with('{') {
            json_syntax::parse(body)?
        } else {
            hcl_syntax::parse(body)?
        };
        let rules = blocks
            .into_iter()
            .map(|b| build_rule(&b.path, b.line, b.entries))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Policy {
            name: name.to_string(),
            rules,
            raw: text.to_string(),
            root: false,
        })
    }

    /// A policy built from rules directly (its raw text is empty).
    pub fn from_rules(name: &str, rules: Vec<PathRule>) -> Policy {
        Policy {
            name: name.to_string(),
            rules,
            raw: String::new(),
            root: false,
        }
    }

    /// The built-in `root` policy: an ACL holding it allows everything.
    pub fn root() -> Policy {
        Policy {
            name: ROOT_POLICY_NAME.to_string(),
            rules: Vec::new(),
            raw: String::new(),
            root: true,
        }
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The rules, in the order written.
    pub fn rules(&self) -> &[PathRule] {
        &self.rules
    }

    /// The text the policy was parsed from (what `sys/policy` reads back).
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// Whether this is the built-in root policy.
    pub fn is_root(&self) -> bool {
        self.root
    }
}

/// Refuses inputs nested deeper than [`MAX_NESTING`] brackets, so the
/// recursive parsers never overflow the stack. Comments are skipped; brackets
/// inside strings are counted (they may hold `${...}` expressions), which can
/// only over-count.
fn check_nesting(text: &str) -> Result<(), PolicyError> {
    #[derive(PartialEq)]
    enum State {
        Code,
        Str,
        LineComment,
        BlockComment,
    }
    let mut state = State::Code;
    let mut depth = 0usize;
    let mut templates = 0usize;
    let mut line = 1;
    let mut bytes = text.bytes().peekable();
    while let Some(b) = bytes.next() {
        if b == b'\n' {
            line += 1;
            if state != State::BlockComment {
                state = State::Code;
            }
            continue;
        }
        match state {
            State::LineComment => continue,
            State::BlockComment => {
                if b == b'*' && bytes.peek() == Some(&b'/') {
                    bytes.next();
                    state = State::Code;
                }
                continue;
            }
            State::Str if b == b'\\' => {
                bytes.next();
                continue;
            }
            State::Str if b == b'"' => {
                state = State::Code;
                continue;
            }
            State::Code if b == b'"' => {
                state = State::Str;
                continue;
            }
            State::Code if b == b'#' => {
                state = State::LineComment;
                continue;
            }
            State::Code if b == b'/' && bytes.peek() == Some(&b'/') => {
                state = State::LineComment;
                continue;
            }
            State::Code if b == b'/' && bytes.peek() == Some(&b'*') => {
                bytes.next();
                state = State::BlockComment;
                continue;
            }
            // Inside a string only template openers (`${`, `%{`) nest; a
            // plain brace is a literal character.
            State::Str if b == b'$' || b == b'%' => {
                if bytes.peek() == Some(&b'{') {
                    bytes.next();
                    templates += 1;
                    depth += 1;
                    if depth > MAX_NESTING {
                        return Err(PolicyError::new(Some(line), "nesting is too deep"));
                    }
                }
                continue;
            }
            State::Str if b == b'}' && templates > 0 => {
                templates -= 1;
                depth = depth.saturating_sub(1);
                continue;
            }
            State::Str => continue,
            State::Code => {}
        }
        match b {
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(PolicyError::new(Some(line), "nesting is too deep"));
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// A syntax-neutral value with the line it starts on.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) line: Option<usize>,
    pub(crate) value: NodeValue,
}

/// The kinds of value a policy may hold.
#[derive(Debug, Clone)]
pub(crate) enum NodeValue {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    List(Vec<Node>),
    /// Key (with its line) → value, in written order.
    Map(Vec<(String, Option<usize>, Node)>),
}

impl NodeValue {
    fn type_name(&self) -> &'static str {
        match self {
            NodeValue::Null => "null",
            NodeValue::Bool(_) => "a boolean",
            NodeValue::Number(_) => "a number",
            NodeValue::String(_) => "a string",
            NodeValue::List(_) => "a list",
            NodeValue::Map(_) => "an object",
        }
    }
}

/// One `path` block as produced by a syntax front-end.
pub(crate) struct RawBlock {
    pub(crate) path: String,
    pub(crate) line: Option<usize>,
    /// Key, its line, value.
    pub(crate) entries: Vec<(String, Option<usize>, Node)>,
}

/// Shortens user text quoted in error messages.
pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 64;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut:?}...")
    }
}

fn expect_list<'a>(key: &str, node: &'a Node) -> Result<&'a [Node], PolicyError> {
    match &node.value {
        NodeValue::List(items) => Ok(items),
        other => Err(PolicyError::new(
            node.line,
            format!("{key} must be a list, not {}", other.type_name()),
        )),
    }
}

fn expect_string<'a>(what: &str, node: &'a Node) -> Result<&'a str, PolicyError> {
    match &node.value {
        NodeValue::String(s) => Ok(s),
        other => Err(PolicyError::new(
            node.line,
            format!("{what} must be a string, not {}", other.type_name()),
        )),
    }
}

fn parse_params(key: &str, node: &Node) -> Result<ParamMap, PolicyError> {
    let NodeValue::Map(entries) = &node.value else {
        return Err(PolicyError::new(
            node.line,
            format!(
                "{key} must be an object of lists, not {}",
                node.value.type_name()
            ),
        ));
    };
    let mut map = ParamMap::new();
    for (name, line, values) in entries {
        if name.contains('*') && name != "*" {
            return Err(PolicyError::new(
                *line,
                format!(
                    "{key}: parameter {} may only be \"*\" when it holds a wildcard",
                    quote(name)
                ),
            ));
        }
        let items = expect_list(&format!("{key} {}", quote(name)), values)?;
        let mut list = Vec::with_capacity(items.len());
        for item in items {
            list.push(match &item.value {
                NodeValue::String(s) => ParamValue::String(s.clone()),
                NodeValue::Number(n) => ParamValue::Number(n.clone()),
                NodeValue::Bool(b) => ParamValue::Bool(*b),
                other => {
                    return Err(PolicyError::new(
                        item.line,
                        format!(
                            "{key} values must be strings, numbers or booleans, not {}",
                            other.type_name()
                        ),
                    ))
                }
            });
        }
        let lower = name.to_lowercase();
        if map.insert(lower, list).is_some() {
            return Err(PolicyError::new(
                *line,
                format!("{key}: duplicate parameter {}", quote(name)),
            ));
        }
    }
    Ok(map)
}

fn parse_ttl(key: &str, node: &Node) -> Result<Duration, PolicyError> {
    let parsed = match &node.value {
        NodeValue::Number(n) => n.as_u64().map(Duration::from_secs),
        NodeValue::String(s) => duration::parse(s),
        _ => None,
    };
    parsed.ok_or_else(|| {
        PolicyError::new(
            node.line,
            format!("{key} must be a number of seconds or a duration like \"90s\" or \"1h\""),
        )
    })
}

/// Validates one `path` block into a rule.
pub(crate) fn build_rule(
    path: &str,
    line: Option<usize>,
    entries: Vec<(String, Option<usize>, Node)>,
) -> Result<PathRule, PolicyError> {
    let pattern = PathPattern::parse(path)
        .map_err(|msg| PolicyError::new(line, format!("path {}: {msg}", quote(path))))?;
    let mut rule = PathRule::new(pattern, CapabilitySet::empty());
    let mut seen: Vec<&str> = Vec::new();
    let mut caps = CapabilitySet::empty();
    for (key, key_line, node) in &entries {
        if seen.contains(&key.as_str()) {
            return Err(PolicyError::new(
                *key_line,
                format!("duplicate key {} in path {}", quote(key), quote(path)),
            ));
        }
        seen.push(key);
        match key.as_str() {
            "capabilities" => {
                for item in expect_list("capabilities", node)? {
                    let name = expect_string("a capability", item)?;
                    let cap: Capability = name.parse().map_err(|_| {
                        PolicyError::new(item.line, format!("unknown capability {}", quote(name)))
                    })?;
                    caps.insert(cap);
                }
            }
            "policy" => {
                use Capability::*;
                let legacy: &[Capability] = match expect_string("policy", node)? {
                    "deny" => &[Deny],
                    "read" => &[Read, List],
                    "write" => &[Create, Read, Update, Delete, List],
                    "sudo" => &[Create, Read, Update, Delete, List, Sudo],
                    other => {
                        return Err(PolicyError::new(
                            node.line,
                            format!(
                                "invalid policy {} (expected read, write, deny or sudo)",
                                quote(other)
                            ),
                        ))
                    }
                };
                caps = caps.union(legacy.iter().copied().collect());
            }
            "allowed_parameters" => rule.allowed_parameters = parse_params(key, node)?,
            "denied_parameters" => rule.denied_parameters = parse_params(key, node)?,
            "required_parameters" => {
                for item in expect_list("required_parameters", node)? {
                    let name = expect_string("a required parameter", item)?;
                    if name.contains('*') {
                        return Err(PolicyError::new(
                            item.line,
                            format!(
                                "required_parameters: wildcard is not permitted in {}",
                                quote(name)
                            ),
                        ));
                    }
                    if !rule.required_parameters.iter().any(|r| r == name) {
                        rule.required_parameters.push(name.to_string());
                    }
                }
            }
            "min_wrapping_ttl" => rule.min_wrapping_ttl = Some(parse_ttl(key, node)?),
            "max_wrapping_ttl" => rule.max_wrapping_ttl = Some(parse_ttl(key, node)?),
            "comment" => {
                expect_string("comment", node)?;
            }
            "mfa_methods" | "control_group" => {
                return Err(PolicyError::new(
                    *key_line,
                    format!("{key} is not supported by Coffer"),
                ))
            }
            other => {
                return Err(PolicyError::new(
                    *key_line,
                    format!("unknown key {} in path {}", quote(other), quote(path)),
                ))
            }
        }
    }
    if let (Some(min), Some(max)) = (rule.min_wrapping_ttl, rule.max_wrapping_ttl) {
        if max < min {
            return Err(PolicyError::new(
                line,
                format!(
                    "path {}: max_wrapping_ttl cannot be less than min_wrapping_ttl",
                    quote(path)
                ),
            ));
        }
    }
    if caps.is_deny() {
        // As in Vault: deny stands alone and drops every other setting.
        return Ok(PathRule::new(rule.pattern, Capability::Deny.into()));
    }
    rule.capabilities = caps;
    Ok(rule)
}

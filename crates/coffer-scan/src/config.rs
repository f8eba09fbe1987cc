//! Rule and allowlist definitions.
//!
//! Coffer's rule file is gitleaks' configuration format (`[[rules]]` with
//! `id`, `description`, `regex`, `secretGroup`, `entropy`, `keywords`,
//! `path`, `allowlists`; a global `[allowlist]` or `[[allowlists]]`;
//! `[extend]` with `useDefault`, `path`, `disabledRules`) plus a few optional
//! fields of its own (`context`/`secret` to build a vendor-assignment regex,
//! `secretType`, `vendor`, `generic`, `window`, `example`, `negative`).
//! A gitleaks configuration therefore loads as is.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The longest rule id accepted.
pub const MAX_RULE_ID_LEN: usize = 128;

/// The built-in rules, embedded at build time.
pub const BUILTIN_RULES: &str = include_str!("../rules/default.toml");

/// Errors loading or compiling a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading config {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The TOML did not parse.
    #[error("parsing config {origin}: {message}")]
    Parse {
        /// Where the TOML came from.
        origin: String,
        /// The parser's message.
        message: String,
    },
    /// A rule or allowlist is invalid (bad regex, missing field, ...).
    #[error("rule {rule}: {message}")]
    Rule {
        /// The rule id (or `allowlist`).
        rule: String,
        /// What is wrong.
        message: String,
    },
    /// `[extend]` chains nest too deeply (or loop).
    #[error("config extends nest more than 4 deep")]
    ExtendDepth,
}

/// One allowlist as written in TOML.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AllowlistSpec {
    /// Free text.
    pub description: String,
    /// `OR` (default: any criterion allows) or `AND` (all given criteria).
    pub condition: Option<String>,
    /// Commit ids to ignore.
    pub commits: Vec<String>,
    /// Regexes over the file path.
    pub paths: Vec<String>,
    /// Regexes over `regexTarget`.
    pub regexes: Vec<String>,
    /// `secret` (default), `match` or `line`.
    pub regex_target: Option<String>,
    /// Substrings which, found in the secret, allow it.
    pub stopwords: Vec<String>,
    /// Global allowlists only: the rules it applies to (all when empty).
    pub target_rules: Vec<String>,
}

/// One rule as written in TOML.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RuleSpec {
    /// Unique id.
    pub id: String,
    /// What it finds.
    pub description: String,
    /// The regex; the secret is `secretGroup` (or the first group, or the
    /// whole match).
    pub regex: Option<String>,
    /// Capture group holding the secret.
    pub secret_group: Option<usize>,
    /// Minimum Shannon entropy of the secret.
    pub entropy: Option<f64>,
    /// Literals (case-insensitive) one of which must occur for the regex to
    /// run.
    pub keywords: Vec<String>,
    /// Regex over the path: the rule applies only to matching files (a rule
    /// with a path and no regex reports the file itself).
    pub path: Option<String>,
    /// Free-form tags (SARIF).
    pub tags: Vec<String>,
    /// Older gitleaks single allowlist.
    pub allowlist: Option<AllowlistSpec>,
    /// Allowlists of this rule.
    pub allowlists: Vec<AllowlistSpec>,
    /// Coffer: identifiers (vendor names) for a generated assignment regex
    /// `<context>... = <secret>`; also used as keywords.
    pub context: Vec<String>,
    /// Coffer: the secret's own pattern, used with `context`.
    pub secret: Option<String>,
    /// Coffer: lifecycle type (api_key, token, password, ssh_key,
    /// certificate, db_credential, other).
    pub secret_type: Option<String>,
    /// Coffer: vendor name.
    pub vendor: Option<String>,
    /// Coffer: a generic detector; loses to a specific rule on overlap and
    /// gets the placeholder filter.
    pub generic: bool,
    /// Coffer: bytes after a keyword hit the regex may reach (default: to
    /// the end of the line). Rules loaded from a user's configuration
    /// without it search the whole file when a keyword occurs, as gitleaks
    /// does.
    pub window: Option<usize>,
    /// Coffer: a test example template (see [`crate::template`]).
    pub example: Option<String>,
    /// Coffer: a near-miss template that must not be found.
    pub negative: Option<String>,
    /// Set by the loader: the rule came from Coffer's built-in set.
    #[serde(skip)]
    pub builtin: bool,
}

/// `[extend]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ExtendSpec {
    /// Start from the built-in rules.
    pub use_default: bool,
    /// Start from another configuration file.
    pub path: Option<String>,
    /// Rule ids to drop from the base.
    pub disabled_rules: Vec<String>,
}

/// A configuration file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConfigFile {
    /// Free text.
    pub title: Option<String>,
    /// What this file extends.
    pub extend: Option<ExtendSpec>,
    /// Rules.
    pub rules: Vec<RuleSpec>,
    /// Older gitleaks single global allowlist.
    pub allowlist: Option<AllowlistSpec>,
    /// Global allowlists.
    pub allowlists: Vec<AllowlistSpec>,
}

/// A resolved configuration: rules and global allowlists, extends applied.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Rules in priority order.
    pub rules: Vec<RuleSpec>,
    /// Global allowlists.
    pub allowlists: Vec<AllowlistSpec>,
}

impl Config {
    /// The built-in rules and default allowlists.
    pub fn builtin() -> Result<Config, ConfigError> {
        let mut cfg = Config::from_toml_str(BUILTIN_RULES, "built-in rules", None)?;
        for r in &mut cfg.rules {
            r.builtin = true;
            r.regex = r.regex.as_deref().map(expand_macros);
        }
        Ok(cfg)
    }

    /// Loads a configuration file (Coffer or gitleaks format).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_depth(path, 0)
    }

    fn load_depth(path: &Path, depth: usize) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let file = parse_file(&text, &path.display().to_string())?;
        let dir = path.parent().map(Path::to_path_buf);
        Self::resolve(file, dir, depth)
    }

    /// Parses configuration text. Relative `[extend] path`s resolve against
    /// `base_dir`.
    pub fn from_toml_str(
        text: &str,
        origin: &str,
        base_dir: Option<PathBuf>,
    ) -> Result<Config, ConfigError> {
        let file = parse_file(text, origin)?;
        Self::resolve(file, base_dir, 0)
    }

    fn resolve(
        file: ConfigFile,
        base_dir: Option<PathBuf>,
        depth: usize,
    ) -> Result<Config, ConfigError> {
        if depth > 4 {
            return Err(ConfigError::ExtendDepth);
        }
        let mut base = Config::default();
        if let Some(ext) = &file.extend {
            if ext.use_default {
                base = Config::builtin()?;
            } else if let Some(p) = &ext.path {
                let p = match &base_dir {
                    Some(d) => d.join(p),
                    None => PathBuf::from(p),
                };
                base = Config::load_depth(&p, depth + 1)?;
            }
            base.rules.retain(|r| !ext.disabled_rules.contains(&r.id));
        }
        // New rules keep their order and go before the base's generic
        // detectors, so that a specific custom rule wins an overlap.
        let insert_at = base
            .rules
            .iter()
            .position(|r| r.generic)
            .unwrap_or(base.rules.len());
        let mut added = Vec::new();
        for mut rule in file.rules {
            check_rule_id(&rule.id)?;
            if let Some(a) = rule.allowlist.take() {
                rule.allowlists.insert(0, a);
            }
            match base.rules.iter_mut().find(|r| r.id == rule.id) {
                Some(existing) => merge_rule(existing, rule),
                None => added.push(rule),
            }
        }
        base.rules.splice(insert_at..insert_at, added);
        if let Some(a) = file.allowlist {
            base.allowlists.push(a);
        }
        base.allowlists.extend(file.allowlists);
        Ok(base)
    }
}

/// Checks a rule id: 1 to [`MAX_RULE_ID_LEN`] characters among
/// `[A-Za-z0-9_-]`. Coffer's own ids are `[a-z0-9-]+`; upper case and `_`
/// are accepted because gitleaks configurations use them, and are mapped to
/// `[a-z0-9-]` where an id names something (`--import` destinations, see
/// [`crate::remediate::rule_slug`]). Anything else (`/`, `?`, `#`, `.`,
/// spaces, control characters) is refused with an error naming the rule:
/// a scanned tree's configuration must not be able to steer where its
/// findings are stored.
pub fn check_rule_id(id: &str) -> Result<(), ConfigError> {
    let refuse = |message: String| ConfigError::Rule {
        rule: format!("{id:?}"),
        message,
    };
    if id.is_empty() {
        return Err(refuse("a rule needs an id".into()));
    }
    if id.chars().count() > MAX_RULE_ID_LEN {
        return Err(refuse(format!(
            "id longer than {MAX_RULE_ID_LEN} characters"
        )));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(refuse(format!(
            "character {c:?} is not allowed in a rule id (use letters, digits, `-` and `_`)"
        )));
    }
    Ok(())
}

fn parse_file(text: &str, origin: &str) -> Result<ConfigFile, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        origin: origin.to_string(),
        message: e.to_string(),
    })
}

/// gitleaks' extend semantics: fields the custom rule sets override, its
/// allowlists and keywords are added.
fn merge_rule(existing: &mut RuleSpec, new: RuleSpec) {
    if !new.description.is_empty() {
        existing.description = new.description;
    }
    if new.regex.is_some() {
        existing.regex = new.regex;
        existing.context.clear();
        existing.secret = None;
    }
    if new.secret_group.is_some() {
        existing.secret_group = new.secret_group;
    }
    if new.entropy.is_some() {
        existing.entropy = new.entropy;
    }
    if new.path.is_some() {
        existing.path = new.path;
    }
    for k in new.keywords {
        if !existing.keywords.contains(&k) {
            existing.keywords.push(k);
        }
    }
    existing.tags.extend(new.tags);
    existing.allowlists.extend(new.allowlists);
    if new.secret_type.is_some() {
        existing.secret_type = new.secret_type;
    }
    if new.vendor.is_some() {
        existing.vendor = new.vendor;
    }
}

/// The grammar between an identifier and its value, shared by every
/// assignment-shaped rule so that one pattern covers every syntax the
/// per-syntax matrix (`tests/syntax_matrix.rs`) tests:
/// - an optional type: `: &'static str`, `: String` (Rust, TS, Kotlin) or
///   `string` after the name (Go `var k string = "…"`), then `=` only;
/// - the key's closing quote, an escaped quote (JSON inside JSON) or `]`;
/// - an operator: `=`, `:=`, `::=`, `:::=`, `?=`, `??=`, `.=` (PHP), `+=`,
///   `||=`, `=>`, `:`, `<-`, a `name`/`value` pair (`<add key="k"
///   value="…">`, Kubernetes `- name: K` then `value: …`,
///   `{"name": "k", "value": "…"}`), or a Terraform variable's default
///   (`variable "k" {` then `default = "…"`);
/// - an optional YAML block indicator (`|`, `>-`).
pub const ASSIGN: &str = concat!(
    r#"(?:[\s'"`\\\]]{0,4}"#,
    r#"(?:=|:=|::=|:::=|\?=|\?\?=|\.=|\+=|\|\|=|=>|:|<-|[\s'"`\\,]{1,12}value[\\'"`]{0,2}\s*[:=]|\{\s{0,12}default\s*=)|"#,
    // A typed declaration (`KEY: &str = "…"`, Go's `var k string = "…"`)
    // is followed by `=` only: `key: some::path::Type,` (a field's type)
    // is no assignment.
    r#"(?:\s*:\s*&?(?:'static\s+)?[\w:<>\[\]]{1,30}|[ \t]+(?:string|String|str|\[\]byte|any))"#,
    r#"[\s'"`\\\]]{0,4}=)"#,
    r#"(?:[ \t]*[|>][-+]?)?"#,
);

/// [`ASSIGN`] with the typed declaration tried first, for the generic
/// detectors: in `token: SecretString = "…"` the type name must not be
/// taken for the value. The type is followed by a space or quote before
/// its `=`, so that in `password: ab1=cd2` the whole `ab1=cd2` is the
/// value.
pub const GENERIC_ASSIGN: &str = concat!(
    r#"(?:(?:\s*:\s*&?(?:'static\s+)?[\w:<>\[\]]{1,30}|[ \t]+(?:string|String|str|\[\]byte|any))"#,
    r#"[\s'"`\\\]]{1,4}=|"#,
    // Aligned assignments (`sessionKey     = "…"`) put up to 16 spaces or
    // tabs before the operator.
    r#"[ \t]{0,16}[\s'"`\\\]]{0,4}"#,
    r#"(?:=|:=|::=|:::=|\?=|\?\?=|\.=|\+=|\|\|=|=>|:|<-|[\s'"`\\,]{1,12}value[\\'"`]{0,2}\s*[:=]|\{\s{0,12}default\s*=))"#,
    r#"(?:[ \t]*[|>][-+]?)?"#,
);

/// [`ASSIGN`] plus the separators a specific secret pattern tolerates: a
/// function argument (`setProperty("K", "…")`), `>` of an XML element,
/// `==`, and the value's opening quotes, whitespace or newline.
pub fn vendor_assign() -> String {
    format!(
        r#"(?:{ASSIGN}|(?:\s*:\s*&?(?:'static\s+)?[\w:<>\[\]]{{1,30}})??[\s'"`\\\]]{{0,4}}(?:,|>|==))[\s'"`\\=]{{0,12}}"#
    )
}

/// Where a secret ends: a quote, whitespace, separator, an XML tag, an
/// escaped newline/tab or the end of the line.
pub const VALUE_END: &str = r#"(?:[`'"\s;,)<&\\]|$)"#;

/// What may stand between a vendor's name and its key when the name is
/// not the whole identifier: a short label on the same line (`SECRET`,
/// `_api_key`, ` private access key`, `.token xyz PRIVATE_TOKEN`, quotes
/// escaped or not), then
/// an operator ([`ASSIGN`]'s, a YAML block, a Kubernetes `value:` on the
/// next line, an XML `>`, a Terraform variable's `{ default =`), one to
/// three spaces, or one of `-_.`, and the
/// value's opening quote.
pub const NEAR: &str = concat!(
    r#"(?:[\w.-]|[ \t"'\\]){0,40}?"#,
    r#"(?:\s{0,3}(?:[:?]{0,2}=>?|[:,>]|:\s{0,3}\w{1,12}\s{0,3}=|\r?\n\s{0,12}value\s{0,3}:|>\s{0,12}|:\s{0,2}[|>][-+]?\s{0,12}|\{\s{0,12}default\s*=)\s{0,3}"#,
    r#"|\s{1,3}|[-_.])\\?["'`]?"#,
);

/// Expands `{{assign}}` ([`vendor_assign`]), `{{op}}` ([`GENERIC_ASSIGN`]),
/// `{{near}}` ([`NEAR`]) and `{{end}}` ([`VALUE_END`]) in a built-in rule's
/// regex (user rules are taken as written).
pub fn expand_macros(regex: &str) -> String {
    if !regex.contains("{{") {
        return regex.to_string();
    }
    regex
        .replace("{{assign}}", &vendor_assign())
        .replace("{{end}}", VALUE_END)
        .replace("{{op}}", GENERIC_ASSIGN)
        .replace("{{near}}", NEAR)
}

/// Builds the regex of a `context` rule: an identifier containing one of the
/// context words, the assignment grammar ([`vendor_assign`]), then the
/// secret, ended by [`VALUE_END`].
pub fn context_regex(context: &[String], secret: &str) -> String {
    let ids: Vec<String> = context.iter().map(|c| regex::escape(c)).collect();
    format!(
        r#"(?m)(?i)(?:{ids})[\w.-]{{0,25}}{assign}({secret}){end}"#,
        ids = ids.join("|"),
        assign = vendor_assign(),
        end = VALUE_END,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_ids_are_checked_at_load() {
        // Every built-in id is in Coffer's own alphabet.
        let builtin = Config::builtin().unwrap();
        assert!(builtin.rules.len() > 100);
        for r in &builtin.rules {
            assert!(
                !r.id.is_empty()
                    && r.id
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{}",
                r.id
            );
        }
        let rule = |id: &str| {
            let quoted = toml::Value::String(id.to_string()).to_string();
            format!("[[rules]]\nid = {quoted}\nregex = 'x'\n")
        };
        for id in ["Custom_Rule-2", "aws", "A"] {
            assert!(Config::from_toml_str(&rule(id), "t", None).is_ok(), "{id}");
        }
        for id in [
            "prod/payments/stripe?",
            "a#b",
            "a.b",
            "a b",
            "../x",
            "",
            "a\u{1b}[2J",
            "é",
        ] {
            let e = Config::from_toml_str(&rule(id), "t", None).unwrap_err();
            let shown = e.to_string();
            assert!(shown.contains(&format!("rule {id:?}:")), "{shown}");
            assert!(!shown.contains('\u{1b}'), "control character echoed");
        }
        let long = "a".repeat(MAX_RULE_ID_LEN + 1);
        assert!(Config::from_toml_str(&rule(&long), "t", None).is_err());
    }
}

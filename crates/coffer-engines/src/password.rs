//! Password generation: Vault's password policies (`length` and `charset`
//! rules) and the one generator every part of Coffer uses: the
//! `sys/policies/password` endpoints, the lifecycle `generate` and
//! `postgres` rotators and the database engine's credentials.
//!
//! A candidate draws every character uniformly from the union of the rules'
//! charsets, each index by rejection sampling over 32-bit values from the
//! CSPRNG (no modulo bias); a candidate that misses a rule's `min-chars` is
//! thrown away whole, so the result is uniform over the passwords the policy
//! admits. Attempts are bounded: a policy too unlikely to be met fails
//! instead of spinning, and `sys/policies/password` refuses to store one.

use coffer_crypto::random::uniform_index;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::barrier::View;
use crate::{Error, Result};

/// Shortest password a stored policy may ask for (Vault's bound).
pub const MIN_LENGTH: usize = 4;
/// Longest password a stored policy may ask for (Vault's bound).
pub const MAX_LENGTH: usize = 100;
/// Candidates drawn before generation gives up.
const GENERATE_ATTEMPTS: usize = 10_000;
/// Candidates a new stored policy must succeed within, so that generation
/// (with ten times as many) fails with negligible probability.
const VALIDATE_ATTEMPTS: usize = 1_000;
/// Most `rule` blocks one policy may have: each costs a pass over every
/// candidate, and real policies have a handful.
pub const MAX_RULES: usize = 32;

/// One `rule "charset"`: at least `min_chars` characters of `charset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharsetRule {
    /// The characters of the rule, sorted and de-duplicated (membership is
    /// a binary search, so a huge charset costs O(n log n), not O(n²)).
    pub charset: Vec<char>,
    /// How many of them a password must hold at least.
    pub min_chars: usize,
}

impl CharsetRule {
    /// A rule over `charset` (duplicates removed) needing `min_chars` of it.
    pub fn new(charset: &str, min_chars: usize) -> Self {
        CharsetRule {
            charset: dedup(charset.chars()),
            min_chars,
        }
    }
}

/// A password policy: a length and the charset rules a password must meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    length: usize,
    rules: Vec<CharsetRule>,
    /// The union of every rule's charset: what candidates are drawn from.
    alphabet: Vec<char>,
}

/// Lower-case ASCII letters.
pub const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
/// Upper-case ASCII letters.
pub const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// ASCII digits.
pub const DIGITS: &str = "0123456789";

fn dedup(chars: impl Iterator<Item = char>) -> Vec<char> {
    let mut out: Vec<char> = chars.collect();
    out.sort_unstable();
    out.dedup();
    out
}

impl PasswordPolicy {
    /// A policy of `length` characters meeting `rules`. Refused: no charset
    /// at all, or rules needing more characters than `length`.
    pub fn new(length: usize, rules: Vec<CharsetRule>) -> Result<Self> {
        let alphabet = dedup(rules.iter().flat_map(|r| r.charset.iter().copied()));
        if alphabet.is_empty() {
            return Err(Error::bad("invalid password policy: no charset specified"));
        }
        let needed: usize = rules.iter().map(|r| r.min_chars).sum();
        if needed > length {
            return Err(Error::bad(format!(
                "invalid password policy: specified rules require at least {needed} characters but {length} is specified"
            )));
        }
        if length == 0 {
            return Err(Error::bad("invalid password policy: length must be > 0"));
        }
        Ok(PasswordPolicy {
            length,
            rules,
            alphabet,
        })
    }

    /// Vault's default password policy (the database engine's when a
    /// connection names none): 20 characters of letters, digits and `-`,
    /// at least one lower-case and upper-case letter, digit and `-`.
    pub fn vault_default() -> Self {
        let rules = vec![
            CharsetRule::new(LOWER, 1),
            CharsetRule::new(UPPER, 1),
            CharsetRule::new(DIGITS, 1),
            CharsetRule::new("-", 1),
        ];
        // Cannot fail: four required characters out of twenty.
        PasswordPolicy::new(20, rules).unwrap_or_else(|_| unreachable!("static policy"))
    }

    /// Parses a policy written in HCL (or its JSON form) as
    /// `sys/policies/password` takes it, and checks Vault's length bounds.
    pub fn parse(text: &str) -> Result<Self> {
        let (length, rules) = if text.trim_start().starts_with('{') {
            parse_json(text)?
        } else {
            parse_hcl(text)?
        };
        if rules.len() > MAX_RULES {
            return Err(Error::bad(format!(
                "invalid password policy: {} rules given, at most {MAX_RULES} are allowed",
                rules.len()
            )));
        }
        let policy = PasswordPolicy::new(length, rules)?;
        if !(MIN_LENGTH..=MAX_LENGTH).contains(&policy.length) {
            return Err(Error::bad(format!(
                "passwords must be between {MIN_LENGTH} and {MAX_LENGTH} characters"
            )));
        }
        Ok(policy)
    }

    /// Checks that generation succeeds in practice, not just in principle:
    /// a policy whose rules a random candidate almost never meets is refused.
    pub fn check_satisfiable(&self) -> Result<()> {
        self.generate_within(VALIDATE_ATTEMPTS).map(drop).map_err(|_| {
            Error::bad(format!(
                "invalid password policy: unable to generate a password satisfying the rules in {VALIDATE_ATTEMPTS} attempts"
            ))
        })
    }

    /// Whether any of `chars` can appear in a generated password.
    pub fn alphabet_contains(&self, chars: &[char]) -> bool {
        chars.iter().any(|c| self.alphabet.binary_search(c).is_ok())
    }

    /// Whether a control character can appear in a generated password.
    pub fn alphabet_contains_control(&self) -> bool {
        self.alphabet.iter().any(|c| c.is_control())
    }

    /// The length in characters.
    pub fn length(&self) -> usize {
        self.length
    }

    /// A new random password following the policy.
    pub fn generate(&self) -> Result<Zeroizing<String>> {
        self.generate_within(GENERATE_ATTEMPTS)
    }

    fn generate_within(&self, attempts: usize) -> Result<Zeroizing<String>> {
        let mut candidate: Zeroizing<Vec<char>> = Zeroizing::new(Vec::with_capacity(self.length));
        for _ in 0..attempts {
            candidate.clear();
            for _ in 0..self.length {
                candidate.push(self.alphabet[uniform_index(self.alphabet.len())]);
            }
            let ok = self.rules.iter().all(|r| {
                let held = candidate
                    .iter()
                    .filter(|c| r.charset.binary_search(c).is_ok());
                held.count() >= r.min_chars
            });
            if ok {
                return Ok(Zeroizing::new(candidate.iter().collect()));
            }
        }
        Err(Error::Status {
            code: 500,
            errors: vec![
                "failed to generate password from policy: no candidate met the rules".into(),
            ],
        })
    }
}

fn bad_policy(msg: impl std::fmt::Display) -> Error {
    Error::bad(format!("invalid password policy: {msg}"))
}

/// A non-negative integer (negative `min-chars` counts as 0, as Vault's does).
fn int(value: &Value, key: &str) -> Result<usize> {
    match value {
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => usize::try_from(u).map_err(|_| bad_policy(format!("{key} too large"))),
            (None, Some(_)) => Ok(0),
            _ => Err(bad_policy(format!("'{key}' expected type 'int'"))),
        },
        _ => Err(bad_policy(format!("'{key}' expected type 'int'"))),
    }
}

fn rule_from(kind: &str, body: &serde_json::Map<String, Value>) -> Result<CharsetRule> {
    if kind != "charset" {
        return Err(bad_policy(format!(
            "unable to parse rules: unable to parse rule {kind}: unrecognized rule type {kind}"
        )));
    }
    let charset = match body.get("charset") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(bad_policy("'charset' expected type 'string'")),
        None => "",
    };
    let min_chars = match body.get("min-chars") {
        Some(v) => int(v, "min-chars")?,
        None => 0,
    };
    Ok(CharsetRule::new(charset, min_chars))
}

fn length_from(value: Option<&Value>) -> Result<usize> {
    match value {
        Some(v) => int(v, "length"),
        None => Ok(0),
    }
}

/// `{"length": 20, "rule": [{"charset": {...}}, ...]}` or
/// `"rule": {"charset": [{...}, ...]}`, as HCL's JSON form allows.
fn parse_json(text: &str) -> Result<(usize, Vec<CharsetRule>)> {
    let v: Value = serde_json::from_str(text)
        .map_err(|_| bad_policy("unable to decode: the policy is not valid JSON"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad_policy("unable to decode: expected an object"))?;
    let length = length_from(obj.get("length"))?;
    let mut rules = Vec::new();
    let mut push = |kind: &str, body: &Value| -> Result<()> {
        match body {
            Value::Object(b) => rules.push(rule_from(kind, b)?),
            Value::Array(items) => {
                for item in items {
                    let b = item
                        .as_object()
                        .ok_or_else(|| bad_policy("unable to parse rules: expected an object"))?;
                    rules.push(rule_from(kind, b)?);
                }
            }
            _ => return Err(bad_policy("unable to parse rules: expected an object")),
        }
        Ok(())
    };
    match obj.get("rule") {
        None => {}
        Some(Value::Object(kinds)) => {
            for (kind, body) in kinds {
                push(kind, body)?;
            }
        }
        Some(Value::Array(items)) => {
            for item in items {
                let kinds = item
                    .as_object()
                    .ok_or_else(|| bad_policy("unable to parse rules: expected an object"))?;
                for (kind, body) in kinds {
                    push(kind, body)?;
                }
            }
        }
        Some(_) => return Err(bad_policy("unable to parse rules: expected an object")),
    }
    Ok((length, rules))
}

/// A literal HCL value as JSON (numbers and strings are all a policy holds).
fn literal(expr: &hcl::edit::expr::Expression) -> Value {
    use hcl::edit::expr::Expression;
    match expr {
        Expression::Number(n) => {
            let n = n.value();
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Expression::String(s) => Value::String(s.value().clone()),
        Expression::Bool(b) => Value::Bool(*b.value()),
        Expression::Parenthesis(p) => literal(p.inner()),
        _ => Value::Null,
    }
}

fn parse_hcl(text: &str) -> Result<(usize, Vec<CharsetRule>)> {
    use hcl::edit::structure::Structure;
    let body = hcl::edit::parser::parse_body(text).map_err(|e| {
        let loc = e.location();
        bad_policy(format!(
            "unable to decode: at {}:{}: {}",
            loc.line(),
            loc.column(),
            e.message()
        ))
    })?;
    let mut length = 0;
    let mut rules = Vec::new();
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attr) if attr.key.as_str() == "length" => {
                length = length_from(Some(&literal(&attr.value)))?;
            }
            Structure::Block(block) if block.ident.as_str() == "rule" => {
                let [label] = block.labels.as_slice() else {
                    return Err(bad_policy(
                        "unable to parse rules: a rule needs exactly one label: rule \"charset\" { ... }",
                    ));
                };
                let mut fields = serde_json::Map::new();
                for inner in block.body.iter() {
                    if let Structure::Attribute(attr) = inner {
                        fields.insert(attr.key.as_str().to_string(), literal(&attr.value));
                    }
                }
                rules.push(rule_from(label.as_str(), &fields)?);
            }
            // Unknown keys are ignored, as Vault's decoder does.
            _ => {}
        }
    }
    Ok((length, rules))
}

/// The stored password policies (`sys/policies/password/<name>`), kept in
/// the system area behind the barrier. Cheap to clone.
#[derive(Clone)]
pub struct PasswordPolicies {
    view: View,
}

impl PasswordPolicies {
    /// The store over `view` (the system's `password_policy/` prefix).
    pub fn new(view: View) -> Self {
        PasswordPolicies { view }
    }

    /// The policy text stored under `name`.
    pub async fn read_text(&self, name: &str) -> Result<Option<String>> {
        let stored: Option<Value> = self.view.get_json(name).await?;
        Ok(stored.and_then(|v| v.get("policy").and_then(Value::as_str).map(str::to_string)))
    }

    /// The parsed policy stored under `name`.
    pub async fn get(&self, name: &str) -> Result<Option<PasswordPolicy>> {
        match self.read_text(name).await? {
            Some(text) => PasswordPolicy::parse(&text).map(Some),
            None => Ok(None),
        }
    }

    /// The policy `name`, or a 400 naming it when it does not exist (for
    /// the settings that refer to one).
    pub async fn named(&self, name: &str) -> Result<PasswordPolicy> {
        self.get(name)
            .await?
            .ok_or_else(|| Error::bad(format!("password policy {name:?} does not exist")))
    }

    /// Stores `text` under `name` after checking it parses and can be met.
    pub async fn write(&self, name: &str, text: &str) -> Result<()> {
        let policy = PasswordPolicy::parse(text)?;
        policy.check_satisfiable()?;
        self.view
            .put_json(name, &serde_json::json!({ "policy": text }))
            .await
    }

    /// Deletes the policy `name` (absent is fine).
    pub async fn delete(&self, name: &str) -> Result<()> {
        self.view.delete(name).await
    }

    /// Every stored policy's name, sorted.
    pub async fn list(&self) -> Result<Vec<String>> {
        let mut keys = self.view.keys_with_prefix("").await?;
        keys.sort();
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_with_too_many_rules_is_refused_before_any_work() {
        let rule = "rule \"charset\" {\n  charset = \"ab\"\n  min-chars = 0\n}\n";
        let text = format!("length = 20\n{}", rule.repeat(MAX_RULES + 1));
        let err = PasswordPolicy::parse(&text).unwrap_err().to_string();
        assert!(err.contains("at most 32"), "{err}");
        let text = format!("length = 20\n{}", rule.repeat(MAX_RULES));
        assert!(PasswordPolicy::parse(&text).is_ok());
    }

    const SAMPLE: &str = r#"
length = 24
rule "charset" {
  charset = "abcdefghijklmnopqrstuvwxyz"
  min-chars = 2
}
rule "charset" {
  charset = "0123456789"
  min-chars = 3
}
"#;

    #[test]
    fn hcl_and_json_forms_parse_alike() {
        let a = PasswordPolicy::parse(SAMPLE).unwrap();
        let b = PasswordPolicy::parse(
            r#"{"length": 24, "rule": [{"charset": {"charset": "abcdefghijklmnopqrstuvwxyz", "min-chars": 2}},
                {"charset": {"charset": "0123456789", "min-chars": 3}}]}"#,
        )
        .unwrap();
        assert_eq!(a, b);
        let p = a.generate().unwrap();
        assert_eq!(p.chars().count(), 24);
        assert!(p.chars().filter(char::is_ascii_digit).count() >= 3);
        assert!(p.chars().filter(char::is_ascii_lowercase).count() >= 2);
    }

    #[test]
    fn refusals_match_vaults() {
        let err = |t: &str| PasswordPolicy::parse(t).unwrap_err().messages()[0].clone();
        assert!(
            err("length = 3\nrule \"charset\" {\n charset = \"ab\"\n min-chars = 4\n}")
                .contains("require at least 4 characters but 3")
        );
        assert!(
            err("length = 3\nrule \"charset\" { charset = \"ab\" }").contains("between 4 and 100")
        );
        assert!(err("length = 101\nrule \"charset\" { charset = \"ab\" }")
            .contains("between 4 and 100"));
        assert!(err("length = 20").contains("no charset specified"));
        assert!(err("length = 20\nrule \"other\" { charset = \"ab\" }")
            .contains("unrecognized rule type other"));
        assert!(
            err("length = \"12\"\nrule \"charset\" { charset = \"ab\" }")
                .contains("expected type 'int'")
        );
        assert!(err("garbage{").contains("unable to decode"));
        // Unknown keys and a negative min-chars are accepted, as Vault's are.
        PasswordPolicy::parse(
            "length = 8\nfoo = 1\nrule \"charset\" {\n charset = \"ab\"\n min-chars = -1\n}",
        )
        .unwrap();
    }

    #[test]
    fn an_unlikely_policy_is_refused_not_spun_on() {
        let p = PasswordPolicy::parse(
            "length = 50\nrule \"charset\" { charset = \"abcdefghijklmnopqrstuvwxyz\" }\nrule \"charset\" {\n charset = \"0\"\n min-chars = 40\n}",
        )
        .unwrap();
        assert!(p.check_satisfiable().is_err());
        assert!(p.generate().is_err());
    }

    #[test]
    fn unicode_charsets_count_characters() {
        let p = PasswordPolicy::parse(
            "length = 8\nrule \"charset\" {\n charset = \"é€\"\n min-chars = 8\n}",
        )
        .unwrap();
        let s = p.generate().unwrap();
        assert_eq!(s.chars().count(), 8);
        assert!(s.chars().all(|c| c == 'é' || c == '€'));
    }

    #[test]
    fn draws_are_uniform_over_the_charset() {
        // 7 does not divide 2^32: modulo reduction without rejection would
        // favour low indices; a chi-square over 70,000 draws catches a bias
        // far smaller than that and passes a fair draw (p > 0.001).
        let n = 7;
        let draws = 70_000;
        let mut counts = vec![0u32; n];
        for _ in 0..draws {
            counts[uniform_index(n)] += 1;
        }
        let expected = draws as f64 / n as f64;
        let chi2: f64 = counts
            .iter()
            .map(|&c| (f64::from(c) - expected).powi(2) / expected)
            .sum();
        assert!(chi2 < 22.46, "chi-square {chi2} over {counts:?}");
    }

    #[test]
    fn a_huge_charset_stays_cheap() {
        // 60,000 distinct characters (a privileged writer's worst case):
        // sorting keeps parse and generation far below quadratic cost.
        let charset: String = (0x4E00u32..0x4E00 + 60_000)
            .filter_map(char::from_u32)
            .collect();
        let text = format!(
            "length = 100\nrule \"charset\" {{\n charset = \"{charset}\"\n min-chars = 100\n}}\n"
        );
        let started = std::time::Instant::now();
        let p = PasswordPolicy::parse(&text).unwrap();
        p.check_satisfiable().unwrap();
        assert_eq!(p.generate().unwrap().chars().count(), 100);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn the_default_policy_is_vaults() {
        let p = PasswordPolicy::vault_default();
        for _ in 0..100 {
            let s = p.generate().unwrap();
            assert_eq!(s.len(), 20);
            assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
            assert!(s.bytes().any(|b| b.is_ascii_lowercase()));
            assert!(s.bytes().any(|b| b.is_ascii_uppercase()));
            assert!(s.bytes().any(|b| b.is_ascii_digit()));
            assert!(s.contains('-'));
        }
    }
}

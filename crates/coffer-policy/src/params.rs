//! Parameter constraints: `required_parameters`, `allowed_parameters` and
//! `denied_parameters`, applied to a request's data the way Vault does.
//!
//! * Parameter names are compared in lowercase (policy keys are lowercased
//!   when parsed, request keys when looked up).
//! * Values are compared as strings: scalars (strings, numbers, booleans) are
//!   stringified on both sides; a policy value may begin and/or end with `*`
//!   (Vault's glob: `*` alone matches only a literal `*`).
//! * A list is allowed when every element is allowed and denied when any
//!   element is denied. A string is also read as a comma-separated list
//!   (elements trimmed), as Vault does for its comma-string fields.
//! * `null` and objects match no listed value.
//!
//! One deliberate difference: Vault lets an empty string through any
//! `allowed_parameters` list (it splits to zero comma-separated elements);
//! here an empty string must match a listed value like any other string.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

/// A value listed in `allowed_parameters` / `denied_parameters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamValue {
    /// A string; may hold a leading or trailing `*` glob.
    String(String),
    /// A number.
    Number(serde_json::Number),
    /// A boolean.
    Bool(bool),
}

impl ParamValue {
    /// The string this value is compared as.
    pub fn as_match_str(&self) -> Cow<'_, str> {
        match self {
            ParamValue::String(s) => Cow::Borrowed(s),
            ParamValue::Number(n) => Cow::Owned(n.to_string()),
            ParamValue::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        }
    }
}

impl ParamValue {
    /// The value as JSON.
    pub fn to_json(&self) -> Value {
        match self {
            ParamValue::String(s) => Value::String(s.clone()),
            ParamValue::Number(n) => Value::Number(n.clone()),
            ParamValue::Bool(b) => Value::Bool(*b),
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_match_str())
    }
}

/// Parameter name → listed values (an empty list means "any value").
pub type ParamMap = BTreeMap<String, Vec<ParamValue>>;

/// Why parameter constraints refused a request (names only, never values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ParamViolation {
    Missing(String),
    Denied(String),
    NotAllowed(String),
}

/// The merged parameter constraints of one ACL entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ParamRules {
    pub(crate) allowed: ParamMap,
    pub(crate) denied: ParamMap,
    pub(crate) required: Vec<String>,
}

impl ParamRules {
    /// Whether there is no constraint at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.allowed.is_empty() && self.denied.is_empty() && self.required.is_empty()
    }

    /// Checks request data against the constraints, in Vault's order:
    /// required, then (if any data) denied, then allowed.
    pub(crate) fn check(&self, data: Option<&Map<String, Value>>) -> Result<(), ParamViolation> {
        let empty = Map::new();
        let data = data.unwrap_or(&empty);
        for name in &self.required {
            if !data.contains_key(&name.to_lowercase()) {
                return Err(ParamViolation::Missing(name.clone()));
            }
        }
        if data.is_empty() {
            return Ok(());
        }
        if !self.denied.is_empty() {
            if self.denied.contains_key("*") {
                let first = data.keys().next().cloned().unwrap_or_default();
                return Err(ParamViolation::Denied(first));
            }
            for (key, value) in data {
                if let Some(list) = self.denied.get(&key.to_lowercase()) {
                    if value_denied(value, list) {
                        return Err(ParamViolation::Denied(key.clone()));
                    }
                }
            }
        }
        if self.allowed.is_empty() {
            return Ok(());
        }
        let allow_all = self.allowed.contains_key("*");
        if allow_all && self.allowed.len() == 1 {
            return Ok(());
        }
        for (key, value) in data {
            match self.allowed.get(&key.to_lowercase()) {
                None if allow_all => {}
                None => return Err(ParamViolation::NotAllowed(key.clone())),
                Some(list) => {
                    if !value_allowed(value, list) {
                        return Err(ParamViolation::NotAllowed(key.clone()));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Merges `from` into `into` as Vault merges the same pattern across
/// policies: an empty list ("any value") absorbs, other lists concatenate.
pub(crate) fn merge_param_map(into: &mut ParamMap, from: &ParamMap) {
    for (key, values) in from {
        match into.get_mut(key) {
            Some(existing) if existing.is_empty() => {}
            Some(existing) if values.is_empty() => existing.clear(),
            Some(existing) => {
                for v in values {
                    if !existing.contains(v) {
                        existing.push(v.clone());
                    }
                }
            }
            None => {
                into.insert(key.clone(), values.clone());
            }
        }
    }
}

/// A scalar request value as a string; `None` for null, lists and objects.
fn scalar_str(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

fn str_in_list(value: &str, list: &[ParamValue]) -> bool {
    list.iter()
        .any(|p| crate::glob::param(&p.as_match_str(), value))
}

fn scalar_in_list(value: &Value, list: &[ParamValue]) -> bool {
    scalar_str(value).is_some_and(|s| str_in_list(&s, list))
}

/// Comma-separated elements of a string, trimmed; `None` when it has no comma
/// (the whole string was already compared).
fn comma_parts(s: &str) -> Option<impl Iterator<Item = &str>> {
    s.contains(',').then(|| s.split(',').map(str::trim))
}

fn value_allowed(value: &Value, list: &[ParamValue]) -> bool {
    if list.is_empty() || scalar_in_list(value, list) {
        return true;
    }
    match value {
        Value::Array(items) => items.iter().all(|item| scalar_in_list(item, list)),
        Value::String(s) => {
            comma_parts(s).is_some_and(|mut parts| parts.all(|p| str_in_list(p, list)))
        }
        _ => false,
    }
}

fn value_denied(value: &Value, list: &[ParamValue]) -> bool {
    if list.is_empty() || scalar_in_list(value, list) {
        return true;
    }
    match value {
        Value::Array(items) => items.iter().any(|item| scalar_in_list(item, list)),
        Value::String(s) => {
            comma_parts(s).is_some_and(|mut parts| parts.any(|p| str_in_list(p, list)))
        }
        _ => false,
    }
}

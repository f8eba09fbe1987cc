//! Canonical HCL output for `coffer policy fmt`.
//!
//! One `path` block per rule in written order, two-space indentation,
//! capabilities in canonical order (legacy `policy = ...` expanded),
//! parameters sorted by name, durations as `1h30m`-style strings. Comments
//! are not kept. The output parses back to an equal policy.

use std::fmt::Write;

use super::duration;
use super::params::{ParamMap, ParamValue};
use super::parse::{PathRule, Policy};

/// Formats a policy as canonical HCL.
pub fn format_policy(p: &Policy) -> String {
    let mut out = String::new();
    for (i, rule) in p.rules().iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        format_rule(&mut out, rule);
    }
    out
}

fn format_rule(out: &mut String, rule: &PathRule) {
    let _ = writeln!(out, "path {} {{", quote_hcl(rule.pattern.as_str()));
    let caps: Vec<String> = rule
        .capabilities
        .iter()
        .map(|c| quote_hcl(c.as_str()))
        .collect();
    let _ = writeln!(out, "  capabilities = [{}]", caps.join(", "));
    format_params(out, "allowed_parameters", &rule.allowed_parameters);
    format_params(out, "denied_parameters", &rule.denied_parameters);
    if !rule.required_parameters.is_empty() {
        let names: Vec<String> = rule
            .required_parameters
            .iter()
            .map(|n| quote_hcl(n))
            .collect();
        let _ = writeln!(out, "  required_parameters = [{}]", names.join(", "));
    }
    if let Some(ttl) = rule.min_wrapping_ttl {
        let _ = writeln!(out, "  min_wrapping_ttl = \"{}\"", duration::format(ttl));
    }
    if let Some(ttl) = rule.max_wrapping_ttl {
        let _ = writeln!(out, "  max_wrapping_ttl = \"{}\"", duration::format(ttl));
    }
    out.push_str("}\n");
}

fn format_params(out: &mut String, key: &str, params: &ParamMap) {
    if params.is_empty() {
        return;
    }
    let _ = writeln!(out, "  {key} = {{");
    for (name, values) in params {
        let values: Vec<String> = values.iter().map(format_value).collect();
        let _ = writeln!(out, "    {} = [{}]", quote_hcl(name), values.join(", "));
    }
    out.push_str("  }\n");
}

fn format_value(v: &ParamValue) -> String {
    match v {
        ParamValue::String(s) => quote_hcl(s),
        ParamValue::Number(n) => n.to_string(),
        ParamValue::Bool(b) => b.to_string(),
    }
}

/// Quotes a string as an HCL literal: JSON-like escapes, plus `$${` and
/// `%%{` so no template sequence is introduced.
pub(crate) fn quote_hcl(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

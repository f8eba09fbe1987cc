//! Reporters: human, JSON, SARIF 2.1.0, JUnit XML and CSV.
//!
//! Every reporter shows secrets redacted unless asked to reveal them.

mod csv;
mod human;
mod json;
mod junit;
mod sarif;

use crate::engine::Rule;
use crate::finding::Finding;
use std::io::{self, Write};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One block per finding, for people.
    Human,
    /// A JSON array.
    Json,
    /// SARIF 2.1.0 (GitHub code scanning).
    Sarif,
    /// JUnit XML (CI test reports).
    Junit,
    /// Comma-separated values with a header.
    Csv,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "human" | "text" => Ok(Format::Human),
            "json" => Ok(Format::Json),
            "sarif" => Ok(Format::Sarif),
            "junit" => Ok(Format::Junit),
            "csv" => Ok(Format::Csv),
            other => Err(format!(
                "unknown format {other:?} (human, json, sarif, junit, csv)"
            )),
        }
    }
}

/// What a report needs besides the findings.
#[derive(Debug, Clone, Copy)]
pub struct ReportContext<'a> {
    /// The rules that ran (SARIF lists them).
    pub rules: &'a [Rule],
    /// Show secrets in clear.
    pub reveal: bool,
    /// Tool version.
    pub version: &'a str,
}

/// Writes findings in a format.
pub fn write(
    format: Format,
    findings: &[Finding],
    ctx: &ReportContext<'_>,
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        Format::Human => human::write(findings, ctx, out),
        Format::Json => json::write(findings, ctx, out),
        Format::Sarif => sarif::write(findings, ctx, out),
        Format::Junit => junit::write(findings, ctx, out),
        Format::Csv => csv::write(findings, ctx, out),
    }
}

/// Adds a validation's `validation`, `validator` and `validationDetail`
/// (shared by the JSON reporter and SARIF's property bag).
fn insert_validation(
    obj: &mut serde_json::Map<String, serde_json::Value>,
    v: &crate::validate::Validation,
) {
    obj.insert("validation".into(), v.status.as_str().into());
    obj.insert("validator".into(), v.validator.into());
    obj.insert("validationDetail".into(), v.detail.clone().into());
}

/// A finding as a JSON object (shared by the JSON and SARIF reporters).
pub fn finding_json(f: &Finding, reveal: bool) -> serde_json::Value {
    let mut v = serde_json::json!({
        "rule": f.rule_id,
        "description": f.description,
        "path": f.path,
        "line": f.line,
        "column": f.column,
        "endLine": f.end_line,
        "endColumn": f.end_column,
        "secret": f.shown(reveal),
        "fingerprint": f.fingerprint(),
        "entropy": (f.entropy * 100.0).round() / 100.0,
        "secretType": f.secret_type,
        "vendor": f.vendor,
    });
    if let (Some(c), Some(obj)) = (&f.commit, v.as_object_mut()) {
        obj.insert("commit".into(), c.commit.clone().into());
        obj.insert("author".into(), c.author.clone().into());
        obj.insert("email".into(), c.email.clone().into());
        obj.insert("date".into(), c.date.clone().into());
    }
    if let (Some(c), Some(obj)) = (f.path_class, v.as_object_mut()) {
        obj.insert("pathClass".into(), c.into());
    }
    if let (Some(d), Some(obj)) = (f.decoded, v.as_object_mut()) {
        obj.insert("decoded".into(), d.into());
    }
    if let (Some(c), Some(obj)) = (f.checksum, v.as_object_mut()) {
        obj.insert("checksum".into(), c.as_str().into());
    }
    if let Some(obj) = v.as_object_mut() {
        obj.insert("confidence".into(), f.confidence().into());
        if let Some(val) = &f.validation {
            insert_validation(obj, val);
        }
    }
    if let (false, Some(obj)) = (f.also.is_empty(), v.as_object_mut()) {
        obj.insert(
            "extraLocations".into(),
            serde_json::to_value(&f.also).unwrap_or_default(),
        );
    }
    v
}

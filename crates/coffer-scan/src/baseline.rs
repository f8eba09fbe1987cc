//! Baselines: findings already known, to be ignored by later scans.
//!
//! An entry is keyed on rule, path and a hash of the secret (see
//! [`Finding::fingerprint`]), never on the line, so that moving a line or
//! editing around it does not resurrect a finding. The file holds no secret.
//!
//! Version 2 keys each path as the caller names it through a `key_path`
//! function (the CLI: relative to the git repository's root, else to the
//! scanned root), so a baseline works from any working directory. Entries
//! of version 1 files (keyed on the path as printed) still match.

use crate::finding::{fingerprint, Finding};
use crate::Error;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;

/// One known finding.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// The finding's fingerprint.
    pub fingerprint: String,
    /// Rule id (for people reading the file).
    pub rule: String,
    /// Path (for people reading the file).
    pub path: String,
}

/// A baseline file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Baseline {
    /// Format version (2; 1 is still read).
    pub version: u32,
    /// Known findings.
    pub findings: Vec<Entry>,
}

impl Baseline {
    /// A baseline of these findings, keyed on the path as printed.
    pub fn from_findings(findings: &[Finding]) -> Baseline {
        Baseline::from_findings_keyed(findings, |f| f.path.clone())
    }

    /// A baseline of these findings, each keyed on `key_path(finding)`.
    pub fn from_findings_keyed(
        findings: &[Finding],
        key_path: impl Fn(&Finding) -> String,
    ) -> Baseline {
        let mut seen = HashSet::new();
        let mut entries: Vec<Entry> = findings
            .iter()
            .filter_map(|f| {
                let path = key_path(f);
                let fp = fingerprint(&f.rule_id, &path, f.secret.as_bytes());
                seen.insert(fp.clone()).then(|| Entry {
                    fingerprint: fp,
                    rule: f.rule_id.clone(),
                    path,
                })
            })
            .collect();
        entries.sort_by(|a, b| {
            (&a.path, &a.rule, &a.fingerprint).cmp(&(&b.path, &b.rule, &b.fingerprint))
        });
        Baseline {
            version: 2,
            findings: entries,
        }
    }

    /// Reads a baseline file.
    pub fn load(path: &Path) -> Result<Baseline, Error> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::io(path.display().to_string(), e))?;
        serde_json::from_str(&text).map_err(|e| Error::Baseline(format!("{}: {e}", path.display())))
    }

    /// Writes the baseline as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let mut text =
            serde_json::to_string_pretty(self).map_err(|e| Error::Baseline(e.to_string()))?;
        text.push('\n');
        std::fs::write(path, text).map_err(|e| Error::io(path.display().to_string(), e))
    }

    /// Drops every finding the baseline knows, keyed on the path as printed.
    pub fn filter(&self, findings: &mut Vec<Finding>) {
        self.filter_keyed(findings, |f| f.path.clone());
    }

    /// Drops every finding the baseline knows: keyed on `key_path(finding)`,
    /// or on the path as printed (what version 1 files hold).
    pub fn filter_keyed(&self, findings: &mut Vec<Finding>, key_path: impl Fn(&Finding) -> String) {
        let known: HashSet<&str> = self
            .findings
            .iter()
            .map(|e| e.fingerprint.as_str())
            .collect();
        findings.retain(|f| {
            let keyed = fingerprint(&f.rule_id, &key_path(f), f.secret.as_bytes());
            !known.contains(keyed.as_str()) && !known.contains(f.fingerprint().as_str())
        });
    }
}

//! Baselines: findings already known, to be ignored by later scans.
//!
//! An entry is keyed on rule, path and a hash of the secret (see
//! [`Finding::fingerprint`]), never on the line, so that moving a line or
//! editing around it does not resurrect a finding. The file holds no secret.

use crate::finding::Finding;
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
    /// Format version (1).
    pub version: u32,
    /// Known findings.
    pub findings: Vec<Entry>,
}

impl Baseline {
    /// A baseline of these findings.
    pub fn from_findings(findings: &[Finding]) -> Baseline {
        let mut seen = HashSet::new();
        let mut entries: Vec<Entry> = findings
            .iter()
            .filter_map(|f| {
                let fp = f.fingerprint();
                seen.insert(fp.clone()).then(|| Entry {
                    fingerprint: fp,
                    rule: f.rule_id.clone(),
                    path: f.path.clone(),
                })
            })
            .collect();
        entries.sort_by(|a, b| {
            (&a.path, &a.rule, &a.fingerprint).cmp(&(&b.path, &b.rule, &b.fingerprint))
        });
        Baseline {
            version: 1,
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

    /// Drops every finding the baseline knows.
    pub fn filter(&self, findings: &mut Vec<Finding>) {
        let known: HashSet<&str> = self
            .findings
            .iter()
            .map(|e| e.fingerprint.as_str())
            .collect();
        findings.retain(|f| !known.contains(f.fingerprint().as_str()));
    }
}

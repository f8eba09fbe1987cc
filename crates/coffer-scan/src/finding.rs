//! A finding: one secret found by one rule at one place.

use crate::checksum::Checksum;
use crate::validate::Validation;
use serde::Serialize;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The commit a secret was introduced in (history and staged scans).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CommitInfo {
    /// Full commit id.
    pub commit: String,
    /// Author name.
    pub author: String,
    /// Author e-mail.
    pub email: String,
    /// Author date, RFC 3339.
    pub date: String,
}

/// Another place a history finding's secret persists in.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Location {
    /// Path in that commit.
    pub path: String,
    /// 1-based line.
    pub line: usize,
    /// Commit id.
    pub commit: Option<String>,
}

/// One secret found by one rule.
#[derive(Clone)]
pub struct Finding {
    /// Rule id, e.g. `aws-access-key-id`.
    pub rule_id: String,
    /// Rule description.
    pub description: String,
    /// Path of the file (or `<stdin>`), relative to the scanned root where
    /// there is one, with `/` separators.
    pub path: String,
    /// 1-based line of the secret's first byte.
    pub line: usize,
    /// 1-based byte column of the secret's first byte.
    pub column: usize,
    /// 1-based line of the secret's last byte.
    pub end_line: usize,
    /// 1-based byte column just past the secret's last byte.
    pub end_column: usize,
    /// Byte offset of the secret in the scanned content.
    pub start: usize,
    /// Byte offset just past the secret.
    pub end: usize,
    /// The secret itself; never logged, shown only with `--no-redact`.
    pub secret: Zeroizing<String>,
    /// Shannon entropy of the secret.
    pub entropy: f64,
    /// Lifecycle type for the store (api_key, token, password, ...).
    pub secret_type: String,
    /// Vendor issuing the credential, when known.
    pub vendor: Option<String>,
    /// Commit that introduced it (history and staged scans only).
    pub commit: Option<CommitInfo>,
    /// The encoding it was found under (`base64`, `url`, `json`), when it
    /// was found in decoded text; the span is the encoded original.
    pub decoded: Option<&'static str>,
    /// History scans: later commits and paths holding the same secret (the
    /// finding itself is where it was introduced); at most
    /// [`MAX_EXTRA_LOCATIONS`].
    pub also: Vec<Location>,
    /// Where the path suggests the value lives: `test` (tests, fixtures,
    /// test vectors), `docs` (documentation, examples) or `vendor`; `None`
    /// for everything else. Triage only: such findings are reported at a
    /// lower level, never dropped.
    pub path_class: Option<&'static str>,
    /// The outcome of the format's checksum or structure check, for formats
    /// that have one ([`crate::checksum`]).
    pub checksum: Option<Checksum>,
    /// Whether the credential is live, when `--validate` asked
    /// ([`crate::validate`]); `None` when not validated.
    pub validation: Option<Validation>,
}

/// The [`Finding::path_class`] of a path.
pub fn path_class(path: &str) -> Option<&'static str> {
    let lower = path.to_ascii_lowercase();
    let segs: Vec<&str> = lower.split('/').collect();
    let (dirs, file) = segs.split_at(segs.len().saturating_sub(1));
    let file = file.first().copied().unwrap_or("");
    let in_dir = |names: &[&str]| dirs.iter().any(|d| names.contains(d));
    if in_dir(&[
        "vendor",
        "third_party",
        "third-party",
        "node_modules",
        "external",
        "godeps",
    ]) {
        return Some("vendor");
    }
    if in_dir(&[
        "test",
        "tests",
        "testing",
        "spec",
        "specs",
        "__tests__",
        "testdata",
        "test-data",
        "test_data",
        "fixtures",
        "fixture",
        "test-fixtures",
        "test_fixtures",
        "testfixtures",
        "__fixtures__",
        "mocks",
        "e2e",
        "benches",
    ]) || file.starts_with("test_")
        || file.contains("_test.")
        || file.contains(".test.")
        || file.contains("_spec.")
        || file.contains(".spec.")
        || file.contains("test_vectors")
    {
        return Some("test");
    }
    if in_dir(&[
        "doc",
        "docs",
        "documentation",
        "api-docs",
        "example",
        "examples",
        "sample",
        "samples",
    ]) || [".md", ".mdx", ".rst", ".adoc", ".markdown"]
        .iter()
        .any(|e| file.ends_with(e))
    {
        return Some("docs");
    }
    None
}

/// Extra locations kept per history finding.
pub const MAX_EXTRA_LOCATIONS: usize = 64;

/// Prints everything but the secret.
impl std::fmt::Debug for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Finding")
            .field("rule_id", &self.rule_id)
            .field("description", &self.description)
            .field("path", &self.path)
            .field("line", &self.line)
            .field("column", &self.column)
            .field("end_line", &self.end_line)
            .field("end_column", &self.end_column)
            .field("start", &self.start)
            .field("end", &self.end)
            .field("secret", &format_args!("<redacted>"))
            .field("entropy", &self.entropy)
            .field("secret_type", &self.secret_type)
            .field("vendor", &self.vendor)
            .field("commit", &self.commit)
            .field("checksum", &self.checksum)
            .field("validation", &self.validation)
            .finish()
    }
}

impl Finding {
    /// `high` when the format's checksum holds, `low` when it fails,
    /// `medium` for formats without one.
    pub fn confidence(&self) -> &'static str {
        match self.checksum {
            Some(Checksum::Valid) => "high",
            Some(Checksum::Invalid) => "low",
            None => "medium",
        }
    }

    /// The SARIF level: `error`, `warning` for test, docs and vendored
    /// paths (triage), `note` when the checksum fails. A valid checksum is
    /// always an `error`, whatever the path.
    pub fn level(&self) -> &'static str {
        match (self.checksum, self.path_class) {
            (Some(Checksum::Valid), _) => "error",
            (Some(Checksum::Invalid), _) => "note",
            (None, Some(_)) => "warning",
            (None, None) => "error",
        }
    }

    /// A stable identity for baselines: rule, path and a hash of the secret,
    /// but not the line, so that moving a line keeps the finding known.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.rule_id, &self.path, self.secret.as_bytes())
    }

    /// The secret as shown when redacting: a short prefix (at most a quarter
    /// of the secret, never more than 4 bytes) followed by asterisks.
    pub fn redacted(&self) -> String {
        redact(&self.secret)
    }

    /// The secret as it should be shown: redacted unless `reveal`.
    pub fn shown(&self, reveal: bool) -> String {
        if reveal {
            self.secret.to_string()
        } else {
            self.redacted()
        }
    }
}

/// Hex SHA-256 (first 32 hex digits) of rule, path and secret.
pub fn fingerprint(rule_id: &str, path: &str, secret: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(rule_id.as_bytes());
    h.update([0]);
    h.update(path.as_bytes());
    h.update([0]);
    h.update(secret);
    let digest = h.finalize();
    hex::encode(&digest[..16])
}

/// Redacts a secret, keeping a prefix of at most 4 characters and at most a
/// quarter of its length.
pub fn redact(secret: &str) -> String {
    let keep = (secret.chars().count() / 4).min(4);
    let prefix: String = secret.chars().take(keep).collect();
    format!("{prefix}*****")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_little() {
        assert_eq!(redact("abc"), "*****");
        assert_eq!(redact("abcdefgh"), "ab*****");
        assert_eq!(redact("abcdefghijklmnopqrstu"), "abcd*****");
    }

    #[test]
    fn path_classes() {
        assert_eq!(path_class("tests/test_vectors.rs"), Some("test"));
        assert_eq!(path_class("src/auth_test.go"), Some("test"));
        assert_eq!(path_class("web/app.spec.ts"), Some("test"));
        assert_eq!(path_class("docs/setup.md"), Some("docs"));
        assert_eq!(path_class("README.md"), Some("docs"));
        assert_eq!(path_class("third_party/x/a.c"), Some("vendor"));
        assert_eq!(path_class("src/config/settings.py"), None);
        assert_eq!(path_class("src/contest/main.rs"), None);
        assert_eq!(path_class("api/test-fixtures/keys/key.pem"), Some("test"));
        assert_eq!(path_class("site/content/api-docs/auth.html"), Some("docs"));
        assert_eq!(path_class("site/content/docs/login.mdx"), Some("docs"));
        assert_eq!(
            path_class("Godeps/_workspace/src/example.org/x/y.go"),
            Some("vendor")
        );
    }

    #[test]
    fn fingerprint_ignores_line() {
        let a = fingerprint("r", "p", b"s");
        assert_eq!(a, fingerprint("r", "p", b"s"));
        assert_ne!(a, fingerprint("r", "p2", b"s"));
        assert_eq!(a.len(), 32);
    }
}

//! Coffer's secret scanner: finds credentials in files, directories, standard
//! input and git history.
//!
//! The library has no server code. Its parts, each in its own module:
//! - [`config`]: rule and allowlist definitions (Coffer's TOML, which is a
//!   superset of gitleaks' configuration format) and the built-in rule set.
//! - [`engine`]: the compiled [`Scanner`]: one Aho-Corasick pass over every
//!   rule's keywords, regexes run only in windows around keyword hits.
//! - [`checksum`]: checksums and structures of formats that carry one
//!   (GitHub, npm, PyPI, JWT, PEM keys), which raise or lower confidence.
//! - [`decode`]: one decoding layer (base64, URL encoding, JSON escapes),
//!   findings reported at their encoded span.
//! - [`walk`]: parallel directory walking (respects `.gitignore`, skips
//!   binaries, memory-maps large files).
//! - [`git`]: history and staged-content scanning through the `git` CLI, each
//!   unique blob scanned once.
//! - [`baseline`]: known findings, keyed on rule, path and a hash of the
//!   secret so that moving a line does not resurrect a finding.
//! - [`report`]: human, JSON, SARIF 2.1.0, JUnit and CSV output.
//! - [`remediate`]: the edits that replace a literal with a `coffer://`
//!   reference.
//! - [`validate`]: the outcome of checking whether a credential is live,
//!   the [`validate::Validator`] trait such checks implement and the
//!   bounded runner (each distinct credential once, limited concurrency).
//!   The checks that contact servers live in the caller (the `coffer` CLI).

pub mod allow;
pub mod baseline;
pub mod checksum;
pub mod config;
#[cfg(test)]
mod debug_tests;
pub mod decode;
pub mod engine;
pub mod entropy;
pub mod finding;
pub mod git;
pub mod remediate;
pub mod report;
pub mod structure;
pub mod template;
pub mod validate;
pub mod walk;

pub use config::{Config, ConfigError};
pub use engine::Scanner;
pub use finding::{CommitInfo, Finding};

/// Errors from scanning.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration or rule could not be loaded or compiled.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Reading a file, a directory or a pipe failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being read.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A `git` command failed or printed something unexpected.
    #[error("git: {0}")]
    Git(String),
    /// A baseline file could not be read or written.
    #[error("baseline: {0}")]
    Baseline(String),
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

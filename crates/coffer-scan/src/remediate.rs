//! Remediation: where each finding goes in the store, and the edits that
//! replace the literal with a `coffer://<mount>/<path>#<key>` reference.
//!
//! This module only plans and applies file edits; writing to the store is
//! the caller's job, and the caller applies an edit only after the store
//! write succeeded.

use crate::finding::Finding;
use crate::Error;
use std::collections::BTreeMap;
use std::path::Path;
use zeroize::Zeroizing;

/// The key holding the value in each KV entry.
pub const VALUE_KEY: &str = "value";

/// Where one finding goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Mount, e.g. `secret`.
    pub mount: String,
    /// Path inside the mount, e.g. `app/aws-access-key-id-1a2b3c4d`.
    pub path: String,
    /// Key inside the entry.
    pub key: String,
}

impl Placement {
    /// The reference that replaces the literal.
    pub fn reference(&self) -> String {
        format!("coffer://{}/{}#{}", self.mount, self.path, self.key)
    }
}

/// Splits `secret/<prefix>` into mount and prefix.
pub fn parse_target(target: &str) -> Result<(String, String), String> {
    let t = target.trim_matches('/');
    let (mount, prefix) = t.split_once('/').unwrap_or((t, ""));
    if mount.is_empty() {
        return Err("import target must look like <mount>/<prefix>, e.g. secret/myapp".into());
    }
    Ok((mount.to_string(), prefix.trim_matches('/').to_string()))
}

/// The placement of a finding under `mount/prefix`: one entry per distinct
/// (rule, path, secret), named after the rule and its fingerprint.
pub fn place(f: &Finding, mount: &str, prefix: &str) -> Placement {
    let fp = f.fingerprint();
    let name = format!("{}-{}", f.rule_id, &fp[..8.min(fp.len())]);
    let path = if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    };
    Placement {
        mount: mount.to_string(),
        path,
        key: VALUE_KEY.to_string(),
    }
}

/// One replacement in one file.
#[derive(Clone)]
pub struct Edit {
    /// Byte range of the literal.
    pub start: usize,
    /// End of the byte range.
    pub end: usize,
    /// The literal expected there (checked before writing).
    pub expected: Zeroizing<String>,
    /// What replaces it.
    pub replacement: String,
}

/// Prints everything but the literal being replaced.
impl std::fmt::Debug for Edit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edit")
            .field("start", &self.start)
            .field("end", &self.end)
            .field("expected", &format_args!("<redacted>"))
            .field("replacement", &self.replacement)
            .finish()
    }
}

/// Groups edits by file for findings in the working tree.
pub fn edits_by_file<'a>(
    planned: impl IntoIterator<Item = (&'a Finding, &'a Placement)>,
) -> BTreeMap<String, Vec<Edit>> {
    let mut out: BTreeMap<String, Vec<Edit>> = BTreeMap::new();
    for (f, p) in planned {
        if f.commit.is_some() || f.secret.is_empty() || f.path == "<stdin>" {
            continue;
        }
        out.entry(f.path.clone()).or_default().push(Edit {
            start: f.start,
            end: f.end,
            expected: f.secret.clone(),
            replacement: p.reference(),
        });
    }
    out
}

/// Applies edits to `content`: each range must still hold its literal.
/// Returns the new content.
pub fn apply_to(content: &[u8], edits: &[Edit]) -> Result<Vec<u8>, String> {
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| e.start);
    let mut out = Vec::with_capacity(content.len());
    let mut pos = 0;
    for e in sorted {
        if e.start < pos || e.end > content.len() || e.start > e.end {
            return Err("edits overlap or fall outside the file".into());
        }
        if &content[e.start..e.end] != e.expected.as_bytes() {
            return Err("the file changed since it was scanned".into());
        }
        out.extend_from_slice(&content[pos..e.start]);
        out.extend_from_slice(e.replacement.as_bytes());
        pos = e.end;
    }
    out.extend_from_slice(&content[pos..]);
    Ok(out)
}

/// Applies edits to a file in place (write to a sibling, then rename).
pub fn apply_file(path: &Path, edits: &[Edit]) -> Result<(), Error> {
    let content = std::fs::read(path).map_err(|e| Error::io(path.display().to_string(), e))?;
    let new = apply_to(&content, edits).map_err(|m| {
        Error::io(
            path.display().to_string(),
            std::io::Error::new(std::io::ErrorKind::InvalidData, m),
        )
    })?;
    let tmp = path.with_extension("coffer-rewrite.tmp");
    std::fs::write(&tmp, &new).map_err(|e| Error::io(tmp.display().to_string(), e))?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path.display().to_string(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(start: usize, end: usize, expected: &str, rep: &str) -> Edit {
        Edit {
            start,
            end,
            expected: Zeroizing::new(expected.to_string()),
            replacement: rep.to_string(),
        }
    }

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("secret/app").unwrap(),
            ("secret".into(), "app".into())
        );
        assert_eq!(parse_target("kv/").unwrap(), ("kv".into(), "".into()));
        assert!(parse_target("/").is_err());
    }

    #[test]
    fn applies_in_order_and_checks_content() {
        let c = b"a = XYZ; b = QRS;";
        let out = apply_to(c, &[edit(13, 16, "QRS", "ref2"), edit(4, 7, "XYZ", "ref1")]).unwrap();
        assert_eq!(out, b"a = ref1; b = ref2;");
        assert!(apply_to(c, &[edit(4, 7, "NOPE", "r")]).is_err());
        assert!(apply_to(c, &[edit(4, 7, "XYZ", "r"), edit(5, 8, "YZ;", "r")]).is_err());
    }
}

//! `coffer://` references: `coffer://<mount>/<path>#<field>`, optionally
//! followed by `?version=N` or `?stage=previous` (the query may also stand
//! before the `#`, as in a URL).
//!
//! The first segment is the mount (as `coffer kv` reads paths), the rest
//! the secret's path in it, the fragment the field of its data. A
//! reference holds no secret, so it may be shown in errors.

use std::fmt;

/// The scheme every reference starts with.
pub const SCHEME: &str = "coffer://";

/// Which version of the secret a reference names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The current version (a plain read).
    Current,
    /// A version number (KV v2 only).
    Version(u64),
    /// A lifecycle stage label (`previous`; KV v2 only).
    Stage(String),
}

/// A parsed `coffer://` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The mount (first path segment), without slashes.
    pub mount: String,
    /// The secret's path below the mount, without leading or trailing slash.
    pub path: String,
    /// The field of the secret's data.
    pub field: String,
    /// Which version.
    pub selector: Selector,
}

/// Why a text is not a valid reference; names the reference (which holds
/// no secret), never anything else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed reference {reference:?}: {reason}")]
pub struct ReferenceError {
    /// The text that was parsed (at most 200 characters of it).
    pub reference: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Reference {
    /// Whether `text` starts with the `coffer://` scheme (and so must parse).
    pub fn is_reference(text: &str) -> bool {
        text.len() >= SCHEME.len() && text[..SCHEME.len()].eq_ignore_ascii_case(SCHEME)
    }

    /// Parses `coffer://<mount>/<path>#<field>[?version=N|?stage=previous]`.
    pub fn parse(text: &str) -> Result<Reference, ReferenceError> {
        let fail = |reason: &str| ReferenceError {
            reference: text.chars().take(200).collect(),
            reason: reason.to_string(),
        };
        if !Reference::is_reference(text) {
            return Err(fail("it does not start with coffer://"));
        }
        let rest = &text[SCHEME.len()..];
        if rest.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(fail("it contains whitespace or a control character"));
        }
        // The query may stand after the fragment (the documented form) or
        // before it (URL order).
        let (location, field, query) = match (rest.find('?'), rest.find('#')) {
            (_, None) => return Err(fail("it names no field: add #<field>")),
            (Some(q), Some(h)) if q < h => (&rest[..q], &rest[h + 1..], Some(&rest[q + 1..h])),
            (_, Some(h)) => {
                let after = &rest[h + 1..];
                match after.split_once('?') {
                    Some((f, q)) => (&rest[..h], f, Some(q)),
                    None => (&rest[..h], after, None),
                }
            }
        };
        if field.contains('#') {
            return Err(fail("it has more than one #"));
        }
        let field = decode(field).ok_or_else(|| fail("the field is not valid UTF-8"))?;
        if field.is_empty() {
            return Err(fail("the field after # is empty"));
        }
        let location = decode(location).ok_or_else(|| fail("the path is not valid UTF-8"))?;
        let (mount, path) = location
            .split_once('/')
            .ok_or_else(|| fail("it names no secret: expected coffer://<mount>/<path>#<field>"))?;
        let path = path.trim_end_matches('/');
        if mount.is_empty() || path.is_empty() {
            return Err(fail(
                "it names no secret: expected coffer://<mount>/<path>#<field>",
            ));
        }
        if location.split('/').any(|s| s == "." || s == "..") || path.split('/').any(str::is_empty)
        {
            return Err(fail("the path has an empty, . or .. segment"));
        }
        let selector = match query {
            None => Selector::Current,
            Some(q) => parse_query(q).map_err(|r| fail(&r))?,
        };
        Ok(Reference {
            mount: mount.to_string(),
            path: path.to_string(),
            field,
            selector,
        })
    }

    /// The secret this reference reads, as `<mount>/<path>`.
    pub fn secret(&self) -> String {
        format!("{}/{}", self.mount, self.path)
    }
}

/// The one query parameter a reference may carry.
fn parse_query(q: &str) -> Result<Selector, String> {
    let (key, value) = q
        .split_once('=')
        .ok_or_else(|| "expected ?version=N or ?stage=previous".to_string())?;
    match key {
        "version" => match value.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Selector::Version(n)),
            _ => Err("version must be a positive integer".into()),
        },
        "stage" if value == "previous" || value == "current" => {
            Ok(Selector::Stage(value.to_string()))
        }
        "stage" => Err("stage must be previous or current".into()),
        _ => Err(format!(
            "unknown parameter {key:?}: expected ?version=N or ?stage=previous"
        )),
    }
}

/// Percent-decodes a part of the reference.
fn decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

impl fmt::Display for Reference {
    /// The canonical spelling (the query after the fragment).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{}#{}", self.mount, self.path, self.field)?;
        match &self.selector {
            Selector::Current => Ok(()),
            Selector::Version(n) => write!(f, "?version={n}"),
            Selector::Stage(s) => write!(f, "?stage={s}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_forms_parse() {
        let r = Reference::parse("coffer://secret/app/db#password").unwrap();
        assert_eq!(
            (r.mount.as_str(), r.path.as_str(), r.field.as_str()),
            ("secret", "app/db", "password")
        );
        assert_eq!(r.selector, Selector::Current);
        let r = Reference::parse("coffer://secret/app/db#password?version=3").unwrap();
        assert_eq!(r.selector, Selector::Version(3));
        let r = Reference::parse("coffer://secret/app/db?stage=previous#password").unwrap();
        assert_eq!(r.selector, Selector::Stage("previous".into()));
        assert_eq!(
            r.to_string(),
            "coffer://secret/app/db#password?stage=previous"
        );
        let r = Reference::parse("COFFER://kv/a%20b#f%23x").unwrap();
        assert_eq!((r.path.as_str(), r.field.as_str()), ("a b", "f#x"));
    }

    #[test]
    fn malformed_references_are_refused_with_the_reference_named() {
        for bad in [
            "http://secret/app#k",
            "coffer://secret/app",
            "coffer://secret#k",
            "coffer:///app#k",
            "coffer://secret/app#",
            "coffer://secret/app#k#j",
            "coffer://secret/../app#k",
            "coffer://secret/a//b#k",
            "coffer://secret/app#k?version=0",
            "coffer://secret/app#k?version=x",
            "coffer://secret/app#k?stage=next",
            "coffer://secret/app#k?ttl=3",
            "coffer://secret/app #k",
        ] {
            let e = Reference::parse(bad).unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }
}

//! Policy path patterns: validation, matching and Vault's priority order.
//!
//! A pattern is an exact path (`secret/foo`), a prefix glob ending in `*`
//! (`secret/foo*`), or a pattern with `+` segments, each matching exactly one
//! path segment (`secret/+/config`, `secret/+/app*`).

use std::cmp::Ordering;
use std::fmt;

/// A validated policy path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    /// The pattern as written, without a leading `/`, with its `*` if any.
    text: String,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// No wildcard at all.
    Exact,
    /// Ends in `*`, no `+` segment.
    Prefix,
    /// At least one `+` segment; may end in `*`.
    Segments(SegmentShape),
}

/// The pre-split form of a pattern holding `+` segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentShape {
    /// Segments of the pattern (trailing `*` removed).
    pub(crate) parts: Vec<String>,
    /// Whether the pattern ended in `*` (its last segment is then a prefix).
    pub(crate) prefix: bool,
}

impl PathPattern {
    /// Validates a pattern. Leading `/`s are ignored (request paths are
    /// matched without them).
    ///
    /// Errors (as a message) on an empty pattern, on `+*`, and on `*` anywhere
    /// but at the end.
    pub fn parse(raw: &str) -> Result<PathPattern, String> {
        let text = raw.trim_start_matches('/');
        if text.is_empty() {
            return Err("empty path".to_string());
        }
        if text.contains("+*") {
            return Err("invalid use of wildcards ('+*' is forbidden)".to_string());
        }
        if let Some(pos) = text.find('*') {
            if pos != text.len() - 1 {
                return Err("'*' is only allowed as the last character of a path".to_string());
            }
        }
        let (body, prefix) = match text.strip_suffix('*') {
            Some(body) => (body, true),
            None => (text, false),
        };
        let kind = if body.split('/').any(|s| s == "+") {
            Kind::Segments(SegmentShape {
                parts: body.split('/').map(str::to_string).collect(),
                prefix,
            })
        } else if prefix {
            Kind::Prefix
        } else {
            Kind::Exact
        };
        Ok(PathPattern {
            text: text.to_string(),
            kind,
        })
    }

    /// The pattern text (without a leading `/`, with its trailing `*`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern ends in `*`.
    pub fn is_prefix(&self) -> bool {
        match &self.kind {
            Kind::Exact => false,
            Kind::Prefix => true,
            Kind::Segments(s) => s.prefix,
        }
    }

    /// Whether the pattern holds at least one `+` segment.
    pub fn has_segment_wildcards(&self) -> bool {
        matches!(self.kind, Kind::Segments(_))
    }

    /// The pattern without its trailing `*`.
    pub(crate) fn stem(&self) -> &str {
        self.text.strip_suffix('*').unwrap_or(&self.text)
    }

    pub(crate) fn kind(&self) -> &Kind {
        &self.kind
    }

    /// Whether `path` matches this pattern alone, regardless of other
    /// patterns. Leading `/`s of `path` are ignored.
    pub fn matches(&self, path: &str) -> bool {
        let path = path.trim_start_matches('/');
        match &self.kind {
            Kind::Exact => path == self.text,
            Kind::Prefix => path.starts_with(self.stem()),
            Kind::Segments(shape) => shape.matches(path, segment_count(path)),
        }
    }

    /// This pattern's rank in Vault's priority order.
    pub(crate) fn rank(&self) -> Rank<'_> {
        match &self.kind {
            Kind::Exact => Rank {
                first_wildcard: usize::MAX,
                prefix: false,
                wildcards: 0,
                stem: &self.text,
            },
            Kind::Prefix => Rank::prefix(self.stem()),
            Kind::Segments(shape) => shape.rank(self.stem()),
        }
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Number of `/`-separated segments of a path (an empty path has one).
pub(crate) fn segment_count(path: &str) -> usize {
    path.bytes().filter(|b| *b == b'/').count() + 1
}

impl SegmentShape {
    /// Matches `path`, which has `path_segments` segments.
    pub(crate) fn matches(&self, path: &str, path_segments: usize) -> bool {
        let n = self.parts.len();
        if path_segments < n || (!self.prefix && path_segments != n) {
            return false;
        }
        let last = n - 1;
        self.parts
            .iter()
            .zip(path.split('/'))
            .enumerate()
            .all(|(i, (pat, seg))| {
                pat == "+" || pat == seg || (self.prefix && i == last && seg.starts_with(pat))
            })
    }

    /// Whether some path below `dir` (which ends in `/`) can match: the
    /// pattern's segments agree with `dir`'s as far as both go, and the
    /// pattern either goes on past `dir` or ends in `*`.
    pub(crate) fn may_match_below(&self, dir: &str) -> bool {
        let dir: Vec<&str> = dir.trim_end_matches('/').split('/').collect();
        let n = self.parts.len();
        if n <= dir.len() && !self.prefix {
            return false;
        }
        let last = n - 1;
        self.parts
            .iter()
            .zip(dir.iter())
            .enumerate()
            .all(|(i, (pat, seg))| {
                pat == "+"
                    || pat == seg
                    || (self.prefix && i == last && seg.starts_with(pat.as_str()))
            })
    }

    pub(crate) fn rank<'a>(&self, stem: &'a str) -> Rank<'a> {
        let mut offset = 0;
        let mut first_wildcard = None;
        let mut wildcards = 0;
        for part in &self.parts {
            if part == "+" {
                wildcards += 1;
                first_wildcard.get_or_insert(offset);
            }
            offset += part.len() + 1;
        }
        Rank {
            first_wildcard: first_wildcard.unwrap_or(usize::MAX),
            prefix: self.prefix,
            wildcards,
            stem,
        }
    }
}

/// A pattern's position in Vault's priority order. Compare with
/// [`Rank::cmp_priority`]: `Greater` means higher priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rank<'a> {
    /// Byte offset of the first `+` or `*` (`usize::MAX` when none).
    pub(crate) first_wildcard: usize,
    /// Whether the pattern ends in `*`.
    pub(crate) prefix: bool,
    /// Number of `+` segments.
    pub(crate) wildcards: usize,
    /// The pattern without its trailing `*`.
    pub(crate) stem: &'a str,
}

impl<'a> Rank<'a> {
    /// The rank of a plain prefix pattern with the given stem.
    pub(crate) fn prefix(stem: &'a str) -> Rank<'a> {
        Rank {
            first_wildcard: stem.len(),
            prefix: true,
            wildcards: 0,
            stem,
        }
    }

    /// Vault's documented order. P1 ranks lower than P2 when, checked in
    /// order: (1) its first `+` or `*` comes earlier; (2) it ends in `*` and
    /// P2 does not; (3) it has more `+` segments; (4) it is shorter; (5) it
    /// sorts lower.
    pub(crate) fn cmp_priority(&self, other: &Rank<'_>) -> Ordering {
        self.first_wildcard
            .cmp(&other.first_wildcard)
            .then_with(|| other.prefix.cmp(&self.prefix))
            .then_with(|| other.wildcards.cmp(&self.wildcards))
            .then_with(|| self.stem.len().cmp(&other.stem.len()))
            .then_with(|| self.stem.cmp(other.stem))
    }
}

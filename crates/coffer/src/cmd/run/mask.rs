//! Masking of secret values in a child's output, as `op run` does: every
//! resolved value is replaced by `<concealed by coffer>`, also when the
//! child writes it in pieces across several writes.
//!
//! A stream keeps back the shortest tail that could still be the start of
//! a value (at most the longest value's length less one byte) until the
//! next write or the end of the stream decides it.

use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use parking_lot::RwLock;
use zeroize::Zeroizing;

/// What a value is replaced with.
pub const MASK: &[u8] = b"<concealed by coffer>";

/// The values to mask, compiled once.
pub struct Patterns {
    values: Vec<Zeroizing<Vec<u8>>>,
    automaton: Option<AhoCorasick>,
    longest: usize,
    first_bytes: [bool; 256],
}

/// Shows how many values there are, never them.
impl std::fmt::Debug for Patterns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Patterns")
            .field("values", &self.values.len())
            .finish()
    }
}

impl Patterns {
    /// Compiles the non-empty `values` (duplicates removed).
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Patterns {
        let mut list: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        for v in values {
            if !v.is_empty() && !list.iter().any(|x| x.as_slice() == v.as_bytes()) {
                list.push(Zeroizing::new(v.as_bytes().to_vec()));
            }
        }
        let automaton = if list.is_empty() {
            None
        } else {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(list.iter().map(|v| v.as_slice()))
                .ok()
        };
        let mut first_bytes = [false; 256];
        for v in &list {
            if let Some(b) = v.first() {
                first_bytes[usize::from(*b)] = true;
            }
        }
        Patterns {
            longest: list.iter().map(|v| v.len()).max().unwrap_or(0),
            values: list,
            automaton,
            first_bytes,
        }
    }

    /// Whether `bytes` is the start, but not the whole, of some value.
    fn is_proper_prefix(&self, bytes: &[u8]) -> bool {
        self.values
            .iter()
            .any(|v| v.len() > bytes.len() && v.starts_with(bytes))
    }

    /// Length of the longest tail of `bytes` that begins some value.
    fn held_tail(&self, bytes: &[u8]) -> usize {
        let window = self.longest.saturating_sub(1).min(bytes.len());
        let start = bytes.len() - window;
        (start..bytes.len())
            .find(|&i| {
                self.first_bytes[usize::from(bytes[i])] && self.is_proper_prefix(&bytes[i..])
            })
            .map(|i| bytes.len() - i)
            .unwrap_or(0)
    }
}

/// The value set shared by every stream of a `coffer run`; replaced (never
/// shrunk: old values stay masked) when a watched secret changes.
pub type Shared = Arc<RwLock<Arc<Patterns>>>;

/// One output stream's masker.
pub struct Masker {
    shared: Shared,
    held: Zeroizing<Vec<u8>>,
}

impl Masker {
    /// A masker reading its values from `shared`.
    pub fn new(shared: Shared) -> Masker {
        Masker {
            shared,
            held: Zeroizing::new(Vec::new()),
        }
    }

    /// Takes the next bytes the child wrote; returns what may be shown now.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let patterns = self.shared.read().clone();
        let mut buf = Zeroizing::new(std::mem::take(&mut *self.held));
        buf.extend_from_slice(chunk);
        let Some(ac) = &patterns.automaton else {
            return buf.to_vec();
        };
        let mut out = Vec::with_capacity(buf.len());
        let mut pos = 0;
        for m in ac.find_iter(buf.as_slice()) {
            out.extend_from_slice(&buf[pos..m.start()]);
            if m.end() == buf.len() && patterns.is_proper_prefix(&buf[m.start()..]) {
                // A longer value may still be coming: decide with the next write.
                self.held.extend_from_slice(&buf[m.start()..]);
                return out;
            }
            out.extend_from_slice(MASK);
            pos = m.end();
        }
        let rest = &buf[pos..];
        let keep = patterns.held_tail(rest);
        out.extend_from_slice(&rest[..rest.len() - keep]);
        self.held.extend_from_slice(&rest[rest.len() - keep..]);
        out
    }

    /// The end of the stream: what was kept back, masked where complete.
    pub fn finish(&mut self) -> Vec<u8> {
        let held = Zeroizing::new(std::mem::take(&mut *self.held));
        let patterns = self.shared.read().clone();
        let Some(ac) = &patterns.automaton else {
            return held.to_vec();
        };
        let mut out = Vec::new();
        let mut pos = 0;
        for m in ac.find_iter(held.as_slice()) {
            out.extend_from_slice(&held[pos..m.start()]);
            out.extend_from_slice(MASK);
            pos = m.end();
        }
        out.extend_from_slice(&held[pos..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(values: &[&str]) -> Shared {
        Arc::new(RwLock::new(Arc::new(Patterns::new(values.iter().copied()))))
    }

    fn run(values: &[&str], chunks: &[&[u8]]) -> String {
        let mut m = Masker::new(shared(values));
        let mut out = Vec::new();
        for c in chunks {
            out.extend(m.feed(c));
        }
        out.extend(m.finish());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn whole_values_are_masked() {
        assert_eq!(
            run(&["s3cr3t"], &[b"pw=s3cr3t and s3cr3t\n"]),
            "pw=<concealed by coffer> and <concealed by coffer>\n"
        );
        assert_eq!(run(&[], &[b"plain"]), "plain");
    }

    #[test]
    fn values_split_across_writes_are_masked() {
        let text = b"before hunter2-long-value after";
        for split in 1..text.len() {
            let (a, b) = text.split_at(split);
            assert_eq!(
                run(&["hunter2-long-value"], &[a, b]),
                "before <concealed by coffer> after",
                "split at {split}"
            );
        }
        // one byte at a time
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(
            run(&["hunter2-long-value"], &bytes),
            "before <concealed by coffer> after"
        );
    }

    #[test]
    fn the_longer_of_two_overlapping_values_wins_even_when_split() {
        assert_eq!(
            run(&["abc", "abcdef"], &[b"x abc", b"def y"]),
            "x <concealed by coffer> y"
        );
        assert_eq!(
            run(&["abc", "abcdef"], &[b"x abc", b" y"]),
            "x <concealed by coffer> y"
        );
    }

    #[test]
    fn a_prefix_that_does_not_complete_is_shown() {
        assert_eq!(run(&["secretvalue"], &[b"secret", b"ary"]), "secretary");
        assert_eq!(
            run(&["secretvalue"], &[b"ends with secr"]),
            "ends with secr"
        );
    }
}

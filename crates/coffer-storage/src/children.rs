//! The walk behind every Vault-style directory listing: the direct children
//! of a prefix, in order, optionally one page of them.
//!
//! A backend feeds [`ChildWalk`] the full keys it reads in sorted order from
//! [`ChildWalk::cursor`] on. The walk answers whether to go on, to seek (a
//! directory was seen: its contents are skipped with one new range read), or
//! to stop (the prefix ended or the page is full). Seeking makes a listing
//! cost one read per directory plus one per flat name, never a read of
//! everything below the prefix.

use crate::dir_skip_key;

/// What a backend does after feeding one key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Feed the next key of the same range read.
    Next,
    /// Start a new range read at [`ChildWalk::cursor`].
    Seek,
    /// The listing is complete.
    Done,
}

/// The state of one listing of `prefix`'s children.
pub(crate) struct ChildWalk<'a> {
    prefix: &'a str,
    /// Entries up to this one are skipped: the page's `after`, then the last
    /// entry taken (a re-read after a seek or a full batch meets it again).
    last: Option<String>,
    limit: Option<usize>,
    cursor: String,
    out: Vec<String>,
}

impl<'a> ChildWalk<'a> {
    /// A walk of the children of `prefix` that sort after `after` (an entry
    /// name as a listing returns it, `"b"` or `"b/"`), at most `limit` of them.
    pub(crate) fn new(prefix: &'a str, after: Option<&str>, limit: Option<usize>) -> Self {
        let after = after.filter(|a| !a.is_empty());
        let cursor = match after {
            Some(a) => match a.strip_suffix('/') {
                Some(dir) => dir_skip_key(prefix, dir),
                None => format!("{prefix}{a}"),
            },
            None => prefix.to_string(),
        };
        ChildWalk {
            prefix,
            last: after.map(str::to_string),
            limit,
            cursor,
            out: Vec::new(),
        }
    }

    /// The key the next range read starts at (inclusive).
    pub(crate) fn cursor(&self) -> &str {
        &self.cursor
    }

    /// Whether the page is already full (a limit of zero asks for nothing).
    pub(crate) fn is_full(&self) -> bool {
        self.limit.is_some_and(|n| self.out.len() >= n)
    }

    /// How many more entries the page takes (`None`: no limit).
    pub(crate) fn remaining(&self) -> Option<usize> {
        self.limit.map(|n| n.saturating_sub(self.out.len()))
    }

    /// Takes the next full key of the current range read.
    pub(crate) fn feed(&mut self, key: &str) -> Step {
        if self.is_full() {
            return Step::Done;
        }
        let Some(rest) = key.strip_prefix(self.prefix) else {
            return Step::Done;
        };
        let (entry, is_dir) = match rest.find('/') {
            Some(i) => (&rest[..=i], true),
            None if rest.is_empty() => return Step::Next,
            None => (rest, false),
        };
        if self.last.as_deref().is_none_or(|last| entry > last) {
            self.out.push(entry.to_string());
            self.last = Some(entry.to_string());
        }
        if self.is_full() {
            return Step::Done;
        }
        if is_dir {
            self.cursor = dir_skip_key(self.prefix, &entry[..entry.len() - 1]);
            Step::Seek
        } else {
            Step::Next
        }
    }

    /// Continues a batch read that ended on `last_key` without a seek: the
    /// next read starts there again (its entry is then skipped).
    pub(crate) fn resume_at(&mut self, last_key: &str) {
        self.cursor = last_key.to_string();
    }

    /// The entries taken, sorted.
    pub(crate) fn finish(self) -> Vec<String> {
        self.out
    }

    /// Runs the walk over a backend's sorted range reads: `read(cursor,
    /// feed)` calls `feed` with each key from `cursor` on, in order, and
    /// stops when `feed` answers `false`. Returns the entries.
    pub(crate) fn run<E>(
        mut self,
        mut read: impl FnMut(&str, &mut dyn FnMut(&str) -> bool) -> Result<(), E>,
    ) -> Result<Vec<String>, E> {
        while !self.is_full() {
            let cursor = self.cursor.clone();
            let mut last = Step::Next;
            read(&cursor, &mut |key| {
                last = self.feed(key);
                last == Step::Next
            })?;
            if last != Step::Seek {
                break;
            }
        }
        Ok(self.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(keys: &[&str], prefix: &str, after: Option<&str>, limit: Option<usize>) -> Vec<String> {
        let mut sorted: Vec<&str> = keys.to_vec();
        sorted.sort();
        let run = ChildWalk::new(prefix, after, limit).run(|from, feed| {
            for k in sorted.iter().filter(|k| **k >= from) {
                if !feed(k) {
                    break;
                }
            }
            Ok::<(), ()>(())
        });
        run.unwrap_or_default()
    }

    const KEYS: &[&str] = &[
        "p/a", "p/b", "p/c/d", "p/c/e", "p/e", "p/f/g/h", "p/h", "q/x",
    ];

    #[test]
    fn lists_every_child_once() {
        assert_eq!(
            walk(KEYS, "p/", None, None),
            ["a", "b", "c/", "e", "f/", "h"]
        );
        assert_eq!(walk(KEYS, "", None, None), ["p/", "q/"]);
    }

    #[test]
    fn pages_start_after_an_entry_of_either_kind() {
        assert_eq!(walk(KEYS, "p/", Some("b"), None), ["c/", "e", "f/", "h"]);
        assert_eq!(walk(KEYS, "p/", Some("c/"), Some(2)), ["e", "f/"]);
        assert_eq!(walk(KEYS, "p/", Some("c"), Some(2)), ["c/", "e"]);
        assert_eq!(walk(KEYS, "p/", Some("a"), Some(1)), ["b"]);
        assert_eq!(walk(KEYS, "p/", Some("zzz"), None), Vec::<String>::new());
        assert_eq!(walk(KEYS, "p/", None, Some(0)), Vec::<String>::new());
        assert_eq!(walk(KEYS, "p/", Some("0"), None).len(), 6);
    }
}

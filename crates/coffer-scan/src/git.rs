//! Git history and staged content, read through the `git` CLI.
//!
//! `git log --raw` lists, commit by commit from the oldest, every blob a
//! commit introduced; each unique blob is remembered with the first commit,
//! author, date and path that brought it in. `git cat-file --batch` then
//! streams each unique blob once, and the blobs are scanned in parallel. A
//! secret kept across many edits of a file is reported once, at the commit
//! that introduced it.

use crate::engine::Scanner;
use crate::finding::{CommitInfo, Finding};
use crate::walk::{has_binary_extension, sort_findings, Progress};
use crate::Error;
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

/// Which commits to scan.
#[derive(Debug, Clone)]
pub enum Range {
    /// Everything reachable from HEAD.
    Head,
    /// Everything reachable from any ref.
    All,
    /// Commits after REV, up to HEAD (`REV..HEAD`).
    Since(String),
}

/// A blob and where it first appeared.
#[derive(Debug, Clone)]
struct BlobOrigin {
    path: String,
    commit: Option<Arc<CommitInfo>>,
    /// Added line ranges (staged scans): findings elsewhere are dropped.
    added: Option<Vec<(usize, usize)>>,
}

fn git(repo: &Path) -> Command {
    let mut c = Command::new("git");
    c.arg("-C").arg(repo).arg("-c").arg("core.quotePath=false");
    c
}

fn run_git(repo: &Path, args: &[&str]) -> Result<Vec<u8>, Error> {
    let out = git(repo)
        .args(args)
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| Error::Git(format!("cannot run git: {e}")))?;
    if !out.status.success() {
        return Err(Error::Git(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(out.stdout)
}

/// The top of the work tree containing `path`.
pub fn toplevel(path: &Path) -> Result<PathBuf, Error> {
    let out = run_git(path, &["rev-parse", "--show-toplevel"])?;
    Ok(PathBuf::from(String::from_utf8_lossy(&out).trim()))
}

/// Scans a repository's history.
///
/// `git log` is read as it runs: each blob is requested from `git cat-file`
/// as soon as the log names it, so listing the history and reading the
/// blobs overlap.
pub fn scan_history(
    scanner: &Scanner,
    repo: &Path,
    range: &Range,
    max_blob: u64,
    progress: &Progress,
) -> Result<Vec<Finding>, Error> {
    let mut args = vec![
        "log",
        "--raw",
        "--no-abbrev",
        "--no-renames",
        "--reverse",
        "--diff-merges=first-parent",
        "--format=%x01%H%x02%an%x02%ae%x02%aI",
    ];
    let spec;
    match range {
        Range::Head => args.push("HEAD"),
        Range::All => args.push("--all"),
        Range::Since(rev) => {
            spec = format!("{rev}..HEAD");
            args.push(&spec);
        }
    }
    args.push("--");
    let mut child = git(repo)
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Git(format!("cannot run git: {e}")))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::Git("no stdout".into()))?;
    let mut stderr = child
        .stderr
        .take()
        .ok_or_else(|| Error::Git("no stderr".into()))?;
    let errors = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let blobs = LogBlobs::new(BufReader::with_capacity(1 << 20, stdout));
    let result = scan_blobs(scanner, repo, blobs, max_blob, progress);
    let status = child
        .wait()
        .map_err(|e| Error::Git(format!("git log: {e}")))?;
    let err = errors.join().unwrap_or_default();
    if !status.success() {
        return Err(Error::Git(String::from_utf8_lossy(&err).trim().to_string()));
    }
    result
}

/// The blobs of `git log --raw` output, in order of first appearance, each
/// with the first commit and path that brought it in.
struct LogBlobs<R> {
    reader: R,
    line: Vec<u8>,
    seen: HashSet<String>,
    commit: Option<Arc<CommitInfo>>,
}

impl<R: BufRead> LogBlobs<R> {
    fn new(reader: R) -> Self {
        LogBlobs {
            reader,
            line: Vec::new(),
            seen: HashSet::new(),
            commit: None,
        }
    }
}

impl<R: BufRead> Iterator for LogBlobs<R> {
    type Item = (String, BlobOrigin);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.line.clear();
            match self.reader.read_until(b'\n', &mut self.line) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            let line = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
            if let Some(rest) = line.strip_prefix(b"\x01") {
                self.commit = Some(Arc::new(parse_commit(rest)));
            } else if line.starts_with(b":") {
                if let Some((sha, path)) = parse_raw_line(line) {
                    if self.seen.insert(sha.clone()) {
                        return Some((
                            sha,
                            BlobOrigin {
                                path,
                                commit: self.commit.clone(),
                                added: None,
                            },
                        ));
                    }
                }
            }
        }
    }
}

/// `<id>\x02<author>\x02<email>\x02<date>` (the `--format` above).
fn parse_commit(rest: &[u8]) -> CommitInfo {
    let text = String::from_utf8_lossy(rest);
    let mut parts = text.split('\x02');
    CommitInfo {
        commit: parts.next().unwrap_or_default().to_string(),
        author: parts.next().unwrap_or_default().to_string(),
        email: parts.next().unwrap_or_default().to_string(),
        date: parts.next().unwrap_or_default().to_string(),
    }
}

/// `:100644 100644 <old> <new> M\t<path>` → (new blob, path); None for
/// deletions, submodules and symlinks.
fn parse_raw_line(line: &[u8]) -> Option<(String, String)> {
    let text = String::from_utf8_lossy(line);
    let (meta, path) = text.split_once('\t')?;
    let mut f = meta.get(1..)?.split(' ');
    let _old_mode = f.next()?;
    let new_mode = f.next()?;
    let _old = f.next()?;
    let new = f.next()?;
    if new.bytes().all(|b| b == b'0') || !new_mode.starts_with("100") {
        return None;
    }
    // A rename/copy line carries "old\tnew"; keep the new path.
    let path = path.rsplit('\t').next().unwrap_or(path);
    Some((new.to_string(), unquote(path)))
}

/// Undoes git's C-style quoting of unusual paths.
fn unquote(p: &str) -> String {
    match p.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => p.to_string(),
    }
}

/// A blob to scan: its place in the order of first appearance, where it
/// came from and its content (empty for binary extensions, never read).
type Job = (usize, BlobOrigin, Vec<u8>);

/// Streams blobs with `git cat-file --batch` and scans them in parallel.
/// Blobs whose path a global allowlist excludes are never read, nor are
/// those with a binary extension (only path rules apply to them).
fn scan_blobs<I>(
    scanner: &Scanner,
    repo: &Path,
    blobs: I,
    max_blob: u64,
    progress: &Progress,
) -> Result<Vec<Finding>, Error>
where
    I: Iterator<Item = (String, BlobOrigin)> + Send,
{
    let mut child = git(repo)
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::Git(format!("cannot run git cat-file: {e}")))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| Error::Git("no stdin".into()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::Git("no stdout".into()))?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(64);
    // Blobs asked of cat-file, in the order it answers.
    let (asked_tx, asked) = std::sync::mpsc::channel::<(usize, BlobOrigin)>();
    let (found, read_result) = std::thread::scope(|s| {
        let direct = tx.clone();
        s.spawn(move || {
            for (i, (id, o)) in blobs.enumerate() {
                if scanner.path_excluded(&o.path) {
                    continue;
                }
                if has_binary_extension(Path::new(&o.path)) {
                    if direct.send((i, o, Vec::new())).is_err() {
                        break;
                    }
                    continue;
                }
                if writeln!(stdin, "{id}").is_err() || asked_tx.send((i, o)).is_err() {
                    break;
                }
            }
            // Dropping stdin ends cat-file once it has answered.
        });
        let reader = s.spawn(move || -> Result<(), Error> {
            let mut r = BufReader::with_capacity(1 << 20, stdout);
            let mut header = Vec::new();
            for (i, o) in asked {
                header.clear();
                if r.read_until(b'\n', &mut header)
                    .map_err(|e| Error::io("git cat-file", e))?
                    == 0
                {
                    return Err(Error::Git("cat-file ended early".into()));
                }
                let h = String::from_utf8_lossy(&header);
                let mut parts = h.split_whitespace();
                let _id = parts.next();
                let kind = parts.next().unwrap_or("missing");
                if kind == "missing" {
                    continue;
                }
                let size: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                if kind != "blob" || size > max_blob {
                    std::io::copy(&mut (&mut r).take(size), &mut std::io::sink())
                        .map_err(|e| Error::io("git cat-file", e))?;
                } else {
                    let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                    (&mut r)
                        .take(size)
                        .read_to_end(&mut buf)
                        .map_err(|e| Error::io("git cat-file", e))?;
                    if tx.send((i, o, buf)).is_err() {
                        break;
                    }
                }
                let mut nl = [0u8; 1];
                r.read_exact(&mut nl)
                    .map_err(|e| Error::io("git cat-file", e))?;
            }
            Ok(())
        });
        let found: Vec<(usize, Finding)> = rx
            .into_iter()
            .par_bridge()
            .flat_map_iter(|(i, o, data)| {
                let mut f = if has_binary_extension(Path::new(&o.path)) {
                    scanner.scan(&o.path, b"\0")
                } else {
                    scanner.scan(&o.path, &data)
                };
                if let Some(added) = &o.added {
                    f.retain(|x| added.iter().any(|&(a, b)| x.line >= a && x.line < b));
                }
                for x in &mut f {
                    x.commit = o.commit.as_deref().cloned();
                }
                progress.record(data.len(), f.len());
                f.into_iter().map(move |x| (i, x))
            })
            .collect();
        let read_result = reader
            .join()
            .map_err(|_| Error::Git("blob reader panicked".into()))
            .and_then(|r| r);
        (found, read_result)
    });
    let _ = child.wait();
    read_result?;
    Ok(group(scanner, found))
}

/// One report per secret, at the commit that introduced it (the first blob
/// holding it); later commits and paths holding it become its extra
/// locations. A secret two rules both match (a password inside a database
/// URL and after `password:`) is one secret. Path-rule findings (a key store
/// file, no secret) are one per path.
fn group(scanner: &Scanner, mut found: Vec<(usize, Finding)>) -> Vec<Finding> {
    found.sort_by_key(|(i, f)| (*i, f.line, f.column));
    let mut first: HashMap<String, usize> = HashMap::new();
    let mut findings: Vec<Finding> = Vec::new();
    // Commit allowlists first: an allowed introducing commit must not hide
    // the later commits that still hold the secret.
    let mut flat: Vec<Finding> = found.into_iter().map(|(_, f)| f).collect();
    scanner.retain_commit_allowed(&mut flat);
    for f in flat {
        let key = if f.secret.is_empty() {
            crate::finding::fingerprint(&f.rule_id, &f.path, b"")
        } else {
            crate::finding::fingerprint("", "", f.secret.as_bytes())
        };
        match first.get(&key) {
            Some(&at) => {
                let head = &mut findings[at];
                let loc = crate::finding::Location {
                    path: f.path.clone(),
                    line: f.line,
                    commit: f.commit.as_ref().map(|c| c.commit.clone()),
                };
                let same_place = head.path == loc.path
                    && head.commit.as_ref().map(|c| &c.commit) == loc.commit.as_ref();
                if !same_place
                    && head.also.len() < crate::finding::MAX_EXTRA_LOCATIONS
                    && !head.also.contains(&loc)
                {
                    head.also.push(loc);
                }
            }
            None => {
                first.insert(key, findings.len());
                findings.push(f);
            }
        }
    }
    sort_findings(&mut findings);
    findings
}

/// Scans what is staged in the index: only lines the commit would add.
pub fn scan_staged(
    scanner: &Scanner,
    repo: &Path,
    progress: &Progress,
) -> Result<Vec<Finding>, Error> {
    let raw = run_git(
        repo,
        &[
            "diff",
            "--cached",
            "--raw",
            "--no-abbrev",
            "--no-renames",
            "--diff-filter=AM",
        ],
    )?;
    let patch = run_git(
        repo,
        &[
            "diff",
            "--cached",
            "--no-renames",
            "--diff-filter=AM",
            "-U0",
            "--no-color",
            "--no-ext-diff",
        ],
    )?;
    let added = parse_added_lines(&patch);
    let mut blobs = Vec::new();
    for line in raw.split(|&b| b == b'\n') {
        if let Some((sha, path)) = parse_raw_line(line) {
            let ranges = added.get(&path).cloned().unwrap_or_default();
            blobs.push((
                sha,
                BlobOrigin {
                    path,
                    commit: None,
                    added: Some(ranges),
                },
            ));
        }
    }
    scan_blobs(scanner, repo, blobs.into_iter(), u64::MAX, progress)
}

/// Maps each file of a `-U0` patch to its added line ranges [start, end).
fn parse_added_lines(patch: &[u8]) -> HashMap<String, Vec<(usize, usize)>> {
    let mut out: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
    let mut current: Option<String> = None;
    for line in patch.split(|&b| b == b'\n') {
        if let Some(p) = line.strip_prefix(b"+++ ") {
            let p = String::from_utf8_lossy(p);
            let p = unquote(p.trim_end());
            current = p.strip_prefix("b/").map(str::to_string);
        } else if line.starts_with(b"@@ ") {
            let text = String::from_utf8_lossy(line);
            let Some(plus) = text.split(' ').find(|t| t.starts_with('+')) else {
                continue;
            };
            let mut nums = plus[1..].split(',');
            let start: usize = nums.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let count: usize = nums.next().and_then(|s| s.parse().ok()).unwrap_or(1);
            if let Some(file) = &current {
                out.entry(file.clone())
                    .or_default()
                    .push((start, start + count));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_lines() {
        let l = b":000000 100644 0000000000000000000000000000000000000000 e69de29bb2d1d6434b8b29ae775ad8c2e48c5391 A\tsrc/a b.rs";
        let (sha, path) = parse_raw_line(l).unwrap();
        assert_eq!(sha, "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
        assert_eq!(path, "src/a b.rs");
        let del = b":100644 000000 e69de29bb2d1d6434b8b29ae775ad8c2e48c5391 0000000000000000000000000000000000000000 D\tx";
        assert!(parse_raw_line(del).is_none());
    }

    #[test]
    fn added_ranges() {
        let p = b"diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1,0 +2,3 @@\n+a\n@@ -9 +12 @@\n";
        let m = parse_added_lines(p);
        assert_eq!(m["x"], vec![(2, 5), (12, 13)]);
    }
}

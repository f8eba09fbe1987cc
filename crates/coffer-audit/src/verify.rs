//! Offline verification of audit logs: `coffer audit verify` calls this
//! directly; it needs no server.
//!
//! The files are read in the order given (oldest rotated file first) as one
//! stream of entries. The first of these problems is reported with its
//! file, line and sequence number:
//!
//! * a line that is not an entry (not JSON, no `seq`/`prev`): **edited**;
//! * an entry whose `prev` is not the hash of the line before: that line
//!   was **edited**;
//! * a sequence number jumping ahead: entries **missing** — or, when the
//!   expected number follows shortly after, entries **reordered**;
//! * a sequence number repeating or going back: an entry **inserted**;
//! * a checkpoint whose signature does not verify, or signed by another key
//!   than the pinned one (or than the first checkpoint's): **bad signature**;
//! * after a closing checkpoint (seal, disable), anything but a `start` or
//!   `resume` checkpoint: **appended** after the log was closed;
//! * a log that does not end with a closing checkpoint (`disable`, `seal`,
//!   or `rotate`, written before a SIGHUP reopen): **truncated** — its last
//!   entries (and the checkpoint closing them) may have been cut off. The
//!   problem names the last signed sequence number and how many entries
//!   follow it.
//!
//! A live log (its device still enabled) has no closing checkpoint yet:
//! with `open` it is accepted, and the report says where its signed part
//! ends (`last_signed_seq`) and how many entries follow, covered by the hash
//! chain only (refused with `strict`). Cutting entries off the end of an
//! open log cannot be told from a log that is still being written; compare
//! `last_seq` with what the server has written since.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use serde::Serialize;
use serde_json::Value;

use super::chain::{entry_hash, json_text, split_signature, GENESIS};
use super::signer;

/// How far ahead the verifier looks to tell reordered from missing entries.
const LOOKAHEAD: usize = 1024;

/// Settings of a verification.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The public key checkpoints must be signed with (raw 32 bytes).
    pub public_key: Option<Vec<u8>>,
    /// With `open`: refuse a log whose last entry is not a signed
    /// checkpoint (a closed log always ends with one).
    pub strict: bool,
    /// The log is live (its device is enabled): accept one that does not
    /// end with a closing checkpoint.
    pub open: bool,
}

/// Checkpoint reasons that end a log (or a file of it): nothing the device
/// writes later goes after them in the same file.
pub const CLOSING_REASONS: &[&str] = &["disable", "seal", "rotate"];

/// What kind of tampering was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// An entry's bytes changed.
    Edited,
    /// Entries are absent.
    Missing,
    /// An entry that the chain does not account for.
    Inserted,
    /// Entries out of order.
    Reordered,
    /// A checkpoint's signature is invalid or by another key.
    BadSignature,
    /// Entries after the log was closed.
    Appended,
    /// Entries after the last checkpoint (strict mode only).
    Unsigned,
    /// The log does not end with a closing checkpoint (and `open` was not
    /// given): its end may have been cut off.
    Truncated,
}

/// The first problem found.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// What kind.
    pub kind: ProblemKind,
    /// The file.
    pub file: String,
    /// The line (1-based).
    pub line: u64,
    /// The sequence number concerned, when known.
    pub seq: Option<u64>,
    /// A sentence for people.
    pub message: String,
}

/// The result of a verification.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Entries read.
    pub entries: u64,
    /// Checkpoints whose signature verified.
    pub checkpoints: u64,
    /// First and last sequence numbers seen.
    pub first_seq: Option<u64>,
    /// Last sequence number seen.
    pub last_seq: Option<u64>,
    /// Key id of the signing key.
    pub key_id: Option<String>,
    /// Whether the key was given (pinned) rather than taken from the log.
    pub key_pinned: bool,
    /// Sequence number of the last checkpoint whose signature verified.
    pub last_signed_seq: Option<u64>,
    /// Reason of that checkpoint (`start`, `interval`, `seal`, ...).
    pub last_checkpoint: Option<String>,
    /// Entries after the last signed checkpoint.
    pub unsigned_tail: u64,
    /// Whether the log ends with a closing checkpoint ([`CLOSING_REASONS`]).
    pub closed: bool,
    /// Whether it was verified as a live log (`open`).
    pub open: bool,
    /// Notes that are not failures.
    pub notes: Vec<String>,
    /// The first problem, if any.
    pub problem: Option<Problem>,
}

impl Report {
    /// Whether the log verified.
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

struct Line {
    file: usize,
    number: u64,
    text: String,
}

/// Reads lines across the files, with a look-ahead buffer.
struct Lines {
    files: Vec<PathBuf>,
    current: usize,
    reader: Option<BufReader<File>>,
    number: u64,
    ahead: VecDeque<Line>,
}

impl Lines {
    fn read_one(&mut self) -> std::io::Result<Option<Line>> {
        loop {
            if self.reader.is_none() {
                if self.current >= self.files.len() {
                    return Ok(None);
                }
                self.reader = Some(BufReader::new(File::open(&self.files[self.current])?));
                self.number = 0;
            }
            let mut buf = Vec::new();
            let n = match self.reader.as_mut() {
                Some(r) => r.read_until(b'\n', &mut buf)?,
                None => 0,
            };
            if n == 0 {
                self.reader = None;
                self.current += 1;
                continue;
            }
            self.number += 1;
            return Ok(Some(Line {
                file: self.current,
                number: self.number,
                text: String::from_utf8_lossy(&buf).into_owned(),
            }));
        }
    }

    fn next(&mut self) -> std::io::Result<Option<Line>> {
        match self.ahead.pop_front() {
            Some(l) => Ok(Some(l)),
            None => self.read_one(),
        }
    }

    /// Whether an entry with `seq` comes within the look-ahead window.
    fn seq_ahead(&mut self, seq: u64) -> std::io::Result<bool> {
        while self.ahead.len() < LOOKAHEAD {
            match self.read_one()? {
                Some(l) => self.ahead.push_back(l),
                None => break,
            }
        }
        Ok(self
            .ahead
            .iter()
            .any(|l| parse(&l.text).and_then(|(v, _)| v.get("seq")?.as_u64()) == Some(seq)))
    }
}

fn parse(line: &str) -> Option<(Value, &str)> {
    let text = json_text(line)?;
    let v: Value = serde_json::from_str(text).ok()?;
    v.is_object().then_some((v, text))
}

/// Verifies the audit log made of `files`, in order.
pub fn verify_files(files: &[PathBuf], opts: &VerifyOptions) -> std::io::Result<Report> {
    let mut lines = Lines {
        files: files.to_vec(),
        current: 0,
        reader: None,
        number: 0,
        ahead: VecDeque::new(),
    };
    let name = |i: usize| files.get(i).map(|p| display(p)).unwrap_or_default();
    let mut report = Report {
        key_pinned: opts.public_key.is_some(),
        open: opts.open,
        ..Default::default()
    };
    let mut key: Option<Vec<u8>> = opts.public_key.clone();
    // (seq, hash, file, line) of the entry before.
    let mut last: Option<(u64, String, usize, u64)> = None;
    let mut closed = false;
    let fail = |report: &mut Report, kind, l: &Line, seq, message: String| {
        report.problem = Some(Problem {
            kind,
            file: name(l.file),
            line: l.number,
            seq,
            message,
        });
    };
    while let Some(l) = lines.next()? {
        let Some((v, text)) = parse(&l.text) else {
            fail(
                &mut report,
                ProblemKind::Edited,
                &l,
                None,
                "not a valid audit entry (edited or corrupted)".into(),
            );
            return Ok(report);
        };
        let (Some(seq), Some(prev)) = (
            v.get("seq").and_then(Value::as_u64),
            v.get("prev").and_then(Value::as_str),
        ) else {
            fail(
                &mut report,
                ProblemKind::Inserted,
                &l,
                None,
                "entry without a sequence number or link (not written by Coffer)".into(),
            );
            return Ok(report);
        };
        let checkpoint = v.get("type").and_then(Value::as_str) == Some("checkpoint");
        let reason = v
            .pointer("/checkpoint/reason")
            .and_then(Value::as_str)
            .unwrap_or("");
        let starts_chain = checkpoint && reason == "start" && seq == 1 && prev == GENESIS;
        if closed && !(checkpoint && (reason == "resume" || starts_chain)) {
            fail(
                &mut report,
                ProblemKind::Appended,
                &l,
                Some(seq),
                "entry after the log was closed by a signed checkpoint".into(),
            );
            return Ok(report);
        }
        match &last {
            None => {
                if !(seq == 1 && prev == GENESIS) {
                    report.notes.push(format!(
                        "the log starts at seq {seq}: earlier entries are in files not given"
                    ));
                }
            }
            Some((lseq, lhash, lfile, lline)) => {
                let expected = lseq + 1;
                if starts_chain {
                    report.notes.push(format!(
                        "{}:{}: a new device chain starts",
                        name(l.file),
                        l.number
                    ));
                } else if seq == expected {
                    if prev != lhash {
                        report.problem = Some(Problem {
                            kind: ProblemKind::Edited,
                            file: name(*lfile),
                            line: *lline,
                            seq: Some(*lseq),
                            message: format!("entry seq {lseq} was edited: its hash does not match the link in seq {seq}"),
                        });
                        return Ok(report);
                    }
                } else if seq > expected {
                    if lines.seq_ahead(expected)? {
                        fail(
                            &mut report,
                            ProblemKind::Reordered,
                            &l,
                            Some(seq),
                            format!("entries out of order: seq {seq} comes before seq {expected}"),
                        );
                    } else {
                        let range = if seq - 1 == expected {
                            format!("seq {expected}")
                        } else {
                            format!("seq {expected} to {}", seq - 1)
                        };
                        fail(
                            &mut report,
                            ProblemKind::Missing,
                            &l,
                            Some(seq),
                            format!("entries missing before this line: {range}"),
                        );
                    }
                    return Ok(report);
                } else {
                    fail(
                        &mut report,
                        ProblemKind::Inserted,
                        &l,
                        Some(seq),
                        format!("entry inserted: seq {seq} where seq {expected} was expected"),
                    );
                    return Ok(report);
                }
            }
        }
        if checkpoint {
            let public = v
                .pointer("/checkpoint/public_key")
                .and_then(Value::as_str)
                .and_then(|k| STANDARD.decode(k).ok())
                .unwrap_or_default();
            let signed = split_signature(text)
                .is_some_and(|(message, sig)| signer::verify(&public, message.as_bytes(), &sig));
            let key_ok = match &key {
                Some(k) => *k == public,
                None => {
                    report.notes.push(
                        "the signing key was taken from the log; pin it with --public-key".into(),
                    );
                    key = Some(public.clone());
                    true
                }
            };
            if !signed || !key_ok {
                let why = if signed {
                    "signed by another key"
                } else {
                    "signature does not verify (edited)"
                };
                fail(
                    &mut report,
                    ProblemKind::BadSignature,
                    &l,
                    Some(seq),
                    format!("checkpoint {why}"),
                );
                return Ok(report);
            }
            report.key_id = Some(signer::key_id(&public));
            report.checkpoints += 1;
            report.unsigned_tail = 0;
            report.last_signed_seq = Some(seq);
            report.last_checkpoint = Some(reason.to_string());
            closed = reason == "seal" || reason == "disable";
        } else {
            report.unsigned_tail += 1;
        }
        report.entries += 1;
        report.first_seq.get_or_insert(seq);
        report.last_seq = Some(seq);
        last = Some((seq, entry_hash(text), l.file, l.number));
    }
    report.closed = report.unsigned_tail == 0
        && report
            .last_checkpoint
            .as_deref()
            .is_some_and(|r| CLOSING_REASONS.contains(&r));
    let signed_part = match (report.last_signed_seq, &report.last_checkpoint) {
        (Some(s), Some(r)) => format!("the last signed checkpoint is seq {s} ({r})"),
        _ => "no checkpoint verified".to_string(),
    };
    if !opts.open && !report.closed {
        let (file, line, seq) = match &last {
            Some((seq, _, file, line)) => (name(*file), *line, Some(*seq)),
            None => (name(0), 0, None),
        };
        report.problem = Some(Problem {
            kind: ProblemKind::Truncated,
            file,
            line,
            seq,
            message: format!(
                "the log does not end with a closing checkpoint (disable, seal or rotate): \
                 {signed_part}, {} entries after it are unsigned; its end may have been \
                 cut off (a log still being written verifies with --open)",
                report.unsigned_tail
            ),
        });
        return Ok(report);
    }
    if opts.open && !report.closed {
        report.notes.push(format!(
            "open log: last signed checkpoint seq {}; {} entries after it are covered by \
             the hash chain only",
            report
                .last_signed_seq
                .map_or_else(|| "none".to_string(), |s| s.to_string()),
            report.unsigned_tail
        ));
        if opts.strict && report.unsigned_tail > 0 {
            if let Some((seq, _, file, line)) = &last {
                report.problem = Some(Problem {
                    kind: ProblemKind::Unsigned,
                    file: name(*file),
                    line: *line,
                    seq: Some(*seq),
                    message: format!(
                        "{} entries after the last signed checkpoint are covered by the hash \
                         chain only",
                        report.unsigned_tail
                    ),
                });
            }
        }
    }
    if report.entries == 0 && report.problem.is_none() {
        report.notes.push("no entries".into());
    }
    Ok(report)
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::super::chain::ChainState;
    use super::super::config::DeviceConfig;
    use super::super::device::Device;
    use super::super::signer::Signer;
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    /// A closed log of `n` entries plus checkpoints, every `interval`.
    fn log(dir: &Path, n: usize, interval: u64) -> (PathBuf, Vec<u8>) {
        let path = dir.join("audit.log");
        let cfg = DeviceConfig {
            path: "file/".into(),
            kind: "file".into(),
            description: String::new(),
            options: BTreeMap::from([
                ("file_path".to_string(), path.display().to_string()),
                ("checkpoint_interval".to_string(), interval.to_string()),
            ]),
            local: false,
            salt: hex::encode([7u8; 32]),
        };
        let dev = Device::new(cfg, ChainState::default()).unwrap();
        let (signer, _) = Signer::generate().unwrap();
        dev.checkpoint("start", &signer).unwrap();
        for i in 0..n {
            let entry = json!({"type": "request", "i": i})
                .as_object()
                .unwrap()
                .clone();
            dev.write(entry, &signer).unwrap();
        }
        dev.checkpoint("seal", &signer).unwrap();
        let key = STANDARD.decode(signer.public_key()).unwrap();
        (path, key)
    }

    fn lines(p: &Path) -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write(p: &Path, lines: &[String]) {
        std::fs::write(p, lines.join("\n") + "\n").unwrap();
    }

    fn check(p: &Path, key: &[u8]) -> Report {
        let opts = VerifyOptions {
            public_key: Some(key.to_vec()),
            strict: true,
            open: false,
        };
        verify_files(&[p.to_path_buf()], &opts).unwrap()
    }

    #[test]
    fn untouched_log_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let (p, key) = log(dir.path(), 25, 10);
        let r = check(&p, &key);
        assert!(r.ok(), "{r:?}");
        assert_eq!(r.checkpoints, 4); // start, 2 intervals, seal
        assert_eq!(r.last_seq, Some(29));
        // Another key is refused.
        let (_, other) = log(tempfile::tempdir().unwrap().path(), 1, 10);
        assert_eq!(
            check(&p, &other).problem.unwrap().kind,
            ProblemKind::BadSignature
        );
    }

    #[test]
    fn one_byte_changed_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let (p, key) = log(dir.path(), 20, 100);
        let mut l = lines(&p);
        l[5] = l[5].replacen("\"i\":4", "\"i\":5", 1);
        write(&p, &l);
        let pr = check(&p, &key).problem.unwrap();
        assert_eq!(
            (pr.kind, pr.line, pr.seq),
            (ProblemKind::Edited, 6, Some(6)),
            "{pr:?}"
        );
    }

    #[test]
    fn deleted_swapped_appended_inserted() {
        let dir = tempfile::tempdir().unwrap();
        let (p, key) = log(dir.path(), 20, 100);
        let orig = lines(&p);

        let mut l = orig.clone();
        l.remove(7);
        write(&p, &l);
        let pr = check(&p, &key).problem.unwrap();
        assert_eq!(
            (pr.kind, pr.line, pr.seq),
            (ProblemKind::Missing, 8, Some(9)),
            "{pr:?}"
        );

        let mut l = orig.clone();
        l.swap(3, 4);
        write(&p, &l);
        let pr = check(&p, &key).problem.unwrap();
        assert_eq!((pr.kind, pr.line), (ProblemKind::Reordered, 4), "{pr:?}");

        let mut l = orig.clone();
        let copy = l[3].clone();
        l.push(copy);
        write(&p, &l);
        let pr = check(&p, &key).problem.unwrap();
        assert_eq!(
            (pr.kind, pr.line),
            (ProblemKind::Appended, orig.len() as u64 + 1),
            "{pr:?}"
        );

        let mut l = orig.clone();
        let copy = l[3].clone();
        l.insert(6, copy);
        write(&p, &l);
        let pr = check(&p, &key).problem.unwrap();
        assert_eq!((pr.kind, pr.line), (ProblemKind::Inserted, 7), "{pr:?}");

        let mut l = orig.clone();
        let last = l.len() - 1;
        l[last] = l[last].replacen("seal", "seam", 1);
        write(&p, &l);
        let pr = check(&p, &key).problem.unwrap();
        assert_eq!(pr.kind, ProblemKind::BadSignature, "{pr:?}");
    }

    #[test]
    fn rotated_files_chain_across() {
        let dir = tempfile::tempdir().unwrap();
        let (p, key) = log(dir.path(), 20, 100);
        let l = lines(&p);
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        write(&a, &l[..10]);
        write(&b, &l[10..]);
        let opts = VerifyOptions {
            public_key: Some(key.clone()),
            strict: true,
            open: false,
        };
        assert!(verify_files(&[a.clone(), b.clone()], &opts).unwrap().ok());
        // Given in the wrong order: reported.
        let r = verify_files(&[b, a], &opts).unwrap();
        assert!(!r.ok());
        // The second file alone verifies as a continuation, with a note.
        let r = verify_files(&[dir.path().join("b")], &opts).unwrap();
        assert!(r.ok(), "{r:?}");
        assert!(r.notes.iter().any(|n| n.contains("starts at seq")));
    }

    #[test]
    fn a_cut_off_end_fails_unless_open() {
        let dir = tempfile::tempdir().unwrap();
        let (p, key) = log(dir.path(), 12, 5);
        let orig = lines(&p);
        let r = check(&p, &key);
        assert!(r.ok() && r.closed, "{r:?}");
        assert_eq!(r.last_checkpoint.as_deref(), Some("seal"));
        // seq: 1 start, 2-6, 7 interval, 8-12, 13 interval, 14-15, 16 seal.
        let open = |p: &Path, strict| {
            let opts = VerifyOptions {
                public_key: Some(key.clone()),
                strict,
                open: true,
            };
            verify_files(&[p.to_path_buf()], &opts).unwrap()
        };
        for (cut, signed, tail) in [(1, 13, 2), (2, 13, 1), (3, 13, 0), (4, 7, 5)] {
            write(&p, &orig[..orig.len() - cut]);
            let r = check(&p, &key);
            let pr = r.problem.clone().unwrap();
            assert_eq!(pr.kind, ProblemKind::Truncated, "{pr:?}");
            assert!(
                pr.message
                    .contains(&format!("last signed checkpoint is seq {signed} ")),
                "{pr:?}"
            );
            assert!(
                pr.message.contains(&format!("{tail} entries after it")),
                "{pr:?}"
            );
            assert_eq!((r.last_signed_seq, r.unsigned_tail), (Some(signed), tail));
            let r = open(&p, false);
            assert!(r.ok() && !r.closed, "{r:?}");
            assert_eq!((r.last_signed_seq, r.unsigned_tail), (Some(signed), tail));
            assert_eq!(open(&p, true).ok(), tail == 0);
        }
        // Nothing left at all: not a closed log either.
        std::fs::write(&p, "").unwrap();
        assert_eq!(
            check(&p, &key).problem.unwrap().kind,
            ProblemKind::Truncated
        );
    }
}

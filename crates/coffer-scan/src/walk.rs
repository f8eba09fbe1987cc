//! Files, directories and readers: walks the tree (respecting `.gitignore`
//! unless told not to), skips binaries and oversized files, and scans files
//! in parallel, memory-mapping the large ones.

use crate::engine::Scanner;
use crate::finding::Finding;
use crate::Error;
use rayon::prelude::*;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Files larger than this are memory-mapped instead of read.
const MMAP_THRESHOLD: u64 = 1 << 20;

/// Extensions of formats that never hold text worth scanning.
const BINARY_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "bmp", "ico", "webp", "tif", "tiff", "psd", "pdf", "zip", "gz",
    "tgz", "bz2", "xz", "zst", "7z", "rar", "jar", "war", "ear", "class", "so", "dll", "dylib",
    "exe", "bin", "o", "a", "lib", "obj", "woff", "woff2", "ttf", "otf", "eot", "mp3", "mp4",
    "m4a", "mov", "avi", "mkv", "wav", "flac", "ogg", "webm", "wasm", "pyc", "pyo", "rlib",
    "sqlite", "db",
];

/// Options for walking and reading.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Honour `.gitignore`, `.ignore` and git excludes.
    pub respect_gitignore: bool,
    /// Skip files larger than this many bytes.
    pub max_file_size: u64,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            respect_gitignore: true,
            max_file_size: 100 << 20,
        }
    }
}

/// Counters a caller may display while a scan runs.
#[derive(Debug, Default)]
pub struct Progress {
    /// Files (or blobs) scanned.
    pub files: AtomicU64,
    /// Bytes scanned.
    pub bytes: AtomicU64,
    /// Findings so far.
    pub findings: AtomicU64,
    /// Files skipped because they could not be read.
    pub unreadable: AtomicU64,
}

impl Progress {
    /// Records one scanned unit.
    pub fn record(&self, bytes: usize, findings: usize) {
        self.files.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.findings.fetch_add(findings as u64, Ordering::Relaxed);
    }
}

/// True when the path's extension marks a binary format.
pub fn has_binary_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| BINARY_EXTENSIONS.iter().any(|b| b.eq_ignore_ascii_case(e)))
}

/// Lists the files under `roots` (files given directly are kept as they
/// are), with the name findings should carry.
pub fn collect_files(
    roots: &[PathBuf],
    opts: &ScanOptions,
) -> Result<Vec<(PathBuf, String)>, Error> {
    let mut out = Vec::new();
    for root in roots {
        let meta = std::fs::metadata(root).map_err(|e| Error::io(root.display().to_string(), e))?;
        if meta.is_file() {
            out.push((root.clone(), display_path(root, None)));
            continue;
        }
        let found = Mutex::new(Vec::new());
        let walker = ignore::WalkBuilder::new(root)
            .hidden(false)
            .git_ignore(opts.respect_gitignore)
            .git_global(opts.respect_gitignore)
            .git_exclude(opts.respect_gitignore)
            .ignore(opts.respect_gitignore)
            .parents(opts.respect_gitignore)
            .require_git(false)
            .filter_entry(|e| e.file_name() != ".git")
            .build_parallel();
        walker.run(|| {
            let found = &found;
            Box::new(move |entry| {
                if let Ok(e) = entry {
                    if e.file_type().is_some_and(|t| t.is_file()) {
                        if let Ok(mut v) = found.lock() {
                            v.push(e.into_path());
                        }
                    }
                }
                ignore::WalkState::Continue
            })
        });
        let mut files = found.into_inner().unwrap_or_default();
        files.sort();
        out.extend(files.into_iter().map(|p| {
            let name = display_path(&p, Some(root));
            (p, name)
        }));
    }
    Ok(out)
}

/// The name a finding carries: relative to a `.` root, `/`-separated.
fn display_path(p: &Path, root: Option<&Path>) -> String {
    let rel = match root {
        Some(r) if r == Path::new(".") => p.strip_prefix(r).unwrap_or(p),
        _ => p,
    };
    let s = rel.to_string_lossy().replace('\\', "/");
    s.strip_prefix("./").map(str::to_string).unwrap_or(s)
}

/// Scans files and directories in parallel.
pub fn scan_paths(
    scanner: &Scanner,
    roots: &[PathBuf],
    opts: &ScanOptions,
    progress: &Progress,
) -> Result<Vec<Finding>, Error> {
    let files = collect_files(roots, opts)?;
    let mut findings: Vec<Finding> = files
        .par_iter()
        .flat_map_iter(|(path, name)| {
            let found = scan_file(scanner, path, name, opts);
            match found {
                Ok((n, f)) => {
                    progress.record(n, f.len());
                    f
                }
                Err(_) => {
                    progress.unreadable.fetch_add(1, Ordering::Relaxed);
                    Vec::new()
                }
            }
        })
        .collect();
    sort_findings(&mut findings);
    Ok(findings)
}

/// Sorts findings by path, line and column.
pub fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        (&a.path, a.line, a.column, &a.rule_id).cmp(&(&b.path, b.line, b.column, &b.rule_id))
    });
}

/// Scans one file; returns the bytes scanned and the findings.
// The one unsafe block of the workspace: see its SAFETY comment.
#[allow(unsafe_code)]
pub fn scan_file(
    scanner: &Scanner,
    path: &Path,
    name: &str,
    opts: &ScanOptions,
) -> Result<(usize, Vec<Finding>), Error> {
    if scanner.path_excluded(name) {
        return Ok((0, Vec::new()));
    }
    if has_binary_extension(path) {
        // Path rules (key containers such as .p12) still apply.
        return Ok((0, scanner.scan(name, b"\0")));
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io(name, e))?;
    let len = file.metadata().map_err(|e| Error::io(name, e))?.len();
    if len > opts.max_file_size {
        return Ok((0, Vec::new()));
    }
    if len >= MMAP_THRESHOLD {
        // SAFETY: the map is read-only and dropped before returning; a file
        // truncated by another process while mapped may fault, as with any
        // mmap-based reader (ripgrep makes the same trade).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(name, e))?;
        return Ok((map.len(), scanner.scan(name, &map)));
    }
    let mut buf = Vec::with_capacity(len as usize + 1);
    (&file)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(name, e))?;
    Ok((buf.len(), scanner.scan(name, &buf)))
}

/// Scans everything a reader yields (standard input) as one file.
pub fn scan_reader(
    scanner: &Scanner,
    name: &str,
    mut reader: impl Read,
    progress: &Progress,
) -> Result<Vec<Finding>, Error> {
    let mut buf = Vec::new();
    reader
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(name, e))?;
    let f = scanner.scan(name, &buf);
    progress.record(buf.len(), f.len());
    Ok(f)
}

/// Sets the number of worker threads (call once, before scanning).
pub fn set_threads(n: usize) -> Result<(), String> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .map_err(|e| e.to_string())
}

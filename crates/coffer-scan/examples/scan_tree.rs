//! Throughput probe for bench/scan (run by hand): scans a tree with the
//! built-in rules the way `coffer scan` does and prints files, bytes,
//! seconds, files/s, MB/s and findings per rule as one JSON object. Never
//! prints a secret.
//!
//! `cargo run --release -p coffer-scan --example scan_tree -- <dir>`

use coffer_scan::walk::{scan_paths, Progress, ScanOptions};
use coffer_scan::{Config, Scanner};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

fn main() {
    let Some(root) = std::env::args().nth(1) else {
        eprintln!("usage: scan_tree <dir>");
        std::process::exit(2);
    };
    let cfg = Config::builtin().expect("built-in rules");
    let scanner = Scanner::new(&cfg).expect("compile");
    let progress = Progress::default();
    let t = Instant::now();
    let findings = scan_paths(
        &scanner,
        &[PathBuf::from(&root)],
        &ScanOptions::default(),
        &progress,
    )
    .expect("scan");
    let secs = t.elapsed().as_secs_f64();
    let files = progress.files.load(Ordering::Relaxed);
    let bytes = progress.bytes.load(Ordering::Relaxed);
    let mut by_rule: BTreeMap<String, usize> = BTreeMap::new();
    for f in &findings {
        *by_rule.entry(f.rule_id.clone()).or_default() += 1;
    }
    let out = serde_json::json!({
        "files": files,
        "bytes": bytes,
        "seconds": secs,
        "files_per_s": files as f64 / secs,
        "mb_per_s": bytes as f64 / 1e6 / secs,
        "findings": findings.len(),
        "by_rule": by_rule,
    });
    println!("{out}");
}

//! Offline audit log verification over arbitrary lines.
//!
//! Input: one byte choosing the options (a pinned public key or not,
//! strict or not), then the log file's content.
//!
//! Checks: no panic; a report counts no more entries than there are lines,
//! and no more checkpoints than entries.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use coffer_core::audit::verify::{verify_files, VerifyOptions};
use libfuzzer_sys::fuzz_target;

fn log_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("coffer-fuzz-audit-{}.log", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, log)) = data.split_first() else {
        return;
    };
    let opts = VerifyOptions {
        public_key: (selector & 1 == 1).then(|| vec![selector; 32]),
        strict: selector & 2 == 2,
        open: selector & 4 == 4,
    };
    let path = log_path();
    std::fs::write(path, log).expect("write the log");
    let report = verify_files(std::slice::from_ref(path), &opts).expect("read the log");
    let lines = log.split(|&b| b == b'\n').count() as u64;
    assert!(report.entries <= lines, "more entries than lines");
    assert!(
        report.checkpoints <= report.entries,
        "more checkpoints than entries"
    );
});

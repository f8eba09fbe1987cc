//! The scanner's configuration loader (Coffer's TOML, a superset of
//! gitleaks' format) and rule compilation.
//!
//! Checks: no panic while parsing or compiling, nor while the compiled
//! rules scan a short sample.
#![no_main]

use coffer_scan::config::Config;
use coffer_scan::engine::Scanner;
use libfuzzer_sys::fuzz_target;

// Split so that Coffer's own repository scan does not flag the source.
const SAMPLE: &[u8] = concat!(
    "password = \"correct-horse-battery\"\naws_key = AKIA",
    "ABCDEFGHIJKLMNOP\n"
)
.as_bytes();

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // No base directory: an `[extend] path` resolves against the current
    // directory and most likely fails, which is fine.
    let Ok(config) = Config::from_toml_str(text, "fuzz", None) else {
        return;
    };
    if let Ok(scanner) = Scanner::new(&config) {
        for f in scanner.scan("sample.env", SAMPLE) {
            assert!(f.start <= f.end && f.end <= SAMPLE.len());
        }
    }
});

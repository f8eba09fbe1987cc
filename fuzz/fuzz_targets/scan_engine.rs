//! The scanner engine (built-in rules) over arbitrary bytes.
//!
//! Checks: no panic; every finding's byte range lies within the input and
//! its lines and columns are 1-based.
#![no_main]

use std::sync::OnceLock;

use coffer_scan::config::Config;
use coffer_scan::engine::{is_binary, Scanner};
use libfuzzer_sys::fuzz_target;

fn scanner() -> &'static Scanner {
    static SCANNER: OnceLock<Scanner> = OnceLock::new();
    SCANNER.get_or_init(|| {
        let config = Config::builtin().expect("built-in rules parse");
        Scanner::new(&config).expect("built-in rules compile")
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = is_binary(data);
    for f in scanner().scan("fuzz/input.env", data) {
        assert!(
            f.start <= f.end && f.end <= data.len(),
            "range outside the input"
        );
        assert!(
            f.line >= 1 && f.column >= 1 && f.end_line >= f.line,
            "bad position"
        );
    }
});

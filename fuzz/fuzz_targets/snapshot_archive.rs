//! A snapshot upload as a restore checks it, before any key is used
//! (`coffer_core::snapshot::inspect`: gzip, tar members and their order,
//! `meta.json`, every `state.bin` frame, the count, both checksums).
//!
//! Input: the bytes of the uploaded file.
//!
//! Checks: no panic, and no allocation beyond what the input carries (a
//! frame's length is never trusted ahead of its bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = coffer_core::snapshot::inspect(data);
});

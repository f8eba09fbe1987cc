//! Shamir combine over arbitrary shares, and split/combine round trips.
//!
//! Input: a threshold byte, a mode byte, then data. Mode even: the data,
//! cut at 0xFF bytes, are the shares given to `combine`. Mode odd: the data
//! (at most 64 bytes) are a secret split into shares, then recovered from
//! `threshold` of them.
//!
//! Checks: no panic; a round trip returns the secret.
#![no_main]

use coffer_crypto::shamir::{combine, split};
use libfuzzer_sys::fuzz_target;
use zeroize::Zeroizing;

fuzz_target!(|data: &[u8]| {
    let [threshold, mode, rest @ ..] = data else {
        return;
    };
    let threshold = u32::from(*threshold);
    if mode & 1 == 0 {
        let shares: Vec<Zeroizing<Vec<u8>>> = rest
            .split(|&b| b == 0xFF)
            .take(16)
            .map(|s| Zeroizing::new(s.to_vec()))
            .collect();
        let _ = combine(&shares, threshold);
        return;
    }
    let secret = &rest[..rest.len().min(64)];
    let shares_n = 1 + u32::from(*mode >> 1) % 12;
    let Ok(shares) = split(secret, shares_n, threshold) else {
        return;
    };
    let t = threshold as usize;
    let recovered =
        combine(&shares[shares.len() - t..], threshold).expect("combine a threshold of shares");
    assert_eq!(recovered.as_slice(), secret, "round trip lost the secret");
});

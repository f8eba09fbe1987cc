//! Randomness from the operating system's CSPRNG.

use base64::Engine;

/// Fills `buf` with cryptographically secure random bytes.
pub fn fill(buf: &mut [u8]) {
    if aws_lc_rs::rand::fill(buf).is_err() {
        // The system RNG failing is unrecoverable: continuing would produce weak keys.
        panic!("the operating system's random number generator failed");
    }
}

/// Returns `n` random bytes.
pub fn bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    fill(&mut v);
    v
}

/// Returns a random string of `n` characters from the URL-safe base64 alphabet
/// without padding (6 bits of entropy per character).
pub fn token_string(n: usize) -> String {
    let raw = bytes(n.div_ceil(4) * 3);
    let mut s = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    s.truncate(n);
    // Never a leading `-`: a CLI would read `coffer token renew -accessor
    // -abc…` as a flag (costs 1/64 of one character's entropy).
    if s.starts_with('-') {
        s.replace_range(..1, "A");
    }
    s
}

/// A uniformly random index below `n` (> 0): rejection sampling over 32-bit
/// values from the CSPRNG, so no index is likelier than another.
pub fn uniform_index(n: usize) -> usize {
    let n32 = u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    // Values at or above the largest multiple of n32 are rejected.
    let zone = u32::MAX - (u32::MAX % n32);
    loop {
        let mut b = [0u8; 4];
        fill(&mut b);
        let x = u32::from_le_bytes(b);
        if x < zone {
            return (x % n32) as usize;
        }
    }
}

/// Returns a random UUID-formatted string (version 4).
pub fn uuid() -> String {
    let mut b = [0u8; 16];
    fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn token_string_has_length_and_alphabet() {
        let t = super::token_string(24);
        assert_eq!(t.len(), 24);
        assert!(t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(t, super::token_string(24));
    }

    #[test]
    fn uuid_shape() {
        let u = super::uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}

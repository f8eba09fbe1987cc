//! Shannon entropy of a byte string, in bits per byte.

/// Returns the Shannon entropy of `data` in bits per symbol (0.0 for empty
/// input). Random base64 scores about 5 to 6, English words about 3.
pub fn shannon(data: &[u8]) -> f64 {
    if data.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in data {
        counts[b as usize] += 1;
    }
    let len = data.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / len;
            -p * p.log2()
        })
        .sum()
}

/// Share of the most a string of its length can score that a password
/// must reach (a string of `n` bytes scores at most `log2(n)`).
const PASSWORD_SHARE: f64 = 0.8;

/// The least a lowered password floor asks: four distinct characters.
const PASSWORD_MIN: f64 = 2.0;

/// The entropy floor a password of `len` bytes must reach under a rule's
/// `floor`: the floor, capped at 80% of `log2(len)` but not below 2.0 (so
/// that `bar` is no password and `3eCa3P` is). An eight-character
/// password scores at most 3.0 (all characters distinct), so a flat floor
/// of 3.0 would drop every one with a repeated character.
pub fn password_floor(floor: f64, len: usize) -> f64 {
    if len < 2 {
        return floor;
    }
    floor.min((PASSWORD_SHARE * (len as f64).log2()).max(PASSWORD_MIN))
}

#[cfg(test)]
mod tests {
    use super::{password_floor, shannon};

    #[test]
    fn password_floor_follows_length() {
        assert_eq!(password_floor(3.0, 64), 3.0);
        assert!((password_floor(3.0, 8) - 2.4).abs() < 1e-9);
        assert!(password_floor(2.5, 6) < shannon(b"3eCa3P"));
        assert!(password_floor(3.0, 8) > shannon(b"aabbccdd"));
        assert_eq!(password_floor(3.0, 1), 3.0);
        assert!(password_floor(2.5, 3) > shannon(b"bar"));
        assert_eq!(password_floor(1.5, 3), 1.5);
    }

    #[test]
    fn known_values() {
        assert_eq!(shannon(b""), 0.0);
        assert_eq!(shannon(b"aaaa"), 0.0);
        assert!((shannon(b"abab") - 1.0).abs() < 1e-9);
        assert!((shannon(b"abcd") - 2.0).abs() < 1e-9);
    }
}

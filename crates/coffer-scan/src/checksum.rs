//! Integrity checks of formats that carry one: a checksum (GitHub's and
//! npm's CRC32 in base62) or a documented binary structure (a PyPI token's
//! macaroon, a JWT's JSON header and payload, a PEM key's DER body).
//!
//! A match that passes is a credential of that format with near certainty:
//! it is reported with [`Checksum::Valid`] (high confidence), and path
//! triage never lowers it. A match that fails is kept but marked
//! [`Checksum::Invalid`] (low confidence) rather than dropped: the vendors
//! describe these schemes in blog posts, not in a specification, so a scheme
//! that changes (GitHub's fine-grained `github_pat_` tokens already use a
//! different, unpublished one) must not make real tokens disappear.

use serde::Serialize;

/// The outcome of a format's integrity check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Checksum {
    /// The checksum or structure holds.
    Valid,
    /// It does not: a sample, a truncated paste or a made-up string.
    Invalid,
}

impl Checksum {
    /// `valid` or `invalid`.
    pub fn as_str(self) -> &'static str {
        match self {
            Checksum::Valid => "valid",
            Checksum::Invalid => "invalid",
        }
    }
}

/// A format's check: `Some(true)` valid, `Some(false)` invalid, `None`
/// when the match cannot be judged (a PEM body in an unusual syntax).
pub type Check = fn(&[u8]) -> Option<bool>;

/// The integrity check of built-in rule `id`, if its format has one.
pub fn check_for(id: &str) -> Option<Check> {
    match id {
        "github-pat"
        | "github-oauth-token"
        | "github-app-token"
        | "github-refresh-token"
        | "npm-access-token" => Some(|t| Some(base62_crc32_ok(t))),
        "pypi-upload-token" => Some(|t| Some(pypi_macaroon_ok(t))),
        "jwt" => Some(|t| Some(jwt_payload_ok(t))),
        "private-key" => Some(crate::structure::private_key_parses),
        _ => None,
    }
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// CRC-32 (IEEE 802.3, reflected, as zlib computes it).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// `n` in base62 (`0-9A-Za-z`), left-padded with `0` to six digits.
pub fn base62_6(mut n: u32) -> [u8; 6] {
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// GitHub's (2021) and npm's token format: `<prefix>_<random><check>`,
/// where `check` is the CRC32 of `random` in six base62 digits.
pub fn base62_crc32_ok(token: &[u8]) -> bool {
    let Some(us) = memchr::memchr(b'_', token) else {
        return false;
    };
    let body = &token[us + 1..];
    if body.len() <= 6 || !body.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let (random, check) = body.split_at(body.len() - 6);
    base62_6(crc32(random)) == check
}

/// Base64 (standard or URL-safe, padding optional) to bytes.
pub fn b64_bytes(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for &b in s {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// A PyPI API token is `pypi-` and a base64url macaroon (libmacaroons'
/// version 2 binary format): version byte 2, the location field
/// `pypi.org` (or `test.pypi.org`), an identifier field, and after the
/// caveats an end-of-section byte and the 32-byte signature field (type 6).
pub fn pypi_macaroon_ok(token: &[u8]) -> bool {
    let Some(body) = token.strip_prefix(b"pypi-") else {
        return false;
    };
    let Some(m) = b64_bytes(body) else {
        return false;
    };
    let located = m.starts_with(b"\x02\x01\x08pypi.org\x02")
        || m.starts_with(b"\x02\x01\x0dtest.pypi.org\x02");
    let n = m.len();
    located && n >= 48 && m[n - 35..n - 32] == [0x00, 0x06, 0x20]
}

/// A JWT whose header (checked by [`crate::structure::jwt_header_is_json`])
/// and payload are both JSON objects.
pub fn jwt_payload_ok(token: &[u8]) -> bool {
    let mut parts = token.split(|&b| b == b'.');
    let (Some(_), Some(payload)) = (parts.next(), parts.next()) else {
        return false;
    };
    crate::structure::jwt_header_is_json(token)
        && b64_bytes(payload)
            .and_then(|j| serde_json::from_slice::<serde_json::Value>(&j).ok())
            .is_some_and(|v| v.is_object())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{expand, Rng};

    #[test]
    fn crc32_known_vector() {
        // The check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(&base62_6(0), b"000000");
        assert_eq!(&base62_6(61), b"00000z");
        assert_eq!(&base62_6(u32::MAX), b"4gfFC3");
    }

    #[test]
    fn github_and_npm_tokens_carry_a_crc() {
        let mut rng = Rng::new(11);
        for prefix in ["ghp_", "gho_", "ghu_", "ghs_", "npm_"] {
            let tok = expand(&format!("{prefix}<<crc62:30>>"), &mut rng, 1.0);
            assert_eq!(tok.len(), 40);
            assert!(base62_crc32_ok(tok.as_bytes()), "{prefix}");
            // One changed character breaks it.
            let mut bad = tok.into_bytes();
            bad[10] = if bad[10] == b'a' { b'b' } else { b'a' };
            assert!(!base62_crc32_ok(&bad));
        }
        let long = expand("ghr_<<crc62:70>>", &mut rng, 1.0);
        assert!(base62_crc32_ok(long.as_bytes()));
        assert!(!base62_crc32_ok(b"ghp_"));
        assert!(!base62_crc32_ok(b"ghp_abc"));
    }

    #[test]
    fn pypi_token_is_a_macaroon() {
        let mut rng = Rng::new(12);
        let tok = expand("pypi-<<pypi:60>>", &mut rng, 1.0);
        assert!(tok.starts_with("pypi-AgEIcHlwaS5vcmc"), "{tok}");
        assert!(pypi_macaroon_ok(tok.as_bytes()));
        let random = expand("pypi-AgEIcHlwaS5vcmc<<b64url:120>>", &mut rng, 1.0);
        assert!(!pypi_macaroon_ok(random.as_bytes()));
        assert!(!pypi_macaroon_ok(&tok.as_bytes()[..tok.len() - 4]));
    }

    #[test]
    fn jwt_payload_is_json() {
        let mut rng = Rng::new(13);
        let good = expand("<<jwt:3>>", &mut rng, 1.0);
        assert!(jwt_payload_ok(good.as_bytes()), "{good}");
        let bad = expand(
            "eyJhbGciOiJIUzI1NiJ9.eyJ<<b64url:40>>.<<b64url:43>>",
            &mut rng,
            1.0,
        );
        assert!(!jwt_payload_ok(bad.as_bytes()));
    }
}

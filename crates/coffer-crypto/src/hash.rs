//! Hashes, HMAC and constant-time comparison.

use aws_lc_rs::{digest, hmac};

/// SHA-256 of `data`, hex encoded.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data))
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// SHA-256 over data fed in pieces (a stream too large to hold at once).
pub struct Sha256Stream(digest::Context);

impl Default for Sha256Stream {
    fn default() -> Self {
        Sha256Stream(digest::Context::new(&digest::SHA256))
    }
}

impl Sha256Stream {
    /// A hash of nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `data`.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The digest of everything fed.
    pub fn finish(self) -> [u8; 32] {
        let d = self.0.finish();
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }
}

/// The digest of `data` under one of Vault's `sys/tools/hash` algorithm
/// names (`sha2-224`, `sha2-256`, `sha2-384`, `sha2-512`, `sha3-256`,
/// `sha3-384`, `sha3-512`), or `None` for a name not supported.
pub fn digest_named(algorithm: &str, data: &[u8]) -> Option<Vec<u8>> {
    let alg = match algorithm {
        "sha2-224" => &digest::SHA224,
        "sha2-256" => &digest::SHA256,
        "sha2-384" => &digest::SHA384,
        "sha2-512" => &digest::SHA512,
        "sha3-256" => &digest::SHA3_256,
        "sha3-384" => &digest::SHA3_384,
        "sha3-512" => &digest::SHA3_512,
        _ => return None,
    };
    Some(digest::digest(alg, data).as_ref().to_vec())
}

/// HMAC-SHA256 of `data` under `key`, hex encoded.
pub fn hmac_sha256_hex(key: &[u8], data: &[u8]) -> String {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    hex::encode(hmac::sign(&k, data))
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_digests_match_known_vectors() {
        let hex_of = |alg| hex::encode(digest_named(alg, b"hello").unwrap());
        assert_eq!(
            hex_of("sha2-224"),
            "ea09ae9cc6768c50fcee903ed054556e5bfc8347907f12598aa24193"
        );
        assert_eq!(
            hex_of("sha3-256"),
            "3338be694f50c5f338814986cdf0686453a888b84f424d792af4b9202398f392"
        );
        assert!(digest_named("md5", b"hello").is_none());
        assert!(digest_named("SHA2-256", b"hello").is_none());
    }

    #[test]
    fn known_vectors() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // RFC 4231 test case 2.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn streamed_sha256_matches_one_shot() {
        let mut h = Sha256Stream::new();
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(h.finish(), sha256(b"abc"));
    }

    #[test]
    fn ct_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}

//! AES-256-GCM with a fresh random nonce per message.
//!
//! Wire form of a sealed message: `nonce (12 bytes) || ciphertext || tag (16)`.
//! The caller passes associated data (the barrier uses the storage key), so a
//! ciphertext moved to another key fails to open.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use zeroize::{Zeroize, Zeroizing};

use crate::memory::SecretBytes;
use crate::{random, CryptoError, Result};

/// Length of an AES-256 key in bytes.
pub const KEY_LEN: usize = 32;
/// Bytes an encryption adds to a plaintext: nonce and tag.
pub const OVERHEAD: usize = NONCE_LEN + 16;

/// A 256-bit symmetric key, zeroized on drop, kept in the locked key arena
/// when the process set one up ([`crate::memory`]). Its `Debug` never shows
/// the bytes.
#[derive(Clone)]
pub struct Key {
    bytes: SecretBytes,
}

impl Key {
    /// Generates a fresh random key.
    pub fn generate() -> Self {
        let mut bytes = SecretBytes::zeroed();
        random::fill(bytes.as_mut());
        Key { bytes }
    }

    /// Whether the key's bytes live in the locked (unswappable, undumped) arena.
    pub fn in_locked_memory(&self) -> bool {
        self.bytes.in_arena()
    }

    /// Builds a key from exactly [`KEY_LEN`] bytes.
    pub fn from_slice(slice: &[u8]) -> Result<Self> {
        if slice.len() != KEY_LEN {
            return Err(CryptoError::KeyLength {
                expected: KEY_LEN,
                got: slice.len(),
            });
        }
        let mut bytes = SecretBytes::zeroed();
        bytes.as_mut().copy_from_slice(slice);
        Ok(Key { bytes })
    }

    /// The raw key bytes; handle with care.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        self.bytes.as_ref()
    }

    fn aead_key(&self) -> LessSafeKey {
        // AES_256_GCM accepts exactly KEY_LEN bytes, which `bytes` always holds.
        match UnboundKey::new(&AES_256_GCM, self.bytes.as_ref()) {
            Ok(k) => LessSafeKey::new(k),
            Err(_) => unreachable!("a 32-byte key is always valid for AES-256-GCM"),
        }
    }

    /// Encrypts `plaintext` bound to `aad`; returns `nonce || ciphertext || tag`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut nonce_bytes = [0u8; NONCE_LEN];
        random::fill(&mut nonce_bytes);
        let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(plaintext);
        let key = self.aead_key();
        let nonce = Nonce::assume_unique_for_key(nonce_bytes);
        let tag = match key.seal_in_place_separate_tag(nonce, Aad::from(aad), &mut out[NONCE_LEN..])
        {
            Ok(tag) => tag,
            // Sealing fails only for messages beyond GCM's limit (64 GiB).
            Err(_) => unreachable!("AES-GCM seal of an in-memory message cannot fail"),
        };
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// Decrypts a message made by [`Key::seal`] with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if sealed.len() < OVERHEAD {
            return Err(CryptoError::Malformed);
        }
        let (nonce_bytes, body) = sealed.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce_bytes).map_err(|_| CryptoError::Malformed)?;
        let mut buf = Zeroizing::new(body.to_vec());
        let key = self.aead_key();
        let len = match key.open_in_place(nonce, Aad::from(aad), buf.as_mut_slice()) {
            Ok(plain) => plain.len(),
            Err(_) => {
                buf.zeroize();
                return Err(CryptoError::Authentication);
            }
        };
        buf.truncate(len);
        Ok(buf)
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let k = Key::generate();
        let c = k.seal(b"hello", b"path/a");
        assert_eq!(k.open(&c, b"path/a").unwrap().as_slice(), b"hello");
    }

    #[test]
    fn wrong_aad_fails() {
        let k = Key::generate();
        let c = k.seal(b"hello", b"path/a");
        assert_eq!(
            k.open(&c, b"path/b").unwrap_err(),
            CryptoError::Authentication
        );
    }

    #[test]
    fn wrong_key_and_tampering_fail() {
        let k = Key::generate();
        let mut c = k.seal(b"hello", b"a");
        assert!(Key::generate().open(&c, b"a").is_err());
        let last = c.len() - 1;
        c[last] ^= 1;
        assert!(k.open(&c, b"a").is_err());
        assert_eq!(k.open(&c[..5], b"a").unwrap_err(), CryptoError::Malformed);
    }

    #[test]
    fn nonces_are_fresh() {
        let k = Key::generate();
        assert_ne!(k.seal(b"x", b""), k.seal(b"x", b""));
    }

    #[test]
    fn debug_hides_bytes() {
        assert_eq!(format!("{:?}", Key::generate()), "Key(..)");
    }
}

//! Cryptographic primitives of Coffer.
//!
//! Everything here is small and synchronous: the AEAD envelope used by the
//! barrier ([`aead`]), the keyring of data-encryption key terms ([`keyring`]),
//! Shamir's secret sharing of the root key ([`shamir`]), and hashing, HMAC and
//! random generation ([`hash`], [`random`]). Key material lives in zeroizing
//! types and is wiped when dropped.

pub mod aead;
#[cfg(test)]
mod debug_tests;
pub mod hash;
pub mod keyring;
// The one FFI boundary of the crate: every `unsafe` block in it carries a
// SAFETY comment that proves it sound.
#[allow(unsafe_code)]
pub mod memory;
pub mod random;
pub mod shamir;

pub use aead::{Key, KEY_LEN};
pub use keyring::Keyring;

/// Errors of cryptographic operations. They never carry key or plaintext bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// A ciphertext failed authentication: wrong key, wrong associated data, or tampering.
    #[error("message authentication failed")]
    Authentication,
    /// A ciphertext is too short or its header is malformed.
    #[error("malformed ciphertext")]
    Malformed,
    /// The ciphertext names a key term the keyring does not hold.
    #[error("unknown key term {0}")]
    UnknownTerm(u32),
    /// A key has the wrong length.
    #[error("invalid key length: expected {expected} bytes, got {got}")]
    KeyLength {
        /// Expected length in bytes.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// Shamir parameters or shares are invalid.
    #[error("{0}")]
    Shamir(String),
    /// The keyring's serialized form is invalid.
    #[error("invalid keyring: {0}")]
    Keyring(String),
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, CryptoError>;

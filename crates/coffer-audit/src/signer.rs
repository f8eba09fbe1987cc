//! The Ed25519 key that signs checkpoints. Its private half lives behind
//! the barrier (`sys/audit/signing-key`, PKCS#8); the public half is
//! published at `sys/audit/:path/verify-key` and inside every checkpoint.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use base64::{engine::general_purpose::STANDARD, Engine as _};
use zeroize::Zeroizing;

use crate::{Error, Result};

/// Signs checkpoints.
pub struct Signer {
    pair: Ed25519KeyPair,
    public_b64: String,
    key_id: String,
}

impl Signer {
    /// A new key; returns the signer and its PKCS#8 encoding to store.
    pub fn generate() -> Result<(Signer, Zeroizing<Vec<u8>>)> {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| Error::crypto_failed("generating the audit signing key"))?;
        let pkcs8 = Zeroizing::new(doc.as_ref().to_vec());
        Ok((Signer::from_pkcs8(&pkcs8)?, pkcs8))
    }

    /// The signer of a stored PKCS#8 key.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Signer> {
        let pair =
            Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| Error::corrupt("audit signing key"))?;
        let public = pair.public_key().as_ref().to_vec();
        Ok(Signer {
            public_b64: STANDARD.encode(&public),
            key_id: key_id(&public),
            pair,
        })
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }

    /// The public key, base64 (32 raw bytes).
    pub fn public_key(&self) -> &str {
        &self.public_b64
    }

    /// A short id of the public key: the first 16 hex digits of its SHA-256.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
}

/// The id [`Signer::key_id`] gives a raw public key.
pub fn key_id(public: &[u8]) -> String {
    coffer_crypto::hash::sha256_hex(public)[..16].to_string()
}

/// Whether `signature` is `public`'s Ed25519 signature of `message`.
pub fn verify(public: &[u8], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&signature::ED25519, public)
        .verify(message, signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies() {
        let (s, pkcs8) = Signer::generate().unwrap();
        let again = Signer::from_pkcs8(&pkcs8).unwrap();
        assert_eq!(s.public_key(), again.public_key());
        let public = STANDARD.decode(s.public_key()).unwrap();
        let sig = s.sign(b"hello");
        assert!(verify(&public, b"hello", &sig));
        assert!(!verify(&public, b"hellp", &sig));
    }
}

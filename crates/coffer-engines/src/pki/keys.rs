//! Private keys of issuers and issued certificates: generation (rcgen over
//! aws-lc-rs), PEM in zeroizing strings, never printed.

use rcgen::{KeyPair, SignatureAlgorithm};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::{Error, Result};

/// A key type and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// RSA with this many bits (2048, 3072, 4096).
    Rsa(u32),
    /// ECDSA on P-256, P-384 or P-521 (bits).
    Ec(u32),
    /// Ed25519.
    Ed25519,
}

impl KeyType {
    /// Parses Vault's `key_type` and `key_bits` (0 or none: the default size).
    pub fn parse(kind: &str, bits: Option<u32>) -> Result<Self> {
        let bits = bits.unwrap_or(0);
        match kind {
            "rsa" => match bits {
                0 => Ok(KeyType::Rsa(2048)),
                2048 | 3072 | 4096 => Ok(KeyType::Rsa(bits)),
                _ => Err(Error::bad(format!(
                    "unsupported bit length for RSA key: {bits}"
                ))),
            },
            "ec" => match bits {
                0 => Ok(KeyType::Ec(256)),
                256 | 384 | 521 => Ok(KeyType::Ec(bits)),
                _ => Err(Error::bad(format!(
                    "unsupported bit length for EC key: {bits}"
                ))),
            },
            "ed25519" => Ok(KeyType::Ed25519),
            other => Err(Error::bad(format!("unknown key type: {other}"))),
        }
    }

    /// Vault's `key_type` name.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Rsa(_) => "rsa",
            KeyType::Ec(_) => "ec",
            KeyType::Ed25519 => "ed25519",
        }
    }

    /// Vault's `key_bits` (0 for Ed25519).
    pub fn bits(self) -> u32 {
        match self {
            KeyType::Rsa(b) | KeyType::Ec(b) => b,
            KeyType::Ed25519 => 0,
        }
    }

    /// The signature algorithm keys of this type sign with.
    pub fn alg(self) -> &'static SignatureAlgorithm {
        match self {
            KeyType::Rsa(_) => &rcgen::PKCS_RSA_SHA256,
            KeyType::Ec(384) => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyType::Ec(521) => &rcgen::PKCS_ECDSA_P521_SHA512,
            KeyType::Ec(_) => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyType::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }
}

/// A key pair whose memory is wiped on drop; its `Debug` shows the type only.
pub struct Key {
    pair: KeyPair,
    kind: KeyType,
}

impl Drop for Key {
    fn drop(&mut self) {
        self.pair.zeroize();
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({}, [redacted])", self.kind.name())
    }
}

impl Key {
    /// A fresh key of `kind`.
    pub fn generate(kind: KeyType) -> Result<Self> {
        let pair = match kind {
            KeyType::Rsa(bits) => {
                let size = match bits {
                    3072 => rcgen::RsaKeySize::_3072,
                    4096 => rcgen::RsaKeySize::_4096,
                    _ => rcgen::RsaKeySize::_2048,
                };
                KeyPair::generate_rsa_for(kind.alg(), size)
            }
            // PKCS#8 v1 (no embedded public key): the form OpenSSL 3 reads.
            KeyType::Ed25519 => {
                let doc = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8v1(
                    &aws_lc_rs::rand::SystemRandom::new(),
                )
                .map_err(|_| Error::crypto_failed("generating an ed25519 key"))?;
                KeyPair::try_from(doc.as_ref())
            }
            _ => KeyPair::generate_for(kind.alg()),
        }
        .map_err(|e| Error::crypto("generating a key", e))?;
        Ok(Key { pair, kind })
    }

    /// Loads a key stored as PEM with its type.
    pub fn from_pem(pem: &str, kind: KeyType) -> Result<Self> {
        let pair = KeyPair::from_pem_and_sign_algo(pem, kind.alg())
            .map_err(|_| Error::corrupt("stored pki key"))?;
        Ok(Key { pair, kind })
    }

    /// The key pair, for signing.
    pub fn pair(&self) -> &KeyPair {
        &self.pair
    }

    /// Its type.
    pub fn kind(&self) -> KeyType {
        self.kind
    }

    /// The private key as PKCS#8 PEM.
    pub fn pem(&self) -> Zeroizing<String> {
        Zeroizing::new(self.pair.serialize_pem())
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn public_der(&self) -> Vec<u8> {
        rcgen::PublicKeyData::subject_public_key_info(&self.pair)
    }
}

/// A key as stored behind the barrier (`key/<id>`).
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredKey {
    /// Its id (a UUID).
    pub key_id: String,
    /// Its name (may be empty).
    #[serde(default)]
    pub key_name: String,
    /// `rsa`, `ec` or `ed25519`.
    pub key_type: String,
    /// Its size in bits.
    #[serde(default)]
    pub key_bits: u32,
    /// The private key, PEM (wiped on drop).
    pub private_key: String,
}

impl Drop for StoredKey {
    fn drop(&mut self) {
        self.private_key.zeroize();
    }
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("key_id", &self.key_id)
            .field("key_type", &self.key_type)
            .field("private_key", &"[redacted]")
            .finish()
    }
}

impl StoredKey {
    /// The stored record of `key`.
    pub fn of(key: &Key, key_id: String, key_name: String) -> Self {
        StoredKey {
            key_id,
            key_name,
            key_type: key.kind().name().into(),
            key_bits: key.kind().bits(),
            private_key: key.pem().to_string(),
        }
    }

    /// The usable key.
    pub fn load(&self) -> Result<Key> {
        let kind = KeyType::parse(&self.key_type, Some(self.key_bits))?;
        Key::from_pem(&self.private_key, kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_never_print() {
        for kind in [KeyType::Ec(256), KeyType::Ec(384), KeyType::Ed25519] {
            let k = Key::generate(kind).unwrap();
            let stored = StoredKey::of(&k, "id".into(), String::new());
            let back = stored.load().unwrap();
            assert_eq!(back.public_der(), k.public_der());
            assert!(!format!("{k:?}{stored:?}").contains("PRIVATE"));
        }
        assert!(KeyType::parse("rsa", Some(1024)).is_err());
        assert!(KeyType::parse("dsa", None).is_err());
        assert_eq!(KeyType::parse("ec", None).unwrap(), KeyType::Ec(256));
    }
}

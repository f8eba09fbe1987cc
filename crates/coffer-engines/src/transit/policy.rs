//! A transit key ("policy" in Vault's words): its type, its numbered
//! versions with their key material, and its settings; how it is stored
//! behind the barrier and how a read shows it.

use std::collections::BTreeMap;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use zeroize::{Zeroize, Zeroizing};

use super::material;
use crate::{Error, Result};

/// The key types of Vault's transit engine that Coffer implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyType {
    /// AES-128-GCM with a 96-bit random nonce.
    Aes128Gcm96,
    /// AES-256-GCM with a 96-bit random nonce (the default).
    Aes256Gcm96,
    /// ChaCha20-Poly1305.
    ChaCha20Poly1305,
    /// Ed25519 signatures.
    Ed25519,
    /// ECDSA on P-256.
    EcdsaP256,
    /// RSA 2048 (OAEP encryption, PSS/PKCS#1 v1.5 signatures).
    Rsa2048,
    /// RSA 4096.
    Rsa4096,
    /// An HMAC key only.
    Hmac,
}

impl KeyType {
    /// Parses Vault's type name.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "aes128-gcm96" => KeyType::Aes128Gcm96,
            "aes256-gcm96" => KeyType::Aes256Gcm96,
            "chacha20-poly1305" => KeyType::ChaCha20Poly1305,
            "ed25519" => KeyType::Ed25519,
            "ecdsa-p256" => KeyType::EcdsaP256,
            "rsa-2048" => KeyType::Rsa2048,
            "rsa-4096" => KeyType::Rsa4096,
            "hmac" => KeyType::Hmac,
            _ => return None,
        })
    }

    /// Vault's type name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            KeyType::Aes128Gcm96 => "aes128-gcm96",
            KeyType::Aes256Gcm96 => "aes256-gcm96",
            KeyType::ChaCha20Poly1305 => "chacha20-poly1305",
            KeyType::Ed25519 => "ed25519",
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa4096 => "rsa-4096",
            KeyType::Hmac => "hmac",
        }
    }

    /// A symmetric AEAD type.
    pub(crate) fn is_aead(self) -> bool {
        matches!(
            self,
            KeyType::Aes128Gcm96 | KeyType::Aes256Gcm96 | KeyType::ChaCha20Poly1305
        )
    }

    /// An RSA type.
    pub(crate) fn is_rsa(self) -> bool {
        matches!(self, KeyType::Rsa2048 | KeyType::Rsa4096)
    }

    /// Whether keys of this type encrypt (and decrypt).
    pub(crate) fn supports_encryption(self) -> bool {
        self.is_aead() || self.is_rsa()
    }

    /// Whether keys of this type sign.
    pub(crate) fn supports_signing(self) -> bool {
        matches!(self, KeyType::Ed25519 | KeyType::EcdsaP256) || self.is_rsa()
    }

    /// Whether keys of this type can be derived per context.
    pub(crate) fn supports_derivation(self) -> bool {
        self.is_aead() || self == KeyType::Ed25519
    }

    /// Whether reads show a public key per version.
    fn is_asymmetric(self) -> bool {
        self.supports_signing()
    }

    /// The name shown next to a public key in reads (Go's curve or key name).
    fn public_name(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "ed25519",
            KeyType::EcdsaP256 => "P-256",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa4096 => "rsa-4096",
            _ => "",
        }
    }
}

/// One version of a key. `key` is the symmetric key, the Ed25519 seed, or
/// the PKCS#8 document of an ECDSA or RSA key; `hmac_key` is the version's
/// HMAC key (every type has one, as in Vault). Both are zeroized on drop.
pub(crate) struct KeyVersion {
    /// When the version was made.
    pub(crate) created: DateTime<Utc>,
    /// The key material.
    pub(crate) key: Zeroizing<Vec<u8>>,
    /// The HMAC key of the version.
    pub(crate) hmac_key: Zeroizing<Vec<u8>>,
    /// The public key as reads show it (base64 for Ed25519, PEM otherwise).
    pub(crate) public_key: Option<String>,
}

impl Clone for KeyVersion {
    fn clone(&self) -> Self {
        KeyVersion {
            created: self.created,
            key: self.key.clone(),
            hmac_key: self.hmac_key.clone(),
            public_key: self.public_key.clone(),
        }
    }
}

/// Never shows key material.
impl std::fmt::Debug for KeyVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyVersion")
            .field("created", &self.created)
            .field("key", &crate::redact::Redacted)
            .field("hmac_key", &crate::redact::Redacted)
            .finish()
    }
}

impl KeyVersion {
    /// A fresh version of `kind` (`key_size` bytes for HMAC keys).
    pub(crate) fn generate(kind: KeyType, key_size: usize) -> Result<Self> {
        let (key, public_key) = material::generate(kind, key_size)?;
        Ok(KeyVersion {
            created: crate::util::now(),
            key,
            hmac_key: Zeroizing::new(coffer_crypto::random::bytes(32)),
            public_key,
        })
    }
}

/// A named key and its settings.
#[derive(Clone, Debug)]
pub(crate) struct Policy {
    /// The key's name.
    pub(crate) name: String,
    /// Its type.
    pub(crate) kind: KeyType,
    /// Its versions still stored (trimming removes the oldest).
    pub(crate) versions: BTreeMap<u32, KeyVersion>,
    /// The newest version.
    pub(crate) latest_version: u32,
    /// Ciphertexts and signatures of older versions are refused.
    pub(crate) min_decryption_version: u32,
    /// Encryption with older versions is refused (0: any).
    pub(crate) min_encryption_version: u32,
    /// Versions below this are gone for good (0: none trimmed).
    pub(crate) min_available_version: u32,
    /// Whether `DELETE keys/<name>` is allowed.
    pub(crate) deletion_allowed: bool,
    /// Whether the key material may be exported.
    pub(crate) exportable: bool,
    /// Whether a plaintext backup may be taken (recorded; backups are not implemented).
    pub(crate) allow_plaintext_backup: bool,
    /// Seconds between automatic rotations (0: never).
    pub(crate) auto_rotate_period: u64,
    /// Whether each operation derives a key from a `context`.
    pub(crate) derived: bool,
    /// Bytes of an HMAC key.
    pub(crate) key_size: usize,
}

impl Policy {
    /// A new key with one fresh version.
    pub(crate) fn new(name: &str, kind: KeyType, key_size: usize) -> Result<Self> {
        let mut versions = BTreeMap::new();
        versions.insert(1, KeyVersion::generate(kind, key_size)?);
        Ok(Policy {
            name: name.to_string(),
            kind,
            versions,
            latest_version: 1,
            min_decryption_version: 1,
            min_encryption_version: 0,
            min_available_version: 0,
            deletion_allowed: false,
            exportable: false,
            allow_plaintext_backup: false,
            auto_rotate_period: 0,
            derived: false,
            key_size,
        })
    }

    /// Adds a fresh version and makes it the latest.
    pub(crate) fn rotate(&mut self) -> Result<()> {
        let next = self
            .latest_version
            .checked_add(1)
            .ok_or_else(|| Error::bad("key version limit reached"))?;
        self.versions
            .insert(next, KeyVersion::generate(self.kind, self.key_size)?);
        self.latest_version = next;
        Ok(())
    }

    /// The version `ver` if it may decrypt or verify: the errors are Vault's.
    pub(crate) fn for_decryption(&self, ver: i64) -> Result<(u32, &KeyVersion)> {
        let ver = if ver == 0 { 1 } else { ver };
        if ver > i64::from(self.latest_version) {
            return Err(Error::bad("invalid ciphertext: version is too new"));
        }
        if ver < i64::from(self.min_decryption_version) {
            return Err(Error::bad(
                "ciphertext or signature version is disallowed by policy (too old)",
            ));
        }
        // ver is within min_decryption_version..=latest_version, so it fits.
        let ver = u32::try_from(ver).map_err(|_| Error::bad("no such key version"))?;
        self.versions
            .get(&ver)
            .map(|v| (ver, v))
            .ok_or_else(|| Error::bad("no such key version"))
    }

    /// The version to encrypt or sign with: the latest for 0, else `ver`
    /// if the settings allow it.
    pub(crate) fn for_encryption(&self, ver: u64) -> Result<(u32, &KeyVersion)> {
        let ver = if ver == 0 {
            self.latest_version
        } else {
            if ver > u64::from(self.latest_version) {
                return Err(Error::bad(
                    "requested version for encryption is higher than the latest key version",
                ));
            }
            // ver <= latest_version, a u32.
            let ver = ver as u32;
            if ver < self.min_encryption_version {
                return Err(Error::bad(
                    "requested version for encryption is less than the minimum encryption key version",
                ));
            }
            if ver < self.min_decryption_version {
                return Err(Error::bad("no such key version"));
            }
            ver
        };
        self.versions
            .get(&ver)
            .map(|v| (ver, v))
            .ok_or_else(|| Error::bad("no such key version"))
    }

    /// The `data` of a `GET keys/<name>`, in Vault's shape.
    pub(crate) fn read_data(&self) -> Value {
        let mut d = Map::new();
        d.insert(
            "allow_plaintext_backup".into(),
            self.allow_plaintext_backup.into(),
        );
        d.insert("auto_rotate_period".into(), self.auto_rotate_period.into());
        d.insert("deletion_allowed".into(), self.deletion_allowed.into());
        d.insert("derived".into(), self.derived.into());
        d.insert("exportable".into(), self.exportable.into());
        d.insert("imported_key".into(), false.into());
        if self.derived {
            d.insert("kdf".into(), "hkdf_sha256".into());
            d.insert("convergent_encryption".into(), false.into());
        }
        if self.kind == KeyType::Hmac {
            d.insert("key_size".into(), self.key_size.into());
        } else {
            let mut keys = Map::new();
            for (ver, v) in self.versions.range(self.min_decryption_version..) {
                let shown = if self.kind.is_asymmetric() {
                    json!({
                        "certificate_chain": "",
                        "creation_time": crate::util::rfc3339(&v.created),
                        "name": self.kind.public_name(),
                        "public_key": v.public_key.clone().unwrap_or_default(),
                    })
                } else {
                    json!(v.created.timestamp())
                };
                keys.insert(ver.to_string(), shown);
            }
            d.insert("keys".into(), Value::Object(keys));
        }
        d.insert("latest_version".into(), self.latest_version.into());
        d.insert(
            "min_available_version".into(),
            self.min_available_version.into(),
        );
        d.insert(
            "min_decryption_version".into(),
            self.min_decryption_version.into(),
        );
        d.insert(
            "min_encryption_version".into(),
            self.min_encryption_version.into(),
        );
        d.insert("name".into(), self.name.clone().into());
        d.insert("soft_deleted".into(), false.into());
        d.insert(
            "supports_decryption".into(),
            self.kind.supports_encryption().into(),
        );
        d.insert(
            "supports_derivation".into(),
            self.kind.supports_derivation().into(),
        );
        d.insert(
            "supports_encryption".into(),
            self.kind.supports_encryption().into(),
        );
        d.insert(
            "supports_signing".into(),
            self.kind.supports_signing().into(),
        );
        d.insert("type".into(), self.kind.name().into());
        Value::Object(d)
    }

    /// The stored form (key material base64 inside; the barrier encrypts it).
    pub(crate) fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>> {
        let stored = StoredPolicy {
            name: self.name.clone(),
            kind: self.kind.name().to_string(),
            versions: self
                .versions
                .iter()
                .map(|(n, v)| {
                    (
                        *n,
                        StoredVersion {
                            created: crate::util::rfc3339(&v.created),
                            key: B64.encode(v.key.as_slice()),
                            hmac_key: B64.encode(v.hmac_key.as_slice()),
                            public_key: v.public_key.clone(),
                        },
                    )
                })
                .collect(),
            latest_version: self.latest_version,
            min_decryption_version: self.min_decryption_version,
            min_encryption_version: self.min_encryption_version,
            min_available_version: self.min_available_version,
            deletion_allowed: self.deletion_allowed,
            exportable: self.exportable,
            allow_plaintext_backup: self.allow_plaintext_backup,
            auto_rotate_period: self.auto_rotate_period,
            derived: self.derived,
            key_size: self.key_size,
        };
        crate::barrier::to_json(&stored)
    }

    /// Parses the stored form.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let stored: StoredPolicy =
            serde_json::from_slice(bytes).map_err(|e| Error::corrupt_json("transit key", &e))?;
        let kind = KeyType::parse(&stored.kind)
            .ok_or_else(|| Error::corrupt("transit key: unknown type"))?;
        let mut versions = BTreeMap::new();
        for (n, v) in &stored.versions {
            let decode = |s: &str| {
                B64.decode(s)
                    .map(Zeroizing::new)
                    .map_err(|_| Error::corrupt("transit key: bad key encoding"))
            };
            let created = DateTime::parse_from_rfc3339(&v.created)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| Error::corrupt("transit key: bad time"))?;
            versions.insert(
                *n,
                KeyVersion {
                    created,
                    key: decode(&v.key)?,
                    hmac_key: decode(&v.hmac_key)?,
                    public_key: v.public_key.clone(),
                },
            );
        }
        Ok(Policy {
            name: stored.name.clone(),
            kind,
            versions,
            latest_version: stored.latest_version,
            min_decryption_version: stored.min_decryption_version,
            min_encryption_version: stored.min_encryption_version,
            min_available_version: stored.min_available_version,
            deletion_allowed: stored.deletion_allowed,
            exportable: stored.exportable,
            allow_plaintext_backup: stored.allow_plaintext_backup,
            auto_rotate_period: stored.auto_rotate_period,
            derived: stored.derived,
            key_size: stored.key_size,
        })
    }

    /// Whether the automatic rotation is due at `now`: the latest version
    /// is at least `auto_rotate_period` old.
    pub(crate) fn rotation_due(&self, now: DateTime<Utc>) -> bool {
        if self.auto_rotate_period == 0 {
            return false;
        }
        let Some(latest) = self.versions.get(&self.latest_version) else {
            return false;
        };
        let age = now.signed_duration_since(latest.created).num_seconds();
        age >= 0 && age as u64 >= self.auto_rotate_period
    }
}

/// Standard base64 with padding, accepting non-zero trailing bits as Go's
/// `base64.StdEncoding` does.
pub(crate) const B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// Decodes caller base64 with Go's error text.
pub(crate) fn decode_b64(s: &str) -> std::result::Result<Zeroizing<Vec<u8>>, String> {
    B64.decode(s).map(Zeroizing::new).map_err(|e| {
        let at = match e {
            base64::DecodeError::InvalidByte(i, _)
            | base64::DecodeError::InvalidLastSymbol(i, _) => i,
            base64::DecodeError::InvalidLength(n) => n,
            base64::DecodeError::InvalidPadding => s.len(),
        };
        format!("illegal base64 data at input byte {at}")
    })
}

#[derive(Serialize, Deserialize)]
struct StoredVersion {
    created: String,
    key: String,
    hmac_key: String,
    #[serde(default)]
    public_key: Option<String>,
}

impl Drop for StoredVersion {
    fn drop(&mut self) {
        self.key.zeroize();
        self.hmac_key.zeroize();
    }
}

#[derive(Serialize, Deserialize)]
struct StoredPolicy {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    versions: BTreeMap<u32, StoredVersion>,
    latest_version: u32,
    min_decryption_version: u32,
    min_encryption_version: u32,
    #[serde(default)]
    min_available_version: u32,
    deletion_allowed: bool,
    exportable: bool,
    allow_plaintext_backup: bool,
    auto_rotate_period: u64,
    derived: bool,
    #[serde(default)]
    key_size: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_form_round_trips_and_debug_hides_keys() {
        let mut p = Policy::new("k", KeyType::Aes256Gcm96, 0).unwrap();
        p.rotate().unwrap();
        let back = Policy::from_bytes(&p.to_bytes().unwrap()).unwrap();
        assert_eq!(back.latest_version, 2);
        assert_eq!(
            back.versions[&1].key.as_slice(),
            p.versions[&1].key.as_slice()
        );
        let dbg = format!("{p:?}");
        let b64 = B64.encode(p.versions[&1].key.as_slice());
        assert!(!dbg.contains(&b64), "{dbg}");
        assert!(!dbg.contains(&format!("{:?}", p.versions[&1].key.as_slice())));
    }

    #[test]
    fn versions_and_limits() {
        let mut p = Policy::new("k", KeyType::Aes256Gcm96, 0).unwrap();
        p.rotate().unwrap();
        p.rotate().unwrap();
        p.min_decryption_version = 2;
        assert!(p.for_decryption(1).is_err());
        assert_eq!(p.for_decryption(3).unwrap().0, 3);
        assert!(p.for_decryption(4).is_err());
        assert_eq!(p.for_encryption(0).unwrap().0, 3);
        assert!(p.for_encryption(1).is_err());
        assert!(p.for_encryption(9).is_err());
        assert_eq!(p.read_data()["keys"].as_object().unwrap().len(), 2);
    }

    #[test]
    fn rotation_is_due_after_the_period() {
        let mut p = Policy::new("k", KeyType::Aes256Gcm96, 0).unwrap();
        let now = crate::util::now();
        assert!(!p.rotation_due(now + chrono::Duration::days(400)));
        p.auto_rotate_period = 3600;
        assert!(!p.rotation_due(now));
        assert!(p.rotation_due(now + chrono::Duration::seconds(3600)));
    }

    #[test]
    fn go_base64() {
        // Go accepts non-zero trailing bits: "aGVsbG9=" is "hello".
        assert_eq!(decode_b64("aGVsbG9=").unwrap().as_slice(), b"hello");
        assert_eq!(
            decode_b64("!!").unwrap_err(),
            "illegal base64 data at input byte 0"
        );
    }
}

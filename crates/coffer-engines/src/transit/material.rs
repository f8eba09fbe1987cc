//! The cryptography of transit keys, on aws-lc-rs (already the crypto
//! library of the barrier, TLS and JWT): key generation, AEAD and RSA-OAEP
//! encryption, signatures, HMAC, per-context derivation and export forms.
//! Nothing here sees a request; errors carry no key or plaintext bytes.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{
    KeySize, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
    OAEP_SHA256_MGF1SHA256,
};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use aws_lc_rs::{digest, hkdf, hmac};
use base64::Engine as _;
use zeroize::Zeroizing;

use super::policy::{KeyType, B64};
use crate::{Error, Result};

/// A failed key operation of transit (500): `op` names it.
fn crypto(op: &'static str) -> Error {
    Error::crypto_failed(op)
}

/// PEM armour with 64-column lines, ending in a newline.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// New key material of `kind` and the public key reads show.
pub(crate) fn generate(
    kind: KeyType,
    key_size: usize,
) -> Result<(Zeroizing<Vec<u8>>, Option<String>)> {
    Ok(match kind {
        KeyType::Aes128Gcm96 => (Zeroizing::new(coffer_crypto::random::bytes(16)), None),
        KeyType::Aes256Gcm96 | KeyType::ChaCha20Poly1305 => {
            (Zeroizing::new(coffer_crypto::random::bytes(32)), None)
        }
        KeyType::Hmac => (Zeroizing::new(coffer_crypto::random::bytes(key_size)), None),
        KeyType::Ed25519 => {
            let seed = Zeroizing::new(coffer_crypto::random::bytes(32));
            let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
                .map_err(|_| crypto("transit ed25519 key generation"))?;
            let public = B64.encode(pair.public_key().as_ref());
            (seed, Some(public))
        }
        KeyType::EcdsaP256 => {
            let pair = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_ASN1_SIGNING)
                .map_err(|_| crypto("transit ecdsa key generation"))?;
            let doc = pair
                .to_pkcs8v1()
                .map_err(|_| crypto("transit ecdsa key encoding"))?;
            let spki = pair
                .public_key()
                .as_der()
                .map_err(|_| crypto("transit ecdsa public key encoding"))?;
            (
                Zeroizing::new(doc.as_ref().to_vec()),
                Some(pem("PUBLIC KEY", spki.as_ref())),
            )
        }
        KeyType::Rsa2048 | KeyType::Rsa4096 => {
            let size = if kind == KeyType::Rsa2048 {
                KeySize::Rsa2048
            } else {
                KeySize::Rsa4096
            };
            let pair =
                RsaKeyPair::generate(size).map_err(|_| crypto("transit rsa key generation"))?;
            let doc = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair)
                .map_err(|_| crypto("transit rsa key encoding"))?;
            let spki = pair
                .public_key()
                .as_der()
                .map_err(|_| crypto("transit rsa public key encoding"))?;
            (
                Zeroizing::new(doc.as_ref().to_vec()),
                Some(pem("PUBLIC KEY", spki.as_ref())),
            )
        }
    })
}

/// The key for one `context` of a derived key: HKDF-SHA256 with no salt
/// and the context as info, as Vault derives (`kdf = hkdf_sha256`).
pub(crate) fn derive(key: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(key);
    let info = [context];
    let okm = prk
        .expand(&info, Len(key.len()))
        .map_err(|_| crypto("transit key derivation"))?;
    let mut out = Zeroizing::new(vec![0u8; key.len()]);
    okm.fill(&mut out)
        .map_err(|_| crypto("transit key derivation"))?;
    Ok(out)
}

fn aead_key(kind: KeyType, key: &[u8]) -> Result<LessSafeKey> {
    let alg = match kind {
        KeyType::Aes128Gcm96 => &aead::AES_128_GCM,
        KeyType::Aes256Gcm96 => &aead::AES_256_GCM,
        KeyType::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
        _ => {
            return Err(crypto(
                "transit: using a key that is not an AEAD key as one",
            ))
        }
    };
    UnboundKey::new(alg, key)
        .map(LessSafeKey::new)
        .map_err(|_| crypto("transit: loading an AEAD key"))
}

/// Encrypts: `nonce || ciphertext || tag` for AEAD keys (Vault's layout),
/// the RSA-OAEP (SHA-256) ciphertext for RSA keys.
pub(crate) fn encrypt(kind: KeyType, key: &[u8], plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    if kind.is_rsa() {
        let private = PrivateDecryptingKey::from_pkcs8(key)
            .map_err(|_| crypto("transit: loading an rsa key"))?;
        let public = OaepPublicEncryptingKey::new(private.public_key())
            .map_err(|_| crypto("transit: loading an rsa key"))?;
        if plaintext.len() > public.max_plaintext_size(&OAEP_SHA256_MGF1SHA256) {
            return Err(Error::bad("crypto/rsa: message too long for RSA key size"));
        }
        let mut out = vec![0u8; public.ciphertext_size()];
        let n = public
            .encrypt(&OAEP_SHA256_MGF1SHA256, plaintext, &mut out, None)
            .map_err(|_| crypto("transit rsa encryption"))?
            .len();
        out.truncate(n);
        return Ok(out);
    }
    let k = aead_key(kind, key)?;
    let mut nonce = [0u8; NONCE_LEN];
    coffer_crypto::random::fill(&mut nonce);
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + 16);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = k
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut out[NONCE_LEN..],
        )
        .map_err(|_| crypto("transit encryption"))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Decrypts what [`encrypt`] made; Vault's messages for short or forged input.
pub(crate) fn decrypt(
    kind: KeyType,
    key: &[u8],
    sealed: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    if kind.is_rsa() {
        let private = OaepPrivateDecryptingKey::new(
            PrivateDecryptingKey::from_pkcs8(key)
                .map_err(|_| crypto("transit: loading an rsa key"))?,
        )
        .map_err(|_| crypto("transit: loading an rsa key"))?;
        let mut out = Zeroizing::new(vec![0u8; private.min_output_size()]);
        let n = private
            .decrypt(&OAEP_SHA256_MGF1SHA256, sealed, &mut out, None)
            .map_err(|_| Error::bad("crypto/rsa: decryption error"))?
            .len();
        out.truncate(n);
        return Ok(out);
    }
    if sealed.len() < NONCE_LEN + 16 {
        return Err(Error::bad("invalid ciphertext length"));
    }
    let k = aead_key(kind, key)?;
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce)
        .map_err(|_| Error::bad("invalid ciphertext length"))?;
    let mut buf = Zeroizing::new(body.to_vec());
    let n = k
        .open_in_place(nonce, Aad::from(aad), buf.as_mut_slice())
        .map_err(|_| Error::bad("cipher: message authentication failed"))?
        .len();
    buf.truncate(n);
    Ok(buf)
}

/// Hash algorithms of Vault's sign/verify and hmac, as far as aws-lc-rs
/// offers them for each use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hash {
    /// SHA-224.
    Sha224,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Hash {
    /// Parses Vault's names (`sha2-256`, and the legacy `sha256` spelling).
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "sha2-224" | "sha224" => Hash::Sha224,
            "sha2-256" | "sha256" => Hash::Sha256,
            "sha2-384" | "sha384" => Hash::Sha384,
            "sha2-512" | "sha512" => Hash::Sha512,
            _ => return None,
        })
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Hash::Sha224 => &digest::SHA224,
            Hash::Sha256 => &digest::SHA256,
            Hash::Sha384 => &digest::SHA384,
            Hash::Sha512 => &digest::SHA512,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Hash::Sha224 => hmac::HMAC_SHA224,
            Hash::Sha256 => hmac::HMAC_SHA256,
            Hash::Sha384 => hmac::HMAC_SHA384,
            Hash::Sha512 => hmac::HMAC_SHA512,
        }
    }
}

/// HMAC of `input` under `key`.
pub(crate) fn hmac_sign(hash: Hash, key: &[u8], input: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hash.hmac(), key), input)
        .as_ref()
        .to_vec()
}

/// RSA signature padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RsaPadding {
    /// RSASSA-PSS (Vault's default).
    Pss,
    /// RSASSA-PKCS1-v1_5.
    Pkcs1v15,
}

/// How one sign or verify call is asked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SignParams {
    /// The hash (ignored by Ed25519).
    pub(crate) hash: Hash,
    /// Whether `input` is already the digest.
    pub(crate) prehashed: bool,
    /// RSA padding.
    pub(crate) padding: RsaPadding,
}

fn rsa_encoding(p: &SignParams) -> Result<&'static dyn signature::RsaEncoding> {
    Ok(match (p.padding, p.hash) {
        (RsaPadding::Pss, Hash::Sha256) => &signature::RSA_PSS_SHA256,
        (RsaPadding::Pss, Hash::Sha384) => &signature::RSA_PSS_SHA384,
        (RsaPadding::Pss, Hash::Sha512) => &signature::RSA_PSS_SHA512,
        (RsaPadding::Pkcs1v15, Hash::Sha256) => &signature::RSA_PKCS1_SHA256,
        (RsaPadding::Pkcs1v15, Hash::Sha384) => &signature::RSA_PKCS1_SHA384,
        (RsaPadding::Pkcs1v15, Hash::Sha512) => &signature::RSA_PKCS1_SHA512,
        _ => return Err(Error::bad("unsupported hash algorithm for rsa keys")),
    })
}

fn rsa_params(p: &SignParams) -> Result<&'static signature::RsaParameters> {
    Ok(match (p.padding, p.hash) {
        (RsaPadding::Pss, Hash::Sha256) => &signature::RSA_PSS_2048_8192_SHA256,
        (RsaPadding::Pss, Hash::Sha384) => &signature::RSA_PSS_2048_8192_SHA384,
        (RsaPadding::Pss, Hash::Sha512) => &signature::RSA_PSS_2048_8192_SHA512,
        (RsaPadding::Pkcs1v15, Hash::Sha256) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (RsaPadding::Pkcs1v15, Hash::Sha384) => &signature::RSA_PKCS1_2048_8192_SHA384,
        (RsaPadding::Pkcs1v15, Hash::Sha512) => &signature::RSA_PKCS1_2048_8192_SHA512,
        _ => return Err(Error::bad("unsupported hash algorithm for rsa keys")),
    })
}

fn prehashed_digest(p: &SignParams, input: &[u8]) -> Result<digest::Digest> {
    digest::Digest::import_less_safe(input, p.hash.digest())
        .map_err(|_| Error::bad("prehashed input does not have the length of the hash algorithm"))
}

fn ecdsa_hash_check(p: &SignParams) -> Result<()> {
    if p.hash != Hash::Sha256 {
        return Err(Error::bad(
            "unsupported hash algorithm for ecdsa-p256 keys in Coffer (only sha2-256)",
        ));
    }
    Ok(())
}

/// Signs `input` with the version's private key.
pub(crate) fn sign(kind: KeyType, key: &[u8], input: &[u8], p: &SignParams) -> Result<Vec<u8>> {
    match kind {
        KeyType::Ed25519 => {
            let pair = Ed25519KeyPair::from_seed_unchecked(key)
                .map_err(|_| crypto("transit: loading an ed25519 key"))?;
            Ok(pair.sign(input).as_ref().to_vec())
        }
        KeyType::EcdsaP256 => {
            ecdsa_hash_check(p)?;
            let pair = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, key)
                .map_err(|_| crypto("transit: loading an ecdsa key"))?;
            let sig = if p.prehashed {
                pair.sign_digest(&prehashed_digest(p, input)?)
            } else {
                pair.sign(&aws_lc_rs::rand::SystemRandom::new(), input)
            }
            .map_err(|_| crypto("transit ecdsa signing"))?;
            Ok(sig.as_ref().to_vec())
        }
        KeyType::Rsa2048 | KeyType::Rsa4096 => {
            let enc = rsa_encoding(p)?;
            let pair =
                RsaKeyPair::from_pkcs8(key).map_err(|_| crypto("transit: loading an rsa key"))?;
            let mut out = vec![0u8; pair.public_modulus_len()];
            if p.prehashed {
                pair.sign_digest(enc, &prehashed_digest(p, input)?, &mut out)
            } else {
                pair.sign(enc, &aws_lc_rs::rand::SystemRandom::new(), input, &mut out)
            }
            .map_err(|_| crypto("transit rsa signing"))?;
            Ok(out)
        }
        _ => Err(Error::bad(format!(
            "key type {} does not support signing",
            kind.name()
        ))),
    }
}

/// Whether `sig` is the version's signature of `input`.
pub(crate) fn verify(
    kind: KeyType,
    key: &[u8],
    input: &[u8],
    sig: &[u8],
    p: &SignParams,
) -> Result<bool> {
    match kind {
        KeyType::Ed25519 => {
            let pair = Ed25519KeyPair::from_seed_unchecked(key)
                .map_err(|_| crypto("transit: loading an ed25519 key"))?;
            let public = signature::UnparsedPublicKey::new(&signature::ED25519, pair.public_key());
            Ok(public.verify(input, sig).is_ok())
        }
        KeyType::EcdsaP256 => {
            ecdsa_hash_check(p)?;
            let pair = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, key)
                .map_err(|_| crypto("transit: loading an ecdsa key"))?;
            let public = signature::UnparsedPublicKey::new(
                &signature::ECDSA_P256_SHA256_ASN1,
                pair.public_key().as_ref(),
            );
            Ok(if p.prehashed {
                public
                    .verify_digest(&prehashed_digest(p, input)?, sig)
                    .is_ok()
            } else {
                public.verify(input, sig).is_ok()
            })
        }
        KeyType::Rsa2048 | KeyType::Rsa4096 => {
            let params = rsa_params(p)?;
            let pair =
                RsaKeyPair::from_pkcs8(key).map_err(|_| crypto("transit: loading an rsa key"))?;
            let public = signature::UnparsedPublicKey::new(params, pair.public_key().as_ref());
            Ok(if p.prehashed {
                public
                    .verify_digest(&prehashed_digest(p, input)?, sig)
                    .is_ok()
            } else {
                public.verify(input, sig).is_ok()
            })
        }
        _ => Err(Error::bad(format!(
            "key type {} does not support verification",
            kind.name()
        ))),
    }
}

/// The private key as `export/signing-key` shows it (Vault's forms:
/// base64 of seed and public key for Ed25519, SEC 1 PEM for ECDSA,
/// PKCS #1 PEM for RSA).
pub(crate) fn export_signing(kind: KeyType, key: &[u8]) -> Result<Zeroizing<String>> {
    match kind {
        KeyType::Ed25519 => {
            let pair = Ed25519KeyPair::from_seed_unchecked(key)
                .map_err(|_| crypto("transit: loading an ed25519 key"))?;
            let mut full = Zeroizing::new(key.to_vec());
            full.extend_from_slice(pair.public_key().as_ref());
            Ok(Zeroizing::new(B64.encode(full.as_slice())))
        }
        KeyType::EcdsaP256 => {
            let pair = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, key)
                .map_err(|_| crypto("transit: loading an ecdsa key"))?;
            let der = pair
                .private_key()
                .as_der()
                .map_err(|_| crypto("transit ecdsa key encoding"))?;
            Ok(Zeroizing::new(
                pem("EC PRIVATE KEY", der.as_ref()).trim_end().to_string(),
            ))
        }
        KeyType::Rsa2048 | KeyType::Rsa4096 => {
            let pkcs1 = pkcs8_inner(key).ok_or_else(|| crypto("transit: bad rsa key encoding"))?;
            Ok(Zeroizing::new(
                pem("RSA PRIVATE KEY", pkcs1).trim_end().to_string(),
            ))
        }
        _ => Err(Error::bad("signing not supported for the key")),
    }
}

/// One DER element at the start of `input`: (tag, contents, rest).
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The private key inside a PKCS #8 v1 document:
/// `SEQUENCE { INTEGER, SEQUENCE (algorithm), OCTET STRING (key) }`.
fn pkcs8_inner(doc: &[u8]) -> Option<&[u8]> {
    let (tag, body, _) = der_element(doc)?;
    if tag != 0x30 {
        return None;
    }
    let (t1, _, rest) = der_element(body)?;
    let (t2, _, rest) = der_element(rest)?;
    let (t3, key, _) = der_element(rest)?;
    (t1 == 0x02 && t2 == 0x30 && t3 == 0x04).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [KeyType; 7] = [
        KeyType::Aes128Gcm96,
        KeyType::Aes256Gcm96,
        KeyType::ChaCha20Poly1305,
        KeyType::Ed25519,
        KeyType::EcdsaP256,
        KeyType::Rsa2048,
        KeyType::Hmac,
    ];

    #[test]
    fn every_type_does_what_it_supports() {
        let p = SignParams {
            hash: Hash::Sha256,
            prehashed: false,
            padding: RsaPadding::Pss,
        };
        for kind in ALL {
            let (key, _) = generate(kind, 32).unwrap();
            if kind.supports_encryption() {
                let c = encrypt(kind, &key, b"msg", b"").unwrap();
                assert_eq!(decrypt(kind, &key, &c, b"").unwrap().as_slice(), b"msg");
                let mut bad = c.clone();
                let last = bad.len() - 1;
                bad[last] ^= 1;
                assert!(decrypt(kind, &key, &bad, b"").is_err(), "{kind:?}");
            }
            if kind.supports_signing() {
                let s = sign(kind, &key, b"msg", &p).unwrap();
                assert!(verify(kind, &key, b"msg", &s, &p).unwrap(), "{kind:?}");
                assert!(!verify(kind, &key, b"msh", &s, &p).unwrap(), "{kind:?}");
                assert!(!export_signing(kind, &key).unwrap().is_empty());
            }
        }
    }

    #[test]
    fn aead_layout_is_nonce_ciphertext_tag() {
        let (key, _) = generate(KeyType::Aes256Gcm96, 0).unwrap();
        let c = encrypt(KeyType::Aes256Gcm96, &key, b"hello", b"").unwrap();
        assert_eq!(c.len(), 12 + 5 + 16);
        assert_eq!(
            decrypt(KeyType::Aes256Gcm96, &key, &c[..20], b"")
                .unwrap_err()
                .to_string(),
            "invalid ciphertext length"
        );
    }

    #[test]
    fn derivation_depends_on_the_context() {
        let key = [7u8; 32];
        assert_ne!(derive(&key, b"a").unwrap(), derive(&key, b"b").unwrap());
        assert_eq!(derive(&key, b"a").unwrap(), derive(&key, b"a").unwrap());
    }

    #[test]
    fn rsa_export_is_pkcs1() {
        let (key, _) = generate(KeyType::Rsa2048, 0).unwrap();
        let pem = export_signing(KeyType::Rsa2048, &key).unwrap();
        assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
        let inner = pkcs8_inner(&key).unwrap();
        assert!(RsaKeyPair::from_der(inner).is_ok());
    }
}

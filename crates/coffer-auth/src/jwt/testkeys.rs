//! Test-only key pairs, generated at run time, that sign JWTs the way an
//! identity provider does. Signing uses aws-lc-rs directly (not the
//! verifier's library), so the tests check verification independently.

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    RSA_PKCS1_SHA256,
};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};

/// A signing key pair of one of the three families.
pub enum TestKey {
    /// RSA 2048, signs RS256.
    Rsa(RsaKeyPair),
    /// ECDSA P-256, signs ES256.
    Ec(EcdsaKeyPair),
    /// Ed25519, signs EdDSA.
    Ed(Ed25519KeyPair),
}

impl TestKey {
    /// A fresh RSA key pair.
    pub fn rsa() -> Self {
        TestKey::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).unwrap())
    }

    /// A fresh P-256 key pair.
    pub fn ec() -> Self {
        TestKey::Ec(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap())
    }

    /// A fresh Ed25519 key pair.
    pub fn ed() -> Self {
        TestKey::Ed(Ed25519KeyPair::generate().unwrap())
    }

    /// The JOSE algorithm this key signs with.
    pub fn alg(&self) -> &'static str {
        match self {
            TestKey::Rsa(_) => "RS256",
            TestKey::Ec(_) => "ES256",
            TestKey::Ed(_) => "EdDSA",
        }
    }

    /// The public key as a PEM `PUBLIC KEY` block.
    pub fn public_pem(&self) -> String {
        let der: PublicKeyX509Der<'static> = match self {
            TestKey::Rsa(k) => k.public_key().as_der().unwrap(),
            TestKey::Ec(k) => k.public_key().as_der().unwrap(),
            TestKey::Ed(k) => k.public_key().as_der().unwrap(),
        };
        let b64 = STANDARD.encode(der.as_ref());
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(chunk).unwrap());
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem
    }

    /// The public key as a JWK.
    pub fn jwk(&self, kid: Option<&str>) -> Value {
        let b = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let mut jwk = match self {
            TestKey::Rsa(k) => {
                let p = k.public_key();
                json!({"kty": "RSA", "n": b(p.modulus().big_endian_without_leading_zero()),
                       "e": b(p.exponent().big_endian_without_leading_zero())})
            }
            TestKey::Ec(k) => {
                let point = k.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "x": b(&point[1..33]), "y": b(&point[33..65])})
            }
            TestKey::Ed(k) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b(k.public_key().as_ref())})
            }
        };
        if let Some(kid) = kid {
            jwk["kid"] = json!(kid);
        }
        jwk
    }

    /// A compact JWS over `claims`, with `kid` in the header when given.
    pub fn sign(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut header = json!({"alg": self.alg(), "typ": "JWT"});
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        self.sign_raw(&header, claims)
    }

    /// A compact JWS with an arbitrary header (the signature is made with
    /// this key whatever the header says).
    pub fn sign_raw(&self, header: &Value, claims: &Value) -> String {
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = match self {
            TestKey::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    signed.as_bytes(),
                    &mut sig,
                )
                .unwrap();
                sig
            }
            TestKey::Ec(k) => k
                .sign(&SystemRandom::new(), signed.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
            TestKey::Ed(k) => k.sign(signed.as_bytes()).as_ref().to_vec(),
        };
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

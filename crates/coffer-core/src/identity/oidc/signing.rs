//! The cryptography of identity tokens, on aws-lc-rs (the crypto library
//! of the barrier, TLS, transit and the wrapping JWTs): key generation for
//! Vault's seven algorithms, compact JWS signing, public keys as JWKs and
//! signature checks against them.
//!
//! A private key is PKCS#8, base64 inside its named key's record (so the
//! barrier encrypts it), and in memory only in zeroizing buffers; nothing
//! here prints one ([`PrivateKey`]'s `Debug` shows its key id alone), and
//! errors name the operation, never key bytes.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair, RsaPublicKeyComponents,
    UnparsedPublicKey,
};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::{Error, Result};

/// A signing algorithm of named keys (Vault's list, RS256 the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (2048-bit keys).
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384 (2048-bit keys).
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512 (2048-bit keys).
    RS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// ECDSA on P-521 with SHA-512.
    ES512,
    /// Ed25519.
    EdDSA,
}

impl Algorithm {
    /// Every algorithm, in the order discovery lists them.
    pub const ALL: [Algorithm; 7] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::ES512,
        Algorithm::EdDSA,
    ];

    /// The algorithm named `name` (its JOSE name, case-sensitive as in Vault).
    pub fn parse(name: &str) -> Option<Algorithm> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// Its JOSE name (`alg`).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::ES512 => "ES512",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    fn ecdsa_signing(self) -> Option<&'static signature::EcdsaSigningAlgorithm> {
        match self {
            Algorithm::ES256 => Some(&signature::ECDSA_P256_SHA256_FIXED_SIGNING),
            Algorithm::ES384 => Some(&signature::ECDSA_P384_SHA384_FIXED_SIGNING),
            Algorithm::ES512 => Some(&signature::ECDSA_P521_SHA512_FIXED_SIGNING),
            _ => None,
        }
    }

    /// The JWK curve name and coordinate length of an ECDSA algorithm.
    fn curve(self) -> Option<(&'static str, usize)> {
        match self {
            Algorithm::ES256 => Some(("P-256", 32)),
            Algorithm::ES384 => Some(("P-384", 48)),
            Algorithm::ES512 => Some(("P-521", 66)),
            _ => None,
        }
    }
}

/// Base64 of PKCS#8 in a zeroizing buffer: serialized as a plain string
/// (inside a barrier entry), never printed.
pub struct Secret(Zeroizing<String>);

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d).map(|s| Secret(Zeroizing::new(s)))
    }
}

/// A private signing key and its key id.
#[derive(Serialize, Deserialize)]
pub struct PrivateKey {
    /// The key id (`kid`), a UUID.
    pub kid: String,
    /// The algorithm it signs with.
    pub alg: Algorithm,
    /// PKCS#8, base64.
    pkcs8: Secret,
}

/// Shows the key id and algorithm only.
impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// A public key as a JSON Web Key (RFC 7517), as `.well-known/keys` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// `RSA`, `EC` or `OKP`.
    pub kty: String,
    /// The key id.
    pub kid: String,
    /// The algorithm.
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub usage: String,
    /// RSA modulus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA exponent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Curve (`P-256`, `P-384`, `P-521`, `Ed25519`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// EC x coordinate, or the Ed25519 public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y coordinate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

fn failed(op: &'static str) -> Error {
    Error::crypto_failed(op)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A new key pair for `alg` (on a blocking thread: RSA generation takes a
/// while) with a fresh key id.
pub async fn generate(alg: Algorithm) -> Result<(PrivateKey, Jwk)> {
    tokio::task::spawn_blocking(move || generate_now(alg))
        .await
        .map_err(|_| failed("generating an identity token key"))?
}

fn generate_now(alg: Algorithm) -> Result<(PrivateKey, Jwk)> {
    let kid = coffer_crypto::random::uuid();
    let rng = SystemRandom::new();
    let pkcs8: Zeroizing<Vec<u8>> = match alg {
        Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048)
                .map_err(|_| failed("generating an identity token key"))?;
            let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair)
                .map_err(|_| failed("encoding an identity token key"))?;
            Zeroizing::new(der.as_ref().to_vec())
        }
        Algorithm::ES256 | Algorithm::ES384 | Algorithm::ES512 => {
            let signing = alg
                .ecdsa_signing()
                .ok_or_else(|| failed("generating an identity token key"))?;
            let doc = EcdsaKeyPair::generate_pkcs8(signing, &rng)
                .map_err(|_| failed("generating an identity token key"))?;
            Zeroizing::new(doc.as_ref().to_vec())
        }
        Algorithm::EdDSA => {
            let doc = Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| failed("generating an identity token key"))?;
            Zeroizing::new(doc.as_ref().to_vec())
        }
    };
    let key = PrivateKey {
        kid,
        alg,
        pkcs8: Secret(Zeroizing::new(STANDARD.encode(&*pkcs8))),
    };
    let jwk = key.public()?;
    Ok((key, jwk))
}

/// A loaded key pair of one algorithm family.
enum Pair {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl PrivateKey {
    fn pair(&self) -> Result<Pair> {
        let der = Zeroizing::new(
            STANDARD
                .decode(self.pkcs8.0.as_bytes())
                .map_err(|_| Error::corrupt("an identity token key"))?,
        );
        let bad = |_| Error::corrupt("an identity token key");
        Ok(match self.alg {
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => {
                Pair::Rsa(RsaKeyPair::from_pkcs8(&der).map_err(bad)?)
            }
            Algorithm::ES256 | Algorithm::ES384 | Algorithm::ES512 => {
                let signing = self
                    .alg
                    .ecdsa_signing()
                    .ok_or_else(|| Error::corrupt("an identity token key"))?;
                Pair::Ecdsa(EcdsaKeyPair::from_pkcs8(signing, &der).map_err(bad)?)
            }
            Algorithm::EdDSA => Pair::Ed25519(Ed25519KeyPair::from_pkcs8(&der).map_err(bad)?),
        })
    }

    /// The public half as a JWK.
    pub fn public(&self) -> Result<Jwk> {
        let mut jwk = Jwk {
            kty: String::new(),
            kid: self.kid.clone(),
            alg: self.alg.as_str().into(),
            usage: "sig".into(),
            n: None,
            e: None,
            crv: None,
            x: None,
            y: None,
        };
        match self.pair()? {
            Pair::Rsa(p) => {
                let public = p.public_key();
                jwk.kty = "RSA".into();
                jwk.n = Some(b64(public.modulus().big_endian_without_leading_zero()));
                jwk.e = Some(b64(public.exponent().big_endian_without_leading_zero()));
            }
            Pair::Ecdsa(p) => {
                let (crv, len) = self
                    .alg
                    .curve()
                    .ok_or_else(|| Error::corrupt("an identity token key"))?;
                // Uncompressed point: 0x04 || x || y.
                let point = p.public_key().as_ref();
                if point.len() != 1 + 2 * len {
                    return Err(Error::corrupt("an identity token key"));
                }
                jwk.kty = "EC".into();
                jwk.crv = Some(crv.into());
                jwk.x = Some(b64(&point[1..1 + len]));
                jwk.y = Some(b64(&point[1 + len..]));
            }
            Pair::Ed25519(p) => {
                jwk.kty = "OKP".into();
                jwk.crv = Some("Ed25519".into());
                jwk.x = Some(b64(p.public_key().as_ref()));
            }
        }
        Ok(jwk)
    }

    /// A compact JWS of `claims`, with the header `{"alg", "kid"}`.
    pub fn sign_jwt(&self, claims: &serde_json::Value) -> Result<String> {
        let header = serde_json::json!({"alg": self.alg.as_str(), "kid": self.kid});
        let header = serde_json::to_vec(&header).map_err(|e| Error::encode("a token header", e))?;
        let payload =
            serde_json::to_vec(claims).map_err(|e| Error::encode("identity token claims", e))?;
        let input = format!("{}.{}", b64(&header), b64(&payload));
        let sig = self.sign(input.as_bytes())?;
        Ok(format!("{input}.{}", b64(&sig)))
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>> {
        let rng = SystemRandom::new();
        let failed = || failed("signing an identity token");
        match self.pair()? {
            Pair::Rsa(p) => {
                let padding = match self.alg {
                    Algorithm::RS384 => &signature::RSA_PKCS1_SHA384,
                    Algorithm::RS512 => &signature::RSA_PKCS1_SHA512,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0u8; p.public_modulus_len()];
                p.sign(padding, &rng, msg, &mut sig).map_err(|_| failed())?;
                Ok(sig)
            }
            Pair::Ecdsa(p) => Ok(p.sign(&rng, msg).map_err(|_| failed())?.as_ref().to_vec()),
            Pair::Ed25519(p) => Ok(p.sign(msg).as_ref().to_vec()),
        }
    }
}

/// Whether `sig` is `jwk`'s signature of `msg` under the algorithm `alg`
/// the token's header names; a header naming another algorithm than the
/// key's never verifies.
pub fn verify(jwk: &Jwk, alg: &str, msg: &[u8], sig: &[u8]) -> bool {
    if jwk.alg != alg {
        return false;
    }
    let Some(alg) = Algorithm::parse(alg) else {
        return false;
    };
    let decode = |v: &Option<String>| v.as_deref().and_then(|s| URL_SAFE_NO_PAD.decode(s).ok());
    match alg {
        Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => {
            let (Some(n), Some(e)) = (decode(&jwk.n), decode(&jwk.e)) else {
                return false;
            };
            let params = match alg {
                Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                _ => &signature::RSA_PKCS1_2048_8192_SHA256,
            };
            RsaPublicKeyComponents { n: &n, e: &e }
                .verify(params, msg, sig)
                .is_ok()
        }
        Algorithm::ES256 | Algorithm::ES384 | Algorithm::ES512 => {
            let (Some(x), Some(y)) = (decode(&jwk.x), decode(&jwk.y)) else {
                return false;
            };
            let verifying: &'static dyn signature::VerificationAlgorithm = match alg {
                Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
                Algorithm::ES512 => &signature::ECDSA_P521_SHA512_FIXED,
                _ => &signature::ECDSA_P256_SHA256_FIXED,
            };
            let mut point = Vec::with_capacity(1 + x.len() + y.len());
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            UnparsedPublicKey::new(verifying, &point)
                .verify(msg, sig)
                .is_ok()
        }
        Algorithm::EdDSA => {
            let Some(x) = decode(&jwk.x) else {
                return false;
            };
            UnparsedPublicKey::new(&signature::ED25519, &x)
                .verify(msg, sig)
                .is_ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every algorithm signs a JWT its own JWK verifies; another key, another
    /// algorithm in the header, or a changed payload never verify.
    #[tokio::test]
    async fn every_algorithm_signs_what_its_jwk_verifies() {
        for alg in Algorithm::ALL {
            let (key, jwk) = generate(alg).await.unwrap();
            let (_, other) = generate(alg).await.unwrap();
            assert_eq!(jwk.alg, alg.as_str());
            assert_eq!(jwk.kid, key.kid);
            let jwt = key.sign_jwt(&serde_json::json!({"sub": "x"})).unwrap();
            let parts: Vec<&str> = jwt.split('.').collect();
            assert_eq!(parts.len(), 3);
            let input = format!("{}.{}", parts[0], parts[1]);
            let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
            assert!(
                verify(&jwk, alg.as_str(), input.as_bytes(), &sig),
                "{alg:?}"
            );
            assert!(!verify(&other, alg.as_str(), input.as_bytes(), &sig));
            let wrong = if alg == Algorithm::RS256 {
                "RS384"
            } else {
                "RS256"
            };
            assert!(!verify(&jwk, wrong, input.as_bytes(), &sig));
            let changed = format!("{}.{}", parts[0], b64(br#"{"sub":"y"}"#));
            assert!(!verify(&jwk, alg.as_str(), changed.as_bytes(), &sig));
            // The record round-trips, and its Debug shows no key bytes.
            let stored = serde_json::to_string(&key).unwrap();
            let back: PrivateKey = serde_json::from_str(&stored).unwrap();
            assert_eq!(back.public().unwrap(), jwk);
            let printed = format!("{back:?}");
            assert!(!printed.contains(back.pkcs8.0.as_str()), "{printed}");
        }
    }
}

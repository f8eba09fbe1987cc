//! The keys a JWT mount trusts, and signature verification against them.
//!
//! Keys come from the mount's config: PEM public keys
//! (`jwt_validation_pubkeys`) or an inline JWKS document (`jwks`). Only
//! asymmetric algorithms are accepted (RSA PKCS#1 v1.5 and PSS, ECDSA on
//! P-256 and P-384, Ed25519); `none` and the HMAC family never verify, so a
//! public key can never be misused as an HMAC secret.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

/// Largest token accepted, in bytes (Kubernetes and CI tokens are ~1-2 KiB).
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// The signing algorithms Coffer verifies, by their JOSE names (Vault's list
/// without ES512, which the verifier does not implement).
pub const SUPPORTED_ALGS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// Maps a JOSE `alg` name to an accepted algorithm; `None` for `none`, the
/// HMAC family and anything unknown.
pub fn algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

/// What kind of public key a [`VerifyKey`] is, which fixes the algorithms it
/// may verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl KeyKind {
    fn verifies(self, alg: Algorithm) -> bool {
        matches!(
            (self, alg),
            (
                KeyKind::Rsa,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ) | (KeyKind::EcP256, Algorithm::ES256)
                | (KeyKind::EcP384, Algorithm::ES384)
                | (KeyKind::Ed25519, Algorithm::EdDSA)
        )
    }
}

/// One trusted public key.
struct VerifyKey {
    kid: Option<String>,
    /// The JWK's `alg`, when it pins one.
    alg: Option<Algorithm>,
    kind: KeyKind,
    key: DecodingKey,
}

/// The keys of a mount. With a JWKS, a token naming a `kid` is checked only
/// against the keys carrying that `kid`; PEM keys have none, so every key of
/// the right type is tried.
pub struct KeySet {
    keys: Vec<VerifyKey>,
}

/// A token whose signature verified: its header's `alg` and its claims.
#[derive(Debug)]
pub struct Verified {
    /// The algorithm the token was signed with.
    pub alg: Algorithm,
    /// The token's claims.
    pub claims: Map<String, Value>,
}

/// Why a token was refused, in the words Vault uses after
/// "error validating token: ". Never carries token material.
const BAD_SIGNATURE: &str =
    "error verifying token signature: no known key successfully validated the token signature";
const MALFORMED: &str = "error verifying token signature: failed to parse JWT";

impl KeySet {
    /// Parses PEM public keys (`PUBLIC KEY`, `RSA PUBLIC KEY` or
    /// `CERTIFICATE` blocks). Errors name the key's position, never its text.
    pub fn from_pems(pems: &[String]) -> Result<KeySet, String> {
        let keys = pems
            .iter()
            .enumerate()
            .map(|(i, pem)| parse_pem(pem).map_err(|e| format!("key {}: {e}", i + 1)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(KeySet { keys })
    }

    /// Parses a JWKS document (`{"keys": [...]}`). Keys meant for encryption
    /// (`"use": "enc"`) are skipped; symmetric keys and keys holding private
    /// material are refused.
    pub fn from_jwks(doc: &Value) -> Result<KeySet, String> {
        let list = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("expected a JSON Web Key Set: an object with a \"keys\" list")?;
        let mut keys = Vec::new();
        for (i, jwk) in list.iter().enumerate() {
            let jwk = jwk
                .as_object()
                .ok_or_else(|| format!("key {}: expected an object", i + 1))?;
            if jwk.get("use").and_then(Value::as_str) == Some("enc") {
                continue;
            }
            keys.push(parse_jwk(jwk).map_err(|e| format!("key {}: {e}", i + 1))?);
        }
        if keys.is_empty() {
            return Err("the key set holds no signing key".into());
        }
        Ok(KeySet { keys })
    }

    /// Whether a key carries this `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Verifies `token` (compact JWS) with an algorithm from `allowed` and
    /// returns its claims. The error is Vault's wording, to follow
    /// "error validating token: ".
    pub fn verify(&self, token: &str, allowed: &[Algorithm]) -> Result<Verified, String> {
        let parts = split(token).ok_or(MALFORMED)?;
        let header = decode_object(parts.header).ok_or(MALFORMED)?;
        if header.contains_key("crit") {
            // RFC 7515 4.1.11: we understand no critical extension.
            return Err(MALFORMED.into());
        }
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(algorithm)
            .filter(|a| allowed.contains(a))
            .ok_or("invalid algorithm (alg) header: unsupported signing algorithm")?;
        let kid = match header.get("kid") {
            None | Some(Value::Null) => None,
            Some(Value::String(k)) => Some(k.as_str()),
            Some(_) => return Err(MALFORMED.into()),
        };
        let signature = URL_SAFE_NO_PAD
            .decode(parts.signature)
            .map_err(|_| MALFORMED.to_string())?;
        let verified = self
            .keys
            .iter()
            .filter(|k| k.kind.verifies(alg) && k.alg.is_none_or(|a| a == alg))
            .filter(|k| match (kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                // A token without a kid, or a key without one: try it.
                _ => true,
            })
            .any(|k| verify_one(&k.key, alg, parts.signed, &signature));
        if !verified {
            return Err(BAD_SIGNATURE.into());
        }
        let claims = decode_object(parts.payload)
            .ok_or("failed to parse claims: the payload is not a JSON object")?;
        Ok(Verified { alg, claims })
    }
}

/// The `kid` a compact JWS's header names, if it parses.
pub fn token_kid(token: &str) -> Option<String> {
    let parts = split(token)?;
    decode_object(parts.header)?
        .get("kid")?
        .as_str()
        .map(str::to_owned)
}

fn verify_one(key: &DecodingKey, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
    match (DEFAULT_PROVIDER.verifier_factory)(&alg, key) {
        Ok(v) => v.verify(message, &signature.to_vec()).is_ok(),
        Err(_) => false,
    }
}

/// The three parts of a compact JWS.
struct Parts<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
    /// `header.payload`, the signed bytes.
    signed: &'a [u8],
}

fn split(token: &str) -> Option<Parts<'_>> {
    let token = token.trim();
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let mut it = token.split('.');
    let (header, payload, signature) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || header.is_empty() || payload.is_empty() || signature.is_empty() {
        return None;
    }
    let signed = &token.as_bytes()[..header.len() + 1 + payload.len()];
    Some(Parts {
        header,
        payload,
        signature,
        signed,
    })
}

fn decode_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice::<Value>(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

fn parse_pem(pem: &str) -> Result<VerifyKey, String> {
    let label = pem
        .trim_start()
        .strip_prefix("-----BEGIN ")
        .and_then(|rest| rest.split_once("-----"))
        .map(|(label, _)| label)
        .ok_or("expected a PEM-encoded public key")?;
    // Refuse any private block anywhere in the text: reads return it as given.
    if !matches!(label, "PUBLIC KEY" | "RSA PUBLIC KEY" | "CERTIFICATE") || pem.contains("PRIVATE")
    {
        return Err("expected a PEM public key or certificate (private keys are refused)".into());
    }
    let bytes = pem.as_bytes();
    if let Ok(key) = DecodingKey::from_rsa_pem(bytes) {
        return Ok(VerifyKey {
            kid: None,
            alg: None,
            kind: KeyKind::Rsa,
            key,
        });
    }
    if let Ok(key) = DecodingKey::from_ec_pem(bytes) {
        let kind = ec_kind(key.try_get_as_bytes().map(<[u8]>::len).unwrap_or(0))?;
        return Ok(VerifyKey {
            kid: None,
            alg: None,
            kind,
            key,
        });
    }
    if let Ok(key) = DecodingKey::from_ed_pem(bytes) {
        if key.try_get_as_bytes().map(<[u8]>::len).unwrap_or(0) != 32 {
            return Err("unsupported EdDSA curve (only Ed25519)".into());
        }
        return Ok(VerifyKey {
            kid: None,
            alg: None,
            kind: KeyKind::Ed25519,
            key,
        });
    }
    Err("not an RSA, EC or Ed25519 public key".into())
}

/// The curve of an uncompressed EC point by its length.
fn ec_kind(point_len: usize) -> Result<KeyKind, String> {
    match point_len {
        65 => Ok(KeyKind::EcP256),
        97 => Ok(KeyKind::EcP384),
        _ => Err("unsupported elliptic curve (P-256 and P-384 are supported)".into()),
    }
}

fn parse_jwk(jwk: &Map<String, Value>) -> Result<VerifyKey, String> {
    let field = |name: &str| -> Result<&str, String> {
        jwk.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("missing \"{name}\""))
    };
    let b64 = |name: &str| -> Result<Vec<u8>, String> {
        URL_SAFE_NO_PAD
            .decode(field(name)?)
            .map_err(|_| format!("\"{name}\" is not base64url"))
    };
    let kid = match jwk.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err("\"kid\" must be a string".into()),
    };
    let alg = match jwk.get("alg").and_then(Value::as_str) {
        None => None,
        Some(a) => Some(algorithm(a).ok_or_else(|| format!("unsupported \"alg\" {a:?}"))?),
    };
    if jwk.contains_key("d") || jwk.contains_key("p") || jwk.contains_key("k") {
        return Err("holds private or symmetric key material; give public keys only".into());
    }
    let (kind, key) = match field("kty")? {
        "RSA" => {
            let (n, e) = (b64("n")?, b64("e")?);
            if n.len() < 256 {
                return Err("RSA keys must have at least 2048 bits".into());
            }
            (KeyKind::Rsa, DecodingKey::from_rsa_raw_components(&n, &e))
        }
        "EC" => {
            let (x, y) = (b64("x")?, b64("y")?);
            let (kind, len) = match field("crv")? {
                "P-256" => (KeyKind::EcP256, 32),
                "P-384" => (KeyKind::EcP384, 48),
                other => return Err(format!("unsupported curve {other:?}")),
            };
            if x.len() != len || y.len() != len {
                return Err("EC coordinates do not match the curve".into());
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (kind, DecodingKey::from_ec_der(&point))
        }
        "OKP" => {
            if field("crv")? != "Ed25519" {
                return Err("unsupported OKP curve (only Ed25519)".into());
            }
            let x = b64("x")?;
            if x.len() != 32 {
                return Err("an Ed25519 key is 32 bytes".into());
            }
            (KeyKind::Ed25519, DecodingKey::from_ed_der(&x))
        }
        "oct" => return Err("symmetric (oct) keys are not accepted".into()),
        other => return Err(format!("unsupported key type {other:?}")),
    };
    if let Some(a) = alg {
        if !kind.verifies(a) {
            return Err("\"alg\" does not match the key type".into());
        }
    }
    Ok(VerifyKey {
        kid,
        alg,
        kind,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::testkeys::TestKey;
    use serde_json::json;

    fn all() -> Vec<Algorithm> {
        SUPPORTED_ALGS.iter().filter_map(|a| algorithm(a)).collect()
    }

    #[test]
    fn pem_keys_verify_their_own_tokens_only() {
        let rsa = TestKey::rsa();
        let ec = TestKey::ec();
        let ed = TestKey::ed();
        let set = KeySet::from_pems(&[rsa.public_pem(), ec.public_pem(), ed.public_pem()]).unwrap();
        assert_eq!(set.len(), 3);
        for k in [&rsa, &ec, &ed] {
            let t = k.sign(None, &json!({"sub": "x"}));
            let v = set.verify(&t, &all()).unwrap();
            assert_eq!(v.claims["sub"], "x");
        }
        // A key pair not in the set.
        let other = TestKey::ec();
        let t = other.sign(None, &json!({"sub": "x"}));
        assert_eq!(set.verify(&t, &all()).unwrap_err(), BAD_SIGNATURE);
    }

    #[test]
    fn tampered_payload_fails() {
        let k = TestKey::rsa();
        let set = KeySet::from_pems(&[k.public_pem()]).unwrap();
        let t = k.sign(None, &json!({"sub": "alice"}));
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"sub":"admin"}"#);
        parts[1] = &forged;
        assert_eq!(
            set.verify(&parts.join("."), &all()).unwrap_err(),
            BAD_SIGNATURE
        );
        // A flipped signature byte.
        let mut sig = URL_SAFE_NO_PAD
            .decode(t.rsplit('.').next().unwrap())
            .unwrap();
        sig[5] ^= 1;
        let t2 = format!(
            "{}.{}",
            t.rsplit_once('.').unwrap().0,
            URL_SAFE_NO_PAD.encode(sig)
        );
        assert_eq!(set.verify(&t2, &all()).unwrap_err(), BAD_SIGNATURE);
    }

    #[test]
    fn none_and_hmac_are_refused() {
        let k = TestKey::rsa();
        let set = KeySet::from_pems(&[k.public_pem()]).unwrap();
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let p = URL_SAFE_NO_PAD.encode(br#"{"sub":"x"}"#);
        let e = set.verify(&format!("{h}.{p}."), &all()).unwrap_err();
        assert!(e.contains("failed to parse JWT"), "{e}");
        let e = set.verify(&format!("{h}.{p}.AAAA"), &all()).unwrap_err();
        assert!(e.starts_with("invalid algorithm (alg) header"), "{e}");
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#);
        let e = set.verify(&format!("{h}.{p}.AAAA"), &all()).unwrap_err();
        assert!(e.starts_with("invalid algorithm (alg) header"), "{e}");
    }

    #[test]
    fn algorithm_allow_list_applies() {
        let k = TestKey::ec();
        let set = KeySet::from_pems(&[k.public_pem()]).unwrap();
        let t = k.sign(None, &json!({"sub": "x"}));
        let e = set.verify(&t, &[Algorithm::RS256]).unwrap_err();
        assert!(e.starts_with("invalid algorithm"), "{e}");
    }

    #[test]
    fn jwks_kid_selects_the_key() {
        let a = TestKey::rsa();
        let b = TestKey::ed();
        let doc =
            json!({"keys": [a.jwk(Some("a")), b.jwk(Some("b")), {"kty": "RSA", "use": "enc"}]});
        let set = KeySet::from_jwks(&doc).unwrap();
        assert_eq!(set.len(), 2);
        assert!(set.verify(&a.sign(Some("a"), &json!({})), &all()).is_ok());
        assert!(set.verify(&b.sign(None, &json!({})), &all()).is_ok());
        // The right key under a kid the set does not know.
        assert_eq!(
            set.verify(&a.sign(Some("zzz"), &json!({})), &all())
                .unwrap_err(),
            BAD_SIGNATURE
        );
        // A kid that names another key.
        assert_eq!(
            set.verify(&a.sign(Some("b"), &json!({})), &all())
                .unwrap_err(),
            BAD_SIGNATURE
        );
    }

    #[test]
    fn refused_key_material() {
        assert!(KeySet::from_pems(&[
            "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----".into()
        ])
        .is_err());
        assert!(KeySet::from_pems(&["garbage".into()]).is_err());
        let smuggled = format!(
            "{}-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n",
            TestKey::ec().public_pem()
        );
        assert!(KeySet::from_pems(&[smuggled]).is_err());
        assert!(KeySet::from_jwks(&json!({"keys": [{"kty": "oct", "k": "AAAA"}]})).is_err());
        let mut jwk = TestKey::ec().jwk(None);
        jwk["d"] = json!("AAAA");
        assert!(KeySet::from_jwks(&json!({"keys": [jwk]})).is_err());
        assert!(KeySet::from_jwks(&json!({"keys": []})).is_err());
        assert!(KeySet::from_jwks(&json!([1])).is_err());
        let mut jwk = TestKey::ec().jwk(None);
        jwk["alg"] = json!("RS256");
        assert!(KeySet::from_jwks(&json!({"keys": [jwk]})).is_err());
    }

    #[test]
    fn malformed_tokens() {
        let set = KeySet::from_pems(&[TestKey::ed().public_pem()]).unwrap();
        for t in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.??.xx",
            &"a".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert!(set.verify(t, &all()).is_err());
        }
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA","crit":["x"]}"#);
        assert_eq!(
            set.verify(&format!("{h}.e30.AAAA"), &all()).unwrap_err(),
            MALFORMED
        );
    }
}

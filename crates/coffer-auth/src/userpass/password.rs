//! Password hashing for userpass: argon2id with a random salt, stored as a
//! PHC string. Hashing and verifying run on the blocking pool, so a login
//! never stalls the async runtime.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use zeroize::Zeroizing;

use crate::{Error, Result};

/// The hasher: argon2id with the crate's default (OWASP) cost parameters.
fn hasher() -> Argon2<'static> {
    Argon2::default()
}

/// Hashes `password` (blocking).
fn hash_blocking(password: &[u8]) -> Result<String> {
    let salt = SaltString::encode_b64(&coffer_crypto::random::bytes(16))
        .map_err(|_| Error::crypto_failed("encoding a password salt"))?;
    hasher()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|_| Error::crypto_failed("hashing a password"))
}

/// A hash of a random password, checked when the user does not exist so
/// that such a login costs as much as a real one.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let random = Zeroizing::new(coffer_crypto::random::token_string(32));
        hash_blocking(random.as_bytes()).unwrap_or_default()
    })
}

/// Whether `password` matches the PHC string `phc` (blocking). argon2
/// compares the derived hashes in constant time.
fn verify_blocking(password: &[u8], phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => hasher().verify_password(password, &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Hashes `password` into a PHC string.
pub(super) async fn hash(password: Zeroizing<String>) -> Result<String> {
    tokio::task::spawn_blocking(move || hash_blocking(password.as_bytes()))
        .await
        .map_err(|_| Error::Stopped("the password hashing task"))?
}

/// Whether `password` matches `phc`; with `None` (no such user) it checks
/// against a dummy hash and answers false, taking about as long.
pub(super) async fn verify(password: Zeroizing<String>, phc: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || match phc {
        Some(phc) => verify_blocking(password.as_bytes(), &phc),
        None => {
            let _ = verify_blocking(password.as_bytes(), dummy_hash());
            false
        }
    })
    .await
    .unwrap_or(false)
}

/// Warms the dummy hash, so the first login for an unknown user does not
/// pay for creating it.
pub(super) fn warm_up() {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn_blocking(|| {
            let _ = dummy_hash();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Zeroizing<String> {
        Zeroizing::new(s.to_string())
    }

    #[tokio::test]
    async fn hash_and_verify() {
        let pw = format!("pw-{}", coffer_crypto::random::token_string(8));
        let phc = hash(secret(&pw)).await.unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(!phc.contains(&pw));
        let again = hash(secret(&pw)).await.unwrap();
        assert_ne!(phc, again, "salts are random");
        assert!(verify(secret(&pw), Some(phc.clone())).await);
        assert!(!verify(secret("other"), Some(phc)).await);
        assert!(!verify(secret(&pw), None).await);
        assert!(!verify(secret(&pw), Some("not a phc string".into())).await);
    }
}

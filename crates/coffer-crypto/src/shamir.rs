//! Shamir's secret sharing over GF(256), for splitting the root key into
//! unseal key shares.
//!
//! The arithmetic comes from the `blahaj` crate (a maintained fork of
//! `sharks`). A share is `x || y…`: one byte of x coordinate, then one byte
//! per secret byte. With one share and a threshold of one, the "share" is the
//! secret itself, as in Vault.

use blahaj::{Share, Sharks};
use zeroize::Zeroizing;

use crate::{CryptoError, Result};

/// Checks Vault's rules for share counts: 1 ≤ threshold ≤ shares ≤ 255, and a
/// threshold of at least 2 when there is more than one share.
pub fn validate(shares: u32, threshold: u32) -> Result<()> {
    if shares == 0 {
        return Err(CryptoError::Shamir(
            "secret shares must be at least one".into(),
        ));
    }
    if shares > 255 {
        return Err(CryptoError::Shamir("shares must be less than 256".into()));
    }
    if threshold == 0 || threshold > shares {
        return Err(CryptoError::Shamir(
            "threshold must be at least one and no more than the number of shares".into(),
        ));
    }
    if shares > 1 && threshold < 2 {
        return Err(CryptoError::Shamir(
            "threshold must be greater than one for multiple shares".into(),
        ));
    }
    Ok(())
}

/// Splits `secret` into `shares` shares, any `threshold` of which recover it.
pub fn split(secret: &[u8], shares: u32, threshold: u32) -> Result<Vec<Zeroizing<Vec<u8>>>> {
    validate(shares, threshold)?;
    if secret.is_empty() {
        return Err(CryptoError::Shamir("cannot split an empty secret".into()));
    }
    if shares == 1 {
        return Ok(vec![Zeroizing::new(secret.to_vec())]);
    }
    // validate() bounds threshold to 2..=255, so the cast is lossless.
    let dealer = Sharks(threshold as u8).dealer(secret);
    Ok(dealer
        .take(shares as usize)
        .map(|s| Zeroizing::new(Vec::from(&s)))
        .collect())
}

/// Recovers the secret from `threshold` or more distinct shares.
///
/// Shamir cannot tell a wrong share from a right one: a wrong share yields a
/// wrong secret. The caller must verify the result (the seal does so by
/// opening the keyring with it).
pub fn combine(shares: &[Zeroizing<Vec<u8>>], threshold: u32) -> Result<Zeroizing<Vec<u8>>> {
    if threshold == 1 {
        return shares
            .first()
            .map(|s| Zeroizing::new(s.to_vec()))
            .ok_or_else(|| CryptoError::Shamir("no key shares given".into()));
    }
    let parsed: Vec<Share> = shares
        .iter()
        .map(|s| Share::try_from(s.as_slice()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| CryptoError::Shamir(format!("invalid key share: {e}")))?;
    let t =
        u8::try_from(threshold).map_err(|_| CryptoError::Shamir("threshold too large".into()))?;
    Sharks(t)
        .recover(parsed.iter())
        .map(Zeroizing::new)
        .map_err(|e| CryptoError::Shamir(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn vault_parameter_rules() {
        assert!(validate(5, 3).is_ok());
        assert!(validate(1, 1).is_ok());
        assert!(validate(0, 0).is_err());
        assert!(validate(3, 4).is_err());
        assert!(validate(3, 1).is_err());
        assert!(validate(256, 3).is_err());
    }

    #[test]
    fn single_share_is_the_secret() {
        let s = split(b"0123456789abcdef", 1, 1).unwrap();
        assert_eq!(s[0].as_slice(), b"0123456789abcdef");
        assert_eq!(combine(&s, 1).unwrap().as_slice(), b"0123456789abcdef");
    }

    #[test]
    fn too_few_shares_fail() {
        let s = split(&[7u8; 32], 5, 3).unwrap();
        assert!(combine(&s[..2], 3).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_threshold_subset_recovers(
            secret in proptest::collection::vec(any::<u8>(), 1..64),
            n in 2u32..12,
            t_off in 0u32..10,
            seed in any::<u64>(),
        ) {
            let t = 2 + t_off % (n - 1);
            let shares = split(&secret, n, t).unwrap();
            prop_assert_eq!(shares.len(), n as usize);
            // Choose a rotating subset of exactly t shares.
            let start = (seed % n as u64) as usize;
            let subset: Vec<_> = (0..t as usize).map(|i| shares[(start + i) % n as usize].clone()).collect();
            let back = combine(&subset, t).unwrap();
            prop_assert_eq!(back.as_slice(), secret.as_slice());
        }

        #[test]
        fn fewer_than_threshold_never_reveal(secret in proptest::collection::vec(any::<u8>(), 16..33)) {
            let shares = split(&secret, 5, 3).unwrap();
            // Two shares of a 3-threshold split interpolate to something else
            // (with overwhelming probability) and combine refuses too few.
            prop_assert!(combine(&shares[..2], 3).is_err());
            let wrong = combine(&shares[..2], 2).unwrap();
            prop_assert_ne!(wrong.as_slice(), secret.as_slice());
        }
    }
}

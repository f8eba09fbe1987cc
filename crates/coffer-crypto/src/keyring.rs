//! The keyring: numbered data-encryption key terms.
//!
//! New writes use the active (highest) term; older terms stay to read what
//! they sealed. A sealed message starts with its term number (4 bytes, big
//! endian), so the barrier can rotate keys without re-encrypting old entries.

use base64::{engine::general_purpose::STANDARD, Engine};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{aead::Key, CryptoError, Result};

/// One data-encryption key and its term number.
#[derive(Clone, Debug)]
pub struct Term {
    /// The term number, starting at 1.
    pub term: u32,
    /// The key.
    pub key: Key,
    /// When the term was installed, seconds since the Unix epoch.
    pub install_time: i64,
}

/// The set of key terms; the highest is active.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    terms: Vec<Term>,
}

#[derive(Serialize, Deserialize)]
struct StoredTerm {
    term: u32,
    key: String,
    install_time: i64,
}

impl Keyring {
    /// A keyring with a single fresh term 1.
    pub fn new(now: i64) -> Self {
        Keyring {
            terms: vec![Term {
                term: 1,
                key: Key::generate(),
                install_time: now,
            }],
        }
    }

    /// The active term (used for new writes).
    pub fn active(&self) -> &Term {
        // A keyring is never empty: `new` and `from_bytes` guarantee a term.
        &self.terms[self.terms.len() - 1]
    }

    /// All terms, oldest first.
    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    /// Adds a new fresh term and makes it active; returns its number.
    pub fn rotate(&mut self, now: i64) -> u32 {
        let term = self.active().term + 1;
        self.terms.push(Term {
            term,
            key: Key::generate(),
            install_time: now,
        });
        term
    }

    /// Encrypts with the active term: `term (4 bytes BE) || nonce || ciphertext || tag`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let active = self.active();
        let body = active.key.seal(plaintext, aad);
        let mut out = Vec::with_capacity(4 + body.len());
        out.extend_from_slice(&active.term.to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decrypts a message made by [`Keyring::seal`] with any term it holds.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if sealed.len() < 4 {
            return Err(CryptoError::Malformed);
        }
        let term = u32::from_be_bytes([sealed[0], sealed[1], sealed[2], sealed[3]]);
        let key = self
            .terms
            .iter()
            .find(|t| t.term == term)
            .ok_or(CryptoError::UnknownTerm(term))?;
        key.key.open(&sealed[4..], aad)
    }

    /// Serializes the keyring (key material included: seal the result before storing it).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let stored: Vec<StoredTerm> = self
            .terms
            .iter()
            .map(|t| StoredTerm {
                term: t.term,
                key: STANDARD.encode(t.key.as_bytes()),
                install_time: t.install_time,
            })
            .collect();
        let json = Zeroizing::new(serde_json::to_vec(&stored).unwrap_or_default());
        let mut stored = stored;
        for s in &mut stored {
            zeroize::Zeroize::zeroize(&mut s.key);
        }
        json
    }

    /// Parses bytes made by [`Keyring::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut stored: Vec<StoredTerm> = serde_json::from_slice(bytes)
            .map_err(|_| CryptoError::Keyring("not a keyring".into()))?;
        let mut terms = Vec::with_capacity(stored.len());
        for s in &mut stored {
            let raw = Zeroizing::new(
                STANDARD
                    .decode(&s.key)
                    .map_err(|_| CryptoError::Keyring("bad key encoding".into()))?,
            );
            zeroize::Zeroize::zeroize(&mut s.key);
            terms.push(Term {
                term: s.term,
                key: Key::from_slice(&raw)?,
                install_time: s.install_time,
            });
        }
        if terms.is_empty() {
            return Err(CryptoError::Keyring("no key terms".into()));
        }
        terms.sort_by_key(|t| t.term);
        Ok(Keyring { terms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotate_keeps_old_terms_readable() {
        let mut kr = Keyring::new(1);
        let old = kr.seal(b"v1", b"k");
        assert_eq!(kr.rotate(2), 2);
        let new = kr.seal(b"v2", b"k");
        assert_eq!(&new[..4], &2u32.to_be_bytes());
        assert_eq!(kr.open(&old, b"k").unwrap().as_slice(), b"v1");
        assert_eq!(kr.open(&new, b"k").unwrap().as_slice(), b"v2");
    }

    #[test]
    fn serialization_round_trip() {
        let mut kr = Keyring::new(10);
        kr.rotate(20);
        let c = kr.seal(b"x", b"a");
        let back = Keyring::from_bytes(&kr.to_bytes()).unwrap();
        assert_eq!(back.terms().len(), 2);
        assert_eq!(back.active().term, 2);
        assert_eq!(back.terms()[0].install_time, 10);
        assert_eq!(back.open(&c, b"a").unwrap().as_slice(), b"x");
    }

    #[test]
    fn unknown_term_and_garbage() {
        let kr = Keyring::new(0);
        let mut c = kr.seal(b"x", b"a");
        c[3] = 9;
        assert_eq!(kr.open(&c, b"a").unwrap_err(), CryptoError::UnknownTerm(9));
        assert!(Keyring::from_bytes(b"garbage").is_err());
        assert!(Keyring::from_bytes(b"[]").is_err());
    }
}

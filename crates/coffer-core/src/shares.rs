//! Collecting unseal key shares for an operation that needs a quorum of
//! operators (rekey, rekey verification, root token generation): the same
//! progress protocol as unseal, with a nonce naming the attempt.
//!
//! A collection lives behind a synchronous mutex and is never held across
//! an await: [`Collection::add`] either counts a share or, for the share
//! that reaches the threshold, hands every share over and marks the
//! collection as completing, so any number of concurrent submissions count
//! each distinct share once and exactly one of them completes.

use serde_json::Value;
use zeroize::Zeroizing;

use crate::util::Params;
use crate::{Error, Result};

/// Shares gathered so far for one attempt.
pub(crate) struct Collection {
    /// The attempt's nonce; every submission must name it.
    pub nonce: String,
    /// Shares needed.
    pub required: u32,
    parts: Vec<Zeroizing<Vec<u8>>>,
    completing: bool,
}

/// What a submission led to.
pub(crate) enum Added {
    /// More shares are needed; the number held so far.
    Pending(u32),
    /// The threshold is reached: every share, for the caller to combine.
    Complete(Vec<Zeroizing<Vec<u8>>>),
}

impl Collection {
    /// An empty collection needing `required` shares, with a fresh nonce.
    pub fn new(required: u32) -> Self {
        Collection {
            nonce: coffer_crypto::random::uuid(),
            required,
            parts: Vec::new(),
            completing: false,
        }
    }

    /// Shares held.
    pub fn progress(&self) -> u32 {
        if self.completing {
            return self.required;
        }
        u32::try_from(self.parts.len()).unwrap_or(u32::MAX)
    }

    /// Adds `key` for the attempt named `nonce`; `what` names the operation
    /// in messages (Vault's wording: "rekey", "verify", "generation").
    pub fn add(&mut self, nonce: &str, key: Zeroizing<Vec<u8>>, what: &str) -> Result<Added> {
        if nonce != self.nonce {
            return Err(Error::bad(format!(
                "incorrect nonce supplied; nonce for this {what} operation is {:?}",
                self.nonce
            )));
        }
        if self.completing {
            return Err(Error::bad(format!(
                "the {what} operation is completing; check its status"
            )));
        }
        if self
            .parts
            .iter()
            .any(|p| coffer_crypto::hash::constant_time_eq(p, &key))
        {
            return Err(Error::bad(format!(
                "given key has already been provided during this {what} operation"
            )));
        }
        self.parts.push(key);
        if self.progress() < self.required {
            return Ok(Added::Pending(self.progress()));
        }
        self.completing = true;
        Ok(Added::Complete(std::mem::take(&mut self.parts)))
    }

    /// After a completion failed (wrong shares): progress starts over, as
    /// Vault's does, under the same nonce.
    pub fn failed(&mut self) {
        self.parts.clear();
        self.completing = false;
    }
}

/// The `key` and `nonce` of an update request, the key decoded from hex or
/// base64 (Vault's messages).
pub(crate) fn key_and_nonce(
    data: &serde_json::Map<String, Value>,
) -> Result<(Zeroizing<Vec<u8>>, String)> {
    let p = Params(data);
    let key = p
        .str("key")?
        .filter(|k| !k.is_empty())
        .ok_or_else(|| Error::bad("'key' must be specified in request body as JSON"))?;
    let key = crate::sys::decode_key(key)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| Error::bad("'key' must be a valid hex or base64 string"))?;
    // Vault's bounds: a share is 33 bytes here (x coordinate and a 32-byte key).
    if key.len() < 16 {
        return Err(Error::bad("key is shorter than minimum 16 bytes"));
    }
    if key.len() > 64 {
        return Err(Error::bad("key is longer than maximum 64 bytes"));
    }
    let nonce = p.str("nonce")?.unwrap_or_default().to_string();
    if nonce.is_empty() {
        return Err(Error::bad("missing nonce"));
    }
    Ok((key, nonce))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(b: u8) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(vec![b; 33])
    }

    #[test]
    fn counts_each_share_once_and_completes_once() {
        let mut c = Collection::new(2);
        let n = c.nonce.clone();
        assert!(matches!(
            c.add(&n, share(1), "rekey"),
            Ok(Added::Pending(1))
        ));
        assert!(c.add(&n, share(1), "rekey").is_err());
        assert!(c.add("other", share(2), "rekey").is_err());
        assert!(matches!(c.add(&n, share(2), "rekey"), Ok(Added::Complete(p)) if p.len() == 2));
        // While completing, nothing more is counted.
        assert!(c.add(&n, share(3), "rekey").is_err());
        c.failed();
        assert_eq!(c.progress(), 0);
        assert!(matches!(
            c.add(&n, share(3), "rekey"),
            Ok(Added::Pending(1))
        ));
    }
}

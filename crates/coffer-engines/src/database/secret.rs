//! A string that holds a password: wiped on drop, never printed.

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

/// A secret string (a database password). Its memory is zeroed on drop and
/// its `Debug` form is redacted; it serializes as a plain string so it can be
/// stored behind the barrier.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps `s`.
    pub fn new(s: String) -> Self {
        SecretString(s)
    }

    /// The secret value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted_and_json_is_plain() {
        let s = SecretString::new("hunter".to_string() + "2");
        assert_eq!(format!("{s:?}"), "[redacted]");
        let j = serde_json::to_string(&s).unwrap();
        let back: SecretString = serde_json::from_str(&j).unwrap();
        assert_eq!(back.expose(), s.expose());
    }
}

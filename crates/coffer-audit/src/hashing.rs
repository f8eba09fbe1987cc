//! HMAC of audited values: `hmac-sha256:<hex>` under a device's salt.

use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// A device's salt and whether it hashes at all (`log_raw` turns it off).
pub struct Hasher {
    salt: Zeroizing<Vec<u8>>,
    raw: bool,
}

impl Hasher {
    /// A hasher with `salt`; with `raw` set, values pass in clear.
    pub fn new(salt: Zeroizing<Vec<u8>>, raw: bool) -> Self {
        Hasher { salt, raw }
    }

    /// `hmac-sha256:<hex>` of `input`, whatever `log_raw` says (sys/audit-hash).
    pub fn hmac(&self, input: &str) -> String {
        format!(
            "hmac-sha256:{}",
            coffer_crypto::hash::hmac_sha256_hex(&self.salt, input.as_bytes())
        )
    }

    /// A string as the log shows it: its HMAC, or itself with `log_raw`.
    pub fn string(&self, s: &str) -> Value {
        if self.raw {
            Value::from(s)
        } else {
            Value::from(self.hmac(s))
        }
    }

    /// A value with every string inside it (not the keys) hashed; numbers,
    /// booleans and nulls as they are.
    pub fn value(&self, v: &Value) -> Value {
        if self.raw {
            return v.clone();
        }
        match v {
            Value::String(s) => Value::from(self.hmac(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.value(x)).collect()),
            Value::Object(m) => Value::Object(self.map(m)),
            other => other.clone(),
        }
    }

    /// [`Hasher::value`] of every member of `m`.
    pub fn map(&self, m: &Map<String, Value>) -> Map<String, Value> {
        m.iter().map(|(k, v)| (k.clone(), self.value(v))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hashes_strings_only() {
        let h = Hasher::new(Zeroizing::new(b"salt".to_vec()), false);
        let v = h.value(&json!({"a": "x", "n": 3, "b": true, "l": ["y", 1], "o": {"k": "z"}}));
        assert_eq!(v["a"], json!(h.hmac("x")));
        assert_eq!(v["n"], json!(3));
        assert_eq!(v["b"], json!(true));
        assert_eq!(v["l"][0], json!(h.hmac("y")));
        assert_eq!(v["o"]["k"], json!(h.hmac("z")));
        assert!(h.hmac("x").starts_with("hmac-sha256:"));
        assert_eq!(h.hmac("x").len(), "hmac-sha256:".len() + 64);
        let raw = Hasher::new(Zeroizing::new(b"salt".to_vec()), true);
        assert_eq!(raw.value(&json!("x")), json!("x"));
    }
}

//! The hash chain and signed checkpoints that make an audit log
//! tamper-evident.
//!
//! Every entry a device writes carries `seq` (1, 2, 3, ... per device) and
//! `prev`, the SHA-256 (hex) of the previous entry's JSON text — from its
//! first `{` to the end of the line, so a `prefix` or a syslog header is not
//! part of it. The first entry of a device is a signed checkpoint with
//! `seq` 1 and `prev` = [`GENESIS`].
//!
//! A checkpoint is an entry of type `checkpoint` whose last member is
//! `"signature"`: the Ed25519 signature (base64) over the entry's JSON text
//! without that member, i.e. over `T[..i] + "}"` where `T[i..]` is
//! `,"signature":"<base64>"}`. It covers its own `seq`, `prev` and time, and
//! through `prev` every entry before it.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use serde_json::{Map, Value};

/// `prev` of a chain's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The member that ends every checkpoint entry.
const SIGNATURE_MARK: &str = ",\"signature\":\"";

/// Where a device's chain stands: the last written entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChainState {
    /// Sequence number of the last entry written (0: none yet).
    pub seq: u64,
    /// Hash of the last entry written ([`GENESIS`] when none).
    pub prev: String,
}

impl Default for ChainState {
    fn default() -> Self {
        ChainState {
            seq: 0,
            prev: GENESIS.to_string(),
        }
    }
}

impl ChainState {
    /// Appends `seq` and `prev` to `entry` and returns its JSON text and the
    /// state after it; the caller commits the state only once it is written.
    pub fn link(&self, mut entry: Map<String, Value>) -> (String, ChainState) {
        let seq = self.seq + 1;
        entry.insert("seq".into(), Value::from(seq));
        entry.insert("prev".into(), Value::from(self.prev.clone()));
        let text = Value::Object(entry).to_string();
        let next = ChainState {
            seq,
            prev: entry_hash(&text),
        };
        (text, next)
    }

    /// Like [`ChainState::link`] for a checkpoint: the text ends with the
    /// signature `sign` makes over it.
    pub fn link_signed(
        &self,
        entry: Map<String, Value>,
        sign: impl FnOnce(&[u8]) -> Vec<u8>,
    ) -> (String, ChainState) {
        let (unsigned, _) = self.link(entry);
        let signature = STANDARD.encode(sign(unsigned.as_bytes()));
        let mut text = unsigned;
        text.pop(); // the closing '}'
        text.push_str(SIGNATURE_MARK);
        text.push_str(&signature);
        text.push_str("\"}");
        let next = ChainState {
            seq: self.seq + 1,
            prev: entry_hash(&text),
        };
        (text, next)
    }
}

/// The hash linking an entry to the next: SHA-256 hex of its JSON text.
pub fn entry_hash(json_text: &str) -> String {
    coffer_crypto::hash::sha256_hex(json_text.as_bytes())
}

/// The JSON text of a log line: from its first `{` (after any prefix or
/// transport header) to its end, without the line break.
pub fn json_text(line: &str) -> Option<&str> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    line.find('{').map(|i| &line[i..])
}

/// Splits a checkpoint's JSON text into the signed message and the
/// signature bytes; `None` when it does not end with a signature member.
pub fn split_signature(text: &str) -> Option<(String, Vec<u8>)> {
    let body = text.strip_suffix("\"}")?;
    let i = body.rfind(SIGNATURE_MARK)?;
    let signature = STANDARD.decode(&body[i + SIGNATURE_MARK.len()..]).ok()?;
    let mut message = body[..i].to_string();
    message.push('}');
    Some((message, signature))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn links_carry_sequence_and_previous_hash() {
        let s0 = ChainState::default();
        let (t1, s1) = s0.link(obj(json!({"type": "request"})));
        assert_eq!(s1.seq, 1);
        assert!(t1.contains(&format!("\"prev\":\"{GENESIS}\"")));
        let (t2, s2) = s1.link(obj(json!({"type": "response"})));
        assert_eq!(s2.seq, 2);
        assert!(t2.contains(&format!("\"prev\":\"{}\"", entry_hash(&t1))));
    }

    #[test]
    fn signature_round_trips() {
        let (text, _) = ChainState::default()
            .link_signed(obj(json!({"type": "checkpoint"})), |m| {
                m.iter().rev().copied().collect()
            });
        let (message, sig) = split_signature(&text).unwrap();
        assert!(
            message.ends_with(&format!("\"prev\":\"{GENESIS}\"}}")),
            "{message}"
        );
        let expected: Vec<u8> = message.as_bytes().iter().rev().copied().collect();
        assert_eq!(sig, expected);
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap()["seq"],
            json!(1)
        );
    }

    #[test]
    fn json_text_skips_prefixes() {
        assert_eq!(json_text("pre: {\"a\":1}\n"), Some("{\"a\":1}"));
        assert_eq!(json_text("no json"), None);
    }
}

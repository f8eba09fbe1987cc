//! Structure checks of built-in formats that carry one: a match whose
//! structure is wrong is no credential of that format (a documentation
//! stand-in, a truncated paste, a method name).
//!
//! - `jwt`: the header decodes to a JSON object naming its `alg`;
//! - `private-key`: the PEM body decodes to what its type says (an OpenSSH
//!   key's magic, or one DER SEQUENCE whose length is the body's). Bodies
//!   that do not decode cleanly (escapes, concatenations) and encrypted
//!   legacy bodies (`Proc-Type:`) are not judged, so no key is lost to an
//!   unusual syntax.

/// The check of built-in rule `id`, if it has one.
pub fn check_for(id: &str) -> Option<fn(&[u8]) -> bool> {
    match id {
        "jwt" => Some(jwt_ok),
        "private-key" => Some(private_key_ok),
        "authorization-basic" => Some(basic_ok),
        _ => None,
    }
}

/// A JWT's header is base64url JSON with an `alg` ([`jwt_header_is_json`]),
/// or starts as a JSON object and names `"alg"`: a token damaged by an
/// edit or a typo is still the token (its checksum then says invalid).
pub fn jwt_ok(token: &[u8]) -> bool {
    jwt_header_is_json(token)
        || jwt_header(token).is_some_and(|json| {
            json.starts_with(b"{\"") && memchr::memmem::find(&json, b"\"alg\"").is_some()
        })
}

/// True when a JWT's header decodes to a JSON object naming its `alg`.
pub fn jwt_header_is_json(token: &[u8]) -> bool {
    jwt_header(token)
        .and_then(|json| serde_json::from_slice::<serde_json::Value>(&json).ok())
        .and_then(|v| v.as_object().map(|o| o.contains_key("alg")))
        .unwrap_or(false)
}

/// The decoded bytes of a JWT's first part.
fn jwt_header(token: &[u8]) -> Option<Vec<u8>> {
    let header = token.split(|&b| b == b'.').next()?;
    crate::checksum::b64_bytes(header)
}

/// HTTP Basic credentials decode to `user:password` whose password is no
/// placeholder (`dXNlcm5hbWU6cGFzc3dvcmQ=` is `username:password`).
pub fn basic_ok(b64: &[u8]) -> bool {
    let Some(text) = crate::decode::basic_credentials(b64) else {
        return false;
    };
    let Some(colon) = memchr::memchr(b':', &text) else {
        return false;
    };
    let password = &text[colon + 1..];
    !crate::allow::is_placeholder(password, false)
        && !password.eq_ignore_ascii_case(b"password")
        && !password.eq_ignore_ascii_case(b"pass")
}

/// A PEM private key's body decodes to its type's structure (or is not
/// judged).
pub fn private_key_ok(pem: &[u8]) -> bool {
    private_key_parses(pem) != Some(false)
}

/// Whether a PEM private key's body decodes to its type's structure:
/// `None` when the body is not judged (an unusual syntax, PGP, an
/// encrypted legacy key).
pub fn private_key_parses(pem: &[u8]) -> Option<bool> {
    let text = String::from_utf8_lossy(pem);
    let head_end = text.find("-----\n").or_else(|| text.find("-----\\n"))?;
    let header = &text[..head_end];
    if header.contains("PGP") || text.contains("Proc-Type:") {
        return None;
    }
    let body_end = text.rfind("-----END")?;
    let body = &text[head_end + 5..body_end];
    if body.contains("...") || body.contains('…') {
        return Some(false);
    }
    let cleaned: String = body
        .replace("\\n", "\n")
        .replace("\\r", "")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if !cleaned
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        || !cleaned.len().is_multiple_of(4)
    {
        return None; // not judged: an unusual syntax around a real key
    }
    let der = crate::checksum::b64_bytes(cleaned.as_bytes())?;
    if header.contains("OPENSSH") {
        return Some(der.starts_with(b"openssh-key-v1\0"));
    }
    Some(der_sequence_len(&der) == Some(der.len()))
}

/// Total length (header included) of the DER SEQUENCE at the start of `d`.
fn der_sequence_len(d: &[u8]) -> Option<usize> {
    if d.len() < 2 || d[0] != 0x30 {
        return None;
    }
    let b1 = usize::from(d[1]);
    if b1 < 0x80 {
        return Some(2 + b1);
    }
    let n = b1 & 0x7f;
    if n == 0 || n > 3 || d.len() < 2 + n {
        return None;
    }
    let len = d[2..2 + n]
        .iter()
        .fold(0usize, |a, &b| (a << 8) | usize::from(b));
    Some(2 + n + len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{expand, Rng};

    #[test]
    fn jwt_header_names_alg() {
        let mut rng = Rng::new(1);
        let good = expand(
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ<<b64url:40>>.<<b64url:43>>",
            &mut rng,
            1.0,
        );
        assert!(jwt_ok(good.as_bytes()));
        let bad = expand(
            "eyJ<<b64url:30>>.eyJ<<b64url:40>>.<<b64url:43>>",
            &mut rng,
            1.0,
        );
        assert!(!jwt_ok(bad.as_bytes()));
        // One character of the header changed: still a JWT.
        let damaged = good.replacen("IsInR5", "IsEnR5", 1);
        assert_ne!(damaged, good);
        assert!(jwt_ok(damaged.as_bytes()));
        assert!(!crate::checksum::jwt_payload_ok(damaged.as_bytes()));
    }

    #[test]
    fn private_key_body_is_der() {
        let mut rng = Rng::new(2);
        let good = expand(
            "-----BEGIN PRIVATE KEY-----\n<<der:300>>\n-----END PRIVATE KEY-----",
            &mut rng,
            1.0,
        );
        assert!(private_key_ok(good.as_bytes()), "{good}");
        let bad = expand(
            "-----BEGIN PRIVATE KEY-----\n<<b64:64>>\n<<b64:64>>\n-----END PRIVATE KEY-----",
            &mut rng,
            1.0,
        );
        assert!(!private_key_ok(bad.as_bytes()));
        let cut =
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA...\n-----END RSA PRIVATE KEY-----";
        assert!(!private_key_ok(cut.as_bytes()));
        let escaped = good.replace('\n', "\\n");
        assert!(private_key_ok(escaped.as_bytes()));
    }
}

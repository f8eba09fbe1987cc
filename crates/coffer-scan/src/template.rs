//! Example templates: rule examples are stored as templates such as
//! `ghp_<<alnum:36>>` and expanded with generated characters when tests or
//! benchmarks run, so that the repository never holds a real-looking
//! credential.
//!
//! A placeholder is `<<CLASS:N>>`: N characters drawn from CLASS, which is a
//! name (`alnum`, `upper`, `lower`, `digit`, `hex`, `HEX`, `b64`, `b64url`,
//! `base32`, `alpha`, `word`, `pw`) or a set written like a regex class body
//! (`A-Z2-7`). A few classes build a format's structure:
//! - `<<der:N>>`: the base64 lines of a DER SEQUENCE of N random bytes, for
//!   private-key bodies;
//! - `<<crc62:N>>`: N random alphanumerics and their CRC32 in six base62
//!   digits (GitHub's and npm's token checksum);
//! - `<<pypi:N>>`: a PyPI macaroon (base64url) with an N-byte caveat;
//! - `<<jwt:N>>`: a JWT with N claims in its payload;
//! - `<<basic:N>>`: HTTP Basic credentials, base64 of `user:` and an
//!   N-character password.

/// Character class names and their characters.
fn class_chars(name: &str) -> Vec<u8> {
    let spec = match name {
        "alnum" => "A-Za-z0-9",
        "upper" => "A-Z",
        "lower" => "a-z",
        "alpha" => "A-Za-z",
        "digit" => "0-9",
        "hex" => "0-9a-f",
        "HEX" => "0-9A-F",
        "b64" => "A-Za-z0-9+/",
        "b64url" => "A-Za-z0-9_-",
        "word" => "A-Za-z0-9_",
        "base32" => "A-Z2-7",
        "lalnum" => "a-z0-9",
        "ualnum" => "A-Z0-9",
        "pw" => "A-Za-z0-9!*+=^_~",
        other => other,
    };
    let b = spec.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if i + 2 < b.len() && b[i + 1] == b'-' {
            for c in b[i]..=b[i + 2] {
                out.push(c);
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// A small deterministic generator (splitmix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeds the generator.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Expands a template; `scale` multiplies each placeholder's length (1.0
/// for a positive example, 0.5 for the default negative). Each placeholder
/// gets at least one character of every kind its class offers among
/// upper, lower and digit when long enough, so entropy floors are met.
pub fn expand(template: &str, rng: &mut Rng, scale: f64) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find("<<") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find(">>") else {
            out.push_str(&rest[open..]);
            return out;
        };
        let body = &after[..close];
        rest = &after[close + 2..];
        let (class, n) = match body.rsplit_once(':') {
            Some((c, n)) => (c, n.parse::<usize>().unwrap_or(8)),
            None => (body, 8),
        };
        match class {
            "der" => {
                out.push_str(&der_pem_body(rng, n));
                continue;
            }
            "crc62" => {
                let len = ((n as f64) * scale).round().max(1.0) as usize;
                let random = expand(&format!("<<alnum:{len}>>"), rng, 1.0);
                let check = crate::checksum::base62_6(crate::checksum::crc32(random.as_bytes()));
                out.push_str(&random);
                out.push_str(&String::from_utf8_lossy(&check));
                continue;
            }
            "pypi" => {
                out.push_str(&pypi_macaroon(rng, n));
                continue;
            }
            "jwt" => {
                out.push_str(&jwt(rng, n));
                continue;
            }
            "basic" => {
                let cred = expand(&format!("<<lower:6>>:<<pw:{n}>>"), rng, 1.0);
                out.push_str(&b64_encode(cred.as_bytes(), false));
                continue;
            }
            _ => {}
        }
        let chars = class_chars(class);
        if chars.is_empty() {
            continue;
        }
        let len = ((n as f64) * scale).round().max(1.0) as usize;
        let mut s: Vec<u8> = (0..len).map(|_| chars[rng.below(chars.len())]).collect();
        // Make sure mixed classes really mix (a letter and a digit each).
        if len >= 8 {
            for pred in [
                u8::is_ascii_digit,
                u8::is_ascii_uppercase,
                u8::is_ascii_lowercase,
            ] {
                let pool: Vec<u8> = chars.iter().copied().filter(pred).collect();
                if !pool.is_empty() && !s.iter().any(pred) {
                    let at = rng.below(len);
                    s[at] = pool[rng.below(pool.len())];
                }
            }
        }
        out.push_str(&String::from_utf8_lossy(&s));
    }
    out.push_str(rest);
    out
}

/// `<<der:N>>`: a DER SEQUENCE of N random content bytes, base64 in lines
/// of 64 (the body of a PEM key that passes the structure check).
fn der_pem_body(rng: &mut Rng, n: usize) -> String {
    let mut der = vec![0x30u8];
    match n {
        0..=0x7f => der.push(n as u8),
        0x80..=0xff => der.extend_from_slice(&[0x81, n as u8]),
        _ => der.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
    }
    der.extend((0..n).map(|_| (rng.next_u64() & 0xff) as u8));
    b64_encode(&der, false)
        .as_bytes()
        .chunks(64)
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Base64 of `data`: standard with padding, or URL-safe without.
pub fn b64_encode(data: &[u8], url: bool) -> String {
    let table: &[u8] = if url {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let v = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(table[((v >> (18 - 6 * i)) & 63) as usize]));
            } else if !url {
                out.push('=');
            }
        }
    }
    out
}

fn random_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| (rng.next_u64() & 0xff) as u8).collect()
}

/// A PyPI API token's body: a version-2 binary macaroon located at
/// `pypi.org`, with a UUID identifier, one caveat of `n` bytes (at most
/// 127) and a 32-byte signature, in base64url.
fn pypi_macaroon(rng: &mut Rng, n: usize) -> String {
    let n = n.clamp(1, 127);
    let mut m = b"\x02\x01\x08pypi.org\x02\x24".to_vec();
    m.extend_from_slice(
        expand(
            "<<hex:8>>-<<hex:4>>-<<hex:4>>-<<hex:4>>-<<hex:12>>",
            rng,
            1.0,
        )
        .as_bytes(),
    );
    m.push(0x00);
    m.extend_from_slice(&[0x02, n as u8]);
    m.extend_from_slice(expand(&format!("<<alnum:{n}>>"), rng, 1.0).as_bytes());
    m.extend_from_slice(&[0x00, 0x00, 0x06, 0x20]);
    m.extend(random_bytes(rng, 32));
    b64_encode(&m, true)
}

/// A JWT (HS256 header) with `n` random string claims and a random
/// signature.
fn jwt(rng: &mut Rng, n: usize) -> String {
    let header = br#"{"alg":"HS256","typ":"JWT"}"#;
    let claims: Vec<String> = (0..n.max(1))
        .map(|i| format!("\"c{i}\":\"{}\"", expand("<<alnum:12>>", rng, 1.0)))
        .collect();
    let payload = format!("{{{}}}", claims.join(","));
    format!(
        "{}.{}.{}",
        b64_encode(header, true),
        b64_encode(payload.as_bytes(), true),
        b64_encode(&random_bytes(rng, 32), true)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_classes() {
        let mut rng = Rng::new(7);
        let s = expand("ghp_<<alnum:36>>!", &mut rng, 1.0);
        assert!(s.starts_with("ghp_") && s.ends_with('!'));
        assert_eq!(s.len(), 4 + 36 + 1);
        let h = expand("<<hex:10>>", &mut rng, 0.5);
        assert_eq!(h.len(), 5);
        assert!(h.bytes().all(|b| b.is_ascii_hexdigit()));
        let b = expand("<<A-C:4>>", &mut rng, 1.0);
        assert!(b.bytes().all(|c| (b'A'..=b'C').contains(&c)));
    }
}

//! Generated user names and passwords, in the shapes Vault's PostgreSQL
//! plugin produces.

use super::secret::SecretString;

const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &[u8] = b"0123456789";
/// Vault's default password policy: 20 characters of letters, digits and `-`,
/// with at least one of each class.
const PASSWORD_LEN: usize = 20;
/// PostgreSQL's limit on identifiers (NAMEDATALEN - 1).
pub const MAX_IDENTIFIER_LEN: usize = 63;

/// `n` characters drawn uniformly from `alphabet` (rejection sampling over
/// the operating system's CSPRNG).
fn draw(alphabet: &[u8], n: usize) -> String {
    let len = alphabet.len();
    // Largest multiple of `len` that fits in a byte: bytes at or above it are rejected.
    let limit = 256 - (256 % len);
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for b in coffer_crypto::random::bytes(n * 2) {
            if out.len() == n {
                break;
            }
            let b = usize::from(b);
            if b < limit {
                out.push(char::from(alphabet[b % len]));
            }
        }
    }
    out
}

fn alnum() -> Vec<u8> {
    [LOWER, UPPER, DIGITS].concat()
}

/// A random password under Vault's default policy: 20 characters of
/// letters, digits and `-`, at least one lower-case letter, one upper-case
/// letter, one digit and one `-`, starting with a letter (safe inside a
/// single-quoted SQL literal and a connection URL).
pub fn password() -> SecretString {
    let letters = [LOWER, UPPER].concat();
    let all = [alnum().as_slice(), b"-"].concat();
    loop {
        let mut s = draw(&letters, 1);
        s.push_str(&draw(&all, PASSWORD_LEN - 1));
        let ok = s.bytes().any(|b| b.is_ascii_lowercase())
            && s.bytes().any(|b| b.is_ascii_uppercase())
            && s.bytes().any(|b| b.is_ascii_digit())
            && s.contains('-');
        if ok {
            return SecretString::new(s);
        }
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A user name as Vault's PostgreSQL plugin makes it:
/// `v-<display name, 8>-<role, 8>-<20 random>-<unix time>`, at most 63 bytes.
pub fn username(display_name: &str, role: &str, unix_time: i64) -> String {
    let mut name = format!(
        "v-{}-{}-{}-{}",
        truncate(display_name, 8),
        truncate(role, 8),
        draw(&alnum(), 20),
        unix_time
    );
    let mut cut = name.len().min(MAX_IDENTIFIER_LEN);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    name.truncate(cut);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_follow_the_policy() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let p = password();
            let s = p.expose();
            assert_eq!(s.len(), PASSWORD_LEN);
            assert!(s.as_bytes()[0].is_ascii_alphabetic());
            assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
            assert!(s.bytes().any(|b| b.is_ascii_digit()));
            assert!(s.contains('-'));
            assert!(seen.insert(s.to_string()));
        }
    }

    #[test]
    fn usernames_look_like_vaults() {
        let u = username("token", "readonly-role", 1_700_000_000);
        let parts: Vec<&str> = u.split('-').collect();
        assert_eq!(parts[0], "v");
        assert_eq!(parts[1], "token");
        assert_eq!(parts[2], "readonly");
        assert!(u.ends_with("-1700000000"));
        assert!(u.len() <= MAX_IDENTIFIER_LEN);
        let long = username(&"d".repeat(100), &"r".repeat(100), i64::MAX);
        assert!(long.len() <= MAX_IDENTIFIER_LEN);
    }
}

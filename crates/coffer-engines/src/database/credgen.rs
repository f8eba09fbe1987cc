//! Generated user names and passwords, in the shapes Vault's PostgreSQL
//! plugin produces.

use super::secret::SecretString;
use crate::password::{PasswordPolicies, PasswordPolicy};

const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &[u8] = b"0123456789";
/// PostgreSQL's limit on identifiers (NAMEDATALEN - 1).
pub const MAX_IDENTIFIER_LEN: usize = 63;
/// Characters a generated password may not hold: it is placed as is inside
/// single-quoted SQL literals (`PASSWORD '{{password}}'`).
const UNSAFE_IN_SQL: [char; 3] = ['\'', '\\', '\0'];

/// `n` characters drawn uniformly from `alphabet` (the shared unbiased
/// draw, [`coffer_crypto::random::uniform_index`]).
fn draw(alphabet: &[u8], n: usize) -> String {
    (0..n)
        .map(|_| char::from(alphabet[coffer_crypto::random::uniform_index(alphabet.len())]))
        .collect()
}

fn alnum() -> Vec<u8> {
    [LOWER, UPPER, DIGITS].concat()
}

/// A new password for a database user of the connection whose
/// `password_policy` is `policy_name`: generated from that stored policy,
/// or from Vault's default policy (20 characters of letters, digits and
/// `-`, one of each at least) when the connection names none. A policy
/// whose characters cannot sit inside a single-quoted SQL literal is refused.
pub async fn password(
    passwords: &PasswordPolicies,
    policy_name: &str,
) -> crate::Result<SecretString> {
    let policy = if policy_name.is_empty() {
        PasswordPolicy::vault_default()
    } else {
        passwords.named(policy_name).await?
    };
    if policy.alphabet_contains(&UNSAFE_IN_SQL) || policy.alphabet_contains_control() {
        return Err(crate::Error::bad(format!(
            "password policy {policy_name:?} can yield a quote, a backslash or a control \
             character, which cannot be placed in SQL statements"
        )));
    }
    Ok(SecretString::new(policy.generate()?.to_string()))
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

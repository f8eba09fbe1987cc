//! Vault's two glob grammars, each written once.
//!
//! Vault matches with two different rules, and Coffer keeps both exactly:
//! * [`star`]: `*` matches any run of characters (slashes too), anywhere in
//!   the pattern, every other character itself (go-glob, as Vault's JWT
//!   bound claims, token roles' `allowed_policies_glob` and event
//!   subscriptions use it);
//! * [`param`]: the glob of policies' `allowed_parameters` /
//!   `denied_parameters` values: a `*` only at the start or end.

/// Whether `value` matches `pattern`, where `*` matches any run of
/// characters (including none) and every other character itself.
/// Iterative, with no backtracking blow-up. Works on bytes: as `*` is ASCII
/// and UTF-8 self-synchronising, this is the same as matching characters.
pub fn star(pattern: &str, value: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), value.as_bytes());
    let (mut pi, mut si) = (0, 0);
    let mut back: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            back = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = back {
            pi = sp + 1;
            si = ss + 1;
            back = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Vault's glob of parameter values: `*x*` contains, `*x` ends with, `x*`
/// starts with, else equality; patterns shorter than two bytes only match
/// themselves.
pub fn param(pattern: &str, value: &str) -> bool {
    if pattern.len() < 2 {
        return pattern == value;
    }
    let starts = pattern.starts_with('*');
    let ends = pattern.ends_with('*');
    match (starts, ends) {
        (true, true) => value.contains(&pattern[1..pattern.len() - 1]),
        (true, false) => value.ends_with(&pattern[1..]),
        (false, true) => value.starts_with(&pattern[..pattern.len() - 1]),
        (false, false) => pattern == value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_globs() {
        assert!(star("*", ""));
        assert!(star("a*b*c", "aXXbYYc"));
        assert!(!star("a*b*c", "aXXbYY"));
        assert!(star("*main", "refs/heads/main"));
        assert!(!star("main", "main2"));
        assert!(star("ä*", "äöü"));
        assert!(star("*ü", "äöü"));
        assert!(!star("ö", "ä"));
        assert!(!star("a?c", "abc"));
        assert!(star("kv-*/data-*", "kv-v2/data-write"));
    }

    #[test]
    fn param_globs() {
        assert!(param("*", "*"));
        assert!(!param("*", "anything"));
        assert!(param("**", "anything"));
        assert!(param("a*", "abc"));
        assert!(!param("a*c", "abc"));
    }
}

//! Object names in mount-relative paths.

use std::borrow::Cow;

/// Lower-cases (and trims) the second segment of a mount-relative `path`
/// when its first segment is one of `heads`: the common case rule of
/// engines whose object names are case-insensitive (`users/<name>`,
/// `role/<name>/...`).
pub fn lowercase_name<'a>(path: &'a str, heads: &[&str]) -> Cow<'a, str> {
    let mut segs = path.split('/');
    let Some(head) = segs.next() else {
        return Cow::Borrowed(path);
    };
    if !heads.contains(&head) {
        return Cow::Borrowed(path);
    }
    let Some(name) = segs.next() else {
        return Cow::Borrowed(path);
    };
    let canonical = name.trim().to_lowercase();
    if canonical == name {
        return Cow::Borrowed(path);
    }
    let rest: Vec<&str> = segs.collect();
    let mut out = format!("{head}/{canonical}");
    for r in rest {
        out.push('/');
        out.push_str(r);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercased_under_their_heads() {
        assert_eq!(
            lowercase_name("users/ADMIN/password", &["users"]),
            "users/admin/password"
        );
        assert_eq!(lowercase_name("users/ Admin", &["users"]), "users/admin");
        assert_eq!(lowercase_name("users/", &["users"]), "users/");
        assert_eq!(lowercase_name("config/ABC", &["users"]), "config/ABC");
        assert!(matches!(
            lowercase_name("users/alice", &["users"]),
            Cow::Borrowed(_)
        ));
    }
}

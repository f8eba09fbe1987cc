//! Policy names as a token or a role holds them.

/// Lower-cases, trims, sorts and de-duplicates policy names; adds `default`
/// unless asked not to or the set holds `root`: a token's or a role's
/// policy list as the store keeps it.
pub fn sanitize_policies(policies: &[String], add_default: bool) -> Vec<String> {
    let mut out: Vec<String> = policies
        .iter()
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    if add_default && !out.iter().any(|p| p == "root") {
        out.push("default".into());
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_and_default_added_unless_root() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            sanitize_policies(&l(&[" Ops", "ops", "", "b"]), true),
            l(&["b", "default", "ops"])
        );
        assert_eq!(sanitize_policies(&l(&["root"]), true), l(&["root"]));
        assert_eq!(sanitize_policies(&l(&["a"]), false), l(&["a"]));
    }
}

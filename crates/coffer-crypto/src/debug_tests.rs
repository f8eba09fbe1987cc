//! Keys and keyrings keep their bytes out of `{:?}`.

use crate::keyring::Keyring;

#[test]
fn keyring_debug_shows_no_key_bytes() {
    let mut ring = Keyring::new(0);
    ring.rotate(1);
    let out = format!("{ring:?}");
    for term in ring.terms() {
        let bytes = term.key.as_bytes();
        assert!(!out.contains(&hex::encode(bytes)), "{out}");
        assert!(
            !out.contains(
                &format!("{:?}", &bytes[..8])
                    .trim_end_matches(']')
                    .to_string()
            ),
            "{out}"
        );
    }
    assert!(out.contains("Key(..)"), "{out}");
}

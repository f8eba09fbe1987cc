//! The stored role keeps its RoleID out of `{:?}`.

use super::role::Role;

#[test]
fn role_hides_role_id() {
    let s = format!("planted-{}", coffer_crypto::random::uuid());
    let role = Role {
        name: "billing".into(),
        role_id: s.clone(),
        ..Default::default()
    };
    let out = format!("{role:?}");
    assert!(
        !out.contains(&s) && out.contains("<redacted>") && out.contains("billing"),
        "{out}"
    );
}

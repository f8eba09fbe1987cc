//! Connection settings and static roles keep passwords out of `{:?}`.

use chrono::Utc;
use serde_json::{Map, Value};

use super::config::DbConfig;
use super::schedule::Cadence;
use super::secret::SecretString;
use super::static_roles::StaticRole;

fn planted() -> String {
    format!("planted-{}", coffer_crypto::random::uuid())
}

#[test]
fn db_config_hides_url_and_passwords() {
    let (url_pw, pw, pending, detail) = (planted(), planted(), planted(), planted());
    let key = planted();
    let mut details = Map::new();
    details.insert("connection_url".into(), Value::String(detail.clone()));
    let cfg = DbConfig {
        plugin_name: "postgresql-database-plugin".into(),
        connection_url: format!("postgres://root:{url_pw}@127.0.0.1/db"),
        username: "root".into(),
        password: SecretString::new(pw.clone()),
        pending_password: Some(SecretString::new(pending.clone())),
        allowed_roles: vec!["*".into()],
        root_rotation_statements: Vec::new(),
        verify_connection: true,
        password_policy: String::new(),
        tls_ca: String::new(),
        tls_certificate: String::new(),
        private_key: SecretString::new(key.clone()),
        details,
    };
    let out = format!("{cfg:?}");
    for s in [&url_pw, &pw, &pending, &detail, &key] {
        assert!(!out.contains(s.as_str()), "{out}");
    }
    assert!(out.contains("<redacted>") && out.contains("root"), "{out}");
}

#[test]
fn static_role_hides_passwords() {
    let (pw, pending) = (planted(), planted());
    let role = StaticRole {
        db_name: "db".into(),
        username: "app".into(),
        rotation_statements: Vec::new(),
        cadence: Cadence::Period(3600),
        password: SecretString::new(pw.clone()),
        pending_password: Some(SecretString::new(pending.clone())),
        last_vault_rotation: Utc::now(),
        next_rotation: Utc::now(),
        failures: 0,
        last_error: None,
    };
    let out = format!("{role:?}");
    assert!(!out.contains(&pw) && !out.contains(&pending), "{out}");
}

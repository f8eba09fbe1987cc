//! Every type of the core that can hold a secret keeps it out of `{:?}`.

use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use crate::audit::config::DeviceConfig;
use crate::auth::userpass::User;
use crate::barrier::BarrierOp;
use crate::expiration::LeaseEntry;
use crate::lifecycle::model::{Lifecycle, Rotation};
use crate::request::{LeaseRequest, Operation, Request, Response};
use crate::token_api::TokenSpec;

/// A fresh value that stands for a secret; never a literal in the source.
fn planted() -> String {
    format!("planted-{}", coffer_crypto::random::uuid())
}

fn assert_hidden(debug: String, secret: &str) {
    assert!(!debug.contains(secret), "secret in Debug output: {debug}");
    assert!(debug.contains("<redacted>"), "no redaction marker: {debug}");
}

#[test]
fn request_hides_data_values_and_token() {
    let (value, token) = (planted(), planted());
    let mut req = Request::new(Operation::Update, "secret/data/app");
    req.data
        .insert("password".into(), Value::String(value.clone()));
    req.token = Some(Zeroizing::new(token.clone()));
    let out = format!("{req:?}");
    assert_hidden(out.clone(), &value);
    assert_hidden(out.clone(), &token);
    assert!(
        out.contains("password") && out.contains("secret/data/app"),
        "{out}"
    );
}

#[test]
fn response_hides_data_raw_auth_and_lease_internal() {
    let s = planted();
    let resp = Response {
        data: Some(json!({ "data": { "api_key": s } })),
        raw: Some(json!({ "root_token": s })),
        auth: Some(json!({ "client_token": s })),
        lease: Some(LeaseRequest {
            internal: json!({ "password": s }),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_hidden(format!("{resp:?}"), &s);
}

#[test]
fn lease_request_hides_internal() {
    let s = planted();
    let lease = LeaseRequest {
        internal: json!({ "password": s }),
        ..Default::default()
    };
    assert_hidden(format!("{lease:?}"), &s);
}

#[test]
fn token_spec_hides_requested_id() {
    let s = planted();
    let spec = TokenSpec {
        id: Some(Zeroizing::new(s.clone())),
        ..Default::default()
    };
    assert_hidden(format!("{spec:?}"), &s);
}

#[test]
fn audit_device_config_hides_salt() {
    let s = planted();
    let cfg = DeviceConfig {
        path: "file/".into(),
        kind: "file".into(),
        description: String::new(),
        options: Default::default(),
        local: false,
        salt: s.clone(),
    };
    assert_hidden(format!("{cfg:?}"), &s);
}

#[test]
fn userpass_user_hides_password_hash() {
    let s = planted();
    let user = User {
        password_hash: s.clone(),
        ..Default::default()
    };
    assert_hidden(format!("{user:?}"), &s);
}

#[test]
fn barrier_op_hides_plaintext() {
    let s = planted();
    let op = BarrierOp::Put("logical/x".into(), Zeroizing::new(s.clone().into_bytes()));
    let out = format!("{op:?}");
    assert!(!out.contains(&s) && out.contains("bytes"), "{out}");
}

#[test]
fn lease_entry_hides_internal() {
    let s = planted();
    let lease = LeaseEntry {
        lease_id: "database/creds/r/1".into(),
        mount_path: "database/".into(),
        token_hash: None,
        issue_time: 0,
        expire_time: 0,
        last_renewal: None,
        max_expire_time: 0,
        renewable: true,
        internal: json!({ "password": s }),
    };
    assert_hidden(format!("{lease:?}"), &s);
}

#[test]
fn rotation_settings_show_names_only() {
    let s = planted();
    let mut settings = Map::new();
    settings.insert(
        "connection_url".into(),
        Value::String(format!("postgres://u:{s}@h/db")),
    );
    let rotation = Rotation {
        rotator: "postgres".into(),
        settings,
        ..Default::default()
    };
    assert_hidden(format!("{rotation:?}"), &s);
    let lifecycle = Lifecycle {
        rotation: Some(rotation),
        ..Default::default()
    };
    assert_hidden(format!("{lifecycle:?}"), &s);
}

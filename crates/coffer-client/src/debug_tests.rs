//! The client's configuration, the client and its answers keep tokens and
//! bodies out of `{:?}`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use reqwest::Method;
use zeroize::Zeroizing;

use super::{Client, Config, Response, DEFAULT_TIMEOUT};

fn planted() -> String {
    format!(
        "planted-{:016x}",
        RandomState::new().build_hasher().finish()
    )
}

#[test]
fn config_and_client_hide_the_token() {
    let token = planted();
    let config = Config {
        address: "http://127.0.0.1:8200".into(),
        token: Some(Zeroizing::new(token.clone())),
        ca_cert: None,
        skip_verify: false,
        timeout: DEFAULT_TIMEOUT,
    };
    let out = format!("{config:?}");
    assert!(!out.contains(&token) && out.contains("<redacted>"), "{out}");
    let client = Client::new(config).expect("client");
    let out = format!("{client:?}");
    assert!(!out.contains(&token) && out.contains("<redacted>"), "{out}");
}

#[test]
fn response_hides_the_body() {
    let s = planted();
    let resp = Response {
        method: Method::GET,
        url: "http://h/v1/secret/data/a".into(),
        status: 200,
        body: Some(serde_json::json!({ "data": { "data": { "k": s } } })),
    };
    let out = format!("{resp:?}");
    assert!(!out.contains(&s) && out.contains("<redacted>"), "{out}");
}

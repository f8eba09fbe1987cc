//! A login token renews only while its auth method still vouches for it:
//! the user or role exists and (for userpass) holds the same policies.

mod cli_support;

use cli_support::{unique, Api, Server};
use serde_json::json;

#[test]
fn renewal_asks_the_auth_method() {
    let s = Server::start();
    let api = Api::new(&s);
    api.root(
        "POST",
        "sys/auth/userpass",
        Some(json!({"type": "userpass"})),
    );
    api.root("POST", "sys/auth/approle", Some(json!({"type": "approle"})));
    let pw = unique("pw");
    api.root(
        "POST",
        "auth/userpass/users/alice",
        Some(json!({"password": pw, "token_policies": ["ops"]})),
    );
    let (st, login) = api.call(
        "POST",
        "auth/userpass/login/alice",
        None,
        Some(json!({"password": pw})),
    );
    assert_eq!(st, 200, "{login}");
    let tok = login["auth"]["client_token"].as_str().unwrap().to_string();
    let (st, body) = api.call("POST", "auth/token/renew-self", Some(&tok), Some(json!({})));
    assert_eq!(st, 200, "{body}");
    api.root(
        "POST",
        "auth/userpass/users/alice/policies",
        Some(json!({"token_policies": ["ops", "admin"]})),
    );
    let (st, body) = api.call("POST", "auth/token/renew-self", Some(&tok), Some(json!({})));
    assert_eq!(st, 400, "{body}");
    assert!(body["errors"][0]
        .as_str()
        .unwrap()
        .contains("policies have changed"));
    api.root("DELETE", "auth/userpass/users/alice", None);
    let (st, _) = api.call("POST", "auth/token/renew-self", Some(&tok), Some(json!({})));
    assert_eq!(st, 400);

    api.root(
        "POST",
        "auth/approle/role/app",
        Some(json!({"token_policies": ["app"]})),
    );
    let role_id = api.root("GET", "auth/approle/role/app/role-id", None)["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let secret_id = api.root("POST", "auth/approle/role/app/secret-id", Some(json!({})))["data"]
        ["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, login) = api.call(
        "POST",
        "auth/approle/login",
        None,
        Some(json!({"role_id": role_id, "secret_id": secret_id})),
    );
    assert_eq!(st, 200, "{login}");
    let tok = login["auth"]["client_token"].as_str().unwrap().to_string();
    let (st, _) = api.call("POST", "auth/token/renew-self", Some(&tok), Some(json!({})));
    assert_eq!(st, 200);
    api.root("DELETE", "auth/approle/role/app", None);
    let (st, body) = api.call("POST", "auth/token/renew-self", Some(&tok), Some(json!({})));
    assert_eq!(st, 400, "{body}");
    assert!(body["errors"][0]
        .as_str()
        .unwrap()
        .contains("does not exist during renewal"));
}

//! Token trees end with their root's expiry, at once; auth methods are
//! managed only through `sys/auth`, never through `sys/mounts/auth/...`.

mod cli_support;

use std::time::{Duration, Instant};

use cli_support::{unique, Api, Server};
use serde_json::json;

fn create_token(api: &Api, by: &str, body: serde_json::Value) -> String {
    let (st, v) = api.call("POST", "auth/token/create", Some(by), Some(body));
    assert_eq!(st, 200, "{v}");
    v["auth"]["client_token"].as_str().unwrap().to_string()
}

#[test]
fn a_child_of_an_expired_parent_is_refused_at_once() {
    let s = Server::start();
    let api = Api::new(&s);
    let parent = create_token(&api, &s.token, json!({"ttl": "3s"}));
    let issued = Instant::now();
    let child = create_token(&api, &parent, json!({"ttl": "1h"}));
    let grandchild = create_token(&api, &child, json!({"ttl": "1h"}));
    let accessor = {
        let (st, v) = api.call("GET", "auth/token/lookup-self", Some(&child), None);
        assert_eq!(st, 200, "{v}");
        v["data"]["accessor"].as_str().unwrap().to_string()
    };
    // Wait until the parent is refused, then the descendants must be too.
    let deadline = issued + Duration::from_secs(10);
    loop {
        let (st, _) = api.call("GET", "auth/token/lookup-self", Some(&parent), None);
        if st == 403 {
            break;
        }
        assert!(Instant::now() < deadline, "the 3 s parent still works");
        std::thread::sleep(Duration::from_millis(50));
    }
    for t in [&child, &grandchild] {
        let (st, v) = api.call("GET", "auth/token/lookup-self", Some(t), None);
        assert_eq!(st, 403, "a descendant of an expired token works: {v}");
    }
    let (st, _) = api.call(
        "POST",
        "auth/token/lookup-accessor",
        Some(&s.token),
        Some(json!({"accessor": accessor})),
    );
    assert_eq!(st, 400, "the child's accessor still looks up");
    // The expiry pass revokes the tree itself soon after (no tidy needed).
    let gone = Instant::now() + Duration::from_secs(3);
    loop {
        let listed = api.root("LIST", "auth/token/accessors", None);
        let keys = listed["data"]["keys"].as_array().unwrap();
        if !keys.iter().any(|k| k == accessor.as_str()) {
            break;
        }
        assert!(Instant::now() < gone, "the child was not revoked");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn revoke_orphan_leaves_working_orphans() {
    // The ancestor check must not refuse the orphans revoke-orphan leaves.
    let s = Server::start();
    let api = Api::new(&s);
    let parent = create_token(&api, &s.token, json!({"ttl": "1h"}));
    let child = create_token(&api, &parent, json!({"ttl": "1h"}));
    api.root(
        "POST",
        "auth/token/revoke-orphan",
        Some(json!({"token": parent})),
    );
    let (st, v) = api.call("GET", "auth/token/lookup-self", Some(&child), None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["orphan"], true);
}

#[test]
fn auth_methods_are_not_managed_through_sys_mounts() {
    let s = Server::start();
    let api = Api::new(&s);
    api.root(
        "POST",
        "sys/auth/userpass",
        Some(json!({"type": "userpass"})),
    );
    let pw = unique("pw");
    api.root(
        "POST",
        "auth/userpass/users/bob",
        Some(json!({"password": pw, "token_policies": ["default"]})),
    );
    let login = |api: &Api| {
        let (st, v) = api.call(
            "POST",
            "auth/userpass/login/bob",
            None,
            Some(json!({"password": pw})),
        );
        assert_eq!(st, 200, "userpass login: {v}");
        v["auth"]["client_token"].as_str().unwrap().to_string()
    };
    let bob = login(&api);
    // Everything on sys/mounts, sudo included; nothing on sys/auth.
    api.root(
        "PUT",
        "sys/policies/acl/mounts",
        Some(json!({"policy": "path \"sys/mounts/*\" { capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\", \"sudo\"] }\npath \"sys/mounts\" { capabilities = [\"read\"] }"})),
    );
    let ops = create_token(&api, &s.token, json!({"policies": ["mounts"]}));
    let before = api.root("GET", "sys/auth/userpass/tune", None);
    let (st, _) = api.call("DELETE", "sys/auth/userpass", Some(&ops), None);
    assert_eq!(st, 403);
    let tune = json!({
        "max_lease_ttl": "9999h",
        "default_lease_ttl": "999h",
        "user_lockout_config": {"disable_lockout": true},
    });
    let attempts = [
        ("DELETE", "sys/mounts/auth/userpass", None),
        ("DELETE", "sys/mounts/auth/userpass/", None),
        ("DELETE", "sys/mounts/auth%2Fuserpass", None),
        ("DELETE", "sys/mounts/auth", None),
        ("POST", "sys/mounts/auth/userpass/tune", Some(tune.clone())),
        ("PUT", "sys/mounts/auth/userpass/tune", Some(tune.clone())),
        ("GET", "sys/mounts/auth/userpass/tune", None),
        ("GET", "sys/mounts/auth/userpass", None),
        (
            "POST",
            "sys/mounts/auth/other",
            Some(json!({"type": "userpass"})),
        ),
        ("POST", "sys/mounts/auth/token/tune", Some(tune.clone())),
        ("DELETE", "sys/mounts/sys", None),
        ("POST", "sys/mounts/sys/tune", Some(tune.clone())),
        ("DELETE", "sys/mounts/cubbyhole", None),
        ("DELETE", "sys/mounts/identity", None),
    ];
    for (method, path, body) in attempts {
        for token in [ops.as_str(), s.token.as_str()] {
            let (st, v) = api.call(method, path, Some(token), body.clone());
            assert_eq!(st, 400, "{method} {path}: {st} {v}");
            let msg = v["errors"][0].as_str().unwrap_or("");
            assert!(msg.starts_with("cannot "), "{method} {path}: {v}");
        }
    }
    let (st, v) = api.call("DELETE", "sys/mounts/auth/userpass", Some(&ops), None);
    assert_eq!(v["errors"][0], "cannot unmount \"auth/userpass/\"", "{st}");

    // The method, its users, its tokens and its settings are untouched.
    let after = api.root("GET", "sys/auth/userpass/tune", None);
    assert_eq!(before["data"], after["data"]);
    let (st, v) = api.call("GET", "auth/token/lookup-self", Some(&bob), None);
    assert_eq!(st, 200, "{v}");
    login(&api);
    let auths = api.root("GET", "sys/auth", None);
    assert!(auths["data"]["userpass/"].is_object());
}

//! AppRole and userpass end to end against a real `coffer server --dev`: an
//! app on AppRole and an operator on userpass get a policy that reads
//! `secret/data/billing/*` only; every other path answers 403, wrong
//! credentials 400, exhausted or out-of-range SecretIDs are refused, and
//! five wrong passwords lock a user out.

mod cli_support;

use std::time::{Duration, Instant};

use cli_support::{unique, Api, Server};
use serde_json::{json, Value};

/// Login helpers on top of the shared client.
impl Api<'_> {
    /// Logs in at `path`; returns the status and the client token if any.
    fn login(&self, path: &str, body: Value) -> (u16, Option<String>, Value) {
        let (status, body) = self.call("POST", path, None, Some(body));
        let token = body["auth"]["client_token"].as_str().map(str::to_string);
        (status, token, body)
    }

    /// Status of a read of `path` with `token`.
    fn read_status(&self, token: &str, path: &str) -> u16 {
        self.call("GET", path, Some(token), None).0
    }
}

/// Enables both methods, a billing policy and two secrets.
fn setup(api: &Api<'_>) {
    api.root("POST", "sys/auth/approle", Some(json!({"type": "approle"})));
    api.root(
        "POST",
        "sys/auth/userpass",
        Some(json!({"type": "userpass"})),
    );
    api.root(
        "PUT",
        "sys/policies/acl/billing",
        Some(
            json!({"policy": "path \"secret/data/billing/*\" {\n  capabilities = [\"read\"]\n}\n"}),
        ),
    );
    api.root(
        "POST",
        "secret/data/billing/db",
        Some(json!({"data": {"dsn": unique("value")}})),
    );
    api.root(
        "POST",
        "secret/data/payroll/db",
        Some(json!({"data": {"dsn": unique("value")}})),
    );
}

/// The least-privilege checks every billing token must pass.
fn assert_billing_only(api: &Api<'_>, token: &str) {
    assert_eq!(api.read_status(token, "secret/data/billing/db"), 200);
    assert_eq!(api.read_status(token, "secret/data/payroll/db"), 403);
    assert_eq!(api.read_status(token, "secret/metadata/billing/db"), 403);
    assert_eq!(api.read_status(token, "sys/policies/acl/billing"), 403);
    let (status, _) = api.call(
        "POST",
        "secret/data/billing/db",
        Some(token),
        Some(json!({"data": {"x": "y"}})),
    );
    assert_eq!(status, 403);
}

#[test]
fn approle_app_reads_only_its_paths() {
    let server = Server::start();
    let api = Api::new(&server);
    setup(&api);
    api.root(
        "POST",
        "auth/approle/role/billing-app",
        Some(json!({"token_policies": ["billing"], "token_ttl": "1h", "secret_id_num_uses": 2})),
    );
    let role = api.root("GET", "auth/approle/role/billing-app", None);
    assert_eq!(role["data"]["token_policies"], json!(["billing"]));
    assert_eq!(role["data"]["secret_id_num_uses"], json!(2));
    let role_id = api.root("GET", "auth/approle/role/billing-app/role-id", None)["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let issued = api.root("POST", "auth/approle/role/billing-app/secret-id", None);
    let secret_id = issued["data"]["secret_id"].as_str().unwrap().to_string();
    let accessor = issued["data"]["secret_id_accessor"].clone();
    let listed = api.root("LIST", "auth/approle/role/billing-app/secret-id", None);
    assert_eq!(listed["data"]["keys"], json!([accessor]));

    // First use: a token with the billing policy and Vault's auth block.
    let (status, token, body) = api.login(
        "auth/approle/login",
        json!({"role_id": role_id, "secret_id": secret_id}),
    );
    assert_eq!(status, 200, "{body}");
    let app_token = token.unwrap();
    let auth = &body["auth"];
    assert_eq!(auth["token_policies"], json!(["billing", "default"]));
    assert_eq!(auth["metadata"]["role_name"], json!("billing-app"));
    assert_eq!(auth["lease_duration"], json!(3600));
    assert_eq!(auth["renewable"], json!(true));
    assert!(auth["accessor"].as_str().is_some_and(|a| !a.is_empty()));
    assert_billing_only(&api, &app_token);
    let looked = api.root(
        "POST",
        "auth/approle/role/billing-app/secret-id-accessor/lookup",
        Some(json!({"secret_id_accessor": accessor})),
    );
    assert_eq!(looked["data"]["secret_id_num_uses"], json!(1));

    // Wrong SecretID: 400 with Vault's words and nothing else.
    let (status, _, body) = api.login(
        "auth/approle/login",
        json!({"role_id": role_id, "secret_id": unique("wrong")}),
    );
    assert_eq!(status, 400);
    assert_eq!(body["errors"], json!(["invalid role or secret ID"]));

    // Second use works; the third is refused (uses exhausted).
    let (status, _, _) = api.login(
        "auth/approle/login",
        json!({"role_id": role_id, "secret_id": secret_id}),
    );
    assert_eq!(status, 200);
    let (status, _, body) = api.login(
        "auth/approle/login",
        json!({"role_id": role_id, "secret_id": secret_id}),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"], json!(["invalid role or secret ID"]));
    let (status, _) = api.call(
        "LIST",
        "auth/approle/role/billing-app/secret-id",
        Some(&server.token),
        None,
    );
    assert_eq!(status, 404);

    // A SecretID bound to another network is refused from 127.0.0.1.
    let bound = api.root(
        "POST",
        "auth/approle/role/billing-app/secret-id",
        Some(json!({"cidr_list": "10.0.0.0/8"})),
    );
    let (status, _, body) = api.login(
        "auth/approle/login",
        json!({"role_id": role_id, "secret_id": bound["data"]["secret_id"]}),
    );
    assert_eq!(status, 400, "{body}");
    // ... and a role bound to another network refuses every login.
    let local = api.root(
        "POST",
        "auth/approle/role/billing-app/secret-id",
        Some(json!({"cidr_list": "127.0.0.0/8"})),
    );
    let (status, _, _) = api.login(
        "auth/approle/login",
        json!({"role_id": role_id, "secret_id": local["data"]["secret_id"]}),
    );
    assert_eq!(status, 200);
    api.root(
        "POST",
        "auth/approle/role/billing-app",
        Some(json!({"secret_id_bound_cidrs": ["10.0.0.0/8"]})),
    );
    let (status, _, _) = api.login(
        "auth/approle/login",
        json!({"role_id": role_id, "secret_id": local["data"]["secret_id"]}),
    );
    assert_eq!(status, 400);

    // Token bound CIDRs: a token usable only from elsewhere is refused here.
    api.root(
        "POST",
        "auth/approle/role/pinned",
        Some(json!({"token_policies": "billing", "token_bound_cidrs": "10.0.0.0/8,127.0.0.1/32"})),
    );
    let pinned_id =
        api.root("GET", "auth/approle/role/pinned/role-id", None)["data"]["role_id"].clone();
    let s = api.root(
        "POST",
        "auth/approle/role/pinned/secret-id",
        Some(json!({"token_bound_cidrs": ["10.0.0.0/8"]})),
    );
    let (status, token, _) = api.login(
        "auth/approle/login",
        json!({"role_id": pinned_id, "secret_id": s["data"]["secret_id"]}),
    );
    assert_eq!(status, 200);
    assert_eq!(
        api.read_status(&token.unwrap(), "secret/data/billing/db"),
        403
    );

    // Unknown RoleID, destroy by SecretID, role deletion.
    let (status, _, body) = api.login(
        "auth/approle/login",
        json!({"role_id": unique("role"), "secret_id": unique("s")}),
    );
    assert_eq!(
        (status, body["errors"].clone()),
        (400, json!(["invalid role or secret ID"]))
    );
    api.root(
        "POST",
        "auth/approle/role/pinned/secret-id/destroy",
        Some(json!({"secret_id": s["data"]["secret_id"]})),
    );
    let (status, _, _) = api.login(
        "auth/approle/login",
        json!({"role_id": pinned_id, "secret_id": s["data"]["secret_id"]}),
    );
    assert_eq!(status, 400);
    api.root("DELETE", "auth/approle/role/pinned", None);
    let (status, _) = api.call("GET", "auth/approle/role/pinned", Some(&server.token), None);
    assert_eq!(status, 404);
    let (status, _) = api.call(
        "POST",
        "auth/approle/tidy/secret-id",
        Some(&server.token),
        None,
    );
    assert_eq!(status, 202);
    // The app's own token cannot manage roles or mint SecretIDs.
    for (method, path) in [
        ("POST", "auth/approle/role/billing-app/secret-id"),
        ("GET", "auth/approle/role/billing-app/role-id"),
        ("LIST", "auth/approle/role"),
    ] {
        let (status, _) = api.call(method, path, Some(&app_token), None);
        assert_eq!(status, 403, "{method} {path}");
    }
}

#[test]
fn userpass_operator_and_lockout() {
    let server = Server::start();
    let api = Api::new(&server);
    setup(&api);
    let password = unique("pw");
    api.root(
        "POST",
        "auth/userpass/users/Operator",
        Some(json!({"password": password, "token_policies": "billing"})),
    );
    let user = api.root("GET", "auth/userpass/users/operator", None);
    assert_eq!(user["data"]["token_policies"], json!(["billing"]));
    assert!(!user.to_string().contains(&password));
    assert!(user["data"].get("password").is_none());
    let users = api.root("LIST", "auth/userpass/users", None);
    assert_eq!(users["data"]["keys"], json!(["operator"]));

    let (status, token, body) = api.login(
        "auth/userpass/login/OPERATOR",
        json!({"password": password}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["auth"]["metadata"]["username"], json!("operator"));
    assert_eq!(body["auth"]["policies"], json!(["billing", "default"]));
    let token = token.unwrap();
    assert_billing_only(&api, &token);
    let (status, lookup) = api.call("GET", "auth/token/lookup-self", Some(&token), None);
    assert_eq!(status, 200);
    assert_eq!(lookup["data"]["display_name"], json!("userpass-operator"));

    // An unknown user and a wrong password get the same answer.
    let (status, _, body) = api.login(
        "auth/userpass/login/nobody",
        json!({"password": unique("pw")}),
    );
    assert_eq!(
        (status, body["errors"].clone()),
        (400, json!(["invalid username or password"]))
    );

    // Password change.
    let new_password = unique("pw2");
    api.root(
        "POST",
        "auth/userpass/users/operator/password",
        Some(json!({"password": new_password})),
    );
    let (status, _, _) = api.login(
        "auth/userpass/login/operator",
        json!({"password": password}),
    );
    assert_eq!(status, 400);
    let (status, _, _) = api.login(
        "auth/userpass/login/operator",
        json!({"password": new_password}),
    );
    assert_eq!(status, 200);

    // Five wrong passwords in a row lock the user out (Vault's default
    // lockout_threshold): even the right password now answers 403.
    for _ in 0..5 {
        let (status, _, body) = api.login(
            "auth/userpass/login/operator",
            json!({"password": unique("wrong")}),
        );
        assert_eq!(status, 400, "{body}");
    }
    let (status, _, body) = api.login(
        "auth/userpass/login/operator",
        json!({"password": new_password}),
    );
    assert_eq!(status, 403, "{body}");
    // sys/locked-users lists the lockout under the mount's accessor, and
    // unlocking it there lets the right password in again.
    let auths = api.root("GET", "sys/auth", None);
    let accessor = auths["data"]["userpass/"]["accessor"]
        .as_str()
        .unwrap()
        .to_string();
    let locked = api.root("GET", "sys/locked-users", None);
    assert_eq!(locked["data"]["total"], 1, "{locked}");
    assert_eq!(
        locked["data"]["by_namespace"][0]["mount_accessors"][0],
        json!({"mount_accessor": accessor, "counts": 1, "alias_identifiers": ["operator"]}),
        "{locked}"
    );
    api.root(
        "POST",
        &format!("sys/locked-users/{accessor}/unlock/operator"),
        None,
    );
    let locked = api.root("GET", "sys/locked-users", None);
    assert_eq!(locked["data"]["total"], 0, "{locked}");
    let (status, _, body) = api.login(
        "auth/userpass/login/operator",
        json!({"password": new_password}),
    );
    assert_eq!(status, 200, "{body}");
    // Another user is not affected.
    let other = unique("pw");
    api.root(
        "POST",
        "auth/userpass/users/auditor",
        Some(json!({"password": other, "token_policies": ["billing"]})),
    );
    let (status, _, _) = api.login("auth/userpass/login/auditor", json!({"password": other}));
    assert_eq!(status, 200);

    // Policies endpoint and deletion.
    api.root(
        "POST",
        "auth/userpass/users/auditor/policies",
        Some(json!({"token_policies": "default"})),
    );
    let (_, token, body) = api.login("auth/userpass/login/auditor", json!({"password": other}));
    assert_eq!(body["auth"]["policies"], json!(["default"]));
    assert_eq!(
        api.read_status(&token.unwrap(), "secret/data/billing/db"),
        403
    );
    api.root("DELETE", "auth/userpass/users/auditor", None);
    let (status, _, _) = api.login("auth/userpass/login/auditor", json!({"password": other}));
    assert_eq!(status, 400);
}

/// Median login time for a known user (wrong password) and an unknown one:
/// they must be close so timing does not reveal which users exist.
#[test]
fn unknown_user_login_costs_as_much_as_a_known_one() {
    let server = Server::start();
    let api = Api::new(&server);
    api.root(
        "POST",
        "sys/auth/userpass",
        Some(json!({"type": "userpass"})),
    );
    for name in ["alpha", "beta", "gamma"] {
        api.root(
            "POST",
            &format!("auth/userpass/users/{name}"),
            Some(json!({"password": unique("pw")})),
        );
    }
    let time = |user: &str| {
        let t = Instant::now();
        let (status, _, _) = api.login(
            &format!("auth/userpass/login/{user}"),
            json!({"password": unique("wrong")}),
        );
        assert_eq!(status, 400);
        t.elapsed()
    };
    // Stay under the per-address failure limit (20 a minute): 3 + 3 + 12.
    let _ = (time("alpha"), time("ghost"));
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..6 {
        known.push(time(["alpha", "beta", "gamma"][i % 3]));
        unknown.push(time(&format!("ghost{i}")));
    }
    known.sort();
    unknown.sort();
    let (k, u) = (known[3], unknown[3]);
    eprintln!("median failed login: known user {k:?}, unknown user {u:?}");
    assert!(k > Duration::from_millis(1));
    let ratio = u.as_secs_f64() / k.as_secs_f64();
    assert!((0.5..2.0).contains(&ratio), "known {k:?} vs unknown {u:?}");
}

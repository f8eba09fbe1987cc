//! Token leases, batch tokens and the token API's fields, against a real
//! server: logins and tokens with a TTL have leases under their creating
//! path, which `sys/leases/*` looks up, lists and revokes (the token, its
//! children and their leases with it); batch tokens are never stored.

mod cli_support;

use std::time::{Duration, Instant};

use cli_support::{bao, unique, Api, Server};
use serde_json::{json, Value};

/// Sets up `auth/userpass` with users, and a policy letting them create tokens.
fn userpass(api: &Api, users: &[&str], password: &str) {
    api.root(
        "POST",
        "sys/auth/userpass",
        Some(json!({"type": "userpass"})),
    );
    api.root(
        "PUT",
        "sys/policies/acl/maker",
        Some(json!({"policy": "path \"auth/token/create\" { capabilities = [\"update\"] }"})),
    );
    for u in users {
        api.root(
            "POST",
            &format!("auth/userpass/users/{u}"),
            Some(json!({"password": password, "token_policies": ["maker"], "token_ttl": "1h"})),
        );
    }
}

fn login(api: &Api, user: &str, password: &str) -> String {
    let (st, v) = api.call(
        "POST",
        &format!("auth/userpass/login/{user}"),
        None,
        Some(json!({"password": password})),
    );
    assert_eq!(st, 200, "{v}");
    v["auth"]["client_token"].as_str().unwrap().to_string()
}

fn works(api: &Api, token: &str) -> bool {
    let (st, _) = api.call("GET", "auth/token/lookup-self", Some(token), None);
    st == 200
}

fn keys(api: &Api, prefix: &str) -> Vec<String> {
    let (st, v) = api.call(
        "LIST",
        &format!("sys/leases/lookup/{prefix}"),
        Some(&api.server.token),
        None,
    );
    if st == 404 {
        return Vec::new();
    }
    assert_eq!(st, 200, "{v}");
    v["data"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

fn lease_lookup(api: &Api, id: &str) -> (u16, Value) {
    api.call(
        "PUT",
        "sys/leases/lookup",
        Some(&api.server.token),
        Some(json!({"lease_id": id})),
    )
}

#[test]
fn prefix_revocation_of_logins_ends_the_tokens_and_their_children() {
    let s = Server::start();
    let api = Api::new(&s);
    let pw = unique("pw");
    userpass(&api, &["alice", "alice2"], &pw);
    // 32 concurrent logins.
    let tokens: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..32)
            .map(|_| scope.spawn(|| login(&Api::new(&s), "alice", &pw)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let other = login(&api, "alice2", &pw);
    let (st, v) = api.call(
        "POST",
        "auth/token/create",
        Some(&tokens[0]),
        Some(json!({"ttl": "10m"})),
    );
    assert_eq!(st, 200, "{v}");
    let child = v["auth"]["client_token"].as_str().unwrap().to_string();
    assert_eq!(keys(&api, "auth/"), vec!["token/", "userpass/"]);
    let listed = keys(&api, "auth/userpass/login/alice/");
    assert_eq!(listed.len(), 32, "{listed:?}");
    assert!(listed.iter().all(|k| k.starts_with('h') && k.len() == 65));
    assert_eq!(keys(&api, "auth/token/create/").len(), 1);

    // The lease looks up as OpenBao's does.
    let id = format!("auth/userpass/login/alice/{}", listed[0]);
    let (st, v) = lease_lookup(&api, &id);
    assert_eq!(st, 200, "{v}");
    let d = &v["data"];
    assert_eq!(d["id"], id.as_str());
    assert_eq!(d["path"], "auth/userpass/login/alice");
    assert_eq!(d["renewable"], true);
    assert!(d["last_renewal"].is_null());
    let ttl = d["ttl"].as_i64().unwrap();
    assert!((3500..=3600).contains(&ttl), "{v}");
    // As in OpenBao, tokens renew through auth/token, not sys/leases/renew.
    let (st, v) = api.call(
        "PUT",
        "sys/leases/renew",
        Some(&s.token),
        Some(json!({"lease_id": id})),
    );
    assert_eq!(st, 400, "{v}");
    assert_eq!(
        v["errors"][0],
        "tokens cannot be renewed through this endpoint"
    );
    let (st, _) = lease_lookup(&api, "auth/userpass/login/alice/hnothere");
    assert_eq!(st, 400);

    let (st, v) = api.call(
        "PUT",
        "sys/leases/revoke-prefix/auth/userpass/login/alice",
        Some(&s.token),
        None,
    );
    assert_eq!(st, 204, "{v}");
    for t in &tokens {
        assert!(
            !works(&api, t),
            "a login token survived its prefix revocation"
        );
    }
    assert!(
        !works(&api, &child),
        "a child survived its parent's lease revocation"
    );
    assert!(keys(&api, "auth/userpass/login/alice/").is_empty());
    assert!(
        keys(&api, "auth/token/create/").is_empty(),
        "the child's lease stayed"
    );
    // `alice` is a directory: `alice2` is not below it.
    assert!(works(&api, &other), "revoking alice/ reached alice2");
    assert_eq!(keys(&api, "auth/userpass/login/alice2/").len(), 1);
}

#[test]
fn renewing_a_token_moves_its_lease_and_revoking_the_lease_ends_it() {
    let s = Server::start();
    let api = Api::new(&s);
    let v = api.root(
        "POST",
        "auth/token/create",
        Some(json!({"ttl": "60s", "explicit_max_ttl": "1h"})),
    );
    let token = v["auth"]["client_token"].as_str().unwrap().to_string();
    assert_eq!(v["auth"]["token_type"], "service");
    assert!(v["auth"].get("identity_policies").is_none(), "{v}");
    let listed = keys(&api, "auth/token/create/");
    assert_eq!(listed.len(), 1);
    let id = format!("auth/token/create/{}", listed[0]);
    let (_, before) = lease_lookup(&api, &id);
    assert!(before["data"]["ttl"].as_i64().unwrap() <= 60);
    let (st, v) = api.call(
        "POST",
        "auth/token/renew-self",
        Some(&token),
        Some(json!({"increment": "30m"})),
    );
    assert_eq!(st, 200, "{v}");
    let (_, after) = lease_lookup(&api, &id);
    let ttl = after["data"]["ttl"].as_i64().unwrap();
    assert!((1700..=1800).contains(&ttl), "{after}");
    assert!(after["data"]["last_renewal"].is_string(), "{after}");
    let (_, look) = api.call(
        "POST",
        "auth/token/lookup",
        Some(&s.token),
        Some(json!({"token": token})),
    );
    assert_eq!(
        look["data"]["expire_time"], after["data"]["expire_time"],
        "token and lease disagree"
    );
    // A root token without a TTL has no lease.
    api.root("POST", "auth/token/create", Some(json!({})));
    assert_eq!(keys(&api, "auth/token/create/").len(), 1);
    // Revoking the lease revokes the token.
    let (st, _) = api.call(
        "PUT",
        &format!("sys/leases/revoke/{id}"),
        Some(&s.token),
        None,
    );
    assert_eq!(st, 204);
    assert!(!works(&api, &token));
    let (st, _) = lease_lookup(&api, &id);
    assert_eq!(st, 400);
}

#[test]
fn a_token_and_its_lease_expire_together() {
    let s = Server::start();
    let api = Api::new(&s);
    let v = api.root("POST", "auth/token/create", Some(json!({"ttl": "2s"})));
    let token = v["auth"]["client_token"].as_str().unwrap().to_string();
    assert_eq!(keys(&api, "auth/token/create/").len(), 1);
    let deadline = Instant::now() + Duration::from_secs(8);
    while works(&api, &token) {
        assert!(Instant::now() < deadline, "the 2 s token still works");
        std::thread::sleep(Duration::from_millis(100));
    }
    let gone = Instant::now() + Duration::from_secs(4);
    while !keys(&api, "auth/token/create/").is_empty() {
        assert!(Instant::now() < gone, "the lease outlived its token");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn batch_tokens_are_unstored_unrenewable_and_end_with_their_parent() {
    let s = Server::start();
    let api = Api::new(&s);
    api.root(
        "PUT",
        "sys/policies/acl/maker",
        Some(json!({"policy": "path \"auth/token/create\" { capabilities = [\"update\"] }"})),
    );
    let parent = api.root(
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["maker"], "ttl": "1h"})),
    )["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, v) = api.call(
        "POST",
        "auth/token/create",
        Some(&parent),
        Some(json!({"type": "batch", "ttl": "10m"})),
    );
    assert_eq!(st, 200, "{v}");
    let auth = &v["auth"];
    assert_eq!(auth["token_type"], "batch");
    assert_eq!(auth["accessor"], "");
    assert_eq!(auth["renewable"], false);
    assert_eq!(auth["orphan"], false);
    let batch = auth["client_token"].as_str().unwrap().to_string();
    assert!(batch.starts_with("cfb."), "{batch}");
    let (st, v) = api.call("GET", "auth/token/lookup-self", Some(&batch), None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["type"], "batch");
    assert_eq!(v["data"]["policies"], json!(["default", "maker"]));
    assert_eq!(v["data"]["accessor"], "");
    // No lease, no accessor entry: nothing is stored.
    assert_eq!(keys(&api, "auth/token/create/").len(), 1);
    for (path, body, msg) in [
        (
            "auth/token/renew-self",
            json!({}),
            "batch tokens cannot be renewed",
        ),
        (
            "auth/token/create",
            json!({}),
            "batch tokens cannot create more tokens",
        ),
        (
            "auth/token/revoke-self",
            json!({}),
            "batch tokens cannot be revoked",
        ),
    ] {
        let (st, v) = api.call("POST", path, Some(&batch), Some(body));
        assert_eq!(st, 400, "{path}: {v}");
        assert_eq!(v["errors"][0], msg, "{path}");
    }
    let (st, v) = api.call(
        "POST",
        "auth/token/revoke",
        Some(&s.token),
        Some(json!({"token": batch})),
    );
    assert_eq!(
        (st, v["errors"][0].clone()),
        (400, json!("batch tokens cannot be revoked"))
    );
    // Tampering is detected.
    let mut forged = batch.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert!(!works(&api, &forged));
    // What Vault refuses for batch tokens.
    for (body, msg) in [
        (
            json!({"type": "batch"}),
            "batch tokens cannot be root tokens",
        ),
        (
            json!({"type": "batch", "policies": ["maker"], "num_uses": 2}),
            "batch tokens cannot have \"num_uses\" set",
        ),
        (
            json!({"type": "batch", "policies": ["maker"], "period": "1h"}),
            "batch tokens cannot have \"period\" set",
        ),
        (json!({"type": "bogus"}), "invalid 'token_type' value"),
    ] {
        let (st, v) = api.call(
            "POST",
            "auth/token/create",
            Some(&s.token),
            Some(body.clone()),
        );
        assert_eq!((st, v["errors"][0].clone()), (400, json!(msg)), "{body}");
    }
    // The parent's revocation ends the batch token at once.
    api.root("POST", "auth/token/revoke", Some(json!({"token": parent})));
    assert!(!works(&api, &batch), "a batch token outlived its parent");
}

#[test]
fn a_batch_token_expires_by_its_ttl() {
    let s = Server::start();
    let api = Api::new(&s);
    let v = api.root(
        "POST",
        "auth/token/create",
        Some(json!({"type": "batch", "policies": ["p"], "ttl": "2s", "no_parent": true})),
    );
    assert_eq!(v["auth"]["orphan"], true);
    let batch = v["auth"]["client_token"].as_str().unwrap().to_string();
    assert!(works(&api, &batch));
    let deadline = Instant::now() + Duration::from_secs(8);
    while works(&api, &batch) {
        assert!(Instant::now() < deadline, "the 2 s batch token still works");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn token_roles_carry_vaults_fields_and_issue_batch_tokens() {
    let s = Server::start();
    let api = Api::new(&s);
    api.root(
        "POST",
        "auth/token/roles/r1",
        Some(json!({
            "allowed_policies_glob": ["app-*"],
            "disallowed_policies_glob": ["app-admin*"],
            "token_type": "batch",
            "path_suffix": "sfx",
        })),
    );
    let d = api.root("GET", "auth/token/roles/r1", None)["data"].clone();
    assert_eq!(d["allowed_policies_glob"], json!(["app-*"]));
    assert_eq!(d["disallowed_policies_glob"], json!(["app-admin*"]));
    assert_eq!(d["token_type"], "batch");
    assert_eq!(d["path_suffix"], "sfx");
    for k in [
        "explicit_max_ttl",
        "period",
        "token_period",
        "orphan",
        "renewable",
        "allowed_entity_aliases",
    ] {
        assert!(d.get(k).is_some(), "role read lacks {k}: {d}");
    }
    let v = api.root(
        "POST",
        "auth/token/create/r1",
        Some(json!({"policies": ["app-web"]})),
    );
    assert_eq!(v["auth"]["token_type"], "batch");
    let t = v["auth"]["client_token"].as_str().unwrap().to_string();
    let (_, look) = api.call("GET", "auth/token/lookup-self", Some(&t), None);
    assert_eq!(look["data"]["role"], "r1");
    assert_eq!(look["data"]["path"], "auth/token/create/r1/sfx");
    for pol in ["app-admin-x", "other"] {
        let (st, v) = api.call(
            "POST",
            "auth/token/create/r1",
            Some(&s.token),
            Some(json!({"policies": [pol]})),
        );
        assert_eq!(st, 400, "{pol}: {v}");
    }
    let (st, v) = api.call(
        "POST",
        "auth/token/create/r1",
        Some(&s.token),
        Some(json!({"policies": ["app-web"], "type": "service"})),
    );
    assert_eq!(st, 400, "{v}");
    let (st, _) = api.call(
        "POST",
        "auth/token/roles/bad",
        Some(&s.token),
        Some(json!({"token_type": "nope"})),
    );
    assert_eq!(st, 400);
}

#[test]
fn lookups_show_vaults_fields_and_revoke_accessor_is_idempotent() {
    let s = Server::start();
    let api = Api::new(&s);
    let v = api.root(
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["p"], "period": "1h", "meta": {"team": "x"}})),
    );
    let accessor = v["auth"]["accessor"].as_str().unwrap().to_string();
    let d = api.root(
        "POST",
        "auth/token/lookup-accessor",
        Some(json!({"accessor": accessor})),
    )["data"]
        .clone();
    assert_eq!(d["period"], 3600);
    assert_eq!(d["type"], "service");
    assert_eq!(d["meta"], json!({"team": "x"}));
    assert_eq!(d["entity_id"], "");
    assert_eq!(d["explicit_max_ttl"], 0);
    assert!(
        d.get("role").is_none() && d.get("bound_cidrs").is_none(),
        "{d}"
    );
    for _ in 0..2 {
        let (st, v) = api.call(
            "POST",
            "auth/token/revoke-accessor",
            Some(&s.token),
            Some(json!({"accessor": accessor})),
        );
        assert!(st == 204 || st == 200, "{st} {v}");
    }
    let (st, v) = api.call(
        "POST",
        "auth/token/revoke-accessor",
        Some(&s.token),
        Some(json!({"accessor": accessor})),
    );
    assert_eq!(st, 200);
    assert_eq!(v["warnings"][0], "No token found with this accessor");
}

#[test]
fn the_openbao_cli_manages_token_leases_and_batch_tokens() {
    let Some(bao) = bao() else {
        eprintln!("skipped: no bao CLI (set COFFER_TEST_BAO)");
        return;
    };
    let s = Server::start();
    let api = Api::new(&s);
    let pw = unique("pw");
    userpass(&api, &["alice"], &pw);
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| -> (bool, String, String) {
        let out = std::process::Command::new(&bao)
            .args(args)
            .env_clear()
            .env("HOME", home.path())
            .env("VAULT_ADDR", &s.addr)
            .env("VAULT_TOKEN", &s.token)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run(&[
        "token",
        "create",
        "-type=batch",
        "-policy=maker",
        "-ttl=10m",
        "-format=json",
    ]);
    assert!(ok, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let batch = v["auth"]["client_token"].as_str().unwrap().to_string();
    let (ok, out, err) = run(&["token", "lookup", "-format=json", &batch]);
    assert!(ok, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["data"]["type"], "batch");
    let alice = login(&api, "alice", &pw);
    let lease = format!(
        "auth/userpass/login/alice/{}",
        keys(&api, "auth/userpass/login/alice/")[0]
    );
    let (ok, out, err) = run(&["lease", "lookup", "-format=json", &lease]);
    assert!(ok, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["data"]["id"], lease.as_str());
    let (ok, out, err) = run(&["lease", "revoke", "-prefix", "auth/userpass/login/alice"]);
    assert!(ok, "{out}{err}");
    assert!(
        !works(&api, &alice),
        "bao lease revoke -prefix left the login working"
    );
}

#[test]
fn the_coffer_cli_creates_looks_up_and_revokes_these_tokens() {
    let s = Server::start();
    let api = Api::new(&s);
    let v = s
        .run(&[
            "token",
            "create",
            "-type=batch",
            "-policy=p",
            "-ttl=10m",
            "-format=json",
        ])
        .ok()
        .json();
    assert_eq!(v["auth"]["token_type"], "batch");
    let batch = v["auth"]["client_token"].as_str().unwrap().to_string();
    let v = s
        .run(&["token", "lookup", "-format=json", &batch])
        .ok()
        .json();
    assert_eq!(v["data"]["type"], "batch");
    let r = s.run(&["token", "renew", &batch]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("batch tokens cannot be renewed"), "{r:?}");
    let r = s.run(&["token", "create", "-type=sideways"]);
    assert!(r.code != 0 && r.stderr.contains("sideways"), "{r:?}");

    let v = s
        .run(&["token", "create", "-policy=p", "-ttl=10m", "-format=json"])
        .ok()
        .json();
    let token = v["auth"]["client_token"].as_str().unwrap().to_string();
    let accessor = v["auth"]["accessor"].as_str().unwrap().to_string();
    let v = s
        .run(&["token", "renew", "-accessor", "-format=json", &accessor])
        .ok()
        .json();
    assert_eq!(v["auth"]["renewable"], true);
    s.run(&["token", "revoke", "-accessor", &accessor]).ok();
    assert!(!works(&api, &token));
    // Revoking an accessor whose token is gone succeeds, as Vault's.
    s.run(&["token", "revoke", "-accessor", &accessor]).ok();
}

#[test]
fn an_auth_method_with_token_type_batch_issues_batch_tokens() {
    let s = Server::start();
    let api = Api::new(&s);
    let pw = unique("pw");
    userpass(&api, &["bob"], &pw);
    api.root(
        "POST",
        "auth/userpass/users/bob",
        Some(json!({"token_type": "batch", "token_ttl": "10m"})),
    );
    let d = api.root("GET", "auth/userpass/users/bob", None)["data"].clone();
    assert_eq!(d["token_type"], "batch");
    let token = login(&api, "bob", &pw);
    assert!(token.starts_with("cfb."), "{token}");
    let (st, v) = api.call("GET", "auth/token/lookup-self", Some(&token), None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["type"], "batch");
    assert_eq!(v["data"]["path"], "auth/userpass/login/bob");
    assert_eq!(v["data"]["meta"]["username"], "bob");
    assert!(
        keys(&api, "auth/userpass/login/bob/").is_empty(),
        "a batch token got a lease"
    );
    let (st, _) = api.call(
        "POST",
        "auth/token/renew-self",
        Some(&token),
        Some(json!({})),
    );
    assert_eq!(st, 400);
    let (st, v) = api.call(
        "POST",
        "auth/userpass/users/bob",
        Some(&s.token),
        Some(json!({"token_period": "1h"})),
    );
    assert_eq!(st, 400, "{v}");
}

#[test]
fn a_batch_token_ends_with_the_auth_method_that_issued_it() {
    let s = Server::start();
    let api = Api::new(&s);
    let pw = unique("pw");
    userpass(&api, &["bat"], &pw);
    api.root(
        "POST",
        "auth/userpass/users/bat",
        Some(json!({"token_type": "batch", "token_ttl": "1h"})),
    );
    // Moved away: the login path it was issued at no longer routes.
    let before_move = login(&api, "bat", &pw);
    assert!(works(&api, &before_move));
    let (st, v) = api.call(
        "POST",
        "sys/remount",
        Some(&s.token),
        Some(json!({"from": "auth/userpass", "to": "auth/people"})),
    );
    assert_eq!(st, 200, "{v}");
    assert!(
        !works(&api, &before_move),
        "a batch token outlived its remount"
    );
    // Disabled: the same.
    let (st, v) = api.call(
        "POST",
        "auth/people/login/bat",
        None,
        Some(json!({"password": pw})),
    );
    assert_eq!(st, 200, "{v}");
    let before_disable = v["auth"]["client_token"].as_str().unwrap().to_string();
    assert!(works(&api, &before_disable));
    api.root("DELETE", "sys/auth/people", None);
    assert!(
        !works(&api, &before_disable),
        "a batch token outlived its auth method"
    );
}

#[test]
fn a_batch_token_has_no_cubbyhole() {
    let s = Server::start();
    let api = Api::new(&s);
    let (st, v) = api.call(
        "POST",
        "auth/token/create",
        Some(&s.token),
        Some(json!({"type": "batch", "policies": ["default"], "ttl": "10m"})),
    );
    assert_eq!(st, 200, "{v}");
    let token = v["auth"]["client_token"].as_str().unwrap().to_string();
    let (st, v) = api.call(
        "POST",
        "cubbyhole/keep",
        Some(&token),
        Some(json!({"s": "x"})),
    );
    assert_eq!(st, 400, "{v}");
    assert!(
        v["errors"][0]
            .as_str()
            .unwrap()
            .contains("\"service\" type tokens"),
        "{v}"
    );
    let (st, _) = api.call("GET", "cubbyhole/keep", Some(&token), None);
    assert_eq!(st, 400);
}

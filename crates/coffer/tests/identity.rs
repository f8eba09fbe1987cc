//! Identity end to end against a real `coffer server --dev`: a group's
//! policy reaches a userpass login and a JWT login through their entities,
//! membership changes (direct, nested, external from a JWT groups claim)
//! apply at once to tokens already issued, also under 32 concurrent
//! requests; a disabled entity's tokens are refused; templated policies
//! give each user only their own folder, and names holding glob characters
//! or slashes widen nothing. Identity requests are judged and audited like
//! any other.

mod cli_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use cli_support::{unique, Api, Server};
use serde_json::{json, Value};

const ISSUER: &str = "https://ci.example.test";

/// An identity provider with an Ed25519 key generated at run time.
struct Idp(Ed25519KeyPair);

impl Idp {
    fn new() -> Idp {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Idp(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
    }

    fn public_pem(&self) -> String {
        let der = self.0.public_key().as_der().unwrap();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(der.as_ref())
        )
    }

    fn sign(&self, sub: &str, groups: &[&str]) -> String {
        self.sign_with(sub, json!({ "groups": groups }))
    }

    /// A JWT for `sub` with `extra` claims besides the standard ones.
    fn sign_with(&self, sub: &str, extra: Value) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let mut claims = json!({"iss": ISSUER, "aud": "coffer", "sub": sub,
                            "iat": now - 2, "nbf": now - 2, "exp": now + 300});
        merge(&mut claims, extra);
        let header = json!({"alg": "EdDSA", "typ": "JWT"});
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self.0.sign(signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
}

fn accessor(api: &Api<'_>, mount: &str) -> String {
    let auth = api.root("GET", "sys/auth", None);
    auth["data"][format!("{mount}/")]["accessor"]
        .as_str()
        .unwrap()
        .to_string()
}

fn policy(api: &Api<'_>, name: &str, text: &str) {
    api.root(
        "PUT",
        &format!("sys/policies/acl/{name}"),
        Some(json!({ "policy": text })),
    );
}

/// Creates an entity named `name` and returns its id.
fn entity(api: &Api<'_>, name: &str, extra: Value) -> String {
    let mut body = json!({ "name": name });
    crate::merge(&mut body, extra);
    let r = api.root("POST", "identity/entity", Some(body));
    r["data"]["id"].as_str().unwrap().to_string()
}

fn merge(into: &mut Value, extra: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), extra) {
        a.extend(b);
    }
}

fn alias(api: &Api<'_>, name: &str, accessor: &str, entity: &str) {
    api.root(
        "POST",
        "identity/entity-alias",
        Some(json!({"name": name, "mount_accessor": accessor, "canonical_id": entity})),
    );
}

fn userpass_login(api: &Api<'_>, user: &str, password: &str) -> (u16, Value) {
    api.call(
        "POST",
        &format!("auth/userpass/login/{user}"),
        None,
        Some(json!({ "password": password })),
    )
}

fn token_of(answer: &(u16, Value)) -> String {
    assert_eq!(answer.0, 200, "{}", answer.1);
    answer.1["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string()
}

fn status(api: &Api<'_>, method: &str, path: &str, token: &str) -> u16 {
    api.call(method, path, Some(token), None).0
}

struct Setup<'a> {
    api: Api<'a>,
    idp: Idp,
    userpass: String,
    jwt: String,
    password: String,
}

/// userpass with user alice, jwt with role `ci` (groups claim `groups`),
/// policies `billing-read` and `ext-read`, secrets under billing/ and payroll/.
fn setup(s: &Server) -> Setup<'_> {
    let api = Api::new(s);
    let idp = Idp::new();
    let password = unique("pw");
    api.root(
        "POST",
        "sys/auth/userpass",
        Some(json!({"type": "userpass"})),
    );
    api.root(
        "POST",
        "auth/userpass/users/alice",
        Some(json!({ "password": password })),
    );
    api.root("POST", "sys/auth/jwt", Some(json!({"type": "jwt"})));
    api.root(
        "POST",
        "auth/jwt/config",
        Some(json!({"jwt_validation_pubkeys": [idp.public_pem()], "bound_issuer": ISSUER})),
    );
    api.root(
        "POST",
        "auth/jwt/role/ci",
        Some(
            json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": ["coffer"],
                    "groups_claim": "groups", "token_ttl": "10m"}),
        ),
    );
    policy(
        &api,
        "billing-read",
        r#"path "secret/data/billing/*" { capabilities = ["read"] }"#,
    );
    policy(
        &api,
        "ext-read",
        r#"path "secret/data/ext/*" { capabilities = ["read"] }"#,
    );
    for p in ["billing/db", "payroll/db", "ext/x"] {
        api.root(
            "POST",
            &format!("secret/data/{p}"),
            Some(json!({"data": {"v": unique("value")}})),
        );
    }
    let userpass = accessor(&api, "userpass");
    let jwt = accessor(&api, "jwt");
    Setup {
        api,
        idp,
        userpass,
        jwt,
        password,
    }
}

impl Setup<'_> {
    fn jwt_login(&self, sub: &str, groups: &[&str]) -> (u16, Value) {
        self.api.call(
            "POST",
            "auth/jwt/login",
            None,
            Some(json!({"role": "ci", "jwt": self.idp.sign(sub, groups)})),
        )
    }
}

#[test]
fn a_group_policy_reaches_userpass_and_jwt_logins_and_changes_apply_at_once() {
    let s = Server::start();
    let t = setup(&s);
    let api = &t.api;
    let alice = entity(api, "alice", json!({}));
    let ci = entity(api, "ci-billing", json!({}));
    alias(api, "alice", &t.userpass, &alice);
    alias(api, "ci-billing", &t.jwt, &ci);
    let group = api.root(
        "POST",
        "identity/group",
        Some(json!({"name": "billing", "policies": ["billing-read"],
                    "member_entity_ids": [alice, ci]})),
    );
    let billing = group["data"]["id"].as_str().unwrap().to_string();

    // Both logins map to their entities and get the group's policy.
    let a = userpass_login(api, "alice", &t.password);
    assert_eq!(a.1["auth"]["entity_id"], alice.as_str(), "{}", a.1);
    assert_eq!(a.1["auth"]["token_policies"], json!(["default"]));
    assert_eq!(a.1["auth"]["identity_policies"], json!(["billing-read"]));
    assert_eq!(a.1["auth"]["policies"], json!(["billing-read", "default"]));
    let alice_token = token_of(&a);
    let c = t.jwt_login("ci-billing", &[]);
    assert_eq!(c.1["auth"]["entity_id"], ci.as_str(), "{}", c.1);
    let ci_token = token_of(&c);
    for tok in [&alice_token, &ci_token] {
        assert_eq!(status(api, "GET", "secret/data/billing/db", tok), 200);
        assert_eq!(status(api, "GET", "secret/data/payroll/db", tok), 403);
    }
    let (st, me) = api.call("GET", "auth/token/lookup-self", Some(&alice_token), None);
    assert_eq!(st, 200, "{me}");
    assert_eq!(me["data"]["entity_id"], alice.as_str());
    assert_eq!(me["data"]["policies"], json!(["default"]));
    assert_eq!(me["data"]["identity_policies"], json!(["billing-read"]));
    // The default policy's templated rules: a token reads its own entity only.
    assert_eq!(
        status(
            api,
            "GET",
            &format!("identity/entity/id/{alice}"),
            &alice_token
        ),
        200
    );
    assert_eq!(
        status(api, "GET", "identity/entity/name/alice", &alice_token),
        200
    );
    assert_eq!(
        status(
            api,
            "GET",
            &format!("identity/entity/id/{ci}"),
            &alice_token
        ),
        403
    );
    // A second login finds the same entity; no new one appears.
    let again = userpass_login(api, "alice", &t.password);
    assert_eq!(again.1["auth"]["entity_id"], alice.as_str());
    let listed = api.root("LIST", "identity/entity/id", None);
    assert_eq!(
        listed["data"]["keys"].as_array().unwrap().len(),
        2,
        "{listed}"
    );

    // Alice leaves the group: her existing token loses the policy at once.
    api.root(
        "POST",
        &format!("identity/group/id/{billing}"),
        Some(json!({ "member_entity_ids": [ci] })),
    );
    assert_eq!(
        status(api, "GET", "secret/data/billing/db", &alice_token),
        403
    );
    assert_eq!(status(api, "GET", "secret/data/billing/db", &ci_token), 200);
    let (_, me) = api.call("GET", "auth/token/lookup-self", Some(&alice_token), None);
    assert!(me["data"].get("identity_policies").is_none(), "{me}");

    // Nested: alice in billing-eu, billing-eu a member group of billing.
    let eu = api.root(
        "POST",
        "identity/group",
        Some(json!({"name": "billing-eu", "member_entity_ids": [alice]})),
    );
    let eu = eu["data"]["id"].as_str().unwrap().to_string();
    api.root(
        "POST",
        "identity/group/name/billing",
        Some(json!({ "member_group_ids": [eu] })),
    );
    assert_eq!(
        status(api, "GET", "secret/data/billing/db", &alice_token),
        200
    );
    let read = api.root("GET", &format!("identity/entity/id/{alice}"), None);
    assert_eq!(read["data"]["direct_group_ids"], json!([eu]));
    assert_eq!(read["data"]["inherited_group_ids"], json!([billing]));
    // A cycle is refused.
    let (st, body) = api.call(
        "POST",
        &format!("identity/group/id/{eu}"),
        Some(&s.token),
        Some(json!({ "member_group_ids": [billing] })),
    );
    assert_eq!(st, 400, "{body}");
    // Changing the group's policies applies at once too.
    api.root(
        "POST",
        "identity/group/name/billing",
        Some(json!({ "policies": [] })),
    );
    assert_eq!(
        status(api, "GET", "secret/data/billing/db", &alice_token),
        403
    );

    // External group from the JWT groups claim.
    let ext = api.root(
        "POST",
        "identity/group",
        Some(json!({"name": "ci-ops", "type": "external", "policies": ["ext-read"]})),
    );
    let ext = ext["data"]["id"].as_str().unwrap().to_string();
    api.root(
        "POST",
        "identity/group-alias",
        Some(json!({"name": "ops", "mount_accessor": t.jwt, "canonical_id": ext})),
    );
    let with_ops = token_of(&t.jwt_login("ci-billing", &["ops", "dev"]));
    assert_eq!(status(api, "GET", "secret/data/ext/x", &with_ops), 200);
    let g = api.root("GET", &format!("identity/group/id/{ext}"), None);
    assert_eq!(g["data"]["member_entity_ids"], json!([ci]), "{g}");
    // A later login without the group takes the membership away from the
    // entity, so from every token of it.
    let without = token_of(&t.jwt_login("ci-billing", &["dev"]));
    assert_eq!(status(api, "GET", "secret/data/ext/x", &without), 403);
    assert_eq!(status(api, "GET", "secret/data/ext/x", &with_ops), 403);
    // Members of an external group cannot be set by hand.
    let (st, _) = api.call(
        "POST",
        &format!("identity/group/id/{ext}"),
        Some(&s.token),
        Some(json!({ "member_entity_ids": [alice] })),
    );
    assert_eq!(st, 400);

    // A disabled entity's tokens are refused, and it cannot log in.
    api.root(
        "POST",
        &format!("identity/entity/id/{alice}"),
        Some(json!({ "disabled": true })),
    );
    assert_eq!(
        status(api, "GET", "auth/token/lookup-self", &alice_token),
        403
    );
    assert_eq!(userpass_login(api, "alice", &t.password).0, 403);
    api.root(
        "POST",
        &format!("identity/entity/id/{alice}"),
        Some(json!({ "disabled": false })),
    );
    assert_eq!(
        status(api, "GET", "auth/token/lookup-self", &alice_token),
        200
    );

    // Deleting the entity leaves the token its own policies only.
    api.root("DELETE", "identity/entity/name/alice", None);
    assert_eq!(
        status(api, "GET", "auth/token/lookup-self", &alice_token),
        200
    );
    let g = api.root("GET", &format!("identity/group/id/{eu}"), None);
    assert_eq!(g["data"]["member_entity_ids"], Value::Null, "{g}");
}

/// While 32 threads keep reading with alice's token, alice leaves the
/// group: every request sent after the change was acknowledged is refused.
#[test]
fn a_membership_change_holds_under_32_concurrent_requests() {
    let s = Server::start();
    let t = setup(&s);
    let api = &t.api;
    let alice = entity(api, "alice", json!({}));
    alias(api, "alice", &t.userpass, &alice);
    api.root(
        "POST",
        "identity/group",
        Some(json!({"name": "billing", "policies": ["billing-read"],
                    "member_entity_ids": [alice]})),
    );
    let token = token_of(&userpass_login(api, "alice", &t.password));
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<(Instant, u16)>>> = Arc::default();
    let threads: Vec<_> = (0..32)
        .map(|_| {
            let (stop, seen, token, addr) =
                (stop.clone(), seen.clone(), token.clone(), s.addr.clone());
            std::thread::spawn(move || {
                let c = reqwest::blocking::Client::new();
                while !stop.load(Ordering::Relaxed) {
                    let at = Instant::now();
                    let st = c
                        .get(format!("{addr}/v1/secret/data/billing/db"))
                        .header("X-Vault-Token", &token)
                        .send()
                        .unwrap()
                        .status()
                        .as_u16();
                    seen.lock().unwrap().push((at, st));
                }
            })
        })
        .collect();
    // Wait until the readers are being granted (slow machines included).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.lock().unwrap().iter().any(|(_, st)| *st == 200) {
        assert!(Instant::now() < deadline, "readers never got an answer");
        std::thread::sleep(Duration::from_millis(20));
    }
    api.root(
        "POST",
        "identity/group/name/billing",
        Some(json!({ "member_entity_ids": [] })),
    );
    let acked = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for th in threads {
        th.join().unwrap();
    }
    let seen = seen.lock().unwrap();
    let before = seen
        .iter()
        .filter(|(at, st)| *at < acked && *st == 200)
        .count();
    let after: Vec<u16> = seen
        .iter()
        .filter(|(at, _)| *at > acked)
        .map(|(_, st)| *st)
        .collect();
    let early: Vec<u16> = seen
        .iter()
        .filter(|(at, _)| *at < acked)
        .map(|(_, st)| *st)
        .take(5)
        .collect();
    assert!(
        before > 0,
        "no request was granted before the change: {early:?}"
    );
    assert!(
        after.len() > 32,
        "too few requests after the change: {}",
        after.len()
    );
    assert!(
        after.iter().all(|st| *st == 403),
        "granted after the change: {:?}",
        after.iter().filter(|st| **st != 403).count()
    );
}

#[test]
fn a_templated_policy_gives_each_user_only_their_own_folder() {
    let s = Server::start();
    let t = setup(&s);
    let api = &t.api;
    policy(
        api,
        "own-folder",
        r#"path "secret/data/users/{{identity.entity.name}}/*" { capabilities = ["create", "read", "update"] }
path "secret/data/teams/{{identity.entity.metadata.team}}/*" { capabilities = ["read"] }
path "secret/data/by-login/{{identity.entity.aliases.UPACC.name}}" { capabilities = ["read"] }
path "secret/data/groups/{{identity.groups.names.billing.id}}" { capabilities = ["read"] }"#
            .replace("UPACC", &t.userpass)
            .as_str(),
    );
    let mut tokens = Vec::new();
    for user in ["alice", "bob"] {
        api.root(
            "POST",
            &format!("auth/userpass/users/{user}"),
            Some(json!({"password": t.password, "token_policies": ["own-folder"]})),
        );
        let id = entity(
            api,
            user,
            json!({"metadata": {"team": format!("team-{user}")}}),
        );
        alias(api, user, &t.userpass, &id);
        tokens.push(token_of(&userpass_login(api, user, &t.password)));
    }
    let (alice, bob) = (&tokens[0], &tokens[1]);
    let write = |tok: &str, path: &str| {
        api.call(
            "POST",
            &format!("secret/data/{path}"),
            Some(tok),
            Some(json!({"data": {"v": "x"}})),
        )
        .0
    };
    assert_eq!(write(alice, "users/alice/notes"), 200);
    assert_eq!(write(bob, "users/bob/notes"), 200);
    assert_eq!(
        status(api, "GET", "secret/data/users/alice/notes", alice),
        200
    );
    assert_eq!(
        status(api, "GET", "secret/data/users/alice/notes", bob),
        403
    );
    assert_eq!(write(bob, "users/alice/notes"), 403);
    assert_eq!(
        status(api, "GET", "secret/data/users/bob/notes", alice),
        403
    );
    api.root(
        "POST",
        "secret/data/teams/team-alice/doc",
        Some(json!({"data": {"v": "t"}})),
    );
    assert_eq!(
        status(api, "GET", "secret/data/teams/team-alice/doc", alice),
        200
    );
    assert_eq!(
        status(api, "GET", "secret/data/teams/team-alice/doc", bob),
        403
    );
    api.root(
        "POST",
        "secret/data/by-login/alice",
        Some(json!({"data": {"v": "l"}})),
    );
    assert_eq!(status(api, "GET", "secret/data/by-login/alice", alice), 200);
    assert_eq!(status(api, "GET", "secret/data/by-login/alice", bob), 403);
    // Group templates resolve only for members.
    let g = api.root("POST", "identity/group", Some(json!({"name": "billing"})));
    let gid = g["data"]["id"].as_str().unwrap().to_string();
    api.root(
        "POST",
        &format!("secret/data/groups/{gid}"),
        Some(json!({"data": {"v": "g"}})),
    );
    assert_eq!(
        status(api, "GET", &format!("secret/data/groups/{gid}"), alice),
        403
    );
    let alice_id = api.root("GET", "identity/entity/name/alice", None)["data"]["id"].clone();
    api.root(
        "POST",
        &format!("identity/group/id/{gid}"),
        Some(json!({ "member_entity_ids": [alice_id] })),
    );
    assert_eq!(
        status(api, "GET", &format!("secret/data/groups/{gid}"), alice),
        200
    );

    // A token without an entity: the templated rules do not apply.
    let plain = api.root(
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["own-folder"]})),
    );
    let plain = plain["auth"]["client_token"].as_str().unwrap().to_string();
    assert_eq!(
        status(api, "GET", "secret/data/users/alice/notes", &plain),
        403
    );
    assert_eq!(status(api, "GET", "auth/token/lookup-self", &plain), 200);

    // Renaming an entity moves its folder at once.
    api.root(
        "POST",
        "identity/entity/name/bob",
        Some(json!({"name": "robert"})),
    );
    assert_eq!(status(api, "GET", "secret/data/users/bob/notes", bob), 200);
    let bob_id = api.root("GET", "identity/entity/name/bob", None)["data"]["id"].clone();
    api.root(
        "POST",
        &format!("identity/entity/id/{}", bob_id.as_str().unwrap()),
        Some(json!({"name": "robert"})),
    );
    assert_eq!(status(api, "GET", "secret/data/users/bob/notes", bob), 403);
    assert_eq!(write(bob, "users/robert/notes"), 200);

    // The attack: a user whose entity name or metadata would widen the
    // path. OpenBao refuses to build such an ACL at all, and so does
    // Coffer: the token is refused everywhere, its own folder included.
    // (The policy's rules are checked before anything is granted.)
    api.root(
        "POST",
        "auth/userpass/users/mallory",
        Some(json!({"password": t.password, "token_policies": ["own-folder"]})),
    );
    let mallory = entity(api, "mallory", json!({}));
    alias(api, "mallory", &t.userpass, &mallory);
    let mtoken = token_of(&userpass_login(api, "mallory", &t.password));
    assert_eq!(write(&mtoken, "users/mallory/x"), 200);
    for (field, value) in [
        ("name", "*"),
        ("name", "a*"),
        ("name", "+"),
        ("name", "alice/../bob"),
        ("name", "alice/notes"),
        ("metadata", "team=*"),
        ("metadata", "team=team-alice/+"),
    ] {
        let body = if field == "name" {
            json!({ "name": value })
        } else {
            json!({ "metadata": [value] })
        };
        api.root("POST", &format!("identity/entity/id/{mallory}"), Some(body));
        for path in [
            "secret/data/users/alice/notes",
            "secret/data/users/bob/notes",
            "secret/data/teams/team-alice/doc",
            "auth/token/lookup-self",
        ] {
            // OpenBao's answer when a token's ACL cannot be built: 400 Forbidden.
            let (st, body) = api.call("GET", path, Some(&mtoken), None);
            assert_eq!(st, 400, "{field}={value}: {path}");
            assert_eq!(body["errors"], json!(["Forbidden"]));
        }
        // Restore a harmless name and metadata between attempts.
        api.root(
            "POST",
            &format!("identity/entity/id/{mallory}"),
            Some(json!({"name": "mallory", "metadata": {}})),
        );
        assert_eq!(status(api, "GET", "auth/token/lookup-self", &mtoken), 200);
    }
    // `..` and braces are plain characters: they widen nothing (request
    // paths never hold a `..` segment) and are not expanded again.
    api.root(
        "POST",
        &format!("identity/entity/id/{mallory}"),
        Some(json!({"name": "{{identity.entity.id}}"})),
    );
    assert_eq!(
        status(api, "GET", "secret/data/users/alice/notes", &mtoken),
        403
    );
    assert_eq!(
        status(
            api,
            "GET",
            &format!("secret/data/users/{mallory}/x"),
            &mtoken
        ),
        403
    );

    // A policy may allow slashes, as OpenBao's flag does.
    api.root(
        "PUT",
        "sys/policies/acl/own-folder-slashes",
        Some(json!({"policy": r#"path "secret/data/deep/{{identity.entity.name}}" { capabilities = ["read"] }"#,
                    "allow_slashes_in_identity_templates": true})),
    );
    let read = api.root("GET", "sys/policies/acl/own-folder-slashes", None);
    assert_eq!(read["data"]["allow_slashes_in_identity_templates"], true);
    assert_eq!(read["data"]["allow_wildcards_in_identity_templates"], false);
}

/// Identity requests take the one request path: a token without a rule for
/// them is refused, and both the refusal and the write are audited.
#[test]
fn identity_requests_are_judged_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(&["--dev-audit-dir", dir.path().to_str().unwrap()]);
    let api = Api::new(&s);
    let log = dir.path().join("audit.log");
    api.root(
        "POST",
        "sys/audit/file",
        Some(json!({"type": "file", "options": {"file_path": log.display().to_string()}})),
    );
    let none = api.root(
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["default"]})),
    );
    let none = none["auth"]["client_token"].as_str().unwrap().to_string();
    let (st, _) = api.call(
        "POST",
        "identity/entity",
        Some(&none),
        Some(json!({"name": "sneaky"})),
    );
    assert_eq!(st, 403);
    assert_eq!(status(&api, "LIST", "identity/entity/id", &none), 403);
    policy(
        &api,
        "id-admin",
        r#"path "identity/entity" { capabilities = ["update"] }"#,
    );
    let admin = api.root(
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["id-admin"]})),
    );
    let admin = admin["auth"]["client_token"].as_str().unwrap().to_string();
    let (st, body) = api.call(
        "POST",
        "identity/entity",
        Some(&admin),
        Some(json!({"name": "allowed"})),
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        status(&api, "GET", "identity/entity/name/allowed", &admin),
        403
    );
    // The identity mount is built in: listed, and not removable or mountable.
    let mounts = api.root("GET", "sys/mounts", None);
    assert_eq!(mounts["data"]["identity/"]["type"], "identity", "{mounts}");
    assert_eq!(
        api.call("DELETE", "sys/mounts/identity", Some(&s.token), None)
            .0,
        400
    );
    assert_eq!(
        api.call(
            "POST",
            "sys/mounts/other-identity",
            Some(&s.token),
            Some(json!({"type": "identity"}))
        )
        .0,
        400
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let entries: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|e: &Value| e["request"]["path"] == "identity/entity")
        .collect();
    let refused = entries
        .iter()
        .filter(|e| {
            e["type"] == "response"
                && e["error"]
                    .as_str()
                    .is_some_and(|m| m.contains("permission denied"))
        })
        .count();
    let granted = entries
        .iter()
        .filter(|e| e["type"] == "response" && e["response"]["data"]["id"].is_string())
        .count();
    assert!(refused >= 1 && granted >= 1, "{entries:?}");
}

/// The attacks an attacker's review found, each refused: a write to
/// `group/name/<name>` (or `entity/name/<name>`) naming another object's id
/// in its body changes that other object; `root` given as an identity
/// policy; a JWT login keeping the alias metadata of an earlier login.
#[test]
fn identity_writes_reach_only_the_object_judged_and_never_grant_root() {
    let s = Server::start();
    let t = setup(&s);
    let api = &t.api;
    policy(
        api,
        "superp",
        r#"path "secret/*" { capabilities = ["create", "read", "update"] }"#,
    );
    policy(
        api,
        "team-lead",
        r#"path "identity/group/name/team-*" { capabilities = ["create", "read", "update"] }
path "identity/entity/name/team-*" { capabilities = ["create", "read", "update"] }"#,
    );
    let admins = api.root(
        "POST",
        "identity/group",
        Some(json!({"name": "ops-admins", "policies": ["superp"]})),
    )["data"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let victim = entity(api, "victim", json!({"policies": ["billing-read"]}));
    api.root(
        "POST",
        "auth/userpass/users/alice",
        Some(json!({"password": t.password, "token_policies": ["team-lead"]})),
    );
    let login = userpass_login(api, "alice", &t.password);
    let alice = token_of(&login);
    let alice_entity = login.1["auth"]["entity_id"].as_str().unwrap().to_string();
    assert_eq!(status(api, "GET", "secret/data/payroll/db", &alice), 403);

    // The body's id does not redirect a group/name write to ops-admins.
    let (st, v) = api.call(
        "POST",
        "identity/group/name/team-alice",
        Some(&alice),
        Some(json!({"id": admins, "member_entity_ids": [alice_entity]})),
    );
    assert!(st < 300, "{st} {v}");
    let g = api.root("GET", &format!("identity/group/id/{admins}"), None);
    assert_eq!(g["data"]["name"], json!("ops-admins"), "{g}");
    assert!(
        !g["data"]["member_entity_ids"]
            .to_string()
            .contains(&alice_entity),
        "alice joined ops-admins: {g}"
    );
    assert_eq!(status(api, "GET", "secret/data/payroll/db", &alice), 403);
    // Nor an entity/name write to another entity.
    let (st, v) = api.call(
        "POST",
        "identity/entity/name/team-x",
        Some(&alice),
        Some(json!({"id": victim, "disabled": true})),
    );
    assert!(st < 300, "{st} {v}");
    let e = api.root("GET", &format!("identity/entity/id/{victim}"), None);
    assert_eq!(e["data"]["name"], json!("victim"), "{e}");
    assert_eq!(e["data"]["disabled"], json!(false), "{e}");

    // root is never an identity policy, in any spelling.
    for spelling in ["root", "ROOT", " Root "] {
        let (st, v) = api.call(
            "POST",
            "identity/group",
            Some(&s.token),
            Some(json!({"name": unique("rootg"), "policies": [spelling], "member_entity_ids": [alice_entity]})),
        );
        assert_eq!(st, 400, "group policies {spelling:?}: {v}");
        let (st, v) = api.call(
            "POST",
            &format!("identity/entity/id/{alice_entity}"),
            Some(&s.token),
            Some(json!({ "policies": [spelling] })),
        );
        assert_eq!(st, 400, "entity policies {spelling:?}: {v}");
    }
    let caps = api.call(
        "POST",
        "sys/capabilities-self",
        Some(&alice),
        Some(json!({"paths": ["sys/seal"]})),
    );
    assert_eq!(caps.1["sys/seal"], json!(["deny"]), "{}", caps.1);

    // A JWT login refreshes the alias metadata its templates read.
    api.root(
        "POST",
        "auth/jwt/role/teams",
        Some(
            json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": ["coffer"],
                    "claim_mappings": {"team": "team"}, "token_policies": ["team-folder"],
                    "token_ttl": "10m"}),
        ),
    );
    policy(
        api,
        "team-folder",
        &format!(
            r#"path "secret/data/team/{{{{identity.entity.aliases.{}.metadata.team}}}}/*" {{ capabilities = ["read"] }}"#,
            t.jwt
        ),
    );
    for team in ["billing", "ops"] {
        api.root(
            "POST",
            &format!("secret/data/team/{team}/x"),
            Some(json!({"data": {"v": unique("v")}})),
        );
    }
    let login_as = |team: &str| {
        token_of(&api.call(
            "POST",
            "auth/jwt/login",
            None,
            Some(json!({"role": "teams", "jwt": t.idp.sign_with("mover", json!({"team": team}))})),
        ))
    };
    let first = login_as("billing");
    assert_eq!(
        status(api, "GET", "secret/data/team/billing/x", &first),
        200
    );
    let second = login_as("ops");
    assert_eq!(status(api, "GET", "secret/data/team/ops/x", &second), 200);
    assert_eq!(
        status(api, "GET", "secret/data/team/billing/x", &second),
        403
    );
    assert_eq!(
        status(api, "GET", "secret/data/team/billing/x", &first),
        403,
        "the earlier token keeps the team the provider no longer states"
    );
}

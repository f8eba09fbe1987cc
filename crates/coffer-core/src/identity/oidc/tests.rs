use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::*;
use crate::auth::jwt::keys::{algorithm, KeySet};
use crate::barrier::Barrier;
use crate::identity::store::Change;

const ADDR: &str = "https://coffer.example:8200";
const ISS: &str = "https://coffer.example:8200/v1/identity/oidc";

struct Fixture {
    view: View,
    identity: Arc<IdentityStore>,
    oidc: Oidc,
    entity: String,
}

async fn fixture() -> Fixture {
    let barrier = Arc::new(Barrier::new(Arc::new(coffer_storage::MemoryBackend::new())));
    barrier.unseal(coffer_crypto::Keyring::new(0));
    let view = View::new(barrier.clone(), "logical/identity/");
    let identity = Arc::new(IdentityStore::new(View::new(
        barrier.clone(),
        "sys/identity/",
    )));
    let entity = identity
        .login("auth_userpass_1", "alice", &BTreeMap::new(), None)
        .await
        .unwrap();
    {
        let _w = identity.lock().await.unwrap();
        let mut e = identity.read(|s| s.entities[&entity].clone());
        e.metadata.insert("team".into(), "billing".into());
        identity.commit(vec![Change::PutEntity(e)]).await.unwrap();
    }
    Fixture {
        view,
        identity,
        oidc: Oidc::default(),
        entity,
    }
}

fn now() -> i64 {
    crate::util::now().timestamp()
}

impl Fixture {
    async fn call_as(
        &self,
        oidc: &Oidc,
        op: Operation,
        path: &str,
        body: Value,
        at: i64,
        entity: Option<&str>,
    ) -> Result<Response> {
        let req = Request::new(op, format!("identity/{path}")).with_data(body);
        let env = Env {
            view: &self.view,
            identity: &self.identity,
            api_addr: ADDR,
            entity_id: entity,
            now: at,
        };
        oidc.handle(&env, &req, path).await
    }

    async fn call(&self, op: Operation, path: &str, body: Value, at: i64) -> Result<Response> {
        self.call_as(&self.oidc, op, path, body, at, None).await
    }

    async fn write(&self, path: &str, body: Value, at: i64) -> Result<Response> {
        self.call(Operation::Update, path, body, at).await
    }

    /// A token of `role` for the fixture's entity, minted at `at`.
    async fn mint(&self, role: &str, at: i64) -> Result<String> {
        let resp = self
            .call_as(
                &self.oidc,
                Operation::Read,
                &format!("oidc/token/{role}"),
                json!({}),
                at,
                Some(&self.entity),
            )
            .await?;
        Ok(resp.data.unwrap()["token"].as_str().unwrap().to_string())
    }

    async fn jwks(&self, at: i64) -> Value {
        let resp = self
            .call(Operation::Read, "oidc/.well-known/keys", json!({}), at)
            .await
            .unwrap();
        resp.raw.unwrap()
    }

    async fn introspect(&self, token: &str, client_id: Option<&str>, at: i64) -> Value {
        let mut body = json!({ "token": token });
        if let Some(c) = client_id {
            body["client_id"] = json!(c);
        }
        let resp = self.write("oidc/introspect", body, at).await.unwrap();
        resp.raw.unwrap()
    }

    async fn client_id(&self, role: &str) -> String {
        let resp = self
            .call(Operation::Read, &format!("oidc/role/{role}"), json!({}), 0)
            .await
            .unwrap();
        resp.data.unwrap()["client_id"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

fn kid(token: &str) -> String {
    crate::auth::jwt::keys::token_kid(token).unwrap()
}

fn bad(r: Result<Response>) -> String {
    match r {
        Err(Error::BadRequest(m)) => m,
        Err(e) => panic!("expected a 400, got {e:?}"),
        Ok(_) => panic!("expected a 400, got an answer"),
    }
}

/// A token minted with each algorithm verifies with the public key the
/// key set publishes (checked by the JWT auth method's verifier, another
/// implementation), carries Vault's claims and the rendered template, and
/// names the current key in its header.
#[tokio::test]
async fn minted_tokens_verify_with_the_published_keys() {
    let f = fixture().await;
    let t = now();
    for (i, alg) in [
        "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "EdDSA",
    ]
    .into_iter()
    .enumerate()
    {
        let key = format!("k{i}");
        f.write(
            &format!("oidc/key/{key}"),
            json!({"algorithm": alg, "allowed_client_ids": "*"}),
            t,
        )
        .await
        .unwrap();
        let template = r#"{"team": {{identity.entity.metadata.team}}, "who": {"name": {{identity.entity.name}}}, "groups": {{identity.entity.groups.names}}}"#;
        f.write(
            &format!("oidc/role/r{i}"),
            json!({"key": key, "ttl": "1h", "template": template}),
            t,
        )
        .await
        .unwrap();
        let token = f.mint(&format!("r{i}"), t).await.unwrap();
        let jwks = f.jwks(t).await;
        let (claims, used) = if alg == "ES512" {
            // The JWT auth method verifies no ES512: check it here.
            let jwk: Jwk = serde_json::from_value(
                jwks["keys"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|k| k["kid"] == json!(kid(&token)))
                    .unwrap()
                    .clone(),
            )
            .unwrap();
            let parts: Vec<&str> = token.split('.').collect();
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let sig = b64.decode(parts[2]).unwrap();
            let signed = format!("{}.{}", parts[0], parts[1]);
            assert!(signing::verify(&jwk, alg, signed.as_bytes(), &sig));
            let claims: Map<String, Value> =
                serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
            (claims, alg.to_string())
        } else {
            // Only the token's key: the set also holds ES512 keys by now.
            let own: Vec<&Value> = jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|k| k["kid"] == json!(kid(&token)))
                .collect();
            let set = KeySet::from_jwks(&json!({ "keys": own })).unwrap();
            let v = set.verify(&token, &[algorithm(alg).unwrap()]).unwrap();
            (v.claims, format!("{:?}", v.alg))
        };
        assert_eq!(used, alg);
        let client_id = f.client_id(&format!("r{i}")).await;
        assert_eq!(claims["iss"], json!(ISS));
        assert_eq!(claims["sub"], json!(f.entity));
        assert_eq!(claims["aud"], json!(client_id));
        assert_eq!(claims["namespace"], json!("root"));
        assert_eq!(claims["iat"], json!(t));
        assert_eq!(claims["exp"], json!(t + 3600));
        assert_eq!(claims["team"], json!("billing"));
        assert!(claims["who"]["name"]
            .as_str()
            .unwrap()
            .starts_with("entity_"));
        assert_eq!(claims["groups"], Value::Null);
        // The header names the key's current signing key.
        let stored: NamedKey = f
            .view
            .get_json(&format!("oidc/key/{key}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kid(&token), stored.current.as_ref().unwrap().kid);
        assert_eq!(
            f.introspect(&token, Some(&client_id), t).await,
            json!({"active": true})
        );
    }
}

/// Introspection refuses what is expired (past go-jose's minute of
/// leeway), tampered with, for another client, of another issuer, or of an
/// entity that is disabled or gone.
#[tokio::test]
async fn introspection_refuses_expired_forged_and_foreign_tokens() {
    let f = fixture().await;
    let t = now();
    f.write(
        "oidc/key/k",
        json!({"algorithm": "ES256", "allowed_client_ids": ["*"]}),
        t,
    )
    .await
    .unwrap();
    f.write("oidc/role/r", json!({"key": "k", "ttl": 60}), t)
        .await
        .unwrap();
    let token = f.mint("r", t).await.unwrap();
    let id = f.client_id("r").await;
    let inactive = |v: Value| v["error"].as_str().unwrap_or("active").to_string();
    assert_eq!(
        f.introspect(&token, Some(&id), t + 119).await["active"],
        json!(true)
    );
    assert_eq!(
        inactive(f.introspect(&token, None, t + 121).await),
        "error validating claims: validation failed, token is expired (exp)"
    );
    assert_eq!(
        inactive(f.introspect(&token, Some("someone-else"), t).await),
        "error validating claims: validation failed, invalid audience claim (aud)"
    );
    let parts: Vec<&str> = token.split('.').collect();
    let flipped = if parts[2].starts_with('A') { "B" } else { "A" };
    let forged = format!("{}.{}.{flipped}{}", parts[0], parts[1], &parts[2][1..]);
    assert_eq!(
        inactive(f.introspect(&forged, None, t).await),
        "unable to validate the token signature"
    );
    // A payload swapped for another's keeps no signature.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    claims["exp"] = json!(t + 999_999);
    let swapped = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(claims.to_string()),
        parts[2]
    );
    assert_eq!(
        inactive(f.introspect(&swapped, None, t).await),
        "unable to validate the token signature"
    );
    for junk in ["", "abc", "a.b", "eyJ.eyJ.x"] {
        let e = inactive(f.introspect(junk, None, t).await);
        assert!(e.starts_with("error parsing token: "), "{junk}: {e}");
    }
    // The issuer changed: tokens of the old one are not this server's now.
    f.write("oidc/config", json!({"issuer": "https://other.example"}), t)
        .await
        .unwrap();
    assert_eq!(
        inactive(f.introspect(&token, None, t).await),
        "error validating claims: validation failed, invalid issuer claim (iss)"
    );
    f.write("oidc/config", json!({"issuer": ""}), t)
        .await
        .unwrap();
    // Disabled, then deleted entity.
    {
        let _w = f.identity.lock().await.unwrap();
        let mut e = f.identity.read(|s| s.entities[&f.entity].clone());
        e.disabled = true;
        f.identity.commit(vec![Change::PutEntity(e)]).await.unwrap();
    }
    assert_eq!(
        inactive(f.introspect(&token, None, t).await),
        "entity is disabled"
    );
    {
        let _w = f.identity.lock().await.unwrap();
        f.identity
            .commit(vec![Change::DeleteEntity(f.entity.clone())])
            .await
            .unwrap();
    }
    assert_eq!(
        inactive(f.introspect(&token, None, t).await),
        "entity was not found"
    );
}

/// A role may mint only while its key allows its client id; a token with
/// no entity cannot mint; an unknown role is a 400.
#[tokio::test]
async fn client_ids_and_entities_gate_minting() {
    let f = fixture().await;
    let t = now();
    f.write("oidc/key/k", json!({"algorithm": "EdDSA"}), t)
        .await
        .unwrap();
    f.write("oidc/role/r", json!({"key": "k", "client_id": "app-1"}), t)
        .await
        .unwrap();
    let refused = bad(f
        .call_as(
            &f.oidc,
            Operation::Read,
            "oidc/token/r",
            json!({}),
            t,
            Some(&f.entity),
        )
        .await);
    assert_eq!(
        refused,
        "the key \"k\" does not list the client ID of the role \"r\" as an allowed client ID"
    );
    f.write(
        "oidc/key/k",
        json!({"allowed_client_ids": ["app-2", "app-1"]}),
        t,
    )
    .await
    .unwrap();
    assert!(f.mint("r", t).await.is_ok());
    // The client id stays what it was when a write does not name one.
    f.write("oidc/role/r", json!({"ttl": "2h"}), t)
        .await
        .unwrap();
    assert_eq!(f.client_id("r").await, "app-1");
    let none = bad(f.call(Operation::Read, "oidc/token/r", json!({}), t).await);
    assert_eq!(none, "no entity associated with the request's token");
    let missing = bad(f.mint("nope", t).await.map(|_| Response::empty()));
    assert_eq!(missing, "role \"nope\" not found");
    // A generated client id is stable across writes.
    f.write("oidc/key/k", json!({"allowed_client_ids": "*"}), t)
        .await
        .unwrap();
    f.write("oidc/role/g", json!({"key": "k"}), t)
        .await
        .unwrap();
    let id = f.client_id("g").await;
    assert_eq!(id.len(), 26);
    f.write("oidc/role/g", json!({"ttl": 60}), t).await.unwrap();
    assert_eq!(f.client_id("g").await, id);
}

/// A rotation signs with a new key id; the old public key stays in the
/// key set, and its tokens verify, until its verification_ttl is over.
#[tokio::test]
async fn rotation_keeps_the_old_key_verifiable_for_its_verification_ttl() {
    let f = fixture().await;
    let t = now();
    f.write(
        "oidc/key/k",
        json!({"algorithm": "ES256", "allowed_client_ids": "*", "verification_ttl": "2h"}),
        t,
    )
    .await
    .unwrap();
    f.write("oidc/role/r", json!({"key": "k", "ttl": "1h"}), t)
        .await
        .unwrap();
    let old = f.mint("r", t).await.unwrap();
    let kids = |v: &Value| -> Vec<String> {
        v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect()
    };
    // Current and next are published from the start.
    assert_eq!(kids(&f.jwks(t).await).len(), 2);
    f.write(
        "oidc/key/k/rotate",
        json!({"verification_ttl": "1h"}),
        t + 10,
    )
    .await
    .unwrap();
    let new = f.mint("r", t + 10).await.unwrap();
    assert_ne!(kid(&old), kid(&new));
    let set = f.jwks(t + 10).await;
    assert_eq!(kids(&set).len(), 3);
    assert!(kids(&set).contains(&kid(&old)));
    for token in [&old, &new] {
        assert_eq!(
            f.introspect(token, None, t + 20).await,
            json!({"active": true})
        );
    }
    // An hour after the rotation the old key is gone; its tokens with it.
    let later = t + 10 + 3600;
    assert!(!kids(&f.jwks(later).await).contains(&kid(&old)));
    assert_eq!(
        f.introspect(&old, None, later).await["error"],
        json!("unable to validate the token signature")
    );
    // verification_ttl 0: the replaced key stops verifying at once.
    f.write("oidc/key/k/rotate", json!({"verification_ttl": 0}), t + 20)
        .await
        .unwrap();
    assert!(!kids(&f.jwks(t + 20).await).contains(&kid(&new)));
    assert_eq!(
        bad(f.write("oidc/key/nope/rotate", json!({}), t).await),
        "no named key found at \"nope\""
    );
}

/// The background pass rotates a key once its rotation_period is up, and
/// drops public keys whose verification time is over.
#[tokio::test]
async fn the_background_pass_rotates_due_keys() {
    let f = fixture().await;
    let t = now();
    f.write(
        "oidc/key/k",
        json!({"algorithm": "ES256", "allowed_client_ids": "*", "rotation_period": "1m", "verification_ttl": "2m"}),
        t,
    )
    .await
    .unwrap();
    f.write("oidc/role/r", json!({"key": "k", "ttl": "1m"}), t)
        .await
        .unwrap();
    let first = f.mint("r", t).await.unwrap();
    f.oidc.periodic(&f.view, t + 30).await.unwrap();
    assert_eq!(kid(&f.mint("r", t + 30).await.unwrap()), kid(&first));
    f.oidc.periodic(&f.view, t + 61).await.unwrap();
    let second = f.mint("r", t + 61).await.unwrap();
    assert_ne!(kid(&second), kid(&first));
    let stored: NamedKey = f.view.get_json("oidc/key/k").await.unwrap().unwrap();
    assert_eq!(stored.next_rotation, t + 61 + 60);
    assert_eq!(stored.published.len(), 3);
    // Two minutes on the first key's verification is over: the pass
    // (which waits ten seconds between looks) rotates again and tidies it.
    f.oidc.periodic(&f.view, t + 61 + 121).await.unwrap();
    let stored: NamedKey = f.view.get_json("oidc/key/k").await.unwrap().unwrap();
    assert!(stored.published.iter().all(|p| p.jwk.kid != kid(&first)));
    assert_eq!(
        f.introspect(&first, None, t + 61 + 121).await["error"],
        json!("unable to validate the token signature")
    );
}

/// Vault's validations of keys and roles, and the built-in default key.
#[tokio::test]
async fn keys_and_roles_are_validated_as_vault_validates_them() {
    let f = fixture().await;
    let t = now();
    let list = |r: Response| r.data.unwrap()["keys"].clone();
    assert_eq!(
        list(
            f.call(Operation::List, "oidc/key/", json!({}), t)
                .await
                .unwrap()
        ),
        json!(["default"])
    );
    let default = f
        .call(Operation::Read, "oidc/key/default", json!({}), t)
        .await
        .unwrap();
    assert_eq!(
        default.data.unwrap(),
        json!({"algorithm": "RS256", "allowed_client_ids": ["*"], "rotation_period": 86400, "verification_ttl": 86400})
    );
    for (body, msg) in [
        (
            json!({"rotation_period": "30s"}),
            "rotation_period must be at least one minute",
        ),
        (
            json!({"rotation_period": "1h", "verification_ttl": "11h"}),
            "verification_ttl cannot be longer than 10x rotation_period",
        ),
        (
            json!({"algorithm": "HS256"}),
            "unknown signing algorithm \"HS256\"",
        ),
    ] {
        assert_eq!(bad(f.write("oidc/key/k", body, t).await), msg);
    }
    assert!(matches!(
        f.call(Operation::Read, "oidc/key/k", json!({}), t).await,
        Err(Error::NotFound)
    ));
    f.write("oidc/key/k", json!({"algorithm": "ES384"}), t)
        .await
        .unwrap();
    for (body, msg) in [
        (json!({}), "the key parameter is required".to_string()),
        (json!({"key": "missing"}), "cannot find key \"missing\"".into()),
        (
            json!({"key": "k", "ttl": "48h"}),
            "a role's token ttl cannot be longer than the verification_ttl of the key it references".into(),
        ),
        (
            json!({"key": "k", "template": "{\"iss\": 1}"}),
            "top level key \"iss\" not allowed. Restricted keys: iat, aud, exp, iss, sub, namespace, nonce, auth_time, at_hash, c_hash".into(),
        ),
        (
            json!({"key": "k", "template": "{\"a\": {{identity.groups.names.x.id}} }"}),
            "error parsing template: string contains groups template directives but no groups were provided".into(),
        ),
        (
            json!({"key": "k", "template": "{\"a\": {{identity.entity.bogus}} }"}),
            "error parsing template: no value could be found for one of the template directives".into(),
        ),
    ] {
        assert_eq!(bad(f.write("oidc/role/r", body, t).await), msg);
    }
    assert!(bad(f
        .write(
            "oidc/role/r",
            json!({"key": "k", "template": "not json"}),
            t
        )
        .await)
    .starts_with("error parsing template JSON: "));
    // A base64 template is stored decoded.
    use base64::Engine as _;
    let tpl = r#"{"team": {{identity.entity.metadata.team}}}"#;
    let b64 = base64::engine::general_purpose::STANDARD.encode(tpl);
    f.write("oidc/role/r", json!({"key": "k", "template": b64}), t)
        .await
        .unwrap();
    let role = f
        .call(Operation::Read, "oidc/role/r", json!({}), t)
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(role["template"], json!(tpl));
    assert_eq!(role["ttl"], json!(86400));
    // A key a role uses is not deleted, nor is the default key.
    assert_eq!(
        bad(f.call(Operation::Delete, "oidc/key/k", json!({}), t).await),
        "unable to delete key \"k\" because it is currently referenced by these roles: r"
    );
    assert_eq!(
        bad(f
            .call(Operation::Delete, "oidc/key/default", json!({}), t)
            .await),
        "deletion of key \"default\" not allowed"
    );
    // Nor shortened below a role's ttl.
    assert_eq!(
        bad(f.write("oidc/key/k", json!({"verification_ttl": "1h"}), t).await),
        "unable to update key \"k\" because it is currently referenced by one or more roles with a token ttl greater than 3600 seconds"
    );
    f.call(Operation::Delete, "oidc/role/r", json!({}), t)
        .await
        .unwrap();
    f.call(Operation::Delete, "oidc/key/k", json!({}), t)
        .await
        .unwrap();
    assert!(matches!(
        f.call(Operation::List, "oidc/role/", json!({}), t).await,
        Err(Error::NotFound)
    ));
    // A role on the default key gives it keys, and its tokens verify.
    f.write("oidc/role/d", json!({"key": "default"}), t)
        .await
        .unwrap();
    let token = f.mint("d", t).await.unwrap();
    let set = KeySet::from_jwks(&f.jwks(t).await).unwrap();
    assert!(set.verify(&token, &[algorithm("RS256").unwrap()]).is_ok());
    // Unknown paths and operations.
    assert!(matches!(
        f.call(Operation::Read, "oidc/nothing", json!({}), t).await,
        Err(Error::UnsupportedPath(_))
    ));
    assert!(matches!(
        f.call(Operation::Read, "oidc/introspect", json!({}), t)
            .await,
        Err(Error::UnsupportedOperation)
    ));
    assert!(matches!(
        f.call(Operation::Read, "oidc/key/k/rotate", json!({}), t)
            .await,
        Err(Error::UnsupportedOperation)
    ));
}

/// Nothing private reaches a read, the key set or the discovery document.
#[tokio::test]
async fn no_private_key_is_shown_anywhere() {
    let f = fixture().await;
    let t = now();
    f.write("oidc/key/k", json!({"allowed_client_ids": "*"}), t)
        .await
        .unwrap();
    f.write("oidc/role/r", json!({"key": "k"}), t)
        .await
        .unwrap();
    let stored: Value = f.view.get_json("oidc/key/k").await.unwrap().unwrap();
    let secret = stored["current"]["pkcs8"].as_str().unwrap().to_string();
    assert!(secret.len() > 100);
    let key: NamedKey = serde_json::from_value(stored).unwrap();
    let mut shown = format!("{key:?}");
    for path in [
        "oidc/key/k",
        "oidc/.well-known/keys",
        "oidc/.well-known/openid-configuration",
    ] {
        let r = f.call(Operation::Read, path, json!({}), t).await.unwrap();
        shown.push_str(&format!("{:?} {:?}", r.data, r.raw));
    }
    assert!(!shown.contains(&secret[..40]));
    let disc = f
        .call(
            Operation::Read,
            "oidc/.well-known/openid-configuration",
            json!({}),
            t,
        )
        .await
        .unwrap()
        .raw
        .unwrap();
    assert_eq!(disc["issuer"], json!(ISS));
    assert_eq!(disc["jwks_uri"], json!(format!("{ISS}/.well-known/keys")));
}

/// Two nodes over one store: a key delete and a role naming it, raced,
/// never both win; concurrent rotations lose no key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_on_two_nodes_lose_nothing() {
    let f = Arc::new(fixture().await);
    let t = now();
    f.write("oidc/key/k", json!({"algorithm": "ES256"}), t)
        .await
        .unwrap();
    // Another node: its own lock and schedule over the same storage.
    let b = Arc::new(Oidc::default());
    let (f2, b2) = (f.clone(), b.clone());
    let role = tokio::spawn(async move {
        f2.call_as(
            &b2,
            Operation::Update,
            "oidc/role/r",
            json!({"key": "k"}),
            t,
            None,
        )
        .await
    });
    let delete = f.call(Operation::Delete, "oidc/key/k", json!({}), t).await;
    let role = role.await.unwrap();
    let key_left: Option<Value> = f.view.get_json("oidc/key/k").await.unwrap();
    let role_left: Option<Value> = f.view.get_json("oidc/role/r").await.unwrap();
    // Either the role came first (the delete is refused, the key stays) or
    // the delete did (the role finds no key).
    assert!(role.is_ok() != delete.is_ok(), "{role:?} {delete:?}");
    assert_eq!(key_left.is_some(), role_left.is_some());
    // Eight rotations from two nodes at once: eight new keys, all kept.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (f, node) = (f.clone(), if i % 2 == 0 { None } else { Some(b.clone()) });
        tasks.push(tokio::spawn(async move {
            let own = Oidc::default();
            let node = node.as_deref().unwrap_or(&own);
            f.call_as(
                node,
                Operation::Update,
                "oidc/key/k/rotate",
                json!({}),
                t,
                None,
            )
            .await
            .map(|_| ())
        }));
    }
    let key_present = key_left.is_some();
    for task in tasks {
        let r = task.await.unwrap();
        assert_eq!(r.is_ok(), key_present, "{r:?}");
    }
    if key_present {
        let stored: NamedKey = f.view.get_json("oidc/key/k").await.unwrap().unwrap();
        let kids: BTreeSet<&str> = stored
            .published
            .iter()
            .map(|p| p.jwk.kid.as_str())
            .collect();
        assert_eq!(kids.len(), 2 + 8);
        assert_eq!(
            stored
                .published
                .iter()
                .filter(|p| p.expire_at.is_none())
                .count(),
            2
        );
    }
}

/// Through the whole request path: minting needs `read` on the role's
/// token path (a token allowed one role cannot mint from another), a root
/// token without an entity gets Vault's 400, the discovery document and
/// the key set answer without a token, introspection needs one.
#[tokio::test]
async fn the_pipeline_judges_minting_by_the_role_path() {
    use crate::core::Core;
    let core = Core::new(
        Arc::new(coffer_storage::MemoryBackend::new()),
        Default::default(),
    );
    let (_key, root) = core.dev_setup(None).await.unwrap().unwrap();
    let root = root.to_string();
    let call = |op: Operation, path: &str, token: Option<&str>, body: Value| {
        let mut req = Request::new(op, path).with_data(body);
        if let Some(t) = token {
            req = req.with_token(t);
        }
        let core = core.clone();
        async move { core.handle(req).await }
    };
    for (path, body) in [
        ("sys/auth/up", json!({"type": "userpass"})),
        (
            "identity/oidc/key/k",
            json!({"allowed_client_ids": "*", "algorithm": "ES256"}),
        ),
        ("identity/oidc/role/allowed", json!({"key": "k"})),
        ("identity/oidc/role/other", json!({"key": "k"})),
        (
            "sys/policies/acl/mint",
            json!({"policy": "path \"identity/oidc/token/allowed\" { capabilities = [\"read\"] }"}),
        ),
    ] {
        call(Operation::Update, path, Some(&root), body)
            .await
            .unwrap();
    }
    let password = coffer_crypto::random::uuid();
    call(
        Operation::Update,
        "auth/up/users/alice",
        Some(&root),
        json!({"password": password, "policies": ["mint"]}),
    )
    .await
    .unwrap();
    let login = call(
        Operation::Update,
        "auth/up/login/alice",
        None,
        json!({"password": password}),
    )
    .await
    .unwrap();
    let user = login.auth.unwrap()["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let minted = call(
        Operation::Read,
        "identity/oidc/token/allowed",
        Some(&user),
        json!({}),
    )
    .await
    .unwrap();
    let token = minted.data.unwrap()["token"].as_str().unwrap().to_string();
    assert!(matches!(
        call(
            Operation::Read,
            "identity/oidc/token/other",
            Some(&user),
            json!({})
        )
        .await,
        Err(Error::PermissionDenied)
    ));
    match call(
        Operation::Read,
        "identity/oidc/token/allowed",
        Some(&root),
        json!({}),
    )
    .await
    {
        Err(Error::BadRequest(m)) => assert_eq!(m, "no entity associated with the request's token"),
        other => panic!("root without an entity: {:?}", other.map(|r| r.data)),
    }
    let keys = call(
        Operation::Read,
        "identity/oidc/.well-known/keys",
        None,
        json!({}),
    )
    .await
    .unwrap()
    .raw
    .unwrap();
    let set = KeySet::from_jwks(&keys).unwrap();
    let v = set.verify(&token, &[algorithm("ES256").unwrap()]).unwrap();
    let addr_iss = v.claims["iss"].as_str().unwrap().to_string();
    assert!(addr_iss.ends_with("/v1/identity/oidc"), "{addr_iss}");
    assert!(call(
        Operation::Read,
        "identity/oidc/.well-known/openid-configuration",
        None,
        json!({})
    )
    .await
    .is_ok());
    assert!(matches!(
        call(
            Operation::Update,
            "identity/oidc/introspect",
            None,
            json!({"token": token})
        )
        .await,
        Err(Error::PermissionDenied)
    ));
    let active = call(
        Operation::Update,
        "identity/oidc/introspect",
        Some(&root),
        json!({"token": token}),
    )
    .await
    .unwrap();
    assert_eq!(active.raw.unwrap(), json!({"active": true}));
    // Creating a key needs `create`: the existence check tells it from an update.
    call(
        Operation::Update,
        "sys/policies/acl/keys",
        Some(&root),
        json!({"policy": "path \"identity/oidc/key/*\" { capabilities = [\"update\"] }"}),
    )
    .await
    .unwrap();
    let limited = call(
        Operation::Update,
        "auth/token/create",
        Some(&root),
        json!({"policies": ["keys"]}),
    )
    .await
    .unwrap()
    .auth
    .unwrap()["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(matches!(
        call(
            Operation::Update,
            "identity/oidc/key/fresh",
            Some(&limited),
            json!({})
        )
        .await,
        Err(Error::PermissionDenied)
    ));
    call(
        Operation::Update,
        "identity/oidc/key/k",
        Some(&limited),
        json!({"allowed_client_ids": "*"}),
    )
    .await
    .unwrap();
}

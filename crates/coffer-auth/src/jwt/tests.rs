//! Engine-level tests of the JWT method against an in-memory barrier:
//! routing, storage, Vault's answers, and the lockout identity.

use std::sync::Arc;

use serde_json::{json, Value};

use super::testkeys::TestKey;
use super::JwtAuth;
use crate::barrier::{Barrier, View};
use crate::engine::{Engine, EngineCtx};
use crate::MountEntry;
use crate::{Error, Operation, Request, Response, Result};

struct Fixture {
    engine: JwtAuth,
    view: View,
    mount: MountEntry,
}

impl Fixture {
    fn new() -> Self {
        let barrier = Arc::new(Barrier::new(Arc::new(coffer_storage::MemoryBackend::new())));
        barrier.unseal(coffer_crypto::Keyring::new(0));
        Fixture {
            engine: JwtAuth::new(),
            view: View::new(barrier, "auth/test/"),
            mount: MountEntry::new("auth/jwt/", "jwt"),
        }
    }

    fn request(op: Operation, path: &str, data: Value) -> Request {
        let mut req = Request::new(op, format!("auth/jwt/{path}")).with_data(data);
        req.client_addr = "127.0.0.1".parse().ok();
        req
    }

    async fn call(&self, op: Operation, path: &str, data: Value) -> Result<Response> {
        let mut req = Self::request(op, path, data);
        let ctx = EngineCtx {
            view: &self.view,
            mount: &self.mount,
            token: None,
        };
        if op == Operation::Update && self.engine.exists(&ctx, &req, path).await? == Some(false) {
            req.operation = Operation::Create;
        }
        self.engine.handle(&ctx, &req, path).await
    }

    async fn data(&self, op: Operation, path: &str, body: Value) -> Value {
        self.call(op, path, body).await.unwrap().data.unwrap()
    }
}

fn now() -> i64 {
    crate::util::now().timestamp()
}

fn bad(r: Result<Response>) -> String {
    match r {
        Err(Error::BadRequest(m)) => m,
        other => panic!("expected a 400, got {other:?}"),
    }
}

#[tokio::test]
async fn config_roles_and_login() {
    let f = Fixture::new();
    let key = TestKey::ec();
    assert!(matches!(
        f.call(Operation::Read, "config", json!({})).await,
        Err(Error::NotFound)
    ));
    assert_eq!(
        bad(f
            .call(
                Operation::Update,
                "login",
                json!({"role": "ci", "jwt": "x"})
            )
            .await),
        "could not load configuration"
    );
    f.call(
        Operation::Update,
        "config",
        json!({"jwks": {"keys": [key.jwk(Some("k1"))]}, "bound_issuer": "https://ci.test",
               "default_role": "CI"}),
    )
    .await
    .unwrap();
    let cfg = f.data(Operation::Read, "config", json!({})).await;
    assert_eq!(cfg["bound_issuer"], "https://ci.test");
    assert_eq!(cfg["jwks"]["keys"][0]["kid"], "k1");
    assert!(cfg.get("oidc_client_secret").is_none());

    assert!(matches!(
        f.call(Operation::List, "role", json!({})).await,
        Err(Error::NotFound)
    ));
    f.call(
        Operation::Update,
        "role/CI",
        json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": ["coffer"],
               "token_policies": "ci", "allowed_redirect_uris": []}),
    )
    .await
    .unwrap();
    let keys = f.data(Operation::List, "role/", json!({})).await;
    assert_eq!(keys["keys"], json!(["ci"]));
    let role = f.data(Operation::Read, "role/ci", json!({})).await;
    assert_eq!(role["token_policies"], json!(["ci"]));
    assert_eq!(role["role_type"], "jwt");

    let claims = json!({"iss": "https://ci.test", "aud": ["coffer"], "sub": "job-1",
                        "iat": now(), "exp": now() + 60});
    let jwt = key.sign(Some("k1"), &claims);
    // The default role applies when none is named.
    let resp = f
        .call(Operation::Update, "login", json!({"jwt": jwt}))
        .await
        .unwrap();
    let grant = resp.grant.unwrap();
    assert_eq!(grant.display_name, "job-1");
    assert_eq!(grant.policies, vec!["ci"]);
    assert_eq!(grant.metadata["role"], "ci");

    assert_eq!(
        bad(f
            .call(
                Operation::Update,
                "login",
                json!({"role": "nope", "jwt": jwt})
            )
            .await),
        "role \"nope\" could not be found"
    );
    assert_eq!(
        bad(f
            .call(Operation::Update, "login", json!({"role": "ci"}))
            .await),
        "missing token"
    );
    assert!(matches!(
        f.call(Operation::Read, "login", json!({})).await,
        Err(Error::UnsupportedOperation)
    ));

    f.call(Operation::Delete, "role/ci", json!({}))
        .await
        .unwrap();
    assert!(matches!(
        f.call(Operation::Read, "role/ci", json!({})).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        f.call(Operation::Read, "role/a%2Fb", json!({})).await,
        Err(Error::UnsupportedPath(_))
    ));
    assert!(bad(f.call(Operation::Update, "oidc/auth_url", json!({})).await).contains("OIDC"));
}

#[tokio::test]
async fn refused_configs_leave_the_old_one() {
    let f = Fixture::new();
    let pem = TestKey::rsa().public_pem();
    f.call(
        Operation::Update,
        "config",
        json!({"jwt_validation_pubkeys": [pem]}),
    )
    .await
    .unwrap();
    let msg = bad(f
        .call(
            Operation::Update,
            "config",
            json!({"oidc_discovery_url": "https://accounts.example.test"}),
        )
        .await);
    assert!(msg.contains("oidc_discovery_url"), "{msg}");
    let cfg = f.data(Operation::Read, "config", json!({})).await;
    assert_eq!(cfg["jwt_validation_pubkeys"].as_array().unwrap().len(), 1);
    let msg = bad(
        f.call(
            Operation::Update,
            "role/x",
            json!({"role_type": "oidc", "user_claim": "sub", "allowed_redirect_uris": ["http://localhost"]}),
        )
        .await,
    );
    assert!(msg.contains("not supported"), "{msg}");
}

#[tokio::test]
async fn lockout_identity() {
    let f = Fixture::new();
    let key = TestKey::ed();
    f.call(
        Operation::Update,
        "config",
        json!({"jwt_validation_pubkeys": [key.public_pem()], "default_role": "k8s"}),
    )
    .await
    .unwrap();
    f.call(
        Operation::Update,
        "role/k8s",
        json!({"user_claim": "/kubernetes.io/serviceaccount/name", "user_claim_json_pointer": true,
               "bound_subject": "x"}),
    )
    .await
    .unwrap();
    let claims = json!({"sub": "x", "kubernetes.io": {"serviceaccount": {"name": "runner"}}});
    let jwt = key.sign(None, &claims);
    let id = |data: Value| {
        f.engine
            .login_identity(&Fixture::request(Operation::Update, "login", data), "login")
    };
    assert_eq!(id(json!({"jwt": jwt})).as_deref(), Some("k8s:runner"));
    assert_eq!(
        id(json!({"role": "K8S", "jwt": jwt})).as_deref(),
        Some("k8s:runner")
    );
    // Forged, unparsable or role-less attempts name nobody.
    let forged = TestKey::ed().sign(None, &claims);
    assert_eq!(id(json!({"role": "k8s", "jwt": forged})), None);
    assert_eq!(id(json!({"role": "k8s", "jwt": "garbage"})), None);
    assert_eq!(id(json!({"role": "other", "jwt": jwt})), None);
    assert_eq!(id(json!({"role": "k8s"})), None);
    f.call(
        Operation::Update,
        "role/long",
        json!({"user_claim": "sub", "bound_subject": "x"}),
    )
    .await
    .unwrap();
    let long = key.sign(None, &json!({"sub": "é".repeat(400)}));
    let got = id(json!({"role": "long", "jwt": long})).unwrap();
    assert!(got.len() <= 256 && got.starts_with("long:é"), "{got}");
    assert_eq!(
        f.engine.login_identity(
            &Fixture::request(Operation::Read, "config", json!({})),
            "config"
        ),
        None
    );
}

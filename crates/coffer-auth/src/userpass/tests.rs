//! Engine-level tests of userpass against an in-memory barrier.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::UserPass;
use crate::barrier::{Barrier, View};
use crate::engine::{Engine, EngineCtx};
use crate::MountEntry;
use crate::{Operation, Request, Response, Result};

struct Fixture {
    engine: UserPass,
    view: View,
    mount: MountEntry,
}

impl Fixture {
    fn new() -> Self {
        let barrier = Arc::new(Barrier::new(Arc::new(coffer_storage::MemoryBackend::new())));
        barrier.unseal(coffer_crypto::Keyring::new(0));
        Fixture {
            engine: UserPass::new(),
            view: View::new(barrier, "auth/test/"),
            mount: MountEntry::new("auth/userpass/", "userpass"),
        }
    }

    async fn call_from(
        &self,
        op: Operation,
        path: &str,
        data: Value,
        ip: &str,
    ) -> Result<Response> {
        let mut req = Request::new(op, format!("auth/userpass/{path}")).with_data(data);
        req.client_addr = ip.parse().ok();
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

    async fn call(&self, op: Operation, path: &str, data: Value) -> Result<Response> {
        self.call_from(op, path, data, "127.0.0.1").await
    }
}

fn status(r: Result<Response>) -> u16 {
    match r {
        Ok(resp) => resp.status.unwrap_or(200),
        Err(e) => e.status(),
    }
}

/// A password assembled at run time (never a literal credential).
fn pw(tag: &str) -> String {
    format!("{tag}-{}", coffer_crypto::random::token_string(12))
}

#[tokio::test]
async fn users_crud_and_login() {
    let f = Fixture::new();
    let first = pw("first");
    assert_eq!(
        status(f.call(Operation::Update, "users/Alice", json!({})).await),
        400
    );
    f.call(
        Operation::Update,
        "users/Alice",
        json!({"password": first, "token_policies": "ops", "token_ttl": "30m"}),
    )
    .await
    .unwrap();
    let read = f
        .call(Operation::Read, "users/alice", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(read["token_policies"], json!(["ops"]));
    assert_eq!(read["token_ttl"], json!(1800));
    assert!(read.get("password").is_none() && read.get("password_hash").is_none());
    let stored = f.view.get("user/alice").await.unwrap().unwrap();
    assert!(!String::from_utf8_lossy(&stored).contains(&first));
    let list = f
        .call(Operation::List, "users", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(list["keys"], json!(["alice"]));

    let grant = f
        .call(Operation::Update, "login/ALICE", json!({"password": first}))
        .await
        .unwrap()
        .grant
        .unwrap();
    assert_eq!(grant.policies, vec!["ops"]);
    assert_eq!(grant.display_name, "alice");
    assert_eq!(grant.metadata["username"], "alice");
    assert_eq!(grant.ttl, 1800);

    let wrong = f
        .call(
            Operation::Update,
            "login/alice",
            json!({"password": pw("x")}),
        )
        .await;
    assert_eq!(
        wrong.unwrap_err().messages(),
        vec!["invalid username or password"]
    );
    let nobody = f
        .call(Operation::Update, "login/bob", json!({"password": pw("x")}))
        .await;
    assert_eq!(
        nobody.unwrap_err().messages(),
        vec!["invalid username or password"]
    );
    assert_eq!(
        status(f.call(Operation::Update, "login/alice", json!({})).await),
        400
    );

    // Update without a password keeps it; the password endpoint changes it.
    f.call(Operation::Update, "users/alice", json!({"token_ttl": 60}))
        .await
        .unwrap();
    assert!(f
        .call(Operation::Update, "login/alice", json!({"password": first}))
        .await
        .is_ok());
    let second = pw("second");
    f.call(
        Operation::Update,
        "users/alice/password",
        json!({"password": second}),
    )
    .await
    .unwrap();
    assert_eq!(
        status(
            f.call(Operation::Update, "login/alice", json!({"password": first}))
                .await
        ),
        400
    );
    assert!(f
        .call(
            Operation::Update,
            "login/alice",
            json!({"password": second})
        )
        .await
        .is_ok());
    assert_eq!(
        status(
            f.call(Operation::Update, "users/alice/password", json!({}))
                .await
        ),
        400
    );
    assert_eq!(
        status(
            f.call(
                Operation::Update,
                "users/nobody/password",
                json!({"password": second})
            )
            .await
        ),
        500
    );

    f.call(
        Operation::Update,
        "users/alice/policies",
        json!({"policies": ["a", "B"]}),
    )
    .await
    .unwrap();
    let read = f
        .call(Operation::Read, "users/alice", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(read["token_policies"], json!(["a", "b"]));
    assert_eq!(read["policies"], json!(["a", "b"]));
    assert_eq!(read["token_ttl"], json!(60));

    f.call(Operation::Delete, "users/alice", json!({}))
        .await
        .unwrap();
    assert_eq!(
        status(f.call(Operation::Read, "users/alice", json!({})).await),
        404
    );
    assert_eq!(
        status(f.call(Operation::List, "users", json!({})).await),
        404
    );
    assert_eq!(
        status(
            f.call(
                Operation::Update,
                "login/alice",
                json!({"password": second})
            )
            .await
        ),
        400
    );
    assert_eq!(
        status(f.call(Operation::Read, "users/a%2Fb", json!({})).await),
        404
    );
}

#[tokio::test]
async fn bound_cidrs_and_identity() {
    let f = Fixture::new();
    let p = pw("cidr");
    f.call(
        Operation::Update,
        "users/ops",
        json!({"password": p, "token_bound_cidrs": "10.0.0.0/8"}),
    )
    .await
    .unwrap();
    let r = f
        .call_from(
            Operation::Update,
            "login/ops",
            json!({"password": p}),
            "192.168.1.1",
        )
        .await;
    assert_eq!(status(r), 403);
    let g = f
        .call_from(
            Operation::Update,
            "login/ops",
            json!({"password": p}),
            "10.9.8.7",
        )
        .await
        .unwrap()
        .grant
        .unwrap();
    assert_eq!(g.bound_cidrs, vec!["10.0.0.0/8"]);
    let req = Request::new(Operation::Update, "auth/userpass/login/OPS");
    assert_eq!(
        f.engine.login_identity(&req, "login/OPS").as_deref(),
        Some("ops")
    );
    assert!(f.engine.is_unauthenticated("login/ops"));
    assert!(!f.engine.is_unauthenticated("users/ops"));
}

/// A login for an unknown user costs about as much as one for a known user
/// with a wrong password, so timing does not tell which users exist.
#[tokio::test]
async fn unknown_users_take_as_long_as_known_ones() {
    let f = Fixture::new();
    f.call(
        Operation::Update,
        "users/known",
        json!({"password": pw("k")}),
    )
    .await
    .unwrap();
    // Warm up both paths.
    let _ = f
        .call(
            Operation::Update,
            "login/known",
            json!({"password": pw("w")}),
        )
        .await;
    let _ = f
        .call(
            Operation::Update,
            "login/unknown",
            json!({"password": pw("w")}),
        )
        .await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let _ = f
            .call(
                Operation::Update,
                "login/known",
                json!({"password": pw("w")}),
            )
            .await;
        known.push(t.elapsed());
        let t = Instant::now();
        let _ = f
            .call(
                Operation::Update,
                "login/unknown",
                json!({"password": pw("w")}),
            )
            .await;
        unknown.push(t.elapsed());
    }
    known.sort();
    unknown.sort();
    let (k, u) = (known[2], unknown[2]);
    assert!(
        k > Duration::from_millis(1),
        "a verification takes real work: {k:?}"
    );
    let ratio = u.as_secs_f64() / k.as_secs_f64();
    assert!((0.5..2.0).contains(&ratio), "known {k:?} vs unknown {u:?}");
}

#[tokio::test]
async fn odd_inputs_never_panic() {
    use rand::seq::SliceRandom;
    use rand::Rng;
    let f = Fixture::new();
    f.call(Operation::Update, "users/u", json!({"password": pw("u")}))
        .await
        .unwrap();
    let fields = [
        "password",
        "token_policies",
        "policies",
        "token_ttl",
        "ttl",
        "max_ttl",
        "token_bound_cidrs",
        "bound_cidrs",
        "token_num_uses",
        "token_type",
    ];
    let paths = [
        "users",
        "users/u",
        "users/U",
        "users/x",
        "users/u/password",
        "users/u/policies",
        "login/u",
        "login/x",
        "login",
        "login/",
        "users/u/other",
        "",
        "users/-",
    ];
    let ops = [
        Operation::Read,
        Operation::List,
        Operation::Update,
        Operation::Delete,
        Operation::Patch,
    ];
    let values = crate::approle::tests::odd_values();
    let mut rng = rand::thread_rng();
    for _ in 0..80 {
        let mut body = serde_json::Map::new();
        for _ in 0..rng.gen_range(0..4) {
            let k = fields.choose(&mut rng).unwrap();
            body.insert(k.to_string(), values.choose(&mut rng).unwrap().clone());
        }
        let path = paths.choose(&mut rng).unwrap();
        let op = *ops.choose(&mut rng).unwrap();
        let _ = f.call(op, path, Value::Object(body)).await;
    }
}

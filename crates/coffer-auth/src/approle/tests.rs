//! Engine-level tests of AppRole against an in-memory barrier.

use std::sync::Arc;

use serde_json::{json, Value};

use super::AppRole;
use crate::barrier::{Barrier, View};
use crate::engine::{Engine, EngineCtx};
use crate::MountEntry;
use crate::{Operation, Request, Response, Result};

struct Fixture {
    engine: AppRole,
    view: View,
    mount: MountEntry,
}

impl Fixture {
    fn new() -> Self {
        let barrier = Arc::new(Barrier::new(Arc::new(coffer_storage::MemoryBackend::new())));
        barrier.unseal(coffer_crypto::Keyring::new(0));
        Fixture {
            engine: AppRole::new(),
            view: View::new(barrier, "auth/test/"),
            mount: MountEntry::new("auth/approle/", "approle"),
        }
    }

    async fn call(&self, op: Operation, path: &str, data: Value) -> Result<Response> {
        self.call_from(op, path, data, "127.0.0.1").await
    }

    async fn call_from(
        &self,
        op: Operation,
        path: &str,
        data: Value,
        ip: &str,
    ) -> Result<Response> {
        let mut req = Request::new(op, format!("auth/approle/{path}")).with_data(data);
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

    async fn data(&self, op: Operation, path: &str, body: Value) -> Value {
        self.call(op, path, body).await.unwrap().data.unwrap()
    }
}

fn status(r: Result<Response>) -> u16 {
    match r {
        Ok(resp) => resp.status.unwrap_or(200),
        Err(e) => e.status(),
    }
}

fn message(r: Result<Response>) -> String {
    r.err().map(|e| e.messages().join(";")).unwrap_or_default()
}

#[tokio::test]
async fn role_lifecycle_and_login() {
    let f = Fixture::new();
    f.call(
        Operation::Update,
        "role/Web",
        json!({"token_policies": ["billing"], "token_ttl": "1h", "secret_id_num_uses": 2}),
    )
    .await
    .unwrap();
    let role = f.data(Operation::Read, "role/web", json!({})).await;
    assert_eq!(role["token_policies"], json!(["billing"]));
    assert_eq!(role["token_ttl"], json!(3600));
    assert_eq!(role["bind_secret_id"], json!(true));
    assert_eq!(
        f.data(Operation::List, "role", json!({})).await["keys"],
        json!(["web"])
    );

    let role_id = f.data(Operation::Read, "role/web/role-id", json!({})).await["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let issued = f
        .data(
            Operation::Update,
            "role/web/secret-id",
            json!({"metadata": "{\"team\":\"pay\"}"}),
        )
        .await;
    let secret = issued["secret_id"].as_str().unwrap().to_string();
    assert_eq!(issued["secret_id_num_uses"], json!(2));

    // Storage never holds the SecretID itself.
    for k in f.view.keys_with_prefix("").await.unwrap() {
        assert!(!k.contains(&secret));
        let v = f.view.get(&k).await.unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&v).contains(&secret));
    }

    let login = json!({"role_id": role_id, "secret_id": secret});
    let grant = f
        .call(Operation::Update, "login", login.clone())
        .await
        .unwrap()
        .grant
        .unwrap();
    assert_eq!(grant.policies, vec!["billing"]);
    assert_eq!(grant.ttl, 3600);
    assert_eq!(grant.metadata["role_name"], "web");
    assert_eq!(grant.metadata["team"], "pay");

    // One use left, then the SecretID is gone.
    let looked = f
        .data(
            Operation::Update,
            "role/web/secret-id/lookup",
            json!({"secret_id": secret}),
        )
        .await;
    assert_eq!(looked["secret_id_num_uses"], json!(1));
    assert!(f
        .call(Operation::Update, "login", login.clone())
        .await
        .is_ok());
    let r = f.call(Operation::Update, "login", login).await;
    assert_eq!(status(r), 400);

    let wrong = json!({"role_id": role_id, "secret_id": "nope"});
    assert_eq!(
        message(f.call(Operation::Update, "login", wrong).await),
        "invalid role or secret ID"
    );
    let unknown = json!({"role_id": "nope", "secret_id": "nope"});
    assert_eq!(
        message(f.call(Operation::Update, "login", unknown).await),
        "invalid role or secret ID"
    );
    assert_eq!(
        message(f.call(Operation::Update, "login", json!({})).await),
        "missing role_id"
    );

    f.call(Operation::Delete, "role/web", json!({}))
        .await
        .unwrap();
    assert_eq!(
        status(f.call(Operation::Read, "role/web", json!({})).await),
        404
    );
    assert!(f
        .view
        .keys_with_prefix("secret_id/")
        .await
        .unwrap()
        .is_empty());
    assert!(f
        .view
        .keys_with_prefix("role_id/")
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn accessors_lookup_list_destroy() {
    let f = Fixture::new();
    f.call(Operation::Update, "role/app", json!({}))
        .await
        .unwrap();
    let a = f
        .data(Operation::Update, "role/app/secret-id", json!({}))
        .await;
    let b = f
        .data(
            Operation::Update,
            "role/app/custom-secret-id",
            json!({"secret_id": "custom-value-1"}),
        )
        .await;
    assert_eq!(b["secret_id"], json!("custom-value-1"));
    let dup = f
        .call(
            Operation::Update,
            "role/app/custom-secret-id",
            json!({"secret_id": "custom-value-1"}),
        )
        .await;
    assert_eq!(status(dup), 400);
    let mut keys = f
        .data(Operation::List, "role/app/secret-id", json!({}))
        .await["keys"]
        .clone();
    let mut expect = vec![
        a["secret_id_accessor"].clone(),
        b["secret_id_accessor"].clone(),
    ];
    expect.sort_by_key(|v| v.to_string());
    if let Value::Array(k) = &mut keys {
        k.sort_by_key(|v| v.to_string());
    }
    assert_eq!(keys, Value::Array(expect));

    let by_acc = f
        .data(
            Operation::Update,
            "role/app/secret-id-accessor/lookup",
            json!({"secret_id_accessor": a["secret_id_accessor"]}),
        )
        .await;
    assert_eq!(by_acc["secret_id_accessor"], a["secret_id_accessor"]);
    assert!(by_acc.get("secret_id").is_none());
    f.call(
        Operation::Update,
        "role/app/secret-id-accessor/destroy",
        json!({"secret_id_accessor": a["secret_id_accessor"]}),
    )
    .await
    .unwrap();
    let gone = f
        .call(
            Operation::Update,
            "role/app/secret-id-accessor/lookup",
            json!({"secret_id_accessor": a["secret_id_accessor"]}),
        )
        .await;
    assert_eq!(status(gone), 404);
    f.call(
        Operation::Update,
        "role/app/secret-id/destroy",
        json!({"secret_id": "custom-value-1"}),
    )
    .await
    .unwrap();
    assert_eq!(
        status(
            f.call(Operation::List, "role/app/secret-id", json!({}))
                .await
        ),
        404
    );
    let none = f
        .call(
            Operation::Update,
            "role/app/secret-id/lookup",
            json!({"secret_id": "custom-value-1"}),
        )
        .await
        .unwrap();
    assert!(none.data.is_none());
    // An accessor of another role is not found through this one.
    f.call(Operation::Update, "role/other", json!({}))
        .await
        .unwrap();
    let c = f
        .data(Operation::Update, "role/other/secret-id", json!({}))
        .await;
    let cross = f
        .call(
            Operation::Update,
            "role/app/secret-id-accessor/lookup",
            json!({"secret_id_accessor": c["secret_id_accessor"]}),
        )
        .await;
    assert_eq!(status(cross), 404);
    assert_eq!(
        status(
            f.call(Operation::Update, "role/missing/secret-id", json!({}))
                .await
        ),
        404
    );
    assert_eq!(
        status(
            f.call(
                Operation::Update,
                "role/missing/secret-id/lookup",
                json!({"secret_id": "x"})
            )
            .await
        ),
        500
    );
}

#[tokio::test]
async fn cidrs_are_enforced() {
    let f = Fixture::new();
    f.call(
        Operation::Update,
        "role/r",
        json!({"secret_id_bound_cidrs": "10.0.0.0/8", "token_bound_cidrs": ["10.0.0.0/8"]}),
    )
    .await
    .unwrap();
    let role_id = f.data(Operation::Read, "role/r/role-id", json!({})).await["role_id"].clone();
    let s = f
        .data(
            Operation::Update,
            "role/r/secret-id",
            json!({"cidr_list": "10.1.0.0/16"}),
        )
        .await;
    let login = json!({"role_id": role_id, "secret_id": s["secret_id"]});
    let r = f
        .call_from(Operation::Update, "login", login.clone(), "10.2.0.1")
        .await;
    assert_eq!(status(r), 400);
    let r = f
        .call_from(Operation::Update, "login", login.clone(), "192.168.0.1")
        .await;
    assert_eq!(status(r), 400);
    let grant = f
        .call_from(Operation::Update, "login", login, "10.1.2.3")
        .await
        .unwrap()
        .grant
        .unwrap();
    assert_eq!(grant.bound_cidrs, vec!["10.0.0.0/8"]);
    let bad = f
        .call(
            Operation::Update,
            "role/r/secret-id",
            json!({"cidr_list": "11.0.0.0/8"}),
        )
        .await;
    assert_eq!(status(bad), 400);
}

#[tokio::test]
async fn expired_secret_ids_are_refused_and_tidied() {
    let f = Fixture::new();
    f.call(Operation::Update, "role/r", json!({}))
        .await
        .unwrap();
    let role_id = f.data(Operation::Read, "role/r/role-id", json!({})).await["role_id"].clone();
    let s = f
        .data(Operation::Update, "role/r/secret-id", json!({"ttl": 1}))
        .await;
    assert_eq!(s["secret_id_ttl"], json!(1));
    let keep = f
        .data(Operation::Update, "role/r/secret-id", json!({}))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = f
        .call(
            Operation::Update,
            "login",
            json!({"role_id": role_id, "secret_id": s["secret_id"]}),
        )
        .await;
    assert_eq!(message(r), "invalid role or secret ID");
    let _ = f
        .data(Operation::Update, "role/r/secret-id", json!({"ttl": 1}))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let t = f
        .call(Operation::Update, "tidy/secret-id", json!({}))
        .await
        .unwrap();
    assert_eq!(t.status, Some(202));
    assert_eq!(
        f.view.keys_with_prefix("secret_id/").await.unwrap().len(),
        1
    );
    assert_eq!(f.view.keys_with_prefix("accessor/").await.unwrap().len(), 1);
    assert!(f
        .call(
            Operation::Update,
            "login",
            json!({"role_id": role_id, "secret_id": keep["secret_id"]})
        )
        .await
        .is_ok());
}

#[tokio::test]
async fn role_id_and_fields() {
    let f = Fixture::new();
    f.call(Operation::Update, "role/a", json!({}))
        .await
        .unwrap();
    f.call(Operation::Update, "role/b", json!({}))
        .await
        .unwrap();
    f.call(
        Operation::Update,
        "role/a/role-id",
        json!({"role_id": "alpha-id"}),
    )
    .await
    .unwrap();
    assert_eq!(
        f.data(Operation::Read, "role/a/role-id", json!({})).await["role_id"],
        json!("alpha-id")
    );
    let taken = f
        .call(
            Operation::Update,
            "role/b/role-id",
            json!({"role_id": "alpha-id"}),
        )
        .await;
    assert_eq!(message(taken), "role_id already in use");
    assert_eq!(f.view.keys_with_prefix("role_id/").await.unwrap().len(), 2);

    f.call(
        Operation::Update,
        "role/a/token-ttl",
        json!({"token_ttl": "5m"}),
    )
    .await
    .unwrap();
    assert_eq!(
        f.data(Operation::Read, "role/a/token-ttl", json!({})).await,
        json!({"token_ttl": 300})
    );
    f.call(Operation::Delete, "role/a/token-ttl", json!({}))
        .await
        .unwrap();
    assert_eq!(
        f.data(Operation::Read, "role/a/token-ttl", json!({})).await,
        json!({"token_ttl": 0})
    );
    f.call(
        Operation::Update,
        "role/a/policies",
        json!({"policies": "x,y"}),
    )
    .await
    .unwrap();
    assert_eq!(
        f.data(Operation::Read, "role/a/policies", json!({})).await,
        json!({"token_policies": ["x", "y"], "policies": ["x", "y"]})
    );
    assert_eq!(
        message(
            f.call(Operation::Update, "role/a/token-ttl", json!({}))
                .await
        ),
        "missing token_ttl"
    );
    assert_eq!(
        status(
            f.call(
                Operation::Update,
                "role/zz/token-ttl",
                json!({"token_ttl": 1})
            )
            .await
        ),
        404
    );
    assert_eq!(
        status(f.call(Operation::Read, "role/a/nope", json!({})).await),
        404
    );
    assert_eq!(
        status(f.call(Operation::Read, "login", json!({})).await),
        405
    );
    // bind_secret_id off: secret-id generation refused; login by role_id alone.
    f.call(
        Operation::Update,
        "role/c",
        json!({"bind_secret_id": false, "secret_id_bound_cidrs": "127.0.0.0/8"}),
    )
    .await
    .unwrap();
    assert_eq!(
        message(
            f.call(Operation::Update, "role/c/secret-id", json!({}))
                .await
        ),
        "bind_secret_id is not set on the role"
    );
    let id = f.data(Operation::Read, "role/c/role-id", json!({})).await["role_id"].clone();
    assert!(f
        .call(Operation::Update, "login", json!({"role_id": id}))
        .await
        .is_ok());
}

/// Odd values for any field: no request may panic the engine.
pub(crate) fn odd_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(""),
        json!(" "),
        json!(-1),
        json!(u64::MAX),
        json!(1.5),
        json!(true),
        json!("18446744073709551615h"),
        json!("9999999999999999999999"),
        json!("0.0.0.0/0"),
        json!("::/0"),
        json!("10.0.0.0/33"),
        json!(["a", 1, null]),
        json!([]),
        json!({"a": {"b": 1}}),
        json!("{\"k\": [1]}"),
        json!("x".repeat(5000)),
        json!("ünïcødé/../.."),
    ]
}

#[tokio::test]
async fn odd_inputs_never_panic() {
    use rand::seq::SliceRandom;
    use rand::Rng;
    let f = Fixture::new();
    f.call(Operation::Update, "role/r", json!({}))
        .await
        .unwrap();
    let fields = [
        "role_id",
        "secret_id",
        "secret_id_accessor",
        "token_policies",
        "policies",
        "token_ttl",
        "token_max_ttl",
        "token_period",
        "token_num_uses",
        "token_type",
        "token_bound_cidrs",
        "secret_id_bound_cidrs",
        "secret_id_ttl",
        "secret_id_num_uses",
        "bind_secret_id",
        "metadata",
        "cidr_list",
        "ttl",
        "num_uses",
        "local_secret_ids",
    ];
    let paths = [
        "login",
        "role",
        "role/r",
        "role/R",
        "role/x",
        "role/r/role-id",
        "role/r/secret-id",
        "role/r/custom-secret-id",
        "role/r/secret-id/lookup",
        "role/r/secret-id/destroy",
        "role/r/secret-id-accessor/lookup",
        "role/r/secret-id-accessor/destroy",
        "role/r/token-ttl",
        "role/r/policies",
        "role/r/period",
        "tidy/secret-id",
        "role/-",
        "role/r/nope/deeper",
        "",
        "/",
        "role//",
        "login/extra",
    ];
    let ops = [
        Operation::Read,
        Operation::List,
        Operation::Update,
        Operation::Delete,
        Operation::Patch,
    ];
    let values = odd_values();
    let mut rng = rand::thread_rng();
    for _ in 0..400 {
        let mut body = serde_json::Map::new();
        for _ in 0..rng.gen_range(0..5) {
            let k = fields.choose(&mut rng).unwrap();
            body.insert(k.to_string(), values.choose(&mut rng).unwrap().clone());
        }
        let path = paths.choose(&mut rng).unwrap();
        let op = *ops.choose(&mut rng).unwrap();
        if let Err(e) = f.call(op, path, Value::Object(body)).await {
            assert!(e.status() < 500 || e.status() == 500 && !e.messages().is_empty());
        }
    }
}

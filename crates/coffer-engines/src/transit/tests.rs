//! Engine-level tests of transit against an in-memory barrier: the
//! periodic pass honours `auto_rotate_period`.

use std::sync::Arc;

use serde_json::{json, Value};

use super::policy::Policy;
use super::{Transit, POLICY_PREFIX};
use crate::barrier::{Barrier, View};
use crate::engine::{Engine, EngineCtx};
use crate::mounts::MountEntry;
use crate::{Operation, Request};

fn fixture() -> (View, MountEntry) {
    let barrier = Arc::new(Barrier::new(Arc::new(coffer_storage::MemoryBackend::new())));
    barrier.unseal(coffer_crypto::Keyring::new(0));
    (
        View::new(barrier, "logical/test/"),
        MountEntry::new("transit/", "transit"),
    )
}

async fn call(t: &Transit, ctx: &EngineCtx<'_>, op: Operation, path: &str, data: Value) -> Value {
    let req = Request::new(op, format!("transit/{path}")).with_data(data);
    match t.handle(ctx, &req, path).await {
        Ok(r) => r.data.unwrap_or(Value::Null),
        Err(e) => panic!("{path}: {e}"),
    }
}

/// Moves the creation time of every version of `name` back by `secs`.
async fn age(view: &View, name: &str, secs: i64) {
    let key = format!("{POLICY_PREFIX}{name}");
    let mut p = Policy::from_bytes(&view.get(&key).await.unwrap().unwrap()).unwrap();
    for v in p.versions.values_mut() {
        v.created -= chrono::Duration::seconds(secs);
    }
    view.put(&key, &p.to_bytes().unwrap()).await.unwrap();
}

#[tokio::test]
async fn the_periodic_pass_rotates_keys_that_are_due() {
    let (view, mount) = fixture();
    let ctx = EngineCtx {
        view: &view,
        mount: &mount,
        token: None,
    };
    let t = Transit::new();
    call(
        &t,
        &ctx,
        Operation::Update,
        "keys/due",
        json!({"auto_rotate_period": "1h"}),
    )
    .await;
    call(&t, &ctx, Operation::Update, "keys/never", json!({})).await;
    age(&view, "due", 3601).await;
    age(&view, "never", 86_400 * 400).await;
    // A fresh engine (as after an unseal) reads the aged entries.
    let t = Transit::new();
    t.periodic(&ctx).await.unwrap();
    let due = call(&t, &ctx, Operation::Read, "keys/due", json!({})).await;
    assert_eq!(due["latest_version"], 2, "{due}");
    let never = call(&t, &ctx, Operation::Read, "keys/never", json!({})).await;
    assert_eq!(never["latest_version"], 1, "no period, no rotation");
    // The new version is fresh: the next pass leaves the key alone.
    *t.last_scan.lock() = None;
    t.periodic(&ctx).await.unwrap();
    let due = call(&t, &ctx, Operation::Read, "keys/due", json!({})).await;
    assert_eq!(due["latest_version"], 2);
    // The rotation was persisted, not only cached.
    let stored = Policy::from_bytes(&view.get("policy/due").await.unwrap().unwrap()).unwrap();
    assert_eq!(stored.latest_version, 2);
}

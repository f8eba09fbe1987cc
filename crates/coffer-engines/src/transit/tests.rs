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

#[tokio::test]
async fn two_nodes_rotating_one_key_cannot_both_store_a_version() {
    // Two nodes: one store, a barrier (and a cache) each.
    let mem = Arc::new(coffer_storage::MemoryBackend::new());
    let keyring = coffer_crypto::Keyring::new(0);
    let barrier = || {
        let b = Arc::new(Barrier::new(mem.clone()));
        b.unseal(keyring.clone());
        b
    };
    let (ba, bb) = (barrier(), barrier());
    let (va, vb) = (
        View::new(ba.clone(), "logical/test/"),
        View::new(bb, "logical/test/"),
    );
    let mount = MountEntry::new("transit/", "transit");
    let ctx = |v| EngineCtx {
        view: v,
        mount: &mount,
        token: None,
    };
    let (a, b) = (Transit::new(), Transit::new());
    call(&a, &ctx(&va), Operation::Update, "keys/k", json!({})).await;
    // Both nodes hold version 1.
    call(&b, &ctx(&vb), Operation::Read, "keys/k", json!({})).await;
    call(&a, &ctx(&va), Operation::Update, "keys/k/rotate", json!({})).await;
    // B rotates from its stale copy: refused, never a second version 2.
    let req = Request::new(Operation::Update, "transit/keys/k/rotate".to_string());
    let err = b
        .handle(&ctx(&vb), &req, "keys/k/rotate")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("changed concurrently"), "{err}");
    // Its retry starts from the stored key.
    let v = call(&b, &ctx(&vb), Operation::Update, "keys/k/rotate", json!({})).await;
    assert_eq!(v["latest_version"], json!(3), "{v}");
    // A drops its copies when the change log tells it, and sees all three.
    ba.invalidate(&["logical/test/policy/k".to_string()]);
    a.changed_elsewhere("policy/k");
    let v = call(&a, &ctx(&va), Operation::Read, "keys/k", json!({})).await;
    assert_eq!(v["latest_version"], json!(3), "{v}");
}

//! Path canonicalisation against ACL matching, end to end through a real
//! core: the object an engine acts on is the one the ACL judged.
//!
//! A token may manage every userpass user and ACL policy except `admin`
//! (denied by an exact and a glob rule). Each input is one request of that
//! token: one byte choosing the method, then the raw path (percent-encoded
//! as it arrives over HTTP, decoded by the transport's own parser).
//!
//! Checks: no panic; afterwards the user `admin` still exists with its
//! original token policies, and the policy `admin` still has its original
//! text, whatever spelling the request used.
#![no_main]

use std::sync::{Arc, OnceLock};

use coffer_core::{Core, CoreConfig, Operation, Request};
use coffer_http::wire::parse_path;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const ROOT: &str = "fuzz-root";
const ADMIN_POLICY: &str = "path \"admin/*\" { capabilities = [\"read\"] }";

struct World {
    rt: tokio::runtime::Runtime,
    core: Arc<Core>,
    token: String,
}

fn call(w: &World, op: Operation, path: &str, token: &str, data: Value) -> coffer_core::Result<coffer_core::Response> {
    let req = Request::new(op, path).with_token(token).with_data(data);
    w.rt.block_on(w.core.handle(req))
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let core = Core::new(
            Arc::new(coffer_storage::memory::MemoryBackend::new()),
            CoreConfig::default(),
        );
        rt.block_on(core.dev_setup(Some(ROOT))).expect("dev setup");
        let mut w = World { rt, core, token: String::new() };
        let root = |w: &World, op, path: &str, data: Value| {
            call(w, op, path, ROOT, data).unwrap_or_else(|e| panic!("setup {path}: {e}"))
        };
        root(&w, Operation::Update, "sys/auth/userpass", json!({"type": "userpass"}));
        root(
            &w,
            Operation::Update,
            "auth/userpass/users/admin",
            json!({"password": "fuzz-only-password", "token_policies": ["admin-orig"]}),
        );
        root(&w, Operation::Update, "sys/policies/acl/admin", json!({"policy": ADMIN_POLICY}));
        let policy = r#"
            path "auth/userpass/users/*" { capabilities = ["create", "read", "update", "delete", "list"] }
            path "auth/userpass/users/admin*" { capabilities = ["deny"] }
            path "auth/userpass/users/admin" { capabilities = ["deny"] }
            path "sys/policies/acl/*" { capabilities = ["create", "read", "update", "delete", "list"] }
            path "sys/policies/acl/admin" { capabilities = ["deny"] }
            path "sys/policy/*" { capabilities = ["create", "read", "update", "delete", "list"] }
            path "sys/policy/admin" { capabilities = ["deny"] }
        "#;
        root(&w, Operation::Update, "sys/policies/acl/fuzzer", json!({"policy": policy}));
        let out = root(
            &w,
            Operation::Update,
            "auth/token/create",
            json!({"policies": ["fuzzer"], "no_default_policy": true}),
        );
        w.token = out
            .auth
            .as_ref()
            .and_then(|a| a["client_token"].as_str())
            .expect("token")
            .to_string();
        w
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(raw) = std::str::from_utf8(rest) else {
        return;
    };
    let Ok(path) = parse_path(&format!("/v1/{raw}")) else {
        return;
    };
    let op = match selector % 5 {
        0 => Operation::Read,
        1 => Operation::List,
        2 => Operation::Update,
        3 => Operation::Patch,
        _ => Operation::Delete,
    };
    let w = world();
    // Bodies that would change the protected objects (no password: no hashing cost).
    let body = json!({"token_policies": ["pwned"], "policy": "path \"*\" { capabilities = [\"sudo\"] }"});
    let _ = call(w, op, &path, &w.token, body);

    let user = call(w, Operation::Read, "auth/userpass/users/admin", ROOT, json!({}))
        .unwrap_or_else(|e| panic!("{op:?} {raw:?} removed the user admin: {e}"));
    let policies = user.data.as_ref().map(|d| d["token_policies"].clone());
    assert_eq!(policies, Some(json!(["admin-orig"])), "{op:?} {raw:?} changed the user admin");
    let policy = call(w, Operation::Read, "sys/policies/acl/admin", ROOT, json!({}))
        .unwrap_or_else(|e| panic!("{op:?} {raw:?} removed the policy admin: {e}"));
    assert_eq!(
        policy.data.as_ref().map(|d| d["policy"].clone()),
        Some(json!(ADMIN_POLICY)),
        "{op:?} {raw:?} changed the policy admin"
    );
});

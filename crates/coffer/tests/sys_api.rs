//! The Vault-compatible `sys/` extras against a real server: the UI mount
//! table under Vault's permission rule (with the real `bao` CLI reading KV
//! through a least-privilege token), LIST without a trailing slash, the
//! namespace header, the tools, key status and rotation, version history,
//! CORS and tune reads. Tests that drive `bao` find it through
//! `COFFER_TEST_BAO` or `PATH` and skip only when it is absent.

mod cli_support;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use cli_support::{bao, token_with, unique, Api, Run, Server};
use serde_json::{json, Value};

/// Runs `bao <args>` against `s` with `token`, in a fresh home directory.
fn run_bao(bin: &PathBuf, s: &Server, token: &str, args: &[&str]) -> Run {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("VAULT_ADDR", &s.addr)
        .env("VAULT_TOKEN", token)
        .stdin(Stdio::null());
    Run::of(&mut cmd)
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

const LEAST: &str = r#"
path "secret/data/app/*" { capabilities = ["read"] }
path "secret/metadata/app/*" { capabilities = ["list"] }
path "kv1/app/*" { capabilities = ["read", "list"] }
"#;

fn kv_setup(api: &Api<'_>, value: &str) {
    api.root("POST", "sys/mounts/kv1", Some(json!({"type": "kv"})));
    api.root(
        "POST",
        "secret/data/app/x",
        Some(json!({"data": {"k": value}})),
    );
    api.root(
        "POST",
        "secret/data/other",
        Some(json!({"data": {"k": value}})),
    );
    api.root("POST", "kv1/app/y", Some(json!({"k": value})));
}

#[test]
fn ui_mounts_follow_vaults_reach_rule() {
    let s = Server::start();
    let api = Api::new(&s);
    kv_setup(&api, &unique("v"));
    let least = token_with(&api, LEAST, true);
    let nothing = token_with(&api, r#"path "foo/*" { capabilities = ["read"] }"#, true);
    let denied_mount = token_with(
        &api,
        r#"
path "secret/*" { capabilities = ["deny"] }
path "secret/data/app/*" { capabilities = ["read"] }
"#,
        false,
    );

    // The list keeps the mounts each token reaches.
    let (st, b) = api.call("GET", "sys/internal/ui/mounts", Some(&least), None);
    assert_eq!(st, 200, "{b}");
    // cubbyhole/ and identity/: the default policy grants `cubbyhole/*`
    // and `identity/oidc/provider/+/authorize`, as Vault's.
    assert_eq!(
        keys(&b["data"]["secret"]),
        ["cubbyhole/", "identity/", "kv1/", "secret/", "sys/"]
    );
    assert_eq!(keys(&b["data"]["auth"]), ["token/"]);
    let (_, b) = api.call("GET", "sys/internal/ui/mounts", Some(&nothing), None);
    assert_eq!(
        keys(&b["data"]["secret"]),
        ["cubbyhole/", "identity/", "sys/"]
    );
    let (_, b) = api.call("GET", "sys/internal/ui/mounts", Some(&denied_mount), None);
    assert_eq!(keys(&b["data"]["secret"]), ["secret/"]);
    assert_eq!(keys(&b["data"]["auth"]), Vec::<String>::new());
    let (_, b) = api.call("GET", "sys/internal/ui/mounts", Some(&s.token), None);
    // root reaches every mount.
    assert_eq!(
        keys(&b["data"]["secret"]),
        ["cubbyhole/", "identity/", "kv1/", "secret/", "sys/"]
    );
    // Without a token: nothing is listed; a bad token is refused.
    let (st, b) = api.call("GET", "sys/internal/ui/mounts", None, None);
    assert_eq!(
        (st, b["data"].clone()),
        (200, json!({"secret": {}, "auth": {}}))
    );
    let (st, _) = api.call("GET", "sys/internal/ui/mounts", Some("bogus"), None);
    assert_eq!(st, 403);

    // The single form: the mount holding the path, or 403 alike for an
    // unreachable mount and for no mount at all.
    let (st, b) = api.call(
        "GET",
        "sys/internal/ui/mounts/secret/app/x",
        Some(&least),
        None,
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"]["path"], "secret/");
    assert_eq!(b["data"]["options"]["version"], "2");
    let (st, b) = api.call("GET", "sys/internal/ui/mounts/kv1/app", Some(&least), None);
    assert_eq!((st, b["data"]["path"].clone()), (200, json!("kv1/")));
    let (st, b) = api.call(
        "GET",
        "sys/internal/ui/mounts/auth/token",
        Some(&least),
        None,
    );
    assert_eq!((st, b["data"]["path"].clone()), (200, json!("token/")));
    let (st, b) = api.call(
        "GET",
        "sys/internal/ui/mounts/kv1/app",
        Some(&denied_mount),
        None,
    );
    assert_eq!(st, 403, "{b}");
    let no_mount = api.call("GET", "sys/internal/ui/mounts/nope/x", Some(&least), None);
    let unreachable = api.call(
        "GET",
        "sys/internal/ui/mounts/secret/x",
        Some(&nothing),
        None,
    );
    assert_eq!(no_mount.0, 403);
    assert_eq!(unreachable.0, 403);
    assert!(no_mount.1["errors"][0]
        .as_str()
        .unwrap()
        .contains("\"nope/x/\""));
    let (st, _) = api.call("GET", "sys/internal/ui/mounts/secret", None, None);
    assert_eq!(st, 403);
}

#[test]
fn list_without_a_trailing_slash_is_judged_as_the_folder() {
    let s = Server::start();
    let api = Api::new(&s);
    kv_setup(&api, &unique("v"));
    let least = token_with(&api, LEAST, false);
    for path in [
        "secret/metadata/app",
        "secret/metadata/app/",
        "kv1/app",
        "kv1/app/",
    ] {
        let (st, b) = api.call("LIST", path, Some(&least), None);
        assert_eq!(st, 200, "LIST {path}: {b}");
        assert!(b["data"]["keys"].is_array(), "{b}");
    }
    let (st, _) = api.call("LIST", "secret/metadata", Some(&least), None);
    assert_eq!(st, 403);
}

#[test]
fn bao_cli_reads_and_lists_kv_with_a_least_privilege_token() {
    let Some(bin) = bao() else {
        eprintln!("skipped: no bao CLI (set COFFER_TEST_BAO)");
        return;
    };
    let s = Server::start();
    let api = Api::new(&s);
    let value = unique("v");
    kv_setup(&api, &value);
    let least = token_with(&api, LEAST, true);
    let r = run_bao(
        &bin,
        &s,
        &least,
        &["kv", "get", "-format=json", "secret/app/x"],
    )
    .ok();
    assert_eq!(r.json()["data"]["data"]["k"], value.as_str());
    let r = run_bao(
        &bin,
        &s,
        &least,
        &["kv", "get", "-format=json", "kv1/app/y"],
    )
    .ok();
    assert_eq!(r.json()["data"]["k"], value.as_str());
    let r = run_bao(
        &bin,
        &s,
        &least,
        &["kv", "list", "-format=json", "secret/app"],
    )
    .ok();
    assert_eq!(r.json(), json!(["x"]));
    let r = run_bao(&bin, &s, &least, &["kv", "list", "-format=json", "kv1/app"]).ok();
    assert_eq!(r.json(), json!(["y"]));
    // Outside the policy: refused by the KV path itself, not the preflight.
    let r = run_bao(&bin, &s, &least, &["kv", "get", "secret/other"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("secret/data/other"), "{r:#?}");
    assert!(r.stderr.contains("403"), "{r:#?}");
    assert!(!r.stdout.contains(&value));
}

#[test]
fn a_foreign_namespace_is_refused_and_the_root_one_passes() {
    let s = Server::start();
    let api = Api::new(&s);
    api.root("POST", "secret/data/ns", Some(json!({"data": {"k": "v"}})));
    let http = cli_support::http();
    let get = |values: &[&str]| {
        let mut req = http
            .get(format!("{}/v1/secret/data/ns", s.addr))
            .header("X-Vault-Token", &s.token);
        for v in values {
            req = req.header("X-Vault-Namespace", *v);
        }
        let resp = req.send().unwrap();
        let st = resp.status().as_u16();
        (st, resp.json::<Value>().unwrap_or(Value::Null))
    };
    for root in [&[""][..], &["root"], &["/"], &["root/"], &[]] {
        assert_eq!(get(root).0, 200, "{root:?}");
    }
    for foreign in [&["ns1"][..], &["ns1/"], &["root/ns1"], &["root", "ns1"]] {
        let (st, b) = get(foreign);
        assert_eq!(st, 404, "{foreign:?}");
        assert!(
            b["errors"][0]
                .as_str()
                .unwrap()
                .contains("namespaces are not supported"),
            "{b}"
        );
    }
}

#[test]
fn tools_random_and_hash_answer_as_vault() {
    let s = Server::start();
    let api = Api::new(&s);
    let b64 = |v: &Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(v["data"]["random_bytes"].as_str().unwrap())
            .unwrap()
    };
    let b = api.root("POST", "sys/tools/random", Some(json!({})));
    assert_eq!(b64(&b).len(), 32);
    let b = api.root("POST", "sys/tools/random/platform/48", None);
    assert_eq!(b64(&b).len(), 48);
    let b = api.root("POST", "sys/tools/random/7", Some(json!({"format": "hex"})));
    assert_eq!(b["data"]["random_bytes"].as_str().unwrap().len(), 14);
    let b = api.root("POST", "sys/tools/random/16", Some(json!({"bytes": 3})));
    assert_eq!(b64(&b).len(), 16);
    assert!(b["warnings"][0].as_str().unwrap().contains("[bytes]"));
    let b = api.root("POST", "sys/tools/random/seal", None);
    assert!(b["warnings"][0]
        .as_str()
        .unwrap()
        .contains("platform entropy"));
    let b = api.root("POST", "sys/tools/random/131072", None);
    assert_eq!(b64(&b).len(), 131072);
    for (path, body, msg) in [
        ("sys/tools/random/0", json!({}), "cannot be less than 1"),
        ("sys/tools/random/131073", json!({}), "should be less than"),
        (
            "sys/tools/random",
            json!({"bytes": -4}),
            "cannot be less than 1",
        ),
        ("sys/tools/random/abc", json!({}), "byte count"),
        (
            "sys/tools/random/bogus/8",
            json!({}),
            "unsupported entropy source",
        ),
        (
            "sys/tools/random",
            json!({"format": "hox"}),
            "unsupported encoding format",
        ),
        (
            "sys/tools/hash/md5",
            json!({"input": "aGk="}),
            "unsupported algorithm md5",
        ),
        ("sys/tools/hash", json!({"input": "!!"}), "base64"),
        (
            "sys/tools/hash",
            json!({"input": "aGk=", "format": "b"}),
            "encoding format",
        ),
    ] {
        let (st, b) = api.call("POST", path, Some(&s.token), Some(body));
        assert_eq!(st, 400, "{path}: {b}");
        assert!(
            b["errors"][0].as_str().unwrap().contains(msg),
            "{path}: {b}"
        );
    }
    let sum = |path: &str, body: Value| {
        api.root("POST", path, Some(body))["data"]["sum"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let hello = json!({"input": "aGVsbG8="});
    assert_eq!(
        sum("sys/tools/hash", hello.clone()),
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    assert_eq!(
        sum("sys/tools/hash/sha2-224", hello.clone()),
        "ea09ae9cc6768c50fcee903ed054556e5bfc8347907f12598aa24193"
    );
    assert_eq!(
        sum("sys/tools/hash/sha3-256", hello.clone()),
        "3338be694f50c5f338814986cdf0686453a888b84f424d792af4b9202398f392"
    );
    assert_eq!(
        sum(
            "sys/tools/hash",
            json!({"input": "aGVsbG8=", "algorithm": "sha2-512", "format": "base64"})
        ),
        "m3HSJL1i83hdltRq0+o9czGb+8KJDKra4t/3JRlnPKcjI8PZm6XBHXx6zG4UuMXaDEZjR1wuXDre9G9zvN7AQw=="
    );
    // The default policy lets any token hash, as Vault's does.
    let plain = token_with(&api, r#"path "foo/*" { capabilities = ["read"] }"#, true);
    let (st, _) = api.call("POST", "sys/tools/hash", Some(&plain), Some(hello));
    assert_eq!(st, 200);
    let (st, _) = api.call("POST", "sys/tools/random", Some(&plain), None);
    assert_eq!(st, 403);
}

#[test]
fn key_status_rotate_keyring_and_version_history() {
    let s = Server::start();
    let api = Api::new(&s);
    let before = api.root("GET", "sys/key-status", None);
    assert_eq!(before["term"], before["data"]["term"]);
    assert!(before["data"]["encryptions"].as_u64().is_some(), "{before}");
    api.root("POST", "sys/rotate/keyring", None);
    let after = api.root("GET", "sys/key-status", None);
    assert_eq!(
        after["data"]["term"].as_u64().unwrap(),
        before["data"]["term"].as_u64().unwrap() + 1
    );
    let config = api.root("GET", "sys/rotate/keyring/config", None);
    assert_eq!(config["data"]["enabled"], true);
    assert!(config["data"]["max_operations"].as_u64().unwrap() > 0);
    let history = api.root("LIST", "sys/version-history", None);
    let version = history["data"]["keys"][0].as_str().unwrap().to_string();
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    assert_eq!(
        history["data"]["key_info"][&version]["previous_version"],
        Value::Null
    );
    let tune = api.root("GET", "sys/mounts/secret/tune", None);
    assert_eq!(tune["default_lease_ttl"], tune["data"]["default_lease_ttl"]);
    assert_eq!(tune["options"]["version"], "2");
    let mount = api.root("GET", "sys/mounts/secret", None);
    assert_eq!(mount["type"], "kv");
    assert_eq!(mount["data"]["type"], "kv");

    let Some(bin) = bao() else {
        eprintln!("skipped the CLI part: no bao CLI (set COFFER_TEST_BAO)");
        return;
    };
    let r = run_bao(
        &bin,
        &s,
        &s.token,
        &["operator", "key-status", "-format=json"],
    )
    .ok();
    let term = r.json()["term"].as_u64().unwrap();
    run_bao(&bin, &s, &s.token, &["operator", "rotate"]).ok();
    let r = run_bao(
        &bin,
        &s,
        &s.token,
        &["operator", "key-status", "-format=json"],
    )
    .ok();
    assert_eq!(r.json()["term"].as_u64().unwrap(), term + 1, "{r:#?}");
    assert!(r.json()["encryptions"].as_u64().is_some(), "{r:#?}");
}

#[test]
fn cors_configuration_is_stored_and_applied() {
    let s = Server::start();
    let api = Api::new(&s);
    let http = cli_support::http();
    let origin = format!("https://{}.example", unique("o").to_lowercase());
    let health = |origin: &str, method: &str| {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        http.request(m, format!("{}/v1/sys/health", s.addr))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
            .send()
            .unwrap()
    };
    // Disabled: no CORS headers at all.
    let r = health(&origin, "GET");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    assert_eq!(
        api.root("GET", "sys/config/cors", None)["data"],
        json!({"enabled": false})
    );
    let (st, _) = api.call(
        "PUT",
        "sys/config/cors",
        Some(&s.token),
        Some(json!({"allowed_origins": ["*", &origin]})),
    );
    assert_eq!(st, 400);
    api.root(
        "PUT",
        "sys/config/cors",
        Some(json!({"allowed_origins": [&origin], "allowed_headers": "X-Custom"})),
    );
    let c = api.root("GET", "sys/config/cors", None);
    assert_eq!(c["data"]["enabled"], true);
    assert_eq!(c["data"]["allowed_origins"], json!([&origin]));
    let headers = c["data"]["allowed_headers"].as_array().unwrap();
    assert!(headers.contains(&json!("X-Vault-Token")) && headers.contains(&json!("X-Custom")));
    let r = health(&origin, "GET");
    assert_eq!(r.headers()["access-control-allow-origin"], origin.as_str());
    let r = health(&origin, "OPTIONS");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("LIST"));
    assert!(r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("X-Custom"));
    let r = health("https://evil.example", "GET");
    assert_eq!(r.status().as_u16(), 403);
    // The configuration needs sudo, as in Vault.
    let no_sudo = token_with(
        &api,
        r#"path "sys/config/cors" { capabilities = ["read", "update", "delete"] }"#,
        false,
    );
    let (st, _) = api.call("GET", "sys/config/cors", Some(&no_sudo), None);
    assert_eq!(st, 403);
    api.root("DELETE", "sys/config/cors", None);
    let r = health("https://evil.example", "GET");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        api.root("GET", "sys/config/cors", None)["data"]["enabled"],
        false
    );
}

#[test]
fn path_help_and_the_openapi_document() {
    let s = Server::start();
    let api = Api::new(&s);
    api.root(
        "POST",
        "sys/auth/userpass",
        Some(json!({"type": "userpass"})),
    );
    let help = api.root("GET", "secret/?help=1", None);
    assert!(
        help["help"]
            .as_str()
            .unwrap()
            .contains("^data/(?P<path>.*)$"),
        "{help}"
    );
    assert_eq!(help["see_also"], Value::Null);
    assert_eq!(help["openapi"]["openapi"], "3.0.2");
    let help = api.root("GET", "secret/data/a/b?help=1", None);
    let text = help["help"].as_str().unwrap();
    assert!(text.contains("Request:        data/a/b"), "{text}");
    assert!(text.contains("    data (map)"), "{text}");
    assert!(
        help["openapi"]["paths"]["/data/{path}"]["post"].is_object(),
        "{help}"
    );
    let (st, _) = api.call("GET", "secret/nothing-here?help=1", Some(&s.token), None);
    assert_eq!(st, 404);
    // Any valid token may read help; no token may not.
    let plain = token_with(&api, r#"path "foo/*" { capabilities = ["read"] }"#, false);
    let (st, b) = api.call("GET", "sys/mounts?help=1", Some(&plain), None);
    assert_eq!(st, 200, "{b}");
    let (st, _) = api.call("GET", "sys/mounts?help=1", None, None);
    assert_eq!(st, 403);

    // The document lists the built-ins and the mounts the token reaches.
    let doc = api.root("GET", "sys/internal/specs/openapi", None);
    let paths = doc["paths"].as_object().unwrap();
    // As Vault's: a list on a path that also reads is GET's optional `list`
    // parameter, request bodies are schemas under components.
    let meta = &doc["paths"]["/secret/metadata/{path}"];
    assert_eq!(meta["get"]["parameters"][0]["name"], "list", "{meta}");
    assert_eq!(meta["x-vault-createSupported"], true, "{meta}");
    let body = meta["patch"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .expect("a patch body schema");
    let name = body.trim_start_matches("#/components/schemas/");
    assert!(
        doc["components"]["schemas"][name]["properties"]["custom_metadata"].is_object(),
        "{name}"
    );
    assert!(!doc["paths"]
        .as_object()
        .unwrap()
        .contains_key("/sys/policies/acl/"));
    assert_eq!(
        doc["paths"]["/sys/policies/acl"]["get"]["parameters"][0]["required"],
        true
    );
    for p in [
        "/sys/mounts",
        "/secret/data/{path}",
        "/secret/metadata/{path}",
        "/auth/userpass/login/{username}",
        "/auth/token/create",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    let least = token_with(
        &api,
        r#"path "secret/data/app/*" { capabilities = ["read"] }"#,
        false,
    );
    let (st, doc) = api.call("GET", "sys/internal/specs/openapi", Some(&least), None);
    assert_eq!(st, 200);
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.contains_key("/secret/data/{path}"));
    assert!(!paths.contains_key("/auth/userpass/login/{username}"));
    assert!(!paths.contains_key("/sys/mounts"));

    let Some(bin) = bao() else {
        eprintln!("skipped the CLI part: no bao CLI (set COFFER_TEST_BAO)");
        return;
    };
    for (path, expect) in [
        ("secret/", "^metadata/(?P<path>.*)$"),
        ("secret/data/x", "Matching Route: ^data/(?P<path>.*)$"),
        ("sys/mounts", "Matching Route: ^mounts$"),
        ("auth/userpass/users/alice", "password (string)"),
        ("auth/token/create", "Matching Route: ^create$"),
    ] {
        let r = run_bao(&bin, &s, &s.token, &["path-help", path]).ok();
        assert!(r.stdout.contains(expect), "{path}: {r:#?}");
    }
}

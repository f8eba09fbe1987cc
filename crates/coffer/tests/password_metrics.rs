//! Password policies and `sys/metrics` against a real server: the policy
//! lifecycle and Vault's refusals, generation following the rules, the
//! lifecycle `generate` rotator naming a stored policy, metrics in both
//! shapes, and who may read them.

mod cli_support;

use cli_support::{unique, Api, Server};
use serde_json::{json, Value};

const DIGITS_POLICY: &str =
    "length = 16\nrule \"charset\" {\n  charset = \"0123456789\"\n  min-chars = 16\n}\n";

fn token_with(api: &Api<'_>, path: &str, caps: &[&str]) -> String {
    let name = unique("p").to_lowercase();
    let policy = format!("path \"{path}\" {{ capabilities = {caps:?} }}");
    api.root(
        "PUT",
        &format!("sys/policies/acl/{name}"),
        Some(json!({ "policy": policy })),
    );
    let created = api.root(
        "POST",
        "auth/token/create",
        Some(json!({"policies": [name]})),
    );
    created["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn password_policies_store_validate_and_generate() {
    let s = Server::start();
    let api = Api::new(&s);
    // Names are case-sensitive and may hold '/', as in OpenBao.
    api.root(
        "PUT",
        "sys/policies/password/Team/pins",
        Some(json!({ "policy": DIGITS_POLICY })),
    );
    let read = api.root("GET", "sys/policies/password/Team/pins", None);
    assert_eq!(read["data"]["policy"], DIGITS_POLICY);
    let (st, _) = api.call(
        "GET",
        "sys/policies/password/team/pins",
        Some(&s.token),
        None,
    );
    assert_eq!(st, 404);
    for _ in 0..20 {
        let g = api.root("GET", "sys/policies/password/Team/pins/generate", None);
        let pw = g["data"]["password"].as_str().unwrap();
        assert_eq!(pw.len(), 16);
        assert!(pw.bytes().all(|b| b.is_ascii_digit()), "{pw}");
    }
    let list = api.root("LIST", "sys/policies/password", None);
    assert_eq!(list["data"]["keys"], json!(["Team/pins"]));

    // Vault's refusals, each a 400 with a message naming the problem.
    let cases: [(&str, &str); 6] = [
        (
            "length = 3\nrule \"charset\" {\n charset = \"ab\"\n min-chars = 4\n}",
            "require at least 4 characters but 3",
        ),
        ("length = 200\nrule \"charset\" { charset = \"ab\" }", "between 4 and 100"),
        ("length = 20", "no charset specified"),
        ("length = 20\nrule \"nope\" { charset = \"ab\" }", "unrecognized rule type"),
        ("length = {", "unable to decode"),
        // Satisfiable in principle, but a random candidate almost never is.
        (
            "length = 50\nrule \"charset\" { charset = \"abcdefghijklmnopqrstuvwxyz\" }\nrule \"charset\" {\n charset = \"0\"\n min-chars = 40\n}",
            "unable to generate",
        ),
    ];
    for (text, message) in cases {
        let (st, body) = api.call(
            "PUT",
            "sys/policies/password/bad",
            Some(&s.token),
            Some(json!({ "policy": text })),
        );
        assert_eq!(st, 400, "{text}: {body}");
        assert!(
            body["errors"][0].as_str().unwrap().contains(message),
            "{body}"
        );
    }
    let (st, _) = api.call(
        "PUT",
        "sys/policies/password/bad",
        Some(&s.token),
        Some(json!({})),
    );
    assert_eq!(st, 400);
    let (st, body) = api.call(
        "GET",
        "sys/policies/password/missing/generate",
        Some(&s.token),
        None,
    );
    assert_eq!(st, 404, "{body}");
    assert_eq!(body["errors"][0], "policy does not exist");

    // Generation needs read on the generate path, nothing more.
    let t = token_with(&api, "sys/policies/password/Team/pins/generate", &["read"]);
    let (st, _) = api.call(
        "GET",
        "sys/policies/password/Team/pins/generate",
        Some(&t),
        None,
    );
    assert_eq!(st, 200);
    let (st, _) = api.call("GET", "sys/policies/password/Team/pins", Some(&t), None);
    assert_eq!(st, 403);

    api.root("DELETE", "sys/policies/password/Team/pins", None);
    let (st, _) = api.call(
        "GET",
        "sys/policies/password/Team/pins",
        Some(&s.token),
        None,
    );
    assert_eq!(st, 404);
}

#[test]
fn the_generate_rotator_uses_a_named_password_policy() {
    let s = Server::start();
    let api = Api::new(&s);
    api.root(
        "PUT",
        "sys/policies/password/pins",
        Some(json!({ "policy": DIGITS_POLICY })),
    );
    api.root(
        "POST",
        "secret/data/app/pin",
        Some(json!({"data": {"value": "old"}})),
    );
    api.root(
        "POST",
        "secret/lifecycle/app/pin",
        Some(json!({"rotation": {"period": "90d", "rotator": "generate",
            "settings": {"password_policy": "pins"}}})),
    );
    api.root("POST", "secret/rotate/app/pin", Some(json!({})));
    let read = api.root("GET", "secret/data/app/pin", None);
    let v = read["data"]["data"]["value"].as_str().unwrap();
    assert_eq!(v.len(), 16);
    assert!(v.bytes().all(|b| b.is_ascii_digit()), "{v}");
    // Inline settings beside a named policy are refused.
    let (st, body) = api.call(
        "POST",
        "secret/lifecycle/app/pin",
        Some(&s.token),
        Some(json!({"rotation": {"rotator": "generate",
            "settings": {"password_policy": "pins", "length": 12}}})),
    );
    assert_eq!(st, 400, "{body}");
}

fn sample<'a>(j: &'a Value, kind: &str, name: &str) -> Option<&'a Value> {
    j[kind].as_array()?.iter().find(|x| x["Name"] == name)
}

#[test]
fn metrics_in_both_shapes_behind_a_token() {
    let s = Server::start();
    let api = Api::new(&s);
    for i in 0..5 {
        api.root(
            "POST",
            &format!("secret/data/m{i}"),
            Some(json!({"data": {"k": unique("v")}})),
        );
        api.root("GET", &format!("secret/data/m{i}"), None);
    }
    let (st, _) = api.call("GET", "secret/data/none", Some(&s.token), None);
    assert_eq!(st, 404);

    // Vault's rule: a token with read on sys/metrics, unless configured otherwise.
    let (st, _) = api.call("GET", "sys/metrics", None, None);
    assert_eq!(st, 403);
    let reader = token_with(&api, "sys/metrics", &["read"]);
    let (st, j) = api.call("GET", "sys/metrics", Some(&reader), None);
    assert_eq!(st, 200, "{j}");
    for key in ["Timestamp", "Gauges", "Points", "Counters", "Samples"] {
        assert!(j.get(key).is_some(), "{key} missing: {j}");
    }
    let handled = sample(&j, "Samples", "vault.core.handle_request").expect("handle_request");
    assert!(handled["Count"].as_f64().unwrap() >= 11.0, "{handled}");
    for name in ["vault.barrier.get", "vault.barrier.put"] {
        let b = sample(&j, "Samples", name).unwrap_or_else(|| panic!("{name}: {j}"));
        assert!(b["Count"].as_f64().unwrap() >= 1.0);
        assert!(b["Max"].as_f64().unwrap() >= b["Min"].as_f64().unwrap());
    }
    let tokens = sample(&j, "Gauges", "vault.token.count").expect("token count");
    assert!(tokens["Value"].as_f64().unwrap() >= 2.0, "{tokens}");
    assert!(sample(&j, "Gauges", "vault.expire.num_leases").is_some());
    assert!(sample(&j, "Gauges", "coffer.lifecycle.secrets_due").is_some());

    // Prometheus text, with Vault's names.
    let http = reqwest::blocking::Client::new();
    let resp = http
        .get(format!("{}/v1/sys/metrics?format=prometheus", s.addr))
        .header("X-Vault-Token", &reader)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain"), "{ct}");
    let text = resp.text().unwrap();
    for needle in [
        "# TYPE vault_core_handle_request summary",
        "vault_core_handle_request_count",
        "vault_barrier_get_count",
        "vault_expire_num_leases",
        "vault_token_count",
        "coffer_lifecycle_secrets_overdue",
        "coffer_core_requests{status=\"4xx\"}",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    let (st, _) = api.call("GET", "sys/metrics?format=xml", Some(&reader), None);
    assert_eq!(st, 400);
}

#[test]
fn unauthenticated_metrics_access_is_an_operator_setting() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("dev.toml");
    std::fs::write(&cfg, "[telemetry]\nunauthenticated_metrics_access = true\n").unwrap();
    let s = Server::start_dev_config(&cfg);
    let api = Api::new(&s);
    let (st, j) = api.call("GET", "sys/metrics", None, None);
    assert_eq!(st, 200, "{j}");
    assert!(j["Gauges"].is_array());
    // Other sys paths still need a token.
    let (st, _) = api.call("GET", "sys/mounts", None, None);
    assert_eq!(st, 403);
}

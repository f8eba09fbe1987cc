//! The transit engine against a real `coffer server --dev`: ciphertext
//! form and layout (opened with the exported key outside Coffer), batch
//! errors, rotation and `min_decryption_version`, create-on-encrypt under
//! the ACL, signatures checked with an independent verifier, HMAC, export
//! refusals, deletion rules, path spellings, and 32 concurrent
//! rotate+encrypt requests that must lose no version.

mod cli_support;

use base64::{engine::general_purpose::STANDARD as B64, Engine as _};
use cli_support::{token_for, unique, Api, Server};
use serde_json::{json, Value};

fn mount(api: &Api<'_>) -> String {
    let m = unique("transit").to_lowercase();
    api.root(
        "POST",
        &format!("sys/mounts/{m}"),
        Some(json!({"type": "transit"})),
    );
    m
}

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

#[test]
fn encrypt_decrypt_rotate_and_the_ciphertext_layout() {
    let server = Server::start();
    let api = Api::new(&server);
    let m = mount(&api);
    let created = api.root(
        "POST",
        &format!("{m}/keys/app"),
        Some(json!({"exportable": true})),
    );
    assert_eq!(created["data"]["type"], "aes256-gcm96");
    assert_eq!(created["data"]["latest_version"], 1);
    assert!(created["data"]["keys"]["1"].is_i64());

    let plain = format!("payload {}", unique("p"));
    let enc = api.root(
        "POST",
        &format!("{m}/encrypt/app"),
        Some(json!({"plaintext": B64.encode(&plain)})),
    );
    let ct1 = s(&enc["data"]["ciphertext"]);
    assert_eq!(enc["data"]["key_version"], 1);
    let body = ct1.strip_prefix("vault:v1:").expect("vault:v1: prefix");
    let raw = B64.decode(body).unwrap();
    assert_eq!(
        raw.len(),
        12 + plain.len() + 16,
        "nonce || ciphertext || tag"
    );

    // Opened outside Coffer with the exported key: Vault's layout exactly.
    let exported = api.root("GET", &format!("{m}/export/encryption-key/app/1"), None);
    let key = B64.decode(s(&exported["data"]["keys"]["1"])).unwrap();
    {
        use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
        let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).unwrap());
        let (nonce, rest) = raw.split_at(12);
        let mut buf = rest.to_vec();
        let out = k
            .open_in_place(
                Nonce::try_assume_unique_for_key(nonce).unwrap(),
                Aad::empty(),
                &mut buf,
            )
            .unwrap();
        assert_eq!(out, plain.as_bytes());
    }

    let dec = api.root(
        "POST",
        &format!("{m}/decrypt/app"),
        Some(json!({"ciphertext": ct1})),
    );
    assert_eq!(
        B64.decode(s(&dec["data"]["plaintext"])).unwrap(),
        plain.as_bytes()
    );

    // Rotation: new writes use v2, v1 still opens until the minimum moves.
    let rotated = api.root("POST", &format!("{m}/keys/app/rotate"), None);
    assert_eq!(rotated["data"]["latest_version"], 2);
    let ct2 = s(&api.root(
        "POST",
        &format!("{m}/encrypt/app"),
        Some(json!({"plaintext": B64.encode(&plain)})),
    )["data"]["ciphertext"]);
    assert!(ct2.starts_with("vault:v2:"), "{ct2}");
    api.root(
        "POST",
        &format!("{m}/decrypt/app"),
        Some(json!({"ciphertext": ct1})),
    );
    let rewrapped = api.root(
        "POST",
        &format!("{m}/rewrap/app"),
        Some(json!({"ciphertext": ct1})),
    );
    let ct1b = s(&rewrapped["data"]["ciphertext"]);
    assert!(ct1b.starts_with("vault:v2:"));

    let cfg = api.root(
        "POST",
        &format!("{m}/keys/app/config"),
        Some(json!({"min_decryption_version": 2})),
    );
    assert_eq!(cfg["data"]["min_decryption_version"], 2);
    assert!(cfg["data"]["keys"].get("1").is_none(), "{cfg}");
    let (code, body) = api.call(
        "POST",
        &format!("{m}/decrypt/app"),
        Some(&server.token),
        Some(json!({"ciphertext": ct1})),
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body["errors"][0].as_str().unwrap().contains("too old"),
        "{body}"
    );
    for ct in [&ct2, &ct1b] {
        let dec = api.root(
            "POST",
            &format!("{m}/decrypt/app"),
            Some(json!({"ciphertext": ct})),
        );
        assert_eq!(
            B64.decode(s(&dec["data"]["plaintext"])).unwrap(),
            plain.as_bytes()
        );
    }
    // A forged tag and a version that does not exist are refused.
    let mut forged = B64.decode(ct2.strip_prefix("vault:v2:").unwrap()).unwrap();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    for bad in [
        format!("vault:v2:{}", B64.encode(&forged)),
        format!("vault:v9:{}", B64.encode(&forged)),
        "vault:v2:AAAA".to_string(),
        "garbage".to_string(),
    ] {
        let (code, body) = api.call(
            "POST",
            &format!("{m}/decrypt/app"),
            Some(&server.token),
            Some(json!({"ciphertext": bad})),
        );
        assert_eq!(code, 400, "{bad}: {body}");
        assert!(!body.to_string().contains(&plain));
    }
}

#[test]
fn batch_items_fail_one_by_one_and_datakeys_decrypt() {
    let server = Server::start();
    let api = Api::new(&server);
    let m = mount(&api);
    api.root(
        "POST",
        &format!("{m}/keys/b"),
        Some(json!({"type": "chacha20-poly1305"})),
    );
    let (code, body) = api.call(
        "POST",
        &format!("{m}/encrypt/b"),
        Some(&server.token),
        Some(json!({"batch_input": [
            {"plaintext": B64.encode("one"), "reference": "r1"},
            {"plaintext": "!!", "reference": "r2"},
        ]})),
    );
    assert_eq!(code, 400, "{body}");
    let results = body["data"]["batch_results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["reference"], "r1");
    assert!(s(&results[0]["ciphertext"]).starts_with("vault:v1:"));
    assert_eq!(results[1]["reference"], "r2");
    assert!(results[1]["error"].as_str().unwrap().contains("base64"));

    let ok = api.root(
        "POST",
        &format!("{m}/encrypt/b"),
        Some(json!({"batch_input": [{"plaintext": B64.encode("one")}, {"plaintext": B64.encode("two")}]})),
    );
    let cts: Vec<Value> = ok["data"]["batch_results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!({"ciphertext": r["ciphertext"]}))
        .collect();
    let dec = api.root(
        "POST",
        &format!("{m}/decrypt/b"),
        Some(json!({"batch_input": cts})),
    );
    let plains: Vec<Vec<u8>> = dec["data"]["batch_results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| B64.decode(s(&r["plaintext"])).unwrap())
        .collect();
    assert_eq!(plains, vec![b"one".to_vec(), b"two".to_vec()]);

    let dk = api.root(
        "POST",
        &format!("{m}/datakey/plaintext/b"),
        Some(json!({"bits": 512})),
    );
    let key = B64.decode(s(&dk["data"]["plaintext"])).unwrap();
    assert_eq!(key.len(), 64);
    let opened = api.root(
        "POST",
        &format!("{m}/decrypt/b"),
        Some(json!({"ciphertext": dk["data"]["ciphertext"]})),
    );
    assert_eq!(B64.decode(s(&opened["data"]["plaintext"])).unwrap(), key);
    let wrapped = api.root("POST", &format!("{m}/datakey/wrapped/b"), None);
    assert!(wrapped["data"].get("plaintext").is_none(), "{wrapped}");
}

#[test]
fn create_on_encrypt_needs_the_create_capability() {
    let server = Server::start();
    let api = Api::new(&server);
    let m = mount(&api);
    let update_only = token_for(
        &api,
        &format!(r#"path "{m}/encrypt/*" {{ capabilities = ["update"] }}"#),
    );
    let creator = token_for(
        &api,
        &format!(r#"path "{m}/encrypt/*" {{ capabilities = ["create", "update"] }}"#),
    );
    let body = json!({"plaintext": B64.encode("x")});
    let (code, _) = api.call(
        "POST",
        &format!("{m}/encrypt/fresh"),
        Some(&update_only),
        Some(body.clone()),
    );
    assert_eq!(code, 403, "encrypting to a missing key is a create");
    let (code, _) = api.call("GET", &format!("{m}/keys/fresh"), Some(&server.token), None);
    assert_eq!(code, 404, "the refused request made no key");
    let (code, out) = api.call(
        "POST",
        &format!("{m}/encrypt/fresh"),
        Some(&creator),
        Some(body.clone()),
    );
    assert_eq!(code, 200, "{out}");
    let key = api.root("GET", &format!("{m}/keys/fresh"), None);
    assert_eq!(key["data"]["type"], "aes256-gcm96");
    // Now it exists, so update suffices.
    let (code, _) = api.call(
        "POST",
        &format!("{m}/encrypt/fresh"),
        Some(&update_only),
        Some(body),
    );
    assert_eq!(code, 200);
    // A derived key made by encrypt with a context needs the context later.
    let enc = api.root(
        "POST",
        &format!("{m}/encrypt/derived"),
        Some(json!({"plaintext": B64.encode("x"), "context": B64.encode("tenant-a")})),
    );
    let ct = s(&enc["data"]["ciphertext"]);
    let key = api.root("GET", &format!("{m}/keys/derived"), None);
    assert_eq!(key["data"]["derived"], true);
    let (code, _) = api.call(
        "POST",
        &format!("{m}/decrypt/derived"),
        Some(&server.token),
        Some(json!({"ciphertext": ct})),
    );
    assert_eq!(code, 400);
    let (code, _) = api.call(
        "POST",
        &format!("{m}/decrypt/derived"),
        Some(&server.token),
        Some(json!({"ciphertext": ct, "context": B64.encode("tenant-b")})),
    );
    assert_eq!(code, 400, "another context derives another key");
    let dec = api.root(
        "POST",
        &format!("{m}/decrypt/derived"),
        Some(json!({"ciphertext": ct, "context": B64.encode("tenant-a")})),
    );
    assert_eq!(dec["data"]["plaintext"], B64.encode("x"));
}

#[test]
fn signatures_verify_here_and_with_an_independent_verifier() {
    let server = Server::start();
    let api = Api::new(&server);
    let m = mount(&api);
    let input = B64.encode(format!("message {}", unique("m")));
    for (key, kind, extra) in [
        ("ed", "ed25519", json!({})),
        ("ec", "ecdsa-p256", json!({})),
        ("rsa-pss", "rsa-2048", json!({"signature_algorithm": "pss"})),
        (
            "rsa-v15",
            "rsa-2048",
            json!({"signature_algorithm": "pkcs1v15", "hash_algorithm": "sha2-512"}),
        ),
    ] {
        let created = api.root(
            "POST",
            &format!("{m}/keys/{key}"),
            Some(json!({"type": kind})),
        );
        assert_eq!(created["data"]["supports_signing"], true);
        let mut req = extra.clone();
        req["input"] = json!(input);
        let signed = api.root("POST", &format!("{m}/sign/{key}"), Some(req.clone()));
        let sig = s(&signed["data"]["signature"]);
        assert!(sig.starts_with("vault:v1:"), "{sig}");
        let mut v = req.clone();
        v["signature"] = json!(sig);
        let ok = api.root("POST", &format!("{m}/verify/{key}"), Some(v.clone()));
        assert_eq!(ok["data"]["valid"], true, "{kind}");
        v["input"] = json!(B64.encode("another message"));
        let bad = api.root("POST", &format!("{m}/verify/{key}"), Some(v));
        assert_eq!(bad["data"]["valid"], false, "{kind}");
        if kind == "ed25519" {
            let read = api.root("GET", &format!("{m}/keys/{key}"), None);
            let public = B64
                .decode(s(&read["data"]["keys"]["1"]["public_key"]))
                .unwrap();
            let raw_sig = B64.decode(sig.strip_prefix("vault:v1:").unwrap()).unwrap();
            let msg = B64.decode(&input).unwrap();
            aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, &public)
                .verify(&msg, &raw_sig)
                .expect("an independent Ed25519 verifier accepts the signature");
        }
    }
    // A symmetric key does not sign; a rotated key verifies old signatures
    // until min_decryption_version passes them.
    let (code, _) = api.call(
        "POST",
        &format!("{m}/keys/sym"),
        Some(&server.token),
        Some(json!({})),
    );
    assert_eq!(code, 200);
    let (code, _) = api.call(
        "POST",
        &format!("{m}/sign/sym"),
        Some(&server.token),
        Some(json!({"input": input})),
    );
    assert_eq!(code, 400);
    let old = s(&api.root(
        "POST",
        &format!("{m}/sign/ed"),
        Some(json!({"input": input})),
    )["data"]["signature"]);
    api.root("POST", &format!("{m}/keys/ed/rotate"), None);
    let ok = api.root(
        "POST",
        &format!("{m}/verify/ed"),
        Some(json!({"input": input, "signature": old})),
    );
    assert_eq!(ok["data"]["valid"], true);
    api.root(
        "POST",
        &format!("{m}/keys/ed/config"),
        Some(json!({"min_decryption_version": 2})),
    );
    let (code, _) = api.call(
        "POST",
        &format!("{m}/verify/ed"),
        Some(&server.token),
        Some(json!({"input": input, "signature": old})),
    );
    assert_eq!(code, 400);
}

#[test]
fn hmac_hash_random_and_export_rules() {
    let server = Server::start();
    let api = Api::new(&server);
    let m = mount(&api);
    api.root("POST", &format!("{m}/keys/h"), Some(json!({})));
    let input = B64.encode("hmac me");
    let mac = s(&api.root(
        "POST",
        &format!("{m}/hmac/h/sha2-512"),
        Some(json!({"input": input})),
    )["data"]["hmac"]);
    assert!(mac.starts_with("vault:v1:"));
    assert_eq!(
        B64.decode(mac.strip_prefix("vault:v1:").unwrap())
            .unwrap()
            .len(),
        64
    );
    let ok = api.root(
        "POST",
        &format!("{m}/verify/h/sha2-512"),
        Some(json!({"input": input, "hmac": mac})),
    );
    assert_eq!(ok["data"]["valid"], true);
    let bad = api.root(
        "POST",
        &format!("{m}/verify/h/sha2-512"),
        Some(json!({"input": B64.encode("other"), "hmac": mac})),
    );
    assert_eq!(bad["data"]["valid"], false);

    let sum = api.root(
        "POST",
        &format!("{m}/hash/sha2-256"),
        Some(json!({"input": B64.encode("hello")})),
    );
    assert_eq!(
        sum["data"]["sum"],
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    let rnd = api.root(
        "POST",
        &format!("{m}/random/16"),
        Some(json!({"format": "hex"})),
    );
    assert_eq!(s(&rnd["data"]["random_bytes"]).len(), 32);

    // Not exportable: every export form is refused; the flag cannot be
    // turned off once on.
    for kind in ["encryption-key", "hmac-key"] {
        let (code, body) = api.call(
            "GET",
            &format!("{m}/export/{kind}/h"),
            Some(&server.token),
            None,
        );
        assert_eq!(code, 400, "{body}");
        assert_eq!(body["errors"][0], "private key material is not exportable");
    }
    let (code, _) = api.call(
        "GET",
        &format!("{m}/export/encryption-key/nokey"),
        Some(&server.token),
        None,
    );
    assert_eq!(code, 404);
    api.root(
        "POST",
        &format!("{m}/keys/ec"),
        Some(json!({"type": "ecdsa-p256", "exportable": true})),
    );
    let ex = api.root("GET", &format!("{m}/export/signing-key/ec"), None);
    assert!(s(&ex["data"]["keys"]["1"]).starts_with("-----BEGIN EC PRIVATE KEY-----"));
    let (code, _) = api.call(
        "GET",
        &format!("{m}/export/encryption-key/ec"),
        Some(&server.token),
        None,
    );
    assert_eq!(code, 400, "an ECDSA key has no encryption key");
    let cfg = api.root(
        "POST",
        &format!("{m}/keys/ec/config"),
        Some(json!({"exportable": false})),
    );
    assert_eq!(cfg["data"]["exportable"], true);

    // Deletion only when allowed.
    let (code, _) = api.call("DELETE", &format!("{m}/keys/h"), Some(&server.token), None);
    assert_eq!(code, 400);
    api.root(
        "POST",
        &format!("{m}/keys/h/config"),
        Some(json!({"deletion_allowed": true})),
    );
    let (code, _) = api.call("DELETE", &format!("{m}/keys/h"), Some(&server.token), None);
    assert_eq!(code, 204);
    let (code, _) = api.call("GET", &format!("{m}/keys/h"), Some(&server.token), None);
    assert_eq!(code, 404);
}

#[test]
fn key_names_are_exact_and_paths_are_not_widened() {
    let server = Server::start();
    let api = Api::new(&server);
    let m = mount(&api);
    api.root("POST", &format!("{m}/keys/Mixed"), Some(json!({})));
    let only_mixed = token_for(
        &api,
        &format!(r#"path "{m}/encrypt/Mixed" {{ capabilities = ["update"] }}"#),
    );
    let body = json!({"plaintext": B64.encode("x")});
    let (code, _) = api.call(
        "POST",
        &format!("{m}/encrypt/Mixed"),
        Some(&only_mixed),
        Some(body.clone()),
    );
    assert_eq!(code, 200);
    // A trailing slash or an escaped letter is the same path, decoded and
    // judged once (canonical.rs), so the rule for "Mixed" covers exactly it.
    for same in ["Mixed/", "%4Dixed"] {
        let (code, _) = api.call(
            "POST",
            &format!("{m}/encrypt/{same}"),
            Some(&only_mixed),
            Some(body.clone()),
        );
        assert_eq!(code, 200, "{same}");
    }
    for other in ["mixed", "Mixed/x", "Mixed%2Fx", "Mixed."] {
        let (code, _) = api.call(
            "POST",
            &format!("{m}/encrypt/{other}"),
            Some(&only_mixed),
            Some(body.clone()),
        );
        assert!(code == 403 || code == 400 || code == 404, "{other}: {code}");
    }
    let (code, _) = api.call("GET", &format!("{m}/keys/mixed"), Some(&server.token), None);
    assert_eq!(code, 404, "names are case-sensitive, as in Vault");
    let (code, _) = api.call(
        "POST",
        &format!("{m}/encrypt/a/b"),
        Some(&server.token),
        Some(body),
    );
    assert_eq!(code, 404);
    let listed = api.root("LIST", &format!("{m}/keys"), None);
    assert_eq!(listed["data"]["keys"], json!(["Mixed"]));
}

#[test]
fn concurrent_rotations_and_encryptions_lose_no_version() {
    let server = Server::start();
    let api = Api::new(&server);
    let m = mount(&api);
    api.root("POST", &format!("{m}/keys/c"), Some(json!({})));
    let plain = B64.encode("concurrent");
    // Clients are built first and released together, so the 32 requests
    // are in flight at once.
    let clients: Vec<Api<'_>> = (0..32).map(|_| Api::new(&server)).collect();
    let start = std::sync::Barrier::new(32);
    let results: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(i, api)| {
                let m = m.clone();
                let plain = plain.clone();
                let token = server.token.clone();
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    if i % 2 == 0 {
                        api.call("POST", &format!("{m}/keys/c/rotate"), Some(&token), None)
                    } else {
                        api.call(
                            "POST",
                            &format!("{m}/encrypt/c"),
                            Some(&token),
                            Some(json!({"plaintext": plain})),
                        )
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut cts = Vec::new();
    for (code, body) in &results {
        assert_eq!(*code, 200, "{body}");
        if let Some(ct) = body["data"]["ciphertext"].as_str() {
            cts.push(ct.to_string());
        }
    }
    assert_eq!(cts.len(), 16);
    let key = api.root("GET", &format!("{m}/keys/c"), None);
    assert_eq!(
        key["data"]["latest_version"], 17,
        "16 rotations on version 1"
    );
    assert_eq!(key["data"]["keys"].as_object().unwrap().len(), 17);
    for ct in cts {
        let dec = api.root(
            "POST",
            &format!("{m}/decrypt/c"),
            Some(json!({"ciphertext": ct})),
        );
        assert_eq!(dec["data"]["plaintext"], plain);
    }
}

#[test]
fn the_readme_cli_session_works() {
    let server = Server::start();
    server.run(&["secrets", "enable", "transit"]).ok();
    server.run(&["write", "-f", "transit/keys/app"]).ok();
    let plain = B64.encode("card 4111");
    let enc = server
        .run(&[
            "write",
            "--format",
            "json",
            "transit/encrypt/app",
            &format!("plaintext={plain}"),
        ])
        .ok()
        .json();
    let ct = s(&enc["data"]["ciphertext"]);
    assert!(ct.starts_with("vault:v1:"), "{enc}");
    server.run(&["write", "-f", "transit/keys/app/rotate"]).ok();
    server
        .run(&[
            "write",
            "transit/keys/app/config",
            "min_decryption_version=1",
            "auto_rotate_period=720h",
        ])
        .ok();
    let rewrapped = server
        .run(&[
            "write",
            "--format",
            "json",
            "transit/rewrap/app",
            &format!("ciphertext={ct}"),
        ])
        .ok()
        .json();
    let ct2 = s(&rewrapped["data"]["ciphertext"]);
    assert!(ct2.starts_with("vault:v2:"), "{rewrapped}");
    let dec = server
        .run(&[
            "write",
            "--format",
            "json",
            "transit/decrypt/app",
            &format!("ciphertext={ct2}"),
        ])
        .ok()
        .json();
    assert_eq!(dec["data"]["plaintext"], plain);
    let key = server
        .run(&["read", "--format", "json", "transit/keys/app"])
        .ok()
        .json();
    assert_eq!(key["data"]["auto_rotate_period"], 720 * 3600);
}

/// Whether `needle` occurs in `hay`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn key_material_never_reaches_the_database_file_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("transit.db");
    let server = Server::start_with(&["--dev-storage", db.to_str().unwrap()]);
    let api = Api::new(&server);
    let m = mount(&api);
    let mut needles: Vec<Vec<u8>> = Vec::new();
    for (name, kind) in [("aes", "aes256-gcm96"), ("mac", "hmac"), ("ed", "ed25519")] {
        api.root(
            "POST",
            &format!("{m}/keys/{name}"),
            Some(json!({"type": kind, "exportable": true, "key_size": 32})),
        );
        api.root("POST", &format!("{m}/keys/{name}/rotate"), None);
        let export_kind = match kind {
            "aes256-gcm96" => "encryption-key",
            "hmac" => "hmac-key",
            _ => "signing-key",
        };
        let ex = api.root("GET", &format!("{m}/export/{export_kind}/{name}"), None);
        for v in ex["data"]["keys"].as_object().unwrap().values() {
            let b64 = s(v);
            let raw = B64.decode(&b64).unwrap();
            needles.push(raw[..32].to_vec());
            needles.push(b64.into_bytes());
        }
    }
    let plain = format!("transit-plaintext-{}", unique("p"));
    api.root(
        "POST",
        &format!("{m}/encrypt/aes"),
        Some(json!({"plaintext": B64.encode(&plain)})),
    );
    needles.push(plain.into_bytes());
    assert_eq!(needles.len(), 13);
    drop(server);
    let mut files = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        files += 1;
        for n in &needles {
            assert!(
                !contains(&bytes, n),
                "key material in clear in {}",
                path.display()
            );
        }
    }
    assert!(files >= 1);
}

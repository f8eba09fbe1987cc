//! The pki engine and the lifecycle's `pki` rotator against a real server:
//! a root and an intermediate CA, roles, issuance checked by `openssl
//! verify`, name-rule attacks, revocation and the CRL, lease revocation,
//! and a short-lived lifecycle certificate reissued before it expires.

mod cli_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cli_support::{Api, Server};
use serde_json::{json, Value};

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl CLI");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// Mounts `pki` (root) and `pki_int` (intermediate signed by the root) and
/// a role `web` on the intermediate for subdomains of example.com.
/// Returns (root PEM, intermediate PEM).
fn root_and_intermediate(api: &Api) -> (String, String) {
    for m in ["pki", "pki_int"] {
        api.root(
            "POST",
            &format!("sys/mounts/{m}"),
            Some(json!({"type": "pki", "config": {"max_lease_ttl": "87600h"}})),
        );
    }
    let root = api.root(
        "POST",
        "pki/root/generate/internal",
        Some(json!({"common_name": "Coffer Test Root", "ttl": "87600h", "key_type": "ec"})),
    );
    assert!(root["data"].get("private_key").is_none(), "{root}");
    let root_pem = s(&root["data"]["certificate"]).to_string();
    let csr = api.root(
        "POST",
        "pki_int/intermediate/generate/internal",
        Some(
            json!({"common_name": "Coffer Test Intermediate", "key_type": "rsa", "key_bits": 2048}),
        ),
    );
    let signed = api.root(
        "POST",
        "pki/root/sign-intermediate",
        Some(json!({"csr": csr["data"]["csr"], "common_name": "Coffer Test Intermediate", "ttl": "43800h"})),
    );
    let int_pem = s(&signed["data"]["certificate"]).to_string();
    let set = api.root(
        "POST",
        "pki_int/intermediate/set-signed",
        Some(json!({"certificate": format!("{int_pem}\n{root_pem}")})),
    );
    // The intermediate (with this mount's key) and the root (keyless), as OpenBao imports them.
    assert_eq!(
        set["data"]["imported_issuers"].as_array().unwrap().len(),
        2,
        "{set}"
    );
    api.root(
        "POST",
        "pki_int/roles/web",
        Some(json!({"allowed_domains": ["example.com"], "allow_subdomains": true, "max_ttl": "72h", "key_type": "ec"})),
    );
    (root_pem, int_pem)
}

#[test]
fn issued_certificates_verify_with_openssl_against_the_chain() {
    let srv = Server::start();
    let api = Api::new(&srv);
    let (root, int) = root_and_intermediate(&api);
    let dir = tempfile::tempdir().unwrap();
    let root_f = write(dir.path(), "root.pem", &root);
    let int_f = write(dir.path(), "int.pem", &int);
    for (role, key_type, bits) in [
        ("web", "ec", 256),
        ("web-rsa", "rsa", 2048),
        ("web-ed", "ed25519", 0),
    ] {
        if role != "web" {
            api.root(
                "POST",
                &format!("pki_int/roles/{role}"),
                Some(json!({"allowed_domains": "example.com", "allow_subdomains": true, "key_type": key_type, "key_bits": bits})),
            );
        }
        let out = api.root(
            "POST",
            &format!("pki_int/issue/{role}"),
            Some(json!({"common_name": "www.example.com", "alt_names": "api.example.com", "ip_sans": "127.0.0.1", "ttl": "1h"})),
        );
        let d = &out["data"];
        assert_eq!(d["private_key_type"], key_type, "{out}");
        assert_eq!(s(&d["issuing_ca"]).trim(), int.trim());
        assert!(d["expiration"].as_i64().unwrap() > chrono::Utc::now().timestamp() + 3000);
        let leaf = write(dir.path(), &format!("{role}.pem"), s(&d["certificate"]));
        let (ok, text) = openssl(&["verify", "-CAfile", &root_f, "-untrusted", &int_f, &leaf]);
        assert!(ok && text.contains(": OK"), "{role}: {text}");
        // The chain alone (no root given as trusted) must not verify.
        let (ok, _) = openssl(&["verify", "-CAfile", &int_f, &leaf]);
        assert!(!ok, "verified without the root");
        let (_, names) = openssl(&[
            "x509",
            "-in",
            &leaf,
            "-noout",
            "-ext",
            "subjectAltName,extendedKeyUsage",
        ]);
        for n in [
            "DNS:www.example.com",
            "DNS:api.example.com",
            "IP Address:127.0.0.1",
            "TLS Web Server Authentication",
        ] {
            assert!(names.contains(n), "{n} missing: {names}");
        }
        // The private key is the certificate's.
        let key = write(dir.path(), &format!("{role}.key"), s(&d["private_key"]));
        let (_, a) = openssl(&["pkey", "-in", &key, "-pubout"]);
        let (_, b) = openssl(&["x509", "-in", &leaf, "-noout", "-pubkey"]);
        assert_eq!(a.trim(), b.trim());
        // cert/:serial answers the same certificate, with colons or hyphens.
        let serial = s(&d["serial_number"]);
        let by_serial = api.root(
            "GET",
            &format!("pki_int/cert/{}", serial.replace(':', "-")),
            None,
        );
        assert_eq!(by_serial["data"]["certificate"], d["certificate"]);
    }
    // sign/:role with a CSR made by openssl.
    let key = dir.path().join("csr.key");
    let csr = dir.path().join("csr.pem");
    let (ok, text) = openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        csr.to_str().unwrap(),
        "-subj",
        "/CN=signed.example.com",
    ]);
    assert!(ok, "{text}");
    let out = api.root(
        "POST",
        "pki_int/sign/web",
        Some(json!({"csr": std::fs::read_to_string(&csr).unwrap()})),
    );
    assert!(out["data"].get("private_key").is_none());
    let leaf = write(dir.path(), "signed.pem", s(&out["data"]["certificate"]));
    let (ok, text) = openssl(&["verify", "-CAfile", &root_f, "-untrusted", &int_f, &leaf]);
    assert!(ok, "{text}");
    // LIST certs has it; the CA documents answer without a token.
    let list = api.root("LIST", "pki_int/certs", None);
    assert!(list["data"]["keys"]
        .as_array()
        .unwrap()
        .contains(&out["data"]["serial_number"]));
    let (st, pem) = api.call("GET", "pki_int/ca/pem", None, None);
    assert_eq!(st, 200);
    assert_eq!(s(&pem).trim(), int.trim());
    let (st, chain) = api.call("GET", "pki_int/ca_chain", None, None);
    assert_eq!(st, 200);
    assert!(s(&chain).contains(root.trim()), "{chain}");
    let (st, _) = api.call("POST", "pki_int/crl/rotate", None, None);
    assert_eq!(st, 403, "crl/rotate must need a token");
    let (st, _) = api.call("LIST", "pki_int/certs", None, None);
    assert_eq!(st, 403);
    let def = api.root("GET", "pki_int/issuer/default", None);
    assert_eq!(s(&def["data"]["certificate"]).trim(), int.trim());
    let issuers = api.root("LIST", "pki_int/issuers", None);
    assert_eq!(issuers["data"]["keys"].as_array().unwrap().len(), 2);
    let default = s(&def["data"]["issuer_id"]).to_string();
    assert_eq!(
        issuers["data"]["key_info"][&default]["is_default"], true,
        "{issuers}"
    );
}

#[test]
fn exported_roots_answer_the_key_once() {
    let srv = Server::start();
    let api = Api::new(&srv);
    api.root("POST", "sys/mounts/pki", Some(json!({"type": "pki"})));
    let out = api.root(
        "POST",
        "pki/root/generate/exported",
        Some(json!({"common_name": "Exported Root", "key_type": "ec"})),
    );
    let key = s(&out["data"]["private_key"]);
    assert!(key.contains("PRIVATE KEY"));
    assert_eq!(out["data"]["private_key_type"], "ec");
    for path in ["pki/issuer/default", "pki/cert/ca", "pki/config/issuers"] {
        let r = api.root("GET", path, None);
        assert!(!r.to_string().contains("PRIVATE KEY"), "{path}: {r}");
    }
    let (st, _) = api.call(
        "POST",
        "pki/root/generate/kms",
        Some(&srv.token),
        Some(json!({"common_name": "x"})),
    );
    assert_eq!(st, 400);
}

#[test]
fn name_rule_attacks_are_refused() {
    let srv = Server::start();
    let api = Api::new(&srv);
    root_and_intermediate(&api);
    let tok = srv.token.clone();
    let refused = |body: Value| {
        let (st, out) = api.call("POST", "pki_int/issue/web", Some(&tok), Some(body.clone()));
        assert_eq!(st, 400, "{body} was issued: {out}");
        assert!(out.get("errors").is_some(), "{out}");
    };
    for cn in [
        "example.com",
        "evilexample.com",
        "example.com.evil.com",
        "www.example.com.",
        "WWW.EXAMPLE.COM.",
        "WWW.EXAMPLE.COM",
        "www.Example.com",
        "a..example.com",
        "*.evil.com",
        "f*o.example.com",
        "www.example.com\u{0}.evil.com",
        "www.exаmple.com",
        "evil.com",
        "user@example.com",
        "",
    ] {
        refused(json!({"common_name": cn}));
    }
    refused(json!({"common_name": "ok.example.com", "alt_names": "evil.com"}));
    refused(
        json!({"common_name": "ok.example.com", "alt_names": ["ok2.example.com", "evil.com."]}),
    );
    refused(json!({"common_name": "ok.example.com", "ip_sans": "not-an-ip"}));
    refused(json!({"common_name": "ok.example.com", "ttl": "1h", "issuer_ref": "nope"}));
    // A wildcard under an allowed domain is fine (allow_subdomains), and the
    // names go into the certificate exactly as judged.
    let out = api.root(
        "POST",
        "pki_int/issue/web",
        Some(json!({"common_name": "*.example.com", "alt_names": "A.b.example.com"})),
    );
    let dir = tempfile::tempdir().unwrap();
    let leaf = write(dir.path(), "l.pem", s(&out["data"]["certificate"]));
    let (_, text) = openssl(&[
        "x509",
        "-in",
        &leaf,
        "-noout",
        "-subject",
        "-ext",
        "subjectAltName",
    ]);
    assert!(
        text.contains("DNS:*.example.com") && text.contains("DNS:A.b.example.com"),
        "{text}"
    );
    // Without allow_ip_sans, an address is refused in every field.
    api.root(
        "POST",
        "pki_int/roles/noip",
        Some(json!({"allowed_domains": "example.com", "allow_subdomains": true, "allow_ip_sans": false, "allow_localhost": false})),
    );
    for body in [
        json!({"common_name": "a.example.com", "ip_sans": "10.0.0.1"}),
        json!({"common_name": "a.example.com", "alt_names": "10.0.0.1"}),
        json!({"common_name": "127.0.0.1"}),
        json!({"common_name": "localhost"}),
    ] {
        let (st, out) = api.call("POST", "pki_int/issue/noip", Some(&tok), Some(body.clone()));
        assert_eq!(st, 400, "{body}: {out}");
    }
    // A CSR asking for a name the role does not allow, in its SANs or CN.
    for (subj, san) in [
        ("/CN=ok.example.com", "subjectAltName=DNS:evil.com"),
        ("/CN=evil.com", "subjectAltName=DNS:ok.example.com"),
    ] {
        let key = dir.path().join("k.pem");
        let csr = dir.path().join("c.pem");
        let (ok, text) = openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            csr.to_str().unwrap(),
            "-subj",
            subj,
            "-addext",
            san,
        ]);
        assert!(ok, "{text}");
        let (st, out) = api.call(
            "POST",
            "pki_int/sign/web",
            Some(&tok),
            Some(json!({"csr": std::fs::read_to_string(&csr).unwrap()})),
        );
        assert_eq!(st, 400, "{subj} {san}: {out}");
    }
    // A TTL past the role's maximum is capped, with a warning.
    let out = api.root(
        "POST",
        "pki_int/issue/web",
        Some(json!({"common_name": "t.example.com", "ttl": "1000h"})),
    );
    let exp = out["data"]["expiration"].as_i64().unwrap();
    assert!(
        exp <= chrono::Utc::now().timestamp() + 72 * 3600 + 5,
        "{out}"
    );
    assert!(out["warnings"].to_string().contains("maxTTL"), "{out}");
}

#[test]
fn revocation_reaches_the_crl_and_lease_revocation_revokes() {
    let srv = Server::start();
    let api = Api::new(&srv);
    let (root, int) = root_and_intermediate(&api);
    let dir = tempfile::tempdir().unwrap();
    let out = api.root(
        "POST",
        "pki_int/issue/web",
        Some(json!({"common_name": "r.example.com"})),
    );
    let serial = s(&out["data"]["serial_number"]).to_string();
    let leaf = write(dir.path(), "leaf.pem", s(&out["data"]["certificate"]));
    let rev = api.root(
        "POST",
        "pki_int/revoke",
        Some(json!({"serial_number": serial})),
    );
    assert!(
        rev["data"]["revocation_time"].as_i64().unwrap() > 0,
        "{rev}"
    );
    let (st, crl) = api.call("GET", "pki_int/crl/pem", None, None);
    assert_eq!(st, 200);
    let crl_f = write(dir.path(), "crl.pem", s(&crl));
    let (ok, text) = openssl(&["crl", "-in", &crl_f, "-noout", "-text"]);
    assert!(ok, "{text}");
    let hex = serial.replace(':', "").to_uppercase();
    assert!(text.contains(&hex), "{hex} not in the CRL: {text}");
    let chain = write(dir.path(), "chain.pem", &format!("{int}\n{root}"));
    let root_f = write(dir.path(), "root.pem", &root);
    let int_f = write(dir.path(), "int.pem", &int);
    let (ok, text) = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        &chain,
        "-CRLfile",
        &crl_f,
        &leaf,
    ]);
    assert!(!ok && text.contains("revoked"), "{text}");
    let _ = (root_f, int_f);
    let c = api.root("GET", &format!("pki_int/cert/{serial}"), None);
    assert!(c["data"]["revocation_time"].as_i64().unwrap() > 0);
    // The CA's own certificate cannot be revoked through its own CRL.
    let ca_serial = api.root("GET", "pki_int/cert/ca", None);
    let (_, txt) = openssl(&[
        "x509",
        "-noout",
        "-serial",
        "-in",
        &write(dir.path(), "ca.pem", s(&ca_serial["data"]["certificate"])),
    ]);
    let ca_hex = txt.trim().trim_start_matches("serial=").to_lowercase();
    let ca_colon: Vec<String> = ca_hex
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let (st, _) = api.call(
        "POST",
        "pki_int/revoke",
        Some(&srv.token),
        Some(json!({"serial_number": ca_colon.join(":")})),
    );
    assert_eq!(st, 400);
    // A leased certificate: revoking the lease revokes the certificate.
    api.root(
        "POST",
        "pki_int/roles/leased",
        Some(json!({"allowed_domains": "example.com", "allow_subdomains": true, "generate_lease": true, "key_type": "ec"})),
    );
    let out = api.root(
        "POST",
        "pki_int/issue/leased",
        Some(json!({"common_name": "l.example.com", "ttl": "1h"})),
    );
    let lease = s(&out["lease_id"]).to_string();
    assert!(lease.starts_with("pki_int/issue/leased/"), "{out}");
    assert!(out["lease_duration"].as_u64().unwrap() > 3500);
    let serial = s(&out["data"]["serial_number"]).to_string();
    api.root(
        "POST",
        "sys/leases/revoke",
        Some(json!({"lease_id": lease})),
    );
    let c = api.root("GET", &format!("pki_int/cert/{serial}"), None);
    assert!(c["data"]["revocation_time"].as_i64().unwrap() > 0, "{c}");
    let (_, crl) = api.call("GET", "pki_int/crl/pem", None, None);
    let crl_f = write(dir.path(), "crl2.pem", s(&crl));
    let (_, text) = openssl(&["crl", "-in", &crl_f, "-noout", "-text"]);
    assert!(
        text.contains(&serial.replace(':', "").to_uppercase()),
        "{text}"
    );
    // 32 concurrent revocations all reach the CRL.
    let serials: Vec<String> = (0..32)
        .map(|i| {
            let o = api.root(
                "POST",
                "pki_int/issue/web",
                Some(json!({"common_name": format!("c{i}.example.com"), "ttl": "1h"})),
            );
            s(&o["data"]["serial_number"]).to_string()
        })
        .collect();
    std::thread::scope(|sc| {
        for serial in &serials {
            let api = Api::new(&srv);
            sc.spawn(move || {
                api.root(
                    "POST",
                    "pki_int/revoke",
                    Some(json!({"serial_number": serial})),
                );
            });
        }
    });
    let (_, crl) = api.call("GET", "pki_int/crl/pem", None, None);
    let crl_f = write(dir.path(), "crl3.pem", s(&crl));
    let (_, text) = openssl(&["crl", "-in", &crl_f, "-noout", "-text"]);
    for serial in &serials {
        assert!(
            text.contains(&serial.replace(':', "").to_uppercase()),
            "{serial} missing"
        );
    }
    // Tidy with a zero safety buffer keeps unexpired certificates.
    let (st, _) = api.call(
        "POST",
        "pki_int/tidy",
        Some(&srv.token),
        Some(json!({"tidy_cert_store": true, "tidy_revoked_certs": true, "safety_buffer": "0s"})),
    );
    assert_eq!(st, 202);
    let status = api.root("GET", "pki_int/tidy-status", None);
    assert_eq!(status["data"]["cert_store_deleted_count"], 0, "{status}");
    assert!(
        api.root("GET", &format!("pki_int/cert/{serial}"), None)["data"]["certificate"].is_string()
    );
}

/// `openssl x509 -enddate` of a PEM, as Unix seconds.
fn not_after(dir: &Path, pem: &str) -> i64 {
    let f = write(dir, "na.pem", pem);
    let (_, t) = openssl(&["x509", "-in", &f, "-noout", "-enddate"]);
    let date = t.trim().trim_start_matches("notAfter=");
    chrono::NaiveDateTime::parse_from_str(date.trim_end_matches(" GMT"), "%b %e %H:%M:%S %Y")
        .unwrap_or_else(|e| panic!("{date}: {e}"))
        .and_utc()
        .timestamp()
}

#[test]
fn the_pki_rotator_reissues_a_short_lived_certificate_before_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("coffer.toml");
    std::fs::write(
        &cfg,
        "[rotator.web-cert]\ntype = \"pki\"\nmount = \"pki\"\nrole = \"web\"\nlead_time = \"20s\"\ngrace_period = \"3s\"\n",
    )
    .unwrap();
    let srv = Server::start_dev_config(&cfg);
    let api = Api::new(&srv);
    api.root("POST", "sys/mounts/pki", Some(json!({"type": "pki"})));
    let root = api.root(
        "POST",
        "pki/root/generate/internal",
        Some(json!({"common_name": "Rotator Root", "key_type": "ec"})),
    );
    let root_f = write(dir.path(), "root.pem", s(&root["data"]["certificate"]));
    api.root(
        "POST",
        "pki/roles/web",
        Some(json!({"allowed_domains": "example.com", "allow_subdomains": true, "key_type": "ec", "ttl": "30s", "max_ttl": "1h"})),
    );
    let tok = srv.token.clone();
    // The mount and role come from the declaration only.
    for settings in [
        json!({"name": "web-cert", "common_name": "app.example.com", "mount": "other"}),
        json!({"name": "web-cert", "common_name": "app.example.com", "role": "any"}),
        json!({"name": "nope", "common_name": "app.example.com"}),
        json!({"name": "web-cert"}),
    ] {
        let (st, out) = api.call(
            "POST",
            "secret/lifecycle/app-tls",
            Some(&tok),
            Some(json!({"secret_type": "certificate", "rotation": {"rotator": "pki", "settings": settings}})),
        );
        assert_eq!(st, 400, "{settings}: {out}");
    }
    // A name the role refuses fails the rotation and leaves nothing behind.
    api.root(
        "POST",
        "secret/lifecycle/bad-tls",
        Some(json!({"secret_type": "certificate", "rotation": {"rotator": "pki", "settings": {"name": "web-cert", "common_name": "evil.com"}}})),
    );
    let (st, out) = api.call("POST", "secret/rotate/bad-tls", Some(&tok), Some(json!({})));
    assert_eq!(st, 400, "{out}");
    assert!(
        out.to_string().contains("not allowed by this role"),
        "{out}"
    );
    api.root(
        "POST",
        "secret/lifecycle/app-tls",
        Some(json!({"secret_type": "certificate", "owner": "web", "rotation": {"rotator": "pki", "settings": {"name": "web-cert", "common_name": "app.example.com"}}})),
    );
    let first = api.root(
        "POST",
        "secret/rotate/app-tls",
        Some(json!({"reason": "first issue"})),
    );
    assert_eq!(first["data"]["new_version"], 1, "{first}");
    let v1 = api.root("GET", "secret/data/app-tls", None);
    let first_serial = s(&v1["data"]["data"]["serial_number"]).to_string();
    let first_end = not_after(dir.path(), s(&v1["data"]["data"]["certificate"]));
    // Watch: the current certificate is valid at every look, and a new one
    // is in place before the first one's NotAfter.
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut rotated_at = None;
    let mut seen = vec![first_serial.clone()];
    while Instant::now() < deadline {
        let cur = api.root("GET", "secret/data/app-tls", None);
        let d = &cur["data"]["data"];
        let now = chrono::Utc::now().timestamp();
        let end = not_after(dir.path(), s(&d["certificate"]));
        assert!(
            end > now,
            "gap: the current certificate expired at {end}, now {now}"
        );
        let serial = s(&d["serial_number"]).to_string();
        if !seen.contains(&serial) {
            seen.push(serial);
            rotated_at.get_or_insert(now);
            let leaf = write(dir.path(), "cur.pem", s(&d["certificate"]));
            let (ok, text) = openssl(&["verify", "-CAfile", &root_f, &leaf]);
            assert!(ok, "{text}");
            let key = write(dir.path(), "cur.key", s(&d["private_key"]));
            let (_, a) = openssl(&["pkey", "-in", &key, "-pubout"]);
            let (_, b) = openssl(&["x509", "-in", &leaf, "-noout", "-pubkey"]);
            assert_eq!(a.trim(), b.trim());
        }
        if rotated_at.is_some_and(|t| now > t + 6) {
            break;
        }
        std::thread::sleep(Duration::from_millis(700));
    }
    let rotated_at = rotated_at.expect("the pki rotator did not reissue within 45 s");
    assert!(
        rotated_at < first_end,
        "reissued at {rotated_at}, after NotAfter {first_end}"
    );
    eprintln!(
        "pki rotator: reissued {} s before the first certificate's NotAfter",
        first_end - rotated_at
    );
    // After the grace period the replaced certificate is revoked.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let c = api.root("GET", &format!("pki/cert/{first_serial}"), None);
        if c["data"]["revocation_time"].as_i64().unwrap() > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "old certificate never revoked: {c}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let lc = api.root("GET", "secret/lifecycle/app-tls", None);
    let hist = lc["data"]["state"]["history"].as_array().unwrap();
    assert!(
        hist.iter()
            .any(|h| h["reason"] == "scheduled" && h["result"] == "success"),
        "{lc}"
    );
    assert_eq!(lc["data"]["certificate_lead_time"], 20, "{lc}");
}

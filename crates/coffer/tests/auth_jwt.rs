//! JWT auth end to end against a real `coffer server --dev`: a CI job logs
//! in with a JWT signed by a key generated here, reads only the paths its
//! policy allows, and every forged, expired or mismatched token is refused
//! with Vault's 400 and without its text echoed back.

mod cli_support;

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    RSA_PKCS1_SHA256,
};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use cli_support::{unique, Api, Server};
use serde_json::{json, Value};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The signing side of an identity provider, with a key made at run time.
enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

impl Signer {
    fn alg(&self) -> &'static str {
        match self {
            Signer::Rsa(_) => "RS256",
            Signer::Ec(_) => "ES256",
            Signer::Ed(_) => "EdDSA",
        }
    }

    fn public_pem(&self) -> String {
        let der = match self {
            Signer::Rsa(k) => k.public_key().as_der().unwrap(),
            Signer::Ec(k) => k.public_key().as_der().unwrap(),
            Signer::Ed(k) => k.public_key().as_der().unwrap(),
        };
        let b64 = STANDARD.encode(der.as_ref());
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    fn jwk(&self, kid: &str) -> Value {
        let b = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        match self {
            Signer::Ed(k) => {
                json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b(k.public_key().as_ref())})
            }
            Signer::Ec(k) => {
                let p = k.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": b(&p[1..33]), "y": b(&p[33..65])})
            }
            Signer::Rsa(k) => {
                let p = k.public_key();
                json!({"kty": "RSA", "kid": kid,
                       "n": b(p.modulus().big_endian_without_leading_zero()),
                       "e": b(p.exponent().big_endian_without_leading_zero())})
            }
        }
    }

    fn sign(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut header = json!({"alg": self.alg(), "typ": "JWT"});
        if let Some(k) = kid {
            header["kid"] = json!(k);
        }
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let rng = SystemRandom::new();
        let sig = match self {
            Signer::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &rng, signed.as_bytes(), &mut sig)
                    .unwrap();
                sig
            }
            Signer::Ec(k) => k.sign(&rng, signed.as_bytes()).unwrap().as_ref().to_vec(),
            Signer::Ed(k) => k.sign(signed.as_bytes()).as_ref().to_vec(),
        };
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

const ISSUER: &str = "https://gitlab.example.test";

fn ci_claims(project: &str, git_ref: &str) -> Value {
    json!({
        "iss": ISSUER, "aud": "coffer", "iat": now() - 2, "nbf": now() - 2, "exp": now() + 300,
        "sub": format!("project_path:{project}:ref_type:branch:ref:{git_ref}"),
        "project_path": project, "ref": git_ref, "ref_type": "branch",
        "namespace_path": "acme", "pipeline_source": "push",
    })
}

/// Asserts a 400 whose single message is `want` and that does not echo `jwt`.
fn assert_refused(api: &Api<'_>, mount: &str, role: &str, jwt: &str, want: &str) {
    let (status, body) = api.call(
        "POST",
        &format!("auth/{mount}/login"),
        None,
        Some(json!({"role": role, "jwt": jwt})),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"], json!([want]), "{body}");
    let text = body.to_string();
    for part in jwt.split('.').filter(|p| p.len() > 8) {
        assert!(!text.contains(part), "the answer echoes the token: {text}");
    }
}

#[test]
fn ci_job_logs_in_with_a_jwt_and_reads_only_its_paths() {
    let s = Server::start();
    let api = Api::new(&s);
    let idp = Signer::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).unwrap());

    api.root("POST", "sys/auth/jwt", Some(json!({"type": "jwt"})));
    let mounts = api.root("GET", "sys/auth", None);
    assert_eq!(mounts["data"]["jwt/"]["type"], "jwt", "{mounts}");
    api.root(
        "POST",
        "auth/jwt/config",
        Some(json!({"jwt_validation_pubkeys": [idp.public_pem()], "bound_issuer": ISSUER})),
    );
    api.root(
        "PUT",
        "sys/policies/acl/billing-ci",
        Some(json!({"policy": "path \"secret/data/billing/*\" { capabilities = [\"read\"] }"})),
    );
    let secret = unique("db-password");
    api.root(
        "POST",
        "secret/data/billing/db",
        Some(json!({"data": {"password": secret}})),
    );
    api.root(
        "POST",
        "secret/data/payroll/db",
        Some(json!({"data": {"password": unique("other")}})),
    );
    api.root(
        "POST",
        "auth/jwt/role/billing-ci",
        Some(json!({
            "role_type": "jwt", "user_claim": "sub", "bound_audiences": ["coffer"],
            "bound_claims_type": "glob",
            "bound_claims": {"project_path": "acme/billing", "ref": ["main", "release-*"]},
            "claim_mappings": {"project_path": "project", "ref": "ref"},
            "token_policies": ["billing-ci"], "token_ttl": "10m", "token_max_ttl": "1h",
        })),
    );
    let listed = api.root("LIST", "auth/jwt/role", None);
    assert_eq!(listed["data"]["keys"], json!(["billing-ci"]));

    // The CI job logs in.
    let jwt = idp.sign(None, &ci_claims("acme/billing", "release-2.1"));
    let (status, body) = api.call(
        "POST",
        "auth/jwt/login",
        None,
        Some(json!({"role": "billing-ci", "jwt": jwt})),
    );
    assert_eq!(status, 200, "{body}");
    let auth = &body["auth"];
    let token = auth["client_token"].as_str().unwrap().to_string();
    assert_eq!(auth["token_policies"], json!(["billing-ci", "default"]));
    assert_eq!(auth["metadata"]["role"], "billing-ci");
    assert_eq!(auth["metadata"]["project"], "acme/billing");
    assert_eq!(auth["metadata"]["ref"], "release-2.1");
    assert_eq!(auth["lease_duration"], 600);
    assert_eq!(auth["renewable"], true);

    // It reads its own secret, and nothing else.
    let (status, read) = api.call("GET", "secret/data/billing/db", Some(&token), None);
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["data"]["data"]["password"], secret);
    for (method, path, body) in [
        ("GET", "secret/data/payroll/db", None),
        (
            "POST",
            "secret/data/billing/db",
            Some(json!({"data": {"password": "x"}})),
        ),
        ("GET", "auth/jwt/config", None),
        (
            "POST",
            "auth/jwt/role/billing-ci",
            Some(json!({"bound_subject": "x"})),
        ),
        ("GET", "sys/policies/acl/billing-ci", None),
    ] {
        let (status, answer) = api.call(method, path, Some(&token), body);
        assert_eq!(status, 403, "{method} {path}: {answer}");
    }
    let (status, me) = api.call("GET", "auth/token/lookup-self", Some(&token), None);
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        me["data"]["display_name"],
        "jwt-project_path:acme/billing:ref_type:branch:ref:release-2.1"
    );

    // Refusals, each with Vault's words.
    let expired = {
        let mut c = ci_claims("acme/billing", "main");
        c["iat"] = json!(now() - 7200);
        c["nbf"] = json!(now() - 7200);
        c["exp"] = json!(now() - 3600);
        idp.sign(None, &c)
    };
    assert_refused(
        &api,
        "jwt",
        "billing-ci",
        &expired,
        "error validating token: invalid expiration time (exp) claim: token is expired",
    );
    assert_refused(
        &api,
        "jwt",
        "billing-ci",
        &idp.sign(None, &ci_claims("acme/payroll", "main")),
        "error validating claims: claim \"project_path\" does not match any associated bound claim values",
    );
    assert_refused(
        &api,
        "jwt",
        "billing-ci",
        &idp.sign(None, &ci_claims("acme/billing", "feature-x")),
        "error validating claims: claim \"ref\" does not match any associated bound claim values",
    );
    let mut wrong_aud = ci_claims("acme/billing", "main");
    wrong_aud["aud"] = json!("vault");
    assert_refused(
        &api,
        "jwt",
        "billing-ci",
        &idp.sign(None, &wrong_aud),
        "error validating token: invalid audience (aud) claim: audience claim does not match any expected audience",
    );
    let mut wrong_iss = ci_claims("acme/billing", "main");
    wrong_iss["iss"] = json!("https://evil.example.test");
    assert_refused(
        &api,
        "jwt",
        "billing-ci",
        &idp.sign(None, &wrong_iss),
        "error validating token: invalid issuer (iss) claim",
    );
    // A key the mount does not trust, and a payload swapped under a good signature.
    let rogue = Signer::Ec(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap());
    let bad_sig = "error validating token: error verifying token signature: no known key successfully validated the token signature";
    assert_refused(
        &api,
        "jwt",
        "billing-ci",
        &rogue.sign(None, &ci_claims("acme/billing", "main")),
        bad_sig,
    );
    let good = idp.sign(None, &ci_claims("acme/payroll", "main"));
    let forged_payload = URL_SAFE_NO_PAD.encode(ci_claims("acme/billing", "main").to_string());
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    assert_refused(&api, "jwt", "billing-ci", &tampered, bad_sig);
    let none = format!(
        "{}.{forged_payload}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#)
    );
    let (status, _) = api.call(
        "POST",
        "auth/jwt/login",
        None,
        Some(json!({"role": "billing-ci", "jwt": none})),
    );
    assert_eq!(status, 400);
    let (status, body) = api.call(
        "POST",
        "auth/jwt/login",
        None,
        Some(json!({"role": "nope", "jwt": jwt})),
    );
    assert_eq!(
        (status, body["errors"].clone()),
        (400, json!(["role \"nope\" could not be found"]))
    );

    // Deleting the role ends its logins (the token already issued lives on, as in Vault).
    api.root("DELETE", "auth/jwt/role/billing-ci", None);
    let (status, _) = api.call(
        "POST",
        "auth/jwt/login",
        None,
        Some(json!({"role": "billing-ci", "jwt": jwt})),
    );
    assert_eq!(status, 400);
}

#[test]
fn kubernetes_service_account_logs_in_through_an_inline_jwks() {
    let s = Server::start();
    let api = Api::new(&s);
    let cluster = Signer::Ed(Ed25519KeyPair::generate().unwrap());
    let other = Signer::Ec(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap());
    let issuer = "https://kubernetes.default.svc.cluster.local";

    // The "oidc" type is the same engine.
    api.root("POST", "sys/auth/k8s", Some(json!({"type": "oidc"})));
    // Network key sources are refused plainly.
    let (status, body) = api.call(
        "POST",
        "auth/k8s/config",
        Some(&s.token),
        Some(json!({"oidc_discovery_url": issuer})),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body["errors"][0]
        .as_str()
        .unwrap()
        .contains("oidc_discovery_url"));
    api.root(
        "POST",
        "auth/k8s/config",
        Some(
            json!({"jwks": {"keys": [cluster.jwk("cluster-1"), other.jwk("other-1")]},
                    "bound_issuer": issuer, "default_role": "runner"}),
        ),
    );
    let config = api.root("GET", "auth/k8s/config", None);
    assert_eq!(config["data"]["jwks"]["keys"][0]["kid"], "cluster-1");
    api.root(
        "POST",
        "auth/k8s/role/runner",
        Some(json!({
            "user_claim": "/kubernetes.io/serviceaccount/name", "user_claim_json_pointer": true,
            "bound_audiences": "https://kubernetes.default.svc",
            "bound_claims_type": "glob", "bound_claims": {"/kubernetes.io/namespace": "ci-*"},
            "groups_claim": "/kubernetes.io/namespace",
            "token_policies": "runner", "token_no_default_policy": true,
        })),
    );
    let role = api.root("GET", "auth/k8s/role/runner", None);
    assert_eq!(role["data"]["bound_claims_type"], "glob");
    assert_eq!(role["data"]["token_no_default_policy"], true);

    let claims = |ns: &str| {
        json!({"iss": issuer, "aud": ["https://kubernetes.default.svc"], "exp": now() + 600,
               "iat": now(), "sub": format!("system:serviceaccount:{ns}:runner"),
               "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": "runner", "uid": "u-1"}}})
    };
    // No role named: the default role applies.
    let (status, body) = api.call(
        "POST",
        "auth/k8s/login",
        None,
        Some(json!({"jwt": cluster.sign(Some("cluster-1"), &claims("ci-7"))})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["auth"]["policies"], json!(["runner"]));
    assert_eq!(body["auth"]["metadata"]["groups"], "ci-7");

    assert_refused(
        &api,
        "k8s",
        "runner",
        &cluster.sign(Some("cluster-1"), &claims("prod")),
        "error validating claims: claim \"/kubernetes.io/namespace\" does not match any associated bound claim values",
    );
    // A known key under an unknown kid, or under another key's kid.
    let bad_sig = "error validating token: error verifying token signature: no known key successfully validated the token signature";
    assert_refused(
        &api,
        "k8s",
        "runner",
        &cluster.sign(Some("cluster-2"), &claims("ci-7")),
        bad_sig,
    );
    assert_refused(
        &api,
        "k8s",
        "runner",
        &cluster.sign(Some("other-1"), &claims("ci-7")),
        bad_sig,
    );
    // The second key of the set works under its own kid.
    let (status, body) = api.call(
        "POST",
        "auth/k8s/login",
        None,
        Some(json!({"role": "runner", "jwt": other.sign(Some("other-1"), &claims("ci-9"))})),
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn lockout_counts_only_validly_signed_tokens() {
    let s = Server::start();
    let api = Api::new(&s);
    let idp = Signer::Ec(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap());
    let attacker = Signer::Ed(Ed25519KeyPair::generate().unwrap());
    api.root("POST", "sys/auth/jwt", Some(json!({"type": "jwt"})));
    api.root(
        "POST",
        "auth/jwt/config",
        Some(json!({"jwt_validation_pubkeys": [idp.public_pem()], "bound_issuer": ISSUER})),
    );
    api.root(
        "POST",
        "auth/jwt/role/ci",
        Some(json!({"user_claim": "sub", "bound_audiences": "coffer",
                    "bound_claims": {"project_path": "acme/billing"}})),
    );
    let login = |jwt: &str| {
        api.call(
            "POST",
            "auth/jwt/login",
            None,
            Some(json!({"role": "ci", "jwt": jwt})),
        )
        .0
    };
    let victim = ci_claims("acme/billing", "main");
    // Forged tokens naming the victim never lock the victim out.
    for _ in 0..6 {
        assert_eq!(login(&attacker.sign(None, &victim)), 400);
    }
    assert_eq!(login(&idp.sign(None, &victim)), 200);
    // Five genuine but refused tokens of one identity lock that identity
    // (Vault's default lockout_threshold), and only that identity.
    let mut stale = ci_claims("acme/billing", "dev");
    stale["exp"] = json!(now() - 3600);
    stale["iat"] = json!(now() - 7200);
    stale["nbf"] = json!(now() - 7200);
    for _ in 0..5 {
        assert_eq!(login(&idp.sign(None, &stale)), 400);
    }
    let mut fresh = ci_claims("acme/billing", "dev");
    fresh["sub"] = stale["sub"].clone();
    assert_eq!(login(&idp.sign(None, &fresh)), 403);
    assert_eq!(login(&idp.sign(None, &victim)), 200);
}

//! JWT auth with keys fetched by the server: `oidc_discovery_url` (the
//! discovery document, then its `jwks_uri`) and `jwks_url`, over TLS with a
//! CA made here and given in `oidc_discovery_ca_pem` / `jwks_ca_pem`, from
//! an issuer running on loopback in this test. Only URLs the operator
//! allowed (`[jwt_discovery] allowed_urls`) are fetched; keys are cached;
//! an unknown `kid` causes one re-fetch, rate-limited.

mod cli_support;

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use cli_support::{unique, Api, Server};
use serde_json::{json, Value};

/// A CA and a server certificate for 127.0.0.1.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, unique("coffer test issuer CA"));
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    Pki {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// The identity provider: documents by path, and a count of requests.
struct Issuer {
    base: String,
    docs: Arc<Mutex<HashMap<String, Value>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    total: Arc<AtomicUsize>,
}

impl Issuer {
    /// A TLS server on loopback answering GETs from `docs` (a small
    /// HTTP/1.0-style responder: one request per connection).
    fn start(pki: &Pki) -> Issuer {
        use rustls::pki_types::pem::PemObject as _;
        let certs: Vec<_> =
            rustls::pki_types::CertificateDer::pem_slice_iter(pki.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(pki.key_pem.as_bytes()).unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        let docs: Arc<Mutex<HashMap<String, Value>>> = Arc::default();
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let total = Arc::new(AtomicUsize::new(0));
        let (d, h, t) = (docs.clone(), hits.clone(), total.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut tcp) = stream else { continue };
                let (d, h, t, config) = (d.clone(), h.clone(), t.clone(), config.clone());
                std::thread::spawn(move || {
                    let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
                    let Ok(mut conn) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&buf);
                    let path = text.split_whitespace().nth(1).unwrap_or("").to_string();
                    t.fetch_add(1, Ordering::SeqCst);
                    *h.lock().unwrap().entry(path.clone()).or_default() += 1;
                    let doc = d.lock().unwrap().get(&path).cloned();
                    let (status, body) = match doc {
                        Some(v) => ("200 OK", v.to_string()),
                        None => ("404 Not Found", "{}".to_string()),
                    };
                    let resp = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(resp.as_bytes());
                    let _ = tls.flush();
                    conn.send_close_notify();
                    let _ = conn.write_tls(&mut tcp);
                });
            }
        });
        Issuer {
            base,
            docs,
            hits,
            total,
        }
    }

    fn serve(&self, path: &str, doc: Value) {
        self.docs.lock().unwrap().insert(path.to_string(), doc);
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

struct Key {
    kid: String,
    pair: Ed25519KeyPair,
}

impl Key {
    fn new(kid: &str) -> Key {
        Key {
            kid: kid.into(),
            pair: Ed25519KeyPair::generate().unwrap(),
        }
    }

    fn jwk(&self) -> Value {
        json!({"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": self.kid,
               "x": URL_SAFE_NO_PAD.encode(self.pair.public_key().as_ref())})
    }

    /// A service-account style token naming `kid`.
    fn sign(&self, kid: &str, iss: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let b = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let signed = format!(
            "{}.{}",
            b(&json!({"alg": "EdDSA", "kid": kid})),
            b(
                &json!({"iss": iss, "sub": "system:serviceaccount:apps:web", "aud": ["coffer"],
                      "iat": now, "exp": now + 600})
            )
        );
        let sig = self.pair.sign(signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
}

fn login(api: &Api, mount: &str, jwt: &str) -> (u16, Value) {
    api.call(
        "POST",
        &format!("auth/{mount}/login"),
        None,
        Some(json!({"role": "web", "jwt": jwt})),
    )
}

fn role(api: &Api, mount: &str) {
    api.root(
        "POST",
        &format!("auth/{mount}/role/web"),
        Some(
            json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": ["coffer"],
                    "token_policies": ["default"]}),
        ),
    );
}

#[test]
fn keys_by_discovery_over_tls_cached_refetched_once_and_only_from_allowed_urls() {
    let pki = pki();
    let idp = Issuer::start(&pki);
    let k1 = Key::new("k1");
    let k2 = Key::new("k2");
    let issuer = format!("{}/cluster", idp.base);
    idp.serve(
        "/cluster/.well-known/openid-configuration",
        json!({"issuer": issuer, "jwks_uri": format!("{}/cluster/openid/v1/jwks", idp.base)}),
    );
    idp.serve("/cluster/openid/v1/jwks", json!({"keys": [k1.jwk()]}));
    // A discovery document pointing its keys outside the allowed prefix.
    idp.serve(
        "/cluster/evil/.well-known/openid-configuration",
        json!({"issuer": format!("{issuer}/evil"), "jwks_uri": format!("{}/elsewhere/jwks", idp.base)}),
    );
    idp.serve("/elsewhere/jwks", json!({"keys": [k1.jwk()]}));

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("dev.toml");
    std::fs::write(
        &cfg,
        format!(
            "[jwt_discovery]\nallowed_urls = [\"{}/cluster/\"]\n",
            idp.base
        ),
    )
    .unwrap();
    let server = Server::start_dev_config(&cfg);
    let api = Api::new(&server);
    api.root("POST", "sys/auth/k8s", Some(json!({"type": "jwt"})));

    // Without the CA the issuer's certificate is not trusted: refused, nothing stored.
    let (st, v) = api.call(
        "POST",
        "auth/k8s/config",
        Some(&server.token),
        Some(json!({"oidc_discovery_url": issuer})),
    );
    assert_eq!(st, 400, "{v}");
    assert!(
        v["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("error checking oidc_discovery_url"),
        "{v}"
    );
    // A URL outside the allowed prefixes is refused before any request.
    let before = idp.total.load(Ordering::SeqCst);
    for (field, url) in [
        ("jwks_url", format!("{}/elsewhere/jwks", idp.base)),
        ("oidc_discovery_url", format!("{}/clusterx", idp.base)),
        ("jwks_url", "https://127.0.0.2:1/cluster/jwks".to_string()),
    ] {
        let (st, v) = api.call(
            "POST",
            "auth/k8s/config",
            Some(&server.token),
            Some(json!({field: url})),
        );
        assert_eq!(st, 400, "{v}");
        let msg = v["errors"][0].as_str().unwrap();
        assert!(msg.contains(&format!("'{field}' is not allowed")), "{msg}");
    }
    assert_eq!(
        idp.total.load(Ordering::SeqCst),
        before,
        "a refused URL was fetched"
    );
    // A discovery document cannot steer the fetch outside the prefixes.
    let (st, v) = api.call(
        "POST",
        "auth/k8s/config",
        Some(&server.token),
        Some(json!({"oidc_discovery_url": format!("{issuer}/evil"), "oidc_discovery_ca_pem": pki.ca_pem})),
    );
    assert_eq!(st, 400, "{v}");
    assert!(
        v["errors"][0].as_str().unwrap().contains("not under"),
        "{v}"
    );
    assert_eq!(idp.hits("/elsewhere/jwks"), 0);

    // The real configuration: discovery, the CA given inline.
    api.root(
        "POST",
        "auth/k8s/config",
        Some(
            json!({"oidc_discovery_url": issuer, "oidc_discovery_ca_pem": pki.ca_pem,
                    "bound_issuer": issuer}),
        ),
    );
    let read = api.root("GET", "auth/k8s/config", None);
    assert_eq!(read["data"]["oidc_discovery_url"], issuer.as_str());
    role(&api, "k8s");
    assert_eq!(idp.hits("/cluster/.well-known/openid-configuration"), 1);
    let jwks_fetches = idp.hits("/cluster/openid/v1/jwks");
    assert_eq!(jwks_fetches, 1);
    for _ in 0..5 {
        let (st, v) = login(&api, "k8s", &k1.sign("k1", &issuer));
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["auth"]["metadata"]["role"], "web");
    }
    assert_eq!(
        idp.hits("/cluster/openid/v1/jwks"),
        jwks_fetches,
        "logins use the cache"
    );
    // A token from another issuer with the right key is still refused.
    let (st, _) = login(&api, "k8s", &k1.sign("k1", "https://other.test"));
    assert_eq!(st, 400);

    // The issuer rotates: k2 is published; a k2 token causes one re-fetch.
    idp.serve(
        "/cluster/openid/v1/jwks",
        json!({"keys": [k1.jwk(), k2.jwk()]}),
    );
    std::thread::sleep(Duration::from_millis(5200));
    let (st, v) = login(&api, "k8s", &k2.sign("k2", &issuer));
    assert_eq!(st, 200, "{v}");
    let after_rotation = idp.hits("/cluster/openid/v1/jwks");
    assert_eq!(after_rotation, jwks_fetches + 1);

    // Made-up key ids, 32 at once and then more: at most one fetch per window.
    std::thread::sleep(Duration::from_millis(5200));
    let base = server.addr.clone();
    let handles: Vec<_> = (0..32)
        .map(|i| {
            let jwt = k2.sign(&format!("made-up-{i}"), &issuer);
            let url = format!("{base}/v1/auth/k8s/login");
            std::thread::spawn(move || {
                cli_support::http()
                    .post(url)
                    .json(&json!({"role": "web", "jwt": jwt}))
                    .send()
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    // Refused (400), or rate limited per address (429) once past 20 failures.
    for h in handles {
        let st = h.join().unwrap();
        assert!(st == 400 || st == 429, "{st}");
    }
    for i in 0..10 {
        let (st, _) = login(&api, "k8s", &k2.sign(&format!("again-{i}"), &issuer));
        assert!(st == 400 || st == 429, "{st}");
    }
    assert_eq!(
        idp.hits("/cluster/openid/v1/jwks"),
        after_rotation + 1,
        "unknown kids caused more than one fetch"
    );

    // jwks_url with jwks_ca_pem, on a second mount.
    api.root("POST", "sys/auth/kjwks", Some(json!({"type": "jwt"})));
    api.root(
        "POST",
        "auth/kjwks/config",
        Some(
            json!({"jwks_url": format!("{}/cluster/openid/v1/jwks", idp.base),
                    "jwks_ca_pem": pki.ca_pem, "bound_issuer": issuer}),
        ),
    );
    role(&api, "kjwks");
    let (st, v) = login(&api, "kjwks", &k2.sign("k2", &issuer));
    assert_eq!(st, 200, "{v}");
    // A key the issuer never published does not verify.
    let rogue = Key::new("k1");
    let (st, v) = login(&api, "kjwks", &rogue.sign("k1", &issuer));
    assert_eq!(st, 400, "{v}");
}

#[test]
fn a_server_without_allowed_urls_fetches_nothing() {
    let server = Server::start();
    let api = Api::new(&server);
    api.root("POST", "sys/auth/jwt", Some(json!({"type": "jwt"})));
    let (st, v) = api.call(
        "POST",
        "auth/jwt/config",
        Some(&server.token),
        Some(json!({"jwks_url": "https://127.0.0.1:1/keys"})),
    );
    assert_eq!(st, 400, "{v}");
    assert!(
        v["errors"][0]
            .as_str()
            .unwrap()
            .contains("allows no key URL"),
        "{v}"
    );
}

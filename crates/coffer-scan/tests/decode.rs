//! The decoding layer: secrets one encoding deep are found and reported at
//! their encoded span in the original file. Every credential is generated
//! at run time.

use coffer_scan::template::{expand, Rng};
use coffer_scan::{Config, Scanner};

fn scanner() -> Scanner {
    Scanner::new(&Config::builtin().unwrap()).unwrap()
}

fn b64(data: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = c.len();
        let v = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= n {
                out.push(T[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn pem(rng: &mut Rng) -> String {
    expand(
        "-----BEGIN PRIVATE KEY-----\n<<der:250>>\n-----END PRIVATE KEY-----\n",
        rng,
        1.0,
    )
}

#[test]
fn kubernetes_secret_data_values() {
    let s = scanner();
    for seed in 0..10 {
        let mut rng = Rng::new(100 + seed);
        let pw = expand("<<pw:20>>", &mut rng, 1.0);
        let enc_pw = b64(pw.as_bytes());
        let gh = expand("ghp_<<alnum:36>>", &mut rng, 1.0);
        let enc = b64(gh.as_bytes());
        let key = pem(&mut rng);
        let enc_key = b64(key.as_bytes());
        let doc = format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app\ntype: Opaque\ndata:\n  db-password: {enc_pw}\n  gh: {enc}\n  tls.key: {enc_key}\n  username: {}\n",
            b64(b"app")
        );
        let found = s.scan("deploy/secret.yaml", doc.as_bytes());
        let at = doc.find(&enc_pw).unwrap();
        assert!(
            found.iter().any(|f| f.rule_id == "generic-password"
                && f.start == at
                && f.end == at + enc_pw.len()),
            "password: {found:?}"
        );
        let at = doc.find(&enc).unwrap();
        assert!(
            found.iter().any(|f| f.rule_id == "github-pat"
                && f.start == at
                && f.end == at + enc.len()
                && f.decoded == Some("base64")),
            "token: {found:?}"
        );
        let at = doc.find(&enc_key).unwrap();
        assert!(
            found.iter().any(|f| f.rule_id == "private-key"
                && f.start == at
                && f.end == at + enc_key.len()
                && f.secret.as_str() == enc_key),
            "key: {found:?}"
        );
        assert_eq!(found.len(), 3, "{found:?}");
        // The same values outside a Secret's data block are not decoded.
        let cm = doc
            .replace("kind: Secret", "kind: ConfigMap")
            .replace("data:", "labels:");
        assert!(
            !s.scan("deploy/cm.yaml", cm.as_bytes())
                .iter()
                .any(|f| f.rule_id == "github-pat"),
            "decoded outside a Secret"
        );
    }
}

#[test]
fn base64_pem_anywhere() {
    let s = scanner();
    let mut rng = Rng::new(7);
    let enc = b64(pem(&mut rng).as_bytes());
    assert!(enc.starts_with("LS0tLS1CRUdJTi"));
    for text in [
        format!("TLS_KEY={enc}\n"),
        format!("{{\"key\": \"{enc}\"}}\n"),
        format!("  tls.key: {enc}\n"),
    ] {
        let at = text.find(&enc).unwrap();
        let found = s.scan("a.txt", text.as_bytes());
        assert!(
            found
                .iter()
                .any(|f| f.rule_id == "private-key" && f.start == at && f.end == at + enc.len()),
            "{found:?}"
        );
    }
    // A base64 certificate is no private key.
    let cert = b64(expand(
        "-----BEGIN CERTIFICATE-----\n<<b64:64>>\n-----END CERTIFICATE-----\n",
        &mut rng,
        1.0,
    )
    .as_bytes());
    assert!(s
        .scan("a.txt", format!("CERT={cert}\n").as_bytes())
        .is_empty());
}

#[test]
fn url_encoded_connection_string() {
    let s = scanner();
    for seed in 0..10 {
        let mut rng = Rng::new(300 + seed);
        let pw = expand("<<alnum:18>>", &mut rng, 1.0);
        let text =
            format!("jdbc_param=postgresql%3A%2F%2Fapp%3A{pw}%40db.internal%3A5432%2Fapp&x=1\n");
        let found = s.scan("a.properties", text.as_bytes());
        let at = text.find(&pw).unwrap();
        assert!(
            found.iter().any(|f| f.rule_id == "database-url-password"
                && f.start == at
                && f.end == at + pw.len()
                && f.decoded == Some("url")),
            "{found:?}"
        );
    }
}

#[test]
fn json_escaped_multiline_key() {
    let s = scanner();
    let mut rng = Rng::new(11);
    let key = pem(&mut rng);
    let putty = expand(
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: deploy\nPublic-Lines: 2\n<<b64:64>>\n<<b64:20>>\nPrivate-Lines: 1\n<<b64:64>>\n",
        &mut rng,
        1.0,
    );
    for (rule, value) in [
        ("private-key", key.trim_end()),
        ("putty-private-key", putty.as_str()),
    ] {
        let esc = value.replace('\n', "\\n");
        let text = format!("{{\"cells\": [{{\"source\": [\"key = \\\"{esc}\\\"\"]}}]}}\n");
        let found = s.scan("nb.ipynb", text.as_bytes());
        let at = text.find(&esc[..20]).unwrap();
        assert!(
            found.iter().any(|f| f.rule_id == rule && f.start == at),
            "{rule}: {found:?}"
        );
    }
}

/// Decoding is one layer deep and bounded: base64 of base64 is not
/// unwrapped twice, and a file of many values stays within the budget.
#[test]
fn one_layer_and_a_budget() {
    let s = scanner();
    let mut rng = Rng::new(5);
    let twice = b64(b64(pem(&mut rng).as_bytes()).as_bytes());
    let doc = format!("kind: Secret\ndata:\n  k: {twice}\n");
    assert!(s.scan("s.yaml", doc.as_bytes()).is_empty());
    let mut doc = String::from("kind: Secret\ndata:\n");
    for i in 0..20_000 {
        let gh = expand("ghp_<<alnum:36>>", &mut rng, 1.0);
        doc.push_str(&format!("  k{i}: {}\n", b64(gh.as_bytes())));
    }
    let t = std::time::Instant::now();
    let found = s.scan("s.yaml", doc.as_bytes());
    assert!(
        found.len() <= coffer_scan::decode::MAX_LAYERS,
        "{}",
        found.len()
    );
    assert!(found.len() >= 100, "{}", found.len());
    assert!(t.elapsed().as_secs() < 20, "{:?}", t.elapsed());
}

/// A .netrc entry split over lines is found too.
#[test]
fn netrc_over_lines() {
    let s = scanner();
    let mut rng = Rng::new(21);
    let pw = expand("<<pw:20>>", &mut rng, 1.0);
    let text = format!("machine api.internal.io\n  login deploy\n  password {pw}\n");
    let at = text.find(&pw).unwrap();
    let found = s.scan(".netrc", text.as_bytes());
    assert!(
        found
            .iter()
            .any(|f| f.rule_id == "netrc-password" && f.start == at),
        "{found:?}"
    );
}

/// `Authorization: Basic` credentials are decoded: a provider token used as
/// the password is reported under its own rule at the base64 span, and
/// credentials that decode to a placeholder (`username:password`) or to no
/// `user:password` at all are not reported.
#[test]
fn basic_auth_credentials_are_decoded() {
    let s = scanner();
    for seed in 0..10 {
        let mut rng = Rng::new(400 + seed);
        let gh = expand("ghp_<<crc62:30>>", &mut rng, 1.0);
        let enc = b64(format!("x-access-token:{gh}").as_bytes());
        for text in [
            format!("curl -H 'Authorization: Basic {enc}' https://git.internal/x\n"),
            format!("headers = {{\"Authorization\": \"Basic {enc}\"}}\n"),
        ] {
            let at = text.find(&enc).unwrap();
            let found = s.scan("ci.sh", text.as_bytes());
            assert!(
                found.iter().any(|f| f.rule_id == "github-pat"
                    && f.start == at
                    && f.end == at + enc.len()
                    && f.decoded == Some("base64")
                    && f.confidence() == "high"),
                "{found:?}"
            );
            assert_eq!(found.len(), 1, "one finding per span: {found:?}");
        }
        let pw = expand("<<pw:16>>", &mut rng, 1.0);
        let enc = b64(format!("deploy:{pw}").as_bytes());
        let text = format!("Authorization: Basic {enc}\n");
        let found = s.scan("req.http", text.as_bytes());
        assert!(
            found
                .iter()
                .any(|f| f.rule_id == "authorization-basic" && f.secret.as_str() == enc),
            "{found:?}"
        );
    }
    for plain in [
        &b"username:password"[..],
        b"user:changeme",
        b"no colon in here at all",
    ] {
        let text = format!("Authorization: Basic {}\n", b64(plain));
        assert!(
            s.scan("req.http", text.as_bytes()).is_empty(),
            "{}",
            String::from_utf8_lossy(plain)
        );
    }
}

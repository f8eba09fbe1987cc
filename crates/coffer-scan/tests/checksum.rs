//! Checksums and structures: a format's valid checksum raises a finding's
//! confidence and keeps it an error whatever the path; a failing one keeps
//! the finding at low confidence. Every credential is generated at run time
//! from the format's specification.

use coffer_scan::checksum::Checksum;
use coffer_scan::report::finding_json;
use coffer_scan::template::{expand, Rng};
use coffer_scan::{Config, Scanner};

fn scanner() -> Scanner {
    Scanner::new(&Config::builtin().unwrap()).unwrap()
}

fn one(s: &Scanner, path: &str, text: &str, rule: &str) -> coffer_scan::Finding {
    let found = s.scan(path, text.as_bytes());
    let mut hits: Vec<_> = found.into_iter().filter(|f| f.rule_id == rule).collect();
    assert_eq!(hits.len(), 1, "{rule} in {path}: {hits:?}");
    hits.remove(0)
}

#[test]
fn valid_checksums_are_high_confidence_on_every_path() {
    let s = scanner();
    let cases = [
        ("github-pat", "GITHUB_TOKEN=ghp_<<crc62:30>>"),
        ("github-oauth-token", "oauth = \"gho_<<crc62:30>>\""),
        ("github-app-token", "token: ghu_<<crc62:30>>"),
        ("github-app-token", "token: ghs_<<crc62:30>>"),
        ("github-refresh-token", "refresh_token=ghr_<<crc62:70>>"),
        (
            "npm-access-token",
            "//registry.npmjs.org/:_authToken=npm_<<crc62:30>>",
        ),
        ("pypi-upload-token", "password = pypi-<<pypi:80>>"),
        ("jwt", "Authorization: Bearer <<jwt:4>>"),
        (
            "private-key",
            "-----BEGIN PRIVATE KEY-----\n<<der:300>>\n-----END PRIVATE KEY-----\n",
        ),
    ];
    for (seed, (rule, tpl)) in cases.iter().enumerate() {
        let mut rng = Rng::new(900 + seed as u64);
        let text = expand(tpl, &mut rng, 1.0);
        for path in ["src/config.env", "tests/fixtures/app.env", "docs/setup.md"] {
            let f = one(&s, path, &text, rule);
            assert_eq!(f.checksum, Some(Checksum::Valid), "{rule} {path}");
            assert_eq!(f.confidence(), "high");
            assert_eq!(f.level(), "error", "triage never lowers a valid checksum");
            let j = finding_json(&f, false);
            assert_eq!(j["checksum"], "valid");
            assert_eq!(j["confidence"], "high");
        }
    }
}

#[test]
fn failing_checksums_are_kept_at_low_confidence() {
    let s = scanner();
    let mut rng = Rng::new(31);
    for (rule, tpl) in [
        ("github-pat", "GITHUB_TOKEN=ghp_<<alnum:36>>"),
        ("npm-access-token", "NPM_TOKEN=npm_<<alnum:36>>"),
        (
            "pypi-upload-token",
            "password = pypi-AgEIcHlwaS5vcmc<<b64url:90>>",
        ),
    ] {
        let text = expand(tpl, &mut rng, 1.0);
        let f = one(&s, "src/a.env", &text, rule);
        assert_eq!(f.checksum, Some(Checksum::Invalid), "{rule}");
        assert_eq!(f.confidence(), "low");
        assert_eq!(f.level(), "note");
        assert_eq!(finding_json(&f, false)["checksum"], "invalid");
    }
    // A key whose body is not judged (an encrypted legacy PEM) is neither.
    let legacy = expand(
        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,<<HEX:32>>\n\n<<b64:64>>\n<<b64:64>>\n-----END RSA PRIVATE KEY-----\n",
        &mut rng,
        1.0,
    );
    let f = one(&s, "src/key.pem", &legacy, "private-key");
    assert_eq!(f.checksum, None);
    assert_eq!(f.confidence(), "medium");
    // Formats without a checksum say nothing about it.
    let aws = expand("aws_access_key_id = AKIA<<base32:16>>", &mut rng, 1.0);
    let f = one(&s, "src/a.env", &aws, "aws-access-key-id");
    assert_eq!(f.checksum, None);
    assert_eq!(f.confidence(), "medium");
    assert!(finding_json(&f, false).get("checksum").is_none());
}

/// A token whose random part happens to count (`abcdef`) would be taken
/// for a placeholder; with a valid checksum it is a real token.
#[test]
fn valid_checksum_outranks_the_placeholder_filter() {
    use coffer_scan::checksum::{base62_6, crc32};
    let s = scanner();
    let mut rng = Rng::new(41);
    let random = format!("abcdefgh{}", expand("<<alnum:22>>", &mut rng, 1.0));
    let check = String::from_utf8(base62_6(crc32(random.as_bytes())).to_vec()).unwrap();
    let f = one(
        &s,
        "a.env",
        &format!("T=ghp_{random}{check}\n"),
        "github-pat",
    );
    assert_eq!(f.checksum, Some(Checksum::Valid));
    let bad = format!(
        "T=ghp_{random}{}\n",
        if check == "000000" {
            "000001"
        } else {
            "000000"
        }
    );
    assert!(
        s.scan("a.env", bad.as_bytes()).is_empty(),
        "a counting sample without a checksum stays a placeholder"
    );
}

//! The procedure's artefacts against real server processes: the org
//! policy, `coffer check` (Blocked on a fresh dev server, Completed after the
//! README walkthrough, Blocked again by each of a planted secret, an overdue
//! rotation, a broad grant, a failing rotator and a tampered audit log),
//! abort, the plan (golden files, determinism, HTML), and sign-off in a
//! verified audit log.

mod cli_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use cli_support::{cli, free_port, random_hex, unique, Api, Run, Server};
use serde_json::{json, Value};

/// The blocker items of a check answer (`--format json`).
fn blockers(check: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for c in check["criteria"].as_array().unwrap() {
        for b in c["blockers"].as_array().unwrap() {
            out.push((
                c["id"].as_str().unwrap().to_string(),
                b["item"].as_str().unwrap().to_string(),
                b["problem"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

fn has_blocker(check: &Value, criterion: &str, item: &str) -> bool {
    blockers(check)
        .iter()
        .any(|(c, i, _)| c == criterion && i.contains(item))
}

#[test]
fn a_fresh_dev_server_is_blocked_with_precise_blockers() {
    let s = Server::start();
    let api = Api::new(&s);
    // A secret without owner or cadence.
    api.root(
        "POST",
        "secret/data/app/db",
        Some(json!({"data": {"password": random_hex(8)}})),
    );
    let run = s.run(&["check", "--format", "json"]).code(1);
    let c = run.json();
    assert_eq!(c["result"], "blocked", "{c:#}");
    assert!(has_blocker(&c, "access", "org policy"), "{c:#}");
    assert!(has_blocker(&c, "storage", "storage"), "{c:#}");
    assert!(has_blocker(&c, "storage", "listener"), "{c:#}");
    assert!(has_blocker(&c, "audit", "audit device"), "{c:#}");
    assert!(
        has_blocker(&c, "rotation_in_place", "secret/app/db"),
        "{c:#}"
    );
    assert!(has_blocker(&c, "no_secrets_in_code", "scan"), "{c:#}");
    assert!(
        has_blocker(&c, "revocation", "emergency revocation"),
        "{c:#}"
    );
    assert!(has_blocker(&c, "approvals", "approval security"), "{c:#}");
    // Every blocker carries its fix.
    for cr in c["criteria"].as_array().unwrap() {
        for b in cr["blockers"].as_array().unwrap() {
            assert!(!b["remediation"].as_str().unwrap().is_empty(), "{b}");
        }
    }
    let text = s.run(&["check"]).code(1);
    let n = c["blockers"].as_u64().unwrap();
    assert!(
        text.stdout.ends_with(&format!("Blocked: {n} blockers\n")),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("fix: coffer org-policy init"),
        "{}",
        text.stdout
    );
    // Usage errors exit 2, JUnit and SARIF render.
    s.run(&["check", "--format", "yaml"]).code(2);
    s.run(&["check", "--bogus"]).code(2);
    let junit = s.run(&["check", "--format", "junit"]).code(1);
    assert!(
        junit
            .stdout
            .contains("<testsuite name=\"coffer check\" tests=\"8\""),
        "{}",
        junit.stdout
    );
    let sarif = s.run(&["check", "--format", "sarif"]).code(1);
    assert_eq!(sarif.json()["version"], "2.1.0");
}

#[test]
fn org_policy_is_validated_versioned_and_needs_sudo() {
    let s = Server::start();
    let api = Api::new(&s);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("org-policy.toml");
    let f = file.to_str().unwrap();
    s.run(&["org-policy", "init", "-o", f]).ok();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("api_key = \"90d\""), "{text}");
    s.run(&["org-policy", "init", "-o", f]).code(1);
    s.run(&["org-policy", "apply", f]).ok();
    let shown = s
        .run(&["org-policy", "show", "--format", "json"])
        .ok()
        .json();
    assert_eq!(shown["data"]["version"], 1);
    assert_eq!(shown["data"]["parsed"]["max_age"]["api_key"], 90 * 86_400);
    // Unknown types, unknown roles, malformed documents: 400 naming the field.
    for (bad, field) in [
        (
            "[rotation.max_age]\napi_kye = \"90d\"\n",
            "rotation.max_age.api_kye",
        ),
        (
            "[approvals]\nrequired = [\"ciso\"]\n",
            "approvals.required[0]",
        ),
        ("[tokens]\nmax_ttl = 5\n", "tokens.max_ttl"),
        ("[scan\n", "line 1"),
    ] {
        let (st, body) = api.call(
            "POST",
            "sys/coffer/org-policy",
            Some(&s.token),
            Some(json!({"policy": bad})),
        );
        assert_eq!(st, 400, "{bad}: {body}");
        let msg = body["errors"][0].as_str().unwrap();
        assert!(msg.contains(field), "{bad}: {msg}");
    }
    // A change is a new version; diff names the field.
    std::fs::write(
        &file,
        text.replace("max_ttl = \"768h\"", "max_ttl = \"24h\""),
    )
    .unwrap();
    let diff = s.run(&["org-policy", "diff", f]).code(1);
    assert!(diff.stdout.contains("max_token_ttl"), "{}", diff.stdout);
    s.run(&["org-policy", "apply", f]).ok();
    s.run(&["org-policy", "diff", f]).ok();
    let hist = s
        .run(&["org-policy", "history", "--format", "json"])
        .ok()
        .json();
    assert_eq!(hist["data"]["keys"], json!(["1", "2"]));
    // Reads need their own capability; writes need sudo.
    let token = |policy: &str| -> String {
        let name = unique("op").to_lowercase();
        api.root(
            "PUT",
            &format!("sys/policies/acl/{name}"),
            Some(json!({"policy": policy})),
        );
        let t = api.root(
            "POST",
            "auth/token/create",
            Some(json!({"policies": [name], "ttl": "10m"})),
        );
        t["auth"]["client_token"].as_str().unwrap().to_string()
    };
    let update_only =
        token(r#"path "sys/coffer/org-policy" { capabilities = ["read", "update"] }"#);
    let (st, _) = api.call(
        "POST",
        "sys/coffer/org-policy",
        Some(&update_only),
        Some(json!({"policy": text})),
    );
    assert_eq!(st, 403);
    let (st, _) = api.call("GET", "sys/coffer/org-policy", Some(&update_only), None);
    assert_eq!(st, 200);
    let nothing = token(r#"path "secret/*" { capabilities = ["read"] }"#);
    for p in [
        "sys/coffer/org-policy",
        "sys/coffer/plan",
        "sys/coffer/check",
    ] {
        let (st, _) = api.call("GET", p, Some(&nothing), None);
        assert_eq!(st, 403, "{p}");
    }
}

/// A server as production runs it: SQLite storage, a TLS listener, an
/// audit directory and a rotator that always fails.
struct Prod {
    server: Server,
    dir: tempfile::TempDir,
    cert: PathBuf,
}

impl Prod {
    fn start() -> Prod {
        let dir = tempfile::tempdir().unwrap();
        let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let cert = dir.path().join("tls.crt");
        let key = dir.path().join("tls.key");
        std::fs::write(&cert, c.cert.pem()).unwrap();
        std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
        let audit = dir.path().join("audit");
        std::fs::create_dir_all(&audit).unwrap();
        let port = free_port();
        let config = dir.path().join("coffer.toml");
        std::fs::write(
            &config,
            format!(
                "[storage.sqlite]\npath = {:?}\n\n[listener.tcp]\naddress = \"127.0.0.1:{port}\"\n\
                 tls_cert_file = {:?}\ntls_key_file = {:?}\n\n[audit]\nfile_dir = {:?}\n\n\
                 [rotator.broken]\ntype = \"command\"\nprogram = \"/bin/false\"\n",
                dir.path().join("coffer.db").to_str().unwrap(),
                cert.to_str().unwrap(),
                key.to_str().unwrap(),
                audit.to_str().unwrap()
            ),
        )
        .unwrap();
        let server = Server::start_config(&config, format!("https://127.0.0.1:{port}"));
        Prod { server, dir, cert }
    }

    /// `coffer <args>` with `token` (the root token when None).
    fn run_as(&self, token: Option<&str>, args: &[&str]) -> Run {
        let mut c = cli(self.server.home.path());
        c.env("COFFER_ADDR", &self.server.addr)
            .env("COFFER_CACERT", &self.cert)
            .env("COFFER_TOKEN", token.unwrap_or(&self.server.token))
            .current_dir(self.dir.path());
        Run::of(c.args(args))
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_as(None, args)
    }

    fn check(&self, repo: &Path) -> (i32, Value) {
        let r = self.run(&[
            "check",
            "--scan",
            repo.to_str().unwrap(),
            "--format",
            "json",
        ]);
        assert!(r.code == 0 || r.code == 1, "{r:#?}");
        (r.code, r.json())
    }

    fn audit_log(&self) -> PathBuf {
        self.dir.path().join("audit").join("audit.log")
    }
}

fn git_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(
        repo.join("app.toml"),
        "[db]\npassword = \"coffer://secret/billing/stripe#api_key\"\n",
    )
    .unwrap();
    let _ = Command::new("git")
        .args(["init", "-q"])
        .current_dir(&repo)
        .status();
    repo
}

/// The README walkthrough, step by step; the root token from init becomes
/// the server's. Returns the approvers' tokens.
fn walkthrough(p: &mut Prod) -> (String, String) {
    // Initialise and unseal.
    let init = p
        .run(&[
            "operator",
            "init",
            "-key-shares=1",
            "-key-threshold=1",
            "-format=json",
        ])
        .ok()
        .json();
    let key = init["unseal_keys_b64"][0].as_str().unwrap().to_string();
    let root = init["root_token"].as_str().unwrap().to_string();
    p.run_as(Some(&root), &["operator", "unseal", &key]).ok();
    // Storage and audit.
    p.run_as(
        Some(&root),
        &["audit", "enable", "file", "file_path=audit.log"],
    )
    .ok();
    p.run_as(Some(&root), &["secrets", "enable", "-path=secret", "kv-v2"])
        .ok();
    // A secret with its owner, type, origin and cadence.
    let value = random_hex(16);
    p.run_as(
        Some(&root),
        &[
            "kv",
            "put",
            "secret/billing/stripe",
            &format!("api_key={value}"),
        ],
    )
    .ok();
    // The app's file: owner, type, vendor, cadence; its identity reads exactly its secret.
    std::fs::write(
        p.dir.path().join("coffer.app.toml"),
        "[app]\nname = \"billing\"\n[identity]\nmethod = \"approle\"\ntoken_ttl = \"1h\"\ntoken_max_ttl = \"4h\"\n\
         [[secret]]\npath = \"secret/billing/stripe\"\ntype = \"api_key\"\nowner = \"billing\"\n\
         vendor = \"stripe\"\nrotate_every = \"90d\"\nrotator = \"manual\"\n",
    )
    .unwrap();
    p.run_as(Some(&root), &["apply", "-f", "coffer.app.toml"])
        .ok();
    // The org policy.
    p.run_as(Some(&root), &["org-policy", "init"]).ok();
    let org = p.dir.path().join("org-policy.toml");
    let text = std::fs::read_to_string(&org)
        .unwrap()
        .replace("organisation = \"\"", "organisation = \"Example Corp\"");
    std::fs::write(&org, text).unwrap();
    p.run_as(Some(&root), &["org-policy", "apply", "org-policy.toml"])
        .ok();
    // The approvers: a security officer and the platform owner.
    let approver = p.dir.path().join("approver.hcl");
    std::fs::write(
        &approver,
        "path \"sys/coffer/plan\" { capabilities = [\"read\"] }\npath \"sys/coffer/plan/approve\" { capabilities = [\"update\"] }\n",
    )
    .unwrap();
    p.run_as(
        Some(&root),
        &[
            "policy",
            "write",
            "security-officer",
            approver.to_str().unwrap(),
        ],
    )
    .ok();
    p.run_as(
        Some(&root),
        &[
            "policy",
            "write",
            "platform-owner",
            approver.to_str().unwrap(),
        ],
    )
    .ok();
    p.run_as(Some(&root), &["auth", "enable", "userpass"]).ok();
    let (pw_a, pw_b) = (random_hex(12), random_hex(12));
    p.run_as(
        Some(&root),
        &[
            "write",
            "auth/userpass/users/ana",
            &format!("password={pw_a}"),
            "token_policies=security-officer",
        ],
    )
    .ok();
    p.run_as(
        Some(&root),
        &[
            "write",
            "auth/userpass/users/bo",
            &format!("password={pw_b}"),
            "token_policies=platform-owner",
        ],
    )
    .ok();
    // The emergency revocation, drilled.
    let drill = p
        .run_as(
            Some(&root),
            &[
                "revoke",
                "--compromised",
                "--drill",
                "secret/billing/stripe",
                "--reason",
                "quarterly drill",
            ],
        )
        .ok();
    assert!(
        drill.stdout.contains("nothing was changed"),
        "{}",
        drill.stdout
    );
    // Log in as the approvers.
    let login = |user: &str, pw: &str| -> String {
        let r = p
            .run_as(
                Some(""),
                &[
                    "write",
                    "-format=json",
                    &format!("auth/userpass/login/{user}"),
                    &format!("password={pw}"),
                ],
            )
            .ok()
            .json();
        r["auth"]["client_token"].as_str().unwrap().to_string()
    };
    let (ana, bo) = (login("ana", &pw_a), login("bo", &pw_b));
    // The plan, reviewed and signed.
    p.run_as(Some(&root), &["plan", "-o", "plan.md"]).ok();
    p.run_as(
        Some(&ana),
        &[
            "plan",
            "approve",
            "--as",
            "security",
            "--comment",
            "reviewed",
        ],
    )
    .ok();
    p.run_as(Some(&bo), &["plan", "approve", "--as", "platform"])
        .ok();
    p.server.token = root;
    (ana, bo)
}

#[test]
fn the_walkthrough_completes_and_each_regression_blocks_again() {
    let mut p = Prod::start();
    let repo = git_repo(p.dir.path());
    let (ana, _bo) = walkthrough(&mut p);

    let (code, c) = p.check(&repo);
    assert_eq!(code, 0, "{c:#}");
    assert_eq!(c["result"], "completed");
    assert_eq!(c["signal"], "Secrets management defined");
    let text = p.run(&["check", "--scan", repo.to_str().unwrap()]).ok();
    assert!(
        text.stdout
            .ends_with("Completed: Secrets management defined\n"),
        "{}",
        text.stdout
    );

    // A root cannot sign; a security officer cannot sign as platform.
    p.run(&["plan", "approve", "--as", "security"]).code(2);
    let wrong = p
        .run_as(Some(&ana), &["plan", "approve", "--as", "platform"])
        .code(2);
    assert!(wrong.stderr.contains("platform-owner"), "{}", wrong.stderr);

    // 1. A secret planted in the scanned repository.
    let leak = repo.join("deploy.env");
    // Base32 (A-Z, 2-7), as the AWS key id rule wants, with at least 12
    // distinct characters: a random draw may otherwise fall below the
    // rule's entropy floor (3.0 bits) and rightly not be reported.
    const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let id: String = loop {
        let hex = random_hex(16);
        let candidate: String = hex
            .as_bytes()
            .chunks(2)
            .map(|pair| {
                let byte = u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap();
                char::from(BASE32[usize::from(byte % 32)])
            })
            .collect();
        let distinct: std::collections::BTreeSet<char> = candidate.chars().collect();
        if distinct.len() >= 12 {
            break candidate;
        }
    };
    let planted = format!("AWS_ACCESS_KEY_ID=AKIA{id}\n");
    std::fs::write(&leak, planted).unwrap();
    let (code, c) = p.check(&repo);
    assert_eq!(code, 1);
    assert!(
        has_blocker(&c, "no_secrets_in_code", "deploy.env:1"),
        "{c:#}"
    );
    assert!(
        !c.to_string().contains("AKIA"),
        "a value reached the answer"
    );
    std::fs::remove_file(&leak).unwrap();
    assert_eq!(p.check(&repo).0, 0);

    // 2. An overdue rotation.
    p.run(&[
        "secret",
        "set",
        "secret/billing/stripe",
        "-expires-at=2020-01-01T00:00:00Z",
    ])
    .ok();
    let (code, c) = p.check(&repo);
    assert_eq!(code, 1);
    assert!(
        has_blocker(&c, "rotation_used", "secret/billing/stripe"),
        "{c:#}"
    );
    p.run(&["secret", "set", "secret/billing/stripe", "-expires-at="])
        .ok();
    assert_eq!(p.check(&repo).0, 0);

    // 3. A broad grant to the app's role: Blocked, and the plan it changed
    // needs new approvals.
    let broad = p.dir.path().join("broad.hcl");
    std::fs::write(&broad, "path \"secret/*\" { capabilities = [\"read\"] }\n").unwrap();
    p.run(&["policy", "write", "app-billing", broad.to_str().unwrap()])
        .ok();
    let (code, c) = p.check(&repo);
    assert_eq!(code, 1);
    let b = blockers(&c);
    assert!(
        b.iter().any(|(cr, item, why)| cr == "access"
            && item == "policy app-billing"
            && why.contains("secret/*")
            && why.contains("auth/approle/billing")),
        "{b:#?}"
    );
    assert!(has_blocker(&c, "approvals", "approval security"), "{c:#}");
    // Applying the app's file again restores least privilege.
    let again = p.run(&["apply", "-f", "coffer.app.toml"]).ok();
    assert!(
        again.stdout.contains("update policy app-billing"),
        "{}",
        again.stdout
    );
    let (code, c) = p.check(&repo);
    assert_eq!(code, 0, "the original plan's approvals hold again: {c:#}");

    // 4. A failing rotator.
    p.run(&[
        "kv",
        "put",
        "secret/billing/webhook",
        &format!("token={}", random_hex(8)),
    ])
    .ok();
    p.run(&[
        "secret",
        "set",
        "secret/billing/webhook",
        "-owner=billing",
        "-type=token",
        "-rotate-every=30d",
        "-rotator=command",
        "-setting",
        "name=broken",
    ])
    .ok();
    let _ = p.run(&["rotate", "secret/billing/webhook"]);
    let (code, c) = p.check(&repo);
    assert_eq!(code, 1);
    assert!(
        blockers(&c)
            .iter()
            .any(|(cr, item, why)| cr == "rotation_used"
                && item == "secret/billing/webhook"
                && why.contains("failed")),
        "{c:#}"
    );

    // Sign-offs are in the audit log, and it verifies.
    let log = std::fs::read_to_string(p.audit_log()).unwrap();
    let approvals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"plan_approved\""))
        .collect();
    assert_eq!(approvals.len(), 2, "two sign-offs in the trail");
    assert!(log.contains("\"secrets_management_defined\""));
    assert!(log.contains("\"secret_compromise_drill\""));
    let verify = p
        .run(&["audit", "verify", "--open", p.audit_log().to_str().unwrap()])
        .ok();
    assert!(
        verify.stdout.to_lowercase().contains("ok") || verify.code == 0,
        "{verify:#?}"
    );

    // 5. A tampered audit log.
    let text = std::fs::read_to_string(p.audit_log()).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let i = lines.len() / 2;
    lines[i] = lines[i].replacen("\"type\"", "\"typE\"", 1);
    std::fs::write(p.audit_log(), lines.join("\n") + "\n").unwrap();
    let (code, c) = p.check(&repo);
    assert_eq!(code, 1);
    assert!(has_blocker(&c, "audit", "audit device file/"), "{c:#}");
}

/// Masks what differs between runs: RFC 3339 times, dates and SHA-256 hex.
fn mask(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    while i < b.len() {
        let rest = &b[i..];
        if rest.len() >= 20
            && digits(&rest[0..4])
            && rest[4] == b'-'
            && digits(&rest[5..7])
            && rest[10] == b'T'
            && rest[13] == b':'
        {
            // Seconds, then any fraction, then Z.
            let mut j = 19;
            if rest.get(j) == Some(&b'.') {
                j += 1;
                while rest.get(j).is_some_and(u8::is_ascii_digit) {
                    j += 1;
                }
            }
            out.push_str("<time>");
            i += j + usize::from(rest.get(j) == Some(&b'Z'));
        } else if rest.len() >= 10
            && digits(&rest[0..4])
            && rest[4] == b'-'
            && digits(&rest[5..7])
            && rest[7] == b'-'
            && digits(&rest[8..10])
        {
            out.push_str("<date>");
            i += 10;
        } else if rest.len() >= 64
            && rest[..64]
                .iter()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        {
            out.push_str("<sha256>");
            i += 64;
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("COFFER_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} missing: run with COFFER_UPDATE_GOLDEN=1",
            path.display()
        )
    });
    assert_eq!(actual, expected, "{name} differs from its golden file");
}

/// A dev server with a small, fixed estate.
fn estate() -> Server {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let pol = dir.path().join("app.hcl");
    std::fs::write(
        &pol,
        "path \"secret/data/app/db\" { capabilities = [\"read\"] }\n",
    )
    .unwrap();
    s.run(&["policy", "write", "app", pol.to_str().unwrap()])
        .ok();
    std::fs::write(&pol, "path \"secret/data/billing/*\" { capabilities = [\"read\", \"update\"] }\npath \"secret/rotate/billing/*\" { capabilities = [\"update\"] }\n").unwrap();
    s.run(&["policy", "write", "billing", pol.to_str().unwrap()])
        .ok();
    s.run(&["auth", "enable", "approle"]).ok();
    s.run(&[
        "write",
        "auth/approle/role/app",
        "token_policies=app",
        "token_ttl=1h",
    ])
    .ok();
    s.run(&[
        "write",
        "auth/approle/role/billing",
        "token_policies=billing",
        "token_ttl=1h",
    ])
    .ok();
    s.run(&[
        "kv",
        "put",
        "secret/app/db",
        &format!("password={}", random_hex(8)),
    ])
    .ok();
    s.run(&[
        "kv",
        "put",
        "secret/billing/stripe",
        &format!("api_key={}", random_hex(8)),
    ])
    .ok();
    s.run(&[
        "secret",
        "set",
        "secret/app/db",
        "-owner=platform",
        "-type=db_credential",
        "-rotate-every=30d",
        "-rotator=generate",
    ])
    .ok();
    s.run(&[
        "secret",
        "set",
        "secret/billing/stripe",
        "-owner=billing",
        "-type=api_key",
        "-vendor=stripe",
        "-rotate-every=180d",
        "-rotator=manual",
    ])
    .ok();
    let org = dir.path().join("org.toml");
    s.run(&["org-policy", "init", "-o", org.to_str().unwrap()])
        .ok();
    s.run(&["org-policy", "apply", org.to_str().unwrap()]).ok();
    s
}

#[test]
fn the_plan_is_deterministic_and_matches_its_golden_files() {
    let s = estate();
    let md = s.run(&["plan"]).ok().stdout;
    let md2 = s.run(&["plan"]).ok().stdout;
    let drop_generated = |t: &str| -> String {
        t.lines()
            .filter(|l| !l.starts_with("Generated at: "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        drop_generated(&md),
        drop_generated(&md2),
        "same state, same bytes"
    );
    assert!(
        md.contains("| `secret/billing/stripe` | stripe | billing |"),
        "{md}"
    );
    assert!(
        md.contains("rotation cadence outside the policy"),
        "180d > 90d for api keys: {md}"
    );
    golden("plan.md", &mask(&md));
    let json = s.run(&["plan", "--format", "json"]).ok().json();
    let mut j = json.clone();
    j["generated_at"] = json!("<generated>");
    golden(
        "plan.json",
        &mask(&serde_json::to_string_pretty(&j).unwrap()),
    );
    assert_eq!(
        json["access"]["matrix"][0]["read"],
        json!(["auth/approle/app"])
    );
    let html = s.run(&["plan", "--format", "html"]).ok().stdout;
    assert!(
        html.starts_with("<!DOCTYPE html>") && html.contains("<svg"),
        "{html}"
    );
    for external in ["<script", "<link", "src=", "@import", "url("] {
        assert!(!html.contains(external), "external asset {external}");
    }
    // The API answers the same JSON, never a value.
    let api = Api::new(&s);
    let body = api.root("GET", "sys/coffer/plan", None);
    assert_eq!(body["data"]["inventory"], json["inventory"]);
    let value = api.root("GET", "secret/data/app/db", None)["data"]["data"]["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!body.to_string().contains(&value));
}

#[test]
fn abort_records_its_note_and_secures_with_rotators() {
    let s = estate();
    let dir = tempfile::tempdir().unwrap();
    let note = dir.path().join("note.md");
    s.run(&["check", "abort"]).code(2);
    let before =
        Api::new(&s).root("GET", "secret/data/app/db", None)["data"]["metadata"]["version"].clone();
    let r = s
        .run(&[
            "check",
            "abort",
            "--reason",
            "project cancelled",
            "--secure",
            "-o",
            note.to_str().unwrap(),
        ])
        .code(3);
    assert!(r.stdout.contains("Aborted"), "{}", r.stdout);
    let text = std::fs::read_to_string(&note).unwrap();
    assert!(text.contains("Reason: project cancelled"), "{text}");
    // Read just now (by the root token above): listed and, having a rotator, rotated.
    assert!(
        text.contains("`secret/app/db` (read in the last 30 days): rotated to version"),
        "{text}"
    );
    // Third-party without a rotator: listed with what to do.
    assert!(
        text.contains("`secret/billing/stripe` (") && text.contains("(at stripe)"),
        "{text}"
    );
    let after =
        Api::new(&s).root("GET", "secret/data/app/db", None)["data"]["metadata"]["version"].clone();
    assert_ne!(before, after);
}

/// An AppRole login: the role's token.
fn approle_token(api: &Api, role: &str) -> String {
    let id = api.root("GET", &format!("auth/approle/role/{role}/role-id"), None)["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let sid = api.root("POST", &format!("auth/approle/role/{role}/secret-id"), None)["data"]
        ["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, b) = api.call(
        "POST",
        "auth/approle/login",
        None,
        Some(json!({"role_id": id, "secret_id": sid})),
    );
    assert_eq!(st, 200, "{b}");
    b["auth"]["client_token"].as_str().unwrap().to_string()
}

#[test]
fn a_review_finds_the_stale_grant_and_the_over_shared_secret() {
    let s = estate();
    let api = Api::new(&s);
    let dir = tempfile::tempdir().unwrap();
    // Three more roles may read secret/app/db; only `app` reads it.
    let pol = dir.path().join("wide.hcl");
    std::fs::write(
        &pol,
        "path \"secret/data/app/db\" { capabilities = [\"read\"] }\n",
    )
    .unwrap();
    for r in ["ci", "batch", "report"] {
        s.run(&["policy", "write", r, pol.to_str().unwrap()]).ok();
        s.run(&[
            "write",
            &format!("auth/approle/role/{r}"),
            &format!("token_policies={r}"),
            "token_ttl=1h",
        ])
        .ok();
    }
    let app = approle_token(&api, "app");
    let (st, _) = api.call("GET", "secret/data/app/db", Some(&app), None);
    assert_eq!(st, 200);
    let r = s
        .run(&["review", "start", "--max-readers", "3", "--format", "json"])
        .ok()
        .json();
    let f = &r["findings"];
    assert_eq!(f["over_shared"][0]["secret"], "secret/app/db", "{r:#}");
    assert_eq!(f["over_shared"][0]["readers"], 4);
    let stale: Vec<String> = f["stale_grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            format!(
                "{} {}",
                g["identity"].as_str().unwrap(),
                g["secret"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        stale.contains(&"auth/approle/ci secret/app/db".to_string()),
        "{stale:?}"
    );
    assert!(
        !stale.contains(&"auth/approle/app secret/app/db".to_string()),
        "app read it: {stale:?}"
    );
    // Decide with a rationale (mandatory), apply, export.
    let id = r["id"].as_str().unwrap();
    let item = r["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["identity"] == "auth/approle/ci" && i["secret"] == "secret/app/db")
        .unwrap()["item"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, _) = api.call(
        "POST",
        &format!("sys/coffer/review/{id}/decide"),
        Some(&s.token),
        Some(json!({"item": item, "decision": "revoke", "rationale": " "})),
    );
    assert_eq!(st, 400, "a rationale is required");
    s.run(&[
        "review",
        "decide",
        id,
        &item,
        "--decision",
        "revoke",
        "--rationale",
        "ci does not use it",
    ])
    .ok();
    s.run(&["review", "apply", id]).ok();
    let ci = approle_token(&api, "ci");
    let (st, _) = api.call("GET", "secret/data/app/db", Some(&ci), None);
    assert_eq!(st, 403, "the revoked grant is gone for new logins");
    let csv = s
        .run(&["review", "export", id, "--format", "csv"])
        .ok()
        .stdout;
    assert!(
        csv.lines().any(|l| l.contains("auth/approle/ci")
            && l.contains("revoke")
            && l.contains("ci does not use it")),
        "{csv}"
    );
    let json = s
        .run(&["review", "export", id, "--format", "json"])
        .ok()
        .json();
    assert_eq!(json["applied"]["changes"][0]["identity"], "auth/approle/ci");
}

#[test]
fn apply_twice_changes_nothing_and_the_role_reads_exactly_its_secrets() {
    let s = Server::start();
    let api = Api::new(&s);
    let dir = tempfile::tempdir().unwrap();
    api.root(
        "POST",
        "secret/data/billing/stripe",
        Some(json!({"data": {"api_key": random_hex(8)}})),
    );
    api.root(
        "POST",
        "secret/data/other/thing",
        Some(json!({"data": {"v": random_hex(8)}})),
    );
    let file = dir.path().join("coffer.app.toml");
    std::fs::write(
        &file,
        "[app]\nname = \"billing\"\nsource = \"git.example/billing/coffer.app.toml\"\n\n\
         [identity]\nmethod = \"approle\"\ntoken_ttl = \"1h\"\n\n\
         [[secret]]\npath = \"secret/billing/stripe\"\ntype = \"api_key\"\nowner = \"billing\"\nvendor = \"stripe\"\nrotate_every = \"90d\"\n\n\
         [[secret]]\npath = \"secret/billing/signing\"\ntype = \"token\"\nowner = \"billing\"\nrotate_every = \"30d\"\nrotator = \"generate\"\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let dry = s
        .run(&["apply", "-f", f, "--dry-run", "--format", "json"])
        .ok()
        .json();
    assert!(!dry["changes"].as_array().unwrap().is_empty());
    assert_eq!(
        api.call("GET", "sys/policies/acl/app-billing", Some(&s.token), None)
            .0,
        404,
        "dry run changed nothing"
    );
    let first = s.run(&["apply", "-f", f, "--format", "json"]).ok().json();
    assert!(first["changes"].as_array().unwrap().len() >= 5, "{first:#}");
    let second = s.run(&["apply", "-f", f]).ok();
    assert!(second.stdout.starts_with("No changes"), "{}", second.stdout);
    assert!(
        second.stdout.contains("auth/approle/login"),
        "the run-time snippet: {}",
        second.stdout
    );
    // The role reads exactly its secrets.
    let t = approle_token(&api, "billing");
    assert_eq!(
        api.call("GET", "secret/data/billing/stripe", Some(&t), None)
            .0,
        200
    );
    assert_eq!(
        api.call("GET", "secret/data/billing/signing", Some(&t), None)
            .0,
        200,
        "generated on onboarding"
    );
    assert_eq!(
        api.call("GET", "secret/data/other/thing", Some(&t), None).0,
        403
    );
    assert_eq!(
        api.call(
            "POST",
            "secret/data/billing/stripe",
            Some(&t),
            Some(json!({"data": {"x": "y"}}))
        )
        .0,
        403
    );
    assert_eq!(api.call("LIST", "secret/metadata/", Some(&t), None).0, 403);
    // The plan lists the app with its file's source.
    let plan = s.run(&["plan", "--format", "json"]).ok().json();
    let app = &plan["onboarded_systems"][0];
    assert_eq!(app["name"], "billing");
    assert_eq!(app["source"], "git.example/billing/coffer.app.toml");
    // A secret removed from the file is reported, not deleted.
    let text = std::fs::read_to_string(&file).unwrap();
    let cut = text
        .find("[[secret]]\npath = \"secret/billing/signing\"")
        .unwrap();
    std::fs::write(&file, &text[..cut]).unwrap();
    let third = s.run(&["apply", "-f", f]).ok();
    assert!(
        third
            .stdout
            .contains("secret/billing/signing was removed from the file: kept"),
        "{}",
        third.stdout
    );
    assert_eq!(
        api.call(
            "GET",
            "secret/lifecycle/billing/signing",
            Some(&s.token),
            None
        )
        .0,
        200
    );
}

#[test]
fn a_drill_changes_nothing_and_counts_for_the_check() {
    let s = estate();
    let api = Api::new(&s);
    let app = approle_token(&api, "app");
    assert_eq!(
        api.call("GET", "secret/data/app/db", Some(&app), None).0,
        200
    );
    let version = |api: &Api| {
        api.root("GET", "secret/metadata/app/db", None)["data"]["current_version"].clone()
    };
    let before = version(&api);
    let c = s
        .run(&["check", "--no-record", "--format", "json"])
        .code(1)
        .json();
    assert!(
        has_blocker(&c, "revocation", "emergency revocation"),
        "{c:#}"
    );
    let d = s
        .run(&[
            "revoke",
            "--compromised",
            "--drill",
            "secret/app/db",
            "--reason",
            "drill",
            "--format",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(d["data"]["drill"], true);
    assert_eq!(d["data"]["tokens_would_revoke"], 1, "{d:#}");
    assert_eq!(d["data"]["rotation"]["ready"], true, "{d:#}");
    assert_eq!(version(&api), before, "nothing rotated");
    assert_eq!(
        api.call("GET", "secret/data/app/db", Some(&app), None).0,
        200,
        "the reader keeps its token"
    );
    let c = s
        .run(&["check", "--no-record", "--format", "json"])
        .code(1)
        .json();
    assert!(
        !has_blocker(&c, "revocation", "emergency revocation"),
        "{c:#}"
    );
    let plan = s.run(&["plan", "--format", "json"]).ok().json();
    assert_eq!(
        plan["revocation"]["last_drill"]["path"],
        "secret/data/app/db"
    );
    assert_eq!(
        plan["runtime_delivery"][0]["readers"][0]["identities"],
        json!(["auth/approle/app"])
    );
}

/// Access by team: an identity group holding a policy appears in the
/// plan's identities and in its access matrix, with the policies its
/// parent groups add.
#[test]
fn the_access_matrix_shows_access_granted_through_identity_groups() {
    let s = estate();
    s.run(&[
        "write",
        "identity/group",
        "name=billing-team",
        "policies=billing",
    ])
    .ok();
    s.run(&["write", "identity/group", "name=finance"]).ok();
    let plan = s.run(&["plan", "--format", "json"]).ok().json();
    let matrix = plan["access"]["matrix"].as_array().unwrap();
    let stripe = matrix
        .iter()
        .find(|r| r["secret"] == json!("secret/billing/stripe"))
        .unwrap_or_else(|| panic!("{plan}"));
    for column in ["read", "write", "rotate"] {
        assert!(
            stripe[column]
                .to_string()
                .contains("identity/group/billing-team"),
            "{column}: {stripe}"
        );
    }
    let app = matrix
        .iter()
        .find(|r| r["secret"] == json!("secret/app/db"))
        .unwrap();
    assert!(
        !app["read"].to_string().contains("identity/group/"),
        "no group reaches secret/app/db: {app}"
    );
    let md = s.run(&["plan"]).ok().stdout;
    assert!(md.contains("identity/group/billing-team"), "{md}");
}

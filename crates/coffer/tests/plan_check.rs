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
    p.run_as(
        Some(&root),
        &[
            "secret",
            "set",
            "secret/billing/stripe",
            "-owner=billing",
            "-type=api_key",
            "-vendor=stripe",
            "-rotate-every=90d",
            "-rotator=manual",
        ],
    )
    .ok();
    // The app's identity reads exactly its secret.
    p.run_as(Some(&root), &["auth", "enable", "approle"]).ok();
    let pol = p.dir.path().join("billing.hcl");
    std::fs::write(
        &pol,
        "path \"secret/data/billing/stripe\" { capabilities = [\"read\"] }\n",
    )
    .unwrap();
    p.run_as(
        Some(&root),
        &["policy", "write", "billing-app", pol.to_str().unwrap()],
    )
    .ok();
    p.run_as(
        Some(&root),
        &[
            "write",
            "auth/approle/role/billing",
            "token_policies=billing-app",
            "token_ttl=1h",
            "token_max_ttl=4h",
        ],
    )
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
    // Base32 letters only (A-P), as the AWS key id rule wants.
    let id: String = random_hex(8)
        .bytes()
        .map(|b| {
            char::from(
                b"ABCDEFGHIJKLMNOP"[usize::from(if b.is_ascii_digit() {
                    b - b'0'
                } else {
                    b - b'a' + 10
                })],
            )
        })
        .collect();
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
    p.run(&["policy", "write", "billing-app", broad.to_str().unwrap()])
        .ok();
    let (code, c) = p.check(&repo);
    assert_eq!(code, 1);
    let b = blockers(&c);
    assert!(
        b.iter().any(|(cr, item, why)| cr == "access"
            && item == "policy billing-app"
            && why.contains("secret/*")
            && why.contains("auth/approle/billing")),
        "{b:#?}"
    );
    assert!(has_blocker(&c, "approvals", "approval security"), "{c:#}");
    let pol = p.dir.path().join("billing.hcl");
    p.run(&["policy", "write", "billing-app", pol.to_str().unwrap()])
        .ok();
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

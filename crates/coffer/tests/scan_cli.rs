//! `coffer scan` end to end: real processes, real temp directories and git
//! repositories. Credentials are generated at run time from templates.

use coffer_scan::template::{expand, Rng};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn coffer() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_coffer"));
    c.env_remove("COFFER_ADDR").env_remove("VAULT_ADDR");
    c
}

fn scan(args: &[&str], dir: &Path) -> Output {
    coffer()
        .arg("scan")
        .arg("--no-progress")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn gen(template: &str, seed: u64) -> String {
    expand(template, &mut Rng::new(seed), 1.0)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Dev One",
            "-c",
            "user.email=dev@example.org",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn exit_codes_clean_findings_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.py"),
        "print('hello')\napi_key = os.environ['API_KEY']\n",
    )
    .unwrap();
    let o = scan(&["."], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("No secrets found."));

    let tok = gen("ghp_<<alnum:36>>", 1);
    std::fs::write(
        dir.path().join("deploy.sh"),
        format!("export GITHUB_TOKEN={tok}\n"),
    )
    .unwrap();
    let o = scan(&["."], dir.path());
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("deploy.sh:1:21  github-pat"), "{out}");
    assert!(!out.contains(&tok), "secret shown without --no-redact");
    let o = scan(&[".", "--no-redact"], dir.path());
    assert!(stdout(&o).contains(&tok));

    let o = scan(&["does-not-exist"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("Error:"), "{err}");

    std::fs::write(
        dir.path().join("bad.toml"),
        "[[rules]]\nid = \"x\"\nregex = '''(unclosed'''\n",
    )
    .unwrap();
    let o = scan(&["--config", "bad.toml", "."], dir.path());
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn stdin_is_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let key = gen("sk_live_<<alnum:24>>", 2);
    let mut child = coffer()
        .args(["scan", "--no-progress", "-f", "json", "-"])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "stripe.api_key = \"{key}\"").unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["rule"], "stripe-secret-key");
    assert_eq!(v[0]["path"], "<stdin>");
}

#[test]
fn gitignore_is_respected_and_binaries_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let tok = gen("glpat-<<b64url:20>>", 3);
    std::fs::write(dir.path().join(".gitignore"), "secrets.env\n").unwrap();
    std::fs::write(
        dir.path().join("secrets.env"),
        format!("GITLAB_TOKEN={tok}\n"),
    )
    .unwrap();
    let mut bin = b"\x00\x01binary".to_vec();
    bin.extend_from_slice(format!("GITLAB_TOKEN={tok}\n").as_bytes());
    std::fs::write(dir.path().join("blob.dat"), bin).unwrap();
    assert_eq!(scan(&["."], dir.path()).status.code(), Some(0));
    let o = scan(&["--no-ignore", "."], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("secrets.env:1:14  gitlab-pat"));
}

#[test]
fn baseline_ignores_known_findings_even_when_lines_move() {
    let dir = tempfile::tempdir().unwrap();
    let tok = gen("xoxb-<<digit:12>>-<<digit:12>>-<<alnum:24>>", 4);
    let file = dir.path().join("bot.py");
    std::fs::write(&file, format!("TOKEN = \"{tok}\"\n")).unwrap();
    let o = scan(&["--write-baseline", "base.json", "src"], dir.path());
    assert_eq!(o.status.code(), Some(2), "no src dir is an error");
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::rename(&file, dir.path().join("src/bot.py")).unwrap();
    let o = scan(&["--write-baseline", "base.json", "src"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    let base = std::fs::read_to_string(dir.path().join("base.json")).unwrap();
    assert!(base.contains("slack-bot-token") && !base.contains(&tok));
    assert_eq!(
        scan(&["--baseline", "base.json", "src"], dir.path())
            .status
            .code(),
        Some(0)
    );
    // Moving the line does not resurrect it.
    std::fs::write(
        dir.path().join("src/bot.py"),
        format!("import os\n\n\nTOKEN = \"{tok}\"\n"),
    )
    .unwrap();
    assert_eq!(
        scan(&["--baseline", "base.json", "src"], dir.path())
            .status
            .code(),
        Some(0)
    );
    // A new secret still fails.
    let other = gen("npm_<<alnum:36>>", 5);
    std::fs::write(dir.path().join("src/npm.txt"), format!("token={other}\n")).unwrap();
    let o = scan(&["--baseline", "base.json", "src"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("npm-access-token") && !stdout(&o).contains("slack-bot-token"));
}

/// A baseline does not depend on the working directory (issue 17, item 2):
/// written from the parent, it holds when scanning from inside the tree,
/// in a plain directory (relative to the scanned root) and in a git
/// repository (relative to its root); a version 1 file still works.
#[test]
fn baseline_paths_do_not_depend_on_the_working_directory() {
    for in_git in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let planted = dir.path().join("planted");
        std::fs::create_dir_all(planted.join("cfg")).unwrap();
        if in_git {
            git(dir.path(), &["init", "-q"]);
        }
        let tok = gen("xoxb-<<digit:12>>-<<digit:12>>-<<alnum:24>>", 14);
        std::fs::write(planted.join("cfg/bot.py"), format!("TOKEN = \"{tok}\"\n")).unwrap();
        let o = scan(&["planted", "--write-baseline", "base.json"], dir.path());
        assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
        let base = std::fs::read_to_string(dir.path().join("base.json")).unwrap();
        let want = if in_git {
            "planted/cfg/bot.py"
        } else {
            "cfg/bot.py"
        };
        assert!(base.contains(&format!("\"path\": \"{want}\"")), "{base}");
        for (cwd, target, baseline) in [
            (planted.clone(), ".", "../base.json"),
            (planted.join("cfg"), "..", "../../base.json"),
            (dir.path().to_path_buf(), "planted", "base.json"),
            (dir.path().to_path_buf(), "./planted/", "base.json"),
        ] {
            let o = scan(&[target, "--baseline", baseline], &cwd);
            assert_eq!(
                o.status.code(),
                Some(0),
                "git={in_git} {cwd:?} {target}: {}",
                stdout(&o)
            );
        }
    }
    // A version 1 baseline (keyed on the path as printed) still holds.
    let dir = tempfile::tempdir().unwrap();
    let tok = gen("xoxb-<<digit:12>>-<<digit:12>>-<<alnum:24>>", 15);
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(
        dir.path().join("src/bot.py"),
        format!("TOKEN = \"{tok}\"\n"),
    )
    .unwrap();
    let fp = coffer_scan::finding::fingerprint("slack-bot-token", "src/bot.py", tok.as_bytes());
    std::fs::write(
        dir.path().join("v1.json"),
        format!(r#"{{"version": 1, "findings": [{{"fingerprint": "{fp}", "rule": "slack-bot-token", "path": "src/bot.py"}}]}}"#),
    )
    .unwrap();
    let o = scan(&["src", "--baseline", "v1.json"], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn gitleaks_config_custom_rule_and_allowlist() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
title = "team config"

[extend]
useDefault = true

[[rules]]
id = "acme-internal-token"
description = "ACME internal token"
regex = '''\b(acme_[a-z0-9]{24})\b'''
secretGroup = 1
keywords = ["acme_"]

[[rules.allowlists]]
description = "documented test token"
regexes = ['''^acme_test''']

[allowlist]
description = "fixtures"
paths = ['''(^|/)fixtures/''']
"#;
    std::fs::write(dir.path().join(".gitleaks.toml"), config).unwrap();
    let acme = gen("acme_<<lalnum:24>>", 6);
    let acme_test = format!("acme_test{}", &gen("<<lalnum:15>>", 7));
    let gh = gen("ghp_<<alnum:36>>", 8);
    std::fs::create_dir(dir.path().join("fixtures")).unwrap();
    std::fs::write(
        dir.path().join("app.cfg"),
        format!("token = {acme}\nother = {acme_test}\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("fixtures/gh.txt"), format!("{gh}\n")).unwrap();
    let o = scan(&["-f", "json", "."], dir.path());
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let found: Vec<(String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![("acme-internal-token".to_string(), "app.cfg".to_string())],
        "{v}"
    );
    assert_eq!(v[0]["line"], 1);
    // Without the config, the built-in rules report the fixture.
    let o = scan(&["--config", "/dev/null", "."], dir.path());
    assert_eq!(o.status.code(), Some(0), "an empty config has no rules");
}

#[test]
fn git_history_finds_a_secret_removed_in_the_next_commit() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    git(repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("README.md"), "# demo\n").unwrap();
    git(repo, &["add", "."]);
    git(repo, &["commit", "-q", "-m", "init"]);
    let key = gen("AKIA<<base32:16>>", 9);
    std::fs::write(
        repo.join("settings.py"),
        format!("DEBUG = True\nAWS_ACCESS_KEY_ID = \"{key}\"\n"),
    )
    .unwrap();
    git(repo, &["add", "."]);
    git(repo, &["commit", "-q", "-m", "add settings"]);
    let leak = String::from_utf8(
        Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(["rev-parse", "HEAD"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    std::fs::write(
        repo.join("settings.py"),
        "DEBUG = True\nAWS_ACCESS_KEY_ID = os.environ[\"AWS_ACCESS_KEY_ID\"]\n",
    )
    .unwrap();
    git(repo, &["commit", "-q", "-am", "remove key"]);

    assert_eq!(
        scan(&["."], repo).status.code(),
        Some(0),
        "the tree is clean"
    );
    let o = scan(&["--git", "-f", "json", "."], repo);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    let f = &v[0];
    assert_eq!(f["rule"], "aws-access-key-id");
    assert_eq!(f["path"], "settings.py");
    assert_eq!(f["line"], 2);
    assert_eq!(f["commit"], leak.as_str());
    assert_eq!(f["author"], "Dev One");
    assert_eq!(f["email"], "dev@example.org");
    assert!(f["date"].as_str().unwrap().len() >= 20);
    // --since the leaking commit excludes it.
    let o = scan(&["--git", "--since", &leak, "."], repo);
    assert_eq!(o.status.code(), Some(0));
    let o = scan(&["--git", "--all", "."], repo);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn staged_scan_and_installed_hook_block_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    git(repo, &["init", "-q", "-b", "main"]);
    let old = gen("sk_live_<<alnum:24>>", 10);
    std::fs::write(repo.join("legacy.py"), format!("KEY = \"{old}\"\n")).unwrap();
    git(repo, &["add", "."]);
    git(repo, &["commit", "-q", "-m", "legacy"]);
    // Only added lines count: editing elsewhere in the file is clean.
    std::fs::write(
        repo.join("legacy.py"),
        format!("import os\nKEY = \"{old}\"\n"),
    )
    .unwrap();
    git(repo, &["add", "."]);
    assert_eq!(scan(&["--staged"], repo).status.code(), Some(0));
    let new = gen("dckr_pat_<<b64url:27>>", 11);
    std::fs::write(repo.join("ci.env"), format!("DOCKER_TOKEN={new}\n")).unwrap();
    git(repo, &["add", "."]);
    let o = scan(&["--staged"], repo);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("ci.env:1:14  dockerhub-pat"),
        "{}",
        stdout(&o)
    );

    let install = || {
        coffer()
            .args(["scan", "install-hook"])
            .current_dir(repo)
            .output()
            .unwrap()
    };
    let o = install();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(repo.join(".git/hooks/pre-commit").exists());
    assert_eq!(install().status.code(), Some(0), "idempotent");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_coffer")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let commit = |msg: &str| {
        Command::new("git")
            .arg("-C")
            .arg(repo)
            .args([
                "-c",
                "user.name=Dev",
                "-c",
                "user.email=d@example.org",
                "commit",
                "-q",
                "-m",
                msg,
            ])
            .env("PATH", &path)
            .output()
            .unwrap()
    };
    assert!(
        !commit("leak").status.success(),
        "the hook must refuse the commit"
    );
    git(repo, &["rm", "-q", "--cached", "ci.env"]);
    assert!(commit("clean").status.success());
}

#[test]
fn reports_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let tok = gen("hf_<<alpha:34>>", 12);
    std::fs::write(
        dir.path().join("train.py"),
        format!("HF_TOKEN = \"{tok}\"\n"),
    )
    .unwrap();
    for (format, marker) in [
        ("json", "\"rule\": \"huggingface-token\""),
        ("sarif", "\"version\": \"2.1.0\""),
        ("junit", "<testsuites"),
        ("csv", "rule,description,path"),
        ("human", "huggingface-token"),
    ] {
        let o = scan(&["-f", format, "-o", "report.out", "train.py"], dir.path());
        assert_eq!(o.status.code(), Some(1), "{format}");
        let text = std::fs::read_to_string(dir.path().join("report.out")).unwrap();
        assert!(text.contains(marker), "{format}: {text}");
        assert!(!text.contains(&tok), "{format} leaked the secret");
    }
    let o = scan(&["-f", "yaml", "."], dir.path());
    assert_eq!(o.status.code(), Some(2));
}

/// `coffer scan .` on Coffer's own repository finds nothing: no credential
/// (not even a test one) is ever committed.
#[test]
fn coffer_repository_is_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let o = scan(&["."], &root);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn an_unknown_flag_is_an_error_not_a_finding() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["scan", "--no-such-flag", "."])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit 1 would read as findings in CI"
    );
}

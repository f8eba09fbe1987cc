//! History scans report each distinct secret once, at the commit that
//! introduced it, with the later commits and paths holding it as extra
//! locations.

use coffer_scan::git::{scan_history, Range};
use coffer_scan::template::{expand, Rng};
use coffer_scan::walk::Progress;
use coffer_scan::{Config, Scanner};
use std::path::Path;
use std::process::Command;

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "-c",
            "user.name=Dev",
            "-c",
            "user.email=dev@example.org",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn one_finding_per_secret_at_its_introducing_commit() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    git(repo, &["init", "-q", "-b", "main"]);
    let mut rng = Rng::new(42);
    let tok = expand("ghp_<<alnum:36>>", &mut rng, 1.0);
    let other = expand("ghp_<<alnum:36>>", &mut rng, 1.0);
    std::fs::write(repo.join("a.py"), format!("T = \"{tok}\"\n")).unwrap();
    git(repo, &["add", "."]);
    git(repo, &["commit", "-q", "-m", "one"]);
    let c1 = git(repo, &["rev-parse", "HEAD"]);
    std::fs::write(repo.join("a.py"), format!("# edited\nT = \"{tok}\"\n")).unwrap();
    git(repo, &["commit", "-q", "-am", "two"]);
    let c2 = git(repo, &["rev-parse", "HEAD"]);
    std::fs::write(
        repo.join("b.py"),
        format!("U = \"{tok}\"\nV = \"{other}\"\n"),
    )
    .unwrap();
    git(repo, &["add", "."]);
    git(repo, &["commit", "-q", "-m", "three"]);
    let c3 = git(repo, &["rev-parse", "HEAD"]);

    let scanner = Scanner::new(&Config::builtin().unwrap()).unwrap();
    let found = scan_history(&scanner, repo, &Range::Head, 1 << 20, &Progress::default()).unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
    let f = found.iter().find(|f| f.secret.as_str() == tok).unwrap();
    assert_eq!(f.path, "a.py");
    assert_eq!(f.line, 1);
    assert_eq!(f.commit.as_ref().unwrap().commit, c1);
    let also: Vec<(String, usize, String)> = f
        .also
        .iter()
        .map(|l| (l.path.clone(), l.line, l.commit.clone().unwrap()))
        .collect();
    assert_eq!(
        also,
        vec![
            ("a.py".to_string(), 2, c2),
            ("b.py".to_string(), 1, c3.clone())
        ]
    );
    let g = found.iter().find(|f| f.secret.as_str() == other).unwrap();
    assert_eq!(g.commit.as_ref().unwrap().commit, c3);
    assert!(g.also.is_empty());
    // The JSON report lists the extra locations.
    let v = coffer_scan::report::finding_json(f, false);
    assert_eq!(v["extraLocations"].as_array().unwrap().len(), 2, "{v}");
}

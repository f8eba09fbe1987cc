//! `coffer audit enable|list|disable` and `verify` through the CLI against a
//! real server.

mod cli_support;

use cli_support::Server;

#[test]
fn enable_list_verify_disable() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(&["--dev-audit-dir", dir.path().to_str().unwrap()]);
    let log = dir.path().join("audit.log");
    let opt = format!("file_path={}", log.display());
    s.run(&["audit", "enable", "file", &opt]).ok();
    let listed = s.run(&["audit", "list", "-format=json"]).ok().json();
    assert_eq!(listed["file/"]["type"], "file");
    s.run(&["kv", "put", "secret/audited", "k=v1"]).ok();
    let key = s
        .run(&["read", "-field=public_key", "sys/audit/file/verify-key"])
        .ok();
    let key = key.stdout.trim().to_string();
    // The device is live: its log has no closing checkpoint yet, so only
    // `--open` accepts it.
    let verify = |extra: &[&str]| {
        let mut args = vec![
            "audit",
            "verify",
            log.to_str().unwrap(),
            "--public-key",
            &key,
        ];
        args.extend_from_slice(extra);
        s.run(&args)
    };
    verify(&[]).code(1);
    verify(&["--open"]).ok();
    s.run(&["audit", "enable", "file", "not-key-value"]).code(1);
    s.run(&["audit", "disable", "file"]).ok();
    let listed = s.run(&["audit", "list", "-format=json"]).ok().json();
    assert!(listed.get("file/").is_none(), "{listed}");
    // Disabled: the log is closed and verifies as it is.
    verify(&[]).ok();
}

/// Sequence number and checkpoint reason of each line of a log.
fn entries(text: &str) -> Vec<(u64, Option<String>)> {
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let reason = (v["type"] == "checkpoint")
                .then(|| v["checkpoint"]["reason"].as_str().unwrap().to_string());
            (v["seq"].as_u64().unwrap(), reason)
        })
        .collect()
}

#[test]
fn truncated_log_fails_verify_and_open_names_the_last_signed_seq() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(&["--dev-audit-dir", dir.path().to_str().unwrap()]);
    let log = dir.path().join("audit.log");
    // A checkpoint every 4 entries, so the cut log still holds signed ones.
    let opt = format!("file_path={}", log.display());
    s.run(&["audit", "enable", "file", &opt, "checkpoint_interval=4"])
        .ok();
    let key = s
        .run(&["read", "-field=public_key", "sys/audit/file/verify-key"])
        .ok()
        .stdout
        .trim()
        .to_string();
    for i in 0..6 {
        let kv = format!("k={}", cli_support::unique("v"));
        s.run(&["kv", "put", &format!("secret/t{i}"), &kv]).ok();
    }
    s.run(&["audit", "disable", "file"]).ok();
    let text = std::fs::read_to_string(&log).unwrap();
    let all = entries(&text);
    assert_eq!(all.last().unwrap().1.as_deref(), Some("disable"), "{all:?}");

    let verify = |file: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "audit",
            "verify",
            file.to_str().unwrap(),
            "--public-key",
            &key,
        ];
        args.extend_from_slice(extra);
        s.run(&args)
    };
    // Whole: it verifies.
    let whole = verify(&log, &[]).ok();
    assert!(whole.stdout.starts_with("OK: "), "{whole:#?}");

    // The last N lines cut off, for N = 1 (the closing checkpoint) up to
    // the point where the cut lands on an interval checkpoint.
    let lines: Vec<&str> = text.lines().collect();
    let cut = dir.path().join("cut.log");
    for n in 1..=6 {
        let kept = &all[..all.len() - n];
        std::fs::write(&cut, lines[..lines.len() - n].join("\n") + "\n").unwrap();
        let signed_index = kept.iter().rposition(|(_, r)| r.is_some()).unwrap();
        let signed_at = kept[signed_index].0;
        let unsigned = kept.len() - 1 - signed_index;
        let r = verify(&cut, &[]).code(1);
        assert!(
            r.stdout
                .contains(&format!("last signed checkpoint is seq {signed_at} (")),
            "cut {n}: {r:#?}"
        );
        assert!(
            r.stdout.contains(&format!("{unsigned} entries after it")),
            "cut {n}: {r:#?}"
        );
        // As a live log it passes, and says where the signed part ends.
        let open = verify(&cut, &["--open"]).ok();
        assert!(
            open.stdout
                .contains(&format!("last signed checkpoint seq {signed_at};")),
            "cut {n}: {open:#?}"
        );
        let j = verify(&cut, &["--open", "--format", "json"]).ok().json();
        assert_eq!(j["ok"], true, "{j}");
        assert_eq!(j["report"]["last_signed_seq"], signed_at, "{j}");
        assert_eq!(j["report"]["unsigned_tail"], unsigned as u64, "{j}");
        assert_eq!(j["report"]["closed"], false, "{j}");
        let j = verify(&cut, &["--format", "json"]).code(1).json();
        assert_eq!(j["ok"], false, "{j}");
        assert_eq!(j["report"]["problem"]["kind"], "truncated", "{j}");
    }
}

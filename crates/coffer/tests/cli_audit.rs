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
    s.run(&[
        "audit",
        "verify",
        log.to_str().unwrap(),
        "--public-key",
        &key,
    ])
    .ok();
    s.run(&["audit", "enable", "file", "not-key-value"]).code(1);
    s.run(&["audit", "disable", "file"]).ok();
    let listed = s.run(&["audit", "list", "-format=json"]).ok().json();
    assert!(listed.get("file/").is_none(), "{listed}");
}

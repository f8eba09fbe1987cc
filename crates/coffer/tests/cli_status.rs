//! `coffer status` and `coffer operator ...` against a real dev server.

mod cli_support;

use cli_support::{cli, free_port, Run, Server};
use serde_json::json;

#[test]
fn status_exit_codes_follow_vault() {
    let s = Server::start();
    let up = s.run(&["status"]).ok();
    assert!(up.stdout.starts_with("Key "), "{up:#?}");
    assert!(up.stdout.contains("\nSealed          false\n"), "{up:#?}");
    let j = s.run(&["status", "-format=json"]).ok().json();
    assert_eq!(j["sealed"], json!(false));
    assert_eq!(j["initialized"], json!(true));

    // Nothing listening: exit 1, with a message.
    let home = tempfile::tempdir().unwrap();
    let mut c = cli(home.path());
    c.env("COFFER_ADDR", format!("http://127.0.0.1:{}", free_port()));
    let down = Run::of(c.arg("status")).code(1);
    assert!(
        down.stderr.contains("Error checking seal status"),
        "{down:#?}"
    );

    // Sealed: exit 2 and the table says so. A bad token cannot seal.
    Run::of(s.cmd().env("COFFER_TOKEN", "x").args(["operator", "seal"])).code(2);
    let sealed = s.run(&["operator", "seal"]).ok();
    assert!(sealed.stdout.contains("sealed"), "{sealed:#?}");
    let st = s.run(&["status"]).code(2);
    assert!(st.stdout.contains("\nSealed "), "{st:#?}");
    assert!(st.stdout.contains("true"), "{st:#?}");
    // Requests other than status now fail with 503.
    let kv = s.run(&["kv", "get", "secret/x"]).code(2);
    assert!(kv.stderr.contains("Code: 503"), "{kv:#?}");
}

#[test]
fn key_status_and_rotate() {
    let s = Server::start();
    let before = s
        .run(&["operator", "key-status", "-format=json"])
        .ok()
        .json();
    let term = |v: &serde_json::Value| {
        v.get("term")
            .or_else(|| v.pointer("/data/term"))
            .and_then(serde_json::Value::as_u64)
            .unwrap()
    };
    let t0 = term(&before);
    let table = s.run(&["operator", "key-status"]).ok();
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.starts_with("Key Term")
                && l.split_whitespace().last() == Some(&t0.to_string())),
        "{table:#?}"
    );

    let rot = s.run(&["operator", "rotate"]).ok();
    assert!(
        rot.stdout.starts_with("Success! Rotated key\n\n"),
        "{rot:#?}"
    );
    let after = s
        .run(&["operator", "key-status", "-format=json"])
        .ok()
        .json();
    assert_eq!(term(&after), t0 + 1);

    // Data written before the rotation is still readable after it.
    s.run(&["kv", "put", "secret/r", "k=v"]).ok();
    s.run(&["operator", "rotate"]).ok();
    assert_eq!(
        s.run(&["kv", "get", "-field=k", "secret/r"]).ok().stdout,
        "v"
    );
}

#[test]
fn init_on_an_initialised_server_and_usage_errors() {
    let s = Server::start();
    let st = s.run(&["operator", "init", "-status"]).ok();
    assert!(st.stdout.contains("is initialized"), "{st:#?}");
    let again = s
        .run(&["operator", "init", "-key-shares=3", "-key-threshold=2"])
        .code(2);
    assert!(again.stderr.contains("Code: 400"), "{again:#?}");
    // Unknown flags are usage errors (exit 1), as in vault.
    s.run(&["operator", "init", "-no-such-flag"]).code(1);
    s.run(&["status", "--format=yaml"]).code(1);
}

//! `coffer kv ...` against a real dev server: every subcommand, both output
//! formats, Vault-style flags and exit codes.

mod cli_support;

use cli_support::{unique, Server};
use serde_json::json;

#[test]
fn put_then_get_in_table_json_and_field_forms() {
    let s = Server::start();
    let pass = unique("pw");
    let put = s
        .run(&[
            "kv",
            "put",
            "secret/app/db",
            "user=alice",
            &format!("pass={pass}"),
        ])
        .ok();
    assert!(
        put.stdout
            .starts_with("=== Secret Path ===\nsecret/data/app/db\n\n"),
        "{put:#?}"
    );
    assert!(put.stdout.contains("\nversion            1\n"), "{put:#?}");
    assert!(!put.stdout.contains(&pass), "put must not print the value");

    let get = s.run(&["kv", "get", "secret/app/db"]).ok();
    assert!(
        get.stdout
            .contains("==== Data ====\nKey     Value\n---     -----\n"),
        "{get:#?}"
    );
    assert!(
        get.stdout
            .contains(&format!("\npass    {pass}\nuser    alice\n")),
        "{get:#?}"
    );

    // -field prints the bare value (no newline: stdout is a pipe).
    let field = s.run(&["kv", "get", "-field=pass", "secret/app/db"]).ok();
    assert_eq!(field.stdout, pass);
    s.run(&["kv", "get", "-field=nope", "secret/app/db"])
        .code(1);

    // -mount= makes the path relative; -format=json prints the server's answer.
    let j = s
        .run(&["kv", "get", "-mount=secret", "-format=json", "app/db"])
        .ok()
        .json();
    assert_eq!(j["data"]["data"], json!({"user": "alice", "pass": pass}));
    assert_eq!(j["data"]["metadata"]["version"], json!(1));
}

#[test]
fn put_reads_files_and_stdin() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "-----BEGIN X-----\nabc\n").unwrap();
    s.run(&[
        "kv",
        "put",
        "secret/files",
        &format!("cert=@{}", cert.display()),
    ])
    .ok();
    let j = s
        .run(&["kv", "get", "-format", "json", "secret/files"])
        .ok()
        .json();
    assert_eq!(j["data"]["data"]["cert"], json!("-----BEGIN X-----\nabc\n"));

    s.run_stdin(&["kv", "put", "secret/stdin", "-"], r#"{"a": "1", "n": 2}"#)
        .ok();
    let j = s
        .run(&["kv", "get", "--format=json", "secret/stdin"])
        .ok()
        .json();
    assert_eq!(j["data"]["data"], json!({"a": "1", "n": 2}));
}

#[test]
fn check_and_set_and_usage_errors() {
    let s = Server::start();
    s.run(&["kv", "put", "-cas=0", "secret/cas", "v=1"]).ok();
    let secret = unique("value");
    // The secret exists now: cas=0 must fail with a server error (exit 2),
    // and the error must not echo the data.
    let fail = s
        .run(&["kv", "put", "-cas=0", "secret/cas", &format!("v={secret}")])
        .code(2);
    assert!(fail.stderr.contains("Code: 400"), "{fail:#?}");
    assert!(!fail.stderr.contains(&secret), "{fail:#?}");
    s.run(&["kv", "put", "-cas=1", "secret/cas", "v=2"]).ok();

    // Usage errors exit 1 and never echo what was typed.
    s.run(&["kv", "put", "secret/cas"]).code(1);
    let bad = s.run(&["kv", "put", "secret/cas", &secret]).code(1);
    assert!(!bad.stderr.contains(&secret), "{bad:#?}");
    s.run(&["kv", "get"]).code(1);
    s.run(&["kv", "get", "-version=x", "secret/cas"]).code(1);
}

#[test]
fn patch_by_merge_patch_and_by_read_write() {
    let s = Server::start();
    s.run(&["kv", "put", "secret/p", "a=1", "b=2"]).ok();
    s.run(&["kv", "patch", "secret/p", "b=3", "c=4"]).ok();
    let j = s
        .run(&["kv", "get", "-format=json", "secret/p"])
        .ok()
        .json();
    assert_eq!(j["data"]["data"], json!({"a": "1", "b": "3", "c": "4"}));
    assert_eq!(j["data"]["metadata"]["version"], json!(2));

    s.run(&[
        "kv",
        "patch",
        "-method=rw",
        "-remove-data=a",
        "secret/p",
        "d=5",
    ])
    .ok();
    let j = s
        .run(&["kv", "get", "-format=json", "secret/p"])
        .ok()
        .json();
    assert_eq!(j["data"]["data"], json!({"b": "3", "c": "4", "d": "5"}));
    assert_eq!(j["data"]["metadata"]["version"], json!(3));

    // Patching a missing secret is an error.
    s.run(&["kv", "patch", "secret/missing", "a=1"]).code(2);
}

#[test]
fn list_keys_in_table_and_json() {
    let s = Server::start();
    s.run(&["kv", "put", "secret/dir/a", "k=v"]).ok();
    s.run(&["kv", "put", "secret/dir/sub/b", "k=v"]).ok();
    let t = s.run(&["kv", "list", "secret/dir"]).ok();
    assert_eq!(t.stdout, "Keys\n----\na\nsub/\n");
    let j = s
        .run(&["kv", "list", "-format=json", "-mount=secret", "dir/"])
        .ok()
        .json();
    assert_eq!(j, json!(["a", "sub/"]));
    // One page at a time: -after the last entry seen, at most -limit.
    s.run(&["kv", "put", "secret/dir/c", "k=v"]).ok();
    let page = |after: &str| {
        let mut args = vec!["kv", "list", "-format=json", "-limit=2", "secret/dir"];
        if !after.is_empty() {
            args.insert(2, after);
        }
        s.run(&args).ok().json()
    };
    assert_eq!(page(""), json!(["a", "c"]));
    assert_eq!(page("-after=c"), json!(["sub/"]));
    let past = s.run(&["kv", "list", "-after=sub/", "secret/dir"]).code(2);
    assert!(past.stderr.contains("No value found"), "{past:#?}");
    let bad = s.run(&["kv", "list", "-limit=0", "secret/dir"]).code(1);
    assert!(bad.stderr.contains("limit"), "{bad:#?}");
    let none = s.run(&["kv", "list", "secret/nothing-here"]).code(2);
    assert!(
        none.stderr
            .contains("No value found at secret/metadata/nothing-here"),
        "{none:#?}"
    );
}

#[test]
fn delete_undelete_destroy_and_missing() {
    let s = Server::start();
    s.run(&["kv", "put", "secret/d", "x=1"]).ok();
    s.run(&["kv", "put", "secret/d", "x=2"]).ok();

    let del = s.run(&["kv", "delete", "secret/d"]).ok();
    assert_eq!(
        del.stdout,
        "Success! Data deleted (if it existed) at: secret/data/d\n"
    );
    // A deleted version still shows its metadata, but no data.
    let g = s.run(&["kv", "get", "secret/d"]).ok();
    assert!(g.stdout.contains("Metadata"), "{g:#?}");
    assert!(!g.stdout.contains("=== Data ==="), "{g:#?}");

    let u = s.run(&["kv", "undelete", "-versions=2", "secret/d"]).ok();
    assert_eq!(u.stdout, "Success! Data written to: secret/undelete/d\n");
    assert_eq!(
        s.run(&["kv", "get", "-field=x", "secret/d"]).ok().stdout,
        "2"
    );

    s.run(&["kv", "delete", "-versions=1", "secret/d"]).ok();
    let j = s
        .run(&["kv", "metadata", "get", "-format=json", "secret/d"])
        .ok()
        .json();
    assert_ne!(j["data"]["versions"]["1"]["deletion_time"], json!(""));

    s.run(&["kv", "destroy", "-versions", "1,2", "secret/d"])
        .ok();
    let j = s
        .run(&["kv", "metadata", "get", "-format=json", "secret/d"])
        .ok()
        .json();
    assert_eq!(j["data"]["versions"]["1"]["destroyed"], json!(true));
    assert_eq!(j["data"]["versions"]["2"]["destroyed"], json!(true));

    // Without -versions, undelete/destroy are usage errors.
    s.run(&["kv", "undelete", "secret/d"]).code(1);
    s.run(&["kv", "destroy", "secret/d"]).code(1);

    let miss = s.run(&["kv", "get", "secret/never-written"]).code(2);
    assert!(
        miss.stderr
            .contains("No value found at secret/data/never-written"),
        "{miss:#?}"
    );
}

#[test]
fn rollback_writes_an_old_version_as_new() {
    let s = Server::start();
    s.run(&["kv", "put", "secret/r", "x=one"]).ok();
    s.run(&["kv", "put", "secret/r", "x=two"]).ok();
    s.run(&["kv", "rollback", "-version=1", "secret/r"]).ok();
    let j = s
        .run(&["kv", "get", "-format=json", "secret/r"])
        .ok()
        .json();
    assert_eq!(j["data"]["data"], json!({"x": "one"}));
    assert_eq!(j["data"]["metadata"]["version"], json!(3));
    s.run(&["kv", "rollback", "secret/r"]).code(1);
    s.run(&["kv", "rollback", "-version=9", "secret/r"]).code(2);
}

#[test]
fn metadata_put_get_delete() {
    let s = Server::start();
    s.run(&["kv", "put", "secret/m", "x=1"]).ok();
    let put = s
        .run(&[
            "kv",
            "metadata",
            "put",
            "-max-versions=3",
            "-cas-required",
            "-custom-metadata=owner=team-a",
            "-custom-metadata=env=prod",
            "secret/m",
        ])
        .ok();
    assert_eq!(put.stdout, "Success! Data written to: secret/metadata/m\n");
    let j = s
        .run(&["kv", "metadata", "get", "-format=json", "secret/m"])
        .ok()
        .json();
    assert_eq!(j["data"]["max_versions"], json!(3));
    assert_eq!(j["data"]["cas_required"], json!(true));
    assert_eq!(
        j["data"]["custom_metadata"],
        json!({"owner": "team-a", "env": "prod"})
    );

    // cas is now required: a write without it fails, with it succeeds.
    s.run(&["kv", "put", "secret/m", "x=2"]).code(2);
    s.run(&["kv", "put", "-cas=1", "secret/m", "x=2"]).ok();

    let t = s.run(&["kv", "metadata", "get", "secret/m"]).ok();
    assert!(
        t.stdout
            .starts_with("= Metadata Path =\nsecret/metadata/m\n\n"),
        "{t:#?}"
    );
    assert!(
        t.stdout
            .lines()
            .any(|l| l.split_whitespace().eq(["current_version", "2"])),
        "{t:#?}"
    );
    assert!(t.stdout.contains("= Version 1 ="), "{t:#?}");
    assert!(t.stdout.contains("= Version 2 ="), "{t:#?}");

    s.run(&["kv", "metadata", "put", "-cas-required=false", "secret/m"])
        .ok();
    s.run(&["kv", "put", "secret/m", "x=3"]).ok();

    let del = s.run(&["kv", "metadata", "delete", "secret/m"]).ok();
    assert_eq!(
        del.stdout,
        "Success! Data deleted (if it existed) at: secret/metadata/m\n"
    );
    s.run(&["kv", "metadata", "get", "secret/m"]).code(2);
    s.run(&["kv", "get", "secret/m"]).code(2);
}

#[test]
fn requests_without_a_valid_token_are_refused() {
    let s = Server::start();
    let r = cli_support::Run::of(
        s.cmd()
            .env("COFFER_TOKEN", unique("not-a-token"))
            .args(["kv", "get", "secret/x"]),
    )
    .code(2);
    assert!(r.stderr.contains("Code: 403"), "{r:#?}");
    // VAULT_* variables are honoured when COFFER_* are absent.
    let mut c = cli_support::cli(s.home.path());
    c.env("VAULT_ADDR", &s.addr).env("VAULT_TOKEN", &s.token);
    cli_support::Run::of(c.args(["kv", "put", "secret/v", "a=b"])).ok();
}

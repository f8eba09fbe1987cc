//! `coffer token|policy|auth|read|write|patch|list|delete` (and method
//! logins) against a real dev server: happy paths, bad input with its exit
//! code and message, and `-format=json` output.

mod cli_support;

use cli_support::{unique, Server};
use serde_json::{json, Value};

/// Creates a token with `policies` and returns (token, accessor).
fn token_with(s: &Server, policies: &str) -> (String, String) {
    let j = s
        .run(&[
            "token",
            "create",
            &format!("-policy={policies}"),
            "-format=json",
        ])
        .ok()
        .json();
    (
        j["auth"]["client_token"].as_str().unwrap().to_owned(),
        j["auth"]["accessor"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn token_create_lookup_renew_capabilities_revoke() {
    let s = Server::start();
    // Table output: vault's rows, with metadata rows.
    let t = s
        .run(&[
            "token",
            "create",
            "-policy=default",
            "-ttl=1h",
            "-metadata",
            "team=pay",
            "-display-name=ci",
        ])
        .ok();
    for row in [
        "token ",
        "token_accessor ",
        "token_renewable ",
        "token_meta_team    pay",
    ] {
        assert!(t.stdout.contains(row), "missing {row:?}: {t:#?}");
    }
    assert!(t.stdout.contains("token_duration     1h\n"), "{t:#?}");

    // JSON output is the server's answer; -field prints one value bare.
    let j = s
        .run(&[
            "token",
            "create",
            "-policy=default",
            "-ttl=2h",
            "-use-limit=5",
            "-renewable=false",
            "-metadata",
            "team=pay",
            "-format=json",
        ])
        .ok()
        .json();
    let token = j["auth"]["client_token"].as_str().unwrap().to_owned();
    let accessor = j["auth"]["accessor"].as_str().unwrap().to_owned();
    assert_eq!(j["auth"]["lease_duration"], json!(7200));
    assert_eq!(j["auth"]["renewable"], json!(false));
    let bare = s.run(&["token", "create", "-field=token_accessor"]).ok();
    assert!(
        !bare.stdout.is_empty() && !bare.stdout.contains('\n'),
        "{bare:#?}"
    );

    // lookup by token, by accessor and of self.
    let l = s
        .run(&["token", "lookup", "-format=json", &token])
        .ok()
        .json();
    assert_eq!(l["data"]["meta"]["team"], json!("pay"));
    assert_eq!(l["data"]["num_uses"], json!(5));
    let l = s
        .run(&["token", "lookup", "-accessor", &accessor, "-format=json"])
        .ok()
        .json();
    assert_eq!(l["data"]["accessor"], json!(accessor));
    let me = s.run(&["token", "lookup"]).ok();
    assert!(
        me.stdout.contains("policies            [root]\n"),
        "{me:#?}"
    );

    // renew: a renewable token gets its increment.
    let (renewable, _) = token_with(&s, "default");
    let r = s
        .run(&[
            "token",
            "renew",
            "-increment=3h",
            "-format=json",
            &renewable,
        ])
        .ok()
        .json();
    assert_eq!(r["auth"]["lease_duration"], json!(10800));
    // A non-renewable one is refused by the server: exit 2 with its message.
    let bad = s.run(&["token", "renew", &token]).code(2);
    assert!(bad.stderr.contains("Code: 400"), "{bad:#?}");

    // capabilities: the root token has root; a default-policy token is denied.
    let c = s.run(&["token", "capabilities", "secret/data/x"]).ok();
    assert_eq!(c.stdout, "root\n");
    let c = s
        .run(&[
            "token",
            "capabilities",
            "-format=json",
            &token,
            "secret/data/x",
        ])
        .ok()
        .json();
    assert_eq!(c, json!(["deny"]));

    // revoke: the token stops working.
    s.run(&["token", "revoke", &token]).ok();
    let gone = s.run(&["token", "lookup", &token]).code(2);
    assert!(gone.stderr.contains("Error"), "{gone:#?}");
    let (_, acc2) = token_with(&s, "default");
    let out = s.run(&["token", "revoke", "-accessor", &acc2]).ok();
    assert!(out.stdout.contains("Success! Revoked token"), "{out:#?}");
    s.run(&["token", "lookup", "-accessor", &acc2]).code(2);
}

#[test]
fn token_orphans_roles_self_revocation_and_bad_input() {
    let s = Server::start();
    let j = s
        .run(&[
            "token",
            "create",
            "-orphan",
            "-policy=default",
            "-format=json",
        ])
        .ok()
        .json();
    assert_eq!(j["auth"]["orphan"], json!(true));

    s.run(&[
        "write",
        "auth/token/roles/deploy",
        "allowed_policies=default",
        "orphan=true",
    ])
    .ok();
    let j = s
        .run(&["token", "create", "-role=deploy", "-format=json"])
        .ok()
        .json();
    assert_eq!(j["auth"]["orphan"], json!(true));

    // -self revokes the caller's own token.
    let (child, _) = token_with(&s, "default");
    let mut cmd = s.cmd();
    cmd.env("COFFER_TOKEN", &child)
        .args(["token", "revoke", "-self"]);
    cli_support::Run::of(&mut cmd).ok();
    s.run(&["token", "lookup", &child]).code(2);

    // Usage errors exit 1 with a clear message and send nothing.
    let e = s
        .run(&["token", "create", "-metadata", "no-equals"])
        .code(1);
    assert!(e.stderr.contains("-metadata number 1"), "{e:#?}");
    let e = s.run(&["token", "revoke"]).code(1);
    assert!(e.stderr.contains("Not enough arguments"), "{e:#?}");
    let e = s
        .run(&["token", "create", "-role=deploy", "-orphan"])
        .code(1);
    assert!(e.stderr.contains("cannot be used together"), "{e:#?}");
    s.run(&["token", "create", "-ttl=soon"]).code(2);
    s.run(&["token", "capabilities"]).code(1);
}

#[test]
fn policy_write_read_list_delete_and_capabilities() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.hcl");
    std::fs::write(
        &file,
        "path \"secret/data/app/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n",
    )
    .unwrap();
    let w = s
        .run(&["policy", "write", "app", file.to_str().unwrap()])
        .ok();
    assert_eq!(w.stdout, "Success! Uploaded policy: app\n");
    // From stdin too.
    s.run_stdin(
        &["policy", "write", "ops", "-"],
        "path \"sys/mounts\" { capabilities = [\"read\"] }\n",
    )
    .ok();

    let r = s.run(&["policy", "read", "app"]).ok();
    assert!(r.stdout.contains("path \"secret/data/app/*\""), "{r:#?}");
    let j = s
        .run(&["policy", "read", "-format=json", "ops"])
        .ok()
        .json();
    assert!(j["data"]["policy"].as_str().unwrap().contains("sys/mounts"));

    let l = s.run(&["policy", "list"]).ok();
    assert_eq!(l.stdout, "app\ndefault\nops\nroot\n");
    let l = s.run(&["policy", "list", "-format=json"]).ok().json();
    assert_eq!(l, json!(["app", "default", "ops", "root"]));

    // The policy takes effect: a token holding it may read and list.
    let (token, _) = token_with(&s, "app");
    let c = s
        .run(&["token", "capabilities", &token, "secret/data/app/db"])
        .ok();
    assert_eq!(c.stdout, "list, read\n");

    s.run(&["policy", "delete", "app"]).ok();
    let missing = s.run(&["policy", "read", "app"]).code(2);
    assert!(
        missing.stderr.contains("No policy named: app"),
        "{missing:#?}"
    );

    // A bad policy is refused by the server with its reason (exit 2);
    // a missing file is a usage error (exit 1).
    let bad = s
        .run_stdin(
            &["policy", "write", "bad", "-"],
            "path \"x\" { capabilities = [\"reed\"] }",
        )
        .code(2);
    assert!(bad.stderr.contains("reed"), "{bad:#?}");
    s.run(&["policy", "write", "x", "/nonexistent/policy.hcl"])
        .code(1);
    s.run(&["policy", "write", "a/b", file.to_str().unwrap()])
        .code(1);
}

#[test]
fn policy_fmt_rewrites_in_place_offline_and_names_the_bad_line() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.hcl");
    std::fs::write(
        &file,
        "# comment\npath \"a/*\" {capabilities=[\"list\",\"read\"]}\npath \"b\" {\n policy = \"write\"\n}\n",
    )
    .unwrap();
    // No server at all: fmt is offline.
    let run = |args: &[&str]| {
        cli_support::Run::of(
            cli_support::cli(home.path())
                .env("COFFER_ADDR", "http://127.0.0.1:1")
                .args(args),
        )
    };
    let out = run(&["policy", "fmt", file.to_str().unwrap()]).ok();
    assert!(
        out.stdout.starts_with("Success! Formatted policy: "),
        "{out:#?}"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.starts_with("path \"a/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n"),
        "{text}"
    );
    assert!(text.contains("path \"b\" {\n  capabilities = ["), "{text}");
    // Formatting is idempotent.
    run(&["policy", "fmt", file.to_str().unwrap()]).ok();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);

    let bad = dir.path().join("bad.hcl");
    let original = "path \"a\" {\n  capabilities = [\"read\"]\n}\npath \"b\" {\n  capabilities = [\"reed\"]\n}\n";
    std::fs::write(&bad, original).unwrap();
    let e = run(&["policy", "fmt", bad.to_str().unwrap()]).code(1);
    assert!(e.stderr.contains("line 5"), "{e:#?}");
    assert!(e.stderr.contains("reed"), "{e:#?}");
    assert_eq!(
        std::fs::read_to_string(&bad).unwrap(),
        original,
        "untouched"
    );
    run(&["policy", "fmt", "/nonexistent.hcl"]).code(1);
}

#[test]
fn auth_enable_list_tune_disable() {
    let s = Server::start();
    let e = s.run(&["auth", "enable", "userpass"]).ok();
    assert_eq!(
        e.stdout,
        "Success! Enabled userpass auth method at: userpass/\n"
    );
    s.run(&[
        "auth",
        "enable",
        "-path=ci",
        "-description=CI machines",
        "-default-lease-ttl=30m",
        "approle",
    ])
    .ok();

    let l = s.run(&["auth", "list"]).ok();
    let lines: Vec<&str> = l.stdout.lines().collect();
    assert!(lines[0].starts_with("Path "), "{l:#?}");
    assert!(
        lines[0].contains("Type") && lines[0].contains("Accessor"),
        "{l:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|r| r.starts_with("ci/") && r.contains("approle") && r.contains("CI machines")),
        "{l:#?}"
    );
    assert!(lines.iter().any(|r| r.starts_with("token/")), "{l:#?}");
    let j = s.run(&["auth", "list", "-format=json"]).ok().json();
    assert_eq!(j["ci/"]["type"], json!("approle"));
    assert_eq!(j["ci/"]["config"]["default_lease_ttl"], json!(1800));

    let t = s
        .run(&[
            "auth",
            "tune",
            "-max-lease-ttl=2h",
            "-description=robots",
            "ci/",
        ])
        .ok();
    assert_eq!(t.stdout, "Success! Tuned the auth method at: ci/\n");
    let j = s
        .run(&["read", "-format=json", "sys/auth/ci/tune"])
        .ok()
        .json();
    assert_eq!(j["data"]["max_lease_ttl"], json!(7200));
    assert_eq!(j["data"]["description"], json!("robots"));

    s.run(&["auth", "disable", "ci"]).ok();
    let j = s.run(&["auth", "list", "-format=json"]).ok().json();
    assert!(j.get("ci/").is_none(), "{j}");

    // Bad input: unknown type (server, exit 2), nothing to tune (exit 1),
    // a bad duration (server, exit 2).
    let e = s.run(&["auth", "enable", "nosuchmethod"]).code(2);
    assert!(e.stderr.contains("Code: 400"), "{e:#?}");
    s.run(&["auth", "tune", "userpass"]).code(1);
    s.run(&["auth", "tune", "-default-lease-ttl=forever", "userpass"])
        .code(2);
    s.run(&["auth", "enable"]).code(1);
}

#[test]
fn generic_write_read_list_patch_delete() {
    let s = Server::start();
    s.run(&["auth", "enable", "userpass"]).ok();
    let pw = unique("pw");
    let w = s
        .run(&[
            "write",
            "auth/userpass/users/ana",
            &format!("password={pw}"),
            "policies=default",
            "token_ttl=1h",
        ])
        .ok();
    assert_eq!(
        w.stdout,
        "Success! Data written to: auth/userpass/users/ana\n"
    );

    let r = s.run(&["read", "auth/userpass/users/ana"]).ok();
    assert!(r.stdout.contains("token_ttl "), "{r:#?}");
    assert!(!r.stdout.contains(&pw), "the password must not come back");
    let f = s
        .run(&["read", "-field=token_ttl", "auth/userpass/users/ana"])
        .ok();
    assert_eq!(f.stdout, "3600");
    let j = s
        .run(&["read", "-format=json", "/v1/auth/userpass/users/ana"])
        .ok()
        .json();
    assert_eq!(j["data"]["token_policies"], json!(["default"]));

    // JSON on stdin and key=@file.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("pw.txt");
    std::fs::write(&f, unique("pw2")).unwrap();
    s.run(&[
        "write",
        "auth/userpass/users/bob",
        &format!("password=@{}", f.display()),
    ])
    .ok();
    s.run_stdin(
        &["write", "auth/userpass/users/cy", "-"],
        &json!({"password": unique("pw3"), "token_policies": ["default"]}).to_string(),
    )
    .ok();
    let l = s.run(&["list", "auth/userpass/users"]).ok();
    assert_eq!(l.stdout, "Keys\n----\nana\nbob\ncy\n");
    let l = s
        .run(&["list", "-format=json", "auth/userpass/users"])
        .ok()
        .json();
    assert_eq!(l, json!(["ana", "bob", "cy"]));

    // A write with an answer prints it (KV v2 metadata here); patch merges.
    let w = s
        .run(&["write", "-format=json", "secret/data/app", "-"])
        .code(1); // no stdin given: empty input is not a JSON object
    assert!(w.stderr.contains("Failed to parse data"), "{w:#?}");
    let w = s
        .run_stdin(
            &["write", "-format=json", "secret/data/app", "-"],
            r#"{"data": {"a": "1"}}"#,
        )
        .ok()
        .json();
    assert_eq!(w["data"]["version"], json!(1));
    s.run_stdin(
        &["patch", "secret/data/app", "-"],
        r#"{"data": {"b": "2"}}"#,
    )
    .ok();
    let j = s
        .run(&["read", "-format=json", "secret/data/app"])
        .ok()
        .json();
    assert_eq!(j["data"]["data"], json!({"a": "1", "b": "2"}));
    assert_eq!(j["data"]["metadata"]["version"], json!(2));
    // Query parameters on read.
    let j = s
        .run(&["read", "-format=json", "secret/data/app", "version=1"])
        .ok()
        .json();
    assert_eq!(j["data"]["data"], json!({"a": "1"}));

    let d = s.run(&["delete", "auth/userpass/users/ana"]).ok();
    assert_eq!(
        d.stdout,
        "Success! Data deleted (if it existed) at: auth/userpass/users/ana\n"
    );
    let missing = s.run(&["read", "auth/userpass/users/ana"]).code(2);
    assert!(missing.stderr.contains("No value found at"), "{missing:#?}");

    // Bad input.
    let e = s.run(&["write", "auth/userpass/users/dan"]).code(1);
    assert!(e.stderr.contains("Must supply data"), "{e:#?}");
    let e = s.run(&["write", "auth/userpass/users/dan", "oops"]).code(1);
    assert!(e.stderr.contains("not of the form key=value"), "{e:#?}");
    s.run(&["read", "secret/data/app", "noequals"]).code(1);
    s.run(&["read", "-field=nope", "secret/data/app"]).code(1);
    s.run(&["list", "auth/userpass/nothing-here"]).code(2);
    let denied = s.run(&["write", "sys/nonsense/path", "a=b"]).code(2);
    assert!(
        denied.stderr.contains("Error making API request"),
        "{denied:#?}"
    );
}

#[test]
fn a_limited_token_sees_permission_denied_with_exit_2() {
    let s = Server::start();
    let (token, _) = token_with(&s, "default");
    let mut cmd = s.cmd();
    cmd.env("COFFER_TOKEN", &token)
        .args(["policy", "write", "x", "-"]);
    let r = cli_support::Run::with_stdin(&mut cmd, "path \"a\" { capabilities = [\"read\"] }");
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(r.stderr.contains("Code: 403"), "{r:#?}");
    let v: Value = s.run(&["policy", "list", "-format=json"]).ok().json();
    assert!(!v.as_array().unwrap().contains(&json!("x")));
}

/// `coffer login -method=...` (through `cmd::auth::method_login`).
#[test]
fn method_logins_store_the_token() {
    let s = Server::start();
    s.run(&["auth", "enable", "userpass"]).ok();
    let pw = unique("pw");
    s.run(&[
        "write",
        "auth/userpass/users/ana",
        &format!("password={pw}"),
        "token_policies=default",
    ])
    .ok();
    let mut cmd = cli_support::cli(s.home.path());
    cmd.env("COFFER_ADDR", &s.addr).args([
        "login",
        "-method=userpass",
        "username=ana",
        &format!("password={pw}"),
    ]);
    let out = cli_support::Run::of(&mut cmd).ok();
    assert!(out.stdout.contains("Success!"), "{out:#?}");
    let file = s.home.path().join(".coffer-token");
    let stored = std::fs::read_to_string(&file).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(
        !out.stdout.contains(&stored),
        "the stored token is not printed"
    );
    // The stored token works for later commands.
    let mut cmd = cli_support::cli(s.home.path());
    cmd.env("COFFER_ADDR", &s.addr)
        .args(["token", "lookup", "-format=json"]);
    let me = cli_support::Run::of(&mut cmd).ok().json();
    assert_eq!(me["data"]["meta"]["username"], json!("ana"));

    // approle, with JSON output carrying the token.
    s.run(&["auth", "enable", "approle"]).ok();
    s.run(&["write", "auth/approle/role/web", "token_policies=default"])
        .ok();
    let role_id = s
        .run(&["read", "-field=role_id", "auth/approle/role/web/role-id"])
        .ok()
        .stdout;
    let secret_id = s
        .run(&[
            "write",
            "-field=secret_id",
            "-force",
            "auth/approle/role/web/secret-id",
        ])
        .ok()
        .stdout;
    let mut cmd = cli_support::cli(s.home.path());
    cmd.env("COFFER_ADDR", &s.addr).args([
        "login",
        "-method=approle",
        "-format=json",
        &format!("role_id={role_id}"),
        &format!("secret_id={secret_id}"),
    ]);
    let j = cli_support::Run::of(&mut cmd).ok().json();
    let token = j["auth"]["client_token"].as_str().unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), token);

    // A wrong password is refused (exit 2); a missing username is usage (1).
    let mut cmd = cli_support::cli(s.home.path());
    cmd.env("COFFER_ADDR", &s.addr).args([
        "login",
        "-method=userpass",
        "username=ana",
        "password=wrong",
    ]);
    cli_support::Run::of(&mut cmd).code(2);
    let mut cmd = cli_support::cli(s.home.path());
    cmd.env("COFFER_ADDR", &s.addr)
        .args(["login", "-method=userpass", "password=x"]);
    cli_support::Run::of(&mut cmd).code(1);
}

//! `coffer login`: token check, a 0600 token file, and later commands using it.

mod cli_support;

use std::os::unix::fs::PermissionsExt as _;

use cli_support::{cli, unique, Run, Server};

#[test]
fn login_stores_the_token_privately_and_later_commands_use_it() {
    let s = Server::start();
    let mut c = cli(s.home.path());
    c.env("COFFER_ADDR", &s.addr);
    let out = Run::of(c.args(["login", &s.token])).ok();
    assert!(out.stdout.contains("Success!"), "{out:#?}");
    assert!(
        !out.stdout.contains(&s.token),
        "login must not echo the token"
    );
    assert!(
        !out.stderr.contains(&s.token),
        "login must not echo the token"
    );

    let file = s.home.path().join(".coffer-token");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), s.token);

    // No COFFER_TOKEN: the stored token is used.
    let mut c = cli(s.home.path());
    c.env("COFFER_ADDR", &s.addr);
    Run::of(c.args(["kv", "put", "secret/after-login", "a=b"])).ok();

    // -format=json prints the lookup without the token id.
    let mut c = cli(s.home.path());
    c.env("COFFER_ADDR", &s.addr);
    let j = Run::of(c.args(["login", "-format=json", &s.token])).ok();
    assert!(!j.stdout.contains(&s.token), "{j:#?}");
    j.json();
}

#[test]
fn login_reads_stdin_and_refuses_bad_tokens() {
    let s = Server::start();
    // A stale, world-readable token file is replaced by a private one.
    let file = s.home.path().join(".coffer-token");
    std::fs::write(&file, "stale").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut c = cli(s.home.path());
    c.env("COFFER_ADDR", &s.addr);
    Run::with_stdin(c.args(["login", "-"]), &format!("{}\n", s.token)).ok();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), s.token);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // A wrong token: exit 2, and the stored token is left alone.
    let bad = unique("bad");
    let mut c = cli(s.home.path());
    c.env("COFFER_ADDR", &s.addr);
    let out = Run::of(c.args(["login", &bad])).code(2);
    assert!(!out.stderr.contains(&bad), "{out:#?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), s.token);
}

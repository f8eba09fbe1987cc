//! `GET sys/monitor`: this node's log streamed to a client holding `read`
//! on `sys/monitor`, at the level it asks for (debug lines while the server
//! logs at info), in Vault's standard or JSON line format; ended when its
//! token is revoked; driven by the `bao monitor` CLI as a real client.

mod cli_support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use cli_support::{bao, bao_at, monitor, token_for, unique, wait_line, Api, Server};
use serde_json::{json, Value};

fn mount(api: &Api<'_>, path: &str) {
    api.root(
        "POST",
        &format!("sys/mounts/{path}"),
        Some(json!({"type": "kv"})),
    );
}

#[test]
fn a_monitor_streams_info_and_debug_lines_in_both_formats() {
    let s = Server::start();
    let api = Api::new(&s);
    let reader = token_for(&api, r#"path "sys/monitor" { capabilities = ["read"] }"#);

    let (status, content_type, lines) = monitor(&s, &reader, "log_level=debug");
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let path = unique("mon").to_lowercase();
    mount(&api, &path);
    let line = wait_line(&lines, |l| l.contains("mounted") && l.contains(&path))
        .unwrap_or_else(|seen| panic!("no mount line; saw {seen:?}"));
    assert!(
        line.contains("[INFO]  core: mounted: ") && line.contains(&format!("path={path}/")),
        "{line}"
    );
    // A debug line, though the server logs at info: a denied request.
    let (st, _) = api.call("GET", "secret/data/nope", Some(&reader), None);
    assert_eq!(st, 403);
    let line = wait_line(&lines, |l| {
        l.contains("[DEBUG]") && l.contains("request denied")
    })
    .unwrap_or_else(|seen| panic!("no debug line; saw {seen:?}"));
    assert!(line.contains("path=secret/data/nope"), "{line}");

    let (status, _, json_lines) = monitor(&s, &reader, "log_level=info&log_format=json");
    assert_eq!(status, 200);
    let path2 = unique("mon").to_lowercase();
    mount(&api, &path2);
    let line = wait_line(&json_lines, |l| l.contains(&path2))
        .unwrap_or_else(|seen| panic!("no JSON mount line; saw {seen:?}"));
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["@level"], "info");
    assert_eq!(v["@message"], "mounted");
    assert_eq!(v["@module"], "core");
    assert_eq!(v["path"], format!("{path2}/"));
    assert!(v["@timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    // An info stream never carries debug lines.
    let (st, _) = api.call("GET", "secret/data/nope2", Some(&reader), None);
    assert_eq!(st, 403);
    let path3 = unique("mon").to_lowercase();
    mount(&api, &path3);
    let seen = wait_line(&json_lines, |l| l.contains(&path3)).expect("the next mount line");
    assert!(!seen.contains("\"debug\""));
    for l in json_lines.try_iter() {
        assert!(!l.contains("request denied"), "{l}");
    }
}

#[test]
fn bad_parameters_and_missing_capabilities_are_refused_as_vault_does() {
    let s = Server::start();
    let api = Api::new(&s);
    let reader = token_for(&api, r#"path "sys/monitor" { capabilities = ["read"] }"#);
    let (st, b) = api.call("GET", "sys/monitor?log_level=bogus", Some(&reader), None);
    assert_eq!(
        (st, b.clone()),
        (400, json!({"errors": ["unknown log level"]})),
        "{b}"
    );
    let (st, b) = api.call("GET", "sys/monitor?log_format=xml", Some(&reader), None);
    assert_eq!(
        (st, b.clone()),
        (400, json!({"errors": ["unknown log format"]})),
        "{b}"
    );
    let (st, _) = api.call("GET", "sys/monitor", None, None);
    assert_eq!(st, 403);
    let other = token_for(&api, r#"path "sys/mounts" { capabilities = ["read"] }"#);
    let (st, _) = api.call("GET", "sys/monitor", Some(&other), None);
    assert_eq!(st, 403);
    let (st, _) = api.call("POST", "sys/monitor", Some(&s.token), Some(json!({})));
    assert_eq!(st, 405);
}

#[test]
fn a_revoked_token_ends_its_stream() {
    let s = Server::start();
    let api = Api::new(&s);
    let reader = token_for(&api, r#"path "sys/monitor" { capabilities = ["read"] }"#);
    let (status, _, lines) = monitor(&s, &reader, "log_level=info");
    assert_eq!(status, 200);
    api.root(
        "POST",
        "auth/token/revoke",
        Some(json!({ "token": reader })),
    );
    // The stream ends within a token check (5 s) and a margin; lines the
    // server logs meanwhile may still arrive.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .expect("the stream of a revoked token is still open after 20 s");
        match lines.recv_timeout(left) {
            Ok(_) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("the stream of a revoked token is still open after 20 s")
            }
        }
    }
}

#[test]
fn the_bao_cli_monitors_coffer() {
    let Some(bin) = bao() else { return };
    let s = Server::start();
    let api = Api::new(&s);
    let home = tempfile::tempdir().unwrap();
    let mut child = bao_at(&bin, home.path(), &s.addr, &s.token)
        .args(["monitor", "-log-level=debug"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // The CLI connects in its own time: mount until a line shows up.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut found = None;
    while found.is_none() && Instant::now() < deadline {
        let path = unique("bao").to_lowercase();
        mount(&api, &path);
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            if line.contains(&format!("path={path}/")) {
                found = Some(line);
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let line = found.expect("bao monitor printed no mount line");
    assert!(line.contains("[INFO]  core: mounted"), "{line}");
}

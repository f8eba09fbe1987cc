//! Change events (`sys/events/subscribe/<type>`, a WebSocket) against a
//! real server: Vault's CloudEvents shape without values, per-event
//! authorization (no events for paths the token may not read, the stream
//! closed when the token is revoked), replay from a cursor or a resync
//! marker, and `coffer run --watch` restarting its child after a rotation
//! or a KV write, with the rotation-finish-to-restart time measured.

mod cli_support;

use std::time::{Duration, Instant};

use cli_support::{unique, Server};
use coffer_client::events::{Event, Subscriber};
use coffer_client::{Client, Config, Error};
use zeroize::Zeroizing;

fn client(s: &Server, token: &str) -> Client {
    Client::new(Config {
        address: s.addr.clone(),
        token: Some(Zeroizing::new(token.to_string())),
        ca_cert: None,
        skip_verify: false,
        timeout: Duration::from_secs(30),
    })
    .unwrap()
}

/// A token with `policy` (HCL text) attached.
fn token_with(s: &Server, name: &str, policy: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.hcl");
    std::fs::write(&file, policy).unwrap();
    s.run(&["policy", "write", name, file.to_str().unwrap()])
        .ok();
    s.run(&[
        "token",
        "create",
        &format!("-policy={name}"),
        "-field=token",
    ])
    .ok()
    .stdout
    .trim()
    .to_string()
}

/// The next event within 10 s.
fn next(sub: &mut Subscriber) -> Event {
    sub.next_event().unwrap().expect("the stream stayed open")
}

const APP_POLICY: &str = "path \"secret/data/app/*\" { capabilities = [\"read\"] }\n\
    path \"sys/events/subscribe/*\" { capabilities = [\"read\"] }\n";

#[test]
fn a_subscriber_sees_only_events_it_may_read_and_no_values() {
    let s = Server::start();
    let token = token_with(&s, "app", APP_POLICY);
    let mut sub = client(&s, &token).subscribe("*", None).unwrap();
    let hidden = unique("hidden");
    let shown = unique("shown");
    // Written first, but the subscriber may not read it: it must not arrive.
    s.run(&["kv", "put", "secret/billing/key", &format!("v={hidden}")])
        .ok();
    s.run(&["kv", "put", "secret/app/db", &format!("v={shown}")])
        .ok();
    let ev = next(&mut sub);
    assert_eq!(ev.event_type, "kv-v2/data-write");
    assert_eq!(ev.data_path, "secret/data/app/db");
    assert_eq!(ev.metadata["current_version"], "1");
    let raw = ev.raw.to_string();
    assert!(!raw.contains(&shown) && !raw.contains(&hidden), "{raw}");
    assert_eq!(ev.raw["specversion"], "1.0");
    assert_eq!(ev.raw["datacontenttype"], "application/cloudevents");
    assert_eq!(ev.raw["data"]["event_type"], "kv-v2/data-write");
    assert_eq!(ev.raw["data"]["plugin_info"]["mount_path"], "secret/");
    assert_eq!(ev.raw["data"]["plugin_info"]["plugin"], "kv");

    // Deletes, destroys and metadata changes arrive with their types; a
    // type glob narrows the stream.
    s.run(&["kv", "delete", "secret/app/db"]).ok();
    assert_eq!(next(&mut sub).event_type, "kv-v2/delete");
    s.run(&["kv", "destroy", "-versions=1", "secret/app/db"])
        .ok();
    assert_eq!(next(&mut sub).event_type, "kv-v2/destroy");
    let mut only_meta = client(&s, &token)
        .subscribe("kv-v2/metadata-*", None)
        .unwrap();
    s.run(&["kv", "put", "secret/app/db", "v=again"]).ok();
    s.run(&["kv", "metadata", "delete", "secret/app/db"]).ok();
    assert_eq!(next(&mut only_meta).event_type, "kv-v2/metadata-delete");
    assert_eq!(next(&mut sub).event_type, "kv-v2/data-write");
    assert_eq!(next(&mut sub).event_type, "kv-v2/metadata-delete");
}

#[test]
fn subscribing_needs_read_on_the_subscribe_path() {
    let s = Server::start();
    let token = token_with(
        &s,
        "no-subscribe",
        "path \"secret/data/app/*\" { capabilities = [\"read\"] }\n",
    );
    match client(&s, &token).subscribe("*", None) {
        Err(Error::Api(a)) => assert_eq!(a.status, 403),
        other => panic!("expected a 403, got {other:?}"),
    }
    match client(&s, "not-a-token").subscribe("*", None) {
        Err(Error::Api(a)) => assert_eq!(a.status, 403),
        other => panic!("expected a 403, got {other:?}"),
    }
    // A plain GET (no upgrade) is authorized first, then refused as 400.
    let http = reqwest::blocking::Client::new();
    let r = http
        .get(format!("{}/v1/sys/events/subscribe/*?json=true", s.addr))
        .header("X-Vault-Token", &s.token)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = http
        .get(format!("{}/v1/sys/events/subscribe/*?json=true", s.addr))
        .header("X-Vault-Token", &token)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
}

#[test]
fn a_revoked_token_ends_its_stream() {
    let s = Server::start();
    let token = token_with(&s, "app", APP_POLICY);
    let mut sub = client(&s, &token).subscribe("*", None).unwrap();
    s.run(&["kv", "put", "secret/app/db", "v=1"]).ok();
    next(&mut sub);
    s.run(&["token", "revoke", &token]).ok();
    s.run(&["kv", "put", "secret/app/db", "v=2"]).ok();
    let start = Instant::now();
    assert!(sub.next_event().unwrap().is_none(), "the stream must close");
    assert!(start.elapsed() < Duration::from_secs(7));
}

#[test]
fn a_reconnect_replays_what_it_missed_or_resyncs() {
    let s = Server::start();
    let c = client(&s, &s.token);
    let mut sub = c.subscribe("kv-v2/data-write", None).unwrap();
    s.run(&["kv", "put", "secret/app/a", "v=1"]).ok();
    let first = next(&mut sub);
    drop(sub);
    s.run(&["kv", "put", "secret/app/b", "v=1"]).ok();
    s.run(&["kv", "delete", "secret/app/b"]).ok();
    s.run(&["kv", "put", "secret/app/c", "v=1"]).ok();
    let mut again = c.subscribe("kv-v2/data-write", Some(&first.id)).unwrap();
    assert_eq!(next(&mut again).data_path, "secret/data/app/b");
    assert_eq!(next(&mut again).data_path, "secret/data/app/c");
    let mut lost = c.subscribe("*", Some("no-such-event")).unwrap();
    assert!(next(&mut lost).is_resync());
}

/// Seconds since the epoch from `date +%s.%N` output.
fn epoch(text: &str) -> f64 {
    text.trim().parse().unwrap()
}

/// Waits until `file` has at least `n` lines; returns them.
fn lines(file: &std::path::Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let l: Vec<String> = text.lines().map(str::to_string).collect();
        if l.len() >= n {
            return l;
        }
        assert!(
            Instant::now() < deadline,
            "{} has {} lines, expected {n}",
            file.display(),
            l.len()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn run_watch_restarts_the_child_after_a_rotation_and_a_write() {
    let s = Server::start();
    s.run(&["kv", "put", "secret/app/db", "password=first-value"])
        .ok();
    s.run(&[
        "secret",
        "set",
        "secret/app/db",
        "-owner=app",
        "-rotate-every=30d",
        "-rotator=generate",
        "-setting",
        "field=password",
        "-setting",
        "length=32",
    ])
    .ok();
    let dir = tempfile::tempdir().unwrap();
    let starts = dir.path().join("starts");
    let env = dir.path().join("app.env");
    std::fs::write(&env, "DB_PASSWORD=coffer://secret/app/db#password\n").unwrap();
    let script = format!(
        "printf '%s %s\\n' \"$(date +%s.%N)\" \"$DB_PASSWORD\" >> {}; exec sleep 600",
        starts.display()
    );
    let mut finishes = client(&s, &s.token)
        .subscribe("coffer/rotation-finish", None)
        .unwrap();
    let mut run = s
        .cmd()
        .args([
            "run",
            "--watch",
            "--env-file",
            env.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            &script,
        ])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let first = lines(&starts, 1);
    assert!(first[0].ends_with(" first-value"), "{first:?}");

    s.run(&["rotate", "secret/app/db"]).ok();
    let finish = next(&mut finishes);
    let second = lines(&starts, 2);
    let (at, value) = second[1].split_once(' ').unwrap();
    let rotated = s
        .run(&["kv", "get", "-field=password", "secret/app/db"])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_eq!(value, rotated, "the restarted child has the rotated value");
    assert_ne!(value, "first-value");
    let finished = chrono::DateTime::parse_from_rfc3339(&finish.time).unwrap();
    let finished = finished.timestamp_micros() as f64 / 1e6;
    let latency = epoch(at) - finished;
    eprintln!("rotation-finish-to-restart: {:.1} ms", latency * 1000.0);
    assert!(
        latency < 1.0,
        "restart took {latency:.3} s after the rotation finished"
    );

    // A plain KV write restarts it too; a write elsewhere does not.
    s.run(&["kv", "put", "secret/app/unrelated", "password=x"])
        .ok();
    s.run(&["kv", "put", "secret/app/db", "password=written-value"])
        .ok();
    let third = lines(&starts, 3);
    assert!(third[2].ends_with(" written-value"), "{third:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(lines(&starts, 3).len(), 3, "one restart per change");

    let _ = std::process::Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status();
    let status = run.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(128 + 15),
        "sleep died of the forwarded SIGTERM"
    );
}

#[test]
fn rotation_and_kv_v1_events_follow_the_same_read_rule() {
    let s = Server::start();
    s.run(&["secrets", "enable", "-path=kv1", "-version=1", "kv"])
        .ok();
    let token = token_with(
        &s,
        "app-v1",
        &format!("{APP_POLICY}path \"kv1/app/*\" {{ capabilities = [\"read\"] }}\n"),
    );
    for path in ["secret/billing/key", "secret/app/db"] {
        s.run(&["kv", "put", path, "password=initial"]).ok();
        s.run(&[
            "secret",
            "set",
            path,
            "-owner=app",
            "-rotate-every=30d",
            "-rotator=generate",
            "-setting",
            "field=password",
        ])
        .ok();
    }
    let mut sub = client(&s, &token).subscribe("*", None).unwrap();
    s.run(&["rotate", "secret/billing/key"]).ok();
    s.run(&["write", "kv1/billing/x", "v=1"]).ok();
    s.run(&["rotate", "secret/app/db"]).ok();
    s.run(&["write", "kv1/app/x", "v=1"]).ok();
    let ev = next(&mut sub);
    assert_eq!(ev.event_type, "coffer/rotation-finish");
    assert_eq!(ev.data_path, "secret/data/app/db");
    assert_eq!(ev.metadata["current_version"], "2");
    let ev = next(&mut sub);
    assert_eq!(
        (ev.event_type.as_str(), ev.data_path.as_str()),
        ("kv-v1/write", "kv1/app/x")
    );
}

#[test]
fn group_policies_decide_what_a_subscriber_sees_too() {
    // Access that comes only from an identity group's policy: the
    // subscription is authorized with it, and so must each event be.
    let s = Server::start();
    let api = cli_support::Api::new(&s);
    let pw = unique("pw");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.hcl");
    std::fs::write(&file, APP_POLICY).unwrap();
    s.run(&["policy", "write", "app-by-group", file.to_str().unwrap()])
        .ok();
    api.root(
        "POST",
        "sys/auth/userpass",
        Some(serde_json::json!({"type": "userpass"})),
    );
    api.root(
        "POST",
        "auth/userpass/users/alice",
        Some(serde_json::json!({"password": pw})),
    );
    let login = api.root(
        "POST",
        "auth/userpass/login/alice",
        Some(serde_json::json!({"password": pw})),
    );
    let entity = login["auth"]["entity_id"].as_str().unwrap().to_string();
    api.root(
        "POST",
        "identity/group",
        Some(serde_json::json!({
            "name": "apps", "policies": ["app-by-group"], "member_entity_ids": [entity],
        })),
    );
    // A fresh login, so the token certainly carries no direct app policy.
    let login = api.root(
        "POST",
        "auth/userpass/login/alice",
        Some(serde_json::json!({"password": pw})),
    );
    let token = login["auth"]["client_token"].as_str().unwrap().to_string();
    assert_eq!(
        login["auth"]["token_policies"],
        serde_json::json!(["default"])
    );
    let mut sub = client(&s, &token).subscribe("*", None).unwrap();
    s.run(&["kv", "put", "secret/billing/key", "v=1"]).ok();
    s.run(&["kv", "put", "secret/app/db", "v=1"]).ok();
    let ev = next(&mut sub);
    assert_eq!(ev.data_path, "secret/data/app/db");
}

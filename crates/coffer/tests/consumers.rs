//! Rotation closes the loop, against real server, agent and `coffer run
//! --watch` processes: consumers confirm the versions they hold, a rotation
//! configured with `consumer_wait` finishes only after every live consumer
//! confirmed the new version (and fails at `set`, keeping the old version,
//! when one never does), reports are authorized as reads and bound to the
//! reporting token, and the agent follows changes after the server is
//! killed and started again.

mod cli_support;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use cli_support::{cli, start_initialised, unique, Api, Server};
use serde_json::{json, Value};

const READER: &str = "path \"secret/data/app/*\" { capabilities = [\"read\"] }\n\
    path \"sys/events/subscribe/*\" { capabilities = [\"read\"] }\n";

/// A token whose only policy (besides default) is `policy`.
fn token_with(api: &Api, name: &str, policy: &str) -> String {
    api.root(
        "PUT",
        &format!("sys/policies/acl/{name}"),
        Some(json!({"policy": policy})),
    );
    let v = api.root(
        "POST",
        "auth/token/create",
        Some(json!({"policies": [name], "ttl": "1h"})),
    );
    v["auth"]["client_token"].as_str().unwrap().to_string()
}

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    /// SIGTERM first: `coffer run` forwards it to its child's process group.
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0.id().to_string()])
            .status();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = wait_for(Duration::from_secs(5), || {
            matches!(self.0.try_wait(), Ok(Some(_)))
        });
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// The consumers of `secret/app/db` as the lifecycle record shows them.
fn consumers(api: &Api) -> Vec<Value> {
    let v = api.root("GET", "secret/lifecycle/app/db", None);
    v["data"]["consumers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Starts `coffer agent` rendering the password of `secret/app/db` to `out`,
/// with the token in `token_file`.
fn agent(s: &Server, dir: &Path, token_file: &Path, out: &Path) -> Proc {
    let config = dir.join("agent.hcl");
    std::fs::write(
        &config,
        format!(
            "vault {{ address = \"{}\" }}\n\
             auto_auth {{\n  method \"token_file\" {{\n    config = {{ token_file_path = \"{}\" }}\n  }}\n}}\n\
             template {{\n  contents = \"{{{{ with secret \\\"secret/data/app/db\\\" }}}}{{{{ .Data.data.password }}}}{{{{ end }}}}\"\n  destination = \"{}\"\n}}\n",
            s.addr,
            token_file.display(),
            out.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("agent.log")).unwrap();
    Proc(
        cli(s.home.path())
            .args(["agent", "-config", config.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// Starts `coffer run --watch` with `DB_PASSWORD` from `secret/app/db`; the
/// child appends its value to `starts` at each start.
fn run_watch(s: &Server, token: &str, dir: &Path, starts: &Path) -> Proc {
    let env = dir.join("app.env");
    std::fs::write(&env, "DB_PASSWORD=coffer://secret/app/db#password\n").unwrap();
    let script = format!(
        "printf '%s\\n' \"$DB_PASSWORD\" >> {}; exec sleep 600",
        starts.display()
    );
    Proc(
        s.cmd()
            .env("COFFER_TOKEN", token)
            .args([
                "run",
                "--watch",
                "--no-masking",
                "--env-file",
                env.to_str().unwrap(),
                "--",
                "sh",
                "-c",
                &script,
            ])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// `secret/app/db` with a password and a generate rotator whose set step
/// waits `wait` for its consumers.
fn managed_secret(s: &Server, api: &Api, wait: &str) -> String {
    let first = unique("first");
    s.run(&["kv", "put", "secret/app/db", &format!("password={first}")])
        .ok();
    s.run(&[
        "secret",
        "set",
        "secret/app/db",
        "-owner=app",
        "-rotator=generate",
        "-setting",
        "field=password",
        "-setting",
        "length=32",
        &format!("-consumer-wait={wait}"),
    ])
    .ok();
    let lc = api.root("GET", "secret/lifecycle/app/db", None);
    assert_eq!(
        lc["data"]["rotation"]["consumer_wait"],
        json!(format_go(wait))
    );
    first
}

/// Vault's (Go's) spelling of the few durations used here.
fn format_go(d: &str) -> &'static str {
    match d {
        "30s" => "30s",
        "2s" => "2s",
        other => panic!("no spelling for {other}"),
    }
}

#[test]
fn rotation_waits_until_the_run_watch_child_and_the_agent_confirm_the_new_version() {
    let s = Server::start();
    let api = Api::new(&s);
    let first = managed_secret(&s, &api, "30s");
    let token = token_with(&api, "app-reader", READER);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    let out = dir.path().join("config.txt");
    let starts = dir.path().join("starts");
    let _agent = agent(&s, dir.path(), &token_file, &out);
    let run = run_watch(&s, &token, dir.path(), &starts);

    // Both render the first value and confirm version 1.
    assert!(
        wait_for(Duration::from_secs(20), || {
            let c = consumers(&api);
            c.len() == 2 && c.iter().all(|c| c["version"] == 1 && c["live"] == true)
        }),
        "{:?}\n{}",
        consumers(&api),
        read(&dir.path().join("agent.log"))
    );
    assert_eq!(read(&out), first);
    assert_eq!(read(&starts).trim(), first);
    let kinds: Vec<String> = consumers(&api)
        .iter()
        .map(|c| c["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(
        kinds.contains(&"agent".into()) && kinds.contains(&"run".into()),
        "{kinds:?}"
    );

    let t = Instant::now();
    let rotate = s.run(&["rotate", "secret/app/db"]);
    let took = t.elapsed();
    rotate.ok();
    eprintln!(
        "measured: rotate to finish with 2 waiting consumers: {:.0} ms",
        took.as_secs_f64() * 1000.0
    );
    let current = s
        .run(&["kv", "get", "-field=password", "secret/app/db"])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_ne!(current, first);
    // Both hold the new value and confirmed version 2.
    let lc = api.root("GET", "secret/lifecycle/app/db", None);
    let last = lc["data"]["state"]["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["result"], "success", "{lc}");
    let held = lc["data"]["consumers"].as_array().unwrap().clone();
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(held.iter().all(|c| c["version"] == 2), "{held:?}");
    assert!(wait_for(Duration::from_secs(5), || read(&out) == current));
    assert!(wait_for(Duration::from_secs(5), || read(&starts)
        .lines()
        .last()
        == Some(current.as_str())));
    // A consumer that cannot confirm (its process stopped) holds the
    // rotation in its set step; it finishes once that consumer confirms.
    let run_pid = run.0.id().to_string();
    let signal = |sig: &str| {
        assert!(std::process::Command::new("kill")
            .args([sig, &run_pid])
            .status()
            .unwrap()
            .success())
    };
    signal("-STOP");
    let mut cmd = s.cmd();
    cmd.args(["rotate", "secret/app/db"]);
    let t = Instant::now();
    let rotation = std::thread::spawn(move || cmd.output());
    let step = || {
        api.root("GET", "secret/lifecycle/app/db", None)["data"]["state"]["in_flight"]["step"]
            .as_str()
            .map(str::to_string)
    };
    assert!(wait_for(Duration::from_secs(10), || step().as_deref() == Some("set")));
    assert!(wait_for(Duration::from_secs(10), || consumers(&api)
        .iter()
        .any(|c| c["kind"] == "agent" && c["version"] == 3)));
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        step().as_deref(),
        Some("set"),
        "still waiting for the stopped consumer"
    );
    assert!(!rotation.is_finished());
    let shown = s.run(&["secret", "show", "secret/app/db"]).ok().stdout;
    assert!(shown.contains("rotating"), "{shown}");
    signal("-CONT");
    let done = rotation.join().unwrap().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    eprintln!(
        "measured: rotate to finish, one consumer stopped for 1 s then resumed: {:.0} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    let current = s
        .run(&["kv", "get", "-field=password", "secret/app/db"])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert!(consumers(&api).iter().all(|c| c["version"] == 3));
    assert!(wait_for(Duration::from_secs(5), || read(&out) == current));
    assert!(wait_for(Duration::from_secs(5), || read(&starts)
        .lines()
        .last()
        == Some(current.as_str())));

    // The inventory and the CLI show who holds what; no value anywhere.
    let shown = s.run(&["secret", "show", "secret/app/db"]).ok().stdout;
    assert!(
        shown.contains("Consumers") && shown.contains("agent:"),
        "{shown}"
    );
    let json_out = s
        .run(&["secret", "show", "-format=json", "secret/app/db"])
        .ok()
        .stdout;
    let v: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(v["data"]["consumers"].as_array().unwrap().len(), 2);
    let inventory = s.run(&["secret", "list"]).ok().stdout;
    assert!(inventory.contains("v3:2"), "{inventory}");
    for text in [&shown, &json_out, &inventory] {
        assert!(!text.contains(&current) && !text.contains(&first));
    }
}

#[test]
fn a_consumer_that_never_confirms_fails_the_rotation_at_set_and_keeps_the_old_version() {
    let s = Server::start();
    let api = Api::new(&s);
    let first = managed_secret(&s, &api, "2s");
    let token = token_with(&api, "app-reader", READER);
    // A consumer that says it holds version 1 and never moves.
    let (st, v) = api.call(
        "POST",
        "secret/consumers/app/db",
        Some(&token),
        Some(json!({"consumer_id": "stuck:host:1", "version": 1, "kind": "run"})),
    );
    assert_eq!(st, 200, "{v}");
    let t = Instant::now();
    let rotate = s.run(&["rotate", "secret/app/db"]);
    let took = t.elapsed();
    eprintln!(
        "measured: rotation failed at set after {:.0} ms (consumer_wait 2s)",
        took.as_secs_f64() * 1000.0
    );
    assert_ne!(rotate.code, 0);
    assert!(took >= Duration::from_secs(2), "{took:?}");
    assert!(
        rotate.stderr.contains("step set") && rotate.stderr.contains("stuck:host:1"),
        "{}",
        rotate.stderr
    );
    let current = s
        .run(&["kv", "get", "-field=password", "secret/app/db"])
        .ok()
        .stdout;
    assert_eq!(current.trim(), first, "the old version stays current");
    let lc = api.root("GET", "secret/lifecycle/app/db", None);
    let last = lc["data"]["state"]["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["result"], "failure");
    assert_eq!(last["step"], "set");
    assert_eq!(lc["data"]["state"]["in_flight"], Value::Null);
    let meta = api.root("GET", "secret/metadata/app/db", None);
    assert!(meta["data"]["stages"].get("pending").is_none(), "{meta}");
    // The wait is bounded; a consumer that stopped reporting (outside the
    // freshness window) is not waited for.
    let (st, v) = api.call(
        "POST",
        "secret/lifecycle/app/db",
        Some(&s.token),
        Some(json!({"rotation": {"consumer_wait": "2h"}})),
    );
    assert_eq!(st, 400, "{v}");
    assert!(v.to_string().contains("consumer_wait"), "{v}");
    api.root(
        "POST",
        "secret/lifecycle/app/db",
        Some(json!({"rotation": {"consumer_freshness": "1s"}})),
    );
    std::thread::sleep(Duration::from_millis(1200));
    s.run(&["rotate", "secret/app/db"]).ok();
}

/// The attack: whoever may read a secret may report a consumer of it, so a
/// leaked reader token could pin a consumer to the old version and make
/// every waiting rotation fail, the emergency one included, keeping the
/// leaked value current. A compromise rotation therefore never waits for
/// consumers (it names the ones left behind), and one reporter holds at
/// most a few consumer records per secret, so it cannot fill the slots
/// either.
#[test]
fn a_stuck_consumer_cannot_block_the_emergency_rotation_or_take_every_slot() {
    let s = Server::start();
    let api = Api::new(&s);
    let first = managed_secret(&s, &api, "30s");
    let leaked = token_with(&api, "app-reader", READER);
    let (st, v) = api.call(
        "POST",
        "secret/consumers/app/db",
        Some(&leaked),
        Some(json!({"consumer_id": "attacker:1", "version": 1, "kind": "run"})),
    );
    assert_eq!(st, 200, "{v}");
    let t = Instant::now();
    let (st, body) = api.call(
        "POST",
        "sys/coffer/revoke-compromised",
        Some(&s.token),
        Some(json!({"path": "secret/app/db", "reason": "leaked", "since": "1h"})),
    );
    assert_eq!(st, 200, "{body}");
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "the emergency rotation waited for consumers: {:?}",
        t.elapsed()
    );
    assert_eq!(body["data"]["rotated"]["new_version"], 2, "{body}");
    assert!(
        body.to_string().contains("attacker:1"),
        "the consumers left behind are named: {body}"
    );
    let current = s
        .run(&["kv", "get", "-field=password", "secret/app/db"])
        .ok()
        .stdout;
    assert_ne!(
        current.trim(),
        first,
        "the leaked value is no longer current"
    );

    // One reporter cannot take every consumer slot of a secret.
    let other = token_with(&api, "app-reader-2", READER);
    let mut refused = None;
    for i in 0..64 {
        let (st, v) = api.call(
            "POST",
            "secret/consumers/app/db",
            Some(&other),
            Some(json!({"consumer_id": format!("flood:{i}"), "version": 2})),
        );
        if st != 200 {
            refused = Some((i, st, v));
            break;
        }
    }
    let (i, st, v) = refused.expect("one reporter registered 64 consumers");
    assert_eq!(st, 429, "{v}");
    assert!(i <= 16, "refused only after {i} records");
    // Another reporter still gets a slot.
    let third = token_with(&api, "app-reader-3", READER);
    let (st, v) = api.call(
        "POST",
        "secret/consumers/app/db",
        Some(&third),
        Some(json!({"consumer_id": "web:1", "version": 2})),
    );
    assert_eq!(st, 200, "{v}");
}

#[test]
fn reports_need_read_on_the_secret_and_are_bound_to_their_token() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    std::fs::create_dir_all(&audit).unwrap();
    let s = Server::start_with(&["--dev-audit-dir", audit.to_str().unwrap()]);
    let api = Api::new(&s);
    let log = audit.join("audit.log");
    api.root(
        "PUT",
        "sys/audit/file",
        Some(json!({"type": "file", "options": {"file_path": log.to_str().unwrap()}})),
    );
    s.run(&["kv", "put", "secret/app/db", "password=one"]).ok();
    s.run(&["kv", "put", "secret/app/db", "password=two"]).ok();
    s.run(&["secret", "set", "secret/app/db", "-owner=app"])
        .ok();
    let a = token_with(&api, "reader-a", READER);
    let b = token_with(&api, "reader-b", READER);
    let other = token_with(
        &api,
        "other",
        "path \"secret/data/billing/*\" { capabilities = [\"read\"] }\n\
         path \"secret/consumers/*\" { capabilities = [\"create\", \"update\"] }\n",
    );
    let report = |t: &str, id: &str, version: u64| {
        api.call(
            "POST",
            "secret/consumers/app/db",
            Some(t),
            Some(json!({"consumer_id": id, "version": version, "kind": "agent"})),
        )
    };
    // No read on the secret: 403, even with update on the consumers path.
    let (st, v) = report(&other, "x", 1);
    assert_eq!(st, 403, "{v}");
    assert!(consumers(&api).is_empty());

    let (st, v) = report(&a, "web-1", 1);
    assert_eq!(st, 200, "{v}");
    let a_owner = v["data"]["owner"].as_str().unwrap().to_string();
    assert!(a_owner.starts_with("token:"), "{v}");
    let accessor = api.call("GET", "auth/token/lookup-self", Some(&a), None).1["data"]["accessor"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!v.to_string().contains(&accessor), "no accessor is shown");
    // B reports under the same id: its own record; A's is untouched.
    let (st, v) = report(&b, "web-1", 2);
    assert_eq!(st, 200, "{v}");
    let list = consumers(&api);
    assert_eq!(list.len(), 2, "{list:?}");
    let owners: Vec<&str> = list.iter().map(|c| c["owner"].as_str().unwrap()).collect();
    assert_ne!(owners[0], owners[1]);
    let a_rec = list
        .iter()
        .find(|c| c["owner"] == a_owner.as_str())
        .unwrap();
    assert_eq!(
        a_rec["version"], 1,
        "B did not overwrite A's record: {list:?}"
    );
    // A updates its own record.
    assert_eq!(report(&a, "web-1", 2).0, 200);
    let list = consumers(&api);
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|c| c["version"] == 2));

    // Bad input: a clear 400, no record.
    for (body, word) in [
        (json!({"version": 1}), "consumer_id"),
        (json!({"consumer_id": "a b", "version": 1}), "consumer_id"),
        (json!({"consumer_id": "z", "version": 0}), "version"),
        (json!({"consumer_id": "z", "version": 9}), "does not exist"),
        (json!({"consumer_id": "z", "version": "two"}), "version"),
        (
            json!({"consumer_id": "z", "version": 1, "kind": "a b"}),
            "kind",
        ),
    ] {
        let (st, v) = api.call("POST", "secret/consumers/app/db", Some(&a), Some(body));
        assert_eq!(st, 400, "{v}");
        assert!(v.to_string().contains(word), "{v}");
    }
    assert_eq!(consumers(&api).len(), 2);
    let (st, _) = api.call(
        "POST",
        "secret/consumers/app/nothing",
        Some(&a),
        Some(json!({"consumer_id": "z", "version": 1})),
    );
    assert_eq!(st, 404);

    // Reports are audited like any request.
    let trail: String = std::fs::read_dir(&audit)
        .unwrap()
        .map(|e| read(&e.unwrap().path()))
        .collect();
    assert!(
        trail.contains("secret/consumers/app/db"),
        "reports are in the audit trail"
    );
    assert!(!trail.contains("\"password\":\"two\""));
}

#[test]
fn the_agent_follows_changes_after_the_server_is_killed_and_started_again() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, cfg, keys) = start_initialised(dir.path(), 1, 1);
    let api = Api::new(&server);
    api.root(
        "POST",
        "sys/mounts/secret",
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    );
    api.root(
        "POST",
        "secret/data/app/db",
        Some(json!({"data": {"password": "before"}})),
    );
    let token = token_with(&api, "app-reader", READER);
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    let out = dir.path().join("config.txt");
    let _agent = agent(&server, dir.path(), &token_file, &out);
    assert!(wait_for(Duration::from_secs(20), || read(&out) == "before"));

    let root = server.token.clone();
    let addr = server.addr.clone();
    server.kill(); // SIGKILL, mid-run
    std::thread::sleep(Duration::from_millis(500));
    let mut server = Server::start_config(&cfg, addr);
    server.token = root;
    let api = Api::new(&server);
    let (st, v) = api.call("PUT", "sys/unseal", None, Some(json!({"key": keys[0]})));
    assert_eq!(st, 200, "{v}");
    let t = Instant::now();
    api.root(
        "POST",
        "secret/data/app/db",
        Some(json!({"data": {"password": "after"}})),
    );
    // The default poll is five minutes: only the event stream, reconnected, can do this.
    assert!(
        wait_for(Duration::from_secs(60), || read(&out) == "after"),
        "{}",
        read(&dir.path().join("agent.log"))
    );
    eprintln!(
        "measured: after a SIGKILL and restart, KV write to re-render: {:.0} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
}

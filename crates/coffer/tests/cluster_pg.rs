//! Three real server processes on one PostgreSQL store (tables of their
//! own per test): writes, revocations and policy changes on one node are
//! seen at once on the others; the leader of background work fails over;
//! `operator migrate` moves a SQLite store into PostgreSQL and back.
//!
//! Needs `COFFER_TEST_PG_URL`; without it every test prints a notice and
//! skips.

mod cli_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cli_support::pg::Cluster as PrivateCluster;
use cli_support::{free_port, unique, Api, Server, BIN};
use serde_json::json;

fn pg_url() -> Option<String> {
    match std::env::var("COFFER_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!("COFFER_TEST_PG_URL is not set: skipping the PostgreSQL cluster test");
            None
        }
    }
}

/// SQL against the test database through psql (for checks and cleanup).
fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-Atc", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Drops a test table set on drop.
struct Tables {
    url: String,
    base: String,
}

impl Drop for Tables {
    fn drop(&mut self) {
        let sql = ["", "_meta", "_log", "_leader"]
            .map(|s| format!("DROP TABLE IF EXISTS \"{}{s}\";", self.base))
            .concat();
        let _ = Command::new("psql")
            .args([&self.url, "-Atc", &sql])
            .output();
    }
}

fn tables(url: &str, test: &str) -> Tables {
    Tables {
        url: url.to_string(),
        base: unique(&format!("pgstore_{test}")).replace('-', "_"),
    }
}

/// Writes a node's configuration in `dir` and returns (path, address).
fn node_config(dir: &Path, url: &str, table: &str, extra: &str) -> (std::path::PathBuf, String) {
    let port = free_port();
    let audit = dir.join("audit");
    std::fs::create_dir_all(&audit).unwrap();
    let text = format!(
        "[storage.postgresql]\nconnection_url = {url:?}\ntable = {table:?}\n{extra}\n\n\
         [listener.tcp]\naddress = \"127.0.0.1:{port}\"\ntls_disable = true\n\n\
         [audit]\nfile_dir = {:?}\n",
        audit.to_str().unwrap()
    );
    let path = dir.join("coffer.toml");
    std::fs::write(&path, text).unwrap();
    (path, format!("http://127.0.0.1:{port}"))
}

/// A running node and its directory.
struct Node {
    server: Server,
    _dir: tempfile::TempDir,
}

fn start_node(url: &str, table: &str, extra: &str) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, addr) = node_config(dir.path(), url, table, extra);
    Node {
        server: Server::start_config(&cfg, addr),
        _dir: dir,
    }
}

fn unseal<'a>(node: &'a Node, keys: &[String]) -> Api<'a> {
    let api = Api::new(&node.server);
    for k in keys {
        let (st, v) = api.call("PUT", "sys/unseal", None, Some(json!({"key": k})));
        assert_eq!(st, 200, "{v}");
        if v["sealed"] == json!(false) {
            break;
        }
    }
    api
}

/// Starts `n` nodes on one fresh store, initialises it on the first and
/// unseals all; returns the nodes, the root token and the unseal keys.
fn cluster(url: &str, table: &str, n: usize, extra: &str) -> (Vec<Node>, String, Vec<String>) {
    let mut nodes: Vec<Node> = (0..n).map(|_| start_node(url, table, extra)).collect();
    let api = Api::new(&nodes[0].server);
    let (st, init) = api.call(
        "PUT",
        "sys/init",
        None,
        Some(json!({"secret_shares": 3, "secret_threshold": 2})),
    );
    assert_eq!(st, 200, "{init}");
    let keys: Vec<String> = init["keys_base64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    let root = init["root_token"].as_str().unwrap().to_owned();
    for node in &mut nodes {
        node.server.token = root.clone();
        unseal(node, &keys[..2]);
    }
    (nodes, root, keys)
}

fn call(
    node: &Node,
    method: &str,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    Api::new(&node.server).call(method, path, Some(token), body)
}

/// A change made through one node reaches the event subscribers of every
/// node, with the same event id, so a subscriber may resume on any node.
#[test]
fn a_change_on_one_node_reaches_subscribers_on_every_node() {
    let Some(url) = pg_url() else { return };
    let t = tables(&url, "events");
    let (nodes, root, _keys) = cluster(&url, &t.base, 2, "");
    let (a, b) = (&nodes[0], &nodes[1]);
    let (st, v) = call(
        a,
        "POST",
        "sys/mounts/kv",
        &root,
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert!(st < 300, "{v}");
    let client = |n: &Node| {
        coffer_client::Client::new(coffer_client::Config {
            address: n.server.addr.clone(),
            token: Some(zeroize::Zeroizing::new(root.clone())),
            ca_cert: None,
            skip_verify: false,
            timeout: Duration::from_secs(30),
        })
        .unwrap()
    };
    let mut on_a = client(a).subscribe("kv-v2/*", None).unwrap();
    let mut on_b = client(b).subscribe("kv-v2/*", None).unwrap();
    let (st, v) = call(
        a,
        "POST",
        "kv/data/app",
        &root,
        Some(json!({"data": {"v": unique("v")}})),
    );
    assert_eq!(st, 200, "{v}");
    let seen_a = on_a.next_event().unwrap().expect("A's stream open");
    let seen_b = on_b.next_event().unwrap().expect("B's stream open");
    assert_eq!(seen_b.event_type, "kv-v2/data-write");
    assert_eq!(seen_b.data_path, "kv/data/app");
    assert_eq!(seen_b.id, seen_a.id, "one event, one id on every node");

    // A subscriber that resumes on B from that id gets what A made since.
    let (st, _) = call(
        a,
        "POST",
        "kv/data/other",
        &root,
        Some(json!({"data": {"v": 1}})),
    );
    assert_eq!(st, 200);
    assert_eq!(
        on_b.next_event().unwrap().unwrap().data_path,
        "kv/data/other"
    );
    let mut resumed = client(b).subscribe("kv-v2/*", Some(&seen_a.id)).unwrap();
    assert_eq!(
        resumed.next_event().unwrap().unwrap().data_path,
        "kv/data/other"
    );
}

/// An audit device enabled on one node records the requests every node
/// serves (each node writes `file_path` under its own audit directory),
/// and one disabled on another node stops on all of them.
#[test]
fn an_audit_device_enabled_on_one_node_audits_every_node() {
    let Some(url) = pg_url() else { return };
    let t = tables(&url, "audit");
    let (nodes, root, _keys) = cluster(&url, &t.base, 2, "");
    let (a, b) = (&nodes[0], &nodes[1]);
    let log_of = |n: &Node| n._dir.path().join("audit").join("cluster.log");
    let read_log = |n: &Node| std::fs::read_to_string(log_of(n)).unwrap_or_default();
    let (st, v) = call(
        a,
        "PUT",
        "sys/audit/shared",
        &root,
        Some(json!({"type": "file", "options": {"file_path": "cluster.log"}})),
    );
    assert!(st < 300, "{v}");
    // B learns of the device on its next request, before serving it.
    let marker = unique("audited-on-b");
    let (st, _) = call(b, "GET", &format!("sys/policies/acl/{marker}"), &root, None);
    assert_eq!(st, 404);
    assert!(
        read_log(b).contains(&marker),
        "a request served by B is missing from B's audit log"
    );
    let (st, v) = call(b, "GET", "sys/audit", &root, None);
    assert_eq!(st, 200);
    assert!(v["data"]["shared/"].is_object(), "{v}");

    // Disabled on B: A stops writing to it at its next request.
    assert!(call(b, "DELETE", "sys/audit/shared", &root, None).0 < 300);
    let after = unique("after-disable");
    call(a, "GET", &format!("sys/policies/acl/{after}"), &root, None);
    let log_a = read_log(a);
    assert!(log_a.contains("disable"), "no closing checkpoint on A");
    assert!(
        !log_a.contains(&after),
        "A still audits to a disabled device"
    );
}

#[test]
fn every_node_serves_reads_and_writes_and_sees_revocations_at_once() {
    let Some(url) = pg_url() else { return };
    let t = tables(&url, "rw");
    let (nodes, root, _keys) = cluster(&url, &t.base, 3, "");
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);

    // A mount made on A routes on B at once.
    let (st, v) = call(
        a,
        "POST",
        "sys/mounts/kv",
        &root,
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert!(st < 300, "{v}");
    // Writes on any node are read at once on the others.
    for (i, (w, readers)) in [(a, [b, c]), (b, [a, c]), (c, [a, b])]
        .into_iter()
        .enumerate()
    {
        let value = unique("value");
        let (st, v) = call(
            w,
            "POST",
            &format!("kv/data/app{i}"),
            &root,
            Some(json!({"data": {"v": value}})),
        );
        assert_eq!(st, 200, "{v}");
        for r in readers {
            let (st, v) = call(r, "GET", &format!("kv/data/app{i}"), &root, None);
            assert_eq!(st, 200, "{v}");
            assert_eq!(v["data"]["data"]["v"], json!(value));
        }
    }
    // An overwrite on C replaces what A has cached.
    let newer = unique("newer");
    call(
        c,
        "POST",
        "kv/data/app0",
        &root,
        Some(json!({"data": {"v": newer}})),
    );
    let (_, v) = call(a, "GET", "kv/data/app0", &root, None);
    assert_eq!(v["data"]["data"]["v"], json!(newer));
    // Read-your-writes across nodes, version and value, write after write
    // (bench/kv --storage postgresql found B serving the version it had
    // parsed before A's write).
    for i in 0..20 {
        let (w, r) = if i % 2 == 0 { (a, b) } else { (b, c) };
        let value = unique("ryw");
        let (st, written) = call(
            w,
            "POST",
            "kv/data/ryw",
            &root,
            Some(json!({"data": {"v": value}})),
        );
        assert_eq!(st, 200, "{written}");
        let (st, read) = call(r, "GET", "kv/data/ryw", &root, None);
        assert_eq!(st, 200, "{read}");
        assert_eq!(
            read["data"]["metadata"]["version"], written["data"]["version"],
            "round {i}"
        );
        assert_eq!(read["data"]["data"]["v"], json!(value), "round {i}");
    }

    // A token made on A, cached on B by use, then revoked on A: B refuses
    // it on the very next request.
    let (st, v) = call(
        a,
        "PUT",
        "sys/policies/acl/reader",
        &root,
        Some(json!({"policy": "path \"kv/data/*\" { capabilities = [\"read\"] }"})),
    );
    assert!(st < 300, "{v}");
    let (_, v) = call(
        a,
        "POST",
        "auth/token/create",
        &root,
        Some(json!({"policies": ["reader"]})),
    );
    let tok = v["auth"]["client_token"].as_str().unwrap().to_owned();
    let (st, _) = call(b, "GET", "kv/data/app1", &tok, None);
    assert_eq!(st, 200);
    let (st, _) = call(
        a,
        "POST",
        "auth/token/revoke",
        &root,
        Some(json!({"token": tok})),
    );
    assert!(st < 300);
    let (st, v) = call(b, "GET", "kv/data/app1", &tok, None);
    assert_eq!(st, 403, "revoked on A, still honoured on B: {v}");
    let (st, _) = call(c, "GET", "kv/data/app1", &tok, None);
    assert_eq!(st, 403);

    // A policy narrowed on C applies on A at once (A has the ACL cached).
    let (_, v) = call(
        a,
        "POST",
        "auth/token/create",
        &root,
        Some(json!({"policies": ["reader"]})),
    );
    let tok2 = v["auth"]["client_token"].as_str().unwrap().to_owned();
    assert_eq!(call(a, "GET", "kv/data/app2", &tok2, None).0, 200);
    let (st, _) = call(
        c,
        "PUT",
        "sys/policies/acl/reader",
        &root,
        Some(json!({"policy": "path \"kv/data/app1\" { capabilities = [\"read\"] }"})),
    );
    assert!(st < 300);
    assert_eq!(
        call(a, "GET", "kv/data/app2", &tok2, None).0,
        403,
        "old ACL served on A"
    );
    assert_eq!(call(a, "GET", "kv/data/app1", &tok2, None).0, 200);
    // Deleted on B: refused everywhere.
    assert!(call(b, "DELETE", "sys/policies/acl/reader", &root, None).0 < 300);
    assert_eq!(call(a, "GET", "kv/data/app1", &tok2, None).0, 403);
    assert_eq!(call(c, "GET", "kv/data/app1", &tok2, None).0, 403);

    // A key rotation on A: everything stays readable on B, and what B
    // writes afterwards (with the new term) reads on A and C.
    let (_, before) = call(b, "GET", "sys/key-status", &root, None);
    assert!(call(a, "PUT", "sys/rotate", &root, None).0 < 300);
    let (_, after) = call(b, "GET", "sys/key-status", &root, None);
    assert_eq!(
        after["data"]["term"].as_u64(),
        before["data"]["term"].as_u64().map(|t| t + 1),
        "B did not pick up A's rotation"
    );
    let v_after = unique("after-rotation");
    assert_eq!(
        call(
            b,
            "POST",
            "kv/data/rot",
            &root,
            Some(json!({"data": {"v": v_after}}))
        )
        .0,
        200
    );
    for n in [a, c] {
        let (st, v) = call(n, "GET", "kv/data/rot", &root, None);
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["data"]["data"]["v"], json!(v_after));
        assert_eq!(call(n, "GET", "kv/data/app1", &root, None).0, 200);
    }
    // A rotation on C right after must not drop B's term.
    assert!(call(c, "PUT", "sys/rotate", &root, None).0 < 300);
    let (_, v) = call(a, "GET", "sys/key-status", &root, None);
    assert_eq!(
        v["data"]["term"].as_u64(),
        before["data"]["term"].as_u64().map(|t| t + 2)
    );

    // Unmounted on B: gone on A.
    assert!(call(b, "DELETE", "sys/mounts/kv", &root, None).0 < 300);
    assert_eq!(call(a, "GET", "kv/data/app1", &root, None).0, 404);

    // One leader, named the same by every node, in Vault's shape.
    wait_for_leader(&nodes);
    let mut selves = 0;
    let mut addresses = Vec::new();
    for n in &nodes {
        let (st, v) = Api::new(&n.server).call("GET", "sys/leader", None, None);
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["ha_enabled"], json!(true));
        if v["is_self"] == json!(true) {
            selves += 1;
            assert_eq!(v["leader_address"], json!(n.server.addr));
        }
        addresses.push(v["leader_address"].as_str().unwrap().to_owned());
    }
    assert_eq!(selves, 1, "{addresses:?}");
    assert!(addresses.windows(2).all(|w| w[0] == w[1]), "{addresses:?}");
    // Each node registers within a renewal period of its unseal.
    let deadline = Instant::now() + Duration::from_secs(10);
    let v = loop {
        let (st, v) = call(c, "GET", "sys/ha-status", &root, None);
        assert_eq!(st, 200, "{v}");
        if v["data"]["nodes"].as_array().map(Vec::len) == Some(3) || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let listed = v["data"]["nodes"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{v}");
    assert_eq!(
        listed
            .iter()
            .filter(|n| n["active_node"] == json!(true))
            .count(),
        1
    );
}

/// Waits (at most 10 s) until one of `nodes` holds the leader lease, and
/// returns its index: a node takes the lease within a renewal period of
/// its unseal, not at once.
fn wait_for_leader(nodes: &[Node]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(i) = leader_index(nodes) {
            return i;
        }
        assert!(Instant::now() < deadline, "no leader within 10 s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The node `sys/leader` names as leader, by index.
fn leader_index(nodes: &[Node]) -> Option<usize> {
    nodes.iter().position(|n| {
        let (st, v) = Api::new(&n.server).call("GET", "sys/leader", None, None);
        st == 200 && v["is_self"] == json!(true)
    })
}

#[test]
fn background_work_fails_over_within_seconds_and_runs_once() {
    let Some(url) = pg_url() else { return };
    let t = tables(&url, "failover");
    let (mut nodes, root, _keys) = cluster(&url, &t.base, 3, "lease_ttl = \"2s\"");
    let leader = wait_for_leader(&nodes);
    // Tokens with short TTLs, made on a node that is not the leader: their
    // expiry (a revocation, background work) must happen once, elsewhere.
    let maker = (leader + 1) % 3;
    let mut hashes = Vec::new();
    for _ in 0..8 {
        let (st, v) = call(
            &nodes[maker],
            "POST",
            "auth/token/create",
            &root,
            Some(json!({"ttl": "4s", "policies": ["default"]})),
        );
        assert_eq!(st, 200, "{v}");
        let tok = v["auth"]["client_token"].as_str().unwrap();
        hashes.push(coffer_crypto::hash::sha256_hex(tok.as_bytes()));
    }
    let stored = |h: &str| {
        psql(
            &url,
            &format!(
                "SELECT count(*) FROM \"{}\" WHERE key = 'sys/token/id/{h}'",
                t.base
            ),
        )
    };
    assert!(hashes.iter().all(|h| stored(h) == "1"));
    // Kill the leader outright.
    let killed_at = Instant::now();
    nodes[leader].server.kill();
    let survivors: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let new_leader = loop {
        if let Some(i) = survivors.iter().copied().find(|i| {
            let (st, v) = Api::new(&nodes[*i].server).call("GET", "sys/leader", None, None);
            st == 200 && v["is_self"] == json!(true)
        }) {
            break i;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(10),
            "no failover within 10 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let failover = killed_at.elapsed();
    eprintln!("failover after {failover:?} (lease_ttl 2s)");
    assert_ne!(new_leader, leader);
    // The tokens expire and the new leader revokes each (their entries go).
    let deadline = Instant::now() + Duration::from_secs(20);
    while hashes.iter().any(|h| stored(h) != "0") {
        assert!(
            Instant::now() < deadline,
            "expired tokens were not revoked after failover"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Exactly once: each token key appears in the change log twice (its
    // creation and its one revocation), never more.
    std::thread::sleep(Duration::from_secs(3));
    for h in &hashes {
        let n = psql(
            &url,
            &format!(
                "SELECT count(*) FROM \"{}_log\" WHERE 'sys/token/id/{h}' = ANY(keys)",
                t.base
            ),
        );
        assert_eq!(n, "2", "token {h} was written {n} times");
    }
    // The lease row names the new leader with a later term.
    let holder_addr = psql(&url, &format!("SELECT api_addr FROM \"{}_leader\"", t.base));
    assert_eq!(holder_addr, nodes[new_leader].server.addr);
    nodes.truncate(3);
}

#[test]
fn a_stopped_leader_is_replaced_and_cannot_write_when_it_resumes() {
    let Some(url) = pg_url() else { return };
    let t = tables(&url, "sigstop");
    let (nodes, root, _keys) = cluster(&url, &t.base, 2, "lease_ttl = \"2s\"");
    let deadline = Instant::now() + Duration::from_secs(10);
    let leader = loop {
        if let Some(i) = leader_index(&nodes) {
            break i;
        }
        assert!(Instant::now() < deadline, "no leader");
        std::thread::sleep(Duration::from_millis(200));
    };
    let other = 1 - leader;
    let term = |url: &str| psql(url, &format!("SELECT term FROM \"{}_leader\"", t.base));
    let term_before: u64 = term(&url).parse().unwrap();
    let pid = nodes[leader].server.pid().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    let stopped = Instant::now();
    while leader_index(&nodes[other..=other]).is_none() {
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "no takeover from a stopped leader"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "takeover from a stopped leader after {:?}",
        stopped.elapsed()
    );
    let term_after: u64 = term(&url).parse().unwrap();
    assert!(term_after > term_before);
    // Tokens expiring while the old leader is stopped are revoked once.
    let (_, v) = call(
        &nodes[other],
        "POST",
        "auth/token/create",
        &root,
        Some(json!({"ttl": "2s"})),
    );
    let h = coffer_crypto::hash::sha256_hex(v["auth"]["client_token"].as_str().unwrap().as_bytes());
    assert!(Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_secs(6));
    let n = psql(
        &url,
        &format!(
            "SELECT count(*) FROM \"{}_log\" WHERE 'sys/token/id/{h}' = ANY(keys)",
            t.base
        ),
    );
    assert_eq!(n, "2");
    // The resumed node serves requests again, as a follower.
    let (st, _) = call(&nodes[leader], "GET", "auth/token/lookup-self", &root, None);
    assert_eq!(st, 200);
    let (_, v) = Api::new(&nodes[leader].server).call("GET", "sys/leader", None, None);
    assert_eq!(v["is_self"], json!(false), "two leaders after SIGCONT");
}

fn coffer(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

#[test]
fn operator_migrate_moves_sqlite_into_postgresql_and_back() {
    let Some(url) = pg_url() else { return };
    let t = tables(&url, "migrate");
    let dir = tempfile::tempdir().unwrap();
    let (server, cfg, keys) = cli_support::start_initialised(&dir.path().join("src"), 3, 2);
    let api = Api::new(&server);
    api.root(
        "POST",
        "sys/mounts/kv",
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    );
    let mut written = Vec::new();
    for i in 0..25 {
        let v = unique("migrated");
        api.root(
            "POST",
            &format!("kv/data/app/{i}"),
            Some(json!({"data": {"v": v}})),
        );
        written.push(v);
    }
    let root = server.token.clone();
    drop(server);
    let _ = cfg;
    let src_db = dir.path().join("src").join("coffer.db");
    let back_db = dir.path().join("back.db");
    let plan = |from: &str, to: &str| {
        let p = dir.path().join(format!("{}.toml", unique("plan")));
        std::fs::write(&p, format!("{from}\n{to}\n")).unwrap();
        p
    };
    let sqlite =
        |side: &str, path: &Path| format!("[{side}.sqlite]\npath = {:?}", path.to_str().unwrap());
    let pg = |side: &str| {
        format!(
            "[{side}.postgresql]\nconnection_url = {url:?}\ntable = {:?}",
            t.base
        )
    };

    let to_pg = plan(
        &sqlite("storage_source", &src_db),
        &pg("storage_destination"),
    );
    let out = coffer(&["operator", "migrate", "-config", to_pg.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("verified"));
    // A second run meets a non-empty destination and refuses.
    let out = coffer(&["operator", "migrate", "-config", to_pg.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not empty"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No plaintext reached PostgreSQL.
    let dump = psql(
        &url,
        &format!("SELECT encode(value, 'escape') FROM \"{}\"", t.base),
    );
    assert!(!dump.contains(&written[0]));

    // A node on PostgreSQL unseals with the same keys and reads everything.
    let node = start_node(&url, &t.base, "");
    let api = unseal(&node, &keys[..2]);
    for (i, v) in written.iter().enumerate() {
        let (st, body) = api.call("GET", &format!("kv/data/app/{i}"), Some(&root), None);
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["data"]["data"]["v"], json!(v));
    }
    // Migrating out of a live cluster is refused.
    wait_for_leader(std::slice::from_ref(&node));
    let back = plan(
        &pg("storage_source"),
        &sqlite("storage_destination", &back_db),
    );
    let out = coffer(&["operator", "migrate", "-config", back.to_str().unwrap()]);
    assert!(!out.status.success(), "migrated out of a live cluster");
    drop(node);
    // Offline, back to SQLite: a fresh SQLite server reads the same secrets.
    std::thread::sleep(Duration::from_secs(6)); // the dead node's lease expires
    let out = coffer(&["operator", "migrate", "-config", back.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sdir = tempfile::tempdir().unwrap();
    let port = free_port();
    let scfg = sdir.path().join("coffer.toml");
    std::fs::write(&scfg, format!("[storage.sqlite]\npath = {:?}\n\n[listener.tcp]\naddress = \"127.0.0.1:{port}\"\ntls_disable = true\n", back_db.to_str().unwrap())).unwrap();
    let mut s = Server::start_config(&scfg, format!("http://127.0.0.1:{port}"));
    s.token = root.clone();
    let api = Api::new(&s);
    for k in &keys[..2] {
        api.call("PUT", "sys/unseal", None, Some(json!({"key": k})));
    }
    let (st, body) = api.call("GET", "kv/data/app/24", Some(&root), None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"]["data"]["v"], json!(written[24]));
}

#[test]
fn kill_9_of_a_node_in_a_write_loop_loses_no_acknowledged_write() {
    let Some(url) = pg_url() else { return };
    let t = tables(&url, "kill9");
    let (mut nodes, root, _keys) = cluster(&url, &t.base, 2, "");
    let (st, v) = call(
        &nodes[0],
        "POST",
        "sys/mounts/kv",
        &root,
        Some(json!({"type": "kv", "options": {"version": "1"}})),
    );
    assert!(st < 300, "{v}");
    let addr = nodes[0].server.addr.clone();
    let token = root.clone();
    // Four writers on node A until it dies; each records what was acknowledged.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (addr, token) = (addr.clone(), token.clone());
            std::thread::spawn(move || {
                let http = cli_support::http();
                let mut acked = Vec::new();
                for i in 0.. {
                    let value = format!("w{w}-{i}");
                    let r = http
                        .post(format!("{addr}/v1/kv/k{w}-{i}"))
                        .header("X-Vault-Token", &token)
                        .json(&json!({"v": value}))
                        .send();
                    match r {
                        Ok(resp) if resp.status().is_success() => {
                            acked.push((format!("k{w}-{i}"), value))
                        }
                        _ => break,
                    }
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    nodes[0].server.kill();
    let acked: Vec<(String, String)> = writers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert!(
        acked.len() > 20,
        "only {} writes before the kill",
        acked.len()
    );
    for (key, value) in &acked {
        let (st, v) = call(&nodes[1], "GET", &format!("kv/{key}"), &root, None);
        assert_eq!(st, 200, "acknowledged {key} lost: {v}");
        assert_eq!(v["data"]["v"], json!(value));
    }
    eprintln!(
        "{} acknowledged writes, all present on the other node",
        acked.len()
    );
}

// Read-modify-write races across nodes: each of these requests reads an
// entry, decides, and writes it back. Two nodes deciding on the same read
// must not both win; the stored entry's conditional write (compare-and-set)
// lets exactly one through. Every count below holds for any interleaving.

/// Sends `n` requests at once, request `i` to node `i % 2`, all released
/// by one barrier; returns each answer in request order.
fn race(
    nodes: &[Node],
    n: usize,
    send: impl Fn(&Api<'_>, usize) -> (u16, serde_json::Value) + Sync,
) -> Vec<(u16, serde_json::Value)> {
    let start = std::sync::Barrier::new(n);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (start, send) = (&start, &send);
                let server = &nodes[i % 2].server;
                s.spawn(move || {
                    let api = Api::new(server);
                    start.wait();
                    send(&api, i)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// How many answers had status 200.
fn wins(answers: &[(u16, serde_json::Value)]) -> usize {
    answers.iter().filter(|(st, _)| *st == 200).count()
}

/// Every answer that is no win must be the refusal `expected` (never a 500).
fn losers_refused(answers: &[(u16, serde_json::Value)], expected: u16) {
    for (st, v) in answers {
        assert!(*st == 200 || *st == expected, "{st} {v}");
    }
}

#[test]
fn check_and_set_writes_racing_on_two_nodes_let_exactly_one_win() {
    let Some(url) = pg_url() else { return };
    let t = tables(&url, "cas");
    let (nodes, root, _keys) = cluster(&url, &t.base, 2, "");
    let (st, v) = call(
        &nodes[0],
        "POST",
        "sys/mounts/kv",
        &root,
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert!(st < 300, "{v}");
    let (st, v) = call(
        &nodes[0],
        "POST",
        "kv/data/race",
        &root,
        Some(json!({"data": {"w": "first"}})),
    );
    assert_eq!(st, 200, "{v}");
    // Both nodes hold the key's metadata in their caches.
    for n in &nodes {
        assert_eq!(call(n, "GET", "kv/metadata/race", &root, None).0, 200);
    }
    let answers = race(&nodes, 32, |api, i| {
        api.call(
            "POST",
            "kv/data/race",
            Some(&root),
            Some(json!({"options": {"cas": 1}, "data": {"w": format!("writer-{i}")}})),
        )
    });
    eprintln!("cas=1 race: {} of 32 writes won", wins(&answers));

    // Writes without cas all land, each as a version of its own.
    let plain = race(&nodes, 32, |api, i| {
        api.call(
            "POST",
            "kv/data/plain",
            Some(&root),
            Some(json!({"data": {"w": format!("writer-{i}")}})),
        )
    });
    let mut versions: Vec<u64> = plain
        .iter()
        .filter(|(st, _)| *st == 200)
        .filter_map(|(_, v)| v["data"]["version"].as_u64())
        .collect();
    versions.sort_unstable();
    versions.dedup();
    eprintln!(
        "plain race: {} of 32 writes acknowledged, {} distinct versions",
        wins(&plain),
        versions.len()
    );
    assert_eq!(wins(&answers), 1, "{answers:?}");
    losers_refused(&answers, 400);
    // Read on the node that did not necessarily write it.
    let (_, v) = call(&nodes[1], "GET", "kv/metadata/race", &root, None);
    assert_eq!(v["data"]["current_version"], json!(2), "{v}");
    // No acknowledged write is lost: each got a version of its own. (A
    // write that lost the race too often is refused with 503, never
    // acknowledged.)
    let acked = wins(&plain) as u64;
    assert_eq!(versions, (1..=acked).collect::<Vec<u64>>(), "{plain:?}");
    losers_refused(&plain, 503);
    let (_, v) = call(&nodes[0], "GET", "kv/metadata/plain", &root, None);
    assert_eq!(v["data"]["current_version"], json!(acked), "{v}");
}

#[test]
fn a_single_use_token_serves_one_request_across_two_nodes() {
    let Some(url) = pg_url() else { return };
    let t = tables(&url, "uses");
    let (nodes, root, _keys) = cluster(&url, &t.base, 2, "");
    let mut results = Vec::new();
    for uses in [1u64, 3] {
        let (st, v) = call(
            &nodes[0],
            "POST",
            "auth/token/create",
            &root,
            Some(json!({"num_uses": uses, "policies": ["default"]})),
        );
        assert_eq!(st, 200, "{v}");
        let token = v["auth"]["client_token"].as_str().unwrap().to_owned();
        // Both nodes have the entry cached (a lookup by another token takes no use).
        for n in &nodes {
            let (st, v) = call(
                n,
                "POST",
                "auth/token/lookup",
                &root,
                Some(json!({"token": token})),
            );
            assert_eq!(st, 200, "{v}");
        }
        let answers = race(&nodes, 32, |api, _| {
            api.call("GET", "auth/token/lookup-self", Some(&token), None)
        });
        eprintln!(
            "num_uses={uses} race: {} of 32 requests served",
            wins(&answers)
        );
        results.push((uses, answers));
    }
    for (uses, answers) in results {
        assert_eq!(wins(&answers) as u64, uses, "{answers:?}");
        losers_refused(&answers, 403);
    }
}

#[test]
fn a_wrapped_response_is_unwrapped_exactly_once_across_two_nodes() {
    let Some(url) = pg_url() else { return };
    let t = tables(&url, "unwrap");
    let (nodes, root, _keys) = cluster(&url, &t.base, 2, "");
    let value = unique("wrapped");
    let resp = cli_support::http()
        .post(format!("{}/v1/sys/wrapping/wrap", nodes[0].server.addr))
        .header("X-Vault-Token", &root)
        .header("X-Vault-Wrap-TTL", "5m")
        .json(&json!({"v": value}))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: serde_json::Value = resp.json().unwrap();
    let wrap = body["wrap_info"]["token"].as_str().unwrap().to_owned();
    // Half unwrap with the wrapping token as their own, half name it in the body.
    let answers = race(&nodes, 16, |api, i| {
        if i % 4 < 2 {
            api.call("POST", "sys/wrapping/unwrap", Some(&wrap), None)
        } else {
            api.call(
                "POST",
                "sys/wrapping/unwrap",
                Some(&root),
                Some(json!({"token": wrap})),
            )
        }
    });
    eprintln!("unwrap race: {} of 16 unwraps answered", wins(&answers));
    assert_eq!(wins(&answers), 1, "{answers:?}");
    losers_refused(&answers, 400);
    let winner = answers.iter().find(|(st, _)| *st == 200).unwrap();
    assert_eq!(winner.1["data"]["v"], json!(value));
}

#[test]
fn a_single_use_secret_id_logs_in_once_across_two_nodes() {
    let Some(url) = pg_url() else { return };
    let t = tables(&url, "secretid");
    let (nodes, root, _keys) = cluster(&url, &t.base, 2, "");
    let (st, v) = call(
        &nodes[0],
        "POST",
        "sys/auth/approle",
        &root,
        Some(json!({"type": "approle"})),
    );
    assert!(st < 300, "{v}");
    // The losers' failures must not lock the role out meanwhile.
    let (st, v) = call(
        &nodes[0],
        "POST",
        "sys/auth/approle/tune",
        &root,
        Some(json!({"user_lockout_config": {"disable_lockout": true}})),
    );
    assert!(st < 300, "{v}");
    let mut results = Vec::new();
    for uses in [1u64, 3] {
        let role = format!("once{uses}");
        let (st, v) = call(
            &nodes[0],
            "POST",
            &format!("auth/approle/role/{role}"),
            &root,
            Some(json!({"secret_id_num_uses": uses, "token_policies": "default"})),
        );
        assert!(st < 300, "{v}");
        let (_, v) = call(
            &nodes[1],
            "GET",
            &format!("auth/approle/role/{role}/role-id"),
            &root,
            None,
        );
        let role_id = v["data"]["role_id"].as_str().unwrap().to_owned();
        let (st, v) = call(
            &nodes[1],
            "POST",
            &format!("auth/approle/role/{role}/secret-id"),
            &root,
            None,
        );
        assert_eq!(st, 200, "{v}");
        let secret_id = v["data"]["secret_id"].as_str().unwrap().to_owned();
        let answers = race(&nodes, 32, |api, _| {
            api.call(
                "POST",
                "auth/approle/login",
                None,
                Some(json!({"role_id": role_id, "secret_id": secret_id})),
            )
        });
        eprintln!(
            "secret_id_num_uses={uses} race: {} of 32 logins succeeded",
            wins(&answers)
        );
        results.push((uses, answers));
    }
    for (uses, answers) in results {
        assert_eq!(wins(&answers) as u64, uses, "{answers:?}");
        losers_refused(&answers, 400);
    }
}

/// Failed logins spread over two nodes count once against the identity:
/// the lockout comes at the threshold, not at a multiple of it, holds on
/// both nodes (even for the right password), is listed by either node's
/// `sys/locked-users`, and lifting it on one node lifts it on the other.
#[test]
fn a_lockout_counts_failures_on_every_node_and_holds_on_every_node() {
    let Some(url) = pg_url() else { return };
    let t = tables(&url, "lockout");
    let (nodes, root, _keys) = cluster(&url, &t.base, 2, "");
    let (st, v) = call(
        &nodes[0],
        "POST",
        "sys/auth/userpass",
        &root,
        Some(json!({"type": "userpass"})),
    );
    assert!(st < 300, "{v}");
    let (st, v) = call(
        &nodes[1],
        "POST",
        "sys/auth/userpass/tune",
        &root,
        Some(json!({"user_lockout_config": {"lockout_threshold": "4", "lockout_duration": "10m"}})),
    );
    assert!(st < 300, "{v}");
    let password = unique("pw");
    let (st, v) = call(
        &nodes[0],
        "POST",
        "auth/userpass/users/alice",
        &root,
        Some(json!({"password": password, "token_policies": "default"})),
    );
    assert!(st < 300, "{v}");
    let login = |node: &Node, pw: &str| {
        Api::new(&node.server).call(
            "POST",
            "auth/userpass/login/alice",
            None,
            Some(json!({ "password": pw })),
        )
    };
    // Three wrong guesses over both nodes stay under the threshold; the
    // success then clears them.
    for i in 0..3 {
        let (st, _) = login(&nodes[i % 2], "wrong");
        assert!(matches!(st, 400 | 403), "{st}");
    }
    let (st, v) = login(&nodes[0], &password);
    assert_eq!(
        st, 200,
        "three failures are under the threshold of four: {v}"
    );
    for i in 0..4 {
        let (st, _) = login(&nodes[i % 2], "wrong");
        assert!(matches!(st, 400 | 403), "{st}");
    }
    for node in &nodes {
        let (st, v) = login(node, &password);
        assert_eq!(st, 403, "locked out on every node: {v}");
    }
    let (st, v) = call(&nodes[0], "GET", "sys/locked-users", &root, None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["total"], json!(1), "{v}");
    let accessor = v["data"]["by_namespace"][0]["mount_accessors"][0]["mount_accessor"]
        .as_str()
        .unwrap()
        .to_owned();
    let (st, v) = call(
        &nodes[1],
        "POST",
        &format!("sys/locked-users/{accessor}/unlock/alice"),
        &root,
        None,
    );
    assert!(st < 300, "{v}");
    let (st, v) = login(&nodes[0], &password);
    assert_eq!(st, 200, "unlocked on the other node: {v}");
}

/// Identity writes computed on two nodes at once: 32 first logins of one
/// new user make exactly one entity, and 16 aliases added to one entity
/// (each a read-modify-write of its record) all end up on it.
#[test]
fn identity_changes_racing_on_two_nodes_lose_nothing() {
    let Some(url) = pg_url() else { return };
    let t = tables(&url, "identity");
    let (nodes, root, _keys) = cluster(&url, &t.base, 2, "");
    let (st, v) = call(
        &nodes[0],
        "POST",
        "sys/auth/userpass",
        &root,
        Some(json!({"type": "userpass"})),
    );
    assert!(st < 300, "{v}");
    let password = unique("pw");
    let (st, v) = call(
        &nodes[0],
        "POST",
        "auth/userpass/users/bob",
        &root,
        Some(json!({"password": password})),
    );
    assert!(st < 300, "{v}");
    let answers = race(&nodes, 32, |api, _| {
        api.call(
            "POST",
            "auth/userpass/login/bob",
            None,
            Some(json!({ "password": password })),
        )
    });
    assert_eq!(wins(&answers), 32, "{answers:?}");
    let entities: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|(_, v)| v["auth"]["entity_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(entities.len(), 1, "one entity for one alias: {entities:?}");
    let (st, v) = call(&nodes[1], "LIST", "identity/entity/id", &root, None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["keys"].as_array().unwrap().len(), 1, "{v}");

    // 16 aliases (one per auth mount, as Vault allows) added to one entity
    // at once, half on each node: each is a read-modify-write of the
    // entity's record.
    let mut accessors = Vec::new();
    for i in 0..16 {
        let (st, v) = call(
            &nodes[0],
            "POST",
            &format!("sys/auth/up{i}"),
            &root,
            Some(json!({"type": "userpass"})),
        );
        assert!(st < 300, "{v}");
    }
    let (st, v) = call(&nodes[1], "GET", "sys/auth", &root, None);
    assert_eq!(st, 200, "{v}");
    for i in 0..16 {
        accessors.push(
            v["data"][format!("up{i}/")]["accessor"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let (st, v) = call(
        &nodes[0],
        "POST",
        "identity/entity",
        &root,
        Some(json!({"name": "multi"})),
    );
    assert_eq!(st, 200, "{v}");
    let entity = v["data"]["id"].as_str().unwrap().to_owned();
    let answers = race(&nodes, 16, |api, i| {
        api.call(
            "POST",
            "identity/entity-alias",
            Some(&root),
            Some(json!({"name": "multi", "canonical_id": entity, "mount_accessor": accessors[i]})),
        )
    });
    assert_eq!(wins(&answers), 16, "{answers:?}");
    for node in &nodes {
        let (st, v) = call(
            node,
            "GET",
            &format!("identity/entity/id/{entity}"),
            &root,
            None,
        );
        assert_eq!(st, 200, "{v}");
        assert_eq!(
            v["data"]["aliases"].as_array().unwrap().len(),
            16,
            "no alias lost: {v}"
        );
    }
    // 16 creations of one alias (one mount, one name) for 8 entities at
    // once: however they interleave, the store ends with one such alias.
    let mut entities = Vec::new();
    for i in 0..8 {
        let (st, v) = call(
            &nodes[i % 2],
            "POST",
            "identity/entity",
            &root,
            Some(json!({"name": format!("e{i}")})),
        );
        assert_eq!(st, 200, "{v}");
        entities.push(v["data"]["id"].as_str().unwrap().to_owned());
    }
    let answers = race(&nodes, 16, |api, i| {
        api.call(
            "POST",
            "identity/entity-alias",
            Some(&root),
            Some(json!({"name": "zed", "canonical_id": entities[i % 8], "mount_accessor": accessors[0]})),
        )
    });
    for (st, v) in &answers {
        assert!(*st == 200 || *st == 400, "{st} {v}");
    }
    for node in &nodes {
        let mut zed = 0;
        for id in &entities {
            let (st, v) = call(
                node,
                "GET",
                &format!("identity/entity/id/{id}"),
                &root,
                None,
            );
            assert_eq!(st, 200, "{v}");
            zed += v["data"]["aliases"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["name"] == json!("zed"))
                .count();
        }
        assert_eq!(zed, 1, "one alias per mount and name: {answers:?}");
    }
}

/// PostgreSQL stopped (`-m immediate`, as when its host fails) and started
/// again under a write and read load on two nodes (a private cluster, so the
/// shared one is not disturbed): meanwhile every request is answered 503,
/// never 500 and never a wrong value; afterwards both nodes serve again by
/// themselves, and every write acknowledged before, during or after the
/// outage reads back on both nodes.
#[test]
fn a_postgresql_restart_under_load_answers_503_then_recovers_alone() {
    let Some(_shared) = pg_url() else { return };
    let pg = PrivateCluster::start();
    let url = format!(
        "postgres://postgres:{}@127.0.0.1:{}/postgres",
        pg.superuser_pw, pg.port
    );
    let (nodes, root, _keys) = cluster(&url, "coffer_kv", 2, "");
    let (st, v) = call(
        &nodes[0],
        "POST",
        "sys/mounts/secret",
        &root,
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert!(st < 300, "{v}");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let outage = std::sync::atomic::AtomicBool::new(false);
    let (acked, statuses) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|w| {
                let (node, root, stop, outage) = (&nodes[w], &root, &stop, &outage);
                s.spawn(move || {
                    let api = Api::new(&node.server);
                    let mut acked = Vec::new();
                    let mut statuses = Vec::new();
                    let mut i = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        let key = format!("secret/data/w{w}/k{i}");
                        let (st, v) =
                            api.call("POST", &key, Some(root), Some(json!({"data": {"n": i}})));
                        let during = outage.load(std::sync::atomic::Ordering::SeqCst);
                        statuses.push((st, during));
                        assert!(st == 200 || st == 503, "write {key}: {st} {v}");
                        if st == 200 {
                            acked.push((key.clone(), i));
                            let (st, v) = api.call("GET", &key, Some(root), None);
                            statuses.push((st, during));
                            assert!(st == 200 || st == 503, "read {key}: {st} {v}");
                            if st == 200 {
                                assert_eq!(v["data"]["data"]["n"], json!(i), "a wrong value: {v}");
                            }
                        } else {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        i += 1;
                    }
                    (acked, statuses)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(2));
        outage.store(true, std::sync::atomic::Ordering::SeqCst);
        pg.stop();
        std::thread::sleep(Duration::from_secs(3));
        pg.start_again();
        outage.store(false, std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(Duration::from_secs(2));
        // Recovered by themselves: each node answers a write and a read within 20 s.
        for node in &nodes {
            let api = Api::new(&node.server);
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let (w, _) = api.call(
                    "POST",
                    "secret/data/probe",
                    Some(&root),
                    Some(json!({"data": {"ok": 1}})),
                );
                let (r, _) = api.call("GET", "secret/data/probe", Some(&root), None);
                if w == 200 && r == 200 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "a node did not recover: write {w}, read {r}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut acked = Vec::new();
        let mut statuses = Vec::new();
        for w in workers {
            let (a, st) = w.join().unwrap();
            acked.extend(a);
            statuses.extend(st);
        }
        (acked, statuses)
    });
    let refused = statuses
        .iter()
        .filter(|(st, during)| *st == 503 && *during)
        .count();
    eprintln!(
        "{} requests, {} answered 503 during the outage, {} writes acknowledged",
        statuses.len(),
        refused,
        acked.len()
    );
    assert!(refused > 0, "the outage was noticed: {statuses:?}");
    for node in &nodes {
        let api = Api::new(&node.server);
        for (key, n) in &acked {
            let (st, v) = api.call("GET", key, Some(&root), None);
            assert_eq!(st, 200, "{key}: {v}");
            assert_eq!(v["data"]["data"]["n"], json!(n), "{key}: {v}");
        }
    }
}

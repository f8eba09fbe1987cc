//! PostgreSQL-specific behaviour: two backends on one table act as two
//! nodes: the change log, the leader lease and its fence, the exclusive
//! mode. Skipped (with a notice) without `COFFER_TEST_PG_URL`.

mod common;

use std::time::Duration;

use coffer_storage::{
    fence, Backend, Changes, LeaderClaim, PostgresBackend, PostgresConfig, StorageError,
};
use common::pg::{pg_url, table_name, DropTables};

async fn node(url: &str, table: &str) -> PostgresBackend {
    let mut c = PostgresConfig::new(url);
    c.table = table.into();
    PostgresBackend::open(c).await.expect("open")
}

async fn two_nodes(test: &str) -> Option<(PostgresBackend, PostgresBackend, DropTables)> {
    let url = pg_url()?;
    let table = table_name(test);
    let a = node(&url, &table).await;
    let b = node(&url, &table).await;
    Some((a, b, DropTables::new(url, table)))
}

fn claim(holder: &str, ttl_ms: u64) -> LeaderClaim {
    LeaderClaim {
        holder: holder.into(),
        api_addr: format!("http://{holder}"),
        ttl: Duration::from_millis(ttl_ms),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_log_carries_other_nodes_keys_and_reports_gaps() {
    let Some((a, b, _drop)) = two_nodes("changes").await else {
        return;
    };
    let Some(Changes::Lost { position: start }) = a.changes_since(u64::MAX).await.unwrap() else {
        panic!("a position past the end is a gap");
    };
    b.put("x/1", b"1".to_vec()).await.unwrap();
    b.write_batch(vec![
        coffer_storage::Op::Delete { key: "x/2".into() },
        coffer_storage::Op::Put {
            key: "x/3".into(),
            value: b"3".to_vec(),
        },
    ])
    .await
    .unwrap();
    a.put("mine", b"m".to_vec()).await.unwrap();
    // A sees B's keys at once, in order, and not its own.
    let Some(Changes::Keys { position, keys }) = a.changes_since(start).await.unwrap() else {
        panic!("no gap expected");
    };
    assert_eq!(keys, ["x/1", "x/2", "x/3"]);
    assert_eq!(position, start + 3);
    assert_eq!(a.get("x/1").await.unwrap().as_deref(), Some(&b"1"[..]));
    // B sees only A's.
    let Some(Changes::Keys { keys, .. }) = b.changes_since(start).await.unwrap() else {
        panic!("no gap expected");
    };
    assert_eq!(keys, ["mine"]);
    // Nothing new: empty.
    assert_eq!(
        a.changes_since(position).await.unwrap(),
        Some(Changes::Keys {
            position,
            keys: vec![]
        })
    );
    // A pruned log is a gap, never a silent skip.
    let url = pg_url().unwrap();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .execute(
            &format!("DELETE FROM \"{}_log\" WHERE seq = $1", a.table()),
            &[&i64::try_from(start + 1).unwrap()],
        )
        .await
        .unwrap();
    assert!(matches!(
        a.changes_since(start).await.unwrap(),
        Some(Changes::Lost { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leaders_fenced_writes_are_refused_after_takeover() {
    let Some((a, b, _drop)) = two_nodes("fence").await else {
        return;
    };
    let t1 = a
        .claim_leadership(&claim("a", 2500))
        .await
        .unwrap()
        .unwrap();
    // Renewal keeps the term; another claimant is refused while it lives.
    assert_eq!(
        a.claim_leadership(&claim("a", 2500)).await.unwrap(),
        Some(t1)
    );
    assert_eq!(b.claim_leadership(&claim("b", 2500)).await.unwrap(), None);
    let leader = b.leader().await.unwrap().unwrap();
    assert_eq!(
        (leader.holder.as_str(), leader.term, leader.live),
        ("a", t1, true)
    );
    fence::fenced(t1, a.put("bg/1", b"a".to_vec()))
        .await
        .unwrap();

    // A "pauses" past its lease; B takes over with the next term.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let t2 = b
        .claim_leadership(&claim("b", 5000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t2, t1 + 1);
    // A resumes: its background writes under the old term write nothing,
    // including every other op of the batch.
    let err = fence::fenced(
        t1,
        a.write_batch(vec![
            coffer_storage::Op::Put {
                key: "bg/2".into(),
                value: b"late".to_vec(),
            },
            coffer_storage::Op::Delete { key: "bg/1".into() },
        ]),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StorageError::Fenced(t) if t == t1), "{err}");
    assert_eq!(a.get("bg/2").await.unwrap(), None);
    assert_eq!(a.get("bg/1").await.unwrap().as_deref(), Some(&b"a"[..]));
    // A's unfenced (request) writes still work, beside a refused one in the
    // same group.
    let (fenced, plain) = tokio::join!(
        fence::fenced(t1, a.put("bg/3", b"late".to_vec())),
        a.put("req/1", b"ok".to_vec())
    );
    assert!(matches!(fenced, Err(StorageError::Fenced(_))));
    plain.unwrap();
    assert_eq!(a.get("bg/3").await.unwrap(), None);
    // A cannot take the lease back while B holds it; B's fence holds.
    assert_eq!(a.claim_leadership(&claim("a", 2500)).await.unwrap(), None);
    fence::fenced(t2, b.put("bg/4", b"b".to_vec()))
        .await
        .unwrap();
    // A release hands over at once, with a new term.
    b.release_leadership("b").await.unwrap();
    let t3 = a
        .claim_leadership(&claim("a", 2500))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t3, t2 + 1);
    assert!(matches!(
        fence::fenced(t2, b.put("bg/5", b"x".to_vec())).await,
        Err(StorageError::Fenced(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ha_disabled_keeps_a_second_node_out() {
    let Some(url) = pg_url() else {
        return;
    };
    let table = table_name("exclusive");
    let _drop = DropTables::new(url.clone(), table.clone());
    let mut c = PostgresConfig::new(url.clone());
    c.table = table.clone();
    c.ha_enabled = false;
    let first = PostgresBackend::open(c.clone()).await.unwrap();
    assert!(!first.is_shared());
    let err = PostgresBackend::open(c.clone()).await.unwrap_err();
    assert!(matches!(err, StorageError::InUse(_)), "{err}");
    drop(first);
    // The lock goes with the connection.
    let mut reopened = None;
    for _ in 0..50 {
        if let Ok(b) = PostgresBackend::open(c.clone()).await {
            reopened = Some(b);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reopened.is_some(), "the lock outlived its node");
}

#[tokio::test]
async fn bad_settings_are_refused_without_quoting_the_url() {
    let marker = ["pw", "91ab"].join("-");
    for table in ["", "1abc", "a-b", "a\"b", &"x".repeat(49)] {
        let mut c = PostgresConfig::new(format!("postgres://u:{marker}@127.0.0.1:1/db"));
        c.table = table.into();
        let err = PostgresBackend::open(c).await.unwrap_err().to_string();
        assert!(err.contains("table"), "{err}");
        assert!(!err.contains(&marker));
    }
    let c = PostgresConfig::new(format!(
        "postgres://u:{marker}@127.0.0.1:1/db?sslrootcert=/etc/passwd"
    ));
    let err = PostgresBackend::open(c).await.unwrap_err().to_string();
    assert!(err.contains("sslrootcert"), "{err}");
    assert!(!err.contains(&marker), "{err}");
    let c = PostgresConfig::new(format!(
        "postgres://u:{marker}@127.0.0.1:1/db?sslmode=bogus"
    ));
    let err = PostgresBackend::open(c).await.unwrap_err().to_string();
    assert!(err.contains("sslmode"), "{err}");
    assert!(!err.contains(&marker), "{err}");
    // Nobody listens on port 1: unavailable, not a panic or a leak.
    let c = PostgresConfig::new(format!(
        "postgres://u:{marker}@127.0.0.1:1/db?sslmode=disable"
    ));
    let err = PostgresBackend::open(c).await.unwrap_err();
    assert!(matches!(err, StorageError::Unavailable), "{err}");
}

/// A snapshot import on one node replaces the store for all: the other
/// node's change log read says so, its writes are refused (nothing lands
/// under its stale view) until it rejoins, and then they go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_on_one_node_fences_the_others_until_they_rejoin() {
    let Some((a, b, _drop)) = two_nodes("import").await else {
        return;
    };
    b.put("before", b"1".to_vec()).await.unwrap();
    let Some(Changes::Lost { position: start }) = b.changes_since(u64::MAX).await.unwrap() else {
        panic!("a position past the end is a gap");
    };
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tx.send(coffer_storage::ImportItem::Batch(vec![
        coffer_storage::Entry {
            key: "restored".into(),
            value: b"r".to_vec(),
        },
    ]))
    .await
    .unwrap();
    tx.send(coffer_storage::ImportItem::Commit).await.unwrap();
    assert_eq!(a.import(rx).await.unwrap(), 1);
    // B learns the store was replaced, and cannot write into it.
    assert!(matches!(
        b.changes_since(start).await.unwrap(),
        Some(Changes::Replaced { .. })
    ));
    let err = b.put("stale", b"s".to_vec()).await.unwrap_err();
    assert!(matches!(err, StorageError::Replaced), "{err}");
    assert_eq!(b.get("stale").await.unwrap(), None);
    assert_eq!(b.get("before").await.unwrap(), None);
    assert_eq!(b.get("restored").await.unwrap().as_deref(), Some(&b"r"[..]));
    // A, which imported, writes on.
    a.put("a-after", b"1".to_vec()).await.unwrap();
    // Once B rejoins, it writes again and follows the log as before.
    b.rejoin().await.unwrap();
    let Some(Changes::Lost { position }) = b.changes_since(u64::MAX).await.unwrap() else {
        panic!("after rejoining, the log is followed again");
    };
    b.put("b-after", b"1".to_vec()).await.unwrap();
    assert_eq!(a.get("b-after").await.unwrap().as_deref(), Some(&b"1"[..]));
    let Some(Changes::Keys { keys, .. }) = a.changes_since(position).await.unwrap() else {
        panic!("no gap expected");
    };
    assert_eq!(keys, ["b-after"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditional_writers_on_two_nodes_let_exactly_one_win() {
    use coffer_storage::{Op, Version};
    let Some((a, b, _drop)) = two_nodes("cas2").await else {
        return;
    };
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    let Some(Changes::Lost { position: start }) = a.changes_since(u64::MAX).await.unwrap() else {
        panic!("a position past the end is a gap");
    };
    a.put("k", b"start".to_vec()).await.unwrap();
    let v = Version::of(b"start");
    for (key, expected) in [("k", Some(v)), ("fresh", None)] {
        const TASKS: usize = 32;
        let go = std::sync::Arc::new(tokio::sync::Barrier::new(TASKS));
        let handles: Vec<_> = (0..TASKS)
            .map(|t| {
                let node = if t % 2 == 0 { a.clone() } else { b.clone() };
                let go = go.clone();
                tokio::spawn(async move {
                    go.wait().await;
                    // Plain writes of other keys share the groups.
                    node.put(&format!("plain/{key}/{t}"), b"p".to_vec())
                        .await
                        .unwrap();
                    let won = node
                        .write_batch_if(
                            vec![(key.to_string(), expected)],
                            vec![
                                Op::Put {
                                    key: key.into(),
                                    value: format!("w{t}").into_bytes(),
                                },
                                Op::Put {
                                    key: format!("{key}.won/{t}"),
                                    value: b"1".to_vec(),
                                },
                            ],
                        )
                        .await
                        .unwrap();
                    (t, won)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for h in handles {
            let (t, won) = h.await.unwrap();
            if won {
                winners.push(t);
            }
        }
        eprintln!(
            "two nodes, key {key:?}: {} of 32 conditional writers won",
            winners.len()
        );
        assert_eq!(winners.len(), 1, "{winners:?}");
        let w = winners[0];
        assert_eq!(
            b.get(key).await.unwrap(),
            Some(format!("w{w}").into_bytes())
        );
        assert_eq!(
            a.keys_with_prefix(&format!("{key}.won/")).await.unwrap(),
            [format!("{key}.won/{w}")]
        );
        assert_eq!(
            a.keys_with_prefix(&format!("plain/{key}/"))
                .await
                .unwrap()
                .len(),
            32,
            "a plain write was lost beside the conditional ones"
        );
    }
    // The change log names only what was written: the losers' keys never.
    let mut logged = Vec::new();
    for node in [&a, &b] {
        if let Some(Changes::Keys { keys, .. }) = node.changes_since(start).await.unwrap() {
            logged.extend(keys);
        }
    }
    let won: Vec<&String> = logged.iter().filter(|k| k.contains(".won/")).collect();
    assert_eq!(won.len(), 2, "{won:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conditional_write_is_fenced_like_any_other() {
    use coffer_storage::Op;
    let Some((a, b, _drop)) = two_nodes("casfence").await else {
        return;
    };
    let t1 = a
        .claim_leadership(&claim("a", 60_000))
        .await
        .unwrap()
        .unwrap();
    let _ = b;
    let ops = || {
        vec![Op::Put {
            key: "bg".into(),
            value: b"v".to_vec(),
        }]
    };
    assert!(
        fence::fenced(t1, a.write_batch_if(vec![("bg".into(), None)], ops()))
            .await
            .unwrap()
    );
    // A term that is not the lease's writes nothing, checks or not.
    let err = fence::fenced(t1 + 1, a.write_batch_if(Vec::new(), ops()))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Fenced(_)), "{err}");
    a.release_leadership("a").await.unwrap();
}

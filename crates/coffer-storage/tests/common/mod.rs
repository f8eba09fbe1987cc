//! Conformance suite every [`Backend`] must pass.
//!
//! Each function takes a fresh, empty backend. `tests/conformance.rs` runs
//! the whole suite against every backend of the crate; a new backend only
//! needs one more `conformance!` line there.

#![allow(dead_code)]

pub mod pg;

use std::collections::BTreeMap;
use std::sync::Arc;

use coffer_storage::{children_of, Backend, Op, Version};

fn put(key: &str, value: &[u8]) -> Op {
    Op::Put {
        key: key.to_string(),
        value: value.to_vec(),
    }
}

fn del(key: &str) -> Op {
    Op::Delete {
        key: key.to_string(),
    }
}

async fn put_all<B: Backend>(b: &B, keys: &[&str]) {
    for k in keys {
        b.put(k, k.as_bytes().to_vec()).await.unwrap();
    }
}

/// get/put/delete round trips, overwrite, empty values, absent keys.
pub async fn get_put_delete<B: Backend>(b: B) {
    assert_eq!(b.get("missing").await.unwrap(), None);
    b.put("k", b"one".to_vec()).await.unwrap();
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some(&b"one"[..]));
    b.put("k", b"two".to_vec()).await.unwrap();
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some(&b"two"[..]));

    // An empty value is present, not absent.
    b.put("empty", Vec::new()).await.unwrap();
    assert_eq!(b.get("empty").await.unwrap(), Some(Vec::new()));

    // Binary values come back byte for byte.
    let bin: Vec<u8> = (0..=255u8).collect();
    b.put("bin", bin.clone()).await.unwrap();
    assert_eq!(b.get("bin").await.unwrap(), Some(bin));

    b.delete("k").await.unwrap();
    assert_eq!(b.get("k").await.unwrap(), None);
    // Deleting an absent key succeeds.
    b.delete("k").await.unwrap();
    b.delete("never-existed").await.unwrap();
    assert_eq!(b.get("empty").await.unwrap(), Some(Vec::new()));

    // Keys are exact: no prefix or case folding.
    b.put("Case", b"x".to_vec()).await.unwrap();
    assert_eq!(b.get("case").await.unwrap(), None);
    assert_eq!(b.get("Cas").await.unwrap(), None);
}

/// Vault-style listing: direct children, nested directories as `name/`.
pub async fn list_children<B: Backend>(b: B) {
    assert!(b.list("").await.unwrap().is_empty());
    put_all(
        &b,
        &[
            "a", "b/c", "b/d", "b/e/f", "b/e/g/h", "bb", "c/", "dir-1", "dir/x", "dir/y/z", "dir0",
        ],
    )
    .await;
    assert_eq!(
        b.list("").await.unwrap(),
        ["a", "b/", "bb", "c/", "dir-1", "dir/", "dir0"]
    );
    assert_eq!(b.list("b/").await.unwrap(), ["c", "d", "e/"]);
    assert_eq!(b.list("b/e/").await.unwrap(), ["f", "g/"]);
    assert_eq!(b.list("b/e/g/").await.unwrap(), ["h"]);
    assert_eq!(b.list("dir/").await.unwrap(), ["x", "y/"]);
    assert!(b.list("nope/").await.unwrap().is_empty());
    // A key equal to the prefix is not its own child.
    assert!(b.list("c/").await.unwrap().is_empty());
    b.put("b/", b"self".to_vec()).await.unwrap();
    assert_eq!(b.list("b/").await.unwrap(), ["c", "d", "e/"]);

    // A directory disappears with its last key.
    b.delete("b/e/f").await.unwrap();
    b.delete("b/e/g/h").await.unwrap();
    assert_eq!(b.list("b/").await.unwrap(), ["c", "d"]);
    // A name can be both a leaf and a directory.
    b.put("b/c/inner", b"x".to_vec()).await.unwrap();
    assert_eq!(b.list("b/").await.unwrap(), ["c", "c/", "d"]);
}

/// Paginated listing (`after`, `limit`): every page equals the full
/// listing filtered and truncated, and walking page by page meets every
/// child exactly once, across directories and past a large flat folder.
pub async fn list_pages<B: Backend>(b: B) {
    let mut keys: Vec<String> = [
        "a", "b/c", "b/d", "b/e/f", "bb", "c", "c/x", "dir/y/z", "dir0", "é", "é/x",
    ]
    .iter()
    .map(|k| format!("p/{k}"))
    .collect();
    keys.extend((0..2500).map(|i| format!("p/flat/{i:05}")));
    keys.push("q/outside".into());
    let ops = keys
        .iter()
        .map(|k| Op::Put {
            key: k.clone(),
            value: b"v".to_vec(),
        })
        .collect();
    b.write_batch(ops).await.unwrap();

    for prefix in ["p/", "p/flat/", ""] {
        let all = b.list(prefix).await.unwrap();
        assert_eq!(b.list_page(prefix, "", None).await.unwrap(), all);
        let mut afters: Vec<String> = all.clone();
        afters.extend(["", "0", "b", "c", "c/", "zzz", "d"].map(String::from));
        for after in &afters {
            for limit in [0, 1, 2, 3, 1500] {
                let want: Vec<String> = all
                    .iter()
                    .filter(|k| k.as_str() > after.as_str())
                    .take(limit)
                    .cloned()
                    .collect();
                let got = b.list_page(prefix, after, Some(limit)).await.unwrap();
                assert_eq!(got, want, "prefix {prefix:?} after {after:?} limit {limit}");
            }
        }
        for limit in [1, 7, 1001] {
            let mut walked: Vec<String> = Vec::new();
            loop {
                let after = walked.last().cloned().unwrap_or_default();
                let page = b.list_page(prefix, &after, Some(limit)).await.unwrap();
                assert!(page.len() <= limit);
                if page.is_empty() {
                    break;
                }
                walked.extend(page);
            }
            assert_eq!(walked, all, "prefix {prefix:?} walked {limit} at a time");
        }
    }
    assert_eq!(
        b.list_page("p/", "", Some(4)).await.unwrap(),
        ["a", "b/", "bb", "c"]
    );
    assert_eq!(
        b.list_page("p/", "c", Some(2)).await.unwrap(),
        ["c/", "dir/"]
    );
}

/// Full-key prefix scans, including the empty prefix.
pub async fn keys_with_prefix<B: Backend>(b: B) {
    assert!(b.keys_with_prefix("").await.unwrap().is_empty());
    put_all(&b, &["x/2", "x/1", "x/sub/3", "xy", "y", "x"]).await;
    assert_eq!(
        b.keys_with_prefix("").await.unwrap(),
        ["x", "x/1", "x/2", "x/sub/3", "xy", "y"]
    );
    assert_eq!(
        b.keys_with_prefix("x/").await.unwrap(),
        ["x/1", "x/2", "x/sub/3"]
    );
    assert_eq!(
        b.keys_with_prefix("x").await.unwrap(),
        ["x", "x/1", "x/2", "x/sub/3", "xy"]
    );
    assert_eq!(b.keys_with_prefix("x/sub/3").await.unwrap(), ["x/sub/3"]);
    assert!(b.keys_with_prefix("z").await.unwrap().is_empty());
    assert!(b.keys_with_prefix("x/sub/3/").await.unwrap().is_empty());
}

/// A batch applies in order and as a whole.
pub async fn write_batch<B: Backend>(b: B) {
    b.put("old", b"1".to_vec()).await.unwrap();
    b.write_batch(vec![
        put("p/a", b"a"),
        put("p/b", b"b"),
        del("old"),
        put("p/c", b"c1"),
        del("p/c"),
        del("p/d"),
        put("p/d", b"d"),
        put("p/a", b"a2"),
    ])
    .await
    .unwrap();
    assert_eq!(b.get("old").await.unwrap(), None);
    assert_eq!(b.get("p/a").await.unwrap().as_deref(), Some(&b"a2"[..]));
    assert_eq!(b.get("p/b").await.unwrap().as_deref(), Some(&b"b"[..]));
    assert_eq!(b.get("p/c").await.unwrap(), None);
    assert_eq!(b.get("p/d").await.unwrap().as_deref(), Some(&b"d"[..]));
    assert_eq!(
        b.keys_with_prefix("p/").await.unwrap(),
        ["p/a", "p/b", "p/d"]
    );
    // An empty batch is a no-op.
    b.write_batch(Vec::new()).await.unwrap();
    assert_eq!(b.keys_with_prefix("").await.unwrap().len(), 3);
}

/// Non-ASCII keys: stored exactly, sorted by UTF-8 bytes, listed by segment.
pub async fn unicode_keys<B: Backend>(b: B) {
    let keys = [
        "ключ/значение",
        "ключ/вложенный/x",
        "日本/語",
        "emoji/🔑",
        "é",
        "e\u{301}",
        "z",
    ];
    put_all(&b, &keys).await;
    for k in keys {
        assert_eq!(
            b.get(k).await.unwrap().as_deref(),
            Some(k.as_bytes()),
            "{k}"
        );
    }
    let mut sorted: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    sorted.sort();
    assert_eq!(b.keys_with_prefix("").await.unwrap(), sorted);
    assert_eq!(b.list("ключ/").await.unwrap(), ["вложенный/", "значение"]);
    assert_eq!(b.list("emoji/").await.unwrap(), ["🔑"]);
    // Composed and decomposed forms are distinct keys.
    assert_eq!(b.get("é").await.unwrap().as_deref(), Some("é".as_bytes()));
    assert_eq!(
        b.list("").await.unwrap(),
        ["emoji/", "e\u{301}", "z", "é", "ключ/", "日本/"]
    );
}

/// Values of 1 MiB and more round-trip intact.
pub async fn large_values<B: Backend>(b: B) {
    for (i, len) in [1 << 20, (1 << 20) + 7, 4 << 20].into_iter().enumerate() {
        let value: Vec<u8> = (0..len).map(|n| (n * 31 + i) as u8).collect();
        let key = format!("big/{i}");
        b.put(&key, value.clone()).await.unwrap();
        assert_eq!(b.get(&key).await.unwrap(), Some(value));
    }
    assert_eq!(b.list("big/").await.unwrap(), ["0", "1", "2"]);
}

/// Many tasks write at once; every write is visible afterwards.
pub async fn concurrent_writes<B: Backend>(b: B) {
    const TASKS: usize = 32;
    const PER_TASK: usize = 40;
    let b = Arc::new(b);
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let b = Arc::clone(&b);
        handles.push(tokio::spawn(async move {
            for i in 0..PER_TASK {
                let key = format!("c/{t:02}/{i:03}");
                if i % 5 == 0 {
                    b.write_batch(vec![
                        put(&key, key.as_bytes()),
                        put(&format!("{key}.b"), b"b"),
                    ])
                    .await
                    .unwrap();
                } else {
                    b.put(&key, key.clone().into_bytes()).await.unwrap();
                }
                // A task sees its own acknowledged write at once.
                assert_eq!(b.get(&key).await.unwrap().as_deref(), Some(key.as_bytes()));
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let keys = b.keys_with_prefix("c/").await.unwrap();
    assert_eq!(keys.len(), TASKS * PER_TASK + TASKS * PER_TASK / 5);
    for t in 0..TASKS {
        for i in 0..PER_TASK {
            let key = format!("c/{t:02}/{i:03}");
            assert_eq!(b.get(&key).await.unwrap().as_deref(), Some(key.as_bytes()));
        }
    }
    assert_eq!(b.list("c/").await.unwrap().len(), TASKS);
}

/// Readers running beside a writer never see half of a batch.
pub async fn batches_are_atomic_to_readers<B: Backend>(b: B) {
    const KEYS: usize = 10;
    const ROUNDS: usize = 60;
    let b = Arc::new(b);
    let writer = {
        let b = Arc::clone(&b);
        tokio::spawn(async move {
            for round in 0..ROUNDS {
                let keys = (0..KEYS).map(|i| format!("atom/{i}"));
                let ops = if round % 2 == 0 {
                    keys.map(|k| put(&k, b"v")).collect()
                } else {
                    keys.map(|k| del(&k)).collect()
                };
                b.write_batch(ops).await.unwrap();
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() || reads < 50 {
        let n = b.keys_with_prefix("atom/").await.unwrap().len();
        assert!(n == 0 || n == KEYS, "saw {n} of {KEYS} keys of one batch");
        reads += 1;
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    assert!(b.keys_with_prefix("atom/").await.unwrap().is_empty());
}

/// Drains an export: its entries, and whether they add up to its totals.
async fn drain(export: coffer_storage::Export) -> Vec<coffer_storage::Entry> {
    drain_after(export, Vec::new()).await
}

/// Drains the rest of an export whose first entries `out` holds.
async fn drain_after(
    mut export: coffer_storage::Export,
    mut out: Vec<coffer_storage::Entry>,
) -> Vec<coffer_storage::Entry> {
    while let Some(batch) = export.entries.recv().await {
        let batch = batch.unwrap();
        assert!(
            batch.len() <= coffer_storage::snapshot::BATCH_ENTRIES,
            "a batch of {} entries",
            batch.len()
        );
        out.extend(batch);
    }
    assert_eq!(out.len() as u64, export.count, "count announced vs sent");
    let bytes: u64 = out.iter().map(|e| e.size() as u64).sum();
    assert_eq!(bytes, export.bytes, "bytes announced vs sent");
    out
}

/// An export is one consistent read: writes made after it started (while
/// most of it is still unread: its channel holds two batches) are not in
/// it, and it comes in strictly ascending key order.
pub async fn export_is_one_consistent_read<B: Backend>(b: B) {
    const N: usize = 3000;
    let value = |v: &str, i: usize| format!("{v}-{i:05}-{}", "x".repeat(200)).into_bytes();
    for chunk in (0..N).collect::<Vec<_>>().chunks(500) {
        let ops = chunk
            .iter()
            .map(|i| put(&format!("snap/{i:05}"), &value("v1", *i)))
            .collect();
        b.write_batch(ops).await.unwrap();
    }
    b.put("é/ünïcode", b"u".to_vec()).await.unwrap();
    let mut export = b.export().await.unwrap();
    assert_eq!(export.count, N as u64 + 1);
    let first = export.entries.recv().await.unwrap().unwrap();
    // Everything changes while the export is under way.
    for chunk in (0..N).collect::<Vec<_>>().chunks(500) {
        let mut ops: Vec<Op> = chunk
            .iter()
            .map(|i| put(&format!("snap/{i:05}"), &value("v2", *i)))
            .collect();
        ops.push(put(&format!("new/{}", chunk[0]), b"n"));
        b.write_batch(ops).await.unwrap();
    }
    b.delete("é/ünïcode").await.unwrap();
    let all = drain_after(export, first).await;
    assert_eq!(all.len(), N + 1);
    for w in all.windows(2) {
        assert!(w[0].key < w[1].key, "{:?} before {:?}", w[0].key, w[1].key);
    }
    for (i, e) in all.iter().take(N).enumerate() {
        assert_eq!(e.key, format!("snap/{i:05}"));
        assert_eq!(
            e.value,
            value("v1", i),
            "{} changed under the export",
            e.key
        );
    }
    assert_eq!(all[N].key, "é/ünïcode");
    // A new export sees the new state.
    let again = drain(b.export().await.unwrap()).await;
    assert_eq!(again.len(), N + N / 500);
    assert!(again.iter().all(|e| !e.key.starts_with("é")));
}

/// The entries of a store, as a sorted map.
async fn contents<B: Backend>(b: &B) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for k in b.keys_with_prefix("").await.unwrap() {
        let v = b.get(&k).await.unwrap().unwrap();
        out.insert(k, v);
    }
    out
}

/// Sends `entries` in batches of `per` to an import, then commits if `commit`.
async fn import<B: Backend>(
    b: &B,
    entries: Vec<coffer_storage::Entry>,
    per: usize,
    commit: bool,
) -> coffer_storage::Result<u64> {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let feed = tokio::spawn(async move {
        for chunk in entries.chunks(per.max(1)) {
            if tx
                .send(coffer_storage::ImportItem::Batch(chunk.to_vec()))
                .await
                .is_err()
            {
                return;
            }
        }
        if commit {
            let _ = tx.send(coffer_storage::ImportItem::Commit).await;
        }
    });
    let outcome = b.import(rx).await;
    feed.await.unwrap();
    outcome
}

/// An import replaces everything, in one transaction: what it was sent is
/// all the store holds afterwards, and an export of it round-trips.
pub async fn import_replaces_the_whole_store<B: Backend>(b: B) {
    put_all(&b, &["old/a", "old/b", "keep-not"]).await;
    let entries: Vec<coffer_storage::Entry> = (0..700)
        .map(|i| coffer_storage::Entry {
            key: format!("new/{i:04}"),
            value: vec![(i % 251) as u8; i % 97],
        })
        .collect();
    assert_eq!(import(&b, entries.clone(), 100, true).await.unwrap(), 700);
    let now = contents(&b).await;
    assert_eq!(now.len(), 700);
    assert!(now.keys().all(|k| k.starts_with("new/")));
    assert_eq!(b.list("").await.unwrap(), ["new/"]);
    let exported = drain(b.export().await.unwrap()).await;
    assert_eq!(exported, entries);
    // The store goes on taking writes.
    b.put("after", b"1".to_vec()).await.unwrap();
    assert_eq!(b.get("after").await.unwrap().as_deref(), Some(&b"1"[..]));
    // An empty import empties it.
    assert_eq!(import(&b, Vec::new(), 1, true).await.unwrap(), 0);
    assert!(b.keys_with_prefix("").await.unwrap().is_empty());
}

/// An import that is not committed (its sender went away), or that fails
/// (a key sent twice), leaves the store exactly as it was.
pub async fn an_unfinished_import_changes_nothing<B: Backend>(b: B) {
    put_all(&b, &["x/1", "x/2", "y"]).await;
    let before = contents(&b).await;
    let entries: Vec<coffer_storage::Entry> = (0..300)
        .map(|i| coffer_storage::Entry {
            key: format!("z/{i:04}"),
            value: b"z".to_vec(),
        })
        .collect();
    assert!(import(&b, entries.clone(), 50, false).await.is_err());
    assert_eq!(contents(&b).await, before);
    let mut twice = entries;
    twice.push(twice[0].clone());
    assert!(import(&b, twice, 50, true).await.is_err());
    assert_eq!(contents(&b).await, before);
    b.put("x/3", b"3".to_vec()).await.unwrap();
    assert_eq!(b.keys_with_prefix("x/").await.unwrap().len(), 3);
}

/// The version of `key` as stored now (`None`: absent).
async fn version<B: Backend>(b: &B, key: &str) -> Option<Version> {
    b.get(key).await.unwrap().map(|v| Version::of(&v))
}

/// Conditional writes apply only while every expected key is as expected,
/// and then exactly like a plain batch; otherwise they write nothing.
pub async fn conditional_writes<B: Backend>(b: B) {
    // An absent key expected absent.
    assert!(b
        .write_batch_if(vec![("k".into(), None)], vec![put("k", b"1")])
        .await
        .unwrap());
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some(&b"1"[..]));
    // Now present: expecting it absent fails, and nothing of the batch lands.
    assert!(!b
        .write_batch_if(
            vec![("k".into(), None)],
            vec![put("k", b"2"), put("other", b"o"), del("k")]
        )
        .await
        .unwrap());
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(b.get("other").await.unwrap(), None);
    // Expecting the value read.
    let v1 = version(&b, "k").await;
    assert!(b
        .write_batch_if(vec![("k".into(), v1)], vec![put("k", b"2")])
        .await
        .unwrap());
    // The old version no longer holds, the new one does.
    assert!(!b
        .write_batch_if(vec![("k".into(), v1)], vec![put("k", b"3")])
        .await
        .unwrap());
    let v2 = version(&b, "k").await;
    assert_ne!(v1, v2);
    // Expecting a present key absent, or an absent key present, fails.
    assert!(!b
        .write_batch_if(vec![("nope".into(), v2)], vec![put("x", b"x")])
        .await
        .unwrap());
    assert_eq!(b.get("x").await.unwrap(), None);
    // Every key must hold: one stale expectation among good ones fails all.
    b.put("j", b"j".to_vec()).await.unwrap();
    let vj = version(&b, "j").await;
    assert!(!b
        .write_batch_if(
            vec![("j".into(), vj), ("k".into(), v1), ("free".into(), None)],
            vec![put("j", b"changed")]
        )
        .await
        .unwrap());
    assert_eq!(b.get("j").await.unwrap().as_deref(), Some(&b"j"[..]));
    assert!(b
        .write_batch_if(
            vec![("j".into(), vj), ("k".into(), v2), ("free".into(), None)],
            vec![del("j"), put("k", b"4"), put("free", b"f")]
        )
        .await
        .unwrap());
    assert_eq!(b.get("j").await.unwrap(), None);
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some(&b"4"[..]));
    // A deleted key is absent again.
    assert!(b
        .write_batch_if(vec![("j".into(), None)], vec![put("j", b"again")])
        .await
        .unwrap());
    // An empty value is present, not absent.
    b.put("empty", Vec::new()).await.unwrap();
    assert!(!b
        .write_batch_if(vec![("empty".into(), None)], vec![put("y", b"y")])
        .await
        .unwrap());
    assert!(b
        .write_batch_if(
            vec![("empty".into(), Some(Version::of(b"")))],
            vec![put("y", b"y")]
        )
        .await
        .unwrap());
    // Versions name bytes: the same bytes written again keep the version
    // (the barrier's fresh nonces make every real rewrite a new one).
    b.put("same", b"s".to_vec()).await.unwrap();
    let vs = version(&b, "same").await;
    b.put("same", b"s".to_vec()).await.unwrap();
    assert!(b
        .write_batch_if(vec![("same".into(), vs)], Vec::new())
        .await
        .unwrap());
    // No expectation: a plain batch. A pure check writes nothing.
    assert!(b
        .write_batch_if(Vec::new(), vec![put("p", b"p")])
        .await
        .unwrap());
    assert!(b.write_batch_if(Vec::new(), Vec::new()).await.unwrap());
    assert!(!b
        .write_batch_if(vec![("p".into(), None)], Vec::new())
        .await
        .unwrap());
    // Large values are compared whole.
    let big: Vec<u8> = (0..(2 << 20)).map(|n: usize| (n * 7) as u8).collect();
    b.put("big", big.clone()).await.unwrap();
    let mut other = big.clone();
    other[1 << 20] ^= 1;
    assert!(!b
        .write_batch_if(
            vec![("big".into(), Some(Version::of(&other)))],
            vec![del("big")]
        )
        .await
        .unwrap());
    assert!(b
        .write_batch_if(
            vec![("big".into(), Some(Version::of(&big)))],
            vec![del("big")]
        )
        .await
        .unwrap());
    assert_eq!(b.get("big").await.unwrap(), None);
}

/// 32 tasks read the same state of a key and race to change it with a
/// conditional write: exactly one wins, and only its batch lands. Then the
/// same for a key all of them expect absent.
pub async fn conditional_race<B: Backend>(b: B) {
    const TASKS: usize = 32;
    let b = Arc::new(b);
    b.put("race/k", b"start".to_vec()).await.unwrap();
    for (key, expected) in [("race/k", version(&*b, "race/k").await), ("race/new", None)] {
        let start = Arc::new(tokio::sync::Barrier::new(TASKS));
        let handles: Vec<_> = (0..TASKS)
            .map(|t| {
                let (b, start) = (Arc::clone(&b), Arc::clone(&start));
                tokio::spawn(async move {
                    start.wait().await;
                    let mine = format!("writer-{t}");
                    let won = b
                        .write_batch_if(
                            vec![(key.to_string(), expected)],
                            vec![
                                put(key, mine.as_bytes()),
                                put(&format!("{key}.won/{t}"), b"1"),
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
        assert_eq!(winners.len(), 1, "{key}: winners {winners:?}");
        let w = winners[0];
        assert_eq!(
            b.get(key).await.unwrap(),
            Some(format!("writer-{w}").into_bytes())
        );
        assert_eq!(
            b.keys_with_prefix(&format!("{key}.won/")).await.unwrap(),
            [format!("{key}.won/{w}")]
        );
    }
}

/// Applies `ops` (as batches) to the backend and to a model map, then checks
/// every read operation against the model.
pub async fn matches_model<B: Backend>(b: &B, batches: Vec<Vec<Op>>) {
    let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for batch in batches {
        for op in &batch {
            match op {
                Op::Put { key, value } => {
                    model.insert(key.clone(), value.clone());
                }
                Op::Delete { key } => {
                    model.remove(key);
                }
            }
        }
        b.write_batch(batch).await.unwrap();
    }
    let all: Vec<String> = model.keys().cloned().collect();
    assert_eq!(b.keys_with_prefix("").await.unwrap(), all);
    // Every prefix of every key, plus a few that match nothing.
    let mut prefixes: Vec<String> = vec![String::new(), "zz/".into(), "/".into()];
    for k in &all {
        for (i, _) in k.char_indices() {
            prefixes.push(k[..i].to_string());
        }
        prefixes.push(k.clone());
    }
    prefixes.sort();
    prefixes.dedup();
    for p in &prefixes {
        let expect: Vec<String> = all
            .iter()
            .filter(|k| k.starts_with(p.as_str()))
            .cloned()
            .collect();
        assert_eq!(
            b.keys_with_prefix(p).await.unwrap(),
            expect,
            "keys_with_prefix({p:?})"
        );
        let children = children_of(p, all.iter().map(String::as_str));
        assert_eq!(b.list(p).await.unwrap(), children, "list({p:?})");
        assert_eq!(b.get(p).await.unwrap(), model.get(p).cloned(), "get({p:?})");
    }
}

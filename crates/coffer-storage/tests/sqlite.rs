//! SQLite-specific behaviour: files, reopening, shutdown and crash durability.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coffer_storage::{Backend, SqliteBackend};

#[tokio::test]
async fn files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coffer.db");
    let b = SqliteBackend::open(&path).unwrap();
    b.put("k", b"v".to_vec()).await.unwrap();
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{:?} has mode {mode:o}", entry.file_name());
        seen.push(entry.file_name().into_string().unwrap());
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "coffer.db",
            "coffer.db-shm",
            "coffer.db-wal",
            "coffer.db.lock"
        ]
    );
}

#[tokio::test]
async fn a_second_open_of_the_same_file_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coffer.db");
    let first = SqliteBackend::open(&path).unwrap();
    first.put("k", b"v".to_vec()).await.unwrap();
    let err = SqliteBackend::open(&path).unwrap_err().to_string();
    assert!(
        err.contains("is in use by another Coffer process")
            && err.contains(&format!("(pid {})", std::process::id())),
        "{err}"
    );
    drop(first);
    let again = SqliteBackend::open(&path).unwrap();
    assert_eq!(again.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn missing_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent").join("coffer.db");
    let err = SqliteBackend::open(&path).unwrap_err().to_string();
    assert!(err.contains("does not exist"), "{err}");
    assert!(
        !path.parent().unwrap().exists(),
        "must not create directories"
    );
}

#[test]
fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coffer.db");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let err = SqliteBackend::open(&path).unwrap_err().to_string();
    assert!(err.contains("not a database"), "{err}");
}

#[tokio::test]
async fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coffer.db");
    {
        let b = SqliteBackend::open(&path).unwrap();
        b.put("a/b", b"1".to_vec()).await.unwrap();
        b.put("gone", b"2".to_vec()).await.unwrap();
        b.delete("gone").await.unwrap();
    }
    let b = SqliteBackend::open(&path).unwrap();
    assert_eq!(b.get("a/b").await.unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(b.get("gone").await.unwrap(), None);
    assert_eq!(b.list("").await.unwrap(), ["a/"]);
}

/// Writes whose callers stopped waiting are still queued; dropping the
/// backend must finish them before it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_finishes_queued_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coffer.db");
    let b = SqliteBackend::open(&path).unwrap();
    // Hold the write lock from another connection so the queue backs up.
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    for i in 0..500 {
        let key = format!("q/{i:03}");
        // A zero timeout polls the write once (queueing it), then abandons it.
        let _ = tokio::time::timeout(Duration::ZERO, b.put(&key, vec![7; 64])).await;
    }
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        blocker.execute_batch("ROLLBACK").unwrap();
    });
    drop(b);
    release.join().unwrap();
    // Count straight away, through a plain connection.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM kv WHERE key LIKE 'q/%'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(n, 500);
}

const CHILD_ENV: &str = "COFFER_STORAGE_DURABILITY_DB";
const CHILD_ROUND_ENV: &str = "COFFER_STORAGE_DURABILITY_ROUND";

fn value_for(key: &str) -> Vec<u8> {
    format!("value of {key}").into_bytes()
}

/// Child side of `acknowledged_writes_survive_kill_9`: writes from 8 tasks in
/// a loop and prints `ACK <key>` after each acknowledged write. Does nothing
/// unless started by that test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of acknowledged_writes_survive_kill_9"]
async fn durability_child() {
    let (Ok(path), Ok(round)) = (std::env::var(CHILD_ENV), std::env::var(CHILD_ROUND_ENV)) else {
        return;
    };
    let b = Arc::new(SqliteBackend::open(path).unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let b = Arc::clone(&b);
            let round = round.clone();
            tokio::spawn(async move {
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let key = format!("r{round}/t{t}/{i}");
                    b.put(&key, value_for(&key)).await.unwrap();
                    println!("ACK {key}");
                    i += 1;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Kills a writing child process with SIGKILL, several times over the same
/// file, and checks that every write it acknowledged is there afterwards.
#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coffer.db");
    let mut acked: BTreeMap<String, usize> = BTreeMap::new();
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["durability_child", "--exact", "--ignored", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(CHILD_ENV, &path)
            .env(CHILD_ROUND_ENV, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut count = 0;
        // Kill at a point that varies per round, in the middle of the loop.
        let kill_after = 300 + round * 170;
        let mut killed = false;
        while let Some(Ok(line)) = lines.next() {
            if let Some(key) = line.strip_prefix("ACK ") {
                acked.insert(key.to_string(), round);
                count += 1;
                if count == kill_after {
                    child.kill().unwrap();
                    killed = true;
                }
            }
        }
        // Lines already in the pipe when the child died were read above.
        let status = child.wait().unwrap();
        assert!(
            killed,
            "child stopped after {count} writes without being killed"
        );
        assert_eq!(status.signal(), Some(9), "child was not killed: {status:?}");
        assert!(count >= kill_after);

        let b = SqliteBackend::open(&path).unwrap();
        let stored = b.keys_with_prefix("").await.unwrap();
        for key in acked.keys() {
            assert_eq!(
                b.get(key).await.unwrap(),
                Some(value_for(key)),
                "acknowledged key {key} lost after kill -9 in round {round}"
            );
        }
        assert!(stored.len() >= acked.len());
    }
}

//! The writer thread: group commit over the only read-write connection.
//!
//! A conditional batch ([`crate::Backend::write_batch_if`]) checks its
//! expectations inside its own savepoint, after every earlier batch of the
//! group and before its own operations. This thread is the only writer of
//! the file (the process holds its lock), so nothing can change a key
//! between that check and the commit.

use std::sync::mpsc;
use std::thread::JoinHandle;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use super::db_error;
use crate::snapshot::ImportItem;
use crate::{is_as_expected, Expect, Op, Result, StorageError};

/// Most caller batches folded into one transaction.
const MAX_GROUP: usize = 1024;
/// Stop adding batches to a group once it holds this many value bytes.
const MAX_GROUP_BYTES: usize = 32 * 1024 * 1024;

const PUT_SQL: &str =
    "INSERT INTO kv (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value";
const DELETE_SQL: &str = "DELETE FROM kv WHERE key = ?1";
const GET_SQL: &str = "SELECT value FROM kv WHERE key = ?1";

/// One caller's batch: what it expects (empty: nothing), what it writes.
pub(super) struct Batch {
    pub expect: Vec<Expect>,
    pub ops: Vec<Op>,
}

/// One caller's batch and where to send its outcome (whether it applied).
struct Request {
    batch: Batch,
    done: oneshot::Sender<Result<bool>>,
}

/// A whole-store replacement (snapshot restore) and where to send how many
/// entries the store holds after it.
struct Replace {
    items: tokio::sync::mpsc::Receiver<ImportItem>,
    done: oneshot::Sender<Result<u64>>,
}

/// What the writer thread is asked to do.
enum Job {
    Write(Request),
    Replace(Replace),
}

/// Handle to the writer thread. Dropping it lets the thread finish every
/// queued batch, then waits for it.
pub(super) struct Writer {
    queue: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread, which takes ownership of `conn`.
    pub(super) fn spawn(conn: Connection) -> Result<Self> {
        let (queue, incoming) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("coffer-sqlite-writer".into())
            .spawn(move || run(conn, &incoming))
            .map_err(|e| {
                StorageError::Backend(format!("sqlite: cannot start writer thread: {e}"))
            })?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Queues `batch` and waits until it is committed (`true`), found a key
    /// not as expected (`false`), or has failed.
    pub(super) async fn submit(&self, batch: Batch) -> Result<bool> {
        let (done, outcome) = oneshot::channel();
        self.queue
            .as_ref()
            .ok_or(StorageError::Unavailable)?
            .send(Job::Write(Request { batch, done }))
            .map_err(|_| StorageError::Unavailable)?;
        outcome.await.map_err(|_| StorageError::Unavailable)?
    }

    /// Queues a replacement of the whole store by what `items` sends and
    /// waits for its outcome. The writer thread runs it alone, in one
    /// `BEGIN IMMEDIATE` transaction: batches queued behind it wait.
    pub(super) async fn replace(
        &self,
        items: tokio::sync::mpsc::Receiver<ImportItem>,
    ) -> Result<u64> {
        let (done, outcome) = oneshot::channel();
        self.queue
            .as_ref()
            .ok_or(StorageError::Unavailable)?
            .send(Job::Replace(Replace { items, done }))
            .map_err(|_| StorageError::Unavailable)?;
        outcome.await.map_err(|_| StorageError::Unavailable)?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue ends the thread's loop once it has drained it.
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("sqlite writer thread panicked");
            }
        }
    }
}

/// The thread's loop: take everything queued, commit it as one group,
/// answer. A replacement ends the group before it and runs alone.
fn run(mut conn: Connection, incoming: &mpsc::Receiver<Job>) {
    let mut next: Option<Job> = None;
    loop {
        let first = match next.take() {
            Some(job) => job,
            None => match incoming.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        let first = match first {
            Job::Write(request) => request,
            Job::Replace(replace) => {
                let outcome = replace_all(&mut conn, replace.items);
                let _ = replace.done.send(outcome);
                continue;
            }
        };
        let mut bytes = value_bytes(&first.batch.ops);
        let mut group = vec![first];
        while group.len() < MAX_GROUP && bytes < MAX_GROUP_BYTES {
            match incoming.try_recv() {
                Ok(Job::Write(request)) => {
                    bytes += value_bytes(&request.batch.ops);
                    group.push(request);
                }
                Ok(replace) => {
                    next = Some(replace);
                    break;
                }
                Err(_) => break,
            }
        }
        let (batches, waiters): (Vec<_>, Vec<_>) =
            group.into_iter().map(|r| (r.batch, r.done)).unzip();
        let outcomes = commit_group(&mut conn, &batches);
        for (done, outcome) in waiters.into_iter().zip(outcomes) {
            // The caller may have gone away; its write stands regardless.
            let _ = done.send(outcome);
        }
    }
}

fn value_bytes(ops: &[Op]) -> usize {
    ops.iter()
        .map(|op| match op {
            Op::Put { key, value } => key.len() + value.len(),
            Op::Delete { key } => key.len(),
        })
        .sum()
}

/// Replaces every entry with what `items` sends, in one transaction that
/// commits only on [`ImportItem::Commit`]: a channel closed before it, or
/// any failure, rolls back and leaves the store as it was.
fn replace_all(
    conn: &mut Connection,
    mut items: tokio::sync::mpsc::Receiver<ImportItem>,
) -> Result<u64> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| db_error("restore", e))?;
    tx.execute("DELETE FROM kv", [])
        .map_err(|e| db_error("restore", e))?;
    let mut count: u64 = 0;
    {
        let mut insert = tx
            .prepare_cached("INSERT INTO kv (key, value) VALUES (?1, ?2)")
            .map_err(|e| db_error("restore", e))?;
        loop {
            match items.blocking_recv() {
                Some(ImportItem::Batch(entries)) => {
                    for e in entries {
                        insert
                            .execute(rusqlite::params![e.key, e.value])
                            .map_err(|err| db_error(&format!("restore {:?}", e.key), err))?;
                        count += 1;
                    }
                }
                Some(ImportItem::Commit) => break,
                // Dropping `tx` unfinished rolls the replacement back.
                None => {
                    return Err(StorageError::Backend(
                        "snapshot import ended before its commit; nothing was changed".into(),
                    ))
                }
            }
        }
    }
    tx.commit().map_err(|e| db_error("restore commit", e))?;
    Ok(count)
}

/// Applies every batch in one transaction, each inside its own savepoint so
/// a failing batch (or one whose expectations do not hold) is rolled back
/// alone, and commits once. Returns one outcome per batch: whether it
/// applied; if the commit itself fails, every batch fails.
pub(super) fn commit_group(conn: &mut Connection, batches: &[Batch]) -> Vec<Result<bool>> {
    let attempt = (|| {
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut outcomes = Vec::with_capacity(batches.len());
        for batch in batches {
            match apply_batch(&mut tx, batch) {
                Ok(applied) => outcomes.push(Ok(applied)),
                // Some errors (I/O, disk full, RAISE(ROLLBACK)) make SQLite
                // roll back the whole transaction; then nothing in this
                // group stands, and later batches must not run in autocommit.
                Err(e) if tx.is_autocommit() => return Err(e),
                Err(e) => outcomes.push(Err(db_error("write", e))),
            }
        }
        tx.commit()?;
        Ok(outcomes)
    })();
    attempt.unwrap_or_else(|e: rusqlite::Error| {
        let message = db_error("commit", e).to_string();
        batches
            .iter()
            .map(|_| Err(StorageError::Backend(message.clone())))
            .collect()
    })
}

/// Applies one caller's batch all-or-nothing inside `tx`, if its
/// expectations hold (then `true`).
fn apply_batch(tx: &mut Transaction<'_>, batch: &Batch) -> rusqlite::Result<bool> {
    let savepoint = tx.savepoint()?;
    {
        let mut get = savepoint.prepare_cached(GET_SQL)?;
        for (key, want) in &batch.expect {
            let stored: Option<Vec<u8>> = get.query_row([key], |row| row.get(0)).optional()?;
            if !is_as_expected(stored.as_deref(), want.as_ref()) {
                // Dropping the savepoint uncommitted rolls it back.
                return Ok(false);
            }
        }
        let mut put = savepoint.prepare_cached(PUT_SQL)?;
        let mut delete = savepoint.prepare_cached(DELETE_SQL)?;
        for op in &batch.ops {
            match op {
                Op::Put { key, value } => put.execute(rusqlite::params![key, value])?,
                Op::Delete { key } => delete.execute([key])?,
            };
        }
    }
    // Dropping an uncommitted savepoint (on `?` above) rolls it back.
    savepoint.commit()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::connection::open_writer;

    fn put(key: &str, value: &[u8]) -> Op {
        Op::Put {
            key: key.into(),
            value: value.to_vec(),
        }
    }

    fn plain(ops: Vec<Op>) -> Batch {
        Batch {
            expect: Vec::new(),
            ops,
        }
    }

    fn stored(conn: &Connection, key: &str) -> Option<Vec<u8>> {
        conn.query_row("SELECT value FROM kv WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .unwrap()
    }

    #[test]
    fn failing_batch_is_rolled_back_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open_writer(&dir.path().join("w.db")).unwrap();
        // Any insert of the key "poison" fails, like a constraint would.
        conn.execute_batch(
            "CREATE TEMP TRIGGER poison BEFORE INSERT ON main.kv WHEN NEW.key = 'poison'
             BEGIN SELECT RAISE(ABORT, 'poisoned key'); END;",
        )
        .unwrap();
        let marker = ["value", "marker", "7f3a"].join("-");
        let outcomes = commit_group(
            &mut conn,
            &[
                plain(vec![put("a", b"1")]),
                plain(vec![
                    put("b", marker.as_bytes()),
                    put("poison", marker.as_bytes()),
                ]),
                plain(vec![put("c", b"3"), Op::Delete { key: "a".into() }]),
            ],
        );
        assert!(matches!(outcomes[0], Ok(true)));
        let err = outcomes[1].as_ref().unwrap_err().to_string();
        assert!(err.contains("poisoned key"), "{err}");
        assert!(!err.contains(&marker), "error leaks a value: {err}");
        assert!(matches!(outcomes[2], Ok(true)));
        assert_eq!(stored(&conn, "a"), None);
        assert_eq!(stored(&conn, "b"), None, "half of the failed batch landed");
        assert_eq!(stored(&conn, "c").as_deref(), Some(&b"3"[..]));
    }

    #[test]
    fn transaction_rolled_back_by_sqlite_fails_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open_writer(&dir.path().join("w.db")).unwrap();
        conn.execute_batch(
            "CREATE TEMP TRIGGER doom BEFORE INSERT ON main.kv WHEN NEW.key = 'doom'
             BEGIN SELECT RAISE(ROLLBACK, 'whole transaction rolled back'); END;",
        )
        .unwrap();
        let outcomes = commit_group(
            &mut conn,
            &[
                plain(vec![put("a", b"1")]),
                plain(vec![put("doom", b"2")]),
                plain(vec![put("c", b"3")]),
            ],
        );
        assert_eq!(outcomes.len(), 3);
        assert!(outcomes.iter().all(Result::is_err), "{outcomes:?}");
        assert_eq!(stored(&conn, "a"), None);
        assert_eq!(stored(&conn, "c"), None, "a later batch ran in autocommit");
        assert!(conn.is_autocommit());
        // The connection is usable afterwards.
        assert!(commit_group(&mut conn, &[plain(vec![put("d", b"4")])])[0].is_ok());
        assert_eq!(stored(&conn, "d").as_deref(), Some(&b"4"[..]));
    }

    #[test]
    fn failed_commit_fails_every_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let mut conn = open_writer(&path).unwrap();
        conn.busy_timeout(std::time::Duration::from_millis(50))
            .unwrap();
        // Another connection holds the write lock, so BEGIN IMMEDIATE times out.
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let outcomes = commit_group(
            &mut conn,
            &[plain(vec![put("a", b"1")]), plain(vec![put("b", b"2")])],
        );
        assert_eq!(outcomes.len(), 2);
        assert!(outcomes.iter().all(Result::is_err));
        other.execute_batch("ROLLBACK").unwrap();
        assert_eq!(stored(&conn, "a"), None);
    }

    #[test]
    fn a_batch_whose_expectation_fails_is_skipped_alone_and_sees_earlier_batches() {
        use crate::Version;
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open_writer(&dir.path().join("w.db")).unwrap();
        let v1 = Version::of(b"1");
        let outcomes = commit_group(
            &mut conn,
            &[
                plain(vec![put("k", b"1")]),
                // Sees the first batch's write: applies.
                Batch {
                    expect: vec![("k".into(), Some(v1))],
                    ops: vec![put("k", b"2"), put("x", b"x")],
                },
                // Expected the state before the second batch: skipped.
                Batch {
                    expect: vec![("k".into(), Some(v1))],
                    ops: vec![put("k", b"3"), put("y", b"y")],
                },
                Batch {
                    expect: vec![
                        ("absent".into(), None),
                        ("k".into(), Some(Version::of(b"2"))),
                    ],
                    ops: vec![put("z", b"z")],
                },
            ],
        );
        let applied: Vec<bool> = outcomes.into_iter().map(Result::unwrap).collect();
        assert_eq!(applied, [true, true, false, true]);
        assert_eq!(stored(&conn, "k").as_deref(), Some(&b"2"[..]));
        assert_eq!(stored(&conn, "y"), None, "part of a skipped batch landed");
        assert_eq!(stored(&conn, "z").as_deref(), Some(&b"z"[..]));
    }
}

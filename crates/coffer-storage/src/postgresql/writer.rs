//! The writer task: group commit over one connection.
//!
//! It takes everything queued (up to a bound) and commits it as one
//! transaction, acknowledging each caller only after `COMMIT` returned:
//!
//! 1. `UPDATE T_meta SET value = value + 1 WHERE name = 'seq'` takes the
//!    next change sequence number and holds that row's lock until commit, so
//!    groups of every node commit in sequence order (a reader that sees
//!    `seq = n` knows every group up to `n` is committed);
//! 2. each fenced batch first touches the leader row with its term
//!    (`UPDATE ... WHERE term = $1 AND expires_at > clock_timestamp()`; a
//!    term names one holder's unbroken tenure, since every change of holder
//!    or lapse increments it): no row, no write, and the row lock keeps a
//!    takeover from committing in between;
//! 3. each conditional batch's checks, then the batches' operations;
//! 4. one `T_log` row with the group's keys, which other nodes read to
//!    invalidate their caches.
//!
//! Right after the sequence number, the group reads the store's `epoch`
//! (`T_meta`), which a snapshot restore increments in its own transaction
//! under the same row lock: a group whose node still believes in an older
//! epoch is rolled back whole ([`StorageError::Replaced`]), so a node that
//! has not yet seen another node's restore never writes into the restored
//! store with its stale keyring and caches.
//!
//! The fast path sends all of it as one pipeline. If any statement fails, a
//! fence does not hold or a check fails, the transaction is rolled back and
//! the group is redone batch by batch, each in a savepoint, so one caller's
//! failure (or unmet expectation) is its own.
//!
//! **Conditional batches** ([`crate::Backend::write_batch_if`]). A check is
//! `SELECT sha256(value) FROM T WHERE key = $1 FOR UPDATE`, compared with
//! the expected [`crate::Version`] (no row: absent). It runs after the
//! group's `seq` update, whose row lock every write transaction of every
//! node takes first and holds until it commits: no other write group can
//! commit between a check and its commit, so a key checked absent stays
//! absent and a key checked present stays as read (`FOR UPDATE` also
//! locks a present row against any writer outside the writer tasks). The
//! check compares the stored bytes: the barrier seals every write with a
//! fresh nonce, so any write since the read, even of the same plaintext,
//! fails it. Checks of a batch are sent after every earlier batch's
//! operations, so they see them. A group without conditional batches sends
//! exactly what it sent before; a conditional one adds one pipelined
//! statement per expected key and no round trip, unless a check fails.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use futures_util::future::join_all;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{Client, Statement, Transaction};

use super::connect::{db_error, ConnectSpec};
use super::schema::Tables;
use crate::{Expect, Op, Result, StorageError};

/// Most caller batches folded into one transaction.
const MAX_GROUP: usize = 512;
/// Stop adding batches to a group once it holds this many value bytes.
const MAX_GROUP_BYTES: usize = 32 * 1024 * 1024;
/// Log rows older than this are pruned (a node further behind drops all
/// of its caches instead of catching up).
const LOG_RETENTION_SQL: &str = "interval '1 hour'";
/// Prune the log every this many groups.
const PRUNE_EVERY: u64 = 4096;

/// One caller's batch, what it expects (empty: nothing), its fence and
/// where to send its outcome (whether it applied).
pub(super) struct Request {
    pub ops: Vec<Op>,
    pub expect: Vec<Expect>,
    pub fence: Option<u64>,
    pub done: oneshot::Sender<Result<bool>>,
}

/// Handle to the writer task. Dropping it lets the task finish what is
/// queued and stop.
pub(super) struct Writer {
    queue: mpsc::UnboundedSender<Request>,
}

impl Writer {
    /// Starts the writer task on the current runtime.
    /// It writes only while the store's epoch is `epoch` (the node's view
    /// of the store).
    pub(super) fn spawn(
        spec: Arc<ConnectSpec>,
        tables: Tables,
        node: String,
        epoch: Arc<AtomicI64>,
    ) -> Self {
        let (queue, incoming) = mpsc::unbounded_channel();
        tokio::spawn(run(spec, tables, node, epoch, incoming));
        Writer { queue }
    }

    /// Queues `ops` and waits until they are committed (`true`), found a
    /// key of `expect` not as expected (`false`), or have failed.
    pub(super) async fn submit(
        &self,
        ops: Vec<Op>,
        expect: Vec<Expect>,
        fence: Option<u64>,
    ) -> Result<bool> {
        let (done, outcome) = oneshot::channel();
        self.queue
            .send(Request {
                ops,
                expect,
                fence,
                done,
            })
            .map_err(|_| StorageError::Unavailable)?;
        outcome.await.map_err(|_| StorageError::Unavailable)?
    }
}

/// The writer's prepared statements.
struct Stmts {
    bump: Statement,
    epoch: Statement,
    put: Statement,
    delete: Statement,
    fence: Statement,
    log: Statement,
    check: Statement,
}

/// The writer's connection and statements.
struct WriteConn {
    client: Client,
    st: Stmts,
}

impl WriteConn {
    async fn open(spec: &ConnectSpec, t: &Tables) -> Result<WriteConn> {
        let client = spec.connect().await?;
        let prep = |sql: String| {
            let client = &client;
            async move {
                client
                    .prepare(&sql)
                    .await
                    .map_err(|e| db_error("prepare", &e))
            }
        };
        let st = Stmts {
            bump: prep(format!(
                "UPDATE {} SET value = value + 1 WHERE name = 'seq' RETURNING value",
                t.meta
            ))
            .await?,
            epoch: prep(format!("SELECT value FROM {} WHERE name = 'epoch'", t.meta)).await?,
            put: prep(format!(
                "INSERT INTO {} (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                t.kv
            ))
            .await?,
            delete: prep(format!("DELETE FROM {} WHERE key = $1", t.kv)).await?,
            fence: prep(format!(
                "UPDATE {} SET term = term WHERE id = 1 AND term = $1 \
                 AND expires_at > clock_timestamp()",
                t.leader
            ))
            .await?,
            log: prep(format!(
                "INSERT INTO {} (seq, node, keys) VALUES ($1, $2, $3)",
                t.log
            ))
            .await?,
            check: prep(format!(
                "SELECT sha256(value) FROM {} WHERE key = $1 FOR UPDATE",
                t.kv
            ))
            .await?,
        };
        Ok(WriteConn { client, st })
    }
}

async fn run(
    spec: Arc<ConnectSpec>,
    tables: Tables,
    node: String,
    epoch: Arc<AtomicI64>,
    mut incoming: mpsc::UnboundedReceiver<Request>,
) {
    let mut conn: Option<WriteConn> = None;
    let mut groups: u64 = 0;
    while let Some(first) = incoming.recv().await {
        let mut bytes = value_bytes(&first.ops);
        let mut group = vec![first];
        while group.len() < MAX_GROUP && bytes < MAX_GROUP_BYTES {
            match incoming.try_recv() {
                Ok(r) => {
                    bytes += value_bytes(&r.ops);
                    group.push(r);
                }
                Err(_) => break,
            }
        }
        if conn.as_ref().is_none_or(|c| c.client.is_closed()) {
            conn = WriteConn::open(&spec, &tables).await.ok();
        }
        let outcomes = match conn.as_mut() {
            None => group
                .iter()
                .map(|_| Err(StorageError::Unavailable))
                .collect(),
            Some(c) => match commit_group(c, &node, epoch.load(Ordering::SeqCst), &group).await {
                Ok(outcomes) => outcomes,
                Err(err) => group.iter().map(|_| Err(clone_err(&err))).collect(),
            },
        };
        for (request, outcome) in group.into_iter().zip(outcomes) {
            // The caller may have gone away; its write stands regardless.
            let _ = request.done.send(outcome);
        }
        groups += 1;
        if groups.is_multiple_of(PRUNE_EVERY) {
            if let Some(c) = conn.as_ref() {
                let sql = format!(
                    "DELETE FROM {} WHERE at < clock_timestamp() - {LOG_RETENTION_SQL}",
                    tables.log
                );
                if let Err(e) = c.client.execute(&sql, &[]).await {
                    tracing::warn!(error = %db_error("log prune", &e), "postgresql storage");
                }
            }
        }
    }
}

fn clone_err(e: &StorageError) -> StorageError {
    match e {
        StorageError::Unavailable => StorageError::Unavailable,
        StorageError::Fenced(t) => StorageError::Fenced(*t),
        StorageError::Replaced => StorageError::Replaced,
        other => StorageError::Backend(other.to_string()),
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

fn keys_of(ops: &[Op]) -> impl Iterator<Item = String> + '_ {
    ops.iter().map(|op| match op {
        Op::Put { key, .. } | Op::Delete { key } => key.clone(),
    })
}

/// Sends one batch's operations as a pipeline; the first error, if any.
async fn apply_ops(
    tx: &Transaction<'_>,
    st: &Stmts,
    ops: &[Op],
) -> std::result::Result<(), tokio_postgres::Error> {
    let results = join_all(ops.iter().map(|op| async move {
        match op {
            Op::Put { key, value } => tx.execute(&st.put, &[key, value]).await,
            Op::Delete { key } => tx.execute(&st.delete, &[key]).await,
        }
    }))
    .await;
    results.into_iter().try_for_each(|r| r.map(|_| ()))
}

/// Whether the key `key` is in the state `want` (see the module docs).
async fn check(
    tx: &Transaction<'_>,
    st: &Stmts,
    key: &str,
    want: Option<&crate::Version>,
) -> std::result::Result<bool, tokio_postgres::Error> {
    let digest: Option<Vec<u8>> = match tx.query_opt(&st.check, &[&key]).await? {
        Some(row) => Some(row.try_get(0)?),
        None => None,
    };
    Ok(match (digest, want) {
        (None, None) => true,
        (Some(d), Some(w)) => d.as_slice() == w.as_bytes().as_slice(),
        _ => false,
    })
}

/// Sends one batch's checks, then its operations, as a pipeline: whether
/// every check held (the operations ran either way, and must be rolled
/// back when one did not), or the first error.
async fn apply_batch(
    tx: &Transaction<'_>,
    st: &Stmts,
    r: &Request,
) -> std::result::Result<bool, tokio_postgres::Error> {
    // Polled in order: every check is sent before the first operation.
    let checks = join_all(
        r.expect
            .iter()
            .map(|(key, want)| check(tx, st, key, want.as_ref())),
    );
    let ops = apply_ops(tx, st, &r.ops);
    let (checks, ops) = futures_util::join!(checks, ops);
    let mut held = true;
    for c in checks {
        held &= c?;
    }
    ops?;
    Ok(held)
}

/// Commits the group: the pipelined fast path, or batch by batch; none of
/// it when the store's epoch is no longer `epoch`.
async fn commit_group(
    c: &mut WriteConn,
    node: &str,
    epoch: i64,
    group: &[Request],
) -> Result<Vec<Result<bool>>> {
    if let Some(outcomes) = fast_path(c, node, epoch, group).await? {
        return Ok(outcomes);
    }
    slow_path(c, node, epoch, group).await
}

/// The epoch a row of `T_meta` holds (none: the store was never replaced).
fn epoch_of(row: Option<&tokio_postgres::Row>) -> i64 {
    row.map_or(0, |r| r.get(0))
}

/// Whether an error means the connection (not a statement) failed.
fn connection_failed(e: &tokio_postgres::Error) -> bool {
    e.is_closed() || e.as_db_error().is_none()
}

/// Everything in one pipeline. `Ok(None)` (rolled back) when a statement
/// failed, a fence or a check did not hold; an `Err` only when the
/// connection failed.
async fn fast_path(
    c: &mut WriteConn,
    node: &str,
    epoch: i64,
    group: &[Request],
) -> Result<Option<Vec<Result<bool>>>> {
    let pg = |e: tokio_postgres::Error| db_error("commit", &e);
    let WriteConn { client, st } = c;
    let st: &Stmts = st;
    let tx = client.transaction().await.map_err(pg)?;
    let keys: Vec<String> = group.iter().flat_map(|r| keys_of(&r.ops)).collect();
    let node = node.to_string();
    let bump = tx.query_one(&st.bump, &[]);
    // Sent after the bump: it runs once the sequence row is locked, so it
    // sees a restore that committed before this group.
    let current = tx.query_opt(&st.epoch, &[]);
    let fences = join_all(group.iter().filter_map(|r| r.fence).map(|term| {
        let tx = &tx;
        async move {
            let term = i64::try_from(term).unwrap_or(i64::MAX);
            tx.execute(&st.fence, &[&term]).await
        }
    }));
    let ops = join_all(group.iter().map(|r| apply_batch(&tx, st, r)));
    let (bump, current, fences, ops) = futures_util::join!(bump, current, fences, ops);
    let seq: i64 = match bump {
        Ok(row) => row.get(0),
        Err(e) if connection_failed(&e) => return Err(db_error("commit", &e)),
        Err(_) => return Ok(None),
    };
    match current {
        Ok(row) if epoch_of(row.as_ref()) == epoch => {}
        Ok(_) => {
            tx.rollback().await.map_err(pg)?;
            return Ok(Some(
                group.iter().map(|_| Err(StorageError::Replaced)).collect(),
            ));
        }
        Err(e) if connection_failed(&e) => return Err(db_error("commit", &e)),
        Err(_) => return Ok(None),
    }
    for f in &fences {
        match f {
            Ok(1) => {}
            Err(e) if connection_failed(e) => return Err(db_error("commit", e)),
            _ => {
                tx.rollback().await.map_err(pg)?;
                return Ok(None);
            }
        }
    }
    for o in &ops {
        match o {
            Ok(true) => {}
            Err(e) if connection_failed(e) => return Err(db_error("commit", e)),
            // A failed statement, or a check that did not hold (its batch's
            // operations ran): the slow path sorts out whose it was.
            _ => {
                tx.rollback().await.map_err(pg)?;
                return Ok(None);
            }
        }
    }
    tx.execute(&st.log, &[&seq, &node, &keys])
        .await
        .map_err(pg)?;
    tx.commit().await.map_err(pg)?;
    Ok(Some(group.iter().map(|_| Ok(true)).collect()))
}

/// Each batch in its own savepoint, so a failing or fenced batch, or one
/// whose checks do not hold, is rolled back alone.
async fn slow_path(
    c: &mut WriteConn,
    node: &str,
    epoch: i64,
    group: &[Request],
) -> Result<Vec<Result<bool>>> {
    let pg = |e: tokio_postgres::Error| db_error("commit", &e);
    let WriteConn { client, st } = c;
    let st: &Stmts = st;
    let tx = client.transaction().await.map_err(pg)?;
    let seq: i64 = tx.query_one(&st.bump, &[]).await.map_err(pg)?.get(0);
    if epoch_of(tx.query_opt(&st.epoch, &[]).await.map_err(pg)?.as_ref()) != epoch {
        tx.rollback().await.map_err(pg)?;
        return Ok(group.iter().map(|_| Err(StorageError::Replaced)).collect());
    }
    let node = node.to_string();
    let mut keys = Vec::new();
    let mut outcomes = Vec::with_capacity(group.len());
    for r in group {
        tx.batch_execute("SAVEPOINT coffer_batch")
            .await
            .map_err(pg)?;
        if let Some(term) = r.fence {
            let t = i64::try_from(term).unwrap_or(i64::MAX);
            match tx.execute(&st.fence, &[&t]).await {
                Ok(1) => {}
                Ok(_) => {
                    tx.batch_execute(
                        "ROLLBACK TO SAVEPOINT coffer_batch; RELEASE SAVEPOINT coffer_batch",
                    )
                    .await
                    .map_err(pg)?;
                    outcomes.push(Err(StorageError::Fenced(term)));
                    continue;
                }
                Err(e) if connection_failed(&e) => return Err(pg(e)),
                Err(e) => {
                    tx.batch_execute(
                        "ROLLBACK TO SAVEPOINT coffer_batch; RELEASE SAVEPOINT coffer_batch",
                    )
                    .await
                    .map_err(pg)?;
                    outcomes.push(Err(db_error("fence check", &e)));
                    continue;
                }
            }
        }
        match apply_batch(&tx, st, r).await {
            Ok(true) => {
                tx.batch_execute("RELEASE SAVEPOINT coffer_batch")
                    .await
                    .map_err(pg)?;
                keys.extend(keys_of(&r.ops));
                outcomes.push(Ok(true));
            }
            Ok(false) => {
                tx.batch_execute(
                    "ROLLBACK TO SAVEPOINT coffer_batch; RELEASE SAVEPOINT coffer_batch",
                )
                .await
                .map_err(pg)?;
                outcomes.push(Ok(false));
            }
            Err(e) if connection_failed(&e) => return Err(pg(e)),
            Err(e) => {
                tx.batch_execute(
                    "ROLLBACK TO SAVEPOINT coffer_batch; RELEASE SAVEPOINT coffer_batch",
                )
                .await
                .map_err(pg)?;
                outcomes.push(Err(db_error("write", &e)));
            }
        }
    }
    tx.execute(&st.log, &[&seq, &node, &keys])
        .await
        .map_err(pg)?;
    tx.commit().await.map_err(pg)?;
    Ok(outcomes)
}

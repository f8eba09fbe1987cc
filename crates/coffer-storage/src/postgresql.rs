//! PostgreSQL backend: one database shared by every Coffer node.
//!
//! * Entries live in one table (`key text COLLATE "C" PRIMARY KEY, value
//!   bytea`), so keys sort by bytes exactly as in SQLite ([`schema`]).
//! * Writes go to one writer task per node that commits everything queued
//!   as one transaction (group commit, [`writer`]); each group takes the
//!   next change sequence number and logs its keys in the same transaction.
//!   Conditional batches check their keys in that transaction, after the
//!   sequence row's lock has ordered it after every other node's groups.
//! * Reads share a few connections whose queries tokio-postgres pipelines
//!   ([`readers`]).
//! * [`Backend::changes_since`] reads that log, so every node can drop what
//!   other nodes changed from its caches; the sequence is taken under a row
//!   lock, so a position seen means every group up to it is committed and
//!   nothing is skipped.
//! * The leader lease is one row renewed by its holder; a new holder
//!   increments the term, and fenced writes check it in their transaction.
//! * With `ha_enabled = false` the store is one node's, like a SQLite file:
//!   a session advisory lock keeps a second node out.
//! * A snapshot export reads in one `REPEATABLE READ READ ONLY` transaction
//!   on a connection of its own, through a portal (a bounded number of rows
//!   at a time); writes go on meanwhile. An import is one transaction that
//!   takes the sequence row's lock (so every node's writers wait), bumps the
//!   store's `epoch` in `T_meta`, deletes every entry and inserts the
//!   snapshot's. Other nodes see the new epoch in the change log
//!   ([`Changes::Replaced`]) and their writers refuse to write under the
//!   old one ([`StorageError::Replaced`]) until they [`Backend::rejoin`].

mod connect;
mod readers;
mod schema;
mod writer;

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tokio_postgres::Client;
use zeroize::Zeroizing;

use crate::children::{ChildWalk, Step};
use crate::pg_tls::TlsMaterial;
use crate::snapshot::{Batcher, Entry, Export, ImportItem, CHANNEL_BATCHES};
use crate::{Backend, Changes, Expect, LeaderClaim, LeaderRecord, Op, Result, StorageError};
use connect::{db_error, ConnectSpec};
use readers::Readers;
use schema::Tables;
use writer::Writer;

/// Settings of a PostgreSQL store (`[storage.postgresql]`).
#[derive(Clone)]
pub struct PostgresConfig {
    /// libpq URL or key=value string; `sslmode` is honoured (default
    /// `prefer`), file-naming keys are refused.
    pub connection_url: Zeroizing<String>,
    /// Read connections kept open (the writer has one more). Default 4.
    pub max_connections: usize,
    /// Base name of the store's tables. Default `coffer_kv`.
    pub table: String,
    /// Whether several nodes share the store (caches follow the change log,
    /// background work needs the leader lease). Default true.
    pub ha_enabled: bool,
    /// PEM CA certificate(s) the server must chain to (empty: none).
    pub tls_ca: String,
    /// PEM client certificate chain (empty: none).
    pub tls_cert: String,
    /// PEM key of the client certificate (empty: none).
    pub tls_key: Zeroizing<String>,
}

impl PostgresConfig {
    /// Defaults for `connection_url`.
    pub fn new(connection_url: impl Into<String>) -> Self {
        PostgresConfig {
            connection_url: Zeroizing::new(connection_url.into()),
            max_connections: 4,
            table: "coffer_kv".into(),
            ha_enabled: true,
            tls_ca: String::new(),
            tls_cert: String::new(),
            tls_key: Zeroizing::new(String::new()),
        }
    }
}

/// Never shows the connection URL (it may hold a password) or the key.
impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("max_connections", &self.max_connections)
            .field("table", &self.table)
            .field("ha_enabled", &self.ha_enabled)
            .finish_non_exhaustive()
    }
}

/// Durable key-value storage in a PostgreSQL database.
pub struct PostgresBackend {
    tables: Tables,
    readers: Readers,
    writer: Writer,
    node: String,
    ha: bool,
    /// The store's epoch this node has loaded (bumped by every import);
    /// its writer refuses to write under any other.
    epoch: Arc<AtomicI64>,
    /// With `ha_enabled = false`: the connection holding the store's
    /// session advisory lock.
    _exclusive: Option<Client>,
}

/// Rows fetched at a time by an export's portal.
const EXPORT_FETCH_ROWS: i32 = 64;

impl fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("table", &self.tables.base)
            .field("ha", &self.ha)
            .finish_non_exhaustive()
    }
}

/// A process-unique node id for the change log (not a secret).
fn node_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{:x}-{:016x}", std::process::id(), h.finish())
}

/// The store's epoch (0 until the first import).
async fn read_epoch(client: &Client, t: &Tables) -> Result<i64> {
    let row = client
        .query_opt(
            &format!("SELECT value FROM {} WHERE name = 'epoch'", t.meta),
            &[],
        )
        .await
        .map_err(|e| db_error("epoch", &e))?;
    Ok(row.map_or(0, |r| r.get(0)))
}

/// An export's transaction: totals, then every row in key order through a
/// portal. Totals go to `totals` (while it is still there), batches to `tx`.
async fn export_rows(
    client: &mut Client,
    kv: &str,
    totals: &mut Option<tokio::sync::oneshot::Sender<Result<(u64, u64)>>>,
    tx: &tokio::sync::mpsc::Sender<Result<Vec<Entry>>>,
) -> Result<()> {
    let err = |e: tokio_postgres::Error| db_error("export", &e);
    let t = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(err)?;
    let row = t
        .query_one(
            &format!(
                "SELECT count(*), coalesce(sum(octet_length(key) + octet_length(value)), 0)::bigint \
                 FROM {kv}"
            ),
            &[],
        )
        .await
        .map_err(err)?;
    let as_u64 = |n: i64| u64::try_from(n).unwrap_or(0);
    if let Some(sender) = totals.take() {
        let _ = sender.send(Ok((as_u64(row.get(0)), as_u64(row.get(1)))));
    }
    let stmt = t
        .prepare(&format!("SELECT key, value FROM {kv} ORDER BY key"))
        .await
        .map_err(err)?;
    let portal = t.bind(&stmt, &[]).await.map_err(err)?;
    let mut batcher = Batcher::default();
    loop {
        let rows = t
            .query_portal(&portal, EXPORT_FETCH_ROWS)
            .await
            .map_err(err)?;
        if rows.is_empty() {
            break;
        }
        for r in rows {
            let entry = Entry {
                key: r.get(0),
                value: r.get(1),
            };
            if let Some(batch) = batcher.push(entry) {
                if tx.send(Ok(batch)).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
    if let Some(batch) = batcher.take() {
        let _ = tx.send(Ok(batch)).await;
    }
    t.commit().await.map_err(err)
}

/// The smallest string above every string that starts with `prefix`, or
/// `None` for the empty prefix (or one made only of `char::MAX`).
/// The most keys one read of a page listing asks for.
const PAGE_BATCH: usize = 1000;

fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(c) = chars.pop() {
        let next = match c as u32 {
            0xD7FF => Some('\u{E000}'),
            n => char::from_u32(n + 1),
        };
        if let Some(n) = next {
            chars.push(n);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

impl PostgresBackend {
    /// Connects, migrates the schema (under an advisory lock) and starts the
    /// writer. Must run inside a tokio runtime.
    pub async fn open(config: PostgresConfig) -> Result<Self> {
        let tables = Tables::new(&config.table)?;
        let tls = TlsMaterial {
            ca: &config.tls_ca,
            client_cert: &config.tls_cert,
            client_key: &config.tls_key,
        };
        let spec = Arc::new(ConnectSpec::parse(&config.connection_url, &tls)?);
        let mut admin = spec.connect().await?;
        schema::migrate(&mut admin, &tables).await?;
        let epoch = Arc::new(AtomicI64::new(read_epoch(&admin, &tables).await?));
        let exclusive = if config.ha_enabled {
            None
        } else {
            let key = format!("coffer-exclusive:{}", tables.base);
            let row = admin
                .query_one("SELECT pg_try_advisory_lock(hashtext($1))", &[&key])
                .await
                .map_err(|e| db_error("lock", &e))?;
            if !row.get::<_, bool>(0) {
                return Err(StorageError::InUse(format!(
                    "postgresql table {} is in use by another Coffer node and ha_enabled is \
                     false; stop it or set ha_enabled = true on every node",
                    tables.base
                )));
            }
            Some(admin)
        };
        let node = node_id();
        Ok(PostgresBackend {
            readers: Readers::new(spec.clone(), tables.clone(), config.max_connections),
            writer: Writer::spawn(spec, tables.clone(), node.clone(), epoch.clone()),
            tables,
            node,
            ha: config.ha_enabled,
            epoch,
            _exclusive: exclusive,
        })
    }

    /// The base table name.
    pub fn table(&self) -> &str {
        &self.tables.base
    }

    /// The holder of a live leader lease on this table, whether or not
    /// this backend itself is shared (offline tools refuse to run beside a
    /// live cluster).
    pub async fn live_leader(&self) -> Result<Option<LeaderRecord>> {
        let conn = self.readers.conn().await?;
        let row = conn
            .client
            .query_opt(&conn.leader, &[])
            .await
            .map_err(|e| db_error("leader", &e))?;
        Ok(row
            .map(|r| LeaderRecord {
                holder: r.get(0),
                api_addr: r.get(1),
                term: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
                acquired_at: r.get(3),
                live: r.get(4),
            })
            .filter(|r| r.live))
    }

    async fn keys_query(&self, prefix: &str) -> Result<Vec<String>> {
        let conn = self.readers.conn().await?;
        let rows = match prefix_end(prefix) {
            Some(end) => {
                conn.client
                    .query(&conn.keys_between, &[&prefix, &end])
                    .await
            }
            None => conn.client.query(&conn.keys_from, &[&prefix]).await,
        }
        .map_err(|e| db_error("keys_with_prefix", &e))?;
        Ok(rows
            .into_iter()
            .map(|r| r.get::<_, String>(0))
            .filter(|k| k.starts_with(prefix))
            .collect())
    }
}

#[async_trait]
impl Backend for PostgresBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let conn = self.readers.conn().await?;
        let row = conn
            .client
            .query_opt(&conn.get, &[&key])
            .await
            .map_err(|e| db_error("get", &e))?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let conn = self.readers.conn().await?;
        let start = i32::try_from(prefix.chars().count() + 1)
            .map_err(|_| StorageError::Backend("postgresql list: prefix too long".into()))?;
        let end = prefix_end(prefix);
        let stmt = if end.is_some() {
            &conn.list_between
        } else {
            &conn.list_from
        };
        let rows = conn
            .client
            .query(stmt, &[&prefix, &end, &start])
            .await
            .map_err(|e| db_error("list", &e))?;
        Ok(rows.into_iter().map(|r| r.get::<_, String>(0)).collect())
    }

    async fn list_page(
        &self,
        prefix: &str,
        after: &str,
        limit: Option<usize>,
    ) -> Result<Vec<String>> {
        let Some(limit) = limit else {
            let mut all = self.list(prefix).await?;
            all.retain(|k| k.as_str() > after);
            return Ok(all);
        };
        let conn = self.readers.conn().await?;
        let end = prefix_end(prefix);
        let mut walk = ChildWalk::new(prefix, Some(after), Some(limit));
        // Keys are read in batches the size of what the page still takes
        // (plus the one re-read entry), seeking past each directory.
        'reads: while let Some(remaining) = walk.remaining().filter(|n| *n > 0) {
            let batch = i64::try_from(remaining.saturating_add(1).min(PAGE_BATCH)).unwrap_or(1);
            let rows = conn
                .client
                .query(&conn.keys_page, &[&walk.cursor(), &end, &batch])
                .await
                .map_err(|e| db_error("list", &e))?;
            let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= batch;
            let mut last = None;
            for row in &rows {
                let key: &str = row.get(0);
                match walk.feed(key) {
                    Step::Next => last = Some(key),
                    Step::Seek => continue 'reads,
                    Step::Done => break 'reads,
                }
            }
            match last {
                Some(key) if full => walk.resume_at(key),
                _ => break,
            }
        }
        Ok(walk.finish())
    }

    async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        self.keys_query(prefix).await
    }

    async fn write_batch(&self, ops: Vec<Op>) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        self.writer
            .submit(ops, Vec::new(), crate::fence::current())
            .await
            .map(|_| ())
    }

    async fn write_batch_if(&self, expect: Vec<Expect>, ops: Vec<Op>) -> Result<bool> {
        if expect.is_empty() && ops.is_empty() {
            return Ok(true);
        }
        self.writer
            .submit(ops, expect, crate::fence::current())
            .await
    }

    fn is_shared(&self) -> bool {
        self.ha
    }

    async fn changes_since(&self, position: u64) -> Result<Option<Changes>> {
        if !self.ha {
            return Ok(None);
        }
        let conn = self.readers.conn().await?;
        let from = i64::try_from(position).unwrap_or(i64::MAX);
        let rows = conn
            .client
            .query(&conn.changes, &[&from])
            .await
            .map_err(|e| db_error("change log", &e))?;
        let current: i64 = rows
            .first()
            .map(|r| r.get(0))
            .ok_or_else(|| StorageError::Backend("postgresql: change sequence missing".into()))?;
        let current = u64::try_from(current).unwrap_or(0);
        let epoch: i64 = rows.first().map_or(0, |r| r.get(4));
        if epoch != self.epoch.load(Ordering::SeqCst) {
            return Ok(Some(Changes::Replaced { position: current }));
        }
        if current < position {
            // The store was replaced (restored, recreated) under us.
            return Ok(Some(Changes::Lost { position: current }));
        }
        let mut keys = Vec::new();
        let mut expected = position + 1;
        for row in &rows {
            let Some(seq) = row.get::<_, Option<i64>>(1) else {
                continue;
            };
            if u64::try_from(seq).ok() != Some(expected) {
                return Ok(Some(Changes::Lost { position: current }));
            }
            expected += 1;
            let node: String = row.get(2);
            if node != self.node {
                keys.extend(row.get::<_, Vec<String>>(3));
            }
        }
        if expected != current + 1 {
            // Pruned rows: the log no longer reaches back to `position`.
            return Ok(Some(Changes::Lost { position: current }));
        }
        Ok(Some(Changes::Keys {
            position: current,
            keys,
        }))
    }

    async fn claim_leadership(&self, claim: &LeaderClaim) -> Result<Option<u64>> {
        if !self.ha {
            return Ok(Some(1));
        }
        let conn = self.readers.conn().await?;
        let ms = claim.ttl.as_secs_f64() * 1000.0;
        let row = conn
            .client
            .query_opt(&conn.claim, &[&claim.holder, &claim.api_addr, &ms])
            .await
            .map_err(|e| db_error("leader claim", &e))?;
        Ok(row.map(|r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0)))
    }

    async fn release_leadership(&self, holder: &str) -> Result<()> {
        if !self.ha {
            return Ok(());
        }
        let conn = self.readers.conn().await?;
        conn.client
            .execute(&conn.release, &[&holder])
            .await
            .map_err(|e| db_error("leader release", &e))?;
        Ok(())
    }

    async fn leader(&self) -> Result<Option<LeaderRecord>> {
        if !self.ha {
            return Ok(None);
        }
        self.live_leader().await
    }

    async fn export(&self) -> Result<Export> {
        let mut client = self.readers.spec.connect().await?;
        let kv = self.tables.kv.clone();
        let (totals_tx, totals) = tokio::sync::oneshot::channel();
        let (tx, entries) = tokio::sync::mpsc::channel(CHANNEL_BATCHES);
        tokio::spawn(async move {
            let mut totals_tx = Some(totals_tx);
            if let Err(e) = export_rows(&mut client, &kv, &mut totals_tx, &tx).await {
                match totals_tx.take() {
                    Some(t) => {
                        let _ = t.send(Err(e));
                    }
                    None => {
                        let _ = tx.send(Err(e)).await;
                    }
                }
            }
        });
        let (count, bytes) = totals.await.map_err(|_| StorageError::Unavailable)??;
        Ok(Export {
            count,
            bytes,
            entries,
        })
    }

    async fn import(&self, mut items: tokio::sync::mpsc::Receiver<ImportItem>) -> Result<u64> {
        let err = |e: tokio_postgres::Error| db_error("restore", &e);
        let t = &self.tables;
        let mut client = self.readers.spec.connect().await?;
        let tx = client.transaction().await.map_err(err)?;
        // The sequence row's lock first, as every writer takes it: writers
        // of every node wait for this transaction, and none deadlocks.
        let seq: i64 = tx
            .query_one(
                &format!(
                    "UPDATE {} SET value = value + 1 WHERE name = 'seq' RETURNING value",
                    t.meta
                ),
                &[],
            )
            .await
            .map_err(err)?
            .get(0);
        let epoch: i64 = tx
            .query_one(
                &format!(
                    "INSERT INTO {} AS m (name, value) VALUES ('epoch', 1) \
                     ON CONFLICT (name) DO UPDATE SET value = m.value + 1 RETURNING value",
                    t.meta
                ),
                &[],
            )
            .await
            .map_err(err)?
            .get(0);
        tx.execute(&format!("DELETE FROM {}", t.kv), &[])
            .await
            .map_err(err)?;
        let insert = tx
            .prepare(&format!(
                "INSERT INTO {} (key, value) SELECT * FROM unnest($1::text[], $2::bytea[])",
                t.kv
            ))
            .await
            .map_err(err)?;
        let mut count: u64 = 0;
        loop {
            match items.recv().await {
                Some(ImportItem::Batch(entries)) => {
                    let (keys, values): (Vec<String>, Vec<Vec<u8>>) =
                        entries.into_iter().map(|e| (e.key, e.value)).unzip();
                    count += tx.execute(&insert, &[&keys, &values]).await.map_err(err)?;
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
        tx.execute(
            &format!(
                "INSERT INTO {} (seq, node, keys) VALUES ($1, $2, $3)",
                t.log
            ),
            &[&seq, &self.node, &Vec::<String>::new()],
        )
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        self.epoch.store(epoch, Ordering::SeqCst);
        Ok(count)
    }

    async fn rejoin(&self) -> Result<()> {
        let conn = self.readers.conn().await?;
        let epoch = read_epoch(&conn.client, &self.tables).await?;
        self.epoch.store(epoch, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_bounds_every_extension() {
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_end("a/").as_deref(), Some("a0"));
        assert_eq!(prefix_end("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        let end = prefix_end("é/").unwrap();
        for k in ["é/", "é/x", "é/\u{10FFFF}\u{10FFFF}"] {
            assert!(k < end.as_str(), "{k}");
        }
    }

    #[test]
    fn debug_hides_the_url() {
        let marker = ["pw", "4c1d"].join("-");
        let c = PostgresConfig::new(format!("postgres://u:{marker}@h/db"));
        assert!(!format!("{c:?}").contains(&marker));
    }
}

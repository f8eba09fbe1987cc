//! A fixed set of shared read connections with their prepared statements.
//!
//! tokio-postgres pipelines concurrent queries over one connection, so a few
//! connections shared by every task do what a pool would; a connection found
//! closed is replaced on its next use.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio_postgres::{Client, Statement};

use super::connect::{db_error, ConnectSpec};
use super::schema::Tables;
use crate::Result;

/// One read connection and its statements.
pub(super) struct ReadConn {
    pub client: Client,
    pub get: Statement,
    pub keys_from: Statement,
    pub keys_between: Statement,
    /// Up to `$3` keys from `$1` on, below `$2` when it is not null.
    pub keys_page: Statement,
    pub list_from: Statement,
    pub list_between: Statement,
    pub changes: Statement,
    pub claim: Statement,
    pub release: Statement,
    pub leader: Statement,
}

impl ReadConn {
    async fn open(spec: &ConnectSpec, t: &Tables) -> Result<ReadConn> {
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
        let kv = &t.kv;
        // The direct children below a prefix, in one statement (one snapshot).
        let list = |range: &str| {
            format!(
                "SELECT DISTINCT (CASE WHEN strpos(r, '/') > 0 THEN left(r, strpos(r, '/')) ELSE r END) \
                 COLLATE \"C\" AS child \
                 FROM (SELECT substr(key, $3) AS r FROM {kv} WHERE {range}) s \
                 WHERE r <> '' ORDER BY child"
            )
        };
        Ok(ReadConn {
            get: prep(format!("SELECT value FROM {kv} WHERE key = $1")).await?,
            keys_from: prep(format!(
                "SELECT key FROM {kv} WHERE key >= $1 AND starts_with(key, $1) ORDER BY key"
            ))
            .await?,
            keys_between: prep(format!(
                "SELECT key FROM {kv} WHERE key >= $1 AND key < $2 ORDER BY key"
            ))
            .await?,
            keys_page: prep(format!(
                "SELECT key FROM {kv} WHERE key >= $1 AND ($2::text IS NULL OR key < $2) \
                 ORDER BY key LIMIT $3"
            ))
            .await?,
            list_from: prep(list("key >= $1 AND starts_with(key, $1) AND $2::text IS NULL")).await?,
            list_between: prep(list("key >= $1 AND key < $2")).await?,
            changes: prep(format!(
                "SELECT m.value, l.seq, l.node, l.keys, \
                 coalesce((SELECT e.value FROM {meta} e WHERE e.name = 'epoch'), 0) \
                 FROM {meta} m \
                 LEFT JOIN {log} l ON l.seq > $1 AND l.seq <= m.value \
                 WHERE m.name = 'seq' ORDER BY l.seq",
                meta = t.meta,
                log = t.log
            ))
            .await?,
            claim: prep(format!(
                "INSERT INTO {leader} AS l (id, holder, api_addr, term, expires_at, acquired_at) \
                 VALUES (1, $1, $2, 1, clock_timestamp() + $3::float8 * interval '1 millisecond', clock_timestamp()) \
                 ON CONFLICT (id) DO UPDATE SET \
                   term = CASE WHEN l.holder = excluded.holder AND l.expires_at > clock_timestamp() \
                          THEN l.term ELSE l.term + 1 END, \
                   acquired_at = CASE WHEN l.holder = excluded.holder AND l.expires_at > clock_timestamp() \
                          THEN l.acquired_at ELSE clock_timestamp() END, \
                   holder = excluded.holder, api_addr = excluded.api_addr, \
                   expires_at = excluded.expires_at \
                 WHERE l.holder = excluded.holder OR l.expires_at <= clock_timestamp() \
                 RETURNING term",
                leader = t.leader
            ))
            .await?,
            release: prep(format!(
                "UPDATE {leader} SET expires_at = clock_timestamp() - interval '1 millisecond' \
                 WHERE id = 1 AND holder = $1 AND expires_at > clock_timestamp()",
                leader = t.leader
            ))
            .await?,
            leader: prep(format!(
                "SELECT holder, api_addr, term, extract(epoch FROM acquired_at)::bigint, \
                 expires_at > clock_timestamp() FROM {leader} WHERE id = 1",
                leader = t.leader
            ))
            .await?,
            client,
        })
    }
}

/// The read connections.
pub(super) struct Readers {
    /// How to open another connection (exports take one of their own).
    pub(super) spec: Arc<ConnectSpec>,
    tables: Tables,
    slots: Vec<Mutex<Option<Arc<ReadConn>>>>,
    next: AtomicUsize,
}

impl Readers {
    /// `count` lazily opened connections.
    pub(super) fn new(spec: Arc<ConnectSpec>, tables: Tables, count: usize) -> Self {
        Readers {
            spec,
            tables,
            slots: (0..count.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// A live connection (the next in turn; reopened if it closed).
    pub(super) async fn conn(&self) -> Result<Arc<ReadConn>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        if let Some(c) = self.slots[i].lock().clone() {
            if !c.client.is_closed() {
                return Ok(c);
            }
        }
        let fresh = Arc::new(ReadConn::open(&self.spec, &self.tables).await?);
        *self.slots[i].lock() = Some(fresh.clone());
        Ok(fresh)
    }
}

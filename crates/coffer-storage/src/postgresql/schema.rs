//! Table names and schema migrations.
//!
//! For a configured table `T` the store uses four tables:
//!
//! | table | holds |
//! | --- | --- |
//! | `T` | `key text COLLATE "C" PRIMARY KEY, value bytea`: the entries |
//! | `T_meta` | `name, value bigint`: the schema version and the change sequence (`seq`) |
//! | `T_log` | `seq, node, keys text[], at`: one row per committed write group |
//! | `T_leader` | the one leader lease row: holder, api_addr, term, expiry |
//!
//! `COLLATE "C"` makes keys compare by bytes (UTF-8), so listings sort as
//! SQLite's and the memory backend's do. Migrations run at start under a
//! transaction-scoped advisory lock, so nodes starting together migrate once.

use tokio_postgres::Client;

use super::connect::db_error;
use crate::{Result, StorageError};

/// The schema version this build writes.
pub(super) const SCHEMA_VERSION: i64 = 1;

/// The quoted names of one store's tables.
#[derive(Debug, Clone)]
pub(super) struct Tables {
    /// The configured base name (unquoted), for messages and lock keys.
    pub base: String,
    pub kv: String,
    pub meta: String,
    pub log: String,
    pub leader: String,
}

impl Tables {
    /// Checks `base` (an SQL identifier: letters, digits and `_`, not
    /// starting with a digit, at most 48 bytes) and derives the names.
    pub(super) fn new(base: &str) -> Result<Self> {
        let valid = !base.is_empty()
            && base.len() <= 48
            && base.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !base.as_bytes()[0].is_ascii_digit();
        if !valid {
            return Err(StorageError::Backend(
                "postgresql: table must be 1-48 letters, digits or '_', not starting with a digit"
                    .into(),
            ));
        }
        let q = |suffix: &str| format!("\"{base}{suffix}\"");
        Ok(Tables {
            base: base.to_string(),
            kv: q(""),
            meta: q("_meta"),
            log: q("_log"),
            leader: q("_leader"),
        })
    }
}

/// Creates or upgrades the schema. Refuses a schema newer than this build.
pub(super) async fn migrate(client: &mut Client, t: &Tables) -> Result<()> {
    let err = |e: tokio_postgres::Error| db_error("schema migration", &e);
    let tx = client.transaction().await.map_err(err)?;
    // Held until commit: a node starting at the same moment waits here,
    // then sees the finished schema.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1))",
        &[&format!("coffer-schema:{}", t.base)],
    )
    .await
    .map_err(err)?;
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {meta} (name text COLLATE \"C\" PRIMARY KEY, value bigint NOT NULL)",
        meta = t.meta
    ))
    .await
    .map_err(err)?;
    let version: Option<i64> = tx
        .query_opt(
            &format!("SELECT value FROM {} WHERE name = 'schema'", t.meta),
            &[],
        )
        .await
        .map_err(err)?
        .map(|r| r.get(0));
    match version {
        Some(v) if v > SCHEMA_VERSION => {
            return Err(StorageError::Backend(format!(
                "postgresql: table {} has schema version {v}, newer than this Coffer's \
                 ({SCHEMA_VERSION}); upgrade Coffer",
                t.base
            )))
        }
        Some(_) => {}
        None => {
            tx.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {kv} (key text COLLATE \"C\" PRIMARY KEY, value bytea NOT NULL);
                 CREATE TABLE IF NOT EXISTS {log} (seq bigint PRIMARY KEY, node text NOT NULL,
                     keys text[] NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
                 CREATE TABLE IF NOT EXISTS {leader} (id int PRIMARY KEY CHECK (id = 1),
                     holder text NOT NULL, api_addr text NOT NULL, term bigint NOT NULL,
                     expires_at timestamptz NOT NULL, acquired_at timestamptz NOT NULL);
                 INSERT INTO {meta} (name, value) VALUES ('seq', 0) ON CONFLICT DO NOTHING;
                 INSERT INTO {meta} (name, value) VALUES ('schema', {SCHEMA_VERSION});",
                kv = t.kv,
                log = t.log,
                leader = t.leader,
                meta = t.meta,
            ))
            .await
            .map_err(err)?;
        }
    }
    tx.commit().await.map_err(err)
}

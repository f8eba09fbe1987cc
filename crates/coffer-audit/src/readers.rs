//! The reader index: every token that read a secret, untruncated, with its
//! first and last read: the input of emergency revocation (the access
//! records of [`super::access`] keep only the last 50 readers, for
//! `who-read`).
//!
//! Storage: one entry per (secret, token) under
//! `sys/audit/readers/<sha256(path)>/<sha256(accessor)>`, behind the
//! barrier. Reads are noted in memory and merged into storage with the
//! access records (every [`super::access::FLUSH_INTERVAL`] and on seal), and
//! before every lookup. Retention: an entry is kept while its token exists;
//! [`AuditBroker::prune_readers`] (hourly, from the background loop, which
//! asks the token store whether each accessor is live) drops those whose
//! token was revoked or expired. So the index holds at most one
//! entry per secret and live token that read it, plus the tokens gone
//! since the last pass.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::AuditBroker;
use crate::barrier::{to_json, BarrierOp, View};
use crate::Result;
use coffer_engine::caller::TokenEntry;

/// How often (in background ticks of one second) the index is pruned.
pub const PRUNE_EVERY_SECS: u64 = 3600;
/// Entries written or deleted per storage batch.
const BATCH: usize = 500;

/// One token's reads of one secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReadMark {
    /// The API path read.
    pub path: String,
    /// The token's accessor.
    pub accessor: String,
    /// First read, seconds since the epoch.
    pub first_read: i64,
    /// Last read, seconds since the epoch.
    pub last_read: i64,
}

impl ReadMark {
    fn merge(&mut self, other: &ReadMark) {
        self.first_read = self.first_read.min(other.first_read);
        self.last_read = self.last_read.max(other.last_read);
    }
}

fn dir(path: &str) -> String {
    format!(
        "readers/{}/",
        coffer_crypto::hash::sha256_hex(path.as_bytes())
    )
}

fn key(path: &str, accessor: &str) -> String {
    format!(
        "{}{}",
        dir(path),
        coffer_crypto::hash::sha256_hex(accessor.as_bytes())
    )
}

/// Notes reads and merges them into storage.
#[derive(Clone, Default)]
pub struct ReaderIndex {
    pending: Arc<Mutex<HashMap<(String, String), ReadMark>>>,
}

impl ReaderIndex {
    /// Notes that `token` read `path` at `at` (seconds since the epoch).
    pub fn note(&self, path: &str, token: &TokenEntry, at: i64) {
        let mark = ReadMark {
            path: path.to_string(),
            accessor: token.accessor.clone(),
            first_read: at,
            last_read: at,
        };
        self.pending
            .lock()
            .entry((mark.path.clone(), mark.accessor.clone()))
            .and_modify(|m| m.merge(&mark))
            .or_insert(mark);
    }

    /// Merges the noted reads into storage, in batches. On failure the
    /// reads stay noted for the next flush (merging again is harmless).
    pub async fn flush(&self, view: &View) -> Result<()> {
        let pending: Vec<ReadMark> = self.pending.lock().drain().map(|(_, m)| m).collect();
        if pending.is_empty() {
            return Ok(());
        }
        let stored = async {
            for chunk in pending.chunks(BATCH) {
                let mut ops = Vec::with_capacity(chunk.len());
                for m in chunk {
                    let k = key(&m.path, &m.accessor);
                    let mut merged = m.clone();
                    if let Some(old) = view.get_json::<ReadMark>(&k).await? {
                        merged.merge(&old);
                    }
                    ops.push(BarrierOp::Put(k, to_json(&merged)?));
                }
                view.write_batch(ops).await?;
            }
            Ok(())
        }
        .await;
        if stored.is_err() {
            let mut p = self.pending.lock();
            for m in pending {
                p.entry((m.path.clone(), m.accessor.clone()))
                    .and_modify(|x| x.merge(&m))
                    .or_insert(m);
            }
        }
        stored
    }

    /// Every token that read `path` at or after `from` (after a flush).
    pub async fn since(&self, view: &View, path: &str, from: i64) -> Result<Vec<ReadMark>> {
        self.flush(view).await?;
        let d = dir(path);
        let mut out = Vec::new();
        for name in view.list(&d).await? {
            if let Some(m) = view.get_json::<ReadMark>(&format!("{d}{name}")).await? {
                if m.last_read >= from {
                    out.push(m);
                }
            }
        }
        out.sort_by_key(|m| std::cmp::Reverse(m.last_read));
        Ok(out)
    }

    /// Drops the entries whose token no longer exists (`alive(accessor)`
    /// says whether it does, asked once per accessor); returns how many.
    pub async fn prune<F, Fut>(&self, view: &View, mut alive: F) -> Result<usize>
    where
        F: FnMut(String) -> Fut,
        Fut: Future<Output = Result<bool>>,
    {
        self.flush(view).await?;
        let mut live: HashMap<String, bool> = HashMap::new();
        let mut gone = Vec::new();
        for k in view.keys_with_prefix("readers/").await? {
            let Some(m) = view.get_json::<ReadMark>(&k).await? else {
                continue;
            };
            let alive = match live.get(&m.accessor) {
                Some(a) => *a,
                None => {
                    let a = alive(m.accessor.clone()).await?;
                    live.insert(m.accessor.clone(), a);
                    a
                }
            };
            if !alive {
                gone.push(BarrierOp::Delete(k));
            }
        }
        let n = gone.len();
        let mut gone = gone.into_iter().peekable();
        while gone.peek().is_some() {
            view.write_batch(gone.by_ref().take(BATCH).collect())
                .await?;
        }
        Ok(n)
    }
}

impl AuditBroker {
    /// Accessors of the tokens that read `path` at or after `since` (every
    /// recorded reader when `None`), from the untruncated reader index and
    /// the access record (which covers reads noted before the index existed).
    pub async fn readers_since(
        &self,
        path: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<String>> {
        let from = since.map(|t| t.timestamp()).unwrap_or(i64::MIN);
        let mut out: Vec<String> = self
            .readers
            .since(&self.view, path, from)
            .await?
            .into_iter()
            .map(|m| m.accessor)
            .collect();
        if let Some(record) = self.access.get(&self.view, path).await? {
            for r in record.readers {
                if r.last_read >= from && !out.contains(&r.accessor) {
                    out.push(r.accessor);
                }
            }
        }
        Ok(out)
    }

    /// Drops reader-index entries of tokens that were revoked or expired
    /// (the background loop calls this every [`PRUNE_EVERY_SECS`], with
    /// `alive` asking the token store whether an accessor still exists).
    pub async fn prune_readers<F, Fut>(&self, alive: F) -> Result<usize>
    where
        F: FnMut(String) -> Fut,
        Fut: Future<Output = Result<bool>>,
    {
        self.readers.prune(&self.view, alive).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barrier::Barrier;

    #[tokio::test]
    async fn index_is_untruncated_persisted_and_pruned() {
        let barrier = Arc::new(Barrier::new(Arc::new(coffer_storage::MemoryBackend::new())));
        barrier.unseal(coffer_crypto::Keyring::new(0));
        let view = View::new(barrier.clone(), "sys/audit/");
        let root: TokenEntry = serde_json::from_value(serde_json::json!({
            "id_hash": "h", "accessor": "root-accessor", "policies": ["root"],
            "display_name": "root", "creation_time": 1, "path": "auth/token/root",
        }))
        .unwrap();
        let idx = ReaderIndex::default();
        for i in 0..120 {
            let mut t = root.clone();
            t.accessor = format!("gone-{i}");
            idx.note("secret/data/a", &t, 1000 + i);
        }
        idx.note("secret/data/a", &root, 500);
        idx.note("secret/data/a", &root, 2000);
        idx.note("secret/data/b", &root, 10);
        idx.flush(&view).await.unwrap();

        // A fresh index (as after a restart) finds every reader in storage.
        let fresh = ReaderIndex::default();
        let all = fresh.since(&view, "secret/data/a", i64::MIN).await.unwrap();
        assert_eq!(all.len(), 121);
        let r = all.iter().find(|m| m.accessor == root.accessor).unwrap();
        assert_eq!((r.first_read, r.last_read), (500, 2000));
        let recent = fresh.since(&view, "secret/data/a", 1100).await.unwrap();
        assert_eq!(recent.len(), 21);
        // A later read moves the last read, not the first.
        fresh.note("secret/data/a", &root, 3000);
        let all = fresh.since(&view, "secret/data/a", 2500).await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].first_read, all[0].last_read), (500, 3000));

        // Pruning drops the tokens that do not exist, and only those.
        let live = root.accessor.clone();
        let alive = |a: String| {
            let live = live.clone();
            async move { Ok(a == live) }
        };
        assert_eq!(fresh.prune(&view, alive).await.unwrap(), 120);
        assert_eq!(
            fresh
                .since(&view, "secret/data/a", i64::MIN)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            fresh
                .since(&view, "secret/data/b", i64::MIN)
                .await
                .unwrap()
                .len(),
            1
        );
    }
}

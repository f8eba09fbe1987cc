//! Access records: for each secret, when it was last read and by whom
//! (accessor, display name, policies), kept behind the barrier under
//! `sys/audit/access/<sha256(path)>` and bounded to the last
//! [`MAX_READERS`] distinct accessors.
//!
//! Reads are noted in memory and merged into storage every
//! [`FLUSH_INTERVAL`] and on seal, so a read costs no storage write on the
//! request path. Trade-off: a crash loses at most the last interval's
//! records (the audit log still has every read).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::barrier::View;
use crate::Result;
use coffer_engine::caller::TokenEntry;

/// Distinct accessors kept per secret.
pub const MAX_READERS: usize = 50;
/// How often noted reads are merged into storage.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(2);

/// One reader of a secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Reader {
    /// The token's accessor.
    pub accessor: String,
    /// The token's display name.
    pub display_name: String,
    /// The token's policies.
    pub policies: Vec<String>,
    /// Last read, seconds since the epoch.
    pub last_read: i64,
    /// Reads counted.
    pub reads: u64,
}

/// Who read one secret.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AccessRecord {
    /// The API path read, e.g. `secret/data/billing/stripe`.
    pub path: String,
    /// Last read, seconds since the epoch.
    pub last_read: i64,
    /// Reads counted.
    pub reads: u64,
    /// Most recent first, at most [`MAX_READERS`].
    pub readers: Vec<Reader>,
}

impl AccessRecord {
    /// Adds `other`'s reads to this record.
    pub fn merge(&mut self, other: &AccessRecord) {
        self.path.clone_from(&other.path);
        self.last_read = self.last_read.max(other.last_read);
        self.reads += other.reads;
        for r in &other.readers {
            match self.readers.iter_mut().find(|x| x.accessor == r.accessor) {
                Some(x) => {
                    x.last_read = x.last_read.max(r.last_read);
                    x.reads += r.reads;
                    x.display_name.clone_from(&r.display_name);
                    x.policies.clone_from(&r.policies);
                }
                None => self.readers.push(r.clone()),
            }
        }
        self.readers.sort_by_key(|r| std::cmp::Reverse(r.last_read));
        self.readers.truncate(MAX_READERS);
    }
}

/// The storage key of a path's record.
pub fn key(path: &str) -> String {
    format!(
        "access/{}",
        coffer_crypto::hash::sha256_hex(path.as_bytes())
    )
}

/// Notes reads and merges them into storage.
#[derive(Clone, Default)]
pub struct Recorder {
    pending: Arc<Mutex<HashMap<String, AccessRecord>>>,
}

impl Recorder {
    /// Notes that `token` read `path` now.
    pub fn note(&self, path: &str, token: &TokenEntry) {
        let at = crate::util::now().timestamp();
        let read = AccessRecord {
            path: path.to_string(),
            last_read: at,
            reads: 1,
            readers: vec![Reader {
                accessor: token.accessor.clone(),
                display_name: token.display_name.clone(),
                policies: token.policies.clone(),
                last_read: at,
                reads: 1,
            }],
        };
        self.pending
            .lock()
            .entry(path.to_string())
            .or_default()
            .merge(&read);
    }

    /// Merges the noted reads into storage.
    pub async fn flush(&self, view: &View) -> Result<()> {
        let pending: Vec<AccessRecord> = self.pending.lock().drain().map(|(_, r)| r).collect();
        let mut failed = Vec::new();
        let mut result = Ok(());
        for rec in pending {
            let k = key(&rec.path);
            let stored = async {
                let mut current: AccessRecord = view.get_json(&k).await?.unwrap_or_default();
                current.merge(&rec);
                view.put_json(&k, &current).await
            }
            .await;
            if let Err(e) = stored {
                failed.push(rec);
                result = Err(e);
            }
        }
        if !failed.is_empty() {
            let mut p = self.pending.lock();
            for rec in failed {
                p.entry(rec.path.clone()).or_default().merge(&rec);
            }
        }
        result
    }

    /// The stored record of `path` (after a flush).
    pub async fn get(&self, view: &View, path: &str) -> Result<Option<AccessRecord>> {
        let _ = self.flush(view).await;
        view.get_json(&key(path)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(a: &str, t: i64) -> AccessRecord {
        AccessRecord {
            path: "p".into(),
            last_read: t,
            reads: 1,
            readers: vec![Reader {
                accessor: a.into(),
                display_name: "d".into(),
                policies: vec![],
                last_read: t,
                reads: 1,
            }],
        }
    }

    #[test]
    fn merge_is_bounded_and_most_recent_first() {
        let mut r = AccessRecord::default();
        for i in 0..(MAX_READERS as i64 + 10) {
            r.merge(&reader(&format!("a{i}"), i));
        }
        let newest = format!("a{}", MAX_READERS + 9);
        r.merge(&reader(&newest, 1000));
        assert_eq!(r.readers.len(), MAX_READERS);
        assert_eq!(r.readers[0].accessor, newest);
        assert!(r.readers.iter().all(|x| x.accessor != "a0"));
        assert_eq!(r.readers[0].reads, 2);
        assert_eq!(r.reads, MAX_READERS as u64 + 11);
        assert_eq!(r.last_read, 1000);
    }
}

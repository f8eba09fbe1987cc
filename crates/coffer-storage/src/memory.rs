//! In-memory backend: a `BTreeMap` behind a lock.
//!
//! Used by `coffer server --dev` and by tests. Nothing survives the process,
//! so the durability promise of [`Backend`] holds only for the process's life.

use std::collections::BTreeMap;
use std::ops::Bound;

use async_trait::async_trait;
use parking_lot::RwLock;

use crate::children::ChildWalk;
use crate::snapshot::{Batcher, Entry, Export, ImportItem, CHANNEL_BATCHES};
use crate::{is_as_expected, Backend, Expect, Op, Result, StorageError};

/// A [`Backend`] that keeps everything in process memory.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    map: RwLock<BTreeMap<String, Vec<u8>>>,
}

impl MemoryBackend {
    /// Creates an empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.map.read().get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.list_page(prefix, "", None).await
    }

    async fn list_page(
        &self,
        prefix: &str,
        after: &str,
        limit: Option<usize>,
    ) -> Result<Vec<String>> {
        let map = self.map.read();
        ChildWalk::new(prefix, Some(after), limit).run(|from, feed| {
            for key in map
                .range::<str, _>((Bound::Included(from), Bound::Unbounded))
                .map(|(k, _)| k)
            {
                if !feed(key) {
                    break;
                }
            }
            Ok(())
        })
    }

    async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let map = self.map.read();
        Ok(map
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }

    async fn write_batch(&self, ops: Vec<Op>) -> Result<()> {
        self.write_batch_if(Vec::new(), ops).await.map(|_| ())
    }

    async fn write_batch_if(&self, expect: Vec<Expect>, ops: Vec<Op>) -> Result<bool> {
        let mut map = self.map.write();
        // Checked and applied under one write lock: no writer in between.
        if !expect
            .iter()
            .all(|(key, want)| is_as_expected(map.get(key).map(Vec::as_slice), want.as_ref()))
        {
            return Ok(false);
        }
        for op in ops {
            match op {
                Op::Put { key, value } => {
                    map.insert(key, value);
                }
                Op::Delete { key } => {
                    map.remove(&key);
                }
            }
        }
        Ok(true)
    }

    /// A copy of the map taken under the read lock: the store is in memory
    /// already, so the copy is its consistent read.
    async fn export(&self) -> Result<Export> {
        let copy: Vec<Entry> = self
            .map
            .read()
            .iter()
            .map(|(key, value)| Entry {
                key: key.clone(),
                value: value.clone(),
            })
            .collect();
        let count = copy.len() as u64;
        let bytes = copy.iter().map(|e| e.size() as u64).sum();
        let (tx, entries) = tokio::sync::mpsc::channel(CHANNEL_BATCHES);
        tokio::spawn(async move {
            let mut batcher = Batcher::default();
            for entry in copy {
                if let Some(batch) = batcher.push(entry) {
                    if tx.send(Ok(batch)).await.is_err() {
                        return;
                    }
                }
            }
            if let Some(batch) = batcher.take() {
                let _ = tx.send(Ok(batch)).await;
            }
        });
        Ok(Export {
            count,
            bytes,
            entries,
        })
    }

    /// Builds the new map aside and swaps it in on commit.
    async fn import(&self, mut items: tokio::sync::mpsc::Receiver<ImportItem>) -> Result<u64> {
        let mut fresh = BTreeMap::new();
        while let Some(item) = items.recv().await {
            match item {
                ImportItem::Batch(entries) => {
                    for e in entries {
                        let key = e.key.clone();
                        if fresh.insert(e.key, e.value).is_some() {
                            return Err(StorageError::Backend(format!(
                                "snapshot import: key {key:?} sent twice; nothing was changed"
                            )));
                        }
                    }
                }
                ImportItem::Commit => {
                    let count = fresh.len() as u64;
                    *self.map.write() = fresh;
                    return Ok(count);
                }
            }
        }
        Err(StorageError::Backend(
            "snapshot import ended before its commit; nothing was changed".into(),
        ))
    }
}

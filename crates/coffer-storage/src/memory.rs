//! In-memory backend: a `BTreeMap` behind a lock.
//!
//! Used by `coffer server --dev` and by tests. Nothing survives the process,
//! so the durability promise of [`Backend`] holds only for the process's life.

use std::collections::BTreeMap;
use std::ops::Bound;

use async_trait::async_trait;
use parking_lot::RwLock;

use crate::children::{ChildWalk, Step};
use crate::{is_as_expected, Backend, Expect, Op, Result};

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
        let mut walk = ChildWalk::new(prefix, Some(after), limit);
        'reads: while !walk.is_full() {
            let from = walk.cursor().to_string();
            for key in map
                .range::<str, _>((Bound::Included(from.as_str()), Bound::Unbounded))
                .map(|(k, _)| k)
            {
                match walk.feed(key) {
                    Step::Next => {}
                    Step::Seek => continue 'reads,
                    Step::Done => break 'reads,
                }
            }
            break;
        }
        Ok(walk.finish())
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
}

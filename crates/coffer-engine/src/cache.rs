//! A small cache of parsed entries that never serves a stale value.
//!
//! Writers call [`ParsedCache::begin_write`] before changing storage and keep
//! the returned guard until the change is done (the guard then drops the
//! entry). A reader that missed calls [`ParsedCache::epoch`] before reading
//! storage and [`ParsedCache::fill`] after: the fill is dropped if any write
//! began or was running meanwhile, so a slow read can never put back a value
//! that a write (a revocation, say) has just replaced.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// Entries kept before the cache starts over.
const LIMIT: usize = 100_000;

/// Parsed values by key; see the module docs for the protocol.
pub struct ParsedCache<V> {
    map: Mutex<HashMap<String, Arc<V>>>,
    epoch: AtomicU64,
    writing: AtomicU64,
}

impl<V> Default for ParsedCache<V> {
    fn default() -> Self {
        ParsedCache {
            map: Mutex::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            writing: AtomicU64::new(0),
        }
    }
}

/// Held by a writer while it changes storage; drops the key (or, from
/// [`ParsedCache::begin_write_all`], every entry) on release.
pub struct WriteGuard<'a, V> {
    cache: &'a ParsedCache<V>,
    key: Option<String>,
}

impl<V> Drop for WriteGuard<'_, V> {
    fn drop(&mut self) {
        let mut map = self.cache.map.lock();
        match &self.key {
            Some(k) => {
                map.remove(k);
            }
            None => map.clear(),
        }
        self.cache.epoch.fetch_add(1, Ordering::SeqCst);
        self.cache.writing.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<V> ParsedCache<V> {
    /// The cached value of `key`.
    pub fn get(&self, key: &str) -> Option<Arc<V>> {
        self.map.lock().get(key).cloned()
    }

    /// The current epoch, to pass to [`ParsedCache::fill`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Caches `value` unless a write began or ran since `epoch`.
    pub fn fill(&self, key: &str, value: Arc<V>, epoch: u64) {
        let mut map = self.map.lock();
        if self.epoch.load(Ordering::SeqCst) != epoch || self.writing.load(Ordering::SeqCst) != 0 {
            return;
        }
        if map.len() >= LIMIT {
            map.clear();
        }
        map.insert(key.to_string(), value);
    }

    /// Marks a write of `key` as running until the guard drops.
    pub fn begin_write(&self, key: &str) -> WriteGuard<'_, V> {
        self.writing.fetch_add(1, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.map.lock().remove(key);
        WriteGuard {
            cache: self,
            key: Some(key.to_string()),
        }
    }

    /// Marks a write running until the guard drops that may change any
    /// entry (a policy change alters every ACL that holds it): everything is
    /// dropped now and again on release.
    pub fn begin_write_all(&self) -> WriteGuard<'_, V> {
        self.writing.fetch_add(1, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.map.lock().clear();
        WriteGuard {
            cache: self,
            key: None,
        }
    }

    /// Drops `key` (changed by another node); a fill racing this is dropped.
    pub fn invalidate(&self, key: &str) {
        let mut map = self.map.lock();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        map.remove(key);
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.map.lock().clear();
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fill_racing_a_write_is_dropped() {
        let c: ParsedCache<u32> = ParsedCache::default();
        let e = c.epoch();
        {
            let _w = c.begin_write("k");
            c.fill("k", Arc::new(1), e);
            assert!(c.get("k").is_none(), "no fill while a write runs");
        }
        c.fill("k", Arc::new(1), e);
        assert!(c.get("k").is_none(), "no fill from before the write");
        let e = c.epoch();
        c.fill("k", Arc::new(2), e);
        assert_eq!(*c.get("k").unwrap(), 2);
        drop(c.begin_write("k"));
        assert!(c.get("k").is_none(), "a write drops the entry");
    }

    #[test]
    fn a_write_of_everything_drops_every_entry_and_racing_fills() {
        let c: ParsedCache<u32> = ParsedCache::default();
        let e = c.epoch();
        c.fill("a", Arc::new(1), e);
        c.fill("b", Arc::new(2), e);
        let before = c.epoch();
        {
            let _w = c.begin_write_all();
            assert!(c.get("a").is_none() && c.get("b").is_none());
            c.fill("a", Arc::new(1), c.epoch());
            assert!(c.get("a").is_none(), "no fill while a write runs");
        }
        c.fill("b", Arc::new(2), before);
        assert!(c.get("b").is_none(), "no fill from before the write");
    }
}

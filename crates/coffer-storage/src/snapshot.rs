//! Whole-store export and replacement, for snapshots (backups).
//!
//! [`Backend::export`](crate::Backend::export) streams every stored entry,
//! in key order, from one consistent read (a SQLite read transaction, a
//! PostgreSQL `REPEATABLE READ` transaction) while writes go on;
//! [`Backend::import`](crate::Backend::import) replaces the whole store in
//! one transaction with the entries it is sent. Both move entries in
//! bounded batches over bounded channels, so neither holds the whole store
//! in memory. Values are what the backend holds: ciphertexts, the sealed
//! keyring and the seal configuration; nothing here decrypts.

use tokio::sync::mpsc;

use crate::Result;

/// Most entries in one batch of an export or import.
pub const BATCH_ENTRIES: usize = 256;
/// A batch is closed once its keys and values hold this many bytes.
pub const BATCH_BYTES: usize = 1024 * 1024;
/// Batches an export may run ahead of its reader.
pub const CHANNEL_BATCHES: usize = 2;

/// One stored entry, as the backend holds it.
///
/// Its `Debug` output shows the value's length, never its bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    /// Storage key.
    pub key: String,
    /// The stored bytes.
    pub value: Vec<u8>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("key", &self.key)
            .field("value", &format_args!("<{} bytes>", self.value.len()))
            .finish()
    }
}

impl Entry {
    /// Bytes of key and value together (what a batch's size counts).
    pub fn size(&self) -> usize {
        self.key.len() + self.value.len()
    }
}

/// A running export: its totals, taken in the same read as the entries,
/// and the entries themselves, in key order, batch by batch.
#[derive(Debug)]
pub struct Export {
    /// How many entries follow.
    pub count: u64,
    /// Their keys' and values' bytes added up.
    pub bytes: u64,
    /// The batches; an `Err` ends the export (the read failed). Dropping
    /// the receiver ends the read transaction.
    pub entries: mpsc::Receiver<Result<Vec<Entry>>>,
}

/// What an import is sent.
#[derive(Debug)]
pub enum ImportItem {
    /// Entries to store, in strictly ascending key order across batches.
    Batch(Vec<Entry>),
    /// Everything was sent and checked: commit the replacement. A channel
    /// closed without it rolls the import back, leaving the store as it was.
    Commit,
}

/// Collects entries into batches bounded by [`BATCH_ENTRIES`] and
/// [`BATCH_BYTES`]: `push` hands back a full batch.
#[derive(Debug, Default)]
pub struct Batcher {
    batch: Vec<Entry>,
    bytes: usize,
}

impl Batcher {
    /// Adds `entry`; returns the batch once it is full.
    pub fn push(&mut self, entry: Entry) -> Option<Vec<Entry>> {
        self.bytes += entry.size();
        self.batch.push(entry);
        if self.batch.len() >= BATCH_ENTRIES || self.bytes >= BATCH_BYTES {
            return self.take();
        }
        None
    }

    /// The entries not yet handed out, if any.
    pub fn take(&mut self) -> Option<Vec<Entry>> {
        self.bytes = 0;
        (!self.batch.is_empty()).then(|| std::mem::take(&mut self.batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_debug_hides_the_value() {
        let marker = ["hidden", "snapshot", "value"].join("-");
        let e = Entry {
            key: "k".into(),
            value: marker.clone().into_bytes(),
        };
        let shown = format!("{e:?}");
        assert!(!shown.contains(&marker), "{shown}");
        assert!(shown.contains("21 bytes"), "{shown}");
    }

    #[test]
    fn batches_are_bounded_by_count_and_bytes() {
        let mut b = Batcher::default();
        let mut full = 0;
        for i in 0..BATCH_ENTRIES {
            if let Some(batch) = b.push(Entry {
                key: format!("k{i}"),
                value: vec![0],
            }) {
                assert_eq!(batch.len(), BATCH_ENTRIES);
                full += 1;
            }
        }
        assert_eq!(full, 1);
        assert!(b.take().is_none());
        let big = b.push(Entry {
            key: "big".into(),
            value: vec![0; BATCH_BYTES],
        });
        assert_eq!(big.map(|v| v.len()), Some(1));
    }
}

//! Where lifecycle records live: `lifecycle/<path>` in the KV v2 mount's own
//! storage view, beside the secret's metadata and versions.
//!
//! Beside them, the due index: an empty entry `lifecycle-due/<when>/<path>`
//! for every record the scheduler must look at from the epoch second
//! `<when>` on. A record and its index entry are written in one atomic
//! batch, and the record names its entry (`state.due_index`), so a pass
//! reads the entries due by now (a page of time buckets, earliest first)
//! instead of every record: its cost follows the due items, not the store.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use tokio::sync::{Mutex, OwnedMutexGuard};

use zeroize::Zeroizing;

use super::model::Lifecycle;
use crate::barrier::{to_json, BarrierOp, View};
use crate::Result;

/// Storage key of a secret's lifecycle record.
pub fn key(path: &str) -> String {
    format!("lifecycle/{path}")
}

/// Loads the record of `path`.
pub async fn load(view: &View, path: &str) -> Result<Option<Lifecycle>> {
    view.get_json(&key(path)).await
}

/// Where the due index lives in a mount's view.
const DUE_PREFIX: &str = "lifecycle-due/";

/// The due-index entry of `path` at epoch second `when`.
fn due_key(when: i64, path: &str) -> String {
    format!("{DUE_PREFIX}{:012}/{path}", when.max(0))
}

/// Saves the record of `path` and moves its due-index entry to `when`
/// (`None`: the scheduler has nothing to do for it), in one atomic batch.
pub async fn save(view: &View, path: &str, lc: &mut Lifecycle, when: Option<i64>) -> Result<()> {
    let when = when.map(|w| w.max(0));
    let mut ops = Vec::new();
    if lc.state.due_index != when {
        if let Some(old) = lc.state.due_index {
            ops.push(BarrierOp::Delete(due_key(old, path)));
        }
        if let Some(new) = when {
            ops.push(BarrierOp::Put(
                due_key(new, path),
                Zeroizing::new(Vec::new()),
            ));
        }
        lc.state.due_index = when;
    }
    ops.push(BarrierOp::Put(key(path), to_json(lc)?));
    view.write_batch(ops).await
}

/// Deletes the record of `path` with its due-index entry.
pub async fn delete(view: &View, path: &str) -> Result<()> {
    let mut ops = vec![BarrierOp::Delete(key(path))];
    if let Some(when) = load(view, path).await?.and_then(|lc| lc.state.due_index) {
        ops.push(BarrierOp::Delete(due_key(when, path)));
    }
    view.write_batch(ops).await
}

/// Drops one due-index entry that no record names (left by a record
/// deleted or moved meanwhile).
pub async fn drop_due(view: &View, when: i64, path: &str) -> Result<()> {
    view.delete(&due_key(when, path)).await
}

/// The due-index entries at or before epoch second `at`, earliest first:
/// `(when, path)`. Reads the buckets due by `at` and no others.
pub async fn due(view: &View, at: i64) -> Result<Vec<(i64, String)>> {
    Ok(crate::time_index::until(view, DUE_PREFIX, at)
        .await?
        .into_iter()
        .map(|t| (t.at, t.rest().to_string()))
        .collect())
}

/// Every path with a lifecycle record in `view`.
pub async fn paths(view: &View) -> Result<Vec<String>> {
    Ok(view
        .keys_with_prefix("lifecycle/")
        .await?
        .into_iter()
        .filter_map(|k| k.strip_prefix("lifecycle/").map(str::to_string))
        .collect())
}

type Locks = std::sync::Mutex<HashMap<(String, String), Arc<Mutex<()>>>>;

/// Serialises changes to one secret's lifecycle (API writes and rotations).
pub async fn lock(mount_uuid: &str, path: &str) -> OwnedMutexGuard<()> {
    mutex_for(mount_uuid, path).lock_owned().await
}

/// Takes the secret's lock if free: a rotation never queues behind another.
pub fn try_lock(mount_uuid: &str, path: &str) -> Option<OwnedMutexGuard<()>> {
    mutex_for(mount_uuid, path).try_lock_owned().ok()
}

fn mutex_for(mount_uuid: &str, path: &str) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Locks> = OnceLock::new();
    {
        let mut map = match LOCKS.get_or_init(Default::default).lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if map.len() > 10_000 {
            map.retain(|_, v| Arc::strong_count(v) > 1);
        }
        map.entry((mount_uuid.to_string(), path.to_string()))
            .or_default()
            .clone()
    }
}

//! Where lifecycle records live: `lifecycle/<path>` in the KV v2 mount's own
//! storage view, beside the secret's metadata and versions.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use tokio::sync::{Mutex, OwnedMutexGuard};

use super::model::Lifecycle;
use crate::barrier::View;
use crate::Result;

/// Storage key of a secret's lifecycle record.
pub fn key(path: &str) -> String {
    format!("lifecycle/{path}")
}

/// Loads the record of `path`.
pub async fn load(view: &View, path: &str) -> Result<Option<Lifecycle>> {
    view.get_json(&key(path)).await
}

/// Saves the record of `path`.
pub async fn save(view: &View, path: &str, lc: &Lifecycle) -> Result<()> {
    view.put_json(&key(path), lc).await
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

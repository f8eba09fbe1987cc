//! Change events across nodes that share one store (PostgreSQL).
//!
//! Each node's subscribers are served from its own [`EventBus`]. An event
//! made on one node (a KV write, a rotation, a lease revocation) is also
//! written, encrypted like everything else, to `sys/events/<second>/<id>`
//! by a task draining the bus's outbox. The change log names that key to
//! the other nodes, which read it and publish the event to their own
//! subscribers with its id and time unchanged, so a subscriber resuming
//! with `since` on another node finds its cursor. Every node follows the
//! log at least once a second, so an event reaches every node's
//! subscribers within about a second. The leader deletes the records
//! after [`KEEP`].
//!
//! [`EventBus`]: crate::events::EventBus

use std::sync::Arc;

use crate::core::Core;
use crate::events::Event;
use crate::Result;

/// Where shared events are stored.
pub(crate) const PREFIX: &str = "sys/events/";

/// How long shared event records are kept.
pub(crate) const KEEP: chrono::Duration = chrono::Duration::minutes(10);

fn key(event: &Event) -> String {
    format!("{PREFIX}{:011}/{}", event.time.timestamp().max(0), event.id)
}

/// Starts the task that writes this node's events for the other nodes.
pub(crate) fn spawn_outbox(core: &Arc<Core>) {
    let mut rx = core.events.open_outbox();
    let core = Arc::clone(core);
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            if core.is_sealed() {
                continue;
            }
            let write = match serde_json::to_vec(&*event) {
                Ok(bytes) => core.barrier.put(&key(&event), &bytes).await,
                Err(e) => Err(crate::Error::encode("an event", e)),
            };
            if let Err(e) = write {
                tracing::warn!(error = %e, "an event is not shared with the other nodes");
            }
        }
    });
}

/// Publishes to this node's subscribers the event another node stored at
/// `key` (named by the change log).
pub(crate) async fn apply(core: &Core, key: &str) -> Result<()> {
    let Some(bytes) = core.barrier.get(key).await? else {
        return Ok(());
    };
    match serde_json::from_slice::<Event>(&bytes) {
        Ok(event) => core.events.publish_remote(event),
        Err(e) => {
            let e = crate::Error::corrupt_json("shared event", &e);
            tracing::warn!(error = %e, "a shared event is not published");
        }
    }
    Ok(())
}

/// Deletes the shared event records older than [`KEEP`] (leader only).
pub(crate) async fn tidy(core: &Core) -> Result<()> {
    let cutoff = (chrono::Utc::now() - KEEP).timestamp();
    let view = crate::barrier::View::new(core.barrier.clone(), "");
    let old = crate::time_index::until(&view, PREFIX, cutoff - 1).await?;
    if old.is_empty() {
        return Ok(());
    }
    let ops = old
        .into_iter()
        .map(|t| crate::barrier::BarrierOp::Delete(t.key))
        .collect();
    core.barrier.write_batch(ops).await
}

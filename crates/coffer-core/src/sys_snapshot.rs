//! `sys/storage/raft/snapshot` (GET: save, POST: restore) and
//! `sys/storage/raft/snapshot-force` (POST: restore one taken from another
//! store), Vault's snapshot API over any storage backend. Both need `sudo`
//! and pass the ordinary pipeline, so each call is authorized and audited;
//! each also records an audit event of its own (`snapshot_saved`,
//! `snapshot_restored`). The archive is [`crate::snapshot`]'s.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde_json::json;

use crate::audit::events::names;
use crate::core::{Core, VERSION};
use crate::snapshot::{self, ChannelReader, ChannelWriter, Meta};
use crate::token::TokenEntry;
use crate::{ByteStream, Error, Operation, Request, Response, Result};

/// Chunks of the answer in flight between the archive writer and the client.
const OUT_CHUNKS: usize = 8;

/// Whether `rest` (below `sys/`) is one of the snapshot routes.
pub(crate) fn is_path(rest: &str) -> bool {
    snapshot::is_route(&format!("sys/{rest}"))
}

/// Answers a snapshot route (`rest` is below `sys/`).
pub(crate) async fn handle(
    core: &Core,
    req: &Request,
    rest: &str,
    token: &TokenEntry,
) -> Result<Response> {
    if req.wrap_ttl.is_some_and(|t| t > 0) {
        return Err(Error::bad("a snapshot cannot be response-wrapped"));
    }
    let force = rest.trim_end_matches('/') == "storage/raft/snapshot-force";
    match req.operation {
        Operation::Read if !force => save(core, token).await,
        Operation::Create | Operation::Update => restore(core, req, force, token).await,
        _ => Err(Error::UnsupportedOperation),
    }
}

/// Starts streaming a snapshot: the export's read transaction is open once
/// this returns; the archive is written on a blocking thread as the client
/// reads it.
async fn save(core: &Core, token: &TokenEntry) -> Result<Response> {
    let keyring = core.barrier.keyring()?;
    let export = core.barrier.backend().export().await?;
    let meta = Meta {
        format: snapshot::FORMAT.into(),
        version: snapshot::FORMAT_VERSION,
        store_id: snapshot::store_id(&keyring),
        keys: export.count,
        state_bytes: snapshot::state_size(export.count, export.bytes),
        created_at: crate::util::rfc3339(&crate::util::now()),
        coffer_version: VERSION.into(),
        storage: core.config.storage_type.clone(),
    };
    core.audit
        .event(
            names::SNAPSHOT_SAVED,
            Some(token),
            json!({"store_id": meta.store_id, "keys": meta.keys, "created_at": meta.created_at}),
        )
        .await
        .map_err(|_| Error::Internal("failed to audit the snapshot".into()))?;
    let (tx, stream) = ByteStream::channel(OUT_CHUNKS);
    let mut entries = export.entries;
    tokio::task::spawn_blocking(move || {
        let aborted = Arc::new(AtomicBool::new(false));
        let out = ChannelWriter::new(tx.clone(), aborted.clone(), snapshot::SEND_IDLE);
        let seal = |sums: &[u8]| keyring.seal(sums, snapshot::SEALED_AAD);
        match snapshot::write_archive(out, &meta, &mut entries, &seal, &aborted) {
            Ok(()) => tracing::info!(keys = meta.keys, "snapshot saved"),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                tracing::warn!("snapshot not saved: the client went away")
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                tracing::warn!("snapshot not saved: the client stopped reading it")
            }
            Err(e) => {
                tracing::error!(error = %e, "snapshot failed midway; the client gets it incomplete");
                let _ = tx.blocking_send(Err(std::io::Error::other("snapshot failed")));
            }
        }
    });
    Ok(Response::stream(snapshot::CONTENT_TYPE, stream))
}

/// Receives, checks and installs a snapshot. Nothing in the store changes
/// unless the whole upload is a valid snapshot (and, without `force`, one
/// of this store); then the core seals and the store is replaced in one
/// transaction.
async fn restore(core: &Core, req: &Request, force: bool, token: &TokenEntry) -> Result<Response> {
    let body = req
        .body
        .as_ref()
        .and_then(ByteStream::take)
        .ok_or_else(|| Error::bad("the snapshot must be sent as the request body"))?;
    let spool = tempfile::tempfile().map_err(|e| {
        Error::Internal(format!(
            "snapshot restore: cannot create a spool file in the temporary directory: {e}"
        ))
    })?;
    let here = snapshot::store_id(&*core.barrier.keyring()?);
    let (id, room) = (here.clone(), spool_room());
    // Judged on the metadata, before the state is read: another store's
    // snapshot (unless forced), or one the spool cannot hold, costs nothing.
    let accept = move |meta: &snapshot::Meta| -> Result<()> {
        if !force && meta.store_id != id {
            return Err(Error::bad(format!(
                "the snapshot was taken from another store (its id is {}, this store's is {id}); \
                 use snapshot-force (coffer operator snapshot restore -force) to restore it anyway",
                meta.store_id
            )));
        }
        if room.is_some_and(|free| meta.state_bytes > free) {
            return Err(Error::bad(format!(
                "the snapshot holds {} bytes, more than the temporary directory has free for \
                 checking it before it is installed",
                meta.state_bytes
            )));
        }
        Ok(())
    };
    let verified = tokio::task::spawn_blocking(move || {
        snapshot::read_archive(ChannelReader::new(body), spool, &accept)
    })
    .await
    .map_err(|e| Error::Internal(format!("snapshot restore: {e}")))??;
    if !force {
        let keyring = core.barrier.keyring()?;
        if verified.meta.store_id != here || !verified.opens_with(&keyring) {
            return Err(Error::bad(format!(
                "the snapshot was taken from another store (its id is {}, this store's is {here}), \
                 or with other unseal keys: its SHA256SUMS.sealed does not open with this store's \
                 keyring; use snapshot-force (coffer operator snapshot restore -force) to restore \
                 it anyway",
                verified.meta.store_id
            )));
        }
    }
    let meta = verified.meta.clone();
    let event = json!({
        "store_id": meta.store_id,
        "keys": meta.keys,
        "created_at": meta.created_at,
        "forced": force,
        "replaced_store_id": here,
    });
    tracing::warn!(
        keys = meta.keys,
        created_at = %meta.created_at,
        forced = force,
        "restoring a snapshot: sealing and replacing the whole store"
    );
    let (items_tx, items) = tokio::sync::mpsc::channel(coffer_storage::snapshot::CHANNEL_BATCHES);
    let replay = tokio::task::spawn_blocking(move || verified.replay(&items_tx));
    let imported = core.replace_store(items, token, event).await;
    let replayed = replay
        .await
        .map_err(|e| Error::Internal(format!("snapshot restore: {e}")))?;
    match (imported, replayed) {
        (Ok(n), Ok(_)) => {
            tracing::warn!(keys = n, "snapshot restored; the server is sealed");
            Ok(Response::data(json!({
                "keys": n,
                "store_id": meta.store_id,
                "created_at": meta.created_at,
                "sealed": true,
            })))
        }
        (Err(e), _) | (Ok(_), Err(e)) => {
            tracing::error!(error = %e, "snapshot restore failed; the store is unchanged");
            Err(Error::Status {
                code: 500,
                errors: vec![format!(
                    "the snapshot could not be installed and the store is unchanged; the server \
                     is sealed: unseal it with its current keys (request failed: {})",
                    if e.is_internal() {
                        "storage error, see the server log".to_string()
                    } else {
                        e.to_string()
                    }
                )],
            })
        }
    }
}

/// Bytes free in the temporary directory, where the upload is spooled
/// (`None` when the platform cannot tell).
fn spool_room() -> Option<u64> {
    let st = rustix::fs::statvfs(std::env::temp_dir()).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

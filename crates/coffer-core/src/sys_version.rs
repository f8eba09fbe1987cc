//! `sys/version-history`: the Coffer versions this store has run, each
//! recorded once (under `core/versions/<version>`, inside the barrier) at
//! the first unseal by a binary of that version, with the version that ran
//! before it.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map};

use crate::barrier::Barrier;
use crate::core::VERSION;
use crate::util::rfc3339;
use crate::{Error, Operation, Request, Response, Result};

/// Where the records live.
const PREFIX: &str = "core/versions/";

/// One version's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct VersionRecord {
    /// Unix seconds of the first unseal by this version.
    installed: i64,
    /// The latest version recorded before this one, if any.
    previous: Option<String>,
}

async fn records(barrier: &Barrier) -> Result<Vec<(String, VersionRecord)>> {
    let mut out = Vec::new();
    for version in barrier.list(PREFIX).await? {
        let Some(bytes) = barrier.get(&format!("{PREFIX}{version}")).await? else {
            continue;
        };
        let record: VersionRecord = serde_json::from_slice(&bytes)
            .map_err(|e| Error::corrupt_json(&format!("version record {version:?}"), &e))?;
        out.push((version, record));
    }
    // Oldest first; the name breaks ties so the order is stable.
    out.sort_by(|a, b| (a.1.installed, &a.0).cmp(&(b.1.installed, &b.0)));
    Ok(out)
}

/// Records the running version unless it is recorded already. Called at
/// every unseal, under the admin lock.
pub(crate) async fn record(barrier: &Barrier) -> Result<()> {
    let key = format!("{PREFIX}{VERSION}");
    if barrier.get(&key).await?.is_some() {
        return Ok(());
    }
    let previous = records(barrier).await?.pop().map(|(v, _)| v);
    let record = VersionRecord {
        installed: crate::util::now().timestamp(),
        previous,
    };
    let bytes = serde_json::to_vec(&record).map_err(|e| Error::encode("the version record", e))?;
    barrier.put(&key, &bytes).await?;
    tracing::info!(version = VERSION, "version recorded in the version history");
    Ok(())
}

/// Answers `sys/version-history` (a LIST), oldest version first.
pub(crate) async fn handle(barrier: &Barrier, req: &Request) -> Result<Response> {
    if req.operation != Operation::List {
        return Err(Error::UnsupportedOperation);
    }
    let all = records(barrier).await?;
    let mut info = Map::new();
    let mut keys = Vec::new();
    for (version, r) in all {
        let installed = chrono::DateTime::from_timestamp(r.installed, 0)
            .map(|t| rfc3339(&t))
            .unwrap_or_default();
        info.insert(
            version.clone(),
            json!({"previous_version": r.previous, "timestamp_installed": installed}),
        );
        keys.push(version);
    }
    Ok(Response::data(json!({"keys": keys, "key_info": info})))
}

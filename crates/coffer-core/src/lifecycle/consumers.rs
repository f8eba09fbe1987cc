//! The consumers of a secret: the agents and `coffer run --watch`
//! processes that render it report which version they hold, so that a
//! rotation can wait for them (`rotation.consumer_wait`) and the inventory
//! can show who holds what.
//!
//! `POST <mount>/consumers/<path>` with `{"consumer_id", "version", "kind"}`
//! is judged by the ACL as a `read` of `<mount>/data/<path>`: whoever may
//! read a secret may say it holds it. A record is bound to the reporter: it
//! is kept under the reporting token's entity (or, without one, its
//! accessor) together with the consumer id, so one token can never write
//! over another's record. Only version numbers are sent and kept.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::store;
use crate::barrier::View;
use crate::engine::EngineCtx;
use crate::engines::EngineExt;
use crate::mounts::Mounted;
use crate::token::TokenEntry;
use crate::util::{now, rfc3339, Params};
use crate::{Error, Request, Response, Result};

/// Longest `rotation.consumer_wait`: a rotation (and the `rotate` request
/// that started it) is never held open longer.
pub const MAX_WAIT: u64 = 600;
/// Most consumer records one secret keeps.
pub const MAX_CONSUMERS: usize = 1000;
/// Most consumer records of one secret one reporter (entity or token)
/// holds: a reader cannot take every slot.
pub const MAX_CONSUMERS_PER_OWNER: usize = 16;
/// A consumer counts as live this long after its last report, unless the
/// rotation says otherwise (`rotation.consumer_freshness`).
pub const DEFAULT_FRESHNESS: u64 = 300;
/// How often consumers repeat their report while nothing changes.
pub const REPORT_INTERVAL_HINT: u64 = 60;
/// Records not refreshed for this long are dropped at the next report.
const FORGET_AFTER: i64 = 86_400;
/// Longest consumer id and kind.
const MAX_ID: usize = 128;

/// One consumer of a secret and the version it last said it holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Consumer {
    /// The id the consumer chose (`agent:host:pid`, ...).
    pub id: String,
    /// Who reported: `entity:<id>`, or for a token without an entity
    /// `token:<hash>` (the first 16 hex digits of the SHA-256 of its
    /// accessor: stable for the token, and no accessor is shown).
    pub owner: String,
    /// `agent`, `run`, or what the consumer calls itself.
    #[serde(default)]
    pub kind: String,
    /// The version it holds.
    pub version: u64,
    /// When it last reported.
    pub reported_at: DateTime<Utc>,
}

/// Storage key of a secret's consumer records (in the mount's view).
fn key(path: &str) -> String {
    format!("consumers/{path}")
}

/// The consumer records of `path`.
pub async fn load(view: &View, path: &str) -> Result<Vec<Consumer>> {
    Ok(view.get_json(&key(path)).await?.unwrap_or_default())
}

/// Whether `c` reported within `freshness` seconds of `at`.
pub fn is_live(c: &Consumer, at: DateTime<Utc>, freshness: u64) -> bool {
    c.reported_at + Duration::seconds(i64::try_from(freshness).unwrap_or(i64::MAX / 4_000)) >= at
}

/// The records as the API shows them, each with whether it is live.
pub fn to_json(list: &[Consumer], at: DateTime<Utc>, freshness: u64) -> Value {
    Value::Array(
        list.iter()
            .map(|c| {
                json!({
                    "consumer_id": c.id,
                    "owner": c.owner,
                    "kind": c.kind,
                    "version": c.version,
                    "reported_at": rfc3339(&c.reported_at),
                    "live": is_live(c, at, freshness),
                })
            })
            .collect(),
    )
}

/// The identity a report is bound to.
fn owner_of(token: &TokenEntry) -> String {
    if token.entity_id.is_empty() {
        let h = coffer_crypto::hash::sha256_hex(token.accessor.as_bytes());
        format!("token:{}", &h[..16])
    } else {
        format!("entity:{}", token.entity_id)
    }
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@/".contains(&b))
}

/// `POST <mount>/consumers/<path>`: records that the caller's consumer
/// holds `version` of the secret.
pub async fn report(
    token: Option<&TokenEntry>,
    m: &Mounted,
    req: &Request,
    path: &str,
) -> Result<Response> {
    let token = token.ok_or(Error::PermissionDenied)?;
    let p = Params(&req.data);
    let id = p
        .str("consumer_id")?
        .ok_or_else(|| Error::bad("consumer_id is required"))?;
    if !valid_id(id) {
        return Err(Error::bad(format!(
            "consumer_id must be 1 to {MAX_ID} letters, digits or -_.:@/"
        )));
    }
    let kind = p.str("kind")?.unwrap_or("");
    if kind.len() > 32 || !kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(Error::bad("kind must be at most 32 letters, digits or -"));
    }
    let version = p
        .u64("version")?
        .filter(|v| *v >= 1)
        .ok_or_else(|| Error::bad("version must be a version number (1 or more)"))?;
    let kv = m
        .engine
        .as_kv2()
        .ok_or_else(|| Error::bad("consumers report on KV v2 secrets"))?;
    let ctx = EngineCtx {
        view: &m.view,
        mount: &m.entry,
        token: None,
    };
    let latest = kv
        .latest_version(&ctx, path)
        .await?
        .ok_or(Error::NotFound)?;
    if version > latest {
        return Err(Error::bad(format!(
            "version {version} does not exist: the latest version is {latest}"
        )));
    }
    let owner = owner_of(token);
    let at = now();
    // A short lock of its own: reports never wait behind a rotation.
    let _guard = store::lock(&format!("consumers:{}", m.entry.uuid), path).await;
    let mut list = load(&m.view, path).await?;
    list.retain(|c| c.reported_at + Duration::seconds(FORGET_AFTER) >= at);
    match list.iter_mut().find(|c| c.id == id && c.owner == owner) {
        Some(c) => {
            c.version = version;
            c.kind = kind.to_string();
            c.reported_at = at;
        }
        None => {
            if list.iter().filter(|c| c.owner == owner).count() >= MAX_CONSUMERS_PER_OWNER {
                return Err(Error::Status {
                    code: 429,
                    errors: vec![format!(
                        "this reporter already has {MAX_CONSUMERS_PER_OWNER} consumers of {path}"
                    )],
                });
            }
            if list.len() >= MAX_CONSUMERS {
                return Err(Error::Status {
                    code: 429,
                    errors: vec![format!(
                        "{path} already has {MAX_CONSUMERS} consumers reporting"
                    )],
                });
            }
            list.push(Consumer {
                id: id.to_string(),
                owner: owner.clone(),
                kind: kind.to_string(),
                version,
                reported_at: at,
            });
        }
    }
    m.view.put_json(&key(path), &list).await?;
    Ok(Response::data(json!({
        "consumer_id": id,
        "owner": owner,
        "version": version,
        "reported_at": rfc3339(&at),
        "report_interval": REPORT_INTERVAL_HINT,
    })))
}

/// Drops a secret's consumer records (with its lifecycle record).
pub async fn forget(view: &View, path: &str) -> Result<()> {
    view.delete(&key(path)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(valid_id("agent:web-1:4242"));
        assert!(!valid_id(""));
        assert!(!valid_id("a b"));
        assert!(!valid_id(&"x".repeat(129)));
    }

    #[test]
    fn liveness_follows_the_window() {
        let at = now();
        let c = Consumer {
            id: "a".into(),
            owner: "accessor:x".into(),
            kind: "run".into(),
            version: 1,
            reported_at: at - Duration::seconds(100),
        };
        assert!(is_live(&c, at, 300));
        assert!(!is_live(&c, at, 60));
    }
}

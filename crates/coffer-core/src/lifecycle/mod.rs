//! The secret lifecycle, beyond Vault: owners, types and origins, rotation
//! cadence, staged rotation with rollback, certificate expiry, the inventory,
//! and emergency revocation of a compromised secret.
//!
//! API (Coffer's own, in Vault's style; the paths sit inside each KV v2
//! mount, so ACL policies cover them like `data/` and `metadata/`):
//! - `<mount>/lifecycle/<path>`: GET, POST (merge fields), DELETE; LIST `<mount>/lifecycle/<dir>`;
//! - `<mount>/rotate/<path>`: POST rotates now;
//! - `<mount>/consumers/<path>`: POST `{consumer_id, version, kind}`, a
//!   consumer's report of the version it holds, judged as a `read` of
//!   `<mount>/data/<path>` ([`consumers`]);
//! - `sys/coffer/inventory`: GET every managed secret with its status,
//!   filtered by `status` (due, overdue, failing, ...), `owner`, `type`, `origin`;
//! - `sys/coffer/revoke-compromised`: POST `{path, reason, since}`.
//!
//! Setting or changing a secret's rotator (its kind or settings) needs
//! `sudo` on `<mount>/lifecycle/<path>` besides `update`: a rotator acts
//! with the server's privileges. Command, webhook and postgres rotators are
//! declared by the operator in the server configuration ([`registry`]); a
//! record only names one.

pub mod cert;
pub mod consumers;
pub mod model;
mod pg;
pub mod pki;
pub mod registry;
pub mod rotate;
pub mod rotators;
pub mod store;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use parking_lot::RwLock;

use crate::audit::AuditBroker;
use crate::barrier::Barrier;
use crate::engine::EngineCtx;
use crate::engines::EngineExt;
use crate::events::EventBus;
use crate::expiration::Expiration;
use crate::mounts::{Mounted, Router};
use crate::password::PasswordPolicies;
use crate::token::{TokenEntry, TokenStore};
use crate::util::{now, rfc3339, Params};
use crate::{Error, Operation, Request, Response, Result};
use model::{Lifecycle, Rotation, Status, ROTATORS, SECRET_TYPES};

/// What the lifecycle needs of the kernel: the stores it reads, and the
/// few actions (ACL, revocation of tokens and leases, audit) that span
/// subsystems. The lifecycle never sees the core itself; the core
/// implements this (`backends.rs`).
#[async_trait::async_trait]
pub trait Kernel: Send + Sync + 'static {
    /// The rotators the operator declared (`[lifecycle.rotators]`).
    fn rotators(&self) -> &registry::RotatorRegistry;
    /// Stored password policies a rotator may name.
    fn passwords(&self) -> &PasswordPolicies;
    /// The mount table.
    fn router(&self) -> &RwLock<Router>;
    /// The barrier (the procedure's records of revocations).
    fn barrier(&self) -> &Arc<Barrier>;
    /// The token store.
    fn tokens(&self) -> &TokenStore;
    /// Leases (counted for a drill).
    fn leases(&self) -> &Expiration;
    /// Audit devices and access records.
    fn audit(&self) -> &AuditBroker;
    /// The change-event channel.
    fn events(&self) -> &EventBus;
    /// Whether the core is sealed now.
    fn is_sealed(&self) -> bool;
    /// The ACL of `token` (identity policies included).
    async fn token_acl(&self, token: &TokenEntry) -> Result<Arc<crate::policy::Acl>>;
    /// Revokes the token whose hash is `hash` and its children.
    async fn revoke_token_tree(&self, hash: &str) -> Result<()>;
    /// Revokes every lease under `prefix` (forced); returns how many.
    async fn revoke_leases_under(&self, prefix: &str) -> Result<usize>;
    /// Records a lifecycle event (`name`, by `actor`) in the audit trail.
    async fn audit_event(
        &self,
        name: &str,
        actor: Option<&TokenEntry>,
        details: Value,
    ) -> Result<()> {
        self.audit().event(name, actor, details).await
    }
}

/// Most rotations the scheduler runs at once.
pub const MAX_CONCURRENT_ROTATIONS: usize = 4;

/// Whether `rel` (relative to a KV v2 mount) is a lifecycle endpoint.
pub fn is_lifecycle_path(rel: &str) -> bool {
    rel.starts_with("lifecycle/")
        || rel == "lifecycle"
        || rel.starts_with("rotate/")
        || rel.starts_with("consumers/")
}

/// The object the ACL judges for a lifecycle route, when not its own path:
/// a consumer's report is a `read` of the secret's data.
pub fn acl_object(req: &Request, rel: &str) -> Option<(Operation, String)> {
    let path = rel.strip_prefix("consumers/")?;
    matches!(req.operation, Operation::Create | Operation::Update)
        .then(|| (Operation::Read, format!("data/{path}")))
}

/// The freshness window of a record's consumers.
fn freshness(lc: &Lifecycle) -> u64 {
    lc.rotation
        .as_ref()
        .and_then(|r| r.consumer_freshness)
        .unwrap_or(consumers::DEFAULT_FRESHNESS)
}

/// The certificate in the current version of `path`, if any.
async fn current_cert(m: &Mounted, path: &str) -> Result<Option<model::CertInfo>> {
    let Some(kv) = m.engine.as_kv2() else {
        return Ok(None);
    };
    let ctx = EngineCtx {
        view: &m.view,
        mount: &m.entry,
        token: None,
    };
    Ok(kv
        .read_stage(&ctx, path, None)
        .await?
        .and_then(|(_, data)| cert::find_in(&data)))
}

/// Handles `<mount>/lifecycle/...` and `<mount>/rotate/...`.
pub async fn handle(
    kernel: &dyn Kernel,
    token: Option<&TokenEntry>,
    m: &Mounted,
    req: &Request,
    rel: &str,
) -> Result<Response> {
    if let Some(path) = rel.strip_prefix("consumers/") {
        if !matches!(req.operation, Operation::Create | Operation::Update) {
            return Err(Error::UnsupportedOperation);
        }
        check_path(path)?;
        let mut r = consumers::report(token, m, req, path).await?;
        r.mount_type = m.entry.kind.clone();
        return Ok(r);
    }
    if let Some(path) = rel.strip_prefix("rotate/") {
        if !matches!(req.operation, Operation::Create | Operation::Update) {
            return Err(Error::UnsupportedOperation);
        }
        check_path(path)?;
        let reason = Params(&req.data)
            .str("reason")?
            .unwrap_or("requested")
            .to_string();
        let out = rotate::rotate(kernel, token, m, path, &reason).await?;
        let mut r = Response::data(json!({
            "old_version": out.old_version,
            "new_version": out.new_version,
            "rotator": out.rotator,
        }));
        r.mount_type = m.entry.kind.clone();
        return Ok(r);
    }
    let path = rel
        .strip_prefix("lifecycle")
        .unwrap_or("")
        .trim_start_matches('/');
    if req.operation == Operation::List {
        let dir = if path.is_empty() || path.ends_with('/') {
            path.to_string()
        } else {
            format!("{path}/")
        };
        return Response::list(m.view.list(&store::key(&dir)).await?);
    }
    check_path(path)?;
    let mut resp = match req.operation {
        Operation::Read => {
            let lc = store::load(&m.view, path).await?.ok_or(Error::NotFound)?;
            let lc = with_declared_lead(kernel, lc);
            let cert = current_cert(m, path).await?;
            let at = now();
            let mut v = lc.to_json(at, cert.as_ref());
            let list = consumers::load(&m.view, path).await?;
            v["consumers"] = consumers::to_json(&list, at, freshness(&lc));
            Response::data(v)
        }
        Operation::Create | Operation::Update | Operation::Patch => {
            // A running rotation (which may be waiting for its consumers)
            // holds the record: the write is refused, never queued behind it.
            let _guard = store::try_lock(&m.entry.uuid, path).ok_or_else(|| Error::Status {
                code: 409,
                errors: vec![format!(
                    "a rotation of {}{path} is in flight: write its lifecycle record when it has finished",
                    m.entry.path
                )],
            })?;
            let mut lc = store::load(&m.view, path).await?.unwrap_or_default();
            let before = rotator_of(&lc);
            apply(&mut lc, &req.data, kernel.rotators())?;
            let after = rotator_of(&lc);
            // `manual` runs nothing: choosing it (like removing the policy) needs no sudo.
            if after.as_ref().is_some_and(|(r, _)| r != "manual") && after != before {
                require_sudo(kernel, token, req).await?;
            }
            if lc.created.is_none() {
                lc.created = Some(now());
            }
            save(kernel, m, path, &mut lc).await?;
            tracing::info!(path = %format!("{}{path}", m.entry.path), "lifecycle metadata written");
            Response::empty()
        }
        Operation::Delete => {
            forget_secret(&m.view, path).await?;
            Response::empty()
        }
        Operation::List => unreachable!("handled above"),
    };
    resp.mount_type = m.entry.kind.clone();
    Ok(resp)
}

/// Drops the lifecycle record and the consumer records of `path` (in its
/// KV v2 mount's view): when the record is deleted, and when the secret's
/// metadata is (the secret with all its versions).
async fn forget_secret(view: &crate::barrier::View, path: &str) -> Result<()> {
    store::delete(view, path).await?;
    consumers::forget(view, path).await
}

/// Saves `lc` as the record of `path`, with its due-index entry at the
/// time the scheduler must next look at it ([`start_time`]).
pub(crate) async fn save(
    kernel: &dyn Kernel,
    m: &Mounted,
    path: &str,
    lc: &mut Lifecycle,
) -> Result<()> {
    let when = start_time(kernel, m, path, lc)
        .await?
        .map(|t| t.timestamp());
    store::save(&m.view, path, lc, when).await
}

/// What a successful KV v2 request `op` on `rel` means for the secret's
/// lifecycle: a deleted secret (its metadata, with every version) loses its
/// record and consumers, or the scheduler would write it back with a
/// generated value; a new, deleted, restored or destroyed version may carry
/// another certificate, so the record's due time is recomputed.
pub(crate) async fn after_kv_write(
    kernel: &dyn Kernel,
    m: &Mounted,
    op: Operation,
    rel: &str,
) -> Result<()> {
    if matches!(op, Operation::Read | Operation::List) {
        return Ok(());
    }
    let Some((endpoint, path)) = rel.split_once('/') else {
        return Ok(());
    };
    match endpoint {
        "metadata" if op == Operation::Delete => forget_secret(&m.view, path).await,
        "data" | "delete" | "undelete" | "destroy" => secret_changed(kernel, m, path).await,
        _ => Ok(()),
    }
}

/// After a write to the secret at `path`: its due-index entry moves to
/// its due time now. A rotation in flight holds the record and re-indexes
/// it when it ends.
async fn secret_changed(kernel: &dyn Kernel, m: &Mounted, path: &str) -> Result<()> {
    // Most secrets have no record: looked up before the lock is taken, so
    // their writes never contend with lifecycle writes.
    let managed = store::load(&m.view, path)
        .await?
        .is_some_and(|lc| lc.rotation.is_some() && lc.state.in_flight.is_none());
    if !managed {
        return Ok(());
    }
    let Some(_guard) = store::try_lock(&m.entry.uuid, path) else {
        return Ok(());
    };
    if let Some(mut lc) = store::load(&m.view, path).await? {
        let when = start_time(kernel, m, path, &lc)
            .await?
            .map(|t| t.timestamp());
        if when != lc.state.due_index {
            store::save(&m.view, path, &mut lc, when).await?;
        }
    }
    Ok(())
}

/// When the scheduler starts the next rotation of `lc` (its due time plus
/// a stable jitter, not before the backoff ends); `None` when it starts
/// none (no policy, the `manual` rotator, or a rotation in flight).
/// Windows are not counted: a due record outside its window stays due.
async fn start_time(
    kernel: &dyn Kernel,
    m: &Mounted,
    path: &str,
    lc: &Lifecycle,
) -> Result<Option<DateTime<Utc>>> {
    if lc.state.in_flight.is_some() {
        return Ok(None);
    }
    let Some(rotation) = lc.rotation.as_ref().filter(|r| r.rotator != "manual") else {
        return Ok(None);
    };
    let lc = with_declared_lead(kernel, lc.clone());
    let cert = current_cert(m, path).await?;
    let Some(due) = lc.next_due(cert.as_ref()) else {
        return Ok(None);
    };
    // A certificate's rotation spreads within a twentieth of its lead time.
    let spread = match rotation.rotator.as_str() {
        "pki" => lc.certificate_lead_time,
        _ => None,
    };
    let jitter = jitter_secs(
        &m.entry.uuid,
        path,
        rotation.period.or(spread).unwrap_or(3600),
    );
    let start = due + chrono::Duration::seconds(jitter);
    Ok(Some(match lc.state.next_attempt {
        Some(t) if t > start => t,
        _ => start,
    }))
}

/// What a record's rotation runs: the rotator and its settings.
fn rotator_of(lc: &Lifecycle) -> Option<(String, Map<String, Value>)> {
    lc.rotation
        .as_ref()
        .map(|r| (r.rotator.clone(), r.settings.clone()))
}

/// Refuses (403) unless `token` holds `sudo` on the request's path.
async fn require_sudo(
    kernel: &dyn Kernel,
    token: Option<&TokenEntry>,
    req: &Request,
) -> Result<()> {
    let denied = || Error::Status {
        code: 403,
        errors: vec![format!(
            "permission denied: setting or changing the rotator of a secret needs sudo on {}",
            req.path
        )],
    };
    let token = token.ok_or_else(denied)?;
    let acl = kernel.token_acl(token).await?;
    let op = match req.operation {
        Operation::Create => crate::policy::Operation::Create,
        Operation::Patch => crate::policy::Operation::Patch,
        _ => crate::policy::Operation::Update,
    };
    match acl.authorize_without_parameters(op, &req.path) {
        Ok(granted) if granted.sudo => Ok(()),
        _ => Err(denied()),
    }
}

fn check_path(path: &str) -> Result<()> {
    if path.is_empty() || path.ends_with('/') {
        return Err(Error::bad("a secret path is required"));
    }
    Ok(())
}

/// Merges the fields of a lifecycle write into `lc`, validating each;
/// command, webhook and postgres rotators must be declared in `registry`.
pub fn apply(
    lc: &mut Lifecycle,
    data: &Map<String, Value>,
    registry: &registry::RotatorRegistry,
) -> Result<()> {
    let p = Params(data);
    if let Some(v) = p.str("owner")? {
        lc.owner = v.trim().to_string();
    }
    if let Some(v) = p.str("secret_type")?.or(p.str("type")?) {
        if !SECRET_TYPES.contains(&v) {
            return Err(Error::bad(format!(
                "secret_type must be one of {}",
                SECRET_TYPES.join(", ")
            )));
        }
        lc.secret_type = v.to_string();
    }
    if let Some(v) = p.str("origin")? {
        // `imported`: moved into Coffer by `coffer scan --import` from where
        // it was found; who issued it (the vendor) may still be known.
        if !matches!(v, "internal" | "third_party" | "imported") {
            return Err(Error::bad(
                "origin must be internal, third_party or imported",
            ));
        }
        lc.origin = v.to_string();
    }
    if let Some(v) = p.str("vendor")? {
        lc.vendor = v.trim().to_string();
        if !lc.vendor.is_empty() && lc.origin.is_empty() {
            lc.origin = "third_party".into();
        }
    }
    if lc.origin == "third_party" && lc.vendor.is_empty() && p.has("origin") {
        return Err(Error::bad("a third_party secret needs a vendor"));
    }
    if let Some(v) = p.str("description")? {
        lc.description = v.to_string();
    }
    if p.has("expires_at") {
        lc.expires_at = match p.str("expires_at")? {
            Some("") | None => None,
            Some(s) => Some(
                DateTime::parse_from_rfc3339(s)
                    .map_err(|_| Error::bad("expires_at must be an RFC 3339 time"))?
                    .with_timezone(&Utc),
            ),
        };
    }
    if let Some(v) = p.str_list("lease_prefixes")? {
        lc.lease_prefixes = v;
    }
    if let Some(v) = p.duration("certificate_lead_time")? {
        lc.certificate_lead_time = Some(v);
    }
    match data.get("rotation") {
        None => {}
        Some(Value::Null) => lc.rotation = None,
        Some(Value::Object(r)) => {
            let rp = Params(r);
            let mut rot = lc.rotation.clone().unwrap_or(Rotation {
                rotator: "manual".into(),
                ..Default::default()
            });
            if let Some(period) = r.get("period") {
                rot.period = match period {
                    Value::Null => None,
                    _ => Some(rp.duration("period")?.filter(|p| *p >= 1).ok_or_else(|| {
                        Error::bad("rotation.period must be a positive duration such as 90d")
                    })?),
                };
            }
            if let Some(cron) = r.get("cron") {
                rot.cron = match cron {
                    Value::Null => None,
                    Value::String(s) if s.is_empty() => None,
                    Value::String(s) => {
                        croner::Cron::new(s)
                            .with_seconds_optional()
                            .parse()
                            .map_err(|e| Error::bad(format!("rotation.cron: {e}")))?;
                        Some(s.clone())
                    }
                    _ => return Err(Error::bad("rotation.cron must be a string")),
                };
            }
            if r.contains_key("consumer_wait") {
                rot.consumer_wait = rp.duration("consumer_wait")?.filter(|s| *s > 0);
                if rot.consumer_wait.is_some_and(|w| w > consumers::MAX_WAIT) {
                    return Err(Error::bad(format!(
                        "rotation.consumer_wait must be at most {}",
                        crate::util::format_duration(consumers::MAX_WAIT)
                    )));
                }
            }
            if r.contains_key("consumer_freshness") {
                rot.consumer_freshness = rp.duration("consumer_freshness")?.filter(|s| *s > 0);
            }
            if let Some(w) = r.get("window") {
                rot.window = match w {
                    Value::String(s) if !s.is_empty() => {
                        model::in_window(s, now())?;
                        Some(s.clone())
                    }
                    _ => None,
                };
            }
            let mut rotator_changed = false;
            if let Some(rotator) = rp.str("rotator")? {
                if !ROTATORS.contains(&rotator) {
                    return Err(Error::bad(format!(
                        "rotation.rotator must be one of {}",
                        ROTATORS.join(", ")
                    )));
                }
                rotator_changed = rot.rotator != rotator;
                rot.rotator = rotator.to_string();
            }
            if let Some(s) = rp.object("settings")? {
                merge_settings(&mut rot.settings, s, rotator_changed);
            } else if rotator_changed {
                // Another rotator's settings mean nothing to this one.
                rot.settings.clear();
            }
            rotators::validate(registry, &rot.rotator, &rot.settings)?;
            if rot.period.is_some() && rot.cron.is_some() {
                return Err(Error::bad(
                    "rotation: give a period or a cron expression, not both",
                ));
            }
            lc.rotation = Some(rot);
        }
        Some(_) => return Err(Error::bad("rotation must be an object")),
    }
    Ok(())
}

/// Merges a write's `rotation.settings` into the record's: each key given
/// replaces that key, a `null` removes it, keys not given are kept. When the
/// write also changes the rotator, the old rotator's settings are dropped
/// first (they belong to another kind of rotator).
fn merge_settings(
    settings: &mut Map<String, Value>,
    given: &Map<String, Value>,
    rotator_changed: bool,
) {
    if rotator_changed {
        settings.clear();
    }
    for (k, v) in given {
        if v.is_null() {
            settings.remove(k);
        } else {
            settings.insert(k.clone(), v.clone());
        }
    }
}

/// One row of the inventory.
async fn inventory_row(
    m: &Mounted,
    path: &str,
    lc: &Lifecycle,
    at: DateTime<Utc>,
) -> Result<Value> {
    let cert = current_cert(m, path).await?;
    let status = lc.status(at, cert.as_ref());
    let held = consumers::load(&m.view, path).await?;
    Ok(json!({
        "consumers": consumers::to_json(&held, at, freshness(lc)),
        "path": format!("{}{path}", m.entry.path),
        "owner": lc.owner,
        "secret_type": lc.secret_type,
        "origin": lc.origin,
        "vendor": lc.vendor,
        "status": status.as_str(),
        "rotator": lc.rotation.as_ref().map(|r| r.rotator.clone()),
        "next_due": lc.next_due(cert.as_ref()).map(|d| rfc3339(&d)),
        "last_rotated": lc.state.last_rotated.map(|d| rfc3339(&d)),
        "last_error": lc.state.last_error,
        "certificate_not_after": cert.map(|c| rfc3339(&c.not_after)),
    }))
}

/// `lc` with the lead time of its declared `pki` rotator when the record
/// sets none itself.
fn with_declared_lead(kernel: &dyn Kernel, mut lc: Lifecycle) -> Lifecycle {
    if lc.certificate_lead_time.is_some() {
        return lc;
    }
    let Some(r) = lc.rotation.as_ref().filter(|r| r.rotator == "pki") else {
        return lc;
    };
    let Some(name) = r.settings.get("name").and_then(Value::as_str) else {
        return lc;
    };
    if let Ok(registry::Declared::Pki(p)) = kernel.rotators().lookup("pki", name) {
        lc.certificate_lead_time = Some(p.lead_time);
    }
    lc
}

fn kv2_mounts(kernel: &dyn Kernel) -> Vec<Mounted> {
    kernel
        .router()
        .read()
        .entries()
        .filter(|m| m.engine.as_kv2().is_some())
        .cloned()
        .collect()
}

/// How many lifecycle secrets are due, overdue and failing now (overdue
/// ones are not counted as due), for `sys/metrics`.
pub(crate) async fn status_counts(kernel: &dyn Kernel) -> Result<(u64, u64, u64)> {
    let at = now();
    let (mut due, mut overdue, mut failing) = (0, 0, 0);
    for m in kv2_mounts(kernel) {
        for path in store::paths(&m.view).await? {
            let Some(lc) = store::load(&m.view, &path).await? else {
                continue;
            };
            let lc = with_declared_lead(kernel, lc);
            let cert = current_cert(&m, &path).await?;
            match lc.status(at, cert.as_ref()) {
                Status::Due => due += 1,
                Status::Overdue => overdue += 1,
                Status::Failing => failing += 1,
                _ => {}
            }
        }
    }
    Ok((due, overdue, failing))
}

/// `GET sys/coffer/inventory`: every secret with lifecycle metadata.
pub async fn inventory(kernel: &dyn Kernel, req: &Request) -> Result<Response> {
    let p = Params(&req.data);
    let want_status: Vec<String> = p.str_list("status")?.unwrap_or_default();
    let mut flags: Vec<&str> = Vec::new();
    for f in ["due", "overdue", "failing"] {
        if p.bool(f)?.unwrap_or(false) {
            flags.push(f);
        }
    }
    let owner = p.str("owner")?.filter(|s| !s.is_empty());
    let kind = p
        .str("type")?
        .or(p.str("secret_type")?)
        .filter(|s| !s.is_empty());
    let origin = p.str("origin")?.filter(|s| !s.is_empty());
    let at = now();
    let mut rows = Vec::new();
    for m in kv2_mounts(kernel) {
        for path in store::paths(&m.view).await? {
            let Some(lc) = store::load(&m.view, &path).await? else {
                continue;
            };
            let lc = with_declared_lead(kernel, lc);
            let row = inventory_row(&m, &path, &lc, at).await?;
            let status = row["status"].as_str().unwrap_or("");
            // --due also lists overdue secrets: they are due too.
            let status_ok = (want_status.is_empty() && flags.is_empty())
                || want_status.iter().any(|s| s == status)
                || flags
                    .iter()
                    .any(|f| *f == status || (*f == "due" && status == "overdue"));
            if !status_ok
                || owner.is_some_and(|o| o != lc.owner)
                || kind.is_some_and(|k| k != lc.secret_type)
                || origin.is_some_and(|o| o != lc.origin)
            {
                continue;
            }
            rows.push(row);
        }
    }
    Ok(Response::data(json!({ "secrets": rows })))
}

/// One pass of the scheduler: starts due rotations (within their window,
/// after their backoff, with jitter), the most overdue first, at most
/// [`MAX_CONCURRENT_ROTATIONS`] at a time.
///
/// A pass reads only the due index's entries due by now ([`store::due`]).
/// The `first` pass after an unseal or a takeover reads every record
/// instead: it rolls back rotations the stop interrupted, and re-indexes
/// records written before the index existed or under another declared
/// lead time.
pub async fn schedule_pass(
    kernel: &Arc<dyn Kernel>,
    semaphore: &Arc<tokio::sync::Semaphore>,
    first: bool,
) -> Result<()> {
    let _timing = crate::telemetry::T_SCHEDULER_PASS.time();
    let at = now();
    // Every due rotation, with how far past due it is: the most overdue go
    // first, so a few secrets on a short period cannot starve the rest.
    let mut due_now: Vec<(i64, Mounted, String)> = Vec::new();
    for m in kv2_mounts(&**kernel) {
        let entries: Vec<(Option<i64>, String)> = if first {
            store::paths(&m.view)
                .await?
                .into_iter()
                .map(|p| (None, p))
                .collect()
        } else {
            store::due(&m.view, at.timestamp())
                .await?
                .into_iter()
                .map(|(w, p)| (Some(w), p))
                .collect()
        };
        for (entry, path) in entries {
            let Some(mut lc) = store::load(&m.view, &path).await? else {
                if let Some(when) = entry {
                    store::drop_due(&m.view, when, &path).await?;
                }
                continue;
            };
            if let Some(when) = entry.filter(|w| lc.state.due_index != Some(*w)) {
                store::drop_due(&m.view, when, &path).await?;
                continue;
            }
            if lc.state.in_flight.is_some() {
                if first {
                    // Nothing runs at start: an in-flight record is a rotation the stop interrupted.
                    rotate::recover(&**kernel, &m, &path).await?;
                }
                continue;
            }
            let start = start_time(&**kernel, &m, &path, &lc).await?;
            let when = start.map(|t| t.timestamp());
            if when != lc.state.due_index {
                // Written before the index, or its due time moved (a new
                // certificate): re-indexed under the secret's lock.
                if let Some(_guard) = store::try_lock(&m.entry.uuid, &path) {
                    store::save(&m.view, &path, &mut lc, when).await?;
                }
            }
            let Some(start) = start.filter(|s| *s <= at) else {
                continue;
            };
            if let Some(w) = lc.rotation.as_ref().and_then(|r| r.window.as_ref()) {
                if !model::in_window(w, at).unwrap_or(false) {
                    continue;
                }
            }
            due_now.push(((at - start).num_seconds(), m.clone(), path));
        }
    }
    due_now.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.2.cmp(&b.2)));
    for (_, m, path) in due_now {
        let Ok(permit) = semaphore.clone().try_acquire_owned() else {
            break;
        };
        let kernel2 = Arc::clone(kernel);
        // The rotation keeps the leader's fence (shared storage).
        tokio::spawn(coffer_storage::fence::inherit(async move {
            let _permit = permit;
            if let Err(e) = rotate::rotate(&*kernel2, None, &m, &path, "scheduled").await {
                tracing::debug!(error = %e, "scheduled rotation did not complete");
            }
        }));
    }
    Ok(())
}

/// A stable per-secret delay spreading rotations of equal cadence: up to
/// 5% of the period, at most five minutes.
fn jitter_secs(uuid: &str, path: &str, period: u64) -> i64 {
    let h = coffer_crypto::hash::sha256(format!("{uuid}/{path}").as_bytes());
    let span = (period / 20).min(300);
    if span == 0 {
        return 0;
    }
    (u64::from(u16::from_be_bytes([h[0], h[1]])) % span) as i64
}

/// `POST sys/coffer/revoke-compromised`: rotates the secret now, revokes the
/// leases issued from it and the tokens that read it since `since`, and
/// reports all of it.
pub async fn revoke_compromised(
    kernel: &dyn Kernel,
    req: &Request,
    caller: &TokenEntry,
) -> Result<Response> {
    let p = Params(&req.data);
    let full = p
        .str("path")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::bad("path is required"))?
        .trim_start_matches('/')
        .to_string();
    let reason = p
        .str("reason")?
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| Error::bad("reason is required"))?
        .to_string();
    let since = match p.str("since")? {
        None | Some("") => None,
        Some(s) => Some(match DateTime::parse_from_rfc3339(s) {
            Ok(t) => t.with_timezone(&Utc),
            Err(_) => {
                let d = crate::util::parse_duration(s).ok_or_else(|| {
                    Error::bad("since must be an RFC 3339 time or a duration such as 30d")
                })?;
                now() - chrono::Duration::seconds(i64::try_from(d).unwrap_or(i64::MAX / 4_000))
            }
        }),
    };
    let (m, rel) = {
        let router = kernel.router().read();
        let (m, rel) = router
            .route(&full)
            .ok_or_else(|| Error::bad(format!("no mount at {full}")))?;
        (m, rel.to_string())
    };
    if m.engine.as_kv2().is_none() {
        return Err(Error::bad("compromise revocation works on KV v2 secrets"));
    }
    let rel = rel.strip_prefix("data/").unwrap_or(&rel).to_string();
    let lc = store::load(&m.view, &rel).await?.unwrap_or_default();
    if p.bool("drill")?.unwrap_or(false) {
        return drill(kernel, caller, &m, &rel, &lc, &reason, since).await;
    }
    let mut warnings = Vec::new();
    let rotated = if lc.rotation.as_ref().is_some_and(|r| r.rotator != "manual") {
        match rotate::rotate_with(
            kernel,
            Some(caller),
            &m,
            &rel,
            &format!("compromised: {reason}"),
            rotate::ConsumerWait::Never,
        )
        .await
        {
            Ok(o) => {
                if !o.left_behind.is_empty() {
                    warnings.push(format!(
                        "rotated without waiting for consumers; still on an older version: {}",
                        o.left_behind.join(", ")
                    ));
                }
                json!({"old_version": o.old_version, "new_version": o.new_version})
            }
            Err(e) => {
                warnings.push(format!("rotation failed: {e}"));
                Value::Null
            }
        }
    } else {
        warnings.push("no rotator configured: rotate the secret by hand".into());
        Value::Null
    };
    let mut leases = 0usize;
    for prefix in &lc.lease_prefixes {
        // A prefix is a directory, as in `sys/leases/revoke-prefix`:
        // `database/creds/app` reaches `database/creds/app/...`, never the
        // leases of a role named `app-admin`.
        let dir = format!("{}/", prefix.trim_end_matches('/'));
        leases += kernel.revoke_leases_under(&dir).await?;
    }
    let data_path = format!("{}data/{rel}", m.entry.path);
    let readers = kernel.audit().readers_since(&data_path, since).await?;
    let mut tokens = Vec::new();
    for accessor in readers {
        if accessor == caller.accessor {
            continue;
        }
        if let Some(e) = kernel.tokens().lookup_accessor(&accessor).await? {
            kernel.revoke_token_tree(&e.id_hash).await?;
            tokens.push(accessor);
        }
    }
    tracing::warn!(path = %data_path, leases, tokens = tokens.len(), "compromised secret revoked");
    // One event links the rotation, the leases and the tokens, with the reason.
    kernel
        .audit_event(
            "secret_compromised",
            Some(caller),
            json!({
                "path": data_path,
                "reason": reason,
                "since": since.map(|t| rfc3339(&t)),
                "rotated": rotated,
                "lease_prefixes": lc.lease_prefixes,
                "leases_revoked": leases,
                "tokens_revoked": tokens,
            }),
        )
        .await?;
    crate::procedure::record_revocation(kernel.barrier(), &data_path, &reason, false, caller)
        .await?;
    let mut r = Response::data(json!({
        "path": data_path,
        "reason": reason,
        "rotated": rotated,
        "leases_revoked": leases,
        "tokens_revoked": tokens,
        "since": since.map(|t| rfc3339(&t)),
    }));
    r.warnings = warnings;
    Ok(r)
}

/// The drill of [`revoke_compromised`]: works out everything it would do
/// (the rotator that would run, and whether its settings still validate;
/// the leases under the secret's prefixes; the tokens that read it) without
/// rotating or revoking anything, and records the drill.
async fn drill(
    kernel: &dyn Kernel,
    caller: &TokenEntry,
    m: &Mounted,
    rel: &str,
    lc: &Lifecycle,
    reason: &str,
    since: Option<DateTime<Utc>>,
) -> Result<Response> {
    let data_path = format!("{}data/{rel}", m.entry.path);
    let mut warnings = Vec::new();
    let rotation = match lc.rotation.as_ref().filter(|r| r.rotator != "manual") {
        Some(r) => match rotators::validate(kernel.rotators(), &r.rotator, &r.settings) {
            Ok(()) => json!({"rotator": r.rotator, "ready": true}),
            Err(e) => {
                warnings.push(format!(
                    "the rotator would fail: {}",
                    e.messages().join("; ")
                ));
                json!({"rotator": r.rotator, "ready": false})
            }
        },
        None => {
            warnings
                .push("no rotator configured: the secret would have to be rotated by hand".into());
            Value::Null
        }
    };
    let mut leases = 0usize;
    for prefix in &lc.lease_prefixes {
        let dir = format!("{}/", prefix.trim_end_matches('/'));
        leases += kernel.leases().list(&dir).await?.len();
    }
    let tokens = kernel
        .audit()
        .readers_since(&data_path, since)
        .await?
        .into_iter()
        .filter(|a| *a != caller.accessor)
        .count();
    kernel
        .audit_event(
            "secret_compromise_drill",
            Some(caller),
            json!({"path": data_path, "reason": reason, "rotation": rotation,
               "leases_would_revoke": leases, "tokens_would_revoke": tokens}),
        )
        .await?;
    crate::procedure::record_revocation(kernel.barrier(), &data_path, reason, true, caller).await?;
    let mut r = Response::data(json!({
        "drill": true,
        "path": data_path,
        "reason": reason,
        "rotation": rotation,
        "leases_would_revoke": leases,
        "tokens_would_revoke": tokens,
        "since": since.map(|t| rfc3339(&t)),
    }));
    r.warnings = warnings;
    Ok(r)
}

/// Whether a status counts as needing attention (for summaries).
pub fn needs_attention(s: Status) -> bool {
    matches!(s, Status::Due | Status::Overdue | Status::Failing)
}

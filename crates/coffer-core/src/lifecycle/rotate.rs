//! Staged rotation of one secret, as AWS Secrets Manager does it: create a
//! pending version, set it where it is used, test it, then finish (pending
//! becomes current, current becomes previous). A failed step rolls back
//! (the pending version is destroyed, current is untouched), records the
//! reason and schedules a retry with backoff.

use chrono::{Duration, Utc};
use serde_json::{json, Value};

use super::model::{InFlight, Lifecycle, RotationRecord};
use super::rotators::{self, StepInput};
use super::store;
use super::Kernel;
use crate::audit::events::names::SECRET_ROTATED;
use crate::engine::EngineCtx;
use crate::engines::EngineExt;
use crate::mounts::Mounted;
use crate::token::TokenEntry;
use crate::{Error, Result};

/// Audit event of one rotation step.
pub const ROTATION_STEP: &str = "secret_rotation_step";
/// Audit event of a failed (rolled back) rotation.
pub const ROTATION_FAILED: &str = "secret_rotation_failed";

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The version current before.
    pub old_version: u64,
    /// The version current after.
    pub new_version: u64,
    /// The rotator that ran.
    pub rotator: String,
    /// Live consumers still holding an older version when an emergency
    /// rotation went ahead without waiting for them (`id (holds version N)`).
    pub left_behind: Vec<String>,
}

/// Whether a rotation's `set` step waits for its consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerWait {
    /// As the rotation policy says (`rotation.consumer_wait`).
    AsConfigured,
    /// Never: a compromise rotation goes ahead at once. Whoever may read
    /// a secret may report a consumer of it, so a leaked reader token
    /// could otherwise pin a consumer to the leaked version and keep it
    /// current; the consumers left behind are named instead.
    Never,
}

/// Retry delay after `failures` consecutive failures: 30 s doubling, at most 1 h.
pub fn backoff(failures: u32) -> Duration {
    let secs = 30u64.saturating_mul(1u64 << failures.saturating_sub(1).min(7));
    Duration::seconds(secs.min(3600) as i64)
}

fn metadata_doc(lc: &Lifecycle) -> Value {
    json!({
        "owner": lc.owner,
        "secret_type": lc.secret_type,
        "origin": lc.origin,
        "vendor": lc.vendor,
        "description": lc.description,
    })
}

/// Rotates `path` of the KV v2 mount `m` now. `reason` is recorded; every
/// step and the result are audit events naming the old and new versions.
/// An audit failure stops the rotation like any failed step.
pub async fn rotate(
    kernel: &dyn Kernel,
    actor: Option<&TokenEntry>,
    m: &Mounted,
    path: &str,
    reason: &str,
) -> Result<Outcome> {
    rotate_with(kernel, actor, m, path, reason, ConsumerWait::AsConfigured).await
}

/// [`rotate`], choosing whether the `set` step waits for consumers.
pub async fn rotate_with(
    kernel: &dyn Kernel,
    actor: Option<&TokenEntry>,
    m: &Mounted,
    path: &str,
    reason: &str,
    consumer_wait: ConsumerWait,
) -> Result<Outcome> {
    let kv = m
        .engine
        .as_kv2()
        .ok_or_else(|| Error::bad("rotation needs a KV v2 mount"))?;
    let ctx = EngineCtx {
        view: &m.view,
        mount: &m.entry,
        token: None,
    };
    let in_flight = || Error::Status {
        code: 409,
        errors: vec![format!("a rotation of {path} is already in flight")],
    };
    let registry = kernel.rotators();
    let _guard = store::try_lock(&m.entry.uuid, path).ok_or_else(in_flight)?;
    let full = format!("{}{}", m.entry.path, path);
    let mut lc = store::load(&m.view, path)
        .await?
        .ok_or_else(|| Error::Status {
            code: 404,
            errors: vec![format!(
                "{full} has no lifecycle record, so no rotator: give it one with \
             `coffer secret set -rotator=NAME {full}` (see `coffer secret set --help`)"
            )],
        })?;
    let rotation = lc.rotation.clone().ok_or_else(|| {
        Error::bad(format!(
            "{full} has no rotation policy: set one with `coffer secret set -rotator=NAME {full}`"
        ))
    })?;
    if lc.state.in_flight.is_some() {
        return Err(in_flight());
    }
    // The pending version is written with check-and-set against the latest
    // version seen here: a write that lands meanwhile fails the rotation
    // (rolled back) instead of being overwritten.
    let (cas, current_version, current) = match kv.read_for_rotation(&ctx, path).await? {
        (latest, Some((v, d))) => (latest, v, d),
        (latest, None) => (latest, 0, json!({})),
    };
    let full_path = full;
    lc.state.in_flight = Some(InFlight {
        step: "create".into(),
        current_version,
        pending_version: None,
        started: Utc::now(),
    });
    super::save(kernel, m, path, &mut lc).await?;
    let meta = metadata_doc(&lc);
    let mut pending = Value::Null;
    let mut pending_version = None;
    let mut set_ran = false;
    let mut left_behind = Vec::new();
    let mut failure: Option<(String, String)> = None;
    for step in rotators::STEPS {
        if let Some(f) = lc.state.in_flight.as_mut() {
            f.step = step.to_string();
            f.pending_version = pending_version;
        }
        super::save(kernel, m, path, &mut lc).await?;
        let input = StepInput {
            step,
            path: &full_path,
            current: &current,
            pending: &pending,
            metadata: &meta,
            settings: &rotation.settings,
            passwords: kernel.passwords(),
            router: Some(kernel.router()),
        };
        let result = if step == "set" {
            match rotators::run_step(registry, &rotation.rotator, &input).await {
                Ok(out) => match (rotation.consumer_wait, pending_version) {
                    (Some(_), Some(v)) if consumer_wait == ConsumerWait::Never => {
                        left_behind = behind(&m.view, path, v, &rotation).await?;
                        Ok(out)
                    }
                    (Some(wait), Some(v)) => {
                        announce(
                            kernel,
                            m,
                            path,
                            crate::events::ROTATION_PENDING,
                            current_version,
                            v,
                        );
                        wait_for_consumers(kernel, m, path, v, wait, &rotation)
                            .await
                            .map(|()| out)
                    }
                    _ => Ok(out),
                },
                Err(e) => Err(e),
            }
        } else if step == "finish" {
            match rotators::run_step(registry, &rotation.rotator, &input).await {
                Ok(_) => match pending_version {
                    Some(v) => kv.promote_pending(&ctx, path, v).await.map(|_| None),
                    None => Err(Error::bad("no pending version to finish")),
                },
                Err(e) => Err(e),
            }
        } else {
            rotators::run_step(registry, &rotation.rotator, &input).await
        };
        let step_event = json!({
            "path": full_path,
            "step": step,
            "result": if result.is_ok() { "success" } else { "failure" },
            "rotator": rotation.rotator,
            "old_version": current_version,
            "pending_version": pending_version,
            "reason": reason,
        });
        let result = match kernel.audit_event(ROTATION_STEP, actor, step_event).await {
            Ok(()) => result,
            Err(e) => Err(e),
        };
        match result {
            Ok(Some(value)) if step == "create" => {
                match kv.write_pending(&ctx, path, &value, cas).await {
                    Ok(v) => {
                        pending_version = Some(v);
                        pending = value;
                    }
                    Err(e) => {
                        failure = Some((step.into(), e.to_string()));
                        break;
                    }
                }
            }
            Ok(_) if step == "create" => {
                failure = Some((step.into(), "the rotator produced no pending value".into()));
                break;
            }
            Ok(_) => {
                if step == "set" {
                    set_ran = true;
                }
            }
            Err(e) => {
                if step == "set" {
                    set_ran = true;
                }
                failure = Some((step.into(), e.to_string()));
                break;
            }
        }
    }
    lc.state.in_flight = None;
    let at = Utc::now();
    match failure {
        None => {
            let new_version = pending_version.unwrap_or(current_version);
            lc.state.failures = 0;
            lc.state.last_error = None;
            lc.state.next_attempt = None;
            lc.state.last_rotated = Some(at);
            lc.record(RotationRecord {
                at,
                result: "success".into(),
                step: None,
                reason: reason.to_string(),
                old_version: current_version,
                new_version,
                rotator: rotation.rotator.clone(),
            });
            super::save(kernel, m, path, &mut lc).await?;
            crate::telemetry::rotation_done(true);
            tracing::info!(path = %full_path, old_version = current_version, new_version, rotator = %rotation.rotator, "secret rotated");
            kernel.audit_event(
                SECRET_ROTATED,
                actor,
                json!({"path": full_path, "old_version": current_version, "new_version": new_version, "rotator": rotation.rotator, "result": "success", "reason": reason}),
            )
            .await?;
            let data_path = format!("{}data/{path}", m.entry.path);
            let event_meta = crate::events::metadata([
                ("path", data_path.clone()),
                ("data_path", data_path.clone()),
                ("secret", full_path.clone()),
                ("current_version", new_version.to_string()),
                ("previous_version", current_version.to_string()),
                ("rotator", rotation.rotator.clone()),
                ("operation", "rotation-finish".to_string()),
            ]);
            kernel.events().publish(
                crate::events::ROTATION_FINISH,
                Some(&*m.entry),
                &data_path,
                event_meta,
            );
            Ok(Outcome {
                old_version: current_version,
                new_version,
                rotator: rotation.rotator,
                left_behind,
            })
        }
        Some((step, why)) => {
            if set_ran {
                let input = StepInput {
                    step: "rollback",
                    path: &full_path,
                    current: &current,
                    pending: &pending,
                    metadata: &meta,
                    settings: &rotation.settings,
                    passwords: kernel.passwords(),
                    router: Some(kernel.router()),
                };
                if let Err(e) = rotators::run_step(registry, &rotation.rotator, &input).await {
                    tracing::warn!(path = %full_path, error = %e, "rotation rollback step failed");
                }
            }
            kv.discard_pending(&ctx, path).await?;
            if let Some(v) = pending_version {
                announce(
                    kernel,
                    m,
                    path,
                    crate::events::ROTATION_ROLLBACK,
                    current_version,
                    v,
                );
            }
            lc.state.failures = lc.state.failures.saturating_add(1);
            lc.state.last_error = Some(format!("step {step}: {why}"));
            lc.state.next_attempt = Some(at + backoff(lc.state.failures));
            lc.record(RotationRecord {
                at,
                result: "failure".into(),
                step: Some(step.clone()),
                reason: why.clone(),
                old_version: current_version,
                new_version: current_version,
                rotator: rotation.rotator.clone(),
            });
            super::save(kernel, m, path, &mut lc).await?;
            crate::telemetry::rotation_done(false);
            tracing::warn!(path = %full_path, step = %step, reason = %why, "rotation failed; current version kept");
            kernel.audit_event(
                ROTATION_FAILED,
                actor,
                json!({"path": full_path, "step": step, "why": why, "old_version": current_version, "new_version": current_version, "rotator": rotation.rotator, "result": "rolled back", "reason": reason}),
            )
            .await?;
            Err(Error::bad(format!(
                "rotation of {full_path} failed in step {step}: {why}"
            )))
        }
    }
}

/// Publishes a rotation event (`rotation-pending`, `rotation-rollback`)
/// for `path`: versions only, never a value.
fn announce(kernel: &dyn Kernel, m: &Mounted, path: &str, kind: &str, current: u64, pending: u64) {
    let data_path = format!("{}data/{path}", m.entry.path);
    let meta = crate::events::metadata([
        ("path", data_path.clone()),
        ("data_path", data_path.clone()),
        ("secret", format!("{}{path}", m.entry.path)),
        ("current_version", current.to_string()),
        ("pending_version", pending.to_string()),
        ("operation", kind.trim_start_matches("coffer/").to_string()),
    ]);
    kernel
        .events()
        .publish(kind, Some(&*m.entry), &data_path, meta);
}

/// How often the wait for consumers looks at their reports.
const CONSUMER_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// The `set` step's wait: returns once every live consumer of `path` (one
/// that reported within the freshness window) holds `version`, or fails
/// after `wait` seconds naming those that do not. It holds no lock but the
/// rotation's own per-secret one (reports take another), reads the
/// consumers' records from storage (so a report to any node counts), and
/// gives up when the core is sealed. A process death here leaves the
/// rotation in flight at step `set`, which [`recover`] rolls back.
async fn wait_for_consumers(
    kernel: &dyn Kernel,
    m: &Mounted,
    path: &str,
    version: u64,
    wait: u64,
    rotation: &super::model::Rotation,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(wait);
    loop {
        if kernel.is_sealed() {
            return Err(Error::bad(
                "the server was sealed while waiting for consumers",
            ));
        }
        let behind = behind(&m.view, path, version, rotation).await?;
        if behind.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::bad(format!(
                "consumers did not confirm version {version} within {}: {}",
                crate::util::format_duration(wait),
                behind.join(", ")
            )));
        }
        tokio::time::sleep(CONSUMER_POLL).await;
    }
}

/// The live consumers of `path` (reported within the rotation's freshness
/// window) that hold a version older than `version`.
async fn behind(
    view: &crate::barrier::View,
    path: &str,
    version: u64,
    rotation: &super::model::Rotation,
) -> Result<Vec<String>> {
    use super::consumers;
    let freshness = rotation
        .consumer_freshness
        .unwrap_or(consumers::DEFAULT_FRESHNESS);
    let at = Utc::now();
    Ok(consumers::load(view, path)
        .await?
        .iter()
        .filter(|c| consumers::is_live(c, at, freshness) && c.version < version)
        .map(|c| format!("{} (holds version {})", c.id, c.version))
        .collect())
}

/// Rolls back a rotation that was interrupted (the server stopped midway):
/// the pending version is destroyed, the failure recorded, a retry scheduled.
pub async fn recover(kernel: &dyn Kernel, m: &Mounted, path: &str) -> Result<bool> {
    let Some(kv) = m.engine.as_kv2() else {
        return Ok(false);
    };
    let ctx = EngineCtx {
        view: &m.view,
        mount: &m.entry,
        token: None,
    };
    let _guard = store::lock(&m.entry.uuid, path).await;
    let Some(mut lc) = store::load(&m.view, path).await? else {
        return Ok(false);
    };
    let Some(flight) = lc.state.in_flight.take() else {
        return Ok(false);
    };
    if let Some(rotation) = &lc.rotation {
        if matches!(flight.step.as_str(), "set" | "test" | "finish") {
            let current = kv
                .read_stage(&ctx, path, None)
                .await?
                .map(|(_, d)| d)
                .unwrap_or(Value::Null);
            let pending = kv
                .read_stage(&ctx, path, Some("pending"))
                .await?
                .map(|(_, d)| d)
                .unwrap_or(Value::Null);
            let meta = metadata_doc(&lc);
            let full_path = format!("{}{}", m.entry.path, path);
            let input = StepInput {
                step: "rollback",
                path: &full_path,
                current: &current,
                pending: &pending,
                metadata: &meta,
                settings: &rotation.settings,
                passwords: kernel.passwords(),
                router: Some(kernel.router()),
            };
            if let Err(e) = rotators::run_step(kernel.rotators(), &rotation.rotator, &input).await {
                tracing::warn!(path = %full_path, error = %e, "rollback of an interrupted rotation failed");
            }
        }
    }
    kv.discard_pending(&ctx, path).await?;
    let at = Utc::now();
    lc.state.failures = lc.state.failures.saturating_add(1);
    lc.state.last_error = Some(format!(
        "step {}: interrupted (the server stopped); rolled back",
        flight.step
    ));
    lc.state.next_attempt = Some(at + backoff(lc.state.failures));
    let rotator = lc
        .rotation
        .as_ref()
        .map(|r| r.rotator.clone())
        .unwrap_or_default();
    lc.record(RotationRecord {
        at,
        result: "failure".into(),
        step: Some(flight.step),
        reason: "interrupted; rolled back".into(),
        old_version: flight.current_version,
        new_version: flight.current_version,
        rotator,
    });
    super::save(kernel, m, path, &mut lc).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(1), Duration::seconds(30));
        assert_eq!(backoff(2), Duration::seconds(60));
        assert_eq!(backoff(20), Duration::seconds(3600));
    }
}

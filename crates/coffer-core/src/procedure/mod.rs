//! The secrets-management procedure's own artefacts, Coffer's API in
//! Vault's style under `sys/coffer/`:
//!
//! - `org-policy`: GET the current org secrets policy (`?version=N` for an
//!   older one), POST `{"policy": "<TOML>"}` to apply one (sudo); LIST
//!   `org-policy/history`;
//! - `check`: GET evaluates every acceptance criterion; POST does the same
//!   with the client's scan results (`{"scan": [...]}`) and, when every
//!   criterion passes, records "Secrets management defined" in the audit
//!   trail; POST `check/abort` `{reason, secure}` (sudo) records a
//!   cancelled run and the credentials to secure;
//! - `plan`: GET the Secrets Management Plan as JSON; POST `plan/approve`
//!   `{role, comment, plan_hash}` signs it as a role the org policy maps the
//!   caller's token to;
//! - `review`: access reviews ([`review`]).
//!
//! Each path is its own ACL path, so reading the plan or the check needs
//! its own capability. They reveal the access structure, never a value.
//! Records live behind the barrier under `sys/procedure/`.

pub mod check;
pub mod org_policy;
pub mod plan;
pub mod review;
pub mod state;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use std::sync::Arc;

use parking_lot::RwLock;

use crate::audit::AuditBroker;
use crate::barrier::{Barrier, View};
use crate::expiration::Expiration;
use crate::identity::store::IdentityStore;
use crate::mounts::{Mounted, Router};
use crate::policy_store::PolicyStore;
use crate::token::{TokenEntry, TokenStore};
use crate::util::{now, rfc3339, Params};
use crate::{Error, Operation, Request, Response, Result};

/// What the procedure reads: the kernel's stores, borrowed for one
/// request, and the two actions it takes beyond its own records
/// ([`Actions`]). The procedure never sees the core itself.
pub struct Ctx<'a> {
    /// The barrier; the procedure's records live under `sys/procedure/`.
    pub barrier: &'a Arc<Barrier>,
    /// Storage, dev mode and TLS, as the check and the plan report them.
    pub deployment: Deployment<'a>,
    /// The token store (accessors, roles).
    pub tokens: &'a TokenStore,
    /// ACL policies (read; a review's apply writes deny policies).
    pub policies: &'a PolicyStore,
    /// The mount table.
    pub router: &'a RwLock<Router>,
    /// Entities and groups.
    pub identity: &'a IdentityStore,
    /// Audit devices, access records and procedure events.
    pub audit: &'a AuditBroker,
    /// Live leases (counted).
    pub leases: &'a Expiration,
    /// Seal status and rotation, which need the whole kernel.
    pub actions: &'a dyn Actions,
}

/// How this server is deployed, as the check and the plan report it.
#[derive(Debug, Clone, Copy)]
pub struct Deployment<'a> {
    /// The storage backend's type (`sqlite`, `postgresql`, `inmem`).
    pub storage_type: &'a str,
    /// Whether this is a dev server.
    pub dev_mode: bool,
    /// Whether the listener serves TLS.
    pub listener_tls: bool,
}

/// The kernel services the procedure calls that are more than a store.
#[async_trait::async_trait]
pub trait Actions: Send + Sync {
    /// `sys/seal-status` as JSON.
    async fn seal_status(&self) -> Result<Value>;
    /// Rotates the KV v2 secret at `rel` in mount `m` now (staged rotation,
    /// audited as `actor`); returns the new version.
    async fn rotate(
        &self,
        actor: Option<&TokenEntry>,
        m: &Mounted,
        rel: &str,
        reason: &str,
    ) -> Result<u64>;
}

impl Ctx<'_> {
    /// `sys/seal-status` as JSON.
    pub async fn seal_status(&self) -> Result<Value> {
        self.actions.seal_status().await
    }

    /// Records a procedure event (`name`, by `actor`) in the audit trail.
    pub async fn audit_event(
        &self,
        name: &str,
        actor: Option<&TokenEntry>,
        details: Value,
    ) -> Result<()> {
        self.audit.event(name, actor, details).await
    }
}

/// A duration as the plan and the check print it: whole days as `90d`,
/// else Go's short form (`24h`, `1h30m`).
pub fn dur(secs: u64) -> String {
    if secs > 0 && secs.is_multiple_of(86_400) {
        format!("{}d", secs / 86_400)
    } else {
        crate::util::format_duration_short(secs)
    }
}

/// Whether `rest` (below `sys/`) is one of this module's paths.
pub fn is_path(rest: &str) -> bool {
    [
        "coffer/org-policy",
        "coffer/check",
        "coffer/plan",
        "coffer/review",
        "coffer/apps",
    ]
    .iter()
    .any(|p| rest == *p || rest.starts_with(&format!("{p}/")))
}

/// Whether a write to `rest` needs `sudo` besides `update`.
pub fn requires_sudo(rest: &str, op: Operation) -> bool {
    let write = !matches!(op, Operation::Read | Operation::List);
    write
        && (rest == "coffer/org-policy"
            || rest == "coffer/check/abort"
            || (rest.starts_with("coffer/review/") && rest.ends_with("/apply")))
}

/// The storage view of the procedure's records.
pub(crate) fn view(barrier: &Arc<Barrier>) -> View {
    View::new(barrier.clone(), "sys/procedure/")
}

/// One applied version of the org policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyVersion {
    /// 1, 2, ...
    pub version: u64,
    /// The TOML text as applied.
    pub text: String,
    /// SHA-256 of the text, hex.
    pub sha256: String,
    /// When.
    pub applied_at: String,
    /// Who (token display name).
    pub applied_by: String,
}

/// The current org policy version, if any.
pub async fn current_policy(cx: &Ctx<'_>) -> Result<Option<PolicyVersion>> {
    let v = view(cx.barrier);
    let Some(n) = v.get_json::<u64>("org-policy/current").await? else {
        return Ok(None);
    };
    v.get_json(&format!("org-policy/history/{n:020}")).await
}

/// The policy in force: the applied one, else the defaults (and whether it was applied).
pub async fn effective_policy(
    cx: &Ctx<'_>,
) -> Result<(org_policy::OrgPolicy, Option<PolicyVersion>)> {
    let current = current_policy(cx).await?;
    let text = current
        .as_ref()
        .map(|c| c.text.as_str())
        .unwrap_or(org_policy::DEFAULT_TOML);
    Ok((org_policy::parse(text)?, current))
}

/// Serialises org-policy writes.
static POLICY_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn org_policy(
    cx: &Ctx<'_>,
    req: &Request,
    rest: &str,
    token: &TokenEntry,
) -> Result<Response> {
    let v = view(cx.barrier);
    match (rest, req.operation) {
        ("coffer/org-policy", Operation::Read) => {
            let p = Params(&req.data);
            let rec: Option<PolicyVersion> = match p.u64("version")? {
                Some(n) => v.get_json(&format!("org-policy/history/{n:020}")).await?,
                None => current_policy(cx).await?,
            };
            let rec = rec.ok_or(Error::NotFound)?;
            let parsed = org_policy::parse(&rec.text)?;
            Ok(Response::data(json!({
                "version": rec.version,
                "policy": rec.text,
                "sha256": rec.sha256,
                "applied_at": rec.applied_at,
                "applied_by": rec.applied_by,
                "parsed": parsed.to_json(),
            })))
        }
        ("coffer/org-policy", Operation::Create | Operation::Update) => {
            let p = Params(&req.data);
            let text = p
                .str("policy")?
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| Error::bad("policy is required: the org policy's TOML text"))?;
            if text.len() > 256 * 1024 {
                return Err(Error::bad("policy: at most 256 KiB"));
            }
            let parsed = org_policy::parse(text)?;
            let _guard = POLICY_LOCK.lock().await;
            let sha = coffer_crypto::hash::sha256_hex(text.as_bytes());
            let current = current_policy(cx).await?;
            if current.as_ref().is_some_and(|c| c.sha256 == sha) {
                let mut r = Response::data(
                    json!({"version": current.map(|c| c.version), "changed": false}),
                );
                r.warnings
                    .push("the policy is unchanged; no new version".into());
                return Ok(r);
            }
            let version = current.map(|c| c.version).unwrap_or(0) + 1;
            let rec = PolicyVersion {
                version,
                text: text.to_string(),
                sha256: sha.clone(),
                applied_at: rfc3339(&now()),
                applied_by: token.display_name.clone(),
            };
            v.put_json(&format!("org-policy/history/{version:020}"), &rec)
                .await?;
            v.put_json("org-policy/current", &version).await?;
            cx.audit_event(
                "org_policy_applied",
                Some(token),
                json!({"version": version, "sha256": sha, "required_approvals": parsed.required_approvals}),
            )
            .await?;
            Ok(Response::data(
                json!({"version": version, "sha256": sha, "changed": true}),
            ))
        }
        (
            "coffer/org-policy/history" | "coffer/org-policy/history/",
            Operation::List | Operation::Read,
        ) => {
            let mut keys = v.list("org-policy/history/").await?;
            keys.sort();
            let mut out = Vec::new();
            for k in keys {
                if let Some(rec) = v
                    .get_json::<PolicyVersion>(&format!("org-policy/history/{k}"))
                    .await?
                {
                    out.push(json!({"version": rec.version, "sha256": rec.sha256,
                        "applied_at": rec.applied_at, "applied_by": rec.applied_by}));
                }
            }
            let keys: Vec<String> = out
                .iter()
                .filter_map(|r| r["version"].as_u64().map(|n| n.to_string()))
                .collect();
            Ok(Response::data(json!({"keys": keys, "versions": out})))
        }
        _ => Err(Error::UnsupportedOperation),
    }
}

/// Handles `sys/coffer/{org-policy,check,plan,review}...`.
pub(crate) async fn handle(
    cx: &Ctx<'_>,
    req: &Request,
    rest: &str,
    token: &TokenEntry,
) -> Result<Response> {
    if rest.starts_with("coffer/org-policy") {
        return org_policy(cx, req, rest, token).await;
    }
    if rest.starts_with("coffer/check") {
        return check::handle(cx, req, rest, token).await;
    }
    if rest.starts_with("coffer/plan") {
        return plan::handle(cx, req, rest, token).await;
    }
    if rest.starts_with("coffer/review") {
        return review::handle(cx, req, rest, token).await;
    }
    if rest.starts_with("coffer/apps") {
        return apps(cx, req, rest, token).await;
    }
    Err(Error::UnsupportedPath(format!(
        "unsupported path sys/{rest}"
    )))
}

/// `sys/coffer/apps[/<name>]`: the systems onboarded with `coffer apply`
/// (name, source file, identity, secrets), listed by the plan. LIST, GET,
/// POST (the record as JSON), DELETE.
async fn apps(cx: &Ctx<'_>, req: &Request, rest: &str, token: &TokenEntry) -> Result<Response> {
    let v = view(cx.barrier);
    let name = rest
        .strip_prefix("coffer/apps")
        .unwrap_or("")
        .trim_matches('/');
    if name.is_empty() {
        return match req.operation {
            Operation::List | Operation::Read => {
                let mut keys = v.list("apps/").await?;
                keys.sort();
                Response::list(keys)
            }
            _ => Err(Error::UnsupportedOperation),
        };
    }
    if name.len() > 128
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Error::bad(
            "app name: letters, digits, - and _ only (at most 128)",
        ));
    }
    let key = format!("apps/{name}");
    match req.operation {
        Operation::Read => Ok(Response::data(
            v.get_json::<Value>(&key).await?.ok_or(Error::NotFound)?,
        )),
        Operation::Create | Operation::Update => {
            let p = Params(&req.data);
            let rec = json!({
                "name": name,
                "source": p.str("source")?.unwrap_or(""),
                "identity": p.str("identity")?.unwrap_or(""),
                "policy": p.str("policy")?.unwrap_or(""),
                "secrets": p.str_list("secrets")?.unwrap_or_default(),
            });
            v.put_json(&key, &rec).await?;
            cx.audit_event("app_onboarded", Some(token), rec.clone())
                .await?;
            Ok(Response::data(rec))
        }
        Operation::Delete => {
            v.delete(&key).await?;
            Ok(Response::empty())
        }
        _ => Err(Error::UnsupportedOperation),
    }
}

/// Records that the emergency revocation ran (`drill` false) or was
/// drilled on `path`, for the check and the plan.
pub(crate) async fn record_revocation(
    barrier: &Arc<Barrier>,
    path: &str,
    reason: &str,
    drill: bool,
    by: &TokenEntry,
) -> Result<()> {
    let key = if drill {
        "revocation/last-drill"
    } else {
        "revocation/last-used"
    };
    view(barrier)
        .put_json(
            key,
            &json!({"at": rfc3339(&now()), "path": path, "reason": reason, "by": by.display_name}),
        )
        .await
}

/// The last drill and the last real use of the emergency revocation.
pub async fn revocation_records(cx: &Ctx<'_>) -> Result<(Option<Value>, Option<Value>)> {
    let v = view(cx.barrier);
    Ok((
        v.get_json("revocation/last-drill").await?,
        v.get_json("revocation/last-used").await?,
    ))
}

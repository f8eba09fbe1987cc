//! `sys/coffer/plan`: the Secrets Management Plan as JSON, computed from
//! live state, and its sign-off (`sys/coffer/plan/approve`).
//!
//! Deterministic: every list is sorted and nothing depends on the request
//! but `generated_at`. The plan's hash (SHA-256 of its canonical JSON)
//! covers its structure: inventory, storage, access, rotation policy,
//! revocation and logging configuration, onboarded systems, exceptions. It
//! leaves out what ordinary operation changes every minute (observed reads,
//! rotation dates and statuses, lease counts, chain verification, the
//! sign-off itself), so an approval stays valid while the system runs and
//! is void as soon as what was approved changes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::org_policy::OrgPolicy;
use super::state::{self, State};
use super::Ctx;
use super::{dur, view};
use crate::lifecycle::model::Status;
use crate::token::TokenEntry;
use crate::util::{now, rfc3339, Params};
use crate::{Error, Operation, Request, Response, Result};

/// Compliance items and the plan section that evidences each.
const COMPLIANCE: [(&str, &str, &str, &str); 8] = [
    (
        "PCI DSS 4.0",
        "8.6.2",
        "No hard-coded passwords in scripts, configuration or source",
        "check: no_secrets_in_code",
    ),
    (
        "PCI DSS 4.0",
        "8.6.3",
        "Periodic change, and change on compromise",
        "rotation; revocation",
    ),
    (
        "PCI DSS 4.0",
        "7.2.5.1",
        "Periodic review of application and system account access",
        "access; access review",
    ),
    (
        "PCI DSS 4.0",
        "10.2",
        "Audit logs of access to system components",
        "security_logging",
    ),
    (
        "SOC 2",
        "CC6.1",
        "Logical access security over protected information assets",
        "storage; access",
    ),
    (
        "SOC 2",
        "CC6.2-6.3",
        "Access granted, reviewed and removed, with sign-off and rationale",
        "access; access review; sign_off",
    ),
    (
        "OWASP Secrets Management Cheat Sheet",
        "Metadata, lifecycle",
        "Owner, type, origin, rotation per secret",
        "inventory; rotation",
    ),
    (
        "OWASP Secrets Management Cheat Sheet",
        "Break glass",
        "Emergency revocation, exercised",
        "revocation",
    ),
];

fn time_of(secs: i64) -> Value {
    DateTime::from_timestamp(secs, 0)
        .map(|t| json!(rfc3339(&t)))
        .unwrap_or(Value::Null)
}

fn count_by<'a>(items: impl Iterator<Item = &'a str>) -> Value {
    let mut m: BTreeMap<String, u64> = BTreeMap::new();
    for i in items {
        let k = if i.is_empty() { "(none)" } else { i };
        *m.entry(k.to_string()).or_default() += 1;
    }
    json!(m)
}

/// Builds the plan (without `generated_at` and the sign-off block).
pub async fn build(
    cx: &Ctx<'_>,
    policy: &OrgPolicy,
    policy_version: Option<u64>,
    st: &State,
    at: DateTime<Utc>,
) -> Result<Value> {
    let applied = super::current_policy(cx).await?;
    let lc = |s: &state::Secret, f: fn(&crate::lifecycle::model::Lifecycle) -> String| {
        s.lifecycle.as_ref().map(f).unwrap_or_default()
    };
    // Inventory.
    let secrets: Vec<Value> = st
        .secrets
        .iter()
        .map(|s| {
            json!({
                "secret": s.name,
                "type": lc(s, |l| l.secret_type.clone()),
                "owner": lc(s, |l| l.owner.clone()),
                "origin": lc(s, |l| l.origin.clone()),
                "vendor": lc(s, |l| l.vendor.clone()),
                "description": lc(s, |l| l.description.clone()),
            })
        })
        .collect();
    let third: Vec<Value> = secrets
        .iter()
        .filter(|s| s["origin"] == "third_party" || !s["vendor"].as_str().unwrap_or("").is_empty())
        .map(|s| json!({"secret": s["secret"], "vendor": s["vendor"], "owner": s["owner"]}))
        .collect();
    let str_of = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    let types: Vec<String> = secrets.iter().map(|s| str_of(s, "type")).collect();
    let owners: Vec<String> = secrets.iter().map(|s| str_of(s, "owner")).collect();
    let origins: Vec<String> = secrets.iter().map(|s| str_of(s, "origin")).collect();

    // Storage.
    let seal = cx.seal_status().await?;
    let keyring = cx.barrier.keyring()?;
    let active = keyring.active();
    let threshold = cx.barrier.rotation_threshold();
    let encryptions = cx.barrier.encryptions()?;
    let percent = if threshold > 0 {
        (u128::from(encryptions) * 100 / u128::from(threshold)) as u64
    } else {
        0
    };

    // Access.
    let mut methods: Vec<Value> = cx
        .router
        .read()
        .entries()
        .filter(|m| m.entry.path.starts_with("auth/"))
        .map(|m| json!({"path": m.entry.path, "type": m.entry.kind, "description": m.entry.description}))
        .collect();
    methods.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    let matrix: Vec<Value> = st
        .secrets
        .iter()
        .map(|s| {
            let a = st.access.get(&s.name).cloned().unwrap_or_default();
            json!({"secret": s.name, "read": a.read, "write": a.write, "rotate": a.rotate})
        })
        .collect();
    let broad: Vec<Value> = st
        .broad
        .iter()
        .map(|g| {
            let holders: Vec<String> = st
                .identities
                .iter()
                .filter(|i| i.policies.contains(&g.policy))
                .map(|i| i.id())
                .collect();
            json!({"policy": g.policy, "pattern": g.pattern, "mounts": g.mounts, "holders": holders,
                   "exempt": policy.admin_policies.contains(&g.policy)})
        })
        .collect();

    // Runtime delivery (observed).
    let delivery: Vec<Value> = st
        .secrets
        .iter()
        .map(|s| {
            let readers: Vec<Value> = st
                .readers
                .get(&s.name)
                .map(|v| v.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|o| {
                    let who: Vec<String> = st
                        .identities
                        .iter()
                        .filter(|i| state::is_reader(i, o))
                        .map(|i| i.id())
                        .collect();
                    json!({"display_name": o.display_name, "identities": who,
                           "last_read": time_of(o.last_read), "reads": o.reads})
                })
                .collect();
            json!({"secret": s.name, "readers": readers})
        })
        .collect();

    // Rotation.
    let mut calendar: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut overdue = Vec::new();
    let mut failing = Vec::new();
    let rotation: Vec<Value> = st
        .secrets
        .iter()
        .map(|s| {
            let l = s.lifecycle.as_ref();
            let r = l.and_then(|l| l.rotation.as_ref());
            let t = l.map(|l| l.secret_type.clone()).unwrap_or_default();
            let max = policy.max_age.get(&t).copied();
            let period = r.and_then(|r| r.period);
            let within = match (period, max) {
                (Some(p), Some(m)) => p <= m,
                (Some(_), None) => true,
                (None, _) => r.and_then(|r| r.cron.as_ref()).is_some() || s.not_after.is_some(),
            };
            if let Some(d) = s.next_due {
                calendar
                    .entry(d.format("%Y-%m-%d").to_string())
                    .or_default()
                    .push(s.name.clone());
            }
            match s.status {
                Status::Overdue => overdue.push(s.name.clone()),
                Status::Failing => failing.push(s.name.clone()),
                _ => {}
            }
            let last = l.and_then(|l| l.state.history.last());
            json!({
                "secret": s.name,
                "type": t,
                "cadence": period.map(dur).or_else(|| r.and_then(|r| r.cron.clone()).map(|c| format!("cron {c}"))),
                "policy_max_age": max.map(dur),
                "within_policy": within,
                "rotator": r.map(|r| r.rotator.clone()),
                "last_rotated": l.and_then(|l| l.state.last_rotated).map(|d| rfc3339(&d)),
                "last_result": last.map(|h| h.result.clone()),
                "next_due": s.next_due.map(|d| rfc3339(&d)),
                "status": s.status.as_str(),
            })
        })
        .collect();
    let calendar: Vec<Value> = calendar
        .into_iter()
        .map(|(d, s)| json!({"date": d, "secrets": s}))
        .collect();

    // Revocation.
    let mut mounts: Vec<Value> = cx
        .router
        .read()
        .entries()
        .map(|m| json!({"path": m.entry.path, "type": m.entry.kind,
                        "default_lease_ttl": dur(if m.entry.config.default_lease_ttl == 0 { coffer_engine::mounts::SYSTEM_MAX_TTL } else { m.entry.config.default_lease_ttl }),
                        "max_lease_ttl": dur(if m.entry.config.max_lease_ttl == 0 { coffer_engine::mounts::SYSTEM_MAX_TTL } else { m.entry.config.max_lease_ttl })}))
        .collect();
    mounts.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    let (drill, used) = super::revocation_records(cx).await?;

    // Logging.
    let devices: Vec<Value> = cx
        .audit
        .verify_devices()
        .await
        .into_iter()
        .map(|d| {
            let ok = d["verified"].as_bool();
            json!({
                "path": d["path"], "type": d["type"], "description": d["description"],
                "hmac_accessor": d["hmac_accessor"], "log_raw": d["log_raw"],
                "checkpoint_interval": d["checkpoint_interval"],
                "verified": ok,
                "verification": match ok {
                    Some(true) => json!("chain verifies"),
                    _ => d["verification"].clone(),
                },
            })
        })
        .collect();

    // Onboarded systems.
    let v = view(cx.barrier);
    let mut apps = Vec::new();
    let mut names = v.list("apps/").await?;
    names.sort();
    for n in names {
        if let Some(a) = v.get_json::<Value>(&format!("apps/{n}")).await? {
            apps.push(a);
        }
    }

    // Exceptions: where the structure deviates from the org policy.
    let mut exceptions = Vec::new();
    for s in &st.secrets {
        match &s.lifecycle {
            None => exceptions.push(format!("{}: no owner, type or cadence", s.name)),
            Some(l) => {
                if l.owner.is_empty() {
                    exceptions.push(format!("{}: no owner", s.name));
                }
                if l.secret_type.is_empty() {
                    exceptions.push(format!("{}: no type", s.name));
                }
            }
        }
        if st.access.get(&s.name).is_none_or(|a| a.read.is_empty()) {
            exceptions.push(format!("{}: no identity but root can read it", s.name));
        }
    }
    for r in &rotation {
        if r["within_policy"] == json!(false) {
            exceptions.push(format!(
                "{}: rotation cadence outside the policy",
                r["secret"].as_str().unwrap_or("")
            ));
        }
    }
    for g in &st.broad {
        exceptions.push(format!("policy {}: broad grant {:?}", g.policy, g.pattern));
    }

    let approvers: Map<String, Value> = policy
        .roles
        .iter()
        .map(|(k, r)| {
            (
                k.clone(),
                json!({"policies": r.policies, "display_names": r.display_names}),
            )
        })
        .collect();
    let mut owner_list: Vec<String> = owners.iter().filter(|o| !o.is_empty()).cloned().collect();
    owner_list.sort();
    owner_list.dedup();
    let review = super::review::last_completed(cx).await?;
    let _ = at;

    Ok(json!({
        "title": "Secrets Management Plan",
        "purpose": {
            "organisation": policy.organisation,
            "scope": policy.description,
            "procedure": ["Define storage and access", "Create and store secrets, with apps retrieving them at run time", "Establish rotation and revocation"],
            "org_policy": applied.map(|a| json!({"version": a.version, "sha256": a.sha256, "applied_at": a.applied_at, "applied_by": a.applied_by})),
            "org_policy_version": policy_version,
        },
        "roles": {"owners": owner_list, "approvers": approvers, "required_approvals": policy.required_approvals},
        "inventory": {
            "count": secrets.len(),
            "by_type": count_by(types.iter().map(String::as_str)),
            "by_owner": count_by(owners.iter().map(String::as_str)),
            "by_origin": count_by(origins.iter().map(String::as_str)),
            "secrets": secrets,
            "third_party": third,
        },
        "storage": {
            "backend": cx.deployment.storage_type,
            "dev_mode": cx.deployment.dev_mode,
            "listener_tls": cx.deployment.listener_tls,
            "seal": {"type": seal["type"], "shares": seal["n"], "threshold": seal["t"],
                     "trade_off": "Shamir: unsealing needs a quorum of key holders after every restart; no cloud KMS is trusted with the root key"},
            "key_term": {"term": active.term, "installed_at": time_of(active.install_time), "policy_max_age": dur(policy.max_key_age)},
            "rotation_threshold": threshold,
            "encryptions_percent_of_threshold": percent,
            "backups": "Take backups of the storage file while sealed or with the backend's online backup; they are encrypted by the barrier and need the unseal keys to restore",
        },
        "access": {
            "auth_methods": methods,
            "identities": st.identities.iter().map(state::identity_json).collect::<Vec<_>>(),
            "matrix": matrix,
            "broad_grants": broad,
            "policies": st.policies,
            "review_cadence": dur(policy.review_cadence),
            "last_review": review,
        },
        "runtime_delivery": delivery,
        "rotation": {
            "policy_max_age": policy.max_age.iter().map(|(k, v)| (k.clone(), json!(dur(*v)))).collect::<Map<String, Value>>(),
            "certificate_lead_time": dur(policy.certificate_lead_time),
            "secrets": rotation,
            "calendar": calendar,
            "overdue": overdue,
            "failing": failing,
        },
        "revocation": {
            "token_max_ttl": dur(policy.max_token_ttl),
            "mount_ttls": mounts,
            "leases": cx.leases.len(),
            "token_trees": "a token's children and leases are revoked with it; leases never outlive their token",
            "emergency_procedure": "`coffer revoke --compromised SECRET --reason \"...\"` rotates the secret, revokes its leases and every token that read it",
            "drill": "`coffer revoke --compromised --drill SECRET --reason \"drill\"` computes the same without changing anything, and records it",
            "drill_max_age": dur(policy.drill_max_age),
            "last_drill": drill,
            "last_used": used,
        },
        "security_logging": {
            "devices": devices,
            "logged": "every authenticated request and response, refused requests, logins, and lifecycle events (rotations, revocations, policy changes, approvals, reviews)",
            "hmac": "every string of request and response data, client tokens and (unless hmac_accessor=false) accessors are HMAC-SHA256'd under a per-device salt",
            "chain": "each line carries seq and the SHA-256 of the previous line; Ed25519-signed checkpoints; coffer audit verify checks it offline",
        },
        "onboarded_systems": apps,
        "compliance": COMPLIANCE.iter().map(|(f, i, t, s)| json!({"framework": f, "item": i, "requirement": t, "evidence": s})).collect::<Vec<_>>(),
        "exceptions": exceptions,
    }))
}

/// The keys left out of the hash (see the module docs), by section.
const VOLATILE: [(&str, &[&str]); 5] = [
    ("rotation", &["calendar", "overdue", "failing"]),
    ("revocation", &["leases", "last_drill", "last_used"]),
    ("storage", &["encryptions_percent_of_threshold"]),
    ("access", &["last_review"]),
    ("security_logging", &[]),
];

/// SHA-256 (hex) of the plan's structure.
pub fn hash(plan: &Value) -> String {
    let mut basis = plan.clone();
    if let Value::Object(o) = &mut basis {
        for k in ["generated_at", "sign_off", "runtime_delivery"] {
            o.remove(k);
        }
        for (section, keys) in VOLATILE {
            if let Some(Value::Object(s)) = o.get_mut(section) {
                for k in keys {
                    s.remove(*k);
                }
            }
        }
        if let Some(Value::Array(rows)) = o.get_mut("rotation").and_then(|r| r.get_mut("secrets")) {
            for r in rows {
                if let Value::Object(r) = r {
                    for k in ["last_rotated", "last_result", "next_due", "status"] {
                        r.remove(k);
                    }
                }
            }
        }
        if let Some(Value::Array(rows)) = o
            .get_mut("security_logging")
            .and_then(|r| r.get_mut("devices"))
        {
            for r in rows {
                if let Value::Object(r) = r {
                    r.remove("verified");
                    r.remove("verification");
                }
            }
        }
    }
    // serde_json's maps are sorted (no preserve_order), so this is canonical.
    coffer_crypto::hash::sha256_hex(basis.to_string().as_bytes())
}

/// The approvals recorded for plan `hash`, sorted by role.
pub async fn approvals(cx: &Ctx<'_>, hash: &str) -> Result<Vec<Value>> {
    let v = view(cx.barrier);
    let mut roles = v.list(&format!("approvals/{hash}/")).await?;
    roles.sort();
    let mut out = Vec::new();
    for r in roles {
        if let Some(a) = v
            .get_json::<Value>(&format!("approvals/{hash}/{r}"))
            .await?
        {
            out.push(a);
        }
    }
    Ok(out)
}

/// The plan with `generated_at` and its sign-off block.
pub async fn current(cx: &Ctx<'_>) -> Result<Value> {
    let at = now();
    let (policy, applied) = super::effective_policy(cx).await?;
    let st = state::gather(cx, &policy.admin_policies, at).await?;
    let mut plan = build(cx, &policy, applied.as_ref().map(|a| a.version), &st, at).await?;
    let h = hash(&plan);
    let approvals = approvals(cx, &h).await?;
    plan["generated_at"] = json!(rfc3339(&at));
    plan["sign_off"] = json!({
        "plan_sha256": h,
        "required": policy.required_approvals,
        "approvals": approvals,
        "role_mapping": "A token signs as a role when it holds one of the role's policies (or has one of its display names) in the org policy's [approvals.roles]; root tokens cannot sign",
    });
    Ok(plan)
}

/// `GET sys/coffer/plan`, `POST sys/coffer/plan/approve`.
pub(crate) async fn handle(
    cx: &Ctx<'_>,
    req: &Request,
    rest: &str,
    token: &TokenEntry,
) -> Result<Response> {
    match (rest, req.operation) {
        ("coffer/plan", Operation::Read) => Ok(Response::data(current(cx).await?)),
        ("coffer/plan/approve", Operation::Create | Operation::Update) => {
            approve(cx, req, token).await
        }
        ("coffer/plan" | "coffer/plan/approve", _) => Err(Error::UnsupportedOperation),
        _ => Err(Error::UnsupportedPath(format!(
            "unsupported path sys/{rest}"
        ))),
    }
}

/// Serialises approvals.
static APPROVE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn approve(cx: &Ctx<'_>, req: &Request, token: &TokenEntry) -> Result<Response> {
    let p = Params(&req.data);
    let role = p
        .str("role")?
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| Error::bad("role is required: security or platform"))?
        .to_string();
    if !super::org_policy::ROLES.contains(&role.as_str()) {
        return Err(Error::bad(format!(
            "role: unknown role {role:?} (security or platform)"
        )));
    }
    let comment = p.str("comment")?.unwrap_or("").to_string();
    if comment.len() > 4096 {
        return Err(Error::bad("comment: at most 4096 characters"));
    }
    let (policy, applied) = super::effective_policy(cx).await?;
    if applied.is_none() {
        return Err(Error::bad(
            "no org policy is applied: apply one first (coffer org-policy apply)",
        ));
    }
    let denied = |why: String| Error::Status {
        code: 403,
        errors: vec![why],
    };
    if token.is_root() {
        return Err(denied(
            "a root token cannot sign the plan: log in as the person who approves".into(),
        ));
    }
    if !policy
        .roles_of(&token.policies, &token.display_name)
        .contains(&role)
    {
        let needs = policy
            .roles
            .get(&role)
            .map(|r| r.policies.join(" or "))
            .unwrap_or_default();
        return Err(denied(format!(
            "your token does not sign as {role}: the org policy maps {role} to policy {needs}"
        )));
    }
    let _guard = APPROVE_LOCK.lock().await;
    let plan = current(cx).await?;
    let h = plan["sign_off"]["plan_sha256"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if let Some(reviewed) = p.str("plan_sha256")?.filter(|s| !s.is_empty()) {
        if reviewed != h {
            return Err(Error::Status {
                code: 409,
                errors: vec![format!(
                    "the plan changed since you reviewed it (reviewed sha256:{reviewed}, current sha256:{h}): review the current plan and approve again"
                )],
            });
        }
    }
    let at = rfc3339(&now());
    let rec = json!({
        "role": role,
        "plan_sha256": h,
        "at": at,
        "display_name": token.display_name,
        "accessor": token.accessor,
        "policies": token.policies,
        "comment": comment,
    });
    cx.audit_event(
        "plan_approved",
        Some(token),
        json!({"role": role, "plan_sha256": h, "comment": comment}),
    )
    .await?;
    view(cx.barrier)
        .put_json(&format!("approvals/{h}/{role}"), &rec)
        .await?;
    Ok(Response::data(rec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_ignores_what_operation_changes_and_sees_structure() {
        let plan = json!({
            "generated_at": "t1",
            "inventory": {"secrets": [{"secret": "secret/a"}]},
            "rotation": {"secrets": [{"secret": "secret/a", "next_due": "d1", "status": "ok", "cadence": "30d"}], "calendar": [1]},
            "revocation": {"leases": 1, "last_drill": null},
            "runtime_delivery": [{"secret": "secret/a", "readers": []}],
            "sign_off": {"approvals": []},
        });
        let h = hash(&plan);
        let mut moved = plan.clone();
        moved["generated_at"] = json!("t2");
        moved["rotation"]["secrets"][0]["next_due"] = json!("d2");
        moved["rotation"]["secrets"][0]["status"] = json!("due");
        moved["rotation"]["calendar"] = json!([2]);
        moved["revocation"]["leases"] = json!(7);
        moved["runtime_delivery"][0]["readers"] = json!([{"display_name": "x"}]);
        moved["sign_off"]["approvals"] = json!([{"role": "security"}]);
        assert_eq!(hash(&moved), h);
        let mut changed = plan.clone();
        changed["rotation"]["secrets"][0]["cadence"] = json!("365d");
        assert_ne!(hash(&changed), h);
        let mut added = plan;
        added["inventory"]["secrets"] = json!([{"secret": "secret/a"}, {"secret": "secret/b"}]);
        assert_ne!(hash(&added), h);
    }
}

//! `sys/coffer/check`: the procedure's validation, each acceptance
//! criterion evaluated from live state with its evidence, every failure a
//! blocker naming the item and the command that fixes it.
//!
//! The scan criterion is the one the server cannot see: the CLI runs the
//! scanner on the paths given and on the org policy's repositories and
//! sends the findings (rule, file, line; never the value). The event
//! recorded on completion says which paths were scanned.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::dur as format_duration;
use super::org_policy::OrgPolicy;
use super::state::{self, State};
use super::Ctx;
use crate::lifecycle::model::Status;
use crate::token::TokenEntry;
use crate::util::{now, rfc3339, Params};
use crate::{Error, Operation, Request, Response, Result};

/// One blocker: what, why, and the command that fixes it.
#[derive(Debug, Clone)]
pub struct Blocker {
    /// The item (a secret, a policy, a device, a file and line).
    pub item: String,
    /// What is wrong.
    pub problem: String,
    /// The command (or edit) that resolves it.
    pub remediation: String,
}

/// One acceptance criterion.
#[derive(Debug, Clone)]
pub struct Criterion {
    /// Stable id.
    pub id: &'static str,
    /// Title as the issue names it.
    pub title: &'static str,
    /// What was looked at and found.
    pub evidence: Vec<String>,
    /// What stops it from passing.
    pub blockers: Vec<Blocker>,
}

impl Criterion {
    fn new(id: &'static str, title: &'static str) -> Self {
        Criterion {
            id,
            title,
            evidence: Vec::new(),
            blockers: Vec::new(),
        }
    }

    fn block(
        &mut self,
        item: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.blockers.push(Blocker {
            item: item.into(),
            problem: problem.into(),
            remediation: fix.into(),
        });
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "title": self.title,
            "passed": self.blockers.is_empty(),
            "evidence": self.evidence,
            "blockers": self.blockers.iter().map(|b| json!({
                "item": b.item, "problem": b.problem, "remediation": b.remediation,
            })).collect::<Vec<_>>(),
        })
    }
}

/// One scanned path as the client reports it.
#[derive(Debug, Clone)]
pub(crate) struct Scanned {
    path: String,
    baseline: Option<String>,
    error: Option<String>,
    findings: Vec<(String, String, u64)>,
}

fn parse_scan(data: &serde_json::Map<String, Value>) -> Result<Option<Vec<Scanned>>> {
    let Some(v) = data.get("scan") else {
        return Ok(None);
    };
    let Value::Array(items) = v else {
        return Err(Error::bad("scan: expected a list of scanned paths"));
    };
    if items.len() > 1000 {
        return Err(Error::bad("scan: at most 1000 paths"));
    }
    let mut out = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let Value::Object(o) = it else {
            return Err(Error::bad(format!("scan[{i}]: expected an object")));
        };
        let p = Params(o);
        let path = p
            .str("path")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::bad(format!("scan[{i}].path is required")))?
            .to_string();
        let mut findings = Vec::new();
        if let Some(Value::Array(fs)) = o.get("findings") {
            if fs.len() > 10_000 {
                return Err(Error::bad(format!("scan[{i}].findings: at most 10000")));
            }
            for f in fs {
                let rule = f
                    .get("rule")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let file = f
                    .get("file")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let line = f.get("line").and_then(Value::as_u64).unwrap_or(0);
                findings.push((rule, file, line));
            }
        }
        out.push(Scanned {
            path,
            baseline: p.str("baseline")?.map(str::to_string),
            error: p
                .str("error")?
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            findings,
        });
    }
    Ok(Some(out))
}

fn age_text(secs: i64) -> String {
    format_duration(secs.max(0) as u64)
}

/// Evaluates every criterion.
pub(crate) async fn evaluate(
    cx: &Ctx<'_>,
    policy: &OrgPolicy,
    policy_applied: Option<u64>,
    st: &State,
    scan: Option<&[Scanned]>,
    at: DateTime<Utc>,
) -> Result<Vec<Criterion>> {
    let mut out = Vec::new();

    // Storage defined.
    let mut c = Criterion::new("storage", "Storage defined");
    let seal = cx.seal_status().await?;
    c.evidence.push(format!(
        "initialised, unsealed; Shamir seal with {} shares, threshold {}",
        seal["n"], seal["t"]
    ));
    let durable = !cx.deployment.dev_mode && cx.deployment.storage_type != "inmem";
    c.evidence.push(format!(
        "storage backend: {}{}",
        cx.deployment.storage_type,
        if cx.deployment.dev_mode {
            " (dev server)"
        } else {
            ""
        }
    ));
    if policy.require_durable && !durable {
        c.block(
            "storage",
            "a dev server or in-memory storage is not a store of record: its secrets are lost at stop",
            "run `coffer server --config coffer.toml` with [storage.sqlite] path = \"coffer.db\"",
        );
    }
    c.evidence.push(format!(
        "listener TLS: {}",
        if cx.deployment.listener_tls {
            "on"
        } else {
            "off"
        }
    ));
    if policy.require_tls && !cx.deployment.listener_tls {
        c.block(
            "listener",
            "the listener serves plain HTTP: tokens and values cross the network in clear",
            "set tls_cert_file and tls_key_file in [listener.tcp] of the server configuration",
        );
    }
    let keyring = cx.barrier.keyring()?;
    let active = keyring.active();
    let key_age = at.timestamp() - active.install_time;
    c.evidence.push(format!(
        "active key term {} installed {} ago",
        active.term,
        age_text(key_age)
    ));
    if key_age > policy.max_key_age as i64 {
        c.block(
            format!("key term {}", active.term),
            format!(
                "older than the policy's {}",
                format_duration(policy.max_key_age)
            ),
            "coffer operator rotate",
        );
    }
    out.push(c);

    // Access defined.
    let mut c = Criterion::new("access", "Access defined");
    match policy_applied {
        Some(v) => c.evidence.push(format!("org policy version {v} applied")),
        None => c.block(
            "org policy",
            "no org secrets policy is applied (the defaults are evaluated meanwhile)",
            "coffer org-policy init && coffer org-policy apply org-policy.toml",
        ),
    }
    let methods: Vec<String> = cx
        .router
        .read()
        .entries()
        .filter(|m| m.entry.path.starts_with("auth/"))
        .map(|m| format!("{} ({})", m.entry.path, m.entry.kind))
        .collect();
    if methods.is_empty() {
        c.block(
            "auth methods",
            "no auth method is enabled: applications could only use hand-made tokens",
            "coffer auth enable approle",
        );
    } else {
        let mut methods = methods;
        methods.sort();
        c.evidence
            .push(format!("auth methods: {}", methods.join(", ")));
    }
    c.evidence
        .push(format!("{} identities", st.identities.len()));
    for s in &st.secrets {
        let readers = st.access.get(&s.name).map(|a| a.read.len()).unwrap_or(0);
        if readers == 0 {
            c.block(
                &s.name,
                "no identity but root can read it",
                format!(
                    "grant read on {} to the app's role (coffer apply -f coffer.app.toml)",
                    s.data_path
                ),
            );
        }
    }
    if policy.forbid_broad_grants {
        for g in &st.broad {
            let holders: Vec<String> = st
                .identities
                .iter()
                .filter(|i| i.policies.contains(&g.policy))
                .map(|i| i.label())
                .collect();
            let to = if holders.is_empty() {
                "no identity yet".to_string()
            } else {
                holders.join(", ")
            };
            c.block(
                format!("policy {}", g.policy),
                format!(
                    "grants read on \"{}\" (the whole of {}) to {to}",
                    g.pattern,
                    g.mounts.join(", ")
                ),
                format!(
                    "coffer policy write {} FILE  # read on exactly the paths the app needs",
                    g.policy
                ),
            );
        }
    }
    let mut roots = 0;
    for accessor in cx.tokens.accessors().await? {
        let Some(t) = cx.tokens.lookup_accessor(&accessor).await? else {
            continue;
        };
        if !t.is_root() {
            continue;
        }
        roots += 1;
        let age = at.timestamp() - t.creation_time;
        if age > policy.root_token_max_age as i64 {
            c.block(
                format!("root token {accessor}"),
                format!(
                    "a root token is still valid {} after its creation (policy: {})",
                    age_text(age),
                    format_duration(policy.root_token_max_age)
                ),
                format!("coffer token revoke -accessor {accessor}"),
            );
        }
    }
    c.evidence.push(format!("{roots} live root token(s)"));
    out.push(c);

    // No secrets in code or config.
    let mut c = Criterion::new("no_secrets_in_code", "No secrets in code or config");
    match scan {
        None => c.block(
            "scan",
            "nothing was scanned",
            "coffer check --scan ./repo (and list repositories in the org policy's [scan])",
        ),
        Some(scanned) => {
            for r in &policy.repositories {
                if !scanned.iter().any(|s| s.path == r.path) {
                    c.block(
                        &r.path,
                        "listed in the org policy but not scanned",
                        format!("coffer check --scan {}", r.path),
                    );
                }
            }
            if scanned.is_empty() {
                c.block("scan", "nothing was scanned", "coffer check --scan ./repo");
            }
            for s in scanned {
                if let Some(e) = &s.error {
                    c.block(
                        &s.path,
                        format!("could not be scanned: {e}"),
                        format!("coffer scan {}", s.path),
                    );
                    continue;
                }
                c.evidence.push(format!(
                    "{}: {} unbaselined finding(s){}",
                    s.path,
                    s.findings.len(),
                    s.baseline
                        .as_ref()
                        .map(|b| format!(" (baseline {b})"))
                        .unwrap_or_default()
                ));
                for (rule, file, line) in &s.findings {
                    c.block(
                        format!("{file}:{line}"),
                        format!("{rule} (value redacted)"),
                        format!("coffer scan --import secret/imported --rewrite {file}"),
                    );
                }
            }
        }
    }
    out.push(c);

    // Rotation in place / used.
    let mut place = Criterion::new("rotation_in_place", "Rotation in place");
    let mut used = Criterion::new("rotation_used", "Rotation used");
    place.evidence.push(format!("{} secrets", st.secrets.len()));
    let mut managed = 0;
    for s in &st.secrets {
        let set = |flags: &str| format!("coffer secret set {} {flags}", s.name);
        let Some(lc) = &s.lifecycle else {
            place.block(
                &s.name,
                "no owner, type or rotation cadence",
                set("-owner=TEAM -type=TYPE -rotate-every=90d -rotator=generate"),
            );
            continue;
        };
        if policy.require_owner && lc.owner.is_empty() {
            place.block(&s.name, "no owner", set("-owner=TEAM"));
        }
        if policy.require_type && lc.secret_type.is_empty() {
            place.block(&s.name, "no type", set("-type=TYPE"));
        }
        if !lc.origin.is_empty() && !policy.allowed_origins.contains(&lc.origin) {
            place.block(
                &s.name,
                format!("origin {} is not allowed by the org policy", lc.origin),
                set("-origin=internal"),
            );
        }
        if policy.third_party_requires_vendor && lc.origin == "third_party" && lc.vendor.is_empty()
        {
            place.block(
                &s.name,
                "a third-party secret without its vendor",
                set("-vendor=VENDOR"),
            );
        }
        let max = policy.max_age.get(&lc.secret_type).copied();
        let period = lc.rotation.as_ref().and_then(|r| r.period);
        let cron = lc.rotation.as_ref().and_then(|r| r.cron.clone());
        match (period, cron, s.not_after) {
            (Some(p), _, _) => {
                if let Some(m) = max.filter(|m| p > *m) {
                    place.block(
                        &s.name,
                        format!(
                            "rotates every {}, the policy allows at most {} for {}",
                            format_duration(p),
                            format_duration(m),
                            lc.secret_type
                        ),
                        set(&format!("-rotate-every={}", format_duration(m))),
                    );
                } else {
                    managed += 1;
                }
            }
            (None, Some(_), _) => managed += 1,
            (None, None, Some(_)) if lc.secret_type == "certificate" => managed += 1,
            _ => place.block(
                &s.name,
                "no rotation cadence",
                set(&format!(
                    "-rotate-every={} -rotator=generate",
                    format_duration(max.unwrap_or(90 * 86_400))
                )),
            ),
        }
        match s.status {
            Status::Overdue => used.block(
                &s.name,
                format!(
                    "rotation overdue (due {})",
                    s.next_due
                        .map(|d| rfc3339(&d))
                        .unwrap_or_else(|| "-".into())
                ),
                format!("coffer rotate {}", s.name),
            ),
            Status::Failing => used.block(
                &s.name,
                format!(
                    "the last rotation failed: {}",
                    lc.state.last_error.clone().unwrap_or_default()
                ),
                format!(
                    "fix rotator {}, then coffer rotate {}",
                    lc.rotation
                        .as_ref()
                        .map(|r| r.rotator.as_str())
                        .unwrap_or("-"),
                    s.name
                ),
            ),
            _ => {
                if let Some(p) = period {
                    let last = lc.state.last_rotated.or(lc.created);
                    if let Some(last) = last {
                        if (at - last).num_seconds() > p as i64 {
                            used.block(
                                &s.name,
                                format!("not rotated within its cadence of {}", format_duration(p)),
                                format!("coffer rotate {}", s.name),
                            );
                        }
                    }
                }
            }
        }
    }
    place
        .evidence
        .push(format!("{managed} with a cadence within the policy"));
    let rotated = st
        .secrets
        .iter()
        .filter(|s| {
            s.lifecycle
                .as_ref()
                .is_some_and(|l| l.state.last_rotated.is_some())
        })
        .count();
    used.evidence
        .push(format!("{rotated} secret(s) rotated at least once"));
    out.push(place);
    out.push(used);

    // Revocation in place and used.
    let mut c = Criterion::new("revocation", "Revocation in place and used");
    let mut long_lived = 0;
    for accessor in cx.tokens.accessors().await? {
        let Some(t) = cx.tokens.lookup_accessor(&accessor).await? else {
            continue;
        };
        if t.is_root() {
            continue;
        }
        let ttl = t.expire_time.map(|e| e - t.creation_time);
        match ttl {
            None => {
                long_lived += 1;
                c.block(
                    format!("token {accessor}"),
                    "never expires",
                    format!("coffer token revoke -accessor {accessor}"),
                );
            }
            Some(ttl) if ttl > policy.max_token_ttl as i64 && t.period == 0 => {
                long_lived += 1;
                c.block(
                    format!("token {accessor}"),
                    format!(
                        "TTL {} exceeds the policy's {}",
                        age_text(ttl),
                        format_duration(policy.max_token_ttl)
                    ),
                    format!("coffer token revoke -accessor {accessor}"),
                );
            }
            _ => {}
        }
    }
    c.evidence.push(format!(
        "{} lease(s) of dynamic credentials, each with a TTL; {long_lived} token(s) beyond the TTL policy",
        cx.leases.len()
    ));
    let (drill, used_rec) = super::revocation_records(cx).await?;
    let last = [drill.as_ref(), used_rec.as_ref()]
        .into_iter()
        .flatten()
        .filter_map(|r| r["at"].as_str())
        .filter_map(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .max();
    match last {
        Some(t) if (at - t).num_seconds() <= policy.drill_max_age as i64 => c.evidence.push(
            format!("emergency revocation last exercised {}", rfc3339(&t)),
        ),
        Some(t) => c.block(
            "emergency revocation",
            format!(
                "last exercised {}, beyond the policy's {}",
                rfc3339(&t),
                format_duration(policy.drill_max_age)
            ),
            "coffer revoke --compromised --drill SECRET --reason \"drill\"",
        ),
        None => c.block(
            "emergency revocation",
            "never exercised or drilled",
            "coffer revoke --compromised --drill SECRET --reason \"drill\"",
        ),
    }
    out.push(c);

    // Audit.
    let mut c = Criterion::new("audit", "Audit");
    let devices = cx.audit.verify_devices().await;
    if devices.is_empty() && policy.require_audit_device {
        c.block(
            "audit device",
            "no audit device is enabled",
            "coffer audit enable file file_path=audit.log",
        );
    }
    let mut verified = 0;
    for d in &devices {
        let path = d["path"].as_str().unwrap_or("");
        let detail = d["verification"].as_str().unwrap_or("");
        c.evidence.push(format!(
            "{path} ({}): {detail}",
            d["type"].as_str().unwrap_or("")
        ));
        match d["verified"].as_bool() {
            Some(true) => verified += 1,
            Some(false) => c.block(
                format!("audit device {path}"),
                detail.to_string(),
                format!(
                    "coffer audit verify --open FILE; investigate, then `coffer audit disable {path}` and enable it again to start a new chain"
                ),
            ),
            None => {}
        }
    }
    if policy.require_verified_chain && !devices.is_empty() && verified == 0 {
        c.block(
            "audit chain",
            "no enabled device's chain could be verified by the server",
            "coffer audit enable file file_path=audit.log",
        );
    }
    out.push(c);

    // Approvals.
    let mut c = Criterion::new("approvals", "Approvals");
    let plan = super::plan::build(cx, policy, policy_applied, st, at).await?;
    let hash = super::plan::hash(&plan);
    c.evidence.push(format!("current plan sha256:{hash}"));
    let approvals = super::plan::approvals(cx, &hash).await?;
    for role in &policy.required_approvals {
        match approvals.iter().find(|a| a["role"] == json!(role)) {
            Some(a) => c.evidence.push(format!(
                "approved as {role} by {} at {}",
                a["display_name"].as_str().unwrap_or(""),
                a["at"].as_str().unwrap_or("")
            )),
            None => {
                let who = policy
                    .roles
                    .get(role)
                    .map(|r| r.policies.join(" or "))
                    .unwrap_or_default();
                c.block(
                    format!("approval {role}"),
                    "the current plan is not signed by this role",
                    format!("coffer plan approve --as {role}  # with a token holding policy {who}"),
                );
            }
        }
    }
    out.push(c);
    Ok(out)
}

/// The check's answer.
fn answer(criteria: &[Criterion], plan_hash: &str) -> Value {
    let blockers: usize = criteria.iter().map(|c| c.blockers.len()).sum();
    json!({
        "result": if blockers == 0 { "completed" } else { "blocked" },
        "blockers": blockers,
        "signal": if blockers == 0 { Value::from("Secrets management defined") } else { Value::Null },
        "plan_sha256": plan_hash,
        "criteria": criteria.iter().map(Criterion::to_json).collect::<Vec<_>>(),
    })
}

/// `GET|POST sys/coffer/check`, `POST sys/coffer/check/abort`.
pub(crate) async fn handle(
    cx: &Ctx<'_>,
    req: &Request,
    rest: &str,
    token: &TokenEntry,
) -> Result<Response> {
    if rest == "coffer/check/abort" {
        if !matches!(req.operation, Operation::Create | Operation::Update) {
            return Err(Error::UnsupportedOperation);
        }
        return abort(cx, req, token).await;
    }
    if rest != "coffer/check" {
        return Err(Error::UnsupportedPath(format!(
            "unsupported path sys/{rest}"
        )));
    }
    let record = match req.operation {
        Operation::Read => false,
        Operation::Create | Operation::Update => Params(&req.data).bool("record")?.unwrap_or(true),
        _ => return Err(Error::UnsupportedOperation),
    };
    let scan = parse_scan(&req.data)?;
    let at = now();
    let (policy, applied) = super::effective_policy(cx).await?;
    let st = state::gather(cx, &policy.admin_policies, at).await?;
    let criteria = evaluate(
        cx,
        &policy,
        applied.as_ref().map(|a| a.version),
        &st,
        scan.as_deref(),
        at,
    )
    .await?;
    let plan =
        super::plan::build(cx, &policy, applied.as_ref().map(|a| a.version), &st, at).await?;
    let hash = super::plan::hash(&plan);
    let mut body = answer(&criteria, &hash);
    body["checked_at"] = json!(rfc3339(&at));
    if record {
        let scanned: Vec<String> = scan
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.path)
            .collect();
        let name = if body["result"] == "completed" {
            "secrets_management_defined"
        } else {
            "secrets_management_blocked"
        };
        cx.audit_event(
            name,
            Some(token),
            json!({
                "plan_sha256": hash,
                "org_policy_version": applied.as_ref().map(|a| a.version),
                "blockers": body["blockers"],
                "scanned": scanned,
            }),
        )
        .await?;
        body["recorded"] = json!(name);
    }
    Ok(Response::data(body))
}

/// `POST sys/coffer/check/abort {reason, secure}`: the work is cancelled;
/// the note lists the credentials to secure (read in the last 30 days,
/// third-party, overdue) and, with `secure`, rotates those with a rotator.
async fn abort(cx: &Ctx<'_>, req: &Request, token: &TokenEntry) -> Result<Response> {
    let p = Params(&req.data);
    let reason = p
        .str("reason")?
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::bad("reason is required: say why the work was cancelled"))?
        .to_string();
    if reason.len() > 4096 {
        return Err(Error::bad("reason: at most 4096 characters"));
    }
    let secure = p.bool("secure")?.unwrap_or(false);
    let at = now();
    let st = state::gather(cx, &[], at).await?;
    let recent = at.timestamp() - 30 * 86_400;
    let mut creds = Vec::new();
    for s in &st.secrets {
        let mut why = Vec::new();
        let last_read = st
            .readers
            .get(&s.name)
            .and_then(|r| r.iter().map(|o| o.last_read).max());
        if last_read.is_some_and(|t| t >= recent) {
            why.push("read in the last 30 days");
        }
        if s.lifecycle
            .as_ref()
            .is_some_and(|l| l.origin == "third_party")
        {
            why.push("third-party");
        }
        if s.status == Status::Overdue {
            why.push("overdue");
        }
        if why.is_empty() {
            continue;
        }
        let rotator = s
            .lifecycle
            .as_ref()
            .and_then(|l| l.rotation.as_ref())
            .map(|r| r.rotator.clone())
            .filter(|r| r != "manual");
        let mut action = match &rotator {
            Some(r) => format!("rotate with {r}: coffer rotate {}", s.name),
            None => format!(
                "change it where it is issued{}, then coffer kv put {}",
                s.lifecycle
                    .as_ref()
                    .filter(|l| !l.vendor.is_empty())
                    .map(|l| format!(" (at {})", l.vendor))
                    .unwrap_or_default(),
                s.name
            ),
        };
        if secure && rotator.is_some() {
            action = match rotate_secret(cx, token, &s.name, &reason).await {
                Ok(v) => format!("rotated to version {v}"),
                Err(e) => format!("rotation failed: {}", e.messages().join("; ")),
            };
        }
        creds.push(json!({"secret": s.name, "why": why, "action": action}));
    }
    let id = coffer_crypto::random::uuid();
    let note = json!({
        "id": id,
        "result": "aborted",
        "aborted_at": rfc3339(&at),
        "by": token.display_name,
        "reason": reason,
        "secured": secure,
        "credentials": creds,
    });
    super::view(cx.barrier)
        .put_json(&format!("aborts/{id}"), &note)
        .await?;
    cx.audit_event(
        "secrets_management_aborted",
        Some(token),
        json!({"id": id, "reason": reason, "secured": secure,
               "credentials": note["credentials"].as_array().map(|a| a.iter().map(|c| c["secret"].clone()).collect::<Vec<_>>())}),
    )
    .await?;
    Ok(Response::data(note))
}

/// Rotates the secret `<mount>/<path>` now; returns the new version.
async fn rotate_secret(cx: &Ctx<'_>, token: &TokenEntry, name: &str, reason: &str) -> Result<u64> {
    let (m, rel) = {
        let router = cx.router.read();
        let (m, rel) = router
            .route(name)
            .ok_or_else(|| Error::bad(format!("no mount at {name}")))?;
        (m, rel.to_string())
    };
    cx.actions
        .rotate(Some(token), &m, &rel, &format!("aborted: {reason}"))
        .await
}

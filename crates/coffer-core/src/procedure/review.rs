//! Access reviews (`sys/coffer/review`): each identity's grants against its
//! actual use from the access records.
//!
//! - `POST sys/coffer/review` `{scope, stale_after, max_readers}` starts one:
//!   one `grant` item per (identity, secret it can read) and one `identity`
//!   item per identity that reads fewer secrets than it may. Flags: `stale`
//!   (not read by the identity within `stale_after`; never read counts),
//!   `over_shared` (the secret is readable by more than `max_readers`
//!   identities), `broader_than_used` (an identity item);
//! - `LIST sys/coffer/review`, `GET sys/coffer/review/<id>` (the export);
//! - `POST sys/coffer/review/<id>/decide` `{item, decision, rationale}`:
//!   `keep` or `revoke` (grant and identity items), `narrow` (identity
//!   items: keep only the secrets it used); the rationale is mandatory;
//! - `POST sys/coffer/review/<id>/apply` (sudo): for each identity with a
//!   revoke or narrow decision, a policy `review-<mount>-<name>` denying
//!   the secrets taken away is written and added to the identity's role
//!   (AppRole, userpass, JWT). Tokens already issued keep their policies
//!   until they end; the answer lists them.
//!
//! An identity's use is matched by policy set: a reader whose token carries
//! the identity's policies (`default` aside) is that identity.

use serde_json::{json, Value};

use super::state::{self, Identity};
use super::Ctx;
use super::{dur, view};
use crate::engine::EngineCtx;
use crate::token::TokenEntry;
use crate::util::{now, parse_duration, rfc3339, Params};
use crate::{Error, Operation, Request, Response, Result};

/// The most recent completed (applied) review: id and time.
pub async fn last_completed(cx: &Ctx<'_>) -> Result<Option<Value>> {
    view(cx.barrier).get_json("reviews-last-applied").await
}

/// Serialises changes to reviews.
static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn key(id: &str) -> Result<String> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(Error::NotFound);
    }
    Ok(format!("reviews/{id}"))
}

/// `sys/coffer/review...`.
pub(crate) async fn handle(
    cx: &Ctx<'_>,
    req: &Request,
    rest: &str,
    token: &TokenEntry,
) -> Result<Response> {
    let v = view(cx.barrier);
    let sub = rest
        .strip_prefix("coffer/review")
        .unwrap_or("")
        .trim_start_matches('/');
    let write = matches!(req.operation, Operation::Create | Operation::Update);
    if sub.is_empty() {
        return match req.operation {
            Operation::List | Operation::Read => {
                let mut keys = v.list("reviews/").await?;
                keys.sort();
                Response::list(keys)
            }
            Operation::Create | Operation::Update => start(cx, req, token).await,
            _ => Err(Error::UnsupportedOperation),
        };
    }
    let (id, action) = match sub.split_once('/') {
        Some((id, a)) => (id, a),
        None => (sub, ""),
    };
    let k = key(id)?;
    match (action, req.operation) {
        ("", Operation::Read) => {
            let r: Value = v.get_json(&k).await?.ok_or(Error::NotFound)?;
            Ok(Response::data(r))
        }
        ("decide", _) if write => decide(cx, req, token, &k).await,
        ("apply", _) if write => apply(cx, token, &k).await,
        ("" | "decide" | "apply", _) => Err(Error::UnsupportedOperation),
        _ => Err(Error::UnsupportedPath(format!(
            "unsupported path sys/{rest}"
        ))),
    }
}

async fn start(cx: &Ctx<'_>, req: &Request, token: &TokenEntry) -> Result<Response> {
    let p = Params(&req.data);
    let (policy, _) = super::effective_policy(cx).await?;
    let scope = p.str("scope")?.unwrap_or("").trim_matches('/').to_string();
    let stale_after = match p.str("stale_after")?.filter(|s| !s.is_empty()) {
        Some(s) => {
            parse_duration(s).ok_or_else(|| Error::bad("stale_after: a duration such as 90d"))?
        }
        None => policy.stale_after,
    };
    let max_readers = p.u64("max_readers")?.unwrap_or(policy.max_readers);
    let at = now();
    let st = state::gather(cx, &policy.admin_policies, at).await?;
    let in_scope =
        |name: &str| scope.is_empty() || name == scope || name.starts_with(&format!("{scope}/"));
    let cutoff = at.timestamp() - stale_after as i64;
    let mut items = Vec::new();
    let mut over_shared = Vec::new();
    let by_id: std::collections::BTreeMap<String, &Identity> =
        st.identities.iter().map(|i| (i.id(), i)).collect();
    let mut per_identity: std::collections::BTreeMap<String, (Vec<String>, Vec<String>)> =
        Default::default();
    for s in st.secrets.iter().filter(|s| in_scope(&s.name)) {
        let a = st.access.get(&s.name).cloned().unwrap_or_default();
        let shared = a.read.len() as u64 > max_readers;
        if shared {
            over_shared.push(
                json!({"secret": s.name, "readers": a.read.len(), "max_readers": max_readers}),
            );
        }
        let observed = st.readers.get(&s.name).cloned().unwrap_or_default();
        for id in &a.read {
            let Some(identity) = by_id.get(id) else {
                continue;
            };
            let last = observed
                .iter()
                .filter(|o| state::is_reader(identity, o))
                .map(|o| o.last_read)
                .max();
            let stale = last.is_none_or(|t| t < cutoff);
            let entry = per_identity.entry(id.clone()).or_default();
            entry.0.push(s.name.clone());
            if !stale {
                entry.1.push(s.name.clone());
            }
            let mut flags = Vec::new();
            if stale {
                flags.push("stale");
            }
            if shared {
                flags.push("over_shared");
            }
            let caps: Vec<&str> = [
                Some("read"),
                a.write.contains(id).then_some("write"),
                a.rotate.contains(id).then_some("rotate"),
            ]
            .into_iter()
            .flatten()
            .collect();
            items.push(json!({
                "item": format!("g{}", items.len() + 1),
                "kind": "grant",
                "identity": id,
                "identity_kind": identity.kind,
                "secret": s.name,
                "capabilities": caps,
                "policies": identity.policies,
                "last_used": last.and_then(|t| chrono::DateTime::from_timestamp(t, 0)).map(|t| rfc3339(&t)),
                "flags": flags,
                "decision": Value::Null,
            }));
        }
    }
    for (id, (granted, used)) in &per_identity {
        if !used.is_empty() && used.len() < granted.len() {
            items.push(json!({
                "item": format!("i{}", items.len() + 1),
                "kind": "identity",
                "identity": id,
                "granted": granted,
                "used": used,
                "flags": ["broader_than_used"],
                "decision": Value::Null,
            }));
        }
    }
    let stale: Vec<Value> = items
        .iter()
        .filter(|i| i["flags"].as_array().is_some_and(|f| f.contains(&json!("stale"))))
        .map(|i| json!({"identity": i["identity"], "secret": i["secret"], "last_used": i["last_used"]}))
        .collect();
    let broader: Vec<Value> = items
        .iter()
        .filter(|i| i["kind"] == "identity")
        .map(|i| json!({"identity": i["identity"], "granted": i["granted"], "used": i["used"]}))
        .collect();
    let id = coffer_crypto::random::uuid();
    let review = json!({
        "id": id,
        "started_at": rfc3339(&at),
        "started_by": token.display_name,
        "scope": scope,
        "stale_after": dur(stale_after),
        "max_readers": max_readers,
        "findings": {"stale_grants": stale, "over_shared": over_shared, "broader_than_used": broader},
        "items": items,
        "decisions": [],
        "applied": Value::Null,
    });
    let _g = LOCK.lock().await;
    cx.audit_event(
        "access_review_started",
        Some(token),
        json!({"id": id, "scope": scope, "items": review["items"].as_array().map(Vec::len),
               "stale": stale.len(), "over_shared": over_shared.len()}),
    )
    .await?;
    view(cx.barrier).put_json(&key(&id)?, &review).await?;
    Ok(Response::data(review))
}

async fn decide(cx: &Ctx<'_>, req: &Request, token: &TokenEntry, k: &str) -> Result<Response> {
    let p = Params(&req.data);
    let item = p
        .str("item")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::bad("item is required"))?
        .to_string();
    let decision = p.str("decision")?.unwrap_or("").to_string();
    if !matches!(decision.as_str(), "keep" | "revoke" | "narrow") {
        return Err(Error::bad("decision must be keep, revoke or narrow"));
    }
    let rationale = p
        .str("rationale")?
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::bad("rationale is required: say why"))?
        .to_string();
    if rationale.len() > 4096 {
        return Err(Error::bad("rationale: at most 4096 characters"));
    }
    let _g = LOCK.lock().await;
    let v = view(cx.barrier);
    let mut r: Value = v.get_json(k).await?.ok_or(Error::NotFound)?;
    if !r["applied"].is_null() {
        return Err(Error::bad("this review was applied; start a new one"));
    }
    let items = r["items"]
        .as_array_mut()
        .ok_or_else(|| Error::corrupt("review"))?;
    let it = items
        .iter_mut()
        .find(|i| i["item"] == json!(item))
        .ok_or_else(|| Error::bad(format!("item: no item {item:?} in this review")))?;
    if decision == "narrow" && it["kind"] != "identity" {
        return Err(Error::bad(
            "decision: narrow applies to identity items (broader_than_used); revoke a single grant",
        ));
    }
    let rec = json!({"item": item, "decision": decision, "rationale": rationale,
                     "by": token.display_name, "at": rfc3339(&now())});
    it["decision"] = rec.clone();
    let identity = it["identity"].clone();
    let secret = it["secret"].clone();
    if let Some(d) = r["decisions"].as_array_mut() {
        d.push(rec.clone());
    }
    cx.audit_event(
        "access_review_decision",
        Some(token),
        json!({"review": r["id"], "item": item, "identity": identity, "secret": secret,
               "decision": decision, "rationale": rationale}),
    )
    .await?;
    v.put_json(k, &r).await?;
    Ok(Response::data(rec))
}

/// Which role path of an auth mount an identity is.
fn role_path(kind: &str, name: &str) -> Option<String> {
    match kind {
        "approle" | "jwt" => Some(format!("role/{name}")),
        "userpass" => Some(format!("users/{name}")),
        _ => None,
    }
}

async fn apply(cx: &Ctx<'_>, token: &TokenEntry, k: &str) -> Result<Response> {
    let _g = LOCK.lock().await;
    let v = view(cx.barrier);
    let mut r: Value = v.get_json(k).await?.ok_or(Error::NotFound)?;
    if !r["applied"].is_null() {
        return Err(Error::bad("this review was applied already"));
    }
    // Secrets to deny, per identity.
    let mut deny: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for it in r["items"].as_array().cloned().unwrap_or_default() {
        let d = it["decision"]["decision"].as_str().unwrap_or("");
        let id = it["identity"].as_str().unwrap_or("").to_string();
        match (it["kind"].as_str(), d) {
            (Some("grant"), "revoke") => deny
                .entry(id)
                .or_default()
                .push(it["secret"].as_str().unwrap_or("").to_string()),
            (Some("identity"), "revoke") | (Some("identity"), "narrow") => {
                let used: Vec<&Value> = it["used"]
                    .as_array()
                    .map(|u| u.iter().collect())
                    .unwrap_or_default();
                for g in it["granted"].as_array().cloned().unwrap_or_default() {
                    if d == "revoke" || !used.contains(&&g) {
                        deny.entry(id.clone())
                            .or_default()
                            .push(g.as_str().unwrap_or("").to_string());
                    }
                }
            }
            _ => {}
        }
    }
    let identities = state::identities(cx).await?;
    let secrets = state::secrets(cx, now()).await?;
    let mut done = Vec::new();
    let mut skipped = Vec::new();
    for (id, names) in deny {
        let Some(identity) = identities.iter().find(|i| i.id() == id) else {
            skipped.push(json!({"identity": id, "why": "no longer exists"}));
            continue;
        };
        let Some(rel) = role_path(&identity.kind, &identity.name) else {
            let why = if identity.kind == "group" {
                "a group's policies are its own: change them with coffer write identity/group/name/NAME policies=..."
            } else {
                "token roles take their policies from the caller: change the role with coffer write auth/token/roles/NAME"
            };
            skipped.push(json!({"identity": id, "why": why}));
            continue;
        };
        let slug: String = format!(
            "review-{}-{}",
            identity
                .mount
                .trim_start_matches("auth/")
                .trim_end_matches('/'),
            identity.name
        )
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
        let mut paths: Vec<String> = names
            .iter()
            .filter_map(|n| secrets.iter().find(|s| &s.name == n))
            .map(|s| s.data_path.clone())
            .collect();
        let existing = cx.policies.read_raw(&slug).await?.unwrap_or_default();
        for line in existing.lines() {
            if let Some(p) = line
                .strip_prefix("path \"")
                .and_then(|l| l.split('"').next())
            {
                paths.push(p.to_string());
            }
        }
        paths.sort();
        paths.dedup();
        let text: String = paths
            .iter()
            .map(|p| format!("path \"{p}\" {{ capabilities = [\"deny\"] }}\n"))
            .collect();
        cx.policies.write(&slug, &text).await?;
        let m = {
            let router = cx.router.read();
            router.get(&identity.mount).cloned()
        };
        let Some(m) = m else {
            skipped.push(json!({"identity": id, "why": "its auth mount is gone"}));
            continue;
        };
        let mut policies: Vec<String> = identity
            .policies
            .iter()
            .filter(|p| *p != "default")
            .cloned()
            .collect();
        if !policies.contains(&slug) {
            policies.push(slug.clone());
        }
        let ctx = EngineCtx {
            view: &m.view,
            mount: &m.entry,
            token: None,
        };
        let req = Request::new(Operation::Update, format!("{}{rel}", m.entry.path))
            .with_data(json!({"token_policies": policies}));
        m.engine.handle(&ctx, &req, &rel).await?;
        done.push(json!({"identity": id, "policy": slug, "denied": paths}));
    }
    let at = rfc3339(&now());
    r["applied"] = json!({"at": at, "by": token.display_name, "changes": done, "skipped": skipped,
        "note": "tokens issued before this keep their policies until they expire; revoke them to take effect at once"});
    cx.audit_event(
        "access_review_applied",
        Some(token),
        json!({"review": r["id"], "changes": r["applied"]["changes"], "skipped": r["applied"]["skipped"]}),
    )
    .await?;
    v.put_json(k, &r).await?;
    v.put_json(
        "reviews-last-applied",
        &json!({"id": r["id"], "applied_at": at}),
    )
    .await?;
    Ok(Response::data(r))
}

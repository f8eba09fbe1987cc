//! The live state the plan, the check and the access review are computed
//! from: secrets with their lifecycle records, identities (token roles,
//! AppRole roles, userpass users, JWT roles) with their policies, the
//! effective access each identity has on each secret, broad grants, and who
//! actually read what. Everything here is structure and metadata: no secret
//! value is ever read.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::Ctx;
use crate::engine::EngineCtx;
use crate::engines::EngineExt;
use crate::lifecycle::model::{Lifecycle, Status};
use crate::policy::{Capability, Policy};
use crate::{Operation, Request, Result};

/// One secret (a KV v2 path) and its lifecycle record.
#[derive(Debug, Clone)]
pub struct Secret {
    /// `<mount>/<path>`, e.g. `secret/billing/stripe`.
    pub name: String,
    /// The API path reads go to: `<mount>/data/<path>`.
    pub data_path: String,
    /// The rotate endpoint: `<mount>/rotate/<path>`.
    pub rotate_path: String,
    /// Its lifecycle record, if any.
    pub lifecycle: Option<Lifecycle>,
    /// Its status now.
    pub status: Status,
    /// When rotation next falls due.
    pub next_due: Option<DateTime<Utc>>,
    /// Certificate NotAfter, when the value holds one.
    pub not_after: Option<DateTime<Utc>>,
}

/// An identity an application or person logs in as.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `token_role`, `approle`, `userpass`, `jwt` or `group` (an identity
    /// group: its members' tokens gain its policies).
    pub kind: String,
    /// The auth mount (`auth/approle/`), `auth/token/`, or
    /// `identity/group/` for a group.
    pub mount: String,
    /// The role or user name.
    pub name: String,
    /// Policies its tokens carry (`default` included unless refused).
    pub policies: Vec<String>,
}

impl Identity {
    /// `approle auth/approle/ app` style label.
    pub fn label(&self) -> String {
        format!("{} {}{}", self.kind, self.mount, self.name)
    }

    /// Stable id: `<mount><name>`.
    pub fn id(&self) -> String {
        format!("{}{}", self.mount, self.name)
    }
}

/// One policy rule that reads `*` or a whole mount.
#[derive(Debug, Clone)]
pub struct BroadGrant {
    /// The policy.
    pub policy: String,
    /// The rule's pattern.
    pub pattern: String,
    /// The mounts it covers whole.
    pub mounts: Vec<String>,
}

/// Who can do what to one secret.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Identity ids that can read it.
    pub read: Vec<String>,
    /// Identity ids that can write it.
    pub write: Vec<String>,
    /// Identity ids that can rotate it.
    pub rotate: Vec<String>,
}

/// One observed reader of a secret (from the access records).
#[derive(Debug, Clone)]
pub struct Observed {
    /// The token's display name.
    pub display_name: String,
    /// The token's policies.
    pub policies: Vec<String>,
    /// Last read.
    pub last_read: i64,
    /// Reads counted.
    pub reads: u64,
}

/// Everything gathered.
pub struct State {
    /// Secrets, sorted by name.
    pub secrets: Vec<Secret>,
    /// Identities, sorted by id.
    pub identities: Vec<Identity>,
    /// Access per secret name.
    pub access: BTreeMap<String, Access>,
    /// Broad grants, sorted.
    pub broad: Vec<BroadGrant>,
    /// Readers per secret name.
    pub readers: BTreeMap<String, Vec<Observed>>,
    /// Every ACL policy name.
    pub policies: Vec<String>,
}

/// KV v2 mounts, sorted by path.
fn kv2_mounts(cx: &Ctx<'_>) -> Vec<crate::mounts::Mounted> {
    let mut v: Vec<_> = cx
        .router
        .read()
        .entries()
        .filter(|m| m.engine.as_kv2().is_some())
        .cloned()
        .collect();
    v.sort_by(|a, b| a.entry.path.cmp(&b.entry.path));
    v
}

/// Every KV v2 secret with its lifecycle status at `at`.
pub async fn secrets(cx: &Ctx<'_>, at: DateTime<Utc>) -> Result<Vec<Secret>> {
    let mut out = Vec::new();
    for m in kv2_mounts(cx) {
        let mut paths: Vec<String> = m
            .view
            .keys_with_prefix("metadata/")
            .await?
            .into_iter()
            .filter_map(|k| k.strip_prefix("metadata/").map(str::to_string))
            .collect();
        paths.sort();
        for path in paths {
            let lc = crate::lifecycle::store::load(&m.view, &path).await?;
            let cert = match m.engine.as_kv2() {
                Some(kv) => {
                    let ctx = EngineCtx {
                        view: &m.view,
                        mount: &m.entry,
                        token: None,
                    };
                    kv.read_stage(&ctx, &path, None)
                        .await
                        .ok()
                        .flatten()
                        .and_then(|(_, data)| crate::lifecycle::cert::find_in(&data))
                }
                None => None,
            };
            let (status, next_due) = match &lc {
                Some(l) => (l.status(at, cert.as_ref()), l.next_due(cert.as_ref())),
                None => (Status::Unmanaged, None),
            };
            out.push(Secret {
                name: format!("{}{path}", m.entry.path),
                data_path: format!("{}data/{path}", m.entry.path),
                rotate_path: format!("{}rotate/{path}", m.entry.path),
                lifecycle: lc,
                status,
                next_due,
                not_after: cert.map(|c| c.not_after),
            });
        }
    }
    Ok(out)
}

/// Policies named by a role's JSON answer.
fn policies_of(data: &Value, keys: &[&str]) -> Vec<String> {
    for k in keys {
        match data.get(*k) {
            Some(Value::Array(a)) if !a.is_empty() => {
                return a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            }
            Some(Value::String(s)) if !s.is_empty() => {
                return s
                    .split(',')
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect()
            }
            _ => {}
        }
    }
    Vec::new()
}

/// Asks an auth mount's engine directly (no token, no audit: an internal
/// read of role definitions, which hold no credentials).
async fn engine_call(m: &crate::mounts::Mounted, op: Operation, rel: &str) -> Option<Value> {
    let ctx = EngineCtx {
        view: &m.view,
        mount: &m.entry,
        token: None,
    };
    let req = Request::new(op, format!("{}{rel}", m.entry.path));
    let resp = m.engine.handle(&ctx, &req, rel).await.ok()?;
    resp.data.or(resp.raw)
}

/// Every identity: token roles and the roles/users of each auth method.
pub async fn identities(cx: &Ctx<'_>) -> Result<Vec<Identity>> {
    let mut out = Vec::new();
    for name in cx.tokens.list_roles().await? {
        if let Some(role) = cx.tokens.get_role(&name).await? {
            let mut policies = policies_of(&role, &["allowed_policies"]);
            if !role
                .get("token_no_default_policy")
                .and_then(Value::as_bool)
                .unwrap_or(false)
            {
                policies.push("default".into());
            }
            out.push(Identity {
                kind: "token_role".into(),
                mount: "auth/token/".into(),
                name,
                policies,
            });
        }
    }
    let mounts: Vec<_> = cx
        .router
        .read()
        .entries()
        .filter(|m| m.entry.path.starts_with("auth/"))
        .cloned()
        .collect();
    for m in mounts {
        let (kind, dir) = match m.entry.kind.as_str() {
            "approle" => ("approle", "role"),
            "userpass" => ("userpass", "users"),
            "jwt" | "oidc" => ("jwt", "role"),
            _ => continue,
        };
        let keys = engine_call(&m, Operation::List, dir)
            .await
            .and_then(|d| d.get("keys").cloned())
            .and_then(|k| serde_json::from_value::<Vec<String>>(k).ok())
            .unwrap_or_default();
        for name in keys {
            let Some(data) = engine_call(&m, Operation::Read, &format!("{dir}/{name}")).await
            else {
                continue;
            };
            let mut policies = policies_of(&data, &["token_policies", "policies"]);
            if !data
                .get("token_no_default_policy")
                .and_then(Value::as_bool)
                .unwrap_or(false)
            {
                policies.push("default".into());
            }
            out.push(Identity {
                kind: kind.into(),
                mount: m.entry.path.clone(),
                name,
                policies,
            });
        }
    }
    out.extend(identity_groups(cx));
    for i in &mut out {
        i.policies.sort();
        i.policies.dedup();
    }
    out.sort_by_key(Identity::id);
    Ok(out)
}

/// Identity groups as identities: a member's tokens gain the group's
/// policies and those of every group that contains it (so the access
/// matrix can say "the billing team can read X").
fn identity_groups(cx: &Ctx<'_>) -> Vec<Identity> {
    cx.identity.read(|s| {
        let parents = s.parent_index();
        s.groups
            .values()
            .map(|g| {
                let mut policies = g.policies.clone();
                for id in crate::identity::store::State::ancestors(&parents, [g.id.as_str()]) {
                    if let Some(pg) = s.groups.get(id) {
                        policies.extend(pg.policies.iter().cloned());
                    }
                }
                Identity {
                    kind: "group".into(),
                    mount: "identity/group/".into(),
                    name: g.name.clone(),
                    policies,
                }
            })
            .collect()
    })
}

/// Rules of non-admin policies granting read or list on `*` or a whole
/// KV mount (`secret/*`, `secret/data/*`, `secret/+/*`, `s*`, ...).
pub async fn broad_grants(cx: &Ctx<'_>, admin: &[String]) -> Result<Vec<BroadGrant>> {
    let mounts: Vec<String> = kv2_mounts(cx)
        .iter()
        .map(|m| m.entry.path.clone())
        .collect();
    let mut out = Vec::new();
    let mut names = cx.policies.list().await?;
    names.sort();
    for name in names {
        if name == "root" || admin.contains(&name) {
            continue;
        }
        let Some(text) = cx.policies.read_raw(&name).await? else {
            continue;
        };
        let Ok(policy) = Policy::parse(&name, &text) else {
            continue;
        };
        for rule in policy.rules() {
            let caps = rule.capabilities;
            if caps.is_deny()
                || !(caps.contains(Capability::Read) || caps.contains(Capability::List))
            {
                continue;
            }
            let pattern = rule.pattern.as_str().to_string();
            let covered = covered_mounts(&pattern, &mounts);
            if !covered.is_empty() {
                out.push(BroadGrant {
                    policy: name.clone(),
                    pattern,
                    mounts: covered,
                });
            }
        }
    }
    Ok(out)
}

/// The mounts a pattern covers whole.
pub fn covered_mounts(pattern: &str, mounts: &[String]) -> Vec<String> {
    let Some(pre) = pattern.strip_suffix('*') else {
        return Vec::new();
    };
    mounts
        .iter()
        .filter(|m| {
            m.starts_with(pre)
                || pre == format!("{m}data/")
                || pre == format!("{m}+/")
                || pre == format!("{m}+")
        })
        .cloned()
        .collect()
}

/// Gathers everything.
pub async fn gather(cx: &Ctx<'_>, admin: &[String], at: DateTime<Utc>) -> Result<State> {
    let secrets = secrets(cx, at).await?;
    let identities = identities(cx).await?;
    let mut access = BTreeMap::new();
    let mut acls = Vec::new();
    for i in &identities {
        acls.push(cx.policies.acl(&i.policies).await?);
    }
    for s in &secrets {
        let mut a = Access::default();
        for (i, acl) in identities.iter().zip(&acls) {
            if acl.is_root() {
                continue;
            }
            let data = acl.capabilities(&s.data_path);
            if data.is_deny() {
                continue;
            }
            if data.contains(Capability::Read) {
                a.read.push(i.id());
            }
            if data.contains(Capability::Create) || data.contains(Capability::Update) {
                a.write.push(i.id());
            }
            let rot = acl.capabilities(&s.rotate_path);
            if !rot.is_deny() && rot.contains(Capability::Update) {
                a.rotate.push(i.id());
            }
        }
        access.insert(s.name.clone(), a);
    }
    let broad = broad_grants(cx, admin).await?;
    let mut readers = BTreeMap::new();
    for s in &secrets {
        let rec = cx.audit.access_record(&s.data_path).await?;
        let mut obs: Vec<Observed> = rec
            .map(|r| {
                r.readers
                    .into_iter()
                    .map(|x| Observed {
                        display_name: x.display_name,
                        policies: x.policies,
                        last_read: x.last_read,
                        reads: x.reads,
                    })
                    .collect()
            })
            .unwrap_or_default();
        obs.sort_by(|a, b| a.display_name.cmp(&b.display_name));
        readers.insert(s.name.clone(), obs);
    }
    let mut policies = cx.policies.list().await?;
    policies.sort();
    Ok(State {
        secrets,
        identities,
        access,
        broad,
        readers,
        policies,
    })
}

/// Whether an observed reader is `identity`: same policies, `default`
/// aside (a token's policies are its identity's at login).
pub fn is_reader(identity: &Identity, o: &Observed) -> bool {
    fn strip(v: &[String]) -> Vec<&String> {
        let mut v: Vec<&String> = v.iter().filter(|p| *p != "default").collect();
        v.sort();
        v.dedup();
        v
    }
    let a = strip(&identity.policies);
    !a.is_empty() && a == strip(&o.policies)
}

/// An identity as JSON.
pub fn identity_json(i: &Identity) -> Value {
    json!({"id": i.id(), "kind": i.kind, "mount": i.mount, "name": i.name, "policies": i.policies})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broad_patterns_cover_whole_mounts_only() {
        let mounts = vec!["secret/".to_string(), "kv/".to_string()];
        for (p, want) in [
            ("*", vec!["secret/", "kv/"]),
            ("secret/*", vec!["secret/"]),
            ("secret/data/*", vec!["secret/"]),
            ("secret/+/*", vec!["secret/"]),
            ("s*", vec!["secret/"]),
            ("secret/data/app/*", vec![]),
            ("secret/data/app/db", vec![]),
            ("kv/data/x*", vec![]),
        ] {
            assert_eq!(covered_mounts(p, &mounts), want, "{p}");
        }
    }

    #[test]
    fn a_reader_is_matched_by_its_policies_default_aside() {
        let i = Identity {
            kind: "approle".into(),
            mount: "auth/approle/".into(),
            name: "app".into(),
            policies: vec!["app".into(), "default".into()],
        };
        let o = |p: &[&str]| Observed {
            display_name: "approle".into(),
            policies: p.iter().map(|s| s.to_string()).collect(),
            last_read: 0,
            reads: 1,
        };
        assert!(is_reader(&i, &o(&["app"])));
        assert!(is_reader(&i, &o(&["default", "app"])));
        assert!(!is_reader(&i, &o(&["app", "ci"])));
        assert!(!is_reader(&i, &o(&["default"])));
    }
}

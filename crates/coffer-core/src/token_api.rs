//! The token store's API under `auth/token/`, as Vault's: create (also
//! orphan and from a role), lookup, renew and revoke by token, self or
//! accessor, roles, accessors and tidy. Minting lives here too, for logins.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use crate::core::Core;
use crate::policy::Capability;
use crate::token::{generate_token, hash_token, TokenEntry};
use crate::util::{now, Params};
use crate::{Error, Operation, Request, Response, Result};

/// The system-wide default and maximum token TTL (32 days), as Vault's.
pub use coffer_engine::mounts::SYSTEM_MAX_TTL;

/// Everything needed to mint a token.
#[derive(Default, Clone)]
pub struct TokenSpec {
    /// Requested id (root callers only).
    pub id: Option<Zeroizing<String>>,
    /// Policies, before `default` is added.
    pub policies: Vec<String>,
    /// Leave out `default`.
    pub no_default_policy: bool,
    /// Metadata.
    pub meta: BTreeMap<String, String>,
    /// Display name.
    pub display_name: String,
    /// Requested TTL (0: default).
    pub ttl: u64,
    /// Explicit max TTL (0: none).
    pub explicit_max_ttl: u64,
    /// Period (0: none).
    pub period: u64,
    /// Uses (0: unlimited).
    pub num_uses: u64,
    /// Renewable.
    pub renewable: bool,
    /// Parent hash; `None` for an orphan.
    pub parent: Option<String>,
    /// Creating path, e.g. `auth/token/create` or `auth/userpass/login/alice`.
    pub path: String,
    /// Bound CIDR blocks.
    pub bound_cidrs: Vec<String>,
    /// Token role name.
    pub role: Option<String>,
    /// Mount default TTL (0: system).
    pub mount_default_ttl: u64,
    /// Mount max TTL (0: system).
    pub mount_max_ttl: u64,
    /// The identity entity (empty: none).
    pub entity_id: String,
}

/// Prints whether an id was requested, never the id.
impl std::fmt::Debug for TokenSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSpec")
            .field("id", &crate::redact::opt(&self.id))
            .field("policies", &self.policies)
            .field("no_default_policy", &self.no_default_policy)
            .field("meta", &self.meta)
            .field("display_name", &self.display_name)
            .field("ttl", &self.ttl)
            .field("explicit_max_ttl", &self.explicit_max_ttl)
            .field("period", &self.period)
            .field("num_uses", &self.num_uses)
            .field("renewable", &self.renewable)
            .field("parent", &self.parent)
            .field("path", &self.path)
            .field("bound_cidrs", &self.bound_cidrs)
            .field("role", &self.role)
            .field("mount_default_ttl", &self.mount_default_ttl)
            .field("mount_max_ttl", &self.mount_max_ttl)
            .field("entity_id", &self.entity_id)
            .finish()
    }
}

pub use coffer_policy::sanitize_policies;

/// Mints a token from `spec` and stores it; returns the token and its entry.
pub async fn mint(core: &Core, spec: TokenSpec) -> Result<(Zeroizing<String>, TokenEntry)> {
    let (token, entry) = build_entry(core, spec).await?;
    core.tokens.store(&entry).await?;
    Ok((token, entry))
}

/// Mints a batch token from `spec` (never stored, not renewable, no
/// accessor; see [`crate::batch_token`]); returns the token and its entry.
pub async fn mint_batch(
    core: &Core,
    mut spec: TokenSpec,
) -> Result<(Zeroizing<String>, TokenEntry)> {
    if spec.id.as_ref().is_some_and(|i| !i.is_empty()) {
        return Err(Error::bad("batch tokens cannot have an ID set"));
    }
    if spec.num_uses > 0 {
        return Err(Error::bad("batch tokens cannot have \"num_uses\" set"));
    }
    if spec.period > 0 {
        return Err(Error::bad("batch tokens cannot have \"period\" set"));
    }
    if sanitize_policies(&spec.policies, false)
        .iter()
        .any(|p| p == "root")
    {
        return Err(Error::bad("batch tokens cannot be root tokens"));
    }
    spec.renewable = false;
    let (_, mut entry) = build_entry(core, spec).await?;
    entry.accessor = String::new();
    entry.id_hash = String::new();
    core.tokens.seal_batch(&entry).await
}

/// The entry `spec` describes, with a fresh (or the requested) token.
async fn build_entry(core: &Core, spec: TokenSpec) -> Result<(Zeroizing<String>, TokenEntry)> {
    let policies = sanitize_policies(&spec.policies, !spec.no_default_policy);
    let created = now().timestamp();
    let max_ttl = if spec.mount_max_ttl > 0 {
        spec.mount_max_ttl
    } else {
        SYSTEM_MAX_TTL
    };
    let default_ttl = if spec.mount_default_ttl > 0 {
        spec.mount_default_ttl.min(max_ttl)
    } else {
        max_ttl
    };
    let is_root = policies.iter().any(|p| p == "root");
    let (ttl, max_expire) = if spec.period > 0 {
        let ttl = if spec.explicit_max_ttl > 0 {
            spec.period.min(spec.explicit_max_ttl)
        } else {
            spec.period
        };
        (
            ttl,
            (spec.explicit_max_ttl > 0).then(|| created + secs(spec.explicit_max_ttl)),
        )
    } else if is_root && spec.ttl == 0 && spec.explicit_max_ttl == 0 {
        (0, None)
    } else {
        let cap = if spec.explicit_max_ttl > 0 {
            spec.explicit_max_ttl.min(max_ttl)
        } else {
            max_ttl
        };
        let ttl = if spec.ttl > 0 { spec.ttl } else { default_ttl }.min(cap);
        (ttl, Some(created + secs(cap)))
    };
    let token = match spec.id {
        Some(id) if !id.is_empty() => id,
        _ => generate_token(),
    };
    let id_hash = hash_token(&token);
    if core.tokens.lookup_hash(&id_hash).await?.is_some() {
        return Err(Error::bad("cannot create a token with a duplicate ID"));
    }
    let entry = TokenEntry {
        id_hash,
        accessor: coffer_crypto::random::token_string(24),
        policies,
        parent: spec.parent,
        display_name: spec.display_name,
        meta: spec.meta,
        num_uses: spec.num_uses,
        creation_time: created,
        ttl,
        expire_time: (ttl > 0).then(|| created + secs(ttl)),
        path: spec.path,
        renewable: spec.renewable && ttl > 0,
        explicit_max_ttl: spec.explicit_max_ttl,
        period: spec.period,
        max_expire_time: max_expire,
        bound_cidrs: spec.bound_cidrs,
        role: spec.role,
        uses_exhausted: false,
        entity_id: spec.entity_id,
    };
    Ok((token, entry))
}

fn secs(s: u64) -> i64 {
    i64::try_from(s).unwrap_or(i64::MAX / 4)
}

/// The `auth` block answered after a token is created or renewed.
pub fn auth_block(token: Option<&str>, e: &TokenEntry) -> Value {
    let token_policies: Vec<&String> = e.policies.iter().collect();
    json!({
        "client_token": token.unwrap_or(""),
        "accessor": e.accessor,
        "policies": e.policies,
        "token_policies": token_policies,
        "metadata": if e.meta.is_empty() { Value::Null } else { json!(e.meta) },
        "lease_duration": remaining_ttl(e),
        "renewable": e.renewable,
        "entity_id": e.entity_id,
        "token_type": e.token_type(),
        "orphan": e.parent.is_none(),
        "mfa_requirement": null,
        "num_uses": e.num_uses,
    })
}

fn remaining_ttl(e: &TokenEntry) -> i64 {
    e.expire_time
        .map(|t| (t - now().timestamp()).max(0))
        .unwrap_or(0)
}

fn string_map(v: Option<&Map<String, Value>>, name: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    if let Some(m) = v {
        for (k, v) in m {
            match v {
                Value::String(s) => {
                    out.insert(k.clone(), s.clone());
                }
                _ => return Err(Error::bad(format!("{name}: values must be strings"))),
            }
        }
    }
    Ok(out)
}

/// Whether the caller holds sudo on the request path (or is root).
async fn caller_sudo(core: &Core, req: &Request, caller: &TokenEntry) -> Result<bool> {
    if caller.is_root() {
        return Ok(true);
    }
    let acl = core.token_acl(caller).await?;
    Ok(acl.capabilities(&req.path).contains(Capability::Sudo))
}

/// Handles `auth/token/<rest>`.
pub async fn handle(
    core: &Core,
    req: &Request,
    rest: &str,
    caller: &TokenEntry,
) -> Result<Response> {
    use Operation::*;
    let p = Params(&req.data);
    let op = req.operation;
    let write = matches!(op, Create | Update);
    match rest {
        "create" | "create-orphan" if write => {
            create(core, req, caller, rest == "create-orphan", None).await
        }
        "lookup-self" if matches!(op, Read | Create | Update) => {
            lookup_answer(core, caller, req.token.as_deref().map(String::as_str)).await
        }
        "lookup" if matches!(op, Create | Update | Read) => {
            let token = p
                .str("token")?
                .filter(|t| !t.is_empty())
                .ok_or_else(|| Error::bad("missing token"))?;
            let entry = core.tokens.lookup(token).await?.ok_or_else(bad_token)?;
            lookup_answer(core, &entry, Some(token)).await
        }
        "lookup-accessor" if write => {
            let entry = by_accessor(core, &p).await?;
            lookup_answer(core, &entry, None).await
        }
        "renew-self" if write => {
            if caller.is_batch() {
                return Err(batch_refused("renewed"));
            }
            renew(
                core,
                caller.clone(),
                &p,
                req.token.as_deref().map(String::as_str),
            )
            .await
        }
        "renew" if write => {
            let token = p
                .str("token")?
                .filter(|t| !t.is_empty())
                .ok_or_else(|| Error::bad("missing token"))?;
            let entry = core.tokens.lookup(token).await?.ok_or_else(bad_token)?;
            renew(core, entry, &p, Some(token)).await
        }
        "renew-accessor" if write => {
            let entry = by_accessor(core, &p).await?;
            renew(core, entry, &p, None).await
        }
        "revoke-self" if write => {
            if caller.is_batch() {
                return Err(batch_refused("revoked"));
            }
            core.revoke_token_tree(&caller.id_hash).await?;
            Ok(Response::empty())
        }
        "revoke" if write => {
            let token = p
                .str("token")?
                .filter(|t| !t.is_empty())
                .ok_or_else(|| Error::bad("missing token"))?;
            if token.starts_with(crate::batch_token::BATCH_PREFIX) {
                return Err(batch_refused("revoked"));
            }
            core.revoke_token_tree(&hash_token(token)).await?;
            Ok(Response::empty())
        }
        "revoke-accessor" if write => {
            let accessor = p
                .str("accessor")?
                .filter(|a| !a.is_empty())
                .ok_or_else(|| Error::bad("missing accessor"))?;
            // As Vault's: an accessor whose token is gone is not an error.
            let Some(entry) = core.tokens.lookup_accessor(accessor).await? else {
                let mut r = Response::empty();
                r.warnings.push("No token found with this accessor".into());
                return Ok(r);
            };
            core.revoke_token_tree(&entry.id_hash).await?;
            Ok(Response::empty())
        }
        "revoke-orphan" if write => {
            let token = p
                .str("token")?
                .filter(|t| !t.is_empty())
                .ok_or_else(|| Error::bad("missing token"))?;
            if token.starts_with(crate::batch_token::BATCH_PREFIX) {
                return Err(batch_refused("revoked"));
            }
            let hash = hash_token(token);
            core.tokens
                .lookup_hash(&hash)
                .await?
                .ok_or_else(|| Error::bad("token to revoke not found"))?;
            core.tokens.revoke_orphan(&hash).await?;
            core.after_token_revoked(std::slice::from_ref(&hash))
                .await?;
            Ok(Response::empty())
        }
        "accessors" | "accessors/" if op == List => Response::list(core.tokens.accessors().await?),
        "tidy" if write => {
            // Vault answers 202 and tidies in the background; here the tidy
            // has finished when the 202 goes out, and the log has the count.
            let removed = core.tokens.tidy().await?;
            core.after_token_revoked(&removed).await?;
            tracing::info!(tokens_removed = removed.len(), "token store tidied");
            Ok(tidy_accepted())
        }
        "roles" | "roles/" if op == List => Response::list(core.tokens.list_roles().await?),
        _ => {
            if let Some(role) = rest.strip_prefix("create/") {
                if !write {
                    return Err(Error::UnsupportedOperation);
                }
                let role = valid_name(role)?;
                let def = core
                    .tokens
                    .get_role(role)
                    .await?
                    .ok_or_else(|| Error::bad(format!("unknown role {role}")))?;
                return create(core, req, caller, false, Some((role, def))).await;
            }
            if let Some(role) = rest.strip_prefix("roles/") {
                let role = valid_name(role)?;
                return roles(core, req, role).await;
            }
            if rest.starts_with("lookup/") && op == Read {
                return Err(Error::bad(
                    "use auth/token/lookup with a token in the request body",
                ));
            }
            Err(Error::UnsupportedPath("unsupported path".into()))
        }
    }
}

fn valid_name(name: &str) -> Result<&str> {
    if name.is_empty() || name.contains('/') {
        return Err(Error::bad("invalid role name"));
    }
    Ok(name)
}

fn batch_refused(what: &str) -> Error {
    Error::bad(format!("batch tokens cannot be {what}"))
}

fn bad_token() -> Error {
    Error::Status {
        code: 403,
        errors: vec!["bad token".into()],
    }
}

async fn by_accessor(core: &Core, p: &Params<'_>) -> Result<TokenEntry> {
    let accessor = p
        .str("accessor")?
        .filter(|a| !a.is_empty())
        .ok_or_else(|| Error::bad("missing accessor"))?;
    core.tokens
        .lookup_accessor(accessor)
        .await?
        .ok_or_else(|| Error::bad("invalid accessor"))
}

/// A lookup's answer: the entry; when it was last renewed, as in Vault;
/// and `identity_policies` (the entity's and its groups', as the identity
/// store holds them now), which appear only when there are some.
async fn lookup_answer(core: &Core, e: &TokenEntry, id: Option<&str>) -> Result<Response> {
    let mut data = e.to_lookup_json(id);
    if let (Some(at), Some(o)) = (core.tokens.last_renewal(e).await?, data.as_object_mut()) {
        let time = chrono::DateTime::from_timestamp(at, 0)
            .map(|t| crate::util::rfc3339(&t))
            .unwrap_or_default();
        o.insert("last_renewal".into(), json!(time));
        o.insert("last_renewal_time".into(), json!(at));
    }
    let identity = core.identity_policies(e);
    if !identity.is_empty() {
        data["identity_policies"] = json!(identity);
        // As OpenBao beside them (no namespaces here: always empty).
        data["external_namespace_policies"] = json!({});
    }
    Ok(Response::data(data))
}

async fn renew(
    core: &Core,
    mut entry: TokenEntry,
    p: &Params<'_>,
    token: Option<&str>,
) -> Result<Response> {
    if entry.is_batch() {
        return Err(batch_refused("renewed"));
    }
    if entry.expire_time.is_none() {
        // Tokens without a TTL (root) have nothing to renew.
        let mut r = Response::empty();
        r.auth = Some(auth_block(token, &entry));
        return Ok(r);
    }
    if !entry.renewable {
        return Err(Error::bad("lease is not renewable"));
    }
    check_login_renewal(core, &entry).await?;
    let at = now().timestamp();
    let increment = p.duration("increment")?.unwrap_or(0);
    // Without an increment, Vault grants again the TTL of the last renewal
    // (or of the creation when there was none).
    let last_granted = match (core.tokens.last_renewal(&entry).await?, entry.expire_time) {
        (Some(renewed), Some(expire)) if expire > renewed => (expire - renewed) as u64,
        _ => entry.ttl,
    };
    let ttl = if entry.period > 0 {
        entry.period
    } else if increment > 0 {
        increment
    } else {
        last_granted
    };
    let mut expire = at + secs(ttl);
    if let Some(max) = entry.max_expire_time {
        expire = expire.min(max);
    }
    entry.expire_time = Some(expire);
    // The stored entry gets the new expiry (its use count as stored, never
    // this older copy's); a token revoked meanwhile stays revoked.
    if let Some(stored) = core.tokens.renew(&entry.id_hash, expire).await? {
        entry = stored;
    }
    let mut r = Response::empty();
    r.auth = Some(auth_block(token, &entry));
    if let Some(max) = entry.max_expire_time {
        if at + secs(ttl) > max {
            r.warnings
                .push("TTL of the token was capped by its maximum TTL".into());
        }
    }
    Ok(r)
}

/// A token minted by an auth method's login is renewed only if that method
/// still vouches for its identity (the user or role exists, policies unchanged).
async fn check_login_renewal(core: &Core, entry: &TokenEntry) -> Result<()> {
    if !entry.path.starts_with("auth/") || entry.path.starts_with("auth/token/") {
        return Ok(());
    }
    let mounted = core.router.read().route(&entry.path).map(|(m, _)| m);
    let Some(m) = mounted else {
        return Err(Error::bad("the auth method that issued this token is gone"));
    };
    let ctx = crate::engine::EngineCtx {
        view: &m.view,
        mount: &m.entry,
        token: None,
    };
    m.engine
        .check_renewal(&ctx, &entry.meta, &entry.policies)
        .await
}

/// The token type a request asks for: `service`, `batch` or `default`.
fn requested_type(p: &Params<'_>) -> Result<&'static str> {
    Ok(match p.str("type")?.map(str::trim).unwrap_or("") {
        "" | "default" => "default",
        "service" => "service",
        "batch" => "batch",
        _ => return Err(Error::bad("invalid 'token_type' value")),
    })
}

/// Whether `policy` is named by `exact` or matches one of `globs`.
fn policy_listed(policy: &str, exact: &[String], globs: &[String]) -> bool {
    exact.iter().any(|a| a == policy)
        || globs
            .iter()
            .any(|g| crate::auth::jwt::claims::glob_match(g, policy))
}

async fn create(
    core: &Core,
    req: &Request,
    caller: &TokenEntry,
    orphan_path: bool,
    role: Option<(&str, Value)>,
) -> Result<Response> {
    let p = Params(&req.data);
    if caller.is_batch() {
        return Err(Error::bad("batch tokens cannot create more tokens"));
    }
    let sudo = caller_sudo(core, req, caller).await?;
    let mut token_type = requested_type(&p)?;
    if p.str("entity_alias")?.is_some_and(|s| !s.is_empty()) {
        return Err(Error::bad(
            "entity aliases are not supported: Coffer has no identity store",
        ));
    }
    let no_parent = p.bool("no_parent")?.unwrap_or(false);
    if no_parent && !sudo {
        return Err(Error::bad(
            "root or sudo privileges required to create orphan token",
        ));
    }
    let id = p.str("id")?.filter(|s| !s.is_empty());
    if id.is_some() && !caller.is_root() {
        return Err(Error::bad(
            "root or sudo privileges required to specify token id",
        ));
    }
    let requested = p.str_list("policies")?.unwrap_or_default();
    let requested: Vec<String> = sanitize_policies(&requested, false);
    let caller_policies = &caller.policies;
    let mut period = p.duration("period")?.unwrap_or(0);
    if period > 0 && !sudo && role.is_none() {
        return Err(Error::bad(
            "root or sudo privileges required to create periodic token",
        ));
    }
    let mut explicit_max = p.duration("explicit_max_ttl")?.unwrap_or(0);
    let mut renewable = p.bool("renewable")?.unwrap_or(true);
    let mut orphan = orphan_path || no_parent;
    let mut no_default = p.bool("no_default_policy")?.unwrap_or(false);
    let mut bound_cidrs = Vec::new();
    let mut num_uses = p.u64("num_uses")?.unwrap_or(0);
    let mut path = if orphan_path {
        "auth/token/create-orphan".to_string()
    } else {
        "auth/token/create".to_string()
    };
    let policies: Vec<String> = if let Some((name, def)) = &role {
        let rp = Params(
            def.as_object()
                .ok_or_else(|| Error::corrupt("token role"))?,
        );
        let allowed = rp.str_list("allowed_policies")?.unwrap_or_default();
        let allowed_glob = rp.str_list("allowed_policies_glob")?.unwrap_or_default();
        let disallowed = rp.str_list("disallowed_policies")?.unwrap_or_default();
        let disallowed_glob = rp.str_list("disallowed_policies_glob")?.unwrap_or_default();
        let restricted = !allowed.is_empty() || !allowed_glob.is_empty();
        let policies = if requested.is_empty() {
            if restricted {
                allowed.clone()
            } else {
                caller_policies
                    .iter()
                    .filter(|p| *p != "root")
                    .cloned()
                    .collect()
            }
        } else {
            requested.clone()
        };
        for pol in &policies {
            if policy_listed(pol, &disallowed, &disallowed_glob) {
                return Err(Error::bad(format!(
                    "token policies ({pol}) must not include disallowed policies"
                )));
            }
            if restricted && pol != "default" && !policy_listed(pol, &allowed, &allowed_glob) {
                return Err(Error::bad(format!(
                    "token policies ({pol}) must be subset of the role's allowed policies"
                )));
            }
            if !restricted
                && !caller.is_root()
                && !caller_policies.contains(pol)
                && pol != "default"
            {
                return Err(Error::bad("child policies must be subset of parent"));
            }
        }
        if rp.bool("orphan")?.unwrap_or(false) {
            orphan = true;
        }
        let role_period = rp.duration("token_period")?.unwrap_or(0);
        if role_period > 0 {
            period = role_period;
        }
        let role_max = rp.duration("token_explicit_max_ttl")?.unwrap_or(0);
        if role_max > 0 {
            explicit_max = if explicit_max > 0 {
                explicit_max.min(role_max)
            } else {
                role_max
            };
        }
        if !rp.bool("renewable")?.unwrap_or(true) {
            renewable = false;
        }
        if rp.bool("token_no_default_policy")?.unwrap_or(false) {
            no_default = true;
        }
        let role_uses = rp.u64("token_num_uses")?.unwrap_or(0);
        if role_uses > 0 && (num_uses == 0 || role_uses < num_uses) {
            num_uses = role_uses;
        }
        bound_cidrs = rp.str_list("token_bound_cidrs")?.unwrap_or_default();
        token_type = match (
            rp.str("token_type")?.unwrap_or("default-service"),
            token_type,
        ) {
            ("service", "batch") | ("batch", "service") => {
                return Err(Error::bad(format!(
                    "role {name} only issues {} tokens",
                    rp.str("token_type")?.unwrap_or("service")
                )))
            }
            ("service", _) => "service",
            ("batch", _) => "batch",
            ("default-batch", "default") => "batch",
            (_, "default") => "service",
            (_, t) => t,
        };
        path = format!("auth/token/create/{name}");
        if let Some(suffix) = rp.str("path_suffix")?.filter(|s| !s.is_empty()) {
            path = format!("{path}/{suffix}");
        }
        policies
    } else if requested.is_empty() {
        caller_policies.clone()
    } else {
        if !caller.is_root() {
            for pol in &requested {
                if pol == "root" || (!caller_policies.contains(pol) && pol != "default") {
                    return Err(Error::bad("child policies must be subset of parent"));
                }
            }
        }
        requested
    };
    let display = p.str("display_name")?.unwrap_or("").trim().to_lowercase();
    let display_name = if display.is_empty() {
        "token".to_string()
    } else {
        format!("token-{display}")
    };
    let spec = TokenSpec {
        id: id.map(|s| Zeroizing::new(s.to_string())),
        policies,
        no_default_policy: no_default,
        meta: string_map(p.object("meta")?, "meta")?,
        display_name,
        ttl: p.duration("ttl")?.or(p.duration("lease")?).unwrap_or(0),
        explicit_max_ttl: explicit_max,
        period,
        num_uses,
        renewable,
        parent: (!orphan).then(|| caller.id_hash.clone()),
        path,
        bound_cidrs,
        role: role.map(|(n, _)| n.to_string()),
        mount_default_ttl: 0,
        mount_max_ttl: 0,
        // As Vault: a token created by an entity's token acts for the entity.
        entity_id: caller.entity_id.clone(),
    };
    let mut warnings = create_warnings(&req.data, &spec);
    for name in &spec.policies {
        if name != "root" && name != "default" && core.policies.read_raw(name).await?.is_none() {
            warnings.push(format!("Policy {name:?} does not exist"));
        }
    }
    let (token, entry) = if token_type == "batch" {
        mint_batch(core, spec).await?
    } else {
        mint(core, spec).await?
    };
    let mut r = Response::empty();
    r.auth = Some(auth_block(Some(&token), &entry));
    r.warnings = warnings;
    Ok(r)
}

/// The token types a role may name, as Vault's.
const ROLE_TOKEN_TYPES: [&str; 4] = ["service", "batch", "default-service", "default-batch"];

/// Parameters `auth/token/create` knows; others are ignored with a warning.
const CREATE_PARAMS: [&str; 17] = [
    "id",
    "role_name",
    "policies",
    "meta",
    "no_parent",
    "no_default_policy",
    "renewable",
    "lease",
    "ttl",
    "type",
    "explicit_max_ttl",
    "display_name",
    "num_uses",
    "period",
    "entity_alias",
    "bound_cidrs",
    "format",
];

/// Vault's warnings on a token creation: ignored parameters, and a TTL
/// above the effective maximum (which is capped).
fn create_warnings(data: &serde_json::Map<String, Value>, spec: &TokenSpec) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut unknown: Vec<&str> = data
        .keys()
        .map(String::as_str)
        .filter(|k| !CREATE_PARAMS.contains(k))
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        warnings.push(format!(
            "Endpoint ignored these unrecognized parameters: [{}]",
            unknown.join(" ")
        ));
    }
    let max = if spec.explicit_max_ttl > 0 {
        spec.explicit_max_ttl.min(SYSTEM_MAX_TTL)
    } else {
        SYSTEM_MAX_TTL
    };
    if spec.period == 0 && spec.ttl > max {
        warnings.push(format!(
            "TTL of {:?} exceeded the effective max_ttl of {:?}; TTL value is capped accordingly",
            crate::util::format_duration_short(spec.ttl),
            crate::util::format_duration_short(max)
        ));
    }
    warnings
}

async fn roles(core: &Core, req: &Request, name: &str) -> Result<Response> {
    match req.operation {
        Operation::Read => {
            let mut def = core.tokens.get_role(name).await?.ok_or(Error::NotFound)?;
            if let Some(o) = def.as_object_mut() {
                // Roles stored before these fields existed read as Vault's defaults.
                for (k, v) in [
                    ("allowed_policies_glob", json!([])),
                    ("disallowed_policies_glob", json!([])),
                    ("allowed_entity_aliases", Value::Null),
                    ("explicit_max_ttl", json!(0)),
                    ("period", json!(0)),
                ] {
                    o.entry(k).or_insert(v);
                }
                if o.get("token_type").and_then(Value::as_str) == Some("default") {
                    o.insert("token_type".into(), json!("default-service"));
                }
                // As Vault's read: these two appear only when set.
                if o.get("token_num_uses").and_then(Value::as_u64) == Some(0) {
                    o.remove("token_num_uses");
                }
                if o.get("token_bound_cidrs")
                    .and_then(Value::as_array)
                    .is_some_and(Vec::is_empty)
                {
                    o.remove("token_bound_cidrs");
                }
            }
            Ok(Response::data(def))
        }
        Operation::Delete => {
            core.tokens.delete_role(name).await?;
            Ok(Response::empty())
        }
        Operation::Create | Operation::Update => {
            let p = Params(&req.data);
            let existing = core
                .tokens
                .get_role(name)
                .await?
                .unwrap_or_else(|| json!({}));
            let e = Params(
                existing
                    .as_object()
                    .ok_or_else(|| Error::corrupt("token role"))?,
            );
            let list = |k: &str| -> Result<Vec<String>> {
                Ok(match p.str_list(k)? {
                    Some(v) => sanitize_policies(&v, false),
                    None => e.str_list(k)?.unwrap_or_default(),
                })
            };
            let dur = |k: &str, alt: &str| -> Result<u64> {
                Ok(p.duration(k)?
                    .or(p.duration(alt)?)
                    .or(e.duration(k)?)
                    .unwrap_or(0))
            };
            let legacy =
                |k: &str| -> Result<u64> { Ok(p.duration(k)?.or(e.duration(k)?).unwrap_or(0)) };
            let flag =
                |k: &str, d: bool| -> Result<bool> { Ok(p.bool(k)?.or(e.bool(k)?).unwrap_or(d)) };
            let cidrs = p
                .str_list("token_bound_cidrs")?
                .or(e.str_list("token_bound_cidrs")?)
                .unwrap_or_default();
            crate::auth::parse_cidrs(&cidrs)?;
            let token_type = match p
                .str("token_type")?
                .or(e.str("token_type")?)
                .map(str::trim)
                .unwrap_or("default-service")
            {
                "" | "default" => "default-service",
                t if ROLE_TOKEN_TYPES.contains(&t) => t,
                _ => return Err(Error::bad("invalid 'token_type' value")),
            }
            .to_string();
            let period = dur("token_period", "period")?;
            let explicit_max = dur("token_explicit_max_ttl", "explicit_max_ttl")?;
            let num_uses = p
                .u64("token_num_uses")?
                .or(e.u64("token_num_uses")?)
                .unwrap_or(0);
            if token_type == "batch" && (period > 0 || num_uses > 0) {
                return Err(Error::bad(
                    "batch tokens cannot be periodic or have a use limit",
                ));
            }
            let aliases = p
                .str_list("allowed_entity_aliases")?
                .or(e.str_list("allowed_entity_aliases")?);
            let path_suffix = p
                .str("path_suffix")?
                .or(e.str("path_suffix")?)
                .unwrap_or("")
                .to_string();
            if path_suffix.split('/').any(|s| s == "." || s == "..")
                || path_suffix.starts_with('/')
                || path_suffix.ends_with('/')
            {
                return Err(Error::bad(
                    "path_suffix must not contain '..' or leading/trailing slashes",
                ));
            }
            let def = json!({
                "name": name,
                "allowed_policies": list("allowed_policies")?,
                "allowed_policies_glob": list("allowed_policies_glob")?,
                "disallowed_policies": list("disallowed_policies")?,
                "disallowed_policies_glob": list("disallowed_policies_glob")?,
                "allowed_entity_aliases": aliases,
                "orphan": flag("orphan", false)?,
                "renewable": flag("renewable", true)?,
                "token_period": period,
                "period": legacy("period")?,
                "token_explicit_max_ttl": explicit_max,
                "explicit_max_ttl": legacy("explicit_max_ttl")?,
                "token_no_default_policy": flag("token_no_default_policy", false)?,
                "token_num_uses": num_uses,
                "token_bound_cidrs": cidrs,
                "path_suffix": path_suffix,
                "token_type": token_type,
            });
            core.tokens.put_role(name, &def).await?;
            Ok(Response::empty())
        }
        _ => Err(Error::UnsupportedOperation),
    }
}

/// The answer to a tidy request, as Vault's: 202, no data, and a warning
/// that points at the server log.
pub(crate) fn tidy_accepted() -> Response {
    let mut r = Response::empty().with_status(202);
    r.warnings.push("Tidy operation successfully started. Any information from the operation will be printed to Coffer's server logs.".into());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_sanitized() {
        let p = sanitize_policies(&["B".into(), " a ".into(), "a".into()], true);
        assert_eq!(p, vec!["a", "b", "default"]);
        assert_eq!(sanitize_policies(&["root".into()], true), vec!["root"]);
    }
}

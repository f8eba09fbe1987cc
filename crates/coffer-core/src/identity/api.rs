//! The `identity/` API, as Vault's: entities, entity aliases, groups,
//! group aliases and lookups. Requests reach it through the one request
//! path (token, ACL, audit) like any mounted engine's.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::model::{Alias, Entity, Group, MountInfo};
use super::store::{Change, IdentityStore, State};
use crate::util::{now, rfc3339, Params};
use crate::{Error, Operation, Request, Response, Result};

/// Resolves an auth mount accessor to its (path, type).
pub type Mounts<'a> = &'a (dyn Fn(&str) -> MountInfo + Sync);

/// Handles `identity/<path>`. A write computed from a copy another node
/// had changed meanwhile is computed again ([`IdentityStore::update`]).
pub async fn handle(
    store: &IdentityStore,
    mounts: Mounts<'_>,
    req: &Request,
    path: &str,
) -> Result<Response> {
    store.update(|| handle_once(store, mounts, req, path)).await
}

async fn handle_once(
    store: &IdentityStore,
    mounts: Mounts<'_>,
    req: &Request,
    path: &str,
) -> Result<Response> {
    use Operation::*;
    let op = req.operation;
    let write = matches!(op, Create | Update);
    let seg: Vec<&str> = path.split('/').collect();
    match (seg.as_slice(), op) {
        (["entity"], _) if write => write_entity(store, req, None, None).await,
        (["entity", "batch-delete"], _) if write => batch_delete(store, req).await,
        (["entity", "merge"], _) if write => merge(store, req).await,
        (["entity", "id", ""] | ["entity", "name", ""], List) => {
            list_entities(store, mounts, seg[1] == "id")
        }
        (["entity", "id", id], Read) if !id.is_empty() => {
            read_entity(store, mounts, |s| s.entities.get(*id).cloned())
        }
        (["entity", "name", name], Read) if !name.is_empty() => {
            read_entity(store, mounts, |s| s.entity_by_name(name).cloned())
        }
        (["entity", "id", id], _) if write && !id.is_empty() => {
            write_entity(store, req, Some(id), None).await
        }
        (["entity", "name", name], _) if write && !name.is_empty() => {
            write_entity(store, req, None, Some(name)).await
        }
        (["entity", "id", id], Delete) => {
            let id = id.to_string();
            delete_entities(store, move |s| {
                s.entities
                    .get(&id)
                    .map(|e| e.id.clone())
                    .into_iter()
                    .collect()
            })
            .await
        }
        (["entity", "name", name], Delete) => {
            let name = name.to_string();
            delete_entities(store, move |s| {
                s.entity_by_name(&name)
                    .map(|e| e.id.clone())
                    .into_iter()
                    .collect()
            })
            .await
        }
        (["entity-alias"], _) if write => write_alias(store, mounts, req, None).await,
        (["entity-alias", "id", ""], List) => list_aliases(store, mounts, false),
        (["entity-alias", "id", id], Read) => store.read(|s| {
            s.entity_alias(id)
                .map(|(_, a)| Response::data(a.to_json(&mounts(&a.mount_accessor), true)))
                .ok_or(Error::NotFound)
        }),
        (["entity-alias", "id", id], _) if write => write_alias(store, mounts, req, Some(id)).await,
        (["entity-alias", "id", id], Delete) => delete_alias(store, id).await,
        (["group"], _) if write => write_group(store, req, None, None).await,
        (["group", "id", ""] | ["group", "name", ""], List) => list_groups(store, seg[1] == "id"),
        (["group", "id", id], Read) => read_group(store, mounts, |s| s.groups.get(*id).cloned()),
        (["group", "name", name], Read) => {
            read_group(store, mounts, |s| s.group_by_name(name).cloned())
        }
        (["group", "id", id], _) if write => write_group(store, req, Some(id), None).await,
        (["group", "name", name], _) if write => write_group(store, req, None, Some(name)).await,
        (["group", "id", id], Delete) => {
            let id = id.to_string();
            delete_group(store, move |s| s.groups.get(&id).map(|g| g.id.clone())).await
        }
        (["group", "name", name], Delete) => {
            let name = name.to_string();
            delete_group(store, move |s| s.group_by_name(&name).map(|g| g.id.clone())).await
        }
        (["group-alias"], _) if write => write_group_alias(store, mounts, req, None).await,
        (["group-alias", "id", ""], List) => list_aliases(store, mounts, true),
        (["group-alias", "id", id], Read) => store.read(|s| {
            s.group_alias(id)
                .map(|(_, a)| Response::data(a.to_json(&mounts(&a.mount_accessor), true)))
                .ok_or(Error::NotFound)
        }),
        (["group-alias", "id", id], _) if write => {
            write_group_alias(store, mounts, req, Some(id)).await
        }
        (["group-alias", "id", id], Delete) => delete_group_alias(store, id).await,
        (["lookup", "entity"], _) if write => lookup_entity(store, mounts, req),
        (["lookup", "group"], _) if write => lookup_group(store, mounts, req),
        (["entity" | "entity-alias" | "group" | "group-alias" | "lookup", ..], _) => {
            Err(Error::UnsupportedOperation)
        }
        _ => Err(Error::UnsupportedPath(format!(
            "unsupported path: identity/{path}"
        ))),
    }
}

fn stamp() -> String {
    rfc3339(&now())
}

/// Vault's key-value pairs: an object (scalar values as strings), a list
/// of `k=v` strings, or one `k=v` string.
fn kv_pairs(p: &Params<'_>, name: &str) -> Result<Option<BTreeMap<String, String>>> {
    let bad = || Error::bad(format!("{name}: expected key-value pairs"));
    let mut out = BTreeMap::new();
    match p.0.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => return Err(bad()),
                };
                out.insert(k.clone(), s);
            }
        }
        Some(Value::Array(items)) => {
            for item in items {
                let (k, v) = item
                    .as_str()
                    .and_then(|s| s.split_once('='))
                    .ok_or_else(bad)?;
                out.insert(k.to_string(), v.to_string());
            }
        }
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) => {
            let (k, v) = s.split_once('=').ok_or_else(bad)?;
            out.insert(k.to_string(), v.to_string());
        }
        Some(_) => return Err(bad()),
    }
    Ok(Some(out))
}

/// The `policies` of an entity or group write: trimmed, lower-cased, no
/// duplicates; `root` is refused (as in Vault: identity never grants root).
fn policies(p: &Params<'_>) -> Result<Option<Vec<String>>> {
    let Some(list) = p.str_list("policies")? else {
        return Ok(None);
    };
    let mut out: Vec<String> = Vec::new();
    for name in list.iter().map(|s| s.trim().to_lowercase()) {
        if name == "root" {
            return Err(Error::bad("policies cannot contain root"));
        }
        if !name.is_empty() && !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(Some(out))
}

fn entity_json(s: &State, e: &Entity, mounts: Mounts<'_>) -> Value {
    let (direct, inherited) = s.groups_of(&e.id);
    let mut all = direct.clone();
    all.extend(inherited.iter().cloned());
    let aliases: Vec<Value> = e
        .aliases
        .iter()
        .map(|a| a.to_json(&mounts(&a.mount_accessor), false))
        .collect();
    json!({
        "aliases": aliases,
        "creation_time": e.creation_time,
        "direct_group_ids": direct,
        "disabled": e.disabled,
        "group_ids": all,
        "id": e.id,
        "inherited_group_ids": inherited,
        "last_update_time": e.last_update_time,
        "merged_entity_ids": null,
        "metadata": if e.metadata.is_empty() { Value::Null } else { json!(e.metadata) },
        "name": e.name,
        "namespace_id": "root",
        "policies": e.policies,
    })
}

fn read_entity(
    store: &IdentityStore,
    mounts: Mounts<'_>,
    find: impl FnOnce(&State) -> Option<Entity>,
) -> Result<Response> {
    store.read(|s| {
        let e = find(s).ok_or(Error::NotFound)?;
        Ok(Response::data(entity_json(s, &e, mounts)))
    })
}

fn list_entities(store: &IdentityStore, mounts: Mounts<'_>, by_id: bool) -> Result<Response> {
    store.read(|s| {
        if !by_id {
            let mut names: Vec<String> = s.entities.values().map(|e| e.name.clone()).collect();
            names.sort();
            return Response::list(names);
        }
        let mut info = Map::new();
        for e in s.entities.values() {
            let mut v = json!({"name": e.name});
            if !e.aliases.is_empty() {
                let aliases: Vec<Value> = e
                    .aliases
                    .iter()
                    .map(|a| {
                        let mut v = json!({"id": a.id, "mount_accessor": a.mount_accessor,
                                           "name": a.name});
                        if let Some((path, kind)) = mounts(&a.mount_accessor) {
                            v["mount_path"] = json!(path);
                            v["mount_type"] = json!(kind);
                        }
                        v
                    })
                    .collect();
                v["aliases"] = json!(aliases);
            }
            info.insert(e.id.clone(), v);
        }
        list_with_info(info)
    })
}

fn list_with_info(info: Map<String, Value>) -> Result<Response> {
    if info.is_empty() {
        return Err(Error::NotFound);
    }
    let keys: Vec<String> = info.keys().cloned().collect();
    Ok(Response::data(json!({"key_info": info, "keys": keys})))
}

async fn write_entity(
    store: &IdentityStore,
    req: &Request,
    path_id: Option<&str>,
    path_name: Option<&str>,
) -> Result<Response> {
    let p = Params(&req.data);
    let _w = store.lock().await?;
    let body_id = p.str("id")?.filter(|s| !s.is_empty());
    let body_name = p.str("name")?.filter(|s| !s.is_empty());
    let existing = store.read(|s| -> Result<Option<Entity>> {
        // On `entity/name/<name>` the ACL judged that name: the object is
        // the entity of that name (or a new one), never one a body `id`
        // names (OpenBao lets the body id win; that lets a token allowed
        // one name rewrite any entity).
        if let Some(n) = path_name {
            return Ok(s.entity_by_name(n).cloned());
        }
        if let Some(id) = path_id.or(body_id) {
            return s
                .entities
                .get(id)
                .cloned()
                .map(Some)
                .ok_or_else(|| Error::bad("entity not found from id"));
        }
        Ok(path_name
            .or(body_name)
            .and_then(|n| s.entity_by_name(n).cloned()))
    })?;
    let name = path_name.or(body_name);
    let at = stamp();
    let created = existing.is_none();
    let mut e = existing.unwrap_or_else(|| {
        let id = coffer_crypto::random::uuid();
        Entity {
            name: format!("entity_{}.root", &id[..8]),
            id,
            policies: Vec::new(),
            metadata: BTreeMap::new(),
            disabled: false,
            aliases: Vec::new(),
            creation_time: at.clone(),
            last_update_time: at.clone(),
        }
    });
    if let Some(n) = name {
        let taken = store.read(|s| s.entity_by_name(n).is_some_and(|o| o.id != e.id));
        if taken {
            return Err(Error::bad("entity name is already in use"));
        }
        e.name = n.to_string();
    }
    if let Some(pol) = policies(&p)? {
        e.policies = pol;
    }
    if let Some(m) = kv_pairs(&p, "metadata")? {
        e.metadata = m;
    }
    if let Some(d) = p.bool("disabled")? {
        e.disabled = d;
    }
    e.last_update_time = at;
    let answer = json!({"aliases": null, "id": e.id, "name": e.name});
    store.commit(vec![Change::PutEntity(e)]).await?;
    Ok(if created {
        Response::data(answer)
    } else {
        Response::empty()
    })
}

/// Deletes the entities `pick` names, and their group memberships, in one batch.
async fn delete_entities(
    store: &IdentityStore,
    pick: impl FnOnce(&State) -> Vec<String>,
) -> Result<Response> {
    let _w = store.lock().await?;
    let changes = store.read(|s| {
        let ids = pick(s);
        let mut changes: Vec<Change> = Vec::new();
        for g in s.groups.values() {
            if g.member_entity_ids.iter().any(|m| ids.contains(m)) {
                let mut g = g.clone();
                g.member_entity_ids.retain(|m| !ids.contains(m));
                g.modify_index += 1;
                changes.push(Change::PutGroup(g));
            }
        }
        changes.extend(ids.into_iter().map(Change::DeleteEntity));
        changes
    });
    store.commit(changes).await?;
    Ok(Response::empty())
}

async fn batch_delete(store: &IdentityStore, req: &Request) -> Result<Response> {
    let ids = Params(&req.data)
        .str_list("entity_ids")?
        .ok_or_else(|| Error::bad("missing entity ids to delete"))?;
    delete_entities(store, move |s| {
        ids.into_iter()
            .filter(|id| s.entities.contains_key(id))
            .collect()
    })
    .await
}

/// `entity/merge`: moves the aliases, policies and group memberships of
/// `from_entity_ids` to `to_entity_id` and deletes the merged entities.
async fn merge(store: &IdentityStore, req: &Request) -> Result<Response> {
    let p = Params(&req.data);
    let to = p
        .str("to_entity_id")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::bad("missing entity id to merge to"))?
        .to_string();
    let from = p
        .str_list("from_entity_ids")?
        .filter(|l| !l.is_empty())
        .ok_or_else(|| Error::bad("missing entity ids to merge from"))?;
    let _w = store.lock().await?;
    let changes = store.read(|s| -> Result<Vec<Change>> {
        let mut target = s
            .entities
            .get(&to)
            .cloned()
            .ok_or_else(|| Error::bad("entity id to merge to is invalid"))?;
        let mut changes = Vec::new();
        for id in &from {
            if id == &to {
                return Err(Error::bad(
                    "to_entity_id should not be present in from_entity_ids",
                ));
            }
            let src = s
                .entities
                .get(id)
                .ok_or_else(|| Error::bad("entity id to merge from is invalid"))?;
            for a in &src.aliases {
                if target
                    .aliases
                    .iter()
                    .any(|t| t.mount_accessor == a.mount_accessor)
                {
                    return Err(Error::bad(
                        "conflicting mount accessors in following alias IDs",
                    ));
                }
                let mut a = a.clone();
                a.canonical_id = to.clone();
                target.aliases.push(a);
            }
            for pol in &src.policies {
                if !target.policies.contains(pol) {
                    target.policies.push(pol.clone());
                }
            }
        }
        for g in s.groups.values() {
            let had = g.member_entity_ids.iter().any(|m| from.contains(m));
            if had {
                let mut g = g.clone();
                g.member_entity_ids.retain(|m| !from.contains(m));
                if !g.member_entity_ids.contains(&to) {
                    g.member_entity_ids.push(to.clone());
                }
                g.modify_index += 1;
                changes.push(Change::PutGroup(g));
            }
        }
        target.last_update_time = stamp();
        changes.push(Change::PutEntity(target));
        changes.extend(from.iter().cloned().map(Change::DeleteEntity));
        Ok(changes)
    })?;
    store.commit(changes).await?;
    Ok(Response::empty())
}

fn auth_mount(mounts: Mounts<'_>, accessor: &str) -> Result<()> {
    match mounts(accessor) {
        Some(_) => Ok(()),
        None => Err(Error::bad(format!("invalid mount accessor {accessor:?}"))),
    }
}

async fn write_alias(
    store: &IdentityStore,
    mounts: Mounts<'_>,
    req: &Request,
    path_id: Option<&str>,
) -> Result<Response> {
    let p = Params(&req.data);
    let id = path_id.or(p.str("id")?.filter(|s| !s.is_empty()));
    let name = p.str("name")?.filter(|s| !s.is_empty());
    let accessor = p.str("mount_accessor")?.filter(|s| !s.is_empty());
    let canonical = p.str("canonical_id")?.filter(|s| !s.is_empty());
    let custom = kv_pairs(&p, "custom_metadata")?;
    if id.is_none() && (name.is_none() || accessor.is_none()) {
        return Err(Error::bad(
            "'id' or 'mount_accessor' and 'name' must be provided",
        ));
    }
    if let Some(a) = accessor {
        auth_mount(mounts, a)?;
    }
    let _w = store.lock().await?;
    let at = stamp();
    let changes = store.read(|s| -> Result<(Vec<Change>, Value, bool)> {
        // The alias being changed: by id, else by (mount, name).
        let current = match id {
            Some(id) => Some(
                s.entity_alias(id)
                    .ok_or_else(|| Error::bad("invalid alias ID"))?,
            ),
            None => s.entity_alias_by_name(accessor.unwrap_or_default(), name.unwrap_or_default()),
        };
        let mut alias = match current {
            Some((_, a)) => a.clone(),
            None => Alias {
                id: coffer_crypto::random::uuid(),
                canonical_id: String::new(),
                mount_accessor: accessor.unwrap_or_default().to_string(),
                name: name.unwrap_or_default().to_string(),
                metadata: BTreeMap::new(),
                custom_metadata: Some(BTreeMap::new()),
                creation_time: at.clone(),
                last_update_time: at.clone(),
            },
        };
        let created = current.is_none();
        if let Some(n) = name {
            alias.name = n.to_string();
        }
        if let Some(a) = accessor {
            alias.mount_accessor = a.to_string();
        }
        if let Some(c) = custom {
            alias.custom_metadata = Some(c);
        }
        if s.entity_alias_by_name(&alias.mount_accessor, &alias.name)
            .is_some_and(|(_, other)| other.id != alias.id)
        {
            return Err(Error::bad(
                "combination of mount and alias name is already in use",
            ));
        }
        let mut changes = Vec::new();
        // The entity the alias leaves, if it moves.
        let old_owner = current.map(|(e, _)| e.clone());
        let target_id = match canonical {
            Some(c) => c.to_string(),
            None => match &old_owner {
                Some(e) => e.id.clone(),
                None => String::new(),
            },
        };
        let mut target = if target_id.is_empty() {
            let id = coffer_crypto::random::uuid();
            Entity {
                name: format!("entity_{}.root", &id[..8]),
                id,
                policies: Vec::new(),
                metadata: BTreeMap::new(),
                disabled: false,
                aliases: Vec::new(),
                creation_time: at.clone(),
                last_update_time: at.clone(),
            }
        } else {
            s.entities
                .get(&target_id)
                .cloned()
                .ok_or_else(|| Error::bad("invalid canonical ID"))?
        };
        if target
            .aliases
            .iter()
            .any(|a| a.mount_accessor == alias.mount_accessor && a.id != alias.id)
        {
            return Err(Error::bad(
                "Alias already exists for requested entity and mount accessor",
            ));
        }
        if let Some(mut old) = old_owner.filter(|o| o.id != target.id) {
            old.aliases.retain(|a| a.id != alias.id);
            old.last_update_time = at.clone();
            changes.push(Change::PutEntity(old));
        }
        alias.canonical_id = target.id.clone();
        alias.last_update_time = at.clone();
        target.aliases.retain(|a| a.id != alias.id);
        target.aliases.push(alias.clone());
        target.last_update_time = at.clone();
        let answer = json!({"canonical_id": target.id, "id": alias.id});
        changes.push(Change::PutEntity(target));
        Ok((changes, answer, created || canonical.is_some()))
    })?;
    let (changes, answer, show) = changes;
    store.commit(changes).await?;
    Ok(if show {
        Response::data(answer)
    } else {
        Response::empty()
    })
}

async fn delete_alias(store: &IdentityStore, id: &str) -> Result<Response> {
    let _w = store.lock().await?;
    let change = store.read(|s| {
        s.entity_alias(id).map(|(e, _)| {
            let mut e = e.clone();
            e.aliases.retain(|a| a.id != id);
            e.last_update_time = stamp();
            Change::PutEntity(e)
        })
    });
    store.commit(change.into_iter().collect()).await?;
    Ok(Response::empty())
}

fn list_aliases(store: &IdentityStore, mounts: Mounts<'_>, groups: bool) -> Result<Response> {
    store.read(|s| {
        let mut info = Map::new();
        let mut add = |a: &Alias| {
            info.insert(a.id.clone(), a.to_list_json(&mounts(&a.mount_accessor)));
        };
        if groups {
            s.groups
                .values()
                .filter_map(|g| g.alias.as_ref())
                .for_each(&mut add);
        } else {
            s.entities
                .values()
                .flat_map(|e| e.aliases.iter())
                .for_each(&mut add);
        }
        list_with_info(info)
    })
}

fn read_group(
    store: &IdentityStore,
    mounts: Mounts<'_>,
    find: impl FnOnce(&State) -> Option<Group>,
) -> Result<Response> {
    store.read(|s| {
        let g = find(s).ok_or(Error::NotFound)?;
        let parents = s.parents(&g.id);
        let mount = g.alias.as_ref().and_then(|a| mounts(&a.mount_accessor));
        Ok(Response::data(g.to_json(&parents, &mount)))
    })
}

fn list_groups(store: &IdentityStore, by_id: bool) -> Result<Response> {
    store.read(|s| {
        if !by_id {
            let mut names: Vec<String> = s.groups.values().map(|g| g.name.clone()).collect();
            names.sort();
            return Response::list(names);
        }
        let parents = s.parent_index();
        let mut info = Map::new();
        for g in s.groups.values() {
            info.insert(
                g.id.clone(),
                json!({"name": g.name, "num_member_entities": g.member_entity_ids.len(),
                       "num_parent_groups": parents.get(g.id.as_str()).map_or(0, Vec::len)}),
            );
        }
        list_with_info(info)
    })
}

async fn write_group(
    store: &IdentityStore,
    req: &Request,
    path_id: Option<&str>,
    path_name: Option<&str>,
) -> Result<Response> {
    let p = Params(&req.data);
    let body_id = p.str("id")?.filter(|s| !s.is_empty());
    let body_name = p.str("name")?.filter(|s| !s.is_empty());
    let kind = p.str("type")?.filter(|s| !s.is_empty());
    if let Some(k) = kind {
        if k != "internal" && k != "external" {
            return Err(Error::bad(format!("invalid group type {k:?}")));
        }
    }
    let members = p.str_list("member_entity_ids")?;
    let member_groups = p.str_list("member_group_ids")?;
    let _w = store.lock().await?;
    let at = stamp();
    let result = store.read(|s| -> Result<(Vec<Change>, Option<Value>)> {
        let mut touched = Vec::new();
        // On `group/name/<name>` the object is the group of that name (the
        // one the ACL judged) or a new one; a body `id` never redirects the
        // write to another group.
        let by_id = if path_name.is_some() {
            None
        } else {
            path_id.or(body_id)
        };
        let existing = match by_id {
            Some(id) => Some(
                s.groups
                    .get(id)
                    .cloned()
                    .ok_or_else(|| Error::bad("invalid group ID"))?,
            ),
            None => path_name
                .or(body_name)
                .and_then(|n| s.group_by_name(n).cloned()),
        };
        let created = existing.is_none();
        let mut g = existing.unwrap_or_else(|| {
            let id = coffer_crypto::random::uuid();
            Group {
                name: format!("group_{}", &id[..8]),
                id,
                kind: kind.unwrap_or("internal").to_string(),
                policies: Vec::new(),
                metadata: BTreeMap::new(),
                member_entity_ids: Vec::new(),
                member_group_ids: Vec::new(),
                alias: None,
                creation_time: at.clone(),
                last_update_time: at.clone(),
                modify_index: 0,
            }
        });
        if let Some(k) = kind {
            if !created && k != g.kind {
                return Err(Error::bad("group type cannot be changed"));
            }
        }
        if let Some(n) = path_name.or(body_name) {
            if s.group_by_name(n).is_some_and(|o| o.id != g.id) {
                return Err(Error::bad("group name is already in use"));
            }
            g.name = n.to_string();
        }
        if let Some(pol) = policies(&p)? {
            g.policies = pol;
        }
        if let Some(m) = kv_pairs(&p, "metadata")? {
            g.metadata = m;
        }
        if let Some(mut ids) = members {
            if g.is_external() {
                return Err(Error::bad(
                    "member entities can't be set manually for external groups",
                ));
            }
            ids.dedup();
            for id in &ids {
                if !s.entities.contains_key(id) {
                    return Err(Error::bad(format!("invalid entity ID {id:?}")));
                }
            }
            g.member_entity_ids = ids;
        }
        if let Some(mut ids) = member_groups {
            ids.dedup();
            for id in &ids {
                if !s.groups.contains_key(id) {
                    return Err(Error::bad(format!("invalid member group ID {id:?}")));
                }
                // A member containing this group would make a cycle.
                if id == &g.id || s.contains_group(id, &g.id) {
                    return Err(Error::bad(format!(
                        "member group ID {id:?} is already a parent of this group"
                    )));
                }
            }
            // As OpenBao, a group joining or leaving as a member changes too.
            for id in ids
                .iter()
                .filter(|i| !g.member_group_ids.contains(i))
                .chain(g.member_group_ids.iter().filter(|i| !ids.contains(i)))
            {
                if let Some(member) = s.groups.get(id) {
                    let mut member = member.clone();
                    member.modify_index += 1;
                    touched.push(Change::PutGroup(member));
                }
            }
            g.member_group_ids = ids;
        }
        g.modify_index += 1;
        g.last_update_time = at.clone();
        let answer = created.then(|| json!({"id": g.id, "name": g.name}));
        touched.push(Change::PutGroup(g));
        Ok((touched, answer))
    })?;
    let (changes, answer) = result;
    store.commit(changes).await?;
    Ok(match answer {
        Some(a) => Response::data(a),
        None => Response::empty(),
    })
}

async fn delete_group(
    store: &IdentityStore,
    pick: impl FnOnce(&State) -> Option<String>,
) -> Result<Response> {
    let _w = store.lock().await?;
    let changes = store.read(|s| {
        let Some(id) = pick(s) else {
            return Vec::new();
        };
        let mut changes: Vec<Change> = s
            .groups
            .values()
            .filter(|g| g.member_group_ids.contains(&id))
            .map(|g| {
                let mut g = g.clone();
                g.member_group_ids.retain(|m| m != &id);
                g.modify_index += 1;
                Change::PutGroup(g)
            })
            .collect();
        changes.push(Change::DeleteGroup(id));
        changes
    });
    store.commit(changes).await?;
    Ok(Response::empty())
}

async fn write_group_alias(
    store: &IdentityStore,
    mounts: Mounts<'_>,
    req: &Request,
    path_id: Option<&str>,
) -> Result<Response> {
    let p = Params(&req.data);
    let id = path_id.or(p.str("id")?.filter(|s| !s.is_empty()));
    let name = p.str("name")?.filter(|s| !s.is_empty());
    let accessor = p.str("mount_accessor")?.filter(|s| !s.is_empty());
    let canonical = p.str("canonical_id")?.filter(|s| !s.is_empty());
    if id.is_none() && (name.is_none() || accessor.is_none()) {
        return Err(Error::bad("missing alias name"));
    }
    if let Some(a) = accessor {
        auth_mount(mounts, a)?;
    }
    let _w = store.lock().await?;
    let at = stamp();
    let result = store.read(|s| -> Result<(Vec<Change>, Value)> {
        let current = match id {
            Some(id) => Some(
                s.group_alias(id)
                    .ok_or_else(|| Error::bad("invalid alias ID"))?,
            ),
            None => None,
        };
        let mut alias = match current {
            Some((_, a)) => a.clone(),
            None => Alias {
                id: coffer_crypto::random::uuid(),
                canonical_id: String::new(),
                mount_accessor: String::new(),
                name: String::new(),
                metadata: BTreeMap::new(),
                custom_metadata: None,
                creation_time: at.clone(),
                last_update_time: at.clone(),
            },
        };
        if let Some(n) = name {
            alias.name = n.to_string();
        }
        if let Some(a) = accessor {
            alias.mount_accessor = a.to_string();
        }
        if s.group_alias_by_name(&alias.mount_accessor, &alias.name)
            .is_some_and(|(_, a)| a.id != alias.id)
        {
            return Err(Error::bad(
                "combination of mount and group alias name is already in use",
            ));
        }
        let target_id = canonical
            .map(str::to_string)
            .or_else(|| current.map(|(g, _)| g.id.clone()))
            .ok_or_else(|| Error::bad("missing canonical ID"))?;
        let mut target = s
            .groups
            .get(&target_id)
            .cloned()
            .ok_or_else(|| Error::bad("invalid group ID given in 'canonical_id'"))?;
        if !target.is_external() {
            return Err(Error::bad("alias can't be set on an internal group"));
        }
        if target.alias.as_ref().is_some_and(|a| a.id != alias.id) {
            return Err(Error::bad("group already has an alias"));
        }
        let mut changes = Vec::new();
        if let Some((old, _)) = current.filter(|(g, _)| g.id != target.id) {
            let mut old = old.clone();
            old.alias = None;
            old.modify_index += 1;
            changes.push(Change::PutGroup(old));
        }
        alias.canonical_id = target.id.clone();
        alias.last_update_time = at.clone();
        let answer = json!({"canonical_id": target.id, "id": alias.id});
        target.alias = Some(alias);
        target.modify_index += 1;
        target.last_update_time = at.clone();
        changes.push(Change::PutGroup(target));
        Ok((changes, answer))
    })?;
    let (changes, answer) = result;
    store.commit(changes).await?;
    Ok(Response::data(answer))
}

async fn delete_group_alias(store: &IdentityStore, id: &str) -> Result<Response> {
    let _w = store.lock().await?;
    let change = store.read(|s| {
        s.group_alias(id).map(|(g, _)| {
            let mut g = g.clone();
            g.alias = None;
            // Memberships came from the alias; without it there are none.
            g.member_entity_ids.clear();
            g.modify_index += 1;
            Change::PutGroup(g)
        })
    });
    store.commit(change.into_iter().collect()).await?;
    Ok(Response::empty())
}

/// The one lookup criterion given, refusing none or several.
fn criterion<'a>(p: &'a Params<'a>, keys: &[&'a str]) -> Result<(&'a str, &'a str)> {
    let mut found = None;
    for k in keys {
        if let Some(v) = p.str(k)?.filter(|s| !s.is_empty()) {
            if found.is_some() {
                return Err(Error::bad(
                    "query parameter conflict; please supply distinct set of query parameters",
                ));
            }
            found = Some((*k, v));
        }
    }
    found.ok_or_else(|| Error::bad("query parameter not supplied"))
}

/// A lookup's one criterion (`id`, `name`, `alias_id` or `alias_name`),
/// its value, and the alias mount accessor `alias_name` needs.
fn lookup_criterion<'a>(p: &'a Params<'a>) -> Result<(&'a str, &'a str, &'a str)> {
    let (key, value) = criterion(p, &["id", "name", "alias_id", "alias_name"])?;
    let accessor = p.str("alias_mount_accessor")?.unwrap_or_default();
    if key == "alias_name" && accessor.is_empty() {
        return Err(Error::bad("missing 'alias_mount_accessor' field"));
    }
    Ok((key, value, accessor))
}

fn lookup_entity(store: &IdentityStore, mounts: Mounts<'_>, req: &Request) -> Result<Response> {
    let p = Params(&req.data);
    let (key, value, accessor) = lookup_criterion(&p)?;
    store.read(|s| {
        let found = match key {
            "id" => s.entities.get(value),
            "name" => s.entity_by_name(value),
            "alias_id" => s.entity_alias(value).map(|(e, _)| e),
            _ => s.entity_alias_by_name(accessor, value).map(|(e, _)| e),
        };
        Ok(match found {
            Some(e) => Response::data(entity_json(s, e, mounts)),
            None => Response::empty(),
        })
    })
}

fn lookup_group(store: &IdentityStore, mounts: Mounts<'_>, req: &Request) -> Result<Response> {
    let p = Params(&req.data);
    let (key, value, accessor) = lookup_criterion(&p)?;
    store.read(|s| {
        let found = match key {
            "id" => s.groups.get(value),
            "name" => s.group_by_name(value),
            "alias_id" => s.group_alias(value).map(|(g, _)| g),
            _ => s.group_alias_by_name(accessor, value).map(|(g, _)| g),
        };
        Ok(match found {
            Some(g) => {
                let parents = s.parents(&g.id);
                let mount = g.alias.as_ref().and_then(|a| mounts(&a.mount_accessor));
                Response::data(g.to_json(&parents, &mount))
            }
            None => Response::empty(),
        })
    })
}

//! The identity store: entities, aliases and groups, kept in memory and
//! behind the barrier (`sys/identity/entity/<id>`, `sys/identity/group/<id>`).
//!
//! Every change is computed under one write lock from the current state,
//! written to storage in one atomic batch, and only then applied to memory,
//! with the epoch bumped. A reader (the ACL of a request) therefore sees a
//! state that storage holds, and never a half-applied change; policy
//! caches keyed on [`IdentityStore::epoch`] never serve an older one.
//!
//! Nodes sharing one store each hold a copy of the state; every commit is
//! therefore conditional on `sys/identity/seq`, a record each commit
//! rewrites with a fresh random value. A node whose copy is behind (another
//! node committed since it loaded) writes nothing, reloads, and the
//! operation is computed again from the fresh state ([`IdentityStore::update`]),
//! so two nodes can neither make two entities for one alias nor lose each
//! other's group changes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::model::{Alias, Entity, Group};
use super::template::{GroupData, TemplateData};
use crate::barrier::{to_json, BarrierOp, EntryVersion, Retry, View};
use crate::{Error, Result};

/// Everything the store holds, by id.
#[derive(Default, Clone)]
pub struct State {
    /// Entities by id.
    pub entities: BTreeMap<String, Entity>,
    /// Groups by id.
    pub groups: BTreeMap<String, Group>,
}

/// One change of a write.
// Built and consumed within one write: boxing the records buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum Change {
    /// Store (create or replace) an entity.
    PutEntity(Entity),
    /// Remove an entity.
    DeleteEntity(String),
    /// Store (create or replace) a group.
    PutGroup(Group),
    /// Remove a group.
    DeleteGroup(String),
}

/// What the identity store says about a token's entity at one moment.
pub struct Resolved {
    /// Whether the entity is disabled (its tokens are refused).
    pub disabled: bool,
    /// The entity's policies and those of every group it is in (directly,
    /// through nested groups, or through external groups), sorted.
    pub policies: Vec<String>,
    /// What policy templates may refer to.
    pub template: Arc<TemplateData>,
    /// The store's epoch this was read at.
    pub epoch: u64,
}

/// The in-memory identity store over its storage view.
pub struct IdentityStore {
    view: View,
    state: RwLock<State>,
    epoch: AtomicU64,
    write: tokio::sync::Mutex<()>,
    /// The state of the `seq` record the in-memory copy was read at (or
    /// last written at): commits are conditional on it.
    seq: Mutex<EntryVersion>,
    /// Whether the copy was loaded through the cache (writers reload it).
    stale: std::sync::atomic::AtomicBool,
}

/// The record every commit rewrites (see the module docs).
const SEQ: &str = "seq";
/// What a commit answers when another node committed first (it then
/// reloads); [`IdentityStore::update`] retries on it.
const CONFLICT: &str = "the identity store was changed by another node; try again";

impl State {
    /// The entity named `name` (case-insensitively).
    pub fn entity_by_name(&self, name: &str) -> Option<&Entity> {
        self.entities
            .values()
            .find(|e| e.name.eq_ignore_ascii_case(name))
    }

    /// The group named `name` (case-insensitively).
    pub fn group_by_name(&self, name: &str) -> Option<&Group> {
        self.groups
            .values()
            .find(|g| g.name.eq_ignore_ascii_case(name))
    }

    /// The entity alias with this id, and its entity.
    pub fn entity_alias(&self, id: &str) -> Option<(&Entity, &Alias)> {
        self.entities
            .values()
            .find_map(|e| e.aliases.iter().find(|a| a.id == id).map(|a| (e, a)))
    }

    /// The entity alias of `name` on the auth mount `accessor`.
    pub fn entity_alias_by_name(&self, accessor: &str, name: &str) -> Option<(&Entity, &Alias)> {
        self.entities.values().find_map(|e| {
            e.aliases
                .iter()
                .find(|a| a.mount_accessor == accessor && a.name == name)
                .map(|a| (e, a))
        })
    }

    /// The group alias with this id, and its group.
    pub fn group_alias(&self, id: &str) -> Option<(&Group, &Alias)> {
        self.groups
            .values()
            .find_map(|g| g.alias.as_ref().filter(|a| a.id == id).map(|a| (g, a)))
    }

    /// The group alias of `name` on the auth mount `accessor`.
    pub fn group_alias_by_name(&self, accessor: &str, name: &str) -> Option<(&Group, &Alias)> {
        self.groups.values().find_map(|g| {
            g.alias
                .as_ref()
                .filter(|a| a.mount_accessor == accessor && a.name == name)
                .map(|a| (g, a))
        })
    }

    /// Groups listing `group_id` among their member groups.
    pub fn parents(&self, group_id: &str) -> Vec<String> {
        self.groups
            .values()
            .filter(|g| g.member_group_ids.iter().any(|m| m == group_id))
            .map(|g| g.id.clone())
            .collect()
    }

    /// Every group's parents (the groups listing it among their member
    /// groups), by group id, built in one pass over the groups.
    pub fn parent_index(&self) -> HashMap<&str, Vec<&str>> {
        let mut parents: HashMap<&str, Vec<&str>> = HashMap::new();
        for g in self.groups.values() {
            for m in &g.member_group_ids {
                parents.entry(m.as_str()).or_default().push(g.id.as_str());
            }
        }
        parents
    }

    /// The groups `from` inherits from, each once: its parents, theirs, and
    /// so on (cycles cannot loop), in breadth-first order.
    pub fn ancestors<'a>(
        parents: &HashMap<&'a str, Vec<&'a str>>,
        from: impl IntoIterator<Item = &'a str>,
    ) -> Vec<&'a str> {
        let mut queue: VecDeque<&str> = from.into_iter().collect();
        let mut seen: HashSet<&str> = queue.iter().copied().collect();
        let mut out = Vec::new();
        while let Some(g) = queue.pop_front() {
            for &p in parents.get(g).map(Vec::as_slice).unwrap_or_default() {
                if seen.insert(p) {
                    out.push(p);
                    queue.push_back(p);
                }
            }
        }
        out
    }

    /// The groups an entity is in: directly, and inherited through groups
    /// that list those as members (each once; cycles cannot loop).
    pub fn groups_of(&self, entity_id: &str) -> (Vec<String>, Vec<String>) {
        let direct: Vec<String> = self
            .groups
            .values()
            .filter(|g| g.member_entity_ids.iter().any(|m| m == entity_id))
            .map(|g| g.id.clone())
            .collect();
        let parents = self.parent_index();
        let mut inherited: Vec<String> =
            Self::ancestors(&parents, direct.iter().map(String::as_str))
                .into_iter()
                .map(str::to_string)
                .collect();
        inherited.sort();
        (direct, inherited)
    }

    /// Whether `ancestor` is reachable from `group` through member groups
    /// (itself included): adding `ancestor` as a member of `group` would
    /// then make a cycle.
    pub fn contains_group(&self, group: &str, ancestor: &str) -> bool {
        let mut seen = HashSet::new();
        let mut queue = VecDeque::from([group.to_string()]);
        while let Some(g) = queue.pop_front() {
            if g == ancestor {
                return true;
            }
            if !seen.insert(g.clone()) {
                continue;
            }
            if let Some(grp) = self.groups.get(&g) {
                queue.extend(grp.member_group_ids.iter().cloned());
            }
        }
        false
    }

    fn resolve(&self, entity_id: &str) -> Option<(bool, Vec<String>, TemplateData)> {
        let entity = self.entities.get(entity_id)?;
        let (direct, inherited) = self.groups_of(entity_id);
        let mut policies: BTreeSet<String> = entity.policies.iter().cloned().collect();
        let mut groups = Vec::new();
        for id in direct.iter().chain(inherited.iter()) {
            if let Some(g) = self.groups.get(id) {
                policies.extend(g.policies.iter().cloned());
                groups.push(GroupData {
                    id: g.id.clone(),
                    name: g.name.clone(),
                    metadata: g.metadata.clone(),
                });
            }
        }
        let template = TemplateData {
            entity_id: entity.id.clone(),
            entity_name: entity.name.clone(),
            metadata: entity.metadata.clone(),
            aliases: entity
                .aliases
                .iter()
                .map(|a| (a.mount_accessor.clone(), a.clone()))
                .collect(),
            groups,
        };
        Some((entity.disabled, policies.into_iter().collect(), template))
    }
}

impl IdentityStore {
    /// A store over `view` (empty until [`load`](Self::load)).
    pub fn new(view: View) -> Self {
        IdentityStore {
            view,
            state: RwLock::new(State::default()),
            epoch: AtomicU64::new(0),
            write: tokio::sync::Mutex::new(()),
            seq: Mutex::new(EntryVersion::ABSENT),
            stale: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Loads every entity and group from storage (at unseal, and when
    /// another node changed them).
    pub async fn load(&self) -> Result<()> {
        let _w = self.write.lock().await;
        self.load_locked().await
    }

    /// [`load`](Self::load) for a caller holding the write lock.
    async fn load_locked(&self) -> Result<()> {
        self.load_from_storage(false).await
    }

    /// Loads the state; with `fresh`, every entry is read from storage
    /// rather than the read cache (after a conflict: another node's writes
    /// may not have reached this node's cache yet).
    ///
    /// Only a fresh load knows which `seq` its copy matches. Otherwise
    /// (at unseal, or when another node's change is applied) the entries
    /// come through the cache, which may lag a `seq` read from storage: the
    /// copy serves reads, and is marked stale, so the next writer loads
    /// fresh before it computes ([`lock`](Self::lock)).
    async fn load_from_storage(&self, fresh: bool) -> Result<()> {
        let seq = if fresh {
            self.view.forget(&[SEQ]);
            self.view.get_versioned(SEQ).await?.1
        } else {
            EntryVersion::ABSENT
        };
        self.stale.store(!fresh, Ordering::SeqCst);
        let mut state = State::default();
        let entities = self.view.list("entity/").await?;
        let groups = self.view.list("group/").await?;
        if fresh {
            let keys: Vec<String> = entities
                .iter()
                .map(|k| format!("entity/{k}"))
                .chain(groups.iter().map(|k| format!("group/{k}")))
                .collect();
            self.view
                .forget(&keys.iter().map(String::as_str).collect::<Vec<_>>());
        }
        for key in entities {
            if let Some(e) = self
                .view
                .get_json::<Entity>(&format!("entity/{key}"))
                .await?
            {
                state.entities.insert(e.id.clone(), e);
            }
        }
        for key in groups {
            if let Some(g) = self.view.get_json::<Group>(&format!("group/{key}")).await? {
                state.groups.insert(g.id.clone(), g);
            }
        }
        *self.state.write() = state;
        *self.seq.lock() = seq;
        self.epoch.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Whether `e` is a commit's refusal because another node committed
    /// first (the store has reloaded; computing the change again may work).
    pub fn is_conflict(e: &Error) -> bool {
        matches!(e, Error::Status { code: 409, errors } if errors.iter().any(|m| m == CONFLICT))
    }

    /// Runs `op` (which takes the write lock, computes from the state and
    /// commits) again while its commit meets [a conflict](Self::is_conflict),
    /// a bounded number of times with a pause between (no lock held).
    pub async fn update<T, F, Fut>(&self, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut retry = Retry::new("the identity store");
        loop {
            retry.attempt().await?;
            match op().await {
                Err(e) if Self::is_conflict(&e) => continue,
                other => return other,
            }
        }
    }

    /// Forgets everything held in memory (on seal).
    pub fn clear(&self) {
        *self.state.write() = State::default();
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Changes so far; every applied write increases it.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Runs `f` on the current state.
    pub fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.state.read())
    }

    /// Takes the write lock; changes are computed and committed under it.
    /// A copy loaded through the cache is first loaded again from storage
    /// (see [`load_from_storage`](Self::load_from_storage)), so a change is
    /// always computed from a copy that matches a known `seq`.
    pub async fn lock(&self) -> Result<tokio::sync::MutexGuard<'_, ()>> {
        let guard = self.write.lock().await;
        if self.stale.load(Ordering::SeqCst) {
            self.load_from_storage(true).await?;
        }
        Ok(guard)
    }

    /// Writes `changes` in one atomic batch, then applies them to memory.
    /// The caller holds [`lock`](Self::lock). If another node committed
    /// since this copy was read, nothing is written, the copy is reloaded
    /// and the answer is [a conflict](Self::is_conflict).
    pub async fn commit(&self, changes: Vec<Change>) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut ops = Vec::with_capacity(changes.len() + 1);
        for c in &changes {
            ops.push(match c {
                Change::PutEntity(e) => BarrierOp::Put(format!("entity/{}", e.id), to_json(e)?),
                Change::DeleteEntity(id) => BarrierOp::Delete(format!("entity/{id}")),
                Change::PutGroup(g) => BarrierOp::Put(format!("group/{}", g.id), to_json(g)?),
                Change::DeleteGroup(id) => BarrierOp::Delete(format!("group/{id}")),
            });
        }
        let mark = coffer_crypto::random::uuid();
        ops.push(BarrierOp::Put(SEQ.into(), to_json(&mark)?));
        let read = *self.seq.lock();
        if !self
            .view
            .write_batch_if(vec![(SEQ.into(), read)], ops)
            .await?
        {
            self.load_locked().await?;
            return Err(Error::Status {
                code: 409,
                errors: vec![CONFLICT.into()],
            });
        }
        // The state of `seq` now: ours if it still holds our mark. If another
        // node wrote it in between, the copy is marked as read at a state no
        // commit will match, so the next one reloads first.
        let (now, version) = self.view.get_json_versioned::<String>(SEQ).await?;
        *self.seq.lock() = if now.as_deref() == Some(mark.as_str()) {
            version
        } else {
            EntryVersion::ABSENT
        };
        let mut state = self.state.write();
        for c in changes {
            match c {
                Change::PutEntity(e) => {
                    state.entities.insert(e.id.clone(), e);
                }
                Change::DeleteEntity(id) => {
                    state.entities.remove(&id);
                }
                Change::PutGroup(g) => {
                    state.groups.insert(g.id.clone(), g);
                }
                Change::DeleteGroup(id) => {
                    state.groups.remove(&id);
                }
            }
        }
        self.epoch.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// What the store holds about `entity_id` right now: `None` if there
    /// is no such entity (a deleted entity's tokens keep only their own
    /// policies, as in Vault).
    pub fn resolve(&self, entity_id: &str) -> Option<Resolved> {
        let state = self.state.read();
        // Read under the same guard as the state: the epoch matches it.
        let epoch = self.epoch();
        let (disabled, policies, template) = state.resolve(entity_id)?;
        Some(Resolved {
            disabled,
            policies,
            template: Arc::new(template),
            epoch,
        })
    }

    /// Whether `entity_id` names a disabled entity.
    pub fn is_disabled(&self, entity_id: &str) -> bool {
        self.state
            .read()
            .entities
            .get(entity_id)
            .is_some_and(|e| e.disabled)
    }

    /// At login through the auth mount `accessor`: the entity holding the
    /// alias `alias_name`, created with its alias if none does; with
    /// `groups` (an auth method's group names, e.g. a JWT groups claim),
    /// the entity's external group memberships on that mount are set to
    /// the groups whose alias names one of them. A disabled entity cannot
    /// log in (403). Returns the entity id.
    pub async fn login(
        &self,
        accessor: &str,
        alias_name: &str,
        alias_metadata: &BTreeMap<String, String>,
        groups: Option<&[String]>,
    ) -> Result<String> {
        self.update(|| self.login_once(accessor, alias_name, alias_metadata, groups))
            .await
    }

    async fn login_once(
        &self,
        accessor: &str,
        alias_name: &str,
        alias_metadata: &BTreeMap<String, String>,
        groups: Option<&[String]>,
    ) -> Result<String> {
        let _w = self.lock().await?;
        let now = crate::util::rfc3339(&crate::util::now());
        let mut changes = Vec::new();
        let entity_id = {
            let state = self.state.read();
            match state.entity_alias_by_name(accessor, alias_name) {
                Some((e, _)) if e.disabled => return Err(Error::PermissionDenied),
                Some((e, a)) => {
                    // As Vault: the auth method's current view of the alias
                    // (e.g. JWT claim mappings) replaces the stored one, so
                    // templates never act on what the provider said before.
                    if a.metadata != *alias_metadata {
                        let mut e = e.clone();
                        if let Some(alias) = e
                            .aliases
                            .iter_mut()
                            .find(|x| x.mount_accessor == accessor && x.name == alias_name)
                        {
                            alias.metadata = alias_metadata.clone();
                            alias.last_update_time = now.clone();
                        }
                        e.last_update_time = now.clone();
                        let id = e.id.clone();
                        changes.push(Change::PutEntity(e));
                        id
                    } else {
                        e.id.clone()
                    }
                }
                None => {
                    let id = coffer_crypto::random::uuid();
                    let entity = Entity {
                        name: format!("entity_{}", &id[..8]),
                        id: id.clone(),
                        policies: Vec::new(),
                        metadata: BTreeMap::new(),
                        disabled: false,
                        aliases: vec![Alias {
                            id: coffer_crypto::random::uuid(),
                            canonical_id: id.clone(),
                            mount_accessor: accessor.to_string(),
                            name: alias_name.to_string(),
                            metadata: alias_metadata.clone(),
                            custom_metadata: None,
                            creation_time: now.clone(),
                            last_update_time: now.clone(),
                        }],
                        creation_time: now.clone(),
                        last_update_time: now.clone(),
                    };
                    changes.push(Change::PutEntity(entity));
                    id
                }
            }
        };
        if let Some(names) = groups {
            let state = self.state.read();
            for g in state.groups.values().filter(|g| g.is_external()) {
                let Some(alias) = g.alias.as_ref().filter(|a| a.mount_accessor == accessor) else {
                    continue;
                };
                let wanted = names.iter().any(|n| n == &alias.name);
                let member = g.member_entity_ids.iter().any(|m| m == &entity_id);
                if wanted != member {
                    let mut g = g.clone();
                    if wanted {
                        g.member_entity_ids.push(entity_id.clone());
                    } else {
                        g.member_entity_ids.retain(|m| m != &entity_id);
                    }
                    g.modify_index += 1;
                    g.last_update_time = now.clone();
                    changes.push(Change::PutGroup(g));
                }
            }
        }
        self.commit(changes).await?;
        Ok(entity_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barrier::Barrier;

    fn store() -> (Arc<IdentityStore>, View) {
        let barrier = Arc::new(Barrier::new(Arc::new(coffer_storage::MemoryBackend::new())));
        barrier.unseal(coffer_crypto::Keyring::new(0));
        let view = View::new(barrier, "sys/identity/");
        (Arc::new(IdentityStore::new(view.clone())), view)
    }

    fn group(id: &str, policies: &[&str], entities: &[&str], groups: &[&str]) -> Group {
        Group {
            id: id.into(),
            name: id.into(),
            kind: "internal".into(),
            policies: policies.iter().map(|s| s.to_string()).collect(),
            metadata: BTreeMap::new(),
            member_entity_ids: entities.iter().map(|s| s.to_string()).collect(),
            member_group_ids: groups.iter().map(|s| s.to_string()).collect(),
            alias: None,
            creation_time: String::new(),
            last_update_time: String::new(),
            modify_index: 1,
        }
    }

    /// 32 first logins of one alias at once make exactly one entity, and a
    /// reload from storage sees the same state.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_first_logins_make_one_entity() {
        let (s, view) = store();
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.login("auth_up_1", "alice", &BTreeMap::new(), None)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut ids = Vec::new();
        for t in tasks {
            ids.push(t.await.unwrap());
        }
        ids.dedup();
        assert_eq!(ids.len(), 1);
        assert_eq!(s.read(|st| st.entities.len()), 1);
        let again = IdentityStore::new(view);
        again.load().await.unwrap();
        assert_eq!(again.read(|st| st.entities.len()), 1);
    }

    /// Policies come from direct and nested groups, each once, and a cycle
    /// written behind the API's back cannot make resolution loop.
    #[tokio::test]
    async fn nested_groups_give_policies_and_cycles_terminate() {
        let (s, _) = store();
        let id = s.login("acc", "bob", &BTreeMap::new(), None).await.unwrap();
        let _w = s.lock().await.unwrap();
        s.commit(vec![
            Change::PutGroup(group("a", &["pa"], &[&id], &[])),
            Change::PutGroup(group("b", &["pb"], &[], &["a"])),
            Change::PutGroup(group("c", &["pc"], &[], &["b"])),
            // A cycle: a lists c as a member.
            Change::PutGroup(group("a", &["pa"], &[&id], &["c"])),
        ])
        .await
        .unwrap();
        let r = s.resolve(&id).unwrap();
        assert_eq!(r.policies, ["pa", "pb", "pc"]);
        let (direct, inherited) = s.read(|st| st.groups_of(&id));
        assert_eq!(direct, ["a"]);
        assert_eq!(inherited, ["b", "c"]);
        assert!(s.read(|st| st.contains_group("c", "a")));
        let before = r.epoch;
        s.commit(vec![Change::DeleteGroup("c".into())])
            .await
            .unwrap();
        let r = s.resolve(&id).unwrap();
        assert!(r.epoch > before);
        assert_eq!(r.policies, ["pa", "pb"]);
    }

    /// An external group aliased to a group name gains and loses the
    /// entity as logins report the name or not; other mounts' groups stay.
    #[tokio::test]
    async fn logins_set_external_group_memberships_of_their_mount() {
        let (s, _) = store();
        let mut ext = group("x", &["px"], &[], &[]);
        ext.kind = "external".into();
        ext.alias = Some(Alias {
            id: "ga".into(),
            canonical_id: "x".into(),
            mount_accessor: "jwt_1".into(),
            name: "ops".into(),
            metadata: BTreeMap::new(),
            custom_metadata: None,
            creation_time: String::new(),
            last_update_time: String::new(),
        });
        {
            let _w = s.lock().await.unwrap();
            s.commit(vec![Change::PutGroup(ext)]).await.unwrap();
        }
        let m = BTreeMap::new();
        let ops = ["ops".to_string()];
        let id = s.login("jwt_1", "ci", &m, Some(&ops)).await.unwrap();
        assert_eq!(s.resolve(&id).unwrap().policies, ["px"]);
        // Another mount's login with the same group name changes nothing.
        s.login("jwt_2", "ci", &m, Some(&ops)).await.unwrap();
        assert_eq!(s.resolve(&id).unwrap().policies, ["px"]);
        s.login("jwt_1", "ci", &m, Some(&[])).await.unwrap();
        assert!(s.resolve(&id).unwrap().policies.is_empty());
        // Disabled: the login is refused.
        {
            let _w = s.lock().await.unwrap();
            let mut e = s.read(|st| st.entities[&id].clone());
            e.disabled = true;
            s.commit(vec![Change::PutEntity(e)]).await.unwrap();
        }
        assert!(matches!(
            s.login("jwt_1", "ci", &m, None).await,
            Err(Error::PermissionDenied)
        ));
    }
}

//! The identity store's records: entities with their aliases, groups with
//! their alias, as they are stored and as Vault's reads show them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::util::list_or_null;

/// An alias: the name an auth method knows an entity (or an external group) by.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Alias {
    /// The alias id.
    pub id: String,
    /// The entity (or group) it belongs to.
    pub canonical_id: String,
    /// The auth mount's accessor.
    pub mount_accessor: String,
    /// The name the auth method reports (user name, role id, claim).
    pub name: String,
    /// Metadata set through the API.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Custom metadata set through the API (`None` for aliases made by a
    /// login, shown as `null` as OpenBao does).
    #[serde(default)]
    pub custom_metadata: Option<BTreeMap<String, String>>,
    /// RFC 3339 creation time.
    pub creation_time: String,
    /// RFC 3339 time of the last change.
    pub last_update_time: String,
}

/// Where an auth mount is, for alias reads: (path, type) by accessor.
pub type MountInfo = Option<(String, String)>;

impl Alias {
    /// Adds `mount_path` and `mount_type` while the auth mount exists; an
    /// alias outlives its mount, shown without them, as in OpenBao.
    fn add_mount(out: &mut Value, mount: &MountInfo) {
        if let (Some((path, kind)), Some(o)) = (mount, out.as_object_mut()) {
            o.insert("mount_path".into(), json!(path));
            o.insert("mount_type".into(), json!(kind));
        }
    }

    fn map_or_null(m: &BTreeMap<String, String>) -> Value {
        if m.is_empty() {
            Value::Null
        } else {
            json!(m)
        }
    }

    /// The alias as `entity-alias/id/<id>` (or inside an entity) shows it.
    pub fn to_json(&self, mount: &MountInfo, with_namespace: bool) -> Value {
        let mut out = json!({
            "canonical_id": self.canonical_id,
            "creation_time": self.creation_time,
            "custom_metadata": self.custom_metadata,
            "id": self.id,
            "last_update_time": self.last_update_time,
            "local": false,
            "merged_from_canonical_ids": null,
            "metadata": Self::map_or_null(&self.metadata),
            "mount_accessor": self.mount_accessor,
            "name": self.name,
        });
        Self::add_mount(&mut out, mount);
        if with_namespace {
            out["namespace_id"] = json!("root");
        }
        out
    }

    /// The alias as a LIST's `key_info` shows it.
    pub fn to_list_json(&self, mount: &MountInfo) -> Value {
        let mut out = json!({
            "canonical_id": self.canonical_id,
            "custom_metadata": self.custom_metadata,
            "local": false,
            "metadata": Self::map_or_null(&self.metadata),
            "mount_accessor": self.mount_accessor,
            "name": self.name,
        });
        Self::add_mount(&mut out, mount);
        out
    }
}

/// An entity: one person or service, whatever method it logs in with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entity {
    /// The entity id (a UUID).
    pub id: String,
    /// Its name (unique, compared case-insensitively).
    pub name: String,
    /// Policies every token of the entity gets.
    #[serde(default)]
    pub policies: Vec<String>,
    /// Free metadata (for `{{identity.entity.metadata.<key>}}`).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// A disabled entity's tokens are refused (not revoked).
    #[serde(default)]
    pub disabled: bool,
    /// Its aliases, at most one per auth mount.
    #[serde(default)]
    pub aliases: Vec<Alias>,
    /// RFC 3339 creation time.
    pub creation_time: String,
    /// RFC 3339 time of the last change.
    pub last_update_time: String,
}

/// Internal groups list their members; external groups get theirs from an
/// auth method's group names at login, through their alias.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Group {
    /// The group id (a UUID).
    pub id: String,
    /// Its name (unique, compared case-insensitively).
    pub name: String,
    /// `internal` or `external`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Policies every member gets.
    #[serde(default)]
    pub policies: Vec<String>,
    /// Free metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Member entities (set through the API for internal groups, by logins
    /// for external ones).
    #[serde(default)]
    pub member_entity_ids: Vec<String>,
    /// Member groups: their members are members of this group too.
    #[serde(default)]
    pub member_group_ids: Vec<String>,
    /// An external group's alias.
    #[serde(default)]
    pub alias: Option<Alias>,
    /// RFC 3339 creation time.
    pub creation_time: String,
    /// RFC 3339 time of the last change.
    pub last_update_time: String,
    /// Changes so far.
    #[serde(default)]
    pub modify_index: u64,
}

impl Group {
    /// Whether the group is external.
    pub fn is_external(&self) -> bool {
        self.kind == "external"
    }

    /// The group as `group/id/<id>` shows it; `parents` are the groups
    /// listing it as a member.
    pub fn to_json(&self, parents: &[String], mount: &MountInfo) -> Value {
        let alias = match &self.alias {
            Some(a) => {
                let mut v = a.to_json(mount, false);
                if let Some(o) = v.as_object_mut() {
                    o.remove("custom_metadata");
                    o.remove("local");
                }
                v
            }
            None => json!({}),
        };
        json!({
            "alias": alias,
            "creation_time": self.creation_time,
            "id": self.id,
            "last_update_time": self.last_update_time,
            "member_entity_ids": list_or_null(&self.member_entity_ids),
            "member_group_ids": list_or_null(&self.member_group_ids),
            "metadata": if self.metadata.is_empty() { Value::Null } else { json!(self.metadata) },
            "modify_index": self.modify_index,
            "name": self.name,
            "namespace_id": "root",
            "parent_group_ids": list_or_null(parents),
            "policies": list_or_null(&self.policies),
            "type": self.kind,
        })
    }
}

//! Change events: what changed where, pushed to subscribers of
//! `sys/events/subscribe/<event_type>` (the HTTP layer serves the stream;
//! the core only publishes and authorizes).
//!
//! An event names a path and a version, never a value. Each is published
//! once the request that made the change has been answered and audited
//! (KV v1 and v2 writes, deletes, destroys, metadata changes), or when a
//! rotation finished or a lease was revoked. The [`EventBus`] keeps the
//! last [`RING_SIZE`] events so that a subscriber that reconnects with the
//! id of the last event it saw (`since`) gets the ones it missed; when
//! that id is no longer held (or the server restarted), it gets one
//! [`RESYNC`] event instead and should read again what it follows.
//!
//! Who sees an event is decided per subscriber and per event, at the time
//! of the event: the subscriber's token must still be valid and its
//! policies must grant `read` on the event's `data_path`
//! ([`crate::core::Core::event_visible`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use tokio::sync::broadcast;

use crate::mounts::MountEntry;
use crate::Operation;

/// How many recent events are kept for replay.
pub const RING_SIZE: usize = 4096;
/// The event a subscriber gets when its cursor cannot be replayed.
pub const RESYNC: &str = "coffer/resync";
/// A lifecycle rotation finished (the new version is current).
pub const ROTATION_FINISH: &str = "coffer/rotation-finish";
/// A rotation's `set` step announces its pending version: consumers of the
/// secret switch to it (`?stage=pending`) and confirm it.
pub const ROTATION_PENDING: &str = "coffer/rotation-pending";
/// A rotation failed and was rolled back: the current version stays.
pub const ROTATION_ROLLBACK: &str = "coffer/rotation-rollback";
/// A lease was revoked (by expiry, request, or with its token).
pub const LEASE_REVOKE: &str = "coffer/lease-revoke";

/// One change.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Event {
    /// Position in this server's sequence (for replay; not shown, not shared).
    #[serde(skip)]
    pub seq: u64,
    /// The event's id (a UUID), the cursor clients resume from.
    pub id: String,
    /// `kv-v2/data-write`, `coffer/rotation-finish`, ...
    pub event_type: String,
    /// When it happened.
    pub time: DateTime<Utc>,
    /// The path a subscriber must be allowed to `read` to see it.
    pub data_path: String,
    /// Vault's event metadata (`path`, `operation`, `current_version`, ...);
    /// strings only, no values.
    pub metadata: Map<String, Value>,
    /// The mount it happened on (`secret/`), its accessor and plugin.
    pub mount_path: String,
    /// The mount's accessor.
    pub mount_accessor: String,
    /// The plugin (`kv`, `database`, ...).
    pub plugin: String,
}

impl Event {
    /// The event in Vault's CloudEvents JSON shape.
    pub fn to_cloudevent(&self) -> Value {
        let time = self.time.to_rfc3339_opts(SecondsFormat::Micros, true);
        json!({
            "id": self.id,
            "source": "coffer",
            "specversion": "1.0",
            "type": self.event_type,
            "datacontenttype": "application/cloudevents",
            "time": time,
            "data": {
                "event": {"id": self.id, "metadata": self.metadata},
                "event_type": self.event_type,
                "plugin_info": {
                    "mount_class": "secret",
                    "mount_accessor": self.mount_accessor,
                    "mount_path": self.mount_path,
                    "plugin": self.plugin,
                },
            },
        })
    }

    /// Whether the event's type matches a subscription pattern: `*`
    /// matches any run of characters (slashes too), as Vault's glob does.
    pub fn matches(&self, pattern: &str) -> bool {
        coffer_policy::glob::star(pattern, &self.event_type)
    }
}

/// Whether `pattern` is an event type or glob a subscriber may ask for.
pub fn valid_pattern(pattern: &str) -> bool {
    !pattern.is_empty()
        && pattern.len() <= 128
        && pattern
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/' | b'*' | b'.'))
}

/// What a new subscriber starts with.
#[derive(Debug)]
pub struct Subscription {
    /// Events after the cursor, oldest first (empty without a cursor).
    pub replay: Vec<Arc<Event>>,
    /// A [`RESYNC`] event when the cursor could not be replayed.
    pub resync: Option<Arc<Event>>,
    /// Events published from now on.
    pub rx: broadcast::Receiver<Arc<Event>>,
}

/// Most live subscriptions the server holds at once: well below the
/// listener's connection limit, so subscribers cannot take every slot.
pub const MAX_SUBSCRIPTIONS: usize = 1024;

/// Most live subscriptions one token holds at once.
pub const MAX_SUBSCRIPTIONS_PER_TOKEN: usize = 16;

/// Live subscriptions, in all and per token (by token hash).
#[derive(Debug, Default)]
struct Slots {
    total: usize,
    per_token: std::collections::HashMap<String, usize>,
}

/// One live subscription's place; given back when dropped.
#[derive(Debug)]
pub struct SubscriptionSlot {
    slots: Arc<Mutex<Slots>>,
    key: String,
}

impl Drop for SubscriptionSlot {
    fn drop(&mut self) {
        let mut s = self.slots.lock();
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.per_token.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                s.per_token.remove(&self.key);
            }
        }
    }
}

/// The server's event channel: a broadcast to live subscribers plus a
/// bounded ring of recent events for replay.
#[derive(Debug)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<Event>>,
    ring: Mutex<VecDeque<Arc<Event>>>,
    seq: AtomicU64,
    slots: Arc<Mutex<Slots>>,
    /// Where events made here go for the other nodes (shared storage).
    outbox: Mutex<Option<tokio::sync::mpsc::Sender<Arc<Event>>>>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            tx: broadcast::channel(RING_SIZE).0,
            ring: Mutex::new(VecDeque::with_capacity(RING_SIZE)),
            seq: AtomicU64::new(0),
            slots: Arc::default(),
            outbox: Mutex::new(None),
        }
    }
}

impl EventBus {
    /// Publishes an event made here (kept for replay, sent to every
    /// subscriber, and handed to the outbox when other nodes share the store).
    pub fn publish(
        &self,
        event_type: &str,
        mount: Option<&MountEntry>,
        data_path: &str,
        metadata: Map<String, Value>,
    ) {
        let event = Event {
            seq: 0,
            id: coffer_crypto::random::uuid(),
            event_type: event_type.to_string(),
            time: Utc::now(),
            data_path: data_path.to_string(),
            metadata,
            mount_path: mount.map(|m| m.path.clone()).unwrap_or_default(),
            mount_accessor: mount.map(|m| m.accessor.clone()).unwrap_or_default(),
            plugin: mount.map(|m| m.kind.clone()).unwrap_or_default(),
        };
        let event = self.deliver(event);
        if let Some(outbox) = self.outbox.lock().as_ref() {
            if outbox.try_send(event).is_err() {
                tracing::warn!("event outbox full: an event is not shared with the other nodes");
            }
        }
    }

    /// Publishes an event another node made (its id and time kept), to
    /// this node's subscribers only.
    pub fn publish_remote(&self, event: Event) {
        self.deliver(event);
    }

    /// Takes a place in this node's sequence, the ring and the broadcast.
    fn deliver(&self, mut event: Event) -> Arc<Event> {
        let mut ring = self.ring.lock();
        event.seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let event = Arc::new(event);
        if ring.len() == RING_SIZE {
            ring.pop_front();
        }
        ring.push_back(event.clone());
        // No receiver is not an error: nobody is listening.
        let _ = self.tx.send(event.clone());
        event
    }

    /// From now on, every event made here is also sent to the returned
    /// receiver (at most [`RING_SIZE`] waiting), for the other nodes.
    pub fn open_outbox(&self) -> tokio::sync::mpsc::Receiver<Arc<Event>> {
        let (tx, rx) = tokio::sync::mpsc::channel(RING_SIZE);
        *self.outbox.lock() = Some(tx);
        rx
    }

    /// Reserves a live subscription for the token whose hash is
    /// `token_key`; `None` when the server or the token holds the most
    /// allowed ([`MAX_SUBSCRIPTIONS`], [`MAX_SUBSCRIPTIONS_PER_TOKEN`]).
    pub fn reserve(&self, token_key: &str) -> Option<SubscriptionSlot> {
        let mut s = self.slots.lock();
        let mine = s.per_token.get(token_key).copied().unwrap_or(0);
        if s.total >= MAX_SUBSCRIPTIONS || mine >= MAX_SUBSCRIPTIONS_PER_TOKEN {
            return None;
        }
        s.total += 1;
        s.per_token.insert(token_key.to_string(), mine + 1);
        Some(SubscriptionSlot {
            slots: self.slots.clone(),
            key: token_key.to_string(),
        })
    }

    /// A subscription resuming after the event `since` (none: live only).
    /// Under the ring's lock, so no event falls between replay and live.
    pub fn subscribe(&self, since: Option<&str>) -> Subscription {
        let ring = self.ring.lock();
        let rx = self.tx.subscribe();
        let mut replay = Vec::new();
        let mut resync = None;
        if let Some(id) = since.filter(|s| !s.is_empty()) {
            match ring.iter().position(|e| e.id == id) {
                Some(i) => replay.extend(ring.iter().skip(i + 1).cloned()),
                None => resync = Some(self.resync_event()),
            }
        }
        Subscription { replay, resync, rx }
    }

    /// A [`RESYNC`] event (not published: sent to one subscriber).
    pub fn resync_event(&self) -> Arc<Event> {
        let mut metadata = Map::new();
        metadata.insert(
            "reason".into(),
            json!("events since the cursor are no longer held; read again what you follow"),
        );
        Arc::new(Event {
            seq: self.seq.load(Ordering::Relaxed),
            id: coffer_crypto::random::uuid(),
            event_type: RESYNC.to_string(),
            time: Utc::now(),
            data_path: String::new(),
            metadata,
            mount_path: String::new(),
            mount_accessor: String::new(),
            plugin: "coffer".into(),
        })
    }
}

/// The metadata map of an event from string pairs.
pub fn metadata<'a>(pairs: impl IntoIterator<Item = (&'a str, String)>) -> Map<String, Value> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::String(v)))
        .collect()
}

/// The event a successful KV request makes, if any: `(type, data_path,
/// metadata)`. `rel` is the path below the mount; `data` the answer's data.
pub(crate) fn kv_event(
    mount: &MountEntry,
    rel: &str,
    op: Operation,
    data: Option<&Value>,
) -> Option<(String, String, Map<String, Value>)> {
    if mount.kind != "kv" {
        return None;
    }
    let v2 = mount.options.get("version").map(String::as_str) == Some("2");
    let write = matches!(op, Operation::Create | Operation::Update);
    let full = format!("{}{rel}", mount.path);
    if !v2 {
        let kind = match op {
            Operation::Create | Operation::Update | Operation::Patch => "write",
            Operation::Delete => "delete",
            _ => return None,
        };
        let meta = metadata([
            ("path", full.clone()),
            ("data_path", full.clone()),
            ("operation", kind.to_string()),
            ("modified", "true".into()),
        ]);
        return Some((format!("kv-v1/{kind}"), full, meta));
    }
    let (prefix, secret) = rel.split_once('/')?;
    if secret.is_empty() {
        return None;
    }
    let kind = match (prefix, op) {
        ("data", _) if write => "data-write",
        ("data", Operation::Patch) => "data-patch",
        ("data", Operation::Delete) => "delete",
        ("delete", _) if write => "delete",
        ("undelete", _) if write => "undelete",
        ("destroy", _) if write => "destroy",
        ("metadata", Operation::Patch) => "metadata-patch",
        ("metadata", _) if write => "metadata-write",
        ("metadata", Operation::Delete) => "metadata-delete",
        _ => return None,
    };
    let data_path = format!("{}data/{secret}", mount.path);
    let mut meta = metadata([
        ("path", full),
        ("data_path", data_path.clone()),
        ("operation", kind.to_string()),
        ("modified", "true".into()),
    ]);
    if let Some(v) = data.and_then(|d| d.get("version")).and_then(Value::as_u64) {
        meta.insert("current_version".into(), json!(v.to_string()));
    }
    Some((format!("kv-v2/{kind}"), data_path, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_vaults() {
        let glob = coffer_policy::glob::star;
        assert!(glob("*", "kv-v2/data-write"));
        assert!(glob("kv-v2/*", "kv-v2/data-write"));
        assert!(!glob("kv-v2/*", "kv-v1/write"));
        assert!(glob("*write", "kv-v1/write"));
        assert!(glob("kv-v2/data-write", "kv-v2/data-write"));
        assert!(!glob("kv-v2/data-write", "kv-v2/data-writes"));
        assert!(glob("*/*-*", "kv-v2/data-write"));
        assert!(valid_pattern("kv-v2/*") && !valid_pattern("a b") && !valid_pattern(""));
    }

    #[test]
    fn a_cursor_replays_what_followed_it_or_asks_for_a_resync() {
        let bus = EventBus::default();
        bus.publish("kv-v2/data-write", None, "secret/data/a", Map::new());
        let first = bus.subscribe(None);
        assert!(first.replay.is_empty() && first.resync.is_none());
        let id = bus.ring.lock()[0].id.clone();
        bus.publish("kv-v2/data-write", None, "secret/data/b", Map::new());
        bus.publish("kv-v2/delete", None, "secret/data/c", Map::new());
        let s = bus.subscribe(Some(&id));
        let paths: Vec<&str> = s.replay.iter().map(|e| e.data_path.as_str()).collect();
        assert_eq!(paths, ["secret/data/b", "secret/data/c"]);
        let s = bus.subscribe(Some("not-an-id"));
        assert_eq!(s.resync.unwrap().event_type, RESYNC);
    }

    #[test]
    fn the_ring_is_bounded() {
        let bus = EventBus::default();
        for _ in 0..RING_SIZE + 10 {
            bus.publish("kv-v1/write", None, "kv/a", Map::new());
        }
        assert_eq!(bus.ring.lock().len(), RING_SIZE);
    }

    #[test]
    fn kv_requests_map_to_vaults_event_types() {
        let mut m = MountEntry {
            path: "secret/".into(),
            kind: "kv".into(),
            description: String::new(),
            accessor: "kv_1".into(),
            uuid: "u".into(),
            config: Default::default(),
            options: Default::default(),
            local: false,
            seal_wrap: false,
        };
        m.options.insert("version".into(), "2".into());
        let data = json!({"version": 3});
        let (t, p, meta) = kv_event(&m, "data/app/db", Operation::Update, Some(&data)).unwrap();
        assert_eq!(
            (t.as_str(), p.as_str()),
            ("kv-v2/data-write", "secret/data/app/db")
        );
        assert_eq!(meta["current_version"], "3");
        let (t, p, _) = kv_event(&m, "destroy/app/db", Operation::Update, None).unwrap();
        assert_eq!(
            (t.as_str(), p.as_str()),
            ("kv-v2/destroy", "secret/data/app/db")
        );
        let (t, _, meta) = kv_event(&m, "metadata/app/db", Operation::Delete, None).unwrap();
        assert_eq!(t, "kv-v2/metadata-delete");
        assert_eq!(meta["path"], "secret/metadata/app/db");
        assert!(kv_event(&m, "data/app/db", Operation::Read, None).is_none());
        assert!(kv_event(&m, "config", Operation::Update, None).is_none());
        m.options.clear();
        let (t, p, _) = kv_event(&m, "app/db", Operation::Create, None).unwrap();
        assert_eq!((t.as_str(), p.as_str()), ("kv-v1/write", "secret/app/db"));
    }
}

#[cfg(test)]
mod slot_tests {
    use super::*;

    #[test]
    fn subscriptions_are_capped_per_token_and_given_back() {
        let bus = EventBus::default();
        let held: Vec<_> = (0..MAX_SUBSCRIPTIONS_PER_TOKEN)
            .map(|_| bus.reserve("a").expect("within the cap"))
            .collect();
        assert!(bus.reserve("a").is_none(), "one more than the cap");
        assert!(bus.reserve("b").is_some(), "another token is not affected");
        drop(held);
        assert!(bus.reserve("a").is_some(), "slots are given back");
    }
}

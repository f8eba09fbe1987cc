//! The token store: tokens kept only as hashes, looked up on every request.
//!
//! Layout inside its view: `id/<sha256(token)>` holds a [`TokenEntry`];
//! `accessor/<accessor>` holds the hash it points to. A token is
//! `cfs.` followed by 32 random URL-safe characters (192 bits), so it is
//! recognisable in leaks and by scanners. `parent/<parent hash>/<child hash>`
//! links a token to its children, so revoking a parent revokes its tree.
//!
//! A token is valid only while it and every ancestor are unexpired and
//! stored: a lookup walks the parent chain (cached entries, so it is cheap),
//! and a child is refused the moment its parent expires. An in-memory index
//! of expiry times (rebuilt from storage at the first pass after unseal)
//! lets [`TokenStore::revoke_expired`] revoke each expired token's tree and
//! leases within a second of its expiry.
//!
//! Every token with a TTL has a lease, as Vault's: `lease/<lease id>` holds
//! a [`TokenLease`], where the lease id is the creating path followed by
//! `/h<sha256(token hash)>` (`auth/userpass/login/alice/h3f…`). The lease
//! record is written in the same atomic batch as the token and deleted in the
//! same batch as it, so a crash can never leave a token without its lease or
//! a lease without its token; its times are the token's (one source of
//! truth), so the two always expire together.
//!
//! Batch tokens (`cfb.`, see [`crate::batch_token`]) are not stored at all:
//! [`TokenStore::lookup`] opens and checks them.
//!
//! A stored entry is only ever rewritten by a read-modify-write made
//! conditional on the entry being as read ([`View::write_batch_if`]):
//! taking a use, renewing, re-parenting. On storage several nodes share,
//! two nodes taking the last use of a token cannot both succeed, and a
//! renewal cannot give back a use another node took or write back a token
//! another node revoked; the loser reads again, at most
//! [`crate::barrier::CONFLICT_ATTEMPTS`] times. A lock per store keeps this
//! node's own writers from conflicting with each other.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::barrier::{to_json, BarrierOp, EntryVersion, Retry, View};
use crate::cache::ParsedCache;
use crate::core::Core;
use crate::util::now;
use crate::Result;

/// Prefix of every token Coffer generates.
pub const TOKEN_PREFIX: &str = "cfs.";

/// Ancestors a lookup walks at most; a token deeper in a tree is refused.
const MAX_DEPTH: usize = 1024;

/// Seconds before an expired token whose revocation failed is tried again.
const RETRY_SECS: i64 = 5;

pub use coffer_engine::caller::TokenEntry;

/// A token's lease record (`lease/<lease id>` in the token store's view):
/// which token it stands for and when it was last renewed. Its other times
/// are the token's own.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenLease {
    /// Hash of the token.
    pub token: String,
    /// Last renewal of the token, seconds since the epoch.
    #[serde(default)]
    pub last_renewal: Option<i64>,
}

/// Hash under which a token is stored.
pub fn hash_token(token: &str) -> String {
    coffer_crypto::hash::sha256_hex(token.as_bytes())
}

/// Generates a new token string.
pub fn generate_token() -> Zeroizing<String> {
    Zeroizing::new(format!(
        "{TOKEN_PREFIX}{}",
        coffer_crypto::random::token_string(32)
    ))
}

/// Whether `id` can name a lease: not empty, no empty or dot segment.
pub fn valid_lease_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
}

/// What a read-modify-write of a token entry does with the entry read.
enum Edit {
    /// Write the edited entry, with these operations in the same batch.
    Write(Vec<BarrierOp>),
    /// Write nothing; answer the entry as read.
    Keep,
    /// Write nothing; answer `None`.
    Refuse,
}

/// Stores and looks up tokens.
#[derive(Clone)]
pub struct TokenStore {
    view: View,
    /// Parsed entries by hash (no token, no secret: entries hold only hashes and metadata).
    parsed: Arc<ParsedCache<TokenEntry>>,
    /// `(expire time, hash)` of tokens that expire; may hold stale pairs
    /// (renewed or revoked tokens), which the expiry pass checks and drops.
    expiring: Arc<Mutex<BTreeSet<(i64, String)>>>,
    /// Whether `expiring` holds every stored token (false after seal).
    indexed: Arc<AtomicBool>,
    /// Serialises this node's read-modify-writes of entries (other nodes'
    /// are kept out by conditional writes).
    uses: Arc<tokio::sync::Mutex<()>>,
    /// Seals and opens batch tokens.
    batch: Arc<crate::batch_token::BatchKeys>,
    /// Signs and opens wrapping tokens in JWT form.
    wrapping_jwt: Arc<crate::wrapping_jwt::JwtKey>,
}

impl TokenStore {
    /// A store over `view`.
    pub fn new(view: View) -> Self {
        TokenStore {
            parsed: Arc::new(ParsedCache::default()),
            expiring: Arc::new(Mutex::new(BTreeSet::new())),
            indexed: Arc::new(AtomicBool::new(false)),
            uses: Arc::new(tokio::sync::Mutex::new(())),
            batch: Arc::new(crate::batch_token::BatchKeys::new(view.clone())),
            wrapping_jwt: Arc::new(crate::wrapping_jwt::JwtKey::new(view.clone())),
            view,
        }
    }

    /// Makes a batch token of `entry` (never stored); returns the token and
    /// the entry lookups will see.
    pub async fn seal_batch(&self, entry: &TokenEntry) -> Result<(Zeroizing<String>, TokenEntry)> {
        self.batch.seal(entry).await
    }

    fn index_expiry(&self, entry: &TokenEntry) {
        if let Some(t) = entry.expire_time {
            self.expiring.lock().insert((t, entry.id_hash.clone()));
        }
    }

    /// Creates a root token, with `id` when given (dev mode), else generated.
    pub async fn create_root(&self, id: Option<&str>) -> Result<Zeroizing<String>> {
        // A chosen id (the dev server's `-dev-root-token-id`) is, as in
        // Vault, a root token made through `auth/token/create`.
        let (token, display_name, path) = match id {
            Some(i) if !i.is_empty() => {
                (Zeroizing::new(i.to_string()), "token", "auth/token/create")
            }
            _ => (generate_token(), "root", "auth/token/root"),
        };
        let entry = TokenEntry {
            id_hash: hash_token(&token),
            accessor: coffer_crypto::random::token_string(24),
            policies: vec!["root".into()],
            parent: None,
            display_name: display_name.into(),
            meta: BTreeMap::new(),
            num_uses: 0,
            creation_time: now().timestamp(),
            ttl: 0,
            expire_time: None,
            path: path.into(),
            renewable: false,
            explicit_max_ttl: 0,
            period: 0,
            max_expire_time: None,
            bound_cidrs: Vec::new(),
            role: None,
            uses_exhausted: false,
            entity_id: String::new(),
        };
        self.store(&entry).await?;
        Ok(token)
    }

    /// Writes a new entry, its accessor index and its parent link atomically.
    pub async fn store(&self, entry: &TokenEntry) -> Result<()> {
        let _w = self.parsed.begin_write(&entry.id_hash);
        let mut ops = vec![
            BarrierOp::Put(format!("id/{}", entry.id_hash), to_json(entry)?),
            BarrierOp::Put(
                format!("accessor/{}", entry.accessor),
                to_json(&entry.id_hash)?,
            ),
        ];
        if let Some(parent) = &entry.parent {
            ops.push(BarrierOp::Put(
                format!("parent/{parent}/{}", entry.id_hash),
                Zeroizing::new(b"{}".to_vec()),
            ));
        }
        if let Some(lease) = entry.lease_id() {
            let record = TokenLease {
                token: entry.id_hash.clone(),
                last_renewal: None,
            };
            ops.push(BarrierOp::Put(format!("lease/{lease}"), to_json(&record)?));
        }
        self.view.write_batch(ops).await?;
        self.index_expiry(entry);
        Ok(())
    }

    /// The live token behind the token lease `lease_id`, with its lease
    /// record; `None` when there is no such lease or its token is no longer
    /// valid.
    pub async fn lease(&self, lease_id: &str) -> Result<Option<(TokenEntry, TokenLease)>> {
        if !valid_lease_id(lease_id) {
            return Ok(None);
        }
        let record: Option<TokenLease> = self.view.get_json(&format!("lease/{lease_id}")).await?;
        let Some(record) = record else {
            return Ok(None);
        };
        Ok(self
            .lookup_hash(&record.token)
            .await?
            .filter(|e| e.lease_id().as_deref() == Some(lease_id))
            .map(|e| (e, record)))
    }

    /// When `entry` was last renewed (seconds since the epoch), from its
    /// lease record; `None` when it never was or has no lease.
    pub async fn last_renewal(&self, entry: &TokenEntry) -> Result<Option<i64>> {
        let Some(lease) = entry.lease_id() else {
            return Ok(None);
        };
        let record: Option<TokenLease> = self.view.get_json(&format!("lease/{lease}")).await?;
        Ok(record.and_then(|r| r.last_renewal))
    }

    /// Token lease ids directly below `prefix` (Vault-style listing).
    pub async fn lease_list(&self, prefix: &str) -> Result<Vec<String>> {
        self.view.list(&format!("lease/{prefix}")).await
    }

    /// Every token lease whose id starts with `prefix`: (lease id, token hash).
    pub async fn leases_with_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for key in self
            .view
            .keys_with_prefix(&format!("lease/{prefix}"))
            .await?
        {
            let record: Option<TokenLease> = self.view.get_json(&key).await?;
            if let (Some(id), Some(r)) = (key.strip_prefix("lease/"), record) {
                out.push((id.to_string(), r.token));
            }
        }
        Ok(out)
    }

    /// Renews the stored token `hash`: sets its expiry to `expire_time` and
    /// its lease's `last_renewal` to now, in one batch conditional on the
    /// entry as read. Returns the entry as written, or `None` when the token
    /// is no longer stored (revoked meanwhile: nothing is written back).
    pub async fn renew(&self, hash: &str, expire_time: i64) -> Result<Option<TokenEntry>> {
        self.modify(hash, |e| {
            e.expire_time = Some(expire_time);
            let Some(lease) = e.lease_id() else {
                return Ok(Edit::Write(Vec::new()));
            };
            let record = TokenLease {
                token: e.id_hash.clone(),
                last_renewal: Some(now().timestamp()),
            };
            Ok(Edit::Write(vec![BarrierOp::Put(
                format!("lease/{lease}"),
                to_json(&record)?,
            )]))
        })
        .await
    }

    /// Makes the stored token `hash` an orphan (its parent is revoked alone).
    pub async fn orphan(&self, hash: &str) -> Result<Option<TokenEntry>> {
        self.modify(hash, |e| {
            e.parent = None;
            Ok(Edit::Write(Vec::new()))
        })
        .await
    }

    /// The read-modify-write of the stored entry `hash`: reads it, lets
    /// `change` edit it, and writes it (with the edit's extra operations)
    /// only if nobody wrote it since, else reads again. `None` when the
    /// entry is gone or `change` refuses; the entry otherwise (as written,
    /// or as read when `change` keeps it).
    async fn modify(
        &self,
        hash: &str,
        mut change: impl FnMut(&mut TokenEntry) -> Result<Edit>,
    ) -> Result<Option<TokenEntry>> {
        let key = format!("id/{hash}");
        let mut retry = Retry::new("the token");
        loop {
            retry.attempt().await?;
            // Per attempt: the pause after a conflict holds no lock.
            let _guard = self.uses.lock().await;
            let (stored, read) = self.view.get_json_versioned::<TokenEntry>(&key).await?;
            let Some(mut entry) = stored else {
                return Ok(None);
            };
            let mut ops = match change(&mut entry)? {
                Edit::Refuse => return Ok(None),
                Edit::Keep => return Ok(Some(entry)),
                Edit::Write(ops) => ops,
            };
            ops.insert(0, BarrierOp::Put(key.clone(), to_json(&entry)?));
            let _w = self.parsed.begin_write(hash);
            if self
                .view
                .write_batch_if(vec![(key.clone(), read)], ops)
                .await?
            {
                self.index_expiry(&entry);
                return Ok(Some(entry));
            }
        }
    }

    /// Looks up a valid token; `None` if unknown, expired or used up.
    pub async fn lookup(&self, token: &str) -> Result<Option<TokenEntry>> {
        if token.is_empty() {
            return Ok(None);
        }
        if token.starts_with(crate::batch_token::BATCH_PREFIX) {
            let Some(e) = self.batch.open(token).await? else {
                return Ok(None);
            };
            if e.expired(now().timestamp()) {
                return Ok(None);
            }
            // A batch token with a parent lives only while the parent does.
            if let Some(parent) = &e.parent {
                if self.lookup_hash(parent).await?.is_none() {
                    return Ok(None);
                }
            }
            return Ok(Some(e));
        }
        Ok(self
            .lookup_hash(&hash_token(token))
            .await?
            .filter(|e| !e.uses_exhausted))
    }

    /// Takes one use of a limited-use token, atomically with every other
    /// use: returns the entry as it stands after this use (with
    /// `uses_exhausted` set when this was the last), or `None` when the
    /// token is gone, expired or has no use left. Tokens without a use limit
    /// are returned unchanged.
    ///
    /// On shared storage the use is taken by a conditional write of the
    /// entry, so of every node's requests at most `num_uses` get one.
    pub async fn take_use(&self, hash: &str) -> Result<Option<TokenEntry>> {
        // The token and every ancestor must be valid (through the cache).
        if self.lookup_hash(hash).await?.is_none() {
            return Ok(None);
        }
        let at = now().timestamp();
        self.modify(hash, |entry| {
            if entry.uses_exhausted || entry.expired(at) {
                return Ok(Edit::Refuse);
            }
            if entry.num_uses == 0 {
                return Ok(Edit::Keep);
            }
            entry.num_uses -= 1;
            if entry.num_uses == 0 {
                entry.uses_exhausted = true;
            }
            Ok(Edit::Write(Vec::new()))
        })
        .await
    }

    /// The stored entry of `hash`, valid or not (through the parsed cache).
    async fn entry(&self, hash: &str) -> Result<Option<Arc<TokenEntry>>> {
        if let Some(e) = self.parsed.get(hash) {
            return Ok(Some(e));
        }
        let epoch = self.parsed.epoch();
        let entry: Option<TokenEntry> = self.view.get_json(&format!("id/{hash}")).await?;
        Ok(entry.map(|e| {
            let e = Arc::new(e);
            self.parsed.fill(hash, e.clone(), epoch);
            e
        }))
    }

    /// Looks up a valid token by its hash: it and every ancestor must be
    /// stored and unexpired (a child dies with its parent, at once).
    pub async fn lookup_hash(&self, hash: &str) -> Result<Option<TokenEntry>> {
        let at = now().timestamp();
        let Some(e) = self.entry(hash).await? else {
            return Ok(None);
        };
        if e.expired(at) {
            return Ok(None);
        }
        let mut parent = e.parent.clone();
        let mut depth = 0;
        while let Some(p) = parent {
            depth += 1;
            if depth > MAX_DEPTH {
                return Ok(None);
            }
            match self.entry(&p).await? {
                Some(pe) if !pe.expired(at) => parent = pe.parent.clone(),
                _ => return Ok(None),
            }
        }
        Ok(Some((*e).clone()))
    }

    /// Another node wrote the entry of `hash`: drops it from the cache and,
    /// once the expiry index is loaded, indexes its (new) expiry.
    pub async fn changed_elsewhere(&self, hash: &str) -> Result<()> {
        self.parsed.invalidate(hash);
        if self.indexed.load(Ordering::SeqCst) {
            if let Some(e) = self
                .view
                .get_json::<TokenEntry>(&format!("id/{hash}"))
                .await?
            {
                self.index_expiry(&e);
            }
        }
        Ok(())
    }

    /// Another node changed the batch token key: read it again.
    pub fn forget_batch_key(&self) {
        self.batch.clear();
    }

    /// The key that signs wrapping tokens in JWT form.
    pub fn wrapping_jwt(&self) -> &crate::wrapping_jwt::JwtKey {
        &self.wrapping_jwt
    }

    /// Forgets parsed entries and the expiry index (on seal).
    pub fn clear_cache(&self) {
        self.parsed.clear();
        self.batch.clear();
        self.wrapping_jwt.clear();
        self.expiring.lock().clear();
        self.indexed.store(false, Ordering::SeqCst);
    }

    /// Adds every stored token's expiry to the index (first pass after
    /// unseal), and gives a lease to each token with a TTL that has none (a
    /// store written before tokens had leases), so that `revoke-prefix` and
    /// `sys/leases/lookup` reach every token.
    async fn load_expiry_index(&self) -> Result<()> {
        let mut found = Vec::new();
        let mut backfilled = 0usize;
        for key in self.view.list("id/").await? {
            let entry: Option<TokenEntry> = self.view.get_json(&format!("id/{key}")).await?;
            let Some(entry) = entry else { continue };
            if self.backfill_lease(&entry).await? {
                backfilled += 1;
            }
            if let Some(t) = entry.expire_time {
                found.push((t, key));
            }
        }
        if backfilled > 0 {
            tracing::info!(
                backfilled,
                "token leases created for tokens stored without one"
            );
        }
        // Merged, not replaced: tokens stored during the scan are indexed already.
        self.expiring.lock().extend(found);
        self.indexed.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Writes the lease record of `entry` if it should have one and has
    /// none; true when it wrote one. Under the uses lock, as revocation is,
    /// and conditional on the stored token, so a token revoked meanwhile
    /// (on any node) never gets its lease back.
    async fn backfill_lease(&self, entry: &TokenEntry) -> Result<bool> {
        let Some(lease) = entry.lease_id() else {
            return Ok(false);
        };
        let key = format!("lease/{lease}");
        if self.view.get(&key).await?.is_some() {
            return Ok(false);
        }
        let _guard = self.uses.lock().await;
        let id_key = format!("id/{}", entry.id_hash);
        let (stored, read) = self.view.get_versioned(&id_key).await?;
        if stored.is_none() {
            return Ok(false);
        }
        let record = TokenLease {
            token: entry.id_hash.clone(),
            last_renewal: None,
        };
        // Only while the token is as read and still has no lease, on any
        // node: a token revoked meanwhile never gets its lease back. (A
        // token changed meanwhile is left for its next renewal, which
        // writes the lease record too.)
        self.view
            .write_batch_if(
                vec![(id_key, read), (key.clone(), EntryVersion::ABSENT)],
                vec![BarrierOp::Put(key, to_json(&record)?)],
            )
            .await
    }

    /// Revokes every token whose TTL has passed, with its tree and the
    /// leases of all of them (through [`Core::revoke_token_tree`]). Cheap
    /// when nothing is due: only the head of the expiry index is looked at.
    /// Run every second by the background task; returns how many expired
    /// tokens it revoked (their descendants not counted).
    pub async fn revoke_expired(&self, core: &Core) -> Result<usize> {
        if !self.indexed.load(Ordering::SeqCst) {
            self.load_expiry_index().await?;
        }
        let at = now().timestamp();
        let due: Vec<String> = {
            let mut q = self.expiring.lock();
            let mut due = Vec::new();
            while q.first().is_some_and(|(t, _)| *t <= at) {
                if let Some((_, h)) = q.pop_first() {
                    due.push(h);
                }
            }
            due
        };
        let mut revoked = 0;
        for hash in due {
            let entry = match self
                .view
                .get_json::<TokenEntry>(&format!("id/{hash}"))
                .await
            {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "expired token could not be read; will retry");
                    self.expiring.lock().insert((at + RETRY_SECS, hash));
                    continue;
                }
            };
            match entry {
                // Revoked meanwhile: nothing left to do.
                None => {}
                Some(e) if e.expired(at) => match core.revoke_token_tree(&hash).await {
                    Ok(()) => revoked += 1,
                    Err(err) => {
                        tracing::warn!(error = %err, "expired token could not be revoked; will retry");
                        self.expiring.lock().insert((at + RETRY_SECS, hash));
                    }
                },
                // Renewed: its new expiry is indexed.
                Some(e) => self.index_expiry(&e),
            }
        }
        if revoked > 0 {
            tracing::info!(revoked, "expired tokens revoked");
        }
        Ok(revoked)
    }

    /// Looks up a valid token by its accessor.
    pub async fn lookup_accessor(&self, accessor: &str) -> Result<Option<TokenEntry>> {
        if accessor.is_empty() || accessor.contains('/') {
            return Ok(None);
        }
        let hash: Option<String> = self.view.get_json(&format!("accessor/{accessor}")).await?;
        match hash {
            Some(h) => self.lookup_hash(&h).await,
            None => Ok(None),
        }
    }

    /// All accessors.
    pub async fn accessors(&self) -> Result<Vec<String>> {
        self.view.list("accessor/").await
    }

    /// Revokes a token and, depth first, every descendant. Returns the
    /// entries revoked so that the caller can revoke their leases too.
    pub async fn revoke_tree(&self, hash: &str) -> Result<Vec<TokenEntry>> {
        let mut revoked = Vec::new();
        let mut stack = vec![hash.to_string()];
        let mut order = Vec::new();
        while let Some(h) = stack.pop() {
            for child in self.view.list(&format!("parent/{h}/")).await? {
                stack.push(child.trim_end_matches('/').to_string());
            }
            order.push(h);
        }
        // Children first, so a crash midway never leaves a live child of a revoked parent.
        for h in order.into_iter().rev() {
            if let Some(e) = self.revoke_one(&h).await? {
                revoked.push(e);
            }
        }
        Ok(revoked)
    }

    /// Revokes only this token; its children become orphans.
    pub async fn revoke_orphan(&self, hash: &str) -> Result<Option<TokenEntry>> {
        for child in self.view.list(&format!("parent/{hash}/")).await? {
            self.orphan(child.trim_end_matches('/')).await?;
        }
        self.revoke_one(hash).await
    }

    async fn revoke_one(&self, hash: &str) -> Result<Option<TokenEntry>> {
        // Under the uses lock, so a use taken concurrently cannot write the entry back.
        let _guard = self.uses.lock().await;
        let _w = self.parsed.begin_write(hash);
        let entry: Option<TokenEntry> = self.view.get_json(&format!("id/{hash}")).await?;
        let mut ops = vec![BarrierOp::Delete(format!("id/{hash}"))];
        let children = self
            .view
            .keys_with_prefix(&format!("parent/{hash}/"))
            .await?;
        ops.extend(children.into_iter().map(BarrierOp::Delete));
        if let Some(e) = &entry {
            ops.push(BarrierOp::Delete(format!("accessor/{}", e.accessor)));
            if let Some(p) = &e.parent {
                ops.push(BarrierOp::Delete(format!("parent/{p}/{hash}")));
            }
            if let Some(lease) = e.lease_id() {
                ops.push(BarrierOp::Delete(format!("lease/{lease}")));
            }
        }
        self.view.write_batch(ops).await?;
        Ok(entry)
    }

    /// Removes expired tokens (with their subtrees), dangling accessors and
    /// parent links. Returns the hashes of the tokens removed: the caller
    /// revokes their leases and cubbyholes (`Core::after_token_revoked`).
    pub async fn tidy(&self) -> Result<Vec<String>> {
        let at = now().timestamp();
        let mut removed = Vec::new();
        for key in self.view.list("id/").await? {
            let entry: Option<TokenEntry> = self.view.get_json(&format!("id/{key}")).await?;
            if let Some(e) = entry {
                if e.expired(at) || e.uses_exhausted {
                    removed.extend(
                        self.revoke_tree(&e.id_hash)
                            .await?
                            .into_iter()
                            .map(|t| t.id_hash),
                    );
                }
            }
        }
        for accessor in self.view.list("accessor/").await? {
            let hash: Option<String> = self.view.get_json(&format!("accessor/{accessor}")).await?;
            let live = match &hash {
                Some(h) => self.view.get(&format!("id/{h}")).await?.is_some(),
                None => false,
            };
            if !live {
                self.view.delete(&format!("accessor/{accessor}")).await?;
            }
        }
        for key in self.view.keys_with_prefix("lease/").await? {
            let record: Option<TokenLease> = self.view.get_json(&key).await?;
            let live = match &record {
                Some(r) => self.view.get(&format!("id/{}", r.token)).await?.is_some(),
                None => false,
            };
            if !live {
                self.view.delete(&key).await?;
            }
        }
        for parent in self.view.list("parent/").await? {
            let parent = parent.trim_end_matches('/');
            if self.view.get(&format!("id/{parent}")).await?.is_none() {
                for child in self.view.list(&format!("parent/{parent}/")).await? {
                    let child = child.trim_end_matches('/');
                    let entry: Option<TokenEntry> =
                        self.view.get_json(&format!("id/{child}")).await?;
                    if let Some(e) = entry {
                        // A child whose parent vanished is revoked, as Vault's tidy does.
                        removed.extend(
                            self.revoke_tree(&e.id_hash)
                                .await?
                                .into_iter()
                                .map(|t| t.id_hash),
                        );
                    }
                }
                self.view
                    .delete_prefix(&format!("parent/{parent}/"))
                    .await?;
            }
        }
        Ok(removed)
    }

    /// Stores a token role.
    pub async fn put_role(&self, name: &str, role: &Value) -> Result<()> {
        self.view.put_json(&format!("role/{name}"), role).await
    }

    /// Reads a token role.
    pub async fn get_role(&self, name: &str) -> Result<Option<Value>> {
        self.view.get_json(&format!("role/{name}")).await
    }

    /// Deletes a token role.
    pub async fn delete_role(&self, name: &str) -> Result<()> {
        self.view.delete(&format!("role/{name}")).await
    }

    /// Names of token roles.
    pub async fn list_roles(&self) -> Result<Vec<String>> {
        self.view.list("role/").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barrier::Barrier;

    fn store() -> TokenStore {
        let barrier = Arc::new(Barrier::new(Arc::new(coffer_storage::MemoryBackend::new())));
        barrier.unseal(coffer_crypto::Keyring::new(0));
        TokenStore::new(View::new(barrier, "sys/token/"))
    }

    fn entry(hash: &str, parent: Option<&str>, expire: Option<i64>) -> TokenEntry {
        TokenEntry {
            id_hash: hash.into(),
            accessor: format!("acc-{hash}"),
            policies: vec!["default".into()],
            parent: parent.map(str::to_string),
            display_name: "token".into(),
            meta: BTreeMap::new(),
            num_uses: 0,
            creation_time: 0,
            ttl: 0,
            expire_time: expire,
            path: "auth/token/create".into(),
            renewable: false,
            explicit_max_ttl: 0,
            period: 0,
            max_expire_time: None,
            bound_cidrs: Vec::new(),
            role: None,
            uses_exhausted: false,
            entity_id: String::new(),
        }
    }

    #[tokio::test]
    async fn a_token_is_valid_only_while_every_ancestor_is() {
        let s = store();
        let later = now().timestamp() + 3600;
        s.store(&entry("a", None, Some(later))).await.unwrap();
        s.store(&entry("b", Some("a"), Some(later))).await.unwrap();
        s.store(&entry("c", Some("b"), Some(later))).await.unwrap();
        assert!(s.lookup_hash("c").await.unwrap().is_some());
        // The grandparent expires: the whole tree is refused at once.
        s.renew("a", now().timestamp() - 1).await.unwrap();
        assert!(s.lookup_hash("a").await.unwrap().is_none());
        assert!(s.lookup_hash("b").await.unwrap().is_none());
        assert!(s.lookup_hash("c").await.unwrap().is_none());
        // A child whose parent is gone is refused too.
        s.store(&entry("d", Some("missing"), Some(later)))
            .await
            .unwrap();
        assert!(s.lookup_hash("d").await.unwrap().is_none());
        // Orphaned children (revoke-orphan) stay valid.
        s.store(&entry("e", Some("b"), Some(later))).await.unwrap();
        s.revoke_orphan("b").await.unwrap();
        let e = s.lookup_hash("e").await.unwrap().expect("orphan valid");
        assert!(e.parent.is_none());
    }

    #[tokio::test]
    async fn a_token_and_its_lease_are_written_and_removed_together() {
        let s = store();
        let later = now().timestamp() + 3600;
        let mut e = entry("t1", None, Some(later));
        e.path = "auth/userpass/login/alice".into();
        s.store(&e).await.unwrap();
        let id = e.lease_id().unwrap();
        assert!(id.starts_with("auth/userpass/login/alice/h"));
        let (found, record) = s.lease(&id).await.unwrap().expect("lease");
        assert_eq!(found.id_hash, "t1");
        assert!(record.last_renewal.is_none());
        s.renew("t1", later + 60).await.unwrap().expect("renewed");
        assert!(s
            .lease(&id)
            .await
            .unwrap()
            .unwrap()
            .1
            .last_renewal
            .is_some());
        assert_eq!(
            s.lease_list("auth/userpass/login/").await.unwrap(),
            vec!["alice/"]
        );
        s.revoke_tree("t1").await.unwrap();
        assert!(s.lease(&id).await.unwrap().is_none());
        assert!(s.view.get(&format!("lease/{id}")).await.unwrap().is_none());
        // A renewal after revocation writes nothing back.
        assert!(s.renew("t1", later + 120).await.unwrap().is_none());
        assert!(s.view.get(&format!("lease/{id}")).await.unwrap().is_none());
        assert!(s.view.get("id/t1").await.unwrap().is_none());
        // Tokens without a TTL have no lease; odd ids find nothing.
        let root = entry("r", None, None);
        assert!(root.lease_id().is_none());
        for bad in ["", "auth//x", "auth/../id/t1", "auth/./x"] {
            assert!(s.lease(bad).await.unwrap().is_none(), "{bad}");
        }
        // A dangling record (from storage written by hand) is tidied away.
        s.view
            .put_json(
                "lease/auth/token/create/hdangling",
                &TokenLease {
                    token: "gone".into(),
                    last_renewal: None,
                },
            )
            .await
            .unwrap();
        s.tidy().await.unwrap();
        assert!(s
            .view
            .get("lease/auth/token/create/hdangling")
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn tokens_stored_without_a_lease_get_one_at_the_first_pass_after_unseal() {
        let s = store();
        let later = now().timestamp() + 3600;
        // Written as a store from before token leases holds it: the entry only.
        let mut old = entry("old", None, Some(later));
        old.path = "auth/userpass/login/alice".into();
        s.view.put_json("id/old", &old).await.unwrap();
        let root = entry("root", None, None);
        s.view.put_json("id/root", &root).await.unwrap();
        let id = old.lease_id().unwrap();
        assert!(s.lease(&id).await.unwrap().is_none());
        s.load_expiry_index().await.unwrap();
        let (found, _) = s.lease(&id).await.unwrap().expect("lease backfilled");
        assert_eq!(found.id_hash, "old");
        assert_eq!(
            s.leases_with_prefix("auth/userpass/login/alice/")
                .await
                .unwrap(),
            vec![(id.clone(), "old".to_string())]
        );
        // Tokens without a TTL get none; a second pass changes nothing.
        assert!(s.view.keys_with_prefix("lease/").await.unwrap().len() == 1);
        s.load_expiry_index().await.unwrap();
        assert!(s.view.keys_with_prefix("lease/").await.unwrap().len() == 1);
        // Revoking the token takes its backfilled lease with it.
        s.revoke_tree("old").await.unwrap();
        assert!(s.view.keys_with_prefix("lease/").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_expiry_index_holds_stored_and_renewed_tokens() {
        let s = store();
        let t = now().timestamp() + 60;
        s.store(&entry("x", None, Some(t))).await.unwrap();
        s.store(&entry("root", None, None)).await.unwrap();
        s.renew("x", t + 60).await.unwrap();
        let idx: Vec<_> = s.expiring.lock().iter().cloned().collect();
        assert_eq!(idx, vec![(t, "x".to_string()), (t + 60, "x".to_string())]);
        s.clear_cache();
        assert!(s.expiring.lock().is_empty());
        s.load_expiry_index().await.unwrap();
        let idx: Vec<_> = s.expiring.lock().iter().cloned().collect();
        assert_eq!(idx, vec![(t + 60, "x".to_string())]);
    }

    #[tokio::test]
    async fn uses_are_taken_one_at_a_time_and_never_given_back() {
        let s = store();
        let mut e = entry("u", None, Some(now().timestamp() + 3600));
        e.num_uses = 2;
        s.store(&e).await.unwrap();
        let first = s.take_use("u").await.unwrap().expect("first use");
        assert_eq!((first.num_uses, first.uses_exhausted), (1, false));
        // A renewal built on the entry read before that use keeps the count.
        let renewed = s
            .renew("u", now().timestamp() + 7200)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(renewed.num_uses, 1);
        let last = s.take_use("u").await.unwrap().expect("last use");
        assert!(last.uses_exhausted);
        assert!(s.take_use("u").await.unwrap().is_none());
        assert!(s
            .lookup_hash("u")
            .await
            .unwrap()
            .is_some_and(|e| e.uses_exhausted));
        // Unlimited tokens are answered as they are, nothing written.
        s.store(&entry("free", None, None)).await.unwrap();
        let before = s.view.get_versioned("id/free").await.unwrap().1;
        assert!(s.take_use("free").await.unwrap().is_some());
        assert_eq!(s.view.get_versioned("id/free").await.unwrap().1, before);
    }
}

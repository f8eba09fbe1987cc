//! The snapshot archive that `sys/storage/raft/snapshot` streams out and
//! takes back: a gzip'd tar, as Vault's, so `vault`/`bao operator raft
//! snapshot save` accept it (they check that its last member,
//! `SHA256SUMS.sealed`, is there and not empty).
//!
//! | member | holds |
//! | --- | --- |
//! | `meta.json` | [`Meta`]: format and version, the store's identity, the key count, the size of `state.bin` |
//! | `state.bin` | every stored entry in key order, as the backend holds it (ciphertext; the seal configuration and the sealed keyring are entries too): per entry `key length (u32 BE) · key · value length (u32 BE) · value` |
//! | `SHA256SUMS` | the SHA-256 of `meta.json` and of `state.bin`, as `sha256sum` prints them |
//! | `SHA256SUMS.sealed` | `SHA256SUMS` sealed (AES-256-GCM) with the store's keyring |
//!
//! Every value in it is ciphertext, and opens only with the unseal keys of
//! the store it came from. The storage keys are not encrypted (as in the
//! store itself, and in Vault's): they name secret paths, token accessors
//! and token-id digests, so a snapshot file is kept as carefully as the
//! database. A restore checks every
//! member (order, sizes, frames, strictly ascending keys, the count, both
//! checksums, the gzip trailer) while it spools `state.bin` to an unlinked
//! temporary file, before anything in the store is touched; an ordinary
//! restore also needs the sealed checksums to open with this store's
//! keyring and the identity to match. Entries are then replayed from the
//! spool, hashed again on the way, and the import commits only if that
//! hash is still the verified one.
//!
//! Writing and reading run on blocking threads (flate2 and tar are
//! synchronous) between bounded channels: memory stays bounded by a few
//! batches of entries, whatever the size of the store.

use std::io::{self, BufReader, Read, Seek, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use coffer_crypto::hash::Sha256Stream;
use coffer_crypto::Keyring;
use coffer_storage::snapshot::{Batcher, Entry, ImportItem};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::request::Chunk;
use crate::{Error, Result};

/// The answer's content type, as Vault's.
pub const CONTENT_TYPE: &str = "application/gzip";
/// `meta.json`'s `format`.
pub const FORMAT: &str = "coffer-snapshot";
/// The archive layout this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Associated data of the sealed checksums.
pub const SEALED_AAD: &[u8] = b"coffer/snapshot/SHA256SUMS";

const META: &str = "meta.json";
const STATE: &str = "state.bin";
const SUMS: &str = "SHA256SUMS";
const SEALED: &str = "SHA256SUMS.sealed";
/// Bytes of framing around each entry of `state.bin`.
const FRAME_BYTES: u64 = 8;
/// Largest `meta.json`, `SHA256SUMS` and `SHA256SUMS.sealed` accepted.
const SMALL_MEMBER: u64 = 64 * 1024;
/// Largest single stored value a snapshot may carry.
const MAX_VALUE: u64 = 1 << 30;
/// Bytes handed to the HTTP layer at a time.
const OUT_CHUNK: usize = 64 * 1024;
/// How long a download may read nothing before the snapshot is abandoned
/// (its read transaction, which holds the store's old pages, ends with it).
pub(crate) const SEND_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// `meta.json`: what the snapshot is, readable without any key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Meta {
    /// Always [`FORMAT`].
    pub format: String,
    /// The layout version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// The identity of the store it was taken from ([`store_id`]).
    pub store_id: String,
    /// How many entries `state.bin` holds.
    pub keys: u64,
    /// The size of `state.bin` in bytes.
    pub state_bytes: u64,
    /// When it was taken (RFC 3339).
    pub created_at: String,
    /// The Coffer version that took it.
    pub coffer_version: String,
    /// The storage backend it was taken from (`sqlite`, `postgresql`, ...).
    pub storage: String,
}

/// The identity of a store: an HMAC, under its keyring's first term (which
/// rotations keep and rekeys carry over), of a fixed label. The same for
/// every node of a store and for its whole life; another store's differs.
/// It reveals nothing of the key.
pub fn store_id(keyring: &Keyring) -> String {
    let mac = match keyring.terms().first() {
        Some(first) => {
            coffer_crypto::hash::hmac_sha256_hex(first.key.as_bytes(), b"coffer/store-id")
        }
        None => return String::new(),
    };
    mac[..32].to_string()
}

/// The size `state.bin` has for `count` entries of `bytes` bytes.
pub fn state_size(count: u64, bytes: u64) -> u64 {
    bytes.saturating_add(count.saturating_mul(FRAME_BYTES))
}

/// Whether `path` (below `/v1/`) is a snapshot route: its body and answer
/// are streamed, and the request timeout does not apply (a transfer is
/// bounded by its idle time instead).
pub fn is_route(path: &str) -> bool {
    matches!(
        path.trim_end_matches('/'),
        "sys/storage/raft/snapshot" | "sys/storage/raft/snapshot-force"
    )
}

fn invalid(msg: impl std::fmt::Display) -> Error {
    Error::bad(format!("invalid snapshot: {msg}"))
}

// ---------------------------------------------------------------- writing

/// A `Write` that hands its bytes, in chunks, to the HTTP layer. Once
/// `aborted` is set it refuses to write, so nothing the archive writers
/// flush while being dropped after a failure reaches the client.
pub(crate) struct ChannelWriter {
    tx: mpsc::Sender<Chunk>,
    buf: Vec<u8>,
    aborted: Arc<AtomicBool>,
    idle: std::time::Duration,
}

impl ChannelWriter {
    /// A writer into `tx`.
    /// A writer into `tx` that gives up when the reader takes nothing for
    /// `idle` (a client that stopped reading).
    pub(crate) fn new(
        tx: mpsc::Sender<Chunk>,
        aborted: Arc<AtomicBool>,
        idle: std::time::Duration,
    ) -> Self {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(OUT_CHUNK),
            aborted,
            idle,
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.aborted.load(Ordering::SeqCst) {
            return Err(io::Error::other("snapshot aborted"));
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut item: Chunk = Ok(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(OUT_CHUNK),
        ));
        let deadline = std::time::Instant::now() + self.idle;
        loop {
            match self.tx.try_send(item) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the client stopped reading the snapshot",
                    ))
                }
                Err(mpsc::error::TrySendError::Full(back)) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the client read nothing of the snapshot for too long",
                        ));
                    }
                    item = back;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
        }
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.aborted.load(Ordering::SeqCst) {
            return Err(io::Error::other("snapshot aborted"));
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() >= OUT_CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// `state.bin` as a `Read`: frames the entries an export sends, hashing
/// them, and fails unless exactly the announced count and size come.
struct Frames<'a> {
    entries: &'a mut mpsc::Receiver<coffer_storage::Result<Vec<Entry>>>,
    buf: Vec<u8>,
    pos: usize,
    hash: Sha256Stream,
    count: u64,
    bytes: u64,
    want_count: u64,
    want_bytes: u64,
}

impl Read for Frames<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            let batch = match self.entries.blocking_recv() {
                Some(Ok(batch)) => batch,
                Some(Err(e)) => return Err(io::Error::other(e.to_string())),
                None if self.count == self.want_count && self.bytes == self.want_bytes => {
                    return Ok(0)
                }
                None => {
                    return Err(io::Error::other(
                        "the export ended before every announced entry was read",
                    ))
                }
            };
            for e in batch {
                let (klen, vlen) = match (u32::try_from(e.key.len()), u32::try_from(e.value.len()))
                {
                    (Ok(k), Ok(v)) => (k, v),
                    _ => return Err(io::Error::other(format!("entry {:?} is too large", e.key))),
                };
                self.buf.extend_from_slice(&klen.to_be_bytes());
                self.buf.extend_from_slice(e.key.as_bytes());
                self.buf.extend_from_slice(&vlen.to_be_bytes());
                self.buf.extend_from_slice(&e.value);
                self.count += 1;
            }
            self.bytes += self.buf.len() as u64;
            if self.count > self.want_count || self.bytes > self.want_bytes {
                return Err(io::Error::other(
                    "the export produced more than it announced",
                ));
            }
            self.hash.update(&self.buf);
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn member_header(name: &str, size: u64, mtime: u64) -> io::Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name)?;
    h.set_size(size);
    h.set_mode(0o600);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(h)
}

/// Writes the whole archive to `out` (a blocking thread's work): `meta`,
/// then `state.bin` framed from `entries` (exactly `meta.keys` entries and
/// `meta.state_bytes` bytes, or it fails), then the checksums, the last
/// sealed by `seal`. On failure `aborted` is set before anything is
/// dropped, so a [`ChannelWriter`] sends nothing more.
pub(crate) fn write_archive<W: Write>(
    out: W,
    meta: &Meta,
    entries: &mut mpsc::Receiver<coffer_storage::Result<Vec<Entry>>>,
    seal: &dyn Fn(&[u8]) -> Vec<u8>,
    aborted: &AtomicBool,
) -> io::Result<()> {
    let result = (|| {
        let mtime = chrono::Utc::now().timestamp().max(0) as u64;
        let meta_json = serde_json::to_vec_pretty(meta).map_err(io::Error::other)?;
        let gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        tar.append(
            &member_header(META, meta_json.len() as u64, mtime)?,
            meta_json.as_slice(),
        )?;
        let mut frames = Frames {
            entries,
            buf: Vec::new(),
            pos: 0,
            hash: Sha256Stream::new(),
            count: 0,
            bytes: 0,
            want_count: meta.keys,
            want_bytes: meta.state_bytes,
        };
        tar.append(&member_header(STATE, meta.state_bytes, mtime)?, &mut frames)?;
        // `append` copies to the end of the reader: check it ended where
        // the header said (the reader fails past it, or short of it).
        if frames.count != meta.keys || frames.bytes != meta.state_bytes {
            return Err(io::Error::other("the export did not match its totals"));
        }
        let state_sha = frames.hash.finish();
        let sums = sums_text(&coffer_crypto::hash::sha256(&meta_json), &state_sha);
        tar.append(
            &member_header(SUMS, sums.len() as u64, mtime)?,
            sums.as_bytes(),
        )?;
        let sealed = seal(sums.as_bytes());
        tar.append(
            &member_header(SEALED, sealed.len() as u64, mtime)?,
            sealed.as_slice(),
        )?;
        let mut out = tar.into_inner()?.finish()?;
        out.flush()
    })();
    if result.is_err() {
        aborted.store(true, Ordering::SeqCst);
    }
    result
}

/// `SHA256SUMS`, in `sha256sum`'s format.
fn sums_text(meta: &[u8; 32], state: &[u8; 32]) -> String {
    format!(
        "{}  {META}\n{}  {STATE}\n",
        hex::encode(meta),
        hex::encode(state)
    )
}

// ---------------------------------------------------------------- reading

/// A `Read` over the chunks of a streamed request body.
pub(crate) struct ChannelReader {
    rx: mpsc::Receiver<Chunk>,
    buf: Vec<u8>,
    pos: usize,
}

impl ChannelReader {
    /// A reader of `rx`.
    pub(crate) fn new(rx: mpsc::Receiver<Chunk>) -> Self {
        ChannelReader {
            rx,
            buf: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => {
                    self.buf = chunk;
                    self.pos = 0;
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A snapshot that passed every check that needs no key, its `state.bin`
/// spooled to a temporary file.
pub(crate) struct Verified {
    /// Its `meta.json`.
    pub meta: Meta,
    /// Its `SHA256SUMS`, as sent.
    pub sums: Vec<u8>,
    /// Its `SHA256SUMS.sealed`.
    pub sealed: Vec<u8>,
    /// The SHA-256 of `state.bin` (as `SHA256SUMS` names it).
    state_sha: [u8; 32],
    /// `state.bin`'s bytes (an unlinked temporary file).
    spool: std::fs::File,
}

/// Reads `state.bin` frames from a `Read`, checking that each lies within
/// the member, that keys are UTF-8 and strictly ascending.
struct FrameReader<R> {
    inner: R,
    remaining: u64,
    last: Option<String>,
}

impl<R: Read> FrameReader<R> {
    fn new(inner: R, size: u64) -> Self {
        FrameReader {
            inner,
            remaining: size,
            last: None,
        }
    }

    /// The next `n` bytes. The buffer grows with what arrives, so a length
    /// that lies costs no more memory than the bytes actually sent.
    fn take(&mut self, n: u64, what: &str) -> Result<Vec<u8>> {
        if n > self.remaining {
            return Err(invalid(format!("{STATE}: {what} runs past the end")));
        }
        let mut buf = Vec::new();
        (&mut self.inner)
            .take(n)
            .read_to_end(&mut buf)
            .map_err(|e| read_error(STATE, &e))?;
        if buf.len() as u64 != n {
            return Err(invalid(format!("{STATE} is truncated")));
        }
        self.remaining -= n;
        Ok(buf)
    }

    fn length(&mut self, what: &str) -> Result<u64> {
        let b = self.take(4, what)?;
        Ok(u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
    }

    /// The next entry, or `None` at the member's end.
    fn next(&mut self) -> Result<Option<Entry>> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let klen = self.length("a key length")?;
        let key = String::from_utf8(self.take(klen, "a key")?)
            .map_err(|_| invalid(format!("{STATE}: a key is not UTF-8")))?;
        if key.is_empty() || self.last.as_ref().is_some_and(|l| *l >= key) {
            return Err(invalid(format!(
                "{STATE}: keys are not in strictly ascending order at {key:?}"
            )));
        }
        let vlen = self.length("a value length")?;
        if vlen > MAX_VALUE {
            return Err(invalid(format!(
                "{STATE}: the value of {key:?} is too large"
            )));
        }
        let value = self.take(vlen, "a value")?;
        self.last = Some(key.clone());
        Ok(Some(Entry { key, value }))
    }
}

/// What a failed read of a member means for the client: a corrupt or
/// truncated upload (400), never a server fault.
fn read_error(member: &str, e: &io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => invalid(format!("{member} is truncated")),
        _ => invalid(format!("{member} could not be read ({e})")),
    }
}

/// A `Read` that copies what it reads into the spool and hashes it.
struct Tee<'a, R, S> {
    inner: R,
    spool: &'a mut S,
    hash: Sha256Stream,
    spool_failed: Option<io::Error>,
}

impl<R: Read, S: Write> Read for Tee<'_, R, S> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        self.hash.update(&out[..n]);
        if let Err(e) = self.spool.write_all(&out[..n]) {
            let kept = io::Error::new(e.kind(), e.to_string());
            self.spool_failed = Some(e);
            return Err(kept);
        }
        Ok(n)
    }
}

/// The archive's next member, which must be the regular file `name`.
fn member<'a, R: Read>(entries: &mut tar::Entries<'a, R>, name: &str) -> Result<tar::Entry<'a, R>> {
    let entry = entries
        .next()
        .ok_or_else(|| {
            invalid(format!(
                "{name} is missing (the file is truncated or not a Coffer snapshot)"
            ))
        })?
        .map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => invalid("the file is truncated"),
            _ => invalid(format!("not a gzip'd tar archive ({e})")),
        })?;
    let path = entry.path_bytes();
    if path.as_ref() != name.as_bytes() {
        return Err(invalid(format!(
            "expected {name}, found {:?}",
            String::from_utf8_lossy(&path)
        )));
    }
    drop(path);
    if entry.header().entry_type() != tar::EntryType::Regular {
        return Err(invalid(format!("{name} is not a regular file")));
    }
    Ok(entry)
}

/// Reads a small member whole (at most [`SMALL_MEMBER`] bytes).
fn small<R: Read>(entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Vec<u8>> {
    let size = entry.size();
    if size > SMALL_MEMBER {
        return Err(invalid(format!("{name} is too large ({size} bytes)")));
    }
    let mut buf = Vec::with_capacity(size as usize);
    entry
        .read_to_end(&mut buf)
        .map_err(|e| read_error(name, &e))?;
    if buf.len() as u64 != size {
        return Err(invalid(format!("{name} is truncated")));
    }
    Ok(buf)
}

/// Reads and checks a whole archive from `input` (a blocking thread's
/// work), spooling `state.bin` into `spool` (an unlinked temporary file).
/// Every failure of the upload itself is a 400 naming what is wrong; only
/// a failing spool is a 500.
/// `accept` judges the metadata (the archive's first member) before any
/// of the state is read or spooled: a snapshot of another store, or one
/// larger than the spool can hold, is refused before it costs anything.
pub(crate) fn read_archive<R: Read>(
    input: R,
    mut spool: std::fs::File,
    accept: &dyn Fn(&Meta) -> Result<()>,
) -> Result<Verified> {
    let checked = check(input, &mut spool, accept)?;
    spool
        .rewind()
        .map_err(|e| Error::Internal(format!("snapshot restore: rewinding the spool file: {e}")))?;
    Ok(Verified {
        meta: checked.meta,
        sums: checked.sums,
        sealed: checked.sealed,
        state_sha: checked.state_sha,
        spool,
    })
}

/// Checks a whole snapshot file as a restore would, short of the keys
/// (`coffer operator snapshot save` checks what it received before keeping
/// it): members, frames, count, checksums, gzip trailer. Its metadata, or a
/// 400-class error naming what is wrong.
pub fn inspect<R: Read>(input: R) -> Result<Meta> {
    Ok(check(input, &mut io::sink(), &|_| Ok(()))?.meta)
}

/// What [`check`] found in a well-formed archive.
struct Checked {
    meta: Meta,
    sums: Vec<u8>,
    sealed: Vec<u8>,
    state_sha: [u8; 32],
}

/// The checks of [`read_archive`], with `state.bin` copied into `spool`.
fn check<R: Read, S: Write>(
    input: R,
    spool: &mut S,
    accept: &dyn Fn(&Meta) -> Result<()>,
) -> Result<Checked> {
    let mut gz = flate2::read::GzDecoder::new(input);
    let (meta, meta_json, state_sha, state_keys, sums, sealed) = {
        let mut archive = tar::Archive::new(&mut gz);
        let mut entries = archive
            .entries()
            .map_err(|e| read_error("the archive", &e))?;
        let mut next = |name: &str| member(&mut entries, name);

        let meta_json = small(&mut next(META)?, META)?;
        let meta = parse_meta(&meta_json)?;
        accept(&meta)?;

        let mut state = next(STATE)?;
        if state.size() != meta.state_bytes {
            return Err(invalid(format!(
                "{STATE} holds {} bytes, {META} says {}",
                state.size(),
                meta.state_bytes
            )));
        }
        let mut tee = Tee {
            inner: &mut state,
            spool,
            hash: Sha256Stream::new(),
            spool_failed: None,
        };
        let mut keys: u64 = 0;
        let mut essentials = (false, false);
        let parsed = (|| {
            let mut frames = FrameReader::new(BufReader::new(&mut tee), meta.state_bytes);
            while let Some(entry) = frames.next()? {
                keys += 1;
                match entry.key.as_str() {
                    crate::seal::KEYRING_KEY => essentials.0 = true,
                    crate::seal::SEAL_CONFIG_KEY => essentials.1 = true,
                    _ => {}
                }
            }
            Ok::<(), Error>(())
        })();
        if let Some(e) = tee.spool_failed.take() {
            return Err(Error::Internal(format!(
                "snapshot restore: writing the spool file failed: {e}"
            )));
        }
        parsed?;
        let state_sha = tee.hash.finish();
        if keys != meta.keys {
            return Err(invalid(format!(
                "{STATE} holds {keys} entries, {META} says {}",
                meta.keys
            )));
        }
        if !(essentials.0 && essentials.1) {
            return Err(invalid(format!(
                "it holds no keyring or no seal configuration ({} and {} are missing)",
                crate::seal::KEYRING_KEY,
                crate::seal::SEAL_CONFIG_KEY
            )));
        }
        drop(state);

        let sums = small(&mut next(SUMS)?, SUMS)?;
        let sealed = small(&mut next(SEALED)?, SEALED)?;
        if sealed.is_empty() {
            return Err(invalid(format!("{SEALED} is empty")));
        }
        match entries.next() {
            None => {}
            Some(Ok(extra)) => {
                let name = String::from_utf8_lossy(&extra.path_bytes()).into_owned();
                return Err(invalid(format!(
                    "unexpected member {name:?} after {SEALED}"
                )));
            }
            Some(Err(e)) => return Err(read_error("the archive", &e)),
        }
        (meta, meta_json, state_sha, keys, sums, sealed)
    };
    // The gzip trailer (CRC and length) is checked only once it is read.
    io::copy(&mut gz, &mut io::sink()).map_err(|e| read_error("the gzip stream", &e))?;
    let want = sums_text(&coffer_crypto::hash::sha256(&meta_json), &state_sha);
    if !coffer_crypto::hash::constant_time_eq(want.as_bytes(), &sums) {
        return Err(invalid(format!(
            "{SUMS} does not match the contents (the file is corrupt)"
        )));
    }
    debug_assert_eq!(state_keys, meta.keys);
    Ok(Checked {
        meta,
        sums,
        sealed,
        state_sha,
    })
}

/// Parses `meta.json`, refusing another format or a version this build
/// does not read.
fn parse_meta(bytes: &[u8]) -> Result<Meta> {
    #[derive(Deserialize)]
    struct Probe {
        format: Option<String>,
        version: Option<u32>,
    }
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|_| invalid(format!("{META} is not valid JSON")))?;
    if probe.format.as_deref() != Some(FORMAT) {
        return Err(invalid(format!("{META} does not name the {FORMAT} format")));
    }
    match probe.version {
        Some(FORMAT_VERSION) => {}
        Some(v) => {
            return Err(invalid(format!(
                "format version {v} is not supported (this Coffer reads version {FORMAT_VERSION})"
            )))
        }
        None => return Err(invalid(format!("{META} has no version"))),
    }
    serde_json::from_slice(bytes).map_err(|_| invalid(format!("{META} lacks a field")))
}

impl Verified {
    /// Whether this snapshot's sealed checksums open with `keyring` (the
    /// store it came from, or one sharing its keys).
    pub(crate) fn opens_with(&self, keyring: &Keyring) -> bool {
        keyring
            .open(&self.sealed, SEALED_AAD)
            .is_ok_and(|plain| coffer_crypto::hash::constant_time_eq(&plain, &self.sums))
    }

    /// Sends the spooled entries to an import, batch by batch (a blocking
    /// thread's work), hashing them again; sends the commit only if the
    /// hash and the count are still the verified ones. Returns the count.
    pub(crate) fn replay(mut self, items: &mpsc::Sender<ImportItem>) -> Result<u64> {
        let size = self.meta.state_bytes;
        let mut hashed = Hashing {
            inner: BufReader::new(&mut self.spool),
            hash: Sha256Stream::new(),
        };
        let mut frames = FrameReader::new(&mut hashed, size);
        let mut batcher = Batcher::default();
        let mut count: u64 = 0;
        let gone = || Error::Internal("snapshot restore: the import stopped".into());
        while let Some(entry) = frames.next()? {
            count += 1;
            if let Some(batch) = batcher.push(entry) {
                items
                    .blocking_send(ImportItem::Batch(batch))
                    .map_err(|_| gone())?;
            }
        }
        if let Some(batch) = batcher.take() {
            items
                .blocking_send(ImportItem::Batch(batch))
                .map_err(|_| gone())?;
        }
        drop(frames);
        if count != self.meta.keys || hashed.hash.finish() != self.state_sha {
            return Err(Error::Internal(
                "snapshot restore: the spooled snapshot changed after it was verified".into(),
            ));
        }
        items
            .blocking_send(ImportItem::Commit)
            .map_err(|_| gone())?;
        Ok(count)
    }
}

/// A `Read` that hashes what passes through.
struct Hashing<R> {
    inner: R,
    hash: Sha256Stream,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        self.hash.update(&out[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_that_takes_nothing_ends_the_download() {
        let (tx, _rx) = mpsc::channel::<Chunk>(1);
        let mut w = ChannelWriter::new(
            tx,
            Arc::new(AtomicBool::new(false)),
            std::time::Duration::from_millis(50),
        );
        let block = vec![0u8; OUT_CHUNK];
        w.write_all(&block).unwrap(); // the channel holds one chunk
        let err = w.write_all(&block).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    }

    fn entries(n: usize) -> Vec<Entry> {
        let mut out: Vec<Entry> = (0..n)
            .map(|i| Entry {
                key: format!("logical/x/{i:05}"),
                value: vec![i as u8; i % 300],
            })
            .collect();
        out.push(Entry {
            key: crate::seal::KEYRING_KEY.into(),
            value: b"sealed-keyring".to_vec(),
        });
        out.push(Entry {
            key: crate::seal::SEAL_CONFIG_KEY.into(),
            value: b"{}".to_vec(),
        });
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    fn archive(list: &[Entry], keyring: &Keyring) -> Vec<u8> {
        let bytes: u64 = list.iter().map(|e| e.size() as u64).sum();
        let meta = Meta {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            store_id: store_id(keyring),
            keys: list.len() as u64,
            state_bytes: state_size(list.len() as u64, bytes),
            created_at: "2026-01-01T00:00:00Z".into(),
            coffer_version: "test".into(),
            storage: "inmem".into(),
        };
        let (tx, mut rx) = mpsc::channel(4);
        let batches: Vec<Vec<Entry>> = list.chunks(100).map(|c| c.to_vec()).collect();
        std::thread::spawn(move || {
            for b in batches {
                let _ = tx.blocking_send(Ok(b));
            }
        });
        let mut out = Vec::new();
        let kr = keyring.clone();
        write_archive(
            &mut out,
            &meta,
            &mut rx,
            &move |s: &[u8]| kr.seal(s, SEALED_AAD),
            &AtomicBool::new(false),
        )
        .unwrap();
        out
    }

    fn read(bytes: &[u8]) -> Result<Verified> {
        read_archive(bytes, tempfile::tempfile().unwrap(), &|_| Ok(()))
    }

    #[test]
    fn an_archive_round_trips_through_the_spool() {
        let keyring = Keyring::new(0);
        let list = entries(700);
        let bytes = archive(&list, &keyring);
        let v = read(&bytes).unwrap();
        assert_eq!(v.meta.keys, list.len() as u64);
        assert!(v.opens_with(&keyring));
        assert!(!v.opens_with(&Keyring::new(0)));
        let (tx, mut rx) = mpsc::channel(2);
        let replay = std::thread::spawn(move || v.replay(&tx));
        let mut got = Vec::new();
        let mut committed = false;
        while let Some(item) = rx.blocking_recv() {
            match item {
                ImportItem::Batch(b) => got.extend(b),
                ImportItem::Commit => committed = true,
            }
        }
        assert_eq!(replay.join().unwrap().unwrap(), list.len() as u64);
        assert!(committed);
        assert_eq!(got, list);
    }

    #[test]
    fn the_archive_is_what_the_vault_cli_checks_for() {
        let keyring = Keyring::new(0);
        let bytes = archive(&entries(3), &keyring);
        let mut names = Vec::new();
        let mut a = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            names.push((
                String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                e.size(),
            ));
        }
        let last = names.last().unwrap();
        assert_eq!(last.0, SEALED);
        assert!(last.1 > 0);
        assert_eq!(names[0].0, META);
    }

    #[test]
    fn every_truncation_and_flipped_byte_is_refused_as_bad_input() {
        let keyring = Keyring::new(0);
        let bytes = archive(&entries(40), &keyring);
        for cut in [
            0,
            1,
            10,
            bytes.len() / 3,
            bytes.len() / 2,
            bytes.len() - 9,
            bytes.len() - 1,
        ] {
            let err = read(&bytes[..cut])
                .err()
                .expect("a truncated file must be refused");
            assert_eq!(err.status(), 400, "cut at {cut}: {err}");
        }
        let inflate = |b: &[u8]| {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(b)
                .read_to_end(&mut out)
                .ok()
                .map(|_| out)
        };
        let original = inflate(&bytes);
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x5a;
            match read(&flipped) {
                Err(e) => assert_eq!(e.status(), 400, "flip at {at}: {e}"),
                // Some bits change nothing that is stored: the gzip header's
                // mtime and OS bytes, unused bits of a deflate block.
                Ok(_) => assert_eq!(
                    inflate(&flipped),
                    original,
                    "flip at {at} changed the contents and was accepted"
                ),
            }
        }
    }

    #[test]
    fn a_future_version_is_named() {
        let mut meta = serde_json::json!({"format": FORMAT, "version": 9});
        let err = parse_meta(meta.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("version 9"), "{err}");
        meta["format"] = "other".into();
        assert!(parse_meta(meta.to_string().as_bytes()).is_err());
    }

    #[test]
    fn store_ids_are_stable_across_rotation_and_differ_between_stores() {
        let mut a = Keyring::new(0);
        let id = store_id(&a);
        a.rotate(1);
        assert_eq!(store_id(&a), id);
        assert_ne!(store_id(&Keyring::new(0)), id);
        assert_eq!(id.len(), 32);
    }
}

//! Keeping key material out of swap and core dumps.
//!
//! [`harden_process`] (called by `coffer server` at start, never by tests):
//!
//! * Linux: `prctl(PR_SET_DUMPABLE, 0)`: no core dump, and other processes of
//!   the same user can neither ptrace it nor read `/proc/<pid>/mem`;
//! * Unix: `setrlimit(RLIMIT_CORE, 0)`: no core file either way;
//! * Unix: maps one private arena of [`ARENA_SIZE`] bytes, `mlock`s it (its
//!   pages are never swapped out) and, on Linux, marks it `MADV_DONTDUMP`.
//!   Every [`Key`](crate::Key) created afterwards (the root key, the keyring's
//!   terms) keeps its 32 bytes in a slot of that arena; when the arena is full
//!   a key falls back to ordinary heap memory.
//!
//! Everything is best effort: what failed is reported, nothing is fatal. On
//! other systems only the heap is used. Keys are zeroized on drop in either
//! place. Not covered: the AES key schedule that the AEAD library derives per
//! operation, and transient copies (e.g. a serialized keyring being sealed).

use std::ptr::NonNull;
use std::sync::{Mutex, OnceLock};

use zeroize::Zeroize;

/// Bytes of one secret held by [`SecretBytes`].
pub const SECRET_LEN: usize = crate::aead::KEY_LEN;
/// Size of the locked arena: 2048 key slots.
pub const ARENA_SIZE: usize = 64 * 1024;
const SLOTS: usize = ARENA_SIZE / SECRET_LEN;

/// What [`harden_process`] achieved.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Hardening {
    /// Core dumps are disabled (not dumpable, or core size limit 0).
    pub dumps_disabled: bool,
    /// Keys live in a locked (unswappable) arena.
    pub keys_locked: bool,
    /// What could not be done, and why (no secret in them).
    pub notes: Vec<String>,
}

/// Disables core dumps and sets up the locked key arena; see the module docs.
/// Call once at server start, before keys are created.
pub fn harden_process() -> Hardening {
    let mut report = Hardening::default();
    disable_dumps(&mut report);
    match init_arena() {
        Ok(ArenaLock::Locked) => report.keys_locked = true,
        Ok(ArenaLock::Unlocked(why)) => report.notes.push(why),
        Err(why) => report.notes.push(why),
    }
    report
}

#[cfg(target_os = "linux")]
fn disable_dumps(report: &mut Hardening) {
    // SAFETY: PR_SET_DUMPABLE takes one integer argument and touches no
    // memory of ours; the unused variadic arguments are passed as 0 as the
    // man page asks.
    let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0 as libc::c_ulong, 0, 0, 0) };
    if rc == 0 {
        report.dumps_disabled = true;
    } else {
        report.notes.push(format!(
            "prctl(PR_SET_DUMPABLE, 0) failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    set_core_limit_zero(report);
}

#[cfg(all(unix, not(target_os = "linux")))]
fn disable_dumps(report: &mut Hardening) {
    set_core_limit_zero(report);
}

#[cfg(not(unix))]
fn disable_dumps(report: &mut Hardening) {
    report
        .notes
        .push("core dumps are not disabled on this system".into());
}

#[cfg(unix)]
fn set_core_limit_zero(report: &mut Hardening) {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `zero` is a valid, initialised rlimit that outlives the call;
    // setrlimit only reads it.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
    if rc == 0 {
        report.dumps_disabled = true;
    } else {
        report.notes.push(format!(
            "setrlimit(RLIMIT_CORE, 0) failed: {}",
            std::io::Error::last_os_error()
        ));
    }
}

/// Whether the arena's pages are locked in memory.
#[derive(Debug, PartialEq, Eq)]
pub enum ArenaLock {
    /// `mlock` succeeded.
    Locked,
    /// The arena exists (so it is excluded from dumps where the OS allows)
    /// but `mlock` failed, for the reason given.
    Unlocked(String),
}

/// The arena: a mapping never unmapped, and its free slots.
struct Arena {
    base: NonNull<u8>,
    free: Mutex<Vec<u16>>,
}

// SAFETY: `base` points to a private mapping that lives until the process
// ends; the slots it is cut into are handed out under the `free` mutex, one
// owner at a time, so sharing the arena between threads races on nothing.
unsafe impl Send for Arena {}
// SAFETY: as above: all mutable state is behind the mutex.
unsafe impl Sync for Arena {}

static ARENA: OnceLock<Arena> = OnceLock::new();

/// Maps, locks and (on Linux) excludes from dumps the key arena, once.
/// Later calls report the first call's arena as locked or not.
#[cfg(unix)]
pub fn init_arena() -> Result<ArenaLock, String> {
    static LOCK_STATE: OnceLock<ArenaLock> = OnceLock::new();
    if let Some(state) = LOCK_STATE.get() {
        return Ok(match state {
            ArenaLock::Locked => ArenaLock::Locked,
            ArenaLock::Unlocked(w) => ArenaLock::Unlocked(w.clone()),
        });
    }
    // SAFETY: an anonymous private mapping with a null hint creates fresh
    // memory aliasing nothing of ours; the result is checked for MAP_FAILED.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            ARENA_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANON,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(format!(
            "mapping the key arena failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    let Some(base) = NonNull::new(ptr.cast::<u8>()) else {
        return Err("mapping the key arena returned null".into());
    };
    #[cfg(target_os = "linux")]
    {
        // SAFETY: [ptr, ptr + ARENA_SIZE) is exactly the page-aligned mapping
        // made above; MADV_DONTDUMP only changes what a core dump contains.
        let _ = unsafe { libc::madvise(ptr, ARENA_SIZE, libc::MADV_DONTDUMP) };
    }
    // SAFETY: the same range as above; mlock changes residency, not contents.
    let state = if unsafe { libc::mlock(ptr, ARENA_SIZE) } == 0 {
        ArenaLock::Locked
    } else {
        ArenaLock::Unlocked(format!(
            "mlock of the key arena failed (keys may be swapped): {}",
            std::io::Error::last_os_error()
        ))
    };
    let arena = Arena {
        base,
        free: Mutex::new((0..SLOTS as u16).rev().collect()),
    };
    if ARENA.set(arena).is_err() {
        // Another thread won the race; this mapping stays unused (64 KiB).
    }
    let _ = LOCK_STATE.set(state);
    init_arena()
}

/// Without `mmap`/`mlock`, keys stay on the heap.
#[cfg(not(unix))]
pub fn init_arena() -> Result<ArenaLock, String> {
    Err("keys are not locked in memory on this system".into())
}

/// Whether new secrets go to the locked arena (after [`init_arena`]).
pub fn arena_enabled() -> bool {
    ARENA.get().is_some()
}

enum Storage {
    Heap(Box<[u8; SECRET_LEN]>),
    Slot {
        ptr: NonNull<[u8; SECRET_LEN]>,
        index: u16,
    },
}

/// 32 secret bytes, in the locked arena when there is one and room in it,
/// else on the heap; zeroized on drop. Never printed.
pub struct SecretBytes {
    storage: Storage,
}

// SAFETY: a `SecretBytes` owns its slot exclusively (taken from the free list
// under the arena's mutex, returned only in `drop`), exactly like a `Box`, so
// moving it to another thread or sharing `&SecretBytes` is as sound as for
// `Box<[u8; 32]>`.
unsafe impl Send for SecretBytes {}
// SAFETY: see `Send`: `&SecretBytes` only ever gives out `&[u8; 32]`.
unsafe impl Sync for SecretBytes {}

impl SecretBytes {
    /// Zeroed bytes.
    pub fn zeroed() -> Self {
        if let Some(arena) = ARENA.get() {
            let index = arena.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
            if let Some(index) = index {
                // SAFETY: index < SLOTS, so the offset stays inside the
                // ARENA_SIZE mapping; [u8; 32] needs no alignment beyond 1.
                let ptr = unsafe { arena.base.add(index as usize * SECRET_LEN) }
                    .cast::<[u8; SECRET_LEN]>();
                let mut bytes = SecretBytes {
                    storage: Storage::Slot { ptr, index },
                };
                bytes.as_mut().zeroize();
                return bytes;
            }
        }
        SecretBytes {
            storage: Storage::Heap(Box::new([0u8; SECRET_LEN])),
        }
    }

    /// Whether these bytes live in the locked arena.
    pub fn in_arena(&self) -> bool {
        matches!(self.storage, Storage::Slot { .. })
    }
}

impl AsMut<[u8; SECRET_LEN]> for SecretBytes {
    /// Mutable access to the bytes.
    fn as_mut(&mut self) -> &mut [u8; SECRET_LEN] {
        match &mut self.storage {
            Storage::Heap(b) => b,
            // SAFETY: the slot is valid for the arena's (process) lifetime and
            // owned by `self` alone; `&mut self` makes this borrow unique.
            Storage::Slot { ptr, .. } => unsafe { ptr.as_mut() },
        }
    }
}

impl AsRef<[u8; SECRET_LEN]> for SecretBytes {
    fn as_ref(&self) -> &[u8; SECRET_LEN] {
        match &self.storage {
            Storage::Heap(b) => b,
            // SAFETY: as in `as_mut`; a shared borrow of `self` allows only
            // shared borrows of the slot, and nothing else aliases it.
            Storage::Slot { ptr, .. } => unsafe { ptr.as_ref() },
        }
    }
}

impl Clone for SecretBytes {
    fn clone(&self) -> Self {
        let mut copy = SecretBytes::zeroed();
        copy.as_mut().copy_from_slice(self.as_ref());
        copy
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.as_mut().zeroize();
        if let Storage::Slot { index, .. } = self.storage {
            if let Some(arena) = ARENA.get() {
                arena
                    .free
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(index);
            }
        }
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBytes(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn keys_live_in_the_arena_and_slots_are_reused() {
        // The arena needs no privilege: 64 KiB is within the usual memlock limit,
        // and an mlock failure still leaves a usable arena.
        init_arena().unwrap();
        assert!(arena_enabled());
        let a = crate::Key::generate();
        let b = a.clone();
        assert_eq!(a.as_bytes(), b.as_bytes());
        assert!(a.in_locked_memory() && b.in_locked_memory());
        let c = a.seal(b"x", b"aad");
        assert_eq!(b.open(&c, b"aad").unwrap().as_slice(), b"x");
        drop(a);
        drop(b);
        // A full arena falls back to the heap.
        let many: Vec<_> = (0..SLOTS + 1).map(|_| SecretBytes::zeroed()).collect();
        assert!(!many.last().unwrap().in_arena());
    }
}

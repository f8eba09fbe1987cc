//! One rate-limit quota's counting: a bucket of `tokens` requests per
//! client address, refilled whole at the start of each `interval` after the
//! client's first request (OpenBao's go-limiter memory store), and an
//! optional block of `block` after a client runs dry.
//!
//! Memory is bounded whatever the clients: the buckets sit in a fixed
//! number of shards of at most [`SHARD_CAPACITY`] addresses each. A full
//! shard first forgets the buckets whose window is over and that block
//! nothing (forgetting one changes nothing: the client's next request
//! would find it refilled anyway); if every address is still inside its
//! window, further addresses share the shard's one overflow bucket, so a
//! spray of made-up addresses is limited as one client instead of growing
//! the table. Forgetting is tried again no sooner than [`PURGE_PAUSE`]
//! after a pass that freed little, so a full shard costs no scan per request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Shards of the bucket table (a request locks one).
const SHARDS: usize = 16;
/// Addresses tracked per shard: 65,536 per quota in all.
pub(crate) const SHARD_CAPACITY: usize = 4096;
/// Least time between two purges of a full shard that freed little.
const PURGE_PAUSE: Duration = Duration::from_secs(1);

/// The outcome of one request against a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Take {
    /// Whether the request may go on.
    pub allowed: bool,
    /// Requests per interval (`X-Ratelimit-Limit`).
    pub limit: u64,
    /// Requests left in this interval (`X-Ratelimit-Remaining`).
    pub remaining: u64,
    /// Whole seconds until the bucket refills (`X-Ratelimit-Reset`).
    pub reset_secs: u64,
    /// Whole seconds the client should wait (`Retry-After`), when refused.
    pub retry_after_secs: u64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// The client's first request: windows start here.
    start: Instant,
    /// The window `available` belongs to.
    window: u64,
    available: u64,
    /// Refused until then (a block after running dry).
    blocked_until: Option<Instant>,
}

#[derive(Default)]
struct Shard {
    buckets: HashMap<IpAddr, Bucket>,
    /// The bucket shared by addresses that found the shard full.
    overflow: Option<Bucket>,
    no_purge_until: Option<Instant>,
}

/// The buckets of one quota.
pub(crate) struct Limiter {
    tokens: u64,
    interval: Duration,
    block: Duration,
    shards: Box<[Mutex<Shard>]>,
    /// Varies the shard choice per limiter.
    seed: u64,
}

impl Limiter {
    /// A limiter of `tokens` requests per `interval` (at least 1 ms), each
    /// client that runs dry refused for `block` more (zero: no block).
    pub(crate) fn new(tokens: u64, interval: Duration, block: Duration) -> Limiter {
        let mut seed = [0u8; 8];
        coffer_crypto::random::fill(&mut seed);
        Limiter {
            tokens,
            interval: interval.max(Duration::from_millis(1)),
            block,
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            seed: u64::from_le_bytes(seed),
        }
    }

    fn shard(&self, addr: &IpAddr) -> &Mutex<Shard> {
        use std::hash::{BuildHasher, Hasher};
        let mut h = FixedState(self.seed).build_hasher();
        std::hash::Hash::hash(addr, &mut h);
        let i = usize::try_from(h.finish() % SHARDS as u64).unwrap_or(0);
        &self.shards[i]
    }

    /// Counts one request of `addr` at `now`.
    pub(crate) fn take(&self, addr: IpAddr, now: Instant) -> Take {
        let mut shard = self.shard(&addr).lock();
        let shard = &mut *shard;
        if !shard.buckets.contains_key(&addr) && shard.buckets.len() >= SHARD_CAPACITY {
            self.purge(shard, now);
        }
        let bucket = if shard.buckets.len() < SHARD_CAPACITY || shard.buckets.contains_key(&addr) {
            shard.buckets.entry(addr).or_insert_with(|| self.fresh(now))
        } else {
            shard.overflow.get_or_insert_with(|| self.fresh(now))
        };
        self.take_from(bucket, now)
    }

    fn fresh(&self, now: Instant) -> Bucket {
        Bucket {
            start: now,
            window: 0,
            available: self.tokens,
            blocked_until: None,
        }
    }

    fn window_of(&self, b: &Bucket, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(b.start).as_nanos();
        u64::try_from(elapsed / self.interval.as_nanos().max(1)).unwrap_or(u64::MAX)
    }

    fn window_end(&self, b: &Bucket, window: u64) -> Instant {
        let n = u32::try_from(window.saturating_add(1)).unwrap_or(u32::MAX);
        b.start + self.interval.saturating_mul(n)
    }

    fn take_from(&self, b: &mut Bucket, now: Instant) -> Take {
        let secs_until = |t: Instant| t.saturating_duration_since(now).as_secs();
        if let Some(until) = b.blocked_until {
            if now < until {
                return Take {
                    allowed: false,
                    limit: self.tokens,
                    remaining: 0,
                    reset_secs: secs_until(until),
                    retry_after_secs: secs_until(until),
                };
            }
            b.blocked_until = None;
        }
        let window = self.window_of(b, now);
        if window > b.window {
            b.window = window;
            b.available = self.tokens;
        }
        let reset = secs_until(self.window_end(b, window));
        let allowed = b.available > 0;
        if allowed {
            b.available -= 1;
        }
        let mut retry_after_secs = reset;
        if !allowed && !self.block.is_zero() {
            let until = now + self.block;
            b.blocked_until = Some(until);
            retry_after_secs = secs_until(until);
        }
        Take {
            allowed,
            limit: self.tokens,
            remaining: b.available,
            reset_secs: reset,
            retry_after_secs,
        }
    }

    /// Forgets the buckets of `shard` whose window is over and that block
    /// nothing; pauses further purges when that freed under an eighth.
    fn purge(&self, shard: &mut Shard, now: Instant) {
        if shard.no_purge_until.is_some_and(|t| now < t) {
            return;
        }
        let before = shard.buckets.len();
        shard.buckets.retain(|_, b| {
            let blocking = b.blocked_until.is_some_and(|t| now < t);
            let window = self.window_of(b, now);
            blocking || (window == b.window && now < self.window_end(b, window))
        });
        if let Some(o) = &shard.overflow {
            if o.blocked_until.is_none_or(|t| now >= t) && self.window_of(o, now) > o.window {
                shard.overflow = None;
            }
        }
        let freed = before - shard.buckets.len();
        shard.no_purge_until = (freed < SHARD_CAPACITY / 8).then(|| now + PURGE_PAUSE);
    }

    /// Addresses tracked now (every shard), for tests.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.shards.iter().map(|s| s.lock().buckets.len()).sum()
    }
}

/// A hasher state fixed by a seed (SipHash keyed with it).
struct FixedState(u64);

impl std::hash::BuildHasher for FixedState {
    type Hasher = std::hash::DefaultHasher;

    fn build_hasher(&self) -> Self::Hasher {
        let mut h = std::hash::DefaultHasher::new();
        std::hash::Hasher::write_u64(&mut h, self.0);
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(n))
    }

    #[test]
    fn a_bucket_holds_its_tokens_per_window_and_refills_whole() {
        let l = Limiter::new(3, Duration::from_secs(10), Duration::ZERO);
        let t0 = Instant::now();
        let a = ip(1);
        let takes: Vec<Take> = (0..4).map(|_| l.take(a, t0)).collect();
        assert_eq!(
            takes.iter().map(|t| t.allowed).collect::<Vec<_>>(),
            [true, true, true, false]
        );
        assert_eq!(takes[0].remaining, 2);
        assert_eq!(takes[2].remaining, 0);
        assert_eq!(takes[3].reset_secs, 10);
        assert_eq!(takes[3].retry_after_secs, 10);
        // Another address has its own bucket.
        assert!(l.take(ip(2), t0).allowed);
        // The next window refills it whole.
        let later = t0 + Duration::from_secs(10);
        let t = l.take(a, later);
        assert!(t.allowed);
        assert_eq!(t.remaining, 2);
        assert_eq!(t.reset_secs, 10);
    }

    #[test]
    fn a_block_outlasts_the_window() {
        let l = Limiter::new(1, Duration::from_secs(1), Duration::from_secs(30));
        let t0 = Instant::now();
        let a = ip(7);
        assert!(l.take(a, t0).allowed);
        let refused = l.take(a, t0);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_secs, 30);
        // The window has passed, the block has not.
        let t = l.take(a, t0 + Duration::from_secs(5));
        assert!(!t.allowed);
        assert_eq!(t.retry_after_secs, 25);
        assert!(l.take(a, t0 + Duration::from_secs(31)).allowed);
    }

    #[test]
    fn a_spray_of_addresses_stays_bounded_and_limited() {
        let l = Limiter::new(2, Duration::from_secs(60), Duration::ZERO);
        let t0 = Instant::now();
        let mut allowed = 0usize;
        let n = SHARDS * SHARD_CAPACITY * 3;
        for i in 0..n {
            if l.take(ip(i as u32 + 1), t0).allowed {
                allowed += 1;
            }
        }
        assert!(l.tracked() <= SHARDS * SHARD_CAPACITY);
        // Every tracked address got its two tokens, the overflow two per shard.
        assert!(allowed <= l.tracked() * 2 + SHARDS * 2, "{allowed}");
        // Once the windows are over the table makes room again.
        let later = t0 + Duration::from_secs(61);
        for i in 0..SHARDS * 64 {
            l.take(ip(u32::MAX - i as u32), later);
        }
        assert!(l.tracked() < SHARDS * SHARD_CAPACITY);
    }
}

//! Leases of admissions taken from Redis. A request whose buckets (a credential's, its
//! endpoint class's, its organization's) are in heavy use on this instance asks Redis,
//! in the same atomic script step as any check, for several admissions at once: each
//! is a GCRA admission of every one of those buckets, taken in Redis exactly as a
//! request's would be. The instance then hands them out to the next requests of the
//! same buckets without a round trip, for at most [`LEASE_TTL`], and gives back to
//! Redis what it did not hand out. So every admission is still taken from the shared
//! buckets (instances together never admit more than one would); what a lease changes
//! is who may spend an admission for those few milliseconds.
//!
//! A lease is sized by use: a bucket set starts with single checks, and its lease
//! doubles (up to [`MAX_LEASE`]) each time the last one was spent before it expired,
//! but never beyond a quarter of what its tightest bucket had left, so that near a
//! limit checks go one by one again and instances share the last admissions fairly.
//! At a quota's real rates (a few requests a second) leases stay at one: only a flood
//! of one credential against a large quota is served from leases.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{Bucket, Subject, Verdict, Verdicts, MAX_ITEMS};

/// Longest time an admission taken from Redis is held here before being given back.
pub(crate) const LEASE_TTL: Duration = Duration::from_millis(20);
/// Most admissions taken in one lease.
pub(crate) const MAX_LEASE: u32 = 64;
/// Independent locks over the table, so that unrelated bucket sets rarely meet.
const SHARDS: usize = 16;

/// A bucket's subject, owned.
#[derive(Debug, PartialEq, Eq)]
enum Owned {
    Ip(IpAddr),
    Id(String),
}

impl Owned {
    fn of(subject: Subject<'_>) -> Owned {
        match subject {
            Subject::Ip(ip) => Owned::Ip(ip),
            Subject::Id(id) => Owned::Id(id.clone()),
        }
    }

    fn is(&self, subject: Subject<'_>) -> bool {
        match (self, subject) {
            (Owned::Ip(a), Subject::Ip(b)) => *a == b,
            (Owned::Id(a), Subject::Id(b)) => a == b,
            _ => false,
        }
    }
}

/// What one bucket had left once the lease was taken, when it is full again, and its
/// emission interval (an admission not yet handed out brings that forward by one).
#[derive(Clone, Copy, Debug)]
struct Base {
    remaining: u32,
    full_at: Instant,
    t: Duration,
}

/// The admissions of one bucket set held here.
struct Lease {
    items: Vec<(Bucket, Owned)>,
    /// Admissions not handed out yet.
    left: u32,
    /// Admissions taken by the last grant.
    granted: u32,
    bases: [Option<Base>; MAX_ITEMS],
    expires: Instant,
    /// The Redis keys with their `t` and `tau` in µs, to give back what is left.
    keys: Vec<(String, u64, u64)>,
}

impl Lease {
    fn is_for(&self, items: &[(Bucket, Subject<'_>)]) -> bool {
        self.items.len() == items.len() && self.items.iter().zip(items).all(|((b, o), (bucket, subject))| b == bucket && o.is(*subject))
    }

    /// At most a quarter of what the tightest bucket had left (at least one).
    fn cap(&self) -> u32 {
        let least = self.bases.iter().flatten().map(|b| b.remaining).min().unwrap_or(0);
        (least / 4).max(1)
    }
}

/// What to ask Redis for when no admission is held: how many admissions, and what to
/// give back first (the leftover of an expired lease, with its keys).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Ask {
    pub want: u32,
    pub give_back: Option<(u32, Vec<(String, u64, u64)>)>,
}

/// The leases of one instance.
pub(crate) struct Leases {
    shards: Box<[Mutex<HashMap<u64, Lease>>]>,
    hasher: foldhash::fast::FixedState,
}

impl Leases {
    pub fn new() -> Leases {
        Leases {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: foldhash::fast::FixedState::default(),
        }
    }

    fn hash(&self, items: &[(Bucket, Subject<'_>)]) -> u64 {
        let mut state = self.hasher.build_hasher();
        for &(bucket, subject) in items {
            bucket.hash(&mut state);
            match subject {
                Subject::Ip(ip) => ip.hash(&mut state),
                Subject::Id(id) => id.hash(&mut state),
            }
        }
        state.finish()
    }

    fn shard(&self, hash: u64) -> &Mutex<HashMap<u64, Lease>> {
        &self.shards[(hash as usize) % SHARDS]
    }

    /// One admission of `items` from a live lease, with each bucket's verdict as Redis
    /// would give it had no other instance checked meanwhile; else what to ask Redis.
    pub fn take(&self, items: &[(Bucket, Subject<'_>)], now: Instant) -> Result<Verdicts, Ask> {
        let hash = self.hash(items);
        let mut shard = self.shard(hash).lock();
        let Some(lease) = shard.get_mut(&hash).filter(|lease| lease.is_for(items)) else {
            return Err(Ask { want: 1, give_back: None });
        };
        if now >= lease.expires {
            let used = lease.granted - lease.left;
            let want = used.min(lease.cap()).max(1);
            let give_back = (lease.left > 0).then(|| (lease.left, std::mem::take(&mut lease.keys)));
            shard.remove(&hash);
            return Err(Ask { want, give_back });
        }
        if lease.left == 0 {
            return Err(Ask { want: lease.granted.saturating_mul(2).min(MAX_LEASE).min(lease.cap()), give_back: None });
        }
        lease.left -= 1;
        let mut verdicts = Verdicts::default();
        for base in lease.bases.iter().take(items.len()).flatten() {
            let full_at = base.full_at.checked_sub(base.t * lease.left).unwrap_or(now);
            verdicts.push(Verdict::Admitted {
                remaining: base.remaining.saturating_add(lease.left),
                reset: full_at.saturating_duration_since(now),
            });
        }
        Ok(verdicts)
    }

    /// Records what Redis answered to an ask of `items` at `now`: `admitted` admissions
    /// (the asking request's among them), `last` the verdicts of the last one, and
    /// `keys` the Redis keys checked. Admissions granted while another grant of the same
    /// buckets is live join it, under its earlier expiry.
    pub fn grant(&self, items: &[(Bucket, Subject<'_>)], now: Instant, admitted: u32, last: &Verdicts, keys: Vec<(String, u64, u64)>) {
        let mut bases = [None; MAX_ITEMS];
        for ((slot, verdict), &(_, t, _)) in bases.iter_mut().zip(last.iter()).zip(&keys) {
            let t = Duration::from_micros(t);
            *slot = match verdict {
                Verdict::Admitted { remaining, reset } => Some(Base { remaining, full_at: now + reset, t }),
                Verdict::Refused { .. } => Some(Base { remaining: 0, full_at: now, t }),
            };
        }
        let left = admitted.saturating_sub(1);
        let hash = self.hash(items);
        let mut shard = self.shard(hash).lock();
        if let Some(lease) = shard.get_mut(&hash).filter(|lease| lease.is_for(items) && now < lease.expires && lease.left > 0) {
            lease.left += left;
            lease.granted += admitted;
            lease.bases = bases;
            return;
        }
        let items = items.iter().map(|&(bucket, subject)| (bucket, Owned::of(subject))).collect();
        let keys = if left > 0 { keys } else { Vec::new() };
        shard.insert(hash, Lease { items, left, granted: admitted.max(1), bases, expires: now + LEASE_TTL, keys });
    }

    /// Drops expired leases; returns what they had left, to give back to Redis.
    pub fn sweep(&self, now: Instant) -> Vec<(u32, Vec<(String, u64, u64)>)> {
        let mut returns = Vec::new();
        for shard in self.shards.iter() {
            shard.lock().retain(|_, lease| {
                if now < lease.expires {
                    return true;
                }
                if lease.left > 0 {
                    returns.push((lease.left, std::mem::take(&mut lease.keys)));
                }
                false
            });
        }
        returns
    }

    /// Whether any lease is held (so that the sweep has something to do).
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|shard| shard.lock().is_empty())
    }

    #[cfg(test)]
    pub fn left(&self, items: &[(Bucket, Subject<'_>)]) -> Option<u32> {
        let hash = self.hash(items);
        self.shard(hash).lock().get(&hash).filter(|lease| lease.is_for(items)).map(|lease| lease.left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Class;
    use crate::principal::Plan;

    fn admitted(remaining: u32, reset_ms: u64) -> Verdict {
        Verdict::Admitted { remaining, reset: Duration::from_millis(reset_ms) }
    }

    fn verdicts(list: &[Verdict]) -> Verdicts {
        let mut out = Verdicts::default();
        for &v in list {
            out.push(v);
        }
        out
    }

    #[test]
    fn a_lease_hands_out_what_it_holds_with_the_headers_redis_would_give() {
        let (key, org) = ("key_1".to_owned(), "org_1".to_owned());
        let items = [(Bucket::Key(Plan::Pro), Subject::Id(&key)), (Bucket::Class(Class::Detail), Subject::Id(&key)), (Bucket::Org(Plan::Pro), Subject::Id(&org))];
        let leases = Leases::new();
        let now = Instant::now();
        assert_eq!(leases.take(&items, now).err(), Some(Ask { want: 1, give_back: None }), "nothing held: one check");
        // A single admission recorded: nothing left, so the next ask is for two.
        let keys = vec![("c".to_owned(), 1000, 0), ("k".to_owned(), 2000, 0), ("o".to_owned(), 500, 0)];
        leases.grant(&items, now, 1, &verdicts(&[admitted(400, 10), admitted(399, 5), admitted(479, 2)]), keys.clone());
        assert_eq!(leases.take(&items, now).err().map(|a| a.want), Some(2));
        // Four admissions: the asker's, and three handed out here, each one fewer left.
        // (Full again sooner by one interval — 1, 2 and 0.5 ms — per admission not yet
        // handed out.)
        leases.grant(&items, now, 4, &verdicts(&[admitted(396, 40), admitted(395, 20), admitted(475, 8)]), keys.clone());
        for left in [2, 1, 0] {
            let got: Vec<Verdict> = leases.take(&items, now).expect("held").iter().collect();
            let reset = |ms: u64, t_us: u64| Duration::from_micros(ms * 1000 - t_us * u64::from(left));
            let expect = |remaining: u32, ms, t_us| Verdict::Admitted { remaining: remaining + left, reset: reset(ms, t_us) };
            assert_eq!(got, [expect(396, 40, 1000), expect(395, 20, 2000), expect(475, 8, 500)]);
        }
        assert_eq!(leases.left(&items), Some(0));
        assert_eq!(leases.take(&items, now).err().map(|a| a.want), Some(8), "spent in time: twice as many");
        // Another bucket set is not served from this lease.
        let other = "key_2".to_owned();
        let items2 = [(Bucket::Key(Plan::Pro), Subject::Id(&other))];
        assert_eq!(leases.take(&items2, now).err().map(|a| a.want), Some(1));
        // Expired with admissions left: they are given back, and the next ask is what was used.
        leases.grant(&items, now, 4, &verdicts(&[admitted(396, 40), admitted(395, 20), admitted(475, 8)]), keys.clone());
        leases.take(&items, now).expect("held");
        let later = now + LEASE_TTL;
        assert_eq!(leases.take(&items, later).err(), Some(Ask { want: 2, give_back: Some((2, keys)) }));
        assert_eq!(leases.left(&items), None, "the expired lease is gone");
    }

    #[test]
    fn near_a_limit_leases_shrink_to_single_checks() {
        let key = "key_1".to_owned();
        let items = [(Bucket::Key(Plan::Starter), Subject::Id(&key))];
        let leases = Leases::new();
        let now = Instant::now();
        leases.grant(&items, now, 32, &verdicts(&[admitted(40, 10)]), vec![("k".to_owned(), 1, 2)]);
        for _ in 0..31 {
            leases.take(&items, now).expect("held");
        }
        assert_eq!(leases.take(&items, now).err().map(|a| a.want), Some(10), "a quarter of the 40 left");
        leases.grant(&items, now, 0, &verdicts(&[Verdict::Refused { wait: Duration::from_millis(5), reset: Duration::from_millis(9) }]), Vec::new());
        assert_eq!(leases.take(&items, now).err().map(|a| a.want), Some(1), "refused: one at a time");
    }

    #[test]
    fn expired_leases_are_swept_and_their_leftovers_returned() {
        let (a, b) = ("key_a".to_owned(), "key_b".to_owned());
        let (items_a, items_b) = ([(Bucket::Key(Plan::Pro), Subject::Id(&a))], [(Bucket::Key(Plan::Pro), Subject::Id(&b))]);
        let leases = Leases::new();
        let now = Instant::now();
        leases.grant(&items_a, now, 5, &verdicts(&[admitted(100, 1)]), vec![("a".to_owned(), 1, 2)]);
        leases.grant(&items_b, now, 1, &verdicts(&[admitted(100, 1)]), vec![("b".to_owned(), 1, 2)]);
        assert!(leases.sweep(now).is_empty() && !leases.is_empty(), "nothing expired yet");
        assert_eq!(leases.sweep(now + LEASE_TTL), [(4, vec![("a".to_owned(), 1, 2)])], "only what is left comes back");
        assert!(leases.is_empty());
    }
}
